"""Spark forms of the checks' helpers: pandas UDFs that call cinqa's own pandas functions.

The date offsets (working days, calendar months and years) and the UPN check letter are computed
by the same code on both engines: on Spark each becomes a vectorised pandas UDF over the column,
so there is no second implementation to drift. pyspark is imported only when a Spark check runs.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Callable

import pandas as pd

from cinqa.views import shift_dates


@cache
def _udf(func: Callable[[pd.Series], pd.Series], returns: str) -> Any:
    from pyspark.sql.functions import pandas_udf

    return pandas_udf(func, returns)  # type: ignore[call-overload]


@cache
def _shifter(offset: str) -> Callable[[pd.Series], pd.Series]:
    def shift(values: pd.Series) -> pd.Series:
        return shift_dates(pd.to_datetime(values), offset)

    return shift


def shifted(column: Any, offset: str | None) -> Any:
    """Return the Spark column ``column`` moved by ``offset`` as :func:`cinqa.views.shift_dates` moves it."""
    if not offset:
        return column
    return _udf(_shifter(offset), "timestamp")(column)


def masked(func: Callable[[pd.Series], pd.Series], column: Any) -> Any:
    """Return the Spark boolean column that the pandas mask ``func`` gives for ``column``."""
    return _udf(func, "boolean")(column)
