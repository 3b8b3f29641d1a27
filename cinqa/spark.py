"""Run the census suites on Spark, with the same rules and the same failures table as pandas.

:func:`validate_store` builds each view of a census year on Spark straight from a pooled store
(:mod:`cinqa.pool`) for every LA at once (:mod:`cinqa.views_spark`, the Spark form of
:mod:`cinqa.views`; joins and windows keyed by census year, LA and child), and runs each view's
suite once over them; :func:`validate` checks one return, its views built by :mod:`cinqa.views` in
pandas and handed to Spark through Arrow. Great Expectations runs the suites on its Spark execution
engine, where the custom expectations of :mod:`cinqa.checks` have Spark forms beside their pandas
ones. Only the failing rows come back to the driver, and they are turned into the failures table
by the same code as a pandas validation, so the two engines cannot disagree on how a failure is
reported. Measured (``bench/spark.py``, 20,000 children over 4 LAs, two local cores, load 7-8):
pandas 14.6 s, Spark with the views built on Spark 359 s (24.7x), Spark with the views built in
pandas per LA-year (``views_on="pandas"``) 123 s (8.5x); on one machine the Spark-built views cost
more, and they are what scales with a cluster (docs/scale.md).

Spark is needed only here (``pip install cinqa[spark]``). The session is configured so that data
reaches Spark unchanged: Arrow on with no silent fallback (without Arrow a missing pandas text
value becomes the string ``'nan'`` and not-null rules pass), UTC so dates do not move, and the
workers run this interpreter so that pandas UDFs see the same cinqa.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterable

import great_expectations as gx
import numpy as np
import pandas as pd

from cinqa.failures import ERRORED_COLUMNS, verdict
from cinqa.export import ISSUES_NAME
from cinqa.pool import PARTITIONS, pooled_returns, read_pooled, read_table
from cinqa.progress import bar
from cinqa.validate import _RESULT_FORMAT, Validation, _context, _ignore, _merge, _raised, _rows, _tidy
from cinqa.validate import validate as validate_pandas

SETTINGS = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # A store's la partitions are text: 050 must not be read as the number 50.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    # Python workers end quietly when Spark drops their connection (no BrokenPipeError tracebacks).
    "spark.python.daemon.module": "cinqa.spark_daemon",
}
"""Session settings every Spark run of cinqa needs (see the module docstring for why)."""
_LOG_SETTINGS = Path(__file__).with_name("spark-log4j2.properties")


def session(master: str = "local[*]", app_name: str = "cinqa") -> Any:
    """Return a Spark session for cinqa on ``master`` (default: local, every core), creating it if needed."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in SETTINGS.items():
        builder = builder.config(key, value)
    if master.startswith("local"):
        # A local session needs no network beyond this machine: bind to loopback only (SPARK_LOCAL_IP too,
        # or Spark warns on start that the host name resolves to loopback, and picks another address).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        # Spark's start-up news (INFO and WARN) is none to a census user; errors still show.
        builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_LOG_SETTINGS.as_uri()}")
    spark = builder.getOrCreate()
    # Spark's warnings (native Hadoop libraries, host names) are no news to a census user.
    spark.sparkContext.setLogLevel("ERROR")
    # A session that already existed ignored the builder: its runtime settings are set on it.
    for key, value in SETTINGS.items():
        if key.startswith("spark.sql."):
            spark.conf.set(key, value)
    return spark


def to_spark(frame: pd.DataFrame, spark: Any) -> Any:
    """Hand a pandas frame to Spark through Arrow, its columns keeping their names and types."""
    arrow = [c for c in frame.columns if isinstance(frame[c].dtype, (pd.StringDtype, pd.ArrowDtype))]
    if arrow:
        # pyspark 4.1 takes one Arrow array per column: text stacked from several returns, or read
        # from Parquet, is held in several chunks, which it refuses.
        frame = frame.assign(**{c: pd.array(frame[c].to_numpy(dtype=object), dtype=frame[c].dtype) for c in arrow})
    return spark.createDataFrame(frame)


