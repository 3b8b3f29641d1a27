"""The Department's headline measures of a census return, each defined once.

A measure is a function that picks the records it counts from a :class:`CensusReturn` (one row
per referral, assessment, plan ...) plus how to aggregate them. The same records feed the value,
its breakdowns (age, sex, ethnicity, disability, referral source, primary need and the measure's
own categories) and the drill-down to the children behind a figure, so the three always agree.

Definitions follow DfE "Characteristics of children in need" as summarised in
``shared/cin-stats.md`` and ``shared/collect-reports.md``; ``status`` keeps their evidence tags
(V verified, I inferred). ``definitions()`` lists them for display. The facts the measures share
with the COLLECT views (:mod:`cinqa.collect`) live here once: the census window
(:func:`in_census_year`), the duration bands and their labels, and the timescales.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.errors import CinqaError
from cinqa.returns import CensusReturn
from cinqa.workdays import working_days_between

COUNT = "count"
PERCENT = "percent"
RATE = "per 10,000 children"
DAYS = "working days"
CALENDAR_DAYS = "days"

ALL = "all"
NOT_RECORDED = "Not recorded"
MEASURE_COLUMNS = ("measure", "breakdown", "category", "census_year", "value", "unit")

ALL_YEARS = frozenset(spec.YEARS)
CONTINUOUS_YEARS = spec.parse_years("2013-14..")
OLD_YEARS = spec.parse_years("2012-13")
PRE_PROCEEDINGS_YEARS = spec.table_years("pre_proceedings")
NOT_COLLECTED = "not collected"
NOT_COLLECTED_NOTE = (f"{NOT_COLLECTED} before {min(PRE_PROCEEDINGS_YEARS)}: no figure for earlier years, so "
                      "year on year shows it as new rather than as a change from zero")

# GenderCurrent (to 2023-24) mapped onto Sex (2024-25 on); 0 "not recorded or unborn" and
# 9 "indeterminate" both become U, the only other value Sex allows.
GENDER_TO_SEX = {"1": "M", "2": "F", "0": "U", "9": "U"}
SEX_LABELS = {"M": "Male", "F": "Female", "U": "Not known or indeterminate"}

AGE_BANDS = ("Unborn", "Under 1", "1 to 4", "5 to 9", "10 to 15", "16 and over")
ETHNIC_GROUPS = ("White", "Mixed", "Asian", "Black", "Other", "Refused or not obtained")
_ETHNIC_GROUP = {"W": "White", "M": "Mixed", "A": "Asian", "B": "Black", "O": "Other", "C": "Other",
                 "REFU": "Refused or not obtained", "NOBT": "Refused or not obtained"}
DISABILITY = ("Disabled", "Not disabled")
# Groups of DfE table C5 "Children in need referrals by source".
_SOURCE_GROUP = {"1A": "Individual", "1B": "Individual", "1C": "Individual", "1D": "Individual",
                 "2A": "Schools", "2B": "Education services", "3A": "Health services",
                 "3B": "Health services", "3C": "Health services", "3D": "Health services",
                 "3E": "Health services", "3F": "Health services", "4": "Housing",
                 "5A": "LA services", "5B": "LA services", "5C": "LA services", "5D": "LA services",
                 "6": "Police", "7": "Other legal agency", "8": "Other", "9": "Anonymous", "10": "Unknown"}
SOURCE_GROUPS = tuple(dict.fromkeys(_SOURCE_GROUP.values()))
# Bands of DfE table C2 "Completed assessments by duration", each with the most working days it
# holds; the labels are C2's own ("1 to 10 days").
ASSESSMENT_BAND_LIMITS = {"Same day": 0, "1 to 10": 10, "11 to 20": 20, "21 to 30": 30, "31 to 40": 40,
                          "41 to 45": 45, "46 to 50": 50, "51 to 60": 60, "61 or more": np.inf}
ASSESSMENT_BANDS = tuple(ASSESSMENT_BAND_LIMITS)
AUTHORISED_BEFORE_START = "Authorised before start"
# Bands of DfE table C4 (S47 start to initial conference), as LG Inform quotes them ("11-15 days").
ICPC_BAND_LIMITS = {"0-10": 10, "11-15": 15, "16-20": 20, "21+": np.inf}
ICPC_BANDS = tuple(ICPC_BAND_LIMITS)
CONFERENCE_BEFORE_START = "Conference before start (excluded)"
# Bands of DfE table D7 "Child protection plans ending during the year by duration".
CPP_BANDS = ("Up to 3 months", "3 to 6 months", "6 months to 1 year", "1 to 2 years", "2 years or more")
# Closure reasons meaning "assessed, not in need": such referrals never become an episode of need.
NOT_IN_NEED_CLOSURES = ("RC8", "RC9")


@dataclass(frozen=True)
class Timescale:
    """Working days allowed from one date of a record to another."""

    days: int
    start: str
    end: str


TIMESCALES: dict[str, Timescale] = {
    # Working Together 2013: one assessment, 45 working days.
    "continuous": Timescale(45, "AssessmentActualStartDate", "AssessmentAuthorisationDate"),
    # 2012-13 (Working Together 2010, NI 59 and NI 60): initial assessments within 10 working days of
    # the referral, core assessments within 35 of their own start.
    "initial": Timescale(10, "CINreferralDate", "AssessmentAuthorisationDate"),
    "core": Timescale(35, "AssessmentActualStartDate", "AssessmentAuthorisationDate"),
    # DfE C4: initial conference within 15 working days of the S47 start.
    "icpc": Timescale(15, "S47ActualStartDate", "DateOfInitialCPC"),
}
ASSESSMENT_TIMESCALE = {kind: TIMESCALES[kind].days for kind in spec.ASSESSMENT_KINDS}
"""Working days allowed per assessment kind, in the order the kinds are shown."""

# Child protection plan reviews (former NI 67; provisional until the COLLECT specification is seen):
# the first within 3 months of the start, each later one within 6 months of the one before.
FIRST_REVIEW_MONTHS = 3
LATER_REVIEW_MONTHS = 6


@dataclass(frozen=True)
class Breakdown:
    """A way of splitting a measure: the categories it can take in a census year."""

    name: str
    description: str
    categories: Callable[[str], tuple[str, ...]]
    years: frozenset[str] = ALL_YEARS
    level: str = "unit"  # child | episode | unit (a column the measure's records carry)
    codeset: str | None = None  # the code set whose codes are the categories, for labels and status


def _codes(codeset: str) -> Callable[[str], tuple[str, ...]]:
    return lambda year: spec.codes(codeset, year)


BREAKDOWNS: dict[str, Breakdown] = {b.name: b for b in (
    Breakdown("age", "Age band at the measure's date (31 March for stocks, the event date for flows)",
              lambda y: AGE_BANDS, level="child"),
    Breakdown("sex", "Sex (GenderCurrent mapped to Sex before 2024-25: 1 M, 2 F, 0 and 9 U)",
              lambda y: tuple(SEX_LABELS.values()), level="child"),
    Breakdown("ethnicity", "Major ethnic group (first letter of the code; Chinese under Other)",
              lambda y: ETHNIC_GROUPS, level="child"),
    Breakdown("disability", "Any disability recorded other than NONE", lambda y: DISABILITY, level="child"),
    Breakdown("referral_source", "Referral source group (DfE table C5)", lambda y: SOURCE_GROUPS,
              years=CONTINUOUS_YEARS, level="episode"),
    Breakdown("primary_need", "Primary need code at assessment", _codes("primary_need"), level="episode"),
    Breakdown("factor", "Factor identified at the end of assessment", _codes("assessment_factor")),
    Breakdown("assessment_duration", "Working days from assessment start to authorisation (DfE C2 bands)",
              lambda y: (*ASSESSMENT_BANDS, AUTHORISED_BEFORE_START), years=CONTINUOUS_YEARS),
    Breakdown("reason_for_closure", "Reason for closure", _codes("reason_for_closure")),
    Breakdown("initial_category", "Initial category of abuse", _codes("category_of_abuse")),
    Breakdown("latest_category", "Latest category of abuse", _codes("category_of_abuse")),
    Breakdown("initial_and_latest_category", "Initial and latest category of abuse (COLLECT report 3)",
              lambda y: tuple(f"{a} > {b}" for a in spec.codes("category_of_abuse")
                              for b in spec.codes("category_of_abuse"))),
    Breakdown("cpp_duration", "Length of plan from start to end (DfE D7 bands)", lambda y: CPP_BANDS),
    Breakdown("pp_outcome", "Outcome of pre-proceedings (PPOutcome)", _codes("pp_outcome"),
              years=PRE_PROCEEDINGS_YEARS, codeset="pp_outcome"),
)}

_DEMOGRAPHIC = ("age", "sex", "ethnicity", "disability")


@dataclass(frozen=True)
class Measure:
    """One headline measure: what it counts, how, where the definition comes from."""

    name: str
    description: str
    source: str
    records: Callable[["_Return"], pd.DataFrame]
    unit: str = COUNT
    aggregate: str = "count"  # count | children | share | median
    breakdowns: tuple[str, ...] = ()
    years: frozenset[str] = ALL_YEARS
    per_population: bool = False
    status: str = "I"
    note: str = ""
    notes_by_year: Mapping[str, str] = field(default_factory=dict)
    reads: tuple[str, ...] = ()  # census items the records rest on whose provenance outputs must show


MEASURES: dict[str, Measure] = {}


def _measure(name: str, description: str, source: str, **kw: object) -> Callable:
    """Register the decorated record-picking function as measure ``name``."""
    def register(fn: Callable[["_Return"], pd.DataFrame]) -> Callable[["_Return"], pd.DataFrame]:
        MEASURES[name] = Measure(name=name, description=description, source=source, records=fn,
                                 **kw)  # type: ignore[arg-type]
        return fn
    return register


def _rate(name: str, of: str, description: str) -> None:
    """Register ``name`` as ``of`` per 10,000 children of the population given."""
    base = MEASURES[of]
    MEASURES[name] = Measure(
        name=name, description=description, records=base.records, unit=RATE, aggregate=base.aggregate,
        years=base.years, per_population=True, status=base.status,
        source=f"{base.source} Divided by the population aged under 18 given, times 10,000.")


# -- frames shared by the measures ---------------------------------------------------------------

def _col(df: pd.DataFrame, name: str, dtype: str = "object") -> pd.Series:
    """Return ``df[name]``, or an all-missing column where the year lacks it."""
    if name in df:
        return df[name]
    return pd.Series(pd.NA if dtype != "datetime64[s]" else pd.NaT, index=df.index, dtype=dtype)


def _text(s: pd.Series) -> pd.Series:
    """Codes as plain strings with missing values as NaN (categoricals lose their categories)."""
    return s.astype("object").where(s.notna(), np.nan)


class _Return:
    """One return's tables prepared once for every measure."""

    def __init__(self, ret: CensusReturn, previous: CensusReturn | None = None) -> None:
        self.ret = ret
        self.year = ret.year
        self.start = ret.census_start
        self.end = ret.reference_date
        self.previous = previous

    def in_year(self, s: pd.Series) -> pd.Series:
        return in_census_year(s, self.ret)

    @cached_property
    def children(self) -> pd.DataFrame:
        """Child-level attributes used by the demographic breakdowns."""
        c = self.ret.children
        out = c[["child", "LAchildID"]].copy()
        out["PersonBirthDate"] = _col(c, "PersonBirthDate", "datetime64[s]")
        out["ExpectedPersonBirthDate"] = _col(c, "ExpectedPersonBirthDate", "datetime64[s]")
        out["sex"] = sex_of(c).map(SEX_LABELS).fillna(NOT_RECORDED)
        out["ethnicity"] = ethnic_group(_col(c, "Ethnicity"))
        disabled = set()
        d = self.ret.disabilities
        if "Disability" in d:
            disabled = set(d.loc[_text(d["Disability"]).fillna("NONE") != "NONE", "child"])
        out["disability"] = np.where(out["child"].isin(disabled), "Disabled", "Not disabled")
        return out

    @cached_property
    def child_attributes(self) -> pd.DataFrame:
        return self.children.set_index("child")

    @cached_property
    def episode_attributes(self) -> pd.DataFrame:
        e = self.episodes
        return e.set_index(["child", "episode"])[["referral_source", "primary_need"]]

    @cached_property
    def episodes(self) -> pd.DataFrame:
        e = self.ret.episodes
        out = e.copy()
        out["nfa"] = _col(e, "ReferralNFA", "boolean").fillna(False).astype(bool)
        reason = _text(_col(e, "ReasonForClosure"))
        out["not_in_need"] = reason.isin(NOT_IN_NEED_CLOSURES).to_numpy()
        out["referral_source"] = _text(_col(e, "ReferralSource")).map(_SOURCE_GROUP).fillna(
            _text(_col(e, "ReferralSource"))).fillna(NOT_RECORDED)
        out["primary_need"] = _text(_col(e, "PrimaryNeedCode")).fillna(NOT_RECORDED)
        out["reason_for_closure"] = reason.fillna(NOT_RECORDED)
        return out

    @cached_property
    def pre_proceedings(self) -> pd.DataFrame:
        """Pre-proceedings modules started in the year (rule 9005 allows no other start)."""
        p = self.ret.pre_proceedings
        start = _col(p, "PPStartDate", "datetime64[s]")
        out = p[self.in_year(start)].copy()
        out["as_of"] = start[out.index]
        return out

    @cached_property
    def referrals(self) -> pd.DataFrame:
        e = self.episodes
        out = e[self.in_year(e["CINreferralDate"])].copy()
        out["as_of"] = out["CINreferralDate"]
        return out

    @cached_property
    def assessments(self) -> pd.DataFrame:
        """Assessments authorised in the year, with their episode's referral date."""
        a = self.ret.assessments
        a = a[self.in_year(a["AssessmentAuthorisationDate"])]
        out = a.merge(self.ret.episodes[["child", "episode", "CINreferralDate"]], on=["child", "episode"],
                      how="left")
        out["as_of"] = out["AssessmentAuthorisationDate"]
        out["days"] = working_days_between(out["AssessmentActualStartDate"], out["AssessmentAuthorisationDate"])
        return out

    @cached_property
    def cp_plans(self) -> pd.DataFrame:
        p = self.ret.cp_plans.copy()
        p["initial_category"] = _text(_col(p, "InitialCategoryOfAbuse")).fillna(NOT_RECORDED)
        p["latest_category"] = _text(_col(p, "LatestCategoryOfAbuse")).fillna(NOT_RECORDED)
        p["initial_and_latest_category"] = p["initial_category"] + " > " + p["latest_category"]
        return p


