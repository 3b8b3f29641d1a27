"""Labelled faults: break one DfE rule at a time in a clean synthetic return, and say where.

Which rules exist, in which years and under which code, is read from the rule suites
(``expectations/``, through :mod:`cinqa.rules`); this module only knows how to break each of
them. A rule of a year is injectable when an injector is registered for its code (either
spelling: ``"8525"`` and ``"8525Q"`` are one rule) and :data:`NOT_INJECTABLE` gives no reason
against it in that year; every other rule of the suites is *unexplained*, which the tests refuse.

An injector picks a child not yet touched, changes as little as it can so that exactly its rule
fails, and records a truth row: rule, LAchildID, child, entity, episode, item (the entity's own
ordinal, as ``cinqa.validate`` reports it) and the change made. Most are rows of :data:`EDITS`
(choose a row; set values of it, its child or its episode; add a row beside it; remove what
hangs under it), the others small functions (:func:`injector`). A duplicated value (1520, 8510)
makes two children fail, so both get a truth row. A fault that cannot help tripping a second rule
(two open episodes also overlap) says so in its note; the truth names the intended rule only.

Injectors choose from the rows of the clean return's validation views (:mod:`cinqa.views`, the
facts the rules read) with a few facts of their own, computed once: every fault goes to another
child, so they stay true for the children still untouched. Return-level rules (checked on the
header or the return as a whole) change many children and are injected only when named.
"""

from __future__ import annotations

import dataclasses
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from cinqa import rules, spec, workdays
from cinqa.returns import CensusReturn
from cinqa.synth.edit import TableEdits, describe
from cinqa.synth.timeline import UPN_LETTERS, upn_check_letter
from cinqa.views import VIEW_TABLES, ViewBuilder

TRUTH_COLUMNS = ("rule", "LAchildID", "child", "entity", "episode", "item", "change")
DAY = pd.Timedelta(days=1)

_NOT_TRIED_2012_13 = ("the 2012-13 suites check this on initial and core assessments, on which the injectors "
                      "have not been tried yet")
NOT_INJECTABLE: dict[str, tuple[str | None, str]] = {
    "8842Q": (None, "a <Reviews> group without a <CPPreviewDate> has no row in the tables (the reader reports it "
                    "as a structural issue), so the fault cannot be written into a return"),
    **dict.fromkeys(("1103", "2991Q", "8608", "8696", "8736", "8825Q", "8867"), ("2012-13", _NOT_TRIED_2012_13)),
    **dict.fromkeys(("CA-1103", "IA-8670Q", "CA-8670Q"),
                    ("2012-13", "a provisional 2012-13 initial/core assessment rule; no injector written yet")),
}
"""Rules of the suites that are not injected: code (either spelling) -> (its years, None for every
year, and the reason)."""


def _reason(code: str, year: str, expectations: str | Path | None) -> tuple[str, str] | None:
    """Return the entry of :data:`NOT_INJECTABLE` (its key and reason) that covers ``code`` in ``year``."""
    for key in (rules.current_code(code, expectations), code):
        years, why = NOT_INJECTABLE.get(key, (None, ""))
        if why and year in spec.parse_years(years):
            return key, why
    return None


def coverage(year: str, expectations: str | Path | None = None) -> dict[str, str | None]:
    """Map every rule of ``year``'s suites (as spelt that year) to why it is not injected: ``None`` when an
    injector breaks it, ``""`` when nothing is registered for it (neither an injector nor a reason)."""
    out: dict[str, str | None] = {}
    for code in sorted({e.rule for e in rules.rules_for_year(year, expectations)}):
        reason = _reason(code, year, expectations)
        out[code] = reason[1] if reason else None if rules.current_code(code, expectations) in INJECTORS else ""
    return out


def injectable_rules(year: str, expectations: str | Path | None = None) -> list[str]:
    """Return the rule codes (as spelt in ``year``) that can be injected into a return of ``year``."""
    return [code for code, why in coverage(year, expectations).items() if why is None]


def uninjectable_rules(year: str, expectations: str | Path | None = None) -> dict[str, str]:
    """Return the rules of ``year`` that are not injected, each with its written reason."""
    return {code: why for code, why in coverage(year, expectations).items() if why}


def unexplained_rules(year: str, expectations: str | Path | None = None) -> list[str]:
    """Return the rules of ``year``'s suites with neither an injector nor a reason not to inject them."""
    return [code for code, why in coverage(year, expectations).items() if why == ""]


def stale_reasons(expectations: str | Path | None = None) -> list[str]:
    """Return the keys of :data:`NOT_INJECTABLE` that explain no rule of the suites in some year they name."""
    used: dict[str, set[str]] = {}
    for year in spec.YEARS:
        for code in {e.rule for e in rules.rules_for_year(year, expectations)}:
            reason = _reason(code, year, expectations)
            if reason:
                used.setdefault(reason[0], set()).add(year)
    return sorted(key for key, (years, _) in NOT_INJECTABLE.items()
                  if (spec.parse_years(years) - used.get(key, set()) if years else not used.get(key)))


def child_level_rules(year: str, expectations: str | Path | None = None) -> list[str]:
    """Return the injectable rules of ``year`` that break one child (not the return-level ones)."""
    level = rules.return_level_rules(expectations)
    return [c for c in injectable_rules(year, expectations) if c not in level]


class Unfit(Exception):
    """Raised by an injector when no untouched child of the return fits its fault (nothing was changed)."""


class Faults(TableEdits):
    """A return's tables being edited, the facts injectors choose from, and the faults so far."""

    def __init__(self, ret: CensusReturn, rnd: random.Random) -> None:
        super().__init__(ret)
        self.clean = ret.tables
        self.views = ViewBuilder(ret)
        self.start = ret.census_start
        self.ref = ret.reference_date
        self.rnd = rnd
        self.used: set[int] = set()
        self.faults: list[tuple[tuple[Any, ...], int]] = []
        """Each truth row (see :data:`TRUTH_COLUMNS`) with the number of the injection that made it."""
        self.sex = "Sex" if "Sex" in self.t["children"] else "GenderCurrent"
        self._facts: dict[str, pd.DataFrame] = {}
        self._code = ""
        self._fault = 0

    def facts(self, table: str) -> pd.DataFrame:
        """Return the rows of ``table`` in the clean return with the facts injectors choose by (see :func:`_facts`)."""
        if table not in self._facts:
            self._facts[table] = _facts(self, table)
        return self._facts[table]

    def choose(self, df: pd.DataFrame, *masks: Any) -> pd.Series:
        """Return a random row of ``df`` whose child is untouched, where the first mask that has one holds;
        raise :class:`Unfit` when none has."""
        untouched = ~df["child"].isin(self.used).to_numpy()
        for mask in masks or (True,):
            rows = np.flatnonzero(untouched & np.asarray(mask, dtype=bool))
            if len(rows):
                return df.iloc[rows[self.rnd.randrange(len(rows))]]
        raise Unfit

    # -- editing and recording -----------------------------------------------------------------

    def fault(self, child: int | None, entity: str, change: str, episode: Any = None, item: Any = None) -> None:
        """Record the fault being injected; mark its child as used."""
        child, episode, item = (None if x is None else int(x) for x in (child, episode, item))
        if child is not None:
            self.used.add(child)
        self.faults.append(((self._code, None, child, entity, episode, item, change), self._fault))

    def record(self, entity: str, row: pd.Series, change: str, item: Any = None) -> None:
        """Record the fault at ``row`` of ``entity`` (its episode, and its own ordinal unless ``item`` is given)."""
        keys = spec.TABLE_KEYS[entity]
        self.fault(row["child"], entity, change, episode=row["episode"] if "episode" in keys else None,
                   item=row[keys[-1]] if item is None else item)

    def result(self) -> tuple[CensusReturn, pd.DataFrame]:
        """Return the edited return (typed like the reader's) and the truth table."""
        ret = self.edited()
        ids = ret.children.set_index("child")["LAchildID"]
        truth = pd.DataFrame([row for row, _ in self.faults], columns=list(TRUTH_COLUMNS))
        truth = truth.astype({"rule": "str", "child": "Int64", "episode": "Int64", "item": "Int64"})
        truth["LAchildID"] = truth["child"].map(ids).astype("str")
        # Which rows one fault made, for undoing a fault whole (synth.generate_runs); not a truth column.
        truth.attrs["fault"] = [n for _, n in self.faults]
        return ret, truth


