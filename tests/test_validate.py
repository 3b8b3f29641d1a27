"""cinqa.validate: the failures table contract, errored rules, per-year rules, nothing on disk."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import cinqa
from cinqa.testing import build_return, validate_plainly
from cinqa.failures import FAILURE_COLUMNS, SUMMARY_COLUMNS
from cinqa.validate import validate
from test_synth import all_child_level

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def result_2023():
    return validate(cinqa.read_return(FIXTURES / "cin-2023-24.xml"))


def test_failures_follow_the_contract(result_2023):
    f = result_2023.failures
    assert tuple(f.columns) == FAILURE_COLUMNS
    for col in ("child", "episode", "item", "line"):
        assert str(f[col].dtype) == "Int64", col
    assert set(f["severity"]) <= {"error", "query"}
    assert tuple(result_2023.summary.columns) == SUMMARY_COLUMNS


def test_fixture_2023_gives_its_known_failures(result_2023):
    f = result_2023.failures
    got = sorted(zip(f["rule"], f["LAchildID"].fillna("-")))
    # The hand-written UPNs have made-up check letters, C003's former UPN too; the three children
    # use only two disability codes between them; C003's episode has a Section 47 and no assessment.
    assert got == [("1510", "C001"), ("1510", "C003"), ("1560Q", "C003"), ("2887Q", "-"), ("2991Q", "C003")]
    assert result_2023.errored.empty
    row = f[f["rule"] == "1510"].iloc[0]
    assert (row["entity"], row["fields"], row["line"]) == ("children", "UPN", 20)
    assert row["values"] == {"UPN": "A201123456789"}
    assert row["message"] == "UPN invalid (wrong check letter at character 1)"


def test_summary_counts_children_and_rows(result_2023):
    s = result_2023.summary.set_index("rule")
    assert s.loc["1510", "children"] == 2 and s.loc["1510", "rows"] == 2
    assert s.loc["2887Q", "children"] == 0 and s.loc["2887Q", "rows"] == 1
    assert s["severity"].tolist() == sorted(s["severity"].tolist())  # errors before queries


def test_gx_result_is_kept_per_view(result_2023):
    assert {"children", "episodes", "return"} <= set(result_2023.gx_result)
    rules = {r.expectation_config.meta["rule"] for r in result_2023.gx_result["children"].results}
    assert {"1510", "8500"} <= rules


def test_fixture_2012_13_is_validated_with_its_own_rules():
    v = validate(cinqa.read_return(FIXTURES / "cin-2012-13.xml"))
    assert v.year == "2012-13"
    assert "8866" not in v.checked and "8525" in v.checked and "8525Q" not in v.checked
    assert sorted(v.failures["rule"]) == ["1510", "2887Q", "2888Q"]


def test_a_year_can_be_overridden(tmp_path):
    ret = build_return("2023-24", {}, tmp_path)
    v = validate(ret, "2024-25", rules=["4180"])
    # GenderCurrent is not Sex: under 2024-25 rules the child has no sex recorded.
    assert v.failures[["rule", "values"]].values.tolist() == [["4180", {"Sex": None}]]
    assert v.failures["message"].iloc[0] == "Sex must be provided and equal M, F, or U"


def test_rules_limit_what_is_checked(tmp_path):
    ret = build_return("2023-24", {"children": [{"UPN": "A201000000010"}]}, tmp_path)
    assert validate(ret, rules=["8500"]).failures.empty
    assert validate(ret, rules=["8500"]).checked == ("8500",)
    assert validate(ret, rules=["1510"]).failures["rule"].tolist() == ["1510"]


def test_a_rule_that_errors_is_reported_not_failed_or_passed(tmp_path):
    folder = tmp_path / "expectations"
    folder.mkdir()
    meta = {"message": "m", "severity": "error", "years": "2012-13..2026-27", "entity": "children",
            "fields": ["LAchildID"]}
    suite = {"name": "children", "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "no_such_column", "value_set": ["x"]},
         "meta": {**meta, "rule": "9991"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "UPN"}, "meta": {**meta, "rule": "9992"}},
    ]}
    (folder / "children.json").write_text(json.dumps(suite))
    ret = build_return("2023-24", {"children": [{"UPN": None}]}, tmp_path)
    v = validate(ret, expectations=folder)
    assert v.errored["rule"].tolist() == ["9991"]
    assert "no_such_column" in v.errored["error"].iloc[0]
    assert v.failures["rule"].tolist() == ["9992"]  # the other rule still ran, after the errored one


def test_a_broken_expectation_stops_suite_assembly(tmp_path):
    folder = tmp_path / "expectations"
    folder.mkdir()
    suite = {"name": "children", "expectations": [
        {"type": "expect_column_values_to_be_between_columns", "kwargs": {"column": "PersonBirthDate",
                                                                           "max_column": "census_end",
                                                                           "max_offset": "two days"},
         "meta": {"rule": "9993", "message": "m", "severity": "error", "years": "2023-24", "entity": "children",
                  "fields": ["PersonBirthDate"]}}]}
    (folder / "children.json").write_text(json.dumps(suite))
    ret = build_return("2023-24", {}, tmp_path)
    with pytest.raises(ValueError, match="9993"):
        validate(ret, expectations=folder)


def test_validation_writes_nothing(tmp_path, monkeypatch):
    ret = cinqa.read_return(FIXTURES / "cin-2023-24.xml")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    validate(ret)
    assert list(work.iterdir()) == []


def test_unknown_year_is_refused(result_2023):
    with pytest.raises(cinqa.YearError):
        validate(result_2023.ret, "1999-00")


def test_importing_cinqa_does_not_import_great_expectations():
    code = "import sys, cinqa; sys.exit('great_expectations' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert done.returncode == 0


def test_what_gx_leaves_on_import_is_kept_out_of_later_full_collections():
    """A full collection walking GX's ~400,000 objects cost a cold validate about 0.25 s CPU."""
    code = "import gc, sys; from cinqa.checks import register; register(); sys.exit(gc.get_freeze_count() < 100_000)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_gx_keeps_the_views_it_is_given_without_copying_its_configuration_each_time(monkeypatch):
    """An ephemeral context re-serialises its whole configuration on each change (~10 ms), for no reader."""
    import great_expectations as gx
    from great_expectations.data_context.data_context_variables import DataContextVariables

    module = sys.modules["cinqa.validate"]
    module._context()
    saved = []
    monkeypatch.setattr(DataContextVariables, "save", lambda self: saved.append(self))
    batch = module._batch("a view only this test adds", pd.DataFrame({"x": [1, None]}))
    assert batch.validate(gx.expectations.ExpectColumnValuesToNotBeNull(column="x")).success is False
    assert saved == []