# -- the measures --------------------------------------------------------------------------------

_REFERRAL = ("DfE C1 'Referrals': each CINdetails whose CINreferralDate falls in the census year "
             "(1 April to 31 March) is one referral, including referrals with no further action.")


@_measure("referrals", "Referrals in the year", _REFERRAL, status="V",
          breakdowns=("referral_source", "primary_need", *_DEMOGRAPHIC),
          notes_by_year={"2012-13": "referral source was not collected in 2012-13"})
def _referrals(d: _Return) -> pd.DataFrame:
    return d.referrals


_rate("referrals_rate", "referrals", "Referrals in the year per 10,000 children")


@_measure("re_referrals", "Re-referrals within 12 months of a previous referral",
          "DfE C1 'Re-referrals': referrals in the year made within 12 months of a previous referral "
          "of the same child. Previous referrals are those in this return (and in the previous year's "
          "return when it is given), so re-referrals early in the year may be under-counted without it; "
          "cinqa.compare measures every return on its own so that the years stay comparable.",
          note="previous referral on or after the date 12 calendar months before, and before the referral")
def _re_referrals(d: _Return) -> pd.DataFrame:
    refs = d.referrals
    return refs[_re_referred(d, refs)]


def _re_referred(d: _Return, refs: pd.DataFrame) -> pd.Series:
    """Tell for each referral whether the child had another referral in the 12 months before it."""
    history = d.episodes[["child", "CINreferralDate"]]
    if d.previous is not None:
        prev = d.previous.episodes[["LAchildID", "CINreferralDate"]].merge(
            d.ret.children[["LAchildID", "child"]].drop_duplicates("LAchildID"), on="LAchildID")
        history = pd.concat([history, prev[["child", "CINreferralDate"]]], ignore_index=True)
    history = history.dropna().rename(columns={"CINreferralDate": "earlier"}).drop_duplicates()
    pairs = refs[["child", "episode", "CINreferralDate"]].merge(history, on="child")
    since = pairs["CINreferralDate"] - pd.DateOffset(months=12)
    pairs = pairs[(pairs["earlier"] < pairs["CINreferralDate"]) & (pairs["earlier"] >= since)]
    keys = pd.MultiIndex.from_frame(pairs[["child", "episode"]])
    return pd.Series(pd.MultiIndex.from_frame(refs[["child", "episode"]]).isin(keys), index=refs.index)


