"""Query explanations: the human-editable CSV that holds them, and which queries of a run they explain.

COLLECT accepts a return with queries only when each one left is explained in a return-level note.
The explanations file keeps one row per explained query (:data:`COLUMNS`): the census year and LA of
the return, the failure's identity (rule, LAchildID, row key and ``values_hash``, all taken from
:func:`cinqa.failures.identity`), the explanation, who gave it and the date. It holds identifiers
and words only, never a child's other data.

By default the file sits beside the return, one per census year (:func:`default_path`:
``explanations-2025-26.csv`` in the return's folder), so every weekly extract of a year finds the
same explanations; the rows of each return are told apart by their census year and LA.

An explanation stays attached while the same failure persists from run to run: :func:`match` pairs
each query of a run with the explanation of the same rule, child and row. It is **stale** when the
failure's values have changed since it was given (the hash differs; the query counts as unexplained
until someone looks again) or when the failure no longer occurs.

The file is read with errors that name its line (:func:`read_explanations`) and written as a
formula-safe CSV with CRLF line ends, atomically, never over an input (:func:`write_explanations`).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cinqa.errors import CsvError
from cinqa.export import readable_text, write_frame
from cinqa.failures import IDENTITY_COLUMNS, counted, identity, rule_order
from cinqa.pseudonymise import Pseudonymiser, Scrubber, pseudonymise_table

if TYPE_CHECKING:
    from cinqa.validate import Validation

KEY_COLUMNS = ("census_year", "LA", "rule", "LAchildID", "row")
"""What one explanation is for: a failing row of one return's census year and LA."""
COLUMNS = (*KEY_COLUMNS, "explanation", "who", "date", "values_hash")
"""The explanations file's columns, in order."""

EXPLAINED = "explained"
UNEXPLAINED = "unexplained"
CURRENT = "current"
STALE = "stale"
VALUES_CHANGED = "the failing values have changed since it was given"
GONE = "the query no longer occurs"
EXPLAINABLE = "query"
"""The severity an explanation can answer: COLLECT accepts no return with errors, explained or not."""


def default_path(return_path: str | Path, year: str) -> Path:
    """Name the explanations file of census ``year`` beside the return at ``return_path``."""
    return Path(return_path).parent / f"explanations-{year}.csv"


def empty() -> pd.DataFrame:
    """Return an explanations table with no rows."""
    return pd.DataFrame({c: pd.Series(dtype="str") for c in COLUMNS})


# -- the file --------------------------------------------------------------------------------


