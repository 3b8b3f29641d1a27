"""cinqa.spark: the same suites on Spark give the failures table pandas gives.

The parity tests build each view of a pooled store (the errors sample and synthetic LA-years with a
fault of every rule that a custom expectation checks) on Spark and in pandas and compare them, run
the store and one small return through both engines, with one
Spark session for the whole test run, to keep their cost in CI small. They need Java and pyspark
(``cinqa[spark]``, which ``make venv`` installs); where either is missing they skip, saying which.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import cinqa
from cinqa import rules as registry
from cinqa.checks import register
from cinqa.synth import faults

DATA = Path(__file__).parents[1] / "data"


def _custom_rules(year: str) -> list[str]:
    """Return the injectable rules of ``year`` that a custom expectation of cinqa.checks checks."""
    from great_expectations.expectations.registry import get_expectation_impl

    register()
    custom = {e.rule for e in registry.rules_for_year(year)
              if get_expectation_impl(e.type).__module__.startswith("cinqa.checks")}
    return sorted(custom & set(faults.injectable_rules(year)))


def test_every_custom_metric_has_a_spark_form():
    from great_expectations.expectations.registry import _registered_metrics

    register()
    conditions = {name: set(m["providers"]) for name, m in _registered_metrics.items()
                  if "cinqa_" in name and name.endswith(".condition")}
    assert len(conditions) == 7
    assert {name for name, engines in conditions.items() if "SparkDFExecutionEngine" not in engines} == set()


def _spark_worker_on_a_dropped_connection(worker, monkeypatch) -> int:
    """Run a pyspark daemon ``worker`` on a connection the JVM sent its secret on and then closed."""
    import signal
    import socket

    from pyspark.serializers import write_with_length

    monkeypatch.setenv("PYTHON_WORKER_FACTORY_SECRET", "secret")
    ours, jvm = socket.socketpair()
    with jvm.makefile("wb") as out:
        write_with_length(b"secret", out)
    jvm.close()
    # The worker sets the signal handlers of the forked process it expects to run in.
    saved = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)}
    try:
        return worker(ours, False)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        ours.close()


def test_a_spark_worker_whose_connection_was_dropped_ends_quietly(monkeypatch, capfd):
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: pip install 'cinqa[spark]' (make venv does)")
    from pyspark import daemon

    from cinqa.spark import SETTINGS
    from cinqa.spark_daemon import worker

    # pyspark's own worker fails here, and its daemon prints the traceback on the terminal.
    with pytest.raises(BrokenPipeError):
        _spark_worker_on_a_dropped_connection(daemon.worker, monkeypatch)
    capfd.readouterr()
    assert _spark_worker_on_a_dropped_connection(worker, monkeypatch) == 1
    assert capfd.readouterr().err == ""
    assert SETTINGS["spark.python.daemon.module"] == worker.__module__


@pytest.fixture(scope="session")
def spark():
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java (17), and no java is on PATH nor JAVA_HOME set")
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: pip install 'cinqa[spark]' (make venv does)")
    from cinqa.spark import session

    s = session("local[2]")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pooled 2025-26 store: the errors sample (LA 931) and two small synthetic LAs holding the same
    children, with a fault of each rule a custom expectation checks."""
    from cinqa.pool import pool_returns, write_pooled

    folder = tmp_path_factory.mktemp("store")
    assert pool_returns([DATA / "sample-2025-26-errors.xml"], folder).written
    ret, _ = cinqa.synth.generate("2025-26", children=60, seed=7, la="202", errors=_custom_rules("2025-26"))
    write_pooled(ret, folder)
    # The same children again as another LA's return: identifiers repeat across LAs, as they may.
    write_pooled(dataclasses.replace(ret, header=dataclasses.replace(ret.header, la="873")), folder)
    return folder