def run_suites(plans: dict[str, Any], views: dict[str, Any], spark: Any,
               tick: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Validate each view against its suite with GX's Spark engine; return the GX results by view.

    The counterpart of :func:`cinqa.validate.run_suites`: GX applies each rule's row condition
    itself, as it does on any engine, and reports failing rows by the view's ``row`` column.
    A view is a pandas frame (handed to Spark) or a Spark DataFrame (:mod:`cinqa.views_spark`).
    ``tick(n)`` is told of every ``n`` expectations run or skipped.
    """
    tick = tick or _ignore
    out = {}
    for name, plan in plans.items():
        view = views[name]
        on_spark = not isinstance(view, pd.DataFrame)
        if not on_spark and not len(view):
            tick(len(plan.entries))
            continue
        wanted = {c.lower() for c in plan.columns}
        columns = [c for c in view.columns if c == "row" or not wanted or c.lower() in wanted]
        if on_spark:
            # GX asks for many small jobs per expectation: a few partitions per core, not the shuffle's.
            frame = view.select(*columns).coalesce(spark.sparkContext.defaultParallelism).cache()
            if frame.isEmpty():
                frame.unpersist()
                tick(len(plan.entries))
                continue
        else:
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


SUMMARY_COLUMNS = (*PARTITIONS, "children", "status", "error_rows", "query_rows", "children_with_errors",
                   "structural_issues", "not_evaluated")
"""The per-LA-year summary of a pooled validation: the return's size and its verdict's counts."""


@dataclass
class PooledValidation:
    """The outcome of validating a pooled store: failures and rules that errored led by census_year
    and la, a summary per LA-year (:data:`SUMMARY_COLUMNS`) and where the time went."""

    failures: pd.DataFrame
    summary: pd.DataFrame
    errored: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)


def validate_store(store: str | Path, *, spark: Any = None, years: Iterable[str] | None = None,
                   rules: Iterable[str] | None = None, progress: bool | None = None,
                   views_on: str = "spark") -> PooledValidation:
    """Check every LA-year of the pooled ``store`` (:mod:`cinqa.pool`) on Spark, one run per census year.

    Each view is built on Spark over every LA of the year at once (:mod:`cinqa.views_spark`), and
    Spark runs each view's suite once over them, so GX's fixed cost per expectation is paid once per
    year, not once per return; only the failing rows come back to the driver. ``views_on="pandas"``
    builds the views in pandas instead, one LA-year at a time, and stacks them (the parity tests
    compare the two). A uniqueness rule is checked within each LA (``la`` joins its columns): two
    authorities may hold the same LAchildID. The failures are those :func:`cinqa.validate` gives
    each return alone, led by census_year and la.
    """
    from cinqa import rules as registry

    if views_on not in ("spark", "pandas"):
        raise ValueError(f"views_on must be 'spark' or 'pandas', not {views_on!r}")
    spark = spark or session()
    wanted = tuple(sorted(set(rules))) if rules is not None else None
    pairs = pooled_returns(store)
    if years is not None:
        pairs = [p for p in pairs if p[0] in set(years)]
    seconds = {"views": 0.0, "gx": 0.0, "failures": 0.0}
    failures, errored, summary = [], [], []
    for year in sorted({y for y, _ in pairs}):
        las = [la for y, la in pairs if y == year]
        plans = registry.view_suites(year, wanted)
        clock = time.perf_counter()
        issues = read_table(store, ISSUES_NAME, [(year, la) for la in las])
        build = _views_on_spark if views_on == "spark" else _views_on_pandas
        views, children = build(spark, store, year, las, tuple(plans), issues, progress)
        seconds["views"] += time.perf_counter() - clock

        clock = time.perf_counter()
        scoped = {name: _scoped(plan) for name, plan in plans.items()}
        with bar(f"{year}: validating {len(las)} returns on Spark", sum(len(p.entries) for p in plans.values()),
                 unit="rule", show=progress) as counter:
            results = run_suites(scoped, views, spark, counter.update)
        seconds["gx"] += time.perf_counter() - clock

        clock = time.perf_counter()
        if views_on == "spark":
            views = _failing_rows(results, views, spark)
        found, broken = _tidy(results, views, PARTITIONS)
        found = found.sort_values(list(PARTITIONS), kind="stable")
        failures.append(found)
        errored.append(broken.assign(census_year=year)[["census_year", *broken.columns]])
        for la in las:
            own = issues.loc[issues["la"].eq(la).to_numpy()].drop(columns=list(PARTITIONS)).reset_index(drop=True)
            v = verdict(found[found["la"] == la], broken, own)
            summary.append({"census_year": year, "la": la, "children": children.get(la, 0), "status": v.status,
                            "error_rows": v.error_rows, "query_rows": v.query_rows,
                            "children_with_errors": v.children_with_errors,
                            "structural_issues": v.structural_issues, "not_evaluated": v.not_evaluated})
        seconds["failures"] += time.perf_counter() - clock
    return PooledValidation(
        failures=pd.concat(failures, ignore_index=True) if failures else _tidy({}, {}, PARTITIONS)[0],
        summary=pd.DataFrame(summary, columns=list(SUMMARY_COLUMNS)),
        errored=pd.concat(errored, ignore_index=True) if errored else pd.DataFrame(
            columns=["census_year", *ERRORED_COLUMNS]),
        seconds=seconds)


def _views_on_spark(spark: Any, store: str | Path, year: str, las: list[str], names: tuple[str, ...],
                    issues: pd.DataFrame, progress: bool | None) -> tuple[dict[str, Any], dict[str, int]]:
    """Build the views ``names`` of ``year``'s ``las`` on Spark; return them and the children of each LA."""
    from pyspark.sql import functions as F

    from cinqa.views_spark import SparkViews

    built = SparkViews(spark, store, year, las, issues)
    with bar(f"{year}: preparing the data on Spark", len(names), unit="view", show=progress) as counter:
        views = {}
        for name in names:
            views[name] = built.view(name)
            counter.update(1)
    children = {r["la"]: int(r["n"]) for r in built.view("children").groupBy("la").agg(F.count(F.lit(1)).alias("n"))
                .collect()}
    return views, children


def _views_on_pandas(spark: Any, store: str | Path, year: str, las: list[str], names: tuple[str, ...],
                     issues: pd.DataFrame, progress: bool | None) -> tuple[dict[str, Any], dict[str, int]]:
    """Build the views ``names`` of ``year``'s ``las`` in pandas, one LA-year at a time, and stack them."""
    from cinqa.views import ViewBuilder

    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in names}
    children = {}
    with bar(f"{year}: preparing the data", len(las), unit="return", show=progress) as counter:
        for la in las:
            ret = read_pooled(store, year, la)
            children[la] = len(ret.children)
            builder = ViewBuilder(ret, year)
            for name in names:
                parts[name].append(builder.view(name).assign(census_year=year, la=la))
            counter.update(1)
    return {name: _pooled(frames) for name, frames in parts.items()}, children