def read_explanations(path: str | Path, missing_ok: bool = True) -> pd.DataFrame:
    """Read an explanations file into a table of :data:`COLUMNS` (all text; a return-level query has no LAchildID).

    A file that does not exist gives no explanations when ``missing_ok`` (it is made by the first
    import). A :class:`~cinqa.errors.CsvError` names the file, the line and the problem: a missing
    column, a row without a census year, rule, row key or explanation, a date that is not
    YYYY-MM-DD, or one failure explained twice with different words.
    """
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return empty()
        raise CsvError(path, "no such explanations file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return empty()
            header = [h.strip() for h in header]
            absent = [c for c in COLUMNS if c not in header]
            if absent:
                raise CsvError(path, f"the header lacks the column{'s' if len(absent) > 1 else ''} "
                                     f"{', '.join(absent)} (an explanations file has {', '.join(COLUMNS)})", 1)
            at = {c: header.index(c) for c in COLUMNS}
            rows: list[dict[str, str]] = []
            seen: dict[tuple[str, ...], tuple[int, str]] = {}
            for record in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) > len(header):
                    raise CsvError(path, f"the row has {len(record)} values but the header names {len(header)} "
                                         "columns (a comma in an explanation needs the text in double quotes)", line)
                row = {c: readable_text(record[i]).strip() if i < len(record) else "" for c, i in at.items()}
                for required in ("census_year", "rule", "row", "explanation"):
                    if not row[required]:
                        raise CsvError(path, f"the row has no {required}", line)
                if row["date"]:
                    try:
                        dt.date.fromisoformat(row["date"])
                    except ValueError:
                        raise CsvError(path, f"date {row['date']!r} is not a date (YYYY-MM-DD)", line) from None
                key = tuple(row[c] for c in KEY_COLUMNS)
                if key in seen:
                    first, text = seen[key]
                    if text != row["explanation"]:
                        raise CsvError(path, f"rule {row['rule']}, LAchildID {row['LAchildID'] or '(none)'}, row "
                                             f"{row['row']} is explained again with different words (first on line "
                                             f"{first}); keep one of the two rows", line)
                    continue
                seen[key] = (line, row["explanation"])
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise CsvError(path, f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise CsvError(path, f"not a readable CSV file ({exc})") from None
    if not rows:
        return empty()
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype("str")


def write_explanations(explanations: pd.DataFrame, path: str | Path) -> Path:
    """Write an explanations table to ``path`` as CSV, sorted by return, rule and child, atomically.

    Text that a spreadsheet would run as a formula is written inert (:func:`cinqa.export.inert_text`);
    :func:`read_explanations` reads it back as it was typed. An input of the run is never overwritten.
    """
    out = explanations.loc[:, list(COLUMNS)].astype("str").fillna("")
    order = out.assign(_rule=out["rule"].map(rule_order)).sort_values(
        ["census_year", "LA", "_rule", "rule", "LAchildID", "row"], kind="stable")
    return write_frame(order.drop(columns="_rule").reset_index(drop=True), path, "csv")


def for_return(explanations: pd.DataFrame, year: str, la: str | None) -> pd.DataFrame:
    """Return the explanations of one return: its census year and LA."""
    keep = (explanations["census_year"] == year) & (explanations["LA"] == (la or ""))
    return explanations[keep]


# -- matching --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Explained:
    """A run's queries with their explanations, and the return's explanations with their state.

    ``queries`` has one row per failing query of the run (indexed as in the failures table):
    :data:`~cinqa.failures.IDENTITY_COLUMNS`, ``explanation``, ``who``, ``date`` (empty when
    unexplained), ``status`` (:data:`EXPLAINED` or :data:`UNEXPLAINED`) and ``stale`` (the words of
    an explanation that no longer fits the query's values, else empty).
    ``explanations`` has one row per explanation of the return, with ``state`` (:data:`CURRENT` or
    :data:`STALE`) and ``why_stale`` (:data:`VALUES_CHANGED`, :data:`GONE`, or empty).
    """

    queries: pd.DataFrame
    explanations: pd.DataFrame

    @property
    def explained(self) -> int:
        """The number of queries explained."""
        return int((self.queries["status"] == EXPLAINED).sum())

    @property
    def unexplained(self) -> int:
        """The number of queries not explained (a stale explanation explains nothing)."""
        return int((self.queries["status"] == UNEXPLAINED).sum())

    @property
    def stale(self) -> int:
        """The number of the return's explanations that are stale."""
        return int((self.explanations["state"] == STALE).sum())

    def by_rule(self) -> pd.DataFrame:
        """Return per query rule: queries, explained, unexplained, in the order of the rules' numbers."""
        q = self.queries
        if q.empty:
            return pd.DataFrame({c: pd.Series(dtype="str" if c == "rule" else "int64")
                                 for c in ("rule", "queries", "explained", "unexplained")})
        g = q.assign(_done=q["status"] == EXPLAINED).groupby("rule", sort=False)
        out = pd.DataFrame({"queries": g.size(), "explained": g["_done"].sum()}).reset_index()
        out["unexplained"] = out["queries"] - out["explained"]
        out = out.astype({"queries": "int64", "explained": "int64", "unexplained": "int64"})
        order = out["rule"].map(rule_order)
        return out.assign(_o=order).sort_values(["_o", "rule"]).drop(columns="_o").reset_index(drop=True)

    def summary(self) -> str:
        """Say in one sentence how many queries are explained, and how many explanations are stale."""
        text = (f"{counted(self.explained, 'query', 'queries')} explained, "
                f"{counted(self.unexplained, 'query', 'queries')} unexplained")
        return text + (f"; {counted(self.stale, 'explanation')} stale." if self.stale else ".")


def match(failures: pd.DataFrame, explanations: pd.DataFrame) -> Explained:
    """Pair each query of ``failures`` with its explanation among ``explanations`` (one return's, see
    :func:`for_return`), and judge each explanation current or stale.

    A query is explained when an explanation has its rule, LAchildID and row key and the same
    ``values_hash``; with another hash the explanation is stale (the values changed) and the query
    unexplained. An explanation that no query of the run has is stale (the query no longer occurs).
    """
    queries = failures[failures["severity"].astype("str") == EXPLAINABLE]
    ids = identity(queries).fillna({"LAchildID": ""})
    given = explanations.loc[:, ["rule", "LAchildID", "row", "values_hash", "explanation", "who", "date"]]
    joined = ids.reset_index().merge(given.rename(columns={"values_hash": "_given"}), how="left",
                                     on=["rule", "LAchildID", "row"], validate="many_to_one").set_index("index")
    joined.index.name = None
    same = joined["_given"].notna() & (joined["_given"] == joined["values_hash"])
    changed = joined["_given"].notna() & ~same
    out = joined.loc[:, list(IDENTITY_COLUMNS)].copy()
    for col in ("explanation", "who", "date"):
        out[col] = joined[col].where(same, "").fillna("").astype("str")
    out["status"] = pd.Series(UNEXPLAINED, index=out.index, dtype="str").where(~same, EXPLAINED)
    out["stale"] = joined["explanation"].where(changed, "").fillna("").astype("str")
    current = set(zip(ids["rule"], ids["LAchildID"], ids["row"], ids["values_hash"], strict=True))
    present = {k[:3] for k in current}
    keys = list(zip(explanations["rule"], explanations["LAchildID"], explanations["row"],
                    explanations["values_hash"], strict=True))
    state = explanations.copy()
    state["state"] = [CURRENT if k in current else STALE for k in keys]
    state["why_stale"] = ["" if k in current else VALUES_CHANGED if k[:3] in present else GONE for k in keys]
    return Explained(queries=out, explanations=state.astype({"state": "str", "why_stale": "str"}))


def explain(validation: Validation, explanations: pd.DataFrame) -> Explained:
    """Match a validation's queries with the explanations of its return (see :func:`match`); its verdict stays."""
    return match(validation.failures, for_return(explanations, validation.year, validation.ret.header.la))


# -- merging what analysts typed ---------------------------------------------------------------


@dataclass(frozen=True)
class Merged:
    """The explanations after a merge, and what the merge did, row by row counted."""

    explanations: pd.DataFrame
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_blank: int = 0
    skipped_errors: int = 0

    def __str__(self) -> str:
        parts = [f"{self.added:,} added", f"{self.updated:,} updated", f"{self.unchanged:,} unchanged"]
        if self.kept_blank:
            parts.append(f"{counted(self.kept_blank, 'explanation')} kept although blank in the workbook "
                         "(delete a row of the explanations file to remove an explanation)")
        if self.skipped_errors:
            parts.append(f"{counted(self.skipped_errors, 'explanation')} on errors skipped (errors must be fixed: "
                         "COLLECT accepts no return with errors, explained or not)")
        return ", ".join(parts)


def merge(explanations: pd.DataFrame, typed: pd.DataFrame, *, year: str, la: str | None, who: str,
          on: dt.date | None = None) -> Merged:
    """Merge explanations typed against failures (``typed``) into ``explanations``.

    ``typed`` has one row per failure shown to the analyst: rule, severity, LAchildID, row,
    values_hash and explanation (blank when none was typed). A new explanation is added and a
    changed one (other words, or the same words for changed values) updated, each with ``who``
    and the date ``on`` (default today). A blank never deletes: an explanation that was shown
    and then cleared is kept and counted, and words typed against an error are skipped and counted.
    """
    on = on or dt.date.today()
    la = la or ""
    out = explanations.loc[:, list(COLUMNS)].astype("str").reset_index(drop=True)
    where = {tuple(r): i for i, r in enumerate(out.loc[:, list(KEY_COLUMNS)].itertuples(index=False))}
    counts: Counter[str] = Counter()
    new_rows: list[dict[str, str]] = []
    for row in typed.astype("object").itertuples(index=False):
        text = _text(row.explanation)
        key = (year, la, str(row.rule), _text(row.LAchildID), str(row.row))
        at = where.get(key)
        if not text:
            if at is not None and out.at[at, "values_hash"] == str(row.values_hash):
                counts["kept_blank"] += 1
            continue
        if str(row.severity) != EXPLAINABLE:
            counts["skipped_errors"] += 1
            continue
        fresh = {"census_year": year, "LA": la, "rule": str(row.rule), "LAchildID": _text(row.LAchildID),
                 "row": str(row.row), "explanation": text, "who": who, "date": on.isoformat(),
                 "values_hash": str(row.values_hash)}
        if at is None:
            where[key] = len(out) + len(new_rows)
            new_rows.append(fresh)
            counts["added"] += 1
        elif at >= len(out):
            counts["unchanged" if new_rows[at - len(out)]["explanation"] == text else "updated"] += 1
            new_rows[at - len(out)] = fresh
        elif out.at[at, "explanation"] == text and out.at[at, "values_hash"] == fresh["values_hash"]:
            counts["unchanged"] += 1
        else:
            out.loc[at, list(COLUMNS)] = [fresh[c] for c in COLUMNS]
            counts["updated"] += 1
    merged = pd.concat([out, pd.DataFrame(new_rows, columns=list(COLUMNS))], ignore_index=True) if new_rows else out
    return Merged(merged.astype("str"), **counts)


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value).strip()


