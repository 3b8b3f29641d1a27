"""Bounds: a value must lie between other columns of the same row, each optionally shifted.

This is how date rules read in the DfE text: "on or between [Start_Of_Census_Year] and
<ReferenceDate>" (``min_column: census_start, max_column: census_end``), "cannot be more than
280 days before <PersonBirthDate>" (``min_column: birth_or_expected_birth_date, min_offset: -280D``),
"before <ReferenceDate> minus 45 working days" (``min_offset: -45WD``). JSON cannot hold dates,
so bounds are view columns and offsets are text (see :func:`cinqa.views.shift_dates`).

A row whose value is missing is skipped unless ``required`` is true, when it fails. A bound that
is missing on a row is not applied on that row.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import pandas as pd

from cinqa.checks import _gx  # noqa: F401
from cinqa.checks._spark import shifted
from cinqa.views import check_offset, shift_dates
from great_expectations.compatibility import pydantic
from great_expectations.compatibility.pyspark import functions as F
from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine
from great_expectations.expectations.expectation import MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import MulticolumnMapMetricProvider
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)

_VALUE_KEYS = ("column", "min_column", "min_offset", "strict_min", "max_column", "max_offset", "strict_max",
               "required")


class MulticolumnValuesBetweenColumns(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.cinqa_between_columns"
    condition_domain_keys = ("batch_id", "table", "column_list", "row_condition", "condition_parser",
                             "ignore_row_if")
    condition_value_keys = _VALUE_KEYS

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, column: str, min_column: str | None = None,
                min_offset: str | None = None, strict_min: bool = False, max_column: str | None = None,
                max_offset: str | None = None, strict_max: bool = False, required: bool = False,
                **kwargs: Any) -> pd.Series:
        value = column_list[column]
        ok = pd.Series(True, index=value.index)
        if min_column:
            low = shift_dates(column_list[min_column], min_offset)
            ok &= ~((value <= low) if strict_min else (value < low)).fillna(False).astype(bool)
        if max_column:
            high = shift_dates(column_list[max_column], max_offset)
            ok &= ~((value >= high) if strict_max else (value > high)).fillna(False).astype(bool)
        if required:
            ok &= value.notna()
        return ok

    @multicolumn_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column_list, column: str, min_column: str | None = None, min_offset: str | None = None,
               strict_min: bool = False, max_column: str | None = None, max_offset: str | None = None,
               strict_max: bool = False, required: bool = False, **kwargs: Any):
        # A comparison with a missing side is null in SQL: coalesced to "not out of bounds", as in pandas.
        value = F.col(column)
        ok = F.lit(True)
        if min_column:
            low = shifted(F.col(min_column), min_offset)
            ok = ok & ~F.coalesce((value <= low) if strict_min else (value < low), F.lit(False))
        if max_column:
            high = shifted(F.col(max_column), max_offset)
            ok = ok & ~F.coalesce((value >= high) if strict_max else (value > high), F.lit(False))
        if required:
            ok = ok & value.isNotNull()
        return ok


class ExpectColumnValuesToBeBetweenColumns(MulticolumnMapExpectation):
    """Expect ``column`` to lie between ``min_column`` and ``max_column`` of the same row.

    Offsets (``-280D``, ``+9M``, ``-4Y+5M``, ``-45WD``) shift a bound before comparing; ``strict_*``
    excludes the bound itself; ``required`` makes a missing value fail. ``column_list`` is filled
    in from the named columns and need not be written.
    """

    column: str
    min_column: Optional[str] = None
    min_offset: Optional[str] = None
    strict_min: bool = False
    max_column: Optional[str] = None
    max_offset: Optional[str] = None
    strict_max: bool = False
    required: bool = False
    column_list: list[str] = []
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "never"

    map_metric = "multicolumn_values.cinqa_between_columns"
    success_keys = ("mostly", *_VALUE_KEYS)

    @pydantic.root_validator(pre=True)
    def _fill_column_list(cls, values: dict[str, Any]) -> dict[str, Any]:
        names = [values.get("column"), values.get("min_column"), values.get("max_column")]
        cols = list(dict.fromkeys(n for n in names if n))
        if not values.get("min_column") and not values.get("max_column"):
            raise ValueError("give min_column, max_column or both")
        for key in ("min_offset", "max_offset"):
            if values.get(key):
                check_offset(values[key], key)
        # GX needs at least two columns in a multicolumn domain; a bound may be the column itself.
        values["column_list"] = cols if len(cols) > 1 else cols * 2
        return values
