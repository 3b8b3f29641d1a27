"""The run history: what a run records, how runs compare, and the refusals of a damaged or foreign folder."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from collections import Counter

import pandas as pd
import pytest
from typer.testing import CliRunner

from cinqa import history, synth
from cinqa.cli import app
from cinqa.failures import IDENTITY_COLUMNS, identity
from cinqa.history import NEW, RESOLVED, STILL_OPEN, HistoryError

# What each fault's fate between the runs must make of its failure.
EXPECTED = {synth.FIXED: RESOLVED, synth.KEPT: STILL_OPEN, synth.NEW: NEW}
MONDAY = dt.datetime(2026, 1, 12, 9, 0, tzinfo=dt.timezone.utc)
WEEK = dt.timedelta(days=7)


def failures(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    """A run's failures as the history keeps them: rule, LAchildID, row, values_hash, severity."""
    return pd.DataFrame([(*r, "query" if r[0].endswith("Q") else "error") for r in rows],
                        columns=list(history.RUN_COLUMNS)).astype("str")


def expected(runs) -> pd.DataFrame:
    """The truth of two runs with ``status``: the change each fault's fate must show in the second run."""
    return runs.truth.assign(status=runs.truth["fate"].map(EXPECTED))


def keyed(frame: pd.DataFrame, change: str, column: str = "change") -> Counter:
    """Count the (rule, LAchildID) pairs of ``frame`` whose ``column`` is ``change``."""
    return Counter(map(tuple, frame.loc[frame[column] == change, ["rule", "LAchildID"]].to_numpy().tolist()))


# -- comparing two runs -------------------------------------------------------------------------


def test_failures_are_new_resolved_or_still_open_and_changed_values_stay_open():
    before = failures(("8500", "C1", "children", "aa"), ("8606", "C2", "episodes 1", "bb"),
                      ("8606", "C3", "episodes 2", "cc"))
    now = failures(("8606", "C2", "episodes 1", "bb"), ("8606", "C3", "episodes 2", "dd"),
                   ("8525Q", "C4", "children", "ee"))
    out = history.compare_runs(now, before).set_index(["rule", "LAchildID"])
    assert out.loc[("8500", "C1"), "change"] == RESOLVED
    assert out.loc[("8606", "C2"), "change"] == STILL_OPEN and not out.loc[("8606", "C2"), "values_changed"]
    assert out.loc[("8606", "C3"), "change"] == STILL_OPEN and out.loc[("8606", "C3"), "values_changed"]
    assert out.loc[("8525Q", "C4"), "change"] == NEW
    assert len(out) == 4


def test_identical_keys_pair_equal_digests_first():
    # A duplicated LAchildID gives two failures of rule 8510 with one key; one of the two children is fixed.
    before = failures(("8510", "C9", "children", "aa"), ("8510", "C9", "children", "bb"))
    now = failures(("8510", "C9", "children", "bb"))
    out = history.compare_runs(now, before)
    assert sorted(out["change"]) == [RESOLVED, STILL_OPEN]
    assert not out["values_changed"].any()


# -- recording ----------------------------------------------------------------------------------


def test_a_run_keeps_each_failures_identity_and_no_values(two_runs, tmp_path):
    v = two_runs.validations["first"]
    line = history.record(v, tmp_path / "h", when=MONDAY)
    assert line["file_sha256"] == history.file_sha256(two_runs.paths["first"])
    assert (line["LA"], line["census_year"], line["status"]) == ("931", "2025-26", v.verdict.status)
    assert (int(line["errors"]), int(line["queries"])) == (v.verdict.error_rows, v.verdict.query_rows)
    kept = history.read_run(tmp_path / "h", line["run"])
    expected = identity(v.failures).astype("str").reset_index(drop=True)
    assert kept.loc[:, list(IDENTITY_COLUMNS)].equals(expected)
    assert list(kept.columns) == [*IDENTITY_COLUMNS, "severity"]
    with gzip.open(tmp_path / "h" / "runs" / f"{line['run']}.csv.gz", "rt") as fh:
        text = fh.read()
    dates = [str(x) for vals in v.failures["values"] for x in vals.values() if isinstance(x, dt.date)]
    assert dates and not any(d in text for d in dates)


