"""The columns of the validation views, each declared once with its pandas form beside its Spark form.

A view (:mod:`cinqa.views`) is an entity's rows with the locator and the entity's own columns,
then the columns :data:`VIEW_COLUMNS` declares for it, in order, then the census dates. Each
column is one of a few kinds: a :class:`Fact` of the row's parent, episode or child; a
:class:`Count` of rows of a table sharing the row's keys (where a :class:`Cond` holds); an
:class:`Inside` telling whether a date falls inside a sibling's range; a :class:`Derived`
expression of the columns before it; or one of a few named columns computed their own way. Each
kind holds both forms: ``pandas`` for :class:`cinqa.views.ViewBuilder`, ``spark`` for
:class:`cinqa.views_spark.SparkViews`, so the two engines build the same view from one
definition (the Spark view parity test compares them view by view, value by value).

pyspark is imported only when a Spark form runs: importing this module needs no Spark.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from cinqa import spec

# 8565: the dates of an episode's activity that its closure date may not precede (the episode's
# own initial conference included); 8831: those that a referral with no further action cannot have.
_ACTIVITY_DATES = (("assessments", "AssessmentActualStartDate"), ("assessments", "AssessmentAuthorisationDate"),
                   ("section47", "S47ActualStartDate"), ("section47", "DateOfInitialCPC"),
                   ("episodes", "DateOfInitialCPC"), ("cp_plans", "CPPendDate"),
                   ("cin_plans", "CINPlanStartDate"), ("cin_plans", "CINPlanEndDate"))
_NFA_ACTIVITY_DATES = _ACTIVITY_DATES[:5]
# The episode's columns that the rules of most of its modules read.
_EPISODE_FACTS = ("CINreferralDate", "CINclosureDate", "ReasonForClosure", "ReferralNFA")
CHILD, EPISODE = ("child",), ("child", "episode")
"""The keys of a child's rows and of an episode's."""

SPARK_TYPES = {"int64": "bigint", "Int64": "bigint", "datetime64[s]": "timestamp", "boolean": "boolean",
               "bool": "boolean", "str": "string", "category": "string", "object": "string", "float64": "double"}
"""The Spark type of each pandas dtype a return's tables and views hold, as Arrow hands it over."""


def spark_functions() -> Any:
    """Return :mod:`pyspark.sql.functions`: the Spark forms below import pyspark only when they run."""
    from pyspark.sql import functions

    return functions


# -- the vocabulary of view columns -----------------------------------------------------------
#
# Each view column is declared once below (VIEW_COLUMNS), as one of these kinds; a kind holds its
# pandas form (``pandas``, for ViewBuilder) beside its Spark form (``spark``, for
# cinqa.views_spark.SparkViews). ``v`` is the builder of either engine: its ``year``, ``start``
# and ``end`` (the census period) and ``_table(name)``. Spark forms key every join and window by
# ``v.partitions`` (census year and LA) first, so one build covers every LA of a year.


class Cond(ABC):
    """A condition on each row of a table, true or false (never missing): a view's count or total reads it."""

    @abstractmethod
    def pandas(self, t: pd.DataFrame, v: Any) -> np.ndarray:
        """Return the condition on each row of ``t`` as booleans."""

    @abstractmethod
    def spark(self, t: Any, v: Any) -> Any:
        """Return the condition on a row of Spark DataFrame ``t`` as a Spark column that is never null."""

    def __and__(self, other: Cond) -> Cond:
        return _Both(self, other)

    def __or__(self, other: Cond) -> Cond:
        return _Either(self, other)

    def __invert__(self) -> Cond:
        return _Not(self)


@dataclass(frozen=True)
class Missing(Cond):
    """The row has no ``column`` value (every row, in a year without the column)."""

    column: str

    def pandas(self, t: pd.DataFrame, v: Any) -> np.ndarray:
        return t[self.column].isna().to_numpy(dtype=bool) if self.column in t else np.ones(len(t), dtype=bool)

    def spark(self, t: Any, v: Any) -> Any:
        F = spark_functions()
        return F.col(self.column).isNull() if self.column in t.columns else F.lit(True)


@dataclass(frozen=True)
class Is(Cond):
    """The row's ``column`` holds ``value`` (a missing value does not)."""

    column: str
    value: object

    def pandas(self, t: pd.DataFrame, v: Any) -> np.ndarray:
        if self.column not in t:
            return np.zeros(len(t), dtype=bool)
        return value_column(t, self.column, "object").eq(self.value).fillna(False).to_numpy(dtype=bool)

    def spark(self, t: Any, v: Any) -> Any:
        F = spark_functions()
        if self.column not in t.columns:
            return F.lit(False)
        return F.coalesce(F.col(self.column) == F.lit(self.value), F.lit(False))


@dataclass(frozen=True)
class In(Cond):
    """The row's ``column`` is one of ``values``, or a code of the year's code set ``codes``."""

    column: str
    values: tuple[str, ...] = ()
    codes: str | None = None

    def _values(self, v: Any) -> list[str]:
        return sorted(spec.codes(self.codes, v.year)) if self.codes else list(self.values)

    def pandas(self, t: pd.DataFrame, v: Any) -> np.ndarray:
        return value_column(t, self.column, "object").isin(self._values(v)).to_numpy(dtype=bool)

    def spark(self, t: Any, v: Any) -> Any:
        F = spark_functions()
        if self.column not in t.columns:
            return F.lit(False)
        return F.coalesce(F.col(self.column).isin(self._values(v)), F.lit(False))


@dataclass(frozen=True)
class InCensus(Cond):
    """The row's date ``column`` falls in the census period, both ends included."""

    column: str

    def pandas(self, t: pd.DataFrame, v: Any) -> np.ndarray:
        return value_column(t, self.column, "datetime64[s]").between(v.start, v.end).to_numpy(dtype=bool)

    def spark(self, t: Any, v: Any) -> Any:
        F = spark_functions()
        if self.column not in t.columns:
            return F.lit(False)
        return F.coalesce(F.col(self.column).between(v._lit_date(v.start), v._lit_date(v.end)), F.lit(False))


