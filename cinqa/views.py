"""Validation views: one denormalised table per entity, holding everything its rules read.

Rules compare a row with its parents (an assessment with its episode's referral date), with the
census period, and with sibling rows (overlapping episodes). Each view carries those as plain
columns so that most DfE rules become stock Great Expectations checks on a single table:

* locator columns: ``row`` (position in the view), ``child``, ``LAchildID``, ``episode``,
  ``item`` (the entity's own ordinal) and ``line`` (XML line), used to report failures;
* the entity's own XML columns, unchanged;
* parent columns under their XML names (an assessment's ``CINreferralDate``); a parent column
  whose name the entity already uses is prefixed with the parent element (``CINdetails_DateOfInitialCPC``);
* ``census_start`` and ``census_end`` (1 April and 31 March of the census year);
* derived columns named for what they hold (``open_episodes_for_child``,
  ``referral_inside_other_episode``, ``disability_codes_used``).

The derived columns are declared once, with their pandas and Spark forms, in
:mod:`cinqa.viewcols`; :class:`ViewBuilder` builds a return's views from their pandas forms
(:mod:`cinqa.views_spark` from their Spark forms). Every view is built once per validation and
everything is vectorised.
"""

from __future__ import annotations

import re
from functools import cached_property

import numpy as np
import pandas as pd

from cinqa import spec, workdays
from cinqa.returns import VALUE_DTYPES, CensusReturn
from cinqa.viewcols import EPISODE, REAL_DISABILITY, VIEW_COLUMNS, value_column

VIEW_TABLES: dict[str, str | None] = {
    "header": None,
    "children": "children",
    "disabilities": "disabilities",
    "episodes": "episodes",
    "assessments": "assessments",
    "factors": "assessment_factors",
    "cin_plans": "cin_plans",
    "section47": "section47",
    "cp_plans": "cp_plans",
    "reviews": "cp_reviews",
    "pre_proceedings": "pre_proceedings",
    "return": None,
}
"""Each validation view and the return table whose rows it holds (None: one row per return)."""

VIEWS: tuple[str, ...] = tuple(VIEW_TABLES)

LOCATOR: tuple[str, ...] = ("row", "child", "LAchildID", "episode", "item", "line")
"""Columns every view has, in this order, to say where a failing row is."""

# A column another year's return lacks is filled as missing values of its type (text and codes: objects).
_DTYPES = {t: VALUE_DTYPES[t] for t in ("date", "datetime", "bool", "int")}
_UNITS = "WD|D|W|M|Y"
OFFSET_STEP = rf"[+-]\d+(?:{_UNITS})"
"""One step of a date offset as a regular expression: ``-45WD``, ``+9M`` (an offset is one or more)."""
_STEPS = re.compile(rf"([+-]\d+)({_UNITS})")
_OFFSET = re.compile(rf"^(?:{OFFSET_STEP})+$")


