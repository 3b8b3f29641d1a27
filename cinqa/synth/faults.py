"""Labelled faults: break one DfE rule at a time in a clean synthetic return, and say where.

Which rules exist, in which years and under which code, is read from the rule suites
(``expectations/``, through :mod:`cinqa.rules`); this module only knows how to break each of
them. A rule of a year is injectable when an injector is registered for its code (either
spelling: ``"8525"`` and ``"8525Q"`` are one rule) and :data:`NOT_INJECTABLE` gives no reason
against it in that year; every other rule of the suites is *unexplained*, which the tests refuse.

An injector picks a child not yet touched, changes as little as it can so that exactly its rule
fails, and records a truth row: rule, LAchildID, child, entity, episode, item (the entity's own
ordinal, as ``cinqa.validate`` reports it) and the change made. The shapes many rules share are
data, one table each: setting values of one chosen row (:data:`SETTERS`), adding a row beside it
(:data:`ADDERS`), removing what hangs under it (:data:`REMOVERS`); the others are small functions
(:func:`injector`). A duplicated value (1520, 8510) makes two children fail, so both get a truth
row. Some faults cannot avoid tripping a second rule (two open episodes are also overlapping
ones); the note beside the injector says so, and the truth names the intended rule only.

Injectors choose their targets from facts about the clean return computed once up front; since
every fault goes to a different child, those facts stay true for the children still untouched.
Return-level rules (those the suites check on the header or the return as a whole) change many
children and are only injected when asked for by name.
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


@dataclass
class Fault:
    """One injected fault, located as ``cinqa.validate`` locates a failure."""

    rule: str
    child: int | None
    entity: str
    episode: int | None
    item: int | None
    change: str
    fault: int = 0
    """The number of the injection that made this row: a duplicated value gives two rows one number."""


class Unfit(Exception):
    """Raised by an injector when no untouched child of the return fits its fault (nothing was changed)."""


class Faults(TableEdits):
    """A return's tables being edited, the facts injectors choose from, and the faults so far."""

    def __init__(self, ret: CensusReturn, rnd: random.Random) -> None:
        super().__init__(ret)
        self.start = ret.census_start
        self.ref = ret.reference_date
        self.rnd = rnd
        self.used: set[int] = set()
        self.faults: list[Fault] = []
        self.sex = "Sex" if "Sex" in self.t["children"] else "GenderCurrent"
        self.ep = _episode_facts(self.t, self.ref)
        self.kids = _child_facts(self.t, self.ep, self.ref)
        self._code = ""
        self._fault = 0

    # -- choosing ------------------------------------------------------------------------------

    def pick(self, df: pd.DataFrame, mask: Any = None) -> pd.Series | None:
        """Return a random row of ``df`` (where ``mask``) whose child is still untouched, or None."""
        if mask is not None:
            df = df[np.asarray(mask, dtype=bool)]
        if df.empty:
            return None
        df = df[~df["child"].isin(self.used)]
        if df.empty:
            return None
        return df.iloc[self.rnd.randrange(len(df))]

    def choose(self, df: pd.DataFrame, *masks: Any) -> pd.Series:
        """Return a random untouched row of ``df`` where the first mask that has one holds; raise :class:`Unfit`."""
        for mask in masks or (None,):
            row = self.pick(df, mask)
            if row is not None:
                return row
        raise Unfit

    def fault(self, child: int | None, entity: str, change: str, episode: Any = None, item: Any = None) -> None:
        """Record the fault being injected; mark its child as used."""
        if child is not None:
            self.used.add(int(child))
        self.faults.append(Fault(self._code, None if child is None else int(child), entity,
                                 None if episode is None else int(episode), None if item is None else int(item),
                                 change, self._fault))

    def record(self, entity: str, row: pd.Series, change: str, item: Any = None) -> None:
        """Record the fault at ``row`` of ``entity`` (its episode, and its own ordinal unless ``item`` is given)."""
        keys = spec.TABLE_KEYS[entity]
        self.fault(row["child"], entity, change, episode=row["episode"] if "episode" in keys else None,
                   item=row[keys[-1]] if item is None else item)

    # -- dates ---------------------------------------------------------------------------------

    @staticmethod
    def wd(date: pd.Timestamp, n: int) -> pd.Timestamp:
        """Move ``date`` by ``n`` working days."""
        return pd.Timestamp(workdays.add_working_days(pd.Timestamp(date), n))

    @staticmethod
    def saturday_after(date: pd.Timestamp) -> pd.Timestamp:
        """Return the first Saturday after ``date``."""
        return pd.Timestamp(date) + pd.Timedelta(days=(5 - pd.Timestamp(date).weekday()) % 7 or 7)

    # -- the result ----------------------------------------------------------------------------

    def result(self) -> tuple[CensusReturn, pd.DataFrame]:
        """Return the edited return (typed like the reader's) and the truth table."""
        ret = self.edited()
        ids = ret.children.set_index("child")["LAchildID"]
        truth = pd.DataFrame([(f.rule, None, f.child, f.entity, f.episode, f.item, f.change) for f in self.faults],
                             columns=list(TRUTH_COLUMNS))
        truth["LAchildID"] = pd.array([None if c is None or pd.isna(ids.get(c)) else ids.get(c)
                                       for c in truth["child"]], dtype="str")
        for c in ("child", "episode", "item"):
            truth[c] = truth[c].astype("Int64")
        truth["rule"] = truth["rule"].astype("str")
        # Which rows one fault made, for undoing a fault whole (synth.generate_runs); not a truth column.
        truth.attrs["fault"] = [f.fault for f in self.faults]
        return ret, truth


class Injector(NamedTuple):
    """How one rule is broken: the function, and the kind of row it needs (which sets when it chooses)."""

    needs: str
    inject: Callable[[Faults], None]


INJECTORS: dict[str, Injector] = {}
"""The injector of each rule, keyed by its code as spelt from 2022-23."""

ORDER = {"pre_proceedings": 0, "cp_plans": 0, "cp_reviews": 0, "cin_plans": 0, "section47": 1, "assessments": 2,
         "episodes": 3, "children": 4, "return": 5}
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


# -- facts -------------------------------------------------------------------------------------


def _episode_facts(t: dict[str, pd.DataFrame], ref: pd.Timestamp) -> pd.DataFrame:
    ep = t["episodes"]
    keys = ["child", "episode"]
    wanted = ["LAchildID", "CINreferralDate", "CINclosureDate", "ReasonForClosure", "ReferralNFA", "ReferralSource"]
    out = ep.set_index(keys)[[c for c in wanted if c in ep]].copy()
    out["label"] = ep.index.to_numpy()
    out["nfa"] = out["ReferralNFA"].fillna(False).astype(bool)
    out["closed"] = out["CINclosureDate"].notna()
    out["open"] = ~out["closed"] & ~out["nfa"]
    a = t["assessments"]
    out["n_assess"] = a.groupby(keys).size().reindex(out.index, fill_value=0)
    out["n_open_assess"] = a[a["AssessmentAuthorisationDate"].isna()].groupby(keys).size().reindex(
        out.index, fill_value=0)
    s = t["section47"]
    out["n_s47"] = s.groupby(keys).size().reindex(out.index, fill_value=0)
    c = t["cp_plans"]
    out["n_cpp"] = c.groupby(keys).size().reindex(out.index, fill_value=0)
    p = t["cin_plans"]
    out["n_plans"] = p.groupby(keys).size().reindex(out.index, fill_value=0)
    latest = ep.groupby("child")["CINreferralDate"].transform("max")
    out["latest"] = (ep["CINreferralDate"] == latest).to_numpy()
    out["nin"] = out["ReasonForClosure"].isin(["RC8", "RC9"]).to_numpy()
    return out.reset_index()


