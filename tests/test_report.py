"""The QA report: the verdict and sections on hand-built failures, then the rendered HTML file itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
from html import escape, unescape
import re
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from cinqa import read_return
from cinqa.errors import CsvError, ReadError
from cinqa.failures import ERRORED_COLUMNS, FAILURE_COLUMNS, identity, summarise
from cinqa.report import NOTEBOOK, QAReport, _strip_noise, external_references, render_report
from cinqa.rules import rules_for_year
from cinqa.teams import NO_TEAM
from cinqa.validate import Validation

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE = ROOT / "data" / "sample-2025-26.xml"
IDS = ("C001", "C002", "C003", "A201123456789", "A201987654321")
SECTIONS = ("Readiness for submission", "The return", "Structural problems", "Validation summary",
            "Query explanations", "Failures by rule", "Distributions", "COLLECT views", "Key indicators",
            "Assessments working days summary", "ICPC working days summary",
            "CPP at 31 March by initial and latest category of abuse", "Factors at assessment", "Referral source",
            "Referrals, assessments and plans starting and ending by month",
            "Children with a CPP of two years or more", "CPPs reviewed within timescales",
            "Children with more than one CPP", "Pre-proceedings", "National context", "Year on year")


def failures(*rows):
    cols = list(FAILURE_COLUMNS)
    df = pd.DataFrame([dict(zip(cols, r)) for r in rows], columns=cols)
    for c in ("child", "episode", "item", "line"):
        df[c] = df[c].astype("Int64")
    return df


ERROR = ("8565", "error", "Activity shown after a case has been closed", "cp_plans", 1, "C001", 2, 1,
         "CPPstartDate", {"CPPstartDate": dt.date(2023, 11, 15)}, 72)
QUERY = ("8525Q", "query", "Either Date of Birth or Expected Date of Birth", "children", 1, "C001", None, None,
         "PersonBirthDate,UPN", {"PersonBirthDate": dt.date(2015, 6, 17), "UPN": "A201123456789"}, 20)


@pytest.fixture(scope="module")
def ret():
    return read_return(FIXTURES / "cin-2023-24.xml")


def validation(ret, *rows, errored=()):
    f = failures(*rows)
    return Validation(year=ret.year, ret=ret, failures=f, summary=summarise(f), gx_result={}, checked=(),
                      errored=pd.DataFrame(list(errored), columns=list(ERRORED_COLUMNS)))


def report(ret, *rows, **kw):
    return QAReport([ret], validation(ret, *rows), **kw)


# --- the verdict ---

def test_errors_mean_not_ready(ret):
    html = report(ret, ERROR, QUERY).verdict().data
    assert "Not ready to submit (errors)" in html and "1 error under 1 rule, affecting 1 child," in html
    assert "1 query under 1 rule needs correcting" in html


def test_queries_only_need_explaining(ret):
    html = report(ret, QUERY).verdict().data
    assert "Ready once the queries are explained" in html and "return-level note" in html


def test_a_clean_return_is_ready(ret):
    assert "Ready to submit" in report(ret).verdict().data


def test_structural_errors_mean_the_return_was_not_fully_checked(ret):
    issues = pd.DataFrame([{"line": 5, "severity": "error", "table": None, "child": None, "LAchildID": None,
                            "element": "Year", "problem": "bad year", "value": "20x4"}])
    qa = report(dataclasses.replace(ret, issues=issues), QUERY)
    assert "Not fully checked" in qa.verdict().data and "1 structural problem" in qa.verdict().data
    assert "href='#Structural-problems'" in qa.verdict().data
    assert "bad year" in qa.structural_issues().data


def test_without_a_validation_the_report_validates_the_return(ret):
    qa = QAReport([ret])
    assert qa.validation.ret is ret
    assert "Not ready to submit (errors)" in qa.verdict().data  # the fixture's made-up UPN check letters
    assert "id='rule-1510'" in qa.rule_tables().data


def test_rules_that_errored_are_reported(ret):
    qa = QAReport([ret], validation(ret, ERROR, errored=[{"rule": "8600", "entity": "episodes",
                                                          "expectation": "x", "error": "boom"}]))
    html = qa.verdict().data
    assert "Not fully checked" in html and "1 rule could not be evaluated" in html and "lower bounds" in html
    assert "1 error under 1 rule" in html  # the errors found are still listed
    assert "boom" in qa.validation_summary().data


# --- the sections ---

def test_rule_tables_give_each_rule_a_heading_and_cap_its_rows(ret):
    many = [ERROR[:4] + (1, "C001", 2, 1, "CPPstartDate", {"CPPstartDate": f"x{i}"}, 72) for i in range(5)]
    html = report(ret, *many, QUERY).rule_tables(max_rows=3).data
    assert html.index("id='rule-8565'") < html.index("id='rule-8525Q'")  # errors first
    assert "5 failing rows, 1 child" in html and "Showing the first 3 of 5 rows." in html


def test_rule_tables_have_no_unlabelled_index_column(ret):
    # A rule's rows apart in the failures table: their row numbers are not a range.
    html = report(ret, QUERY, ERROR, ERROR, QUERY, QUERY).rule_tables().data
    heads = re.findall(r"<thead><tr>(.*?)</tr></thead>", html)
    assert len(heads) == 2
    for head in heads:
        names = re.findall(r"<th[^>]*>(.*?)</th>", head)
        assert names == ["LAchildID", "entity", "episode", "item", "values", "line"]


def test_rules_show_their_status_and_note_in_the_summary_and_their_tables(ret):
    qa = report(ret, ERROR, QUERY)
    summary = qa.validation_summary().data
    assert "<th" in summary and ">status</th>" in summary and ">note</th>" in summary
    assert "V read in a DfE rule list" in summary
    tables = qa.rule_tables().data
    assert "status V (read in a DfE rule list)" in tables
    assert "Note: DfE module ChildProtectionPlans" in tables


def test_each_rule_table_says_how_to_fix_the_rule_under_its_dfe_message(ret):
    tables = report(ret, ERROR, QUERY).rule_tables().data
    for code, message in (("8565", ERROR[2]), ("8525Q", QUERY[2])):
        guidance = next(e.guidance for e in rules_for_year(ret.year) if e.rule == code)
        section = tables[tables.index(f"id='rule-{code}'"):]
        shown = f"<p>{message}<br><b>How to fix:</b> {escape(guidance)}<br>"
        assert shown in section[:section.index("<table")], code
    assert tables.count("How to fix:") == 2


def test_structural_issues_are_listed_errors_first_in_file_order(ret):
    issues = pd.DataFrame([
        {"line": 30, "severity": "warning", "table": None, "child": None, "LAchildID": None, "element": "A",
         "problem": "odd", "value": None},
        {"line": 40, "severity": "error", "table": None, "child": 2, "LAchildID": "C002", "element": "B",
         "problem": "bad two", "value": None},
        {"line": 9, "severity": "error", "table": None, "child": None, "LAchildID": None, "element": "C",
         "problem": "bad one", "value": None}])
    html = report(dataclasses.replace(ret, issues=issues)).structural_issues().data
    assert html.index("bad one") < html.index("bad two") < html.index("odd")
    assert ">child</th>" not in html and ">line</th>" in html


def test_pseudonymised_sections_show_no_identifier(ret):
    qa = report(ret, ERROR, QUERY, pseudonymise=True, key=b"k" * 32)
    text = " ".join(x.data for x in (qa.rule_tables(), qa.view("cpp_reviews_within_timescales"),
                                     qa.view("assessment_working_days"), qa.title()))
    assert not any(i in text for i in IDS)
    assert "PersonBirthDate=2015-06-01" in text  # birth dates coarsened to the month
    assert re.search(r"P[0-9a-f]{12}", text)


def test_explanations_show_queries_explained_and_unexplained_by_rule_and_the_stale_ones(ret):
    second = QUERY[:5] + ("C002",) + QUERY[6:]
    current = identity(failures(QUERY)).iloc[0]
    given = pd.DataFrame([
        {"census_year": ret.year, "LA": ret.header.la, "rule": "8525Q", "LAchildID": "C001", "row": current["row"],
         "explanation": "Unborn at the census date, C001's mother confirmed", "who": "A", "date": "2024-05-01",
         "values_hash": current["values_hash"]},
        {"census_year": ret.year, "LA": ret.header.la, "rule": "8606", "LAchildID": "C003", "row": "episodes 1",
         "explanation": "Referred before birth", "who": "A", "date": "2024-05-01", "values_hash": "0" * 16}])
    plain = unescape(report(ret, ERROR, QUERY, second, explanations=given).explanations().data)
    assert "1 query explained, 1 query unexplained; 1 explanation stale." in plain
    assert re.search(r"8525Q</td>\s*<td[^>]*>2</td>\s*<td[^>]*>1</td>\s*<td[^>]*>1</td>", plain)
    assert "Referred before birth" in plain and "the query no longer occurs" in plain
    hidden = unescape(report(ret, ERROR, QUERY, second, explanations=given, pseudonymise=True,
                             key=b"k" * 32).explanations().data)
    assert "Referred before birth" in hidden and not any(i in hidden for i in IDS)


def test_views_name_the_collect_report_they_model(ret):
    html = unescape(report(ret).view("referral_source").data)
    assert "Modelled on COLLECT report 14, 'Referral source'" in html and "Police" in html


def test_the_latest_return_is_reported_and_the_earlier_one_compared(ret):
    old = read_return(FIXTURES / "cin-2022-23.xml")
    qa = QAReport([ret, old], validation(ret))
    assert qa.ret is ret and qa.previous is old
    assert "2023-24" in qa.title().data and "compared with 2022-23" in qa.title().data
    assert "Give the previous year's return" in report(ret).year_on_year().data


def test_pre_proceedings_show_from_2026_27_with_their_provisional_facts(ret, tmp_path):
    from test_measures import _pre_proceedings_return

    assert "Pre-proceedings were not collected before 2026-27" in report(ret).pre_proceedings().data
    pp = _pre_proceedings_return(tmp_path)
    html = unescape(QAReport([pp], validation(pp)).pre_proceedings().data)
    rows = dict(re.findall(r"<tr><td[^>]*>([^<]+)</td>.*?<td class=\"num\"[^>]*>([^<]+)</td>", html))
    assert rows["Median days from pre-proceedings start to the step decision"] == "61.0"
    assert "A outcome A (meaning not confirmed)" in html and "code A (U)" in html
    assert "StepDecisionDate N00832 (U)" in html and "Children in need" in html


def test_external_references_are_found():
    page = ('<script src="https://unpkg.com/x.js"></script><link href="//cdn.x/y.css">'
            '<style>@import url("https://fonts.x/css");</style><img src="data:image/png;base64,AAAA">'
            "/* see https://github.com/x */")
    assert len(external_references(page)) == 3


def test_the_report_notebook_is_thin():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any("parameters" in c.metadata.get("tags", []) for c in code)
    for c in code:
        assert not c.outputs
        assert not re.search(r"^\s*(def|class|for|while|if|with)\b", c.source, re.M), c.source
        # The parameters cell is data, one line per parameter; every other cell is one short call.
        assert len(c.source.splitlines()) <= 4 or "parameters" in c.metadata.get("tags", [])


# --- the rendered file ---

def visible_text(page: str) -> str:
    page = re.sub(r"<style.*?</style>", "", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", page)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The README's main command: the report of the embedded sample."""
    out = tmp_path_factory.mktemp("report") / "out" / "report.html"
    return render_report([SAMPLE], out)