def test_values_are_typed_dates_and_missing_values_none(tmp_path):
    ret = build_return("2023-24", {"children": [{"PersonBirthDate": "2024-04-01", "ExpectedPersonBirthDate": None}]},
                       tmp_path)
    f = validate(ret, rules=["8520"]).failures
    assert f["values"].tolist() == [{"PersonBirthDate": dt.date(2024, 4, 1)}]
    assert isinstance(f, pd.DataFrame) and f["LAchildID"].tolist() == ["C1"]


@pytest.mark.parametrize("year, workers", [("2025-26", (1, 2)), ("2012-13", (2,))], ids=["2025-26", "2012-13"])
def test_fast_validation_finds_exactly_what_the_plain_one_does(year, workers):
    from cinqa import synth

    ret, truth = synth.generate(year, children=400, seed=11, errors=0.15)
    failures, errored = validate_plainly(ret)
    assert len(truth) > 20 and len(failures) >= len(truth) // 2  # the sample does fail many rules
    for n in workers:
        v = validate(ret, workers=n)
        pd.testing.assert_frame_equal(v.failures, failures)
        pd.testing.assert_frame_equal(v.errored, errored)
    # The results GX hands back carry the registry's meta again, not the lean meta it ran with.
    meta = v.gx_result["episodes"].results[0].expectation_config.meta
    assert {"rule", "message", "severity", "years", "entity", "fields", "view"} <= set(meta)


SAMPLES = sorted((Path(__file__).parent.parent / "data").glob("*.xml"))


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_fails_exactly_as_the_plain_validation_says(path):
    ret = cinqa.read_return(path)
    failures, errored = validate_plainly(ret)
    v = validate(ret, workers=1)
    pd.testing.assert_frame_equal(v.failures, failures)
    pd.testing.assert_frame_equal(v.errored, errored)


