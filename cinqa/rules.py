"""The DfE rule registry: expectations stored as GX suite JSON, one file per validation view.

``expectations/<view>.json`` is a Great Expectations suite whose expectations each carry the rule
in ``meta``: ``rule``, ``message`` (the Department's wording), ``severity`` (``error``/``query``),
``years`` (``"2013-14..2025-26"``), ``entity`` and ``fields``; optionally ``years_status``
(``I`` when some of the years are inferred rather than read in a DfE rule list), ``note`` and
``show`` (the columns to print as the failing values). Every expectation also carries either
``guidance`` (what usually causes the failure and where it is usually fixed, in one to three
sentences for the LA analyst) or ``no_guidance`` (why none can be given). A rule whose logic
changed gets a second expectation with its own years. The suite of a year holds the expectations
whose years include it.

Two placeholders keep year-dependent facts out of the JSON: ``{"$codes": "la"}`` becomes the
year's code set (:func:`cinqa.spec.codes`), and a string ``"$census_start"`` or ``"$census_end"``
(optionally shifted, ``"$census_end-45WD"``) becomes that date, for row conditions.

``expectations/unchecked.json`` lists rules that cannot be checked from the return alone, with
the reason, so that listings show them instead of silently leaving them out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from cinqa import spec
from cinqa.errors import CinqaError
from cinqa.files import locate_shipped
from cinqa.views import VIEW_TABLES, VIEWS, census_date


def locate_expectations(package_dir: str | Path | None = None) -> Path:
    """Find the rule suites: the checkout's ``expectations/`` folder, else the wheel's ``cinqa/_expectations``."""
    return locate_shipped("expectations", "_expectations", package_dir)


EXPECTATIONS_DIR = locate_expectations()
"""Where the rule suites live (the repository's ``expectations/`` folder, or the wheel's copy of it)."""

UNCHECKED_FILE = "unchecked.json"
META_KEYS = ("rule", "message", "severity", "years", "entity", "fields")
OPTIONAL_META_KEYS = ("years_status", "note", "show", "guidance", "no_guidance", "versions")
"""The meta keys an expectation may carry beside :data:`META_KEYS` (``versions`` holds per-version meta)."""
SEVERITIES = ("error", "query")
_GX_SEVERITY = {"error": "critical", "query": "warning"}
_STATUS_ORDER = ("V", "I", "U")
_DATE_TOKEN = re.compile(r"^\$census_(start|end)(.*)$")
LIST_COLUMNS = ("rule", "severity", "message", "entity", "fields", "years", "status", "note", "guidance", "checkable",
                "reason")
RULE_FACTS = ("status", "note", "guidance")
"""What :func:`with_rule_facts` adds to a table of rules: how the year's version is known, its notes, how to fix it."""
GUIDANCE_LABEL = "how to fix"
"""The heading of a rule's ``guidance`` wherever it is shown beside the DfE message."""
STATUS_WORDS = {"V": "read in a DfE rule list", "I": "inferred from other years", "U": "unverified"}
"""A rule's status (how its version of a year is known) in words."""
STATUS_LEGEND = "Status: " + ", ".join(f"{k} {v}" for k, v in STATUS_WORDS.items()) + " (how the year's rule is known)."
FIRST_LISTED_YEAR = "2022-23"
"""The first census year whose rules were read in a DfE rule list; a rule's earlier years are inferred."""


@dataclass(frozen=True)
class Rule:
    """A DfE rule as the Department lists it: code, severity, message, entity, fields and years."""

    rule: str
    severity: str
    message: str
    entity: str
    fields: tuple[str, ...]
    years: frozenset[str]
    years_text: str

    def listing(self, status: str, reason: str | None = None, note: str = "", guidance: str = "") -> dict[str, Any]:
        """Return the rule as a row of :func:`list_rules`.

        ``status`` says how the year's version is known (see :meth:`RuleEntry.status`); a ``reason``
        says why the rule cannot be checked; ``note`` is what the suite says about how it is read;
        ``guidance`` what usually causes a failure and where it is fixed.
        """
        return {"rule": self.rule, "severity": self.severity, "message": self.message, "entity": self.entity,
                "fields": list(self.fields), "years": self.years_text, "status": status, "note": note,
                "guidance": guidance, "checkable": reason is None, "reason": reason or ""}