@_measure("re_referral_share", "Re-referrals within 12 months as a percentage of referrals",
          "DfE C1: re-referrals within 12 months divided by referrals in the year.", unit=PERCENT,
          aggregate="share")
def _re_referral_share(d: _Return) -> pd.DataFrame:
    refs = d.referrals.copy()
    refs["hit"] = _re_referred(d, refs)
    return refs


@_measure("referrals_nfa", "Referrals with no further action",
          "DfE C1 'Referrals resulting in no further action': referrals in the year with ReferralNFA true.",
          status="V")
def _referrals_nfa(d: _Return) -> pd.DataFrame:
    return d.referrals[d.referrals["nfa"]]


@_measure("referrals_nfa_share", "Referrals with no further action as a percentage of referrals",
          "DfE C1: NFA referrals divided by referrals in the year.", unit=PERCENT, aggregate="share",
          status="V")
def _referrals_nfa_share(d: _Return) -> pd.DataFrame:
    refs = d.referrals.copy()
    refs["hit"] = refs["nfa"]
    return refs


@_measure("cin_31_march", "Children in need at 31 March",
          "DfE A1 'Children in need at 31 March': children with an episode referred on or before "
          "31 March and not closed by then (no CINclosureDate, or one after 31 March), excluding "
          "referrals with no further action. Each child counted once.", aggregate="children",
          breakdowns=("primary_need", *_DEMOGRAPHIC))
def _cin_31_march(d: _Return) -> pd.DataFrame:
    return open_episodes(d.episodes, d.end).assign(as_of=d.end)


_rate("cin_31_march_rate", "cin_31_march", "Children in need at 31 March per 10,000 children")


def _in_need(d: _Return) -> pd.DataFrame:
    """Episodes of need: referrals neither NFA nor closed after assessment as not in need."""
    e = d.episodes
    return e[~e["nfa"] & ~e["not_in_need"]]