@pytest.mark.filterwarnings("ignore:.*no child of this return fits the fault:UserWarning")
def test_each_view_built_on_spark_is_the_stacked_pandas_view(spark, store: Path):
    from cinqa.export import ISSUES_NAME
    from cinqa.pool import pooled_returns, read_table
    from cinqa.spark import _views_on_pandas, to_spark
    from cinqa.views import VIEWS
    from cinqa.views_spark import SparkViews

    las = [la for _, la in pooled_returns(store)]
    issues = read_table(store, ISSUES_NAME, [("2025-26", la) for la in las])
    pandas, _ = _views_on_pandas(spark, store, "2025-26", las, VIEWS, issues, False)
    built = SparkViews(spark, store, "2025-26", las, issues)
    sizes = {}
    for name in VIEWS:
        expected, got = pandas[name], built.view(name)
        assert got.columns == list(expected.columns), name
        sizes[name] = len(expected)
        if not len(expected):
            assert got.isEmpty(), name
            continue
        want = to_spark(expected, spark)
        assert [(f.name, f.dataType) for f in got.schema] == [(f.name, f.dataType) for f in want.schema], name
        pd.testing.assert_frame_equal(got.toPandas().sort_values("row", ignore_index=True),
                                      want.toPandas().sort_values("row", ignore_index=True), obj=name)
    # Every view the rules read has rows here, so each Spark form was compared on data.
    assert {name for name, n in sizes.items() if n == 0} <= {"pre_proceedings"}
    print(f"\nrows per view, identical on both builds: {sizes}")


def test_a_column_declared_once_is_built_alike_on_both_engines(spark, store: Path, monkeypatch):
    """A column added to cinqa.viewcols.VIEW_COLUMNS (a count with a condition, an expression of it) appears
    in the views of both engines, with the same values: nothing else names it."""
    from cinqa.export import ISSUES_NAME
    from cinqa.pool import pooled_returns, read_table
    from cinqa.spark import _views_on_pandas
    from cinqa.viewcols import CHILD, VIEW_COLUMNS, Count, Derived, Missing
    from cinqa.views_spark import SparkViews

    extra = (Count("_open_plans", "cin_plans", CHILD, Missing("CINPlanEndDate")),
             Derived("has_open_cin_plan", "bool", lambda df, v: df["_open_plans"] > 0,
                     lambda F, df, v: F.col("_open_plans") > 0))
    monkeypatch.setitem(VIEW_COLUMNS, "children", VIEW_COLUMNS["children"] + extra)
    las = [la for _, la in pooled_returns(store)]
    issues = read_table(store, ISSUES_NAME, [("2025-26", la) for la in las])
    pandas, _ = _views_on_pandas(spark, store, "2025-26", las, ("children",), issues, False)
    got = SparkViews(spark, store, "2025-26", las, issues).view("children")
    assert "_open_plans" not in got.columns and got.columns[-5] == "has_open_cin_plan"
    on_spark = got.select("row", "has_open_cin_plan").toPandas().sort_values("row", ignore_index=True)
    expected = pandas["children"][["row", "has_open_cin_plan"]].sort_values("row", ignore_index=True)
    assert on_spark["has_open_cin_plan"].tolist() == expected["has_open_cin_plan"].tolist()
    assert 0 < expected["has_open_cin_plan"].sum() < len(expected)


