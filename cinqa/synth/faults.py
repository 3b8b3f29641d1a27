"""Labelled faults: break one DfE rule at a time in a clean synthetic return, and say where.

Each rule has one small injector (``INJECTORS[code]``) that picks a child not yet touched,
changes as little as it can so that exactly that rule fails, and records a truth row: rule,
LAchildID, child, entity, episode, item (the entity's own ordinal, as ``cinqa.validate`` reports
it) and the change made. A duplicated value (1520, 8510) makes two children fail, so both get a
truth row. Some faults cannot avoid tripping a second rule (two open episodes are also
overlapping ones); the injector's docstring says so, and the truth names the intended rule only.

Injectors choose their targets from facts about the clean return computed once up front; since
every fault goes to a different child, those facts stay true for the children still untouched.
Return-level rules (100, 2883, 2886Q, 2887Q, 2888Q) change many children and are only injected
when asked for by name.
"""

from __future__ import annotations

import dataclasses
import random
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from cinqa import rules, spec, workdays
from cinqa.returns import CensusReturn
from cinqa.synth.render import categorical
from cinqa.synth.timeline import UPN_LETTERS, upn_check_letter

TRUTH_COLUMNS = ("rule", "LAchildID", "child", "entity", "episode", "item", "change")
RETURN_LEVEL = frozenset({"100", "2883", "2886Q", "2887Q", "2888Q"})
DAY = pd.Timedelta(days=1)

# The years each rule applies to, for injection. The 2022-23 rule list is carried back to earlier
# years (cin-spec.md §5), except where the data it reads did not exist yet.
_ASSESSMENT_RULES = ("1103", "2991Q", "8608", "8614", "8670Q", "8696", "8736", "8825Q", "8863Q", "8867",
                     "8869", "8873Q", "8896", "8897Q", "8898")
_PLAN_RULES = ("4000", "4001", "4003", "4004", "4008", "4009Q", "4010", "4011", "4012Q", "4013", "4014",
               "4015", "4016", "4017")
_BASE_RULES = (
    "100", "1103", "1104", "1105", "1510", "1520", "1530", "1540", "1550", "1560Q", "2883", "2884", "2885",
    "2886Q", "2887Q", "2888Q", "2889", "2990", "2991Q", *_PLAN_RULES, "4180", "4220", "8500", "8510", "8520",
    "8525Q", "8530Q", "8535Q", "8540", "8545Q", "8555Q", "8565", "8568", "8569Q", "8585Q", "8590", "8600",
    "8606", "8608", "8610", "8614", "8615", "8620", "8630", "8640", "8650", "8670Q", "8675Q", "8696", "8715",
    "8720", "8730", "8736", "8740", "8750", "8770Q", "8772", "8775Q", "8790", "8794", "8805", "8810", "8815",
    "8816", "8820", "8825Q", "8831", "8832", "8839", "8840", "8841", "8842Q", "8863Q", "8866", "8867", "8868",
    "8869", "8870Q", "8873Q", "8875", "8890", "8896", "8897Q", "8898", "8905", "8910", "8915", "8920", "8925",
    "8930", "8935", "8940",
)
RULE_YEARS: dict[str, str] = {code: "2012-13.." for code in _BASE_RULES}
RULE_YEARS.update({code: "2013-14.." for code in _ASSESSMENT_RULES})
RULE_YEARS.update({code: "2021-22.." for code in _PLAN_RULES})
RULE_YEARS.update({"8866": "2013-14..", "1570": "2024-25..", "1580": "2024-25..", "8945Q": "2024-25..",
                   "8950Q": "2024-25..", "8617": "2013-14..2021-22", "8899Q": "2013-14..2021-22"})

NOT_INJECTABLE: dict[str, str] = {
    "8842Q": "a <Reviews> group without a <CPPreviewDate> has no row in the tables (the reader reports it "
             "as a structural issue), so the fault cannot be written into a return",
}
PENDING_2012_13: dict[str, str] = {
    code: "2012-13 initial/core assessment analogue not yet named by the rule suites" for code in _ASSESSMENT_RULES
}


@cache
def _were_errors() -> dict[str, tuple[str, frozenset[str]]]:
    """Map each query whose rule was an error under its plain number in earlier years to that number
    and its years, as the rule suites give them (``"8525Q"``: ``"8525"``, 2012-13 to 2021-22)."""
    years: dict[str, set[str]] = {}
    for e in rules.entries():
        years.setdefault(e.rule, set()).update(e.years)
    return {c: (c[:-1], frozenset(years[c[:-1]])) for c in years if c.endswith("Q") and c[:-1] in years}


def rule_code(code: str, year: str) -> str:
    """Return the code a rule has in ``year`` (``"8525Q"`` is ``"8525"`` before 2022-23)."""
    old, years = _were_errors().get(code, (code, frozenset()))
    return old if year in years else code


def _query_code(code: str) -> str:
    """Return the current code of a rule given by either spelling (``"8525"`` is ``"8525Q"``)."""
    return next((q for q, (old, _) in _were_errors().items() if old == code), code)


def rule_years(code: str) -> frozenset[str]:
    """Return the supported years in which rule ``code`` (either spelling) can be injected."""
    base = _query_code(code)
    if base not in RULE_YEARS or base in NOT_INJECTABLE or base not in INJECTORS:
        return frozenset()
    years = spec.parse_years(RULE_YEARS[base]) & set(spec.SUPPORTED_YEARS)
    return frozenset(y for y in years if rule_code(base, y) == code)


def injectable_rules(year: str) -> list[str]:
    """Return the rule codes (as spelt in ``year``) that can be injected into a return of ``year``."""
    return sorted(rule_code(c, year) for c in INJECTORS
                  if year in spec.parse_years(RULE_YEARS[c]) and c not in NOT_INJECTABLE)


def uninjectable_rules(year: str) -> dict[str, str]:
    """Return the rules of ``year`` without an injector, each with the reason."""
    out = {rule_code(c, year): why for c, why in NOT_INJECTABLE.items()}
    if year == "2012-13":
        out.update(PENDING_2012_13)
    for code, years in RULE_YEARS.items():
        if year in spec.parse_years(years) and code not in INJECTORS and code not in NOT_INJECTABLE:
            out[rule_code(code, year)] = "no injector yet"
    return dict(sorted(out.items()))


@dataclass
class Fault:
    """One injected fault, located as ``cinqa.validate`` locates a failure."""

    rule: str
    child: int | None
    entity: str
    episode: int | None
    item: int | None
    change: str


class Faults:
    """A return's tables being edited, the facts injectors choose from, and the faults so far."""

    def __init__(self, ret: CensusReturn, rnd: random.Random) -> None:
        self.year = ret.year
        self.header = ret.header
        self.t = {k: v.copy() for k, v in ret.tables.items()}
        self.start = ret.census_start
        self.ref = ret.reference_date
        self.rnd = rnd
        self.used: set[int] = set()
        self.faults: list[Fault] = []
        self.sex = "Sex" if "Sex" in self.t["children"] else "GenderCurrent"
        self.ep = _episode_facts(self.t, self.ref)
        self.kids = _child_facts(self.t, self.ep, self.ref)
        self._code = ""

    # -- choosing ------------------------------------------------------------------------------

    def choose(self, df: pd.DataFrame, mask: Any = None) -> pd.Series | None:
        """Return a random row of ``df`` (where ``mask``) whose child is still untouched."""
        if mask is not None:
            df = df[np.asarray(mask, dtype=bool)]
        if df.empty:
            return None
        df = df[~df["child"].isin(self.used)]
        if df.empty:
            return None
        return df.iloc[self.rnd.randrange(len(df))]

    def rows(self, table: str, child: int, episode: int | None = None) -> pd.DataFrame:
        """Return ``table``'s rows of one child (and episode)."""
        df = self.t[table]
        m = df["child"] == child
        if episode is not None:
            m &= df["episode"] == episode
        return df[m]

    # -- editing -------------------------------------------------------------------------------

    def set(self, table: str, label: Any, column: str, value: Any) -> str:
        """Set one cell; return a description of the change."""
        df = self.t[table]
        old = df.at[label, column]
        col = df[column]
        if isinstance(col.dtype, pd.CategoricalDtype) and value is not None and not _missing(value) \
                and value not in col.cat.categories:
            df[column] = col.cat.add_categories([value])
        if value is None:
            value = pd.NaT if _is_date(df[column]) else np.nan if isinstance(col.dtype, pd.CategoricalDtype) else pd.NA
        df.at[label, column] = value
        return f"{column}: {_fmt(old)} -> {_fmt(value)}"

    def set_child(self, child: int, column: str, value: Any) -> str:
        """Set a child-level value (LAchildID is copied to every table's rows of the child)."""
        kids = self.t["children"]
        label = kids.index[kids["child"] == child][0]
        change = self.set("children", label, column, value)
        if column == "LAchildID":
            for name, df in self.t.items():
                if name != "children":
                    df.loc[df["child"] == child, "LAchildID"] = value
        return change

    def add(self, table: str, **values: Any) -> int:
        """Append a row to ``table`` after its siblings; return its own ordinal."""
        keys = spec.TABLE_KEYS[table]
        df = self.t[table]
        parent = df
        for k in keys[:-1]:
            parent = parent[parent[k] == values[k]]
        own = int(parent[keys[-1]].max()) + 1 if len(parent) else 1
        values[keys[-1]] = own
        values["LAchildID"] = self.kids.at[values["child"], "LAchildID"]
        self.t[table] = _append(df, {c: values.get(c) for c in df.columns})
        return own

    def drop(self, table: str, mask: pd.Series) -> int:
        """Remove the rows of ``table`` where ``mask``; return how many."""
        n = int(mask.sum())
        self.t[table] = self.t[table][~mask]
        return n

    def fault(self, child: int | None, entity: str, change: str, episode: Any = None, item: Any = None) -> bool:
        """Record the fault being injected; mark its child as used."""
        if child is not None:
            self.used.add(int(child))
        self.faults.append(Fault(self._code, None if child is None else int(child), entity,
                                 None if episode is None else int(episode), None if item is None else int(item),
                                 change))
        return True

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
        tables = {name: _retype(name, df, self.year) for name, df in self.t.items()}
        ret = CensusReturn(year=self.year, header=self.header, tables=tables)
        ids = tables["children"].set_index("child")["LAchildID"]
        truth = pd.DataFrame([(f.rule, None, f.child, f.entity, f.episode, f.item, f.change) for f in self.faults],
                             columns=list(TRUTH_COLUMNS))
        truth["LAchildID"] = pd.array([None if c is None or pd.isna(ids.get(c)) else ids.get(c)
                                       for c in truth["child"]], dtype="str")
        for c in ("child", "episode", "item"):
            truth[c] = truth[c].astype("Int64")
        truth["rule"] = truth["rule"].astype("str")
        return ret, truth