@_measure("cin_in_year", "Children in need at any point in the year",
          "DfE 'children in need during the year': children with an episode of need open on any day "
          "of the census year; NFA referrals and episodes closed after assessment as not in need "
          "(RC8, RC9) are not episodes of need.", aggregate="children", breakdowns=_DEMOGRAPHIC)
def _cin_in_year(d: _Return) -> pd.DataFrame:
    e = _in_need(d)
    alive = (e["CINreferralDate"] <= d.end) & (e["CINclosureDate"].isna() | (e["CINclosureDate"] >= d.start))
    return e[alive].assign(as_of=d.end)


@_measure("episodes_starting", "Episodes of need starting in the year",
          "DfE 'episodes of need starting': referrals in the year that became an episode of need, i.e. "
          "not NFA and not closed after assessment as not in need (RC8; RC9 from 2022-23).",
          breakdowns=("primary_need", *_DEMOGRAPHIC))
def _episodes_starting(d: _Return) -> pd.DataFrame:
    e = _in_need(d)
    return e[d.in_year(e["CINreferralDate"])].assign(as_of=lambda f: f["CINreferralDate"])


@_measure("episodes_ending", "Episodes of need ending in the year",
          "DfE 'episodes of need ending': episodes of need (see episodes_starting) with CINclosureDate in "
          "the census year.", breakdowns=("reason_for_closure", *_DEMOGRAPHIC))
def _episodes_ending(d: _Return) -> pd.DataFrame:
    e = _in_need(d)
    return e[d.in_year(e["CINclosureDate"])].assign(as_of=lambda f: f["CINclosureDate"])


@_measure("closures", "Episodes closed in the year, by reason for closure",
          "DfE B6 / COLLECT: every CINdetails with CINclosureDate in the census year, NFA and "
          "not-in-need closures included, split by ReasonForClosure.", breakdowns=("reason_for_closure",))
def _closures(d: _Return) -> pd.DataFrame:
    e = d.episodes
    return e[d.in_year(e["CINclosureDate"])].assign(as_of=lambda f: f["CINclosureDate"])


@_measure("assessments_completed", "Assessments completed in the year",
          "DfE C2 'Completed assessments': assessments with AssessmentAuthorisationDate in the census "
          "year. Duration bands are working days from actual start to authorisation (same day = 0).",
          breakdowns=("assessment_duration", *_DEMOGRAPHIC),
          notes_by_year={"2012-13": "initial and core assessments counted together (one each per episode "
                                    "at most); duration bands start in 2013-14"})
def _assessments_completed(d: _Return) -> pd.DataFrame:
    a = d.assessments.copy()
    a["assessment_duration"] = assessment_band(a["days"])
    return a


def _timed(rows: pd.DataFrame, timescale: str) -> pd.DataFrame:
    """Keep the records that can be timed against ``timescale``, with ``days`` and ``hit`` (within it)."""
    t = TIMESCALES[timescale]
    out = rows.copy()
    out["days"] = working_days_between(out[t.start], out[t.end])
    within = within_timescale(out, timescale)
    out = out[within.notna()]
    out["hit"] = within[within.notna()].to_numpy(dtype=bool)
    return out


def _assessments_of(d: _Return, kind: str) -> pd.DataFrame:
    a = d.assessments
    return a[_text(a["kind"]) == kind]


def _continuous_timed(d: _Return) -> pd.DataFrame:
    return _timed(_assessments_of(d, "continuous"), "continuous")


@_measure("assessments_within_45_days_share",
          f"Assessments completed within {TIMESCALES['continuous'].days} working days (%)",
          f"DfE C2: completed assessments lasting {TIMESCALES['continuous'].days} working days or fewer from "
          "actual start to authorisation, as a percentage of completed assessments. Assessments authorised "
          "before they started are left out of both counts.", unit=PERCENT, aggregate="share",
          years=CONTINUOUS_YEARS)
def _within_45(d: _Return) -> pd.DataFrame:
    return _continuous_timed(d)


@_measure("assessment_duration_median", "Median duration of completed assessments",
          "DfE C2: median working days from AssessmentActualStartDate to AssessmentAuthorisationDate "
          "of assessments completed in the year.", unit=DAYS, aggregate="median", years=CONTINUOUS_YEARS,
          status="V")
def _assessment_median(d: _Return) -> pd.DataFrame:
    return _continuous_timed(d)


# 2012-13 initial and core assessments: how many were completed, and what share within the timescale.
for _kind, _within, _from, _indicator in (
        ("initial", "initial_within_10_days_share", "of referral", "NI 59"),
        ("core", "core_within_35_days_share", "of their start", "NI 60")):
    _measure(f"{_kind}_assessments_completed", f"{_kind.capitalize()} assessments completed in the year (2012-13)",
             f"DfE 2012-13: {_kind} assessments with an authorisation date in the census year.",
             years=OLD_YEARS)(lambda d, kind=_kind: _assessments_of(d, kind))
    _measure(_within,
             f"{_kind.capitalize()} assessments completed within {TIMESCALES[_kind].days} working days {_from} (%)",
             f"Working Together 2010 / {_indicator} (2012-13): {_kind} assessments completed in the year within "
             f"{TIMESCALES[_kind].days} working days {_from}, as a percentage of those completed; those "
             "authorised before the clock started are left out.", unit=PERCENT, aggregate="share",
             years=OLD_YEARS)(lambda d, kind=_kind: _timed(_assessments_of(d, kind), kind))
del _kind, _within, _from, _indicator


@_measure("assessment_factors", "Factors identified at the end of assessment",
          "DfE 'Factors identified at the end of assessment' / COLLECT report 6: each AssessmentFactors "
          "code on an assessment completed in the year, counted once per assessment (multi-select, so "
          "the total exceeds assessments).", breakdowns=("factor",), years=CONTINUOUS_YEARS)
def _factors(d: _Return) -> pd.DataFrame:
    f = d.ret.assessment_factors
    done = d.assessments[["child", "episode", "assessment", "as_of"]]
    out = f.merge(done, on=["child", "episode", "assessment"])
    out["factor"] = _text(_col(out, "AssessmentFactors")).fillna(NOT_RECORDED)
    return out.drop_duplicates(["child", "episode", "assessment", "factor"])


