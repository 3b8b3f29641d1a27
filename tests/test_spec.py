"""The per-year format specification: years, code sets, which elements and columns each year has."""

from __future__ import annotations

import pandas as pd
import pytest

from cinqa import spec


def test_years_are_consecutive_and_supported_ones_end_in_2025_26():
    assert spec.YEARS[0] == "2012-13" and spec.YEARS[-1] == "2026-27"
    ends = [spec.end_year(y) for y in spec.YEARS]
    assert ends == list(range(2013, 2028))
    assert spec.SUPPORTED_YEARS == spec.YEARS[:-1]
    assert all(spec.year_from_reference(spec.end_year(y)) == y for y in spec.YEARS)


def test_census_dates():
    assert spec.reference_date("2012-13") == pd.Timestamp("2013-03-31")
    assert spec.census_start("2024-25") == pd.Timestamp("2024-04-01")
    with pytest.raises(ValueError, match="2023/24"):
        spec.end_year("2023/24")


def test_year_expressions():
    assert spec.parse_years("2024-25..") == frozenset({"2024-25", "2025-26", "2026-27"})
    assert spec.parse_years("..2013-14") == frozenset({"2012-13", "2013-14"})
    assert spec.parse_years(None) == frozenset(spec.YEARS)
    assert spec.describe_years(frozenset({"2014-15", "2013-14", "2015-16"})) == "2013-14..2015-16"
    assert spec.describe_years(frozenset()) == "no year"
    with pytest.raises(ValueError, match="1999-00"):
        spec.parse_years("1999-00")


@pytest.mark.parametrize("codeset, code, first", [
    ("reason_for_closure", "RC9", "2022-23"), ("referral_source", "5D", "2022-23"),
    ("assessment_factor", "24A", "2021-22"), ("assessment_factor", "18B", "2020-21"),
    ("assessment_factor", "19C", "2020-21"), ("assessment_factor", "22A", "2015-16"),
    ("la", "838", "2021-22"), ("la", "839", "2021-22"), ("la", "942", "2023-24"), ("la", "943", "2023-24"),
    ("reason_for_closure", "RC8", "2012-13"), ("referral_source", "1A", "2012-13"),
    ("pp_outcome", "A", "2026-27"),
])
def test_codes_arrive_in_their_year(codeset, code, first):
    for year in spec.YEARS:
        assert (code in spec.codes(codeset, year)) == (year >= first), (code, year)
    assert spec.code_years(codeset, code) == spec.parse_years(f"{first}..")


def test_old_abuse_factors_stay_loadable():
    # 2024-25 queries 18A/19A (8945Q, 8950Q) instead of rejecting them.
    for year in ("2013-14", "2020-21", "2024-25", "2025-26"):
        assert {"18A", "19A"} <= set(spec.codes("assessment_factor", year))


def test_small_code_sets():
    assert spec.codes("sex") == ("M", "F", "U")
    assert spec.codes("gender") == ("0", "1", "2", "9")
    assert spec.codes("upn_unknown") == tuple(f"UN{i}" for i in range(1, 8))
    assert len(spec.codes("ethnicity")) == 20 and len(spec.codes("disability")) == 13
    assert spec.code_years("reason_for_closure", "RC99") == frozenset()


def test_every_code_has_a_label_except_plain_la_codes():
    for codeset in spec.CODESETS:
        labels = spec.code_labels(codeset)
        assert set(labels) == set(spec.codes(codeset))
        if codeset != "la":
            assert all(labels.values()), codeset


@pytest.mark.parametrize("table, column, years", [
    ("children", "Sex", "2024-25.."), ("children", "GenderCurrent", "..2023-24"),
    ("children", "LAchildID", None), ("episodes", "ReferralSource", "2013-14.."),
    ("episodes", "ReferralNFA", None), ("assessments", "AssessmentActualStartDate", None),
    ("assessments", "AssessmentInternalReviewDate", "2013-14.."),
    ("assessment_factors", "AssessmentFactors", "2013-14.."), ("cin_plans", "CINPlanStartDate", "2021-22.."),
    ("section47", "DateOfInitialCPC", None), ("episodes", "DateOfInitialCPC", None),
    ("pre_proceedings", "PPStartDate", "2026-27.."),
])
def test_column_years(table, column, years):
    assert spec.column_years(table, column) == spec.parse_years(years)