INJECTORS: dict[str, Callable[[Faults], bool]] = {}
RANK: dict[str, int] = {}
"""Order of injection when many rules are asked for: faults needing rarer rows (plans, enquiries)
choose first, so that they still find an untouched child."""


def injector(code: str, rank: int) -> Callable[[Callable[[Faults], bool]], Callable[[Faults], bool]]:
    """Register the injector of rule ``code`` (spelt as from 2022-23), injected in ``rank`` order."""
    def register(fn: Callable[[Faults], bool]) -> Callable[[Faults], bool]:
        INJECTORS[code] = fn
        RANK[code] = rank
        return fn
    return register


def inject(ret: CensusReturn, errors: float | Sequence[str], seed: int = 0
           ) -> tuple[CensusReturn, pd.DataFrame]:
    """Return a copy of ``ret`` with faults injected, and the truth table.

    ``errors`` is either a share of children (each gets one fault of a rule drawn from the
    child-level rules of the year) or a list of rule codes, each injected once.
    """
    rnd = random.Random(f"cinqa.synth.inject:{seed}:{ret.year}")
    f = Faults(ret, rnd)
    available = injectable_rules(ret.year)
    by_code = {rule_code(c, ret.year): c for c in INJECTORS}
    if isinstance(errors, (int, float)) and not isinstance(errors, bool):
        if not 0 <= errors <= 1:
            raise ValueError(f"errors={errors} is not a share between 0 and 1")
        want = round(errors * len(ret.children))
        pool = [c for c in available if by_code[c] not in RETURN_LEVEL]
        order: list[str] = []
        misses = 0
        while len(f.faults) < want and misses < len(pool):
            if not order:
                order = pool[:]
                rnd.shuffle(order)
            code = order.pop()
            misses = 0 if _apply(f, code, by_code[code]) else misses + 1
    else:
        # either spelling of a rule whose severity changed: "8525Q" in 2021-22 is "8525"
        codes = [rule_code(_query_code(c), ret.year) for c in errors]
        unknown = [asked for asked, c in zip(errors, codes) if c not in available]
        if unknown:
            raise ValueError(f"no injector for rule(s) {', '.join(unknown)} in {ret.year}; "
                             f"injectable: {', '.join(available)}")
        # return-level faults go last, so that they are not undone by a child-level one
        for code in sorted(codes, key=lambda c: RANK[by_code[c]]):
            if not _apply(f, code, by_code[code]):
                warnings.warn(f"rule {code}: no child of this return fits the fault; not injected",
                              stacklevel=2)
    return f.result()


def _apply(f: Faults, code: str, base: str) -> bool:
    f._code = code
    return bool(INJECTORS[base](f))


# -- facts -------------------------------------------------------------------------------------


def _episode_facts(t: dict[str, pd.DataFrame], ref: pd.Timestamp) -> pd.DataFrame:
    ep = t["episodes"]
    keys = ["child", "episode"]
    wanted = ["LAchildID", "CINreferralDate", "CINclosureDate", "ReasonForClosure", "ReferralNFA", "ReferralSource"]
    out = ep.set_index(keys)[[c for c in wanted if c in ep]].copy()
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


# -- typing back ---------------------------------------------------------------------------------


def _append(df: pd.DataFrame, row: dict[str, Any]) -> pd.DataFrame:
    """Return ``df`` with ``row`` appended, every column keeping its dtype."""
    df = df.copy()
    cols: dict[str, Any] = {}
    for c in df.columns:
        s, v = df[c], row.get(c)
        missing = _missing(v)
        if isinstance(s.dtype, pd.CategoricalDtype):
            if not missing and v not in s.cat.categories:
                df[c] = s = s.cat.add_categories([v])
            cols[c] = pd.Categorical([None if missing else v], categories=s.cat.categories)
        elif _is_date(s):
            cols[c] = np.array([np.datetime64("NaT") if missing else np.datetime64(pd.Timestamp(v), "s")],
                               dtype=s.dtype)
        else:
            cols[c] = pd.array([None if missing else v], dtype=s.dtype)
    new = pd.DataFrame(cols, index=[df.index.max() + 1 if len(df) else 0])
    return pd.concat([df, new])


def _retype(table: str, df: pd.DataFrame, year: str) -> pd.DataFrame:
    """Give edited columns back the reader's types; invalid codes join the categories, sorted."""
    keys = list(spec.TABLE_KEYS[table])
    df = df.sort_values(keys, kind="stable").reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    nodes = {n.column: n for n in spec.value_columns(table)}
    for col in df.columns:
        s = df[col]
        if col in keys:
            out[col] = s.astype("int64")
        elif col == "line":
            out[col] = s.astype("Int64")
        elif col in ("LAchildID",):
            out[col] = s.astype("str")
        elif col == "kind":
            out[col] = pd.Categorical(s.astype(object), categories=["continuous", "initial", "core"])
        else:
            node = nodes[col]
            if node.type == "date":
                out[col] = pd.to_datetime(s).astype("datetime64[s]")
            elif node.type == "bool":
                out[col] = s.astype("boolean")
            elif node.type in ("int", "gyear"):
                out[col] = s.astype("Int64")
            elif node.codeset:
                values = s.astype(object).where(s.notna(), None)
                out[col] = categorical(values, node.codeset, year if year in node.years else None)
            else:
                out[col] = s.astype("str")
    return out