@dataclass(frozen=True)
class NoGender(Cond):
    """The child's sex (``Sex``, from 2026-27) or gender (``GenderCurrent``, before) is missing or unknown."""

    def _cond(self, columns: Any) -> Cond:
        return Missing("Sex") | In("Sex", ("U",)) if "Sex" in columns else \
            Missing("GenderCurrent") | In("GenderCurrent", ("0",))

    def pandas(self, t: pd.DataFrame, v: Any) -> np.ndarray:
        return self._cond(t.columns).pandas(t, v)

    def spark(self, t: Any, v: Any) -> Any:
        return self._cond(t.columns).spark(t, v)


@dataclass(frozen=True)
class _Both(Cond):
    a: Cond
    b: Cond

    def pandas(self, t: pd.DataFrame, v: Any) -> np.ndarray:
        return self.a.pandas(t, v) & self.b.pandas(t, v)

    def spark(self, t: Any, v: Any) -> Any:
        return self.a.spark(t, v) & self.b.spark(t, v)


@dataclass(frozen=True)
class _Either(Cond):
    a: Cond
    b: Cond

    def pandas(self, t: pd.DataFrame, v: Any) -> np.ndarray:
        return self.a.pandas(t, v) | self.b.pandas(t, v)

    def spark(self, t: Any, v: Any) -> Any:
        return self.a.spark(t, v) | self.b.spark(t, v)


@dataclass(frozen=True)
class _Not(Cond):
    a: Cond

    def pandas(self, t: pd.DataFrame, v: Any) -> np.ndarray:
        return ~self.a.pandas(t, v)

    def spark(self, t: Any, v: Any) -> Any:
        return ~self.a.spark(t, v)


OPEN_EPISODE = Missing("CINclosureDate") & Is("ReferralNFA", False)
"""An episode with no closure date that is not a referral with no further action."""
OPEN_S47 = Missing("DateOfInitialCPC") & ~Is("ICPCnotRequired", True)
"""A Section 47 enquiry with no initial conference date and ICPCnotRequired not true."""
REAL_DISABILITY = ~Missing("Disability") & ~In("Disability", ("NONE",))
"""A disability code other than NONE."""


@dataclass(frozen=True)
class Until:
    """A range's last day: its ``column``; where that is missing, the census end plus ``days`` where ``open``
    holds (always, without ``open``), else no range."""

    column: str
    open: Cond | None = None
    days: int = 0

    def pandas(self, t: pd.DataFrame, v: Any) -> pd.Series:
        day = value_column(t, self.column, "datetime64[s]")
        out = day.where(day.notna(), pd.Timestamp(v.end).as_unit("s") + pd.Timedelta(days=self.days))
        if self.open is not None:
            out = out.where(day.notna().to_numpy() | self.open.pandas(t, v), pd.NaT)
        return out

    def spark(self, t: Any, v: Any) -> Any:
        F = spark_functions()
        end = v._lit_date(v.end)
        if self.days:
            end = F.date_add(end, self.days).cast("timestamp")
        day = F.col(self.column) if self.column in t.columns else F.lit(None).cast("timestamp")
        return F.coalesce(day, end if self.open is None else F.when(self.open.spark(t, v), end))


@dataclass(frozen=True)
class Fact:
    """A column of the row's ``source``, under the same name: its parent row's (``"parent"``, dates only), its
    episode's (``"episode"``: ``CINreferralDate``, ``CINclosureDate``, ``ReasonForClosure``, ``ReferralNFA``
    and the episode's own ``CINdetails_DateOfInitialCPC``) or its child's (``"child"``: ``PersonBirthDate``,
    ``ExpectedPersonBirthDate``, ``PersonDeathDate`` and ``has_disability``, a code other than NONE). Each
    engine looks a view's facts of one source up at once (``ViewBuilder._facts``, ``SparkViews._facts``)."""

    name: str
    source: str

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> Any:
        got = v._facts(self.source, table)
        if self.source == "parent":
            return value_column(got, self.name, "datetime64[s]").to_numpy(dtype="datetime64[s]")
        return got[self.name].array


@dataclass(frozen=True)
class Count:
    """The rows of ``table`` that share the view row's ``keys`` and where ``where`` holds (all of them without
    it), or their distinct values of ``distinct``: 0 if none. Spark counts a table's columns with the same
    keys in one pass."""

    name: str
    table: str
    keys: tuple[str, ...]
    where: Cond | None = None
    distinct: str | None = None

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> np.ndarray:
        rows = v._table(self.table)
        if self.where is not None:
            rows = rows.loc[self.where.pandas(rows, v)]
        if self.distinct is None:
            counts = rows.groupby(list(self.keys), sort=False).size()
        else:
            values = rows.assign(_value=value_column(rows, self.distinct, "object"))
            counts = values.groupby(list(self.keys), sort=False)["_value"].nunique()
        return v._lookup(counts, table, self.keys)

    def spark(self, t: Any, v: Any) -> Any:
        """Return the aggregate counting this column over ``t`` (table ``table`` of every LA)."""
        F = spark_functions()
        if self.distinct is not None:
            value = F.col(self.distinct) if self.where is None else F.when(self.where.spark(t, v), F.col(self.distinct))
            return F.countDistinct(value).alias(self.name)
        counted = F.count(F.lit(1)) if self.where is None else F.count(F.when(self.where.spark(t, v), 1))
        return counted.alias(self.name)


