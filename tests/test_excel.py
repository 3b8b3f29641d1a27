"""The Excel error report, opened back with openpyxl and checked sheet by sheet."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

import cinqa
from cinqa.excel import ERROR_FILL, QUERY_FILL, write_error_report
from cinqa.failures import FAILURE_COLUMNS, summarise
from cinqa.pseudonymise import pseudonymise_failures, pseudonymise_return, return_scrubber
from cinqa.teams import NO_TEAM, pseudonymise_teams, read_teams

FIXTURE = Path(__file__).parent / "fixtures" / "cin-2023-24.xml"


def failures_frame() -> pd.DataFrame:
    """Failures in the shape ``cinqa.validate`` produces, for the 2023-24 fixture."""
    rows = [
        ("8525Q", "query", "Either Date of Birth or Expected Date of Birth must be provided (but not both)",
         "children", 2, "C002", None, None, "PersonBirthDate,ExpectedPersonBirthDate",
         {"PersonBirthDate": None, "ExpectedPersonBirthDate": dt.date(2024, 6, 20)}, 84),
        ("8606", "error", "Child referral date is more than 40 weeks before DOB or expected DOB", "episodes",
         1, "C001", 1, 1, "CINreferralDate,PersonBirthDate",
         {"CINreferralDate": dt.date(2023, 4, 3), "PersonBirthDate": dt.date(2015, 6, 1)}, 34),
        ("8606", "error", "Child referral date is more than 40 weeks before DOB or expected DOB", "episodes",
         1, "C001", 2, 2, "CINreferralDate,PersonBirthDate",
         {"CINreferralDate": dt.date(2023, 9, 11), "PersonBirthDate": dt.date(2015, 6, 1)}, 49),
        ("1510", "error", "UPN invalid (wrong check letter at character 1)", "children", 3, "C003", None, None,
         "UPN", {"UPN": "A201987654321"}, 101),
        ("2886Q", "query", "Percentage of children with no gender recorded is more than 2% (excluding unborns)",
         "return", None, None, None, None, "GenderCurrent", {"children_without_gender": 7}, None),
        ("2060", "error", "Review date before the plan started", "cp_reviews", 3, "C003", 1, 2, "CPPreviewDate",
         {"CPPreviewDate": dt.date(2023, 7, 20), "CPPstartDate": dt.date(2022, 12, 1)}, 136),
    ]
    df = pd.DataFrame(rows, columns=list(FAILURE_COLUMNS))
    for col in ("child", "episode", "item", "line"):
        df[col] = df[col].astype("Int64")
    return df


@pytest.fixture(scope="module")
def ret() -> cinqa.CensusReturn:
    return cinqa.read_return(FIXTURE)


@pytest.fixture(scope="module")
def workbook(ret: cinqa.CensusReturn, tmp_path_factory: pytest.TempPathFactory) -> openpyxl.Workbook:
    path = tmp_path_factory.mktemp("xlsx") / "errors.xlsx"
    write_error_report(path, failures_frame(), ret, generated_at=dt.datetime(2024, 5, 2, 10, 0))
    return openpyxl.load_workbook(path)


def rows_of(ws: openpyxl.worksheet.worksheet.Worksheet) -> list[dict[str, object]]:
    values = list(ws.iter_rows(values_only=True))
    return [dict(zip(values[0], r)) for r in values[1:]]


def test_sheets_come_in_reading_order(workbook: openpyxl.Workbook) -> None:
    assert workbook.sheetnames == ["About", "Summary", "By child", "return", "children", "episodes", "cp_reviews",
                                   "Structural issues"]


def test_cover_names_the_file_and_says_it_is_not_pseudonymised(workbook: openpyxl.Workbook) -> None:
    facts = {r[0]: r[1] for r in workbook["About"].iter_rows(values_only=True) if r and r[0]}
    assert facts["File"] == "cin-2023-24.xml" and facts["LA"] == "201" and facts["Census year"] == "2023-24"
    assert facts["Generated at"] == "2024-05-02 10:00:00"
    assert facts["Pseudonymised"].startswith("no")
    assert (facts["Errors"], facts["Queries"], facts["Structural issues"]) == (4, 2, 0)
    assert facts["Verdict"] == "Not ready to submit (errors)" and facts["Rules not evaluated"] == 0


def test_summary_has_one_row_per_rule_errors_first(workbook: openpyxl.Workbook) -> None:
    summary = rows_of(workbook["Summary"])
    assert list(summary[0]) == ["rule", "severity", "message", "status", "note", "how to fix", "children", "rows"]
    assert [r["rule"] for r in summary] == ["1510", "2060", "8606", "2886Q", "8525Q"]
    row = next(r for r in summary if r["rule"] == "8606")
    assert (row["children"], row["rows"]) == (1, 2)


def test_every_table_sheet_has_a_frozen_filtered_header(workbook: openpyxl.Workbook) -> None:
    for name in workbook.sheetnames[1:]:
        ws = workbook[name]
        assert ws.freeze_panes == "B2", name
        assert ws.auto_filter.ref == f"A1:{ws.cell(1, ws.max_column).column_letter}{ws.max_row}", name
        assert all(ws.cell(1, c).font.bold for c in range(1, ws.max_column + 1)), name
        widths = [ws.column_dimensions[ws.cell(1, c).column_letter].width for c in range(1, ws.max_column + 1)]
        assert all(8 <= w <= 60 for w in widths), name


def test_entity_rows_carry_the_row_values_and_highlight_the_rule_fields(workbook: openpyxl.Workbook) -> None:
    ws = workbook["episodes"]
    header = [c.value for c in ws[1]]
    assert header[:4] == ["LAchildID", "rule", "severity", "message"]
    assert {"episode", "line", "CINreferralDate", "ReferralSource", "PersonBirthDate"} <= set(header)
    first = {h: c for h, c in zip(header, ws[2])}
    assert first["LAchildID"].value == "C001" and first["ReferralSource"].value == "2A"
    assert first["CINreferralDate"].value == dt.datetime(2023, 4, 3)
    assert first["PersonBirthDate"].value == dt.datetime(2015, 6, 1)
    assert first["CINreferralDate"].fill.fgColor.rgb.endswith(ERROR_FILL.fgColor.rgb[-6:])
    assert first["PersonBirthDate"].fill.fgColor.rgb.endswith(ERROR_FILL.fgColor.rgb[-6:])
    assert first["ReferralSource"].fill.fill_type is None
    assert first["CINclosureDate"].number_format == first["CINreferralDate"].number_format == "yyyy-mm-dd"


def test_queries_are_highlighted_in_their_own_colour(workbook: openpyxl.Workbook) -> None:
    ws = workbook["children"]
    header = [c.value for c in ws[1]]
    cells = {r[0].value + "/" + r[1].value: dict(zip(header, r)) for r in ws.iter_rows(min_row=2)}
    query = cells["C002/8525Q"]
    assert query["ExpectedPersonBirthDate"].fill.fgColor.rgb.endswith(QUERY_FILL.fgColor.rgb[-6:])
    assert query["UPNunknown"].value == "UN1" and query["UPNunknown"].fill.fill_type is None
    error = cells["C003/1510"]
    assert error["UPN"].value == "A201987654321"
    assert error["UPN"].fill.fgColor.rgb.endswith(ERROR_FILL.fgColor.rgb[-6:])


def test_deep_entities_show_their_keys(workbook: openpyxl.Workbook) -> None:
    (row,) = rows_of(workbook["cp_reviews"])
    assert (row["episode"], row["cpp"], row["review"], row["line"]) == (1, 1, 2, 136)
    assert row["CPPreviewDate"] == dt.datetime(2023, 7, 20)


def test_la_level_rules_get_a_sheet_without_child_columns(workbook: openpyxl.Workbook) -> None:
    (row,) = rows_of(workbook["return"])
    assert row["rule"] == "2886Q" and "LAchildID" not in row
    assert row["children_without_gender"] == 7


def test_structural_issues_sheet_lists_the_reader_issues(ret: cinqa.CensusReturn, tmp_path: Path) -> None:
    issues = pd.DataFrame({"line": pd.array([7], dtype="Int64"), "severity": ["error"], "table": [None],
                           "child": pd.array([1], dtype="Int64"), "LAchildID": ["C001"], "element": ["Colour"],
                           "problem": ["unknown element <Colour> inside <Child>"], "value": ["blue"]})
    path = write_error_report(tmp_path / "e.xlsx", failures_frame().iloc[:0], ret, issues=issues)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["About", "Summary", "By child", "Structural issues"]
    (row,) = rows_of(wb["Structural issues"])
    assert row["problem"] == "unknown element <Colour> inside <Child>" and row["line"] == 7


def test_values_that_look_like_formulas_stay_text(ret: cinqa.CensusReturn, tmp_path: Path) -> None:
    failures = failures_frame().iloc[[3]].copy()
    failures["message"] = '=HYPERLINK("http://example.invalid","x")'
    path = write_error_report(tmp_path / "f.xlsx", failures, ret)
    ws = openpyxl.load_workbook(path)["children"]
    cell = ws["D2"]
    assert cell.value == '=HYPERLINK("http://example.invalid","x")' and cell.data_type == "s"


def test_works_without_a_return(tmp_path: Path) -> None:
    path = write_error_report(tmp_path / "g.xlsx", failures_frame())
    wb = openpyxl.load_workbook(path)
    (row,) = [r for r in rows_of(wb["children"]) if r["rule"] == "1510"]
    assert row["UPN"] == "A201987654321"
    assert [p.name for p in tmp_path.iterdir()] == ["g.xlsx"]


def test_pseudonymised_workbook_holds_no_identifier(ret: cinqa.CensusReturn, tmp_path: Path) -> None:
    key = bytes(range(32))
    failures = pseudonymise_failures(failures_frame(), key, return_scrubber(ret, key))
    path = write_error_report(tmp_path / "p.xlsx", failures, pseudonymise_return(ret, key), pseudonymised=True)
    with zipfile.ZipFile(path) as z:
        blob = b"".join(z.read(n) for n in z.namelist())
    for value in ("C001", "C002", "C003", "A201123456789", "A201987654321", "A201111111111", "2009-12-24",
                  "2024-06-20"):
        assert value.encode() not in blob
    facts = {r[0]: r[1] for r in openpyxl.load_workbook(path)["About"].iter_rows(values_only=True) if r and r[0]}
    assert facts["Pseudonymised"].startswith("yes")


def test_missing_contract_columns_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fields"):
        write_error_report(tmp_path / "h.xlsx", failures_frame().drop(columns="fields"))
    assert not any(tmp_path.iterdir())


def test_summary_of_a_rule_on_the_whole_return_counts_no_child() -> None:
    summary = summarise(failures_frame())
    assert summary.set_index("rule").loc["2886Q", "children"] == 0


def test_a_value_holding_separators_reaches_its_cell_unchanged(ret: cinqa.CensusReturn, tmp_path: Path) -> None:
    failures = failures_frame().iloc[[1]].copy()
    failures["values"] = [{"CINreferralDate": dt.date(2023, 4, 3), "ReferralSource": "A; B=C", "Odd": "x=1; y"}]
    failures["fields"] = "CINreferralDate, ReferralSource"
    path = write_error_report(tmp_path / "s.xlsx", failures)
    (row,) = rows_of(openpyxl.load_workbook(path)["episodes"])
    assert (row["ReferralSource"], row["CINreferralDate"]) == ("A; B=C", dt.datetime(2023, 4, 3))


def test_summary_gives_each_rule_its_status_and_note_in_the_year(workbook: openpyxl.Workbook) -> None:
    summary = {r["rule"]: r for r in rows_of(workbook["Summary"])}
    assert summary["8606"]["status"] == "V"
    assert summary["8606"]["note"] == "Measured from the date of birth, or the expected date of birth when there is none."
    assert summary["8525Q"]["note"] is None  # no note: an empty cell
    guide = " ".join(str(r[1]) for r in workbook["About"].iter_rows(values_only=True) if r and len(r) > 1 and r[1])
    assert "V read in a DfE rule list, I inferred from other years, U unverified" in guide


def test_why_says_in_plain_words_what_the_rule_read(workbook: openpyxl.Workbook) -> None:
    children = rows_of(workbook["children"])
    query = next(r for r in children if r["rule"] == "8525Q")
    assert query["why"] == ("PersonBirthDate is empty; ExpectedPersonBirthDate is 2024-06-20. Rule 8525Q flags: "
                            "Either Date of Birth or Expected Date of Birth must be provided (but not both)")
    (row,) = rows_of(workbook["return"])
    assert row["why"].startswith("children without gender is 7. Rule 2886Q flags: Percentage of children")
    header = [c.value for c in workbook["episodes"][1]]
    assert header[:5] == ["LAchildID", "rule", "severity", "message", "why"]


def test_dates_are_date_cells_and_a_missing_date_is_an_empty_cell(workbook: openpyxl.Workbook) -> None:
    seen = 0
    for name in ("children", "episodes", "cp_reviews"):
        ws = workbook[name]
        header = [c.value for c in ws[1]]
        for col, name_ in enumerate(header, start=1):
            if not str(name_).endswith("Date"):
                continue
            for (cell,) in ws.iter_rows(min_row=2, min_col=col, max_col=col):
                assert not isinstance(cell.value, str), (name, name_, cell.value)
                if cell.value is not None:
                    seen += 1
                    assert cell.is_date and cell.number_format == "yyyy-mm-dd", (name, name_, cell.number_format)
                    assert (cell.value.hour, cell.value.minute, cell.value.second) == (0, 0, 0)
    assert seen >= 8
    c002 = next(r for r in rows_of(workbook["children"]) if r["LAchildID"] == "C002")
    assert c002["PersonBirthDate"] is None and c002["ExpectedPersonBirthDate"] == dt.datetime(2024, 6, 20)


def test_every_table_sheet_prints_landscape_one_page_wide_with_its_header(workbook: openpyxl.Workbook) -> None:
    for name in workbook.sheetnames[1:]:
        ws = workbook[name]
        assert ws.page_setup.orientation == "landscape", name
        assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == (1, 0), name
        assert ws.sheet_properties.pageSetUpPr.fitToPage, name
        assert ws.print_title_rows == "$1:$1", name


def test_by_child_sheet_has_one_row_per_child_most_errors_first(workbook: openpyxl.Workbook) -> None:
    rows = rows_of(workbook["By child"])
    assert [(r["LAchildID"], r["errors"], r["queries"], r["rules"], r["sheets"], r["first line"]) for r in rows] == [
        ("C001", 2, 0, "8606", "episodes", 34),
        ("C003", 2, 0, "1510, 2060", "children, cp_reviews", 101),
        ("C002", 0, 1, "8525Q", "children", 84),
    ]


# --- worklists by team ---

TEAMS = "LAchildID,team,worker\nC001,East,Ann Smith\nC002,West,Bo Jones\nC009,Adoption,Cy Lee\n"


@pytest.fixture(scope="module")
def team_workbook(ret: cinqa.CensusReturn, tmp_path_factory: pytest.TempPathFactory) -> openpyxl.Workbook:
    folder = tmp_path_factory.mktemp("teams")
    (folder / "teams.csv").write_text(TEAMS, encoding="utf-8")
    path = write_error_report(folder / "errors.xlsx", failures_frame(), ret, teams=folder / "teams.csv")
    return openpyxl.load_workbook(path)


def test_without_a_lookup_the_workbook_has_no_team_sheet_nor_team_list(workbook: openpyxl.Workbook) -> None:
    assert workbook.sheetnames == ["About", "Summary", "By child", "return", "children", "episodes", "cp_reviews",
                                   "Structural issues"]
    assert not any(r[0] == "Teams" for r in workbook["About"].iter_rows(values_only=True))


def test_each_team_gets_a_sheet_after_by_child_the_children_without_a_team_last(team_workbook) -> None:
    assert team_workbook.sheetnames == ["About", "Summary", "By child", "East", "West", NO_TEAM, "return",
                                        "children", "episodes", "cp_reviews", "Structural issues"]


def test_a_team_sheet_is_its_rows_of_by_child_with_the_worker(team_workbook) -> None:
    by_child = rows_of(team_workbook["By child"])
    east, west, none = (rows_of(team_workbook[n]) for n in ("East", "West", NO_TEAM))
    assert [(r["team"], r["LAchildID"], r["worker"]) for r in east + west + none] == [
        ("East", "C001", "Ann Smith"), ("West", "C002", "Bo Jones"), (NO_TEAM, "C003", None)]
    for row in east + west + none:
        # Every column of the By child sheet, whatever its builder gives, is on the team's sheet too.
        (same,) = [r for r in by_child if r["LAchildID"] == row["LAchildID"]]
        assert {k: row[k] for k in same} == same
    assert list(east[0]) == ["team", "LAchildID", "worker", *[k for k in by_child[0] if k != "LAchildID"]]


def test_team_sheets_freeze_filter_and_print_like_by_child(team_workbook) -> None:
    for name in ("East", "West", NO_TEAM):
        ws = team_workbook[name]
        assert ws.freeze_panes == "B2" and ws.auto_filter.ref.startswith("A1:"), name
        assert ws.page_setup.orientation == "landscape" and ws.print_title_rows == "$1:$1", name


def test_the_cover_lists_every_team_with_its_counts_and_sheet(team_workbook) -> None:
    rows = [r for r in team_workbook["About"].iter_rows(values_only=True) if r and r[0]]
    start = next(i for i, r in enumerate(rows) if r[0] == "Teams")
    assert [r[:2] for r in rows[start + 1:start + 5]] == [
        ("Adoption", "nothing to fix"),
        ("East", "1 child to fix: 2 errors, 0 queries; sheet 'East'"),
        ("West", "1 child to fix: 0 errors, 1 query; sheet 'West'"),
        (NO_TEAM, f"1 child to fix: 2 errors, 1 query; sheet '{NO_TEAM}'"),
    ]


def test_team_sheet_names_keep_to_excels_limits_and_stay_unique(ret: cinqa.CensusReturn, tmp_path: Path) -> None:
    long = "Children's Social Care / Safeguarding North"
    teams = tmp_path / "teams.csv"
    teams.write_text(f'LAchildID,team\nC001,"{long} A"\nC002,"{long} B"\nC003,EPISODES\n', encoding="utf-8")
    path = write_error_report(tmp_path / "t.xlsx", failures_frame(), ret, teams=teams)
    names = openpyxl.load_workbook(path).sheetnames
    assert names[3:6] == ["Children's Social Care _ Safegu", "Children's Social Care _ Sa (2)", "EPISODES (2)"]
    assert "episodes" in names  # the entity sheet keeps its name; the team's gives way
    assert len({n.casefold() for n in names}) == len(names) and max(map(len, names)) <= 31


def test_a_formula_like_team_name_is_text_and_its_sheet_name_is_not_a_formula(ret: cinqa.CensusReturn,
                                                                               tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://example.invalid","x")'
    teams = tmp_path / "teams.csv"
    teams.write_text('LAchildID,team\nC001,"=HYPERLINK(""http://example.invalid"",""x"")"\nC002,\'History\'\n',
                     encoding="utf-8")
    path = write_error_report(tmp_path / "f.xlsx", failures_frame(), ret, teams=teams)
    wb = openpyxl.load_workbook(path)
    names = wb.sheetnames
    assert names[3:5] == ["History (2)", '_HYPERLINK("http___example.inva']
    assert wb[names[4]]["A2"].value == formula and wb[names[4]]["A2"].data_type == "s"
    (label,) = [row[0] for row in wb["About"].iter_rows() if row[0].value == formula]
    assert label.data_type == "s"


def test_a_pseudonymised_workbook_names_no_worker(ret: cinqa.CensusReturn, tmp_path: Path) -> None:
    key = bytes(range(32))
    scrub = return_scrubber(ret, key)
    failures = pseudonymise_failures(failures_frame(), key, scrub)
    (tmp_path / "teams.csv").write_text(TEAMS, encoding="utf-8")
    teams = pseudonymise_teams(read_teams(tmp_path / "teams.csv"), key, scrub)
    path = write_error_report(tmp_path / "p.xlsx", failures, pseudonymise_return(ret, key), pseudonymised=True,
                              teams=teams)
    wb = openpyxl.load_workbook(path)
    assert [r["LAchildID"] for r in rows_of(wb["East"])] == [teams.table["LAchildID"].iloc[0]]
    assert not any("worker" in rows_of(wb[n])[0] for n in ("East", "West", NO_TEAM))
    with zipfile.ZipFile(path) as z:
        blob = b"".join(z.read(n) for n in z.namelist())
    for value in ("C001", "C002", "C003", "Ann Smith", "Bo Jones"):
        assert value.encode() not in blob, value


def test_failures_and_by_child_say_how_to_fix_each_rule_beside_its_message(workbook: openpyxl.Workbook) -> None:
    fixes = {e.rule: e.guidance for e in cinqa.rules.rules_for_year("2023-24")}
    for name in ("children", "episodes"):
        header = [c.value for c in workbook[name][1]]
        assert header[:6] == ["LAchildID", "rule", "severity", "message", "why", "how to fix"], name
        for row in rows_of(workbook[name]):
            assert row["how to fix"] == fixes[row["rule"]], (name, row["rule"])
    episode = rows_of(workbook["episodes"])[0]
    assert episode["message"] == "Child referral date is more than 40 weeks before DOB or expected DOB"
    by_child = {r["LAchildID"]: r["how to fix"] for r in rows_of(workbook["By child"])}
    # A rule no suite knows (2060 here) has no guidance and no line; the others one line each, in rule order.
    assert by_child["C003"] == f"1510: {fixes['1510']}"
    assert by_child["C001"] == f"8606: {fixes['8606']}"
    summary = {r["rule"]: r for r in rows_of(workbook["Summary"])}
    assert summary["8606"]["how to fix"] == fixes["8606"] and summary["2060"]["how to fix"] is None


def test_by_child_lists_the_guidance_of_each_of_a_childs_rules() -> None:
    from cinqa.excel import children_frame

    failures = failures_frame()
    fixes = {e.rule: e.guidance for e in cinqa.rules.rules_for_year("2023-24")}
    failures.loc[3, "rule"], failures.loc[5, "rule"] = "8500", "1510"
    frame = children_frame(failures, "2023-24").set_index("LAchildID")
    assert frame.loc["C003", "how to fix"].split("\n") == [f"1510: {fixes['1510']}", f"8500: {fixes['8500']}"]
    assert (children_frame(failures)["how to fix"] == "").all()


def test_the_failures_list_takes_explanations_and_flags_a_stale_one(ret: cinqa.CensusReturn,
                                                                   tmp_path: Path) -> None:
    from cinqa import explanations as ex
    from cinqa.failures import identity

    failures = failures_frame()
    ids = identity(failures)
    given = pd.DataFrame([
        {"census_year": "2023-24", "LA": "201", "rule": "8525Q", "LAchildID": "C002", "row": ids.at[0, "row"],
         "explanation": "Unborn at the census date", "who": "A", "date": "2024-05-01", "values_hash": "0" * 16},
        {"census_year": "2023-24", "LA": "201", "rule": "2886Q", "LAchildID": "", "row": "return",
         "explanation": "Gender not asked of babies", "who": "B", "date": "2024-05-02",
         "values_hash": ids.at[4, "values_hash"]}]).astype("str")
    explained = ex.match(failures, given)
    path = write_error_report(tmp_path / "e.xlsx", failures, ret, explained=explained, explanations_file="x.csv")
    wb = openpyxl.load_workbook(path)
    about = {r[0]: r[1] for r in wb["About"].iter_rows(values_only=True) if r[0]}
    assert (about["Queries explained"], about["Queries unexplained"], about["Explanations stale"]) == (1, 1, 1)
    children = rows_of(wb["children"])
    head = list(children[0])
    assert head[head.index("why") + 1: head.index("why") + 3] == ["explanation", "explanation status"]
    assert head[-2:] == ["row", "values_hash"]
    stale = next(r for r in children if r["rule"] == "8525Q")
    assert stale["explanation"] is None
    assert stale["explanation status"] == f"stale: {ex.VALUES_CHANGED}; it said: Unborn at the census date"
    assert next(r for r in children if r["rule"] == "1510")["explanation status"] is None
    current = rows_of(wb["return"])[0]
    assert current["explanation"] == "Gender not asked of babies"
    assert current["explanation status"] == "explained (B, 2024-05-02)"
