"""The failures table of a validation: its columns and types, the failing values, the summary and the verdict.

A failures table has one row per failing row of a rule (:data:`FAILURE_COLUMNS`). Its ``values``
column holds, for each row, a dict ``{field: value}`` of what the rule read, with typed values:
dates as :class:`datetime.date`, codes as text, counts as ints, flags as bools, and a missing value
as ``None``. Nothing reads values back from text; :func:`values_text` spells them out for people
(display, CSV) and only for them.

Every output that judges a return's readiness (the command line, the HTML report, the Excel cover
sheet, the notebooks) takes its :class:`Verdict` from :func:`verdict`, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FAILURE_COLUMNS = ("rule", "severity", "message", "entity", "child", "LAchildID", "episode", "item", "fields",
                   "values", "line")
FAILURE_DTYPES = {"rule": "str", "severity": "str", "message": "str", "entity": "str", "child": "Int64",
                  "LAchildID": "str", "episode": "Int64", "item": "Int64", "fields": "str", "values": "object",
                  "line": "Int64"}
SUMMARY_COLUMNS = ("rule", "severity", "message", "children", "rows")
ERRORED_COLUMNS = ("rule", "entity", "expectation", "error")
IDENTITY_COLUMNS = ("rule", "LAchildID", "row", "values_hash")
"""What names one failure across runs of a return, without any of its values (:func:`identity`)."""
MISSING = "(missing)"
"""How a missing value is spelt in :func:`values_text`."""

CLEAN = "clean"
QUERIES_ONLY = "queries only"
ERRORS = "errors"
NOT_FULLY_CHECKED = "not fully checked"
UNREADABLE = "unreadable"
STATUSES = (CLEAN, QUERIES_ONLY, ERRORS, NOT_FULLY_CHECKED, UNREADABLE)
"""Verdicts from best to worst."""

HEADLINES = {
    CLEAN: "Ready to submit",
    QUERIES_ONLY: "Ready once the queries are explained",
    ERRORS: "Not ready to submit",
    NOT_FULLY_CHECKED: "Not fully checked",
    UNREADABLE: "Could not be read",
}
# The command line's exit status: 0 may be submitted, 1 may not, 2 the input could not be read.
_EXIT_CODES = {CLEAN: 0, QUERIES_ONLY: 0, ERRORS: 1, NOT_FULLY_CHECKED: 1, UNREADABLE: 2}


# -- the table ------------------------------------------------------------------------------


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """Return the failure columns of ``df`` in order, each with its type (:data:`FAILURE_DTYPES`)."""
    return df.loc[:, list(FAILURE_COLUMNS)].astype(FAILURE_DTYPES)


def field_names(fields: object) -> list[str]:
    """Split a failure's ``fields`` ("CINreferralDate, PersonBirthDate") into the names of the fields."""
    return [f.strip() for f in fields.split(",") if f.strip()] if isinstance(fields, str) else []


def plain_values(s: pd.Series) -> np.ndarray:
    """Return a column as an object array of plain Python values: dates as dates, missing as None."""
    if s.dtype.kind == "M":
        # Census dates carry no time; NumPy turns NaT into None on the way.
        return s.to_numpy().astype("datetime64[D]").astype(object)
    return s.to_numpy(dtype=object, na_value=None)


def value_text(value: Any) -> str:
    """Spell one failing value for people: ISO dates, true/false, :data:`MISSING` for a missing value."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    if isinstance(value, (dt.date, pd.Timestamp)):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def values_text(values: object) -> str:
    """Spell a failure's values for display and CSV ("Field=value; Field=value"); never parse it back."""
    if not isinstance(values, dict):
        return ""
    return "; ".join(f"{k}={value_text(v)}" for k, v in values.items())


