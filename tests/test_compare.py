"""Year-on-year comparison: the table of changes and continuity findings."""

from __future__ import annotations

import pandas as pd
import pytest

from cinqa.compare import (FINDINGS, INFORMATION, Comparison, changes, compare, continuity, describe_flags, summarise,
                           wide_table)
from cinqa.errors import CinqaError
from test_measures import child, episode, make_return

E, L = "2022-23", "2023-24"


def earlier_children() -> list[dict]:
    return [
        child("A", episode("2021-09-01", cpps=(("2022-01-10", None, "NEG", "NEG", 0),)), dob="2012-03-04"),
        child("B", episode("2022-06-01"), sex="2", eth="BAFR"),
        child("C", episode("2022-07-01", close="2022-09-01", reason="RC7")),
        child("E", episode("2022-11-01"), upn="A201123456789"),
    ]


def later_children(**change: dict | None) -> list[dict]:
    """The 2023-24 children carrying on ``earlier_children``; ``change`` replaces (or drops) one."""
    kids = {
        "A": child("A", episode("2021-09-01", cpps=(("2022-01-10", "2023-06-01", "NEG", "EMO", 0),)), dob="2012-03-04"),
        "B": child("B", episode("2022-06-01", close="2023-05-01", reason="RC7"), sex="2", eth="BAFR"),
        "E": child("E", episode("2022-11-01"), upn="A201123456789"),
        "D": child("D", episode("2023-06-01")),
    }
    kids.update(change)
    return [k for k in kids.values() if k is not None]


PLANTED = {
    "birth date": ({"A": child("A", episode("2021-09-01", cpps=(("2022-01-10", None, "NEG", "NEG", 0),)),
                               dob="2012-04-03")}, {("identity_changed", "A", "PersonBirthDate")}),
    "gender": ({"B": child("B", episode("2022-06-01"), sex="1", eth="BAFR")}, {("identity_changed", "B", "GenderCurrent")}),
    "ethnicity": ({"B": child("B", episode("2022-06-01"), sex="2", eth="BOTH")}, {("identity_changed", "B", "Ethnicity")}),
    "child gone": ({"B": None}, {("child_missing", "B", "LAchildID")}),
    "child with plan gone": ({"A": None}, {("child_missing", "A", "LAchildID"), ("cpp_missing", "A", "CPPstartDate")}),
    "referral re-dated": ({"B": child("B", episode("2022-06-03"), sex="2", eth="BAFR")},
                          {("referral_date_changed", "B", "CINreferralDate")}),
    "open episode gone": ({"B": child("B", episode("2023-05-01"), sex="2", eth="BAFR")},
                          {("episode_missing", "B", "CINreferralDate")}),
    "closed back in time": ({"B": child("B", episode("2022-06-01", close="2023-03-01", reason="RC7"), sex="2", eth="BAFR")},
                            {("closure_date_conflict", "B", "CINclosureDate")}),
    "closed case reopened": ({"C": child("C", episode("2022-07-01"))}, {("closure_date_conflict", "C", "CINclosureDate")}),
    "new child with old case": ({"X": child("X", episode("2022-12-01"))}, {("child_absent_from_earlier", "X", "LAchildID")}),
    "old case never returned": ({"C": child("C", episode("2022-10-01"))},
                                {("episode_absent_from_earlier", "C", "CINreferralDate")}),
    "plan re-dated": ({"A": child("A", episode("2021-09-01", cpps=(("2022-01-12", None, "NEG", "NEG", 0),)), dob="2012-03-04")},
                      {("cpp_start_date_changed", "A", "CPPstartDate")}),
    "plan gone": ({"A": child("A", episode("2021-09-01"), dob="2012-03-04")}, {("cpp_missing", "A", "CPPstartDate")}),
    "plan category": ({"A": child("A", episode("2021-09-01", cpps=(("2022-01-10", None, "PHY", "NEG", 0),)), dob="2012-03-04")},
                      {("cpp_category_changed", "A", "InitialCategoryOfAbuse")}),
    "new LAchildID": ({"E": None, "E2": child("E2", episode("2022-11-01"), upn="A201123456789")},
                      {("matched_by_upn", "E2", "LAchildID")}),
    "new UPN": ({"E": child("E", episode("2022-11-01"), upn="A201999999999")}, {("identity_changed", "E", "UPN")}),
}


