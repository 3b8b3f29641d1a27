"""Pairs: two columns of the same row must hold different values (a plan must not start and
end on the same day). Rows where either value is missing are not checked."""

from __future__ import annotations

from typing import Literal

import pandas as pd

from cinqa.checks import _gx  # noqa: F401
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnPairMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnPairMapMetricProvider,
    column_pair_condition_partial,
)


class ColumnPairValuesDiffer(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.cinqa_differ"
    condition_domain_keys = ("batch_id", "table", "column_A", "column_B", "row_condition", "condition_parser",
                             "ignore_row_if")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: pd.Series, column_B: pd.Series, **kwargs) -> pd.Series:
        return (column_A != column_B).astype(bool)


class ExpectColumnPairValuesToDiffer(ColumnPairMapExpectation):
    """Expect ``column_A`` and ``column_B`` to differ on every row where both are present."""

    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = "either_value_is_missing"
    map_metric = "column_pair_values.cinqa_differ"
    success_keys = ("mostly",)
