"""The drill-down: filters, children, timeline and export, first as methods, then through the widgets.

The widget tests drive the same ipywidgets objects a notebook shows, in-process: setting a
Dropdown's value fires the observers the browser would fire, and the Output widgets' ``outputs``
hold exactly the display data the front end renders.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import subprocess
import sys
import types
import urllib.request
from html import escape
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

import cinqa
from cinqa import read_return
from cinqa.drill import ALL, BY_LINE, DrillDown, ExplanationEditor, TableBrowser, YearOnYearExplorer
from cinqa.failures import ERRORED_COLUMNS
from cinqa.rules import rules_for_year
from chromium import Browser, free_port, run_all, wait_for
from test_compare import L, comp  # noqa: F401  (comp is a fixture)

FIXTURES = Path(__file__).parent / "fixtures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IDS = ("C001", "C002", "C003", "A201123456789")


def row(rule, severity, entity, child, la_child_id, episode, item, fields, values, line, message=None):
    return {"rule": rule, "severity": severity, "message": message or f"message of {rule}", "entity": entity,
            "child": child, "LAchildID": la_child_id, "episode": episode, "item": item, "fields": fields,
            "values": values, "line": line}


@pytest.fixture()
def validation():
    ret = read_return(FIXTURES / "cin-2023-24.xml")
    failures = pd.DataFrame([
        row("8565", "error", "cp_plans", 1, "C001", 2, 1, "CPPstartDate", {"CPPstartDate": dt.date(2023, 11, 15)}, 72),
        row("1103", "error", "assessments", 1, "C001", 1, 1, "AssessmentActualStartDate",
            {"AssessmentActualStartDate": dt.date(2023, 4, 4)}, 40),
        row("8525Q", "query", "children", 1, "C001", None, None, "PersonBirthDate,UPN",
            {"PersonBirthDate": dt.date(2015, 6, 1), "UPN": "A201123456789"}, 20),
        row("8530Q", "query", "children", 2, "C002", None, None, "ExpectedPersonBirthDate",
            {"ExpectedPersonBirthDate": dt.date(2024, 6, 20)}, 84),
        row("8530Q", "query", "children", 3, "C003", None, None, "ExpectedPersonBirthDate",
            {"ExpectedPersonBirthDate": None}, 101),
        row("2886Q", "query", "return", None, None, None, None, "GenderCurrent", {"children_without_gender": 1}, None),
    ])
    for c in ("child", "episode", "item", "line"):
        failures[c] = failures[c].astype("Int64")
    return types.SimpleNamespace(failures=failures, ret=ret, errored=pd.DataFrame(columns=list(ERRORED_COLUMNS)))


# --- the methods ---

def test_options_narrow_level_by_level(validation):
    d = DrillDown(validation)
    assert d.options()["severity"] == [ALL, "error", "query"]
    d.select(severity="error")
    opts = d.options()
    assert opts["entity"] == [ALL, "assessments", "cp_plans"]
    assert opts["rule"] == [ALL, "1103", "8565"]
    d.select(entity="cp_plans")
    assert d.options()["rule"] == [ALL, "8565"]


def test_select_returns_the_failing_rows_and_resets_levels_that_no_longer_fit(validation):
    d = DrillDown(validation)
    assert d.select(rule="8530Q")["LAchildID"].tolist() == ["C002", "C003"]
    d.select(severity="error", entity="cp_plans")
    assert d.rule == ALL  # 8530Q is a query, so the rule resets
    assert d.rows["rule"].tolist() == ["8565"]
    d.select(severity="query")
    assert d.entity == ALL and len(d.rows) == 4
    with pytest.raises(ValueError, match="severity 'fatal'"):
        d.select(severity="fatal")


def test_children_and_summary_of_the_selection(validation):
    d = DrillDown(validation)
    kids = d.children()
    assert kids["LAchildID"].tolist() == ["C001", "C002", "C003"]
    assert kids.loc[0, "failures"] == 3 and kids.loc[0, "rules"] == "1103, 8525Q, 8565"
    d.select(rule="8530Q")
    assert d.summary().to_dict("records") == [
        {"rule": "8530Q", "severity": "query", "message": "message of 8530Q", "children": 2, "rows": 2}]


def test_pick_child_draws_its_timeline_with_its_failures(validation):
    d = DrillDown(validation)
    fig = d.pick_child(1)
    assert d.child == 1
    assert {t.get_text() for t in fig.axes[0].texts} >= {"8565", "1103"}


def test_timeline_defaults_to_the_child_with_most_failures(validation):
    d = DrillDown(validation)
    fig = d.timeline()
    assert d.child == 1 and fig.axes[0].get_title(loc="left").startswith("Child C001")
    d.pick_child(2)
    assert d.timeline().axes[0].get_title(loc="left").startswith("Child C002")
    empty = types.SimpleNamespace(failures=validation.failures.iloc[:0], ret=validation.ret, errored=validation.errored)
    assert "No child has a failure" in DrillDown(empty).timeline().data


def test_export_csv_and_excel_of_the_selection(validation, tmp_path):
    d = DrillDown(validation)
    d.select(severity="error")
    csv = d.export(tmp_path / "sel.csv")
    exported = pd.read_csv(csv, dtype=str)
    # In the drill-down's order: errors first, then most children, then rule number.
    assert exported["rule"].tolist() == ["1103", "8565"]
    assert exported["values"].tolist() == ["AssessmentActualStartDate=2023-04-04", "CPPstartDate=2023-11-15"]
    xlsx = d.export(tmp_path / "sel.xlsx")
    wb = load_workbook(xlsx, read_only=True)
    assert "Summary" in wb.sheetnames
    cover = {r[0]: r[1] for r in wb["About"].iter_rows(values_only=True) if len(r) > 1 and r[0]}
    # The verdict and counts are the return's, not the selection's.
    assert cover["Verdict"] == "Not ready to submit (errors)" and cover["Queries"] == 4
    summary = [r for r in wb["Summary"].iter_rows(values_only=True)]
    assert [r[0] for r in summary[1:]] == ["8565", "1103"] or [r[0] for r in summary[1:]] == ["1103", "8565"]
    with pytest.raises(ValueError, match=".csv or .xlsx"):
        d.export(tmp_path / "sel.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sel.csv", "sel.xlsx"]


def test_pseudonymised_drill_down_shows_and_exports_no_identifier(validation, tmp_path):
    d = DrillDown(validation, pseudonymise=True, key=b"k" * 32)
    shown = d.rows.to_csv() + d.children().to_csv()
    assert not any(i in shown for i in IDS)
    assert d.children()["LAchildID"].str.match(r"^P[0-9a-f]{12}$").all()
    path = d.export(tmp_path / "p.csv")
    assert not any(i in path.read_text() for i in IDS)
    fig = d.pick_child(1)
    assert "C001" not in fig.axes[0].get_title(loc="left")


def test_failures_table_must_follow_the_contract(validation):
    bad = types.SimpleNamespace(failures=validation.failures.drop(columns="values"), ret=validation.ret,
                                errored=validation.errored)
    with pytest.raises(ValueError, match="values"):
        DrillDown(bad)


# --- the widgets, driven as the browser would ---

def html_of(output) -> str:
    return "".join(o["data"].get("text/html", "") for o in output.outputs)


def test_widget_picking_a_rule_shows_its_failing_children(validation):
    d = DrillDown(validation)
    d.widget()
    c = d.controls
    # Errors first, then the rules touching most children; each labelled with its message and children.
    assert [v for _, v in c["rule"].options] == [ALL, "1103", "8565", "8530Q", "8525Q", "2886Q"]
    assert dict(c["rule"].options)["8530Q — message of 8530Q (2 children)"] == "8530Q"
    assert dict(c["rule"].options)["2886Q — message of 2886Q (0 children)"] == "2886Q"
    c["rule"].value = "8530Q"
    table = html_of(d.outputs["rows"])
    assert "C002" in table and "C003" in table and "C001" not in table
    assert "ExpectedPersonBirthDate=2024-06-20" in table and "ExpectedPersonBirthDate=(missing)" in table
    assert c["status"].value == "2 failing rows, 2 children"
    assert [label for label, _ in c["child"].options][1:] == ["C002 (1 failing rows: 8530Q)",
                                                              "C003 (1 failing rows: 8530Q)"]


def test_widget_severity_narrows_the_other_dropdowns(validation):
    d = DrillDown(validation)
    d.widget()
    c = d.controls
    c["rule"].value = "8530Q"
    c["severity"].value = "error"
    assert c["rule"].value == ALL and [v for _, v in c["rule"].options] == [ALL, "1103", "8565"]
    assert c["entity"].options == (ALL, "assessments", "cp_plans")
    assert "8530Q" not in html_of(d.outputs["rows"]) and "8565" in html_of(d.outputs["rows"])


def test_widget_picking_a_child_draws_the_timeline_and_export_button_writes(validation, tmp_path):
    d = DrillDown(validation)
    d.widget()
    c = d.controls
    c["severity"].value = "error"
    c["child"].value = 1
    (png,) = [o["data"]["image/png"] for o in d.outputs["timeline"].outputs]
    assert base64.b64decode(png).startswith(PNG_MAGIC)
    c["child"].value = None
    assert d.outputs["timeline"].outputs == ()
    c["path"].value = str(tmp_path / "errors.csv")
    c["export"].click()
    assert c["status"].value == f"Wrote 2 rows to {tmp_path / 'errors.csv'}"
    assert len(pd.read_csv(tmp_path / "errors.csv")) == 2
    c["path"].value = str(tmp_path / "errors.doc")
    c["export"].click()
    assert c["status"].value.startswith("Export failed:")


def test_widget_shows_the_timeline_of_a_child_picked_before_it_was_built(validation):
    # drill.timeline() in a notebook picks a child; the widget must then show that child's timeline
    d = DrillDown(validation)
    d.timeline()
    d.widget()
    assert d.controls["child"].value == 1 and len(d.outputs["timeline"].outputs) == 1
    d.controls["rule"].value = "8530Q"  # child 1 has no 8530Q failure: dropdown and timeline both clear
    assert d.controls["child"].label == "(pick a child)" and d.outputs["timeline"].outputs == ()
    assert d.child is None


def test_widget_is_built_once_and_shown_by_ipython_display(validation, monkeypatch):
    d = DrillDown(validation)
    shown = []
    monkeypatch.setattr("cinqa.drill.display", shown.append)
    d._ipython_display_()
    assert shown == [d.widget()]


# --- at scale: paging, sorting, finding a child, what a rule is ---

def many(validation, n):
    """The fixture's validation with its failing rows repeated to ``n`` rows, each on a line of its own."""
    f = validation.failures
    big = f.iloc[[i % len(f) for i in range(n)]].reset_index(drop=True)
    big["line"] = pd.array(range(1, n + 1), dtype="Int64")
    return types.SimpleNamespace(failures=big, ret=validation.ret, errored=validation.errored)