def wd(date: pd.Timestamp, n: int) -> pd.Timestamp:
    """Move ``date`` by ``n`` working days."""
    return pd.Timestamp(workdays.add_working_days(pd.Timestamp(date), n))


def saturday_after(date: pd.Timestamp) -> pd.Timestamp:
    """Return the first Saturday after ``date``."""
    return pd.Timestamp(date) + pd.Timedelta(days=(5 - pd.Timestamp(date).weekday()) % 7 or 7)


class Injector(NamedTuple):
    """How one rule is broken: the function, and the kind of row it needs (which sets when it chooses)."""

    needs: str
    inject: Callable[[Faults], None]


INJECTORS: dict[str, Injector] = {}
"""The injector of each rule, keyed by its code as spelt from 2022-23."""

ORDER = {"pre_proceedings": 0, "cp_plans": 0, "cp_reviews": 0, "cin_plans": 0, "section47": 1, "assessments": 2,
         "assessment_factors": 2, "episodes": 3, "children": 4, "disabilities": 4, "return": 5}
"""Order of injection when many rules are asked for: faults needing rarer rows (plans, enquiries)
choose first, so that they still find an untouched child; return-level faults go last, so that a
child-level one does not undo them."""


def register(code: str, needs: str, inject: Callable[[Faults], None]) -> None:
    """Register ``inject`` as the injector of rule ``code`` (spelt as from 2022-23), needing ``needs`` rows."""
    if code in INJECTORS:
        raise ValueError(f"rule {code} has two injectors")
    if needs not in ORDER:
        raise ValueError(f"rule {code}: needs {needs!r} is not one of {', '.join(ORDER)}")
    INJECTORS[code] = Injector(needs, inject)


def injector(code: str, needs: str) -> Callable[[Callable[[Faults], None]], Callable[[Faults], None]]:
    """Register the decorated function as the injector of rule ``code`` (see :func:`register`)."""
    def decorate(fn: Callable[[Faults], None]) -> Callable[[Faults], None]:
        register(code, needs, fn)
        return fn
    return decorate


def inject(ret: CensusReturn, errors: float | Sequence[str], seed: int = 0,
           expectations: str | Path | None = None, avoid: Sequence[int] = ()) -> tuple[CensusReturn, pd.DataFrame]:
    """Return a copy of ``ret`` with faults injected, and the truth table.

    ``errors`` is either a share of children (each gets one fault of a rule drawn from the
    child-level rules of the year) or a list of rule codes, each injected once. ``expectations``
    is another folder of rule suites to take the year's rules from. No fault goes to a child
    whose ordinal is in ``avoid`` (children already at fault, say).
    """
    rnd = random.Random(f"cinqa.synth.inject:{seed}:{ret.year}")
    f = Faults(ret, rnd)
    f.used.update(int(c) for c in avoid)
    available = injectable_rules(ret.year, expectations)
    if isinstance(errors, (int, float)) and not isinstance(errors, bool):
        if not 0 <= errors <= 1:
            raise ValueError(f"errors={errors} is not a share between 0 and 1")
        want = round(errors * len(ret.children))
        pool = child_level_rules(ret.year, expectations)
        order: list[str] = []
        misses = 0
        while len(f.faults) < want and misses < len(pool):
            if not order:
                order = pool[:]
                rnd.shuffle(order)
            code = order.pop()
            misses = 0 if _apply(f, code, expectations) else misses + 1
    else:
        # either spelling of a rule whose severity changed: "8525Q" in 2021-22 is "8525"
        codes = [rules.rule_code(rules.current_code(c, expectations), ret.year, expectations) for c in errors]
        unknown = [asked for asked, c in zip(errors, codes) if c not in available]
        if unknown:
            raise ValueError(f"no injector for rule(s) {', '.join(unknown)} in {ret.year}; "
                             f"injectable: {', '.join(available)}")
        for code in sorted(codes, key=lambda c: ORDER[INJECTORS[rules.current_code(c, expectations)].needs]):
            if not _apply(f, code, expectations):
                warnings.warn(f"rule {code}: no child of this return fits the fault; not injected",
                              stacklevel=2)
    return f.result()


def _apply(f: Faults, code: str, expectations: str | Path | None) -> bool:
    f._code = code
    f._fault += 1
    try:
        INJECTORS[rules.current_code(code, expectations)].inject(f)
    except Unfit:
        return False
    return True


def _either(*ways: Callable[[Faults], None]) -> Callable[[Faults], None]:
    """Return an injector trying each of ``ways`` in turn until one finds a row that fits."""
    def inject(f: Faults) -> None:
        for way in ways[:-1]:
            try:
                return way(f)
            except Unfit:
                pass
        ways[-1](f)
    return inject


# -- the rows injectors choose from: a table's rows as its validation view holds them, with facts ----


def _facts(f: Faults, table: str) -> pd.DataFrame:
    """Return the clean return's rows of ``table`` as its validation view holds them, with facts.

    Each row also has ``label`` (its index in ``f.t``), its keys under their table's names, every
    fact of its episode (a child's rows: of its child) that it lacks, the episode's label as
    ``episodes_label``, and the facts :data:`_OWN_FACTS` adds for the table.
    """
    keys = spec.TABLE_KEYS[table]
    view = f.views.view(next(view for view, of in VIEW_TABLES.items() if of == table))
    df = view.assign(label=f.clean[table].index.to_numpy(),
                     **{k: view["item" if k == keys[-1] else k].astype("int64") for k in keys})
    up = "episodes" if "episode" in keys[:-1] else "children" if table != "children" else None
    if up:
        on = list(spec.TABLE_KEYS[up])
        parent = f.facts(up).rename(columns={"label": f"{up}_label"})
        df = df.merge(parent[on + [c for c in parent if c not in df]], on=on, how="left")
    if up == "episodes":
        df["last"] = df.groupby(["child", "episode"])[keys[-1]].transform("max") == df[keys[-1]]
    return _OWN_FACTS[table](f, df) if table in _OWN_FACTS else df


def _children(f: Faults, k: pd.DataFrame) -> pd.DataFrame:
    referrals = f.clean["episodes"].groupby("child")["CINreferralDate"]
    k = k.assign(born=k["PersonBirthDate"].notna(), alive=k["PersonDeathDate"].isna(), has_upn=k["UPN"].notna(),
                 any_in_need=k["has_further_action_episode"], first_referral=k["child"].map(referrals.min()),
                 last_referral=k["child"].map(referrals.max()), any_cpp=k["child"].isin(f.clean["cp_plans"]["child"]),
                 any_plan=k["child"].isin(f.clean["cin_plans"]["child"]))
    planless = ~k["any_cpp"] & ~k["any_plan"]
    return k.assign(unborn=k["ExpectedPersonBirthDate"].notna() & ~k["born"], planless=planless,
                    quiet_newborn=planless & (k["PersonBirthDate"] > f.start))