def test_new_resolved_and_still_open_equal_synths_truth(two_runs, tmp_path):
    folder = tmp_path / "history"
    history.record(two_runs.validations["first"], folder, when=MONDAY)
    history.record(two_runs.validations["second"], folder, when=MONDAY + WEEK)
    found = history.changes(folder)
    truth = expected(two_runs)
    # Failures of the clean return (natural queries) are in both runs, untouched by any fault.
    background = identity(two_runs.validations["clean"].failures)
    assert len(truth) > 15 and set(truth["status"]) == {NEW, RESOLVED, STILL_OPEN}
    totals = found.totals()
    assert totals[NEW] == (truth["status"] == NEW).sum()
    assert totals[RESOLVED] == (truth["status"] == RESOLVED).sum()
    assert totals[STILL_OPEN] == (truth["status"] == STILL_OPEN).sum() + len(background)
    assert totals["values_changed"] == 0
    f = found.failures
    for change in (NEW, RESOLVED):
        assert keyed(f, change) == keyed(truth, change, "status"), change
    open_truth = keyed(truth, STILL_OPEN, "status")
    open_truth.update(map(tuple, background[["rule", "LAchildID"]].to_numpy().tolist()))
    assert keyed(f, STILL_OPEN) == open_truth
    by_rule = found.by_rule().set_index("rule")
    for (rule, status), n in truth.groupby(["rule", "status"]).size().items():
        assert by_rule.loc[rule, status] == n, (rule, status)
    kid = truth[truth["status"] == NEW].iloc[0]["LAchildID"]
    assert found.by_child().set_index("LAchildID").loc[kid, NEW] >= 1


def test_a_rerun_of_the_same_file_is_marked_and_compared_as_its_first_run(two_runs, tmp_path):
    folder = tmp_path / "h"
    history.record(two_runs.validations["first"], folder, when=MONDAY)
    second = history.record(two_runs.validations["second"], folder, when=MONDAY + WEEK)
    again = history.record(two_runs.validations["second"], folder, when=MONDAY + WEEK)
    assert again["rerun_of"] == second["run"] and again["run"] != second["run"]
    found = history.changes(folder)
    assert found.rerun and found.run["run"] == second["run"] and found.previous is not None
    assert found.totals()[NEW] == (expected(two_runs)["status"] == NEW).sum()
    assert "checked before" in found.describe()[0]
    trend = history.trend(folder, "931", "2025-26")
    assert list(trend["run"]) == [history.read_index(folder)["run"].iloc[0], second["run"]]


def test_the_first_run_has_nothing_to_compare_with(two_runs, tmp_path):
    history.record(two_runs.validations["first"], tmp_path / "h", when=MONDAY)
    found = history.changes(tmp_path / "h")
    assert found.previous is None and found.totals()[NEW] == 0
    assert "first run" in found.describe()[-1]


# -- refusing what is not a history -------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(two_runs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recorded") / "h"
    history.record(two_runs.validations["first"], folder, when=MONDAY)
    return folder


def copy_of(folder, tmp_path):
    import shutil

    return shutil.copytree(folder, tmp_path / "h")


def test_a_foreign_file_is_named(recorded, tmp_path):
    folder = copy_of(recorded, tmp_path)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(HistoryError, match=r"notes\.txt: this file is not part of a cinqa run history"):
        history.read_index(folder)


def test_an_unlisted_run_file_is_named(recorded, tmp_path):
    folder = copy_of(recorded, tmp_path)
    (folder / "runs" / "other.csv.gz").write_bytes(b"x")
    with pytest.raises(HistoryError, match=r"other\.csv\.gz: this file is no run listed"):
        history.read_index(folder)


