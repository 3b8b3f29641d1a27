"""Interactive drill-down for notebooks: from the failures table to a rule, a child, a timeline;
from a year-on-year change to the children behind it; a query's explanation typed and saved.

The widgets are a thin skin over plain methods (:meth:`DrillDown.select`, :meth:`DrillDown.turn`,
:meth:`DrillDown.find_child`, :meth:`DrillDown.pick_child`, :meth:`DrillDown.export`,
:meth:`ExplanationEditor.save`, :meth:`TableBrowser.page`), so the logic is tested without a
browser, and the widget callbacks only call those methods and put their results into ``Output``
widgets. The failures table is shown a page at a time, so a return with tens of thousands of
failing rows stays usable.
"""

from __future__ import annotations

import getpass
import html
import os
from pathlib import Path
from typing import Any, Protocol

import ipywidgets as W
import pandas as pd
from IPython.display import HTML, display
from matplotlib.figure import Figure

from cinqa import display as show
from cinqa.compare import HEADLINE, Comparison, changes, wide_table
from cinqa.errors import CinqaError
from cinqa.excel import write_error_report
from cinqa.explanations import (EXPLAINABLE, Explained, Merged, default_path, for_return, match, merge,
                                read_explanations, write_explanations)
from cinqa.export import write_failures_csv
from cinqa.failures import FAILURE_COLUMNS, for_display, rule_order, summarise, verdict
from cinqa.measures import ALL as NO_BREAKDOWN, MEASURES
from cinqa.pseudonymise import Pseudonymiser, pseudonymise_failures, pseudonymise_return, return_scrubber
from cinqa.returns import CensusReturn
from cinqa.rules import GUIDANCE_LABEL, STATUS_WORDS, with_rule_facts

ALL = "(all)"
MAX_CHILD_OPTIONS = 500
PAGE_ROWS = 25
FAILURE_PAGE_ROWS = 50
NO_CHILD = -1
"""The child dropdown's "(pick a child)" value: a dropdown set to None shows blank in the browser."""
BY_SEVERITY = "errors, most children"
BY_LINE = "file order"
ORDERS = (BY_SEVERITY, BY_LINE)
"""How the failing rows can be ordered: errors first and the rules that touch most children first, or file order."""
# JupyterLab draws every toggle button at one width and cuts its label with an ellipsis ("auto" does
# not widen it): wide enough for the longest label, at about half an em a character, plus the padding.
_BUTTON_WIDTH = f"{max(map(len, ORDERS)) // 2 + 4}em"


class FailureSource(Protocol):
    """What the drill-down needs from a validation: its failures table, the rules not evaluated and the return."""

    failures: pd.DataFrame
    errored: pd.DataFrame
    ret: CensusReturn