def _episodes(f: Faults, e: pd.DataFrame) -> pd.DataFrame:
    nfa = e["ReferralNFA"].fillna(False).astype(bool)
    closed = e["CINclosureDate"].notna()
    latest = e["is_latest_referral"]
    e = e.assign(nfa=nfa, closed=closed, open=~closed & ~nfa, nin=e["ReasonForClosure"].isin(["RC8", "RC9"]),
                 closed_latest=closed & latest, earlier_in_need=closed & ~nfa & ~latest,
                 assessed=e["assessments_in_episode"] > 0, no_activity=(e["assessments_in_episode"] == 0)
                 & (e["s47_in_episode"] == 0) & (e["cin_plans_in_episode"] == 0))
    first = f.clean["assessments"].groupby(["child", "episode"])["AssessmentActualStartDate"].min().rename(
        "first_assessment")
    e = e.merge(first.reset_index(), on=["child", "episode"], how="left")
    # 8820: the closure of the child's previous episode, when that was in need and two days or longer
    s = e.sort_values(["child", "CINreferralDate"], kind="stable")
    fits = s["closed"] & ~s["nfa"] & (s["CINclosureDate"] - s["CINreferralDate"] >= 2 * DAY)
    return e.assign(previous_closure=s["CINclosureDate"].where(fits).groupby(s["child"]).shift(1))


def _assessments(f: Faults, a: pd.DataFrame) -> pd.DataFrame:
    codes = "," + a["factor_codes"].fillna("") + ","
    done, has_21 = a["AssessmentAuthorisationDate"].notna(), codes.str.contains(",21,", regex=False)
    last_of_open = done & a["open"] & a["last"]  # authorised, the last of an open episode
    return a.assign(done=done, done_without_21=done & (a["factors_for_assessment"] > 0) & ~has_21,
                    last_of_open=last_of_open,
                    last_of_open_alone=last_of_open & (a["open_assessments_in_episode"] == 0))


def _link(df: pd.DataFrame, other: pd.DataFrame, keys: list[str], left: str, right: str,
          take: dict[str, str]) -> pd.DataFrame:
    """Add to ``df`` the columns ``take`` (``other``'s name: new name) of the row of ``other`` with the
    same ``keys`` whose ``right`` equals ``df``'s ``left`` (the first such row; missing when none)."""
    o = other.reindex(columns=[*keys, right, *take]).rename(columns={right: left, **take})
    o = o.astype({left: df[left].dtype}).dropna(subset=[left]).drop_duplicates([*keys, left])
    return df.merge(o, on=[*keys, left], how="left")


def _section47(f: Faults, s: pd.DataFrame) -> pd.DataFrame:
    not_required = s["ICPCnotRequired"].fillna(False).astype(bool)
    # the protection plan of the child that starts on the enquiry's conference
    s = _link(s, f.facts("cp_plans"), ["child"], "DateOfInitialCPC", "CPPstartDate",
              {"label": "cp_plans_label", "first_review": "cpp_first_review"})
    saturday = s["DateOfInitialCPC"].map(lambda d: saturday_after(d) if pd.notna(d) else pd.NaT)
    return s.assign(open_s47=s["DateOfInitialCPC"].isna() & ~not_required,
                    has_cpp=s["cp_plans_label"].notna(), has_icpc=s["DateOfInitialCPC"].notna(),
                    last_not_required=s["last"] & not_required, saturday_after_icpc=saturday,
                    # the conference can move to that Saturday inside its episode and the year
                    weekend_free=saturday <= s["CINclosureDate"].fillna(f.ref).clip(upper=f.ref))


def _cp_plans(f: Faults, c: pd.DataFrame) -> pd.DataFrame:
    rv, own = f.clean["cp_reviews"], ["child", "episode", "cpp"]
    c = c.merge(rv.groupby(own)["CPPreviewDate"].min().rename("first_review").reset_index(), on=own, how="left")
    # the CIN plan it steps down to (starting on its end date), and a review the day before it ends
    plans = f.clean["cin_plans"].reset_index(names="label")
    c = _link(c, plans, ["child", "episode"], "CPPendDate", "CINPlanStartDate",
              {"label": "cin_plans_label", "cin_plan": "cin_plan", "CINPlanEndDate": "step_end"})
    c = _link(c.assign(day_before_end=c["CPPendDate"] - DAY), rv, own, "day_before_end", "CPPreviewDate",
              {"review": "review_before_end"})
    # 2885: plans starting this year that can start a working day later with nothing else moving
    later = c["CPPstartDate"].map(lambda d: wd(d, 1) if pd.notna(d) else pd.NaT)
    bound = c[["first_review", "CPPendDate"]].min(axis=1).fillna(f.ref + DAY)
    free = (c["CPPstartDate"] >= f.start) & (later < bound) & (later <= f.ref) & (c["cin_plans_in_episode"] == 0)
    return c.assign(ended=c["CPPendDate"].notna(), running=c["CPPendDate"].isna() & c["open"],
                    step_down=c["cin_plans_label"].notna(), working_day_after_start=later, next_day_free=free)


def _cin_plans(f: Faults, p: pd.DataFrame) -> pd.DataFrame:
    # the protection plan of the episode that starts on the CIN plan's end date
    p = _link(p, f.facts("cp_plans"), ["child", "episode"], "CINPlanEndDate", "CPPstartDate",
              {"label": "next_cpp_label", "first_review": "next_cpp_first_review"})
    return p.assign(ended=p["CINPlanEndDate"].notna(), running=p["CINPlanEndDate"].isna() & p["open"],
                    lone_plan=~p["any_cpp"] & (p.groupby("child")["cin_plan"].transform("size") == 1))


def _pre_proceedings(f: Faults, pp: pd.DataFrame) -> pd.DataFrame:
    steps = ("PPStartDate", "LBPSentDate", "InitialPPMeetingDate", "StepDecisionDate", "CourtAppDate",
             "LetterInitCPDate", "PPOutcome", "ReviewMeetingsCount")
    return pp.assign(offered=pp["FGDMMeetingOffer"].fillna(False).astype(bool),
                     **{"has_" + column: pp[column].notna() for column in steps})


_OWN_FACTS: dict[str, Callable[[Faults, pd.DataFrame], pd.DataFrame]] = {
    "children": _children, "episodes": _episodes, "assessments": _assessments, "section47": _section47,
    "cp_plans": _cp_plans, "cin_plans": _cin_plans, "pre_proceedings": _pre_proceedings,
}


# -- faults that edit one chosen row, or add one beside it, as data ------------------------------------


Mask = Callable[[Faults, pd.DataFrame], Any]
Where = Mask | str
"""Which rows may be chosen: ``f(faults, rows)`` giving a mask, or the name of a flag of the rows (``"~flag"``: not)."""
Values = Callable[[Faults, pd.Series], dict[str, Any]]


def _chosen(f: Faults, table: str, where: Where | tuple[Where, ...] | None) -> pd.Series:
    """Return an untouched row of ``f.facts(table)`` where the first of ``where`` that has one holds."""
    rows = f.facts(table)
    wheres = where if isinstance(where, tuple) else (where,) if where else ()
    return f.choose(rows, *(w(f, rows) if callable(w) else ~rows[w[1:]] if w[0] == "~" else rows[w] for w in wheres))