@dataclass(frozen=True)
class RuleEntry(Rule):
    """One expectation of one rule (a rule may need more than one, or change between years)."""

    view: str
    type: str
    kwargs: dict[str, Any] = field(hash=False, compare=False)
    meta: dict[str, Any] = field(hash=False, compare=False)
    position: int = 0

    @property
    def note(self) -> str:
        """What the suite says about how this version of the rule is read (empty when nothing)."""
        return str(self.meta.get("note") or "")

    @property
    def guidance(self) -> str:
        """Say what usually causes a failure of this version and where it is fixed (empty when none can be given)."""
        return str(self.meta.get("guidance") or "")

    @property
    def years_status(self) -> str:
        """``I`` if some of the years are inferred, ``V`` if all were read in a DfE rule list."""
        return str(self.meta.get("years_status", "V"))

    def status(self, year: str) -> str:
        """Say how census ``year``'s version is known: ``V`` from a DfE rule list, ``I`` inferred, ``U`` unverified.

        An entry marked ``I`` whose years reach back before :data:`FIRST_LISTED_YEAR` is inferred
        only in those earlier years; one that starts later (a provisional rule of a new year) is
        inferred in all of them.
        """
        if self.years_status == "I" and FIRST_LISTED_YEAR <= year and min(self.years) < FIRST_LISTED_YEAR:
            return "V"
        return self.years_status


@dataclass(frozen=True)
class UncheckedRule(Rule):
    """A DfE rule that cannot be checked from the return alone, and why."""

    reason: str


def entries(directory: str | Path | None = None) -> tuple[RuleEntry, ...]:
    """Load every rule expectation from ``directory`` (default :data:`EXPECTATIONS_DIR`)."""
    return _entries(Path(directory or EXPECTATIONS_DIR).resolve())


@cache
def _entries(directory: Path) -> tuple[RuleEntry, ...]:
    if not any((directory / f"{view}.json").exists() for view in VIEWS):
        # A lost folder would otherwise check nothing and report a clean return.
        raise CinqaError(f"{directory}: no rule suites here (expected {', '.join(f'{v}.json' for v in VIEWS)})")
    out: list[RuleEntry] = []
    for view in VIEWS:
        path = directory / f"{view}.json"
        if not path.exists():
            continue
        suite = json.loads(path.read_text("utf-8"))
        for i, exp in enumerate(suite.get("expectations", [])):
            meta = exp.get("meta") or {}
            # A check whose rule was renamed, re-graded or reworded between years is written once,
            # with one meta per version (each with its own years): one entry per version.
            common = {k: v for k, v in meta.items() if k != "versions"}
            for version in meta.get("versions") or [{}]:
                out.append(_entry(path, view, i, {**exp, "meta": {**common, **version}}))
    return tuple(out)


def _entry(path: Path, view: str, i: int, exp: dict[str, Any]) -> RuleEntry:
    meta = exp.get("meta") or {}
    where = f"{path.name}, expectation {i + 1} ({exp.get('type')})"
    missing = [k for k in META_KEYS if not meta.get(k)]
    if missing:
        raise ValueError(f"{where}: meta lacks {', '.join(missing)}")
    if meta["severity"] not in SEVERITIES:
        raise ValueError(f"{where}: severity {meta['severity']!r} is not 'error' or 'query'")
    try:
        years = spec.parse_years(meta["years"])
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    fields = meta["fields"]
    return RuleEntry(
        rule=str(meta["rule"]),
        severity=meta["severity"],
        message=meta["message"],
        entity=meta["entity"],
        fields=tuple(fields) if isinstance(fields, list) else tuple(str(fields).split(",")),
        years=years,
        years_text=str(meta["years"]),
        view=view,
        type=exp["type"],
        kwargs=dict(exp.get("kwargs") or {}),
        meta=dict(meta),
        position=i,
    )


