"""The failures table and the verdict: every output judges a return the same way, and values stay as they were.

Five small returns, one per verdict, are each judged through the Python API, ``cinqa validate``
(its words and exit status), the Excel workbook it writes (the cover's "Verdict" row) and the QA
report (its readiness banner); all must give the same verdict.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

import cinqa
from cinqa import failures as judge
from cinqa.cli import app
from cinqa.excel import write_error_report
from cinqa.files import locate_shipped
from cinqa.pseudonymise import pseudonymise_failures, return_scrubber
from cinqa.report import QAReport, render_report
from cinqa.testing import build_return
from cinqa.validate import validate

YEAR = "2025-26"
ODD = "A; B=C"
# One return per verdict: the tables given to build_return, and whether a rule is made to raise.
RETURNS = {
    judge.CLEAN: ({}, False),
    judge.QUERIES_ONLY: ({"children": [{"FormerUPN": "A201000000010"}]}, False),
    judge.ERRORS: ({"children": [{"UPN": "A201000000010"}]}, False),
    judge.NOT_FULLY_CHECKED + ": a rule raised": ({"children": [{"UPN": "A201000000010"}]}, True),
    judge.NOT_FULLY_CHECKED + ": a structural error": ({}, False),
}


def broken_suites(folder: Path) -> Path:
    """Copy the rule suites into ``folder`` with one expectation reading a column no view has, so GX raises."""
    shutil.copytree(locate_shipped("expectations", "_expectations"), folder)
    path = folder / "children.json"
    suite = json.loads(path.read_text("utf-8"))
    suite["expectations"][0]["kwargs"]["column"] = "no_such_column"
    path.write_text(json.dumps(suite), "utf-8")
    return folder


@pytest.fixture(scope="module", params=list(RETURNS))
def judged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One return of each verdict, validated, and judged by the command line, its workbook and the report."""
    name = request.param
    tables, raises = RETURNS[name]
    folder = tmp_path_factory.mktemp("verdict")
    ret = build_return(YEAR, tables, folder, name="return")
    if name.endswith("structural error"):
        text = ret.path.read_text("utf-8")
        ret.path.write_text(text.replace("</LAchildID>", "</LAchildID><Colour>blue</Colour>", 1), "utf-8")
        ret = cinqa.read_return(ret.path)
    expectations = broken_suites(folder / "expectations") if raises else None
    validation = validate(ret, expectations=expectations)
    xlsx = folder / "errors.xlsx"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cinqa, "validate", functools.partial(validate, expectations=expectations))
        result = CliRunner().invoke(app, ["validate", str(ret.path), "--xlsx", str(xlsx)])
    about = [r for r in openpyxl.load_workbook(xlsx)["About"].iter_rows(values_only=True) if len(r) > 1]
    cover = {r[0]: r[1] for r in about if r[0]}
    if raises:
        # The report's kernel validates with the package's suites; the banner is what its cell shows.
        banner = QAReport([ret], validation).verdict().data
    else:
        page = render_report(ret.path, folder / "report.html").read_text("utf-8")
        banner = re.search(r'<div class="cinqa-callout".*?</div>', page, re.S).group(0)
    return {"status": name.split(":")[0], "validation": validation, "cli": result, "cover": cover,
            "cover_text": [r[1] for r in about], "banner": banner}


def test_every_output_gives_the_same_verdict(judged: dict) -> None:
    v = judged["validation"].verdict
    assert v.status == judged["status"]
    assert v == judge.verdict(judged["validation"].failures, judged["validation"].errored,
                              judged["validation"].ret.issues)
    cli = judged["cli"]
    assert cli.exit_code == v.exit_code == (1 if v.status in (judge.ERRORS, judge.NOT_FULLY_CHECKED) else 0)
    assert f"Verdict: {v}\n" in cli.stdout
    assert judged["cover"]["Verdict"] == str(v)
    assert (judged["cover"]["Errors"], judged["cover"]["Queries"]) == (v.error_rows, v.query_rows)
    assert f">{v}</b>" in judged["banner"]
    for line in v.details:
        assert line in cli.stdout and line in judged["cover_text"] and line in judged["banner"]