@dataclass(frozen=True)
class Edit:
    """Break a rule by editing one row chosen from ``f.facts(table)``, or adding a row beside it.

    ``values`` maps each column to its new value or to ``f(faults, row)`` computing it, or is such
    a function giving the whole map: a child's own column is set on the child, and a column spelt
    ``"episodes.X"`` (any ``table.column``) on the row of that table whose label the chosen row
    holds as ``episodes_label``; with ``add`` the others are the values of a row added to that table
    under the chosen row's parents instead. ``where`` is :data:`Where`, or a tuple of them tried in
    turn; each table of ``drop`` first loses its rows under the chosen one. The fault is reported at
    the added row, else at the chosen row as ``report`` (default ``table``).
    """

    table: str
    values: dict[str, Any] | Values
    where: Where | tuple[Where, ...] | None = None
    report: str | None = None
    drop: tuple[str, ...] = ()
    add: str | None = None

    def __call__(self, f: Faults) -> None:
        row = _chosen(f, self.table, self.where)
        values = self.values(f, row) if callable(self.values) else self.values
        values = {column: v(f, row) if callable(v) else v for column, v in values.items()}
        removed = {table: f.drop(table, f.under(table, row, spec.TABLE_KEYS[self.table])) for table in self.drop}
        new = {column: v for column, v in values.items() if self.add and "." not in column}
        changes = [f.edit(self.table, row, column, v) for column, v in values.items() if column not in new]
        changes += [f"removed {n} {table} rows" for table, n in removed.items() if n]
        n = None
        if self.add:
            n = f.add(self.add, **{k: row[k] for k in spec.TABLE_KEYS[self.add][:-1]}, **new)
            changes.append(f"added {self.add} row {n}: " + ", ".join(f"{c}={describe(v)}" for c, v in new.items()))
        f.record(self.report or self.add or self.table, row, "; ".join(changes), item=None if self.report else n)


def _days(column: str, n: int = 0) -> Callable[[Faults, pd.Series], Any]:
    """Return a value for :class:`Edit`: the chosen row's date ``column`` moved by ``n`` days (the census
    period's first and last days are ``census_start`` and ``census_end``)."""
    return lambda f, r: r[column] + n * DAY


def _death_before(table: str, date: str, *after: str, also: Mask) -> Edit:
    """Return the fault of a child dying the day before the chosen row's ``date``, chosen where that day
    comes on or after the census start, the columns ``after``, the child's birth and last referral,
    and where ``also`` holds."""
    def where(f: Faults, r: pd.DataFrame) -> Any:
        death = r[date] - DAY
        return (death >= f.start) & r[[*after, "last_referral", "PersonBirthDate"]].le(death, axis=0).all(axis=1) \
            & also(f, r)
    return Edit(table, {"PersonDeathDate": _days(date, -1)}, where)


def _before(step: str, later: str) -> tuple[Where, str]:
    """Choose pre-proceedings with ``step``, those without the ``later`` step first."""
    return lambda f, p: p["has_" + step] & ~p["has_" + later], "has_" + step


def _wrong_check_letter(f: Faults, k: pd.Series) -> str:
    upn = k["UPN"]
    return UPN_LETTERS[(UPN_LETTERS.index(upn[0]) + 1 + f.rnd.randrange(22)) % 23] + upn[1:]


def _upn_of_unknown_la(f: Faults, k: pd.Series) -> str:
    valid = set(spec.codes("la"))
    bad = next(c for c in (f"{n:03d}" for n in range(999, 0, -1)) if c not in valid)
    body = bad + k["UPN"][4:]
    return upn_check_letter(body) + body  # a right check letter, so only the LA code is wrong


def _unborn(f: Faults, k: pd.Series, sex: dict[str, str]) -> dict[str, Any]:
    """Return the values making a born child unborn, due soon, with ``sex`` (none for an unborn child)."""
    return {"PersonBirthDate": None, "ExpectedPersonBirthDate": f.ref + 20 * DAY, f.sex: sex[f.sex]} \
        if k["born"] else {}


_UNBORN = ("unborn", lambda f, k: k["born"] & (k["PersonBirthDate"] >= f.ref - 250 * DAY)
           & (k["first_referral"] >= f.ref - 250 * DAY))
"""Choose an unborn child, else a baby referred lately."""


def _same_cpp(f: Faults, c: pd.Series, **dates: Any) -> dict[str, Any]:
    """Return the values of a plan beside ``c``: its start, categories and previous plans, and ``dates``."""
    return {k: c[k] for k in ("CPPstartDate", "InitialCategoryOfAbuse", "LatestCategoryOfAbuse", "NumberOfPreviousCPP")
            } | dates


def _overlap_end(f: Faults, c: pd.Series) -> pd.Timestamp:
    limit = min(x for x in (c["CINclosureDate"], c["CPPendDate"], f.ref) if pd.notna(x))
    return max(f.start + DAY, min(limit, f.start + DAY * 10))


_REOPEN = {"CINclosureDate": None, "ReasonForClosure": None}
_UNAUTHORISE = {"AssessmentAuthorisationDate": None}
_FACTORS = ("assessment_factors",)
_ASSESSMENTS = ("assessment_factors", "assessments")
_EPISODES_AND_CONTENTS = tuple(table for table, keys in spec.TABLE_KEYS.items() if "episode" in keys)
"""The episodes table first, then every table of what an episode holds."""

_UNKNOWN_SEX, _MALE = {"Sex": "U", "GenderCurrent": "0"}, {"Sex": "M", "GenderCurrent": "1"}