def unchecked(directory: str | Path | None = None) -> tuple[UncheckedRule, ...]:
    """Load the rules that cannot be checked from the return alone."""
    path = Path(directory or EXPECTATIONS_DIR) / UNCHECKED_FILE
    if not path.exists():
        return ()
    out = []
    for r in json.loads(path.read_text("utf-8")).get("rules", []):
        out.append(UncheckedRule(
            rule=str(r["rule"]), severity=r["severity"], message=r["message"], entity=r["entity"],
            fields=tuple(r["fields"]), years=spec.parse_years(r["years"]), years_text=str(r["years"]),
            reason=r["reason"]))
    return tuple(out)


def rules_for_year(year: str, directory: str | Path | None = None) -> tuple[RuleEntry, ...]:
    """Return the expectations that apply in census ``year``."""
    _check_year(year)
    return tuple(e for e in entries(directory) if year in e.years)


RETURN_ENTITIES = ("header", "return")
"""The entities of rules checked on the header or the return as a whole, not on a child."""


def return_level_rules(directory: str | Path | None = None) -> frozenset[str]:
    """Return the rules the suites check on the header or the whole return (either spelling)."""
    return frozenset(e.rule for e in entries(directory) if e.entity in RETURN_ENTITIES)


@cache
def _were_errors(directory: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """Map each query whose rule was an error under its plain number in earlier years to that number
    and its years (``"8525Q"``: ``"8525"``, 2012-13 to 2021-22)."""
    years: dict[str, set[str]] = {}
    for e in entries(directory):
        years.setdefault(e.rule, set()).update(e.years)
    return {c: (c[:-1], frozenset(years[c[:-1]])) for c in years if c.endswith("Q") and c[:-1] in years}


def rule_code(code: str, year: str, directory: str | Path | None = None) -> str:
    """Return the code a rule has in ``year`` (``"8525Q"`` is ``"8525"`` before 2022-23)."""
    old, years = _were_errors(Path(directory or EXPECTATIONS_DIR).resolve()).get(code, (code, frozenset()))
    return old if year in years else code


def current_code(code: str, directory: str | Path | None = None) -> str:
    """Return the current code of a rule given by either spelling (``"8525"`` is ``"8525Q"``)."""
    were = _were_errors(Path(directory or EXPECTATIONS_DIR).resolve())
    return next((q for q, (old, _) in were.items() if old == code), code)


def list_rules(year: str, directory: str | Path | None = None) -> pd.DataFrame:
    """List the rules of census ``year``: one row per rule, checkable ones and the others with the reason.

    Columns: rule, severity, message, entity, fields (comma-separated), years, status (the least
    certain of the rule's expectations in ``year``: V, I or U, see :meth:`RuleEntry.status`),
    note (the notes of its expectations in ``year``, each once), guidance (their fix guidance, each
    once), checkable, reason.
    """
    rows: dict[str, dict[str, Any]] = {}
    for e in rules_for_year(year, directory):
        row = rows.get(e.rule)
        if row is None:
            rows[e.rule] = e.listing(e.status(year), note=e.note, guidance=e.guidance)
            continue
        row["status"] = max(row["status"], e.status(year), key=_STATUS_ORDER.index)
        for key, text in (("note", e.note), ("guidance", e.guidance)):
            if text and text not in row[key]:
                row[key] = f"{row[key]} {text}".strip()
        if e.entity not in row["entity"].split(", "):
            row["entity"] += f", {e.entity}"
        row["fields"] += [f for f in e.fields if f not in row["fields"]]
    for u in unchecked(directory):
        if year in u.years and u.rule not in rows:
            rows[u.rule] = u.listing("V", u.reason)
    df = pd.DataFrame(list(rows.values()), columns=list(LIST_COLUMNS))
    df["fields"] = df["fields"].map(", ".join)
    df["checkable"] = df["checkable"].astype(bool)
    return df.sort_values("rule", key=lambda s: s.map(_rule_sort_key), kind="stable").reset_index(drop=True)


def with_rule_facts(frame: pd.DataFrame, year: str, directory: str | Path | None = None) -> pd.DataFrame:
    """Return a copy of ``frame`` (which has a ``rule`` column) with each rule's status, note and guidance in ``year``.

    The columns :data:`RULE_FACTS` go after ``message`` when there is one, else at the end; a rule
    the year does not list gets empty text.
    """
    listed = list_rules(year, directory).set_index("rule")
    out = frame.drop(columns=[c for c in RULE_FACTS if c in frame]).copy()
    at = list(out.columns).index("message") + 1 if "message" in out else len(out.columns)
    for i, col in enumerate(RULE_FACTS):
        values = out["rule"].astype("str").map(listed[col]).fillna("")
        out.insert(at + i, col, pd.Series(values.to_numpy(dtype=object), index=out.index, dtype="str"))
    return out


def _rule_sort_key(rule: str) -> tuple[int, str]:
    digits = re.match(r"\d+", rule)
    return (int(digits.group()) if digits else 0, rule)


def _check_year(year: str) -> None:
    if year not in spec.YEARS:
        from cinqa.errors import YearError

        raise YearError(f"census year {year!r} is not supported; choose one of {', '.join(spec.YEARS)}")


def resolve(value: Any, year: str) -> Any:
    """Replace the year-dependent placeholders in an expectation's kwargs (see the module doc)."""
    if isinstance(value, dict):
        if set(value) == {"$codes"}:
            return list(spec.codes(value["$codes"], year))
        return {k: resolve(v, year) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, year) for v in value]
    if isinstance(value, str):
        m = _DATE_TOKEN.match(value)
        if m:
            return census_date(year, m.group(1), m.group(2) or None).strftime("%Y-%m-%d")
    return value


