"""Write the Excel error report that caseworkers act on: one sheet per entity, offending cells highlighted.

Sheets, in order: "About" (file, LA, year, when, pseudonymised or not, the verdict on the return,
how to read the workbook),
"Summary" (rule, severity, message, the rule's status, note and how to fix it in the year, children,
rows), "By child" (one row per child with a failure, with how to fix each of its rules), given a
lookup of children to teams one sheet per team (that team's rows of "By child", with the child's
worker; see :mod:`cinqa.teams`), one sheet per entity holding each failing row with a plain-words
"why", how to fix it, the entity's values and the fields the rule reads highlighted, and
"Structural issues" (what the reader found wrong with the file's structure). Every table sheet
has a frozen, filterable header row, dates as date cells (a missing date is an empty cell), and
prints landscape, one page wide, with the header row on every page.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import zipfile
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from cinqa import spec
from cinqa.explanations import WORKBOOK_COLUMNS, WORKBOOK_KEYS, Explained, workbook_columns
from cinqa.errors import ReadError
from cinqa.export import formula_like, write_frame
from cinqa.failures import (FAILURE_COLUMNS, SUMMARY_COLUMNS, Verdict, counted, field_names, rule_order, summarise,
                            verdict, why)
from cinqa.files import atomic_path
from cinqa.returns import SHOWN_ISSUE_COLUMNS, CensusReturn
from cinqa.rules import GUIDANCE_LABEL, RULE_FACTS, STATUS_LEGEND, with_rule_facts
from cinqa.teams import NO_TEAM, TeamLookup, join_teams, lookup, team_counts, without_workers

ERROR_FILL = PatternFill("solid", fgColor="FFC7CE")
QUERY_FILL = PatternFill("solid", fgColor="FFEB9C")
HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
_ERROR_FONT = Font(color="9C0006")
_QUERY_FONT = Font(color="9C5700")
_HEADER_FONT = Font(bold=True)
_MAX_ROWS = 1_048_575  # Excel's sheet limit less the header row
_MAX_CHARS = 32_767  # Excel's limit on the text in one cell
_WIDTH_SAMPLE = 500
_DATE_FORMAT = "yyyy-mm-dd"
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
_RESERVED_SHEETS = ("history",)  # Excel keeps this name, in any case, for its own use
_ENTITY_ORDER = ("return", *spec.TABLE_KEYS)
_NODE_ORDER = {n.name: i for i, n in enumerate(spec.nodes())}


def write_error_report(path: str | Path, failures: pd.DataFrame, ret: CensusReturn | None = None, *,
                       summary: pd.DataFrame | None = None, issues: pd.DataFrame | None = None,
                       errored: Sized = (), judged: Verdict | None = None, pseudonymised: bool = False,
                       source: str | None = None, generated_at: dt.datetime | None = None,
                       teams: TeamLookup | str | Path | None = None,
                       explained: Explained | None = None, explanations_file: str | Path | None = None) -> Path:
    """Write the Excel error report for ``failures`` (a :mod:`cinqa.failures` table) to ``path``.

    ``ret`` supplies each failing row's other values, the file's facts and its structural issues
    (``issues`` overrides them); pass the pseudonymised return together with pseudonymised
    failures, and ``pseudonymised=True`` so the cover says so. The cover's verdict is ``judged``
    (a validation's ``verdict``, when ``failures`` is a selection of it), else the verdict on
    ``failures``, the rules that could not be evaluated (``errored``) and the structural issues.
    A sheet too big for Excel is cut with a note on the cover, and written whole as CSV beside
    the workbook (see :func:`companion_csv`). The file is written atomically.

    ``teams`` (a :class:`cinqa.teams.TeamLookup` or its CSV file) adds one sheet per team with a
    failing child, and the teams with their counts on the cover; pass it pseudonymised together
    with pseudonymised failures (:func:`cinqa.teams.pseudonymise_teams`). With ``pseudonymised``
    no worker is named.

    With ``explained`` (:func:`cinqa.explanations.match` of these failures, pseudonymised with
    them when they are) each failure row gets an "explanation" column for the analyst to fill and
    the cover counts explained and unexplained queries; ``explanations_file`` is named on the cover
    as where ``cinqa explain import`` puts what is typed.
    """
    path = Path(path)
    missing = [c for c in FAILURE_COLUMNS if c not in failures]
    if missing:
        raise ValueError(f"the failures table lacks the columns {', '.join(missing)}")
    summary = summarise(failures) if summary is None else summary
    if issues is None:
        issues = ret.issues if ret is not None else pd.DataFrame()
    judged = verdict(failures, errored, issues) if judged is None else judged
    shown = [c for c in SUMMARY_COLUMNS if c in summary]
    if ret is not None:
        summary = with_rule_facts(summary[shown], ret.year)
        shown = [c for c in summary.columns if c in SUMMARY_COLUMNS or c in RULE_FACTS]
    # The temporary file is made before any sheet: an unwritable folder fails before openpyxl starts writing.
    with atomic_path(path) as tmp:
        wb = Workbook(write_only=True)
        used = {"About", "Summary", CHILD_SHEET, "Structural issues"}
        by_child = children_frame(failures, ret.year if ret is not None else None)
        sheets: list[tuple[str, pd.DataFrame, list[set[str]] | None]] = [
            ("Summary", summary[shown].rename(columns={"guidance": GUIDANCE_LABEL}), None), (CHILD_SHEET, by_child, None)]
        shown_explained = workbook_columns(explained, failures) if explained is not None else None
        for entity, rows in _by_entity(failures):
            frame, fields = _entity_frame(entity, rows, ret, shown_explained)
            name = _sheet_name(entity, used)
            used.add(name)
            sheets.append((name, frame, fields))
        listed, told = None, ()
        if teams is not None:
            team_lookup = lookup(teams)
            team_lookup = without_workers(team_lookup) if pseudonymised else team_lookup
            named = {}
            # Named after the entity sheets, so a team called "episodes" never renames theirs.
            for team, frame in team_frames(by_child, team_lookup):
                named[team] = _sheet_name(team, used)
                used.add(named[team])
                sheets.insert(2 + len(named) - 1, (named[team], frame, None))
            listed = team_counts(failures, team_lookup).assign(sheet=lambda c: c["team"].map(named))
            told = team_lookup.changes
        issue_cols = [c for c in SHOWN_ISSUE_COLUMNS if c in issues]
        sheets.append(("Structural issues", issues[issue_cols] if issue_cols else
                       pd.DataFrame(columns=list(SHOWN_ISSUE_COLUMNS)), None))
        fitted, notes = _fit_to_excel(path, [(name, frame) for name, frame, _ in sheets])
        _cover(wb, judged, ret, pseudonymised, source, generated_at or dt.datetime.now(), [*notes, *told],
               listed, explained, explanations_file)
        for (name, frame, fields), (_, (shown, full_in)) in zip(sheets, fitted.items()):
            if fields is None:
                _table_sheet(wb, name, shown, full_in=full_in)
            else:
                _table_sheet(wb, name, shown, highlight=fields[:len(shown)], severity=shown["severity"],
                             full_in=full_in)
        wb.save(tmp)
    return path


def write_table_workbook(path: str | Path, sheets: dict[str, pd.DataFrame]) -> Path:
    """Write plain tables to a workbook, one sheet each with a frozen, filterable header; atomically.

    A sheet too big for Excel is cut, a first sheet "Notes" says so, and the sheet is written whole
    as CSV beside the workbook (see :func:`companion_csv`).
    """
    path = Path(path)
    # The temporary file is made before any sheet: an unwritable folder fails before openpyxl starts writing.
    with atomic_path(path) as tmp:
        wb = Workbook(write_only=True)
        used: set[str] = set()
        named = []
        for name, frame in sheets.items():
            sheet = _sheet_name(name, used)
            used.add(sheet)
            named.append((sheet, frame))
        fitted, notes = _fit_to_excel(path, named)
        if notes:
            _notes_sheet(wb, notes, used)
        for sheet, (shown, full_in) in fitted.items():
            _table_sheet(wb, sheet, shown, full_in=full_in)
        wb.save(tmp)
    return path


def companion_csv(path: str | Path, sheet: str) -> Path:
    """Name the CSV file beside the workbook ``path`` that holds sheet ``sheet`` whole."""
    path = Path(path)
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", sheet).strip("-").lower() or "sheet"
    return path.with_name(f"{path.stem}-{slug}.csv")


def _fit_to_excel(path: Path, sheets: Sequence[tuple[str, pd.DataFrame]]
                  ) -> tuple[dict[str, tuple[pd.DataFrame, str | None]], list[str]]:
    """Cut each sheet to Excel's limits, writing any sheet that had to be cut whole as CSV beside ``path``.

    Return each sheet's rows to show with the name of the CSV that holds it whole (or None), and
    the notes that say what was cut.
    """
    fitted: dict[str, tuple[pd.DataFrame, str | None]] = {}
    notes: list[str] = []
    for name, frame in sheets:
        longest = _longest_text(frame)
        if len(frame) <= _MAX_ROWS and longest <= _MAX_CHARS:
            fitted[name] = (frame, None)
            continue
        full = companion_csv(path, name)
        write_frame(frame, full, "csv")
        if len(frame) > _MAX_ROWS:
            notes.append(f"Sheet {name!r} shows the first {_MAX_ROWS:,} of {len(frame):,} rows (Excel's limit); "
                         f"{full.name}, beside this workbook, has them all.")
            frame = frame.iloc[:_MAX_ROWS]
        if longest > _MAX_CHARS:
            notes.append(f"Sheet {name!r} has values longer than Excel's cell limit of {_MAX_CHARS:,} characters; "
                         f"they are cut and marked, and {full.name}, beside this workbook, has them whole.")
        fitted[name] = (frame, full.name)
    return fitted, notes


def _longest_text(frame: pd.DataFrame) -> int:
    longest = 0
    for col in frame.columns:
        s = frame[col]
        if s.dtype.kind not in "biufcmM" and len(s):
            lengths = s.astype("object").map(lambda v: len(v) if isinstance(v, str) else len(str(v))
                                             if v is not None and not _missing(v) else 0)
            longest = max(longest, int(lengths.max()))
    return longest


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _notes_sheet(wb: Workbook, notes: Sequence[str], used: set[str]) -> None:
    ws = wb.create_sheet(_sheet_name("Notes", used))
    ws.column_dimensions["A"].width = 120
    for line in notes:
        ws.append([line])


COVER_SHEET = "About"
LA_LABEL = "LA"
YEAR_LABEL = "Census year"
PSEUDONYMISED_LABEL = "Pseudonymised"
EXPLAINED_LABEL = "Queries explained"
UNEXPLAINED_LABEL = "Queries unexplained"
STALE_LABEL = "Explanations stale"
FILE_LABEL = "Explanations file"
EXPLAIN_GUIDE = ("Type an explanation for each query left into its 'explanation' cell, then run `cinqa explain "
                 "import` on this workbook to keep them in the explanations file; a blank cell deletes nothing. "
                 "'explanation status' says whether a query is explained, and shows a stale explanation (the "
                 "query's values changed since it was given) for you to check and type again.")
CHILD_SHEET = "By child"  # not "Children": Excel sheet names ignore case, and "children" is an entity sheet
CHILD_COLUMNS = ("LAchildID", "errors", "queries", "rules", "sheets", "first line", GUIDANCE_LABEL)


def children_frame(failures: pd.DataFrame, year: str | None = None) -> pd.DataFrame:
    """Return one row per child with a failure: its rows by severity, its rules and sheets, most errors first.

    The last column says how to fix each of the child's rules, one line per rule with guidance in
    census ``year`` (empty when the year is not given).
    """
    rows = failures[failures["child"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=list(CHILD_COLUMNS))
    severity = rows["severity"].astype("str")
    g = rows.assign(_error=severity.eq("error"), _query=severity.eq("query")).groupby("child", sort=False)
    codes = g["rule"].agg(lambda r: sorted(set(map(str, r)), key=rule_order))
    fixes = _rule_guidance(rows["rule"].astype("str").unique(), year)
    out = pd.DataFrame({
        "LAchildID": g["LAchildID"].first().astype("object"),
        "errors": g["_error"].sum().astype("int64"),
        "queries": g["_query"].sum().astype("int64"),
        "rules": codes.map(", ".join),
        "sheets": g["entity"].agg(lambda e: ", ".join(dict.fromkeys(map(str, e)))),
        "first line": g["line"].min().astype("Int64"),
        GUIDANCE_LABEL: codes.map(lambda rs: "\n".join(f"{r}: {fixes[r]}" for r in rs if fixes.get(r))),
    })
    return out.sort_values(["errors", "queries", "first line"], ascending=[False, False, True],
                           kind="stable").reset_index(drop=True)


def team_frames(by_child: pd.DataFrame, teams: TeamLookup) -> list[tuple[str, pd.DataFrame]]:
    """Return each team's sheet: its rows of the "By child" sheet (:func:`children_frame`), with team and worker.

    Teams come in name order, and the children the lookup does not list last, as :data:`NO_TEAM`;
    a team with no child to fix has no sheet. The worker column is left out when no child has one.
    """
    joined = join_teams(by_child, teams)
    front = ["team", "LAchildID", *(["worker"] if teams.has_workers else [])]
    joined = joined[front + [c for c in by_child.columns if c not in front]]
    present = set(joined["team"])
    order = [t for t in teams.teams() if t in present] + ([NO_TEAM] if NO_TEAM in present else [])
    return [(team, joined[joined["team"] == team].reset_index(drop=True)) for team in order]


def _rule_guidance(rules: Iterable[str], year: str | None) -> dict[str, str]:
    """Map each rule code of ``rules`` to its guidance in census ``year`` (nothing when the year is not known)."""
    if year is None:
        return {}
    facts = with_rule_facts(pd.DataFrame({"rule": list(rules)}, dtype="str"), year)
    return {r: g for r, g in zip(facts["rule"], facts["guidance"]) if g}


def _by_entity(failures: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame]]:
    entities = [str(e) for e in failures["entity"].dropna().unique()]
    known = [e for e in _ENTITY_ORDER if e in entities]
    for entity in known + sorted(set(entities) - set(known)):
        yield entity, failures[failures["entity"].astype("str") == entity].copy()


def _entity_frame(entity: str, rows: pd.DataFrame, ret: CensusReturn | None,
                  explained: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[set[str]]]:
    """Return the sheet's rows for one entity, and for each row the set of fields to highlight.

    A failure is matched to its row of the entity's table by XML line, which is unique per row;
    where there is no such row (a view, an LA-level rule), the values the rule read are shown.
    ``explained`` (:func:`cinqa.explanations.workbook_columns`, indexed as the failures) adds the
    explanation columns after "why" and the columns naming each failure at the end.
    """
    mine = explained.loc[rows.index].reset_index(drop=True) if explained is not None else None
    rows = rows.reset_index(drop=True)
    keys = spec.TABLE_KEYS.get(entity, ("child", "episode", "item"))
    out = pd.DataFrame({
        "LAchildID": rows["LAchildID"].astype("object"),
        "rule": rows["rule"].astype("object"),
        "severity": rows["severity"].astype("object"),
        "message": rows["message"].astype("object"),
        "why": pd.Series([why(r, m, v) for r, m, v in zip(rows["rule"], rows["message"], rows["values"])],
                         index=rows.index, dtype="object"),
    })
    fixes = _rule_guidance(rows["rule"].astype("str").unique(), ret.year if ret is not None else None)
    out[GUIDANCE_LABEL] = pd.Series([fixes.get(r, "") for r in rows["rule"].astype("str")], index=rows.index,
                                    dtype="object")
    table = ret.tables.get(entity) if ret is not None else None
    joined = pd.DataFrame(index=rows.index)
    if table is not None and "line" in table:
        lookup = table.dropna(subset=["line"]).drop_duplicates("line").set_index("line")
        joined = lookup.reindex(pd.array(rows["line"].to_numpy(), dtype="Int64")).reset_index(drop=True)
    own = {"episode": rows["episode"], keys[-1]: rows["item"]}
    for k in keys[1:]:
        col = joined[k] if k in joined else pd.Series(pd.NA, index=rows.index, dtype="Int64")
        if k in own:
            col = col.astype("Int64").fillna(own[k].astype("Int64"))
        if table is not None or col.notna().any():
            out[k] = col.astype("Int64")
    out["line"] = rows["line"].astype("Int64")
    skip = set(keys) | {"LAchildID", "line", "kind", "child"}
    data = joined[[c for c in joined.columns if c not in skip]].copy()
    fields = [set(field_names(v)) for v in rows["fields"]]
    given = [v if isinstance(v, dict) else {} for v in rows["values"]]
    wanted = {f for fs in fields for f in fs}
    if table is None:
        # No row to show: every value the rule reported is the evidence (an LA-level count, say).
        wanted = list(dict.fromkeys(k for p in given for k in p))
    for col in sorted(set(wanted) - set(data.columns) - set(out.columns), key=list(wanted).index
                      if table is None else _field_order):
        data[col] = _dates_typed(pd.Series([p.get(col) for p in given], index=rows.index, dtype="object"))
    for col in data.columns:
        # Where the table has no row for a failure, what the rule read still shows.
        if data[col].isna().any():
            fill = pd.Series([p.get(col) for p in given], index=rows.index, dtype="object")
            if fill.notna().any():
                data[col] = data[col].astype("object").where(data[col].notna(), fill)
    if entity == "return":
        out = out.drop(columns=[c for c in ("LAchildID", "line") if out[c].isna().all()])
    # Filling from the failing values leaves dates as objects: typed again, they are written as date cells.
    data = data.apply(lambda c: _dates_typed(c) if c.dtype == object else c)
    if mine is None:
        return pd.concat([out, data], axis=1), fields
    at = list(out.columns).index("why") + 1
    typed = mine[[c for c in WORKBOOK_COLUMNS if c in mine]]
    keys = mine[[c for c in WORKBOOK_KEYS if c in mine]]
    return pd.concat([out.iloc[:, :at], typed, out.iloc[:, at:], data, keys], axis=1), fields


def _dates_typed(s: pd.Series) -> pd.Series:
    """Return a column of failing values as dates when all of them are, so it sorts and shows as dates."""
    present = s.dropna()
    if len(present) and all(isinstance(v, dt.date) for v in present):
        return pd.to_datetime(s).astype("datetime64[s]")
    return s


def _field_order(name: str) -> tuple[int, str]:
    return _NODE_ORDER.get(name, len(_NODE_ORDER)), name


def _cover(wb: Workbook, judged: Verdict, ret: CensusReturn | None, pseudonymised: bool, source: str | None,
           generated_at: dt.datetime, notes: Sequence[str], teams: pd.DataFrame | None = None,
           explained: Explained | None = None, explanations_file: str | Path | None = None) -> None:
    ws = wb.create_sheet(COVER_SHEET)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 90
    file = source or (ret.path.name if ret is not None and ret.path is not None else "")
    facts: list[tuple[str, Any]] = [
        ("File", file),
        (LA_LABEL, ret.header.la if ret is not None else None),
        (YEAR_LABEL, ret.year if ret is not None else None),
        ("Children in the return", len(ret.children) if ret is not None else None),
        ("Generated at", generated_at.replace(microsecond=0).isoformat(sep=" ")),
        (PSEUDONYMISED_LABEL, "yes: LAchildID, UPN and former UPN are keyed tokens; birth dates are the first "
                              "of their month" if pseudonymised else
                              "no: this workbook identifies children; share it only as your data policy allows"),
        ("Verdict", str(judged)),
        *(("", line) for line in judged.details),
        ("Errors", judged.error_rows),
        ("Queries", judged.query_rows),
        ("Structural issues", judged.structural_issues),
        ("Rules not evaluated", judged.not_evaluated),
    ]
    if explained is not None:
        facts += [(EXPLAINED_LABEL, explained.explained), (UNEXPLAINED_LABEL, explained.unexplained),
                  (STALE_LABEL, explained.stale)]
        if explanations_file is not None:
            facts.append((FILE_LABEL, str(explanations_file)))
    title = WriteOnlyCell(ws, value="CIN census error report")
    title.font = Font(bold=True, size=14)
    ws.append([title])
    ws.append([])
    for label, value in facts:
        cell = WriteOnlyCell(ws, value=label)
        cell.font = _HEADER_FONT
        ws.append([cell, _text_cell(ws, _cap(_safe(value), None))])
    ws.append([])
    if teams is not None:
        _cover_teams(ws, teams)
    guide = [
        "Summary lists each rule that failed, with the number of children and rows affected, and the rule's "
        f"status, note and '{GUIDANCE_LABEL}'. {STATUS_LEGEND}",
        f"{CHILD_SHEET} has one row per child with a failure: its errors and queries, its rules and the sheets "
        f"they are on, most errors first, and '{GUIDANCE_LABEL}' for each of its rules.",
        "Each entity sheet (children, episodes, ...) holds one row per failure with that row's values; "
        "the cells the rule reads are highlighted (red for errors, amber for queries), 'why' says in "
        f"plain words what the rule read and what it flags, and '{GUIDANCE_LABEL}' what usually causes it "
        "and where it is usually fixed.",
        "Use the filter arrows in the header row to pick a rule, a child or a severity; 'line' is the line "
        "of the XML file where the row starts.",
        "Structural issues are problems with the file itself (unknown, misplaced or unreadable elements).",
        *([f"Each team's sheet holds its rows of {CHILD_SHEET}, with the child's worker where the lookup names one; "
           f"children the lookup does not list are on {NO_TEAM!r}."] if teams is not None else []),
        *([EXPLAIN_GUIDE] if explained is not None else []),
        *notes,
    ]
    head = WriteOnlyCell(ws, value="How to read this workbook")
    head.font = _HEADER_FONT
    ws.append([head])
    wrap = Alignment(wrap_text=True, vertical="top")
    for line in guide:
        cell = WriteOnlyCell(ws, value=line)
        cell.alignment = wrap
        ws.append([None, cell])


def _cover_teams(ws: WriteOnlyWorksheet, teams: pd.DataFrame) -> None:
    """List each team on the cover with its counts and the sheet that holds its children."""
    head = WriteOnlyCell(ws, value="Teams")
    head.font = _HEADER_FONT
    ws.append([head])
    for row in teams.itertuples(index=False):
        if row.children or row.errors or row.queries:
            said = (f"{counted(row.children, 'child', 'children')} to fix: {counted(row.errors, 'error')}, "
                    f"{counted(row.queries, 'query', 'queries')}")
            said += f"; sheet {row.sheet!r}" if isinstance(row.sheet, str) else ""
        else:
            said = "nothing to fix"
        ws.append([_text_cell(ws, _safe(row.team)), _text_cell(ws, _safe(said))])
    ws.append([])


def _table_sheet(wb: Workbook, name: str, frame: pd.DataFrame, *, highlight: Sequence[set[str]] | None = None,
                 severity: pd.Series | None = None, full_in: str | None = None) -> WriteOnlyWorksheet:
    ws = wb.create_sheet(name)
    _print_setup(ws)
    columns = [str(c) for c in frame.columns]
    n = len(frame)
    last = get_column_letter(max(len(columns), 1))
    ws.freeze_panes = "B2"
    ws.auto_filter.ref = f"A1:{last}{n + 1}"
    dates = {c for c in columns if frame[c].dtype.kind == "M"}
    for i, col in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = _width(col, frame[col], col in dates)
    header = []
    for col in columns:
        cell = WriteOnlyCell(ws, value=col)
        cell.font = _HEADER_FONT
        cell.fill = HEADER_FILL
        header.append(cell)
    ws.append(header)
    values = [_column_values(frame[c], full_in) for c in columns]
    sev = severity.astype("str").tolist() if severity is not None else None
    styles = _highlight_styles(ws)
    date_style = _date_style(ws)
    for r in range(n):
        marked = highlight[r] if highlight is not None else ()
        out: list[Any] = []
        for c, col in enumerate(columns):
            v = values[c][r]
            if col in marked:
                cell = WriteOnlyCell(ws)
                # Copying a prepared style is much faster than assigning fill and font per cell.
                cell._style = copy.copy(styles[(sev is not None and sev[r] == "query", col in dates)])
                cell.value = v
                if isinstance(v, str):
                    cell.data_type = "s"  # a value is never a formula, whatever it starts with
                out.append(cell)
            elif v is not None and col in dates:
                cell = WriteOnlyCell(ws, value=v)
                cell._style = copy.copy(date_style)
                out.append(cell)
            else:
                out.append(_text_cell(ws, v))
        ws.append(out)
    return ws


def _text_cell(ws: WriteOnlyWorksheet, v: Any) -> Any:
    """Return ``v`` as written to a cell: text a spreadsheet would run as a formula becomes a text cell."""
    if not formula_like(v):
        return v
    cell = WriteOnlyCell(ws, value=v)
    cell.data_type = "s"
    return cell


def _print_setup(ws: WriteOnlyWorksheet) -> None:
    """Print the sheet landscape, one page wide and as many long as it needs, the header row on every page."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = "1:1"


def _date_style(ws: WriteOnlyWorksheet) -> Any:
    """Return the style of a date cell that is not highlighted: a date, with no time of day."""
    cell = WriteOnlyCell(ws)
    cell.number_format = _DATE_FORMAT
    return cell._style


def _highlight_styles(ws: WriteOnlyWorksheet) -> dict[tuple[bool, bool], Any]:
    """Return the styles of highlighted cells by (is a query, is a date)."""
    styles = {}
    for query in (False, True):
        for date in (False, True):
            cell = WriteOnlyCell(ws)
            cell.fill = QUERY_FILL if query else ERROR_FILL
            cell.font = _QUERY_FONT if query else _ERROR_FONT
            if date:
                cell.number_format = _DATE_FORMAT
            styles[(query, date)] = cell._style
    return styles


def _column_values(s: pd.Series, full_in: str | None = None) -> list[Any]:
    """Return a column's values as plain Python values openpyxl can write; missing becomes None.

    Text past Excel's cell limit is cut, and says so and where (``full_in``) it is whole.
    """
    if s.dtype.kind == "M":
        # Census dates have no time: as dates, Excel shows them as yyyy-mm-dd without a cell style.
        return [None if pd.isna(v) else pd.Timestamp(v).date() for v in s.tolist()]
    out = []
    for v in s.astype("object").tolist():
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            out.append(None)
        else:
            out.append(_cap(_safe(v), full_in))
    return out


def _cap(v: Any, full_in: str | None) -> Any:
    if not isinstance(v, str) or len(v) <= _MAX_CHARS:
        return v
    mark = f" [cut at Excel's limit of {_MAX_CHARS:,} characters; {len(v):,} in all" + (
        f", whole in {full_in}]" if full_in else "]")
    return v[:_MAX_CHARS - len(mark)] + mark


def _safe(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, bool | int | float | dt.datetime | dt.date) or v is None:
        return v
    return ILLEGAL_CHARACTERS_RE.sub("", str(v))


def _width(name: str, s: pd.Series, is_date: bool) -> float:
    if is_date:
        return max(12, len(name) + 3)
    sample = s.iloc[:_WIDTH_SAMPLE].astype("object").dropna().astype("str")
    longest = int(sample.str.len().max()) if len(sample) else 0
    return float(min(60, max(8, len(name) + 3, longest + 2)))


def _sheet_name(entity: str, used: set[str]) -> str:
    """Name a sheet as Excel allows: 31 characters at most, none it forbids, no apostrophe at either end,
    no formula's first character, and unique among ``used`` ignoring case, as Excel compares them."""
    base = _BAD_SHEET_CHARS.sub("_", entity)[:31].strip("'") or "entity"
    if formula_like(base):
        base = "_" + base[1:]
    taken = {u.casefold() for u in used} | set(_RESERVED_SHEETS)
    name, i = base, 2
    while name.casefold() in taken:
        suffix = f" ({i})"
        name, i = base[: 31 - len(suffix)] + suffix, i + 1
    return name


@dataclass(frozen=True)
class TypedExplanations:
    """What an analyst typed into an error report's explanation cells, with the facts of its return."""

    path: Path
    year: str
    la: str
    explanations_file: str | None
    rows: pd.DataFrame
    """One row per failure row of the workbook: rule, severity, LAchildID, row, values_hash, explanation."""


def read_typed_explanations(path: str | Path) -> TypedExplanations:
    """Read back the explanations typed into an error report written with explanations (:func:`write_error_report`).

    A :class:`~cinqa.errors.ReadError` names the workbook and the problem: not an error report, a
    pseudonymised one (its LAchildIDs are tokens that match no failure), no explanation column,
    or a failure row that lacks what names it (its sheet and row).
    """
    path = Path(path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise ReadError(path, "no such workbook") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ReadError(path, f"not an Excel workbook that can be read ({type(exc).__name__}: {exc})") from None
    try:
        if COVER_SHEET not in wb.sheetnames:
            raise ReadError(path, f"not a cinqa error report (it has no {COVER_SHEET!r} sheet)")
        facts = {str(r[0]): r[1] for r in wb[COVER_SHEET].iter_rows(min_col=1, max_col=2, values_only=True)
                 if r and r[0]}
        if str(facts.get(PSEUDONYMISED_LABEL) or "").startswith("yes"):
            raise ReadError(path, "this workbook is pseudonymised: its LAchildIDs are tokens that name no child of "
                                  "the return; type explanations into a workbook written without --pseudonymise")
        year = str(facts.get(YEAR_LABEL) or "")
        if not year:
            raise ReadError(path, f"the {COVER_SHEET!r} sheet names no census year")
        needed = ("rule", "severity", "LAchildID", *WORKBOOK_KEYS, "explanation")
        frames = []
        for ws in wb.worksheets:
            cells = ws.iter_rows(values_only=True)
            header = [str(h) if h is not None else "" for h in next(cells, ())]
            if "explanation" not in header:
                continue
            # A sheet of return-level rules has no LAchildID column: none of its failures is a child's.
            absent = [c for c in needed if c not in header and c != "LAchildID"]
            if absent:
                raise ReadError(path, f"sheet {ws.title!r} has an explanation column but not {', '.join(absent)}, "
                                      "which name each failure; write the workbook again with cinqa validate --xlsx")
            at = [header.index(c) if c in header else None for c in needed]
            rows = [[r[i] if i is not None and i < len(r) else None for i in at] for r in cells
                    if any(v is not None for v in r)]
            for n, r in enumerate(rows, start=2):
                if not r[0] or not r[3] or not r[4]:
                    raise ReadError(path, f"sheet {ws.title!r}, row {n}: the rule, row or values_hash cell is "
                                          "empty, so the failure it explains cannot be named")
            frames.append(pd.DataFrame(rows, columns=list(needed), dtype="object"))
    finally:
        wb.close()
    if not frames:
        raise ReadError(path, "no sheet has an explanation column; write the workbook with cinqa validate --xlsx")
    file = facts.get(FILE_LABEL)
    return TypedExplanations(path=path, year=year, la=str(facts.get(LA_LABEL) or ""),
                             explanations_file=str(file) if file else None, rows=pd.concat(frames, ignore_index=True))
