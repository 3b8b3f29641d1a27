"""An editable copy of a return's tables: set values, add and drop rows, keeping the reader's types.

Fault injection (:mod:`cinqa.synth.faults`) breaks rules in a clean synthetic return through it.
Setting a value returns a description of the change (``"CINclosureDate: 2024-01-02 -> (missing)"``),
which the fault's truth keeps; :meth:`TableEdits.edited` gives the return back with every table
sorted by its keys and typed as :func:`cinqa.read_return` types it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.returns import CensusReturn, column_dtype
from cinqa.synth.render import categorical


class TableEdits:
    """A copy of a return's tables (``t``) being edited, and its header."""

    def __init__(self, ret: CensusReturn) -> None:
        self.year = ret.year
        self.header = ret.header
        self.t = {k: v.copy() for k, v in ret.tables.items()}

    def under(self, table: str, row: Any, keys: Sequence[str]) -> pd.Series:
        """Return which rows of ``table`` share ``row``'s values of ``keys`` (what hangs under ``row``)."""
        df = self.t[table]
        mask = pd.Series(True, index=df.index)
        for key in keys:
            mask &= df[key] == row[key]
        return mask

    def set(self, table: str, label: Any, column: str, value: Any) -> str:
        """Set one cell; return a description of the change."""
        df = self.t[table]
        old = df.at[label, column]
        col = df[column]
        if isinstance(col.dtype, pd.CategoricalDtype) and value is not None and not is_missing(value) \
                and value not in col.cat.categories:
            df[column] = col.cat.add_categories([value])
        if value is None:
            value = pd.NaT if is_date(df[column]) else np.nan if isinstance(col.dtype, pd.CategoricalDtype) else pd.NA
        df.at[label, column] = value
        return f"{column}: {describe(old)} -> {describe(value)}"

    def set_child(self, child: int, column: str, value: Any) -> str:
        """Set a child-level value (LAchildID is copied to every table's rows of the child)."""
        kids = self.t["children"]
        label = kids.index[kids["child"] == child][0]
        change = self.set("children", label, column, value)
        if column == "LAchildID":
            for name, df in self.t.items():
                if name != "children":
                    df.loc[df["child"] == child, "LAchildID"] = value
        return change

    def edit(self, table: str, row: pd.Series, column: str, value: Any) -> str:
        """Set ``column`` of a chosen row of ``table`` (the child's own value when it is a child-level column).

        A column spelt ``other.column`` is set on the row of table ``other`` whose label the chosen
        row holds as ``other_label`` (its episode's, say).
        """
        if "." in column:
            other, column = column.split(".")
            return self.set(other, int(row[f"{other}_label"]), column, value)
        if column in self.t["children"]:
            return self.set_child(row["child"], column, value)
        return self.set(table, row["label"], column, value)

    def add(self, table: str, **values: Any) -> int:
        """Append a row to ``table`` after its siblings; return its own ordinal."""
        keys = spec.TABLE_KEYS[table]
        df = self.t[table]
        parent = df
        for k in keys[:-1]:
            parent = parent[parent[k] == values[k]]
        own = int(parent[keys[-1]].max()) + 1 if len(parent) else 1
        values[keys[-1]] = own
        kids = self.t["children"]
        values["LAchildID"] = kids.loc[kids["child"] == values["child"], "LAchildID"].iloc[0]
        self.t[table] = append_row(df, {c: values.get(c) for c in df.columns})
        return own

    def drop(self, table: str, mask: pd.Series) -> int:
        """Remove the rows of ``table`` where ``mask``; return how many."""
        n = int(mask.sum())
        self.t[table] = self.t[table][~mask]
        return n

    def edited(self) -> CensusReturn:
        """Return the edited return, its tables sorted by their keys and typed like the reader's."""
        tables = {name: retyped(name, df, self.year) for name, df in self.t.items()}
        return CensusReturn(year=self.year, header=self.header, tables=tables)


def describe(v: Any) -> str:
    """Spell a value as a change description shows it: dates as YYYY-MM-DD, booleans as XML does."""
    if is_missing(v):
        return "(missing)"
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(v).strftime("%Y-%m-%d")
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return str(v)


def retyped(table: str, df: pd.DataFrame, year: str) -> pd.DataFrame:
    """Return edited rows of ``table`` sorted by its keys and typed as :func:`frame` types them.

    A value not in its code set joins the categories, sorted after the valid codes.
    """
    keys = list(spec.TABLE_KEYS[table])
    df = df.sort_values(keys, kind="stable").reset_index(drop=True)
    nodes = {n.column: n for n in spec.value_columns(table)}
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        s, node = df[col], nodes.get(col)
        if node is not None and node.codeset:
            out[col] = categorical(s.astype(object).where(s.notna(), None), node.codeset,
                                   year if year in node.years else None)
        elif col == "kind":
            out[col] = pd.Categorical(s.astype(object), categories=spec.ASSESSMENT_KINDS)
        else:
            out[col] = s.astype("int64" if col in keys else "Int64" if col == "line"
                                else "str" if node is None else column_dtype(node))
    return out


def append_row(df: pd.DataFrame, row: dict[str, Any]) -> pd.DataFrame:
    """Return ``df`` with ``row`` appended, every column keeping its dtype (a new code joins the categories)."""
    df = df.copy()
    cols: dict[str, Any] = {}
    for c in df.columns:
        s, v = df[c], row.get(c)
        missing = is_missing(v)
        if isinstance(s.dtype, pd.CategoricalDtype):
            if not missing and v not in s.cat.categories:
                df[c] = s = s.cat.add_categories([v])
            cols[c] = pd.Categorical([None if missing else v], categories=s.cat.categories)
        elif is_date(s):
            cols[c] = np.array([np.datetime64("NaT") if missing else np.datetime64(pd.Timestamp(v), "s")],
                               dtype=s.dtype)
        else:
            cols[c] = pd.array([None if missing else v], dtype=s.dtype)
    new = pd.DataFrame(cols, index=[df.index.max() + 1 if len(df) else 0])
    return pd.concat([df, new])


def is_missing(v: Any) -> bool:
    """Tell whether a single value is missing (None, NaN, NaT or NA)."""
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def is_date(s: pd.Series) -> bool:
    """Tell whether ``s`` holds dates."""
    return pd.api.types.is_datetime64_any_dtype(s.dtype)