# -- the note for COLLECT ----------------------------------------------------------------------


def note_text(explained: Explained, *, source: str = "", la: str | None = None, year: str = "") -> str:
    """Draft the return-level note for COLLECT: per query rule, its queries and their explanations.

    One line per rule, in the order of the rules' numbers: "8863Q — 14 queries, 12 explained:
    <each distinct explanation, with how many queries it explains>; 2 unexplained". The note adds
    no child's identifier; the explanations are quoted as they were typed.
    """
    head = f"Queries in the CIN census return{f' of LA {la}' if la else ''}{f', {year}' if year else ''}"
    head += f" ({source})" if source else ""
    counts = explained.by_rule()
    if counts.empty:
        return f"{head}: none."
    lines = [f"{head}:"]
    q = explained.queries
    for r in counts.itertuples(index=False):
        done = q[(q["rule"] == r.rule) & (q["status"] == EXPLAINED)]
        texts = Counter(done["explanation"])
        said = "; ".join(f"{text} ({n})" if len(texts) > 1 or n != r.queries else text
                         for text, n in sorted(texts.items(), key=lambda kv: (-kv[1], kv[0])))
        parts = [f"{r.rule} — {counted(r.queries, 'query', 'queries')}"]
        if r.explained:
            parts.append(f", {'all' if not r.unexplained else f'{r.explained:,}'} explained: {said}")
        if r.unexplained:
            parts.append(f"{';' if r.explained else ','} {r.unexplained:,} unexplained")
        lines.append("".join(parts))
    return "\n".join(lines)