EDITS: dict[str, Edit | tuple[Edit, ...]] = {
    # -- children
    "1510": Edit("children", {"UPN": _wrong_check_letter}, "has_upn"),
    "1530": Edit("children", {"UPN": _upn_of_unknown_la}, "has_upn"),
    # characters 5-12 not numeric: the check letter cannot be computed either (1510 may fail)
    "1540": Edit("children", {"UPN": lambda f, k: k["UPN"][:6] + "A" + k["UPN"][7:]}, "has_upn"),
    # I is not a UPN letter, so the check letter may fail too (1510)
    "1550": Edit("children", {"UPN": lambda f, k: k["UPN"][:12] + "I"}, "has_upn"),
    "1560Q": Edit("children", {"FormerUPN": "X12345"}, "has_upn"),
    "1570": Edit("children", {"LAchildID": lambda f, k: (str(k["LAchildID"]) + "0" * 21)[:21]}),
    "1580": Edit("children", {"LAchildID": lambda f, k: f"{k['LAchildID']}-A"}),
    "4180": Edit("children", lambda f, k: {f.sex: None}),
    "4220": Edit("children", {"Ethnicity": "WBR"}),
    "8500": Edit("children", {"LAchildID": None}),
    # referrals stay within 280 days of the new birth date (8606)
    "8520": Edit("children", {"PersonBirthDate": _days("census_end", 5)},
                 lambda f, k: k["born"] & (k["first_referral"] >= f.ref - 275 * DAY)),
    # neither a birth date nor an expected one
    "8525Q": Edit("children", {"PersonBirthDate": None}, "born"),
    "8530Q": Edit("children", lambda f, k: _unborn(f, k, _UNKNOWN_SEX) | {"ExpectedPersonBirthDate": f.ref - 60 * DAY},
                  _UNBORN),
    # a death the day before birth; if the child was referred after that day, 8555Q fails too
    "8535Q": Edit("children", {"PersonDeathDate": _days("PersonBirthDate", -1)}, (
        lambda f, k: k["quiet_newborn"] & (k["last_referral"] < k["PersonBirthDate"]), "quiet_newborn")),
    "8540": Edit("children", {}, lambda f, k: k["born"] & k["any_in_need"], drop=("disabilities",)),
    "8545Q": Edit("children", {"PersonDeathDate": _days("census_end", 10)}, lambda f, k: k["born"] & k["alive"]),
    "8590": Edit("children", {}, drop=_EPISODES_AND_CONTENTS),
    "8750": Edit("children", lambda f, k: _unborn(f, k, _MALE) | {f.sex: _MALE[f.sex]}, _UNBORN),
    "8770Q": Edit("children", {"UPN": None, "UPNunknown": None}, lambda f, k: (
        k["PersonBirthDate"] < f.ref - pd.DateOffset(years=6, months=1)) & k["any_in_need"] & k["has_upn"]),
    "8772": Edit("children", {"UPN": None, "UPNunknown": "UN7"},
                 lambda f, k: (k["PersonBirthDate"] > f.ref - pd.DateOffset(years=6)) & k["any_in_need"]),
    "8775Q": Edit("children", {"PersonBirthDate": lambda f, k: f.ref - pd.DateOffset(years=26)},
                  lambda f, k: k["has_upn"] & (k["open_episodes_for_child"] > 0)),
    # -- episodes
    # a referral after the child's death, with no plan that the death would cut short
    "8555Q": Edit("episodes", {"PersonDeathDate": _days("CINreferralDate", -1)}, lambda f, e: (
        e["is_latest_referral"] & e["alive"] & e["planless"] & (e["CINreferralDate"] - DAY >= f.start)
        & (e["CINreferralDate"] > e["PersonBirthDate"]))),
    "8568": Edit("episodes", {"ReferralNFA": None}),
    "8565": Edit("episodes", {"CINclosureDate": _days("latest_activity_date", -1)}, lambda f, e: (
        e["closed"] & ~e["nfa"] & (e["assessments_in_episode"] + e["s47_in_episode"] + e["cpps_in_episode"] > 0)
        & (e["latest_activity_date"] > e["CINreferralDate"]) & (e["latest_activity_date"] > f.start))),
    "8569Q": Edit("episodes", {"ReferralNFA": True}, lambda f, e: ~e["nfa"] & e["no_activity"]
                  & (e["cpps_in_episode"] == 0) & (e["CINreferralDate"] < f.start - 5 * DAY)),
    "8585Q": Edit("episodes", {"ReasonForClosure": "RC2"}, lambda f, e: (e["ReasonForClosure"] == "RC7") & e["alive"]),
    # a closed episode: an open one without a referral date is also "not the latest" (8816)
    "8600": Edit("episodes", {"CINreferralDate": None}, "closed"),
    # the first referral 285 days before the new birth date
    "8606": Edit("episodes", {"PersonBirthDate": _days("CINreferralDate", 285)}, lambda f, e: e["born"]
                 & (e["CINreferralDate"] == e["first_referral"]) & (e["CINreferralDate"] <= f.ref - 290 * DAY)),
    "8610": Edit("episodes", {"PrimaryNeedCode": None}, "~nfa"),
    "8620": Edit("episodes", {"CINclosureDate": _days("census_end", 10)}, "closed_latest"),
    "8630": Edit("episodes", {"CINclosureDate": _days("CINreferralDate", -1)},
                 lambda f, e: e["nfa"] & e["closed"] & (e["CINreferralDate"] > f.start)),
    "8640": Edit("episodes", {"ReasonForClosure": "RC0"}, "closed"),
    "8650": Edit("episodes", {"PrimaryNeedCode": "N10"}, "~nfa"),
    # not a case closed after assessment (RC8/RC9), whose factor 21 would then fail 8873Q too
    "8805": Edit("episodes", {"ReasonForClosure": None}, lambda f, e: e["closed"] & ~e["nin"]),
    "8810": Edit("episodes", {"CINclosureDate": None}, "closed_latest"),
    # reopen an earlier episode of a child whose latest is open (8816 and 8820 fail too)
    "8815": Edit("episodes", _REOPEN, lambda f, e: e["earlier_in_need"]
                 & e["child"].isin(e.loc[e["open"] & e["is_latest_referral"], "child"])),
    # reopen an episode that is not the child's latest, the child having no open one (8820 fails too)
    "8816": Edit("episodes", _REOPEN, lambda f, e: e["earlier_in_need"] & (e["open_episodes_for_child"] == 0)),
    # move a referral inside the child's previous (closed, in-need) episode
    "8820": Edit("episodes", {"CINreferralDate": _days("previous_closure", -1)},
                 lambda f, e: e["previous_closure"].notna() & ~e["nfa"]),
    "8831": Edit("episodes", {"ReferralNFA": True},
                 lambda f, e: e["nin"] & e["assessed"] & (e["CINreferralDate"] > f.start + 2 * DAY)),
    "8866": Edit("episodes", {"ReferralSource": None},
                 lambda f, e: e["ReferralSource"].notna() & (e["CINreferralDate"] >= pd.Timestamp(2013, 4, 1))),
    "2991Q": Edit("episodes", {}, lambda f, e: e["assessed"] & (e["s47_in_episode"] > 0), drop=_ASSESSMENTS),
    "8825Q": Edit("episodes", {}, lambda f, e: e["nin"] & e["assessed"], drop=_ASSESSMENTS),
    # -- section 47 enquiries
    "2884": Edit("section47", {"episodes.DateOfInitialCPC": _days("DateOfInitialCPC")}, "has_icpc"),
    "2889": Edit("section47", {"S47ActualStartDate": _days("CINreferralDate", -3)}, "~open_s47"),
    "8615": Edit("section47", {"S47ActualStartDate": _days("DateOfInitialCPC", 1)},
                 lambda f, s: s["DateOfInitialCPC"] + DAY <= s["CINclosureDate"].fillna(f.ref).clip(upper=f.ref)),
    "8675Q": Edit("section47", {"ICPCnotRequired": False}, lambda f, s: (
        s["open"] & s["last_not_required"] & (s["S47ActualStartDate"] >= f.start)
        & (s["S47ActualStartDate"] <= wd(f.ref, -16)) & ~s["child"].isin(s.loc[s["open_s47"], "child"]))),
    # one that started a plan, or in a closed episode, when no other is found: then 2885 or 8565 fail too
    "8715": Edit("section47", {"DateOfInitialCPC": lambda f, s: wd(f.ref, 5)}, (
        lambda f, s: s["has_icpc"] & ~s["has_cpp"] & s["open"], lambda f, s: s["has_icpc"] & ~s["has_cpp"],
        "has_icpc")),
    # an open enquiry starting after the census, else one not needing a conference made open
    "8740": Edit("section47", lambda f, s: ({} if s["open_s47"] else {"ICPCnotRequired": False})
                 | {"S47ActualStartDate": f.ref + 3 * DAY},
                 ("open_s47", lambda f, s: s["open"] & s["last_not_required"])),
    "8868": Edit("section47", {"ICPCnotRequired": False}, lambda f, s: s["closed"] & s["last_not_required"]
                 & (s["S47ActualStartDate"] >= f.start), report="episodes"),
    "8870Q": Edit("section47", {"InitialCPCtarget": lambda f, s: saturday_after(s["InitialCPCtarget"])},
                  lambda f, s: s["InitialCPCtarget"].notna()),
    # a plan started at the conference moves with it (its start must equal the conference, 2885)
    "8875": Edit("section47", lambda f, s: dict.fromkeys(
        ("DateOfInitialCPC", "cp_plans.CPPstartDate")[:1 + s["has_cpp"]], s["saturday_after_icpc"]),
        (lambda f, s: s["weekend_free"] & ~s["has_cpp"], lambda f, s: s["weekend_free"] & s["has_cpp"]
         & ~(s["cpp_first_review"] <= s["saturday_after_icpc"]) & (s["cin_plans_in_episode"] == 0))),
    # -- assessments
    "1103": Edit("assessments", {"AssessmentActualStartDate": _days("CINreferralDate", -1)},
                 lambda f, a: (a["assessment"] == 1) & (a["CINreferralDate"] > f.start + DAY)),
    "8608": Edit("assessments", {"AssessmentAuthorisationDate": _days("AssessmentActualStartDate", -1)},
                 lambda f, a: a["done"] & (a["AssessmentActualStartDate"] > f.start)),
    "8670Q": Edit("assessments", _UNAUTHORISE, lambda f, a: a["last_of_open_alone"]
                  & a["AssessmentActualStartDate"].between(f.start, wd(f.ref, -46)), drop=_FACTORS),
    "8696": Edit("assessments", {"AssessmentAuthorisationDate": _days("census_end", 7)}, "last_of_open"),
    # an open assessment starting after the census, else the last of an open episode made open
    "8736": Edit("assessments", lambda f, a: (_UNAUTHORISE if a["done"] else {})
                 | {"AssessmentActualStartDate": f.ref + 2 * DAY}, ("~done", "last_of_open_alone"), drop=_FACTORS),
    "8867": Edit("assessments", _UNAUTHORISE, lambda f, a: a["done"] & a["closed"] & a["last"]
                 & (a["AssessmentActualStartDate"] >= f.start), report="episodes", drop=_FACTORS),
    "8897Q": Edit("assessments", {}, lambda f, a: a["done"] & (a["factors_for_assessment"] > 0), drop=_FACTORS),
    # an assessment whose only factor is 21 in an episode closed RC7, else one given 21 as its only factor
    "8873Q": (Edit("assessment_factors", {"episodes.ReasonForClosure": "RC7"}, lambda f, r: (
        r["AssessmentFactors"].astype(str) == "21") & (r["factors_for_assessment"] == 1) & r["nin"]
        & (r["assessments_in_episode"] == 1)),
        Edit("assessments", {"episodes.ReasonForClosure": "RC7", "AssessmentFactors": "21"}, lambda f, a: a["nin"]
             & (a["assessments_in_episode"] == 1) & (a["factors_for_assessment"] > 0), drop=_FACTORS,
             add="assessment_factors")),
    # -- child protection plans
    "1105": Edit("cp_plans", {"CPPstartDate": _days("CINreferralDate", -1)},
                 (lambda f, c: (c["CPPstartDate"] < f.start) & (c["cpp"] == 1), lambda f, c: c["cpp"] == 1)),
    "2885": Edit("cp_plans", {"CPPstartDate": _days("working_day_after_start")}, "next_day_free"),
    "8720": Edit("cp_plans", {"CPPstartDate": None}),
    "8730": Edit("cp_plans", {"NumberOfPreviousCPP": -1}),
    "8840": Edit("cp_plans", {"CPPendDate": _days("CPPstartDate")},
                 lambda f, c: c["ended"] & (c["CPPstartDate"] >= f.start) & ~c["step_down"]),
    "8905": Edit("cp_plans", {"InitialCategoryOfAbuse": "NEGL"}),
    "8910": Edit("cp_plans", {"LatestCategoryOfAbuse": "NEGL"}),
    # a death the day before an open plan started (a CIN plan ended on that day: 4009Q too)
    "8915": _death_before("cp_plans", "CPPstartDate", also=lambda f, c: ~c["ended"] & c["alive"] & ~c["any_plan"]),
    "8920": _death_before("cp_plans", "CPPendDate", "CPPstartDate",
                          also=lambda f, c: c["ended"] & c["alive"] & ~c["any_plan"]),
    "8925": Edit("cp_plans", {"CPPendDate": _days("CPPstartDate", -1)},
                 lambda f, c: c["ended"] & (c["CPPstartDate"] > f.start) & ~c["step_down"]),
    "8930": Edit("cp_plans", {"CPPendDate": lambda f, c: wd(f.ref, 7)}, "running"),
    "8841": Edit("cp_reviews", {"CPPreviewDate": _days("CPPstartDate")}, lambda f, r: r["review"] == 1),
    # -- CIN plans
    # the CIN plan a protection plan steps down to starts the day before the protection plan ends
    "4016": Edit("cp_plans", {"cin_plans.CINPlanStartDate": _days("CPPendDate", -1)}, lambda f, c: (
        c["step_down"] & c["review_before_end"].isna() & (c["CPPendDate"] - DAY > c["CPPstartDate"])),
        report="cin_plans"),
    "4008": _death_before("cin_plans", "CINPlanStartDate", also=lambda f, p: p["running"] & p["lone_plan"]),
    "4009Q": _death_before("cin_plans", "CINPlanEndDate", "CINPlanStartDate",
                           also=lambda f, p: p["ended"] & p["lone_plan"]),
    "4010": Edit("cin_plans", {"CINPlanStartDate": _days("census_end", 5)}, "running"),
    "4011": Edit("cin_plans", {"CINPlanEndDate": _days("CINPlanStartDate", -1)},
                 lambda f, p: p["ended"] & (p["CINPlanStartDate"] > f.start)),
    "4012Q": Edit("cin_plans", {"CINPlanEndDate": _days("CINPlanStartDate")},
                  lambda f, p: p["ended"] & (p["CINPlanStartDate"] >= f.start)),
    "4013": Edit("cin_plans", {"CINPlanEndDate": _days("census_end", 5)}, "running"),
    "4015": Edit("cin_plans", {"CINPlanStartDate": _days("CINreferralDate", -1)},
                 lambda f, p: (p["cin_plan"] == 1) & (p["cpps_in_episode"] == 0)),
    # a CIN plan ending the day after a protection plan starts, else one added around that day
    "4017": (Edit("cin_plans", {"CINPlanEndDate": _days("CINPlanEndDate", 1)}, lambda f, p: (
        p["next_cpp_label"].notna() & ~(p["next_cpp_first_review"] <= p["CINPlanEndDate"] + DAY)
        & (p["CINPlanEndDate"] + DAY <= f.ref))),
        Edit("cp_plans", {"CINPlanStartDate": _days("CPPstartDate", -2), "CINPlanEndDate": _days("CPPstartDate", 1)},
             lambda f, c: (c["cin_plans_in_episode"] == 0) & (c["CPPstartDate"] - c["CINreferralDate"] >= 3 * DAY)
             & ~(c["first_review"] <= c["CPPstartDate"] + DAY) & (c["CPPstartDate"] + DAY <= f.ref), add="cin_plans")),
    # -- pre-proceedings: each fault moves one date before the step it must follow, or out of the
    # year, keeping every other order; rows with fewer later steps are chosen first, leaving the
    # rarer court applications to the rules that need them
    "9005": Edit("pre_proceedings", {"PPStartDate": _days("census_start", -7)},
                 _before("PPStartDate", "StepDecisionDate")),
    "9006": Edit("pre_proceedings", {"LBPSentDate": _days("PPStartDate", -1)},
                 lambda f, p: p["has_LBPSentDate"] & (p["PPStartDate"] > f.start)),
    "9007": Edit("pre_proceedings", {"FGDMMeetingOffer": None},
                 lambda f, p: p["has_LBPSentDate"] & p["FGDMMeetingOffer"].notna()),
    "9008": Edit("pre_proceedings", {"InitialPPMeetingDate": _days("census_end", 7)},
                 _before("InitialPPMeetingDate", "StepDecisionDate")),
    "9009": Edit("pre_proceedings", {"StepDecisionDate": _days("PPStartDate", -1)}, (
        lambda f, p: p["has_StepDecisionDate"] & ~p["has_CourtAppDate"] & (p["PPStartDate"] > f.start),
        lambda f, p: p["has_StepDecisionDate"] & (p["PPStartDate"] > f.start))),
    "9010Q": Edit("pre_proceedings", {"FGDMMeetingFac": None}, "offered"),
    "9011": Edit("pre_proceedings", {"PPOutcome": "X"}, _before("PPOutcome", "CourtAppDate")),
    "9012": Edit("pre_proceedings", {"CourtAppDate": _days("StepDecisionDate", -1)},
                 _before("CourtAppDate", "LetterInitCPDate")),
    "9013": Edit("pre_proceedings", {"LetterInitCPDate": _days("CourtAppDate", -1)}, "has_LetterInitCPDate"),
    "9015Q": Edit("pre_proceedings", {"ReviewMeetingsCount": None}, "has_InitialPPMeetingDate"),
    # -- rows added beside the chosen one
    "8794": Edit("children", {"Disability": lambda f, k: f.t["disabilities"].loc[f.under(
        "disabilities", k, ["child"]), "Disability"].iloc[0]}, "has_disability", add="disabilities"),
    "2990": Edit("episodes", {"S47ActualStartDate": _days("first_assessment"), "ICPCnotRequired": True},
                 lambda f, e: e["nin"] & e["assessed"], add="section47", report="episodes"),
    # an enquiry concluded by a conference the working day before the referral (2889 fails too)
    "1104": Edit("episodes", lambda f, e: dict.fromkeys(("S47ActualStartDate", "DateOfInitialCPC"), wd(
        e["CINreferralDate"], -1)) | {"ICPCnotRequired": False}, lambda f, e: ~e["nfa"] & ~e["nin"]
        & e["assessed"] & (e["CINreferralDate"] > f.start + 7 * DAY), add="section47"),
    "8890": Edit("section47", {"S47ActualStartDate": _days("S47ActualStartDate", 1), "ICPCnotRequired": True},
                 lambda f, s: s["DateOfInitialCPC"] - s["S47ActualStartDate"] >= 2 * DAY, add="section47"),
    "8614": Edit("assessments", {"AssessmentFactors": "3B"}, "~done", add="assessment_factors", report="assessments"),
    "8617": Edit("assessments", {"AssessmentFactors": "8A"}, "done_without_21", add="assessment_factors"),
    "8869": Edit("assessments", {"AssessmentFactors": lambda f, a: "3B" if a["factor_codes"] == "21" else "21"},
                 lambda f, a: a["nin"] & (a["factors_for_assessment"] > 0), add="assessment_factors"),
    "8945Q": Edit("assessments", {"AssessmentFactors": "18A"}, "done_without_21", add="assessment_factors"),
    "8950Q": Edit("assessments", {"AssessmentFactors": "19A"}, "done_without_21", add="assessment_factors"),
    "8790": Edit("disabilities", {"Disability": "AUT"}, lambda f, d: d["Disability"].astype(str) == "NONE",
                 add="disabilities", report="disabilities"),
    "8898": Edit("assessment_factors", {"AssessmentFactors": lambda f, r: str(r["AssessmentFactors"])},
                 lambda f, r: r["AssessmentFactors"].astype(str) != "21", add="assessment_factors"),
    # a second open plan beside an open one (their dates overlap: 8940, and 2885/2883 may fail)
    "8935": Edit("cp_plans", _same_cpp, "~ended", add="cp_plans"),
    "8940": Edit("cp_plans", lambda f, c: _same_cpp(f, c, CPPendDate=_overlap_end(f, c)),
                 lambda f, c: c["CPPstartDate"] < f.start, add="cp_plans"),
    "4000": Edit("episodes", {"CINPlanStartDate": _days("CINreferralDate")}, lambda f, e: e["nfa"] & ~e["any_plan"],
                 add="cin_plans"),
    # an open CIN plan during an open protection plan (it starts inside it: 4016 too)
    "4001": Edit("cp_plans", {"CINPlanStartDate": _days("CPPstartDate", 1)}, lambda f, c: ~c["ended"]
                 & (c["CPPstartDate"] < f.ref) & (c["cin_plans_in_episode"] == 0), add="cin_plans"),
    # a review inside the CIN plan a protection plan steps down to
    "4003": Edit("cp_plans", {"CPPreviewDate": _days("CPPendDate", 2)}, lambda f, c: c["step_down"] & (
        c["CPPendDate"] + 2 * DAY <= c[["step_end", "CINclosureDate"]].min(axis=1).fillna(f.ref).clip(upper=f.ref)),
        add="cp_reviews"),
    # a second open CIN plan (it overlaps the first: 4014 too)
    "4004": Edit("cin_plans", {"CINPlanStartDate": _days("CINPlanStartDate", 1)},
                 lambda f, p: ~p["ended"] & (p["CINPlanStartDate"] < f.ref), add="cin_plans"),
    "4014": Edit("cin_plans", {"CINPlanStartDate": _days("CINPlanStartDate", 1),
                               "CINPlanEndDate": _days("CINPlanEndDate")},
                 lambda f, p: p["ended"] & (p["CINPlanEndDate"] - p["CINPlanStartDate"] >= 2 * DAY), add="cin_plans"),
}
"""The faults that edit one chosen row or add one beside it, by rule (spelt as from 2022-23); a tuple
holds ways tried in turn until one finds a row that fits."""