def _child_facts(t: dict[str, pd.DataFrame], ep: pd.DataFrame, ref: pd.Timestamp) -> pd.DataFrame:
    kids = t["children"].set_index("child").copy()
    kids["born"] = kids["PersonBirthDate"].notna()
    kids["n_eps"] = ep.groupby("child").size().reindex(kids.index, fill_value=0)
    kids["any_in_need"] = (~ep["nfa"]).groupby(ep["child"]).any().reindex(kids.index, fill_value=False)
    kids["last_referral"] = ep.groupby("child")["CINreferralDate"].max().reindex(kids.index)
    kids["first_referral"] = ep.groupby("child")["CINreferralDate"].min().reindex(kids.index)
    d = t["disabilities"]
    real = d[d["Disability"] != "NONE"]
    kids["n_disabilities"] = real.groupby("child").size().reindex(kids.index, fill_value=0)
    kids["has_none"] = d[d["Disability"] == "NONE"].groupby("child").size().reindex(kids.index, fill_value=0) > 0
    kids["any_cpp"] = kids.index.isin(t["cp_plans"]["child"])
    kids["any_plan"] = kids.index.isin(t["cin_plans"]["child"])
    return kids


# -- the rows injectors choose from: a table's rows (``label`` the row's index) with facts ----------


def _kids(f: Faults) -> pd.DataFrame:
    return f.kids.reset_index()


def _with_episode(f: Faults, table: str, cols: Sequence[str]) -> pd.DataFrame:
    """Return ``table``'s rows (original index as ``label``) with facts about their episode."""
    df = f.t[table].reset_index().rename(columns={"index": "label"})
    facts = f.ep[["child", "episode", *cols]]
    return df.merge(facts, on=["child", "episode"], how="left", suffixes=("", "_episode"))


def _s47(f: Faults) -> pd.DataFrame:
    s = _with_episode(f, "section47", ("CINreferralDate", "CINclosureDate", "open", "closed", "n_cpp", "n_plans"))
    cpp = f.t["cp_plans"]
    starts = set(zip(cpp["child"], cpp["CPPstartDate"]))
    s["has_cpp"] = [(c, d) in starts for c, d in zip(s["child"], s["DateOfInitialCPC"])]
    s["not_required"] = s["ICPCnotRequired"].fillna(False).astype(bool)
    s["open_s47"] = s["DateOfInitialCPC"].isna() & ~s["not_required"]
    s["last"] = s.groupby(["child", "episode"])["s47"].transform("max") == s["s47"]
    return s


def _assessments(f: Faults) -> pd.DataFrame:
    a = _with_episode(f, "assessments", ("CINreferralDate", "CINclosureDate", "open", "closed", "nin", "n_assess",
                                         "n_open_assess"))
    a["done"] = a["AssessmentAuthorisationDate"].notna()
    a["last"] = a.groupby(["child", "episode"])["assessment"].transform("max") == a["assessment"]
    fac = f.t["assessment_factors"]
    n = fac.groupby(["child", "episode", "assessment"]).size()
    own = list(zip(a["child"], a["episode"], a["assessment"]))
    a["n_factors"] = n.reindex(own, fill_value=0).to_numpy() if len(a) else []
    with21 = set(zip(*(fac.loc[fac["AssessmentFactors"].astype(str) == "21", k] for k in
                       ("child", "episode", "assessment"))))
    a["has_21"] = [k in with21 for k in own]
    a["only_21"] = a["has_21"] & (a["n_factors"] == 1)
    return a


def _cpp(f: Faults) -> pd.DataFrame:
    c = _with_episode(f, "cp_plans", ("CINreferralDate", "CINclosureDate", "open", "closed", "n_plans", "latest"))
    c["ended"] = c["CPPendDate"].notna()
    rv = f.t["cp_reviews"]
    first = rv.groupby(["child", "episode", "cpp"])["CPPreviewDate"].min()
    c["first_review"] = first.reindex(list(zip(c["child"], c["episode"], c["cpp"]))).to_numpy() if len(c) else []
    c["last_referral"] = c["child"].map(f.kids["last_referral"])
    c["dob"] = c["child"].map(f.kids["PersonBirthDate"])
    c["no_death"] = c["child"].map(f.kids["PersonDeathDate"]).isna()
    c["any_plan"] = c["child"].map(f.kids["any_plan"])
    p = f.t["cin_plans"]
    step = set(zip(p["child"], p["episode"], p["CINPlanStartDate"])) if "CINPlanStartDate" in p else set()
    c["step_down"] = [(ch, e, d) in step for ch, e, d in zip(c["child"], c["episode"], c["CPPendDate"])]
    return c


def _plans(f: Faults) -> pd.DataFrame:
    p = _with_episode(f, "cin_plans", ("CINreferralDate", "CINclosureDate", "open", "closed", "n_cpp"))
    p["ended"] = p["CINPlanEndDate"].notna()
    p["last_referral"] = p["child"].map(f.kids["last_referral"])
    p["dob"] = p["child"].map(f.kids["PersonBirthDate"])
    p["any_cpp"] = p["child"].map(f.kids["any_cpp"])
    p["n_child_plans"] = p.groupby("child")["cin_plan"].transform("size")
    return p


def _pre_proceedings(f: Faults) -> pd.DataFrame:
    pp = _with_episode(f, "pre_proceedings", ())
    for column in ("PPStartDate", "LBPSentDate", "InitialPPMeetingDate", "StepDecisionDate", "CourtAppDate",
                   "LetterInitCPDate", "PPOutcome", "ReviewMeetingsCount"):
        pp["has_" + column] = pp[column].notna()
    pp["offered"] = pp["FGDMMeetingOffer"].fillna(False).astype(bool)
    return pp


def _reviews(f: Faults) -> pd.DataFrame:
    rv = f.t["cp_reviews"].reset_index().rename(columns={"index": "label"})
    return rv.merge(f.t["cp_plans"][["child", "episode", "cpp", "CPPstartDate"]], on=["child", "episode", "cpp"],
                    how="left")


FACTS: dict[str, Callable[[Faults], pd.DataFrame]] = {
    "children": _kids, "episodes": lambda f: f.ep, "section47": _s47, "assessments": _assessments,
    "cp_plans": _cpp, "cin_plans": _plans, "assessment_factors": lambda f: f.t["assessment_factors"],
    "pre_proceedings": _pre_proceedings, "disabilities": lambda f: f.t["disabilities"], "cp_reviews": _reviews,
}


# -- faults that set values of one row, as data ------------------------------------------------------


Where = Callable[[Faults, pd.DataFrame], Any]


@dataclass(frozen=True)
class Setter:
    """Break a rule by setting values of one row chosen from ``FACTS[table]``.

    ``values`` maps each column to its new value, or to ``f(faults, row)`` computing it (a child's
    own column is set on the child); ``where`` is ``f(faults, rows)`` giving the rows that may be
    chosen, or a tuple of them tried in turn. The fault is reported on ``report`` (default ``table``).
    """

    table: str
    values: dict[str, Any]
    where: Where | tuple[Where, ...] | None = None
    report: str | None = None

    def __call__(self, f: Faults) -> None:
        rows = FACTS[self.table](f)
        wheres = self.where if isinstance(self.where, tuple) else (self.where,) if self.where else ()
        row = f.choose(rows, *(w(f, rows) for w in wheres))
        changes = [f.edit(self.table, row, column, v(f, row) if callable(v) else v) for column, v in self.values.items()]
        f.record(self.report or self.table, row, "; ".join(changes))


def _dies_before(date: str, *after: str, also: Where) -> Where:
    """Choose rows where a death the day before ``date`` comes on or after the census start, the
    columns ``after``, the child's birth and last referral, and where ``also`` holds."""
    def where(f: Faults, r: pd.DataFrame) -> Any:
        death = r[date] - DAY
        ok = death >= f.start
        for column in (*after, "last_referral", "dob"):
            ok &= death >= r[column]
        return ok & also(f, r)
    return where


def _lone_plan(p: pd.DataFrame) -> Any:
    return ~p["any_cpp"] & (p["n_child_plans"] == 1)


def _upn(f: Faults, k: pd.DataFrame) -> Any:
    return k["UPN"].notna()


def _wrong_check_letter(f: Faults, k: pd.Series) -> str:
    upn = k["UPN"]
    return UPN_LETTERS[(UPN_LETTERS.index(upn[0]) + 1 + f.rnd.randrange(22)) % 23] + upn[1:]


def _upn_of_unknown_la(f: Faults, k: pd.Series) -> str:
    valid = set(spec.codes("la"))
    bad = next(c for c in (f"{n:03d}" for n in range(999, 0, -1)) if c not in valid)
    body = bad + k["UPN"][4:]
    return upn_check_letter(body) + body  # a right check letter, so only the LA code is wrong


