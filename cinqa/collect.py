"""The views an LA sees in DfE COLLECT after upload, computed from a census return.

Each view is modelled on a report of the DfE "Children in need census COLLECT report
specifications" (2019-20 edition numbering). The specification's column layouts were not
available, so the definitions follow DfE's published statistics (see
``shared/collect-reports.md``); thresholds and bands live in the constants below so they can be
corrected in one place. Views are plain DataFrames; ``VIEWS`` names them for notebooks and the
report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.returns import CensusReturn
from cinqa.workdays import working_days_between

ASSESSMENT_BANDS: tuple[tuple[str, float, float], ...] = (
    ("Same day", 0, 0),
    ("1-10", 1, 10),
    ("11-20", 11, 20),
    ("21-30", 21, 30),
    ("31-40", 31, 40),
    ("41-45", 41, 45),
    ("46-50", 46, 50),
    ("51-60", 51, 60),
    ("61+", 61, np.inf),
)
"""Working-day bands of DfE statistics table C2 (completed assessments by duration)."""

ASSESSMENT_TIMESCALE: dict[str, int] = {"continuous": 45, "initial": 10, "core": 35}
"""Working days allowed per assessment kind (2012-13 initial and core figures are provisional)."""

ICPC_BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-10", 0, 10),
    ("11-15", 11, 15),
    ("16-20", 16, 20),
    ("21+", 21, np.inf),
)
"""Working-day bands of DfE statistics table C4 (S47 start to initial conference)."""

ICPC_TIMESCALE = 15
FIRST_REVIEW_MONTHS = 3
LATER_REVIEW_MONTHS = 6
LONG_PLAN_YEARS = 2

CATEGORY_TOTAL = "Total"


def _in_period(dates: pd.Series, ret: CensusReturn) -> pd.Series:
    return dates.between(ret.census_start, ret.reference_date).fillna(False).astype(bool)


def _band(days: pd.Series, bands: tuple[tuple[str, float, float], ...]) -> pd.Series:
    labels = [b[0] for b in bands]
    values = days.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    out = np.full(len(values), None, dtype=object)
    for label, lo, hi in bands:
        out[(values >= lo) & (values <= hi)] = label
    return pd.Series(pd.Categorical(out, categories=labels), index=days.index)


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    """Return a column, or an all-missing one where the year does not collect it."""
    if name in df.columns:
        return df[name]
    return pd.Series(pd.NaT, index=df.index, dtype="datetime64[s]")


def _codes_frame(counts: pd.Series, codeset: str, year: str, total_name: str) -> pd.DataFrame:
    """Lay out counts per code in code-set order with labels, keeping any invalid codes seen."""
    labels = spec.code_labels(codeset)
    valid = list(spec.codes(codeset, year))
    extra = [c for c in counts.index if c not in valid]
    order = valid + extra
    frame = pd.DataFrame({
        "code": order,
        "description": [labels.get(c, "(not a valid code)") for c in order],
        total_name: [int(counts.get(c, 0)) for c in order],
    })
    return frame


def _percent(part: pd.Series | float, whole: float) -> pd.Series | float:
    if not whole:
        return part * np.nan
    return np.round(part * 100.0 / whole, 1)


# --- assessments (COLLECT reports 1 and 2) -------------------------------------------------


def assessment_working_days(ret: CensusReturn) -> pd.DataFrame:
    """List the assessments authorised in the census year with their duration in working days."""
    a = ret.assessments
    done = a[_in_period(_column(a, "AssessmentAuthorisationDate"), ret)]
    ep = ret.episodes[["child", "episode", "CINreferralDate"]]
    out = done.merge(ep, on=["child", "episode"], how="left")
    days = working_days_between(out["AssessmentActualStartDate"], out["AssessmentAuthorisationDate"])
    limit = out["kind"].astype(str).map(ASSESSMENT_TIMESCALE).astype("Int64")
    return pd.DataFrame({
        "LAchildID": out["LAchildID"],
        "child": out["child"],
        "episode": out["episode"],
        "assessment": out["assessment"],
        "kind": out["kind"],
        "CINreferralDate": out["CINreferralDate"],
        "AssessmentActualStartDate": out["AssessmentActualStartDate"],
        "AssessmentAuthorisationDate": out["AssessmentAuthorisationDate"],
        "working_days": days,
        "band": _band(days, ASSESSMENT_BANDS),
        "over_timescale": (days > limit).astype("boolean"),
    }).reset_index(drop=True)


def assessment_summary(ret: CensusReturn) -> pd.DataFrame:
    """Count completed assessments per working-day band, with shares, per assessment kind."""
    listed = assessment_working_days(ret)
    rows = [b[0] for b in ASSESSMENT_BANDS] + ["Authorised before start", "Start date missing", "Total"]
    kinds = [k for k in ("continuous", "initial", "core") if (listed["kind"] == k).any()] or ["continuous"]
    out = pd.DataFrame(index=pd.Index(rows, name="working days"))
    for kind in kinds:
        sub = listed[listed["kind"] == kind]
        counts = sub["band"].value_counts().reindex(rows[: len(ASSESSMENT_BANDS)], fill_value=0)
        counts["Authorised before start"] = int((sub["working_days"] < 0).sum())
        counts["Start date missing"] = int(sub["working_days"].isna().sum())
        counts["Total"] = len(sub)
        name = "assessments" if kinds == ["continuous"] else f"{kind} assessments"
        out[name] = counts.astype("int64")
        out[f"{name} %"] = _percent(counts.astype(float), float(len(sub)))
    return out


# --- S47 and initial conferences (COLLECT reports 7 and 8) ----------------------------------


def icpc_working_days(ret: CensusReturn) -> pd.DataFrame:
    """List S47 enquiries whose initial conference fell in the census year, timed in working days."""
    s = ret.section47
    held = s[_in_period(s["DateOfInitialCPC"], ret)]
    days = working_days_between(held["S47ActualStartDate"], held["DateOfInitialCPC"])
    return pd.DataFrame({
        "LAchildID": held["LAchildID"],
        "child": held["child"],
        "episode": held["episode"],
        "s47": held["s47"],
        "S47ActualStartDate": held["S47ActualStartDate"],
        "DateOfInitialCPC": held["DateOfInitialCPC"],
        "working_days": days,
        "band": _band(days, ICPC_BANDS),
    }).reset_index(drop=True)


def _icpc_bands(days: pd.Series, label: str) -> pd.DataFrame:
    rows = [b[0] for b in ICPC_BANDS]
    counts = _band(days, ICPC_BANDS).value_counts().reindex(rows, fill_value=0)
    counts["Conference before start (excluded)"] = int((days < 0).sum())
    counts["Start date missing"] = int(days.isna().sum())
    counts["Total"] = len(days)
    timed = len(days) - counts["Conference before start (excluded)"] - counts["Start date missing"]
    out = pd.DataFrame({label: counts.astype("int64")})
    out[f"{label} %"] = _percent(counts.astype(float), float(timed))
    out.loc[["Conference before start (excluded)", "Start date missing", "Total"], f"{label} %"] = np.nan
    out.index.name = "working days"
    return out


def icpc_summary(ret: CensusReturn) -> pd.DataFrame:
    """Count initial conferences per working-day band from the S47 start.

    As in DfE statistics, conferences dated before their S47 started are excluded from the
    bands but kept in the total; shares are of the conferences that could be timed.
    """
    return _icpc_bands(icpc_working_days(ret)["working_days"], "conferences")


def transfer_in_icpc_summary(ret: CensusReturn) -> pd.DataFrame:
    """Count initial conferences recorded on the episode (transfer-in) per working-day band.

    These conferences have no S47 of their own, so they are timed from the referral date.
    """
    e = ret.episodes
    held = e[_in_period(e["DateOfInitialCPC"], ret)]
    days = working_days_between(held["CINreferralDate"], held["DateOfInitialCPC"])
    return _icpc_bands(days, "conferences")


# --- child protection plans (COLLECT reports 3, 10, 11, 12, 16) -----------------------------


def _category_order(series: pd.Series, year: str) -> list[str]:
    valid = list(spec.codes("category_of_abuse", year))
    return valid + sorted({str(v) for v in series.dropna().astype(str)} - set(valid))


def plans_open_at_31_march(ret: CensusReturn) -> pd.DataFrame:
    """Return the child protection plans open at the reference date."""
    p = ret.cp_plans
    ref = ret.reference_date
    open_ = (p["CPPstartDate"] <= ref) & (p["CPPendDate"].isna() | (p["CPPendDate"] > ref))
    return p[open_.fillna(False).astype(bool)]


def cpp_at_31_march(ret: CensusReturn) -> pd.DataFrame:
    """Cross-tabulate plans open at 31 March by initial (rows) and latest (columns) category of abuse."""
    p = plans_open_at_31_march(ret)
    order = _category_order(pd.concat([p["InitialCategoryOfAbuse"].astype("object"),
                                       p["LatestCategoryOfAbuse"].astype("object")]), ret.year)
    initial = p["InitialCategoryOfAbuse"].astype("object").fillna("(missing)")
    latest = p["LatestCategoryOfAbuse"].astype("object").fillna("(missing)")
    if initial.eq("(missing)").any() or latest.eq("(missing)").any():
        order = order + ["(missing)"]
    table = pd.crosstab(pd.Categorical(initial, categories=order), pd.Categorical(latest, categories=order),
                        dropna=False).reindex(index=order, columns=order, fill_value=0)
    table[CATEGORY_TOTAL] = table.sum(axis=1)
    table.loc[CATEGORY_TOTAL] = table.sum(axis=0)
    table.index.name = "initial category"
    table.columns.name = "latest category"
    return table.astype("int64")


def started_cpp_by_category(ret: CensusReturn) -> pd.DataFrame:
    """Count plans starting in the census year by initial category of abuse."""
    p = ret.cp_plans
    started = p[_in_period(p["CPPstartDate"], ret)]
    counts = started["InitialCategoryOfAbuse"].astype("object").value_counts()
    out = _codes_frame(counts, "category_of_abuse", ret.year, "plans started")
    out["%"] = _percent(out["plans started"].astype(float), float(len(started)))
    return out


def cpp_two_years_or_more(ret: CensusReturn) -> pd.DataFrame:
    """List plans that ended in the year after two years or more, or are open at 31 March after two years."""
    p = ret.cp_plans
    ref = ret.reference_date
    ended = _in_period(p["CPPendDate"], ret)
    open_now = p.index.isin(plans_open_at_31_march(ret).index)
    until = p["CPPendDate"].where(ended, ref)
    long_ = (until >= p["CPPstartDate"] + pd.DateOffset(years=LONG_PLAN_YEARS)).fillna(False).astype(bool)
    keep = long_ & (ended | open_now)
    sel = p[keep]
    return pd.DataFrame({
        "LAchildID": sel["LAchildID"],
        "child": sel["child"],
        "episode": sel["episode"],
        "cpp": sel["cpp"],
        "CPPstartDate": sel["CPPstartDate"],
        "CPPendDate": sel["CPPendDate"],
        "status": np.where(ended[keep], "ended in year", "open at 31 March"),
        "days": (until[keep] - sel["CPPstartDate"]).dt.days.astype("Int64"),
    }).sort_values(["child", "episode", "cpp"]).reset_index(drop=True)


def cpp_reviews_within_timescales(ret: CensusReturn) -> pd.DataFrame:
    """Judge the review timeliness of each plan open at 31 March that has lasted three months.

    A plan is on time when its first review came within three months of the start, each later
    review within six months of the one before, and no review was overdue at 31 March. This
    follows the former NI 67 definition (provisional until the COLLECT specification is seen).

    A return usually holds only the reviews of its own year. For a plan whose first review fell
    due before 1 April and whose earlier reviews are not in the return, the first review of the
    year is judged against 1 April plus six months: on-time reviews leave no six-month gap.
    """
    ref = ret.reference_date
    plans = plans_open_at_31_march(ret)
    plans = plans[plans["CPPstartDate"] + pd.DateOffset(months=FIRST_REVIEW_MONTHS) <= ref]
    keys = ["child", "episode", "cpp"]
    reviews = ret.cp_reviews.sort_values(keys + ["CPPreviewDate"])
    grouped = {k: g["CPPreviewDate"].dropna().tolist() for k, g in reviews.groupby(keys)}
    rows = []
    for plan in plans.itertuples(index=False):
        dates = [d for d in grouped.get((plan.child, plan.episode, plan.cpp), []) if d <= ref]
        due = plan.CPPstartDate + pd.DateOffset(months=FIRST_REVIEW_MONTHS)
        if due < ret.census_start and not any(d < ret.census_start for d in dates):
            due = ret.census_start + pd.DateOffset(months=LATER_REVIEW_MONTHS)
        late = None
        for d in dates:
            if d > due:
                late = f"review of {d:%d/%m/%Y} was due by {due:%d/%m/%Y}"
                break
            due = d + pd.DateOffset(months=LATER_REVIEW_MONTHS)
        if late is None and due < ref:
            late = f"review due by {due:%d/%m/%Y} not held by 31 March"
        rows.append({
            "LAchildID": plan.LAchildID, "child": plan.child, "episode": plan.episode, "cpp": plan.cpp,
            "CPPstartDate": plan.CPPstartDate, "reviews": len(dates),
            "last review": dates[-1] if dates else pd.NaT,
            "within timescales": late is None, "reason": late or "",
        })
    cols = ["LAchildID", "child", "episode", "cpp", "CPPstartDate", "reviews", "last review",
            "within timescales", "reason"]
    out = pd.DataFrame(rows, columns=cols)
    out["last review"] = pd.to_datetime(out["last review"]).astype("datetime64[s]")
    out["within timescales"] = out["within timescales"].astype("boolean")
    return out


def children_more_than_one_cpp(ret: CensusReturn) -> pd.DataFrame:
    """List plans starting in the year for children who had been on a plan before.

    A previous plan is one counted in NumberOfPreviousCPP or an earlier plan in this return.
    """
    p = ret.cp_plans.sort_values(["child", "CPPstartDate"])
    earlier = p.groupby("child").cumcount()
    started = _in_period(p["CPPstartDate"], ret)
    previous = p["NumberOfPreviousCPP"].fillna(0)
    keep = started & ((previous >= 1) | (earlier >= 1)).fillna(False).astype(bool)
    sel = p[keep]
    return pd.DataFrame({
        "LAchildID": sel["LAchildID"],
        "child": sel["child"],
        "episode": sel["episode"],
        "cpp": sel["cpp"],
        "CPPstartDate": sel["CPPstartDate"],
        "NumberOfPreviousCPP": sel["NumberOfPreviousCPP"],
        "earlier plans in return": earlier[keep].astype("int64"),
    }).sort_values(["child", "episode", "cpp"]).reset_index(drop=True)


# --- referrals and activity (COLLECT reports 6, 14, 15, 17) -------------------------------


def referrals_in_year(ret: CensusReturn) -> pd.DataFrame:
    """Return the episodes whose referral date falls in the census year."""
    e = ret.episodes
    return e[_in_period(e["CINreferralDate"], ret)]


def referral_source(ret: CensusReturn) -> pd.DataFrame:
    """Count referrals in the year by source, with shares and how many ended in no further action."""
    refs = referrals_in_year(ret)
    if "ReferralSource" not in refs.columns:
        return pd.DataFrame(columns=["code", "description", "referrals", "%", "of which NFA"])
    source = refs["ReferralSource"].astype("object").fillna("(missing)")
    counts = source.value_counts()
    nfa = source[refs["ReferralNFA"].fillna(False).astype(bool)].value_counts()
    out = _codes_frame(counts, "referral_source", ret.year, "referrals")
    if "(missing)" in counts.index:
        out.loc[out["code"] == "(missing)", "description"] = "Not recorded"
    out["%"] = _percent(out["referrals"].astype(float), float(len(refs)))
    out["of which NFA"] = [int(nfa.get(c, 0)) for c in out["code"]]
    total = {"code": CATEGORY_TOTAL, "description": "", "referrals": len(refs),
             "%": 100.0 if len(refs) else np.nan, "of which NFA": int(nfa.sum())}
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


def completed_assessments(ret: CensusReturn) -> pd.DataFrame:
    """Return the assessments authorised in the census year."""
    a = ret.assessments
    return a[_in_period(_column(a, "AssessmentAuthorisationDate"), ret)]


def factors_at_assessment(ret: CensusReturn) -> pd.DataFrame:
    """Count the factors identified at assessments completed in the year.

    An assessment may record several factors, so the shares add up to more than 100%.
    """
    done = completed_assessments(ret)
    f = ret.assessment_factors
    if "AssessmentFactors" not in f.columns:
        return pd.DataFrame(columns=["code", "description", "assessments", "%"])
    keys = ["child", "episode", "assessment"]
    found = f.merge(done[keys], on=keys, how="inner").drop_duplicates(keys + ["AssessmentFactors"])
    counts = found["AssessmentFactors"].astype("object").value_counts()
    out = _codes_frame(counts, "assessment_factor", ret.year, "assessments")
    out["%"] = _percent(out["assessments"].astype(float), float(len(done)))
    return out


def _by_month(dates: pd.Series, ret: CensusReturn) -> list[int]:
    months = pd.period_range(ret.census_start, periods=12, freq="M")
    inside = dates[_in_period(dates, ret)]
    counts = inside.dt.to_period("M").value_counts()
    return [int(counts.get(m, 0)) for m in months]


def starting_ending_by_month(ret: CensusReturn) -> pd.DataFrame:
    """Count referrals, assessments, S47s, conferences and plans starting and ending in each month."""
    e, a, s, c = ret.episodes, ret.assessments, ret.section47, ret.cp_plans
    nfa = e["ReferralNFA"].fillna(False).astype(bool)
    series: dict[str, pd.Series] = {
        "Referrals": e["CINreferralDate"],
        "Referrals with no further action": e["CINreferralDate"][nfa],
        "Episodes closed": e["CINclosureDate"],
        "Assessments started": _column(a, "AssessmentActualStartDate"),
        "Assessments completed": _column(a, "AssessmentAuthorisationDate"),
        "S47 enquiries started": s["S47ActualStartDate"],
        "Initial conferences": pd.concat([s["DateOfInitialCPC"], e["DateOfInitialCPC"]]),
    }
    if "CINPlanStartDate" in ret.cin_plans.columns:
        series["CIN plans started"] = ret.cin_plans["CINPlanStartDate"]
        series["CIN plans ended"] = ret.cin_plans["CINPlanEndDate"]
    series["Child protection plans started"] = c["CPPstartDate"]
    series["Child protection plans ended"] = c["CPPendDate"]
    months = [m.strftime("%b %y") for m in pd.period_range(ret.census_start, periods=12, freq="M")]
    out = pd.DataFrame({name: _by_month(d, ret) for name, d in series.items()}, index=months).T
    out[CATEGORY_TOTAL] = out.sum(axis=1)
    out.index.name = "activity"
    return out.astype("int64")


def cin_at_31_march(ret: CensusReturn) -> pd.DataFrame:
    """Return the episodes open at the reference date (no-further-action referrals excluded)."""
    e = ret.episodes
    ref = ret.reference_date
    open_ = (e["CINreferralDate"] <= ref) & (e["CINclosureDate"].isna() | (e["CINclosureDate"] > ref))
    open_ = open_.fillna(False).astype(bool) & ~e["ReferralNFA"].fillna(False).astype(bool)
    return e[open_]


# --- key indicators (COLLECT report 9) -----------------------------------------------------

KEY_MEASURES: tuple[str, ...] = (
    "referrals", "referrals_nfa", "re_referral_share", "assessments_completed", "assessments_within_45_days_share",
    "initial_assessments_completed", "initial_within_10_days_share", "core_assessments_completed",
    "core_within_35_days_share", "assessment_duration_median", "s47_enquiries", "icpcs",
    "icpc_within_15_days_share", "icpcs_transfer_in", "cin_31_march", "cpp_31_march", "cpp_starts",
    "cpp_second_or_subsequent_share", "cpp_ends", "cpp_ended_2_years_share",
)
"""The headline measures (``cinqa.measures``) shown as key indicators, in order; a year shows those it has."""

_UNITS = {"percent": "%"}


def key_indicators(ret: CensusReturn) -> pd.DataFrame:
    """List the headline figures, one row each: indicator, value, unit and measure name.

    The figures are the Department's headline measures from :mod:`cinqa.measures`, so they agree
    with the year-on-year comparison; review timeliness (not a published measure) is added from
    :func:`cpp_reviews_within_timescales`.
    """
    from cinqa.measures import ALL, definitions, measures

    found = measures(ret)
    found = found[found["breakdown"] == ALL].set_index("measure")
    described = definitions().set_index("measure")["description"]
    rows = [("Children in the return", float(len(ret.children)), "count", "children")]
    for name in KEY_MEASURES:
        if name in found.index:
            unit = str(found.at[name, "unit"])
            rows.append((str(described[name]), float(found.at[name, "value"]), _UNITS.get(unit, unit), name))
    reviews = cpp_reviews_within_timescales(ret)
    rows.append(("Plans open at 31 March for 3 months or more reviewed within timescales (provisional)",
                 _percent(float(reviews["within timescales"].sum()), float(len(reviews))), "%",
                 "cpp_reviews_within_timescales_share"))
    return pd.DataFrame(rows, columns=["indicator", "value", "unit", "measure"]).astype({"value": float})


# --- the summary (COLLECT report 17) and the registry -------------------------------------


def summary(ret: CensusReturn) -> pd.DataFrame:
    """Count the return's children, episodes and activity in and at the end of the year."""
    rows = {
        "Children": len(ret.children),
        "Episodes": len(ret.episodes),
        "Episodes open at 31 March": len(cin_at_31_march(ret)),
        "Referrals in year": len(referrals_in_year(ret)),
        "Assessments": len(ret.assessments),
        "Assessments completed in year": len(completed_assessments(ret)),
        "S47 enquiries": len(ret.section47),
        "CIN plans": len(ret.cin_plans),
        "Child protection plans": len(ret.cp_plans),
        "Child protection plans open at 31 March": len(plans_open_at_31_march(ret)),
        "Child protection plan reviews": len(ret.cp_reviews),
    }
    return pd.DataFrame({"count": rows}).rename_axis("measure")


