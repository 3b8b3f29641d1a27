"""The analyst's weekly loop end to end: check, explain in the workbook, import, check next week's extract.

Run 1 and run 2 are two extracts of one synthetic return (:func:`conftest.build_two_runs`): faults
of run 1 are fixed or kept, new ones are injected into run 2, and synth's truth table says which.
Every count the CLI prints and the API returns is computed from that truth, never written down.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import openpyxl
import pandas as pd
from conftest import TwoRuns, build_two_runs
from typer.testing import CliRunner

from cinqa import explanations as ex
from cinqa import history, synth
from cinqa.cli import app
from cinqa.failures import identity

# Seed 1 keeps run 1's injected 8525Q query and fixes its 8555Q query, so both fates get an explanation.
SEED = 1
WHO = "A. Analyst"
CHANGE = {synth.FIXED: history.RESOLVED, synth.KEPT: history.STILL_OPEN, synth.NEW: history.NEW}

runner = CliRunner()


def is_query(rules: pd.Series) -> pd.Series:
    """Tell the query rules among rule codes by their spelling ("8525Q")."""
    return rules.str.endswith("Q")


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


def printed(pattern: str, output: str) -> tuple[int, ...]:
    """Return the counts of the one printed line that matches ``pattern`` (its groups; an absent group is 0)."""
    found = re.findall(pattern, output, flags=re.MULTILINE)
    assert len(found) == 1, (pattern, output)
    groups = found[0] if isinstance(found[0], tuple) else (found[0],)
    return tuple(int(g.replace(",", "")) if g else 0 for g in groups)


def test_new_resolved_still_open_explained_and_stale_equal_synths_truth(tmp_path: Path):
    runs: TwoRuns = build_two_runs(tmp_path / "returns", seed=SEED)
    truth = runs.truth.assign(change=runs.truth["fate"].map(CHANGE))
    # The clean return's own queries are in both runs, untouched by any fault: still open, not in the truth.
    background = identity(runs.validations["clean"].failures)
    queries = truth[is_query(truth["rule"])]
    assert set(queries["fate"]) == {synth.FIXED, synth.KEPT, synth.NEW} and len(background) >= 2

    # Explain every injected query of run 1 (one to be kept, one to be fixed) and one of the background ones.
    first_queries = queries[queries["fate"] != synth.NEW]
    wanted = set(zip(first_queries["rule"], first_queries["LAchildID"], strict=True))
    wanted.add(tuple(background.iloc[0][["rule", "LAchildID"]]))
    hist, book = tmp_path / "history", tmp_path / "out" / "book.xlsx"
    one = runner.invoke(app, ["validate", str(runs.paths["first"]), "--xlsx", str(book), "--history", str(hist)])
    assert one.exit_code == 1, one.output
    assert type_explanations(book, wanted) == Counter(dict.fromkeys(wanted, 1))
    imported = runner.invoke(app, ["explain", "import", str(book), "--who", WHO])
    assert imported.exit_code == 0, imported.output
    file = ex.default_path(runs.paths["first"], runs.validations["first"].year)
    assert f"{len(wanted)} added, 0 updated, 0 unchanged" in imported.output
    assert len(ex.read_explanations(file, missing_ok=False)) == len(wanted)

    two = runner.invoke(app, ["validate", str(runs.paths["second"]), "--history", str(hist), "--since",
                              "--explanations", str(file)])
    assert two.exit_code == 1, two.output

    # What the truth says run 2 must show.
    fates = Counter(truth["change"])
    still_open = fates[history.STILL_OPEN] + len(background)
    kept = (first_queries["fate"] == synth.KEPT).sum()
    explained = kept + 1
    stale = (first_queries["fate"] == synth.FIXED).sum()
    unexplained = (queries["fate"] == synth.NEW).sum() + len(background) - 1
    assert min(kept, stale, unexplained) >= 1

    # Through the API: the history the CLI recorded, and run 2's queries matched with the imported file.
    totals = history.changes(hist).totals()
    assert (totals[history.NEW], totals[history.RESOLVED], totals[history.STILL_OPEN]) == (
        fates[history.NEW], fates[history.RESOLVED], still_open)
    assert totals["values_changed"] == 0
    matched = ex.explain(runs.validations["second"], ex.read_explanations(file))
    assert (matched.explained, matched.unexplained, matched.stale) == (explained, unexplained, stale)
    gone = matched.explanations[matched.explanations["state"] == ex.STALE]
    assert set(gone["why_stale"]) == {ex.GONE}
    assert set(zip(gone["rule"], gone["LAchildID"], strict=True)) == set(
        zip(first_queries.loc[first_queries["fate"] == synth.FIXED, "rule"],
            first_queries.loc[first_queries["fate"] == synth.FIXED, "LAchildID"], strict=True))

    # Through the CLI: the --since totals and the Explanations line of run 2.
    assert printed(r"^In all: ([\d,]+) new, ([\d,]+) resolved, ([\d,]+) still open\.$", two.output) == (
        fates[history.NEW], fates[history.RESOLVED], still_open)
    assert printed(r"^Explanations: ([\d,]+) quer(?:y|ies) explained, ([\d,]+) quer(?:y|ies) unexplained"
                   r"(?:; ([\d,]+) explanations? stale)?\.$", two.output) == (explained, unexplained, stale)
