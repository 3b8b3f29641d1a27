"""Validation views built on Spark from a pooled store: the Spark form of each view of :mod:`cinqa.views`.

Each method of :class:`SparkViews` is the Spark form of the :class:`cinqa.views.ViewBuilder`
method of the same name, column for column and in the same order: the facts both read (which
parent, episode and child columns a view takes, the activity dates, the code sets) are imported
from :mod:`cinqa.views` and :mod:`cinqa.spec`, never restated. Every join, count and window is
keyed by census year, LA and child (then episode, item), so one build covers every LA of a census
year and no LA's rows meet another's. A view's schema is the one :func:`cinqa.spark.to_spark` gives
the pandas view stacked over the LAs (the parity tests compare them view by view), with ``row``
numbered as the stacked pandas view numbers it: LAs in order, each LA's rows in key order.

pyspark is imported only when a view is built: importing this module needs no Spark.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from cinqa import spec
from cinqa.pool import HEADER_NAME, PARTITIONS
from cinqa.returns import table_schema
from cinqa.views import _ACTIVITY_DATES, _EPISODE_FACTS, _NFA_ACTIVITY_DATES, LOCATOR, VIEW_TABLES, dateless_reviews

SPARK_TYPES = {"int64": "bigint", "Int64": "bigint", "datetime64[s]": "timestamp", "boolean": "boolean",
               "bool": "boolean", "str": "string", "category": "string", "object": "string"}
"""The Spark type of each pandas dtype a return's tables hold, as Arrow hands it over."""
_LOCATOR_TYPES = dict(zip(LOCATOR, ("bigint", "bigint", "string", "bigint", "bigint", "bigint"), strict=True))
"""The Spark type of each locator column of :data:`cinqa.views.LOCATOR`, in its order."""
_P = list(PARTITIONS)