def _missing(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _is_date(s: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(s.dtype)


def _fmt(v: Any) -> str:
    if _missing(v):
        return "(missing)"
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(v).strftime("%Y-%m-%d")
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return str(v)


# ================================================================================================
# Injectors. Each picks an untouched child, makes one change and records it with ``f.fault``.
# ================================================================================================

# -- child identifiers ---------------------------------------------------------------------------


def _kids(f: Faults) -> pd.DataFrame:
    return f.kids.reset_index()


@injector("1510", rank=4)
def _wrong_check_letter(f: Faults) -> bool:
    k = f.choose(_kids(f), _kids(f)["UPN"].notna())
    if k is None:
        return False
    upn = k["UPN"]
    wrong = UPN_LETTERS[(UPN_LETTERS.index(upn[0]) + 1 + f.rnd.randrange(22)) % 23]
    return f.fault(k["child"], "children", f.set_child(k["child"], "UPN", wrong + upn[1:]), item=k["child"])


@injector("1520", rank=4)
def _duplicate_upn(f: Faults) -> bool:
    kids = _kids(f)
    k = f.choose(kids, kids["UPN"].notna())
    if k is None:
        return False
    other = kids[kids["UPN"].notna() & (kids["child"] != k["child"]) & ~kids["child"].isin(f.used)]
    if other.empty:
        return False
    donor = other.iloc[f.rnd.randrange(len(other))]
    f.fault(k["child"], "children", f.set_child(k["child"], "UPN", donor["UPN"]), item=k["child"])
    return f.fault(donor["child"], "children", f"(none: child {k['LAchildID']} was given this UPN)", item=donor["child"])


@injector("1530", rank=4)
def _upn_la_unknown(f: Faults) -> bool:
    k = f.choose(_kids(f), _kids(f)["UPN"].notna())
    if k is None:
        return False
    valid = set(spec.codes("la"))
    bad = next(c for c in (f"{n:03d}" for n in range(999, 0, -1)) if c not in valid)
    body = bad + k["UPN"][4:]
    upn = upn_check_letter(body) + body  # a right check letter, so only the LA code is wrong
    return f.fault(k["child"], "children", f.set_child(k["child"], "UPN", upn), item=k["child"])


@injector("1540", rank=4)
def _upn_letter_inside(f: Faults) -> bool:
    """Characters 5-12 not numeric (the check letter then cannot be computed either: 1510 may fail)."""
    k = f.choose(_kids(f), _kids(f)["UPN"].notna())
    if k is None:
        return False
    upn = k["UPN"]
    return f.fault(k["child"], "children", f.set_child(k["child"], "UPN", upn[:6] + "A" + upn[7:]), item=k["child"])


@injector("1550", rank=4)
def _upn_last_char(f: Faults) -> bool:
    """Character 13 is I, O or S (not a UPN letter, so the check letter may fail too: 1510)."""
    k = f.choose(_kids(f), _kids(f)["UPN"].notna())
    if k is None:
        return False
    upn = k["UPN"]
    return f.fault(k["child"], "children", f.set_child(k["child"], "UPN", upn[:12] + "I"), item=k["child"])


@injector("1560Q", rank=4)
def _former_upn_format(f: Faults) -> bool:
    k = f.choose(_kids(f), _kids(f)["UPN"].notna())
    if k is None:
        return False
    return f.fault(k["child"], "children", f.set_child(k["child"], "FormerUPN", "X12345"), item=k["child"])


@injector("1570", rank=4)
def _long_child_id(f: Faults) -> bool:
    k = f.choose(_kids(f))
    if k is None:
        return False
    new = (str(k["LAchildID"]) + "0" * 21)[:21]
    return f.fault(k["child"], "children", f.set_child(k["child"], "LAchildID", new), item=k["child"])


@injector("1580", rank=4)
def _child_id_punctuation(f: Faults) -> bool:
    k = f.choose(_kids(f))
    if k is None:
        return False
    new = f"{k['LAchildID']}-A"
    return f.fault(k["child"], "children", f.set_child(k["child"], "LAchildID", new), item=k["child"])


@injector("4180", rank=4)
def _no_sex(f: Faults) -> bool:
    k = f.choose(_kids(f))
    if k is None:
        return False
    return f.fault(k["child"], "children", f.set_child(k["child"], f.sex, None), item=k["child"])


@injector("4220", rank=4)
def _bad_ethnicity(f: Faults) -> bool:
    k = f.choose(_kids(f))
    if k is None:
        return False
    return f.fault(k["child"], "children", f.set_child(k["child"], "Ethnicity", "WBR"), item=k["child"])


@injector("8500", rank=4)
def _no_child_id(f: Faults) -> bool:
    k = f.choose(_kids(f))
    if k is None:
        return False
    return f.fault(k["child"], "children", f.set_child(k["child"], "LAchildID", None), item=k["child"])


@injector("8510", rank=4)
def _duplicate_child_id(f: Faults) -> bool:
    kids = _kids(f)
    k = f.choose(kids)
    if k is None or len(kids) < 2:
        return False
    other = kids[(kids["child"] != k["child"]) & ~kids["child"].isin(f.used)]
    if other.empty:
        return False
    donor = other.iloc[f.rnd.randrange(len(other))]
    f.fault(k["child"], "children", f.set_child(k["child"], "LAchildID", donor["LAchildID"]), item=k["child"])
    return f.fault(donor["child"], "children", f"(none: child {k['LAchildID']} was given this LAchildID)",
                   item=donor["child"])


@injector("8520", rank=4)
def _born_after_census(f: Faults) -> bool:
    kids = _kids(f)
    later = f.ref + pd.Timedelta(days=5)
    # referrals stay within 280 days of the new birth date (rule 8606)
    k = f.choose(kids, kids["born"] & (kids["first_referral"] >= later - pd.Timedelta(days=280)))
    if k is None:
        return False
    return f.fault(k["child"], "children", f.set_child(k["child"], "PersonBirthDate", later), item=k["child"])


@injector("8525Q", rank=4)
def _no_birth_date(f: Faults) -> bool:
    """Neither a birth date nor an expected one."""
    kids = _kids(f)
    k = f.choose(kids, kids["born"])
    if k is None:
        return False
    return f.fault(k["child"], "children", f.set_child(k["child"], "PersonBirthDate", None), item=k["child"])


def _unborn(f: Faults) -> tuple[pd.Series | None, list[str]]:
    """Return an unborn child; failing that, make a baby referred lately unborn (the changes)."""
    kids = _kids(f)
    k = f.choose(kids, kids["ExpectedPersonBirthDate"].notna() & ~kids["born"])
    if k is not None:
        return k, []
    recent = f.ref - pd.Timedelta(days=250)
    k = f.choose(kids, kids["born"] & (kids["PersonBirthDate"] >= recent) & (kids["first_referral"] >= recent))
    if k is None:
        return None, []
    due = f.ref + pd.Timedelta(days=20)
    return k, [f.set_child(k["child"], "PersonBirthDate", None),
               f.set_child(k["child"], "ExpectedPersonBirthDate", due)]


@injector("8530Q", rank=4)
def _due_date_out_of_range(f: Faults) -> bool:
    k, changes = _unborn(f)
    if k is None:
        return False
    if changes:
        changes.append(f.set_child(k["child"], f.sex, "U" if f.sex == "Sex" else "0"))
    early = f.ref - pd.Timedelta(days=60)
    changes.append(f.set_child(k["child"], "ExpectedPersonBirthDate", early))
    return f.fault(k["child"], "children", "; ".join(changes), item=k["child"])


@injector("8535Q", rank=4)
def _death_before_birth(f: Faults) -> bool:
    """A death the day before birth; if the child was referred after that day, 8555Q fails too."""
    kids = _kids(f)
    quiet = kids["born"] & (kids["PersonBirthDate"] > f.start) & ~kids["any_cpp"] & ~kids["any_plan"]
    k = f.choose(kids, quiet & (kids["last_referral"] < kids["PersonBirthDate"]))
    if k is None:
        k = f.choose(kids, quiet)
    if k is None:
        return False
    death = k["PersonBirthDate"] - DAY
    return f.fault(k["child"], "children", f.set_child(k["child"], "PersonDeathDate", death), item=k["child"])


@injector("8540", rank=4)
def _no_disability(f: Faults) -> bool:
    kids = _kids(f)
    k = f.choose(kids, kids["born"] & kids["any_in_need"])
    if k is None:
        return False
    n = f.drop("disabilities", f.t["disabilities"]["child"] == k["child"])
    return f.fault(k["child"], "children", f"removed {n} Disability", item=k["child"])


@injector("8545Q", rank=4)
def _death_after_census(f: Faults) -> bool:
    kids = _kids(f)
    k = f.choose(kids, kids["born"] & kids["PersonDeathDate"].isna())
    if k is None:
        return False
    death = f.ref + pd.Timedelta(days=10)
    return f.fault(k["child"], "children", f.set_child(k["child"], "PersonDeathDate", death), item=k["child"])


@injector("8555Q", rank=4)
def _referred_after_death(f: Faults) -> bool:
    kids = _kids(f)
    death = kids["last_referral"] - DAY
    ok = (kids["born"] & kids["PersonDeathDate"].isna() & ~kids["any_cpp"] & ~kids["any_plan"]
          & (death >= f.start) & (death >= kids["PersonBirthDate"]))
    k = f.choose(kids, ok)
    if k is None:
        return False
    change = f.set_child(k["child"], "PersonDeathDate", k["last_referral"] - DAY)
    return f.fault(k["child"], "episodes", change, episode=_latest_episode(f, k["child"]),
                   item=_latest_episode(f, k["child"]))


def _latest_episode(f: Faults, child: int) -> int:
    e = f.ep[f.ep["child"] == child]
    return int(e.loc[e["CINreferralDate"].idxmax(), "episode"])


@injector("8590", rank=4)
def _no_episode(f: Faults) -> bool:
    k = f.choose(_kids(f))
    if k is None:
        return False
    n = f.drop("episodes", f.t["episodes"]["child"] == k["child"])
    for table in ("assessments", "assessment_factors", "cin_plans", "section47", "cp_plans", "cp_reviews",
                  "pre_proceedings"):
        f.drop(table, f.t[table]["child"] == k["child"])
    return f.fault(k["child"], "children", f"removed {n} CINdetails and their contents", item=k["child"])


@injector("8606", rank=4)
def _referral_long_before_birth(f: Faults) -> bool:
    kids = _kids(f)
    k = f.choose(kids, kids["born"] & (kids["first_referral"] <= f.ref - pd.Timedelta(days=290)))
    if k is None:
        return False
    dob = k["first_referral"] + pd.Timedelta(days=285)
    change = f.set_child(k["child"], "PersonBirthDate", dob)
    e = f.ep[(f.ep["child"] == k["child"]) & (f.ep["CINreferralDate"] == k["first_referral"])].iloc[0]
    return f.fault(k["child"], "episodes", change, episode=e["episode"], item=e["episode"])


@injector("8750", rank=4)
def _unborn_with_sex(f: Faults) -> bool:
    k, changes = _unborn(f)
    if k is None:
        return False
    changes.append(f.set_child(k["child"], f.sex, "M" if f.sex == "Sex" else "1"))
    return f.fault(k["child"], "children", "; ".join(changes), item=k["child"])


@injector("8770Q", rank=4)
def _no_upn_school_age(f: Faults) -> bool:
    kids = _kids(f)
    old = kids["PersonBirthDate"] < f.ref - pd.DateOffset(years=6, months=1)
    k = f.choose(kids, old & kids["any_in_need"] & kids["UPN"].notna())
    if k is None:
        return False
    change = f.set_child(k["child"], "UPN", None) + "; " + f.set_child(k["child"], "UPNunknown", None)
    return f.fault(k["child"], "children", change, item=k["child"])


@injector("8772", rank=4)
def _un7_with_further_action(f: Faults) -> bool:
    kids = _kids(f)
    young = kids["PersonBirthDate"] > f.ref - pd.DateOffset(years=6)
    k = f.choose(kids, young & kids["any_in_need"])
    if k is None:
        return False
    change = f.set_child(k["child"], "UPN", None) + "; " + f.set_child(k["child"], "UPNunknown", "UN7")
    return f.fault(k["child"], "children", change, item=k["child"])


@injector("8775Q", rank=4)
def _over_25(f: Faults) -> bool:
    kids = _kids(f)
    open_kids = f.ep.loc[f.ep["open"], "child"]
    k = f.choose(kids, kids["UPN"].notna() & kids["child"].isin(open_kids))
    if k is None:
        return False
    dob = f.ref - pd.DateOffset(years=26)
    return f.fault(k["child"], "children", f.set_child(k["child"], "PersonBirthDate", dob), item=k["child"])


# -- disabilities ---------------------------------------------------------------------------------


@injector("8790", rank=4)
def _none_and_other(f: Faults) -> bool:
    kids = _kids(f)
    k = f.choose(kids, kids["has_none"])
    if k is None:
        return False
    rows = f.rows("disabilities", k["child"])
    none = rows.loc[rows["Disability"].astype(str) == "NONE", "disability"].iloc[0]
    f.add("disabilities", child=k["child"], Disability="AUT")
    return f.fault(k["child"], "disabilities", "added Disability AUT beside NONE", item=none)


@injector("8794", rank=4)
def _duplicate_disability(f: Faults) -> bool:
    kids = _kids(f)
    k = f.choose(kids, kids["n_disabilities"] > 0)
    if k is None:
        return False
    code = f.rows("disabilities", k["child"])["Disability"].iloc[0]
    n = f.add("disabilities", child=k["child"], Disability=code)
    return f.fault(k["child"], "disabilities", f"added Disability {code} a second time", item=n)


# -- episodes -------------------------------------------------------------------------------------


def _ep_label(f: Faults, e: pd.Series) -> Any:
    df = f.t["episodes"]
    return df.index[(df["child"] == e["child"]) & (df["episode"] == e["episode"])][0]


def _ep_fault(f: Faults, e: pd.Series, change: str) -> bool:
    return f.fault(e["child"], "episodes", change, episode=e["episode"], item=e["episode"])


@injector("8568", rank=3)
def _no_nfa_flag(f: Faults) -> bool:
    e = f.choose(f.ep)
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "ReferralNFA", None))