@pytest.mark.filterwarnings("ignore:.*no child of this return fits the fault:UserWarning")
def test_a_pooled_store_fails_on_spark_as_each_return_does_on_pandas(spark, store: Path, tmp_path: Path,
                                                                    monkeypatch):
    """``cinqa validate --engine spark STORE --out DIR`` (this session's Spark) gives the failures pandas gives
    each return, the same verdict per LA, and writes them; the run's result is watched on its way to the
    command line, which still runs the real validation."""
    from typer.testing import CliRunner

    import cinqa.spark
    from cinqa.cli import app
    from cinqa.pool import pooled_returns, read_pooled

    runs = []
    validate_store = cinqa.spark.validate_store

    def watched(*args, **kwargs):
        runs.append(validate_store(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(cinqa.spark, "validate_store", watched)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["validate", str(store), "--engine", "spark", "--out", str(out)])
    assert result.exit_code == 1 and len(runs) == 1, result.output
    on_spark = runs[0]
    assert on_spark.errored.empty, on_spark.errored.to_string()
    written = pd.read_csv(out / "summary.csv", dtype=str)
    assert written[["census_year", "la"]].values.tolist() == on_spark.summary[["census_year", "la"]].values.tolist()
    assert len(pd.read_csv(out / "failures.csv", dtype=str)) == len(on_spark.failures)
    assert all(la in result.stdout for la in on_spark.summary["la"]) and f"Wrote {out}" in result.stdout
    pandas, verdicts = [], {}
    for year, la in pooled_returns(store):
        v = cinqa.validate(read_pooled(store, year, la), progress=False)
        assert v.errored.empty
        pandas.append(v.failures.assign(census_year=year, la=la))
        verdicts[la] = (v.verdict.status, v.verdict.error_rows, v.verdict.query_rows)
    expected = pd.concat(pandas, ignore_index=True)[list(on_spark.failures.columns)]
    pd.testing.assert_frame_equal(on_spark.failures, expected)
    summary = on_spark.summary.set_index("la")
    assert {la: (r.status, r.error_rows, r.query_rows) for la, r in summary.iterrows()} == verdicts
    # LAs 202 and 873 hold the same children: unique LAchildID and UPN (8510, 1520) hold within each LA.
    assert set(expected.loc[expected["la"] == "873", "rule"]) == set(expected.loc[expected["la"] == "202", "rule"])
    truth = pd.read_csv(DATA / "sample-2025-26-errors-truth.csv", dtype=str)
    assert set(truth["rule"]) <= set(on_spark.failures.loc[on_spark.failures["la"] == "931", "rule"])
    # Each kind of custom check finds a fault, so every Spark form of a custom metric is exercised.
    kinds = {e.rule: e.type for e in registry.rules_for_year("2025-26") if e.rule in _custom_rules("2025-26")}
    assert {kinds[r] for r in on_spark.failures["rule"] if r in kinds} == set(kinds.values())
    counts = on_spark.failures.groupby(["la", "entity", "rule"]).size().rename("rows").reset_index()
    print(f"\nfailing rows per LA, view and rule, identical on both engines\n{counts.to_string(index=False)}")


def test_one_return_fails_alike_on_spark(spark):
    from cinqa.spark import validate as validate_on_spark

    wanted = ["8510", "1520", "8794", *_custom_rules("2024-25")[:4]]
    ret, _ = cinqa.synth.generate("2024-25", children=40, seed=11, errors=wanted)
    pandas = cinqa.validate(ret, rules=wanted, progress=False)
    on_spark = validate_on_spark(ret, spark=spark, rules=wanted, progress=False)
    assert on_spark.errored.empty, on_spark.errored.to_string()
    assert len(pandas.failures)
    pd.testing.assert_frame_equal(on_spark.failures, pandas.failures)


def test_a_session_cinqa_starts_prints_no_start_up_news_nor_tracebacks(spark):
    """A local session with a pandas UDF job (Python workers and all), in a process of its own as a user's run
    has: stderr holds none of Spark's start-up warnings, its log profile news or worker tracebacks."""
    import subprocess
    import sys

    job = ("from cinqa.spark import session\n"
           "from cinqa.checks._spark import shifted\n"
           "s = session('local[1]')\n"
           "days = s.createDataFrame([('2025-04-01',)], 'd string').selectExpr('cast(d as timestamp) as d')\n"
           "print(days.select(shifted(days.d, '-1WD')).collect()[0][0].date())\n"
           "s.stop()\n")
    proc = subprocess.run([sys.executable, "-c", job], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "2025-03-31", proc.stderr
    noise = [line for line in proc.stderr.splitlines()
             if "Traceback" in line or "Error" in line or " WARN " in line or "log4j" in line]
    assert noise == [], proc.stderr