def _configurations_built(monkeypatch, run):
    """Count the GX expectation configurations built while ``run()`` runs."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    built = [0]
    init = ExpectationConfiguration.__init__

    def counted(self, *args, **kwargs):
        built[0] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(ExpectationConfiguration, "__init__", counted)
    run()
    monkeypatch.undo()
    return built[0]


def test_gx_builds_an_expectations_configuration_once_per_lookup_during_validation(monkeypatch, tmp_path):
    """GX rebuilds an expectation's configuration for every kwarg it looks up; cinqa's runs build it once per lookup."""
    import great_expectations as gx

    ret = build_return("2023-24", {}, tmp_path)
    validate(ret, workers=1)  # suites built and GX loaded before counting
    fast = _configurations_built(monkeypatch, lambda: validate(ret, workers=1))
    plain = _configurations_built(monkeypatch, lambda: validate_plainly(ret))
    assert 0 < fast < plain / 3, (fast, plain)
    # Outside cinqa's validation GX is as it ships: each read builds a new configuration.
    e = gx.expectations.ExpectColumnValuesToNotBeNull(column="LAchildID")
    assert e.configuration is not e.configuration


def test_gx_lists_the_rows_of_unsettled_expectations_only(monkeypatch, tmp_path):
    """A verdict first for every expectation; rows (COMPLETE) only for those that failed or may hide failing rows."""
    from great_expectations.datasource.fluent.interfaces import Batch

    runs = []
    run_batch = Batch.validate

    def recorded(self, expect, **kwargs):
        runs.append((kwargs["result_format"]["result_format"], {e.meta["rule"] for e in expect.expectations}))
        return run_batch(self, expect, **kwargs)

    monkeypatch.setattr(Batch, "validate", recorded)
    # Under 2024-25 rules a 2023-24 child has no Sex: 4180 ("must be provided and equal M, F, or U")
    # is a GX success on a column with no values, while its row fails; 1510 fails outright, 8500 passes.
    ret = build_return("2023-24", {"children": [{"UPN": "A201000000010"}]}, tmp_path)
    v = validate(ret, "2024-25", rules=["8500", "1510", "4180"], workers=1)
    assert v.failures[["rule", "values"]].values.tolist() == [["1510", {"UPN": "A201000000010"}],
                                                              ["4180", {"Sex": None}]]
    listed = set().union(*(rules for kind, rules in runs if kind == "COMPLETE"))
    judged = set().union(*(rules for kind, rules in runs if kind == "BOOLEAN_ONLY"))
    assert listed == {"1510", "4180"} and judged == {"8500", "1510", "4180"}


def test_once_most_expectations_fail_gx_lists_rows_at_once(monkeypatch):
    """Judging first runs a failing expectation twice: on a return failing most rules it stops after a few groups."""
    from great_expectations.datasource.fluent.interfaces import Batch

    runs = []
    run_batch = Batch.validate

    def recorded(self, expect, **kwargs):
        runs.append((kwargs["result_format"]["result_format"], len(expect.expectations)))
        return run_batch(self, expect, **kwargs)

    monkeypatch.setattr(Batch, "validate", recorded)
    v = validate(cinqa.read_return(Path(__file__).parent.parent / "data" / "sample-2025-26-errors.xml"), workers=1)
    assert v.summary["rule"].nunique() > len(v.checked) / 2
    judged = sum(n for kind, n in runs if kind == "BOOLEAN_ONLY")
    assert 0 < judged < len(v.checked) / 4, runs


def test_a_helper_process_that_dies_costs_time_not_results(monkeypatch):
    import sys as _sys

    from cinqa import synth

    ret = synth.generate("2024-25", children=150, seed=5)
    alone = validate(ret, workers=1)
    module = _sys.modules["cinqa.validate"]
    shared_runs = []
    run_shared = module._run_shared
    monkeypatch.setattr(module, "_run_shared", lambda *args: shared_runs.append(1) or run_shared(*args))
    monkeypatch.setattr(module, "_helper", lambda *args: os._exit(3))
    shared = validate(ret, workers=2)
    assert shared_runs  # the view suites were shared with a helper process, which died at once
    pd.testing.assert_frame_equal(shared.failures, alone.failures)
    assert set(shared.gx_result) == set(alone.gx_result)


@pytest.mark.parametrize("year", ["2018-19", "2025-26", "2026-27"])
def test_each_injected_fault_is_reported_where_its_truth_row_says(year):
    """The synthetic truth names the row cinqa.validate reports (entity, episode, item), not just the child."""
    from cinqa import synth

    codes = all_child_level(year)
    bad, truth = synth.generate(year, children=600, seed=2026, errors=codes)
    assert len(truth) >= len(codes)
    keys = ["rule", "child", "entity", "episode", "item"]
    reported = set(validate(bad).failures[keys].astype(object).where(lambda d: d.notna(), None)
                   .itertuples(index=False, name=None))
    wanted = truth[keys].astype(object).where(truth[keys].notna(), None).itertuples(index=False, name=None)
    missing = [row for row in wanted if row not in reported]
    assert missing == []


def _structurally_bad(tmp_path):
    """Write the 2023-24 fixture with a ReferenceDate of another census year and an unknown element."""
    text = (FIXTURES / "cin-2023-24.xml").read_text("utf-8")
    text = text.replace("<ReferenceDate>2024-03-31</ReferenceDate>", "<ReferenceDate>2023-03-31</ReferenceDate>")
    text = text.replace("</LAchildID>", "</LAchildID><Shoe>9</Shoe>", 1)
    path = tmp_path / "bad.xml"
    path.write_text(text, "utf-8")
    return path


def test_repr_and_html_show_structural_issues_first_with_their_lines(tmp_path):
    v = validate(cinqa.read_return(_structurally_bad(tmp_path)))
    text = repr(v)
    assert "2 structural issues" in text
    assert "line 7, error: <ReferenceDate> 2023-03-31 falls in the 2022-23 census" in text
    assert "unknown element <Shoe>" in text
    shown = v._repr_html_()
    assert shown.index("structural issues") < shown.index("<th>rule</th>")
    assert "<td>7</td>" in shown and "&lt;Shoe&gt;" in shown
    assert "Not fully checked" in shown


def test_html_repr_gives_each_failing_rule_its_status_and_note(result_2023):
    shown = result_2023._repr_html_()
    assert "<th>status</th>" in shown and "<th>note</th>" in shown
    assert list(result_2023.rule_summary.columns) == [*SUMMARY_COLUMNS[:3], "status", "note", "guidance",
                                                      *SUMMARY_COLUMNS[3:]]
