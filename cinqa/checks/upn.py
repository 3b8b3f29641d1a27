"""UPN: the check letter (1510) and a whole well-formed UPN (1560Q); see :mod:`cinqa.checks.upn_letters`."""

from __future__ import annotations

import pandas as pd

from cinqa.checks import _gx  # noqa: F401
from cinqa.checks._spark import masked
from cinqa.checks.upn_letters import right_check_letter, well_formed
from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial


class _ColumnValuesPass(ColumnMapMetricProvider):
    """A value must pass ``check``, a pandas mask of cinqa's; GX registers each subclass's metric under its own name."""

    check: staticmethod

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs) -> pd.Series:
        return cls.check(column)

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column, **kwargs):
        return masked(cls.check, column)


class ColumnValuesValidUpnCheckLetter(_ColumnValuesPass):
    condition_metric_name = "column_values.cinqa_upn_check_letter"
    check = staticmethod(right_check_letter)


class ColumnValuesWellFormedUpn(_ColumnValuesPass):
    condition_metric_name = "column_values.cinqa_well_formed_upn"
    check = staticmethod(well_formed)


class ExpectColumnValuesToHaveValidUpnCheckLetters(ColumnMapExpectation):
    """Expect each UPN's first character to be the check letter its characters 2-13 call for."""

    map_metric = "column_values.cinqa_upn_check_letter"


class ExpectColumnValuesToBeWellFormedUpns(ColumnMapExpectation):
    """Expect each value to be a complete, correctly check-lettered UPN."""

    map_metric = "column_values.cinqa_well_formed_upn"
