"""Validation views built on Spark from a pooled store: the Spark engine for :data:`cinqa.viewcols.VIEW_COLUMNS`.

Every view column is declared once, in :mod:`cinqa.viewcols`, with its pandas form beside its Spark
form; :class:`SparkViews` reads a year's tables from the store and applies the Spark forms, as
:class:`cinqa.views.ViewBuilder` applies the pandas ones. Every join, count and window is keyed
by census year, LA and child (then episode, item), so one build covers every LA of a census year
and no LA's rows meet another's. A view's schema is the one :func:`cinqa.spark.to_spark` gives
the pandas view stacked over the LAs (the parity tests compare them view by view), with ``row``
numbered as the stacked pandas view numbers it: LAs in order, each LA's rows in key order.

pyspark is imported only when a view is built: importing this module needs no Spark.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any


from cinqa import spec
from cinqa.pool import HEADER_NAME, PARTITIONS
from cinqa.returns import table_schema
from cinqa.viewcols import CHILD, EPISODE, REAL_DISABILITY, SPARK_TYPES, VIEW_COLUMNS, Count, Fact
from cinqa.viewcols import spark_functions as _f
from cinqa.views import LOCATOR, VIEW_TABLES

_LOCATOR_TYPES = dict(zip(LOCATOR, ("bigint", "bigint", "string", "bigint", "bigint", "bigint"), strict=True))
"""The Spark type of each locator column of :data:`cinqa.views.LOCATOR`, in its order."""
_P = list(PARTITIONS)


def _locator(**given: Any) -> list[Any]:
    """Return a view's locator columns in order, typed: those ``given`` (Spark columns by name), the others missing."""
    F = _f()
    return [given.get(name, F.lit(None)).cast(kind).alias(name) for name, kind in _LOCATOR_TYPES.items()]