def found(findings: pd.DataFrame) -> set[tuple[str, str, str]]:
    return set(zip(findings["finding"], findings["LAchildID"], findings["field"]))


@pytest.fixture
def earlier(tmp_path):
    return make_return(tmp_path, E, *earlier_children())


def test_a_clean_pair_has_no_findings(tmp_path, earlier):
    later = make_return(tmp_path, L, *later_children())
    findings, counts = continuity(earlier, later)
    assert findings.empty
    assert list(findings.columns) == ["finding", "LAchildID", "UPN", "field", "earlier_year", "earlier_value",
                                      "later_year", "later_value", "detail"]
    assert counts["matched_by_LAchildID"] == 3 and counts["only_earlier"] == 1 and counts["only_later"] == 1
    assert counts["open_at_earlier_reference"] == 3


@pytest.mark.parametrize("name", list(PLANTED))
def test_each_planted_discontinuity_is_found_and_nothing_else(tmp_path, earlier, name):
    change, expected = PLANTED[name]
    later = make_return(tmp_path, L, *later_children(**change))
    findings, _ = continuity(earlier, later)
    assert found(findings) == expected
    assert findings["detail"].str.len().gt(0).all()
    assert set(findings["finding"]) <= set(FINDINGS)


def test_all_planted_discontinuities_together_are_each_found(tmp_path, earlier):
    combined: dict = {}
    expected: set = set()
    for name in ("birth date", "ethnicity", "closed case reopened", "new child with old case", "new LAchildID"):
        combined.update(PLANTED[name][0])
        expected |= PLANTED[name][1]
    findings, _ = continuity(earlier, make_return(tmp_path, L, *later_children(**combined)))
    assert found(findings) == expected


def test_finding_values_show_both_sides(tmp_path, earlier):
    later = make_return(tmp_path, L, *later_children(**PLANTED["referral re-dated"][0]))
    row = continuity(earlier, later)[0].iloc[0]
    assert (row["earlier_year"], row["earlier_value"], row["later_year"], row["later_value"]) == (
        E, "2022-06-01", L, "2022-06-03")


def test_sex_is_compared_through_the_2024_25_mapping(tmp_path):
    before = make_return(tmp_path, "2023-24", child("M", episode("2023-05-01"), sex="1"),
                         child("F", episode("2023-05-01"), sex="2"), child("U", episode("2023-05-01"), sex="9"))
    after = make_return(tmp_path, "2024-25", child("M", episode("2023-05-01"), sex="M"),
                        child("F", episode("2023-05-01"), sex="M"), child("U", episode("2023-05-01"), sex="U"))
    findings, _ = continuity(before, after)
    assert found(findings) == {("identity_changed", "F", "Sex")}
    assert tuple(findings[["earlier_value", "later_value"]].iloc[0]) == ("F", "M")
    assert "GenderCurrent 2 -> Sex M" in findings["detail"].iloc[0]


def test_children_who_reappear_after_a_gap(tmp_path):
    r1 = make_return(tmp_path, "2021-22", child("R", episode("2021-05-01", close="2021-06-01", reason="RC7")),
                     child("S", episode("2021-05-01", close="2021-06-01", reason="RC7"), upn="A201123456789"))
    r2 = make_return(tmp_path, "2022-23", child("T", episode("2022-05-01", close="2022-06-01", reason="RC7")))
    r3 = make_return(tmp_path, "2023-24", child("R", episode("2023-05-01")),
                     child("S2", episode("2023-05-01"), upn="A201123456789"), child("T", episode("2023-05-01")))
    comp = compare([r3, r1, r2])
    rows = comp.continuity[comp.continuity["finding"] == "reappeared"]
    assert set(rows["LAchildID"]) == {"R", "S2"}
    assert set(rows["earlier_year"]) == {"2021-22"} and set(rows["later_year"]) == {"2023-24"}
    assert comp.years == ["2021-22", "2022-23", "2023-24"]