def _f() -> Any:
    from pyspark.sql import functions

    return functions


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
        self.start = spec.census_start(year)
        self.end = spec.reference_date(year)
        self._built: dict[str, Any] = {}

    def view(self, name: str) -> Any:
        """Return view ``name`` as a Spark DataFrame, building it on first use."""
        if name not in VIEW_TABLES:
            raise KeyError(f"unknown validation view {name!r}")
        if name not in self._built:
            self._built[name] = getattr(self, "_v_" + name)()
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
    def _col(df: Any, name: str, kind: str) -> Any:
        """Return column ``name`` of ``df``, or a missing value of type ``kind`` if the year lacks it."""
        F = _f()
        return F.col(name) if name in df.columns else F.lit(None).cast(kind)

    def _count(self, table: str, keys: tuple[str, ...], masks: dict[str, Any]) -> Any:
        """Count the rows of ``table`` per LA-year and ``keys``: all of them as each name of ``masks`` given
        None, else those where its mask (a function of the table) holds, in one pass."""
        F = _f()
        t = self._table(table)
        return t.groupBy(*_P, *keys).agg(*[
            (F.count(F.lit(1)) if mask is None else F.count(F.when(mask(t), 1))).alias(name)
            for name, mask in masks.items()])

    @staticmethod
    def _attach(df: Any, facts: Any, keys: tuple[str, ...], cols: list[str], fill: Any = None) -> Any:
        """Join ``facts`` (unique per LA-year and ``keys``) onto ``df``, adding ``cols`` at its end."""
        F = _f()
        out = df.join(facts.select(*_P, *keys, *cols), on=[*_P, *keys], how="left")
        picked = [(F.coalesce(F.col(c), F.lit(fill)) if fill is not None else F.col(c)).alias(c) for c in cols]
        return out.select(*[F.col(c) for c in df.columns], *picked)

    def _counted(self, df: Any, table: str, keys: tuple[str, ...], **masks: Any) -> Any:
        """Add a column per name of ``masks``: the rows of ``table`` with each ``df`` row's ``keys`` (0 if none),
        all of them or those where the mask holds (:meth:`_count`). One join per table: Spark analyses a
        plan again at every step, so a view of twenty joins costs minutes before it reads a row."""
        return self._attach(df, self._count(table, keys, masks), keys, list(masks), fill=0)

    def _starts_inside(self, left: Any, right: Any, *, lkeys: tuple[str, ...], rkeys: tuple[str, ...],
                       by: tuple[str, ...], start: str, lo: Any, hi: Any, same_rows: bool, include_hi: bool,
                       name: str, except_equal_to: Any = None, mark: str = "left") -> Any:
        """Add column ``name`` to ``left`` (or ``right`` with ``mark="right"``): :func:`cinqa.views.starts_inside`.

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

    def _episode_facts(self, df: Any, cols: tuple[str, ...]) -> Any:
        """Add the episode's ``cols`` (:attr:`cinqa.views.ViewBuilder._episode_facts`) to each row of ``df``."""
        e = self._table("episodes").withColumnRenamed("DateOfInitialCPC", "CINdetails_DateOfInitialCPC")
        return self._attach(df, e, ("child", "episode"), list(cols))

    @cached_property
    def _child_dates(self) -> Any:
        F = _f()
        c = self._table("children")
        d = self._table("disabilities")
        disabled = d.where(F.col("Disability").isNotNull() & (F.col("Disability") != "NONE")) \
            .select(*_P, "child").distinct().withColumn("has_disability", F.lit(True))
        return self._attach(c, disabled, ("child",), ["has_disability"], fill=False)

    def _with_child_dates(self, df: Any, cols: tuple[str, ...]) -> Any:
        return self._attach(df, self._child_dates, ("child",), list(cols))

    def _parent_dates(self, df: Any, table: str, cols: tuple[str, ...]) -> Any:
        parent = spec.table_parent(table)
        return self._attach(df, self._table(parent), spec.TABLE_KEYS[parent], list(cols))

    def _open_episode(self, t: Any) -> Any:
        F = _f()
        return F.col("CINclosureDate").isNull() & F.coalesce(F.col("ReferralNFA") == F.lit(False), F.lit(False))

    def _open_s47(self, t: Any) -> Any:
        F = _f()
        not_required = F.coalesce(self._col(t, "ICPCnotRequired", "boolean") == F.lit(True), F.lit(False))
        return self._col(t, "DateOfInitialCPC", "timestamp").isNull() & ~not_required

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

    def _v_header(self) -> Any:
        F = _f()
        h = self._table("header")
        end_year = spec.end_year(self.year)
        year = F.col("year").cast("bigint")
        out = h.select(
            *_locator(row=F.lit(0)),
            F.col("collection").cast("string").alias("Collection"), year.alias("Year"),
            F.col("reference_date").cast("timestamp").alias("ReferenceDate"),
            F.col("la").cast("string").alias("LEA"),
            F.col("source_level").cast("string").alias("SourceLevel"),
            F.lit(end_year).cast("bigint").alias("census_year_end"),
            F.when(year.isNotNull() & (year != F.lit(end_year)),
                   F.concat(F.lpad(year.cast("string"), 4, "0"), F.lit("-03-31")).cast("date").cast("timestamp"))
            .otherwise(F.lit(None).cast("timestamp")).alias("Year_end"),
            *_P)
        return self._one_per_return(out)

    def _one_per_return(self, df: Any) -> Any:
        """Number the one-row-per-return view's rows as the stacked pandas view does: by LA."""
        F = _f()
        rows = F.create_map(*[x for i, la in enumerate(self.las) for x in (F.lit(la), F.lit(i).cast("bigint"))])
        out = self._census(df.withColumn("row", rows[F.col("la")]))
        return out.select(*[c for c in out.columns if c not in _P], *_P)

    def _v_children(self) -> Any:
        F = _f()
        df = self._table("children")
        keys = ("child",)
        nfa = F.col("ReferralNFA")
        df = self._counted(df, "episodes", keys, episodes_for_child=None, open_episodes_for_child=self._open_episode,
                           _further=lambda t: nfa == F.lit(False),
                           _not_nfa=lambda t: ~F.coalesce(nfa == F.lit(True), F.lit(False)))
        df = df.withColumn("has_further_action_episode", F.col("_further") > 0) \
            .withColumn("all_episodes_nfa", F.col("_not_nfa") == 0)
        df = self._counted(df, "disabilities", keys, disabilities_for_child=None)
        df = self._attach(df, self._child_dates, keys, ["has_disability"])
        df = df.withColumn("birth_dates_given", F.col("PersonBirthDate").isNotNull().cast("bigint")
                           + F.col("ExpectedPersonBirthDate").isNotNull().cast("bigint"))
        df = df.withColumn("UPN_la_code", F.substring(self._col(df, "UPN", "string"), 2, 3))
        end = self._lit_date(self.end)
        last = self._table("episodes").groupBy(*_P, "child").agg(
            F.max(F.least(F.coalesce(F.col("CINclosureDate"), end), end)).alias("last_episode_day"))
        df = self._attach(df, last, keys, ["last_episode_day"])
        return self._finish("children", df, [
            "episodes_for_child", "open_episodes_for_child", "has_further_action_episode", "all_episodes_nfa",
            "disabilities_for_child", "has_disability", "birth_dates_given", "UPN_la_code", "last_episode_day"])

    def _v_disabilities(self) -> Any:
        F = _f()
        df = self._table("disabilities")
        distinct = df.groupBy(*_P, "child").agg(F.countDistinct("Disability").alias("distinct_disabilities_for_child"))
        df = self._attach(df, distinct, ("child",), ["distinct_disabilities_for_child"], fill=0)
        df = self._counted(df, "disabilities", ("child",), disabilities_for_child=None)
        df = self._with_child_dates(df, ("PersonBirthDate",))
        return self._finish("disabilities", df, ["distinct_disabilities_for_child", "disabilities_for_child",
                                                  "PersonBirthDate"])

    def _v_episodes(self) -> Any:
        F = _f()
        from pyspark.sql import Window

        e = self._table("episodes")
        born = ("PersonBirthDate", "ExpectedPersonBirthDate", "PersonDeathDate")
        df = self._with_child_dates(e, born)
        df = df.withColumn("birth_or_expected_birth_date", F.coalesce("PersonBirthDate", "ExpectedPersonBirthDate"))
        child, ep = ("child",), ("child", "episode")
        df = self._counted(df, "episodes", child, episodes_for_child=None, open_episodes_for_child=self._open_episode)
        latest = F.max("CINreferralDate").over(Window.partitionBy(*_P, "child"))
        df = df.withColumn("is_latest_referral",
                           F.coalesce(F.col("CINreferralDate") == latest, F.lit(False)))
        end_next = F.date_add(self._lit_date(self.end), 1).cast("timestamp")
        df = self._starts_inside(
            df, e, lkeys=ep, rkeys=ep, by=child, start="CINreferralDate", lo=lambda r: F.col("CINreferralDate"),
            hi=lambda r: F.when(F.col("CINclosureDate").isNotNull(), F.col("CINclosureDate"))
            .when(self._open_episode(r), end_next),
            same_rows=True, include_hi=False, name="referral_inside_other_episode")
        df = self._counted(df, "assessments", ep, assessments_in_episode=None,
                           open_assessments_in_episode=lambda t: F.col("AssessmentAuthorisationDate").isNull())
        df = self._counted(df, "section47", ep, s47_in_episode=None, open_s47_in_episode=self._open_s47)
        df = self._counted(df, "cp_plans", ep, cpps_in_episode=None)
        df = self._counted(df, "cin_plans", ep, cin_plans_in_episode=None)
        df = df.withColumn("s47_cpp_plan_or_icpc_in_episode",
                           F.col("s47_in_episode") + F.col("cpps_in_episode") + F.col("cin_plans_in_episode")
                           + F.col("DateOfInitialCPC").isNotNull().cast("bigint"))
        nfa_dates = self._dates_per_episode(_NFA_ACTIVITY_DATES).groupBy(*_P, *ep) \
            .agg(F.count(F.lit(1)).alias("assessment_or_s47_dates_in_episode"))
        df = self._attach(df, nfa_dates, ep, ["assessment_or_s47_dates_in_episode"], fill=0)
        latest_day = self._dates_per_episode(_ACTIVITY_DATES).groupBy(*_P, *ep) \
            .agg(F.max("day").alias("latest_activity_date"))
        df = self._attach(df, latest_day, ep, ["latest_activity_date"])
        return self._finish("episodes", df, [
            *born, "birth_or_expected_birth_date", "episodes_for_child", "open_episodes_for_child",
            "is_latest_referral", "referral_inside_other_episode", "assessments_in_episode", "s47_in_episode",
            "cpps_in_episode", "cin_plans_in_episode", "open_assessments_in_episode", "open_s47_in_episode", "s47_cpp_plan_or_icpc_in_episode",
            "assessment_or_s47_dates_in_episode", "latest_activity_date"])

    def _dates_per_episode(self, sources: tuple[tuple[str, str], ...]) -> Any:
        """Stack the present dates of ``(table, column)`` pairs as one long ``child, episode, day`` frame."""
        F = _f()
        parts = [self._table(t).select(*_P, "child", "episode", self._col(self._table(t), c, "timestamp").alias("day"))
                 for t, c in sources]
        out = parts[0]
        for p in parts[1:]:
            out = out.unionByName(p)
        return out.where(F.col("day").isNotNull())

    def _v_assessments(self) -> Any:
        F = _f()
        from pyspark.sql import Window

        a = self._table("assessments")
        df = self._episode_facts(a, _EPISODE_FACTS)
        child_cols = ("PersonBirthDate", "PersonDeathDate", "has_disability")
        df = self._with_child_dates(df, child_cols)
        ep, own = ("child", "episode"), ("child", "episode", "assessment")
        end = self._lit_date(self.end)
        df = self._counted(df, "assessments", ep, assessments_in_episode=None,
                           open_assessments_in_episode=lambda t: F.col("AssessmentAuthorisationDate").isNull())
        df = self._starts_inside(
            df, a, lkeys=own, rkeys=own, by=ep, start="AssessmentActualStartDate",
            lo=lambda r: F.col("AssessmentActualStartDate"),
            hi=lambda r: F.coalesce(F.col("AssessmentAuthorisationDate"), end),
            same_rows=True, include_hi=True, name="starts_inside_other_assessment")
        valid = sorted(spec.codes("assessment_factor", self.year))
        code = F.col("AssessmentFactors")
        factors = self._table("assessment_factors").groupBy(*_P, *own).agg(
            F.count(F.lit(1)).alias("factors_for_assessment"),
            F.count(F.when(code.isin(valid), 1)).alias("valid_factors_for_assessment"),
            F.count(F.when(code.isin(["5A", "6A"]), 1)).alias("_disability_factors"),
            F.array_join(F.array_sort(F.collect_list(code)), ",").alias("factor_codes"))
        counts = ["factors_for_assessment", "valid_factors_for_assessment", "_disability_factors"]
        df = self._attach(df, factors, own, [*counts, "factor_codes"])
        df = df.withColumns({c: F.coalesce(F.col(c), F.lit(0)) for c in counts})
        df = df.withColumn("factors_present_and_valid", (F.col("factors_for_assessment") > 0)
                           & (F.col("valid_factors_for_assessment") == F.col("factors_for_assessment")))
        df = df.withColumn("has_disability_factor", F.col("_disability_factors") > 0)
        initial = F.when(F.col("kind") == "initial", F.col("AssessmentActualStartDate"))
        df = df.withColumn("initial_assessment_start", F.min(initial).over(Window.partitionBy(*_P, *ep)))
        return self._finish("assessments", df, [
            *_EPISODE_FACTS, *child_cols, "assessments_in_episode", "open_assessments_in_episode",
            "starts_inside_other_assessment", "factors_for_assessment", "valid_factors_for_assessment",
            "factor_codes", "factors_present_and_valid", "has_disability_factor", "initial_assessment_start"])

    def _v_factors(self) -> Any:
        dates = ("AssessmentActualStartDate", "AssessmentAuthorisationDate")
        facts = ("CINclosureDate", "ReasonForClosure", "ReferralNFA")
        df = self._parent_dates(self._table("assessment_factors"), "assessment_factors", dates)
        df = self._episode_facts(df, facts)
        df = self._counted(df, "assessment_factors", ("child", "episode", "assessment"), factors_for_assessment=None)
        df = self._counted(df, "assessments", ("child", "episode"), assessments_in_episode=None)
        return self._finish("assessment_factors", df, [*dates, *facts, "factors_for_assessment",
                                                       "assessments_in_episode"])

    def _v_section47(self) -> Any:
        F = _f()
        s = self._table("section47")
        facts = (*_EPISODE_FACTS, "CINdetails_DateOfInitialCPC")
        df = self._with_child_dates(self._episode_facts(s, facts), ("PersonDeathDate",))
        ep, own = ("child", "episode"), spec.TABLE_KEYS["section47"]
        df = self._counted(df, "section47", ep, open_s47_in_episode=self._open_s47)
        end = self._lit_date(self.end)
        df = self._starts_inside(
            df, s, lkeys=own, rkeys=own, by=ep, start="S47ActualStartDate", lo=lambda r: F.col("S47ActualStartDate"),
            hi=lambda r: F.when(F.col("DateOfInitialCPC").isNotNull(), F.col("DateOfInitialCPC"))
            .when(self._open_s47(r), end),
            same_rows=True, include_hi=True, name="starts_inside_other_s47")
        df = self._counted(df, "assessments", ep, assessments_in_episode=None)
        return self._finish("section47", df, [*facts, "PersonDeathDate", "open_s47_in_episode",
                                               "starts_inside_other_s47", "assessments_in_episode"])

    def _v_cp_plans(self) -> Any:
        F = _f()
        p = self._table("cp_plans")
        facts = (*_EPISODE_FACTS, "CINdetails_DateOfInitialCPC")
        df = self._with_child_dates(self._episode_facts(p, facts), ("PersonDeathDate",))
        child, ep, own = ("child",), ("child", "episode"), spec.TABLE_KEYS["cp_plans"]
        end = self._lit_date(self.end)
        open_plan = lambda t: F.col("CPPendDate").isNull()  # noqa: E731
        df = self._counted(df, "cp_plans", child, open_cpps_for_child=open_plan)
        df = self._counted(df, "cp_plans", ep, open_cpps_in_episode=open_plan)
        df = self._starts_inside(
            df, p, lkeys=own, rkeys=own, by=child, start="CPPstartDate", lo=lambda r: F.col("CPPstartDate"),
            hi=lambda r: F.coalesce(F.col("CPPendDate"), end), same_rows=True, include_hi=True,
            name="starts_inside_other_cpp")
        df = self._starts_inside(
            df, self._table("cin_plans"), lkeys=own, rkeys=spec.TABLE_KEYS["cin_plans"], by=child,
            start="CPPstartDate", lo=lambda r: F.col("CINPlanStartDate"),
            hi=lambda r: F.coalesce(F.col("CINPlanEndDate"), end), same_rows=False, include_hi=True,
            except_equal_to=lambda r: F.col("CINPlanEndDate"), name="starts_inside_cin_plan")
        icpcs = self._table("section47").select(*_P, "child", "episode", F.col("DateOfInitialCPC").alias("_day")) \
            .unionByName(self._table("episodes").select(*_P, "child", "episode", F.col("DateOfInitialCPC").alias("_day"))) \
            .where(F.col("_day").isNotNull()).distinct().withColumn("starts_on_an_icpc_date", F.lit(True))
        df = self._attach(df.withColumn("_day", F.col("CPPstartDate")), icpcs, (*ep, "_day"),
                          ["starts_on_an_icpc_date"], fill=False)
        df = self._counted(df, "cp_reviews", own, reviews_for_cpp=None,
                           _undated=lambda t: F.col("CPPreviewDate").isNull())
        df = df.withColumn("previous_cpps_recorded",
                           F.coalesce(F.col("NumberOfPreviousCPP") >= 0, F.lit(False)))
        df = self._attach(df, self._dateless_reviews(p), own, ["_dateless"], fill=0)
        df = df.withColumn("reviews_without_date", F.col("_undated") + F.col("_dateless"))
        return self._finish("cp_plans", df, [
            *facts, "PersonDeathDate", "open_cpps_for_child", "open_cpps_in_episode", "starts_inside_other_cpp",
            "starts_inside_cin_plan", "starts_on_an_icpc_date", "reviews_for_cpp", "previous_cpps_recorded",
            "reviews_without_date"])

    def _dateless_reviews(self, p: Any) -> Any:
        """Count per plan the structural issues of a review with no date (:meth:`ViewBuilder._reviews_without_date`):
        each belongs to the child's last plan whose line is on or before the issue's (issues on the same
        child and line to the same plan, so each such group is placed once)."""
        F = _f()
        from pyspark.sql import Window

        own = spec.TABLE_KEYS["cp_plans"]
        i = self.issues
        found = pd.DataFrame({"census_year": pd.Series([], dtype="str"), "la": pd.Series([], dtype="str"),
                              "child": pd.Series([], dtype="int64"), "_at": pd.Series([], dtype="int64")})
        dateless = dateless_reviews(i)
        if dateless.any():
            found = pd.DataFrame({"census_year": i.loc[dateless, "census_year"].astype("str").to_numpy(dtype=object),
                                  "la": i.loc[dateless, "la"].astype("str").to_numpy(dtype=object),
                                  "child": i.loc[dateless, "child"].to_numpy(dtype="int64"),
                                  "_at": i.loc[dateless, "line"].to_numpy(dtype="int64")})
        found = self.spark.createDataFrame(
            found, "census_year string, la string, child bigint, _at bigint").groupBy(*_P, "child", "_at") \
            .agg(F.count(F.lit(1)).alias("_issues"))
        plans = p.where(F.col("line").isNotNull()).select(*_P, *own, F.col("line").alias("_pline"))
        pairs = found.join(plans, on=[*_P, "child"]).where(F.col("_pline") <= F.col("_at"))
        last = pairs.withColumn("_n", F.row_number().over(
            Window.partitionBy(*_P, "child", "_at").orderBy(F.col("_pline").desc())))
        return last.where(F.col("_n") == 1).groupBy(*_P, *own).agg(F.sum("_issues").cast("bigint").alias("_dateless"))

    def _v_cin_plans(self) -> Any:
        F = _f()
        c = self._table("cin_plans")
        df = self._with_child_dates(self._episode_facts(c, _EPISODE_FACTS), ("PersonDeathDate",))
        child, ep, own = ("child",), ("child", "episode"), spec.TABLE_KEYS["cin_plans"]
        p, cpp = self._table("cp_plans"), spec.TABLE_KEYS["cp_plans"]
        end = self._lit_date(self.end)
        df = self._counted(df, "cin_plans", child, open_cin_plans_for_child=lambda t: F.col("CINPlanEndDate").isNull())
        df = self._starts_inside(
            df, c, lkeys=own, rkeys=own, by=child, start="CINPlanStartDate", lo=lambda r: F.col("CINPlanStartDate"),
            hi=lambda r: F.coalesce(F.col("CINPlanEndDate"), end), same_rows=True, include_hi=True,
            name="starts_inside_other_cin_plan")
        df = self._starts_inside(
            df, p, lkeys=own, rkeys=cpp, by=child, start="CINPlanStartDate", lo=lambda r: F.col("CPPstartDate"),
            hi=lambda r: F.coalesce(F.col("CPPendDate"), end), same_rows=False, include_hi=True,
            except_equal_to=lambda r: F.col("CPPendDate"), name="starts_inside_cpp")
        df = self._counted(df, "cp_plans", ep, open_cpps_in_episode=lambda t: F.col("CPPendDate").isNull())
        df = self._starts_inside(
            p, df, lkeys=cpp, rkeys=own, by=child, start="CPPstartDate", lo=lambda r: F.col("CINPlanStartDate"),
            hi=lambda r: F.coalesce(F.col("CINPlanEndDate"), end), same_rows=False, include_hi=True,
            except_equal_to=lambda r: F.col("CINPlanEndDate"), mark="right", name="holds_cpp_start")
        return self._finish("cin_plans", df, [
            *_EPISODE_FACTS, "PersonDeathDate", "open_cin_plans_for_child", "starts_inside_other_cin_plan",
            "starts_inside_cpp", "open_cpps_in_episode", "holds_cpp_start"])

    def _v_reviews(self) -> Any:
        F = _f()
        r = self._table("cp_reviews")
        dates, facts = ("CPPstartDate", "CPPendDate"), ("CINreferralDate", "CINclosureDate", "ReferralNFA")
        df = self._episode_facts(self._parent_dates(r, "cp_reviews", dates), facts)
        end = self._lit_date(self.end)
        own = spec.TABLE_KEYS["cp_reviews"]
        df = self._starts_inside(
            df, self._table("cin_plans"), lkeys=own, rkeys=spec.TABLE_KEYS["cin_plans"], by=("child", "episode"),
            start="CPPreviewDate", lo=lambda x: F.col("CINPlanStartDate"),
            hi=lambda x: F.coalesce(F.col("CINPlanEndDate"), end), same_rows=False, include_hi=True, name="_inside")
        df = df.withColumn("during_cin_plan", F.col("_inside")
                           & ~F.coalesce(F.col("CPPreviewDate") == F.col("CPPendDate"), F.lit(False)))
        return self._finish("cp_reviews", df, [*dates, *facts, "during_cin_plan"])

    def _v_pre_proceedings(self) -> Any:
        return self._finish("pre_proceedings", self._table("pre_proceedings"), [])

    def _v_return(self) -> Any:
        F = _f()
        c, d = self._table("children"), self._table("disabilities")
        one = self._table("header").select(*_P)
        if "Sex" in c.columns:
            no_gender = F.col("Sex").isNull() | (F.col("Sex") == "U")
        else:
            no_gender = self._col(c, "GenderCurrent", "string").isNull() | (self._col(c, "GenderCurrent", "string") == "0")
        born = no_gender & F.col("ExpectedPersonBirthDate").isNull()
        kids = c.groupBy(*_P).agg(F.count(F.lit(1)).alias("children"),
                                  F.sum(born.cast("bigint")).alias("children_with_no_gender_recorded"))
        real = d.where(F.col("Disability").isNotNull() & (F.col("Disability") != "NONE"))
        codes = real.groupBy(*_P).agg(F.countDistinct("Disability").alias("disability_codes_used"))
        several = real.groupBy(*_P, "child").count().where(F.col("count") > 1).groupBy(*_P) \
            .agg(F.count(F.lit(1)).alias("children_with_several_disabilities"))
        start, end = self._lit_date(self.start), self._lit_date(self.end)

        def in_census(table: str, col: str, name: str) -> Any:
            day = self._col(self._table(table), col, "timestamp")
            return self._table(table).groupBy(*_P).agg(
                F.sum(day.between(start, end).cast("bigint")).alias(name))

        pp = self._table("pre_proceedings")
        pp_start = self._col(pp, "PPStartDate", "timestamp")
        out = one
        for facts, cols in ((kids, ["children", "children_with_no_gender_recorded"]),
                            (codes, ["disability_codes_used"]), (several, ["children_with_several_disabilities"]),
                            (in_census("cp_plans", "CPPstartDate", "cpp_starts_in_census"), ["cpp_starts_in_census"]),
                            (in_census("section47", "DateOfInitialCPC", "_icpc_s47"), ["_icpc_s47"]),
                            (in_census("episodes", "DateOfInitialCPC", "_icpc_ep"), ["_icpc_ep"]),
                            (pp.groupBy(*_P).agg(F.countDistinct("child").alias("children_with_pre_proceedings")),
                             ["children_with_pre_proceedings"]),
                            (pp.where(pp_start.isNotNull()).groupBy(*_P)
                             .agg(F.countDistinct("child").alias("children_with_pp_start_date")),
                             ["children_with_pp_start_date"])):
            out = self._attach(out, facts, (), cols, fill=0)
        out = out.select(
            *_locator(row=F.lit(0)), F.col("children").cast("bigint").alias("children"),
            F.col("children_with_no_gender_recorded").cast("bigint").alias("children_with_no_gender_recorded"),
            F.when(F.col("children") > 0, F.col("children_with_no_gender_recorded") / F.col("children"))
            .otherwise(F.lit(float("nan"))).alias("share_with_no_gender_recorded"),
            *[F.col(c).cast("bigint").alias(c) for c in ("disability_codes_used", "children_with_several_disabilities",
                                                         "cpp_starts_in_census")],
            (F.col("_icpc_s47") + F.col("_icpc_ep")).cast("bigint").alias("icpcs_in_census"),
            *[F.col(c).cast("bigint").alias(c) for c in ("children_with_pre_proceedings", "children_with_pp_start_date")],
            *_P)
        return self._one_per_return(out)


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