def _quiet_newborn(f: Faults, k: pd.DataFrame) -> Any:
    return k["born"] & (k["PersonBirthDate"] > f.start) & ~k["any_cpp"] & ~k["any_plan"]


def _earlier_in_need(e: pd.DataFrame) -> Any:
    return e["closed"] & ~e["nfa"] & ~e["latest"]


_REOPEN = {"CINclosureDate": None, "ReasonForClosure": None}

SETTERS: dict[str, Setter] = {
    # -- children
    "1510": Setter("children", {"UPN": _wrong_check_letter}, _upn),
    "1530": Setter("children", {"UPN": _upn_of_unknown_la}, _upn),
    # characters 5-12 not numeric: the check letter cannot be computed either (1510 may fail)
    "1540": Setter("children", {"UPN": lambda f, k: k["UPN"][:6] + "A" + k["UPN"][7:]}, _upn),
    # I is not a UPN letter, so the check letter may fail too (1510)
    "1550": Setter("children", {"UPN": lambda f, k: k["UPN"][:12] + "I"}, _upn),
    "1560Q": Setter("children", {"FormerUPN": "X12345"}, _upn),
    "1570": Setter("children", {"LAchildID": lambda f, k: (str(k["LAchildID"]) + "0" * 21)[:21]}),
    "1580": Setter("children", {"LAchildID": lambda f, k: f"{k['LAchildID']}-A"}),
    "4220": Setter("children", {"Ethnicity": "WBR"}),
    "8500": Setter("children", {"LAchildID": None}),
    # referrals stay within 280 days of the new birth date (8606)
    "8520": Setter("children", {"PersonBirthDate": lambda f, k: f.ref + 5 * DAY},
                   lambda f, k: k["born"] & (k["first_referral"] >= f.ref + 5 * DAY - 280 * DAY)),
    # neither a birth date nor an expected one
    "8525Q": Setter("children", {"PersonBirthDate": None}, lambda f, k: k["born"]),
    # a death the day before birth; if the child was referred after that day, 8555Q fails too
    "8535Q": Setter("children", {"PersonDeathDate": lambda f, k: k["PersonBirthDate"] - DAY},
                    (lambda f, k: _quiet_newborn(f, k) & (k["last_referral"] < k["PersonBirthDate"]), _quiet_newborn)),
    "8545Q": Setter("children", {"PersonDeathDate": lambda f, k: f.ref + 10 * DAY},
                    lambda f, k: k["born"] & k["PersonDeathDate"].isna()),
    "8770Q": Setter("children", {"UPN": None, "UPNunknown": None}, lambda f, k: (
        k["PersonBirthDate"] < f.ref - pd.DateOffset(years=6, months=1)) & k["any_in_need"] & k["UPN"].notna()),
    "8772": Setter("children", {"UPN": None, "UPNunknown": "UN7"},
                   lambda f, k: (k["PersonBirthDate"] > f.ref - pd.DateOffset(years=6)) & k["any_in_need"]),
    "8775Q": Setter("children", {"PersonBirthDate": lambda f, k: f.ref - pd.DateOffset(years=26)},
                    lambda f, k: k["UPN"].notna() & k["child"].isin(f.ep.loc[f.ep["open"], "child"])),
    # -- episodes
    "8568": Setter("episodes", {"ReferralNFA": None}),
    "8569Q": Setter("episodes", {"ReferralNFA": True}, lambda f, e: ~e["nfa"] & (e["n_assess"] == 0) & (
        e["n_s47"] == 0) & (e["n_cpp"] == 0) & (e["n_plans"] == 0) & (e["CINreferralDate"] < f.start - 5 * DAY)),
    "8585Q": Setter("episodes", {"ReasonForClosure": "RC2"}, lambda f, e: (e["ReasonForClosure"] == "RC7")
                    & e["child"].map(f.kids["PersonDeathDate"]).isna()),
    # a closed episode: an open one without a referral date is also "not the latest" (8816)
    "8600": Setter("episodes", {"CINreferralDate": None}, lambda f, e: e["closed"]),
    "8610": Setter("episodes", {"PrimaryNeedCode": None}, lambda f, e: ~e["nfa"]),
    "8620": Setter("episodes", {"CINclosureDate": lambda f, e: f.ref + 10 * DAY}, lambda f, e: e["closed"] & e["latest"]),
    "8630": Setter("episodes", {"CINclosureDate": lambda f, e: e["CINreferralDate"] - DAY},
                   lambda f, e: e["nfa"] & e["closed"] & (e["CINreferralDate"] > f.start)),
    "8640": Setter("episodes", {"ReasonForClosure": "RC0"}, lambda f, e: e["closed"]),
    "8650": Setter("episodes", {"PrimaryNeedCode": "N10"}, lambda f, e: ~e["nfa"]),
    "8805": Setter("episodes", {"ReasonForClosure": None}, lambda f, e: e["closed"]),
    "8810": Setter("episodes", {"CINclosureDate": None}, lambda f, e: e["closed"] & e["latest"]),
    # reopen an earlier episode of a child whose latest is open (8816 and 8820 fail too)
    "8815": Setter("episodes", _REOPEN, lambda f, e: _earlier_in_need(e)
                   & e["child"].isin(e.loc[e["open"] & e["latest"], "child"])),
    # reopen an episode that is not the child's latest, the child having no open one (8820 fails too)
    "8816": Setter("episodes", _REOPEN, lambda f, e: _earlier_in_need(e)
                   & ~e["child"].isin(e.loc[e["open"], "child"])),
    "8831": Setter("episodes", {"ReferralNFA": True},
                   lambda f, e: e["nin"] & (e["n_assess"] > 0) & (e["CINreferralDate"] > f.start + 2 * DAY)),
    "8866": Setter("episodes", {"ReferralSource": None},
                   lambda f, e: e["ReferralSource"].notna() & (e["CINreferralDate"] >= pd.Timestamp(2013, 4, 1))),
    # -- section 47 enquiries
    "2889": Setter("section47", {"S47ActualStartDate": lambda f, s: s["CINreferralDate"] - 3 * DAY},
                   lambda f, s: ~s["open_s47"]),
    "8615": Setter("section47", {"S47ActualStartDate": lambda f, s: s["DateOfInitialCPC"] + DAY},
                   lambda f, s: s["DateOfInitialCPC"].notna()
                   & (s["DateOfInitialCPC"] + DAY <= s["CINclosureDate"].fillna(f.ref).clip(upper=f.ref))),
    "8675Q": Setter("section47", {"ICPCnotRequired": False}, lambda f, s: (
        s["open"] & s["last"] & s["not_required"] & (s["S47ActualStartDate"] >= f.start)
        & (s["S47ActualStartDate"] <= f.wd(f.ref, -16)) & ~s["child"].isin(s.loc[s["open_s47"], "child"]))),
    # one that started a plan, or in a closed episode, when no other is found: then 2885 or 8565 fail too
    "8715": Setter("section47", {"DateOfInitialCPC": lambda f, s: f.wd(f.ref, 5)}, (
        lambda f, s: s["DateOfInitialCPC"].notna() & ~s["has_cpp"] & s["open"],
        lambda f, s: s["DateOfInitialCPC"].notna() & ~s["has_cpp"], lambda f, s: s["DateOfInitialCPC"].notna())),
    "8868": Setter("section47", {"ICPCnotRequired": False}, lambda f, s: s["closed"] & s["last"] & s["not_required"]
                   & (s["S47ActualStartDate"] >= f.start), report="episodes"),
    "8870Q": Setter("section47", {"InitialCPCtarget": lambda f, s: f.saturday_after(s["InitialCPCtarget"])},
                    lambda f, s: s["InitialCPCtarget"].notna()),
    # -- assessments
    "1103": Setter("assessments", {"AssessmentActualStartDate": lambda f, a: a["CINreferralDate"] - DAY},
                   lambda f, a: (a["assessment"] == 1) & (a["CINreferralDate"] > f.start + DAY)),
    "8608": Setter("assessments", {"AssessmentAuthorisationDate": lambda f, a: a["AssessmentActualStartDate"] - DAY},
                   lambda f, a: a["done"] & (a["AssessmentActualStartDate"] > f.start)),
    "8696": Setter("assessments", {"AssessmentAuthorisationDate": lambda f, a: f.ref + 7 * DAY},
                   lambda f, a: a["done"] & a["open"] & a["last"]),
    # -- child protection plans
    "1105": Setter("cp_plans", {"CPPstartDate": lambda f, c: c["CINreferralDate"] - DAY},
                   (lambda f, c: (c["CPPstartDate"] < f.start) & (c["cpp"] == 1), lambda f, c: c["cpp"] == 1)),
    "2885": Setter("cp_plans", {"CPPstartDate": lambda f, c: f.wd(c["CPPstartDate"], 1)}, lambda f, c: _next_day_free(f, c)),
    "8720": Setter("cp_plans", {"CPPstartDate": None}),
    "8730": Setter("cp_plans", {"NumberOfPreviousCPP": -1}),
    "8840": Setter("cp_plans", {"CPPendDate": lambda f, c: c["CPPstartDate"]},
                   lambda f, c: c["ended"] & (c["CPPstartDate"] >= f.start) & ~c["step_down"]),
    "8905": Setter("cp_plans", {"InitialCategoryOfAbuse": "NEGL"}),
    "8910": Setter("cp_plans", {"LatestCategoryOfAbuse": "NEGL"}),
    # a death the day before an open plan started (a CIN plan ended on that day: 4009Q too)
    "8915": Setter("cp_plans", {"PersonDeathDate": lambda f, c: c["CPPstartDate"] - DAY},
                   _dies_before("CPPstartDate", also=lambda f, c: ~c["ended"] & c["no_death"] & ~c["any_plan"])),
    "8920": Setter("cp_plans", {"PersonDeathDate": lambda f, c: c["CPPendDate"] - DAY},
                   _dies_before("CPPendDate", "CPPstartDate",
                                also=lambda f, c: c["ended"] & c["no_death"] & ~c["any_plan"])),
    "8925": Setter("cp_plans", {"CPPendDate": lambda f, c: c["CPPstartDate"] - DAY},
                   lambda f, c: c["ended"] & (c["CPPstartDate"] > f.start) & ~c["step_down"]),
    "8930": Setter("cp_plans", {"CPPendDate": lambda f, c: f.wd(f.ref, 7)}, lambda f, c: ~c["ended"] & c["open"]),
    "8841": Setter("cp_reviews", {"CPPreviewDate": lambda f, r: r["CPPstartDate"]}, lambda f, r: r["review"] == 1),
    # -- CIN plans
    "4008": Setter("cin_plans", {"PersonDeathDate": lambda f, p: p["CINPlanStartDate"] - DAY},
                   _dies_before("CINPlanStartDate", also=lambda f, p: ~p["ended"] & p["open"] & _lone_plan(p))),
    "4009Q": Setter("cin_plans", {"PersonDeathDate": lambda f, p: p["CINPlanEndDate"] - DAY},
                    _dies_before("CINPlanEndDate", "CINPlanStartDate", also=lambda f, p: p["ended"] & _lone_plan(p))),
    "4010": Setter("cin_plans", {"CINPlanStartDate": lambda f, p: f.ref + 5 * DAY}, lambda f, p: ~p["ended"] & p["open"]),
    "4011": Setter("cin_plans", {"CINPlanEndDate": lambda f, p: p["CINPlanStartDate"] - DAY},
                   lambda f, p: p["ended"] & (p["CINPlanStartDate"] > f.start)),
    "4012Q": Setter("cin_plans", {"CINPlanEndDate": lambda f, p: p["CINPlanStartDate"]},
                    lambda f, p: p["ended"] & (p["CINPlanStartDate"] >= f.start)),
    "4013": Setter("cin_plans", {"CINPlanEndDate": lambda f, p: f.ref + 5 * DAY}, lambda f, p: ~p["ended"] & p["open"]),
    "4015": Setter("cin_plans", {"CINPlanStartDate": lambda f, p: p["CINreferralDate"] - DAY},
                   lambda f, p: (p["cin_plan"] == 1) & (p["n_cpp"] == 0)),
    # -- pre-proceedings: each fault moves one date before the step it must follow, or out of the
    # year, keeping every other order; rows with fewer later steps are chosen first, leaving the
    # rarer court applications to the rules that need them
    "9005": Setter("pre_proceedings", {"PPStartDate": lambda f, p: f.start - 7 * DAY},
                   (lambda f, p: p["has_PPStartDate"] & ~p["has_StepDecisionDate"], lambda f, p: p["has_PPStartDate"])),
    "9006": Setter("pre_proceedings", {"LBPSentDate": lambda f, p: p["PPStartDate"] - DAY},
                   lambda f, p: p["has_LBPSentDate"] & (p["PPStartDate"] > f.start)),
    "9007": Setter("pre_proceedings", {"FGDMMeetingOffer": None},
                   lambda f, p: p["has_LBPSentDate"] & p["FGDMMeetingOffer"].notna()),
    "9008": Setter("pre_proceedings", {"InitialPPMeetingDate": lambda f, p: f.ref + 7 * DAY},
                   (lambda f, p: p["has_InitialPPMeetingDate"] & ~p["has_StepDecisionDate"],
                    lambda f, p: p["has_InitialPPMeetingDate"])),
    "9009": Setter("pre_proceedings", {"StepDecisionDate": lambda f, p: p["PPStartDate"] - DAY},
                   (lambda f, p: p["has_StepDecisionDate"] & ~p["has_CourtAppDate"] & (p["PPStartDate"] > f.start),
                    lambda f, p: p["has_StepDecisionDate"] & (p["PPStartDate"] > f.start))),
    "9010Q": Setter("pre_proceedings", {"FGDMMeetingFac": None}, lambda f, p: p["offered"]),
    "9011": Setter("pre_proceedings", {"PPOutcome": "X"},
                   (lambda f, p: p["has_PPOutcome"] & ~p["has_CourtAppDate"], lambda f, p: p["has_PPOutcome"])),
    "9012": Setter("pre_proceedings", {"CourtAppDate": lambda f, p: p["StepDecisionDate"] - DAY},
                   (lambda f, p: p["has_CourtAppDate"] & ~p["has_LetterInitCPDate"],
                    lambda f, p: p["has_CourtAppDate"])),
    "9013": Setter("pre_proceedings", {"LetterInitCPDate": lambda f, p: p["CourtAppDate"] - DAY},
                   lambda f, p: p["has_LetterInitCPDate"]),
    "9015Q": Setter("pre_proceedings", {"ReviewMeetingsCount": None}, lambda f, p: p["has_InitialPPMeetingDate"]),
}
"""The faults that set values of one chosen row, by rule (spelt as from 2022-23)."""