@dataclass(frozen=True)
class Inside:
    """Whether the ``start`` date of a row of ``left`` falls inside a range of a row of ``right`` with the same
    ``by`` keys (:func:`starts_inside`): ranges from ``lo`` to ``hi``, ``hi`` itself inside if ``include_hi``,
    a start on the range's ``except_equal_to`` date exempt. A row is not compared with itself. One of the two
    tables is the view's; with ``mark="right"`` the answer is for the right side's rows."""

    name: str
    left: str
    start: str
    right: str
    lo: str
    hi: Until
    by: tuple[str, ...]
    include_hi: bool = True
    except_equal_to: str | None = None
    mark: str = "left"

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> np.ndarray:
        right = v._table(self.right)
        exempt = None if self.except_equal_to is None else value_column(right, self.except_equal_to, "datetime64[s]")
        return starts_inside(
            v._table(self.left), right, by=self.by, start=self.start, lo=value_column(right, self.lo, "datetime64[s]"),
            hi=self.hi.pandas(right, v), same_rows=self.left == self.right, include_hi=self.include_hi,
            except_equal_to=exempt, mark=self.mark)

    def spark(self, v: Any, table: str, df: Any) -> Any:
        F = spark_functions()
        return v._starts_inside(
            df if self.left == table else v._table(self.left), df if self.right == table else v._table(self.right),
            lkeys=spec.TABLE_KEYS[self.left], rkeys=spec.TABLE_KEYS[self.right], by=self.by, start=self.start,
            lo=lambda r: F.col(self.lo), hi=lambda r: self.hi.spark(r, v), same_rows=self.left == self.right,
            include_hi=self.include_hi, name=self.name, mark=self.mark,
            except_equal_to=None if self.except_equal_to is None else (lambda r: F.col(self.except_equal_to)))


@dataclass(frozen=True)
class Derived:
    """A column computed from the view's columns before it, written for each engine side by side:
    ``pandas_form(df, v)`` gives its values, ``spark_form(F, df, v)`` its Spark column (``F`` is
    :mod:`pyspark.sql.functions`); ``dtype`` is its pandas type, and the Spark column is cast to the same."""

    name: str
    dtype: str
    pandas_form: Callable[[pd.DataFrame, Any], Any]
    spark_form: Callable[[Any, Any, Any], Any]

    def pandas(self, v: Any, table: str | None, df: pd.DataFrame) -> Any:
        values = self.pandas_form(df, v)
        return pd.array(values, dtype=self.dtype) if self.dtype in ("Int64", "str", "boolean") else \
            np.asarray(values, dtype=self.dtype)

    def spark(self, v: Any, table: str | None, df: Any) -> Any:
        return df.withColumn(self.name, self.spark_form(spark_functions(), df, v).cast(SPARK_TYPES[self.dtype]))


@dataclass(frozen=True)
class EpisodeDates:
    """The episode's dates among ``sources`` (``(table, column)`` pairs): how many are given, or the latest."""

    name: str
    sources: tuple[tuple[str, str], ...]
    latest: bool = False

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> np.ndarray:
        parts = []
        for source, column in self.sources:
            rows = v._table(source)
            parts.append(pd.DataFrame({"child": _ints(rows, "child"), "episode": _ints(rows, "episode"),
                                       "day": _days(rows, column)}))
        days = pd.concat(parts, ignore_index=True)
        groups = days.loc[days["day"].notna().to_numpy()].groupby(["child", "episode"], sort=False)
        if not self.latest:
            return v._lookup(groups.size(), table, EPISODE)
        return groups["day"].max().reindex(v._keys(table, EPISODE)).to_numpy(dtype="datetime64[s]")

    def spark(self, v: Any, table: str, df: Any) -> Any:
        F = spark_functions()
        P = v.partitions
        parts = []
        for table_name, column in self.sources:
            rows = v._table(table_name)
            day = F.col(column) if column in rows.columns else F.lit(None).cast("timestamp")
            parts.append(rows.select(*P, "child", "episode", day.alias("_day")))
        days = parts[0]
        for part in parts[1:]:
            days = days.unionByName(part)
        per = days.where(F.col("_day").isNotNull()).groupBy(*P, "child", "episode").agg(
            (F.max("_day") if self.latest else F.count(F.lit(1))).alias(self.name))
        return v._attach(df, per, EPISODE, [self.name], fill=None if self.latest else 0)


@dataclass(frozen=True)
class LastEpisodeDay:
    """The last day on which one of the child's episodes was open: its closure date, or the census end for an
    episode with none, and never later than the census end."""

    name: str

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> np.ndarray:
        t = v._table(table)
        e = v._table("episodes")
        ends = value_column(e, "CINclosureDate", "datetime64[s]").fillna(v.end).clip(upper=v.end)
        last = ends.groupby(e["child"].to_numpy()).max()
        return last.reindex(t["child"].to_numpy(dtype="int64")).to_numpy(dtype="datetime64[s]")

    def spark(self, v: Any, table: str, df: Any) -> Any:
        F = spark_functions()
        end = v._lit_date(v.end)
        last = v._table("episodes").groupBy(*v.partitions, "child").agg(
            F.max(F.least(F.coalesce(F.col("CINclosureDate"), end), end)).alias(self.name))
        return v._attach(df, last, ("child",), [self.name])


@dataclass(frozen=True)
class LatestReferral:
    """Whether the episode's referral date is the latest of its child's."""

    name: str

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> np.ndarray:
        t = v._table(table)
        referral = value_column(t, "CINreferralDate", "datetime64[s]")
        latest = referral.groupby(t["child"].to_numpy()).transform("max")
        return (referral.eq(latest) & referral.notna()).to_numpy(dtype=bool)

    def spark(self, v: Any, table: str, df: Any) -> Any:
        F = spark_functions()
        from pyspark.sql import Window

        latest = F.max("CINreferralDate").over(Window.partitionBy(*v.partitions, "child"))
        return df.withColumn(self.name, F.coalesce(F.col("CINreferralDate") == latest, F.lit(False)))