def test_render_report_writes_one_self_contained_html_file(rendered):
    assert sorted(p.name for p in rendered.parent.iterdir()) == ["report.html"]
    page = rendered.read_text(encoding="utf-8")
    assert external_references(page) == []
    assert "<script" not in page  # no require.js, MathJax, mermaid or widget manager
    assert "widget-state" not in page and "widget-view" not in page
    assert page.count('src="data:image/png;base64,') >= 2
    assert 'alt="Chart: age at 31 March;' in page  # every chart has alternative text
    assert "No description has been provided" not in page
    text = visible_text(page)
    for heading in SECTIONS:
        assert heading in text, heading
    assert "Local authority 931" in text and "census year 2025-26" in text
    links, ids = set(re.findall(r'href="#([^"]+)"', page)), set(re.findall(r'id="([^"]+)"', page))
    assert "Readiness-for-submission" in links and links <= ids  # the contents line leads somewhere
    # Without a lookup of teams the report is as it was before teams existed: not even an empty cell.
    assert "cell-teams" not in page and "by team" not in text


def test_an_optional_cell_that_shows_nothing_is_dropped_and_one_that_shows_something_kept():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("qa.by_team()", metadata={"tags": ["optional"]}),
        nbformat.v4.new_code_cell("qa.by_team()", metadata={"tags": ["optional"]}, outputs=[
            nbformat.v4.new_output("display_data", {"text/html": "<h2>Failures by team</h2>"})]),
        nbformat.v4.new_code_cell("import x")])
    _strip_noise(nb)
    assert [(c.source, len(c.outputs)) for c in nb.cells] == [("qa.by_team()", 1), ("import x", 0)]