def why(rule: str, message: str, values: object) -> str:
    """Say in plain words why a row failed: what the rule read, then the rule's own message.

    "CPPendDate is empty; CPPstartDate is 2024-05-01. Rule 8935 flags: <message>". A count or flag
    the check derives (``open_cpps_in_episode``) is spelt with spaces.
    """
    facts = []
    for name, value in (values.items() if isinstance(values, dict) else ()):
        label = name.replace("_", " ")
        text = value_text(value)
        facts.append(f"{label} is empty" if text == MISSING else f"{label} is {text}")
    said = f"Rule {rule} flags: {message}"
    return f"{'; '.join(facts)}. {said}" if facts else said


def for_display(failures: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``failures`` whose ``values`` are text (:func:`values_text`), for a table or a CSV file."""
    out = failures.copy()
    if "values" in out:
        out["values"] = pd.Series([values_text(v) for v in out["values"]], index=out.index, dtype="str")
    return out


def rule_order(rule: str) -> int:
    """Return the number in a rule code ("8525Q" gives 8525), by which rules are listed."""
    digits = "".join(ch for ch in rule if ch.isdigit())
    return int(digits) if digits else 0


def summarise(failures: pd.DataFrame) -> pd.DataFrame:
    """Return one row per failing rule: rule, severity, message, children affected and failing rows.

    Errors come before queries, and rules in the order of their numbers within each.
    """
    if failures.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("children", "rows") else "str")
                             for c in SUMMARY_COLUMNS})
    g = failures.groupby(["rule", "severity", "message"], sort=False, observed=True)
    out = pd.DataFrame({"children": g["child"].nunique(), "rows": g.size()}).reset_index()
    out["_sev"] = (out["severity"] != "error").astype(int)
    out["_order"] = out["rule"].map(rule_order)
    out = out.sort_values(["_sev", "_order", "rule"], kind="stable").drop(columns=["_sev", "_order"])
    out["children"] = out["children"].astype("int64")
    out["rows"] = out["rows"].astype("int64")
    return out.loc[:, list(SUMMARY_COLUMNS)].reset_index(drop=True)


def row_key(entity: object, episode: object, item: object) -> str:
    """Name the failing row within its child: "children", "disabilities 1", "episodes 2", "cp_plans 2.1".

    The numbers are the episode's and the item's places in the return, so a failure keeps its key
    from one run to the next as long as the child's earlier records stay as they were.
    """
    places = [str(int(n)) for n in (episode, item) if n is not None and n is not pd.NA]
    return f"{entity} {'.'.join(places)}" if places else str(entity)


def values_hash(values: object) -> str:
    """Return a short digest of a failure's values: equal values give equal digests, and none can be read back."""
    if not isinstance(values, dict):
        return ""
    canonical = json.dumps({k: value_text(v) for k, v in sorted(values.items())}, ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def identity(failures: pd.DataFrame) -> pd.DataFrame:
    """Return, per failure, what names it across runs (:data:`IDENTITY_COLUMNS`): rule, child, row key, values digest.

    The run history and the query explanations match failures between runs on rule, LAchildID and
    row; a changed ``values_hash`` means the same row now fails on different values. A child's own
    row (entity "children") is keyed without its place in the file, which changes as children come and go.
    """
    rows = [row_key(e, ep, None if e == "children" else it)
            for e, ep, it in zip(failures["entity"], failures["episode"], failures["item"], strict=True)]
    return pd.DataFrame({"rule": failures["rule"].astype("str"), "LAchildID": failures["LAchildID"].astype("str"),
                         "row": pd.Series(rows, index=failures.index, dtype="str"),
                         "values_hash": pd.Series([values_hash(v) for v in failures["values"]], index=failures.index,
                                                  dtype="str")})


# -- the verdict ----------------------------------------------------------------------------


def counted(n: int, one: str, many: str | None = None) -> str:
    """Spell a count with its noun ("1 rule", "3 rules", "2 children")."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


@dataclass(frozen=True)
class Verdict:
    """Whether a return is ready to submit, with the counts and sentences that explain it.

    ``status`` is one of :data:`STATUSES`. "not fully checked" (a rule could not be evaluated, or
    the file has structural errors, so part of it may not have been read or checked) takes
    precedence over "errors": the counts are then lower bounds, and :attr:`details` still lists
    the errors found.
    """

    status: str
    error_rows: int = 0
    query_rows: int = 0
    error_rules: int = 0
    query_rules: int = 0
    children_with_errors: int = 0
    structural_errors: int = 0
    structural_issues: int = 0
    not_evaluated: int = 0
    problem: str | None = None

    @property
    def headline(self) -> str:
        """The verdict in words for the reader ("Ready to submit", "Not ready to submit", ...)."""
        return HEADLINES[self.status]

    @property
    def exit_code(self) -> int:
        """The command line's exit status: 0 no errors (queries allowed), 1 not submittable, 2 unreadable."""
        return _EXIT_CODES[self.status]

    @property
    def details(self) -> tuple[str, ...]:
        """Say, one sentence each, what the verdict rests on."""
        if self.status == UNREADABLE:
            return (self.problem or "The file could not be read.",)
        out = []
        if self.not_evaluated:
            their = "its" if self.not_evaluated == 1 else "their"
            out.append(f"{counted(self.not_evaluated, 'rule')} could not be evaluated, so {their} results are "
                       "unknown and the counts here are lower bounds.")
        if self.structural_errors:
            out.append(f"{counted(self.structural_errors, 'structural problem')} in the file itself: what "
                       f"{'it concerns' if self.structural_errors == 1 else 'they concern'} may not have been read "
                       "or checked, and COLLECT will reject the file as it is.")
        if self.error_rows:
            out.append(f"{counted(self.error_rows, 'error')} under {counted(self.error_rules, 'rule')}, affecting "
                       f"{counted(self.children_with_errors, 'child', 'children')}, must be fixed: COLLECT does not "
                       "accept a return with errors.")
        elif self.status in (CLEAN, QUERIES_ONLY):
            out.append("No errors." if self.query_rows else "No errors and no queries.")
        if self.query_rows:
            out.append(f"{counted(self.query_rows, 'query', 'queries')} under {counted(self.query_rules, 'rule')} "
                       f"{'needs' if self.query_rows == 1 else 'need'} correcting or explaining in a return-level "
                       "note in COLLECT.")
        warnings = self.structural_issues - self.structural_errors
        if warnings:
            out.append(f"{counted(warnings, 'structural warning')} about the file; "
                       f"{'it does' if warnings == 1 else 'they do'} not stop the return being checked.")
        return tuple(out)

    def __str__(self) -> str:
        same = self.headline.lower() == self.status
        return self.headline if same else f"{self.headline} ({self.status})"


def verdict(failures: pd.DataFrame, errored: Sized, issues: pd.DataFrame | None = None) -> Verdict:
    """Judge a return from its failures table, the rules that could not be evaluated and its structural issues.

    ``issues`` is the return's ``issues`` table; a structural issue of severity error means part of
    the file may not have been read, so the return is "not fully checked", as it is when any rule
    raised (``errored`` not empty).
    """
    severity = failures["severity"].astype("str")
    errors, queries = failures[severity == "error"], failures[severity == "query"]
    issue_severity = (issues["severity"].astype("str") if issues is not None and len(issues)
                      else pd.Series([], dtype="str"))
    structural_errors = int((issue_severity == "error").sum())
    if len(errored) or structural_errors:
        status = NOT_FULLY_CHECKED
    elif len(errors):
        status = ERRORS
    else:
        status = QUERIES_ONLY if len(queries) else CLEAN
    return Verdict(status=status, error_rows=len(errors), query_rows=len(queries),
                   error_rules=errors["rule"].nunique(), query_rules=queries["rule"].nunique(),
                   children_with_errors=errors["child"].nunique(), structural_errors=structural_errors,
                   structural_issues=len(issue_severity), not_evaluated=len(errored))


def unreadable(problem: str) -> Verdict:
    """Return the verdict on a file that could not be read at all, saying why."""
    return Verdict(status=UNREADABLE, problem=problem)
