"""The analyst's weekly loop end to end: check, explain in the workbook, import, check next week's extract.

Run 1 and run 2 are two extracts of one synthetic return (:func:`conftest.build_two_runs`): faults
of run 1 are fixed or kept, new ones are injected into run 2, and synth's truth table says which.
synth's injectors make the same values each time they break a child, so no fault of synth fails on
other values in run 2; the test makes one itself (:func:`restarted`): a query of the clean return
whose assessment's start date moves by a day. Every count the API returns, the CLI prints and the
QA report shows is computed from the truth and that one edit, never written down.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections import Counter
from pathlib import Path

import openpyxl
import pandas as pd
from conftest import TwoRuns, build_two_runs
from typer.testing import CliRunner

import cinqa
from cinqa import explanations as ex
from cinqa import history, rules, synth
from cinqa.cli import app
from cinqa.failures import identity
from cinqa.report import QAReport

# Seed 1 keeps run 1's injected 8525Q query and fixes its 8555Q query, so both fates get an explanation.
SEED = 1
WHO = "A. Analyst"
CHANGE = {synth.FIXED: history.RESOLVED, synth.KEPT: history.STILL_OPEN, synth.NEW: history.NEW}

runner = CliRunner()


def severity(rule: pd.Series, year: str) -> pd.Series:
    """Give each rule code its severity in census ``year``, as its suite says."""
    return rule.map(rules.list_rules(year).set_index("rule")["severity"])


def type_explanations(book: Path, wanted: set[tuple[str, str]]) -> Counter:
    """Type an explanation, as an analyst would, against each failure of ``book`` whose (rule, LAchildID) is wanted."""
    wb = openpyxl.load_workbook(book)
    typed: Counter = Counter()
    for ws in wb.worksheets:
        head = [c.value for c in ws[1]]
        if "explanation" not in head or "LAchildID" not in head:
            continue
        for r in range(2, ws.max_row + 1):
            key = (str(ws.cell(r, head.index("rule") + 1).value), str(ws.cell(r, head.index("LAchildID") + 1).value))
            if key in wanted:
                ws.cell(r, head.index("explanation") + 1).value = f"Confirmed with the social worker ({key[0]})"
                typed[key] += 1
    wb.save(book)
    return typed


def restarted(path: Path, failure: pd.Series, out: Path) -> Path:
    """Write the return at ``path`` to ``out`` with the assessment of a failure of rule 8670Q starting a day later.

    The assessment stays open and more than 45 working days before the year's end, so the query
    stays on the same row, failing on another start date.
    """
    ret = cinqa.read_return(path)
    a = ret.tables["assessments"]
    at = (a["LAchildID"] == failure["LAchildID"]) & (a["episode"] == failure["episode"]) & (
        a["assessment"] == failure["item"])
    assert at.sum() == 1 and a.loc[at, "AssessmentAuthorisationDate"].isna().all()
    a = a.copy()
    a.loc[at, "AssessmentActualStartDate"] += pd.Timedelta(days=1)
    return cinqa.write_return(dataclasses.replace(ret, tables={**ret.tables, "assessments": a}), out)


SINCE = (r"In all: ([\d,]+) new, ([\d,]+) resolved, ([\d,]+) still open"
         r"(?: \(([\d,]+) failing on changed values\))?\.")
EXPLAINED = (r"([\d,]+) quer(?:y|ies) explained, ([\d,]+) quer(?:y|ies) unexplained"
             r"(?:; ([\d,]+) explanations? stale)?\.")


def said(pattern: str, text: str) -> tuple[int, ...]:
    """Return the counts of the one sentence of ``text`` that matches ``pattern`` (its groups; an absent group is 0)."""
    found = re.findall(pattern, text)
    assert len(found) == 1, (pattern, text)
    return tuple(int(g.replace(",", "")) if g else 0 for g in found[0])


def visible(page: str) -> str:
    """Return the text a reader sees of an HTML fragment."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_new_resolved_still_open_explained_and_stale_equal_synths_truth(tmp_path: Path):
    runs: TwoRuns = build_two_runs(tmp_path / "returns", seed=SEED)
    truth = runs.truth.assign(change=runs.truth["fate"].map(CHANGE))
    # The clean return's own queries are in both runs, untouched by any fault: still open, not in the truth.
    clean = runs.validations["clean"].failures
    background = identity(clean)
    queries = truth[severity(truth["rule"], runs.validations["first"].year) == ex.EXPLAINABLE]
    assert set(queries["fate"]) == {synth.FIXED, synth.KEPT, synth.NEW}
    assert len(background) >= 2 and set(clean["severity"].astype("str")) == {ex.EXPLAINABLE}
    # Next week one of them fails on another start date: its explanation goes stale, the query stays open.
    moved = clean.index[0]
    assert clean.at[moved, "rule"] == "8670Q"
    run2 = restarted(runs.paths["second"], clean.loc[moved], runs.paths["second"].with_name("run2.xml"))

    # Explain, in run 1's workbook, its injected queries (one kept, one to be fixed) and the background ones.
    first_queries = queries[queries["fate"] != synth.NEW]
    wanted = set(zip(first_queries["rule"], first_queries["LAchildID"], strict=True))
    wanted |= set(zip(background["rule"], background["LAchildID"], strict=True))
    hist, book = tmp_path / "history", tmp_path / "out" / "book.xlsx"
    one = runner.invoke(app, ["validate", str(runs.paths["first"]), "--xlsx", str(book), "--history", str(hist)])
    assert one.exit_code == 1, one.output
    assert type_explanations(book, wanted) == Counter(dict.fromkeys(wanted, 1))
    imported = runner.invoke(app, ["explain", "import", str(book), "--who", WHO])
    assert imported.exit_code == 0, imported.output
    file = ex.default_path(runs.paths["first"], runs.validations["first"].year)
    assert f"{len(wanted)} added, 0 updated, 0 unchanged" in imported.output
    assert len(ex.read_explanations(file, missing_ok=False)) == len(wanted)

    two = runner.invoke(app, ["validate", str(run2), "--history", str(hist), "--since", "--explanations", str(file)])
    assert two.exit_code == 1, two.output

    # What the truth and the one edit say run 2 must show.
    fates = Counter(truth["change"])
    still_open = fates[history.STILL_OPEN] + len(background)
    fixed = first_queries[first_queries["fate"] == synth.FIXED]
    explained = (first_queries["fate"] == synth.KEPT).sum() + len(background) - 1
    unexplained = (queries["fate"] == synth.NEW).sum() + 1
    stale = len(fixed) + 1
    assert min(explained, len(fixed)) >= 1

    # Through the API: the history the CLI recorded, and run 2's queries matched with the imported file.
    totals = history.changes(hist).totals()
    assert (totals[history.NEW], totals[history.RESOLVED], totals[history.STILL_OPEN], totals["values_changed"]) == (
        fates[history.NEW], fates[history.RESOLVED], still_open, 1)
    checked = cinqa.validate(cinqa.read_return(run2), progress=False)
    matched = ex.explain(checked, ex.read_explanations(file))
    assert (matched.explained, matched.unexplained, matched.stale) == (explained, unexplained, stale)
    why = matched.explanations.set_index(["rule", "LAchildID"])["why_stale"]
    assert why[why != ""].to_dict() == {**dict.fromkeys(zip(fixed["rule"], fixed["LAchildID"], strict=True), ex.GONE),
                                        tuple(background.loc[moved, ["rule", "LAchildID"]]): ex.VALUES_CHANGED}

    # Through the CLI: the --since totals and the Explanations line of run 2; and in the report's two sections.
    since = (fates[history.NEW], fates[history.RESOLVED], still_open, 1)
    assert said(rf"(?m)^{SINCE}$", two.output) == since
    assert said(rf"(?m)^Explanations: {EXPLAINED}$", two.output) == (explained, unexplained, stale)
    report = QAReport([checked.ret], checked, history=hist, explanations=file)
    assert said(SINCE, visible(report.since_last_run().data)) == since
    assert said(EXPLAINED, visible(report.explanations().data)) == (explained, unexplained, stale)