def expectation_config(entry: RuleEntry, year: str) -> dict[str, Any]:
    """Return ``entry`` as a GX expectation configuration for census ``year``."""
    return {
        "type": entry.type,
        "kwargs": resolve(entry.kwargs, year),
        "meta": {**entry.meta, "view": entry.view},
        "severity": _GX_SEVERITY[entry.severity],
    }


def suites(year: str, rules: tuple[str, ...] | None = None, directory: str | Path | None = None) -> dict[str, Any]:
    """Assemble the GX suites of census ``year``, one per view that has rules (optionally only ``rules``)."""
    plans = view_suites(year, rules, directory)
    return {view: plan.full_suite() for view, plan in plans.items()}


@dataclass(frozen=True)
class ConditionGroup:
    """Expectations of one view that share a row condition, with the condition taken out.

    GX filters the batch again for every metric of an expectation with a row condition (and
    re-serialises the condition each time it rebuilds the expectation's configuration); a group
    is filtered once, with the same pandas clause GX would use, and its expectations run on the
    filtered rows without a condition. ``conditioned`` holds them with their condition, for a
    condition that cannot be applied (GX then reports the error per expectation).
    """

    clause: str | None
    suite: Any
    conditioned: Any
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ViewSuite:
    """The rules of one view for one year, ready to run: lean GX suites and what they need.

    GX rebuilds an expectation's configuration (a pydantic dump of every field, meta included)
    hundreds of times per validation, so the suites that run carry in ``meta`` only the rule and
    the entry's position in ``entries``; ``configs`` are the full configurations (row condition
    and registry meta) to put back on the results.
    """

    view: str
    year: str
    entries: tuple[RuleEntry, ...]
    configs: tuple[Any, ...]
    groups: tuple[ConditionGroup, ...]
    columns: tuple[str, ...]

    def full_suite(self) -> Any:
        """Return the view's suite as written: full meta and row conditions (for Data Docs and listings)."""
        import great_expectations as gx

        return gx.ExpectationSuite(name=f"cinqa-{self.view}-{self.year}",
                                   expectations=[c.to_domain_obj() for c in self.configs],
                                   meta={"census_year": self.year, "view": self.view})


def view_suites(year: str, rules: tuple[str, ...] | None = None,
                directory: str | Path | None = None) -> dict[str, ViewSuite]:
    """Assemble the runnable suites of census ``year`` per view (optionally only ``rules``); built once per process."""
    return _view_suites(year, tuple(rules) if rules is not None else None, Path(directory or EXPECTATIONS_DIR).resolve())


