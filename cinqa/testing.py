"""Rule cases as data: build a small census return from a valid base child plus a fragment.

A case file ``tests/cases/<rule>.yml`` looks like::

    rule: "8608"
    cases:
      - name: authorised before it started
        expect: fail
        year: "2023-24"                  # optional; default: the latest supported year of the rule
        tables:
          assessments: [{AssessmentActualStartDate: 2023-06-10, AssessmentAuthorisationDate: 2023-06-09}]
      - name: same day is fine
        expect: pass
        tables:
          assessments: [{AssessmentActualStartDate: start+20D, AssessmentAuthorisationDate: start+20D}]

How a fragment becomes a return:

* ``children`` rows are the children, in order (child 1, 2, ...); unspecified columns come from
  the base child, with an ``LAchildID`` of ``C1``, ``C2``... and a valid, distinct UPN.
  Without ``children`` there is one base child.
* Rows of other tables name their parents with ``child`` (default 1), ``episode`` (default 1),
  ``assessment`` or ``cpp`` (default 1). A table given in the fragment replaces all the base
  rows of that table (``disabilities: []`` leaves every child without one). The base child has
  eight disabilities and one open episode with further action and no modules but, from 2026-27,
  one pre-proceedings module (``pre_proceedings: []`` removes it); a module row
  (assessment, S47, plan, review, factor) is built over a template that fits the census year,
  and a factor or review whose assessment or plan is not given gets one from the template.
* ``null`` is a missing value. Dates are ``2023-06-10`` or relative to the census year:
  ``start`` (1 April), ``end`` (31 March), shifted like ``end-6Y``, ``start+20D``, ``start-1WD``.
* ``""`` writes the element empty (``<CPPreviewDate></CPPreviewDate>``): the reader keeps no
  value and reports a structural issue, as it does for such a file.
* ``header`` overrides header facts (``ReferenceDate``, ``Year``, ``LEA``...).
* ``failing`` lists the LAchildIDs the rule must flag (default: ``[C1]`` for a rule on children
  and their modules, none for a rule on the header or the whole return).

The return is written as XML and read back, so the rule sees exactly what a real file gives.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cinqa import spec
from cinqa.checks.upn_letters import valid_upn
from cinqa.failures import for_display
from cinqa.read import read_return
from cinqa.returns import CensusReturn, Header
from cinqa.views import OFFSET_STEP, census_date, shift_dates
from cinqa.write import write_return

CASE_KEYS = {"name", "expect", "year", "tables", "header", "failing"}
PARENT_KEYS = {"child", "episode", "assessment", "cpp"}
# A date element written empty is written with this stand-in first, then emptied in the file.
_EMPTY_DATE = "1801-01-01"
_RELATIVE = re.compile(rf"^(start|end)((?:{OFFSET_STEP})*)$")
_BASE_DISABILITIES = ("MOB", "HAND", "PC", "INC", "COMM", "LD", "HEAR", "VIS")
_HEADER_FIELDS = {"Collection": "collection", "Year": "year", "ReferenceDate": "reference_date", "LEA": "la",
                  "SourceLevel": "source_level"}


@dataclass
class Case:
    """One pass/fail case of one rule."""

    rule: str
    name: str
    expect: str
    year: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)
    failing: list[str] | None = None
    source: str = ""

    @property
    def id(self) -> str:
        """A test id such as ``8608: authorised before it started``."""
        return f"{self.rule}: {self.name}"


def load_cases(path: str | Path, default_year: str) -> list[Case]:
    """Read the cases of one rule from a YAML case file; ``default_year`` serves cases without a year."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text("utf-8")) or {}
    rule = str(raw.get("rule", ""))
    if not rule:
        raise ValueError(f"{path}: no 'rule'")
    if path.stem != rule:
        raise ValueError(f"{path}: the file of rule {rule} must be named {rule}.yml")
    out: list[Case] = []
    for i, c in enumerate(raw.get("cases") or [], start=1):
        where = f"{path}, case {i}"
        unknown = set(c) - CASE_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; use {sorted(CASE_KEYS)}")
        if c.get("expect") not in ("pass", "fail"):
            raise ValueError(f"{where}: 'expect' must be pass or fail")
        if not c.get("name"):
            raise ValueError(f"{where}: no 'name'")
        year = str(c.get("year") or default_year)
        if year not in spec.YEARS:
            raise ValueError(f"{where}: unknown census year {year!r}")
        failing = c.get("failing")
        out.append(Case(rule=rule, name=str(c["name"]), expect=c["expect"], year=year,
                        tables=dict(c.get("tables") or {}), header=dict(c.get("header") or {}),
                        failing=[str(f) for f in failing] if failing is not None else None, source=where))
    return out