class DrillDown:
    """Filter a validation's failures by severity, entity and rule, and look at one child.

    ``DrillDown(validation)`` works on anything with ``.failures`` (a :mod:`cinqa.failures`
    table), ``.errored`` and ``.ret`` (the :class:`~cinqa.returns.CensusReturn`). With
    ``pseudonymise=True`` every table, timeline and export shows keyed tokens instead of
    identifiers (``key``: 32+ bytes; a one-off random key when omitted). An Excel export's cover
    gives the verdict on the whole return, whatever is selected. The selected rows are shown
    ``page_rows`` at a time (:meth:`turn`), in one of :data:`ORDERS` (:meth:`sort`).
    """

    def __init__(self, validation: FailureSource, *, pseudonymise: bool = False, key: bytes | None = None,
                 page_rows: int = FAILURE_PAGE_ROWS) -> None:
        self.ret = validation.ret
        missing = [c for c in FAILURE_COLUMNS if c not in validation.failures.columns]
        if missing:
            raise ValueError(f"failures table lacks columns {missing}")
        self.failures = validation.failures.reset_index(drop=True)
        self.year = getattr(validation, "year", None) or self.ret.year
        self.rules = with_rule_facts(summarise(self.failures), self.year)
        # The failing rows in each order, computed once: a selection keeps the order of its rows.
        rank = {r: i for i, r in enumerate(self._by_severity(self.rules)["rule"])}
        f = self.failures
        self._orders = {
            BY_SEVERITY: pd.DataFrame({"rank": f["rule"].astype("str").map(rank).fillna(len(rank)).to_numpy(),
                                       "line": pd.array(f["line"], dtype="Int64")})
            .sort_values(["rank", "line"], kind="stable", na_position="first").index.to_numpy(),
            BY_LINE: pd.DataFrame({"line": pd.array(f["line"], dtype="Int64")})
            .sort_values("line", kind="stable", na_position="first").index.to_numpy(),
        }
        self.verdict = verdict(self.failures, validation.errored, self.ret.issues)
        self.shown = self.failures
        self._label = {int(c): str(i) for c, i in zip(self.ret.children["child"], self.ret.children["LAchildID"])}
        self._pseudonymiser = Pseudonymiser(key or os.urandom(32)) if pseudonymise else None
        if self._pseudonymiser is not None:
            p = self._pseudonymiser
            self.shown = pseudonymise_failures(self.failures, p, return_scrubber(self.ret, p))
            self._label = {c: p.token("LAchildID", v) for c, v in self._label.items()}
        self._by_label = {v: c for c, v in self._label.items()}
        self.page_rows = page_rows
        self.page = 1
        self.order = BY_SEVERITY
        self.severity = self.entity = self.rule = ALL
        self.child: int | None = None
        self._drawn: int | None = None
        self._widget: W.VBox | None = None
        self.controls: dict[str, W.Widget] = {}
        self.outputs: dict[str, W.Output] = {}

    # --- plain methods (what the widgets call) ---

    def _mask(self, severity: str, entity: str, rule: str) -> pd.Series:
        f = self.failures
        mask = pd.Series(True, index=f.index)
        for column, value in (("severity", severity), ("entity", entity), ("rule", rule)):
            if value != ALL:
                mask &= f[column].astype("object").eq(value).fillna(False).astype(bool)
        return mask

    def options(self) -> dict[str, list[str]]:
        """List the choices open at each level given the choices above it (each list starts with ALL).

        Rules come errors first, then by the number of children they touch, most first.
        """
        f = self.failures
        def values(mask: pd.Series, column: str) -> list[str]:
            return [ALL] + sorted(str(v) for v in f.loc[mask, column].dropna().unique())
        open_rules = set(values(self._mask(self.severity, self.entity, ALL), "rule"))
        return {
            "severity": values(self._mask(ALL, ALL, ALL), "severity"),
            "entity": values(self._mask(self.severity, ALL, ALL), "entity"),
            "rule": [ALL] + [r for r in dict.fromkeys(self._by_severity(self.rules)["rule"]) if r in open_rules],
        }

    @staticmethod
    def _by_severity(rules: pd.DataFrame) -> pd.DataFrame:
        key = pd.DataFrame({"warning": rules["severity"].ne("error"), "children": -rules["children"],
                            "number": rules["rule"].map(rule_order), "rule": rules["rule"]})
        return rules.loc[key.sort_values(["warning", "children", "number", "rule"], kind="stable").index]

    def rule_label(self, rule: str) -> str:
        """Label a rule for the dropdown: "8606 — message (n children)"."""
        if rule == ALL:
            return ALL
        r = self.rules[self.rules["rule"] == rule].iloc[0]
        return f"{rule} — {r['message']} ({r['children']:,} {'child' if r['children'] == 1 else 'children'})"

    def rule_info(self, rule: str | None = None) -> str:
        """Say what the current (or given) rule is: severity, message, status in the year and note."""
        rule = self.rule if rule is None else rule
        if rule == ALL:
            return ""
        r = self.rules[self.rules["rule"] == rule].iloc[0]
        out = f"{rule} ({r['severity']}): {str(r['message']).rstrip('.')}."
        if r["status"]:
            out += f" Status {r['status']}: {STATUS_WORDS.get(r['status'], r['status'])} for {self.year}."
        return out + (f" Note: {r['note']}" if r["note"] else "")

    def rule_guidance(self, rule: str | None = None) -> str:
        """Say how to fix the current (or given) rule: what usually causes it and where it is fixed."""
        rule = self.rule if rule is None else rule
        if rule == ALL:
            return ""
        return str(self.rules.loc[self.rules["rule"] == rule, "guidance"].iloc[0])

    def select(self, *, severity: str | None = None, entity: str | None = None,
               rule: str | None = None) -> pd.DataFrame:
        """Narrow the selection and return its failing rows; a level that no longer fits resets to ALL."""
        if severity is not None:
            self.severity = severity
        if entity is not None:
            self.entity = entity
        if rule is not None:
            self.rule = rule
        opts = self.options()
        if self.severity not in opts["severity"]:
            raise ValueError(f"no failures of severity {self.severity!r}")
        if self.entity not in opts["entity"]:
            self.entity = ALL
            opts = self.options()
        if self.rule not in opts["rule"]:
            self.rule = ALL
        self.page = 1
        return self.rows

    def sort(self, order: str) -> pd.DataFrame:
        """Order the failing rows by one of :data:`ORDERS`, back on the first page, and return them."""
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
        self.order = order
        self.page = 1
        return self.rows

    @property
    def rows(self) -> pd.DataFrame:
        """The failing rows of the current selection, in the current order (pseudonymised when asked)."""
        order = self._orders[self.order]
        mask = self._mask(self.severity, self.entity, self.rule).to_numpy()[order]
        return self.shown.iloc[order[mask]]

    @property
    def pages(self) -> int:
        """How many pages the current selection fills (at least one)."""
        return max(1, -(-len(self.rows) // self.page_rows))

    def turn(self, to: int) -> pd.DataFrame:
        """Go to page ``to`` (1-based, kept within the pages there are) and return its rows."""
        self.page = min(max(1, int(to)), self.pages)
        return self.page_of_rows()

    def page_of_rows(self) -> pd.DataFrame:
        """Return the rows of the current page of the selection."""
        start = (self.page - 1) * self.page_rows
        return self.rows.iloc[start:start + self.page_rows]

    def page_text(self) -> str:
        """Say which rows the page shows: "rows 51-100 of 16,858"."""
        n = len(self.rows)
        if not n:
            return "no rows"
        start = (self.page - 1) * self.page_rows
        return f"rows {start + 1:,}-{min(start + self.page_rows, n):,} of {n:,}"

    def summary(self) -> pd.DataFrame:
        """Count failing rows and children per rule in the current selection."""
        return summarise(self.rows)

    def children(self) -> pd.DataFrame:
        """List the children in the current selection, most failures first."""
        rows = self.failures[self._mask(self.severity, self.entity, self.rule)]
        rows = rows[rows["child"].notna()]
        if rows.empty:
            return pd.DataFrame(columns=["child", "LAchildID", "failures", "rules"])
        out = (rows.groupby("child").agg(failures=("rule", "size"),
                                         rules=("rule", lambda r: ", ".join(sorted(set(map(str, r))))))
               .reset_index())
        out["child"] = out["child"].astype("int64")
        out.insert(1, "LAchildID", out["child"].map(self._label))
        return out.sort_values(["failures", "child"], ascending=[False, True]).reset_index(drop=True)

    def find_child(self, la_child_id: str) -> int | None:
        """Make the child with this LAchildID (the token, when pseudonymised) current; None when there is none."""
        child = self._by_label.get(str(la_child_id).strip())
        self.child = child
        return child

    def pick_child(self, child: int) -> Figure:
        """Make ``child`` (its ordinal in the return) current and draw its timeline with all its failures."""
        self.child = int(child)
        return show.child_timeline(self.ret, self.child, self.failures, label=self._label.get(self.child))

    def timeline(self) -> Figure | HTML:
        """Draw the current child's timeline, else that of the child with the most failing rows selected."""
        if self.child is None:
            kids = self.children()
            if kids.empty:
                return show.callout("No child has a failure in this selection.", "ok")
            return self.pick_child(int(kids["child"].iat[0]))
        return self.pick_child(self.child)

    def export(self, path: str | Path) -> Path:
        """Write the current selection to ``path``, replacing it whole.

        ``.csv`` gets the failing rows as they are; ``.xlsx`` gets the Excel error report of the
        selection (summary, one sheet per entity with the failing fields highlighted).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return write_failures_csv(self.rows, path)
        if suffix != ".xlsx":
            raise ValueError(f"{path}: choose a .csv or .xlsx file name")
        p = self._pseudonymiser
        ret = self.ret if p is None else pseudonymise_return(self.ret, p)
        return write_error_report(path, self.rows, ret, judged=self.verdict, pseudonymised=p is not None,
                                  source=self.ret.path.name if self.ret.path else None)

    # --- widgets ---

    def widget(self) -> W.VBox:
        """Build (once) and return the ipywidgets drill-down."""
        if self._widget is not None:
            return self._widget
        opts = self.options()
        c = self.controls
        c["severity"] = W.Dropdown(options=opts["severity"], value=self.severity, description="Severity")
        c["entity"] = W.Dropdown(options=opts["entity"], value=self.entity, description="Entity")
        c["rule"] = W.Dropdown(options=self._rule_options(opts["rule"]), value=self.rule, description="Rule",
                               layout=W.Layout(width="60%"))
        c["order"] = W.ToggleButtons(options=ORDERS, value=self.order, description="Sort by",
                                     style={"button_width": _BUTTON_WIDTH})
        c["rule_info"] = W.HTML()
        c["rule_fix"] = W.HTML()
        c["previous"] = W.Button(description="Previous", icon="arrow-left")
        c["next"] = W.Button(description="Next", icon="arrow-right")
        c["page"] = W.Label()
        c["child"] = W.Dropdown(options=[], description="Child")
        c["find"] = W.Combobox(placeholder="type an LAchildID and press Enter", description="Find child",
                               ensure_option=False, continuous_update=False)
        c["path"] = W.Text(value="failures-selection.xlsx", description="Export to")
        c["export"] = W.Button(description="Export selection", icon="download")
        c["status"] = W.Label()
        self.outputs = {"rows": W.Output(), "timeline": W.Output()}
        for name in ("severity", "entity", "rule"):
            c[name].observe(self._on_filter, names="value")
        c["order"].observe(self._on_order, names="value")
        c["previous"].on_click(lambda _b: self._on_turn(-1))
        c["next"].on_click(lambda _b: self._on_turn(1))
        c["child"].observe(self._on_child, names="value")
        c["find"].observe(self._on_find, names="value")
        c["export"].on_click(self._on_export)
        self._widget = W.VBox([
            W.HBox([c["severity"], c["entity"]]),
            c["rule"],
            c["rule_info"],
            c["rule_fix"],
            c["order"],
            c["status"],
            W.HBox([c["previous"], c["page"], c["next"]]),
            self.outputs["rows"],
            W.HBox([c["child"], c["find"]]),
            self.outputs["timeline"],
            W.HBox([c["path"], c["export"]]),
        ])
        self._refresh()
        return self._widget

    def _rule_options(self, rules: list[str]) -> list[tuple[str, str]]:
        return [(self.rule_label(r), r) for r in rules]

    def _ipython_display_(self) -> None:
        display(self.widget())

    def _on_filter(self, change: dict[str, Any]) -> None:
        if getattr(self, "_updating", False):
            return
        self.select(**{change["owner"].description.lower(): change["new"]})
        self._refresh()

    def _on_order(self, change: dict[str, Any]) -> None:
        self.sort(change["new"])
        self._show_page()

    def _on_turn(self, step: int) -> None:
        self.turn(self.page + step)
        self._show_page()

    def _refresh(self) -> None:
        c = self.controls
        self._updating = True
        try:
            opts = self.options()
            for name in ("severity", "entity"):
                c[name].options = opts[name]
                c[name].value = getattr(self, name)
            c["rule"].options = self._rule_options(opts["rule"])
            c["rule"].value = self.rule
            kids = self.children().head(MAX_CHILD_OPTIONS)
            c["child"].options = [("(pick a child)", NO_CHILD)] + [
                (f"{r.LAchildID} ({r.failures} failing rows: {r.rules})", int(r.child)) for r in kids.itertuples()]
            c["find"].options = [str(v) for v in kids["LAchildID"]]
            if self.child not in set(kids["child"]):
                self.child = None
            self._show_child()
        finally:
            self._updating = False
        rows = self.rows
        c["rule_info"].value = html.escape(self.rule_info())
        fix = self.rule_guidance()
        c["rule_fix"].value = f"<b>{GUIDANCE_LABEL.capitalize()}:</b> {html.escape(fix)}" if fix else ""
        c["status"].value = (f"{len(rows):,} failing rows, {rows['child'].nunique():,} children"
                             + (f" (first {MAX_CHILD_OPTIONS} children listed; find any other by its LAchildID)"
                                if len(kids) == MAX_CHILD_OPTIONS else ""))
        self._show_page()
        self._show_timeline()

    def _show_page(self) -> None:
        """Show the current page of failing rows, and say which rows they are."""
        c = self.controls
        c["page"].value = f"{self.page_text()} (page {self.page:,} of {self.pages:,})"
        c["previous"].disabled = self.page <= 1
        c["next"].disabled = self.page >= self.pages
        out = self.outputs["rows"]
        out.outputs = ()
        # The rows' numbers in the failures table mean nothing to the reader: no index column.
        out.append_display_data(show.table(for_display(self.page_of_rows()[list(FAILURE_COLUMNS)]), max_rows=None,
                                           index=False))

    def _show_timeline(self) -> None:
        """Keep the timeline output in step with the child dropdown: the picked child's, or none."""
        if self.child == self._drawn:
            return
        out = self.outputs["timeline"]
        out.outputs = ()
        self._drawn = self.child
        if self.child is not None:
            out.append_display_data(show.figure_image(self.pick_child(self.child)))

    def _on_child(self, change: dict[str, Any]) -> None:
        if getattr(self, "_updating", False):
            return
        self.child = None if change["new"] in (None, NO_CHILD) else change["new"]
        self._show_timeline()

    def _show_child(self) -> None:
        """Set the child dropdown to the current child, or to its "(pick a child)" line."""
        listed = {value for _label, value in self.controls["child"].options}
        self.controls["child"].value = self.child if self.child in listed else NO_CHILD

    def _on_find(self, change: dict[str, Any]) -> None:
        text = str(change["new"]).strip()
        if not text:
            return
        if self.find_child(text) is None:
            self.controls["status"].value = f"No child with LAchildID {text!r} in this return."
        self._updating = True
        try:
            # A child outside the listed ones (or without a failure here) still gets its timeline.
            self._show_child()
        finally:
            self._updating = False
        self._show_timeline()

    def _on_export(self, _button: W.Button) -> None:
        try:
            path = self.export(self.controls["path"].value)
        except (OSError, ValueError) as exc:
            self.controls["status"].value = f"Export failed: {exc}"
            return
        self.controls["status"].value = f"Wrote {len(self.rows):,} rows to {path}"


class ExplanationEditor:
    """Type an explanation for one query of a validation and save it to the explanations file.

    ``ExplanationEditor(validation)`` reads the explanations file beside the return (``path``
    overrides; see :mod:`cinqa.explanations`), lists the queries with whether each is explained,
    and :meth:`save` merges one explanation into the file with ``who`` and today's date, as
    ``cinqa explain import`` does. The widget only calls :meth:`choices`, :meth:`text` and :meth:`save`.
    With ``pseudonymise=True`` the choices and texts shown have keyed tokens instead of identifiers
    (``key`` as for :class:`DrillDown`); what is saved is what was typed.
    """

    def __init__(self, validation: FailureSource, path: str | Path | None = None, *, who: str | None = None,
                 pseudonymise: bool = False, key: bytes | None = None) -> None:
        self.validation = validation
        if path is None and validation.ret.path is None:
            raise ValueError("the return has no file name to find its explanations file by; give path=")
        year = getattr(validation, "year", None) or validation.ret.year
        self.path = Path(path) if path is not None else default_path(validation.ret.path, year)
        self.year = year
        self.who = who or getpass.getuser()
        self.explained: Explained = self._explain(read_explanations(self.path))
        p = Pseudonymiser(key or os.urandom(32)) if pseudonymise else None
        self._scrub = return_scrubber(validation.ret, p) if p is not None else None
        self._widget: W.VBox | None = None
        self.controls: dict[str, W.Widget] = {}

    def choices(self) -> list[tuple[str, Any]]:
        """List the queries as (label, index in the failures table): rule, child, row and whether explained."""
        q = self.explained.queries
        return [(self._shown(f"{r.rule} · {r.LAchildID or 'the return'} · {r.row} · {r.status}")
                 + (" (stale)" if r.stale else ""), i) for i, r in zip(q.index, q.itertuples(index=False))]

    def _shown(self, text: str) -> str:
        return str(self._scrub.text(text)) if self._scrub is not None else text

    def text(self, index: Any) -> str:
        """Return the current explanation of the query at ``index``, or its stale one to start from, or ""."""
        q = self.explained.queries
        return self._shown(str(q.at[index, "explanation"] or q.at[index, "stale"]))

    def save(self, index: Any, text: str, who: str | None = None) -> Merged:
        """Save ``text`` as the explanation of the query at ``index`` (an index of :meth:`choices`); say what changed.

        A blank text deletes nothing (see :func:`cinqa.explanations.merge`).
        """
        from cinqa.files import outputs_claimed

        q = self.explained.queries.loc[[index]]
        typed = q.loc[:, ["rule", "LAchildID", "row", "values_hash"]].assign(severity=EXPLAINABLE, explanation=text)
        with outputs_claimed([self.path]):
            merged = merge(read_explanations(self.path), typed, year=self.year, la=self.validation.ret.header.la,
                           who=who or self.who)
            write_explanations(merged.explanations, self.path)
        self.explained = self._explain(merged.explanations)
        return merged

    def _explain(self, explanations: pd.DataFrame) -> Explained:
        return match(self.validation.failures, for_return(explanations, self.year, self.validation.ret.header.la))

    def widget(self) -> W.VBox:
        """Build (once) and return the editor: a query dropdown, a text box, who, a save button and a status line."""
        if self._widget is not None:
            return self._widget
        c = self.controls
        c["query"] = W.Dropdown(options=self.choices(), description="Query", layout=W.Layout(width="60em"))
        c["text"] = W.Textarea(description="Explanation", layout=W.Layout(width="60em", height="5em"))
        c["who"] = W.Text(value=self.who, description="Who")
        c["save"] = W.Button(description="Save explanation")
        c["status"] = W.Label(value=f"{self.explained.summary()} File: {self.path}")
        c["query"].observe(self._on_query, names="value")
        c["save"].on_click(self._on_save)
        self._on_query()
        self._widget = W.VBox([c["query"], c["text"], W.HBox([c["who"], c["save"]]), c["status"]])
        return self._widget

    def _ipython_display_(self) -> None:
        display(self.widget())

    def _on_query(self, _change: dict[str, Any] | None = None) -> None:
        c = self.controls
        c["text"].value = self.text(c["query"].value) if c["query"].value is not None else ""

    def _on_save(self, _button: W.Button) -> None:
        c = self.controls
        if c["query"].value is None:
            return
        chosen = c["query"].value
        try:
            merged = self.save(chosen, c["text"].value, c["who"].value)
        except (OSError, ValueError, CinqaError) as exc:
            c["status"].value = f"Not saved: {exc}"
            return
        c["query"].options = self.choices()
        c["query"].value = chosen
        c["status"].value = f"{self.path}: {merged}. {self.explained.summary()}"


class TableBrowser:
    """Page through one table of a return at a time, optionally for one LAchildID."""

    def __init__(self, ret: CensusReturn, *, page_rows: int = PAGE_ROWS) -> None:
        self.ret = ret
        self.page_rows = page_rows
        self._widget: W.VBox | None = None
        self.controls: dict[str, W.Widget] = {}
        self.output = W.Output()

    def page(self, table: str, number: int = 1, la_child_id: str = "") -> tuple[pd.DataFrame, int]:
        """Return page ``number`` (1-based) of ``table``, filtered to ``la_child_id`` if given, and the page count."""
        df = self.ret.tables[table]
        if la_child_id:
            df = df[df["LAchildID"].astype("object").eq(la_child_id.strip()).fillna(False).astype(bool)]
        pages = max(1, -(-len(df) // self.page_rows))
        number = min(max(1, number), pages)
        return df.iloc[(number - 1) * self.page_rows: number * self.page_rows], pages

    def widget(self) -> W.VBox:
        """Build (once) and return the table browser widget."""
        if self._widget is not None:
            return self._widget
        c = self.controls
        c["table"] = W.Dropdown(options=[(f"{n} ({len(df):,} rows)", n) for n, df in self.ret.tables.items()],
                                description="Table")
        c["child"] = W.Text(description="LAchildID", placeholder="all children")
        c["page"] = W.BoundedIntText(value=1, min=1, max=1, description="Page")
        c["pages"] = W.Label()
        for w in (c["table"], c["child"], c["page"]):
            w.observe(self._show, names="value")
        self._widget = W.VBox([W.HBox([c["table"], c["child"], c["page"], c["pages"]]), self.output])
        self._show()
        return self._widget

    def _ipython_display_(self) -> None:
        display(self.widget())

    def _show(self, _change: dict[str, Any] | None = None) -> None:
        c = self.controls
        df, pages = self.page(c["table"].value, c["page"].value, c["child"].value)
        c["page"].max = pages
        c["pages"].value = f"of {pages:,}"
        self.output.outputs = ()
        self.output.append_display_data(show.table(df, max_rows=None) if len(df) else HTML("<i>No rows.</i>"))


class YearOnYearExplorer:
    """Widgets over a :class:`Comparison`: choose returns, measures and a breakdown; drill into a flag.

    All state lives in the widgets, and :meth:`table` and :meth:`drill` compute what the outputs
    show, so the class is tested by setting widget values without a browser.
    """

    def __init__(self, comp: Comparison) -> None:
        self.comp = comp
        present = list(dict.fromkeys(comp.measures["measure"]))
        first = [m for m in HEADLINE if m in present][:3] or present[:1]
        self.year_picker = W.SelectMultiple(options=comp.years, value=tuple(comp.years), description="Returns",
                                            rows=min(6, max(2, len(comp.years))))
        self.measure_picker = W.SelectMultiple(options=[(f"{m} - {MEASURES[m].description}", m) for m in present],
                                               value=tuple(first), description="Measures", rows=8,
                                               layout=W.Layout(width="70%"))
        self.breakdown_picker = W.Dropdown(options=[NO_BREAKDOWN], value=NO_BREAKDOWN, description="Breakdown")
        self.flagged_only = W.Checkbox(value=False, description="Flagged only")
        self.flag_picker = W.Dropdown(options=[], description="Drill into", layout=W.Layout(width="70%"))
        self.table_out = W.Output()
        self.plot_image = W.Image(format="png")
        self.drill_out = W.Output()
        self.widget = W.VBox([
            W.HBox([self.year_picker, self.measure_picker]),
            W.HBox([self.breakdown_picker, self.flagged_only]),
            self.table_out, self.plot_image,
            W.HTML("<b>Children behind a flagged change</b>"), self.flag_picker, self.drill_out,
        ])
        for w in (self.year_picker, self.measure_picker, self.breakdown_picker, self.flagged_only):
            w.observe(self._refresh, names="value")
        self.flag_picker.observe(self._show_drill, names="value")
        self._refresh()

    @property
    def years(self) -> list[str]:
        return sorted(self.year_picker.value)

    def _tidy(self) -> pd.DataFrame:
        t = self.comp.measures
        return t[t["measure"].isin(self.measure_picker.value) & (t["breakdown"] == self.breakdown_picker.value)]

    def table(self) -> pd.DataFrame:
        """Return the comparison table for the chosen returns, measures and breakdown."""
        out = wide_table(self._tidy(), self.comp.threshold, self.years, self.comp.min_count, self.comp.rules)
        return out[out["flag"]].reset_index(drop=True) if self.flagged_only.value else out

    def flags(self) -> pd.DataFrame:
        """Return the flagged changes between the chosen returns, largest first."""
        ch = changes(self._tidy(), self.comp.threshold, self.years, self.comp.min_count, self.comp.rules)
        ch = ch[ch["flag"]]
        return ch.reindex(ch["pct_change"].abs().sort_values(ascending=False).index).reset_index(drop=True)

    def drill(self, key: tuple[str, str, str, str, str] | None = None) -> pd.DataFrame:
        """Return the children behind a flagged change ``(measure, breakdown, category, earlier, later)``."""
        key = key if key is not None else self.flag_picker.value
        if not key:
            return pd.DataFrame()
        measure, breakdown, category, earlier, later = key
        return self.comp.children_behind(measure, breakdown, category, [earlier, later])

    def _refresh(self, _change: object = None) -> None:
        offered = [NO_BREAKDOWN, *dict.fromkeys(b for m in self.measure_picker.value for b in MEASURES[m].breakdowns)]
        if list(self.breakdown_picker.options) != offered:
            keep = self.breakdown_picker.value if self.breakdown_picker.value in offered else NO_BREAKDOWN
            self.breakdown_picker.unobserve(self._refresh, names="value")
            self.breakdown_picker.options = offered
            self.breakdown_picker.value = keep
            self.breakdown_picker.observe(self._refresh, names="value")
        self.table_out.clear_output()
        with self.table_out:
            display(self.table())
        chosen = list(self.measure_picker.value)
        tidy = self._tidy()
        tidy = tidy[tidy["census_year"].isin(self.years)]
        if chosen and not tidy[tidy["measure"] == chosen[0]].empty:
            fig = show.plot_measure(tidy, chosen[0], self.breakdown_picker.value, threshold=self.comp.threshold,
                                    min_count=self.comp.min_count, rules=self.comp.rules)
            self.plot_image.value = show.png_bytes(fig)
        else:
            self.plot_image.value = b""
        options = [(f"{r.measure} / {r.breakdown} / {r.category}: {r.earlier_year} -> {r.later_year} "
                    f"({r.pct_change:+.0f}%)", (r.measure, r.breakdown, r.category, r.earlier_year, r.later_year))
                   for r in self.flags().itertuples()]
        self.flag_picker.options = options
        self.flag_picker.value = options[0][1] if options else None
        self._show_drill()

    def _show_drill(self, _change: object = None) -> None:
        self.drill_out.clear_output()
        with self.drill_out:
            display(self.drill())

    def _ipython_display_(self) -> None:
        display(self.widget)