def _failing_rows(results: dict[str, Any], views: dict[str, Any], spark: Any) -> dict[str, pd.DataFrame]:
    """Fetch the failing rows of each Spark view as a pandas frame, renumbering the GX results to match.

    :func:`cinqa.validate._tidy` finds a failing row by its position in the view: each result's
    rows become positions in the frame of the view's failing rows, which keeps their ``row``.
    """
    import pyarrow as pa
    from pyspark.sql import functions as F

    out = {}
    for name, res in results.items():
        # GX results cannot be dict keys (their hash reads their lists): pair each with its rows.
        found = [(r, (r.result or {}).get("unexpected_index_list")) for r in res.results]
        if any(not r.success and not rows and not _raised(r) for r, rows in found) and views[name].count() == 1:
            # A whole-view failure is reported on the view's one row, as a pandas run does.
            found = [(r, rows or ([{"row": [0]}] if not r.success else rows)) for r, rows in found]
        numbers = np.unique(np.concatenate([_rows(rows) for _, rows in found if rows] or
                                           [np.array([], dtype="int64")]))
        if not len(numbers):
            # Nothing failed: _tidy reads no row of this view, so Spark need not build it again.
            out[name] = pd.DataFrame(columns=views[name].columns)
            continue
        wanted = spark.createDataFrame(pd.DataFrame({"row": numbers}), "row long")
        table = views[name].join(F.broadcast(wanted), on="row").toArrow()
        frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get)
        frame = frame.loc[:, views[name].columns].sort_values("row").reset_index(drop=True)
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.DatetimeTZDtype):
                frame[c] = frame[c].dt.tz_localize(None).astype("datetime64[s]")
        positions = pd.Index(frame["row"].to_numpy(dtype="int64"))
        for r, rows in found:
            if rows:
                r.result["unexpected_index_list"] = [{"row": positions.get_indexer(_rows(rows)).tolist()}]
        out[name] = frame
    return out


def _pooled(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack one view of several returns, numbering its rows afresh: failing rows are looked up by position."""
    out = pd.concat(frames, ignore_index=True)
    out["row"] = np.arange(len(out), dtype=out["row"].dtype if len(frames) else "int64")
    return out


def _scoped(plan: Any) -> Any:
    """Give a view's suite with each uniqueness expectation checked within an LA, and ``la`` among its columns."""
    groups = []
    for group in plan.groups:
        expectations = [_within_la(e.configuration) for e in group.conditioned.expectations]
        suite = gx.ExpectationSuite(name=group.conditioned.name, expectations=expectations)
        groups.append(replace(group, conditioned=suite))
    columns = (*plan.columns, "la") if plan.columns else plan.columns
    return replace(plan, groups=tuple(groups), columns=columns)


def _within_la(config: Any) -> Any:
    """Return the expectation of ``config``, a uniqueness one made unique per LA (others as they are)."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    kwargs = dict(config.kwargs)
    if config.type == "expect_column_values_to_be_unique":
        # One column's uniqueness ignores missing values; with la (never missing) beside it, so does this.
        kwargs = {k: v for k, v in kwargs.items() if k != "column"}
        kwargs |= {"column_list": ["la", config.kwargs["column"]], "ignore_row_if": "any_value_is_missing"}
        config = ExpectationConfiguration(type="expect_compound_columns_to_be_unique", kwargs=kwargs, meta=config.meta)
    elif config.type == "expect_compound_columns_to_be_unique":
        kwargs["column_list"] = ["la", *kwargs["column_list"]]
        config = ExpectationConfiguration(type=config.type, kwargs=kwargs, meta=config.meta)
    return config.to_domain_obj()


@cache
def _batch_definition(view: str) -> Any:
    return _source().add_dataframe_asset(view).add_batch_definition_whole_dataframe("whole")


@cache
def _source() -> Any:
    return _context().data_sources.add_spark("cinqa-spark")