def test_failures_are_paged_fifty_rows_at_a_time(validation):
    d = DrillDown(many(validation, 120))
    assert (d.page_rows, d.pages, d.page_text()) == (50, 3, "rows 1-50 of 120")
    assert len(d.page_of_rows()) == 50
    assert len(d.turn(3)) == 20 and d.page_text() == "rows 101-120 of 120"
    assert d.turn(9) is not None and d.page == 3
    assert d.turn(0) is not None and d.page == 1
    d.turn(2)
    d.select(rule="8530Q")  # a new selection starts on its first page
    assert d.page == 1 and d.page_text() == "rows 1-40 of 40"


def test_rows_sort_by_severity_then_children_or_by_line(validation):
    d = DrillDown(validation)
    assert d.rows["rule"].tolist() == ["1103", "8565", "8530Q", "8530Q", "8525Q", "2886Q"]
    assert d.sort(BY_LINE)["rule"].tolist() == ["2886Q", "8525Q", "1103", "8565", "8530Q", "8530Q"]
    with pytest.raises(ValueError, match="unknown order"):
        d.sort("colour")


def test_widget_pages_a_20k_row_table_with_previous_and_next(validation):
    d = DrillDown(many(validation, 20_000))
    d.widget()
    c = d.controls
    assert c["page"].value == "rows 1-50 of 20,000 (page 1 of 400)"
    assert c["previous"].disabled and not c["next"].disabled
    assert html_of(d.outputs["rows"]).count("<tr>") == 51  # the header and fifty rows, not 20,000
    c["next"].click()
    assert c["page"].value == "rows 51-100 of 20,000 (page 2 of 400)" and not c["previous"].disabled
    # Errors first: 1103 (every sixth row from line 2) fills the first pages.
    assert d.page_of_rows()["rule"].eq("1103").all() and d.page_of_rows()["line"].iloc[0] == 2 + 6 * 50
    assert '<td class="num">302</td>' in html_of(d.outputs["rows"])
    c["previous"].click()
    assert c["page"].value.startswith("rows 1-50 of")
    c["rule"].value = "8530Q"
    assert c["page"].value == "rows 1-50 of 6,666 (page 1 of 134)"
    c["next"].click()
    c["order"].value = BY_LINE
    assert d.page == 1 and d.page_of_rows()["line"].is_monotonic_increasing