def test_a_rule_that_raised_takes_precedence_over_the_errors_found(judged: dict) -> None:
    v = judged["validation"].verdict
    if v.not_evaluated:
        assert v.status == judge.NOT_FULLY_CHECKED and v.error_rows == 1
        assert "could not be evaluated" in v.details[0] and "1 error under 1 rule" in " ".join(v.details)
    if v.structural_errors:
        assert v.status == judge.NOT_FULLY_CHECKED
        assert "unknown element" in judged["validation"].ret.issues["problem"][0]


def test_an_unreadable_file_is_judged_so_in_the_combined_summary(tmp_path: Path) -> None:
    good = build_return(YEAR, {}, tmp_path, name="good").path
    bad = tmp_path / "bad.xml"
    bad.write_text("<Message>")
    result = CliRunner().invoke(app, ["validate", str(good), str(bad), "--csv", str(tmp_path / "summary.csv")])
    assert result.exit_code == judge.unreadable("x").exit_code == 2
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["verdict"].tolist() == [judge.CLEAN, judge.UNREADABLE]
    assert "2 files: clean 1, unreadable 1" in result.stdout


def test_values_are_typed_and_a_value_holding_separators_survives_every_output(tmp_path: Path) -> None:
    ret = build_return(YEAR, {"episodes": [{"ReferralSource": ODD}]}, tmp_path)
    f = validate(ret).failures
    (values,) = f.loc[f["fields"].str.contains("ReferralSource"), "values"]
    assert values == {"CINreferralDate": values["CINreferralDate"], "ReferralSource": ODD}
    assert isinstance(values["CINreferralDate"], dt.date)
    key = bytes(range(32))
    hidden = pseudonymise_failures(f, key, return_scrubber(ret, key))
    assert [v.get("ReferralSource") for v in hidden["values"]] == [v.get("ReferralSource") for v in f["values"]]
    # Without the return, the sheet shows the values the rule read.
    path = write_error_report(tmp_path / "e.xlsx", hidden)
    rows = list(openpyxl.load_workbook(path)["episodes"].iter_rows(values_only=True))
    (row,) = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert row["ReferralSource"] == ODD
    assert judge.values_text(values).endswith(f"; ReferralSource={ODD}")


def test_values_text_spells_dates_flags_and_missing_values() -> None:
    values = {"CINreferralDate": dt.date(2025, 4, 1), "ReferralNFA": False, "CINclosureDate": None, "n": 3}
    assert judge.values_text(values) == "CINreferralDate=2025-04-01; ReferralNFA=false; CINclosureDate=(missing); n=3"
    shown = judge.for_display(pd.DataFrame({"rule": ["8500"], "values": [values]}))
    assert shown["values"].tolist() == [judge.values_text(values)]


def test_identity_names_each_failure_by_rule_child_and_row_without_its_values() -> None:
    failures = pd.DataFrame({
        "rule": ["8750", "8794", "8930", "8930"], "entity": ["children", "disabilities", "cp_plans", "cp_plans"],
        "LAchildID": ["A1", "A1", "B2", "B2"], "episode": pd.array([None, None, 2, 2], dtype="Int64"),
        "item": pd.array([18, 1, 1, 1], dtype="Int64"),
        "values": [{"Sex": "M", "PersonBirthDate": None}, {"Disability": "AUT"},
                   {"CPPendDate": dt.date(2026, 4, 13)}, {"CPPendDate": dt.date(2026, 4, 14)}]})
    ids = judge.identity(failures)
    assert list(ids.columns) == list(judge.IDENTITY_COLUMNS)
    assert list(ids["row"]) == ["children", "disabilities 1", "cp_plans 2.1", "cp_plans 2.1"]
    hashes = list(ids["values_hash"])
    assert hashes[2] != hashes[3] and len(set(hashes)) == 4
    assert judge.values_hash({"b": 1, "a": None}) == judge.values_hash({"a": None, "b": 1})
    assert not any("2026" in h or "AUT" in h for h in hashes)
