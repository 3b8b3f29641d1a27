"""Run the census suites on Spark, with the same rules and the same failures table as pandas.

The views are built by :mod:`cinqa.views` in pandas, one return at a time, and handed to Spark
through Arrow; Great Expectations then runs each view's suite on its Spark execution engine, where
the custom expectations of :mod:`cinqa.checks` have Spark forms beside their pandas ones. The
failing rows come back as view row numbers and are turned into the failures table by the same code
as a pandas validation, so the two engines cannot disagree on how a failure is reported.

Spark is needed only here (``pip install cinqa[spark]``). The session is configured so that data
reaches Spark unchanged: Arrow on with no silent fallback (without Arrow a missing pandas text
value becomes the string ``'nan'`` and not-null rules pass), UTC so dates do not move, and the
workers run this interpreter so that pandas UDFs see the same cinqa.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import Any, Callable

import pandas as pd

from cinqa.validate import _RESULT_FORMAT, Validation, _context, _ignore, _merge
from cinqa.validate import validate as validate_pandas

SETTINGS = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
"""Session settings every Spark run of cinqa needs (see the module docstring for why)."""


def session(master: str = "local[*]", app_name: str = "cinqa") -> Any:
    """Return a Spark session for cinqa on ``master`` (default: local, every core), creating it if needed."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in SETTINGS.items():
        builder = builder.config(key, value)
    if master.startswith("local"):
        # A local session needs no network beyond this machine: bind to loopback only.
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    spark = builder.getOrCreate()
    # Spark's warnings (native Hadoop libraries, host names) are no news to a census user.
    spark.sparkContext.setLogLevel("ERROR")
    # A session that already existed ignored the builder: its runtime settings are set on it.
    for key, value in SETTINGS.items():
        if not key.startswith("spark.ui."):
            spark.conf.set(key, value)
    return spark


def to_spark(frame: pd.DataFrame, spark: Any) -> Any:
    """Hand a pandas frame to Spark through Arrow, its columns keeping their names and types."""
    return spark.createDataFrame(frame)


def run_suites(plans: dict[str, Any], views: dict[str, pd.DataFrame], spark: Any,
               tick: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Validate each view against its suite with GX's Spark engine; return the GX results by view.

    The counterpart of :func:`cinqa.validate.run_suites`: GX applies each rule's row condition
    itself, as it does on any engine, and reports failing rows by the view's ``row`` column.
    ``tick(n)`` is told of every ``n`` expectations run or skipped.
    """
    tick = tick or _ignore
    out = {}
    for name, plan in plans.items():
        view = views[name]
        if not len(view):
            tick(len(plan.entries))
            continue
        wanted = {c.lower() for c in plan.columns}
        columns = [c for c in view.columns if c == "row" or not wanted or c.lower() in wanted]
        # One return's view is small: one partition means one task and one Python worker per job.
        frame = to_spark(view.loc[:, columns], spark).coalesce(1).cache()
        try:
            batch = _batch_definition(name).get_batch(batch_parameters={"dataframe": frame})
            parts = []
            for group in plan.groups:
                parts.append(batch.validate(group.conditioned, result_format=_RESULT_FORMAT))
                tick(len(group.conditioned.expectations))
        finally:
            frame.unpersist()
        out[name] = _merge(plan, parts)
    return out


def validate(ret: Any, year: str | None = None, *, spark: Any = None, **kwargs: Any) -> Validation:
    """Check ``ret`` as :func:`cinqa.validate` does, running the suites on Spark (default: :func:`session`)."""
    spark = spark or session()
    return validate_pandas(ret, year, runner=lambda plans, views, tick: run_suites(plans, views, spark, tick), **kwargs)


@cache
def _batch_definition(view: str) -> Any:
    return _source().add_dataframe_asset(view).add_batch_definition_whole_dataframe("whole")


@cache
def _source() -> Any:
    return _context().data_sources.add_spark("cinqa-spark")
