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

Every view is built once per validation and everything is vectorised.
"""

from __future__ import annotations

import re
from functools import cached_property

import numpy as np
import pandas as pd

from cinqa import spec, workdays
from cinqa.returns import VALUE_DTYPES, CensusReturn

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

# 8565: the dates of an episode's activity that its closure date may not precede (the episode's
# own initial conference included); 8831: those that a referral with no further action cannot have.
_ACTIVITY_DATES = (("assessments", "AssessmentActualStartDate"), ("assessments", "AssessmentAuthorisationDate"),
                   ("section47", "S47ActualStartDate"), ("section47", "DateOfInitialCPC"),
                   ("episodes", "DateOfInitialCPC"), ("cp_plans", "CPPendDate"),
                   ("cin_plans", "CINPlanStartDate"), ("cin_plans", "CINPlanEndDate"))
_NFA_ACTIVITY_DATES = _ACTIVITY_DATES[:5]
# The episode's columns that the rules of most of its modules read.
_EPISODE_FACTS = ("CINreferralDate", "CINclosureDate", "ReasonForClosure", "ReferralNFA")

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
    """Build the validation views of one return, each at most once."""

    def __init__(self, ret: CensusReturn, year: str | None = None) -> None:
        self.ret = ret
        self.year = year or ret.year
        self.start = spec.census_start(self.year)
        self.end = spec.reference_date(self.year)

    def view(self, name: str) -> pd.DataFrame:
        """Return view ``name``, building it on first use."""
        return getattr(self, "_v_" + name)

    # -- shared facts ---------------------------------------------------------------------

    def _table(self, name: str) -> pd.DataFrame:
        return self.ret.tables[name]

    @cached_property
    def _child_dates(self) -> pd.DataFrame:
        """Each child's birth, expected birth and death dates, indexed by ``child``."""
        c = self._table("children")
        out = pd.DataFrame(index=pd.Index(c["child"].to_numpy(), name="child"))
        for col in ("PersonBirthDate", "ExpectedPersonBirthDate", "PersonDeathDate"):
            out[col] = _col(c, col, "datetime64[s]").to_numpy()
        d = self._table("disabilities")
        disabled = d.loc[_col(d, "Disability", "object").ne("NONE") & _col(d, "Disability", "object").notna(), "child"]
        out["has_disability"] = out.index.isin(disabled.to_numpy())
        return out

    @cached_property
    def _episode_facts(self) -> pd.DataFrame:
        """Each episode's dates and flags that its modules' rules read, keyed by child and episode."""
        e = self._table("episodes")
        out = pd.DataFrame({
            "child": e["child"].to_numpy(),
            "episode": e["episode"].to_numpy(),
            "CINreferralDate": _col(e, "CINreferralDate", "datetime64[s]").to_numpy(),
            "CINclosureDate": _col(e, "CINclosureDate", "datetime64[s]").to_numpy(),
            "ReasonForClosure": _col(e, "ReasonForClosure", "object").to_numpy(),
            "ReferralNFA": _col(e, "ReferralNFA", "boolean").array,
            "CINdetails_DateOfInitialCPC": _col(e, "DateOfInitialCPC", "datetime64[s]").to_numpy(),
        })
        return out

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
                rest[node.column] = _col(rest, node.column, _DTYPES.get(node.type, "object"))
        return pd.concat([loc, rest], axis=1)

    def _entity_view(self, table: str, *, parent_dates: tuple[str, ...] = (), episode_facts: tuple[str, ...] = (),
                     child_dates: tuple[str, ...] = ()) -> pd.DataFrame:
        """Start the view of ``table``: the locator, its rows, then its parent's, episode's and child's columns."""
        df = self._with_locator(table, self._table(table).copy())
        if parent_dates:
            self._add_parent_dates(df, spec.table_parent(table), parent_dates)
        if episode_facts:
            self._add_episode_facts(df, episode_facts)
        if child_dates:
            self._add_child_dates(df, child_dates)
        return df

    def _census(self, df: pd.DataFrame) -> pd.DataFrame:
        df["census_start"] = np.full(len(df), np.datetime64(self.start, "s"))
        df["census_end"] = np.full(len(df), np.datetime64(self.end, "s"))
        return df

    def _add_child_dates(self, df: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
        facts = self._child_dates.reindex(df["child"].to_numpy())
        for col in cols:
            df[col] = facts[col].to_numpy()
        return df

    def _add_episode_facts(self, df: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
        facts = self._episode_facts.set_index(["child", "episode"])
        idx = pd.MultiIndex.from_arrays([df["child"].to_numpy(dtype="int64"), df["episode"].to_numpy(dtype="int64")])
        got = facts.reindex(idx)
        for col in cols:
            df[col] = got[col].array
        return df

    # -- counts shared between views ------------------------------------------------------

    def _add_parent_dates(self, df: pd.DataFrame, parent: str, cols: tuple[str, ...]) -> None:
        """Copy date columns of each row's parent (an assessment of a factor) onto ``df``."""
        keys = spec.TABLE_KEYS[parent]
        got = self._table(parent).set_index(list(keys)).reindex(
            pd.MultiIndex.from_arrays([df[k].to_numpy(dtype="int64") for k in keys]))
        for col in cols:
            df[col] = (got[col] if col in got else pd.Series(pd.NaT, index=got.index)).to_numpy(dtype="datetime64[s]")

    def _count(self, table: str, keys: tuple[str, ...], mask: pd.Series | None = None) -> pd.Series:
        """Count the rows of ``table`` (where ``mask``) per ``keys``."""
        t = self._table(table)
        if mask is not None:
            t = t.loc[mask.to_numpy(dtype=bool)]
        return t.groupby(list(keys), sort=False).size()

    def _lookup(self, counts: pd.Series, df: pd.DataFrame, keys: tuple[str, ...]) -> np.ndarray:
        """Return ``counts`` for each row of ``df`` (0 where a key has no rows)."""
        if len(keys) == 1:
            idx = pd.Index(df[keys[0]].to_numpy(dtype="int64"))
        else:
            idx = pd.MultiIndex.from_arrays([df[k].to_numpy(dtype="int64") for k in keys])
        return counts.reindex(idx).fillna(0).to_numpy(dtype="int64")

    @cached_property
    def _open_s47_mask(self) -> pd.Series:
        """Section 47 enquiries with no initial conference date and ICPCnotRequired not true."""
        s = self._table("section47")
        not_required = _col(s, "ICPCnotRequired", "boolean").eq(True).fillna(False)
        return _col(s, "DateOfInitialCPC", "datetime64[s]").isna() & ~not_required

    def _dates_per_episode(self, sources: tuple[tuple[str, str], ...]) -> pd.DataFrame:
        """Stack the present dates of ``(table, column)`` pairs as one long ``child, episode, day`` frame."""
        parts = []
        for table, col in sources:
            t = self._table(table)
            parts.append(pd.DataFrame({"child": t["child"].to_numpy(dtype="int64"),
                                       "episode": t["episode"].to_numpy(dtype="int64"),
                                       "day": _col(t, col, "datetime64[s]").to_numpy(dtype="datetime64[s]")}))
        out = pd.concat(parts, ignore_index=True)
        return out.loc[out["day"].notna().to_numpy()]

    @cached_property
    def _open_episode_mask(self) -> pd.Series:
        """Episodes with no closure date that are not referrals with no further action."""
        e = self._table("episodes")
        return _col(e, "CINclosureDate", "datetime64[s]").isna() & _col(e, "ReferralNFA", "boolean").eq(False).fillna(False)

    # -- the views ------------------------------------------------------------------------

    @cached_property
    def _v_header(self) -> pd.DataFrame:
        h = self.ret.header
        df = pd.DataFrame({
            **_return_locator(),
            "Collection": [h.collection],
            "Year": pd.array([h.year], dtype="Int64"),
            "ReferenceDate": pd.Series([h.reference_date], dtype="datetime64[s]"),
            "LEA": [h.la],
            "SourceLevel": [h.source_level],
            "census_year_end": pd.array([spec.end_year(self.year)], dtype="Int64"),
            # 31 March of the header's <Year> when the return is checked as another year (rule 100).
            "Year_end": pd.Series([np.datetime64(f"{h.year:04d}-03-31", "s") if h.year is not None
                                   and h.year != spec.end_year(self.year) else np.datetime64("NaT", "s")],
                                  dtype="datetime64[s]"),
        })
        return self._census(df)

    @cached_property
    def _v_children(self) -> pd.DataFrame:
        c = self._table("children")
        df = self._with_locator("children", c.copy())
        keys = ("child",)
        df["episodes_for_child"] = self._lookup(self._count("episodes", keys), df, keys)
        df["open_episodes_for_child"] = self._lookup(self._count("episodes", keys, self._open_episode_mask), df, keys)
        e = self._table("episodes")
        nfa = _col(e, "ReferralNFA", "boolean")
        further = self._count("episodes", keys, nfa.eq(False).fillna(False))
        not_nfa = self._count("episodes", keys, ~nfa.eq(True).fillna(False))
        df["has_further_action_episode"] = self._lookup(further, df, keys) > 0
        df["all_episodes_nfa"] = self._lookup(not_nfa, df, keys) == 0
        df["disabilities_for_child"] = self._lookup(self._count("disabilities", keys), df, keys)
        df["has_disability"] = self._child_dates["has_disability"].reindex(df["child"].to_numpy(dtype="int64")).to_numpy()
        df["birth_dates_given"] = (_col(c, "PersonBirthDate", "datetime64[s]").notna().to_numpy(dtype="int64")
                                   + _col(c, "ExpectedPersonBirthDate", "datetime64[s]").notna().to_numpy(dtype="int64"))
        upn = _col(c, "UPN", "str")
        df["UPN_la_code"] = upn.str.slice(1, 4).to_numpy()
        # The last day on which one of the child's episodes was open: its closure date, or the
        # census end for an episode with none (and never later than the census end).
        ends = _col(e, "CINclosureDate", "datetime64[s]").fillna(self.end).clip(upper=self.end)
        last = ends.groupby(e["child"].to_numpy()).max()
        df["last_episode_day"] = last.reindex(df["child"].to_numpy(dtype="int64")).to_numpy(dtype="datetime64[s]")
        return self._census(df)

    @cached_property
    def _v_disabilities(self) -> pd.DataFrame:
        d = self._table("disabilities")
        df = self._with_locator("disabilities", d.copy())
        code = _col(d, "Disability", "object")
        distinct = d.assign(_code=code).groupby("child", sort=False)["_code"].nunique()
        df["distinct_disabilities_for_child"] = self._lookup(distinct, df, ("child",))
        df["disabilities_for_child"] = self._lookup(self._count("disabilities", ("child",)), df, ("child",))
        self._add_child_dates(df, ("PersonBirthDate",))
        return self._census(df)

    @cached_property
    def _v_episodes(self) -> pd.DataFrame:
        e = self._table("episodes")
        df = self._entity_view("episodes",
                               child_dates=("PersonBirthDate", "ExpectedPersonBirthDate", "PersonDeathDate"))
        df["birth_or_expected_birth_date"] = df["PersonBirthDate"].fillna(df["ExpectedPersonBirthDate"])
        child = ("child",)
        ep = ("child", "episode")
        df["episodes_for_child"] = self._lookup(self._count("episodes", child), df, child)
        df["open_episodes_for_child"] = self._lookup(self._count("episodes", child, self._open_episode_mask), df, child)
        referral = _col(e, "CINreferralDate", "datetime64[s]")
        latest = referral.groupby(e["child"].to_numpy()).transform("max")
        df["is_latest_referral"] = (referral.eq(latest) & referral.notna()).to_numpy(dtype=bool)
        # An episode's own range: referral to closure (the closure day itself free for the next
        # referral), or to the census end when open and not a referral with no further action.
        closure = _col(e, "CINclosureDate", "datetime64[s]")
        hi = closure.where(closure.notna(), pd.Timestamp(self.end).as_unit("s") + pd.Timedelta(days=1))
        hi = hi.where(closure.notna() | self._open_episode_mask, pd.NaT)
        df["referral_inside_other_episode"] = starts_inside(
            e, e, by=("child",), start="CINreferralDate", lo=referral, hi=hi, same_rows=True, include_hi=False)
        for table, col in (("assessments", "assessments_in_episode"), ("section47", "s47_in_episode"),
                           ("cp_plans", "cpps_in_episode"), ("cin_plans", "cin_plans_in_episode")):
            df[col] = self._lookup(self._count(table, ep), df, ep)
        # 2012-13 initial and core assessments are rows of ``assessments`` too, so they count here.
        auth = _col(self._table("assessments"), "AssessmentAuthorisationDate", "datetime64[s]")
        df["open_assessments_in_episode"] = self._lookup(self._count("assessments", ep, auth.isna()), df, ep)
        df["open_s47_in_episode"] = self._lookup(self._count("section47", ep, self._open_s47_mask), df, ep)
        # 2990: the modules a case closed after assessment (RC8/RC9) cannot have.
        df["s47_cpp_plan_or_icpc_in_episode"] = (
            df["s47_in_episode"] + df["cpps_in_episode"] + df["cin_plans_in_episode"]
            + _col(e, "DateOfInitialCPC", "datetime64[s]").notna().to_numpy(dtype="int64"))
        nfa_dates = self._dates_per_episode(_NFA_ACTIVITY_DATES)
        df["assessment_or_s47_dates_in_episode"] = self._lookup(
            nfa_dates.groupby(["child", "episode"], sort=False).size(), df, ep)
        latest = self._dates_per_episode(_ACTIVITY_DATES).groupby(["child", "episode"], sort=False)["day"].max()
        idx = pd.MultiIndex.from_arrays([df[k].to_numpy(dtype="int64") for k in ep])
        df["latest_activity_date"] = latest.reindex(idx).to_numpy(dtype="datetime64[s]")
        return self._census(df)

    @cached_property
    def _v_assessments(self) -> pd.DataFrame:
        a = self._table("assessments")
        df = self._entity_view("assessments", episode_facts=_EPISODE_FACTS,
                               child_dates=("PersonBirthDate", "PersonDeathDate", "has_disability"))
        ep = ("child", "episode")
        own = ("child", "episode", "assessment")
        start = _col(a, "AssessmentActualStartDate", "datetime64[s]")
        auth = _col(a, "AssessmentAuthorisationDate", "datetime64[s]")
        df["assessments_in_episode"] = self._lookup(self._count("assessments", ep), df, ep)
        df["open_assessments_in_episode"] = self._lookup(self._count("assessments", ep, auth.isna()), df, ep)
        df["starts_inside_other_assessment"] = starts_inside(
            a, a, by=ep, start="AssessmentActualStartDate", lo=start, hi=auth.fillna(self.end),
            same_rows=True, include_hi=True)
        f = self._table("assessment_factors")
        codes = _col(f, "AssessmentFactors", "object")
        valid = codes.isin(spec.codes("assessment_factor", self.year))
        # The view's rows are the table's rows in order, so the table supplies the own key.
        df["factors_for_assessment"] = self._lookup(self._count("assessment_factors", own), a, own)
        df["valid_factors_for_assessment"] = self._lookup(self._count("assessment_factors", own, valid), a, own)
        joined = _joined_codes(f, own, codes)
        idx = pd.MultiIndex.from_arrays([a[k].to_numpy(dtype="int64") for k in own])
        df["factor_codes"] = joined.reindex(idx).to_numpy(dtype=object) if len(joined) else np.full(len(df), None)
        # 8897Q: at least one factor, and every factor a code of the year.
        df["factors_present_and_valid"] = (df["factors_for_assessment"].gt(0)
                                           & df["valid_factors_for_assessment"].eq(df["factors_for_assessment"]))
        disability_factor = self._count("assessment_factors", own, codes.isin(["5A", "6A"]))
        df["has_disability_factor"] = self._lookup(disability_factor, a, own) > 0
        # 2012-13: a core assessment is measured against the initial assessment of its episode.
        kind = _col(a, "kind", "object")
        initial = pd.Series(start.where(kind.eq("initial").fillna(False)).to_numpy(dtype="datetime64[s]"))
        first = initial.groupby([a["child"].to_numpy(dtype="int64"), a["episode"].to_numpy(dtype="int64")]).min()
        df["initial_assessment_start"] = (first.reindex(pd.MultiIndex.from_arrays(
            [a[k].to_numpy(dtype="int64") for k in ep])).to_numpy(dtype="datetime64[s]")
            if len(first) else np.full(len(df), np.datetime64("NaT"), dtype="datetime64[s]"))
        return self._census(df)

    @cached_property
    def _v_factors(self) -> pd.DataFrame:
        df = self._entity_view("assessment_factors",
                               parent_dates=("AssessmentActualStartDate", "AssessmentAuthorisationDate"),
                               episode_facts=("CINclosureDate", "ReasonForClosure", "ReferralNFA"))
        own = ("child", "episode", "assessment")
        df["factors_for_assessment"] = self._lookup(self._count("assessment_factors", own), df, own)
        df["assessments_in_episode"] = self._lookup(self._count("assessments", ("child", "episode")), df, ("child", "episode"))
        return self._census(df)

    @cached_property
    def _v_section47(self) -> pd.DataFrame:
        s = self._table("section47")
        df = self._entity_view("section47", episode_facts=(*_EPISODE_FACTS, "CINdetails_DateOfInitialCPC"),
                               child_dates=("PersonDeathDate",))
        ep = ("child", "episode")
        start = _col(s, "S47ActualStartDate", "datetime64[s]")
        icpc = _col(s, "DateOfInitialCPC", "datetime64[s]")
        is_open = self._open_s47_mask
        df["open_s47_in_episode"] = self._lookup(self._count("section47", ep, is_open), df, ep)
        hi = icpc.where(icpc.notna(), pd.Timestamp(self.end).as_unit("s")).where(icpc.notna() | is_open, pd.NaT)
        df["starts_inside_other_s47"] = starts_inside(
            s, s, by=ep, start="S47ActualStartDate", lo=start, hi=hi, same_rows=True, include_hi=True)
        df["assessments_in_episode"] = self._lookup(self._count("assessments", ep), df, ep)
        return self._census(df)

    @cached_property
    def _v_cp_plans(self) -> pd.DataFrame:
        p = self._table("cp_plans")
        df = self._entity_view("cp_plans", episode_facts=(*_EPISODE_FACTS, "CINdetails_DateOfInitialCPC"),
                               child_dates=("PersonDeathDate",))
        start = _col(p, "CPPstartDate", "datetime64[s]")
        end = _col(p, "CPPendDate", "datetime64[s]")
        child, ep = ("child",), ("child", "episode")
        df["open_cpps_for_child"] = self._lookup(self._count("cp_plans", child, end.isna()), df, child)
        df["open_cpps_in_episode"] = self._lookup(self._count("cp_plans", ep, end.isna()), df, ep)
        df["starts_inside_other_cpp"] = starts_inside(
            p, p, by=child, start="CPPstartDate", lo=start, hi=end.fillna(self.end), same_rows=True, include_hi=True)
        plans = self._table("cin_plans")
        plan_end = _col(plans, "CINPlanEndDate", "datetime64[s]")
        df["starts_inside_cin_plan"] = starts_inside(
            p, plans, by=child, start="CPPstartDate", lo=_col(plans, "CINPlanStartDate", "datetime64[s]"),
            hi=plan_end.fillna(self.end), same_rows=False, include_hi=True, except_equal_to=plan_end)
        # 2885: a plan starts on the day of an initial conference of its episode, recorded on a
        # Section 47 or on the episode itself.
        s47 = self._table("section47")
        icpcs = pd.concat([
            pd.DataFrame({"child": s47["child"].to_numpy(dtype="int64"), "episode": s47["episode"].to_numpy(dtype="int64"),
                          "day": _col(s47, "DateOfInitialCPC", "datetime64[s]").to_numpy()}),
            self._episode_facts[["child", "episode", "CINdetails_DateOfInitialCPC"]]
            .rename(columns={"CINdetails_DateOfInitialCPC": "day"}),
        ]).dropna(subset=["day"])
        keyed = pd.DataFrame({"child": p["child"].to_numpy(dtype="int64"), "episode": p["episode"].to_numpy(dtype="int64"),
                              "day": start.to_numpy(dtype="datetime64[s]"), "_r": np.arange(len(p))})
        hits = keyed.merge(icpcs.drop_duplicates(), on=["child", "episode", "day"], how="inner")["_r"].to_numpy()
        df["starts_on_an_icpc_date"] = np.isin(np.arange(len(p)), hits)
        df["reviews_for_cpp"] = self._lookup(self._count("cp_reviews", ("child", "episode", "cpp")), p,
                                             ("child", "episode", "cpp"))
        df["previous_cpps_recorded"] = _col(p, "NumberOfPreviousCPP", "Int64").ge(0).fillna(False).to_numpy(dtype=bool)
        df["reviews_without_date"] = self._reviews_without_date(p)
        return self._census(df)

    def _reviews_without_date(self, p: pd.DataFrame) -> np.ndarray:
        """Count each plan's review records with no valid date (8842Q).

        A review whose date is not a date is a row with a missing ``CPPreviewDate``; an empty
        ``<CPPreviewDate/>`` or a ``<Reviews>`` holding none has no row and is only in the
        return's structural issues, which give a child and a line: such an issue belongs to the
        child's last plan that starts on or before its line.
        """
        own = ("child", "episode", "cpp")
        r = self._table("cp_reviews")
        counts = self._count("cp_reviews", own, _col(r, "CPPreviewDate", "datetime64[s]").isna())
        out = self._lookup(counts, p, own)
        issues = self.ret.issues
        if not len(p):
            return out
        dateless = dateless_reviews(issues)
        if not dateless.any():
            return out
        found = pd.DataFrame({"child": issues.loc[dateless, "child"].to_numpy(dtype="int64"),
                              "line": issues.loc[dateless, "line"].to_numpy(dtype="int64")}).sort_values("line")
        located = p["line"].notna().to_numpy()
        plans = pd.DataFrame({"child": p["child"].to_numpy(dtype="int64")[located],
                              "line": p["line"].to_numpy()[located].astype("int64"),
                              "_r": np.arange(len(p))[located]}).sort_values("line")
        hit = pd.merge_asof(found, plans, on="line", by="child", direction="backward")["_r"].dropna()
        return out + np.bincount(hit.to_numpy(dtype="int64"), minlength=len(p))

    @cached_property
    def _v_cin_plans(self) -> pd.DataFrame:
        c = self._table("cin_plans")
        df = self._entity_view("cin_plans", episode_facts=_EPISODE_FACTS, child_dates=("PersonDeathDate",))
        start = _col(c, "CINPlanStartDate", "datetime64[s]")
        end = _col(c, "CINPlanEndDate", "datetime64[s]")
        child, ep = ("child",), ("child", "episode")
        df["open_cin_plans_for_child"] = self._lookup(self._count("cin_plans", child, end.isna()), df, child)
        df["starts_inside_other_cin_plan"] = starts_inside(
            c, c, by=child, start="CINPlanStartDate", lo=start, hi=end.fillna(self.end), same_rows=True,
            include_hi=True)
        p = self._table("cp_plans")
        cpp_end = _col(p, "CPPendDate", "datetime64[s]")
        df["starts_inside_cpp"] = starts_inside(
            c, p, by=child, start="CINPlanStartDate", lo=_col(p, "CPPstartDate", "datetime64[s]"),
            hi=cpp_end.fillna(self.end), same_rows=False, include_hi=True, except_equal_to=cpp_end)
        df["open_cpps_in_episode"] = self._lookup(self._count("cp_plans", ep, cpp_end.isna()), df, ep)
        # 4017 on the CIN plan: a protection plan of the child starts inside this plan's range,
        # unless it starts on the plan's own end date.
        df["holds_cpp_start"] = starts_inside(
            p, c, by=child, start="CPPstartDate", lo=start, hi=end.fillna(self.end), same_rows=False,
            include_hi=True, except_equal_to=end, mark="right")
        return self._census(df)

    @cached_property
    def _v_reviews(self) -> pd.DataFrame:
        r = self._table("cp_reviews")
        df = self._entity_view("cp_reviews", parent_dates=("CPPstartDate", "CPPendDate"),
                               episode_facts=("CINreferralDate", "CINclosureDate", "ReferralNFA"))
        plans = self._table("cin_plans")
        # 4003: on or between a CIN plan's start and end dates (through the census end if it is
        # open) in the same episode; a review on its own protection plan's end date is allowed,
        # which is what makes the step-down review (plan ends, CIN plan starts that day) pass.
        inside = starts_inside(
            r, plans, by=("child", "episode"), start="CPPreviewDate",
            lo=_col(plans, "CINPlanStartDate", "datetime64[s]"),
            hi=_col(plans, "CINPlanEndDate", "datetime64[s]").fillna(self.end), same_rows=False, include_hi=True)
        review = _col(r, "CPPreviewDate", "datetime64[s]").to_numpy()
        df["during_cin_plan"] = inside & ~(review == df["CPPendDate"].to_numpy(dtype="datetime64[s]"))
        return self._census(df)

    @cached_property
    def _v_pre_proceedings(self) -> pd.DataFrame:
        # No parent columns: module 5's rules (2026-27) read only its own dates and the census period.
        return self._census(self._with_locator("pre_proceedings", self._table("pre_proceedings").copy()))

    @cached_property
    def _v_return(self) -> pd.DataFrame:
        c = self._table("children")
        d = self._table("disabilities")
        n = len(c)
        if "Sex" in c:
            no_gender = _col(c, "Sex", "object").isin(["U"]) | _col(c, "Sex", "object").isna()
        else:
            no_gender = _col(c, "GenderCurrent", "object").isin(["0"]) | _col(c, "GenderCurrent", "object").isna()
        born_no_gender = no_gender & _col(c, "ExpectedPersonBirthDate", "datetime64[s]").isna()
        code = _col(d, "Disability", "object")
        real = d.loc[code.ne("NONE").fillna(False) & code.notna()]
        per_child = real.groupby("child").size()
        start, end = self.start, self.end
        cpp_start = _col(self._table("cp_plans"), "CPPstartDate", "datetime64[s]")
        icpc_s47 = _col(self._table("section47"), "DateOfInitialCPC", "datetime64[s]")
        icpc_ep = _col(self._table("episodes"), "DateOfInitialCPC", "datetime64[s]")
        pp = self._table("pre_proceedings")
        pp_started = pp.loc[_col(pp, "PPStartDate", "datetime64[s]").notna().to_numpy(), "child"]

        def in_census(s: pd.Series) -> int:
            return int(s.between(start, end).sum())

        df = pd.DataFrame({
            **_return_locator(),
            "children": [n],
            "children_with_no_gender_recorded": [int(born_no_gender.sum())],
            "share_with_no_gender_recorded": [float(born_no_gender.sum()) / n if n else np.nan],
            "disability_codes_used": [int(real["Disability"].astype("object").nunique()) if len(real) else 0],
            "children_with_several_disabilities": [int((per_child > 1).sum())],
            "cpp_starts_in_census": [in_census(cpp_start)],
            "icpcs_in_census": [in_census(icpc_s47) + in_census(icpc_ep)],
            "children_with_pre_proceedings": [int(pp["child"].nunique())],
            "children_with_pp_start_date": [int(pp_started.nunique())],
        })
        return self._census(df)


def dateless_reviews(issues: pd.DataFrame) -> pd.Series:
    """Tell which structural issues are a protection plan review with no date, located by child and line (8842Q)."""
    if not len(issues) or not {"element", "problem", "child", "line"} <= set(issues.columns):
        return pd.Series(False, index=issues.index, dtype=bool)
    element = issues["element"].astype("object")
    problem = issues["problem"].astype("str")
    dateless = ((element.eq("CPPreviewDate") & problem.str.endswith("is empty"))
                | (element.eq("Reviews") & problem.str.contains("holds no", regex=False)))
    return dateless & issues["child"].notna() & issues["line"].notna()


def starts_inside(left: pd.DataFrame, right: pd.DataFrame, *, by: tuple[str, ...], start: str,
                  lo: pd.Series, hi: pd.Series, same_rows: bool, include_hi: bool,
                  except_equal_to: pd.Series | None = None, include_lo: bool = True,
                  mark: str = "left") -> np.ndarray:
    """Tell for each row of ``left`` whether its ``start`` date falls inside a range of ``right``.

    Ranges run from ``lo`` (inclusive unless not ``include_lo``) to ``hi`` (inclusive if ``include_hi``), both aligned with
    ``right``'s rows; a range with a missing bound is no range. Rows are compared only within the
    same ``by`` keys (a child, an episode). With ``same_rows`` the two frames are the same table and
    a row is not compared with itself. ``except_equal_to`` (aligned with ``right``) exempts a start
    on that date (a CIN plan may start the day a protection plan ends). With ``mark="right"`` the
    answer is for each row of ``right`` instead: whether its range holds the start of a ``left`` row.
    """
    n = len(left)
    out = np.zeros(n if mark == "left" else len(right), dtype=bool)
    starts = pd.to_datetime(left[start]) if start in left else pd.Series(pd.NaT, index=left.index)
    if n == 0 or len(right) == 0:
        return out
    lk = pd.DataFrame({k: left[k].to_numpy(dtype="int64") for k in by})
    lk["_l"] = np.arange(n)
    lk["_s"] = starts.to_numpy(dtype="datetime64[s]")
    lk = lk[lk["_s"].notna()]
    rk = pd.DataFrame({k: right[k].to_numpy(dtype="int64") for k in by})
    rk["_r"] = np.arange(len(right))
    rk["_lo"] = pd.to_datetime(lo).to_numpy(dtype="datetime64[s]")
    rk["_hi"] = pd.to_datetime(hi).to_numpy(dtype="datetime64[s]")
    if except_equal_to is not None:
        rk["_x"] = pd.to_datetime(except_equal_to).to_numpy(dtype="datetime64[s]")
    rk = rk[rk["_lo"].notna() & rk["_hi"].notna()]
    # Only keys with rows on both sides can overlap; keep the pairwise merge small.
    pairs = lk.merge(rk, on=list(by), how="inner")
    if same_rows:
        pairs = pairs[pairs["_l"] != pairs["_r"]]
    above = (pairs["_lo"] <= pairs["_s"]) if include_lo else (pairs["_lo"] < pairs["_s"])
    inside = above & ((pairs["_s"] <= pairs["_hi"]) if include_hi else (pairs["_s"] < pairs["_hi"]))
    if except_equal_to is not None:
        inside &= ~(pairs["_s"] == pairs["_x"])
    out[pairs.loc[inside, "_l" if mark == "left" else "_r"].to_numpy(dtype="int64")] = True
    return out


def _joined_codes(table: pd.DataFrame, keys: tuple[str, ...], codes: pd.Series) -> pd.Series:
    """Join each key's codes, sorted, with commas ("16A,3B"), indexed by ``keys``.

    A per-group ``agg(",".join)`` runs Python once per group (seconds at 200k assessments);
    sorting once and concatenating each run of rows with ``np.add.reduceat`` does not.
    """
    ordered = table.assign(_code=codes.astype("str")).sort_values([*keys, "_code"], kind="stable")
    ordered = ordered.loc[ordered["_code"].notna().to_numpy()]
    if not len(ordered):
        return pd.Series([], dtype=object)
    k = np.column_stack([ordered[c].to_numpy(dtype="int64") for c in keys])
    starts = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]).any(axis=1)])
    text = np.add.reduceat(ordered["_code"].to_numpy(dtype=object) + ",", starts)
    index = pd.MultiIndex.from_arrays([k[starts, i] for i in range(len(keys))], names=list(keys))
    return pd.Series([t[:-1] for t in text], index=index, dtype=object)


def _col(df: pd.DataFrame, name: str, dtype: str) -> pd.Series:
    """Return column ``name`` as plain values, or an all-missing column if the year lacks it."""
    if name not in df:
        if dtype == "boolean":
            return pd.Series(pd.array([pd.NA] * len(df), dtype="boolean"), index=df.index)
        if dtype == "datetime64[s]":
            return pd.Series(np.full(len(df), np.datetime64("NaT"), dtype="datetime64[s]"), index=df.index)
        if dtype == "Int64":
            return pd.Series(pd.array([pd.NA] * len(df), dtype="Int64"), index=df.index)
        return pd.Series([None] * len(df), index=df.index, dtype="object" if dtype == "object" else "str")
    s = df[name]
    if dtype == "object" and isinstance(s.dtype, pd.CategoricalDtype):
        return s.astype("object")
    return s