def _next_day_free(f: Faults, c: pd.DataFrame) -> Any:
    """Return the plans starting this year that can start a working day later with nothing else moving."""
    nxt = c["CPPstartDate"].map(lambda d: f.wd(d, 1) if pd.notna(d) else pd.NaT)
    bound = pd.concat([c["first_review"], c["CPPendDate"]], axis=1).min(axis=1).fillna(f.ref + DAY)
    return (c["CPPstartDate"] >= f.start) & (nxt < bound) & (nxt <= f.ref) & (c["n_plans"] == 0)


for _code, _setter in SETTERS.items():
    register(_code, _setter.table, _setter)


@dataclass(frozen=True)
class Adder:
    """Break a rule by adding a row to ``add`` under the parents of a row chosen from ``FACTS[table]``.

    ``values(f, row)`` gives the new row's values (it may raise :class:`Unfit`); ``change`` is
    formatted with them and the chosen row's (``row[...]``), dates as ``YYYY-MM-DD``, and the new
    row's ordinal ``n``. The fault is reported on ``report`` (default ``add``) at the new row, or
    at the chosen one when ``at_chosen``; ``needs`` orders it (default ``table``, see :data:`ORDER`).
    """

    table: str
    add: str
    values: Callable[[Faults, pd.Series], dict[str, Any]]
    change: str
    where: Where | None = None
    report: str | None = None
    at_chosen: bool = False
    needs: str | None = None

    def __call__(self, f: Faults) -> None:
        rows = FACTS[self.table](f)
        row = f.choose(rows, *((self.where(f, rows),) if self.where else ()))
        values = self.values(f, row)
        n = f.add(self.add, **{k: row[k] for k in spec.TABLE_KEYS[self.add][:-1]}, **values)
        change = self.change.format(row={k: describe(v) for k, v in row.items()}, n=n,
                                    **{k: describe(v) for k, v in values.items()})
        f.record(self.report or self.add, row, change, item=None if self.at_chosen else n)