def test_render_report_shows_no_code_and_no_kernel_noise(rendered):
    page = rendered.read_text(encoding="utf-8")
    for code in ("QAReport", "qa.verdict()", "import ", "pseudonymise = ", "paths = "):
        assert code not in page, code
    for noise in ("Traceback", "Warning", "WARNING", "Calculating Metrics", "jp-InputArea-editor", "stderr"):
        assert noise not in visible_text(page), noise


def test_render_report_pseudonymised_with_a_key_shows_no_identifier_nor_the_key(tmp_path, ret):
    key = bytes(range(32))
    out = render_report(FIXTURES / "cin-2023-24.xml", tmp_path / "p.html", pseudonymise=True, key=key)
    page = out.read_text(encoding="utf-8")
    assert not any(i in page for i in IDS)
    assert key.hex() not in page
    assert "pseudonymised" in page


def test_render_report_validates_once_here_and_its_kernel_shows_that_validation(tmp_path, monkeypatch):
    import cinqa.report

    said = "Only the validation made in the user's process says this"
    seen = []

    def counted(ret, **_):
        seen.append(ret)
        return validation(ret, ("9999", "error", said, "children", 1, "C001", None, None, "LAchildID",
                                {"LAchildID": "C001"}, 20))

    monkeypatch.setattr(cinqa.report, "validate", counted)
    out = render_report([ROOT / "data" / "sample-2024-25.xml", SAMPLE], tmp_path / "r.html")
    assert [r.year for r in seen] == ["2025-26"]  # the latest return, once
    assert said in out.read_text(encoding="utf-8")