# -- values ------------------------------------------------------------------------------


def resolve_value(value: Any, year: str) -> Any:
    """Turn a YAML value into the form the writer takes (dates as text, relative dates resolved)."""
    if isinstance(value, (dt.datetime, dt.date)):
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    if isinstance(value, str):
        m = _RELATIVE.match(value)
        if m:
            return census_date(year, m.group(1), m.group(2) or None).strftime("%Y-%m-%d")
    return value


# -- the base child ------------------------------------------------------------------------


def templates(year: str) -> dict[str, dict[str, Any]]:
    """Return the column values of a valid row of each table in census ``year``."""
    start = spec.census_start(year)
    end_year = spec.end_year(year)

    def wd(n: int) -> str:
        return shift_dates(start, f"+{n}WD").strftime("%Y-%m-%d")

    child: dict[str, Any] = {"PersonBirthDate": f"{end_year - 10}-06-15", "Ethnicity": "WBRI"}
    if year in spec.column_years("children", "Sex"):
        child["Sex"] = "M"
    else:
        child["GenderCurrent"] = "1"
    episode: dict[str, Any] = {"CINreferralDate": wd(10), "PrimaryNeedCode": "N1", "ReferralNFA": False}
    if year in spec.column_years("episodes", "ReferralSource"):
        episode["ReferralSource"] = "1A"
    return {
        "children": child,
        "disabilities": {"Disability": "MOB"},
        "episodes": episode,
        "assessments": {"kind": "initial" if year == "2012-13" else "continuous",
                        "AssessmentActualStartDate": wd(11), "AssessmentAuthorisationDate": wd(25)},
        "assessment_factors": {"AssessmentFactors": "3B"},
        "cin_plans": {"CINPlanStartDate": wd(40), "CINPlanEndDate": wd(60)},
        "section47": {"S47ActualStartDate": wd(12), "InitialCPCtarget": wd(26), "DateOfInitialCPC": wd(25),
                      "ICPCnotRequired": False},
        "cp_plans": {"CPPstartDate": wd(25), "InitialCategoryOfAbuse": "NEG", "LatestCategoryOfAbuse": "NEG",
                     "NumberOfPreviousCPP": 0},
        "cp_reviews": {"CPPreviewDate": wd(80)},
        "pre_proceedings": {"PPStartDate": wd(30), "LBPSentDate": wd(35), "FGDMMeetingOffer": True,
                            "FGDMMeetingFac": True, "InitialPPMeetingDate": wd(40), "ReviewMeetingsCount": 2,
                            "StepDecisionDate": wd(60), "PPOutcome": "A", "CourtAppDate": wd(65),
                            "LetterInitCPDate": wd(70)},
    }