def _same_cpp(f: Faults, c: pd.Series, **dates: Any) -> dict[str, Any]:
    """Return the values of a plan beside ``c``: its start, categories and previous plans, and ``dates``."""
    return {"CPPstartDate": c["CPPstartDate"], **dates, "InitialCategoryOfAbuse": c["InitialCategoryOfAbuse"],
            "LatestCategoryOfAbuse": c["LatestCategoryOfAbuse"], "NumberOfPreviousCPP": c["NumberOfPreviousCPP"]}


def _overlap_end(f: Faults, c: pd.Series) -> pd.Timestamp:
    limit = min(x for x in (c["CINclosureDate"], c["CPPendDate"], f.ref) if pd.notna(x))
    return max(f.start + DAY, min(limit, f.start + DAY * 10))


def _done_with_factors(f: Faults, a: pd.DataFrame) -> Any:
    return a["done"] & (a["n_factors"] > 0) & ~a["has_21"]


ADDERS: dict[str, Adder] = {
    "8794": Adder("children", "disabilities", lambda f, k: {
        "Disability": f.rows("disabilities", k["child"])["Disability"].iloc[0]},
        "added Disability {Disability} a second time", lambda f, k: k["n_disabilities"] > 0),
    "2990": Adder("episodes", "section47", lambda f, e: {"S47ActualStartDate": f.rows(
        "assessments", e["child"], e["episode"])["AssessmentActualStartDate"].min(), "ICPCnotRequired": True},
        "added Section47 s47={n} (S47ActualStartDate={S47ActualStartDate}, ICPCnotRequired=true) to a "
        "{row[ReasonForClosure]} episode", lambda f, e: e["nin"] & (e["n_assess"] > 0), report="episodes",
        at_chosen=True),
    # an enquiry concluded by a conference the working day before the referral (2889 fails too)
    "1104": Adder("episodes", "section47", lambda f, e: dict.fromkeys(
        ("S47ActualStartDate", "DateOfInitialCPC"), f.wd(e["CINreferralDate"], -1)) | {"ICPCnotRequired": False},
        "added Section47 with DateOfInitialCPC {DateOfInitialCPC} before CINreferralDate {row[CINreferralDate]}",
        lambda f, e: ~e["nfa"] & ~e["nin"] & (e["n_assess"] > 0) & (e["CINreferralDate"] > f.start + 7 * DAY),
        needs="section47"),
    "8890": Adder("section47", "section47", lambda f, s: {
        "S47ActualStartDate": s["S47ActualStartDate"] + DAY, "ICPCnotRequired": True},
        "added Section47 starting {S47ActualStartDate} during another", lambda f, s: s["DateOfInitialCPC"].notna()
        & (s["DateOfInitialCPC"] - s["S47ActualStartDate"] >= 2 * DAY)),
    "8614": Adder("assessments", "assessment_factors", lambda f, a: {"AssessmentFactors": "3B"},
                  "added AssessmentFactors 3B (factor {n}) to an assessment not authorised", lambda f, a: ~a["done"],
                  report="assessments", at_chosen=True),
    "8617": Adder("assessments", "assessment_factors", lambda f, a: {"AssessmentFactors": "8A"},
                  "added AssessmentFactors 8A", _done_with_factors),
    "8945Q": Adder("assessments", "assessment_factors", lambda f, a: {"AssessmentFactors": "18A"},
                   "added AssessmentFactors 18A", _done_with_factors),
    "8950Q": Adder("assessments", "assessment_factors", lambda f, a: {"AssessmentFactors": "19A"},
                   "added AssessmentFactors 19A", _done_with_factors),
    "8790": Adder("disabilities", "disabilities", lambda f, d: {"Disability": "AUT"},
                  "added Disability {Disability} beside NONE", lambda f, d: d["Disability"].astype(str) == "NONE",
                  at_chosen=True, needs="children"),
    "8898": Adder("assessment_factors", "assessment_factors", lambda f, r: {"AssessmentFactors": str(r["AssessmentFactors"])},
                  "added AssessmentFactors {AssessmentFactors} a second time",
                  lambda f, r: r["AssessmentFactors"].astype(str) != "21", needs="assessments"),
    # a second open plan beside an open one (their dates overlap: 8940, and 2885/2883 may fail)
    "8935": Adder("cp_plans", "cp_plans", _same_cpp, "added a second open plan starting {CPPstartDate}",
                  lambda f, c: ~c["ended"]),
    "8940": Adder("cp_plans", "cp_plans", lambda f, c: _same_cpp(f, c, CPPendDate=_overlap_end(f, c)),
                  "added a plan {CPPstartDate}..{CPPendDate} overlapping plan {row[cpp]}",
                  lambda f, c: c["CPPstartDate"] < f.start),
    "4000": Adder("episodes", "cin_plans", lambda f, e: {"CINPlanStartDate": e["CINreferralDate"]},
                  "added an open CIN plan to an NFA referral",
                  lambda f, e: e["nfa"] & ~e["child"].map(f.kids["any_plan"]), needs="cin_plans"),
    # an open CIN plan during an open protection plan (it starts inside it: 4016 too)
    "4001": Adder("cp_plans", "cin_plans", lambda f, c: {"CINPlanStartDate": c["CPPstartDate"] + DAY},
                  "added an open CIN plan starting {CINPlanStartDate}",
                  lambda f, c: ~c["ended"] & (c["CPPstartDate"] < f.ref) & (c["n_plans"] == 0), needs="cin_plans"),
    # a second open CIN plan (it overlaps the first: 4014 too)
    "4004": Adder("cin_plans", "cin_plans", lambda f, p: {"CINPlanStartDate": p["CINPlanStartDate"] + DAY},
                  "added a second open CIN plan starting {CINPlanStartDate}",
                  lambda f, p: ~p["ended"] & (p["CINPlanStartDate"] < f.ref)),
    "4014": Adder("cin_plans", "cin_plans", lambda f, p: {
        "CINPlanStartDate": p["CINPlanStartDate"] + DAY, "CINPlanEndDate": p["CINPlanEndDate"]},
        "added a CIN plan {CINPlanStartDate}..{CINPlanEndDate} inside plan {row[cin_plan]}",
        lambda f, p: p["ended"] & (p["CINPlanEndDate"] - p["CINPlanStartDate"] >= 2 * DAY)),
}
"""The faults that add one row beside a chosen one, by rule."""

for _code, _adder in ADDERS.items():
    register(_code, _adder.needs or _adder.table, _adder)


@dataclass(frozen=True)
class Remover:
    """Break a rule by removing the rows of ``drop`` under a row chosen from ``FACTS[table]``.

    Each table of ``drop`` loses its rows with the chosen row's keys; ``change`` is formatted with
    the chosen row (``row[...]``) and ``n``, how many rows the first of them lost.
    """

    table: str
    drop: tuple[str, ...]
    change: str
    where: Where | None = None

    def __call__(self, f: Faults) -> None:
        rows = FACTS[self.table](f)
        row = f.choose(rows, *((self.where(f, rows),) if self.where else ()))
        counts = []
        for table in self.drop:
            df = f.t[table]
            mask = pd.Series(True, index=df.index)
            for key in spec.TABLE_KEYS[self.table]:
                mask &= df[key] == row[key]
            counts.append(f.drop(table, mask))
        f.record(self.table, row, self.change.format(row=row, n=counts[0]))


_EPISODES_AND_CONTENTS = tuple(table for table, keys in spec.TABLE_KEYS.items() if "episode" in keys)
"""The episodes table first, then every table of what an episode holds."""

