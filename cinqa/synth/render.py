"""Snapshot children's histories as one census year's return: typed tables, as the reader makes them.

What a return holds follows the census rules: children referred in the year or open at its
start; completed work only if it finished inside the year (assessments authorised, enquiries
concluded, plans ended, from 1 April); anything dated after 31 March is not yet known, so an
assessment still running at 31 March has no authorisation date and no factors.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.synth import days as D
from cinqa.synth.timeline import Child, Episode

Columns = dict[str, list[Any]]


def in_year(child: Child, start: int, ref: int) -> bool:
    """Tell whether ``child`` belongs in the return of the census year ``start``..``ref``."""
    for e in child.episodes:
        if e.referral > ref:
            return False
        if e.nfa:
            if e.referral >= start:
                return True
        elif e.closure is None or e.closure >= start:
            return True
    return False


def _episode_in_year(e: Episode, start: int, ref: int) -> bool:
    if e.referral > ref:
        return False
    if e.nfa:
        return e.referral >= start
    return e.closure is None or e.closure >= start


class Snapshot:
    """Collect the rows of one census year's tables, child by child."""

    def __init__(self, year: str) -> None:
        self.year = year
        self.end_year = spec.end_year(year)
        self.start = D.census_start(self.end_year)
        self.ref = D.reference_day(self.end_year)
        # UPNs are known from the September after the third birthday (school age for 8770Q)
        self.nursery_cutoff = D.day(self.end_year - 4, 8, 31)
        self.sex_column = "Sex" if year in spec.column_years("children", "Sex") else "GenderCurrent"
        self.has_source = year in spec.column_years("episodes", "ReferralSource")
        self.has_factors = year in spec.table_years("assessment_factors")
        self.has_plans = year in spec.table_years("cin_plans")
        self.continuous = year in spec.column_years("assessments", "AssessmentInternalReviewDate")
        self.has_pre_proceedings = year in spec.table_years("pre_proceedings")
        self.cols: dict[str, Columns] = {t: {} for t in spec.TABLE_KEYS}
        self.n = 0

    def _row(self, table: str, **values: Any) -> None:
        cols = self.cols[table]
        if not cols:
            for k in values:
                cols[k] = []
        for k, v in values.items():
            cols[k].append(v)

    def add(self, child: Child) -> bool:
        """Add ``child``'s rows if it belongs in this year; tell whether it did."""
        start, ref = self.start, self.ref
        episodes = [e for e in child.episodes if _episode_in_year(e, start, ref)]
        if not episodes:
            return False
        self.n += 1
        c = self.n
        cid = child.la_child_id
        born = child.dob <= ref
        upn: str | None = None
        reason: str | None = None
        if not born:
            reason = "UN1"
        elif child.un7 and all(e.nfa for e in episodes):
            reason = "UN7"  # allowed only when every episode is an NFA referral (rule 8772)
        elif child.dob > self.nursery_cutoff:
            reason = "UN1"  # too young for a UPN; UN1 is wrong for school-age children (8770Q)
        elif child.upn_reason is not None:
            reason = child.upn_reason
        else:
            upn = child.upn
        if self.sex_column == "Sex":
            sex = child.sex if born else "U"
        else:
            sex = {"M": "1", "F": "2", "U": "0"}[child.sex] if born else "0"
        self._row("children", child=c, LAchildID=cid, UPN=upn,
                  FormerUPN=child.former_upn if upn is not None else None, UPNunknown=reason,
                  PersonBirthDate=child.dob if born else None,
                  ExpectedPersonBirthDate=None if born else child.due,
                  **{self.sex_column: sex},
                  PersonDeathDate=child.death if child.death is not None and child.death <= ref else None,
                  Ethnicity=child.ethnicity)
        if born:
            for i, code in enumerate(child.disabilities or ("NONE",), start=1):
                self._row("disabilities", child=c, disability=i, LAchildID=cid, Disability=code)
        for n, e in enumerate(episodes, start=1):
            self._episode(c, n, cid, e)
        return True

    def _episode(self, c: int, n: int, cid: str, e: Episode) -> None:
        start, ref = self.start, self.ref
        closed = e.closure is not None and e.closure <= ref
        values: dict[str, Any] = {"child": c, "episode": n, "LAchildID": cid, "CINreferralDate": e.referral}
        if self.has_source:
            values["ReferralSource"] = e.source
        values.update(PrimaryNeedCode=e.need, CINclosureDate=e.closure if closed else None,
                      ReasonForClosure=e.reason if closed else None, DateOfInitialCPC=None,
                      ReferralNFA=e.nfa)
        self._row("episodes", **values)
        k = 0
        for a in e.assessments:
            if a.start > ref or a.auth < start:
                continue
            k += 1
            done = a.auth <= ref
            if self.continuous:
                self._row("assessments", child=c, episode=n, assessment=k, LAchildID=cid, kind="continuous",
                          AssessmentActualStartDate=a.start, AssessmentInternalReviewDate=None,
                          AssessmentAuthorisationDate=a.auth if done else None)
            else:
                self._row("assessments", child=c, episode=n, assessment=k, LAchildID=cid, kind=a.kind,
                          AssessmentActualStartDate=a.start,
                          AssessmentAuthorisationDate=a.auth if done else None)
            if done and self.has_factors:
                for f, code in enumerate(a.factors, start=1):
                    self._row("assessment_factors", child=c, episode=n, assessment=k, factor=f,
                              LAchildID=cid, AssessmentFactors=code)
        if self.has_plans:
            k = 0
            for p in e.plans:
                if p.start > ref or p.end < start:
                    continue
                k += 1
                self._row("cin_plans", child=c, episode=n, cin_plan=k, LAchildID=cid,
                          CINPlanStartDate=p.start, CINPlanEndDate=p.end if p.end <= ref else None)
        k = 0
        for s in e.enquiries:
            if s.start > ref or s.done < start:
                continue
            k += 1
            icpc = s.icpc if s.icpc is not None and s.icpc <= ref else None
            self._row("section47", child=c, episode=n, s47=k, LAchildID=cid, S47ActualStartDate=s.start,
                      InitialCPCtarget=s.target, DateOfInitialCPC=icpc,
                      ICPCnotRequired=s.decided is not None and s.decided <= ref)
        k = 0
        for p in e.protection:
            if p.start > ref or p.end < start:
                continue
            k += 1
            self._row("cp_plans", child=c, episode=n, cpp=k, LAchildID=cid, CPPstartDate=p.start,
                      CPPendDate=p.end if p.end <= ref else None, InitialCategoryOfAbuse=p.initial,
                      LatestCategoryOfAbuse=p.latest, NumberOfPreviousCPP=p.previous)
            j = 0
            for rv in p.reviews:
                if start <= rv <= ref:
                    j += 1
                    self._row("cp_reviews", child=c, episode=n, cpp=k, review=j, LAchildID=cid,
                              CPPreviewDate=rv)
        if self.has_pre_proceedings:
            self._pre_proceedings(c, n, cid, e)

    def _pre_proceedings(self, c: int, n: int, cid: str, e: Episode) -> None:
        """Add the episode's pre-proceedings that started this year, as known on 31 March."""
        start, ref = self.start, self.ref

        def known(d: int | None) -> int | None:
            return d if d is not None and d <= ref else None

        k = 0
        for pp in e.pre_proceedings:
            if not start <= pp.start <= ref:
                continue
            k += 1
            letter, meeting, step = known(pp.letter), known(pp.meeting), known(pp.step)
            self._row("pre_proceedings", child=c, episode=n, pre_proceedings=k, LAchildID=cid,
                      PPStartDate=pp.start, LBPSentDate=letter,
                      FGDMMeetingOffer=pp.offered if letter is not None else None,
                      FGDMMeetingFac=pp.held if letter is not None else None,
                      InitialPPMeetingDate=meeting,
                      ReviewMeetingsCount=None if meeting is None else sum(d <= ref for d in pp.reviews),
                      StepDecisionDate=step, PPOutcome=pp.outcome if step is not None else None,
                      CourtAppDate=known(pp.court), LetterInitCPDate=known(pp.letter_init))

    def tables(self) -> dict[str, pd.DataFrame]:
        """Return the collected rows as typed tables."""
        return {table: frame(table, self.year, self.cols[table]) for table in spec.TABLE_KEYS}


