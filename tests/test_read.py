"""The reader: every year's fixture, year detection, structural issues with lines, and no value lost."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree

from cinqa import read_return, spec
from cinqa.errors import YearError

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_YEARS = ["2012-13", "2013-14", "2016-17", "2020-21", "2021-22", "2022-23", "2023-24", "2024-25",
                 "2025-26", "2026-27"]
RELABELLED_YEARS = ["2014-15", "2015-16", "2017-18", "2018-19", "2019-20"]

# The element whose occurrences are each table's rows, for checking `line`.
ROW_ELEMENT = {
    "children": "Child", "disabilities": "Disability", "episodes": "CINdetails", "assessments": "Assessments",
    "assessment_factors": "AssessmentFactors", "cin_plans": "CINPlanDates", "section47": "Section47",
    "cp_plans": "ChildProtectionPlans", "cp_reviews": "CPPreviewDate", "pre_proceedings": "PreProceedingsandFGDM",
}
HEADER_FIELDS = {"Collection": "collection", "Year": "year", "ReferenceDate": "reference_date", "LEA": "la",
                 "SourceLevel": "source_level", "SoftwareCode": "software", "Release": "release",
                 "SerialNo": "serial", "DateTime": "datetime"}


def fixture(year: str) -> Path:
    return FIXTURES / f"cin-{year}.xml"


def relabel(text: str, year: str) -> str:
    """Give a return's text the header Year and ReferenceDate of census ``year``."""
    end = spec.end_year(year)
    text = re.sub(r"<Year>\d{4}</Year>", f"<Year>{end}</Year>", text)
    return re.sub(r"<ReferenceDate>[^<]*</ReferenceDate>", f"<ReferenceDate>{end}-03-31</ReferenceDate>", text)