def test_returns_of_different_las_or_repeated_years_are_refused(tmp_path):
    a = make_return(tmp_path, E, child("A", episode("2022-05-01")), la="201")
    b = make_return(tmp_path, L, child("A", episode("2023-05-01")), la="873")
    with pytest.raises(CinqaError, match="different local authorities.*201.*873"):
        compare([a, b])
    with pytest.raises(CinqaError, match="more than one return for census year 2022-23"):
        compare([a, a])
    with pytest.raises(CinqaError, match="at least one"):
        compare([])


def test_a_repeated_lachildid_is_noted(tmp_path):
    a = make_return(tmp_path, E, child("A", episode("2022-05-01")), child("A", episode("2022-06-01")))
    b = make_return(tmp_path, L, child("A", episode("2022-05-01")))
    comp = compare([a, b])
    assert "1 LAchildID(s) appear more than once in the 2022-23 return (A)" in comp.notes[0]


def test_years_that_are_not_consecutive_are_compared_without_continuity(tmp_path):
    a = make_return(tmp_path, "2021-22", child("A", episode("2021-05-01")))
    b = make_return(tmp_path, "2023-24", child("B", episode("2023-05-01")))
    comp = compare([a, b])
    assert comp.continuity.empty
    assert "not consecutive" in comp.notes[0]
    assert list(comp.continuity_summary["note"]) == comp.notes[:1]
    assert pd.isna(comp.continuity_summary["findings"].iloc[0])
    assert "change 2023-24" in comp.table.columns


def test_every_return_is_measured_on_its_own_so_years_stay_comparable(tmp_path):
    a = make_return(tmp_path, E, child("A", episode("2022-10-01", close="2022-11-01", reason="RC7")))
    b = make_return(tmp_path, L, child("A", episode("2023-06-01")))
    t = compare([a, b]).measures
    re = t[(t["measure"] == "re_referrals") & (t["breakdown"] == "all")]
    assert list(re["value"]) == [0, 0]       # the 2022 referral is not in the 2023-24 return


# -- the table of changes -------------------------------------------------------------------


def _tidy(values: dict[str, float], measure: str = "referrals") -> pd.DataFrame:
    return pd.DataFrame([(measure, "all", "all", y, v, "count") for y, v in values.items()],
                        columns=["measure", "breakdown", "category", "census_year", "value", "unit"])


def test_change_and_flags_against_the_threshold():
    tidy = pd.concat([_tidy({"2021-22": 1000, "2022-23": 1250, "2023-24": 1200}),
                      _tidy({"2021-22": 0, "2022-23": 7, "2023-24": 7}, "cpp_starts")])
    wide = wide_table(tidy, threshold=0.2).set_index("measure")
    assert wide.loc["referrals", "change 2022-23"] == 250
    assert wide.loc["referrals", "% change 2022-23"] == 25
    assert wide.loc["referrals", "% change 2023-24"] == pytest.approx(-4)
    assert bool(wide.loc["referrals", "flag"]) is True
    assert bool(wide.loc["cpp_starts", "flag"]) is False          # from zero: no percentage
    assert pd.isna(wide.loc["cpp_starts", "% change 2022-23"])
    assert not wide_table(tidy, threshold=0.25)["flag"].any()       # 25% is not over 25%
    ch = changes(tidy, 0.2)
    assert list(ch.loc[ch["flag"], "later_year"]) == ["2022-23"]