@_measure("s47_enquiries", "Section 47 enquiries starting in the year",
          "DfE C4 'Section 47 enquiries': Section47 groups with S47ActualStartDate in the census year; "
          "each enquiry counted separately.", breakdowns=_DEMOGRAPHIC, status="V")
def _s47(d: _Return) -> pd.DataFrame:
    s = d.ret.section47
    return s[d.in_year(s["S47ActualStartDate"])].assign(as_of=lambda f: f["S47ActualStartDate"])


def _icpcs(d: _Return) -> pd.DataFrame:
    s = d.ret.section47
    s = s[d.in_year(s["DateOfInitialCPC"])].copy()
    s["as_of"] = s["DateOfInitialCPC"]
    s["days"] = working_days_between(s["S47ActualStartDate"], s["DateOfInitialCPC"])
    return s


@_measure("icpcs", "Initial child protection conferences in the year",
          "DfE C4 'ICPCs': Section47 groups with DateOfInitialCPC in the census year (conferences "
          "held before the S47 start date are counted here but not timed).", breakdowns=_DEMOGRAPHIC,
          status="V")
def _icpc_count(d: _Return) -> pd.DataFrame:
    return _icpcs(d)


def _icpcs_timed(d: _Return) -> pd.DataFrame:
    return _timed(_icpcs(d), "icpc")


@_measure("icpc_within_15_days_share",
          f"ICPCs held within {TIMESCALES['icpc'].days} working days of the S47 start (%)",
          f"DfE C4: ICPCs in the year held within {TIMESCALES['icpc'].days} working days of "
          "S47ActualStartDate, as a percentage of ICPCs; DfE excludes conferences recorded before the S47 "
          "start.", unit=PERCENT, aggregate="share", status="V")
def _icpc_within_15(d: _Return) -> pd.DataFrame:
    return _icpcs_timed(d)


@_measure("icpc_duration_median", "Median working days from S47 start to ICPC",
          "DfE C4: median working days from S47ActualStartDate to DateOfInitialCPC of ICPCs in the year.",
          unit=DAYS, aggregate="median", status="V")
def _icpc_median(d: _Return) -> pd.DataFrame:
    return _icpcs_timed(d)


@_measure("icpcs_transfer_in", "Transfer-in ICPCs in the year",
          "COLLECT report 7: DateOfInitialCPC recorded on CINdetails (not within a Section47 group) in "
          "the census year - conferences held for children transferring in from another LA.")
def _icpc_transfer(d: _Return) -> pd.DataFrame:
    e = d.episodes
    return e[d.in_year(e["DateOfInitialCPC"])].assign(as_of=lambda f: f["DateOfInitialCPC"])


@_measure("cpp_starts", "Child protection plans starting in the year",
          "DfE D1 / COLLECT report 16: ChildProtectionPlans with CPPstartDate in the census year, by "
          "initial category of abuse.", breakdowns=("initial_category", *_DEMOGRAPHIC), status="V")
def _cpp_starts(d: _Return) -> pd.DataFrame:
    p = d.cp_plans
    return p[d.in_year(p["CPPstartDate"])].assign(as_of=lambda f: f["CPPstartDate"])


def _cpp_starts_with_previous(d: _Return) -> pd.DataFrame:
    """Plans starting in the year, with ``earlier_plans`` (the child's plans in the return that started before)."""
    p = d.cp_plans
    starts = _cpp_starts(d).copy()
    earlier = p.groupby("child")["CPPstartDate"].rank(method="min") - 1
    starts["earlier_plans"] = earlier.loc[starts.index].astype("Int64")
    before = (starts["NumberOfPreviousCPP"].fillna(0) >= 1) | (starts["earlier_plans"] >= 1)
    starts["hit"] = before.fillna(False).to_numpy(dtype=bool)
    return starts


@_measure("cpp_second_or_subsequent", "Child protection plans starting in the year that are a second or later plan",
          "DfE D3 (ex-NI 65): plans starting in the year for a child who had been the subject of a plan "
          "before, at any time: NumberOfPreviousCPP of 1 or more, or an earlier plan in this return.")
def _cpp_second(d: _Return) -> pd.DataFrame:
    s = _cpp_starts_with_previous(d)
    return s[s["hit"]]


@_measure("cpp_second_or_subsequent_share", "Second or subsequent plans as a percentage of plans starting",
          "DfE D3: second or subsequent plans divided by plans starting in the year.", unit=PERCENT,
          aggregate="share")
def _cpp_second_share(d: _Return) -> pd.DataFrame:
    return _cpp_starts_with_previous(d)


def _cpp_ended(d: _Return) -> pd.DataFrame:
    p = d.cp_plans
    p = p[d.in_year(p["CPPendDate"])].copy()
    p["as_of"] = p["CPPendDate"]
    p["cpp_duration"] = cpp_band(p["CPPstartDate"], p["CPPendDate"])
    p["hit"] = (p["cpp_duration"] == CPP_BANDS[-1]).to_numpy(dtype=bool)
    return p


@_measure("cpp_ends", "Child protection plans ending in the year",
          "DfE D7: ChildProtectionPlans with CPPendDate in the census year, by length of plan; a child "
          "with more than one plan ending is counted for each.", breakdowns=("cpp_duration", *_DEMOGRAPHIC),
          status="V")
def _cpp_ends(d: _Return) -> pd.DataFrame:
    return _cpp_ended(d)


@_measure("cpp_ended_2_years_share", "Plans ending in the year that lasted 2 years or more (%)",
          "DfE D7 / COLLECT KI report 10: plans ending in the year that had lasted 2 years or more, as a "
          "percentage of plans ending.", unit=PERCENT, aggregate="share", status="V")
def _cpp_2_years(d: _Return) -> pd.DataFrame:
    return _cpp_ended(d)


@_measure("cpp_31_march", "Children subject of a child protection plan at 31 March",
          "DfE A6 / COLLECT report 3: children with a plan started on or before 31 March and not ended "
          "by then (no CPPendDate or one after 31 March), by initial and latest category of abuse.",
          aggregate="children", breakdowns=("initial_category", "latest_category",
                                            "initial_and_latest_category", *_DEMOGRAPHIC))
def _cpp_31_march(d: _Return) -> pd.DataFrame:
    return open_plans(d.cp_plans, d.end).assign(as_of=d.end)


_rate("cpp_31_march_rate", "cpp_31_march",
      "Children subject of a child protection plan at 31 March per 10,000 children")