@injector("8569Q", rank=3)
def _old_referral_nfa(f: Faults) -> bool:
    ep = f.ep
    quiet = (ep["n_assess"] == 0) & (ep["n_s47"] == 0) & (ep["n_cpp"] == 0) & (ep["n_plans"] == 0)
    e = f.choose(ep, ~ep["nfa"] & quiet & (ep["CINreferralDate"] < f.start - pd.Timedelta(days=5)))
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "ReferralNFA", True))


@injector("8585Q", rank=3)
def _died_without_death_date(f: Faults) -> bool:
    ep = f.ep
    no_death = ep["child"].map(f.kids["PersonDeathDate"]).isna()
    e = f.choose(ep, (ep["ReasonForClosure"] == "RC7") & no_death)
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "ReasonForClosure", "RC2"))


@injector("8600", rank=3)
def _no_referral_date(f: Faults) -> bool:
    # a closed episode: an open one without a referral date is also "not the latest" (8816)
    e = f.choose(f.ep, f.ep["closed"])
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "CINreferralDate", None))


@injector("8610", rank=3)
def _no_primary_need(f: Faults) -> bool:
    e = f.choose(f.ep, ~f.ep["nfa"])
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "PrimaryNeedCode", None))


@injector("8620", rank=3)
def _closure_after_census(f: Faults) -> bool:
    e = f.choose(f.ep, f.ep["closed"] & f.ep["latest"])
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "CINclosureDate", f.ref + pd.Timedelta(days=10)))


@injector("8630", rank=3)
def _closure_before_referral(f: Faults) -> bool:
    ep = f.ep
    e = f.choose(ep, ep["nfa"] & ep["closed"] & (ep["CINreferralDate"] > f.start))
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "CINclosureDate", e["CINreferralDate"] - DAY))


@injector("8640", rank=3)
def _bad_reason(f: Faults) -> bool:
    e = f.choose(f.ep, f.ep["closed"])
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "ReasonForClosure", "RC0"))


@injector("8650", rank=3)
def _bad_need(f: Faults) -> bool:
    e = f.choose(f.ep, ~f.ep["nfa"])
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "PrimaryNeedCode", "N10"))


@injector("8805", rank=3)
def _closure_without_reason(f: Faults) -> bool:
    e = f.choose(f.ep, f.ep["closed"])
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "ReasonForClosure", None))


@injector("8810", rank=3)
def _reason_without_closure(f: Faults) -> bool:
    e = f.choose(f.ep, f.ep["closed"] & f.ep["latest"])
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "CINclosureDate", None))


@injector("8815", rank=3)
def _two_open_episodes(f: Faults) -> bool:
    """Reopen an earlier episode of a child whose latest is open (8816 and 8820 fail too)."""
    ep = f.ep
    open_latest = ep.loc[ep["open"] & ep["latest"], "child"]
    e = f.choose(ep, ep["closed"] & ~ep["nfa"] & ~ep["latest"] & ep["child"].isin(open_latest))
    if e is None:
        return False
    label = _ep_label(f, e)
    change = f.set("episodes", label, "CINclosureDate", None) + "; " + f.set("episodes", label, "ReasonForClosure", None)
    return _ep_fault(f, e, change)


@injector("8816", rank=3)
def _open_not_latest(f: Faults) -> bool:
    """Reopen an episode that is not the child's latest (8820 fails too)."""
    ep = f.ep
    no_open = ~ep["child"].isin(ep.loc[ep["open"], "child"])
    e = f.choose(ep, ep["closed"] & ~ep["nfa"] & ~ep["latest"] & no_open)
    if e is None:
        return False
    label = _ep_label(f, e)
    change = f.set("episodes", label, "CINclosureDate", None) + "; " + f.set("episodes", label, "ReasonForClosure", None)
    return _ep_fault(f, e, change)


@injector("8820", rank=3)
def _overlapping_episodes(f: Faults) -> bool:
    """Move a child's next referral inside its previous (closed, in-need) episode."""
    ep = f.ep.sort_values(["child", "CINreferralDate"])
    nxt = ep.groupby("child")["CINreferralDate"].shift(-1)
    nxt_nfa = ep.groupby("child")["nfa"].shift(-1)
    ok = (ep["closed"] & ~ep["nfa"] & nxt.notna() & (nxt_nfa == False)  # noqa: E712
          & (ep["CINclosureDate"] - ep["CINreferralDate"] >= pd.Timedelta(days=2)))
    e = f.choose(ep, ok)
    if e is None:
        return False
    later = ep[(ep["child"] == e["child"]) & (ep["CINreferralDate"] > e["CINreferralDate"])].iloc[0]
    change = f.set("episodes", _ep_label(f, later), "CINreferralDate", e["CINclosureDate"] - DAY)
    return _ep_fault(f, later, change)


@injector("8866", rank=3)
def _no_referral_source(f: Faults) -> bool:
    ep = f.ep
    if "ReferralSource" not in ep:
        return False
    e = f.choose(ep, ep["ReferralSource"].notna() & (ep["CINreferralDate"] >= pd.Timestamp(2013, 4, 1)))
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "ReferralSource", None))


@injector("2990", rank=3)
def _activity_after_rc8(f: Faults) -> bool:
    ep = f.ep
    e = f.choose(ep, ep["nin"] & (ep["n_assess"] > 0))
    if e is None:
        return False
    start = f.rows("assessments", e["child"], e["episode"])["AssessmentActualStartDate"].min()
    n = f.add("section47", child=e["child"], episode=e["episode"], S47ActualStartDate=start,
              ICPCnotRequired=True)
    return f.fault(e["child"], "episodes", f"added Section47 s47={n} (S47ActualStartDate={_fmt(start)}, "
                   f"ICPCnotRequired=true) to a {e['ReasonForClosure']} episode", episode=e["episode"],
                   item=e["episode"])


@injector("2991Q", rank=3)
def _s47_without_assessment(f: Faults) -> bool:
    ep = f.ep
    e = f.choose(ep, (ep["n_s47"] > 0) & (ep["n_assess"] > 0))
    if e is None:
        return False
    n = _drop_assessments(f, e)
    return f.fault(e["child"], "episodes", f"removed {n} Assessments of an episode with a Section47",
                   episode=e["episode"], item=e["episode"])


def _drop_assessments(f: Faults, e: pd.Series) -> int:
    for table in ("assessment_factors", "assessments"):
        df = f.t[table]
        m = (df["child"] == e["child"]) & (df["episode"] == e["episode"])
        n = f.drop(table, m)
    return n


@injector("8825Q", rank=3)
def _rc8_without_assessment(f: Faults) -> bool:
    ep = f.ep
    e = f.choose(ep, ep["nin"] & (ep["n_assess"] > 0))
    if e is None:
        return False
    n = _drop_assessments(f, e)
    return _ep_fault(f, e, f"removed {n} Assessments of a {e['ReasonForClosure']} episode")


@injector("8831", rank=3)
def _nfa_with_activity(f: Faults) -> bool:
    ep = f.ep
    e = f.choose(ep, ep["nin"] & (ep["n_assess"] > 0) & (ep["CINreferralDate"] > f.start + pd.Timedelta(days=2)))
    if e is None:
        return False
    return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "ReferralNFA", True))


@injector("8832", rank=3)
def _nfa_with_cpp(f: Faults) -> bool:
    """Flag an episode with a protection plan as NFA (an old referral: 8569Q; with S47s: 8831 too)."""
    ep = f.ep
    quiet = (ep["n_assess"] == 0) & (ep["n_s47"] == 0) & (ep["n_plans"] == 0)
    e = f.choose(ep, (ep["n_cpp"] > 0) & quiet)
    if e is None:
        e = f.choose(ep, ep["n_cpp"] > 0)
    if e is None:
        return False
    return f.fault(e["child"], "cp_plans", f.set("episodes", _ep_label(f, e), "ReferralNFA", True),
                   episode=e["episode"], item=1)


@injector("8565", rank=3)
def _activity_after_closure(f: Faults) -> bool:
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
            return _ep_fault(f, e, f.set("episodes", _ep_label(f, e), "CINclosureDate", new))
    return False


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
    return s


def _s47_fault(f: Faults, s: pd.Series, change: str) -> bool:
    return f.fault(s["child"], "section47", change, episode=s["episode"], item=s["s47"])


@injector("1104", rank=1)
def _icpc_before_referral(f: Faults) -> bool:
    """Add an enquiry concluded by a conference the working day before the referral (2889 fails too)."""
    ep = f.ep
    e = f.choose(ep, ~ep["nfa"] & ~ep["nin"] & (ep["n_assess"] > 0)
                 & (ep["CINreferralDate"] > f.start + pd.Timedelta(days=7)))
    if e is None:
        return False
    day = f.wd(e["CINreferralDate"], -1)
    n = f.add("section47", child=e["child"], episode=e["episode"], S47ActualStartDate=day, DateOfInitialCPC=day,
              ICPCnotRequired=False)
    return f.fault(e["child"], "section47", f"added Section47 with DateOfInitialCPC {_fmt(day)} before "
                   f"CINreferralDate {_fmt(e['CINreferralDate'])}", episode=e["episode"], item=n)