def test_the_sort_buttons_are_as_wide_as_their_longest_label(validation):
    from cinqa.drill import ORDERS

    d = DrillDown(validation)
    d.widget()
    width = d.controls["order"].style.button_width
    # JupyterLab cuts a toggle button's label at its width: about half an em a character, and padding.
    assert width.endswith("em") and float(width[:-2]) >= max(map(len, ORDERS)) / 2 + 2


def test_widget_finds_a_child_by_typing_its_la_child_id(validation):
    d = DrillDown(validation)
    d.widget()
    c = d.controls
    assert set(c["find"].options) == {"C001", "C002", "C003"}
    assert c["child"].label == "(pick a child)"  # not a blank dropdown
    c["find"].value = "C003"
    assert d.child == 3 and c["child"].value == 3
    (png,) = [o["data"]["image/png"] for o in d.outputs["timeline"].outputs]
    assert base64.b64decode(png).startswith(PNG_MAGIC)
    c["find"].value = "nobody"
    assert c["status"].value == "No child with LAchildID 'nobody' in this return."
    assert d.child is None and d.outputs["timeline"].outputs == () and c["child"].label == "(pick a child)"


def test_pseudonymised_drill_down_finds_a_child_by_its_token(validation):
    d = DrillDown(validation, pseudonymise=True, key=b"k" * 32)
    token = d.children().set_index("child").loc[2, "LAchildID"]
    assert token != "C002" and d.find_child(token) == 2
    assert d.find_child("C002") is None  # the identifier itself is not shown, nor found