REMOVERS: dict[str, Remover] = {
    "8540": Remover("children", ("disabilities",), "removed {n} Disability",
                    lambda f, k: k["born"] & k["any_in_need"]),
    "8590": Remover("children", _EPISODES_AND_CONTENTS, "removed {n} CINdetails and their contents"),
    "2991Q": Remover("episodes", ("assessments", "assessment_factors"),
                     "removed {n} Assessments of an episode with a Section47",
                     lambda f, e: (e["n_s47"] > 0) & (e["n_assess"] > 0)),
    "8825Q": Remover("episodes", ("assessments", "assessment_factors"),
                     "removed {n} Assessments of a {row[ReasonForClosure]} episode",
                     lambda f, e: e["nin"] & (e["n_assess"] > 0)),
    "8897Q": Remover("assessments", ("assessment_factors",), "removed {n} AssessmentFactors",
                     lambda f, a: a["done"] & (a["n_factors"] > 0)),
}
"""The faults that remove what hangs under a chosen row, by rule."""

for _code, _remover in REMOVERS.items():
    register(_code, _remover.table, _remover)


# -- faults of other shapes: children ---------------------------------------------------------------


def _share_value(f: Faults, column: str, where: Where) -> None:
    """Give a chosen child the ``column`` of another untouched child (both then fail)."""
    kids = _kids(f)
    ok = pd.Series(np.asarray(where(f, kids), dtype=bool), index=kids.index)
    k = f.choose(kids, ok)
    donors = kids[ok & (kids["child"] != k["child"]) & ~kids["child"].isin(f.used)]
    if donors.empty:
        raise Unfit
    donor = donors.iloc[f.rnd.randrange(len(donors))]
    f.record("children", k, f.set_child(k["child"], column, donor[column]))
    f.record("children", donor, f"(none: child {k['LAchildID']} was given this {column})")


@injector("1520", "children")
def _duplicate_upn(f: Faults) -> None:
    _share_value(f, "UPN", _upn)


@injector("8510", "children")
def _duplicate_child_id(f: Faults) -> None:
    _share_value(f, "LAchildID", lambda f, k: k["child"].notna())


@injector("4180", "children")
def _no_sex(f: Faults) -> None:
    k = f.choose(_kids(f))
    f.record("children", k, f.set_child(k["child"], f.sex, None))


def _unborn(f: Faults) -> tuple[pd.Series, list[str]]:
    """Return an unborn child; failing that, make a baby referred lately unborn (the changes)."""
    kids = _kids(f)
    k = f.pick(kids, kids["ExpectedPersonBirthDate"].notna() & ~kids["born"])
    if k is not None:
        return k, []
    recent = f.ref - pd.Timedelta(days=250)
    k = f.choose(kids, kids["born"] & (kids["PersonBirthDate"] >= recent) & (kids["first_referral"] >= recent))
    due = f.ref + pd.Timedelta(days=20)
    return k, [f.set_child(k["child"], "PersonBirthDate", None),
               f.set_child(k["child"], "ExpectedPersonBirthDate", due)]


@injector("8530Q", "children")
def _due_date_out_of_range(f: Faults) -> None:
    k, changes = _unborn(f)
    if changes:
        changes.append(f.set_child(k["child"], f.sex, "U" if f.sex == "Sex" else "0"))
    changes.append(f.set_child(k["child"], "ExpectedPersonBirthDate", f.ref - pd.Timedelta(days=60)))
    f.record("children", k, "; ".join(changes))


@injector("8750", "children")
def _unborn_with_sex(f: Faults) -> None:
    k, changes = _unborn(f)
    changes.append(f.set_child(k["child"], f.sex, "M" if f.sex == "Sex" else "1"))
    f.record("children", k, "; ".join(changes))


@injector("8555Q", "children")
def _referred_after_death(f: Faults) -> None:
    kids = _kids(f)
    death = kids["last_referral"] - DAY
    k = f.choose(kids, kids["born"] & kids["PersonDeathDate"].isna() & ~kids["any_cpp"] & ~kids["any_plan"]
                 & (death >= f.start) & (death >= kids["PersonBirthDate"]))
    change = f.set_child(k["child"], "PersonDeathDate", k["last_referral"] - DAY)
    e = f.ep[f.ep["child"] == k["child"]]
    f.record("episodes", e.loc[e["CINreferralDate"].idxmax()], change)


@injector("8606", "children")
def _referral_long_before_birth(f: Faults) -> None:
    kids = _kids(f)
    k = f.choose(kids, kids["born"] & (kids["first_referral"] <= f.ref - pd.Timedelta(days=290)))
    change = f.set_child(k["child"], "PersonBirthDate", k["first_referral"] + pd.Timedelta(days=285))
    f.record("episodes", f.ep[(f.ep["child"] == k["child"]) & (f.ep["CINreferralDate"] == k["first_referral"])].iloc[0],
             change)


# -- episodes -------------------------------------------------------------------------------------


@injector("8820", "episodes")
def _overlapping_episodes(f: Faults) -> None:
    """Move a child's next referral inside its previous (closed, in-need) episode."""
    ep = f.ep.sort_values(["child", "CINreferralDate"])
    nxt = ep.groupby("child")["CINreferralDate"].shift(-1)
    nxt_nfa = ep.groupby("child")["nfa"].shift(-1)
    e = f.choose(ep, ep["closed"] & ~ep["nfa"] & nxt.notna() & (nxt_nfa == False)  # noqa: E712
                 & (ep["CINclosureDate"] - ep["CINreferralDate"] >= pd.Timedelta(days=2)))
    later = ep[(ep["child"] == e["child"]) & (ep["CINreferralDate"] > e["CINreferralDate"])].iloc[0]
    f.record("episodes", later, f.set("episodes", later["label"], "CINreferralDate", e["CINclosureDate"] - DAY))


@injector("8832", "episodes")
def _nfa_with_cpp(f: Faults) -> None:
    """Flag an episode with a protection plan as NFA (an old referral: 8569Q; with S47s: 8831 too)."""
    ep = f.ep
    quiet = (ep["n_assess"] == 0) & (ep["n_s47"] == 0) & (ep["n_plans"] == 0)
    e = f.choose(ep, (ep["n_cpp"] > 0) & quiet, ep["n_cpp"] > 0)
    f.record("cp_plans", e, f.set("episodes", e["label"], "ReferralNFA", True), item=1)


@injector("8565", "episodes")
def _activity_after_closure(f: Faults) -> None:
    ep = f.ep
    cands = ep[ep["closed"] & ~ep["nfa"] & ((ep["n_assess"] > 0) | (ep["n_s47"] > 0) | (ep["n_cpp"] > 0))]
    order = list(range(len(cands)))
    f.rnd.shuffle(order)
    for i in order:
        e = cands.iloc[i]
        if e["child"] in f.used:
            continue
        last = _last_activity(f, e)
        new = last - DAY
        if last is not pd.NaT and new >= max(e["CINreferralDate"], f.start):
            f.record("episodes", e, f.set("episodes", e["label"], "CINclosureDate", new))
            return
    raise Unfit


def _last_activity(f: Faults, e: pd.Series) -> pd.Timestamp:
    dates = []
    for table, cols in (("assessments", ("AssessmentActualStartDate", "AssessmentAuthorisationDate")),
                        ("section47", ("S47ActualStartDate", "DateOfInitialCPC")),
                        ("cp_plans", ("CPPendDate",)), ("cin_plans", ("CINPlanStartDate", "CINPlanEndDate"))):
        rows = f.rows(table, e["child"], e["episode"])
        for c in cols:
            if c in rows:
                dates.extend(rows[c].dropna().tolist())
    return max(dates) if dates else pd.NaT


# -- section 47 ------------------------------------------------------------------------------------


@injector("2884", "section47")
def _icpc_twice(f: Faults) -> None:
    s = _s47(f)
    row = f.choose(s, s["DateOfInitialCPC"].notna())
    label = f.ep.loc[(f.ep["child"] == row["child"]) & (f.ep["episode"] == row["episode"]), "label"].iloc[0]
    f.record("section47", row, f.set("episodes", label, "DateOfInitialCPC", row["DateOfInitialCPC"]))