def test_small_counts_are_not_flagged_however_much_they_change():
    tidy = pd.concat([_tidy({"2022-23": 1, "2023-24": 15}, "cpp_starts"),
                      _tidy({"2022-23": 6, "2023-24": 40}, "referrals")])
    flags = changes(tidy, 0.2).set_index("measure")["flag"]
    assert not flags["cpp_starts"] and flags["referrals"]          # 40 reaches the default floor of 20
    flags = changes(tidy, 0.2, min_count=45).set_index("measure")["flag"]
    assert not flags.any()
    assert changes(tidy, 0.2, min_count=0)["flag"].all()
    rate = _tidy({"2022-23": 1, "2023-24": 15}, "cpp_rate").assign(unit="percent")
    assert changes(rate, 0.2)["flag"].all()                        # the floor is for counts only


def test_2012_13_sits_next_to_later_years_with_mapped_and_separate_measures(tmp_path):
    old = make_return(tmp_path, "2012-13", child("A", episode("2012-06-01", assessments=(
        ("initial", "2012-06-01", "2012-06-08"), ("core", "2012-06-11", "2012-07-20")))))
    new = make_return(tmp_path, "2013-14", child("A", episode("2012-06-01", assessments=(
        ("2013-05-01", "2013-06-03", ("3A",)),))))
    comp = compare([new, old])
    t = comp.table.set_index(["measure", "breakdown", "category"])
    assert tuple(t.loc[("assessments_completed", "all", "all"), ["2012-13", "2013-14"]]) == (2, 1)
    assert pd.isna(t.loc[("assessments_within_45_days_share", "all", "all"), "2012-13"])
    assert t.loc[("assessments_within_45_days_share", "all", "all"), "2013-14"] == 100
    assert pd.isna(t.loc[("initial_within_10_days_share", "all", "all"), "2013-14"])
    assert comp.continuity.empty


# -- the Comparison object ------------------------------------------------------------------


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> Comparison:
    """A comparison shared by the tests below, which only read it."""
    tmp_path = tmp_path_factory.mktemp("comp")
    earlier = make_return(tmp_path, E, *earlier_children())
    later = make_return(tmp_path, L, *later_children(**PLANTED["birth date"][0],
                                                     X=child("X", episode("2023-05-02")),
                                                     Y=child("Y", episode("2023-05-03", source="6")),
                                                     Z=child("Z", episode("2023-05-04", source="6"))))
    # A handful of children: every count is small, so the small-count floor and the rules beyond
    # the threshold (chance, least changes) are off here.
    return compare([earlier.path, later.path], threshold=0.2, population=50_000, min_count=0, rules={})


def test_compare_reads_paths_and_exports_every_table(comp):
    assert comp.years == [E, L] and comp.la == "201"
    frames = comp.to_frames()
    assert set(frames) == {"table", "measures", "changes", "continuity", "continuity_summary", "national",
                           "definitions"}
    assert all(isinstance(f, pd.DataFrame) for f in frames.values())
    assert "cin_31_march_rate" in set(comp.measures["measure"])
    assert "flagged" in repr(comp)


def test_returns_may_be_given_one_by_one_and_the_result_renders_as_html(tmp_path, earlier):
    later = make_return(tmp_path, L, *later_children())
    comp = compare(later, earlier, threshold=0.5)
    assert comp.years == [E, L] and comp.threshold == 0.5
    html = comp._repr_html_()
    assert "<table" in html and "Headline measures" in html and "<script" not in html
    with pytest.raises(CinqaError, match="threshold= and population= by name"):
        compare([earlier, later], 0.1)


def test_children_behind_a_figure_are_marked_by_the_years_they_appear_in(comp):
    rows = comp.children_behind("referrals")
    status = dict(zip(rows["LAchildID"], rows["status"]))
    assert status == {"B": "only in 2022-23", "C": "only in 2022-23", "E": "only in 2022-23",
                      "D": "only in 2023-24", "X": "only in 2023-24", "Y": "only in 2023-24",
                      "Z": "only in 2023-24"}
    police = comp.children_behind("referrals", "referral_source", "Police")
    assert list(police["LAchildID"]) == ["Y", "Z"]


def test_summary_tables_for_the_report(comp):
    tables = summarise(comp)
    assert list(tables) == ["Headline measures", "Flagged changes (over 20%)",
                            "Continuity between returns", "Continuity findings by type"]
    head = tables["Headline measures"]
    assert head["description"].iloc[0] == "Referrals in the year"
    assert head["flag"].dtype == bool
    assert tables["Continuity findings by type"]["findings"].sum() == len(comp.continuity)


