"""Compare one LA's census returns across years: measures side by side, and record continuity.

``compare(returns)`` computes the headline measures of every return (``cinqa.measures``), lays
them out year by year with change, percentage change and flags, and checks each consecutive pair
of returns for records that silently changed or vanished (COLLECT's "submission continuity
report", extended): children matched by LAchildID with UPN as a fallback, identity fields that
changed, episodes and child protection plans open at the earlier reference date that are missing
or re-dated in the later return, and children who reappear after a gap.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.benchmarks import benchmark, read_comparators
from cinqa.errors import CinqaError
from cinqa.measures import (ALL, COUNT, DAYS, MEASURES, NOT_COLLECTED, PERCENT, PRE_PROCEEDINGS, RATE, measure_rows,
                            measures, open_episodes, open_plans, provisional, sex_of)
from cinqa.read import read_return
from cinqa.returns import CensusReturn

FINDING_COLUMNS = ("finding", "LAchildID", "UPN", "field", "earlier_year", "earlier_value", "later_year",
                   "later_value", "detail")

FINDINGS: dict[str, str] = {
    "matched_by_upn": "Child found in both returns only by UPN: the LAchildID changed",
    "identity_changed": "Birth date, sex, ethnicity or UPN differs between the returns",
    "child_missing": "Child with an episode open at the earlier 31 March is not in the later return",
    "episode_missing": "Episode open at the earlier 31 March is not in the later return",
    "referral_date_changed": "Episode open at the earlier 31 March has a different CINreferralDate later",
    "closure_date_conflict": "One return has the episode or plan closed by the earlier 31 March, the other open "
                             "after it",
    "child_absent_from_earlier": "Child with an episode started by the earlier 31 March is not in the earlier return",
    "episode_absent_from_earlier": "Episode started by the earlier 31 March is not in the earlier return",
    "cpp_missing": "Child protection plan open at the earlier 31 March is not in the later return",
    "cpp_start_date_changed": "Plan open at the earlier 31 March has a different CPPstartDate later",
    "cpp_category_changed": "Plan open at the earlier 31 March has a different InitialCategoryOfAbuse later",
    "reappeared": "Child in an earlier return, absent from the one before this, back in this one",
}

INFORMATION = frozenset({"matched_by_upn", "reappeared"})
"""Findings that describe what happened rather than a discrepancy between the returns."""

HEADLINE = ("referrals", "referrals_rate", "re_referral_share", "referrals_nfa_share", "cin_31_march",
            "cin_31_march_rate", "episodes_starting", "episodes_ending", "assessments_completed",
            "assessments_within_45_days_share", "initial_within_10_days_share", "core_within_35_days_share",
            "s47_enquiries", "icpcs", "icpc_within_15_days_share", "cpp_starts",
            "cpp_second_or_subsequent_share", "cpp_ends", "cpp_31_march", "cpp_31_march_rate", *PRE_PROCEEDINGS)
"""The measures shown first: one figure each, as in COLLECT's key indicators."""
NEW = "new"
"""What the headline shows as the change into the first year a measure is collected."""

_KEY = ["measure", "breakdown", "category", "unit"]
# Counts below this in both years are not flagged however much they change: small numbers swing.
MIN_COUNT = 20


@dataclass(frozen=True)
class FlagRule:
    """What a change in a figure of one unit must also exceed, beyond the relative threshold, to be flagged."""

    min_change: float = 0.0
    """The smallest change flagged, in the figure's own unit (percentage points, working days)."""
    chance_z: float | None = None
    """For counts: the change must exceed ``chance_z`` times sqrt(earlier + later), the spread two
    counts of the same underlying level show by chance alone (each roughly Poisson)."""
    why: str = ""


FLAG_RULES: dict[str, FlagRule] = {
    COUNT: FlagRule(chance_z=3.0, why="and by more than chance explains (three times the square root of "
                                      "the two counts added)"),
    RATE: FlagRule(chance_z=3.0, why="and its count by more than chance explains"),
    PERCENT: FlagRule(min_change=10.0, why="and by 10 percentage points or more"),
    DAYS: FlagRule(min_change=5.0, why="and by 5 working days or more"),
}
"""When a change is flagged, by the figure's unit. Tuned on the synthetic series sample
(``data/series``, about 200 referrals a year, no change planted): the relative threshold alone
flagged 80 of its 1,113 year-on-year figures, most of them breakdown counts of 15 to 50 moving
as such counts do by chance; with these rules it flags one, while a planted change (half the
assessments late, half the referrals closed with no further action) is still flagged
(tests/test_compare.py). A rate is judged by the count it divides (:func:`counted_by`)."""


def counted_by(measure: str) -> str | None:
    """Return the count measure whose records a rate measure divides by the population, else None."""
    m = MEASURES[measure]
    if not m.per_population:
        return None
    return next((o.name for o in MEASURES.values()
                 if o.records is m.records and o.unit == COUNT and not o.per_population), None)


def describe_flags(threshold: float, min_count: float, rules: Mapping[str, FlagRule] = FLAG_RULES) -> str:
    """Say in words when a change is flagged, as :func:`changes` decides it."""
    said = "; ".join(f"{unit}: {rule.why}" for unit, rule in rules.items())
    return (f"A figure is flagged when it changes by more than {threshold:.0%} from the year before"
            + (f" ({said}); " if said else "; ") +
            f"a count below {min_count:g} in both years, or a change from zero, is never flagged.")


# -- the comparison table ---------------------------------------------------------------------

