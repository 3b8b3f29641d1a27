"""Interactive drill-down for notebooks: from the failures table to a rule, a child, a timeline;
from a year-on-year change to the children behind it.

The widgets are a thin skin over plain methods (:meth:`DrillDown.select`,
:meth:`DrillDown.pick_child`, :meth:`DrillDown.export`, :meth:`TableBrowser.page`), so the logic is
tested without a browser, and the widget callbacks only call those methods and put their results
into ``Output`` widgets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import ipywidgets as W
import pandas as pd
from IPython.display import HTML, display
from matplotlib.figure import Figure

from cinqa import display as show
from cinqa.compare import HEADLINE, Comparison, changes, wide_table
from cinqa.excel import write_error_report
from cinqa.export import write_failures_csv
from cinqa.failures import FAILURE_COLUMNS, for_display, summarise, verdict
from cinqa.measures import ALL as NO_BREAKDOWN, MEASURES
from cinqa.pseudonymise import Pseudonymiser, pseudonymise_failures, pseudonymise_return, return_scrubber
from cinqa.returns import CensusReturn

ALL = "(all)"
MAX_CHILD_OPTIONS = 500
PAGE_ROWS = 25


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
    gives the verdict on the whole return, whatever is selected.
    """

    def __init__(self, validation: FailureSource, *, pseudonymise: bool = False, key: bytes | None = None,
                 max_rows: int = 200) -> None:
        self.ret = validation.ret
        missing = [c for c in FAILURE_COLUMNS if c not in validation.failures.columns]
        if missing:
            raise ValueError(f"failures table lacks columns {missing}")
        self.failures = validation.failures.reset_index(drop=True)
        self.verdict = verdict(self.failures, validation.errored, self.ret.issues)
        self.shown = self.failures
        self._label = {int(c): str(i) for c, i in zip(self.ret.children["child"], self.ret.children["LAchildID"])}
        self._pseudonymiser = Pseudonymiser(key or os.urandom(32)) if pseudonymise else None
        if self._pseudonymiser is not None:
            p = self._pseudonymiser
            self.shown = pseudonymise_failures(self.failures, p, return_scrubber(self.ret, p))
            self._label = {c: p.token("LAchildID", v) for c, v in self._label.items()}
        self.max_rows = max_rows
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
        """List the choices open at each level given the choices above it (each list starts with ALL)."""
        f = self.failures
        def values(mask: pd.Series, column: str) -> list[str]:
            return [ALL] + sorted(str(v) for v in f.loc[mask, column].dropna().unique())
        return {
            "severity": values(self._mask(ALL, ALL, ALL), "severity"),
            "entity": values(self._mask(self.severity, ALL, ALL), "entity"),
            "rule": values(self._mask(self.severity, self.entity, ALL), "rule"),
        }

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
        return self.rows

    @property
    def rows(self) -> pd.DataFrame:
        """The failing rows of the current selection (pseudonymised when asked)."""
        return self.shown[self._mask(self.severity, self.entity, self.rule)]

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
        c["rule"] = W.Dropdown(options=opts["rule"], value=self.rule, description="Rule")
        c["child"] = W.Dropdown(options=[], description="Child")
        c["path"] = W.Text(value="failures-selection.xlsx", description="Export to")
        c["export"] = W.Button(description="Export selection", icon="download")
        c["status"] = W.Label()
        self.outputs = {"rows": W.Output(), "timeline": W.Output()}
        for name in ("severity", "entity", "rule"):
            c[name].observe(self._on_filter, names="value")
        c["child"].observe(self._on_child, names="value")
        c["export"].on_click(self._on_export)
        self._widget = W.VBox([
            W.HBox([c["severity"], c["entity"], c["rule"]]),
            c["status"],
            self.outputs["rows"],
            c["child"],
            self.outputs["timeline"],
            W.HBox([c["path"], c["export"]]),
        ])
        self._refresh()
        return self._widget

    def _ipython_display_(self) -> None:
        display(self.widget())

    def _on_filter(self, change: dict[str, Any]) -> None:
        if getattr(self, "_updating", False):
            return
        self.select(**{change["owner"].description.lower(): change["new"]})
        self._refresh()

    def _refresh(self) -> None:
        c = self.controls
        self._updating = True
        try:
            opts = self.options()
            for name in ("severity", "entity", "rule"):
                c[name].options = opts[name]
                c[name].value = getattr(self, name)
            kids = self.children().head(MAX_CHILD_OPTIONS)
            c["child"].options = [("(pick a child)", None)] + [
                (f"{r.LAchildID} ({r.failures} failing rows: {r.rules})", int(r.child)) for r in kids.itertuples()]
            if self.child not in set(kids["child"]):
                self.child = None
            c["child"].value = self.child
        finally:
            self._updating = False
        rows = self.rows
        c["status"].value = (f"{len(rows):,} failing rows, {rows['child'].nunique():,} children"
                             + (f" (first {MAX_CHILD_OPTIONS} children listed)" if len(kids) == MAX_CHILD_OPTIONS else ""))
        out = self.outputs["rows"]
        out.outputs = ()
        out.append_display_data(show.table(for_display(rows[list(FAILURE_COLUMNS)]), max_rows=self.max_rows))
        self._show_timeline()

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
        self.child = change["new"]
        self._show_timeline()

    def _on_export(self, _button: W.Button) -> None:
        try:
            path = self.export(self.controls["path"].value)
        except (OSError, ValueError) as exc:
            self.controls["status"].value = f"Export failed: {exc}"
            return
        self.controls["status"].value = f"Wrote {len(self.rows):,} rows to {path}"


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