@injector("2884", rank=1)
def _icpc_twice(f: Faults) -> bool:
    s = _s47(f)
    row = f.choose(s, s["DateOfInitialCPC"].notna())
    if row is None:
        return False
    e = f.ep[(f.ep["child"] == row["child"]) & (f.ep["episode"] == row["episode"])].iloc[0]
    change = f.set("episodes", _ep_label(f, e), "DateOfInitialCPC", row["DateOfInitialCPC"])
    return _s47_fault(f, row, change)


@injector("2889", rank=1)
def _s47_before_referral(f: Faults) -> bool:
    s = _s47(f)
    row = f.choose(s, ~s["open_s47"])
    if row is None:
        return False
    return _s47_fault(f, row, f.set("section47", row["label"], "S47ActualStartDate", row["CINreferralDate"] - DAY * 3))


@injector("8615", rank=1)
def _s47_after_icpc(f: Faults) -> bool:
    s = _s47(f)
    limit = s["CINclosureDate"].fillna(f.ref).clip(upper=f.ref)
    row = f.choose(s, s["DateOfInitialCPC"].notna() & (s["DateOfInitialCPC"] + DAY <= limit))
    if row is None:
        return False
    return _s47_fault(f, row, f.set("section47", row["label"], "S47ActualStartDate", row["DateOfInitialCPC"] + DAY))


@injector("8675Q", rank=1)
def _s47_open_too_long(f: Faults) -> bool:
    s = _s47(f)
    cutoff = f.wd(f.ref, -16)
    last = s.groupby(["child", "episode"])["s47"].transform("max") == s["s47"]
    row = f.choose(s, s["open"] & last & s["not_required"] & (s["S47ActualStartDate"] >= f.start)
                   & (s["S47ActualStartDate"] <= cutoff) & ~s["child"].isin(s.loc[s["open_s47"], "child"]))
    if row is None:
        return False
    return _s47_fault(f, row, f.set("section47", row["label"], "ICPCnotRequired", False))


@injector("8715", rank=1)
def _icpc_after_census(f: Faults) -> bool:
    s = _s47(f)
    """Move a conference after 31 March (one that started a plan, or in a closed episode, when
    no other is found: then 2885 or 8565 fail too)."""
    s = _s47(f)
    icpc = s["DateOfInitialCPC"].notna()
    row = f.choose(s, icpc & ~s["has_cpp"] & s["open"])
    if row is None:
        row = f.choose(s, icpc & ~s["has_cpp"])
    if row is None:
        row = f.choose(s, icpc)
    if row is None:
        return False
    return _s47_fault(f, row, f.set("section47", row["label"], "DateOfInitialCPC", f.wd(f.ref, 5)))


@injector("8740", rank=1)
def _open_s47_after_census(f: Faults) -> bool:
    s = _s47(f)
    row = f.choose(s, s["open_s47"])
    later = f.ref + pd.Timedelta(days=3)
    if row is not None:
        return _s47_fault(f, row, f.set("section47", row["label"], "S47ActualStartDate", later))
    last = s.groupby(["child", "episode"])["s47"].transform("max") == s["s47"]
    row = f.choose(s, s["open"] & last & s["not_required"])
    if row is None:
        return False
    change = f.set("section47", row["label"], "ICPCnotRequired", False) + "; " + \
        f.set("section47", row["label"], "S47ActualStartDate", later)
    return _s47_fault(f, row, change)


@injector("8839", rank=1)
def _two_open_s47(f: Faults) -> bool:
    """A second enquiry still open in the same episode (8890 fails too)."""
    s = _s47(f)
    row = f.choose(s, s["open_s47"])
    if row is not None:
        day = min(row["S47ActualStartDate"] + DAY, f.ref)
        n = f.add("section47", child=row["child"], episode=row["episode"], S47ActualStartDate=day, ICPCnotRequired=False)
        return f.fault(row["child"], "section47", f"added an open Section47 starting {_fmt(day)}",
                       episode=row["episode"], item=n)
    ep = f.ep
    e = f.choose(ep, ep["open"] & (ep["n_assess"] > 0) & (ep["CINreferralDate"] <= f.ref - pd.Timedelta(days=5)))
    if e is None:
        return False
    for back in (3, 2):
        n = f.add("section47", child=e["child"], episode=e["episode"], S47ActualStartDate=f.ref - DAY * back,
                  ICPCnotRequired=False)
    return f.fault(e["child"], "section47", "added two open Section47", episode=e["episode"], item=n)


@injector("8868", rank=1)
def _closed_with_open_s47(f: Faults) -> bool:
    s = _s47(f)
    last = s.groupby(["child", "episode"])["s47"].transform("max") == s["s47"]
    row = f.choose(s, s["closed"] & last & s["not_required"] & (s["S47ActualStartDate"] >= f.start))
    if row is None:
        return False
    change = f.set("section47", row["label"], "ICPCnotRequired", False)
    return _ep_fault(f, row, change)


@injector("8870Q", rank=1)
def _target_on_weekend(f: Faults) -> bool:
    s = _s47(f)
    row = f.choose(s, s["InitialCPCtarget"].notna())
    if row is None:
        return False
    return _s47_fault(f, row, f.set("section47", row["label"], "InitialCPCtarget",
                                    f.saturday_after(row["InitialCPCtarget"])))


@injector("8875", rank=1)
def _icpc_on_weekend(f: Faults) -> bool:
    s = _s47(f)
    sat = s["DateOfInitialCPC"].map(lambda d: f.saturday_after(d) if pd.notna(d) else pd.NaT)
    limit = s["CINclosureDate"].fillna(f.ref).clip(upper=f.ref)
    ok = s["DateOfInitialCPC"].notna() & (sat <= limit)
    row = f.choose(s, ok & ~s["has_cpp"])
    if row is None:
        # a plan started at the conference moves with it (its start must equal the conference, 2885)
        c = _cpp(f)
        first = dict(zip(zip(c["child"], c["CPPstartDate"]), c["first_review"]))
        later = [has and (pd.isna(first.get((ch, d))) or sd < first[(ch, d)])
                 for has, ch, d, sd in zip(s["has_cpp"], s["child"], s["DateOfInitialCPC"], sat)]
        row = f.choose(s, ok & pd.Series(later, index=s.index, dtype=bool) & (s["n_plans"] == 0))
        if row is None:
            return False
        plans = f.t["cp_plans"]
        label = plans.index[(plans["child"] == row["child"]) & (plans["CPPstartDate"] == row["DateOfInitialCPC"])][0]
        f.set("cp_plans", label, "CPPstartDate", f.saturday_after(row["DateOfInitialCPC"]))
    return _s47_fault(f, row, f.set("section47", row["label"], "DateOfInitialCPC", f.saturday_after(row["DateOfInitialCPC"])))


@injector("8890", rank=1)
def _s47_overlap(f: Faults) -> bool:
    s = _s47(f)
    row = f.choose(s, s["DateOfInitialCPC"].notna()
                   & (s["DateOfInitialCPC"] - s["S47ActualStartDate"] >= pd.Timedelta(days=2)))
    if row is None:
        return False
    day = row["S47ActualStartDate"] + DAY
    n = f.add("section47", child=row["child"], episode=row["episode"], S47ActualStartDate=day, ICPCnotRequired=True)
    return f.fault(row["child"], "section47", f"added Section47 starting {_fmt(day)} during another",
                   episode=row["episode"], item=n)


# -- assessments and factors ----------------------------------------------------------------------


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


def _a_fault(f: Faults, a: pd.Series, change: str) -> bool:
    return f.fault(a["child"], "assessments", change, episode=a["episode"], item=a["assessment"])


def _factor_fault(f: Faults, a: pd.Series, factor: Any, change: str) -> bool:
    """Record a fault reported on one factor (number ``factor``) of assessment ``a``."""
    return f.fault(a["child"], "assessment_factors", change, episode=a["episode"], item=factor)


def _factors_of(f: Faults, a: pd.Series) -> pd.DataFrame:
    fac = f.t["assessment_factors"]
    return fac[(fac["child"] == a["child"]) & (fac["episode"] == a["episode"]) & (fac["assessment"] == a["assessment"])]


def _drop_factors(f: Faults, a: pd.Series) -> int:
    fac = f.t["assessment_factors"]
    m = (fac["child"] == a["child"]) & (fac["episode"] == a["episode"]) & (fac["assessment"] == a["assessment"])
    return f.drop("assessment_factors", m)


def _add_factor(f: Faults, a: pd.Series, code: str) -> int:
    return f.add("assessment_factors", child=a["child"], episode=a["episode"], assessment=a["assessment"],
                 AssessmentFactors=code)


@injector("1103", rank=2)
def _assessment_before_referral(f: Faults) -> bool:
    a = _assessments(f)
    row = f.choose(a, (a["assessment"] == 1) & (a["CINreferralDate"] > f.start + DAY))
    if row is None:
        return False
    return _a_fault(f, row, f.set("assessments", row["label"], "AssessmentActualStartDate", row["CINreferralDate"] - DAY))


@injector("8608", rank=2)
def _authorised_before_start(f: Faults) -> bool:
    a = _assessments(f)
    row = f.choose(a, a["done"] & (a["AssessmentActualStartDate"] > f.start))
    if row is None:
        return False
    return _a_fault(f, row, f.set("assessments", row["label"], "AssessmentAuthorisationDate",
                                  row["AssessmentActualStartDate"] - DAY))


@injector("8614", rank=2)
def _factors_on_open_assessment(f: Faults) -> bool:
    a = _assessments(f)
    row = f.choose(a, ~a["done"])
    if row is None:
        return False
    n = _add_factor(f, row, "3B")
    return _a_fault(f, row, f"added AssessmentFactors 3B (factor {n}) to an assessment not authorised")