def test_rule_info_gives_the_rules_status_and_note(validation):
    d = DrillDown(validation)
    d.widget()
    d.controls["rule"].value = "8565"
    info = d.controls["rule_info"].value
    assert info.startswith("8565 (error): message of 8565. Status V: read in a DfE rule list for 2023-24.")
    assert "Note: DfE module ChildProtectionPlans" in info
    d.controls["rule"].value = ALL
    assert d.controls["rule_info"].value == ""


def test_the_selected_rules_guidance_is_shown_under_its_message(validation):
    d = DrillDown(validation)
    d.widget()
    d.controls["rule"].value = "8565"
    guidance = next(e.guidance for e in rules_for_year("2023-24") if e.rule == "8565")
    assert d.rule_guidance() == guidance
    assert d.controls["rule_fix"].value == f"<b>How to fix:</b> {escape(guidance)}"
    box = d.widget().children
    assert box.index(d.controls["rule_fix"]) == box.index(d.controls["rule_info"]) + 1
    d.controls["rule"].value = ALL
    assert d.controls["rule_fix"].value == "" and d.rule_guidance() == ""


# --- the table browser ---

def test_table_browser_pages_and_filters(validation):
    b = TableBrowser(validation.ret, page_rows=2)
    page, pages = b.page("episodes", 2)
    assert pages == 2 and page["LAchildID"].tolist() == ["C002", "C003"]
    page, pages = b.page("episodes", 9, "C001")
    assert pages == 1 and page["episode"].tolist() == [1, 2]


def test_table_browser_widget_follows_its_controls(validation):
    b = TableBrowser(validation.ret, page_rows=2)
    b.widget()
    b.controls["table"].value = "cp_reviews"
    assert "CPPreviewDate" in html_of(b.output) and b.controls["pages"].value == "of 2"
    b.controls["child"].value = "C003"
    assert "C001" not in html_of(b.output) and "20/02/2023" in html_of(b.output)


# --- end to end: a synthetic return with injected faults, validated, drilled through the widgets ---

def test_widgets_find_every_injected_fault_of_a_synthetic_return():
    from cinqa import synth

    clean = synth.generate("2025-26", children=120, seed=7)
    ret, truth = synth.inject(clean, 0.05, seed=7)
    validation = cinqa.validate(ret)
    truth = truth[truth["rule"].isin(validation.checked)]
    assert len(truth), "no injected fault is covered by the rules checked"
    d = DrillDown(validation)
    d.widget()
    c = d.controls
    for fault in truth.itertuples(index=False):
        c["severity"].value = ALL
        c["rule"].value = fault.rule
        assert fault.LAchildID in html_of(d.outputs["rows"]), fault
        picks = {label.split(" ")[0]: value for label, value in c["child"].options[1:]}
        c["child"].value = picks[fault.LAchildID]
        (png,) = [o["data"]["image/png"] for o in d.outputs["timeline"].outputs]
        assert base64.b64decode(png).startswith(PNG_MAGIC)


# --- optional: the same in a real JupyterLab, in headless Chromium (opt-in: --runslow) ---------