def build_return(year: str, tables: dict[str, list[dict[str, Any]]] | None, directory: str | Path,
                 header: dict[str, Any] | None = None, name: str = "case") -> CensusReturn:
    """Build the return of a fragment (see the module doc), write it under ``directory`` and read it back."""
    tables = {k: list(v or []) for k, v in (tables or {}).items()}
    unknown = set(tables) - set(spec.TABLE_KEYS)
    if unknown:
        raise ValueError(f"unknown tables {sorted(unknown)}; use {sorted(spec.TABLE_KEYS)}")
    tpl = templates(year)
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in spec.TABLE_KEYS}

    given_children = tables.get("children") or [{}]
    for n, frag in enumerate(given_children, start=1):
        row = {"LAchildID": f"C{n}", "UPN": valid_upn(n), **tpl["children"], **frag}
        rows["children"].append(_keyed(row, {"child": n}, "children", year))
    n_children = len(given_children)

    for table, base in (("disabilities", [{"Disability": c} for c in _BASE_DISABILITIES]), ("episodes", [{}])):
        targeted = _by_parent(tables.get(table), ("child",), table)
        for child in range(1, n_children + 1):
            frags = targeted.get((child,), []) if table in tables else base
            for i, frag in enumerate(frags, start=1):
                row = {**tpl[table], **frag}
                rows[table].append(_keyed(row, {"child": child, spec.TABLE_KEYS[table][-1]: i}, table, year))

    episodes = {(r["child"], r["episode"]) for r in rows["episodes"]}
    # From 2026-27 a return with no pre-proceedings module at all is queried (8995Q), so the base
    # child's episode has one, unless the fragment gives the table.
    if "pre_proceedings" not in tables and year in spec.table_years("pre_proceedings"):
        tables["pre_proceedings"] = [{}]
    for table in ("assessments", "cin_plans", "section47", "cp_plans", "pre_proceedings"):
        for parent, frags in _by_parent(tables.get(table), ("child", "episode"), table).items():
            if parent not in episodes:
                raise ValueError(f"{table}: child {parent[0]} has no episode {parent[1]}")
            for i, frag in enumerate(frags, start=1):
                row = {**tpl[table], **frag}
                keys = {"child": parent[0], "episode": parent[1], spec.TABLE_KEYS[table][-1]: i}
                rows[table].append(_keyed(row, keys, table, year))

    for table, parent_table, own in (("assessment_factors", "assessments", "assessment"), ("cp_reviews", "cp_plans", "cpp")):
        have = {(r["child"], r["episode"], r[own]) for r in rows[parent_table]}
        for parent, frags in _by_parent(tables.get(table), ("child", "episode", own), table).items():
            if parent[:2] not in episodes:
                raise ValueError(f"{table}: child {parent[0]} has no episode {parent[1]}")
            if parent not in have:
                keys = dict(zip(("child", "episode", own), parent))
                rows[parent_table].append(_keyed(dict(tpl[parent_table]), keys, parent_table, year))
                have.add(parent)
            for i, frag in enumerate(frags, start=1):
                keys = {**dict(zip(("child", "episode", own), parent)), spec.TABLE_KEYS[table][-1]: i}
                rows[table].append(_keyed({**tpl[table], **frag}, keys, table, year))

    frames = {t: _frame(t, r) for t, r in rows.items()}
    ret = CensusReturn(year=year, header=Header(collection="CIN", year=spec.end_year(year),
                                                reference_date=spec.reference_date(year), la="201",
                                                source_level="L", software="cinqa.testing"),
                       tables=frames)
    path = Path(directory) / f"{name}.xml"
    write_return(ret, path)
    text = path.read_text("utf-8")
    if f">{_EMPTY_DATE}<" in text:
        path.write_text(text.replace(f">{_EMPTY_DATE}<", "><"), "utf-8")
    out = read_return(path, year=year)
    if header:
        changes = {}
        for k, v in header.items():
            if k not in _HEADER_FIELDS:
                raise ValueError(f"header: unknown field {k!r}; use {sorted(_HEADER_FIELDS)}")
            v = resolve_value(v, year)
            changes[_HEADER_FIELDS[k]] = pd.Timestamp(v) if k == "ReferenceDate" and v is not None else v
        out = dataclasses.replace(out, header=dataclasses.replace(out.header, **changes))
    return out


def _by_parent(frags: list[dict[str, Any]] | None, keys: tuple[str, ...], table: str) -> dict[tuple[int, ...], list[dict[str, Any]]]:
    out: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for frag in frags or []:
        extra = (set(frag) & PARENT_KEYS) - set(keys)
        if extra:
            raise ValueError(f"{table}: a row cannot name {sorted(extra)}; it belongs to {', '.join(keys)}")
        parent = tuple(int(frag.get(k, 1)) for k in keys)
        out.setdefault(parent, []).append({k: v for k, v in frag.items() if k not in PARENT_KEYS})
    return out