@injector("8740", "section47")
def _open_s47_after_census(f: Faults) -> None:
    s = _s47(f)
    later = f.ref + pd.Timedelta(days=3)
    row = f.pick(s, s["open_s47"])
    if row is not None:
        return f.record("section47", row, f.set("section47", row["label"], "S47ActualStartDate", later))
    row = f.choose(s, s["open"] & s["last"] & s["not_required"])
    f.record("section47", row, f.set("section47", row["label"], "ICPCnotRequired", False) + "; "
             + f.set("section47", row["label"], "S47ActualStartDate", later))


def _add_open(f: Faults, table: str, open_rows: pd.DataFrame, episodes: Any, noun: str, plural: str,
              **fixed: Any) -> None:
    """Add an open ``table`` row the day after an open one, else two to an open episode (``episodes``)."""
    column = "S47ActualStartDate" if table == "section47" else "AssessmentActualStartDate"
    row = f.pick(open_rows)
    if row is not None:
        day = min(row[column] + DAY, f.ref)
        n = f.add(table, child=row["child"], episode=row["episode"], **{column: day}, **fixed)
        return f.fault(row["child"], table, f"added an open {noun} starting {describe(day)}", episode=row["episode"],
                       item=n)
    e = f.choose(f.ep, episodes)
    for back in (3, 2):
        n = f.add(table, child=e["child"], episode=e["episode"], **{column: f.ref - DAY * back}, **fixed)
    f.fault(e["child"], table, f"added two open {plural}", episode=e["episode"], item=n)


@injector("8839", "section47")
def _two_open_s47(f: Faults) -> None:
    """Add a second enquiry still open in the same episode (8890 fails too)."""
    s, ep = _s47(f), f.ep
    _add_open(f, "section47", s[s["open_s47"]],
              ep["open"] & (ep["n_assess"] > 0) & (ep["CINreferralDate"] <= f.ref - pd.Timedelta(days=5)),
              "Section47", "Section47", ICPCnotRequired=False)


@injector("8875", "section47")
def _icpc_on_weekend(f: Faults) -> None:
    s = _s47(f)
    sat = s["DateOfInitialCPC"].map(lambda d: f.saturday_after(d) if pd.notna(d) else pd.NaT)
    ok = s["DateOfInitialCPC"].notna() & (sat <= s["CINclosureDate"].fillna(f.ref).clip(upper=f.ref))
    row = f.pick(s, ok & ~s["has_cpp"])
    if row is None:
        # a plan started at the conference moves with it (its start must equal the conference, 2885)
        c = _cpp(f)
        first = dict(zip(zip(c["child"], c["CPPstartDate"]), c["first_review"]))
        later = [has and (pd.isna(first.get((ch, d))) or sd < first[(ch, d)])
                 for has, ch, d, sd in zip(s["has_cpp"], s["child"], s["DateOfInitialCPC"], sat)]
        row = f.choose(s, ok & pd.Series(later, index=s.index, dtype=bool) & (s["n_plans"] == 0))
        plans = f.t["cp_plans"]
        label = plans.index[(plans["child"] == row["child"]) & (plans["CPPstartDate"] == row["DateOfInitialCPC"])][0]
        f.set("cp_plans", label, "CPPstartDate", f.saturday_after(row["DateOfInitialCPC"]))
    f.record("section47", row, f.set("section47", row["label"], "DateOfInitialCPC",
                                     f.saturday_after(row["DateOfInitialCPC"])))


# -- assessments and factors ----------------------------------------------------------------------


def _factors_of(f: Faults, a: pd.Series) -> pd.Series:
    fac = f.t["assessment_factors"]
    return (fac["child"] == a["child"]) & (fac["episode"] == a["episode"]) & (fac["assessment"] == a["assessment"])


def _drop_factors(f: Faults, a: pd.Series) -> int:
    return f.drop("assessment_factors", _factors_of(f, a))


def _add_factor(f: Faults, a: pd.Series, code: str) -> int:
    return f.add("assessment_factors", child=a["child"], episode=a["episode"], assessment=a["assessment"],
                 AssessmentFactors=code)


def _unauthorise(f: Faults, a: pd.Series) -> str:
    n = _drop_factors(f, a)
    return f.set("assessments", a["label"], "AssessmentAuthorisationDate", None) + f"; removed {n} factors"


@injector("8670Q", "assessments")
def _assessment_open_too_long(f: Faults) -> None:
    a = _assessments(f)
    row = f.choose(a, a["done"] & a["open"] & a["last"] & (a["n_open_assess"] == 0)
                   & (a["AssessmentActualStartDate"] >= f.start) & (a["AssessmentActualStartDate"] <= f.wd(f.ref, -46)))
    f.record("assessments", row, _unauthorise(f, row))


@injector("8736", "assessments")
def _open_assessment_after_census(f: Faults) -> None:
    a = _assessments(f)
    later = f.ref + DAY * 2
    row = f.pick(a, ~a["done"])
    if row is not None:
        return f.record("assessments", row, f.set("assessments", row["label"], "AssessmentActualStartDate", later))
    row = f.choose(a, a["done"] & a["open"] & a["last"] & (a["n_open_assess"] == 0))
    n = _drop_factors(f, row)
    f.record("assessments", row, f.set("assessments", row["label"], "AssessmentAuthorisationDate", None) + "; "
             + f.set("assessments", row["label"], "AssessmentActualStartDate", later) + f"; removed {n} factors")


@injector("8863Q", "assessments")
def _assessments_overlap(f: Faults) -> None:
    a = _assessments(f)
    row = f.choose(a, a["done"] & (a["AssessmentActualStartDate"] >= f.start) & (a["n_factors"] > 0)
                   & (a["AssessmentAuthorisationDate"] - a["AssessmentActualStartDate"] >= pd.Timedelta(days=2)))
    start = row["AssessmentActualStartDate"] + DAY
    n = f.add("assessments", child=row["child"], episode=row["episode"], kind="continuous",
              AssessmentActualStartDate=start, AssessmentAuthorisationDate=row["AssessmentAuthorisationDate"])
    for code in f.t["assessment_factors"].loc[_factors_of(f, row), "AssessmentFactors"]:
        f.add("assessment_factors", child=row["child"], episode=row["episode"], assessment=n, AssessmentFactors=code)
    f.record("assessments", row, f"added an assessment starting {describe(start)} during assessment "
             f"{row['assessment']}", item=n)


@injector("8867", "assessments")
def _closed_with_open_assessment(f: Faults) -> None:
    a = _assessments(f)
    row = f.choose(a, a["done"] & a["closed"] & a["last"] & (a["AssessmentActualStartDate"] >= f.start))
    f.record("episodes", row, _unauthorise(f, row))


@injector("8869", "assessments")
def _factor_21_with_others(f: Faults) -> None:
    a = _assessments(f)
    row = f.choose(a, a["nin"] & (a["n_factors"] > 0))
    codes = set(f.t["assessment_factors"].loc[_factors_of(f, row), "AssessmentFactors"].astype(str))
    code = "3B" if codes == {"21"} else "21"
    n = _add_factor(f, row, code)
    f.record("assessment_factors", row, f"added AssessmentFactors {code} (factor {n}) beside {', '.join(sorted(codes))}",
             item=n)


@injector("8873Q", "assessments")
def _factor_21_not_rc8(f: Faults) -> None:
    a = _assessments(f)
    a = a[a["nin"] & (a["n_assess"] == 1) & (a["n_factors"] > 0)]
    row = f.pick(a, a["only_21"])
    changes = []
    if row is None:
        row = f.choose(a)
        n = _drop_factors(f, row)
        factor = _add_factor(f, row, "21")
        changes.append(f"replaced {n} factors by 21")
    else:
        factors = f.t["assessment_factors"][_factors_of(f, row)]
        factor = factors.loc[factors["AssessmentFactors"].astype(str) == "21", "factor"].iloc[0]
    label = f.ep.loc[(f.ep["child"] == row["child"]) & (f.ep["episode"] == row["episode"]), "label"].iloc[0]
    changes.insert(0, f.set("episodes", label, "ReasonForClosure", "RC7"))
    f.record("assessment_factors", row, "; ".join(changes), item=factor)