@pytest.mark.slow
@pytest.mark.timeout(600)
def test_in_a_real_jupyterlab_picking_a_rule_shows_its_failing_child(tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed")
    websocket = pytest.importorskip("websocket")
    from cinqa import synth
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(root / "notebooks" / "02-drill-into-failures.ipynb", tmp_path / "notebooks")
    ret, truth = synth.inject(read_return(root / "data" / "sample-2025-26.xml"), ["8820"], seed=3)
    cinqa.write_return(ret, tmp_path / "data" / "sample-2025-26.xml")
    (who,) = truth["LAchildID"]
    port = free_port()
    env = {**os.environ, **{v: str(tmp_path / "jupyter" / v) for v in (
        "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")}}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={port}",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browser = None
    try:
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status").status == 200, 60)
        browser = Browser(f"http://127.0.0.1:{port}/lab/tree/notebooks/02-drill-into-failures.ipynb",
                          tmp_path / "chromium", websocket)
        run_all(browser)
        wait_for(lambda: browser.js("document.querySelectorAll('.widget-dropdown select').length") == 4, 180)
        browser.choose("Rule", "8820")
        outputs = "Array.from(document.querySelectorAll('.widget-output')).map(o => o.innerText).join('\\n')"
        wait_for(lambda: who in browser.js(outputs) and "8820" in browser.js(outputs), 60)
        browser.choose("Child", who)
        wait_for(lambda: browser.js("document.querySelectorAll('.widget-output img').length") == 1, 60)
    except Exception:
        if browser is not None:  # keep what the browser showed, for whoever reads the failure
            shot = browser.call("Page.captureScreenshot", format="png").get("data", "")
            (tmp_path / "failure.png").write_bytes(base64.b64decode(shot))
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
        raise
    finally:
        if browser is not None:
            browser.close()
        server.terminate()
        server.wait(30)


def test_explorer_filters_by_return_and_measure_and_drills_into_a_flag(comp):
    ex = YearOnYearExplorer(comp)
    ex.measure_picker.value = ("referrals",)
    assert set(ex.table()["measure"]) == {"referrals"}
    assert "referral_source" in ex.breakdown_picker.options
    ex.breakdown_picker.value = "referral_source"
    assert set(ex.table()["breakdown"]) == {"referral_source"}
    ex.flagged_only.value = True
    assert set(ex.table()["category"]) == {"Schools"}      # Police 0 -> 2 has no percentage
    assert ex.flag_picker.options and ex.flag_picker.value[:3] == ("referrals", "referral_source", "Schools")
    drilled = ex.drill()
    assert set(drilled["LAchildID"]) == {"B", "C", "D", "E", "X"}
    assert ex.plot_image.value[:4] == b"\x89PNG"
    ex.year_picker.value = (L,)
    assert list(ex.table().columns[:5]) == ["measure", "breakdown", "category", "unit", L]
    assert ex.flag_picker.options == ()


# --- the explanation editor ---

def test_the_editor_saves_an_explanation_for_the_chosen_query_and_shows_it_explained(validation, tmp_path):
    from cinqa.explanations import EXPLAINED, UNEXPLAINED, read_explanations

    path = tmp_path / "explanations-2023-24.csv"
    editor = ExplanationEditor(validation, path, who="A. Analyst")
    labels = dict(editor.choices())
    assert len(labels) == 4 and all(label.endswith(UNEXPLAINED) for label in labels)
    chosen = next(i for label, i in labels.items() if label.startswith("8530Q · C002"))
    assert editor.text(chosen) == ""

    box = editor.widget()
    editor.controls["query"].value = chosen
    editor.controls["text"].value = "Unborn; the mother's due date moved"
    editor.controls["save"].click()
    assert editor.controls["status"].value.startswith(f"{path}: 1 added, 0 updated, 0 unchanged")
    saved = read_explanations(path, missing_ok=False)
    assert saved[["rule", "LAchildID", "row", "explanation", "who"]].values.tolist() == [
        ["8530Q", "C002", "children", "Unborn; the mother's due date moved", "A. Analyst"]]
    assert saved.at[0, "census_year"] == "2023-24" and saved.at[0, "LA"] == validation.ret.header.la
    assert editor.explained.queries.at[chosen, "status"] == EXPLAINED
    assert any(label.startswith("8530Q · C002") and label.endswith(EXPLAINED) for label, _ in editor.choices())
    assert box is editor.widget()

    again = ExplanationEditor(validation, path)
    assert again.text(chosen) == "Unborn; the mother's due date moved"
    kept = str(again.save(chosen, "   "))
    assert kept.startswith("0 added, 0 updated, 0 unchanged, 1 explanation kept although blank")
    assert len(read_explanations(path)) == 1

    hidden = ExplanationEditor(validation, path, pseudonymise=True, key=b"k" * 32)
    shown = " ".join([hidden.text(chosen), *(label for label, _ in hidden.choices())])
    assert "8530Q" in shown and not any(i in shown for i in ("C001", "C002", "C003"))
