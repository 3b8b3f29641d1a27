"""The views an LA sees in DfE COLLECT after upload, computed from a census return.

Each view is modelled on a report of the DfE "Children in need census COLLECT report
specifications" (2019-20 edition numbering). The specification's column layouts were not
available, so the definitions follow DfE's published statistics (see
``shared/collect-reports.md``). Where a view shows a figure that a headline measure also computes,
it is built from that measure's records (:func:`cinqa.measures.measure_rows`), and its bands,
timescales and census window are the ones :mod:`cinqa.measures` defines, so the two cannot
disagree. Views are plain DataFrames; ``VIEWS`` names them for notebooks and the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.measures import (ALL, ASSESSMENT_BANDS, ASSESSMENT_TIMESCALE, AUTHORISED_BEFORE_START,
                            CONFERENCE_BEFORE_START, CPP_BANDS, FIRST_REVIEW_MONTHS, ICPC_BANDS,
                            LATER_REVIEW_MONTHS, MEASURES, NOT_RECORDED, TIMESCALES, assessments_within_timescale,
                            cpp_band, definitions, icpc_band, in_census_year, measure_rows, measures)
from cinqa.returns import CensusReturn
from cinqa.workdays import working_days_between

CATEGORY_TOTAL = "Total"


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    """Return a column, or an all-missing one where the year does not collect it."""
    if name in df.columns:
        return df[name]
    return pd.Series(pd.NaT, index=df.index, dtype="datetime64[s]")


def _codes_frame(counts: pd.Series, codeset: str, year: str, total_name: str) -> pd.DataFrame:
    """Lay out counts per code in code-set order with labels, keeping any invalid or missing codes seen."""
    labels = {**spec.code_labels(codeset), NOT_RECORDED: ""}
    valid = list(spec.codes(codeset, year))
    extra = [c for c in counts.index if c not in valid and c != NOT_RECORDED]
    order = valid + extra + ([NOT_RECORDED] if NOT_RECORDED in counts.index else [])
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
    """List the assessments authorised in the census year with their duration in working days.

    ``band`` is the DfE C2 band of the duration from actual start to authorisation;
    ``over_timescale`` judges each assessment against its kind's timescale (2012-13 initial
    assessments from the referral date), ``<NA>`` where it cannot be timed.
    """
    done = measure_rows(ret, "assessments_completed")
    listed = done[["LAchildID", "child", "episode", "assessment", "kind", "CINreferralDate",
                   "AssessmentActualStartDate", "AssessmentAuthorisationDate"]]
    bands = _rows(ASSESSMENT_BANDS, AUTHORISED_BEFORE_START)
    return listed.assign(working_days=done["days"],
                         band=pd.Categorical(done["assessment_duration"], categories=bands),
                         over_timescale=~assessments_within_timescale(done))


def _rows(bands: tuple[str, ...], before: str) -> list[str]:
    return [*bands, before, NOT_RECORDED]


def assessment_summary(ret: CensusReturn) -> pd.DataFrame:
    """Count completed assessments per working-day band, with shares, per assessment kind."""
    listed = assessment_working_days(ret)
    rows = [*_rows(ASSESSMENT_BANDS, AUTHORISED_BEFORE_START), CATEGORY_TOTAL]
    kinds = [k for k in ASSESSMENT_TIMESCALE if (listed["kind"] == k).any()] or ["continuous"]
    out = pd.DataFrame(index=pd.Index(rows, name="working days"))
    for kind in kinds:
        sub = listed[listed["kind"] == kind]
        counts = sub["band"].value_counts().reindex(rows, fill_value=0)
        counts[CATEGORY_TOTAL] = len(sub)
        name = "assessments" if kinds == ["continuous"] else f"{kind} assessments"
        out[name] = counts.astype("int64")
        out[f"{name} %"] = _percent(counts.astype(float), float(len(sub)))
    return out


# --- S47 and initial conferences (COLLECT reports 7 and 8) ----------------------------------


def icpc_working_days(ret: CensusReturn) -> pd.DataFrame:
    """List S47 enquiries whose initial conference fell in the census year, timed in working days."""
    held = measure_rows(ret, "icpcs")
    listed = held[["LAchildID", "child", "episode", "s47", "S47ActualStartDate", "DateOfInitialCPC"]]
    bands = _rows(ICPC_BANDS, CONFERENCE_BEFORE_START)
    return listed.assign(working_days=held["days"], band=pd.Categorical(icpc_band(held["days"]), categories=bands))


def _icpc_bands(days: pd.Series, label: str) -> pd.DataFrame:
    untimed = [CONFERENCE_BEFORE_START, NOT_RECORDED, CATEGORY_TOTAL]
    rows = [*_rows(ICPC_BANDS, CONFERENCE_BEFORE_START), CATEGORY_TOTAL]
    counts = icpc_band(days).value_counts().reindex(rows, fill_value=0)
    counts[CATEGORY_TOTAL] = len(days)
    timed = len(days) - counts[CONFERENCE_BEFORE_START] - counts[NOT_RECORDED]
    out = pd.DataFrame({label: counts.astype("int64")})
    out[f"{label} %"] = _percent(counts.astype(float), float(timed))
    out.loc[untimed, f"{label} %"] = np.nan
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
    held = measure_rows(ret, "icpcs_transfer_in")
    return _icpc_bands(working_days_between(held["CINreferralDate"], held["DateOfInitialCPC"]), "conferences")


# --- child protection plans (COLLECT reports 3, 10, 11, 12, 16) -----------------------------


def _category_order(series: pd.Series, year: str) -> list[str]:
    valid = list(spec.codes("category_of_abuse", year))
    seen = {str(v) for v in series.dropna()}
    return valid + sorted(seen - set(valid) - {NOT_RECORDED}) + ([NOT_RECORDED] if NOT_RECORDED in seen else [])


def cpp_at_31_march(ret: CensusReturn) -> pd.DataFrame:
    """Cross-tabulate plans open at 31 March by initial (rows) and latest (columns) category of abuse."""
    p = measure_rows(ret, "cpp_31_march")
    initial, latest = p["initial_category"], p["latest_category"]
    order = _category_order(pd.concat([initial, latest]), ret.year)
    table = pd.crosstab(pd.Categorical(initial, categories=order), pd.Categorical(latest, categories=order),
                        dropna=False).reindex(index=order, columns=order, fill_value=0)
    table[CATEGORY_TOTAL] = table.sum(axis=1)
    table.loc[CATEGORY_TOTAL] = table.sum(axis=0)
    table.index.name = "initial category"
    table.columns.name = "latest category"
    return table.astype("int64")


def started_cpp_by_category(ret: CensusReturn) -> pd.DataFrame:
    """Count plans starting in the census year by initial category of abuse."""
    started = measure_rows(ret, "cpp_starts")
    out = _codes_frame(started["initial_category"].value_counts(), "category_of_abuse", ret.year, "plans started")
    out["%"] = _percent(out["plans started"].astype(float), float(len(started)))
    return out


def _plan_list(plans: pd.DataFrame, columns: list[str], **extra: object) -> pd.DataFrame:
    """List ``plans`` by their keys with ``columns`` and ``extra`` ones, in child, episode and plan order."""
    out = plans[["LAchildID", "child", "episode", "cpp", *columns]].assign(**extra)
    return out.sort_values(["child", "episode", "cpp"]).reset_index(drop=True)


def cpp_two_years_or_more(ret: CensusReturn) -> pd.DataFrame:
    """List plans that ended in the year after two years or more, or are open at 31 March after two years."""
    longest = CPP_BANDS[-1]
    ended = measure_rows(ret, "cpp_ends")
    ended = ended[ended["cpp_duration"] == longest].assign(status="ended in year", until=lambda f: f["CPPendDate"])
    open_now = measure_rows(ret, "cpp_31_march").assign(status="open at 31 March", until=ret.reference_date)
    open_now = open_now[cpp_band(open_now["CPPstartDate"], open_now["until"]) == longest]
    both = pd.concat([ended, open_now], ignore_index=True)
    return _plan_list(both, ["CPPstartDate", "CPPendDate", "status"],
                      days=(both["until"] - both["CPPstartDate"]).dt.days.astype("Int64"))


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
    plans = measure_rows(ret, "cpp_31_march")
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
    again = measure_rows(ret, "cpp_second_or_subsequent")
    return _plan_list(again, ["CPPstartDate", "NumberOfPreviousCPP"],
                      **{"earlier plans in return": again["earlier_plans"].astype("int64")})


# --- referrals and activity (COLLECT reports 6, 14, 15, 17) -------------------------------


def referrals_in_year(ret: CensusReturn) -> pd.DataFrame:
    """Return the episodes whose referral date falls in the census year (the measure ``referrals``)."""
    return measure_rows(ret, "referrals")


def referral_source(ret: CensusReturn) -> pd.DataFrame:
    """Count referrals in the year by source, with shares and how many ended in no further action."""
    refs = measure_rows(ret, "referrals_nfa_share")
    if "ReferralSource" not in refs.columns:
        return pd.DataFrame(columns=["code", "description", "referrals", "%", "of which NFA"])
    source = refs["ReferralSource"].astype("object").fillna(NOT_RECORDED)
    nfa = source[refs["hit"].to_numpy(dtype=bool)].value_counts()
    out = _codes_frame(source.value_counts(), "referral_source", ret.year, "referrals")
    out["%"] = _percent(out["referrals"].astype(float), float(len(refs)))
    out["of which NFA"] = [int(nfa.get(c, 0)) for c in out["code"]]
    total = {"code": CATEGORY_TOTAL, "description": "", "referrals": len(refs),
             "%": 100.0 if len(refs) else np.nan, "of which NFA": int(nfa.sum())}
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


def factors_at_assessment(ret: CensusReturn) -> pd.DataFrame:
    """Count the factors identified at assessments completed in the year.

    An assessment may record several factors, so the shares add up to more than 100%.
    """
    if ret.year not in MEASURES["assessment_factors"].years:
        return pd.DataFrame(columns=["code", "description", "assessments", "%"])
    found = measure_rows(ret, "assessment_factors")
    out = _codes_frame(found["factor"].value_counts(), "assessment_factor", ret.year, "assessments")
    out["%"] = _percent(out["assessments"].astype(float), float(len(measure_rows(ret, "assessments_completed"))))
    return out


def _by_month(dates: pd.Series, ret: CensusReturn) -> list[int]:
    months = pd.period_range(ret.census_start, periods=12, freq="M")
    inside = dates[in_census_year(dates, ret)]
    counts = inside.dt.to_period("M").value_counts()
    return [int(counts.get(m, 0)) for m in months]


# Rows of the by-month view that a measure counts: the measure, and the date it counts by.
_MONTHLY: dict[str, tuple[tuple[str, str], ...]] = {
    "Referrals": (("referrals", "CINreferralDate"),),
    "Referrals with no further action": (("referrals_nfa", "CINreferralDate"),),
    "Episodes closed": (("closures", "CINclosureDate"),),
    "Assessments started": (),
    "Assessments completed": (("assessments_completed", "AssessmentAuthorisationDate"),),
    "S47 enquiries started": (("s47_enquiries", "S47ActualStartDate"),),
    "Initial conferences": (("icpcs", "DateOfInitialCPC"), ("icpcs_transfer_in", "DateOfInitialCPC")),
    "CIN plans started": (),
    "CIN plans ended": (),
    "Child protection plans started": (("cpp_starts", "CPPstartDate"),),
    "Child protection plans ended": (("cpp_ends", "CPPendDate"),),
}


def starting_ending_by_month(ret: CensusReturn) -> pd.DataFrame:
    """Count referrals, assessments, S47s, conferences and plans starting and ending in each month."""
    unmeasured = {"Assessments started": _column(ret.assessments, "AssessmentActualStartDate")}
    if "CINPlanStartDate" in ret.cin_plans.columns:
        unmeasured["CIN plans started"] = ret.cin_plans["CINPlanStartDate"]
        unmeasured["CIN plans ended"] = ret.cin_plans["CINPlanEndDate"]
    series = {}
    for name, counted in _MONTHLY.items():
        if counted:
            series[name] = pd.concat([measure_rows(ret, m)[date] for m, date in counted], ignore_index=True)
        elif name in unmeasured:
            series[name] = unmeasured[name]
    months = [m.strftime("%b %y") for m in pd.period_range(ret.census_start, periods=12, freq="M")]
    out = pd.DataFrame({name: _by_month(d, ret) for name, d in series.items()}, index=months).T
    out[CATEGORY_TOTAL] = out.sum(axis=1)
    out.index.name = "activity"
    return out.astype("int64")


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
    found = measures(ret)
    found = found[found["breakdown"] == ALL].set_index("measure")
    described = definitions().set_index("measure")["description"]
    rows = [("Children in the return", float(len(ret.children)), "count", "children")]
    for name in KEY_MEASURES:
        if name in found.index:
            unit = str(found.at[name, "unit"])
            rows.append((str(described[name]), float(found.at[name, "value"]), _UNITS.get(unit, unit), name))
    reviews = cpp_reviews_within_timescales(ret)
    rows.append((f"Plans open at 31 March for {FIRST_REVIEW_MONTHS} months or more reviewed within timescales "
                 "(provisional)",
                 _percent(float(reviews["within timescales"].sum()), float(len(reviews))), "%",
                 "cpp_reviews_within_timescales_share"))
    return pd.DataFrame(rows, columns=["indicator", "value", "unit", "measure"]).astype({"value": float})


# --- the summary (COLLECT report 17) and the registry -------------------------------------


def summary(ret: CensusReturn) -> pd.DataFrame:
    """Count the return's children, episodes and activity in and at the end of the year."""
    rows = {
        "Children": len(ret.children),
        "Episodes": len(ret.episodes),
        "Episodes open at 31 March": len(measure_rows(ret, "cin_31_march")),
        "Referrals in year": len(measure_rows(ret, "referrals")),
        "Assessments": len(ret.assessments),
        "Assessments completed in year": len(measure_rows(ret, "assessments_completed")),
        "S47 enquiries": len(ret.section47),
        "CIN plans": len(ret.cin_plans),
        "Child protection plans": len(ret.cp_plans),
        "Child protection plans open at 31 March": len(measure_rows(ret, "cpp_31_march")),
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
         child_level=True,
         note="over_timescale: beyond " + ", ".join(f"{days} working days ({kind})" for kind, days in
                                                    ASSESSMENT_TIMESCALE.items())
              + "; 2012-13 initial assessments are timed from the referral date."),
    View("icpc_summary", "ICPC working days summary", 8, icpc_summary,
         note=f"Initial conferences in the year, working days from the S47 start; {TIMESCALES['icpc'].days} "
              "working days is in time."),
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
         note=f"First review within {FIRST_REVIEW_MONTHS} months of the start, later reviews within "
              f"{LATER_REVIEW_MONTHS} months (provisional rule)."),
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