@pytest.mark.parametrize("damage, where", [
    (lambda t: "rule,child\n" + t.split("\n", 1)[1], "line 1: not a run-history index"),
    (lambda t: t + "x,y\n", "line 3: 2 fields"),
    (lambda t: t.replace(",931,2025-26,0.1.0,300,", ",931,2025-26,0.1.0,many,"), "line 2: children is 'many'"),
])
def test_a_damaged_index_is_named_with_its_line(recorded, tmp_path, damage, where):
    folder = copy_of(recorded, tmp_path)
    index = folder / "index.csv"
    index.write_text(damage(index.read_text()))
    with pytest.raises(HistoryError, match=rf"index\.csv, {where}"):
        history.read_index(folder)


def test_a_damaged_run_file_is_named(recorded, tmp_path):
    folder = copy_of(recorded, tmp_path)
    run = next((folder / "runs").iterdir())
    run.write_bytes(b"not gzip")
    with pytest.raises(HistoryError, match=rf"{run.name}: not a run's failures file"):
        history.changes(folder)


def test_a_missing_run_file_is_named(recorded, tmp_path):
    folder = copy_of(recorded, tmp_path)
    for p in (folder / "runs").iterdir():
        p.unlink()
    with pytest.raises(HistoryError, match=r"index\.csv, line 2: run .* is listed but its failures file"):
        history.read_index(folder)


# -- the command line ---------------------------------------------------------------------------


def test_validate_since_prints_the_changes_before_the_verdict_and_keeps_the_exit_code(two_runs, tmp_path):
    runner = CliRunner()
    folder = tmp_path / "h"
    first = runner.invoke(app, ["validate", str(two_runs.paths["first"]), "--history", str(folder), "--since"])
    assert "first run of LA 931 2025-26" in first.output
    plain = runner.invoke(app, ["validate", str(two_runs.paths["second"])])
    out = runner.invoke(app, ["validate", str(two_runs.paths["second"]), "--history", str(folder), "--since"])
    assert out.exit_code == plain.exit_code == two_runs.validations["second"].verdict.exit_code
    truth = expected(two_runs)
    totals = (f"In all: {(truth['status'] == NEW).sum()} new, {(truth['status'] == RESOLVED).sum()} resolved, "
              f"{(truth['status'] == STILL_OPEN).sum() + len(two_runs.validations['clean'].failures)} still open.")
    assert totals in out.output
    assert out.output.index(totals) < out.output.index("Verdict:")
    assert "  8600 error: 1 new, 0 resolved, 0 still open" in out.output
    assert len(history.read_index(folder)) == 2


def test_since_needs_a_history(two_runs):
    out = CliRunner().invoke(app, ["validate", str(two_runs.paths["first"]), "--since"])
    assert out.exit_code == 2 and "--since compares with the last run recorded in a history" in out.output


def test_a_foreign_history_folder_is_refused_before_any_work(two_runs, tmp_path):
    (tmp_path / "returns.xlsx").write_bytes(b"")
    out = CliRunner().invoke(app, ["validate", str(two_runs.paths["first"]), "--history", str(tmp_path)])
    assert out.exit_code == 2 and "returns.xlsx: this file is not part of a cinqa run history" in out.output


def test_a_formula_like_lachildid_is_written_inert_and_read_back_as_it_was(tmp_path):
    ids = pd.DataFrame({c: ["x"] for c in history.RUN_COLUMNS}).astype("str")
    ids["LAchildID"] = ["=HYPERLINK(\"http://x\")"]
    path = tmp_path / history.RUNS / f"r1{history.RUN_SUFFIX}"
    path.parent.mkdir()
    history._write_run(path, ids)
    written = list(csv.DictReader(gzip.decompress(path.read_bytes()).decode().splitlines()))
    assert [r["LAchildID"] for r in written] == ["'=HYPERLINK(\"http://x\")"]
    assert list(history.read_run(tmp_path, "r1")["LAchildID"]) == ["=HYPERLINK(\"http://x\")"]