@injector("8670Q", rank=2)
def _assessment_open_too_long(f: Faults) -> bool:
    a = _assessments(f)
    cutoff = f.wd(f.ref, -46)
    row = f.choose(a, a["done"] & a["open"] & a["last"] & (a["n_open_assess"] == 0)
                   & (a["AssessmentActualStartDate"] >= f.start) & (a["AssessmentActualStartDate"] <= cutoff))
    if row is None:
        return False
    n = _drop_factors(f, row)
    change = f.set("assessments", row["label"], "AssessmentAuthorisationDate", None) + f"; removed {n} factors"
    return _a_fault(f, row, change)


@injector("8696", rank=2)
def _authorised_after_census(f: Faults) -> bool:
    a = _assessments(f)
    row = f.choose(a, a["done"] & a["open"] & a["last"])
    if row is None:
        return False
    return _a_fault(f, row, f.set("assessments", row["label"], "AssessmentAuthorisationDate", f.ref + DAY * 7))


@injector("8736", rank=2)
def _open_assessment_after_census(f: Faults) -> bool:
    a = _assessments(f)
    later = f.ref + DAY * 2
    row = f.choose(a, ~a["done"])
    if row is not None:
        return _a_fault(f, row, f.set("assessments", row["label"], "AssessmentActualStartDate", later))
    row = f.choose(a, a["done"] & a["open"] & a["last"] & (a["n_open_assess"] == 0))
    if row is None:
        return False
    n = _drop_factors(f, row)
    change = (f.set("assessments", row["label"], "AssessmentAuthorisationDate", None) + "; "
              + f.set("assessments", row["label"], "AssessmentActualStartDate", later) + f"; removed {n} factors")
    return _a_fault(f, row, change)


@injector("8863Q", rank=2)
def _assessments_overlap(f: Faults) -> bool:
    a = _assessments(f)
    row = f.choose(a, a["done"] & (a["AssessmentActualStartDate"] >= f.start) & (a["n_factors"] > 0)
                   & (a["AssessmentAuthorisationDate"] - a["AssessmentActualStartDate"] >= pd.Timedelta(days=2)))
    if row is None:
        return False
    start = row["AssessmentActualStartDate"] + DAY
    n = f.add("assessments", child=row["child"], episode=row["episode"], kind="continuous",
              AssessmentActualStartDate=start, AssessmentAuthorisationDate=row["AssessmentAuthorisationDate"])
    for code in _factors_of(f, row)["AssessmentFactors"]:
        f.add("assessment_factors", child=row["child"], episode=row["episode"], assessment=n, AssessmentFactors=code)
    return f.fault(row["child"], "assessments", f"added an assessment starting {_fmt(start)} during assessment "
                   f"{row['assessment']}", episode=row["episode"], item=n)


@injector("8867", rank=2)
def _closed_with_open_assessment(f: Faults) -> bool:
    a = _assessments(f)
    row = f.choose(a, a["done"] & a["closed"] & a["last"] & (a["AssessmentActualStartDate"] >= f.start))
    if row is None:
        return False
    n = _drop_factors(f, row)
    change = f.set("assessments", row["label"], "AssessmentAuthorisationDate", None) + f"; removed {n} factors"
    return _ep_fault(f, row, change)


@injector("8869", rank=2)
def _factor_21_with_others(f: Faults) -> bool:
    a = _assessments(f)
    row = f.choose(a, a["nin"] & (a["n_factors"] > 0))
    if row is None:
        return False
    codes = set(_factors_of(f, row)["AssessmentFactors"].astype(str))
    code = "3B" if codes == {"21"} else "21"
    n = _add_factor(f, row, code)
    return _factor_fault(f, row, n, f"added AssessmentFactors {code} (factor {n}) beside {', '.join(sorted(codes))}")


@injector("8873Q", rank=2)
def _factor_21_not_rc8(f: Faults) -> bool:
    a = _assessments(f)
    a = a[a["nin"] & (a["n_assess"] == 1) & (a["n_factors"] > 0)]
    row = f.choose(a, a["only_21"])
    changes = []
    if row is None:
        row = f.choose(a)
        if row is None:
            return False
        n = _drop_factors(f, row)
        factor = _add_factor(f, row, "21")
        changes.append(f"replaced {n} factors by 21")
    else:
        factors = _factors_of(f, row)
        factor = factors.loc[factors["AssessmentFactors"].astype(str) == "21", "factor"].iloc[0]
    e = f.ep[(f.ep["child"] == row["child"]) & (f.ep["episode"] == row["episode"])].iloc[0]
    changes.insert(0, f.set("episodes", _ep_label(f, e), "ReasonForClosure", "RC7"))
    return _factor_fault(f, row, factor, "; ".join(changes))


@injector("8896", rank=2)
def _two_open_assessments(f: Faults) -> bool:
    """A second open assessment in one episode (8863Q fails too)."""
    a = _assessments(f)
    row = f.choose(a, ~a["done"])
    if row is not None:
        start = min(row["AssessmentActualStartDate"] + DAY, f.ref)
        n = f.add("assessments", child=row["child"], episode=row["episode"], kind="continuous",
                  AssessmentActualStartDate=start)
        return f.fault(row["child"], "assessments", f"added an open assessment starting {_fmt(start)}",
                       episode=row["episode"], item=n)
    ep = f.ep
    e = f.choose(ep, ep["open"] & (ep["CINreferralDate"] <= f.ref - DAY * 5))
    if e is None:
        return False
    for back in (3, 2):
        n = f.add("assessments", child=e["child"], episode=e["episode"], kind="continuous",
                  AssessmentActualStartDate=f.ref - DAY * back)
    return f.fault(e["child"], "assessments", "added two open assessments", episode=e["episode"], item=n)


@injector("8897Q", rank=2)
def _completed_without_factors(f: Faults) -> bool:
    a = _assessments(f)
    row = f.choose(a, a["done"] & (a["n_factors"] > 0))
    if row is None:
        return False
    n = _drop_factors(f, row)
    return _a_fault(f, row, f"removed {n} AssessmentFactors")


@injector("8898", rank=2)
def _duplicate_factor(f: Faults) -> bool:
    fac = f.t["assessment_factors"]
    row = f.choose(fac, fac["AssessmentFactors"].astype(str) != "21")
    if row is None:
        return False
    code = str(row["AssessmentFactors"])
    n = f.add("assessment_factors", child=row["child"], episode=row["episode"], assessment=row["assessment"],
              AssessmentFactors=code)
    return f.fault(row["child"], "assessment_factors", f"added AssessmentFactors {code} a second time",
                   episode=row["episode"], item=n)


def _add_code_injector(code: str, rule: str) -> None:
    @injector(rule, rank=2)
    def add_code(f: Faults) -> bool:
        a = _assessments(f)
        row = f.choose(a, a["done"] & (a["n_factors"] > 0) & ~a["has_21"])
        if row is None:
            return False
        n = _add_factor(f, row, code)
        return _factor_fault(f, row, n, f"added AssessmentFactors {code}")

    add_code.__name__ = f"_factor_{code}"
    add_code.__doc__ = f"Record factor {code} at a completed assessment."


_add_code_injector("8A", "8617")
_add_code_injector("18A", "8945Q")
_add_code_injector("19A", "8950Q")


@injector("8899Q", rank=2)
def _disabled_without_disability_factor(f: Faults) -> bool:
    a = _assessments(f)
    disabled = a["child"].map(f.kids["n_disabilities"]) > 0
    row = f.choose(a, a["done"] & disabled & (a["n_factors"] > 0))
    if row is None:
        return False
    fac = f.t["assessment_factors"]
    m = ((fac["child"] == row["child"]) & (fac["episode"] == row["episode"]) & (fac["assessment"] == row["assessment"])
         & fac["AssessmentFactors"].astype(str).isin(["5A", "6A"]))
    n = f.drop("assessment_factors", m)
    change = f"removed {n} factors 5A/6A"
    if _factors_of(f, row).empty:
        _add_factor(f, row, "3B")
        change += "; added 3B"
    return _a_fault(f, row, change)


# -- child protection plans -----------------------------------------------------------------------


def _cpp(f: Faults) -> pd.DataFrame:
    c = _with_episode(f, "cp_plans", ("CINreferralDate", "CINclosureDate", "open", "closed", "n_plans", "latest"))
    c["ended"] = c["CPPendDate"].notna()
    rv = f.t["cp_reviews"]
    first = rv.groupby(["child", "episode", "cpp"])["CPPreviewDate"].min()
    c["first_review"] = first.reindex(list(zip(c["child"], c["episode"], c["cpp"]))).to_numpy() if len(c) else []
    c["last_referral"] = c["child"].map(f.kids["last_referral"])
    c["dob"] = c["child"].map(f.kids["PersonBirthDate"])
    p = f.t["cin_plans"]
    step = set(zip(p["child"], p["episode"], p["CINPlanStartDate"])) if "CINPlanStartDate" in p else set()
    c["step_down"] = [(ch, e, d) in step for ch, e, d in zip(c["child"], c["episode"], c["CPPendDate"])]
    return c


def _c_fault(f: Faults, c: pd.Series, change: str) -> bool:
    return f.fault(c["child"], "cp_plans", change, episode=c["episode"], item=c["cpp"])


@injector("1105", rank=0)
def _cpp_before_referral(f: Faults) -> bool:
    c = _cpp(f)
    row = f.choose(c, (c["CPPstartDate"] < f.start) & (c["cpp"] == 1))
    if row is None:
        row = f.choose(c, c["cpp"] == 1)
    if row is None:
        return False
    return _c_fault(f, row, f.set("cp_plans", row["label"], "CPPstartDate", row["CINreferralDate"] - DAY))


@injector("2885", rank=0)
def _cpp_not_on_icpc(f: Faults) -> bool:
    c = _cpp(f)
    nxt = c["CPPstartDate"].map(lambda d: f.wd(d, 1) if pd.notna(d) else pd.NaT)
    bound = pd.concat([c["first_review"], c["CPPendDate"]], axis=1).min(axis=1).fillna(f.ref + DAY)
    row = f.choose(c, (c["CPPstartDate"] >= f.start) & (nxt < bound) & (nxt <= f.ref) & (c["n_plans"] == 0))
    if row is None:
        return False
    return _c_fault(f, row, f.set("cp_plans", row["label"], "CPPstartDate", f.wd(row["CPPstartDate"], 1)))