# -- pre-proceedings (module 5, 2026-27 on) ----------------------------------------------------
# Module 5 is new in 2026-27 and provisional (see census.yaml), and no DfE definition of a figure
# on it was found: the definitions below are cinqa's, status I. Each names the items it reads in
# ``reads``, so every output can say which of them are still provisional.

_PP_SOURCE = f"cinqa's definition on module 5, {spec.table_nodes()['pre_proceedings'].name}. "


def _pp_measure(name: str, description: str, source: str, reads: tuple[str, ...], **kw: object) -> Callable:
    """Register a pre-proceedings measure: module 5's years, the note on earlier years, the items it reads."""
    return _measure(name, description, _PP_SOURCE + source, years=PRE_PROCEEDINGS_YEARS, reads=reads,
                    note=NOT_COLLECTED_NOTE, **kw)


def _recorded(p: pd.DataFrame, column: str) -> pd.DataFrame:
    """Keep the modules whose yes/no ``column`` is recorded, with ``hit`` its value."""
    flag = _col(p, column, "boolean")
    out = p[flag.notna().to_numpy()].copy()
    out["hit"] = flag[flag.notna()].to_numpy(dtype=bool)
    return out


@_pp_measure("pp_children", "Children in pre-proceedings in the year",
             "Children with a pre-proceedings module whose PPStartDate (the decision to begin "
             "pre-proceedings) falls in the census year, as rule 9005 requires of every module; each "
             "child counted once.", ("PPStartDate",), aggregate="children", breakdowns=_DEMOGRAPHIC)
def _pp_children(d: _Return) -> pd.DataFrame:
    return d.pre_proceedings


@_pp_measure("pp_children_share", "Children in need in the year who were in pre-proceedings (%)",
             "Children in pre-proceedings in the year as a percentage of children in need at any point "
             "in the year (cin_in_year); a child in pre-proceedings with no episode of need in the year "
             "is in neither count.", ("PPStartDate",), unit=PERCENT, aggregate="share")
def _pp_children_share(d: _Return) -> pd.DataFrame:
    kids = _cin_in_year(d).drop_duplicates("child").copy()
    kids["hit"] = kids["child"].isin(d.pre_proceedings["child"]).to_numpy(dtype=bool)
    return kids


@_pp_measure("pp_fgdm_offered_share", "Pre-proceedings with a family group decision-making meeting offered (%)",
             "Pre-proceedings started in the year whose letter before proceedings offered an FGDM "
             "meeting (FGDMMeetingOffer true), as a percentage of those with FGDMMeetingOffer recorded; "
             "a missing answer (rule 9007) is left out of both counts.",
             ("PPStartDate", "FGDMMeetingOffer"), unit=PERCENT, aggregate="share")
def _pp_fgdm_offered(d: _Return) -> pd.DataFrame:
    return _recorded(d.pre_proceedings, "FGDMMeetingOffer")


@_pp_measure("pp_fgdm_held_share", "FGDM meetings offered that were held (%)",
             "Pre-proceedings started in the year with an FGDM meeting offered whose meeting was "
             "facilitated (FGDMMeetingFac true), as a percentage of those offered with FGDMMeetingFac "
             "recorded; a missing answer (query 9010Q) is left out of both counts.",
             ("PPStartDate", "FGDMMeetingOffer", "FGDMMeetingFac"), unit=PERCENT, aggregate="share")
def _pp_fgdm_held(d: _Return) -> pd.DataFrame:
    offered = _recorded(d.pre_proceedings, "FGDMMeetingOffer")
    return _recorded(offered[offered["hit"]].drop(columns="hit"), "FGDMMeetingFac")


@_pp_measure("pp_outcomes", "Pre-proceedings by outcome",
             "Pre-proceedings started in the year, by PPOutcome (code set CS131); those with no outcome "
             "recorded yet are 'Not recorded'.", ("PPStartDate", "PPOutcome"), breakdowns=("pp_outcome",))
def _pp_outcomes(d: _Return) -> pd.DataFrame:
    p = d.pre_proceedings.copy()
    p["pp_outcome"] = _text(_col(p, "PPOutcome")).fillna(NOT_RECORDED)
    return p


@_pp_measure("pp_days_to_step_decision_median", "Median days from pre-proceedings start to the step decision",
             "Median calendar days from PPStartDate to StepDecisionDate (the decision to step up to "
             "proceedings or down, the outcome of pre-proceedings) of pre-proceedings started in the "
             "year; those with no decision yet, or a decision dated before the start, are left out.",
             ("PPStartDate", "StepDecisionDate"), unit=CALENDAR_DAYS, aggregate="median")
def _pp_days_to_step(d: _Return) -> pd.DataFrame:
    p = d.pre_proceedings.copy()
    p["days"] = (_col(p, "StepDecisionDate", "datetime64[s]") - p["as_of"]).dt.days
    return p[(p["days"] >= 0).fillna(False).astype(bool)]


PRE_PROCEEDINGS = tuple(n for n, m in MEASURES.items() if m.years == PRE_PROCEEDINGS_YEARS)
"""The pre-proceedings measures, in registry order."""


# -- helpers that compare.py and collect.py share -----------------------------------------------

def in_census_year(dates: pd.Series, ret: CensusReturn) -> pd.Series:
    """Tell which ``dates`` fall in the census year of ``ret`` (1 April to 31 March, both included)."""
    return ((dates >= ret.census_start) & (dates <= ret.reference_date)).fillna(False).astype(bool)


def within_timescale(rows: pd.DataFrame, timescale: str) -> pd.Series:
    """Tell for each record whether it met :data:`TIMESCALES` ``timescale``.

    A record that cannot be timed (a date missing, or the end before the start) is ``<NA>``: DfE
    leaves such records out of both counts of a timeliness share.
    """
    t = TIMESCALES[timescale]
    days = working_days_between(rows[t.start], rows[t.end])
    return (days <= t.days).astype("boolean").mask(~(days >= 0).fillna(False).astype(bool))


def assessments_within_timescale(assessments: pd.DataFrame) -> pd.Series:
    """Tell for each assessment whether it met the timescale of its kind (``<NA>`` where it cannot be timed)."""
    out = pd.Series(pd.NA, index=assessments.index, dtype="boolean")
    kind = _text(assessments["kind"])
    for k in ASSESSMENT_TIMESCALE:
        mine = (kind == k).to_numpy()
        out[mine] = within_timescale(assessments[mine], k)
    return out