def _has_generate_series() -> bool:
    try:
        from cinqa.synth import generate_series  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_generate_series(), reason="cinqa.synth.generate_series not written yet")
def test_a_generated_series_is_continuous_and_planted_changes_are_found(tmp_path):
    from cinqa.synth import generate_series

    returns = generate_series(years=["2022-23", "2023-24", "2024-25"], children=150, seed=7)
    comp = compare(returns)
    discrepancies = comp.continuity[~comp.continuity["finding"].isin(INFORMATION)]
    assert discrepancies.empty, discrepancies.head(10).to_string()
    for row in comp.continuity.itertuples():          # reappearances are real gaps in the series
        assert row.LAchildID not in set(returns[1].children["LAchildID"])

    before, after = returns[0], returns[1]
    planted = _plant(before, after)
    findings, _ = continuity(before, after)
    assert planted <= found(findings)
    assert len(findings) == len(planted)


def _plant(before, after) -> set[tuple[str, str, str]]:
    """Plant one discontinuity of each kind in ``after`` on children carried on from ``before``."""
    from cinqa.measures import open_episodes, open_plans

    t = after.tables
    ids = t["children"].set_index("LAchildID")["child"]
    carried = [lid for lid in open_episodes(before.episodes, before.reference_date)["LAchildID"].unique()
               if lid in ids.index]
    with_plan = [lid for lid in open_plans(before.cp_plans, before.reference_date)["LAchildID"] if lid in carried]
    with_upn = set(t["children"].loc[t["children"]["UPN"].notna(), "LAchildID"])
    with_dob = set(t["children"].loc[t["children"]["PersonBirthDate"].notna(), "LAchildID"])
    plan = with_plan[0]
    rest = [lid for lid in carried if lid not in with_plan]
    gone = rest[0]
    dob = next(lid for lid in rest[1:] if lid in with_dob)
    redated = next(lid for lid in rest[1:] if lid != dob)
    renamed = next(lid for lid in rest[1:] if lid in with_upn and lid not in (dob, redated))

    kids = t["children"]
    kids.loc[kids["LAchildID"] == dob, "PersonBirthDate"] -= pd.Timedelta(days=3)
    eps = t["episodes"]
    old_ref = before.episodes.loc[(before.episodes["LAchildID"] == redated)
                                  & before.episodes["CINclosureDate"].isna(), "CINreferralDate"].iloc[0]
    eps.loc[(eps["child"] == ids[redated]) & (eps["CINreferralDate"] == old_ref), "CINreferralDate"] -= pd.Timedelta(days=2)
    t["cp_plans"] = t["cp_plans"][t["cp_plans"]["child"] != ids[plan]]
    for name, df in t.items():
        df = df[df["child"] != ids[gone]].copy()
        df.loc[df["LAchildID"] == renamed, "LAchildID"] = "X" + renamed
        t[name] = df
    return {("identity_changed", dob, "PersonBirthDate"), ("child_missing", gone, "LAchildID"),
            ("referral_date_changed", redated, "CINreferralDate"), ("matched_by_upn", "X" + renamed, "LAchildID"),
            ("cpp_missing", plan, "CPPstartDate")}


def test_pre_proceedings_measures_are_new_in_2026_27_never_a_change_from_zero(tmp_path):
    from cinqa.testing import build_return

    comp = compare([build_return(y, None, tmp_path, name=y) for y in ("2025-26", "2026-27")], min_count=0)
    pp = comp.changes[comp.changes["measure"].str.startswith("pp_")]
    assert pp.empty and not comp.flagged()["description"].str.contains("pre-proceedings").any()
    t = comp.table.set_index(["measure", "breakdown", "category"])
    assert pd.isna(t.loc[("pp_children", "all", "all"), "2025-26"])
    assert t.loc[("pp_children", "all", "all"), "2026-27"] == 1                # the base child's module
    head = comp.headline().set_index("description")
    row = head.loc["Children in pre-proceedings in the year"]
    assert (row["2025-26"], row["2026-27"], row["% change 2026-27"]) == ("not collected", 1, "new")
    assert "StepDecisionDate N00832 (U)" in head.loc["Median days from pre-proceedings start to the step decision",
                                                     "provisional"]
    assert head.loc["Referrals in the year", "provisional"] == "" and head.loc["Referrals in the year", "2025-26"] == 1


