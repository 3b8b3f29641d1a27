"""COLLECT views: bands and their edges, who is counted where, and every view on every fixture year."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from cinqa import collect, read_return
from cinqa.measures import (ALL, ASSESSMENT_BANDS, AUTHORISED_BEFORE_START, BREAKDOWNS, ICPC_BAND_LIMITS, ICPC_BANDS,
                            MEASURES, NOT_RECORDED, TIMESCALES, measure_rows, measures)
from cinqa.workdays import add_working_days

FIXTURES = Path(__file__).parent / "fixtures"


# --- a tiny 2023-24 return written as XML, so every view sees exactly what the reader gives ---

def assessment(start: str, auth: str | None = None, factors: tuple[str, ...] = ("21",)) -> str:
    done = f"<AssessmentAuthorisationDate>{auth}</AssessmentAuthorisationDate>" if auth else ""
    codes = "".join(f"<AssessmentFactors>{f}</AssessmentFactors>" for f in factors)
    found = f"<FactorsIdentifiedAtAssessment>{codes}</FactorsIdentifiedAtAssessment>" if auth and factors else ""
    return f"<Assessments><AssessmentActualStartDate>{start}</AssessmentActualStartDate>{done}{found}</Assessments>"


def s47(start: str, icpc: str | None = None) -> str:
    held = f"<DateOfInitialCPC>{icpc}</DateOfInitialCPC>" if icpc else ""
    return (f"<Section47><S47ActualStartDate>{start}</S47ActualStartDate>{held}"
            f"<ICPCnotRequired>{'false' if icpc else 'true'}</ICPCnotRequired></Section47>")


def plan(start: str, end: str | None = None, initial: str = "NEG", latest: str = "NEG", previous: int = 0,
         reviews: tuple[str, ...] = ()) -> str:
    ended = f"<CPPendDate>{end}</CPPendDate>" if end else ""
    rv = "".join(f"<CPPreviewDate>{d}</CPPreviewDate>" for d in reviews)
    return (f"<ChildProtectionPlans><CPPstartDate>{start}</CPPstartDate>{ended}"
            f"<InitialCategoryOfAbuse>{initial}</InitialCategoryOfAbuse>"
            f"<LatestCategoryOfAbuse>{latest}</LatestCategoryOfAbuse>"
            f"<NumberOfPreviousCPP>{previous}</NumberOfPreviousCPP>"
            + (f"<Reviews>{rv}</Reviews>" if rv else "") + "</ChildProtectionPlans>")


def episode(referral: str, *, source: str = "6", closure: str | None = None, icpc: str | None = None,
            nfa: bool = False, assessments: tuple[str, ...] = (), section47: tuple[str, ...] = (),
            plans: tuple[str, ...] = ()) -> str:
    closed = f"<CINclosureDate>{closure}</CINclosureDate><ReasonForClosure>RC7</ReasonForClosure>" if closure else ""
    held = f"<DateOfInitialCPC>{icpc}</DateOfInitialCPC>" if icpc else ""
    return (f"<CINdetails><CINreferralDate>{referral}</CINreferralDate><ReferralSource>{source}</ReferralSource>"
            f"<PrimaryNeedCode>N1</PrimaryNeedCode>{closed}{held}{''.join(assessments)}{''.join(section47)}"
            f"<ReferralNFA>{'true' if nfa else 'false'}</ReferralNFA>{''.join(plans)}</CINdetails>")


def child(la_child_id: str, *episodes: str) -> str:
    return (f"<Child><ChildIdentifiers><LAchildID>{la_child_id}</LAchildID>"
            "<PersonBirthDate>2015-06-01</PersonBirthDate><GenderCurrent>1</GenderCurrent></ChildIdentifiers>"
            "<ChildCharacteristics><Ethnicity>WBRI</Ethnicity><Disabilities><Disability>NONE</Disability>"
            f"</Disabilities></ChildCharacteristics>{''.join(episodes)}</Child>")


def make_return(tmp_path: Path, *children: str):
    text = ("<?xml version='1.0' encoding='utf-8'?><Message><Header><CollectionDetails>"
            "<Collection>CIN</Collection><Year>2024</Year><ReferenceDate>2024-03-31</ReferenceDate>"
            "</CollectionDetails><Source><SourceLevel>L</SourceLevel><LEA>201</LEA><SoftwareCode>test</SoftwareCode>"
            "<Release>1</Release><SerialNo>001</SerialNo><DateTime>2024-05-01T09:00:00</DateTime></Source>"
            f"</Header><Children>{''.join(children)}</Children></Message>")
    path = tmp_path / "cin.xml"
    path.write_text(text, encoding="utf-8")
    ret = read_return(path)
    assert ret.issues.empty, ret.issues
    return ret


def wd(date: str, n: int) -> str:
    return f"{add_working_days(pd.Timestamp(date), n):%Y-%m-%d}"


# --- assessments ---

def test_assessment_bands_count_working_days_with_same_day_zero_and_bank_holidays_skipped(tmp_path):
    ret = make_return(tmp_path, child("A", episode("2023-05-01", assessments=(
        assessment("2023-05-02", "2023-05-02"),          # same day
        assessment("2023-05-26", "2023-05-30"),          # Fri -> Tue over the spring bank holiday: 1
        assessment("2023-06-01", wd("2023-06-01", 45)),  # exactly on the timescale
        assessment("2023-06-02", wd("2023-06-02", 46)),  # one day over
        assessment("2023-07-10", "2023-07-03"),          # authorised before it started
        assessment("2022-12-01", "2023-03-20"),          # authorised before the year: not counted
        assessment("2024-03-01"),                        # still open: not counted
    ))))
    listed = collect.assessment_working_days(ret)
    assert listed["working_days"].tolist() == [0, 1, 45, 46, -5]
    assert listed["over_timescale"].tolist()[:4] == [False, False, False, True]
    assert pd.isna(listed["over_timescale"].iloc[4])  # cannot be timed, as DfE leaves it out
    bands = collect.assessment_summary(ret)["assessments"]
    shown = ["Same day", "1 to 10", "41 to 45", "46 to 50", "Authorised before start", "Total"]
    assert bands[shown].tolist() == [1, 1, 1, 1, 1, 5]
    assert collect.assessment_summary(ret).loc["Same day", "assessments %"] == 20.0


def test_2012_13_assessments_are_summarised_per_kind():
    ret = read_return(FIXTURES / "cin-2012-13.xml")
    summary = collect.assessment_summary(ret)
    assert list(summary.columns) == ["initial assessments", "initial assessments %", "core assessments",
                                     "core assessments %"]
    assert summary.loc["Total", "initial assessments"] == 2 and summary.loc["Total", "core assessments"] == 1


def test_factors_counted_once_per_completed_assessment(tmp_path):
    ret = make_return(tmp_path, child("A", episode("2023-05-01", assessments=(
        assessment("2023-05-02", "2023-05-20", factors=("3A", "4B")),
        assessment("2023-06-02", "2023-06-20", factors=("3A",)),
        assessment("2022-06-02", "2023-03-01", factors=("4B",)),  # completed last year
    ))))
    f = collect.factors_at_assessment(ret).set_index("code")
    assert f.loc["3A", "assessments"] == 2 and f.loc["4B", "assessments"] == 1
    assert f.loc["3A", "%"] == 100.0 and f.loc["4B", "%"] == 50.0
    assert f.loc["3A", "description"] == "Domestic violence - child subject"


# --- conferences ---

def test_icpc_bands_exclude_conferences_before_the_s47_but_keep_them_in_the_total(tmp_path):
    ret = make_return(tmp_path, child("A", episode("2023-05-01", section47=(
        s47("2023-05-02", wd("2023-05-02", 15)),
        s47("2023-06-01", wd("2023-06-01", 16)),
        s47("2023-07-10", "2023-07-03"),
        s47("2023-08-01"),                    # no conference
        s47("2023-02-01", "2023-03-01"),      # conference before the year
    ))))
    s = collect.icpc_summary(ret)
    assert s["conferences"][["11-15", "16-20", "Conference before start (excluded)", "Total"]].tolist() == [1, 1, 1, 3]
    assert s.loc["11-15", "conferences %"] == 50.0


def test_transfer_in_conferences_come_from_the_episode_and_are_timed_from_referral(tmp_path):
    ret = make_return(tmp_path, child("A", episode("2023-05-01", icpc=wd("2023-05-01", 12))))
    s = collect.transfer_in_icpc_summary(ret)
    assert s.loc["11-15", "conferences"] == 1 and s.loc["Total", "conferences"] == 1
    assert collect.icpc_summary(ret).loc["Total", "conferences"] == 0


# --- child protection plans ---

def test_cpp_at_31_march_crosstabs_open_plans_by_initial_and_latest_category(tmp_path):
    ret = make_return(
        tmp_path,
        child("A", episode("2023-05-01", plans=(plan("2023-05-10", initial="NEG", latest="EMO"),))),
        child("B", episode("2023-05-01", plans=(plan("2023-05-10", "2023-09-01", initial="PHY", latest="PHY"),))),
        child("C", episode("2021-05-01", plans=(plan("2021-05-10", initial="NEG", latest="NEG"),))),
    )
    t = collect.cpp_at_31_march(ret)
    assert t.loc["NEG", "EMO"] == 1 and t.loc["NEG", "NEG"] == 1
    assert t.loc["PHY", "Total"] == 0
    assert t.loc["Total", "Total"] == 2
    assert list(t.columns) == ["NEG", "PHY", "SAB", "EMO", "MUL", "Total"]


def test_cpp_two_years_or_more_takes_ended_and_still_open_plans_from_two_years_exactly(tmp_path):
    ret = make_return(
        tmp_path,
        child("ENDED2Y", episode("2021-05-01", plans=(plan("2021-06-01", "2023-06-01"),))),
        child("SHORT", episode("2021-05-01", plans=(plan("2021-06-02", "2023-06-01"),))),
        child("OPEN", episode("2021-05-01", plans=(plan("2022-03-31"),))),
        child("NEWOPEN", episode("2023-05-01", plans=(plan("2023-05-02"),))),
    )
    t = collect.cpp_two_years_or_more(ret)
    assert t["LAchildID"].tolist() == ["ENDED2Y", "OPEN"]
    assert t["status"].tolist() == ["ended in year", "open at 31 March"]
    assert t["days"].tolist() == [730, 731]


def test_cpp_reviews_on_time_late_and_overdue(tmp_path):
    ret = make_return(
        tmp_path,
        child("ONTIME", episode("2023-05-01", plans=(plan("2023-06-01", reviews=("2023-09-01", "2024-02-28")),))),
        child("LATE", episode("2023-05-01", plans=(plan("2023-06-01", reviews=("2023-09-02", "2024-01-10")),))),
        child("OVERDUE", episode("2023-05-01", plans=(plan("2023-12-15"),))),
        child("TOONEW", episode("2023-05-01", plans=(plan("2024-01-15"),))),
        child("ENDED", episode("2023-05-01", plans=(plan("2023-05-02", "2023-12-01"),))),
        # started last year, earlier reviews not in the return: judged from 1 April + 6 months
        child("CARRIED", episode("2022-05-01", plans=(plan("2022-06-01", reviews=("2023-10-01", "2024-03-01")),))),
        child("CARRIEDLATE", episode("2022-05-01", plans=(plan("2022-06-01", reviews=("2023-10-02",)),))),
        child("HISTORY", episode("2022-05-01", plans=(plan("2022-06-01", reviews=("2022-09-01", "2023-02-01",
                                                                                     "2023-08-02")),))),
    )
    t = collect.cpp_reviews_within_timescales(ret).set_index("LAchildID")
    assert list(t.index) == ["ONTIME", "LATE", "OVERDUE", "CARRIED", "CARRIEDLATE", "HISTORY"]
    assert t["within timescales"].tolist() == [True, False, False, True, False, False]
    assert "was due by 01/10/2023" in t.loc["CARRIEDLATE", "reason"]
    assert "was due by 01/08/2023" in t.loc["HISTORY", "reason"]
    assert "was due by 01/09/2023" in t.loc["LATE", "reason"]
    assert "due by 15/03/2024 not held" in t.loc["OVERDUE", "reason"]
    assert t.loc["ONTIME", "reviews"] == 2


def test_more_than_one_cpp_from_previous_count_or_an_earlier_plan_in_the_return(tmp_path):
    ret = make_return(
        tmp_path,
        child("PREV", episode("2023-05-01", plans=(plan("2023-05-02", previous=2),))),
        child("TWICE", episode("2023-04-03", closure="2023-06-01", plans=(plan("2023-04-04", "2023-06-01"),)),
              episode("2023-09-01", plans=(plan("2023-09-02"),))),
        child("FIRST", episode("2023-05-01", plans=(plan("2023-05-02"),))),
    )
    t = collect.children_more_than_one_cpp(ret)
    assert t["LAchildID"].tolist() == ["PREV", "TWICE"]
    assert t["earlier plans in return"].tolist() == [0, 1]
    assert t["CPPstartDate"].tolist() == [pd.Timestamp("2023-05-02"), pd.Timestamp("2023-09-02")]


def test_more_than_one_cpp_counts_only_plans_that_started_before_as_the_measure_does(tmp_path):
    ret = make_return(tmp_path, child("SAMEDAY", episode("2023-05-01", plans=(plan("2023-05-02"),)),
                                      episode("2023-05-01", plans=(plan("2023-05-02"),))))
    assert collect.children_more_than_one_cpp(ret).empty
    assert collect.key_indicators(ret).set_index("measure").at["cpp_second_or_subsequent_share", "value"] == 0.0


def test_started_cpp_by_category_counts_plans_starting_in_the_year(tmp_path):
    ret = make_return(
        tmp_path,
        child("A", episode("2023-05-01", plans=(plan("2023-05-02", initial="SAB"),))),
        child("B", episode("2022-05-01", plans=(plan("2022-05-02", initial="SAB"),))),
    )
    t = collect.started_cpp_by_category(ret).set_index("code")
    assert t.loc["SAB", "plans started"] == 1 and t["plans started"].sum() == 1


# --- referrals and activity ---

def test_referral_source_counts_referrals_in_year_with_nfa_and_total(tmp_path):
    ret = make_return(
        tmp_path,
        child("A", episode("2023-05-01", source="2A", closure="2023-05-02", nfa=True),
              episode("2023-07-01", source="6")),
        child("B", episode("2023-05-01", source="2A")),
        child("C", episode("2022-05-01", source="6")),  # referred last year
    )
    t = collect.referral_source(ret).set_index("code")
    assert t.loc["2A", "referrals"] == 2 and t.loc["2A", "of which NFA"] == 1
    assert t.loc["6", "referrals"] == 1
    assert t.loc["Total", "referrals"] == 3 and t.loc["Total", "of which NFA"] == 1
    assert t.loc["2A", "%"] == pytest.approx(66.7)


def test_referral_source_is_empty_before_it_was_collected():
    assert collect.referral_source(read_return(FIXTURES / "cin-2012-13.xml")).empty


def test_starting_and_ending_by_month_runs_april_to_march(tmp_path):
    ret = make_return(tmp_path, child("A", episode("2023-04-03", closure="2024-03-28", assessments=(
        assessment("2023-04-04", "2023-05-10"),), plans=(plan("2023-06-01", "2024-03-20"),))))
    t = collect.starting_ending_by_month(ret)
    assert list(t.columns[:2]) == ["Apr 23", "May 23"] and t.columns[11] == "Mar 24" and t.columns[12] == "Total"
    assert t.loc["Referrals", "Apr 23"] == 1 and t.loc["Episodes closed", "Mar 24"] == 1
    assert t.loc["Assessments completed", "May 23"] == 1
    assert t.loc["Child protection plans started", "Jun 23"] == 1
    assert t.loc["Child protection plans ended", "Mar 24"] == 1
    assert "CIN plans started" in t.index


def test_starting_and_ending_by_month_has_no_cin_plan_rows_before_cin_plans_existed():
    t = collect.starting_ending_by_month(read_return(FIXTURES / "cin-2012-13.xml"))
    assert "CIN plans started" not in t.index and t.loc["Referrals", "Total"] == 3


def test_key_indicators_are_the_headline_measures_plus_review_timeliness(tmp_path):
    ret = make_return(
        tmp_path,
        child("A", episode("2023-04-03", closure="2023-05-01", assessments=(assessment("2023-04-04", "2023-04-04"),)),
              episode("2023-09-01", assessments=(assessment("2023-09-01", wd("2023-09-01", 50)),))),
        child("B", episode("2024-01-10", closure="2024-01-11", nfa=True)),
        child("C", episode("2023-05-01", plans=(plan("2023-06-01", reviews=("2023-09-02",)),))),
    )
    ki = collect.key_indicators(ret).set_index("measure")
    value = ki["value"]
    assert value["children"] == 3
    assert value["referrals"] == 4
    assert value["referrals_nfa"] == 1
    assert value["assessments_completed"] == 2
    assert value["assessments_within_45_days_share"] == 50.0 and ki.loc["assessments_within_45_days_share", "unit"] == "%"
    assert value["cpp_31_march"] == 1
    assert value["cpp_reviews_within_timescales_share"] == 0.0
    assert "initial_assessments_completed" not in ki.index  # a 2012-13 measure
    assert list(ki.index[:2]) == ["children", "referrals"]


def test_key_indicators_of_2012_13_use_initial_and_core_assessments():
    ki = collect.key_indicators(read_return(FIXTURES / "cin-2012-13.xml")).set_index("measure")
    assert ki.loc["initial_assessments_completed", "value"] == 2
    assert "assessments_within_45_days_share" not in ki.index
    assert pd.isna(ki.loc["cpp_reviews_within_timescales_share", "value"])


# --- the registry ---

@pytest.mark.parametrize("year", ["2012-13", "2013-14", "2021-22", "2023-24", "2024-25", "2025-26"])
def test_every_view_builds_for_every_fixture_year(year):
    ret = read_return(FIXTURES / f"cin-{year}.xml")
    for name, view in collect.VIEWS.items():
        df = collect.build_view(ret, name)
        assert isinstance(df, pd.DataFrame), name
        if view.child_level:
            assert "LAchildID" in df.columns, name


def test_unknown_view_names_the_choices():
    ret = read_return(FIXTURES / "cin-2023-24.xml")
    with pytest.raises(KeyError, match="referral_source"):
        collect.build_view(ret, "nope")


# --- every COLLECT figure that a headline measure also computes equals that measure --------------

SAMPLES = sorted((Path(__file__).parent.parent / "data").glob("sample-*.xml")) + sorted(FIXTURES.glob("cin-*.xml"))
VALUE, RECORDS, HITS = "its value", "its records", "its records that hit"
TOTAL = collect.CATEGORY_TOTAL


def _at(v: pd.DataFrame, row: str, column: str) -> float | None:
    """Read one figure of a view; None where the view has no such row or column."""
    return v.at[row, column] if row in v.index and column in v.columns else None


def _summary(v: pd.DataFrame, year: str):
    for row, measure, read in (("Referrals in year", "referrals", VALUE),
                               ("Episodes open at 31 March", "cin_31_march", RECORDS),
                               ("Assessments completed in year", "assessments_completed", VALUE),
                               ("Child protection plans open at 31 March", "cpp_31_march", RECORDS)):
        yield row, _at(v, row, "count"), [(measure, ALL, ALL, read)]


def _key_indicators(v: pd.DataFrame, year: str):
    for name in collect.KEY_MEASURES:
        if year in MEASURES[name].years:
            yield name, _at(v.set_index("measure"), name, "value"), [(name, ALL, ALL, VALUE)]


def _assessment_summary(v: pd.DataFrame, year: str):
    if year in BREAKDOWNS["assessment_duration"].years:
        for band in (*ASSESSMENT_BANDS, AUTHORISED_BEFORE_START):
            yield band, _at(v, band, "assessments"), [("assessments_completed", "assessment_duration", band, VALUE)]
        yield NOT_RECORDED, _at(v, NOT_RECORDED, "assessments"), [
            ("assessments_completed", "assessment_duration", NOT_RECORDED, RECORDS)]
        yield TOTAL, _at(v, TOTAL, "assessments"), [("assessments_completed", ALL, ALL, VALUE)]
    else:
        for kind in ("initial", "core"):
            yield (f"{kind} {TOTAL}", _at(v, TOTAL, f"{kind} assessments"),
                   [(f"{kind}_assessments_completed", ALL, ALL, VALUE)])


def _assessment_working_days(v: pd.DataFrame, year: str):
    for kind, measure in (("continuous", "assessments_within_45_days_share"),
                          ("initial", "initial_within_10_days_share"), ("core", "core_within_35_days_share")):
        if year in MEASURES[measure].years:
            judged = v.loc[(v["kind"] == kind) & v["over_timescale"].notna(), "over_timescale"].astype(bool)
            share = 100 * (~judged).mean() if len(judged) else float("nan")
            yield f"{kind} within timescale (%)", share, [(measure, ALL, ALL, VALUE)]


def _icpc_summary(v: pd.DataFrame, year: str):
    yield TOTAL, _at(v, TOTAL, "conferences"), [("icpcs", ALL, ALL, VALUE)]
    counts = v["conferences"].reindex(ICPC_BANDS)
    within = [band for band, most in ICPC_BAND_LIMITS.items() if most <= TIMESCALES["icpc"].days]
    share = 100 * counts[within].sum(min_count=len(within)) / counts.sum() if counts.sum() else float("nan")
    yield "within timescale (%)", share, [("icpc_within_15_days_share", ALL, ALL, VALUE)]


def _transfer_in_icpc_summary(v: pd.DataFrame, year: str):
    yield TOTAL, _at(v, TOTAL, "conferences"), [("icpcs_transfer_in", ALL, ALL, VALUE)]


def _cpp_at_31_march(v: pd.DataFrame, year: str):
    codes = [c for c in v.index if c != TOTAL]
    for initial in codes:
        for latest in codes:
            yield (f"{initial} > {latest}", _at(v, initial, latest),
                   [("cpp_31_march", "initial_and_latest_category", f"{initial} > {latest}", RECORDS)])
        yield f"{initial} > {TOTAL}", _at(v, initial, TOTAL), [("cpp_31_march", "initial_category", initial, RECORDS)]
        yield f"{TOTAL} > {initial}", _at(v, TOTAL, initial), [("cpp_31_march", "latest_category", initial, RECORDS)]
    yield TOTAL, _at(v, TOTAL, TOTAL), [("cpp_31_march", ALL, ALL, RECORDS)]


def _started_cpp_by_category(v: pd.DataFrame, year: str):
    for code, count in zip(v["code"], v["plans started"]):
        yield code, count, [("cpp_starts", "initial_category", code, VALUE)]
    yield TOTAL, v["plans started"].sum(), [("cpp_starts", ALL, ALL, VALUE)]


def _factors_at_assessment(v: pd.DataFrame, year: str):
    for code, count in zip(v["code"], v["assessments"]):
        yield code, count, [("assessment_factors", "factor", code, VALUE)]


def _referral_source(v: pd.DataFrame, year: str):
    if len(v):
        yield "referrals", _at(v.set_index("code"), TOTAL, "referrals"), [("referrals", ALL, ALL, VALUE)]
        yield "of which NFA", _at(v.set_index("code"), TOTAL, "of which NFA"), [("referrals_nfa", ALL, ALL, VALUE)]


def _starting_ending_by_month(v: pd.DataFrame, year: str):
    for row, shown in (("Referrals", ("referrals",)), ("Referrals with no further action", ("referrals_nfa",)),
                       ("Episodes closed", ("closures",)), ("Assessments completed", ("assessments_completed",)),
                       ("S47 enquiries started", ("s47_enquiries",)),
                       ("Initial conferences", ("icpcs", "icpcs_transfer_in")),
                       ("Child protection plans started", ("cpp_starts",)),
                       ("Child protection plans ended", ("cpp_ends",))):
        yield row, _at(v, row, TOTAL), [(m, ALL, ALL, VALUE) for m in shown]


def _cpp_two_years_or_more(v: pd.DataFrame, year: str):
    yield "ended in year", (v["status"] == "ended in year").sum(), [("cpp_ended_2_years_share", ALL, ALL, HITS)]


def _children_more_than_one_cpp(v: pd.DataFrame, year: str):
    yield "plans", len(v), [("cpp_second_or_subsequent", ALL, ALL, VALUE)]


# For each COLLECT view, the figures it shows that a headline measure computes: (figure, its value in
# the view, the measure figures it equals). A view counting plans or episodes where the measure counts
# children is compared with the measure's records.
SHOWN = {
    "summary": _summary, "key_indicators": _key_indicators, "assessment_summary": _assessment_summary,
    "assessment_working_days": _assessment_working_days, "icpc_summary": _icpc_summary,
    "transfer_in_icpc_summary": _transfer_in_icpc_summary, "cpp_at_31_march": _cpp_at_31_march,
    "started_cpp_by_category": _started_cpp_by_category, "factors_at_assessment": _factors_at_assessment,
    "referral_source": _referral_source, "starting_ending_by_month": _starting_ending_by_month,
    "cpp_two_years_or_more": _cpp_two_years_or_more, "children_more_than_one_cpp": _children_more_than_one_cpp,
}
NOT_A_MEASURE = {"cpp_reviews_within_timescales": "review timeliness is not a published DfE measure"}


def test_every_view_says_which_measures_it_shows():
    assert sorted([*SHOWN, *NOT_A_MEASURE]) == sorted(collect.VIEWS)


def _measure_figure(table: pd.DataFrame, records: Callable[[str], pd.DataFrame], measure: str, breakdown: str,
                    category: str, read: str) -> float:
    if read == VALUE:
        hit = table[(table["measure"] == measure) & (table["breakdown"] == breakdown) & (table["category"] == category)]
        return float(hit["value"].iloc[0]) if len(hit) == 1 else float("nan")
    rows = records(measure)
    if breakdown != ALL:
        rows = rows[rows[breakdown] == category]  # these breakdowns are columns of the records themselves
    return float(rows["hit"].sum() if read == HITS else len(rows))


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_each_collect_figure_equals_the_measure_it_shows(path):
    ret = read_return(path)
    table = measures(ret)
    records = functools.cache(lambda measure: measure_rows(ret, measure))
    shown, wrong = 0, []
    for view, figures in SHOWN.items():
        for figure, value, refs in figures(collect.build_view(ret, view), ret.year):
            expected = sum(_measure_figure(table, records, *ref) for ref in refs)
            shown += 1
            if value is None or not float(value) == pytest.approx(expected, abs=1e-9, nan_ok=True):
                names = " + ".join(f"{m}[{b}={c}] ({read})" for m, b, c, read in refs)
                wrong.append(f"{view}: {figure} = {value}, but {names} = {expected}")
    assert not wrong, "\n".join(wrong)
    assert shown >= 20
