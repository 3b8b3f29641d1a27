"""Calendar: a date must fall on a weekday (Monday to Friday); missing dates are not checked."""

from __future__ import annotations

import pandas as pd

from cinqa.checks import _gx  # noqa: F401
from great_expectations.compatibility.pyspark import functions as F
from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial


class ColumnValuesWeekdays(ColumnMapMetricProvider):
    condition_metric_name = "column_values.cinqa_weekdays"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs) -> pd.Series:
        return (pd.to_datetime(column).dt.day_of_week < 5).astype(bool)

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column, **kwargs):
        # Spark numbers days from Sunday (1) to Saturday (7).
        return F.dayofweek(column).between(2, 6)


class ExpectColumnValuesToBeWeekdays(ColumnMapExpectation):
    """Expect every date to be a Monday to Friday (bank holidays are not excluded)."""

    map_metric = "column_values.cinqa_weekdays"