# -- reading the comparison: whole counts, the numerator of a share, few false alarms --------------


def test_headline_and_flagged_counts_read_as_whole_numbers_and_missing_as_none(tmp_path):
    old = make_return(tmp_path, "2012-13", child("A", episode("2012-06-01")))
    new = make_return(tmp_path, "2013-14", child("A", episode("2012-06-01", assessments=(
        ("2013-05-01", "2013-06-03", ("3A",)),))))
    head = compare([old, new], min_count=0).headline().set_index("description")
    referrals = head.loc["Referrals in the year"]
    assert [type(referrals[y]) for y in ("2012-13", "2013-14")] == [int, int]
    assert str(referrals["2012-13"]) == "1"
    late = head.loc["Assessments completed within 45 working days (%)"]
    # 2012-13 timed initial and core assessments; the single 45-day assessment came the year after.
    assert late["2012-13"] == "not collected" and late["2013-14"] == 100.0 and late["% change 2013-14"] == "new"
    assert not any(str(c).startswith("change ") for c in head.columns)


def test_children_behind_a_share_are_the_records_its_numerator_counts(tmp_path):
    a = make_return(tmp_path, E, child("A", episode("2022-05-01", nfa=True)), child("B", episode("2022-06-01")))
    b = make_return(tmp_path, L, child("A", episode("2023-05-01")), child("C", episode("2023-06-01", nfa=True)),
                    child("D", episode("2023-07-01")))
    comp = compare([a, b])
    rows = comp.children_behind("referrals_nfa_share")
    assert list(zip(rows["census_year"], rows["LAchildID"])) == [(E, "A"), (L, "C")]
    assert len(comp.children_behind("referrals")) == 5


def _late(ret, every: int = 2):
    """Return a copy of ``ret`` in which every ``every``-th assessment started 100 days before its authorisation."""
    import dataclasses

    a = ret.assessments.copy()
    late = a["AssessmentAuthorisationDate"].notna() & (pd.Series(range(len(a)), index=a.index) % every == 0)
    a.loc[late, "AssessmentActualStartDate"] = a.loc[late, "AssessmentAuthorisationDate"] - pd.Timedelta(days=100)
    return dataclasses.replace(ret, tables={**ret.tables, "assessments": a})


def _all_nfa(ret, every: int = 2):
    """Return a copy of ``ret`` in which every ``every``-th referral of the year ended in no further action."""
    import dataclasses

    e = ret.episodes.copy()
    in_year = e["CINreferralDate"] >= ret.census_start
    chosen = in_year & (pd.Series(range(len(e)), index=e.index) % every == 0)
    e.loc[chosen, "ReferralNFA"] = True
    return dataclasses.replace(ret, tables={**ret.tables, "episodes": e})


@pytest.fixture(scope="module")
def series_sample():
    from pathlib import Path

    from cinqa.read import read_return

    return [read_return(p) for p in sorted((Path(__file__).parents[1] / "data" / "series").glob("*.xml"))]


def test_the_clean_series_sample_flags_few_changes(series_sample):
    comp = compare(series_sample)
    assert len(comp.changes) > 1000
    assert comp.changes["flag"].sum() <= 3, comp.flagged().to_string()


def test_a_change_planted_in_the_series_is_still_flagged(series_sample):
    *earlier, last = series_sample
    comp = compare([*earlier, _all_nfa(_late(last))])
    flagged = comp.changes[comp.changes["flag"] & (comp.changes["later_year"] == last.year)
                           & (comp.changes["breakdown"] == "all")]
    assert {"assessments_within_45_days_share", "referrals_nfa", "referrals_nfa_share"} <= set(flagged["measure"])