def write(tmp_path: Path, text: str, name: str = "return.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """Return the 1-based line of the ``nth`` occurrence of ``needle``."""
    pos = -1
    for _ in range(nth):
        pos = text.index(needle, pos + 1)
    return text.count("\n", 0, pos) + 1


def issue_rows(ret, element: str) -> pd.DataFrame:
    return ret.issues[ret.issues["element"] == element]


# -- every year's fixture -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=FIXTURE_YEARS)
def year_return(request):
    return request.param, read_return(fixture(request.param))


def test_fixture_reads_cleanly_as_its_year(year_return):
    year, ret = year_return
    assert ret.year == year
    assert ret.issues.empty, ret.issues.to_string()
    assert ret.header.year == spec.end_year(year)
    assert ret.header.reference_date == spec.reference_date(year)
    assert ret.header.collection == "CIN" and re.fullmatch(r"\d{3}", ret.header.la)
    assert list(ret.tables) == list(spec.TABLE_KEYS)
    assert len(ret.children) >= 1 and len(ret.episodes) >= len(ret.children)


def test_fixture_columns_have_the_documented_types(year_return):
    year, ret = year_return
    for name, df in ret.tables.items():
        keys = list(spec.TABLE_KEYS[name])
        assert list(df.columns[: len(keys)]) == keys
        assert df.columns[len(keys)] == "LAchildID" and df.columns[-1] == "line"
        for k in keys:
            assert df[k].dtype == "int64", (name, k)
        assert df["line"].dtype == "Int64"
        assert df["LAchildID"].notna().all()
        for node in spec.value_columns(name):
            if node.column not in df or node.column == "LAchildID":
                continue
            dtype = str(df[node.column].dtype)
            expected = {"date": "datetime64[s]", "bool": "boolean", "int": "Int64"}.get(node.type)
            if node.codeset:
                expected = "category"
                assert set(spec.codes(node.codeset, year)) <= set(df[node.column].cat.categories)
            if expected:
                assert dtype == expected, (name, node.column, dtype)
            # Missing is missing, never the text "nan".
            assert not df[node.column].astype("object").isin(["nan", "None", "NaT", ""]).any()


def test_fixture_columns_follow_the_year(year_return):
    year, ret = year_return
    for name, df in ret.tables.items():
        for node in spec.value_columns(name):
            assert (node.column in df) == (year in spec.column_years(name, node.column)), (name, node.column)
    assert ("Sex" in ret.children) == (year >= "2024-25")
    assert ("GenderCurrent" in ret.children) == (year <= "2023-24")
    assert ("ReferralSource" in ret.episodes) == (year >= "2013-14")


def test_fixture_keys_lines_and_ids_match_the_xml(year_return):
    year, ret = year_return
    tree = etree.parse(str(fixture(year)))
    ids = dict(zip(ret.children["child"], ret.children["LAchildID"]))
    assert list(ret.children["LAchildID"]) == [e.text for e in tree.iter("LAchildID")]
    for name, df in ret.tables.items():
        keys = list(spec.TABLE_KEYS[name])
        assert not df.duplicated(keys).any()
        # Ordinals are 1..n within each parent, in document order.
        if len(df):
            own = df.groupby(keys[:-1], sort=False)[keys[-1]].agg(list) if len(keys) > 1 else [list(df[keys[0]])]
            for ordinals in own:
                assert ordinals == list(range(1, len(ordinals) + 1))
        parent = spec.table_parent(name)
        if parent:
            parent_keys = set(map(tuple, ret.tables[parent][keys[:-1]].to_numpy().tolist()))
            assert set(map(tuple, df[keys[:-1]].to_numpy().tolist())) <= parent_keys
        assert list(df["LAchildID"]) == [ids[c] for c in df["child"]]
        rows = df if name != "assessments" else df[df["kind"] == "continuous"]
        assert sorted(rows["line"]) == [e.sourceline for e in tree.iter(ROW_ELEMENT[name])], name


def test_fixture_values_match_the_xml(year_return):
    year, ret = year_return
    tree = etree.parse(str(fixture(year)))
    eps = ret.episodes
    assert list(eps["CINreferralDate"].dt.strftime("%Y-%m-%d")) == [e.text for e in tree.iter("CINreferralDate")]
    nfa = [e.text.lower() in ("true", "1") for e in tree.iter("ReferralNFA")]
    assert list(eps["ReferralNFA"]) == nfa
    assert list(ret.disabilities["Disability"].astype(str)) == [e.text for e in tree.iter("Disability")]
    assert list(ret.cp_plans["NumberOfPreviousCPP"]) == [int(e.text) for e in tree.iter("NumberOfPreviousCPP")]


@pytest.mark.parametrize("year", RELABELLED_YEARS)
def test_years_between_fixtures_read_cleanly(tmp_path, year):
    # 2014-15..2019-20 share 2013-14's structure; 22A/23A are absent from the fixture so it fits all.
    ret = read_return(write(tmp_path, relabel(fixture("2013-14").read_text(), year)))
    assert ret.year == year
    assert ret.issues.empty, ret.issues.to_string()
    assert len(ret.assessment_factors) == 5


def test_every_supported_year_is_covered():
    covered = set(FIXTURE_YEARS) | set(RELABELLED_YEARS)
    assert set(spec.SUPPORTED_YEARS) <= covered


# -- entities and edges ---------------------------------------------------------------------------


def test_assessment_kinds_are_spec_s_in_the_reader_synth_and_the_timescales():
    from cinqa import synth
    from cinqa.measures import ASSESSMENT_TIMESCALE

    assert tuple(read_return(fixture("2012-13")).assessments["kind"].cat.categories) == spec.ASSESSMENT_KINDS
    made = synth.generate("2012-13", children=20, seed=1)
    assert tuple(made.assessments["kind"].cat.categories) == spec.ASSESSMENT_KINDS
    assert tuple(ASSESSMENT_TIMESCALE) == spec.ASSESSMENT_KINDS


def test_2012_13_initial_and_core_assessments_are_rows_with_a_kind():
    ret = read_return(fixture("2012-13"))
    a = ret.assessments
    assert list(a["kind"].astype(str)) == ["initial", "core", "initial", "initial"]
    assert list(zip(a["child"], a["episode"], a["assessment"])) == [(1, 1, 1), (1, 1, 2), (2, 1, 1), (2, 2, 1)]
    assert a["AssessmentActualStartDate"].dt.strftime("%Y-%m-%d").tolist() == [
        "2012-05-08", "2012-05-21", "2012-09-04", "2013-03-19"]
    assert a["AssessmentAuthorisationDate"].isna().tolist() == [False, False, False, True]
    assert a.loc[1, "AssessmentAuthorisationDate"] == pd.Timestamp("2012-07-06")
    text = fixture("2012-13").read_text()
    assert a.loc[1, "line"] == line_of(text, "<CoreAssessmentActualStartDate>")
    assert "ReferralSource" not in ret.episodes and ret.assessment_factors.empty and ret.cin_plans.empty


def test_2012_13_older_spellings_are_accepted(tmp_path):
    text = fixture("2012-13").read_text().replace("InitialAssessmentAuthorisationDate", "InitialAssessmentEndDate")
    ret = read_return(write(tmp_path, text))
    assert ret.issues.empty
    assert ret.assessments.loc[0, "AssessmentAuthorisationDate"] == pd.Timestamp("2012-05-18")


def test_unborn_child_and_child_without_disabilities():
    ret = read_return(fixture("2023-24"))
    unborn = ret.children.set_index("LAchildID").loc["C002"]
    assert pd.isna(unborn["PersonBirthDate"]) and unborn["ExpectedPersonBirthDate"] == pd.Timestamp("2024-06-20")
    assert unborn["GenderCurrent"] == "0"
    assert "C002" not in set(ret.disabilities["LAchildID"])
    ret = read_return(fixture("2024-25"))
    assert ret.children.set_index("LAchildID").loc["X2402", "Sex"] == "U"


def test_several_episodes_and_repeated_blocks():
    ret = read_return(fixture("2016-17"))
    assert ret.episodes.groupby("LAchildID").size().to_dict() == {"S1601": 1, "S1602": 3, "S1603": 1}
    assert ret.cp_reviews["review"].tolist() == [1, 2, 3]
    assert ret.assessments.loc[0, "AssessmentInternalReviewDate"] == pd.Timestamp("2016-06-01")
    ret = read_return(fixture("2013-14"))
    first = ret.assessments[(ret.assessments["child"] == 1) & (ret.assessments["episode"] == 1)]
    assert first["assessment"].tolist() == [1, 2]
    assert ret.section47.groupby(["child", "episode"]).size().to_dict() == {(1, 1): 2}
    ret = read_return(fixture("2021-22"))
    assert ret.cin_plans["CINPlanEndDate"].isna().tolist() == [False, True]
    assert ret.cin_plans["cin_plan"].tolist() == [1, 2]


def test_empty_optional_blocks_give_no_rows():
    ret = read_return(fixture("2013-14"))
    # The second assessment has no factors; the plan has no reviews; the NFA episode has no assessment.
    assert set(ret.assessment_factors["assessment"][ret.assessment_factors["episode"] == 1]) == {1}
    assert ret.cp_plans["CPPendDate"].notna().all() and ret.cp_reviews.empty
    nfa_child = ret.children.set_index("LAchildID").loc["T1402", "child"]
    assert nfa_child not in set(ret.assessments["child"])


def test_header_keeps_unmodelled_values_and_utc_offset():
    ret = read_return(fixture("2020-21"))
    assert ret.header.extra == (("Source/CBDSLevel", "Child"), ("Content/CBDSLevels/CBDSLevel", "Child"))
    assert ret.header.datetime == pd.Timestamp("2021-04-30T11:00:00Z")


def test_pre_proceedings_in_the_provisional_year():
    ret = read_return(fixture("2026-27"))
    pp = ret.pre_proceedings
    assert len(pp) == 1 and pp.loc[0, "ReviewMeetingsCount"] == 2 and bool(pp.loc[0, "FGDMMeetingOffer"]) is True


# -- year detection -------------------------------------------------------------------------------


def drop_header_year(text: str, keep_reference: bool = False) -> str:
    text = re.sub(r"\s*<Year>\d{4}</Year>", "", text)
    return text if keep_reference else re.sub(r"\s*<ReferenceDate>[^<]*</ReferenceDate>", "", text)


def test_year_from_reference_date_when_year_is_missing(tmp_path):
    ret = read_return(write(tmp_path, drop_header_year(fixture("2016-17").read_text(), keep_reference=True)))
    assert ret.year == "2016-17"
    assert issue_rows(ret, "Year")["problem"].str.contains("the header has no <Year>").all()


@pytest.mark.parametrize("year, expected", [("2012-13", "2012-13"), ("2024-25", "2025-26"),
                                            ("2021-22", "2023-24")])
def test_year_from_structure_when_the_header_has_none(tmp_path, year, expected):
    ret = read_return(write(tmp_path, drop_header_year(fixture(year).read_text())))
    assert ret.year == expected
    problems = " ".join(issue_rows(ret, "Year")["problem"])
    assert f"the header gives no census year; {expected} was assumed from the file's structure" in problems
    assert len(ret.children) == len(read_return(fixture(year)).children)


def test_explicit_year_overrides_the_header(tmp_path):
    ret = read_return(fixture("2013-14"), year="2015-16")
    assert ret.year == "2015-16"
    (problem,) = issue_rows(ret, "Year")["problem"]
    assert problem == "the header says 2013-14; read as 2015-16 as asked"
    assert issue_rows(ret, "Year")["severity"].tolist() == ["warning"]


@pytest.mark.parametrize("override, how", [(None, "2023-24 as <Year> says"), ("2022-23", "2022-23 as asked")])
def test_year_and_reference_date_that_disagree(tmp_path, override, how):
    text = fixture("2023-24").read_text().replace("<ReferenceDate>2024-03-31", "<ReferenceDate>2023-03-31")
    ret = read_return(write(tmp_path, text), year=override)
    row = only_issue(ret, "ReferenceDate")
    assert row["problem"] == ("<ReferenceDate> 2023-03-31 falls in the 2022-23 census but <Year> 2024 names 2023-24; "
                              f"read as {how}")
    assert row["line"] == line_of(text, "<ReferenceDate>") and row["severity"] == "error"
    assert row["value"] == "2023-03-31" and row["table"] == "header"


def test_unknown_override_is_a_year_error():
    with pytest.raises(YearError, match="2030-31"):
        read_return(fixture("2013-14"), year="2030-31")


def test_unsupported_header_year_asks_for_an_override(tmp_path):
    from cinqa.errors import ReadError

    with pytest.raises(ReadError, match=r"census year 2010-11 is not supported.*pass year="):
        read_return(write(tmp_path, relabel(fixture("2012-13").read_text(), "2010-11")))


def test_sex_in_a_2022_23_file_is_a_clear_disagreement(tmp_path):
    text = fixture("2022-23").read_text().replace("<GenderCurrent>2</GenderCurrent>", "<Sex>F</Sex>")
    ret = read_return(write(tmp_path, text))
    assert ret.year == "2022-23"
    year_issue = issue_rows(ret, "Year")["problem"].tolist()
    assert year_issue == ["the file is read as 2022-23, but it uses <Sex> (2024-25..2026-27); "
                          "no single census year has all of its elements"]
    sex = issue_rows(ret, "Sex")
    assert sex["line"].tolist() == [line_of(text, "<Sex>")]
    assert sex["problem"].tolist() == ["<Sex> is not part of the 2022-23 census (it belongs to 2024-25..2026-27)"]
    missing = issue_rows(ret, "GenderCurrent")
    assert missing["problem"].tolist() == ["<GenderCurrent> is missing"]
    assert missing["LAchildID"].tolist() == ["E2201"]


def test_assessments_in_a_2012_13_file_is_a_clear_disagreement(tmp_path):
    block = ("<Assessments><AssessmentActualStartDate>2012-06-01</AssessmentActualStartDate></Assessments>\n"
             "        <Section47>")  # where the format of later years puts it
    text = fixture("2012-13").read_text().replace("<Section47>", block, 1)
    ret = read_return(write(tmp_path, text))
    assert ret.year == "2012-13"
    (problem,) = issue_rows(ret, "Year")["problem"]
    assert problem == ("the file is read as 2012-13, but it uses <Assessments> (2013-14..2026-27); "
                       "no single census year has all of its elements")
    assert issue_rows(ret, "Assessments")["line"].tolist() == [line_of(text, "<Assessments>")]
    # The continuous assessment is still loaded, beside the initial and core ones.
    assert ret.assessments["kind"].astype(str).tolist().count("continuous") == 1


# -- structural issues ----------------------------------------------------------------------------


BASE = "2023-24"


def mutated(tmp_path: Path, old: str, new: str, count: int = 1) -> tuple[str, object]:
    text = fixture(BASE).read_text()
    assert old in text
    text = text.replace(old, new, count)
    return text, read_return(write(tmp_path, text))


def only_issue(ret, element: str) -> pd.Series:
    rows = issue_rows(ret, element)
    assert len(rows) == 1, ret.issues.to_string()
    return rows.iloc[0]


def test_unknown_element(tmp_path):
    text, ret = mutated(tmp_path, "<Ethnicity>WBRI</Ethnicity>",
                        "<Ethnicity>WBRI</Ethnicity><Hobby>Chess</Hobby>")
    row = only_issue(ret, "Hobby")
    assert row["line"] == line_of(text, "<Hobby>")
    assert row["problem"] == "unknown element <Hobby> inside <ChildCharacteristics>"
    assert row["value"] == "Chess" and row["LAchildID"] == "C001" and row["child"] == 1


def test_misplaced_element(tmp_path):
    text, ret = mutated(tmp_path, "<Disabilities>\n          <Disability>AUT</Disability>",
                        "<Disability>VIS</Disability><Disabilities>\n          <Disability>AUT</Disability>")
    row = only_issue(ret, "Disability")
    assert row["line"] == line_of(text, "<Disability>VIS")
    assert row["problem"] == "<Disability> is misplaced inside <ChildCharacteristics>; it belongs inside <Disabilities>"
    assert row["value"] == "VIS"
    assert ret.disabilities["Disability"].astype(str).tolist() == ["AUT", "LD", "NONE"]


def test_missing_mandatory_element(tmp_path):
    text, ret = mutated(tmp_path, "<CINreferralDate>2023-09-11</CINreferralDate>", "")
    row = only_issue(ret, "CINreferralDate")
    assert row["problem"] == "<CINreferralDate> is missing"
    assert row["line"] == line_of(text, "<CINdetails>", 2) and row["table"] == "episodes"
    assert ret.episodes["CINreferralDate"].isna().sum() == 1 and len(ret.episodes) == 4


def test_missing_mandatory_block(tmp_path):
    text = fixture(BASE).read_text()
    start, end = text.index("<CINdetails>", text.index("C002")), text.index("</CINdetails>", text.index("C002"))
    text = text[:start] + text[end + len("</CINdetails>"):]
    ret = read_return(write(tmp_path, text))
    row = only_issue(ret, "CINdetails")
    assert row["problem"] == "the child has no <CINdetails>" and row["LAchildID"] == "C002"
    assert row["line"] == line_of(text, "<Child>", 2)


def test_duplicate_leaf_keeps_the_first(tmp_path):
    text, ret = mutated(tmp_path, "<Ethnicity>WBRI</Ethnicity>", "<Ethnicity>WBRI</Ethnicity><Ethnicity>WOTH</Ethnicity>")
    row = only_issue(ret, "Ethnicity")
    assert row["problem"] == "<Ethnicity> appears more than once; the first value (WBRI) is kept"
    assert row["value"] == "WOTH" and row["line"] == line_of(text, "<Ethnicity>WOTH")
    assert ret.children.loc[0, "Ethnicity"] == "WBRI"


@pytest.mark.parametrize("old, new, element, after, parent", [
    ("<UPN>A201123456789</UPN>\n        <PersonBirthDate>2015-06-01</PersonBirthDate>",
     "<PersonBirthDate>2015-06-01</PersonBirthDate>\n        <UPN>A201123456789</UPN>", "UPN", "PersonBirthDate",
     "ChildIdentifiers"),
    ("<ReferralNFA>0</ReferralNFA>", "<ReferralNFA>0</ReferralNFA><Assessments><AssessmentActualStartDate>2023-10-01"
     "</AssessmentActualStartDate></Assessments>", "Assessments", "ReferralNFA", "CINdetails"),
    ("<InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse>\n          <LatestCategoryOfAbuse>EMO</LatestCategoryOfAbuse>",
     "<LatestCategoryOfAbuse>EMO</LatestCategoryOfAbuse>\n          <InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse>",
     "InitialCategoryOfAbuse", "LatestCategoryOfAbuse", "ChildProtectionPlans"),
])
def test_out_of_order_elements_are_reported_and_still_read(tmp_path, old, new, element, after, parent):
    text, ret = mutated(tmp_path, old, new)
    row = only_issue(ret, element)
    assert row["problem"] == (f"<{element}> is out of order inside <{parent}>: it comes after <{after}>, which the "
                              "census format puts after it")
    assert row["line"] == line_of(text, f"<{element}>" if element != "Assessments" else "<ReferralNFA>0")
    assert row["severity"] == "error" and row["LAchildID"] == "C001" and len(ret.issues) == 1
    good = read_return(fixture(BASE))
    for name in ("children", "assessments", "cp_plans"):
        assert len(ret.tables[name]) == len(good.tables[name]) + (name == "assessments" and element == "Assessments")
    assert ret.children.loc[0, "UPN"] == "A201123456789" and ret.cp_plans.loc[0, "InitialCategoryOfAbuse"] == "NEG"


@pytest.mark.parametrize("old, new, element, parent, rows", [
    ("</Reviews>", "</Reviews>\n          <Reviews><CPPreviewDate>2024-03-01</CPPreviewDate></Reviews>", "Reviews",
     "ChildProtectionPlans", ("cp_reviews", 2)),
    ("</ChildIdentifiers>", "</ChildIdentifiers><ChildIdentifiers><FormerUPN>A201123456780</FormerUPN>"
     "</ChildIdentifiers>", "ChildIdentifiers", "Child", ("children", 1)),
    ("</Disabilities>", "</Disabilities><Disabilities><Disability>VIS</Disability></Disabilities>", "Disabilities",
     "ChildCharacteristics", ("disabilities", 3)),
])
def test_an_element_allowed_once_that_appears_twice(tmp_path, old, new, element, parent, rows):
    text, ret = mutated(tmp_path, old, new)
    row = only_issue(ret, element)
    assert row["problem"] == (f"<{element}> appears more than once inside <{parent}>, which may hold one; "
                              "every one is read")
    assert row["line"] == line_of(text, f"<{element}>", 2) and len(ret.issues) == 1
    table, n = rows
    assert (ret.tables[table]["child"] == 1).sum() == n  # the second one's values are read too


def test_a_return_with_no_child(tmp_path):
    text = fixture(BASE).read_text()
    text = text[:text.index("<Child>")] + text[text.rindex("</Child>") + len("</Child>"):]
    ret = read_return(write(tmp_path, text))
    row = only_issue(ret, "Child")
    assert row["problem"] == "the return has no <Child>; a census return holds at least one"
    assert row["line"] == line_of(text, "<Children>") and ret.children.empty


@pytest.mark.parametrize("old, new, element, problem", [
    ("<PersonBirthDate>2015-06-01", "<PersonBirthDate>2013-02-30", "PersonBirthDate",
     "<PersonBirthDate> '2013-02-30' is not a valid date (YYYY-MM-DD)"),
    ("<CINreferralDate>2023-04-03", "<CINreferralDate>03/04/2023", "CINreferralDate",
     "<CINreferralDate> '03/04/2023' is not a valid date (YYYY-MM-DD)"),
    ("<CINreferralDate>2023-04-03", "<CINreferralDate>today", "CINreferralDate",
     "<CINreferralDate> 'today' is not a valid date (YYYY-MM-DD)"),
    ("<CINreferralDate>2023-04-03", "<CINreferralDate>2023-4-3", "CINreferralDate",
     "<CINreferralDate> '2023-4-3' is not a valid date (YYYY-MM-DD)"),
    ("<ReferralNFA>false", "<ReferralNFA>no", "ReferralNFA", "<ReferralNFA> 'no' is not true, false, 1 or 0"),
    ("<NumberOfPreviousCPP>0", "<NumberOfPreviousCPP>none", "NumberOfPreviousCPP",
     "<NumberOfPreviousCPP> 'none' is not a whole number"),
    ("<NumberOfPreviousCPP>0", "<NumberOfPreviousCPP>1.5", "NumberOfPreviousCPP",
     "<NumberOfPreviousCPP> '1.5' is not a whole number"),
    ("<Ethnicity>WBRI", "<Ethnicity>wbri", "Ethnicity",
     "<Ethnicity> 'wbri' is not a valid ethnicity code in 2023-24 (did you mean 'WBRI'?)"),
    ("<Disability>AUT", "<Disability>XYZ", "Disability", "<Disability> 'XYZ' is not a valid disability code in 2023-24"),
    ("<UPN>A201123456789", "<UPN>A2011234567", "UPN",
     r"<UPN> 'A2011234567' does not match the pattern [A-Za-z]\d{11}[0-9A-Za-z]"),
])
def test_bad_values_are_reported_with_their_line(tmp_path, old, new, element, problem):
    text, ret = mutated(tmp_path, old, new)
    row = only_issue(ret, element)
    assert row["problem"] == problem
    assert row["line"] == line_of(text, new)
    assert row["value"] == new.split(">", 1)[1]
    assert row["severity"] == "error" and row["LAchildID"] == "C001"


def test_bad_values_load_as_missing_and_codes_keep_the_bad_value(tmp_path):
    _, ret = mutated(tmp_path, "<Ethnicity>WBRI", "<Ethnicity>wbri")
    assert ret.children.loc[0, "Ethnicity"] == "wbri" and "wbri" in ret.children["Ethnicity"].cat.categories
    _, ret = mutated(tmp_path, "<PersonBirthDate>2015-06-01", "<PersonBirthDate>2013-02-30")
    assert pd.isna(ret.children.loc[0, "PersonBirthDate"])


def test_code_from_a_later_year_says_when_it_is_valid(tmp_path):
    text = fixture("2021-22").read_text().replace("<ReasonForClosure>RC6", "<ReasonForClosure>RC9")
    ret = read_return(write(tmp_path, text))
    row = only_issue(ret, "ReasonForClosure")
    assert row["problem"] == ("<ReasonForClosure> 'RC9' is not a valid reason for closure code in 2021-22 "
                              "(it is valid in 2022-23..2026-27)")
    assert row["line"] == line_of(text, "<ReasonForClosure>RC9")


def test_header_problems_are_reported(tmp_path):
    text, ret = mutated(tmp_path, "<LEA>201</LEA>", "<LEA>999</LEA>")
    row = only_issue(ret, "LEA")
    assert row["problem"] == "<LEA> '999' is not a valid la code in 2023-24" and row["table"] == "header"


def test_whitespace_around_dates_is_trimmed(tmp_path):
    # xs:date, xs:boolean and xs:integer collapse XML whitespace, so the format allows it there.
    _, ret = mutated(tmp_path, "<PersonBirthDate>2015-06-01</PersonBirthDate>",
                     "<PersonBirthDate>\n   2015-06-01 \t</PersonBirthDate>")
    assert ret.issues.empty and ret.children.loc[0, "PersonBirthDate"] == pd.Timestamp("2015-06-01")


@pytest.mark.parametrize("old, raw, element", [
    ("<ReasonForClosure>RC8</ReasonForClosure>", " RC8 ", "ReasonForClosure"),
    ("<Ethnicity>WBRI</Ethnicity>", "\n   WBRI \t", "Ethnicity"),
    ("<Disability>AUT</Disability>", "AUT ", "Disability"),
    ("<UPN>A201123456789</UPN>", " A201123456789", "UPN"),
    ("<LAchildID>C001</LAchildID>", "C001 ", "LAchildID"),
    ("<PersonBirthDate>2015-06-01</PersonBirthDate>", "2015-06-01\u00a0", "PersonBirthDate"),
])
def test_spaces_around_a_value_the_format_keeps_are_reported(tmp_path, old, raw, element):
    # Codes and text keep their spaces in the schema (xs:string), so " RC8 " is no code; no type
    # drops a space XML does not count as whitespace (no-break space).
    text, ret = mutated(tmp_path, old, f"<{element}>{raw}</{element}>")
    value = raw.strip()
    row = only_issue(ret, element)
    assert row["problem"] == (f"<{element}> has spaces around its value, which the census format does not allow; "
                              f"it is read as '{value}'")
    assert row["value"] == raw and row["severity"] == "error" and len(ret.issues) == 1
    assert row["line"] == line_of(text, f"<{element}>{raw}") and row["LAchildID"] == "C001"
    good = read_return(fixture(BASE))
    for name, df in good.tables.items():  # the stripped value is read, so the rules check it
        pd.testing.assert_frame_equal(ret.tables[name].drop(columns="line"), df.drop(columns="line"), obj=name)


@pytest.mark.parametrize("old, new, element, child", [
    ("<SoftwareCode>Hand written", "<SoftwareCode>" + "Système".encode("utf-8").decode("latin-1"), "SoftwareCode", None),
    ("<SoftwareCode>Hand written", "<SoftwareCode>Syst\ufffdme", "SoftwareCode", None),
    ("<LAchildID>C001", "<LAchildID>" + "Zoë".encode("utf-8").decode("cp1252"), "LAchildID", "ZoÃ«"),
    ("<LAchildID>C001", "<LAchildID>C\ufffd001", "LAchildID", "C\ufffd001"),
])
def test_mis_encoded_text_is_a_warning(tmp_path, old, new, element, child):
    text, ret = mutated(tmp_path, old, new)
    row = only_issue(ret, element)
    assert row["severity"] == "warning" and len(ret.issues) == 1
    assert row["problem"] == (f"<{element}> holds text that looks wrongly decoded (such as 'Ã©' for 'é', or '\ufffd' "
                              "for a character that was lost); check the encoding the file was saved in")
    assert row["line"] == line_of(text, new) and row["value"] == new.split(">", 1)[1]
    assert row["LAchildID"] == child if child else pd.isna(row["LAchildID"])


def test_well_decoded_text_is_no_warning(tmp_path):
    _, ret = mutated(tmp_path, "<SoftwareCode>Hand written", "<SoftwareCode>Système Zoë – “CIN” £5")
    assert ret.issues.empty and ret.header.software == "Système Zoë – “CIN” £5"


def test_empty_values_and_empty_lists(tmp_path):
    text, ret = mutated(tmp_path, "<PrimaryNeedCode>N4</PrimaryNeedCode>", "<PrimaryNeedCode/>")
    assert only_issue(ret, "PrimaryNeedCode")["problem"] == "<PrimaryNeedCode> is empty"
    text, ret = mutated(tmp_path, "<Reviews>\n            <CPPreviewDate>2024-02-07</CPPreviewDate>\n          </Reviews>",
                        "<Reviews></Reviews>")
    row = only_issue(ret, "Reviews")
    assert row["problem"] == "<Reviews> holds no <CPPreviewDate>; leave the group out instead"
    assert row["line"] == line_of(text, "<Reviews>")


def test_imperfect_file_still_loads_everything_loadable(tmp_path):
    text = fixture(BASE).read_text()
    for old, new in [("<Ethnicity>WBRI", "<Ethnicity>wbri"), ("<PersonBirthDate>2015-06-01", "<PersonBirthDate>2013-02-30"),
                     ("<ReferralNFA>0", "<ReferralNFA>maybe"), ("<GenderCurrent>2</GenderCurrent>", ""),
                     ("<CINreferralDate>2024-01-15</CINreferralDate>", "<CINreferralDate>2024-01-15</CINreferralDate><X>1</X>")]:
        text = text.replace(old, new, 1)
    ret = read_return(write(tmp_path, text))
    good = read_return(fixture(BASE))
    assert len(ret.issues) == 5
    for name in spec.TABLE_KEYS:
        assert len(ret.tables[name]) == len(good.tables[name]), name
    assert ret.children["LAchildID"].tolist() == good.children["LAchildID"].tolist()
    assert ret.episodes["CINreferralDate"].equals(good.episodes["CINreferralDate"])
    assert ret.cp_reviews.drop(columns="line").equals(good.cp_reviews.drop(columns="line"))


def test_missing_file_is_a_read_error(tmp_path):
    from cinqa.errors import ReadError

    with pytest.raises(ReadError, match="no such file"):
        read_return(tmp_path / "absent.xml")
    with pytest.raises(ReadError, match="not a regular file"):
        read_return(tmp_path)


# -- no data lost (issue 9 item 2) ----------------------------------------------------------------

_TYPES = {n.name: n for n in spec.nodes() if n.kind == "leaf"}
_TYPES.update({a: n for n in spec.nodes() if n.kind == "leaf" for a in n.aliases})
_TYPES.update({n.leaf.name: n.leaf for n in spec.nodes() if n.leaf is not None})


def normal(value: object) -> str:
    """Spell a typed table value as census XML does."""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def normal_xml(tag: str, text: str) -> str:
    node = _TYPES.get(tag)
    if node is not None and node.type == "bool" and text.lower() in ("true", "1", "false", "0"):
        return "true" if text.lower() in ("true", "1") else "false"
    if node is not None and node.type == "datetime":
        try:
            return pd.Timestamp(text).isoformat()
        except ValueError:
            return text
    return text


def xml_values(path: Path) -> Counter:
    """Count every leaf value of the file (an element without sub-elements and with text)."""
    out: Counter = Counter()
    for elem in etree.parse(str(path)).iter():
        if isinstance(elem.tag, str) and not len(elem) and elem.text and elem.text.strip():
            out[normal_xml(elem.tag, elem.text.strip())] += 1
    return out


def loaded_values(ret) -> tuple[Counter, list[str]]:
    """Count every value the return holds in its header and tables; list the issues' values."""
    out: Counter = Counter()
    h = ret.header
    for field in HEADER_FIELDS.values():
        v = getattr(h, field)
        if v is not None:
            out[v.isoformat() if field == "datetime" else normal(v)] += 1
    out.update(v for _, v in h.extra)
    for name, df in ret.tables.items():
        skip = {*spec.TABLE_KEYS[name], "line", "kind"} | ({"LAchildID"} if name != "children" else set())
        for col in df.columns.difference(list(skip)):
            values = df[col].astype("object")
            out.update(normal(v) for v in values[values.notna()])
    issues = [str(v) for v in ret.issues["value"].dropna()]
    return out, issues


def assert_nothing_lost(path: Path) -> None:
    ret = read_return(path)
    xml = xml_values(path)
    loaded, issues = loaded_values(ret)
    unaccounted = xml - loaded
    invented = loaded - xml
    assert not invented, f"values in the tables that the file does not hold: {invented}"
    for value, n in unaccounted.items():
        found = sum(v.split().count(value) if " " in v and v != value else v == value for v in issues)
        assert found >= n, f"{value!r} x{n} is neither in the tables nor in the issues"
    assert sum(xml.values()) == sum(loaded.values()) + sum(unaccounted.values())


@pytest.mark.parametrize("year", FIXTURE_YEARS)
def test_no_value_is_lost_from_a_fixture(year):
    assert_nothing_lost(fixture(year))


def test_no_value_is_lost_from_a_damaged_file(tmp_path):
    text = fixture(BASE).read_text()
    for old, new in [("<Ethnicity>WBRI</Ethnicity>", "<Ethnicity>WBRI</Ethnicity><Ethnicity>WOTH</Ethnicity>"),
                     ("<PersonBirthDate>2015-06-01", "<PersonBirthDate>2013-02-30"),
                     ("<Disabilities>", "<Disability>VIS</Disability><Disabilities>"),
                     ("<ReferralNFA>0", "<ReferralNFA>maybe"),
                     ("<Ethnicity>NOBT", "<Ethnicity>nobt"),
                     ("<ReferralNFA>true</ReferralNFA>", "<ReferralNFA>true</ReferralNFA><Extra><A>x1</A><B>x2</B></Extra>"),
                     ("<CINreferralDate>2023-04-03</CINreferralDate>",
                      "<CINreferralDate>2023-04-03</CINreferralDate><CINreferralDate>2023-04-04</CINreferralDate>"),
                     ("<LEA>201</LEA>", "<LEA>201</LEA><Region>North</Region>"),
                     ("<Children>", "<Children><Note>loose</Note>")]:
        assert old in text
        text = text.replace(old, new, 1)
    path = write(tmp_path, text)
    assert len(read_return(path).issues) >= 9
    assert_nothing_lost(path)


@pytest.mark.parametrize("year", FIXTURE_YEARS)
def test_counting_sees_a_dropped_value(tmp_path, year):
    """The no-loss check can fail: a reader that dropped values would be caught."""
    path = fixture(year)
    ret = read_return(path)
    ret.tables["episodes"] = ret.episodes.iloc[1:]
    loaded, issues = loaded_values(ret)
    assert xml_values(path) - loaded


def test_lines_past_65535_are_exact(tmp_path):
    # libxml2 reports lines past 65535 from an element's first child node, one line late here.
    text = fixture(BASE).read_text().replace("<Message>\n", "<Message>\n" + "\n" * 70_000, 1)
    text = text.replace("<Ethnicity>NOBT", "<Ethnicity>nobt").replace("<Ethnicity>WBRI</Ethnicity>",
                                                                       "<Ethnicity>WBRI</Ethnicity><Odd/>")
    ret = read_return(write(tmp_path, text))
    for name, df in ret.tables.items():
        rows = df if name != "assessments" else df[df["kind"] == "continuous"]
        tag = ROW_ELEMENT[name]
        expected = [line_of(text, f"<{tag}>", k + 1) for k in range(text.count(f"<{tag}>"))]
        assert rows["line"].tolist() == expected, name
    lines = dict(zip(ret.issues["element"], ret.issues["line"]))
    assert lines == {"Ethnicity": line_of(text, "<Ethnicity>nobt"), "Odd": line_of(text, "<Odd/>")}


@pytest.mark.parametrize("year", spec.SUPPORTED_YEARS)
def test_no_value_is_lost_from_a_generated_file(tmp_path, year):
    synth = pytest.importorskip("cinqa.synth")
    from cinqa import write_return

    path = write_return(synth.generate(year, children=40, seed=11), tmp_path / "gen.xml")
    assert read_return(path).issues.empty
    assert_nothing_lost(path)
