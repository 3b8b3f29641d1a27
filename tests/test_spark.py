"""cinqa.spark: the same suites on Spark give the failures table pandas gives.

The parity tests run the errors sample and a synthetic return with a fault of every rule that a
custom expectation checks through both engines. They need Java and pyspark (``cinqa[spark]``,
which ``make venv`` installs); where either is missing they skip, saying which.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java (17), and no java is on PATH nor JAVA_HOME set")
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: pip install 'cinqa[spark]' (make venv does)")
    from cinqa.spark import session

    s = session("local[2]")
    yield s
    s.stop()


def _assert_same(ret: cinqa.CensusReturn, spark, **kwargs) -> pd.DataFrame:
    from cinqa.spark import validate as validate_on_spark

    pandas = cinqa.validate(ret, **kwargs)
    on_spark = validate_on_spark(ret, spark=spark, **kwargs)
    assert on_spark.errored.empty, on_spark.errored.to_string()
    assert pandas.errored.empty
    pd.testing.assert_frame_equal(on_spark.failures, pandas.failures)
    counts = (on_spark.failures.groupby(["entity", "rule"]).size().rename("rows").reset_index())
    print(f"\n{ret.year}, {len(ret.children)} children: failing rows per view and rule, identical on both engines\n"
          f"{counts.to_string(index=False)}")
    return on_spark.failures


def test_the_errors_sample_fails_alike_on_spark(spark):
    failures = _assert_same(cinqa.read_return(DATA / "sample-2025-26-errors.xml"), spark)
    truth = pd.read_csv(DATA / "sample-2025-26-errors-truth.csv", dtype=str)
    assert set(truth["rule"]) <= set(failures["rule"])


def test_a_fault_of_every_custom_checked_rule_fails_alike_on_spark(spark):
    wanted = _custom_rules("2024-25")
    ret, _ = cinqa.synth.generate("2024-25", children=120, seed=7, errors=wanted)
    failures = _assert_same(ret, spark, rules=wanted)
    # Each kind of check these rules use finds a fault, so every Spark form is exercised.
    kinds = {e.rule: e.type for e in registry.rules_for_year("2024-25") if e.rule in wanted}
    assert {kinds[r] for r in failures["rule"]} == set(kinds.values())