def _consecutive(earlier: str, later: str) -> bool:
    return spec.end_year(later) - spec.end_year(earlier) == 1


def changes(tidy: pd.DataFrame, threshold: float = 0.2, years: Sequence[str] | None = None,
            min_count: float = MIN_COUNT, rules: Mapping[str, FlagRule] = FLAG_RULES) -> pd.DataFrame:
    """Return one row per measure figure and pair of consecutive chosen years with its change.

    ``pct_change`` is in percent; ``flag`` is true where ``|pct_change| > threshold * 100`` and the
    change also passes its unit's rule in ``rules`` (by default :data:`FLAG_RULES`: beyond chance
    for counts, a least change for shares and durations; a unit without a rule has none). A
    change from zero has no percentage and is not flagged, nor is a count below ``min_count`` in
    both years (3 becoming 6 doubles, but says little).
    """
    years = sorted(years if years is not None else tidy["census_year"].unique())
    cols = [*_KEY, "earlier_year", "later_year", "earlier", "later", "change", "pct_change", "flag"]
    parts = []
    for earlier, later in zip(years, years[1:]):
        a = tidy[tidy["census_year"] == earlier].set_index(_KEY)["value"]
        b = tidy[tidy["census_year"] == later].set_index(_KEY)["value"]
        both = pd.concat({"earlier": a, "later": b}, axis=1, join="inner").reset_index()
        both["earlier_year"], both["later_year"] = earlier, later
        parts.append(both)
    if not parts:
        empty = {c: pd.Series(dtype="float64") for c in ("earlier", "later", "change", "pct_change")}
        return pd.DataFrame({**{c: pd.Series(dtype="object") for c in cols}, **empty,
                             "flag": pd.Series(dtype=bool)})[cols]
    out = pd.concat(parts, ignore_index=True)
    out["change"] = out["later"] - out["earlier"]
    base = out["earlier"].where(out["earlier"] != 0)
    out["pct_change"] = 100 * out["change"] / base
    out["flag"] = ((out["pct_change"].abs() > 100 * threshold) & _beyond_unit_rule(out, min_count, rules)).fillna(False)
    out["flag"] = out["flag"].astype(bool)
    return out[cols]


def _beyond_unit_rule(out: pd.DataFrame, min_count: float, rules: Mapping[str, FlagRule]) -> pd.Series:
    """Mark the changes that pass their unit's rule in ``rules`` (and, for counts, ``min_count``)."""
    rule = out["unit"].map(dict(rules))
    floor = rule.map(lambda r: r.min_change if isinstance(r, FlagRule) else 0.0)
    z = rule.map(lambda r: r.chance_z if isinstance(r, FlagRule) and r.chance_z is not None else np.nan)
    counts = out[["earlier", "later"]].copy()
    rates = out["unit"] == RATE
    if rates.any():
        # A rate moves by chance as its count does: judge the rate by the count's own change.
        keyed = out.set_index(["measure", "breakdown", "category", "earlier_year", "later_year"])
        base = out.loc[rates, "measure"].map(counted_by)
        look = pd.MultiIndex.from_arrays([base, out.loc[rates, "breakdown"], out.loc[rates, "category"],
                                          out.loc[rates, "earlier_year"], out.loc[rates, "later_year"]])
        found = keyed[["earlier", "later"]].reindex(look)
        counts.loc[rates, ["earlier", "later"]] = found.to_numpy()
    spread = z * np.sqrt(counts["earlier"] + counts["later"])
    chance = (counts["later"] - counts["earlier"]).abs() > spread.fillna(-1)
    enough = ~out["unit"].isin([COUNT, RATE]) | (counts.abs().max(axis=1) >= min_count)
    return (out["change"].abs() >= floor) & chance & enough


def wide_table(tidy: pd.DataFrame, threshold: float = 0.2, years: Sequence[str] | None = None,
               min_count: float = MIN_COUNT, rules: Mapping[str, FlagRule] = FLAG_RULES) -> pd.DataFrame:
    """Lay measures out one row per figure, one column per census year, then each change.

    After the year columns come ``change <year>`` and ``% change <year>`` (from the year before
    among those chosen) and ``flag``, true if any of the row's changes is flagged. Rows keep the
    order of the measure registry; a missing value means the figure does not exist that year.
    """
    years = sorted(years if years is not None else tidy["census_year"].unique())
    tidy = tidy[tidy["census_year"].isin(years)]
    order = tidy[_KEY].drop_duplicates()
    wide = tidy.pivot(index=_KEY, columns="census_year", values="value")
    wide = wide.reindex(pd.MultiIndex.from_frame(order)).reindex(columns=years)
    wide.columns.name = None
    ch = changes(tidy, threshold, years, min_count, rules).set_index(_KEY)
    flag = pd.Series(False, index=wide.index)
    for later in years[1:]:
        part = ch[ch["later_year"] == later]
        wide[f"change {later}"] = part["change"].reindex(wide.index)
        wide[f"% change {later}"] = part["pct_change"].reindex(wide.index)
        flag |= part["flag"].reindex(wide.index, fill_value=False).astype(bool)
    wide["flag"] = flag
    return wide.reset_index()


# -- continuity -------------------------------------------------------------------------------