@dataclass(frozen=True)
class FactorCodes:
    """The assessment's factor codes, sorted and joined with commas ("16A,3B"); missing if it has none."""

    name: str

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> np.ndarray:
        t = v._table(table)
        own = spec.TABLE_KEYS["assessments"]
        f = v._table("assessment_factors")
        joined = _joined_codes(f, own, value_column(f, "AssessmentFactors", "object"))
        if not len(joined):
            return np.full(len(t), None)
        return joined.reindex(pd.MultiIndex.from_arrays([_ints(t, k) for k in own])).to_numpy(dtype=object)

    def spark(self, v: Any, table: str, df: Any) -> Any:
        F = spark_functions()
        own = spec.TABLE_KEYS["assessments"]
        codes = F.array_sort(F.collect_list("AssessmentFactors"))
        joined = v._table("assessment_factors").groupBy(*v.partitions, *own).agg(
            F.when(F.size(codes) > 0, F.array_join(codes, ",")).alias(self.name))
        return v._attach(df, joined, own, [self.name])


@dataclass(frozen=True)
class InitialAssessmentStart:
    """2012-13: the start of the episode's initial assessment (the earliest), which its core assessment follows."""

    name: str

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> np.ndarray:
        t = v._table(table)
        start = value_column(t, "AssessmentActualStartDate", "datetime64[s]")
        is_initial = value_column(t, "kind", "object").eq("initial").fillna(False)
        initial = pd.Series(start.where(is_initial).to_numpy(dtype="datetime64[s]"))
        ep = [t[k].to_numpy(dtype="int64") for k in EPISODE]
        first = initial.groupby(ep).min()
        if not len(first):
            return np.full(len(t), np.datetime64("NaT"), dtype="datetime64[s]")
        return first.reindex(pd.MultiIndex.from_arrays(ep)).to_numpy(dtype="datetime64[s]")

    def spark(self, v: Any, table: str, df: Any) -> Any:
        F = spark_functions()
        from pyspark.sql import Window

        initial = F.when(F.col("kind") == "initial", F.col("AssessmentActualStartDate"))
        return df.withColumn(self.name, F.min(initial).over(Window.partitionBy(*v.partitions, "child", "episode")))


@dataclass(frozen=True)
class OnConferenceDay:
    """2885: whether the plan starts on the day of an initial conference of its episode, recorded on a
    Section 47 enquiry or on the episode itself."""

    name: str

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> np.ndarray:
        t = v._table(table)
        s47 = v._table("section47")
        e = v._table("episodes")
        days = pd.concat([
            pd.DataFrame({"child": _ints(rows, "child"), "episode": _ints(rows, "episode"),
                          "day": _days(rows, "DateOfInitialCPC")})
            for rows in (s47, e)]).dropna(subset=["day"])
        keyed = pd.DataFrame({"child": _ints(t, "child"), "episode": _ints(t, "episode"),
                              "day": _days(t, "CPPstartDate"), "_r": np.arange(len(t))})
        hits = keyed.merge(days.drop_duplicates(), on=["child", "episode", "day"], how="inner")["_r"].to_numpy()
        return np.isin(np.arange(len(t)), hits)

    def spark(self, v: Any, table: str, df: Any) -> Any:
        F = spark_functions()
        P = v.partitions
        days = v._table("section47").select(*P, "child", "episode", F.col("DateOfInitialCPC").alias("_day")) \
            .unionByName(v._table("episodes").select(*P, "child", "episode", F.col("DateOfInitialCPC").alias("_day"))) \
            .where(F.col("_day").isNotNull()).distinct().withColumn(self.name, F.lit(True))
        out = v._attach(df.withColumn("_day", F.col("CPPstartDate")), days, ("child", "episode", "_day"), [self.name],
                        fill=False)
        return out.drop("_day")


@dataclass(frozen=True)
class DatelessReviews:
    """8842Q: how many of the plan's reviews are structural issues with no date (an empty ``<CPPreviewDate/>``
    or a ``<Reviews>`` holding none, :func:`dateless_reviews`): such an issue gives a child and a line, and
    belongs to the child's last plan that starts on or before its line."""

    name: str

    def pandas(self, v: Any, table: str, df: pd.DataFrame) -> np.ndarray:
        t = v._table(table)
        out = np.zeros(len(t), dtype="int64")
        issues = v.ret.issues
        dateless = dateless_reviews(issues)
        if not len(t) or not dateless.any():
            return out
        found = pd.DataFrame({"child": issues.loc[dateless, "child"].to_numpy(dtype="int64"),
                              "line": issues.loc[dateless, "line"].to_numpy(dtype="int64")}).sort_values("line")
        located = t["line"].notna().to_numpy()
        plans = pd.DataFrame({"child": t["child"].to_numpy(dtype="int64")[located],
                              "line": t["line"].to_numpy()[located].astype("int64"),
                              "_r": np.arange(len(t))[located]}).sort_values("line")
        hit = pd.merge_asof(found, plans, on="line", by="child", direction="backward")["_r"].dropna()
        return out + np.bincount(hit.to_numpy(dtype="int64"), minlength=len(t))

    def spark(self, v: Any, table: str, df: Any) -> Any:
        F = spark_functions()
        from pyspark.sql import Window

        P = v.partitions
        own = spec.TABLE_KEYS["cp_plans"]
        issues = v.issues
        dateless = dateless_reviews(issues)
        found = pd.DataFrame({"census_year": issues.loc[dateless, "census_year"].astype("str").to_numpy(dtype=object),
                              "la": issues.loc[dateless, "la"].astype("str").to_numpy(dtype=object),
                              "child": issues.loc[dateless, "child"].to_numpy(dtype="int64"),
                              "_at": issues.loc[dateless, "line"].to_numpy(dtype="int64")})
        # Issues on one child and line belong to one plan: each such group is placed once.
        found = v.spark.createDataFrame(found, "census_year string, la string, child bigint, _at bigint") \
            .groupBy(*P, "child", "_at").agg(F.count(F.lit(1)).alias("_issues"))
        plans = df.where(F.col("line").isNotNull()).select(*P, *own, F.col("line").alias("_pline"))
        pairs = found.join(plans, on=[*P, "child"]).where(F.col("_pline") <= F.col("_at"))
        last = pairs.withColumn("_n", F.row_number().over(
            Window.partitionBy(*P, "child", "_at").orderBy(F.col("_pline").desc())))
        per = last.where(F.col("_n") == 1).groupBy(*P, *own).agg(F.sum("_issues").cast("bigint").alias(self.name))
        return v._attach(df, per, own, [self.name], fill=0)


