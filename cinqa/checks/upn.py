"""UPN: the check letter (1510) and a whole well-formed UPN (1560Q); see :mod:`cinqa.checks.upn_letters`."""

from __future__ import annotations

import pandas as pd

from cinqa.checks import _gx  # noqa: F401
from cinqa.checks.upn_letters import check_letters, checkable
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial


class ColumnValuesValidUpnCheckLetter(ColumnMapMetricProvider):
    condition_metric_name = "column_values.cinqa_upn_check_letter"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs) -> pd.Series:
        s = column.astype("str")
        weighable = checkable(s)
        right = (s.str.slice(0, 1) == check_letters(s)).fillna(False).astype(bool)
        # Characters 2-13 that cannot be weighted are reported by their own rules (1540, 1550);
        # a UPN of the wrong length has no other rule and fails here.
        wrong_length = s.str.len() != 13
        return (right | (~weighable & ~wrong_length)).astype(bool)


class ColumnValuesWellFormedUpn(ColumnMapMetricProvider):
    condition_metric_name = "column_values.cinqa_well_formed_upn"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs) -> pd.Series:
        s = column.astype("str")
        return (checkable(s) & (s.str.slice(0, 1) == check_letters(s)).fillna(False)).astype(bool)


class ExpectColumnValuesToHaveValidUpnCheckLetters(ColumnMapExpectation):
    """Expect each UPN's first character to be the check letter its characters 2-13 call for."""

    map_metric = "column_values.cinqa_upn_check_letter"


class ExpectColumnValuesToBeWellFormedUpns(ColumnMapExpectation):
    """Expect each value to be a complete, correctly check-lettered UPN."""

    map_metric = "column_values.cinqa_well_formed_upn"