def _fmt(value: Any) -> str | None:
    """Format a finding's value as text: dates as YYYY-MM-DD, missing as None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    return str(value)


def _identity(ret: CensusReturn) -> pd.DataFrame:
    """Return the identity fields continuity compares, one row per child, sex mapped across years."""
    c = ret.children
    out = pd.DataFrame({"child": c["child"], "LAchildID": c["LAchildID"].astype("object")})
    out["UPN"] = c["UPN"].astype("object").where(c["UPN"].notna(), None) if "UPN" in c else None
    out["PersonBirthDate"] = c["PersonBirthDate"] if "PersonBirthDate" in c else pd.NaT
    out["Ethnicity"] = c["Ethnicity"].astype("object") if "Ethnicity" in c else None
    out["sex"] = sex_of(c)
    expected = c["ExpectedPersonBirthDate"] if "ExpectedPersonBirthDate" in c else pd.Series(pd.NaT, index=c.index)
    out["unborn"] = (out["PersonBirthDate"].isna() & expected.notna()).to_numpy()
    out["gender_field"] = "Sex" if "Sex" in c else "GenderCurrent"
    raw = c["Sex"] if "Sex" in c else c.get("GenderCurrent", pd.Series(None, index=c.index, dtype="object"))
    out["gender_raw"] = raw.astype("object")
    return out


def match_children(earlier: CensusReturn, later: CensusReturn) -> pd.DataFrame:
    """Pair the children of two returns: by LAchildID, then by a UPN unique on both sides.

    Returns one row per pair: ``child_e``, ``child_l`` (table keys), ``LAchildID_e``,
    ``LAchildID_l``, ``UPN_e``, ``UPN_l`` and ``matched_by`` ("LAchildID" or "UPN").
    """
    e, l = _identity(earlier), _identity(later)
    by_id = e.drop_duplicates("LAchildID").merge(l.drop_duplicates("LAchildID"), on="LAchildID",
                                                 suffixes=("_e", "_l"))
    by_id["LAchildID_e"] = by_id["LAchildID_l"] = by_id["LAchildID"]
    by_id["matched_by"] = "LAchildID"
    rest_e = e[~e["child"].isin(by_id["child_e"]) & e["UPN"].notna()].drop_duplicates("UPN", keep=False)
    rest_l = l[~l["child"].isin(by_id["child_l"]) & l["UPN"].notna()].drop_duplicates("UPN", keep=False)
    by_upn = rest_e.merge(rest_l, on="UPN", suffixes=("_e", "_l"))
    by_upn["UPN_e"] = by_upn["UPN_l"] = by_upn["UPN"]
    by_upn["matched_by"] = "UPN"
    return pd.concat([by_id.drop(columns="LAchildID"), by_upn.drop(columns="UPN")], ignore_index=True)


def _none(value: Any) -> Any:
    """Turn pandas' missing markers into None, so ``or`` and ``is None`` work on them."""
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


class _Findings:
    """Collects the findings of one pair of returns."""

    def __init__(self, earlier: CensusReturn, later: CensusReturn, when: str) -> None:
        self.ey, self.ly, self.when = earlier.year, later.year, when
        self.rows: list[tuple[Any, ...]] = []
        self.ids_e = self.ids_l = pd.DataFrame()

    def who(self, child_e: Any, child_l: Any) -> tuple[str | None, str | None]:
        """Return the LAchildID (the later one where matched) and UPN (either side) of a child."""
        e = self.ids_e.loc[child_e] if _none(child_e) is not None else None
        l = self.ids_l.loc[child_l] if _none(child_l) is not None else None
        main = l if l is not None else e
        upn = _none(l["UPN"]) if l is not None else None
        if upn is None and e is not None:
            upn = _none(e["UPN"])
        return _none(main["LAchildID"]), upn

    def add(self, finding: str, child: str | None, upn: str | None, fld: str, earlier: Any, later: Any,
            detail: str) -> None:
        self.rows.append((finding, child, upn, fld, self.ey, _fmt(earlier), self.ly, _fmt(later), detail))