def open_episodes(episodes: pd.DataFrame, on: pd.Timestamp) -> pd.DataFrame:
    """Return the episodes open on date ``on``: referred by then, not closed by then, not NFA."""
    nfa = _col(episodes, "ReferralNFA", "boolean").fillna(False).astype(bool)
    close = episodes["CINclosureDate"]
    return episodes[(episodes["CINreferralDate"] <= on) & (close.isna() | (close > on)) & ~nfa]


def open_plans(plans: pd.DataFrame, on: pd.Timestamp) -> pd.DataFrame:
    """Return the child protection plans open on date ``on``: started by then, not ended by then."""
    end = plans["CPPendDate"]
    return plans[(plans["CPPstartDate"] <= on) & (end.isna() | (end > on))]


def sex_of(children: pd.DataFrame) -> pd.Series:
    """Return each child's sex as M, F or U, mapping GenderCurrent for years before 2024-25."""
    sex = _text(_col(children, "Sex"))
    if "GenderCurrent" in children:
        sex = sex.fillna(_text(children["GenderCurrent"]).map(GENDER_TO_SEX))
    return sex


def ethnic_group(codes: pd.Series) -> pd.Series:
    """Map ethnicity codes to the DfE major groups; invalid codes stay as given."""
    text = _text(codes)
    group = text.map(_ETHNIC_GROUP)
    group = group.fillna(text.str[0].map(_ETHNIC_GROUP).where(text.str.len() == 4))
    return group.fillna(text).fillna(NOT_RECORDED)


def _band(days: pd.Series, limits: Mapping[str, float], before: str) -> pd.Series:
    """Band whole working days by the most each band holds; negative durations are ``before``."""
    d = pd.to_numeric(days, errors="coerce").astype("float")
    edges = [-np.inf, -0.5, *(limit + 0.5 for limit in limits.values())]
    return pd.cut(d, edges, labels=[before, *limits]).astype("object").fillna(NOT_RECORDED)


def assessment_band(days: pd.Series) -> pd.Series:
    """Band working-day durations as DfE table C2 does."""
    return _band(days, ASSESSMENT_BAND_LIMITS, AUTHORISED_BEFORE_START)


def icpc_band(days: pd.Series) -> pd.Series:
    """Band working days from S47 start to initial conference as DfE table C4 does."""
    return _band(days, ICPC_BAND_LIMITS, CONFERENCE_BEFORE_START)


def cpp_band(start: pd.Series, end: pd.Series) -> pd.Series:
    """Band plan lengths as DfE table D7 does (calendar months and years)."""
    out = pd.Series(CPP_BANDS[-1], index=start.index, dtype="object")
    for limit, label in ((pd.DateOffset(years=2), CPP_BANDS[3]), (pd.DateOffset(years=1), CPP_BANDS[2])):
        out = out.mask(end < start + limit, label)
    out = out.mask(end <= start + pd.DateOffset(months=6), CPP_BANDS[1])
    out = out.mask(end <= start + pd.DateOffset(months=3), CPP_BANDS[0])
    return out.mask(start.isna() | end.isna(), NOT_RECORDED)


def age_band(birth: pd.Series, expected: pd.Series, on: pd.Series) -> pd.Series:
    """Band ages on date ``on`` as the DfE does; no birth date but an expected one means unborn."""
    b = pd.to_datetime(birth)
    o = pd.to_datetime(on)
    years = o.dt.year - b.dt.year - ((o.dt.month < b.dt.month) | ((o.dt.month == b.dt.month) & (o.dt.day < b.dt.day)))
    d = years.astype("float")
    labels = list(AGE_BANDS[1:])
    out = pd.cut(d, [-0.5, 0.5, 4.5, 9.5, 15.5, np.inf], labels=labels, right=False).astype("object")
    out = out.mask(o.notna() & (b > o), AGE_BANDS[0])
    out = out.mask(b.isna() & pd.to_datetime(expected).notna(), AGE_BANDS[0])
    return out.fillna(NOT_RECORDED)


# -- evaluation -----------------------------------------------------------------------------------

def _population_for(population: float | Mapping[str, float] | None, year: str) -> float | None:
    if population is None:
        return None
    value = population.get(year) if isinstance(population, Mapping) else population
    if value is None:
        return None
    if not isinstance(value, (int, float, np.number)) or value <= 0:
        raise CinqaError(f"population for {year} must be a positive number of children, not {value!r}")
    return float(value)