@injector("8720", rank=0)
def _no_cpp_start(f: Faults) -> bool:
    row = f.choose(_cpp(f))
    if row is None:
        return False
    return _c_fault(f, row, f.set("cp_plans", row["label"], "CPPstartDate", None))


@injector("8730", rank=0)
def _negative_previous_cpp(f: Faults) -> bool:
    row = f.choose(_cpp(f))
    if row is None:
        return False
    return _c_fault(f, row, f.set("cp_plans", row["label"], "NumberOfPreviousCPP", -1))


@injector("8840", rank=0)
def _cpp_same_day(f: Faults) -> bool:
    c = _cpp(f)
    row = f.choose(c, c["ended"] & (c["CPPstartDate"] >= f.start) & ~c["step_down"])
    if row is None:
        return False
    return _c_fault(f, row, f.set("cp_plans", row["label"], "CPPendDate", row["CPPstartDate"]))


@injector("8841", rank=0)
def _review_on_start(f: Faults) -> bool:
    rv = f.t["cp_reviews"]
    row = f.choose(rv, rv["review"] == 1)
    if row is None:
        return False
    plans = f.t["cp_plans"]
    start = plans.loc[(plans["child"] == row["child"]) & (plans["episode"] == row["episode"])
                      & (plans["cpp"] == row["cpp"]), "CPPstartDate"].iloc[0]
    return f.fault(row["child"], "cp_reviews", f.set("cp_reviews", row.name, "CPPreviewDate", start),
                   episode=row["episode"], item=row["review"])


@injector("8905", rank=0)
def _bad_initial_category(f: Faults) -> bool:
    row = f.choose(_cpp(f))
    if row is None:
        return False
    return _c_fault(f, row, f.set("cp_plans", row["label"], "InitialCategoryOfAbuse", "NEGL"))


@injector("8910", rank=0)
def _bad_latest_category(f: Faults) -> bool:
    row = f.choose(_cpp(f))
    if row is None:
        return False
    return _c_fault(f, row, f.set("cp_plans", row["label"], "LatestCategoryOfAbuse", "NEGL"))


@injector("8915", rank=0)
def _cpp_after_death(f: Faults) -> bool:
    """A death the day before an open plan started (a CIN plan ended on that day: 4009Q too)."""
    c = _cpp(f)
    death = c["CPPstartDate"] - DAY
    ok = (~c["ended"] & (death >= f.start) & (death >= c["last_referral"]) & (death >= c["dob"])
          & c["child"].map(f.kids["PersonDeathDate"]).isna() & ~c["child"].map(f.kids["any_plan"]))
    row = f.choose(c, ok)
    if row is None:
        return False
    return _c_fault(f, row, f.set_child(row["child"], "PersonDeathDate", row["CPPstartDate"] - DAY))


@injector("8920", rank=0)
def _cpp_ends_after_death(f: Faults) -> bool:
    c = _cpp(f)
    death = c["CPPendDate"] - DAY
    ok = (c["ended"] & (death >= f.start) & (death >= c["CPPstartDate"]) & (death >= c["last_referral"])
          & (death >= c["dob"]) & c["child"].map(f.kids["PersonDeathDate"]).isna()
          & ~c["child"].map(f.kids["any_plan"]))
    row = f.choose(c, ok)
    if row is None:
        return False
    return _c_fault(f, row, f.set_child(row["child"], "PersonDeathDate", row["CPPendDate"] - DAY))


@injector("8925", rank=0)
def _cpp_ends_before_start(f: Faults) -> bool:
    c = _cpp(f)
    row = f.choose(c, c["ended"] & (c["CPPstartDate"] > f.start) & ~c["step_down"])
    if row is None:
        return False
    return _c_fault(f, row, f.set("cp_plans", row["label"], "CPPendDate", row["CPPstartDate"] - DAY))


@injector("8930", rank=0)
def _cpp_ends_after_census(f: Faults) -> bool:
    c = _cpp(f)
    row = f.choose(c, ~c["ended"] & c["open"])
    if row is None:
        return False
    return _c_fault(f, row, f.set("cp_plans", row["label"], "CPPendDate", f.wd(f.ref, 7)))


@injector("8935", rank=0)
def _two_open_cpp(f: Faults) -> bool:
    """A second open plan beside an open one (their dates overlap: 8940, and 2885/2883 may fail)."""
    c = _cpp(f)
    row = f.choose(c, ~c["ended"])
    if row is None:
        return False
    n = f.add("cp_plans", child=row["child"], episode=row["episode"], CPPstartDate=row["CPPstartDate"],
              InitialCategoryOfAbuse=row["InitialCategoryOfAbuse"], LatestCategoryOfAbuse=row["LatestCategoryOfAbuse"],
              NumberOfPreviousCPP=row["NumberOfPreviousCPP"])
    return f.fault(row["child"], "cp_plans", f"added a second open plan starting {_fmt(row['CPPstartDate'])}",
                   episode=row["episode"], item=n)


@injector("8940", rank=0)
def _cpp_overlap(f: Faults) -> bool:
    c = _cpp(f)
    row = f.choose(c, c["CPPstartDate"] < f.start)
    if row is None:
        return False
    limit = min(x for x in (row["CINclosureDate"], row["CPPendDate"], f.ref) if pd.notna(x))
    end = max(f.start + DAY, min(limit, f.start + DAY * 10))
    n = f.add("cp_plans", child=row["child"], episode=row["episode"], CPPstartDate=row["CPPstartDate"], CPPendDate=end,
              InitialCategoryOfAbuse=row["InitialCategoryOfAbuse"], LatestCategoryOfAbuse=row["LatestCategoryOfAbuse"],
              NumberOfPreviousCPP=row["NumberOfPreviousCPP"])
    return f.fault(row["child"], "cp_plans", f"added a plan {_fmt(row['CPPstartDate'])}..{_fmt(end)} overlapping plan "
                   f"{row['cpp']}", episode=row["episode"], item=n)


# -- CIN plans ------------------------------------------------------------------------------------


def _plans(f: Faults) -> pd.DataFrame:
    p = _with_episode(f, "cin_plans", ("CINreferralDate", "CINclosureDate", "open", "closed", "n_cpp"))
    p["ended"] = p["CINPlanEndDate"].notna()
    p["last_referral"] = p["child"].map(f.kids["last_referral"])
    p["dob"] = p["child"].map(f.kids["PersonBirthDate"])
    p["any_cpp"] = p["child"].map(f.kids["any_cpp"])
    p["n_child_plans"] = p.groupby("child")["cin_plan"].transform("size")
    return p


def _p_fault(f: Faults, p: pd.Series, change: str) -> bool:
    return f.fault(p["child"], "cin_plans", change, episode=p["episode"], item=p["cin_plan"])


@injector("4000", rank=0)
def _plan_on_nfa(f: Faults) -> bool:
    ep = f.ep
    e = f.choose(ep, ep["nfa"] & ~ep["child"].map(f.kids["any_plan"]))
    if e is None:
        return False
    n = f.add("cin_plans", child=e["child"], episode=e["episode"], CINPlanStartDate=e["CINreferralDate"])
    return f.fault(e["child"], "cin_plans", f"added an open CIN plan to an NFA referral", episode=e["episode"], item=n)


@injector("4001", rank=0)
def _plan_with_open_cpp(f: Faults) -> bool:
    """An open CIN plan during an open protection plan (it starts inside it: 4016 too)."""
    c = _cpp(f)
    row = f.choose(c, ~c["ended"] & (c["CPPstartDate"] < f.ref) & (c["n_plans"] == 0))
    if row is None:
        return False
    start = row["CPPstartDate"] + DAY
    n = f.add("cin_plans", child=row["child"], episode=row["episode"], CINPlanStartDate=start)
    return f.fault(row["child"], "cin_plans", f"added an open CIN plan starting {_fmt(start)}", episode=row["episode"],
                   item=n)


@injector("4003", rank=0)
def _review_during_plan(f: Faults) -> bool:
    c = _cpp(f)
    p = f.t["cin_plans"]
    starts = dict(zip(zip(p["child"], p["episode"], p["CINPlanStartDate"]), p["CINPlanEndDate"]))
    has_step = [(ch, e, d) in starts for ch, e, d in zip(c["child"], c["episode"], c["CPPendDate"])]
    row = f.choose(c, c["ended"] & pd.Series(has_step, index=c.index))
    if row is None:
        return False
    plan_end = starts[(row["child"], row["episode"], row["CPPendDate"])]
    day = row["CPPendDate"] + DAY * 2
    if day > min(x for x in (plan_end, row["CINclosureDate"], f.ref) if pd.notna(x)):
        return False
    n = f.add("cp_reviews", child=row["child"], episode=row["episode"], cpp=row["cpp"], CPPreviewDate=day)
    return f.fault(row["child"], "cp_reviews", f"added CPPreviewDate {_fmt(day)} inside the CIN plan that follows "
                   f"the protection plan", episode=row["episode"], item=n)


@injector("4004", rank=0)
def _two_open_plans(f: Faults) -> bool:
    """A second open CIN plan (it overlaps the first: 4014 too)."""
    p = _plans(f)
    row = f.choose(p, ~p["ended"] & (p["CINPlanStartDate"] < f.ref))
    if row is None:
        return False
    start = row["CINPlanStartDate"] + DAY
    n = f.add("cin_plans", child=row["child"], episode=row["episode"], CINPlanStartDate=start)
    return f.fault(row["child"], "cin_plans", f"added a second open CIN plan starting {_fmt(start)}",
                   episode=row["episode"], item=n)