def continuity(earlier: CensusReturn, later: CensusReturn) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Check that the later return carries on the earlier one; return findings and counts.

    The returns must be of consecutive census years. Findings have the columns of
    ``FINDING_COLUMNS``; values are text (dates as YYYY-MM-DD), missing where there is none.
    """
    if not _consecutive(earlier.year, later.year):
        raise CinqaError(f"continuity needs consecutive census years, not {earlier.year} and {later.year}")
    ref = earlier.reference_date
    f = _Findings(earlier, later, f"31 March {ref.year}")
    pairs = match_children(earlier, later)
    e2l = dict(zip(pairs["child_e"], pairs["child_l"]))
    l2e = dict(zip(pairs["child_l"], pairs["child_e"]))
    f.ids_e = _identity(earlier).set_index("child")
    f.ids_l = _identity(later).set_index("child")
    _check_identity(f, pairs)
    open_e = open_episodes(earlier.episodes, ref)
    used_l = _check_open_episodes(f, earlier, later, open_e, e2l)
    _check_started_episodes(f, earlier, later, used_l, l2e)
    _check_plans(f, earlier, later, e2l)
    findings = pd.DataFrame.from_records(f.rows, columns=list(FINDING_COLUMNS))
    counts = {
        "earlier_year": earlier.year, "later_year": later.year,
        "children_earlier": len(f.ids_e), "children_later": len(f.ids_l),
        "matched_by_LAchildID": int((pairs["matched_by"] == "LAchildID").sum()),
        "matched_by_UPN": int((pairs["matched_by"] == "UPN").sum()),
        "only_earlier": len(f.ids_e) - len(pairs), "only_later": len(f.ids_l) - len(pairs),
        "open_at_earlier_reference": int(open_e["child"].nunique()),
        "findings": len(findings),
    }
    return findings, counts


def _episode_keys(eps: pd.DataFrame, child: str) -> pd.DataFrame:
    """Episodes keyed by child and referral date (first of any duplicates), renamed for merging."""
    out = eps[["child", "episode", "CINreferralDate", "CINclosureDate"]].drop_duplicates(["child", "CINreferralDate"])
    return out.rename(columns={"child": child, "episode": f"episode_{child[-1]}",
                               "CINclosureDate": f"CINclosureDate_{child[-1]}"})


def _check_open_episodes(f: _Findings, earlier: CensusReturn, later: CensusReturn, open_e: pd.DataFrame,
                         e2l: dict[int, int]) -> set[tuple[int, int]]:
    """Follow each episode open at the earlier reference date into the later return."""
    ref = earlier.reference_date
    eps_l = later.episodes
    o = open_e[["child", "episode", "CINreferralDate"]].copy()
    o["child_l"] = o["child"].map(e2l).astype("Int64")
    for child, grp in o[o["child_l"].isna()].groupby("child", sort=True):
        lid, upn = f.who(child, None)
        refs = ", ".join(_fmt(d) or "?" for d in grp["CINreferralDate"])
        f.add("child_missing", lid, upn, "LAchildID", lid, None,
              f"episode referred {refs} open at {f.when}; child not in the {later.year} return")
    o = o[o["child_l"].notna()].merge(_episode_keys(eps_l, "child_l"), on=["child_l", "CINreferralDate"], how="left")
    found = o[o["episode_l"].notna()]
    used = set(zip(found["child_l"].astype(int), found["episode_l"].astype(int)))
    for r in found[found["CINclosureDate_l"] <= ref].itertuples(index=False):
        lid, upn = f.who(r.child, r.child_l)
        f.add("closure_date_conflict", lid, upn, "CINclosureDate", None, r.CINclosureDate_l,
              f"episode referred {_fmt(r.CINreferralDate)}: open at {f.when} in the {earlier.year} return, "
              f"closed {_fmt(r.CINclosureDate_l)} in the {later.year} return")
    nfa_l = eps_l["ReferralNFA"].fillna(False).astype(bool)
    for r in o[o["episode_l"].isna()].itertuples(index=False):
        lid, upn = f.who(r.child, r.child_l)
        known = earlier.episodes.loc[earlier.episodes["child"] == r.child, "CINreferralDate"]
        cand = eps_l[(eps_l["child"] == r.child_l) & (eps_l["CINreferralDate"] <= ref) & ~nfa_l
                     & ~eps_l["CINreferralDate"].isin(known)]
        cand = cand[[(int(r.child_l), int(ep)) not in used for ep in cand["episode"]]] if len(cand) else cand
        if len(cand):
            best = cand.loc[(cand["CINreferralDate"] - r.CINreferralDate).abs().idxmin()]
            used.add((int(r.child_l), int(best["episode"])))
            f.add("referral_date_changed", lid, upn, "CINreferralDate", r.CINreferralDate, best["CINreferralDate"],
                  f"episode open at {f.when}")
        else:
            f.add("episode_missing", lid, upn, "CINreferralDate", r.CINreferralDate, None,
                  f"episode referred {_fmt(r.CINreferralDate)} open at {f.when}; not in the {later.year} return")
    return used


def _check_started_episodes(f: _Findings, earlier: CensusReturn, later: CensusReturn, used: set[tuple[int, int]],
                            l2e: dict[int, int]) -> None:
    """Find episodes the later return says started by the earlier reference date that the earlier lacks."""
    ref = earlier.reference_date
    eps_l = later.episodes
    nfa_l = eps_l["ReferralNFA"].fillna(False).astype(bool)
    s = eps_l.loc[(eps_l["CINreferralDate"] <= ref) & ~nfa_l, ["child", "episode", "CINreferralDate", "CINclosureDate"]]
    s = s[[(int(c), int(e)) not in used for c, e in zip(s["child"], s["episode"])]] if len(s) else s
    s = s.assign(child_e=s["child"].map(l2e).astype("Int64"))
    for child, grp in s[s["child_e"].isna()].groupby("child", sort=True):
        lid, upn = f.who(None, child)
        refs = ", ".join(_fmt(d) or "?" for d in grp["CINreferralDate"])
        f.add("child_absent_from_earlier", lid, upn, "LAchildID", None, lid,
              f"episode referred {refs} in the {later.year} return; child not in the {earlier.year} return")
    s = s[s["child_e"].notna()].merge(_episode_keys(earlier.episodes, "child_e"), on=["child_e", "CINreferralDate"],
                                      how="left")
    for r in s.itertuples(index=False):
        lid, upn = f.who(r.child_e, r.child)
        if pd.isna(r.episode_e):
            f.add("episode_absent_from_earlier", lid, upn, "CINreferralDate", None, r.CINreferralDate,
                  f"episode referred {_fmt(r.CINreferralDate)} (by {f.when}) is not in the {earlier.year} return")
        elif pd.notna(r.CINclosureDate_e) and r.CINclosureDate_e <= ref and not (r.CINclosureDate <= ref):
            f.add("closure_date_conflict", lid, upn, "CINclosureDate", r.CINclosureDate_e, r.CINclosureDate,
                  f"episode referred {_fmt(r.CINreferralDate)}: closed {_fmt(r.CINclosureDate_e)} in the "
                  f"{earlier.year} return, still open after {f.when} in the {later.year} return")


def _text(values: pd.Series) -> pd.Series:
    """Values as display text (dates as YYYY-MM-DD), missing as None."""
    return values.astype("object").where(values.notna(), None).map(_fmt, na_action="ignore")


def _check_identity(f: _Findings, pairs: pd.DataFrame) -> None:
    """Report matched children whose birth date, sex, ethnicity or UPN differs."""
    e = f.ids_e.loc[pairs["child_e"]].reset_index(drop=True)
    l = f.ids_l.loc[pairs["child_l"]].reset_index(drop=True)
    lid = l["LAchildID"]
    upn = l["UPN"].where(l["UPN"].notna(), e["UPN"])

    def report(mask: pd.Series, finding: str, fld: str, before: pd.Series, after: pd.Series,
               detail: pd.Series | str) -> None:
        for i in np.flatnonzero(mask.to_numpy(dtype=bool)):
            text = detail if isinstance(detail, str) else detail.iloc[i]
            if not isinstance(detail, str) and pd.isna(after.iloc[i]):
                text = "birth date removed"
            f.add(finding, _none(lid.iloc[i]), _none(upn.iloc[i]), fld, before.iloc[i], after.iloc[i], text)

    report(pairs["matched_by"] == "UPN", "matched_by_upn", "LAchildID", e["LAchildID"], lid,
           "same UPN, different LAchildID")
    dob_e, dob_l = e["PersonBirthDate"], l["PersonBirthDate"]
    report(dob_e.notna() & (dob_l.isna() | (dob_e != dob_l)), "identity_changed", "PersonBirthDate", dob_e, dob_l,
           pd.Series("birth date changed", index=e.index))
    same = e["gender_field"] == l["gender_field"]
    before = _text(e["gender_raw"]).where(same, _text(e["sex"]))
    after = _text(l["gender_raw"]).where(same, _text(l["sex"]))
    born_since = e["unborn"] & _text(e["sex"]).fillna("U").eq("U")
    changed = (before.fillna("") != after.fillna("")) & ~born_since
    for fld in ("Sex", "GenderCurrent"):
        mask = changed & (l["gender_field"] == fld)
        detail = (e["gender_field"] + " " + _text(e["gender_raw"]).fillna("missing") + " -> " + l["gender_field"] + " "
                  + _text(l["gender_raw"]).fillna("missing")
                  + np.where(same, "", " (GenderCurrent mapped to Sex: 1 M, 2 F, 0 and 9 U)"))
        report(mask, "identity_changed", fld, before, after, detail)
    eth_e, eth_l = _text(e["Ethnicity"]), _text(l["Ethnicity"])
    report(eth_e.notna() & (eth_e != eth_l.fillna("")), "identity_changed", "Ethnicity", eth_e, eth_l,
           "ethnicity changed")
    upn_e, upn_l = e["UPN"], l["UPN"]
    report(upn_e.notna() & upn_l.notna() & (upn_e != upn_l), "identity_changed", "UPN", upn_e, upn_l, "UPN changed")


def _check_plans(f: _Findings, earlier: CensusReturn, later: CensusReturn, e2l: dict[int, int]) -> None:
    """Follow each child protection plan open at the earlier reference date into the later return."""
    ref = earlier.reference_date
    plans_l = later.cp_plans
    o = open_plans(earlier.cp_plans, ref)[["child", "CPPstartDate", "InitialCategoryOfAbuse"]].copy()
    o["child_l"] = o["child"].map(e2l).astype("Int64")
    for r in o[o["child_l"].isna()].itertuples(index=False):
        lid, upn = f.who(r.child, None)
        f.add("cpp_missing", lid, upn, "CPPstartDate", r.CPPstartDate, None,
              f"plan from {_fmt(r.CPPstartDate)} open at {f.when}; child not in the {later.year} return")
    keyed = plans_l[["child", "CPPstartDate", "CPPendDate", "InitialCategoryOfAbuse"]].drop_duplicates(
        ["child", "CPPstartDate"]).rename(columns={"child": "child_l", "InitialCategoryOfAbuse": "category_l"})
    keyed["found"] = True
    o = o[o["child_l"].notna()].merge(keyed, on=["child_l", "CPPstartDate"], how="left")
    o["InitialCategoryOfAbuse"] = o["InitialCategoryOfAbuse"].astype("object")
    o["category_l"] = o["category_l"].astype("object")
    for r in o[o["found"].notna()].itertuples(index=False):
        start = _fmt(r.CPPstartDate)
        if _fmt(r.category_l) != _fmt(r.InitialCategoryOfAbuse):
            lid, upn = f.who(r.child, r.child_l)
            f.add("cpp_category_changed", lid, upn, "InitialCategoryOfAbuse", r.InitialCategoryOfAbuse, r.category_l,
                  f"plan from {start}")
        if pd.notna(r.CPPendDate) and r.CPPendDate <= ref:
            lid, upn = f.who(r.child, r.child_l)
            f.add("closure_date_conflict", lid, upn, "CPPendDate", None, r.CPPendDate,
                  f"plan from {start}: open at {f.when} in the {earlier.year} return, ended "
                  f"{_fmt(r.CPPendDate)} in the {later.year} return")
    for r in o[o["found"].isna()].itertuples(index=False):
        lid, upn = f.who(r.child, r.child_l)
        known = earlier.cp_plans.loc[earlier.cp_plans["child"] == r.child, "CPPstartDate"]
        mine = plans_l[plans_l["child"] == r.child_l]
        cand = mine[(mine["CPPstartDate"] <= ref) & ~mine["CPPstartDate"].isin(known)]
        if len(cand):
            best = cand.loc[(cand["CPPstartDate"] - r.CPPstartDate).abs().idxmin()]
            f.add("cpp_start_date_changed", lid, upn, "CPPstartDate", r.CPPstartDate, best["CPPstartDate"],
                  f"plan open at {f.when}")
        else:
            f.add("cpp_missing", lid, upn, "CPPstartDate", r.CPPstartDate, None,
                  f"plan from {_fmt(r.CPPstartDate)} open at {f.when}; not in the {later.year} return")


def reappearances(returns: Sequence[CensusReturn]) -> pd.DataFrame:
    """Find children absent from the return before and present in an older one (by LAchildID or UPN)."""
    rows = []
    ids = [_identity(r) for r in returns]
    seen_id = [set(i["LAchildID"].dropna()) for i in ids]
    seen_upn = [set(i["UPN"].dropna()) for i in ids]
    for k in range(2, len(returns)):
        for child in ids[k].itertuples(index=False):
            def present(j: int) -> bool:
                return child.LAchildID in seen_id[j] or (child.UPN is not None and child.UPN in seen_upn[j])
            if present(k - 1):
                continue
            back = next((j for j in range(k - 2, -1, -1) if present(j)), None)
            if back is None:
                continue
            gap = ", ".join(r.year for r in returns[back + 1:k])
            rows.append(("reappeared", child.LAchildID, child.UPN, "LAchildID", returns[back].year, child.LAchildID,
                         returns[k].year, child.LAchildID, f"not in the {gap} return(s)"))
    return pd.DataFrame.from_records(rows, columns=list(FINDING_COLUMNS))


# -- the comparison ---------------------------------------------------------------------------

def _load(returns: Iterable[Any]) -> list[CensusReturn]:
    out = []
    for r in returns:
        if not isinstance(r, (CensusReturn, str, Path)):
            raise CinqaError(f"compare() takes census returns or paths, not {type(r).__name__}")
        out.append(r if isinstance(r, CensusReturn) else read_return(r))
    if not out:
        raise CinqaError("compare() needs at least one census return")
    las = {r.header.la for r in out if r.header.la}
    if len(las) > 1:
        listing = "; ".join(f"{r.path.name if r.path else r.year}: LA {r.header.la}" for r in out)
        raise CinqaError(f"the returns are from different local authorities ({listing}); "
                         "compare returns of one LA")
    out.sort(key=lambda r: r.year)
    years = [r.year for r in out]
    dupes = sorted({y for y in years if years.count(y) > 1})
    if dupes:
        raise CinqaError(f"more than one return for census year {', '.join(dupes)}; give one return per year")
    return out


@dataclass
class Comparison:
    """Several census returns of one LA side by side (build it with :func:`compare`)."""

    returns: list[CensusReturn]
    threshold: float
    measures: pd.DataFrame
    continuity: pd.DataFrame
    continuity_summary: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    min_count: float = MIN_COUNT
    rules: Mapping[str, FlagRule] = field(default_factory=lambda: FLAG_RULES)
    population: float | Mapping[str, float] | None = None
    comparators: pd.DataFrame | None = None

    @property
    def years(self) -> list[str]:
        """The census years compared, oldest first."""
        return [r.year for r in self.returns]

    @property
    def la(self) -> str | None:
        return next((r.header.la for r in self.returns if r.header.la), None)

    @property
    def table(self) -> pd.DataFrame:
        """Measures by census year, with change, % change and ``flag`` (see :func:`wide_table`)."""
        return wide_table(self.measures, self.threshold, min_count=self.min_count, rules=self.rules)

    @property
    def changes(self) -> pd.DataFrame:
        """One row per figure and consecutive pair of years (see :func:`changes`)."""
        return changes(self.measures, self.threshold, min_count=self.min_count, rules=self.rules)

    def ret(self, year: str) -> CensusReturn:
        """Return the census return of ``year``."""
        for r in self.returns:
            if r.year == year:
                return r
        raise CinqaError(f"no {year} return in this comparison ({', '.join(self.years)})")

    def children_behind(self, measure: str, breakdown: str = ALL, category: str = ALL,
                        years: Sequence[str] | None = None) -> pd.DataFrame:
        """Return the records behind a figure in the chosen years, each child marked where it appears.

        For a share these are the records its numerator counts (the referrals with no further
        action behind the NFA share), not every record of its denominator. ``status`` is "in every
        year" or "only in <years>", by LAchildID; ``census_year`` says which return a row comes from.
        """
        years = list(years) if years is not None else self.years
        share = MEASURES[measure].aggregate == "share"
        parts = []
        for y in years:
            r = self.ret(y)
            if y not in MEASURES[measure].years:
                continue
            rows = measure_rows(r, measure, breakdown, category)
            if share:
                rows = rows[rows["hit"].astype(bool)].drop(columns="hit")
            parts.append(rows.assign(census_year=y))
        if not parts:
            return pd.DataFrame(columns=["census_year", "status", "LAchildID"])
        out = pd.concat(parts, ignore_index=True)
        where = out.groupby("LAchildID")["census_year"].agg(lambda s: tuple(sorted(set(s))))
        status = where.map(lambda ys: "in every year" if len(ys) == len(parts) else "only in " + ", ".join(ys))
        out.insert(0, "status", out["LAchildID"].map(status))
        out.insert(0, "census_year", out.pop("census_year"))
        return out.sort_values(["LAchildID", "census_year"], kind="stable").reset_index(drop=True)

    @functools.cached_property
    def national(self) -> pd.DataFrame:
        """Each key indicator of every year beside England's figure, the comparators and a band.

        See :func:`cinqa.benchmarks.benchmark`; re-referrals are counted with the year before
        where its return is here, as the Department counts them.
        """
        return benchmark(self.returns, self.population, self.comparators)

    def headline(self) -> pd.DataFrame:
        """Return the headline measures by year with their changes (see :func:`headline`)."""
        return headline(self)

    def flagged(self) -> pd.DataFrame:
        """Return the figures whose change is over the threshold, largest first (see :func:`flagged`)."""
        return flagged(self)

    def summary(self) -> dict[str, pd.DataFrame]:
        """Return the display-ready tables of :func:`summarise`."""
        return summarise(self)

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """Return every table of the comparison by name, for export (CSV, Excel)."""
        from cinqa.measures import definitions
        return {
            "table": self.table,
            "measures": self.measures,
            "changes": self.changes,
            "continuity": self.continuity,
            "continuity_summary": self.continuity_summary,
            "national": self.national,
            "definitions": definitions(),
        }

    def _repr_html_(self) -> str:
        """Render the summary tables as static HTML (no widgets: works offline and in reports)."""
        from html import escape

        parts = [f"<p><b>Year-on-year comparison</b> of LA {escape(self.la or '?')}: "
                 f"{escape(', '.join(self.years))}.</p>"]
        parts += [f"<p><i>{escape(n)}</i></p>" for n in self.notes]
        for title, df in self.summary().items():
            parts.append(f"<h4>{escape(title)}</h4>")
            if df.empty:
                parts.append("<p>None.</p>")
            else:
                parts.append(df.head(50).to_html(index=False, na_rep="", border=0, float_format="{:,.1f}".format))
                if len(df) > 50:
                    parts.append(f"<p>... and {len(df) - 50:,} more rows.</p>")
        return "\n".join(parts)

    def __repr__(self) -> str:
        flagged = int(self.table["flag"].sum()) if len(self.returns) > 1 else 0
        return (f"<Comparison LA {self.la or '?'} {', '.join(self.years)}: {len(self.measures)} figures, "
                f"{flagged} flagged, {len(self.continuity)} continuity findings>")


def _check_non_negative(name: str, value: Any, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise CinqaError(f"{name} must be a non-negative {example}, not {value!r}")


def compare(*returns: CensusReturn | str | Path | Iterable[CensusReturn | str | Path], threshold: float = 0.2,
            population: float | Mapping[str, float] | None = None, min_count: float = MIN_COUNT,
            comparators: pd.DataFrame | str | Path | None = None,
            rules: Mapping[str, FlagRule] = FLAG_RULES) -> Comparison:
    """Compare census returns of one LA: measures by year, changes, flags, continuity, national context.

    ``returns`` are CensusReturn objects or paths, given as one list or as separate arguments, in
    any order (they are sorted by year). ``threshold`` is the relative change that flags a figure
    (0.2 = 20%; see :data:`FLAG_RULES` for what each unit must also pass, and ``rules`` to replace
    them); counts below ``min_count`` in both years are never flagged. ``population`` (children
    under 18: a number, or census year -> number) adds rates per 10,000 children; it is never
    estimated, and without it a note says the rates are missing. ``comparators`` (the path of an LA's comparators CSV,
    or its table from :func:`cinqa.benchmarks.read_comparators`) joins England in
    ``Comparison.national``. Continuity is checked between each pair of consecutive census
    years; a gap in the years is noted and skipped.
    """
    _check_non_negative("threshold", threshold, "fraction such as 0.2")
    _check_non_negative("min_count", min_count, "number such as 20")
    flat: list[CensusReturn | str | Path] = []
    for r in returns:
        if isinstance(r, (CensusReturn, str, Path)):
            flat.append(r)
        elif isinstance(r, Iterable):
            flat.extend(r)
        else:
            raise CinqaError(f"compare() takes census returns or paths, not {type(r).__name__} "
                             "(give threshold= and population= by name)")
    rets = _load(flat)
    if comparators is not None and not isinstance(comparators, pd.DataFrame):
        comparators = read_comparators(comparators)
    years = [r.year for r in rets]
    if isinstance(population, Mapping):
        unknown = sorted(set(population) - set(years))
        if unknown:
            raise CinqaError(f"a population is given for {', '.join(map(str, unknown))}, which is not the year of any "
                             f"return compared ({', '.join(years)})")
    notes: list[str] = []
    for r in rets:
        dupes = r.children["LAchildID"][r.children["LAchildID"].duplicated()].dropna().unique()
        if len(dupes):
            shown = ", ".join(map(str, dupes[:5])) + (" ..." if len(dupes) > 5 else "")
            notes.append(f"{len(dupes)} LAchildID(s) appear more than once in the {r.year} return ({shown}); "
                         "continuity follows the first of each")
    # Each return is measured on its own, as COLLECT sees it: giving later years the previous
    # return's referrals would raise their re-referrals but not the first year's, a false jump.
    tidy = [measures(r, population) for r in rets]
    found, counts = [], []
    for a, b in zip(rets, rets[1:]):
        if not _consecutive(a.year, b.year):
            note = f"{a.year} and {b.year} are not consecutive census years: no continuity check between them"
            notes.append(note)
            counts.append({"earlier_year": a.year, "later_year": b.year, "children_earlier": len(a.children),
                           "children_later": len(b.children), "note": note})
            continue
        fnd, cnt = continuity(a, b)
        found.append(fnd)
        counts.append({**cnt, "note": ""})
    found.append(reappearances(rets))
    without = years if population is None else [y for y in years if isinstance(population, Mapping)
                                                and y not in population]
    if without:
        counted = [MEASURES[counted_by(n) or n].description for n in HEADLINE if MEASURES[n].per_population]
        notes.append(f"No population given for {', '.join(without)}: the rates per 10,000 children of " + ", ".join(
            d[0].lower() + d[1:] for d in counted) + " are not shown there. Give the number of children under 18 "
            "in the LA (population=, or --population); cinqa never estimates it")
    order = {name: i for i, name in enumerate(FINDINGS)}
    findings = pd.concat([f for f in found if len(f)] or [found[-1]], ignore_index=True)
    findings = findings.sort_values(["later_year", "finding", "LAchildID"], key=lambda s: s.map(order)
                                    if s.name == "finding" else s, kind="stable").reset_index(drop=True)
    summary_cols = ["earlier_year", "later_year", "children_earlier", "children_later", "matched_by_LAchildID",
                    "matched_by_UPN", "only_earlier", "only_later", "open_at_earlier_reference", "findings", "note"]
    return Comparison(
        returns=rets, threshold=threshold, min_count=min_count, rules=rules, population=population,
        comparators=comparators,
        measures=pd.concat(tidy, ignore_index=True),
        continuity=findings,
        continuity_summary=pd.DataFrame(counts, columns=summary_cols),
        notes=notes,
    )


# -- display ----------------------------------------------------------------------------------

def _readable(df: pd.DataFrame, by_unit: Sequence[str], percent: Sequence[str] = ()) -> pd.DataFrame:
    """Return ``df`` with figures as they should read: a count's as whole numbers, others to one
    decimal, missing as None; ``percent`` columns (changes in percent) to one decimal whatever the unit."""
    out = df.copy()
    counts = (out["unit"] == COUNT).to_numpy()

    def read(value: Any, whole: bool) -> Any:
        if pd.isna(value):
            return None
        return int(round(value)) if whole else round(float(value), 1)

    for col in [*by_unit, *percent]:
        whole = counts if col in by_unit else np.zeros(len(out), dtype=bool)
        out[col] = pd.Series([read(v, w) for v, w in zip(out[col], whole)], index=out.index, dtype="object")
    return out


def headline(comp: Comparison) -> pd.DataFrame:
    """Return the headline measures (one figure each) by year with their percentage changes, for reading.

    Counts are whole numbers and other figures have one decimal; a figure missing in a year is None,
    and "not collected" in a year before the measure existed, whose first change is "new". The
    absolute changes stay in ``comp.table``.
    """
    from cinqa.measures import definitions

    table = comp.table
    desc = definitions().set_index("measure")["description"]
    head = table[(table["breakdown"] == ALL) & table["measure"].isin(HEADLINE)].copy()
    head["order"] = head["measure"].map({m: i for i, m in enumerate(HEADLINE)})
    head = head.sort_values("order", kind="stable")
    head.insert(0, "description", head["measure"].map(desc))
    pct = [c for c in head.columns if str(c).startswith("% change ")]
    head = _readable(head, [y for y in comp.years if y in head], pct)
    # A measure new in a later year shows as not collected before it and new in it, never as a change from zero.
    years = comp.years
    for earlier, year in zip([None, *years], years):
        before = head["measure"].map(lambda m: year not in MEASURES[m].years)
        head[year] = head[year].astype("object").mask(before.to_numpy(), NOT_COLLECTED)
        if earlier is not None:
            new = head["measure"].map(lambda m: year in MEASURES[m].years and earlier not in MEASURES[m].years)
            col = f"% change {year}"
            head[col] = head[col].astype("object").mask(new.to_numpy(), NEW)
    head["provisional"] = head["measure"].map(provisional)
    return head.drop(columns=["breakdown", "category", "measure", "order",
                              *(c for c in head.columns if str(c).startswith("change "))]).reset_index(drop=True)


def flagged(comp: Comparison) -> pd.DataFrame:
    """Return every figure whose change between consecutive years is flagged, largest first, for reading."""
    from cinqa.measures import definitions

    desc = definitions().set_index("measure")["description"]
    ch = comp.changes
    out = ch[ch["flag"]].copy()
    out = out.reindex(out["pct_change"].abs().sort_values(ascending=False, kind="stable").index)
    out.insert(0, "description", out["measure"].map(desc))
    out = out.drop(columns=["flag"])
    return _readable(out, ["earlier", "later", "change"], ["pct_change"]).reset_index(drop=True)


def summarise(comp: Comparison) -> dict[str, pd.DataFrame]:
    """Return titled tables for a report: headline measures, flagged changes, continuity counts.

    Values are rounded for reading; the raw figures stay in ``comp.measures``.
    """
    if len(comp.continuity):
        counts = (comp.continuity.groupby(["earlier_year", "later_year", "finding"]).size()
                  .rename("findings").reset_index())
        counts.insert(3, "meaning", counts["finding"].map(FINDINGS))
    else:
        counts = pd.DataFrame(columns=["earlier_year", "later_year", "finding", "meaning", "findings"])
    return {
        "Headline measures": headline(comp),
        f"Flagged changes (over {comp.threshold:.0%}{', beyond chance' if comp.rules else ''})": flagged(comp),
        "Continuity between returns": comp.continuity_summary,
        "Continuity findings by type": counts,
    }