def test_render_report_refuses_missing_files_and_writes_nothing(tmp_path):
    with pytest.raises(ReadError, match="no such file"):
        render_report([tmp_path / "nope.xml"], tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not SAMPLE.exists(), reason="the embedded samples are not generated yet")
def test_year_on_year_compares_the_returns_given():
    qa = QAReport([read_return(ROOT / "data" / "sample-2024-25.xml"), read_return(SAMPLE)])
    html = unescape(qa.year_on_year().data)
    assert "Headline measures" in html and "2024-25" in html and "Continuity between returns" in html


def test_load_applies_the_year_to_the_return_being_checked(ret):
    qa = QAReport.load([FIXTURES / "cin-2022-23.xml", FIXTURES / "cin-2023-24.xml"], year="2023-24")
    assert (qa.previous.year, qa.ret.year) == ("2022-23", "2023-24")
    assert qa.validation is not None and qa.validation.ret is qa.ret


def test_rendering_does_not_import_matplotlib_in_the_users_process():
    # matplotlib writes its font cache under the home directory when imported; only the kernel may draw
    code = "import sys, cinqa.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- national context ---

NEIGHBOURS = "comparator,census_year,indicator,value\n" + "".join(
    f"N{i},2023-24,re_referral_share,{v}\n" for i, v in enumerate((80, 81, 82)))


def test_national_context_lays_each_indicator_beside_england(ret):
    html = unescape(report(ret).national_context().data)
    assert "Re-referrals within 12 months as a percentage of referrals" in html and "22.4" in html
    assert "no population given" in html and "not a judgement of practice" in html
    rates = report(ret, population={"2023-24": 50_000}).national
    assert rates.loc[rates["indicator"] == "cin_31_march_rate", "la_value"].notna().all()
    assert type(report(ret).national_charts()).__name__ == "Figure"


def test_comparators_join_england_and_a_bad_file_is_refused_with_its_line(ret, tmp_path):
    path = tmp_path / "neighbours.csv"
    path.write_text(NEIGHBOURS, "utf-8")
    html = unescape(report(ret, comparators=path).national_context().data)
    assert "comparators' median" in html and "check recording" in html
    path.write_text(NEIGHBOURS.replace(",80", ",eighty"), "utf-8")
    with pytest.raises(CsvError, match="neighbours.csv, line 2: value 'eighty' is not a number"):
        report(ret, comparators=path)


def test_render_report_passes_the_population_comparators_and_teams_to_the_report(tmp_path):
    path = tmp_path / "neighbours.csv"
    path.write_text(NEIGHBOURS, "utf-8")
    teams = tmp_path / "teams.csv"
    teams.write_text(TEAMS, "utf-8")
    out = render_report(FIXTURES / "cin-2023-24.xml", tmp_path / "r.html", population={"2023-24": 50_000},
                        comparators=path, teams=teams)
    text = visible_text(out.read_text(encoding="utf-8"))
    assert "National context" in text and "comparators' median" in unescape(text)
    assert "no population given" not in text and "check recording" in text
    assert "Failures by team" in text and "Teams from teams.csv" in text and "Ann Smith" not in text


# --- failures by team ---