for _code, _edit in EDITS.items():
    _first = _edit[0] if isinstance(_edit, tuple) else _edit
    register(_code, min((_first.table, _first.add or _first.table), key=ORDER.__getitem__),
             _either(*_edit) if isinstance(_edit, tuple) else _edit)
# an episode with a protection plan flagged NFA (an old referral: 8569Q; with S47s: 8831 too), chosen
# among episodes so as not to take the rarer plans from the faults that need them
register("8832", "episodes", Edit("cp_plans", {"episodes.ReferralNFA": True},
                                    (lambda f, c: (c["cpp"] == 1) & c["no_activity"], lambda f, c: c["cpp"] == 1)))


# -- faults of other shapes ---------------------------------------------------------------------------


def _share(column: str, flag: str | None = None) -> Callable[[Faults], None]:
    """Return an injector giving a child (with ``flag``) the ``column`` of another untouched one (both then fail)."""
    def inject(f: Faults) -> None:
        kids = f.facts("children")
        ok = kids[flag] if flag else pd.Series(True, index=kids.index)
        k = f.choose(kids, ok)
        donor = f.choose(kids, ok & (kids["child"] != k["child"]))
        f.record("children", k, f.set_child(k["child"], column, donor[column]))
        f.record("children", donor, f"(none: child {k['LAchildID']} was given this {column})")
    return inject


