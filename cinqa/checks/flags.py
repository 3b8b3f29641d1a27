"""Flags: a boolean view column, computed once for the view, must be true (or false) on every row.

Rules that compare rows with each other (overlapping episodes, the latest referral) are
pre-computed as view columns; these expectations state which value is acceptable. A missing
flag is never acceptable: it would mean the view failed to compute it.
"""

from __future__ import annotations

import pandas as pd

from cinqa.checks import _gx  # noqa: F401
from great_expectations.compatibility.pyspark import functions as F
from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial


class _ColumnValuesAre(ColumnMapMetricProvider):
    """A flag must equal ``value``; GX registers each subclass's metric under its own name."""

    value: bool
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs) -> pd.Series:
        return column.eq(cls.value).fillna(False).astype(bool)

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column, **kwargs):
        return F.coalesce(column == F.lit(cls.value), F.lit(False))


class ColumnValuesTrue(_ColumnValuesAre):
    condition_metric_name = "column_values.cinqa_true"
    value = True


class ColumnValuesFalse(_ColumnValuesAre):
    condition_metric_name = "column_values.cinqa_false"
    value = False


class ExpectColumnValuesToBeTrue(ColumnMapExpectation):
    """Expect a boolean column to be true on every row (missing counts as not true)."""

    map_metric = "column_values.cinqa_true"


class ExpectColumnValuesToBeFalse(ColumnMapExpectation):
    """Expect a boolean column to be false on every row (missing counts as not false)."""

    map_metric = "column_values.cinqa_false"