def table_columns(table: str, year: str) -> list[spec.Node]:
    """Return the leaves giving ``table``'s value columns in ``year``, in the reader's order."""
    return [n for n in spec.value_columns(table) if year in spec.column_years(table, n.column)]


def frame(table: str, year: str, cols: Columns) -> pd.DataFrame:
    """Build ``table`` for ``year`` from column lists, typed exactly as :func:`cinqa.read_return` types it."""
    keys = list(spec.TABLE_KEYS[table])
    n = len(cols[keys[0]]) if cols else 0
    data: dict[str, Any] = {}
    for k in keys:
        data[k] = np.asarray(cols.get(k, []), dtype=np.int64)
    if table != "children":
        data["LAchildID"] = pd.array(cols.get("LAchildID", [None] * n), dtype="str")
    if spec.has_kind_column(table):
        data["kind"] = pd.Categorical(cols.get("kind", [None] * n), categories=spec.ASSESSMENT_KINDS)
    for node in table_columns(table, year):
        data[node.column] = typed(cols.get(node.column, [None] * n), node, year)
    data["line"] = pd.array([None] * n, dtype="Int64")
    return pd.DataFrame(data)


def typed(values: list[Any], node: spec.Node, year: str) -> Any:
    """Type one column's raw values (day numbers for dates) as the reader would."""
    t = node.type
    if t == "date":
        return D.to_datetime64(values)
    if t == "bool":
        return pd.array(values, dtype="boolean")
    if t in ("int", "gyear"):
        return pd.array(values, dtype="Int64")
    if node.codeset:
        return categorical(values, node.codeset, year if year in node.years else None)
    return pd.array(values, dtype="str")


def categorical(values: Iterable[Any], codeset: str, year: str | None) -> pd.Categorical:
    """Return codes as a Categorical over the year's code set plus any invalid values, sorted."""
    valid = list(spec.codes(codeset, year))
    values = list(values)
    extra = sorted({str(v) for v in values if v is not None and not pd.isna(v)} - set(valid))
    return pd.Categorical(values, categories=[*valid, *extra])