register("1520", "children", _share("UPN", "has_upn"))
register("8510", "children", _share("LAchildID"))


def _second_open(table: str, column: str, open_rows: str, episodes: Mask, **fixed: Any) -> Callable[[Faults], None]:
    """Return an injector adding an open ``table`` row (``column`` its start) the day after an open one
    (``open_rows`` is their flag), else two to an open episode chosen where ``episodes`` holds."""
    def two(f: Faults) -> None:
        e = _chosen(f, "episodes", episodes)
        for back in (3, 2):
            n = f.add(table, child=e["child"], episode=e["episode"], **{column: f.ref - DAY * back}, **fixed)
        f.fault(e["child"], table, f"added two open {table} rows", episode=e["episode"], item=n)
    return _either(Edit(table, {column: lambda f, r: min(r[column] + DAY, f.ref), **fixed}, open_rows, add=table), two)


# a second enquiry still open in one episode (8890 fails too)
register("8839", "section47", _second_open("section47", "S47ActualStartDate", "open_s47", lambda f, e: e["open"]
                                           & e["assessed"] & (e["CINreferralDate"] <= f.ref - 5 * DAY),
                                           ICPCnotRequired=False))
# a second open assessment in one episode (8863Q fails too)
register("8896", "assessments", _second_open("assessments", "AssessmentActualStartDate", "~done",
                                             lambda f, e: e["open"] & (e["CINreferralDate"] <= f.ref - 5 * DAY),
                                             kind="continuous"))
