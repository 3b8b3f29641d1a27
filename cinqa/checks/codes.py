"""Codes: a value must be present and one of a code set ("missing or invalid" rules).

GX's in-set check skips missing values; DfE rules such as 4220 (ethnicity missing or invalid)
count a missing code as a failure too.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cinqa.checks import _gx  # noqa: F401
from great_expectations.compatibility.pyspark import functions as F
from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial


class ColumnValuesPresentAndInSet(ColumnMapMetricProvider):
    condition_metric_name = "column_values.cinqa_present_and_in_set"
    condition_value_keys = ("value_set",)
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, value_set: list[Any], **kwargs) -> pd.Series:
        values = column.astype("object")
        return (values.notna() & values.isin(list(value_set))).astype(bool)

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column, value_set: list[Any], **kwargs):
        # SQL's IN is null on a null value; a missing code fails, as in pandas.
        return F.coalesce(column.isin(list(value_set)), F.lit(False))


class ExpectColumnValuesToBePresentAndInSet(ColumnMapExpectation):
    """Expect every value to be present and one of ``value_set``."""

    value_set: list[Any]
    map_metric = "column_values.cinqa_present_and_in_set"
    success_keys = ("value_set", "mostly")