@injector("4008", rank=0)
def _plan_after_death(f: Faults) -> bool:
    p = _plans(f)
    death = p["CINPlanStartDate"] - DAY
    ok = (~p["ended"] & p["open"] & ~p["any_cpp"] & (p["n_child_plans"] == 1) & (death >= f.start)
          & (death >= p["last_referral"]) & (death >= p["dob"]))
    row = f.choose(p, ok)
    if row is None:
        return False
    return _p_fault(f, row, f.set_child(row["child"], "PersonDeathDate", row["CINPlanStartDate"] - DAY))


@injector("4009Q", rank=0)
def _plan_ends_after_death(f: Faults) -> bool:
    p = _plans(f)
    death = p["CINPlanEndDate"] - DAY
    ok = (p["ended"] & ~p["any_cpp"] & (p["n_child_plans"] == 1) & (death >= f.start)
          & (death >= p["CINPlanStartDate"]) & (death >= p["last_referral"]) & (death >= p["dob"]))
    row = f.choose(p, ok)
    if row is None:
        return False
    return _p_fault(f, row, f.set_child(row["child"], "PersonDeathDate", row["CINPlanEndDate"] - DAY))


@injector("4010", rank=0)
def _plan_starts_after_census(f: Faults) -> bool:
    p = _plans(f)
    row = f.choose(p, ~p["ended"] & p["open"])
    if row is None:
        return False
    return _p_fault(f, row, f.set("cin_plans", row["label"], "CINPlanStartDate", f.ref + DAY * 5))


@injector("4011", rank=0)
def _plan_ends_before_start(f: Faults) -> bool:
    p = _plans(f)
    row = f.choose(p, p["ended"] & (p["CINPlanStartDate"] > f.start))
    if row is None:
        return False
    return _p_fault(f, row, f.set("cin_plans", row["label"], "CINPlanEndDate", row["CINPlanStartDate"] - DAY))


@injector("4012Q", rank=0)
def _plan_same_day(f: Faults) -> bool:
    p = _plans(f)
    row = f.choose(p, p["ended"] & (p["CINPlanStartDate"] >= f.start))
    if row is None:
        return False
    return _p_fault(f, row, f.set("cin_plans", row["label"], "CINPlanEndDate", row["CINPlanStartDate"]))


@injector("4013", rank=0)
def _plan_ends_after_census(f: Faults) -> bool:
    p = _plans(f)
    row = f.choose(p, ~p["ended"] & p["open"])
    if row is None:
        return False
    return _p_fault(f, row, f.set("cin_plans", row["label"], "CINPlanEndDate", f.ref + DAY * 5))


@injector("4014", rank=0)
def _plans_overlap(f: Faults) -> bool:
    p = _plans(f)
    row = f.choose(p, p["ended"] & (p["CINPlanEndDate"] - p["CINPlanStartDate"] >= pd.Timedelta(days=2)))
    if row is None:
        return False
    start = row["CINPlanStartDate"] + DAY
    n = f.add("cin_plans", child=row["child"], episode=row["episode"], CINPlanStartDate=start,
              CINPlanEndDate=row["CINPlanEndDate"])
    return f.fault(row["child"], "cin_plans", f"added a CIN plan {_fmt(start)}..{_fmt(row['CINPlanEndDate'])} inside plan "
                   f"{row['cin_plan']}", episode=row["episode"], item=n)


@injector("4015", rank=0)
def _plan_before_referral(f: Faults) -> bool:
    p = _plans(f)
    row = f.choose(p, (p["cin_plan"] == 1) & (p["n_cpp"] == 0))
    if row is None:
        return False
    return _p_fault(f, row, f.set("cin_plans", row["label"], "CINPlanStartDate", row["CINreferralDate"] - DAY))


@injector("4016", rank=0)
def _plan_starts_in_cpp(f: Faults) -> bool:
    c = _cpp(f)
    p = f.t["cin_plans"]
    label_of = {(ch, e, d): lab for lab, ch, e, d in zip(p.index, p["child"], p["episode"], p["CINPlanStartDate"])}
    rv = f.t["cp_reviews"]
    reviewed = set(zip(rv["child"], rv["episode"], rv["cpp"], rv["CPPreviewDate"]))
    ok = [ended and (ch, e, d) in label_of and (ch, e, k, d - DAY) not in reviewed and d - DAY > s
          for ended, ch, e, k, s, d in zip(c["ended"], c["child"], c["episode"], c["cpp"], c["CPPstartDate"],
                                           c["CPPendDate"])]
    row = f.choose(c, ok)
    if row is None:
        return False
    label = label_of[(row["child"], row["episode"], row["CPPendDate"])]
    p_row = p.loc[label]
    change = f.set("cin_plans", label, "CINPlanStartDate", row["CPPendDate"] - DAY)
    return f.fault(row["child"], "cin_plans", change, episode=row["episode"], item=p_row["cin_plan"])


@injector("4017", rank=0)
def _cpp_starts_in_plan(f: Faults) -> bool:
    c = _cpp(f)
    p = f.t["cin_plans"]
    label_of = {(ch, e, d): lab for lab, ch, e, d in zip(p.index, p["child"], p["episode"], p["CINPlanEndDate"])}
    day_after = c["CPPstartDate"] + DAY
    ok = [(ch, e, s) in label_of and (pd.isna(r) or a < r) and a <= f.ref
          for ch, e, s, a, r in zip(c["child"], c["episode"], c["CPPstartDate"], day_after, c["first_review"])]
    row = f.choose(c, ok)
    if row is not None:
        label = label_of[(row["child"], row["episode"], row["CPPstartDate"])]
        change = f.set("cin_plans", label, "CINPlanEndDate", row["CPPstartDate"] + DAY)
        return f.fault(row["child"], "cin_plans", change, episode=row["episode"], item=p.loc[label, "cin_plan"])
    ok = ((c["n_plans"] == 0) & (c["CPPstartDate"] - c["CINreferralDate"] >= pd.Timedelta(days=3))
          & (c["first_review"].isna() | (c["first_review"] > c["CPPstartDate"] + DAY))
          & (c["CPPstartDate"] + DAY <= f.ref))
    row = f.choose(c, ok)
    if row is None:
        return False
    start, end = row["CPPstartDate"] - DAY * 2, row["CPPstartDate"] + DAY
    n = f.add("cin_plans", child=row["child"], episode=row["episode"], CINPlanStartDate=start, CINPlanEndDate=end)
    return f.fault(row["child"], "cin_plans", f"added a CIN plan {_fmt(start)}..{_fmt(end)} around the plan's start",
                   episode=row["episode"], item=n)


# -- return level ---------------------------------------------------------------------------------


@injector("100", rank=5)
def _wrong_reference_date(f: Faults) -> bool:
    old = f.header.reference_date
    new = f.ref - DAY
    f.header = dataclasses.replace(f.header, reference_date=new)
    return f.fault(None, "return", f"ReferenceDate: {_fmt(old)} -> {_fmt(new)}")


@injector("2883", rank=5)
def _more_plans_than_conferences(f: Faults) -> bool:
    """Replace conferences by 'not required' until plans starting outnumber them (2885 fails too)."""
    s = _s47(f)
    in_year = s["DateOfInitialCPC"].between(f.start, f.ref)
    c = f.t["cp_plans"]
    starts = int(c["CPPstartDate"].between(f.start, f.ref).sum())
    conferences = int(in_year.sum()) + int(f.t["episodes"]["DateOfInitialCPC"].between(f.start, f.ref).sum())
    if starts == 0:
        return False
    order = s[in_year].sort_values("has_cpp", kind="stable")  # conferences without a plan first
    removed = 0
    for _, row in order.iterrows():
        if starts > conferences - removed:
            break
        f.set("section47", row["label"], "DateOfInitialCPC", None)
        f.set("section47", row["label"], "ICPCnotRequired", True)
        removed += 1
    return f.fault(None, "return", f"removed {removed} DateOfInitialCPC: {starts} plans start, "
                   f"{conferences - removed} conferences")


@injector("2886Q", rank=5)
def _many_without_sex(f: Faults) -> bool:
    kids = _kids(f)
    born = kids[kids["born"] & ~kids["child"].isin(f.used)]
    n = int(np.ceil(0.02 * len(kids[kids["born"]]))) + 1
    if len(born) < n:
        return False
    value = "U" if f.sex == "Sex" else "0"
    picked = born.iloc[sorted(f.rnd.sample(range(len(born)), n))]
    for child in picked["child"]:
        f.set_child(child, f.sex, value)
    return f.fault(None, "return", f"{f.sex} set to {value} for {n} of {len(kids)} children")


@injector("2887Q", rank=5)
def _few_disability_codes(f: Faults) -> bool:
    d = f.t["disabilities"]
    real = d["Disability"].astype(str) != "NONE"
    keep = list(d.loc[real, "Disability"].astype(str).value_counts().index[:7])
    if not keep:
        return False
    other = real & ~d["Disability"].astype(str).isin(keep)
    lone = set(d.loc[other, "child"]) - set(d.loc[real & ~other, "child"])
    dropped = f.drop("disabilities", other)
    for child in sorted(lone):
        f.add("disabilities", child=child, Disability=keep[0])
    _renumber(f, "disabilities")
    return f.fault(None, "return", f"disability codes limited to {', '.join(keep)} ({dropped} rows removed)")


@injector("2888Q", rank=5)
def _one_disability_each(f: Faults) -> bool:
    d = f.t["disabilities"]
    real = d["Disability"].astype(str) != "NONE"
    extra = real & (d[real].groupby("child").cumcount().reindex(d.index, fill_value=0) > 0)
    if not extra.any():
        return False
    n = f.drop("disabilities", extra)
    _renumber(f, "disabilities")
    return f.fault(None, "return", f"removed {n} second and later disabilities")


def _renumber(f: Faults, table: str) -> None:
    keys = list(spec.TABLE_KEYS[table])
    df = f.t[table].sort_values(keys, kind="stable")
    df[keys[-1]] = df.groupby(keys[:-1]).cumcount() + 1
    f.t[table] = df