@dataclass(frozen=True)
class Total:
    """In a one-row-per-return view: the rows of ``table`` where ``where`` holds (all without it), or their
    distinct values of ``distinct``."""

    name: str
    table: str
    where: Cond | None = None
    distinct: str | None = None

    def pandas(self, v: Any, table: None, df: pd.DataFrame) -> np.ndarray:
        rows = v._table(self.table)
        if self.where is not None:
            rows = rows.loc[self.where.pandas(rows, v)]
        n = len(rows) if self.distinct is None else value_column(rows, self.distinct, "object").nunique()
        return np.array([n], dtype="int64")

    def spark(self, v: Any, table: None, df: Any) -> Any:
        rows = v._table(self.table)
        total = Count(self.name, self.table, (), self.where, self.distinct)
        counted = rows.groupBy(*v.partitions).agg(total.spark(rows, v))
        return v._attach(df, counted, (), [self.name], fill=0)


@dataclass(frozen=True)
class ChildrenWithSeveral:
    """In a one-row-per-return view: the children with more than one row of ``table`` where ``where`` holds."""

    name: str
    table: str
    where: Cond

    def pandas(self, v: Any, table: None, df: pd.DataFrame) -> np.ndarray:
        rows = v._table(self.table)
        per_child = rows.loc[self.where.pandas(rows, v)].groupby("child").size()
        return np.array([int((per_child > 1).sum())], dtype="int64")

    def spark(self, v: Any, table: None, df: Any) -> Any:
        F = spark_functions()
        rows = v._table(self.table)
        several = rows.where(self.where.spark(rows, v)).groupBy(*v.partitions, "child").count() \
            .where(F.col("count") > 1).groupBy(*v.partitions).agg(F.count(F.lit(1)).alias(self.name))
        return v._attach(df, several, (), [self.name], fill=0)


@dataclass(frozen=True)
class HeaderFact:
    """In the header view: the return's header fact ``attr`` (:class:`cinqa.returns.Header`), as ``dtype``."""

    name: str
    attr: str
    dtype: str

    def pandas(self, v: Any, table: None, df: pd.DataFrame) -> Any:
        return pd.array([getattr(v.ret.header, self.attr)], dtype=self.dtype)

    def spark(self, v: Any, table: None, df: Any) -> Any:
        return df.withColumn(self.name, spark_functions().col(self.attr).cast(SPARK_TYPES[self.dtype]))


ViewColumn = Fact | Count | Inside | Derived | EpisodeDates | LastEpisodeDay | LatestReferral | FactorCodes \
    | InitialAssessmentStart | OnConferenceDay | DatelessReviews | Total | ChildrenWithSeveral | HeaderFact


def _year_end(df: pd.DataFrame, v: Any) -> Any:
    """Return 31 March of the header's <Year> when the return is checked as another year (rule 100), else missing."""
    year = df["Year"].iloc[0]
    end = spec.end_year(v.year)
    return [np.datetime64(f"{int(year):04d}-03-31", "s") if pd.notna(year) and year != end
            else np.datetime64("NaT", "s")]


def _year_end_spark(F: Any, df: Any, v: Any) -> Any:
    year, end = F.col("Year"), spec.end_year(v.year)
    return F.when(year.isNotNull() & (year != F.lit(end)),
                  F.concat(F.lpad(year.cast("string"), 4, "0"), F.lit("-03-31")).cast("date").cast("timestamp"))


def _no_gender_share(df: pd.DataFrame, v: Any) -> Any:
    n = df["children"].iloc[0]
    return [df["children_with_no_gender_recorded"].iloc[0] / n if n else np.nan]


def _present(df: pd.DataFrame, column: str) -> np.ndarray:
    return value_column(df, column, "datetime64[s]").notna().to_numpy(dtype="int64")


ASSESSMENT = spec.TABLE_KEYS["assessments"]
CPP = spec.TABLE_KEYS["cp_plans"]


def _facts(source: str, *names: str) -> tuple[Fact, ...]:
    return tuple(Fact(name, source) for name in names)