class SparkViews:
    """Build the validation views of every LA of one census ``year`` of a pooled ``store`` on Spark, each once."""

    def __init__(self, spark: Any, store: str | Path, year: str, las: list[str], issues: Any) -> None:
        """Read the ``las`` of ``year`` from ``store``; ``issues`` are their structural issues, led by census_year
        and la (:func:`cinqa.pool.read_table`: a store's issues are few, and a return without any writes its
        columns untyped, which Spark cannot stack with typed ones)."""
        self.spark, self.store, self.year, self.las = spark, Path(store), year, sorted(las)
        self.issues = issues
        self.partitions = _P
        self.start = spec.census_start(year)
        self.end = spec.reference_date(year)
        self._built: dict[str, Any] = {}

    def view(self, name: str) -> Any:
        """Return view ``name`` as a Spark DataFrame, building it on first use."""
        if name not in VIEW_TABLES:
            raise KeyError(f"unknown validation view {name!r}")
        if name not in self._built:
            self._built[name] = self._build(name)
        return self._built[name]

    # -- reading the store ------------------------------------------------------------------

    def _table(self, name: str) -> Any:
        """Read table ``name`` of the year's LAs, each column cast to the type the reader gives it."""
        return self._tables[name]

    @cached_property
    def _tables(self) -> dict[str, Any]:
        return {name: self._read(name, table_schema(name, self.year) if name in spec.TABLE_KEYS else None)
                for name in (*spec.TABLE_KEYS, HEADER_NAME)}

    def _read(self, name: str, schema: dict[str, str] | None) -> Any:
        F = _f()
        root = self.store / name
        paths = [str(root / f"census_year={self.year}" / f"la={la}") for la in self.las]
        # Spark matches names regardless of case, as GX does: disabilities' own ordinal ``disability``
        # and its ``Disability`` code can only be told apart while reading.
        case = self.spark.conf.get("spark.sql.caseSensitive")
        self.spark.conf.set("spark.sql.caseSensitive", "true")
        try:
            df = self.spark.read.option("basePath", str(root)).parquet(*paths)
            if schema is None:
                return df
            cols = [(F.col(c) if c in df.columns else F.lit(None)).cast(SPARK_TYPES[t]).alias(_name(name, c, self.year))
                    for c, t in schema.items()]
            out = df.select(*[F.col(p) for p in _P], *cols)
            if any(_name(name, c, self.year) != c for c in schema):
                # Any later step would analyse the read again without case: cut it off from the file.
                out = out.localCheckpoint(eager=True)
            return out
        finally:
            self.spark.conf.set("spark.sql.caseSensitive", case)

    # -- building blocks (the Spark forms of ViewBuilder's helpers) ---------------------------

    def _lit_date(self, when: Any) -> Any:
        return _f().lit(str(when.date())).cast("date").cast("timestamp")

    @staticmethod
    def _attach(df: Any, facts: Any, keys: tuple[str, ...], cols: list[str], fill: Any = None) -> Any:
        """Join ``facts`` (unique per LA-year and ``keys``) onto ``df``, adding ``cols`` at its end."""
        F = _f()
        out = df.join(facts.select(*_P, *keys, *cols), on=[*_P, *keys], how="left")
        picked = [(F.coalesce(F.col(c), F.lit(fill)) if fill is not None else F.col(c)).alias(c) for c in cols]
        return out.select(*[F.col(c) for c in df.columns], *picked)

    def _starts_inside(self, left: Any, right: Any, *, lkeys: tuple[str, ...], rkeys: tuple[str, ...],
                       by: tuple[str, ...], start: str, lo: Any, hi: Any, same_rows: bool, include_hi: bool,
                       name: str, except_equal_to: Any = None, mark: str = "left") -> Any:
        """Add column ``name`` to ``left`` (or ``right`` with ``mark="right"``): :func:`cinqa.viewcols.starts_inside`.

        ``lkeys``/``rkeys`` name each side's rows (its table keys); ``lo``, ``hi`` and
        ``except_equal_to`` are functions of ``right`` giving its columns.
        """
        F = _f()
        lk = left.select(*_P, *[F.col(k).alias(f"_l{i}") for i, k in enumerate(lkeys)],
                         *[F.col(k).alias(f"_b{i}") for i, k in enumerate(by)], F.col(start).alias("_s")) \
            .where(F.col("_s").isNotNull())
        rk = right.select(*_P, *[F.col(k).alias(f"_r{i}") for i, k in enumerate(rkeys)],
                          *[F.col(k).alias(f"_b{i}") for i, k in enumerate(by)], lo(right).alias("_lo"),
                          hi(right).alias("_hi"),
                          (except_equal_to(right) if except_equal_to else F.lit(None).cast("timestamp")).alias("_x")) \
            .where(F.col("_lo").isNotNull() & F.col("_hi").isNotNull())
        pairs = lk.join(rk, on=[*_P, *[f"_b{i}" for i in range(len(by))]], how="inner")
        if same_rows:
            pairs = pairs.where(~_all([F.col(f"_l{i}") == F.col(f"_r{i}") for i in range(len(lkeys))]))
        inside = (F.col("_lo") <= F.col("_s")) & ((F.col("_s") <= F.col("_hi")) if include_hi
                                                   else (F.col("_s") < F.col("_hi")))
        inside = inside & ~F.coalesce(F.col("_s") == F.col("_x"), F.lit(False))
        side, keys = ("_l", lkeys) if mark == "left" else ("_r", rkeys)
        hits = pairs.where(inside).select(*_P, *[F.col(f"{side}{i}").alias(k) for i, k in enumerate(keys)]) \
            .distinct().withColumn(name, F.lit(True))
        target = left if mark == "left" else right
        return self._attach(target, hits, keys, [name], fill=False)

    @cached_property
    def _child_dates(self) -> Any:
        F = _f()
        c = self._table("children")
        d = self._table("disabilities")
        disabled = d.where(REAL_DISABILITY.spark(d, self)).select(*_P, "child").distinct() \
            .withColumn("has_disability", F.lit(True))
        return self._attach(c, disabled, CHILD, ["has_disability"], fill=False)

    def _census(self, df: Any) -> Any:
        return df.withColumn("census_start", self._lit_date(self.start)).withColumn("census_end", self._lit_date(self.end))

    def _finish(self, table: str, df: Any, added: list[str]) -> Any:
        """Lay ``df`` (``table``'s rows with ``added`` columns) out as the view: locator, own columns, ``added``,
        the census dates, then census_year and la, ``row`` numbered as the stacked pandas views number it."""
        F = _f()
        from pyspark.sql import Window

        keys = spec.TABLE_KEYS[table]
        own = keys[-1] if keys[-1] not in ("child", "episode") else None
        schema = table_schema(table, self.year)
        rest = [c for c in schema if c not in ("child", "LAchildID", "episode", "line", own)]
        local = F.row_number().over(Window.partitionBy(*_P).orderBy(*[_name(table, k, self.year) for k in keys])) - 1
        df = df.withColumn("row", local + self._offsets(table)[F.col("la")])
        locator = _locator(row=F.col("row"), child=F.col("child"), LAchildID=F.col("LAchildID"),
                           episode=F.col("episode") if "episode" in keys else F.lit(None),
                           item=F.col(_name(table, keys[-1], self.year)), line=F.col("line"))
        out = df.select(*locator, *rest, *added, *_P)
        out = self._census(out)
        return out.select(*[c for c in out.columns if c not in _P], *_P)

    def _offsets(self, table: str) -> Any:
        """Map each LA to the number of ``table`` rows of the LAs before it (the stacked view's row offset)."""
        F = _f()
        counts = dict(self._table(table).groupBy("la").count().collect())
        pairs, total = [], 0
        for la in self.las:
            pairs += [F.lit(la), F.lit(total).cast("bigint")]
            total += int(counts.get(la, 0))
        return F.create_map(*pairs)

    # -- the views --------------------------------------------------------------------------

    def _build(self, name: str) -> Any:
        """Build view ``name`` from the Spark forms of its :data:`cinqa.viewcols.VIEW_COLUMNS`: each source's facts
        in one join, each table's counts with the same keys in one pass (Spark analyses a plan again at every
        step, so a view of twenty joins costs minutes before it reads a row), then the others in order."""
        table = VIEW_TABLES[name]
        columns = VIEW_COLUMNS[name]
        if table is None:
            return self._one_row(columns)
        df = self._table(table)
        for source in ("parent", "episode", "child"):
            names = [c.name for c in columns if isinstance(c, Fact) and c.source == source]
            if names:
                df = self._attach(df, *self._facts(source, table), names)
        counts: dict[tuple[str, tuple[str, ...]], list[Count]] = {}
        for c in columns:
            if isinstance(c, Count):
                counts.setdefault((c.table, c.keys), []).append(c)
        for (counted, keys), group in counts.items():
            t = self._table(counted)
            per = t.groupBy(*_P, *keys).agg(*[c.spark(t, self) for c in group])
            df = self._attach(df, per, keys, [c.name for c in group], fill=0)
        for c in columns:
            if not isinstance(c, (Fact, Count)):
                df = c.spark(self, table, df)
        return self._finish(table, df, [c.name for c in columns if not c.name.startswith("_")])

    def _facts(self, source: str, table: str) -> tuple[Any, tuple[str, ...]]:
        """Return the rows holding ``table``'s ``source`` facts (:class:`cinqa.viewcols.Fact`) and their keys."""
        if source == "child":
            return self._child_dates, CHILD
        if source == "episode":
            return self._table("episodes").withColumnRenamed("DateOfInitialCPC", "CINdetails_DateOfInitialCPC"), EPISODE
        parent = spec.table_parent(table)
        return self._table(parent), spec.TABLE_KEYS[parent]

    def _one_row(self, columns: tuple[Any, ...]) -> Any:
        """Build a view with one row per return (LA-year) from the header's rows."""
        F = _f()
        df = self._table("header")
        for c in columns:
            df = c.spark(self, None, df)
        names = [c.name for c in columns if not c.name.startswith("_")]
        out = df.select(*_locator(row=F.lit(0)), *[F.col(n) for n in names], *_P)
        # Number the rows as the stacked pandas view does: by LA.
        rows = F.create_map(*[x for i, la in enumerate(self.las) for x in (F.lit(la), F.lit(i).cast("bigint"))])
        out = self._census(out.withColumn("row", rows[F.col("la")]))
        return out.select(*[c for c in out.columns if c not in _P], *_P)


def _name(table: str, column: str, year: str) -> str:
    """Return the name a Spark view build gives ``table``'s ``column``: a key whose name differs from
    another column's only in case (disabilities' ``disability``) is read as ``_disability``."""
    clash = column in spec.TABLE_KEYS[table] and any(
        c != column and c.lower() == column.lower() for c in table_schema(table, year))
    return f"_{column}" if clash else column


def _all(conditions: list[Any]) -> Any:
    out = conditions[0]
    for c in conditions[1:]:
        out = out & c
    return out