@injector("8863Q", "assessments")
def _assessments_overlap(f: Faults) -> None:
    a = f.facts("assessments")
    row = f.choose(a, a["done"] & (a["AssessmentActualStartDate"] >= f.start) & (a["factors_for_assessment"] > 0)
                   & (a["AssessmentAuthorisationDate"] - a["AssessmentActualStartDate"] >= 2 * DAY))
    start = row["AssessmentActualStartDate"] + DAY
    n = f.add("assessments", child=row["child"], episode=row["episode"], kind="continuous",
              AssessmentActualStartDate=start, AssessmentAuthorisationDate=row["AssessmentAuthorisationDate"])
    for code in row["factor_codes"].split(","):
        f.add("assessment_factors", child=row["child"], episode=row["episode"], assessment=n, AssessmentFactors=code)
    f.record("assessments", row, f"added an assessment starting {describe(start)} during assessment "
             f"{row['assessment']}", item=n)


@injector("8899Q", "assessments")
def _disabled_without_disability_factor(f: Faults) -> None:
    """Remove factors 5A and 6A of an assessment of a disabled child, adding 3B if no factor is left."""
    a, own = f.facts("assessments"), ("child", "episode", "assessment")
    row = f.choose(a, a["done"] & a["has_disability"] & (a["factors_for_assessment"] > 0))
    disability = f.t["assessment_factors"]["AssessmentFactors"].astype(str).isin(["5A", "6A"])
    n = f.drop("assessment_factors", f.under("assessment_factors", row, own) & disability)
    change = f"removed {n} factors 5A/6A"
    if not f.under("assessment_factors", row, own).any():
        change += f"; added 3B (factor {f.add('assessment_factors', **row[list(own)], AssessmentFactors='3B')})"
    f.record("assessments", row, change)


# -- return level ---------------------------------------------------------------------------------


def _some(n: int) -> int:
    """Return ``n``, a count of rows a return-level fault changes; raise :class:`Unfit` when none."""
    if not n:
        raise Unfit
    return n


@injector("100", "return")
def _wrong_reference_date(f: Faults) -> None:
    old = f.header.reference_date
    f.header = dataclasses.replace(f.header, reference_date=f.ref - DAY)
    f.fault(None, "return", f"ReferenceDate: {describe(old)} -> {describe(f.ref - DAY)}")


@injector("2883", "return")
def _more_plans_than_conferences(f: Faults) -> None:
    """Replace conferences by 'not required' until plans starting outnumber them (2885 fails too)."""
    s = f.facts("section47")
    in_year = s["DateOfInitialCPC"].between(f.start, f.ref)
    starts = _some(int(f.t["cp_plans"]["CPPstartDate"].between(f.start, f.ref).sum()))
    conferences = int(in_year.sum()) + int(f.t["episodes"]["DateOfInitialCPC"].between(f.start, f.ref).sum())
    order = s[in_year].sort_values("has_cpp", kind="stable")["label"]  # conferences without a plan first
    removed = min(len(order), max(0, conferences - starts + 1))
    for label in order[:removed]:
        f.set("section47", label, "DateOfInitialCPC", None)
        f.set("section47", label, "ICPCnotRequired", True)
    f.fault(None, "return", f"removed {removed} DateOfInitialCPC: {starts} plans start, "
            f"{conferences - removed} conferences")


@injector("8995Q", "return")
def _no_pre_proceedings(f: Faults) -> None:
    """Remove every pre-proceedings module (no child then has a PPStartDate either: 9000Q fails too)."""
    n = _some(f.drop("pre_proceedings", f.t["pre_proceedings"]["child"].notna()))
    f.fault(None, "return", f"removed all {n} PreProceedingsandFGDM modules")


@injector("9000Q", "return")
def _no_pre_proceedings_start(f: Faults) -> None:
    pp = f.t["pre_proceedings"]
    started = pp.index[pp["PPStartDate"].notna()]
    for label in started:
        f.set("pre_proceedings", label, "PPStartDate", None)
    f.fault(None, "return", f"PPStartDate removed from all {_some(len(started))} PreProceedingsandFGDM modules")


@injector("2886Q", "return")
def _many_without_sex(f: Faults) -> None:
    kids = f.facts("children")
    born = kids[kids["born"] & ~kids["child"].isin(f.used)]
    n = int(np.ceil(0.02 * int(kids["born"].sum()))) + 1
    if len(born) < n:
        raise Unfit
    for child in born.iloc[sorted(f.rnd.sample(range(len(born)), n))]["child"]:
        f.set_child(child, f.sex, _UNKNOWN_SEX[f.sex])
    f.fault(None, "return", f"{f.sex} set to {_UNKNOWN_SEX[f.sex]} for {n} of {len(kids)} children")


@injector("2887Q", "return")
def _few_disability_codes(f: Faults) -> None:
    d = f.t["disabilities"]
    real = d["Disability"].astype(str) != "NONE"
    keep = list(d.loc[real, "Disability"].astype(str).value_counts().index[:7])
    _some(len(keep))
    other = real & ~d["Disability"].astype(str).isin(keep)
    lone = set(d.loc[other, "child"]) - set(d.loc[real & ~other, "child"])
    dropped = f.drop("disabilities", other)
    for child in sorted(lone):
        f.add("disabilities", child=child, Disability=keep[0])
    _renumber(f, "disabilities")
    f.fault(None, "return", f"disability codes limited to {', '.join(keep)} ({dropped} rows removed)")


@injector("2888Q", "return")
def _one_disability_each(f: Faults) -> None:
    d = f.t["disabilities"]
    real = d["Disability"].astype(str) != "NONE"
    extra = real & (d[real].groupby("child").cumcount().reindex(d.index, fill_value=0) > 0)
    n = _some(f.drop("disabilities", extra))
    _renumber(f, "disabilities")
    f.fault(None, "return", f"removed {n} second and later disabilities")


def _renumber(f: Faults, table: str) -> None:
    keys = list(spec.TABLE_KEYS[table])
    df = f.t[table].sort_values(keys, kind="stable")
    df[keys[-1]] = df.groupby(keys[:-1]).cumcount() + 1
    f.t[table] = df