@cache
def _view_suites(year: str, rules: tuple[str, ...] | None, directory: Path) -> dict[str, ViewSuite]:
    import great_expectations as gx

    from cinqa.checks import register

    register()  # GX must know the custom expectations' names before it reads them

    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    def build(e: RuleEntry, config: dict[str, Any]) -> Any:
        # Built one by one: ExpectationSuite only logs and drops a configuration it can't build,
        # which would make a broken rule look like a passing one.
        try:
            return ExpectationConfiguration(**config).to_domain_obj()
        except Exception as exc:  # GX raises pydantic, config and registry errors alike
            raise ValueError(f"{e.view}.json, rule {e.rule} ({e.type}): cannot build the expectation: {exc}") from exc

    engine = PandasExecutionEngine()
    chosen = [e for e in rules_for_year(year, directory) if rules is None or e.rule in rules]
    out: dict[str, ViewSuite] = {}
    for view in VIEWS:
        mine = tuple(e for e in chosen if e.view == view)
        if not mine:
            continue
        opaque = any(e.kwargs.get("row_condition") and not isinstance(e.kwargs["row_condition"], dict)
                     for e in mine)
        configs = []
        grouped: dict[str, tuple[Any, list[Any], list[Any]]] = {}
        for i, e in enumerate(mine):
            full = expectation_config(e, year)
            conditioned = build(e, {**full, "meta": {"rule": e.rule, "entry": i}})
            configs.append(build(e, full).configuration)
            condition = full["kwargs"].get("row_condition")
            clause = None
            if condition:
                try:
                    clause = engine.condition_to_filter_clause(conditioned.row_condition)
                except Exception:  # not a Condition (a legacy string): GX applies it itself
                    clause = None
            key = json.dumps(condition, sort_keys=True, default=str) if clause else ""
            bare, reads = conditioned, read_columns(e.kwargs)
            if clause:
                kwargs = {k: v for k, v in full["kwargs"].items() if k != "row_condition"}
                bare = build(e, {**full, "kwargs": kwargs, "meta": {"rule": e.rule, "entry": i}})
                reads = read_columns({k: v for k, v in e.kwargs.items() if k != "row_condition"})
            grouped.setdefault(key, (clause, [], [], []))
            grouped[key][1].append(bare)
            grouped[key][2].append(conditioned)
            grouped[key][3].extend(reads)
        groups = tuple(
            ConditionGroup(clause=clause,
                           suite=gx.ExpectationSuite(name=f"cinqa-{view}-{year}-{n}", expectations=bare,
                                                     meta={"census_year": year, "view": view}),
                           conditioned=gx.ExpectationSuite(name=f"cinqa-{view}-{year}-{n}c", expectations=cond,
                                                           meta={"census_year": year, "view": view}),
                           columns=() if opaque else tuple(dict.fromkeys(cols)))
            for n, (clause, bare, cond, cols) in enumerate(grouped.values()))
        # A condition written as a string names its columns nowhere: GX then gets every column.
        columns = () if opaque else tuple(dict.fromkeys(c for e in mine for c in read_columns(e.kwargs)))
        out[view] = ViewSuite(view=view, year=year, entries=mine, configs=tuple(configs), groups=groups,
                              columns=columns)
    return out


def read_columns(kwargs: dict[str, Any]) -> list[str]:
    """Name the view columns an expectation reads: its column kwargs and its row condition's columns.

    Column kwargs are ``column``, ``column_A``, ``column_B``, ``column_list`` and any ending in
    ``_column`` (``min_column``, ``max_column``); GX is given only the columns its suite reads.
    """
    out: list[str] = []
    for key, value in kwargs.items():
        if key in ("column", "column_A", "column_B") or key.endswith("_column"):
            if isinstance(value, str):
                out.append(value)
        elif key == "column_list" and isinstance(value, list):
            out += [v for v in value if isinstance(v, str)]
    return out + _condition_columns(kwargs.get("row_condition"))


def _condition_columns(cond: Any) -> list[str]:
    if not isinstance(cond, dict):
        return []
    if "conditions" in cond:
        return [c for sub in cond["conditions"] for c in _condition_columns(sub)]
    column = cond.get("column")
    return [column["name"]] if isinstance(column, dict) and "name" in column else []


def view_entity(view: str) -> str:
    """Return the entity name failures of ``view`` report (its table, or ``header``/``return``)."""
    return VIEW_TABLES[view] or view