TEAMS = "LAchildID,team,worker\nC001,East,Ann Smith\nC002, West,Bo Jones\nC009,Adoption,\n"
QUERY_C002 = ("8525Q", "query", "Either Date of Birth or Expected Date of Birth", "children", 2, "C002", None, None,
              "PersonBirthDate", {"PersonBirthDate": None}, 40)
QUERY_C003 = (*QUERY_C002[:4], 3, "C003", *QUERY_C002[6:])
RETURN_QUERY = ("2886Q", "query", "Percentage of children with no gender recorded", "return", None, None, None,
                None, "GenderCurrent", {"children_without_gender": 7}, None)


def team_rows(page: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", page, flags=re.S)
    cells = [[unescape(c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S)] for r in rows]
    return [c for c in cells if c]


def test_failures_are_counted_by_team_with_the_children_not_in_the_lookup_listed(ret, tmp_path):
    teams = tmp_path / "teams.csv"
    teams.write_text(TEAMS, "utf-8")
    page = report(ret, ERROR, QUERY, QUERY_C002, QUERY_C003, RETURN_QUERY, teams=teams).by_team().data
    assert "Failures by team" in page
    assert team_rows(page) == [["team", "children", "errors", "queries"], ["Adoption", "0", "0", "0"],
                               ["East", "1", "1", "1"], ["West", "1", "0", "1"], [NO_TEAM, "1", "0", "2"]]
    assert "spaces or line breaks around team removed on line 3" in page


def test_without_a_lookup_there_is_no_team_section(ret):
    assert report(ret, ERROR, QUERY).by_team() is None


def test_pseudonymised_counts_by_team_are_the_same_and_name_no_child_nor_worker(ret, tmp_path):
    teams = tmp_path / "teams.csv"
    teams.write_text(TEAMS.replace("Adoption", "Adoption C003"), "utf-8")
    rows = (ERROR, QUERY, QUERY_C002, QUERY_C003, RETURN_QUERY)
    plain = team_rows(report(ret, *rows, teams=teams).by_team().data)
    page = report(ret, *rows, teams=teams, pseudonymise=True, key=bytes(range(32))).by_team().data
    shared = team_rows(page)
    assert [r[1:] for r in shared] == [r[1:] for r in plain] and shared[2:] == plain[2:]
    assert shared[1][0].startswith("Adoption P") and not any(i in page for i in (*IDS, "Ann Smith", "Bo Jones"))


# --- since the last run ---


def test_since_last_run_shows_the_changes_per_rule_and_child_pseudonymised(two_runs, tmp_path):
    from cinqa import history, synth

    folder = tmp_path / "h"
    history.record(two_runs.validations["first"], folder)
    first = two_runs.validations["first"]
    alone = unescape(QAReport([first.ret], first, history=folder).since_last_run().data)
    assert "Since the last run" in alone and "this is the first run of LA 931 2025-26" in alone
    history.record(two_runs.validations["second"], folder)
    v = two_runs.validations["second"]
    qa = QAReport([v.ret], v, history=folder, pseudonymise=True, key=b"k" * 32)
    page = unescape(qa.since_last_run().data)
    truth = two_runs.truth.assign(status=two_runs.truth["fate"].map(
        {synth.FIXED: history.RESOLVED, synth.KEPT: history.STILL_OPEN, synth.NEW: history.NEW}))
    assert "Since the last run" in page and "By rule" in page and "By child" in page
    assert (f"In all: {(truth['status'] == 'new').sum()} new, {(truth['status'] == 'resolved').sum()} resolved"
            in page)
    assert not any(k in page for k in set(truth["LAchildID"]))
    assert len(set(re.findall(r"P[0-9a-f]{12}", page))) >= truth["LAchildID"].nunique()
    assert isinstance(qa.history_trend(), Figure)
    plain = QAReport([v.ret], v)
    assert plain.since_last_run().data == "" and plain.history_trend().data == ""


def test_the_rendered_report_has_the_section_only_with_a_history(two_runs, rendered, tmp_path, monkeypatch):
    from cinqa import history

    assert "Since the last run" not in visible_text(rendered.read_text(encoding="utf-8"))
    folder = tmp_path / "h"
    history.record(two_runs.validations["first"], folder)
    # A return named relative to the user's folder, which is not the report kernel's.
    monkeypatch.chdir(two_runs.paths["second"].parent)
    out = render_report([two_runs.paths["second"].name], tmp_path / "since.html", history=folder)
    page = out.read_text(encoding="utf-8")
    assert "Since the last run" in visible_text(page)
    assert 'alt="Chart: Errors and queries, run by run (2025-26)' in page
    assert len(history.read_index(folder)) == 2  # the report recorded the run it validated