@injector("8896", "assessments")
def _two_open_assessments(f: Faults) -> None:
    """Add a second open assessment in one episode (8863Q fails too)."""
    a, ep = _assessments(f), f.ep
    _add_open(f, "assessments", a[~a["done"]], ep["open"] & (ep["CINreferralDate"] <= f.ref - DAY * 5),
              "assessment", "assessments", kind="continuous")


@injector("8899Q", "assessments")
def _disabled_without_disability_factor(f: Faults) -> None:
    a = _assessments(f)
    row = f.choose(a, a["done"] & (a["child"].map(f.kids["n_disabilities"]) > 0) & (a["n_factors"] > 0))
    fac = f.t["assessment_factors"]
    n = f.drop("assessment_factors", _factors_of(f, row) & fac["AssessmentFactors"].astype(str).isin(["5A", "6A"]))
    change = f"removed {n} factors 5A/6A"
    if not _factors_of(f, row).any():
        _add_factor(f, row, "3B")
        change += "; added 3B"
    f.record("assessments", row, change)


# -- CIN plans ------------------------------------------------------------------------------------


@injector("4003", "cin_plans")
def _review_during_plan(f: Faults) -> None:
    c = _cpp(f)
    p = f.t["cin_plans"]
    starts = dict(zip(zip(p["child"], p["episode"], p["CINPlanStartDate"]), p["CINPlanEndDate"]))
    has_step = [(ch, e, d) in starts for ch, e, d in zip(c["child"], c["episode"], c["CPPendDate"])]
    row = f.choose(c, c["ended"] & pd.Series(has_step, index=c.index))
    plan_end = starts[(row["child"], row["episode"], row["CPPendDate"])]
    day = row["CPPendDate"] + DAY * 2
    if day > min(x for x in (plan_end, row["CINclosureDate"], f.ref) if pd.notna(x)):
        raise Unfit
    n = f.add("cp_reviews", child=row["child"], episode=row["episode"], cpp=row["cpp"], CPPreviewDate=day)
    f.record("cp_reviews", row,
             f"added CPPreviewDate {describe(day)} inside the CIN plan that follows the protection plan",
             item=n)


@injector("4016", "cin_plans")
def _plan_starts_in_cpp(f: Faults) -> None:
    c = _cpp(f)
    p = f.t["cin_plans"]
    label_of = {(ch, e, d): lab for lab, ch, e, d in zip(p.index, p["child"], p["episode"], p["CINPlanStartDate"])}
    rv = f.t["cp_reviews"]
    reviewed = set(zip(rv["child"], rv["episode"], rv["cpp"], rv["CPPreviewDate"]))
    ok = [ended and (ch, e, d) in label_of and (ch, e, k, d - DAY) not in reviewed and d - DAY > s
          for ended, ch, e, k, s, d in zip(c["ended"], c["child"], c["episode"], c["cpp"], c["CPPstartDate"],
                                           c["CPPendDate"])]
    row = f.choose(c, ok)
    label = label_of[(row["child"], row["episode"], row["CPPendDate"])]
    change = f.set("cin_plans", label, "CINPlanStartDate", row["CPPendDate"] - DAY)
    f.record("cin_plans", row, change, item=p.loc[label, "cin_plan"])


@injector("4017", "cin_plans")
def _cpp_starts_in_plan(f: Faults) -> None:
    c = _cpp(f)
    p = f.t["cin_plans"]
    label_of = {(ch, e, d): lab for lab, ch, e, d in zip(p.index, p["child"], p["episode"], p["CINPlanEndDate"])}
    day_after = c["CPPstartDate"] + DAY
    ok = [(ch, e, s) in label_of and (pd.isna(r) or a < r) and a <= f.ref
          for ch, e, s, a, r in zip(c["child"], c["episode"], c["CPPstartDate"], day_after, c["first_review"])]
    row = f.pick(c, ok)
    if row is not None:
        label = label_of[(row["child"], row["episode"], row["CPPstartDate"])]
        change = f.set("cin_plans", label, "CINPlanEndDate", row["CPPstartDate"] + DAY)
        return f.record("cin_plans", row, change, item=p.loc[label, "cin_plan"])
    row = f.choose(c, (c["n_plans"] == 0) & (c["CPPstartDate"] - c["CINreferralDate"] >= pd.Timedelta(days=3))
                   & (c["first_review"].isna() | (c["first_review"] > c["CPPstartDate"] + DAY))
                   & (c["CPPstartDate"] + DAY <= f.ref))
    start, end = row["CPPstartDate"] - DAY * 2, row["CPPstartDate"] + DAY
    n = f.add("cin_plans", child=row["child"], episode=row["episode"], CINPlanStartDate=start, CINPlanEndDate=end)
    f.record("cin_plans", row, f"added a CIN plan {describe(start)}..{describe(end)} around the plan's start", item=n)


# -- return level ---------------------------------------------------------------------------------


@injector("100", "return")
def _wrong_reference_date(f: Faults) -> None:
    old = f.header.reference_date
    new = f.ref - DAY
    f.header = dataclasses.replace(f.header, reference_date=new)
    f.fault(None, "return", f"ReferenceDate: {describe(old)} -> {describe(new)}")


@injector("2883", "return")
def _more_plans_than_conferences(f: Faults) -> None:
    """Replace conferences by 'not required' until plans starting outnumber them (2885 fails too)."""
    s = _s47(f)
    in_year = s["DateOfInitialCPC"].between(f.start, f.ref)
    starts = int(f.t["cp_plans"]["CPPstartDate"].between(f.start, f.ref).sum())
    conferences = int(in_year.sum()) + int(f.t["episodes"]["DateOfInitialCPC"].between(f.start, f.ref).sum())
    if starts == 0:
        raise Unfit
    order = s[in_year].sort_values("has_cpp", kind="stable")  # conferences without a plan first
    removed = 0
    for _, row in order.iterrows():
        if starts > conferences - removed:
            break
        f.set("section47", row["label"], "DateOfInitialCPC", None)
        f.set("section47", row["label"], "ICPCnotRequired", True)
        removed += 1
    f.fault(None, "return", f"removed {removed} DateOfInitialCPC: {starts} plans start, "
            f"{conferences - removed} conferences")


@injector("8995Q", "return")
def _no_pre_proceedings(f: Faults) -> None:
    """Remove every pre-proceedings module (no child then has a PPStartDate either: 9000Q fails too)."""
    n = f.drop("pre_proceedings", f.t["pre_proceedings"]["child"].notna())
    if not n:
        raise Unfit
    f.fault(None, "return", f"removed all {n} PreProceedingsandFGDM modules")


@injector("9000Q", "return")
def _no_pre_proceedings_start(f: Faults) -> None:
    pp = f.t["pre_proceedings"]
    started = pp.index[pp["PPStartDate"].notna()]
    if not len(started):
        raise Unfit
    for label in started:
        f.set("pre_proceedings", label, "PPStartDate", None)
    f.fault(None, "return", f"PPStartDate removed from all {len(started)} PreProceedingsandFGDM modules")


@injector("2886Q", "return")
def _many_without_sex(f: Faults) -> None:
    kids = _kids(f)
    born = kids[kids["born"] & ~kids["child"].isin(f.used)]
    n = int(np.ceil(0.02 * len(kids[kids["born"]]))) + 1
    if len(born) < n:
        raise Unfit
    value = "U" if f.sex == "Sex" else "0"
    for child in born.iloc[sorted(f.rnd.sample(range(len(born)), n))]["child"]:
        f.set_child(child, f.sex, value)
    f.fault(None, "return", f"{f.sex} set to {value} for {n} of {len(kids)} children")


@injector("2887Q", "return")
def _few_disability_codes(f: Faults) -> None:
    d = f.t["disabilities"]
    real = d["Disability"].astype(str) != "NONE"
    keep = list(d.loc[real, "Disability"].astype(str).value_counts().index[:7])
    if not keep:
        raise Unfit
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
    if not extra.any():
        raise Unfit
    n = f.drop("disabilities", extra)
    _renumber(f, "disabilities")
    f.fault(None, "return", f"removed {n} second and later disabilities")


def _renumber(f: Faults, table: str) -> None:
    keys = list(spec.TABLE_KEYS[table])
    df = f.t[table].sort_values(keys, kind="stable")
    df[keys[-1]] = df.groupby(keys[:-1]).cumcount() + 1
    f.t[table] = df