def _with_breakdowns(d: _Return, rows: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """Attach the columns of breakdowns ``names`` to a measure's records."""
    rows = rows.copy()
    for name in names:
        b = BREAKDOWNS[name]
        if b.level == "unit" or name in rows:
            continue
        if b.level == "episode":
            at = pd.MultiIndex.from_arrays([rows["child"], rows["episode"]])
            rows[name] = d.episode_attributes[name].reindex(at).to_numpy()
        elif name == "age":
            kids = d.child_attributes
            born = kids["PersonBirthDate"].reindex(rows["child"]).set_axis(rows.index)
            due = kids["ExpectedPersonBirthDate"].reindex(rows["child"]).set_axis(rows.index)
            rows["age"] = age_band(born, due, rows["as_of"])
        else:
            rows[name] = d.child_attributes[name].reindex(rows["child"]).to_numpy()
    return rows


def _aggregate(m: Measure, rows: pd.DataFrame, by: str | None = None) -> pd.Series:
    """Aggregate a measure's records, in total (index ``ALL``) or per category of column ``by``."""
    keys = rows[by].astype("object") if by else pd.Series(ALL, index=rows.index, dtype="object")
    if m.aggregate == "children":
        out = rows["child"].groupby(keys).nunique()
    elif m.aggregate == "share":
        out = 100 * rows["hit"].astype(float).groupby(keys).mean()
    elif m.aggregate == "median":
        out = pd.to_numeric(rows["days"], errors="coerce").astype(float).groupby(keys).median()
    else:
        out = keys.groupby(keys).size()
    return out.astype(float)


def _evaluate(m: Measure, d: _Return, population: float | None) -> list[tuple[str, str, float]]:
    rows = m.records(d)
    scale = 10_000 / population if m.per_population and population else 1.0
    empty = np.nan if m.aggregate in ("share", "median") else 0.0
    total = _aggregate(m, rows).get(ALL, empty)
    out = [(ALL, ALL, total * scale)]
    names = [b for b in m.breakdowns if d.year in BREAKDOWNS[b].years]
    split = _with_breakdowns(d, rows, names)
    for name in names:
        values = _aggregate(m, split, name)
        values.index = values.index.map(str)
        for cat in dict.fromkeys([*BREAKDOWNS[name].categories(d.year), *values.index]):
            out.append((name, cat, values.get(cat, empty) * scale))
    return out


def measures(ret: CensusReturn, population: float | Mapping[str, float] | None = None, *,
             previous: CensusReturn | None = None, names: Iterable[str] | None = None) -> pd.DataFrame:
    """Compute the headline measures of ``ret`` as a tidy table.

    ``population`` (children aged under 18 in the LA, or a mapping of census year to that number)
    adds the rates per 10,000. ``previous`` (the LA's return for the year before) lets re-referrals
    see referrals that closed before this census year. Measures that do not exist in the return's
    year are left out, so a missing row means "not applicable", a zero means "none".
    """
    if not isinstance(ret, CensusReturn):
        raise CinqaError(f"measures() needs a CensusReturn, not {type(ret).__name__}")
    pop = _population_for(population, ret.year)
    d = _Return(ret, previous)
    chosen = list(MEASURES) if names is None else list(names)
    unknown = [n for n in chosen if n not in MEASURES]
    if unknown:
        raise CinqaError(f"unknown measure(s) {', '.join(unknown)}; see cinqa.measures.definitions()")
    records = []
    for name in chosen:
        m = MEASURES[name]
        if ret.year not in m.years or (m.per_population and pop is None):
            continue
        for breakdown, category, value in _evaluate(m, d, pop):
            records.append((name, breakdown, category, ret.year, value, m.unit))
    out = pd.DataFrame.from_records(records, columns=list(MEASURE_COLUMNS))
    out["value"] = out["value"].astype("float64")
    return out


def measure_rows(ret: CensusReturn, name: str, breakdown: str = ALL, category: str = ALL, *,
                 previous: CensusReturn | None = None) -> pd.DataFrame:
    """Return the records behind one figure of :func:`measures` (the children to look at).

    For a share the rows are the denominator, with ``hit`` marking the numerator; for a median
    ``days`` holds each record's duration.
    """
    if name not in MEASURES:
        raise CinqaError(f"unknown measure {name!r}; see cinqa.measures.definitions()")
    m = MEASURES[name]
    if ret.year not in m.years:
        raise CinqaError(f"measure {name!r} does not exist in {ret.year} ({spec.describe_years(m.years)})")
    d = _Return(ret, previous)
    rows = m.records(d)
    if breakdown != ALL:
        if breakdown not in m.breakdowns:
            raise CinqaError(f"measure {name!r} has no breakdown {breakdown!r}; it has {', '.join(m.breakdowns)}")
        rows = _with_breakdowns(d, rows, [breakdown])
        rows = rows[rows[breakdown].astype("object") == category]
    first = [c for c in ("LAchildID", "child", "episode") if c in rows]
    drop = {"as_of", "nfa", "not_in_need"}
    rest = [c for c in rows if c not in first and c not in drop]
    return rows[first + rest].reset_index(drop=True)


@cache
def _item(column: str) -> tuple[spec.Node, spec.Node]:
    """Return the element that fills ``column`` and the element of its table (the module)."""
    for table, module in spec.table_nodes().items():
        for leaf in spec.value_columns(table):
            if leaf.column == column:
                return leaf, module
    raise KeyError(column)


def provisional(name: str, breakdown: str = ALL, category: str = ALL) -> str:
    """Say which census facts behind a figure are provisional (status I or U in census.yaml); "" if none.

    The facts are the module and items the measure ``reads`` and, for a breakdown by a code set,
    the code counted in ``category``.
    """
    m = MEASURES[name]
    facts: dict[str, str] = {}
    for column in m.reads:
        leaf, module = _item(column)
        facts[f"module {module.name}"] = module.status
        facts[" ".join(filter(None, (column, leaf.item)))] = leaf.status
    codeset = BREAKDOWNS[breakdown].codeset if breakdown != ALL else None
    if codeset and category in spec.codes(codeset):
        facts[f"code {category}"] = spec.code_status(codeset, category)
    shaky = [f"{fact} ({status})" for fact, status in facts.items() if status != "V"]
    return f"provisional: {', '.join(shaky)}" if shaky else ""


def _describe_years(years: frozenset[str]) -> str:
    """Spell a measure's years, marking those read provisionally (after the supported years)."""
    later = years - frozenset(spec.SUPPORTED_YEARS)
    if not later:
        return spec.describe_years(years)
    which = "" if later == years else f"{spec.describe_years(later)} "
    return f"{spec.describe_years(years)} ({which}provisional)"


def labelled(tidy: pd.DataFrame) -> pd.DataFrame:
    """Lay out figures of :func:`measures` to read: description, labelled category, value, unit, provisional facts.

    A category of a breakdown by a code set reads "code label" with the label from census.yaml.
    """
    desc = {m.name: m.description for m in MEASURES.values()}
    out = tidy.copy()
    out.insert(0, "description", out["measure"].map(desc))
    out["provisional"] = [provisional(*k) for k in zip(out["measure"], out["breakdown"], out["category"])]
    labels = {b.name: spec.code_labels(b.codeset) for b in BREAKDOWNS.values() if b.codeset}
    out["category"] = [f"{c} {labels[b][c]}" if c in labels.get(b, {}) else c
                       for b, c in zip(out["breakdown"], out["category"])]
    columns = ["description", "breakdown", "category", "census_year", "value", "unit", "provisional"]
    return out[columns].reset_index(drop=True)


def definitions() -> pd.DataFrame:
    """List every measure with its description, unit, years, breakdowns, source, notes and provisional facts."""
    return pd.DataFrame([{
        "measure": m.name,
        "description": m.description,
        "unit": m.unit,
        "years": _describe_years(m.years),
        "breakdowns": ", ".join(m.breakdowns),
        "needs_population": m.per_population,
        "status": m.status,
        "source": m.source,
        "note": "; ".join([m.note, *(f"{y}: {t}" for y, t in m.notes_by_year.items())]).strip("; "),
        "provisional": provisional(m.name),
    } for m in MEASURES.values()])