# -- the workbook's columns --------------------------------------------------------------------

WORKBOOK_COLUMNS = ("explanation", "explanation status")
"""The columns of the Excel failures list that show, and take, explanations."""
WORKBOOK_KEYS = ("row", "values_hash")
"""The columns of the Excel failures list that name each failure for :func:`merge`."""


def workbook_columns(explained: Explained, failures: pd.DataFrame) -> pd.DataFrame:
    """Return, per row of ``failures`` (same index), what the Excel failures list shows of explanations.

    ``explanation`` holds a query's current explanation, for the analyst to keep, change or fill;
    ``explanation status`` says explained (by whom, when), unexplained, or stale with the old words,
    which are not pre-filled so that a stale explanation is never carried over unread. ``row`` and,
    when ``explained`` carries them (not when pseudonymised), ``values_hash`` name the failure.
    """
    q = explained.queries
    out = pd.DataFrame(index=failures.index)
    out["explanation"] = q["explanation"].reindex(failures.index).fillna("").astype("object")
    status = []
    for i in failures.index:
        if i not in q.index:
            status.append("")
        elif q.at[i, "status"] == EXPLAINED:
            by = ", ".join(v for v in (q.at[i, "who"], q.at[i, "date"]) if v)
            status.append(f"{EXPLAINED} ({by})" if by else EXPLAINED)
        elif q.at[i, "stale"]:
            status.append(f"{STALE}: {VALUES_CHANGED}; it said: {q.at[i, 'stale']}")
        else:
            status.append(UNEXPLAINED)
    out["explanation status"] = pd.Series(status, index=failures.index, dtype="object")
    out["row"] = identity(failures)["row"].astype("object")
    if "values_hash" in q:
        out["values_hash"] = identity(failures)["values_hash"].astype("object")
    return out


def pseudonymise_explained(explained: Explained, key: bytes | Pseudonymiser, scrub: Scrubber | None = None
                           ) -> Explained:
    """Return ``explained`` as a pseudonymised output may show it: LAchildIDs as tokens, identifiers in the
    words scrubbed (:class:`~cinqa.pseudonymise.Scrubber`), no ``values_hash`` (a digest of child data),
    and ``who`` left empty: the names of the LA's staff, which the scrubber does not know, are not
    shared, as the teams lookup's workers are not."""
    def shared(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.drop(columns="values_hash")
        if "who" in frame:
            frame = frame.assign(who="")
        return pseudonymise_table(frame, key, scrub)

    return Explained(queries=shared(explained.queries), explanations=shared(explained.explanations))