@dataclass(frozen=True)
class View:
    """A COLLECT view: how to build it and what to call it."""

    name: str
    title: str
    report: int
    build: Callable[[CensusReturn], pd.DataFrame]
    child_level: bool = False
    note: str = ""


VIEWS: dict[str, View] = {v.name: v for v in (
    View("key_indicators", "Key indicators", 9, key_indicators),
    View("summary", "Summary", 17, summary),
    View("assessment_summary", "Assessments working days summary", 2, assessment_summary,
         note="Assessments authorised in the year, working days from actual start to authorisation."),
    View("assessment_working_days", "Assessments working days list", 1, assessment_working_days,
         child_level=True),
    View("icpc_summary", "ICPC working days summary", 8, icpc_summary,
         note="Initial conferences in the year, working days from the S47 start; 15 working days is in time."),
    View("transfer_in_icpc_summary", "Transfer-in ICPC working days summary", 7, transfer_in_icpc_summary,
         note="Conferences recorded on the episode rather than an S47, timed from the referral date."),
    View("cpp_at_31_march", "CPP at 31 March by initial and latest category of abuse", 3, cpp_at_31_march),
    View("started_cpp_by_category", "Started CPP in year - category of abuse", 16, started_cpp_by_category),
    View("factors_at_assessment", "Factors at assessment", 6, factors_at_assessment,
         note="Assessments authorised in the year; one assessment can record several factors."),
    View("referral_source", "Referral source", 14, referral_source),
    View("starting_ending_by_month", "Referrals, assessments and plans starting and ending by month", 15,
         starting_ending_by_month),
    View("cpp_two_years_or_more", "KI children - CPP 2 years or more", 10, cpp_two_years_or_more,
         child_level=True),
    View("cpp_reviews_within_timescales", "KI children - CPPs reviewed within timescales", 11,
         cpp_reviews_within_timescales, child_level=True,
         note="First review within 3 months of the start, later reviews within 6 months (provisional rule)."),
    View("children_more_than_one_cpp", "KI children - more than one CPP", 12, children_more_than_one_cpp,
         child_level=True),
)}
"""Every COLLECT view by name, in the order the report shows them."""


def build_view(ret: CensusReturn, name: str) -> pd.DataFrame:
    """Build the COLLECT view called ``name`` for a return."""
    try:
        view = VIEWS[name]
    except KeyError:
        raise KeyError(f"no COLLECT view {name!r}; choose from {', '.join(VIEWS)}") from None
    return view.build(ret)
