"""Validation views: locator columns, parent and census columns, cross-row columns, date offsets."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cinqa
from cinqa import spec
from cinqa.views import LOCATOR, VIEWS, build_views, census_date, shift_dates

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def ret_2023():
    return cinqa.read_return(FIXTURES / "cin-2023-24.xml")


@pytest.fixture(scope="module")
def views_2023(ret_2023):
    return build_views(ret_2023)


@pytest.fixture(scope="module")
def views_2012():
    return build_views(cinqa.read_return(FIXTURES / "cin-2012-13.xml"))


def T(day: str) -> pd.Timestamp:
    return pd.Timestamp(day)


@pytest.mark.parametrize(("start", "offset", "expected"), [
    ("2023-04-01", "-1WD", "2023-03-31"),   # Saturday: the Friday before
    ("2024-04-01", "-1WD", "2024-03-28"),   # Easter Monday: back over Good Friday and the weekend
    ("2023-03-31", "-1WD", "2023-03-30"),   # a working day: the one before
    ("2024-03-28", "+1WD", "2024-04-02"),   # forward over Good Friday, the weekend and Easter Monday
    ("2024-03-31", "-45WD", "2024-01-26"),  # 8670Q's bound in 2023-24 (Sunday: 28 March is the first step)
    ("2025-03-31", "-4Y+5M", "2021-08-31"),  # steps apply left to right
    ("2024-03-31", "-30D", "2024-03-01"),
    ("2024-03-31", "+9M", "2024-12-31"),
    ("2024-02-29", "-1Y", "2023-02-28"),
    ("2024-03-31", "-2W", "2024-03-17"),
])
def test_shift_dates_moves_by_calendar_and_working_days(start, offset, expected):
    assert shift_dates(T(start), offset) == T(expected)
    shifted = shift_dates(pd.Series([T(start), pd.NaT], dtype="datetime64[s]"), offset)
    assert shifted.iloc[0] == T(expected) and pd.isna(shifted.iloc[1])


def test_shift_dates_refuses_unknown_offsets():
    with pytest.raises(ValueError, match="date offset"):
        shift_dates(T("2024-03-31"), "-3 days")


def test_a_bad_offset_is_refused_in_the_same_words_by_the_suites_and_shift_dates():
    from cinqa.checks.bounds import ExpectColumnValuesToBeBetweenColumns

    with pytest.raises(ValueError) as shifted:
        shift_dates(T("2024-03-31"), "-3 days")
    with pytest.raises(ValueError) as bounded:
        ExpectColumnValuesToBeBetweenColumns(column="a", min_column="b", min_offset="-3 days")
    assert str(shifted.value).replace("date offset", "min_offset") in str(bounded.value)


def test_census_dates_are_the_start_or_end_of_the_year_moved_by_an_offset():
    assert census_date("2023-24", "start") == T("2023-04-01")
    assert census_date("2023-24", "end") == T("2024-03-31")
    assert census_date("2023-24", "end", "-45WD") == T("2024-01-26")
    assert census_date("2023-24", "start", "-1WD") == T("2023-03-31")


def test_every_view_starts_with_the_locator_and_numbers_its_rows(views_2023, views_2012):
    for views in (views_2023, views_2012):
        assert set(views) == set(VIEWS)
        for name, df in views.items():
            assert tuple(df.columns[: len(LOCATOR)]) == LOCATOR, name
            assert df["row"].tolist() == list(range(len(df))), name


def test_no_view_has_two_columns_differing_only_in_case(views_2023, views_2012):
    # GX matches column names case-insensitively: "disability" would shadow "Disability".
    for views in (views_2023, views_2012):
        for name, df in views.items():
            lowered = [c.lower() for c in df.columns]
            assert len(lowered) == len(set(lowered)), name


def test_census_bounds_are_the_years_first_and_last_days(views_2023, views_2012):
    assert views_2023["episodes"]["census_start"].unique().tolist() == [T("2023-04-01")]
    assert views_2023["episodes"]["census_end"].unique().tolist() == [T("2024-03-31")]
    assert views_2012["children"]["census_end"].unique().tolist() == [T("2013-03-31")]


def test_views_can_be_built_for_another_year(ret_2023):
    v = build_views(ret_2023, "2024-25", names=["children"])
    assert list(v) == ["children"]
    assert v["children"]["census_end"].iloc[0] == T("2025-03-31")


def test_children_view_counts_and_flags(views_2023):
    c = views_2023["children"].set_index("LAchildID")
    assert c.loc["C001", "episodes_for_child"] == 2
    assert c.loc["C001", "open_episodes_for_child"] == 1
    assert c.loc["C002", "open_episodes_for_child"] == 0  # an NFA referral is never open
    assert bool(c.loc["C002", "all_episodes_nfa"]) and not bool(c.loc["C002", "has_further_action_episode"])
    assert c.loc["C001", "disabilities_for_child"] == 2 and c.loc["C002", "disabilities_for_child"] == 0
    assert c.loc["C001", "UPN_la_code"] == "201" and pd.isna(c.loc["C002", "UPN_la_code"])
    assert c["birth_dates_given"].tolist() == [1, 1, 1]
    # C003's only episode closed on 2024-02-01; C001 has one still open.
    assert c.loc["C003", "last_episode_day"] == T("2024-02-01")
    assert c.loc["C001", "last_episode_day"] == T("2024-03-31")


def test_episodes_view_joins_the_child_and_counts_modules(views_2023):
    e = views_2023["episodes"]
    first, second = e.iloc[0], e.iloc[1]
    assert first["PersonBirthDate"] == T("2015-06-01")
    assert not first["is_latest_referral"] and second["is_latest_referral"]
    assert second[["assessments_in_episode", "s47_in_episode", "cpps_in_episode", "cin_plans_in_episode"]].tolist() == [1, 1, 1, 1]
    unborn = e[e["LAchildID"] == "C002"].iloc[0]
    assert unborn["birth_or_expected_birth_date"] == T("2024-06-20")


def test_module_views_carry_their_episode_and_census(views_2023):
    a = views_2023["assessments"]
    assert a["CINreferralDate"].tolist() == [T("2023-04-03"), T("2023-09-11")]
    assert a["factor_codes"].tolist() == ["21", "3A,4B"]
    assert a["valid_factors_for_assessment"].tolist() == [1, 2]
    assert a["item"].tolist() == [1, 1] and a["episode"].tolist() == [1, 2]
    s = views_2023["section47"]
    assert s.loc[s["LAchildID"] == "C003", "CINdetails_DateOfInitialCPC"].iloc[0] == T("2022-12-01")
    r = views_2023["reviews"]
    assert r["CPPstartDate"].tolist() == [T("2023-11-15"), T("2022-12-01"), T("2022-12-01")]


def test_return_view_holds_la_level_counts(views_2023):
    r = views_2023["return"].iloc[0]
    assert r["children"] == 3
    assert r["disability_codes_used"] == 2  # AUT and LD; NONE does not count
    assert r["children_with_several_disabilities"] == 1
    assert r["children_with_no_gender_recorded"] == 0  # C002's gender 0 is an unborn child's
    assert r["cpp_starts_in_census"] == 1 and r["icpcs_in_census"] == 1


def test_header_view_holds_the_header(views_2023):
    h = views_2023["header"].iloc[0]
    assert h["ReferenceDate"] == T("2024-03-31") and h["LEA"] == "201" and h["census_year_end"] == 2024


def test_empty_return_builds_every_view(tmp_path):
    from cinqa.testing import build_return

    ret = build_return("2023-24", {}, tmp_path)
    empty = {t: df.iloc[0:0] for t, df in ret.tables.items()}
    bare = cinqa.CensusReturn(year=ret.year, header=ret.header, tables=empty)
    views = build_views(bare)
    assert all(len(views[v]) == 0 for v in VIEWS if v not in ("header", "return"))
    assert views["return"]["children"].iloc[0] == 0
    assert np.isnan(views["return"]["share_with_no_gender_recorded"].iloc[0])


def test_views_cover_every_year(tmp_path):
    from cinqa.testing import build_return

    for year in (spec.YEARS[0], "2021-22", spec.YEARS[-1]):
        views = build_views(build_return(year, {}, tmp_path, name=year))
        assert len(views["children"]) == 1 and len(views["disabilities"]) == 8


def test_plan_columns_compare_with_conferences_and_cin_plans(tmp_path):
    from cinqa.testing import build_return

    ret = build_return("2023-24", {
        "section47": [{"DateOfInitialCPC": "2023-05-10"}],
        "cp_plans": [{"CPPstartDate": "2023-05-10", "CPPendDate": "2023-06-30"},
                     {"CPPstartDate": "2023-07-03"}],
        "cin_plans": [{"CINPlanStartDate": "2023-08-01", "CINPlanEndDate": "2023-09-01"}],
        "cp_reviews": [{"cpp": 2, "CPPreviewDate": d} for d in ("2023-08-01", "2023-08-15", "2023-09-01")],
    }, tmp_path)
    views = build_views(ret)
    assert views["cp_plans"]["starts_on_an_icpc_date"].tolist() == [True, False]
    # On or between the CIN plan's start and end days (4003); only the review's own plan's end day is free.
    assert views["reviews"]["during_cin_plan"].tolist() == [True, True, True]
    assert views["cp_plans"]["reviews_for_cpp"].tolist() == [0, 3]


def test_pre_proceedings_view_and_return_counts(tmp_path):
    from cinqa.testing import build_return

    ret = build_return("2026-27", {"children": [{}, {}, {}], "pre_proceedings": [
        {"child": 1, "PPStartDate": None}, {"child": 2}, {"child": 2, "PPStartDate": "2026-06-01"}]}, tmp_path)
    views = build_views(ret)
    pp = views["pre_proceedings"]
    assert tuple(pp.columns[:len(LOCATOR)]) == LOCATOR and pp["item"].tolist() == [1, 1, 2]
    assert pp["census_start"].iloc[0] == pd.Timestamp("2026-04-01") and "LetterInitCPDate" in pp
    counts = views["return"].iloc[0]
    assert (counts["children_with_pre_proceedings"], counts["children_with_pp_start_date"]) == (2, 1)


def test_each_view_is_locator_table_declared_columns_then_census(views_2023, ret_2023):
    """A view holds the locator, its table's own columns, the columns VIEW_COLUMNS declares for it (steps left
    out) and the census dates, in that order: the one declaration both engines follow."""
    from cinqa.viewcols import VIEW_COLUMNS
    from cinqa.views import VIEW_TABLES

    for name, view in views_2023.items():
        declared = [c.name for c in VIEW_COLUMNS[name] if not c.name.startswith("_")]
        assert list(view.columns[:len(LOCATOR)]) == list(LOCATOR), name
        assert list(view.columns[len(view.columns) - 2 - len(declared):]) == [*declared, "census_start", "census_end"]
        table = VIEW_TABLES[name]
        if table is not None:
            own = list(view.columns[len(LOCATOR):len(view.columns) - 2 - len(declared)])
            keys = spec.TABLE_KEYS[table]
            assert own == [c for c in ret_2023.tables[table].columns
                           if c not in ("child", "LAchildID", "episode", "line", keys[-1])], name