def test_table_years():
    assert spec.table_years("assessments") == frozenset(spec.YEARS)  # initial/core, then continuous
    assert spec.table_years("assessment_factors") == spec.parse_years("2013-14..")
    assert spec.table_years("cin_plans") == spec.parse_years("2021-22..")
    assert spec.table_years("pre_proceedings") == spec.parse_years("2026-27..")
    assert spec.table_years("children") == frozenset(spec.YEARS)


def test_table_keys_extend_their_parent():
    assert list(spec.TABLE_KEYS) == ["children", "disabilities", "episodes", "assessments", "assessment_factors",
                                     "cin_plans", "section47", "cp_plans", "cp_reviews", "pre_proceedings"]
    for table, keys in spec.TABLE_KEYS.items():
        parent = spec.table_parent(table)
        assert (parent is None) == (table == "children")
        if parent:
            assert keys[:-1] == spec.TABLE_KEYS[parent]
    assert spec.table_parent("cp_reviews") == "cp_plans"
    assert spec.table_parent("assessment_factors") == "assessments"


def test_value_columns_are_unique_and_2012_13_dates_land_in_assessments():
    for table in spec.TABLE_KEYS:
        cols = [n.column for n in spec.value_columns(table)]
        assert len(cols) == len(set(cols)), table
    assert [n.column for n in spec.value_columns("assessments")] == [
        "AssessmentActualStartDate", "AssessmentAuthorisationDate", "AssessmentInternalReviewDate"]
    assert spec.has_kind_column("assessments")
    assert not any(spec.has_kind_column(t) for t in spec.TABLE_KEYS if t != "assessments")


def test_2012_13_assessment_names_record_their_provenance():
    old = {n.name: n for n in spec.nodes() if n.row}
    assert set(old) == {"InitialAssessmentActualStartDate", "InitialAssessmentAuthorisationDate",
                        "CoreAssessmentActualStartDate", "CoreAssessmentAuthorisationDate"}
    for node in old.values():
        assert node.status == "U" and node.years == frozenset({"2012-13"}) and node.aliases
        assert node.row["table"] == "assessments" and node.row["kind"] in ("initial", "core")


def test_tags_are_unambiguous_within_each_parent():
    for node in spec.nodes():
        tags = [t for c in node.children for t in (c.name, *c.aliases)]
        assert len(tags) == len(set(tags)), node.name


def test_mandatory_elements():
    required = {n.name for n in spec.CHILD.walk() if n.min}
    assert {"LAchildID", "Ethnicity", "CINdetails", "CINreferralDate", "ReferralNFA", "GenderCurrent", "Sex",
            "S47ActualStartDate", "ICPCnotRequired", "CPPstartDate", "NumberOfPreviousCPP"} <= required
    assert not {"UPN", "PersonBirthDate", "ReferralSource", "CINclosureDate"} & required


def test_pre_proceedings_items_are_provisional_with_their_provenance():
    module = next(n for n in spec.nodes() if n.name == "PreProceedingsandFGDM")
    assert module.status == "I" and module.note and module.years == spec.parse_years("2026-27..")
    items = {c.name: c for c in module.children}
    assert [c.item for c in module.children] == [f"N00{n}" for n in range(826, 836)]
    assert all(c.status in ("I", "U") and c.note for c in module.children)
    assert {n for n, c in items.items() if c.status == "U"} == {"StepDecisionDate", "LetterInitCPDate"}
    assert items["PPOutcome"].codeset == "pp_outcome"
    assert spec.codes("pp_outcome", "2026-27") == ("A", "B", "C")
    assert all("not confirmed" in label for label in spec.code_labels("pp_outcome").values())


def test_every_free_text_leaf_has_a_length_and_a_provisional_one_says_where_it_came_from():
    # A free-text value with no limit would carry a runaway value into every table, chart and cell.
    free = [n for n in spec.nodes() if n.kind == "leaf" and n.type == "str" and not n.codeset]
    assert {n.name for n in free} >= {"LAchildID", "SoftwareCode", "Release", "SerialNo"}
    assert [n.name for n in free if n.length is None] == []
    assert all(n.length_status in ("V", "I", "U") for n in free)
    assert [n.name for n in free if n.length_status != "V" and "cin-spec.md" not in (n.length_note or "")] == []
