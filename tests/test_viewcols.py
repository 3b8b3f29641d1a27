"""View columns: each declared once with its pandas and Spark forms; the range comparison they share."""

from pathlib import Path

import pandas as pd

import cinqa
from cinqa.viewcols import CHILD, VIEW_COLUMNS, Count, Derived, Missing, starts_inside
from cinqa.views import build_views

DATA = Path(__file__).parents[1] / "data"


def _frame(starts, ends, child=None):
    n = len(starts)
    return pd.DataFrame({
        "child": child or [1] * n,
        "s": pd.Series(pd.to_datetime(starts), dtype="datetime64[s]"),
        "e": pd.Series(pd.to_datetime(ends), dtype="datetime64[s]"),
    })


def test_starts_inside_compares_rows_of_the_same_key_only():
    df = _frame(["2023-05-01", "2023-05-10", "2023-05-10"], ["2023-05-20", None, None], child=[1, 1, 2])
    got = starts_inside(df, df, by=("child",), start="s", lo=df["s"], hi=df["e"], same_rows=True, include_hi=True)
    # The second row starts inside the first; the third belongs to another child.
    assert got.tolist() == [False, True, False]


def test_starts_inside_end_bound_can_be_exclusive():
    df = _frame(["2023-05-01", "2023-05-20"], ["2023-05-20", "2023-06-01"])
    incl = starts_inside(df, df, by=("child",), start="s", lo=df["s"], hi=df["e"], same_rows=True, include_hi=True)
    excl = starts_inside(df, df, by=("child",), start="s", lo=df["s"], hi=df["e"], same_rows=True, include_hi=False)
    assert incl.tolist() == [False, True] and excl.tolist() == [False, False]


def test_starts_inside_other_table_with_exemption():
    left = _frame(["2023-05-20", "2023-05-10"], [None, None])
    right = _frame(["2023-05-01"], ["2023-05-20"])
    got = starts_inside(left, right, by=("child",), start="s", lo=right["s"], hi=right["e"], same_rows=False,
                        include_hi=True, except_equal_to=right["e"])
    assert got.tolist() == [False, True]


def test_a_column_declared_once_is_in_the_view(monkeypatch):
    """Declaring a column (a count with a condition, and an expression of it) is all it takes to add it."""
    ret = cinqa.read_return(DATA / "sample-2025-26.xml")
    extra = (Count("_open_plans", "cin_plans", CHILD, Missing("CINPlanEndDate")),
             Derived("has_open_cin_plan", "bool", lambda df, v: df["_open_plans"] > 0, lambda F, df, v: None))
    monkeypatch.setitem(VIEW_COLUMNS, "children", VIEW_COLUMNS["children"] + extra)
    view = build_views(ret, names=["children"])["children"]
    plans = ret.tables["cin_plans"]
    open_children = set(plans.loc[plans["CINPlanEndDate"].isna(), "child"])
    assert "_open_plans" not in view
    assert view["has_open_cin_plan"].dtype == bool
    assert view["has_open_cin_plan"].tolist() == [c in open_children for c in view["child"]]
    assert view["has_open_cin_plan"].any() and not view["has_open_cin_plan"].all()