def _keyed(row: dict[str, Any], keys: dict[str, int], table: str, year: str) -> dict[str, Any]:
    out: dict[str, Any] = dict(keys)
    for col, value in row.items():
        if col != "kind" and year not in spec.column_years(table, col):
            raise ValueError(f"{table}: {col} is not part of the {year} census")
        if value == "" and _node_type(table, col) in ("date", "datetime"):
            value = _EMPTY_DATE  # the writer drops an empty date; emptied again after writing
        out[col] = resolve_value(value, year)
    return out


def _node_type(table: str, column: str) -> str | None:
    return next((n.type for n in spec.value_columns(table) if n.column == column), None)


def _frame(table: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    keys = list(spec.TABLE_KEYS[table])
    df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=keys)
    for node in spec.value_columns(table):
        if node.column in df and node.type == "bool":
            df[node.column] = df[node.column].astype("boolean")
        elif node.column in df and node.type in ("int", "gyear"):
            df[node.column] = pd.array(df[node.column].tolist(), dtype="Int64")
        elif node.column in df and node.type not in ("date", "datetime"):
            df[node.column] = df[node.column].map(lambda v: None if v is None or pd.isna(v) else str(v)).astype("object")
    return df


# -- running a case -------------------------------------------------------------------------


@dataclass
class Outcome:
    """What validating a case's return gave for its rule."""

    case: Case
    failures: pd.DataFrame
    errored: pd.DataFrame
    ret: CensusReturn

    def _shown(self) -> list[dict[str, Any]]:
        return for_display(self.failures[["LAchildID", "values"]]).to_dict("records")

    def problems(self) -> list[str]:
        """Say what is wrong with the outcome; empty when the case behaves as written."""
        out: list[str] = []
        if len(self.errored):
            out.append(f"the rule errored: {self.errored.to_dict('records')}")
        if self.case.expect == "pass":
            if len(self.failures):
                out.append(f"expected no failure, got {self._shown()}")
            return out
        if not len(self.failures):
            out.append("expected a failure, got none")
            return out
        got = sorted(str(x) for x in self.failures["LAchildID"].dropna().unique())
        entities = set(self.failures["entity"])
        want = self.case.failing
        if want is None:
            want = [] if entities <= {"header", "return"} else [self.ret.children["LAchildID"].iloc[0]]
        if got != sorted(set(want)):
            out.append(f"expected failures for {sorted(set(want))}, got {got}: "
                       f"{self._shown()}")
        return out


def run_case(case: Case, directory: str | Path, expectations: str | Path | None = None) -> Outcome:
    """Build the case's return under ``directory``, validate it for the case's rule, and return the outcome."""
    from cinqa.validate import validate

    ret = build_return(case.year, case.tables, directory, case.header, name=re.sub(r"\W+", "-", case.id))
    v = validate(ret, rules=[case.rule], expectations=expectations)
    failures = v.failures[v.failures["rule"] == case.rule]
    errored = v.errored[v.errored["rule"] == case.rule]
    return Outcome(case=case, failures=failures, errored=errored, ret=ret)


# GX result format of the plain engine: every failing row, as GX reports it by default.
_PLAIN_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": ["row"],
                 "return_unexpected_index_query": False, "partial_unexpected_count": 0}


def validate_plainly(ret: CensusReturn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate ``ret`` as the engine did before its speed-ups; return its failures and errored rules.

    Whole views, full-meta suites, one GX run per view in this process and every failing row as GX
    reports it: the reference that ``cinqa.validate``'s faster engine must match (tests) and beat
    (``bench/validate.py``).
    """
    from cinqa import rules
    from cinqa.validate import _batch, _tidy
    from cinqa.views import ViewBuilder

    suites = rules.suites(ret.year)
    builder = ViewBuilder(ret)
    views = {name: builder.view(name) for name in suites}
    results = {name: _batch(name, views[name]).validate(suite, result_format=_PLAIN_FORMAT)
               for name, suite in suites.items() if len(views[name])}
    return _tidy(results, views)
