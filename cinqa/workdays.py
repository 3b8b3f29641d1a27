"""Working days in England: weekdays that are not bank holidays.

Bank holidays come from the maintained ``holidays`` package (England subdivision), so the
calendar reaches back to 2012 and forward without a hand-typed list. Computing them takes the
package about a third of a second, a third of what a cold ``cinqa validate`` may spend on its
own, so they are computed ahead of time and shipped: :func:`write_bank_holidays` writes them to
:data:`HOLIDAYS_FILE` (run it again when the package adds a holiday), cinqa reads that file, and a
test checks the file against the package.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

FIRST_YEAR = 2005
LAST_YEAR = 2035
HOLIDAYS_FILE = Path(__file__).with_name("bank-holidays-england.json")


@cache
def bank_holidays() -> np.ndarray:
    """Return England's bank holidays from 2005 to 2035 as sorted ``datetime64[D]`` values."""
    return np.array(json.loads(HOLIDAYS_FILE.read_text("utf-8"))["dates"], dtype="datetime64[D]")


def computed_bank_holidays() -> list[str]:
    """Compute England's bank holidays from 2005 to 2035 with the ``holidays`` package, as ISO dates in order."""
    import holidays

    days = holidays.country_holidays("GB", subdiv="ENG", years=range(FIRST_YEAR, LAST_YEAR + 1))
    return [day.isoformat() for day in sorted(days)]


def write_bank_holidays(path: Path = HOLIDAYS_FILE) -> None:
    """Write :func:`computed_bank_holidays` to ``path``, where :func:`bank_holidays` reads them."""
    import holidays

    made = (f"England's bank holidays {FIRST_YEAR}-{LAST_YEAR} from holidays {holidays.__version__}; "
            "written by cinqa.workdays.write_bank_holidays()")
    path.write_text(json.dumps({"made": made, "dates": computed_bank_holidays()}, indent=0) + "\n", "utf-8")


@cache
def _calendar() -> np.busdaycalendar:
    return np.busdaycalendar(weekmask="1111100", holidays=bank_holidays())


def _days(values: pd.Series | pd.Timestamp | np.ndarray) -> np.ndarray:
    return np.asarray(pd.to_datetime(values), dtype="datetime64[D]")


def is_working_day(dates: pd.Series) -> pd.Series:
    """Tell for each date whether it is a working day (missing dates give <NA>)."""
    s = pd.to_datetime(dates)
    ok = s.notna().to_numpy()
    out = np.zeros(len(s), dtype=bool)
    out[ok] = np.is_busday(_days(s[ok]), busdaycal=_calendar())
    return pd.Series(out, index=s.index, dtype="boolean").mask(~ok)


def working_days_between(start: pd.Series, end: pd.Series) -> pd.Series:
    """Count the working days after ``start`` up to and including ``end``.

    A same-day assessment takes 0 working days; one started on a Friday and authorised on the
    Monday takes 1. Where either date is missing the result is <NA>; if ``end`` is before
    ``start`` the count is negative.
    """
    s, e = pd.to_datetime(start), pd.to_datetime(end)
    if isinstance(s, pd.Timestamp):
        s = pd.Series(s, index=e.index)
    if isinstance(e, pd.Timestamp):
        e = pd.Series(e, index=s.index)
    ok = (s.notna() & e.notna()).to_numpy()
    out = np.zeros(len(s), dtype="int64")
    one = np.timedelta64(1, "D")
    out[ok] = np.busday_count(_days(s[ok]) + one, _days(e[ok]) + one, busdaycal=_calendar())
    return pd.Series(out, index=s.index, dtype="Int64").mask(~ok)


def add_working_days(dates: pd.Series | pd.Timestamp, n: int) -> pd.Series | pd.Timestamp:
    """Move each date by ``n`` working days (negative ``n`` goes back).

    This is the calendar-aware "n working days after/before": from a weekend or holiday the
    first step lands on the nearest working day on the far side, so one working day before
    Saturday 1 April 2023 is Friday 31 March, and one before Easter Monday 1 April 2024 is
    Thursday 28 March (Good Friday is a holiday). The result is always a working day.
    """
    # Rolling against the direction of travel makes the first step cross the weekend or holiday.
    roll = "backward" if n > 0 else "forward"
    if isinstance(dates, pd.Timestamp):
        day = np.busday_offset(_days(np.array([dates]))[0], n, roll=roll, busdaycal=_calendar())
        return pd.Timestamp(day)
    s = pd.to_datetime(dates)
    ok = s.notna().to_numpy()
    out = np.full(len(s), np.datetime64("NaT"), dtype="datetime64[s]")
    out[ok] = np.busday_offset(_days(s[ok]), n, roll=roll, busdaycal=_calendar()).astype("datetime64[s]")
    return pd.Series(out, index=s.index)