VIEW_COLUMNS: dict[str, tuple[ViewColumn, ...]] = {
    "header": (
        HeaderFact("Collection", "collection", "str"),
        HeaderFact("Year", "year", "Int64"),
        HeaderFact("ReferenceDate", "reference_date", "datetime64[s]"),
        HeaderFact("LEA", "la", "str"),
        HeaderFact("SourceLevel", "source_level", "str"),
        Derived("census_year_end", "Int64", lambda df, v: [spec.end_year(v.year)],
                lambda F, df, v: F.lit(spec.end_year(v.year))),
        Derived("Year_end", "datetime64[s]", _year_end, _year_end_spark),
    ),
    "children": (
        Count("episodes_for_child", "episodes", CHILD),
        Count("open_episodes_for_child", "episodes", CHILD, OPEN_EPISODE),
        Count("_further_action", "episodes", CHILD, Is("ReferralNFA", False)),
        Count("_not_nfa", "episodes", CHILD, ~Is("ReferralNFA", True)),
        Derived("has_further_action_episode", "bool", lambda df, v: df["_further_action"] > 0,
                lambda F, df, v: F.col("_further_action") > 0),
        Derived("all_episodes_nfa", "bool", lambda df, v: df["_not_nfa"] == 0, lambda F, df, v: F.col("_not_nfa") == 0),
        Count("disabilities_for_child", "disabilities", CHILD),
        Fact("has_disability", "child"),
        Derived("birth_dates_given", "int64",
                lambda df, v: _present(df, "PersonBirthDate") + _present(df, "ExpectedPersonBirthDate"),
                lambda F, df, v: F.col("PersonBirthDate").isNotNull().cast("bigint")
                + F.col("ExpectedPersonBirthDate").isNotNull().cast("bigint")),
        Derived("UPN_la_code", "str", lambda df, v: value_column(df, "UPN", "str").str.slice(1, 4),
                lambda F, df, v: F.substring(F.col("UPN"), 2, 3)),
        LastEpisodeDay("last_episode_day"),
    ),
    "disabilities": (
        Count("distinct_disabilities_for_child", "disabilities", CHILD, distinct="Disability"),
        Count("disabilities_for_child", "disabilities", CHILD),
        Fact("PersonBirthDate", "child"),
    ),
    "episodes": (
        *_facts("child", "PersonBirthDate", "ExpectedPersonBirthDate", "PersonDeathDate"),
        Derived("birth_or_expected_birth_date", "datetime64[s]",
                lambda df, v: df["PersonBirthDate"].fillna(df["ExpectedPersonBirthDate"]),
                lambda F, df, v: F.coalesce("PersonBirthDate", "ExpectedPersonBirthDate")),
        Count("episodes_for_child", "episodes", CHILD),
        Count("open_episodes_for_child", "episodes", CHILD, OPEN_EPISODE),
        LatestReferral("is_latest_referral"),
        # An episode's own range: referral to closure (the closure day itself free for the next
        # referral), or to the day after the census end when open and not a referral with no further action.
        Inside("referral_inside_other_episode", "episodes", "CINreferralDate", "episodes", "CINreferralDate",
               Until("CINclosureDate", OPEN_EPISODE, days=1), CHILD, include_hi=False),
        Count("assessments_in_episode", "assessments", EPISODE),
        Count("s47_in_episode", "section47", EPISODE),
        Count("cpps_in_episode", "cp_plans", EPISODE),
        Count("cin_plans_in_episode", "cin_plans", EPISODE),
        # 2012-13 initial and core assessments are rows of ``assessments`` too, so they count here.
        Count("open_assessments_in_episode", "assessments", EPISODE, Missing("AssessmentAuthorisationDate")),
        Count("open_s47_in_episode", "section47", EPISODE, OPEN_S47),
        # 2990: the modules a case closed after assessment (RC8/RC9) cannot have.
        Derived("s47_cpp_plan_or_icpc_in_episode", "int64",
                lambda df, v: df["s47_in_episode"] + df["cpps_in_episode"] + df["cin_plans_in_episode"]
                + _present(df, "DateOfInitialCPC"),
                lambda F, df, v: F.col("s47_in_episode") + F.col("cpps_in_episode") + F.col("cin_plans_in_episode")
                + F.col("DateOfInitialCPC").isNotNull().cast("bigint")),
        EpisodeDates("assessment_or_s47_dates_in_episode", _NFA_ACTIVITY_DATES),
        EpisodeDates("latest_activity_date", _ACTIVITY_DATES, latest=True),
    ),
    "assessments": (
        *_facts("episode", *_EPISODE_FACTS),
        *_facts("child", "PersonBirthDate", "PersonDeathDate", "has_disability"),
        Count("assessments_in_episode", "assessments", EPISODE),
        Count("open_assessments_in_episode", "assessments", EPISODE, Missing("AssessmentAuthorisationDate")),
        Inside("starts_inside_other_assessment", "assessments", "AssessmentActualStartDate", "assessments",
               "AssessmentActualStartDate", Until("AssessmentAuthorisationDate"), EPISODE),
        Count("factors_for_assessment", "assessment_factors", ASSESSMENT),
        Count("valid_factors_for_assessment", "assessment_factors", ASSESSMENT,
              In("AssessmentFactors", codes="assessment_factor")),
        FactorCodes("factor_codes"),
        # 8897Q: at least one factor, and every factor a code of the year.
        Derived("factors_present_and_valid", "bool",
                lambda df, v: df["factors_for_assessment"].gt(0)
                & df["valid_factors_for_assessment"].eq(df["factors_for_assessment"]),
                lambda F, df, v: (F.col("factors_for_assessment") > 0)
                & (F.col("valid_factors_for_assessment") == F.col("factors_for_assessment"))),
        Count("_disability_factors", "assessment_factors", ASSESSMENT, In("AssessmentFactors", ("5A", "6A"))),
        Derived("has_disability_factor", "bool", lambda df, v: df["_disability_factors"] > 0,
                lambda F, df, v: F.col("_disability_factors") > 0),
        InitialAssessmentStart("initial_assessment_start"),
    ),
    "factors": (
        *_facts("parent", "AssessmentActualStartDate", "AssessmentAuthorisationDate"),
        *_facts("episode", "CINclosureDate", "ReasonForClosure", "ReferralNFA"),
        Count("factors_for_assessment", "assessment_factors", ASSESSMENT),
        Count("assessments_in_episode", "assessments", EPISODE),
    ),
    "section47": (
        *_facts("episode", *_EPISODE_FACTS, "CINdetails_DateOfInitialCPC"),
        Fact("PersonDeathDate", "child"),
        Count("open_s47_in_episode", "section47", EPISODE, OPEN_S47),
        Inside("starts_inside_other_s47", "section47", "S47ActualStartDate", "section47", "S47ActualStartDate",
               Until("DateOfInitialCPC", OPEN_S47), EPISODE),
        Count("assessments_in_episode", "assessments", EPISODE),
    ),
    "cp_plans": (
        *_facts("episode", *_EPISODE_FACTS, "CINdetails_DateOfInitialCPC"),
        Fact("PersonDeathDate", "child"),
        Count("open_cpps_for_child", "cp_plans", CHILD, Missing("CPPendDate")),
        Count("open_cpps_in_episode", "cp_plans", EPISODE, Missing("CPPendDate")),
        Inside("starts_inside_other_cpp", "cp_plans", "CPPstartDate", "cp_plans", "CPPstartDate",
               Until("CPPendDate"), CHILD),
        # A protection plan may start on the day a CIN plan ends (step-up).
        Inside("starts_inside_cin_plan", "cp_plans", "CPPstartDate", "cin_plans", "CINPlanStartDate",
               Until("CINPlanEndDate"), CHILD, except_equal_to="CINPlanEndDate"),
        OnConferenceDay("starts_on_an_icpc_date"),
        Count("reviews_for_cpp", "cp_reviews", CPP),
        Derived("previous_cpps_recorded", "bool",
                lambda df, v: value_column(df, "NumberOfPreviousCPP", "Int64").ge(0).fillna(False),
                lambda F, df, v: F.coalesce(F.col("NumberOfPreviousCPP") >= 0, F.lit(False))),
        Count("_undated_reviews", "cp_reviews", CPP, Missing("CPPreviewDate")),
        DatelessReviews("_dateless_reviews"),
        # 8842Q: a review whose date is not a date is a row with no date; an empty or missing one, an issue.
        Derived("reviews_without_date", "int64", lambda df, v: df["_undated_reviews"] + df["_dateless_reviews"],
                lambda F, df, v: F.col("_undated_reviews") + F.col("_dateless_reviews")),
    ),
    "cin_plans": (
        *_facts("episode", *_EPISODE_FACTS),
        Fact("PersonDeathDate", "child"),
        Count("open_cin_plans_for_child", "cin_plans", CHILD, Missing("CINPlanEndDate")),
        Inside("starts_inside_other_cin_plan", "cin_plans", "CINPlanStartDate", "cin_plans", "CINPlanStartDate",
               Until("CINPlanEndDate"), CHILD),
        # A CIN plan may start on the day a protection plan ends (step-down).
        Inside("starts_inside_cpp", "cin_plans", "CINPlanStartDate", "cp_plans", "CPPstartDate",
               Until("CPPendDate"), CHILD, except_equal_to="CPPendDate"),
        Count("open_cpps_in_episode", "cp_plans", EPISODE, Missing("CPPendDate")),
        # 4017 on the CIN plan: a protection plan of the child starts inside this plan's range,
        # unless it starts on the plan's own end date.
        Inside("holds_cpp_start", "cp_plans", "CPPstartDate", "cin_plans", "CINPlanStartDate",
               Until("CINPlanEndDate"), CHILD, except_equal_to="CINPlanEndDate", mark="right"),
    ),
    "reviews": (
        *_facts("parent", "CPPstartDate", "CPPendDate"),
        *_facts("episode", "CINreferralDate", "CINclosureDate", "ReferralNFA"),
        # 4003: on or between a CIN plan's start and end dates (through the census end if it is
        # open) in the same episode; a review on its own protection plan's end date is allowed,
        # which is what makes the step-down review (plan ends, CIN plan starts that day) pass.
        Inside("_in_cin_plan", "cp_reviews", "CPPreviewDate", "cin_plans", "CINPlanStartDate",
               Until("CINPlanEndDate"), EPISODE),
        Derived("during_cin_plan", "bool",
                lambda df, v: df["_in_cin_plan"] & ~(value_column(df, "CPPreviewDate", "datetime64[s]").to_numpy()
                                                     == df["CPPendDate"].to_numpy(dtype="datetime64[s]")),
                lambda F, df, v: F.col("_in_cin_plan")
                & ~F.coalesce(F.col("CPPreviewDate") == F.col("CPPendDate"), F.lit(False))),
    ),
    # No parent columns: module 5's rules (2026-27) read only its own dates and the census period.
    "pre_proceedings": (),
    "return": (
        Total("children", "children"),
        Total("children_with_no_gender_recorded", "children", NoGender() & Missing("ExpectedPersonBirthDate")),
        Derived("share_with_no_gender_recorded", "float64", _no_gender_share,
                lambda F, df, v: F.when(F.col("children") > 0,
                                        F.col("children_with_no_gender_recorded") / F.col("children"))
                .otherwise(F.lit(float("nan")))),
        Total("disability_codes_used", "disabilities", REAL_DISABILITY, distinct="Disability"),
        ChildrenWithSeveral("children_with_several_disabilities", "disabilities", REAL_DISABILITY),
        Total("cpp_starts_in_census", "cp_plans", InCensus("CPPstartDate")),
        Total("_icpcs_on_s47", "section47", InCensus("DateOfInitialCPC")),
        Total("_icpcs_on_episodes", "episodes", InCensus("DateOfInitialCPC")),
        Derived("icpcs_in_census", "int64", lambda df, v: df["_icpcs_on_s47"] + df["_icpcs_on_episodes"],
                lambda F, df, v: F.col("_icpcs_on_s47") + F.col("_icpcs_on_episodes")),
        Total("children_with_pre_proceedings", "pre_proceedings", distinct="child"),
        Total("children_with_pp_start_date", "pre_proceedings", ~Missing("PPStartDate"), distinct="child"),
    ),
}
"""Every column each validation view adds to its table's rows (after the locator and the table's own columns,
before ``census_start`` and ``census_end``), in order, each with its pandas and Spark forms. Columns whose
name starts with ``_`` are steps, dropped from the view."""