def test_each_unit_has_its_rule_beyond_the_threshold():
    tidy = pd.concat([_tidy({"2022-23": 100, "2023-24": 125}, "referrals"),          # +25%: within chance
                      _tidy({"2022-23": 1000, "2023-24": 1250}, "cin_31_march"),     # +25%: beyond it
                      _tidy({"2022-23": 5, "2023-24": 8}, "referrals_nfa_share").assign(unit="percent"),
                      _tidy({"2022-23": 50, "2023-24": 30}, "re_referral_share").assign(unit="percent"),
                      _tidy({"2022-23": 2, "2023-24": 3}, "icpc_duration_median").assign(unit="working days"),
                      _tidy({"2022-23": 20, "2023-24": 30}, "assessment_duration_median").assign(unit="working days")])
    flags = changes(tidy, 0.2).set_index("measure")["flag"]
    assert flags.to_dict() == {"referrals": False, "cin_31_march": True, "referrals_nfa_share": False,
                               "re_referral_share": True, "icpc_duration_median": False,
                               "assessment_duration_median": True}


def test_a_rate_is_judged_by_the_count_it_divides():
    count = _tidy({"2022-23": 100, "2023-24": 125}, "referrals")
    rate = _tidy({"2022-23": 100, "2023-24": 125}, "referrals_rate").assign(unit="per 10,000 children")
    assert not changes(pd.concat([count, rate]), 0.2)["flag"].any()
    big = count.assign(value=[1000, 1250])
    assert changes(pd.concat([big, rate]), 0.2).set_index("measure")["flag"].to_dict() == {
        "referrals": True, "referrals_rate": True}


def test_without_a_population_a_note_says_the_rates_are_missing(tmp_path, earlier):
    later = make_return(tmp_path, L, *later_children())
    assert any("No population given for 2022-23, 2023-24" in n for n in compare([earlier, later]).notes)
    some = compare([earlier, later], population={E: 50_000})
    assert any("No population given for 2023-24:" in n for n in some.notes)
    assert not any("population" in n for n in compare([earlier, later], population=50_000).notes)
    with pytest.raises(CinqaError, match="population is given for 2021-22, which is not the year of any return"):
        compare([earlier, later], population={"2021-22": 50_000})


def test_the_national_context_lays_every_year_beside_england(tmp_path, earlier):
    later = make_return(tmp_path, L, *later_children())
    path = tmp_path / "neighbours.csv"
    path.write_text("comparator,census_year,indicator,value\n"
                    + "".join(f"N{i},{L},re_referral_share,{v}\n" for i, v in enumerate((20, 21, 22))), "utf-8")
    national = compare([earlier, later], population=50_000, comparators=path).national
    assert set(national["census_year"]) == {E, L}
    row = national.set_index(["indicator", "census_year"]).loc[("re_referral_share", L)]
    assert row["comparators_median"] == 21 and row["england_value"] == 22.4
    assert national.loc[national["indicator"] == "cin_31_march_rate", "la_value"].notna().all()
    path.write_text("comparator,census_year,indicator,value\nN1,2023-24,referrals,3\n", "utf-8")
    with pytest.raises(CinqaError, match="neighbours.csv, line 2: indicator 'referrals'"):
        compare([earlier, later], comparators=path)


def test_the_rules_beyond_the_threshold_are_data_a_caller_may_replace(series_sample):
    strict = compare(series_sample[-2:])
    loose = compare(series_sample[-2:], rules={})
    assert loose.changes["flag"].sum() > 10 * max(strict.changes["flag"].sum(), 1)
    assert "beyond chance" in next(iter(k for k in strict.summary() if k.startswith("Flagged")))
    assert describe_flags(0.2, 20, {}) == ("A figure is flagged when it changes by more than 20% from the year before; "
                                           "a count below 20 in both years, or a change from zero, is never flagged.")
