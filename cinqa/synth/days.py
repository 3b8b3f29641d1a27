"""Dates as whole days since 1970-01-01, with England's working days, for fast per-child arithmetic.

The working-day calendar is :mod:`cinqa.workdays` (bank holidays from the ``holidays``
package), tabulated once so that the generator's inner loop does list look-ups, not pandas calls.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from functools import cache

import numpy as np
import pandas as pd

from cinqa import workdays

EPOCH = dt.date(1970, 1, 1).toordinal()
FIRST = dt.date(workdays.FIRST_YEAR, 1, 1).toordinal() - EPOCH
LAST = dt.date(workdays.LAST_YEAR, 12, 31).toordinal() - EPOCH
NAT = np.iinfo(np.int64).min


def day(year: int, month: int, d: int) -> int:
    """Return the day number of a calendar date."""
    return dt.date(year, month, d).toordinal() - EPOCH


def to_date(d: int) -> dt.date:
    """Return the calendar date of a day number."""
    return dt.date.fromordinal(d + EPOCH)


def to_datetime64(values: list[int | None]) -> np.ndarray:
    """Turn day numbers (None = missing) into a ``datetime64[s]`` array."""
    arr = np.array([NAT if v is None else v for v in values], dtype=np.int64)
    return arr.astype("datetime64[D]").astype("datetime64[s]")


class Calendar:
    """England's working days between 2005 and 2035 as day numbers."""

    def __init__(self) -> None:
        span = pd.date_range(to_date(FIRST), to_date(LAST), freq="D")
        working = workdays.is_working_day(pd.Series(span)).to_numpy(dtype=bool)
        days = np.arange(FIRST, LAST + 1)
        self.working: list[int] = days[working].tolist()
        cum = np.cumsum(working)
        # count[i] = working days on or before FIRST + i
        self.count: list[int] = cum.tolist()
        self.is_working: list[bool] = working.tolist()

    def _i(self, d: int) -> int:
        if not FIRST <= d <= LAST:
            raise ValueError(f"{to_date(d)} is outside the working-day calendar "
                             f"({workdays.FIRST_YEAR}-{workdays.LAST_YEAR})")
        return d - FIRST

    def next(self, d: int) -> int:
        """Return ``d`` if it is a working day, else the next working day."""
        i = self._i(d)
        n = self.count[i] - (1 if self.is_working[i] else 0)
        return self.working[n]

    def prev(self, d: int) -> int:
        """Return ``d`` if it is a working day, else the previous working day."""
        return self.working[self.count[self._i(d)] - 1]

    def add(self, d: int, n: int) -> int:
        """Move ``d`` by ``n`` working days, as :func:`cinqa.workdays.add_working_days` does."""
        if n >= 0:
            i = self._i(d)
            first = self.count[i] - (1 if self.is_working[i] else 0)
            return self.working[first + n]
        return self.working[self.count[self._i(d)] - 1 + n]

    def between(self, a: int, b: int) -> int:
        """Count working days after ``a`` up to and including ``b``."""
        return self.count[self._i(b)] - self.count[self._i(a)]


@cache
def calendar() -> Calendar:
    """Return the shared working-day calendar."""
    return Calendar()


def census_start(end_year: int) -> int:
    """Return the day number of 1 April opening the census year that ends in ``end_year``."""
    return day(end_year - 1, 4, 1)


def reference_day(end_year: int) -> int:
    """Return the day number of 31 March closing the census year that ends in ``end_year``."""
    return day(end_year, 3, 31)


_APRILS = [day(y, 4, 1) for y in range(1990, 2041)]


def census_end_year(d: int) -> int:
    """Return the year ending 31 March of the census year containing day ``d``."""
    return 1990 + bisect_right(_APRILS, d)


def add_years(d: int, years: float) -> int:
    """Return ``d`` moved by a number of (365.25-day) years."""
    return d + int(round(years * 365.25))