def dateless_reviews(issues: pd.DataFrame) -> pd.Series:
    """Tell which structural issues are a protection plan review with no date, located by child and line (8842Q)."""
    if not len(issues) or not {"element", "problem", "child", "line"} <= set(issues.columns):
        return pd.Series(False, index=issues.index, dtype=bool)
    element = issues["element"].astype("object")
    problem = issues["problem"].astype("str")
    dateless = ((element.eq("CPPreviewDate") & problem.str.endswith("is empty"))
                | (element.eq("Reviews") & problem.str.contains("holds no", regex=False)))
    return dateless & issues["child"].notna() & issues["line"].notna()


def starts_inside(left: pd.DataFrame, right: pd.DataFrame, *, by: tuple[str, ...], start: str,
                  lo: pd.Series, hi: pd.Series, same_rows: bool, include_hi: bool,
                  except_equal_to: pd.Series | None = None, include_lo: bool = True,
                  mark: str = "left") -> np.ndarray:
    """Tell for each row of ``left`` whether its ``start`` date falls inside a range of ``right``.

    Ranges run from ``lo`` (inclusive unless not ``include_lo``) to ``hi`` (inclusive if ``include_hi``), both aligned with
    ``right``'s rows; a range with a missing bound is no range. Rows are compared only within the
    same ``by`` keys (a child, an episode). With ``same_rows`` the two frames are the same table and
    a row is not compared with itself. ``except_equal_to`` (aligned with ``right``) exempts a start
    on that date (a CIN plan may start the day a protection plan ends). With ``mark="right"`` the
    answer is for each row of ``right`` instead: whether its range holds the start of a ``left`` row.
    """
    n = len(left)
    out = np.zeros(n if mark == "left" else len(right), dtype=bool)
    starts = pd.to_datetime(left[start]) if start in left else pd.Series(pd.NaT, index=left.index)
    if n == 0 or len(right) == 0:
        return out
    lk = pd.DataFrame({k: left[k].to_numpy(dtype="int64") for k in by})
    lk["_l"] = np.arange(n)
    lk["_s"] = starts.to_numpy(dtype="datetime64[s]")
    lk = lk[lk["_s"].notna()]
    rk = pd.DataFrame({k: right[k].to_numpy(dtype="int64") for k in by})
    rk["_r"] = np.arange(len(right))
    rk["_lo"] = pd.to_datetime(lo).to_numpy(dtype="datetime64[s]")
    rk["_hi"] = pd.to_datetime(hi).to_numpy(dtype="datetime64[s]")
    if except_equal_to is not None:
        rk["_x"] = pd.to_datetime(except_equal_to).to_numpy(dtype="datetime64[s]")
    rk = rk[rk["_lo"].notna() & rk["_hi"].notna()]
    # Only keys with rows on both sides can overlap; keep the pairwise merge small.
    pairs = lk.merge(rk, on=list(by), how="inner")
    if same_rows:
        pairs = pairs[pairs["_l"] != pairs["_r"]]
    above = (pairs["_lo"] <= pairs["_s"]) if include_lo else (pairs["_lo"] < pairs["_s"])
    inside = above & ((pairs["_s"] <= pairs["_hi"]) if include_hi else (pairs["_s"] < pairs["_hi"]))
    if except_equal_to is not None:
        inside &= ~(pairs["_s"] == pairs["_x"])
    out[pairs.loc[inside, "_l" if mark == "left" else "_r"].to_numpy(dtype="int64")] = True
    return out


