"""England working days: weekends, bank holidays and the direction of steps."""

import subprocess
import sys

import pandas as pd
import pytest

from cinqa import workdays


def dates(*values):
    return pd.Series(pd.to_datetime(list(values)))


def test_bank_holidays_reach_back_to_2012_and_include_easter_and_jubilee():
    days = set(pd.to_datetime(workdays.bank_holidays()).strftime("%Y-%m-%d"))
    assert {"2012-04-06", "2012-06-05", "2023-04-07", "2024-04-01", "2025-12-25"} <= days
    assert "2023-04-03" not in days


def test_the_bank_holidays_cinqa_reads_are_those_the_holidays_package_computes():
    """The file is written once (workdays.write_bank_holidays()); a newer package with new holidays fails here."""
    assert pd.to_datetime(workdays.bank_holidays()).strftime("%Y-%m-%d").tolist() == workdays.computed_bank_holidays()


def test_reading_the_bank_holidays_does_not_load_the_holidays_package():
    code = ("import sys; from cinqa import workdays; workdays.add_working_days(workdays.pd.Timestamp('2024-04-01'), -1); "
            "sys.exit('holidays' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_working_days_between_counts_days_after_start_up_to_end():
    start = dates("2023-04-06", "2023-04-06", "2023-03-31", None)
    end = dates("2023-04-06", "2023-04-11", "2023-04-03", "2023-04-03")
    # Same day 0; Thursday -> Tuesday over Good Friday and Easter Monday 1; Friday -> Monday 1.
    assert workdays.working_days_between(start, end).tolist() == [0, 1, 1, pd.NA]


def test_working_days_between_is_negative_when_end_precedes_start():
    assert workdays.working_days_between(dates("2023-05-10"), dates("2023-05-09")).tolist() == [-1]


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        ("2023-04-01", -1, "2023-03-31"),  # Saturday back one: the Friday before
        ("2024-04-01", -1, "2024-03-28"),  # Easter Monday back one: skips Good Friday
        ("2023-04-01", 1, "2023-04-03"),  # Saturday forward one: the Monday
        ("2024-03-31", -45, "2024-01-26"),  # Sunday 31 March 2024 back 45, Good Friday skipped (as pandas CustomBusinessDay)
        ("2023-06-05", 0, "2023-06-05"),
    ],
)
def test_add_working_days_crosses_weekends_and_holidays(day, n, expected):
    assert workdays.add_working_days(pd.Timestamp(day), n) == pd.Timestamp(expected)
    shifted = workdays.add_working_days(dates(day, None), n)
    assert shifted.iloc[0] == pd.Timestamp(expected) and pd.isna(shifted.iloc[1])


def test_is_working_day_marks_weekends_holidays_and_missing():
    out = workdays.is_working_day(dates("2023-04-07", "2023-04-08", "2023-04-11", None))
    assert out.tolist() == [False, False, True, pd.NA]


# -- more calendar facts (one-off holidays) and conventions -----------------------------------------


@pytest.mark.parametrize("day", [
    "2012-06-04", "2012-06-05",  # spring bank holiday moved; Diamond Jubilee
    "2013-03-29", "2013-04-01",  # Good Friday, Easter Monday
    "2020-05-08",  # VE day (early May bank holiday moved)
    "2021-12-27", "2021-12-28",  # Christmas and Boxing Day substitutes
    "2022-06-02", "2022-06-03", "2022-09-19",  # Platinum Jubilee; state funeral
    "2023-05-08",  # coronation
    "2026-08-31",
])
def test_one_off_and_substitute_bank_holidays(day):
    assert pd.Timestamp(day) in set(pd.to_datetime(workdays.bank_holidays()))
    assert workdays.is_working_day(dates(day)).tolist() == [False]


def test_moved_holidays_leave_working_days():
    # The 2012 spring and 2020 early-May holidays were moved away from these Mondays.
    assert workdays.is_working_day(dates("2012-05-28", "2020-05-04")).tolist() == [True, True]


def test_working_days_between_over_easter_and_may():
    start = dates("2023-04-10", "2023-04-03", "2023-01-02")
    end = dates("2023-04-03", "2023-05-05", "2023-01-09")
    # Backwards over Good Friday and Easter Monday 2023: Tue-Thu only; to 5 May over Easter and
    # 1 May; and a scalar end broadcast below.
    assert workdays.working_days_between(start, end).tolist() == [-3, 21, 5]
    out = workdays.working_days_between(dates("2023-01-02", None), pd.Timestamp("2023-01-09"))
    assert out.dtype == "Int64" and out.tolist() == [5, pd.NA]


def test_adding_then_counting_agree():
    days = pd.Series(pd.bdate_range("2012-04-02", "2026-03-31", freq="7D"))
    days = days[workdays.is_working_day(days).to_numpy(dtype=bool)].reset_index(drop=True)
    for n in (1, 10, 45):
        assert (workdays.working_days_between(days, workdays.add_working_days(days, n)) == n).all()