def build_views(ret: CensusReturn, year: str | None = None,
                names: tuple[str, ...] | list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Build the validation views of ``ret`` for census ``year`` (default: the return's year).

    ``names`` limits the views built; views that others depend on are built once and shared.
    """
    builder = ViewBuilder(ret, year)
    wanted = VIEWS if names is None else tuple(names)
    unknown = [n for n in wanted if n not in VIEW_TABLES]
    if unknown:
        raise KeyError(f"unknown validation view(s) {unknown}; choose from {', '.join(VIEWS)}")
    return {name: builder.view(name) for name in wanted}


def check_offset(text: str, name: str = "date offset") -> None:
    """Raise ValueError naming ``name`` unless ``text`` is a date offset such as ``-280D``, ``-4Y+5M`` or ``-45WD``."""
    if not _OFFSET.match(text):
        raise ValueError(f"{name} {text!r} is not like '-280D', '+9M', '-4Y+5M' or '-45WD'")


def shift_dates(values: pd.Series | pd.Timestamp, offset: str | None) -> pd.Series | pd.Timestamp:
    """Move dates by ``offset``: signed steps of days (D), weeks (W), months (M), years (Y) or working days (WD).

    Steps apply left to right, so ``-4Y+5M`` from 31 March 2025 is 31 August 2021. A working-day
    step is :func:`cinqa.workdays.add_working_days`.
    """
    if not offset:
        return values
    check_offset(offset)
    scalar = isinstance(values, pd.Timestamp)
    out = pd.Series([values]) if scalar else values
    for amount, unit in _STEPS.findall(offset):
        n = int(amount)
        if unit == "D":
            out = out + pd.Timedelta(days=n)
        elif unit == "W":
            out = out + pd.Timedelta(weeks=n)
        elif unit == "M":
            out = out + pd.DateOffset(months=n)
        elif unit == "Y":
            out = out + pd.DateOffset(years=n)
        else:
            out = workdays.add_working_days(out, n)
    return out.iloc[0] if scalar else out


def census_date(year: str, anchor: str, offset: str | None = None) -> pd.Timestamp:
    """Return census ``year``'s ``"start"`` (1 April) or ``"end"`` (31 March), moved by ``offset``."""
    base = {"start": spec.census_start, "end": spec.reference_date}[anchor](year)
    return shift_dates(base, offset)


def _return_locator() -> dict[str, object]:
    """Return the locator columns of a view with one row per return: in no child, episode, item or line."""
    none = pd.array([pd.NA], dtype="Int64")  # a DataFrame built from a dict copies it per column
    return {"row": [0], "child": none, "LAchildID": pd.array([pd.NA], dtype="str"), "episode": none, "item": none,
            "line": none}


class ViewBuilder:
    """Build the validation views of one return with pandas, each at most once.

    A view's columns are its table's, then those :data:`cinqa.viewcols.VIEW_COLUMNS` declares, by their pandas forms.
    """

    def __init__(self, ret: CensusReturn, year: str | None = None) -> None:
        self.ret = ret
        self.year = year or ret.year
        self.start = spec.census_start(self.year)
        self.end = spec.reference_date(self.year)
        self._views: dict[str, pd.DataFrame] = {}
        self._fact_frames: dict[tuple[str, str], pd.DataFrame] = {}
        self._indexes: dict[tuple[str, tuple[str, ...]], pd.Index] = {}

    def view(self, name: str) -> pd.DataFrame:
        """Return view ``name``, building it on first use."""
        if name not in self._views:
            if name not in VIEW_TABLES:
                raise KeyError(f"unknown validation view {name!r}; choose from {', '.join(VIEWS)}")
            self._views[name] = self._build(name)
        return self._views[name]

    def _build(self, name: str) -> pd.DataFrame:
        table = VIEW_TABLES[name]
        columns = VIEW_COLUMNS[name]
        df = pd.DataFrame(_return_locator()) if table is None else self._with_locator(table, self._table(table).copy())
        for column in columns:
            df[column.name] = column.pandas(self, table, df)
        return self._census(df.drop(columns=[c.name for c in columns if c.name.startswith("_")]))

    # -- what the columns read --------------------------------------------------------------

    def _table(self, name: str) -> pd.DataFrame:
        return self.ret.tables[name]

    def _facts(self, source: str, table: str) -> pd.DataFrame:
        """Return the ``source`` row (:class:`Fact`) of each row of ``table``, in its row order."""
        if (source, table) not in self._fact_frames:
            if source == "child":
                got = self._child_dates.reindex(self._keys(table, ("child",)))
            else:
                parent = "episodes" if source == "episode" else spec.table_parent(table)
                keys = spec.TABLE_KEYS[parent]
                facts = self._episode_facts if source == "episode" else self._table(parent).set_index(list(keys))
                got = facts.reindex(self._keys(table, keys))
            self._fact_frames[(source, table)] = got.reset_index(drop=True)
        return self._fact_frames[(source, table)]

    @cached_property
    def _child_dates(self) -> pd.DataFrame:
        """Each child's facts (:class:`Fact`), indexed by ``child``."""
        c = self._table("children")
        out = pd.DataFrame(index=pd.Index(c["child"].to_numpy(), name="child"))
        for col in ("PersonBirthDate", "ExpectedPersonBirthDate", "PersonDeathDate"):
            out[col] = value_column(c, col, "datetime64[s]").to_numpy()
        d = self._table("disabilities")
        out["has_disability"] = out.index.isin(d.loc[REAL_DISABILITY.pandas(d, self), "child"].to_numpy())
        return out

    @cached_property
    def _episode_facts(self) -> pd.DataFrame:
        """Each episode's facts (:class:`Fact`), indexed by child and episode."""
        e = self._table("episodes")
        return pd.DataFrame({
            "CINreferralDate": value_column(e, "CINreferralDate", "datetime64[s]").to_numpy(),
            "CINclosureDate": value_column(e, "CINclosureDate", "datetime64[s]").to_numpy(),
            "ReasonForClosure": value_column(e, "ReasonForClosure", "object").to_numpy(),
            "ReferralNFA": value_column(e, "ReferralNFA", "boolean").array,
            "CINdetails_DateOfInitialCPC": value_column(e, "DateOfInitialCPC", "datetime64[s]").to_numpy(),
        }, index=pd.MultiIndex.from_arrays([e[k].to_numpy(dtype="int64") for k in EPISODE], names=list(EPISODE)))

    def _lookup(self, counts: pd.Series, table: str, keys: tuple[str, ...]) -> np.ndarray:
        """Return ``counts`` (indexed by ``keys``) for each row of ``table``: 0 where a key has no rows."""
        return counts.reindex(self._keys(table, keys)).fillna(0).to_numpy(dtype="int64")

    def _keys(self, table: str, keys: tuple[str, ...]) -> pd.Index:
        """Return the ``keys`` of each row of ``table`` as an index, built once per table and keys."""
        if (table, keys) not in self._indexes:
            t = self._table(table)
            self._indexes[(table, keys)] = pd.Index(t[keys[0]].to_numpy(dtype="int64")) if len(keys) == 1 else \
                pd.MultiIndex.from_arrays([t[k].to_numpy(dtype="int64") for k in keys])
        return self._indexes[(table, keys)]

    def _with_locator(self, table: str, df: pd.DataFrame) -> pd.DataFrame:
        """Put the locator columns first; ``item`` is the table's own ordinal."""
        keys = spec.TABLE_KEYS[table]
        df = df.reset_index(drop=True)
        episode = df["episode"] if "episode" in df else pd.Series(pd.NA, index=df.index)
        loc = pd.DataFrame({
            "row": np.arange(len(df), dtype="int64"),
            "child": df["child"].astype("Int64"),
            "LAchildID": df["LAchildID"],
            "episode": episode.astype("Int64"),
            "item": df[keys[-1]].astype("Int64"),
            "line": df["line"].astype("Int64"),
        })
        # The own ordinal lives on as ``item``; keeping it too would put ``disability`` beside
        # ``Disability``, and GX matches column names regardless of case.
        own = keys[-1] if keys[-1] not in ("child", "episode") else None
        rest = df.drop(columns=[c for c in ("child", "LAchildID", "episode", "line", own) if c and c in df])
        # A return read as one year and checked as another lacks some of the year's elements:
        # they are missing values, not missing columns.
        for node in spec.value_columns(table):
            if (node.column not in rest and node.column not in loc
                    and self.year in spec.column_years(table, node.column)):
                rest[node.column] = value_column(rest, node.column, _DTYPES.get(node.type, "object"))
        return pd.concat([loc, rest], axis=1)

    def _census(self, df: pd.DataFrame) -> pd.DataFrame:
        df["census_start"] = np.full(len(df), np.datetime64(self.start, "s"))
        df["census_end"] = np.full(len(df), np.datetime64(self.end, "s"))
        return df