def _joined_codes(table: pd.DataFrame, keys: tuple[str, ...], codes: pd.Series) -> pd.Series:
    """Join each key's codes, sorted, with commas ("16A,3B"), indexed by ``keys``.

    A per-group ``agg(",".join)`` runs Python once per group (seconds at 200k assessments);
    sorting once and concatenating each run of rows with ``np.add.reduceat`` does not.
    """
    ordered = table.assign(_code=codes.astype("str")).sort_values([*keys, "_code"], kind="stable")
    ordered = ordered.loc[ordered["_code"].notna().to_numpy()]
    if not len(ordered):
        return pd.Series([], dtype=object)
    k = np.column_stack([ordered[c].to_numpy(dtype="int64") for c in keys])
    starts = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]).any(axis=1)])
    text = np.add.reduceat(ordered["_code"].to_numpy(dtype=object) + ",", starts)
    index = pd.MultiIndex.from_arrays([k[starts, i] for i in range(len(keys))], names=list(keys))
    return pd.Series([t[:-1] for t in text], index=index, dtype=object)


def _ints(df: pd.DataFrame, column: str) -> np.ndarray:
    return df[column].to_numpy(dtype="int64")


def _days(df: pd.DataFrame, column: str) -> np.ndarray:
    return value_column(df, column, "datetime64[s]").to_numpy(dtype="datetime64[s]")


def value_column(df: pd.DataFrame, name: str, dtype: str) -> pd.Series:
    """Return column ``name`` as plain values, or an all-missing column if the year lacks it."""
    if name not in df:
        if dtype == "boolean":
            return pd.Series(pd.array([pd.NA] * len(df), dtype="boolean"), index=df.index)
        if dtype == "datetime64[s]":
            return pd.Series(np.full(len(df), np.datetime64("NaT"), dtype="datetime64[s]"), index=df.index)
        if dtype == "Int64":
            return pd.Series(pd.array([pd.NA] * len(df), dtype="Int64"), index=df.index)
        return pd.Series([None] * len(df), index=df.index, dtype="object" if dtype == "object" else "str")
    s = df[name]
    if dtype == "object" and isinstance(s.dtype, pd.CategoricalDtype):
        return s.astype("object")
    return s
