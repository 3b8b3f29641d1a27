"""Children's histories with children's social care, simulated event by event.

A :class:`Child` carries every episode of need from its first referral to the simulation horizon,
with all the activity inside (assessments, section 47 enquiries, conferences, plans, reviews,
pre-proceedings) as day numbers. Nothing here knows about census returns: :mod:`cinqa.synth.render`
takes a snapshot of these histories for one census year. Because a history is built forward in
time and each activity is placed after the one it depends on, the rules about order and overlap
hold by construction (see the notes beside each step).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache

from cinqa import spec
from cinqa.synth import days as D
from cinqa.synth.params import Params, Pick

WORKING_TOGETHER_2013 = D.day(2013, 4, 1)
"""Assessments starting before this day follow the initial/core model of 2012-13."""

PRE_PROCEEDINGS_FROM = D.census_start(spec.end_year(min(spec.table_years("pre_proceedings"))))
"""Pre-proceedings start on or after this day: the first census year with module 5 (earlier
pre-proceedings would fall outside any return that can hold them, rule 9005)."""

UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"
THREE_MONTHS = 89
"""Days that are within three calendar months of any date (31 January + 89 days = 30 April)."""
SIX_MONTHS = 181
"""Days that are within six calendar months of any date (31 August + 181 days = 28 February)."""


class Assessment:
    """One assessment: ``kind`` is "initial", "core" (before April 2013) or "continuous"."""

    __slots__ = ("kind", "start", "auth", "factors")

    def __init__(self, kind: str, start: int, auth: int) -> None:
        self.kind = kind
        self.start = start
        self.auth = auth
        self.factors: tuple[str, ...] = ()


class Enquiry:
    """A section 47 enquiry, ending in a conference (``icpc``) or a decision that none is needed."""

    __slots__ = ("start", "target", "icpc", "decided")

    def __init__(self, start: int) -> None:
        self.start = start
        self.target: int | None = None
        self.icpc: int | None = None
        self.decided: int | None = None

    @property
    def done(self) -> int:
        return self.icpc if self.icpc is not None else self.decided  # type: ignore[return-value]


class ProtectionPlan:
    """A child protection plan and its review conferences."""

    __slots__ = ("start", "end", "initial", "latest", "previous", "reviews")

    def __init__(self, start: int, end: int, initial: str, latest: str, previous: int,
                 reviews: list[int]) -> None:
        self.start = start
        self.end = end
        self.initial = initial
        self.latest = latest
        self.previous = previous
        self.reviews = reviews


class CinPlan:
    """A child in need plan."""

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


class PreProceedings:
    """Pre-proceedings under the Public Law Outline, from the decision to start them to their outcome.

    Every date after ``start`` may be None (that step never happened); ``reviews`` are the days of
    the review meetings after the initial one, and ``outcome`` is a PPOutcome code.
    """

    __slots__ = ("start", "letter", "offered", "held", "meeting", "reviews", "step", "outcome", "court",
                 "letter_init")

    def __init__(self, start: int) -> None:
        self.start = start
        self.letter: int | None = None
        self.offered: bool | None = None
        self.held: bool | None = None
        self.meeting: int | None = None
        self.reviews: list[int] = []
        self.step: int | None = None
        self.outcome: str | None = None
        self.court: int | None = None
        self.letter_init: int | None = None

    @property
    def last(self) -> int:
        """Return the day of the last step taken."""
        return max(d for d in (self.start, self.letter, self.meeting, self.step, self.court, self.letter_init)
                   if d is not None)


class Episode:
    """One episode of need, from referral to closure (``closure`` None: an NFA left undated)."""

    __slots__ = ("referral", "source", "need", "nfa", "closure", "reason", "outcome",
                 "assessments", "enquiries", "protection", "plans", "pre_proceedings")

    def __init__(self, referral: int) -> None:
        self.referral = referral
        self.source: str | None = None
        self.need: str | None = None
        self.nfa = False
        self.closure: int | None = None
        self.reason: str | None = None
        self.outcome = "cin"
        self.assessments: list[Assessment] = []
        self.enquiries: list[Enquiry] = []
        self.protection: list[ProtectionPlan] = []
        self.plans: list[CinPlan] = []
        self.pre_proceedings: list[PreProceedings] = []


@dataclass(eq=False)
class Child:
    """A child's identity and history; ``dob`` is the actual birth, ``due`` the expected one."""

    dob: int
    due: int | None
    sex: str
    ethnicity: str
    disabilities: tuple[str, ...]
    upn_reason: str | None
    episodes: list[Episode] = field(default_factory=list)
    death: int | None = None
    previous_plans: int | None = None
    un7: bool = False
    index: int = 0
    la_child_id: str = ""
    upn: str = ""
    former_upn: str | None = None


def upn_check_letter(body: str) -> str:
    """Return the check letter of a UPN whose characters 2-13 are ``body`` (DfE UPN guide)."""
    total = 0
    for weight, ch in enumerate(body, start=2):
        total += weight * (int(ch) if ch.isdigit() else UPN_LETTERS.index(ch))
    return UPN_LETTERS[total % 23]


def make_upn(la: str, serial: int) -> str:
    """Return a valid permanent UPN for LA code ``la`` and a 9-digit ``serial``."""
    body = f"{la}{serial % 1_000_000_000:09d}"
    return upn_check_letter(body) + body


@cache
def _codes(codeset: str, end_year: int) -> frozenset[str]:
    year = spec.year_from_reference(min(max(end_year, 2013), 2027))
    return frozenset(spec.codes(codeset, year))


@cache
def stable_las() -> tuple[str, ...]:
    """Return the LA codes valid in every supported year (for UPNs issued elsewhere)."""
    sets = [set(spec.codes("la", y)) for y in spec.SUPPORTED_YEARS]
    return tuple(sorted(set.intersection(*sets)))


class YearDraws:
    """Every draw whose parameters depend on the census year (year ending ``end_year``)."""

    def __init__(self, end_year: int) -> None:
        p = Params(end_year)
        self.end_year = end_year
        self.nfa = p.scalar("nfa_share")
        self.nfa_open = p.scalar("nfa_left_open_share")
        nin = p.scalar("not_in_need_share") / (1 - p.scalar("not_in_need_unresolved_at_31_march"))
        self.not_in_need = nin / (1 - self.nfa)
        cont = 1 - self.nfa - nin
        need = p.shares("primary_need")
        weights = p.shares("s47_need_weight")
        mean_w = sum(need[k] * weights[k] for k in need) / sum(need.values())
        # second enquiries (second_s47_share of longer episodes) make up the rest of the rate
        base = p.scalar("s47_per_referral") / p.scalar("s47_repeat_factor") / cont
        self.s47 = {k: min(0.97, base * weights[k] / mean_w) for k in need}
        self.icpc = p.scalar("icpc_per_s47")
        self.cpp = p.scalar("cpp_per_icpc")
        self.category = p.pick("category_of_abuse").draw
        self.cpp_days = p.bands("cpp_duration_days").draw
        disabled = p.scalar("disability_prevalence")
        self.n2_if_disabled = min(0.95, need["N2"] / disabled)
        self.need_other = Pick({k: v for k, v in need.items() if k != "N2"}).draw
        self.need_nfa = Pick(need).draw
        self.rc9 = p.scalar("early_help_share_of_not_in_need") if end_year >= 2023 else 0.0
        if end_year >= 2014:
            valid = _codes("referral_source", end_year)
            self.source_group = p.pick("referral_source_group").draw
            self.source_codes = {g: Pick({c: w for c, w in codes.items() if str(c) in valid}).draw
                                 for g, codes in p.shares("referral_source_codes").items()}
        else:
            self.source_group = None
            self.source_codes = {}
        self.factors: list[tuple[str, float, list[tuple[str, float]]]] | None = None
        if end_year >= 2014:
            retired = {str(c) for c, y in p.shares("factor_codes_retired").items() if end_year >= y}
            valid = _codes("assessment_factor", end_year) - retired
            codes = p.shares("factor_codes")
            self.factors = []
            for family, share in p.shares("factor_families").items():
                options = [(str(c), float(w)) for c, w in codes[family].items() if str(c) in valid]
                if options:
                    self.factors.append((family, float(share), options))
            self.factor_family = Pick({f: s for f, s, _ in self.factors}).draw
            self.factor_options = {f: o for f, _, o in self.factors}

    def source(self, rnd: random.Random) -> str | None:
        if self.source_group is None:
            return None
        return str(self.source_codes[self.source_group(rnd)](rnd))


class Simulator:
    """Build children's histories up to ``horizon`` (a day number), reproducibly from ``rnd``.

    Pre-proceedings draw from their own stream, ``pp_rnd``, so that adding them left every history
    before 2026-27 as it was.
    """

    def __init__(self, rnd: random.Random, horizon: int, pp_rnd: random.Random | None = None) -> None:
        self.rnd = rnd
        self.pp_rnd = pp_rnd if pp_rnd is not None else random.Random(f"cinqa.synth.pp:{horizon}")
        self.horizon = horizon
        self.cal = D.calendar()
        p = Params(D.census_end_year(horizon))
        self.p = p
        self.age = p.bands("age_at_first_referral").draw
        self.prenatal_weeks = p.bands("prenatal_weeks_before_due").draw
        self.birth_vs_due = p.bands("birth_vs_due_days").draw
        self.sex = p.pick("sex").draw
        self.ethnic_group = p.pick("ethnic_group").draw
        self.ethnicity = {g: Pick(v).draw for g, v in p.shares("ethnicity_within_group").items()}
        self.disabled = p.scalar("disability_prevalence")
        self.disability_types = p.shares("disability_types")
        self.disability_pick = Pick(self.disability_types).draw
        self.upn_reason_share = p.scalar("upn_unknown_reason_share")
        self.upn_reason = p.pick("upn_unknown_reasons").draw
        self.un7 = p.scalar("un7_share_of_nfa_only_children")
        self.weekday = p.scalar("referral_weekday_share")
        self.nfa_need = p.scalar("nfa_primary_need_share")
        self.soon = p.shares("next_referral_within_year")
        self.soon_days = p.bands("next_referral_soon_days").draw
        self.later = p.scalar("next_referral_later")
        self.later_days = p.bands("next_referral_later_days").draw
        self.assessment_lag = p.bands("assessment_start_lag_wd").draw
        self.assessment_wd = p.bands("assessment_duration_wd").draw
        self.initial_wd = p.bands("initial_assessment_duration_wd").draw
        self.core_share = p.scalar("core_assessment_share")
        self.core_wd = p.bands("core_assessment_duration_wd").draw
        self.reassess = p.scalar("reassessment_share")
        self.no_factor = p.scalar("no_factor_share_not_in_need")
        self.second_s47 = p.scalar("second_s47_share")
        self.second_s47_days = p.scalar("second_s47_min_episode_days")
        self.reassess_days = p.scalar("reassessment_min_episode_days")
        self.factor_scale = p.scalar("not_in_need_factor_scale")
        self.age_cap = p.scalar("episode_age_cap_years")
        self.adoption_age = p.scalar("adoption_max_age")
        self.adult_age = p.scalar("adult_services_min_age")
        self.s47_lag = p.bands("s47_strategy_lag_wd")
        self.icpc_wd = p.bands("icpc_duration_wd").draw
        self.decision_wd = p.bands("s47_no_icpc_decision_wd")
        self.latest_changes = p.scalar("latest_category_changes")
        self.previous_cpp = p.pick("previous_cpp").draw
        self.at_review = p.scalar("cpp_ends_at_review")
        self.review_early = p.bands("review_early_wd").draw
        self.cin_days = p.bands("cin_episode_days").draw
        self.plan_share = p.scalar("cin_plan_share")
        self.plan_lag = p.bands("cin_plan_start_lag_wd").draw
        self.step_down = p.scalar("step_down_after_cpp")
        self.step_days = p.bands("step_down_days").draw
        self.reason = p.pick("closure_reason").draw
        self.nin_lag = p.bands("not_in_need_closure_lag_wd").draw
        self.closure_wd = p.scalar("closure_on_working_day")
        self.pp_per_cpp = p.scalar("pp_per_cpp")
        self.pp_without_cpp = p.scalar("pp_without_cpp")
        self.pp_after_start = p.bands("pp_after_cpp_start_days").draw
        self.pp_recent = int(p.scalar("pp_recent_plan_days"))
        self.pp_letter = p.scalar("pp_letter_share")
        self.pp_letter_wd = p.bands("pp_letter_lag_wd").draw
        self.fgdm_offered = p.scalar("fgdm_offered_share")
        self.fgdm_held = p.scalar("fgdm_held_share")
        self.pp_meeting = p.scalar("pp_meeting_share")
        self.pp_meeting_wd = p.bands("pp_meeting_lag_wd").draw
        self.pp_review_days = p.bands("pp_review_interval_days").draw
        self.pp_days = p.bands("pp_duration_days").draw
        self.pp_course = p.pick("pp_course").draw
        self.pp_code = {k: str(v) for k, v in p.shares("pp_outcome_code").items()}
        self.pp_court_days = p.bands("pp_court_lag_days").draw
        self.pp_letter_init_wd = p.bands("pp_letter_init_lag_wd").draw
        self._years: dict[int, YearDraws] = {}

    def year(self, d: int) -> YearDraws:
        """Return the draws of the census year containing day ``d``."""
        y = D.census_end_year(d)
        draws = self._years.get(y)
        if draws is None:
            draws = self._years[y] = YearDraws(y)
        return draws

    # -- the child ---------------------------------------------------------------------------

    def child(self, first_referral: int) -> Child:
        """Simulate one child whose first referral is on day ``first_referral``."""
        r = self.rnd
        age = self.age(r)
        due: int | None = None
        if age < 0:
            due = first_referral + 7 * self.prenatal_weeks(r)
            dob = due + self.birth_vs_due(r)
        else:
            dob = first_referral - int(age * 365.25) - 1 - int(r.random() * 364)
        disabilities: tuple[str, ...] = ()
        if r.random() < self.disabled:
            chosen = {c for c, s in self.disability_types.items() if r.random() < s}
            if not chosen:
                chosen = {self.disability_pick(r)}
            disabilities = tuple(c for c in self.disability_types if c in chosen)
        group = self.ethnic_group(r)
        upn_reason = self.upn_reason(r) if r.random() < self.upn_reason_share else None
        child = Child(dob=dob, due=due, sex=self.sex(r), ethnicity=self.ethnicity[group](r),
                      disabilities=disabilities, upn_reason=upn_reason,
                      un7=r.random() < self.un7)
        referral = first_referral
        while True:
            ep = self.episode(child, referral)
            child.episodes.append(ep)
            if child.death is not None:
                break
            last = ep.closure if ep.closure is not None else ep.referral
            if last >= self.horizon:
                break
            if r.random() < self.soon[ep.outcome]:
                gap = self.soon_days(r)
            elif r.random() < self.later:
                gap = self.later_days(r)
            else:
                break
            referral = self._referral_day(last + gap)
            # no referral after the horizon or after the child turns 18
            if referral > self.horizon or referral >= D.add_years(dob, 18):
                break
        return child

    def _referral_day(self, d: int) -> int:
        return self.cal.next(d) if self.rnd.random() < self.weekday else d

    def _need(self, child: Child, y: YearDraws) -> str:
        if child.disabilities and self.rnd.random() < y.n2_if_disabled:
            return "N2"
        return str(y.need_other(self.rnd))

    # -- one episode -------------------------------------------------------------------------

    def episode(self, child: Child, referral: int) -> Episode:
        """Simulate one episode from ``referral`` to its closure."""
        r = self.rnd
        y = self.year(referral)
        ep = Episode(referral)
        ep.source = y.source(r)
        u = r.random()
        if u < y.nfa:
            ep.nfa = True
            ep.outcome = "nfa"
            if r.random() < self.nfa_need:
                ep.need = str(y.need_nfa(r))
            if r.random() >= y.nfa_open:
                ep.closure = referral
                ep.reason = "RC7"  # RC8/RC9 would claim an assessment (rule 8825Q)
            return ep
        ep.need = self._need(child, y)
        if r.random() < y.not_in_need:
            self._not_in_need(child, ep)
        else:
            self._continuing(child, ep, y)
        return ep

    def _first_assessments(self, ep: Episode, s47: bool) -> list[Assessment]:
        """Start the episode's first assessment(s); before April 2013 an initial (+ core) pair."""
        r, cal = self.rnd, self.cal
        start = cal.add(ep.referral, self.assessment_lag(r))
        if start >= WORKING_TOGETHER_2013:
            return [Assessment("continuous", start, cal.add(start, self.assessment_wd(r)))]
        initial = Assessment("initial", start, cal.add(start, self.initial_wd(r)))
        if s47 or r.random() < self.core_share:
            # strictly after the initial assessment: "on or between" counts as overlapping (8863Q)
            core_start = cal.add(initial.auth, 1 if s47 else 1 + int(r.random() * 3))
            return [initial, Assessment("core", core_start, cal.add(core_start, self.core_wd(r)))]
        return [initial]

    def finish(self, child: Child) -> None:
        """Draw what only a child kept in a return needs: the factors found at each assessment."""
        for ep in child.episodes:
            for a in ep.assessments:
                self._factors(child, a, in_need=ep.outcome != "not_in_need")

    def _factors(self, child: Child, a: Assessment, in_need: bool) -> None:
        """Record the factors identified when ``a`` is authorised (none before 2013-14)."""
        y = self.year(a.auth)
        if y.factors is None:
            return
        r = self.rnd
        if not in_need and not child.disabilities and r.random() < self.no_factor:
            a.factors = ("21",)
            return
        scale = 1.0 if in_need else self.factor_scale
        families = [f for f, s, _ in y.factors if r.random() < s * scale]
        if not families:
            families = [y.factor_family(r)]
        codes: list[str] = []
        for f in families:
            options = y.factor_options[f]
            picked = [c for c, w in options if r.random() < w]
            codes.extend(picked or [max(options, key=lambda o: o[1])[0]])
        if child.disabilities and "5A" not in codes and "6A" not in codes:
            # a disabled child's assessment records the child's disability (rule 8899Q, to 2021-22)
            codes.append("5A" if {"LD", "AUT", "COMM", "BEH"} & set(child.disabilities) else "6A")
        a.factors = tuple(sorted(set(codes), key=_factor_order))

    def _not_in_need(self, child: Child, ep: Episode) -> None:
        r, cal = self.rnd, self.cal
        ep.outcome = "not_in_need"
        ep.assessments = self._first_assessments(ep, s47=False)
        last = ep.assessments[-1].auth
        # closed in the census year of the authorisation, so the assessment is in the same return
        # as the RC8/RC9 closure (rules 8825Q and 8873Q)
        closure = min(cal.add(last, self.nin_lag(r)), D.reference_day(D.census_end_year(last)))
        ep.closure = closure
        ep.reason = "RC9" if r.random() < self.year(closure).rc9 else "RC8"

    def _enquiry(self, start: int, y: YearDraws) -> Enquiry:
        r, cal = self.rnd, self.cal
        e = Enquiry(start)
        if r.random() < y.icpc:
            e.icpc = cal.add(start, self.icpc_wd(r))  # a working day (rule 8875)
            e.target = cal.add(start, 15)  # 15 working days, never a weekend (rule 8870Q)
        else:
            e.decided = cal.add(start, self.decision_wd(r))
        return e

    def _protection(self, child: Child, start: int) -> ProtectionPlan:
        """Start a protection plan on the conference day ``start``, with reviews and an end."""
        r, cal = self.rnd, self.cal
        y = self.year(start)
        end = cal.next(start + y.cpp_days(r))
        reviews: list[int] = []
        # first review within 3 months of the conference, then at most every 6 months
        review = cal.add(cal.prev(start + THREE_MONTHS), -self.review_early(r))
        while review < end:
            reviews.append(review)
            review = cal.add(cal.prev(review + SIX_MONTHS), -self.review_early(r))
        if r.random() < self.at_review:
            reviews.append(end)
        initial = str(y.category(r))
        latest = initial
        if r.random() < self.latest_changes:
            latest = str(y.category(r))
        if child.previous_plans is None:
            child.previous_plans = int(self.previous_cpp(r))
        previous = child.previous_plans
        child.previous_plans += 1
        return ProtectionPlan(start, end, initial, latest, previous, reviews)

    def _continuing(self, child: Child, ep: Episode, y: YearDraws) -> None:
        r, cal = self.rnd, self.cal
        s47 = r.random() < y.s47[ep.need or "N0"]
        assessments = self._first_assessments(ep, s47)
        ep.assessments = assessments
        busy = assessments[-1].auth  # the last day of activity so far
        protection: ProtectionPlan | None = None
        first_conference: int | None = None
        if s47:
            a = assessments[-1]
            start = a.start if a.kind == "core" else cal.add(a.start, self.s47_lag(r))
            enquiry = self._enquiry(start, y)
            ep.enquiries.append(enquiry)
            # the assessment runs at least until the enquiry concludes, so both are in the same
            # return (rule 2991Q)
            a.auth = max(a.auth, enquiry.done)
            busy = max(busy, a.auth)
            if enquiry.icpc is not None:
                first_conference = enquiry.icpc
                if r.random() < y.cpp:
                    protection = self._protection(child, enquiry.icpc)
        plan: CinPlan | None = None
        if protection is not None:
            ep.protection.append(protection)
            busy = max(busy, protection.end)
            if r.random() < self.step_down:
                closure = protection.end + self.step_days(r)
                if r.random() < self.plan_share:
                    # a step-down plan starts the day the protection plan ends (rule 4016 allows it)
                    plan = CinPlan(protection.end, closure)
            else:
                closure = protection.end
        else:
            closure = ep.referral + self.cin_days(r)
            cap = D.add_years(child.dob, self.age_cap)
            if closure > cap:
                closure = max(cap, busy + 20)
            closure = max(closure, busy + 1)
            if r.random() < self.plan_share:
                start = cal.add(max(assessments[-1].auth, first_conference or 0), self.plan_lag(r))
                if start < closure - 7:
                    plan = CinPlan(start, closure)
            length = closure - ep.referral
            if length > self.second_s47_days and r.random() < self.second_s47:
                closure, plan, protection = self._second_enquiry(child, ep, closure, plan, busy)
            elif length > self.reassess_days and r.random() < self.reassess:
                closure = self._reassessment(ep, closure, busy)
        if plan is not None:
            ep.plans.append(plan)
        self._pre_proceedings(ep, closure)
        # closed on or after every activity of the episode (rules 8565, 8867, 8868)
        last_activity = max([closure, *(p.end for p in ep.plans), *(c.end for c in ep.protection),
                             *(a.auth for a in ep.assessments), *(e.done for e in ep.enquiries),
                             *(pp.last for pp in ep.pre_proceedings)])
        if r.random() < self.closure_wd:
            last_activity = cal.next(last_activity)
        ep.closure = last_activity
        for p in ep.plans:
            if p.end > ep.closure or p.end == closure:
                p.end = ep.closure
        ep.reason = self._reason(child, ep.closure)

    def _pre_proceedings(self, ep: Episode, closure: int) -> None:
        """Maybe start pre-proceedings during (or just after) a protection plan, or during a CIN plan.

        Only pre-proceedings starting from :data:`PRE_PROCEEDINGS_FROM` up to the horizon are
        simulated; the episode stays open until their last step.
        """
        if closure < PRE_PROCEEDINGS_FROM:
            return
        r = self.pp_rnd
        if ep.protection:
            chance, plans = self.pp_per_cpp, [(c.start, c.end + self.pp_recent) for c in ep.protection]
        else:
            chance, plans = self.pp_without_cpp, [(p.start, p.end) for p in ep.plans]
        for first, last in plans:
            if last < PRE_PROCEEDINGS_FROM or first > self.horizon or r.random() >= chance:
                continue
            start = self.cal.next(first + self.pp_after_start(r))
            if PRE_PROCEEDINGS_FROM <= start <= min(last, self.horizon):
                ep.pre_proceedings.append(self._pp_steps(start))
            return

    def _pp_steps(self, start: int) -> PreProceedings:
        """Draw the steps of pre-proceedings started on ``start``, each on or after the one before."""
        r, cal = self.pp_rnd, self.cal
        pp = PreProceedings(start)
        step = start + self.pp_days(r)
        if r.random() < self.pp_letter:
            pp.letter = cal.add(start, self.pp_letter_wd(r))
            pp.offered = r.random() < self.fgdm_offered
            if pp.offered:
                pp.held = r.random() < self.fgdm_held
            if r.random() < self.pp_meeting:
                pp.meeting = cal.add(pp.letter, self.pp_meeting_wd(r))
                step = max(step, cal.add(pp.meeting, 10))
                review = pp.meeting + self.pp_review_days(r)
                while review < step:
                    pp.reviews.append(cal.next(review))
                    review += self.pp_review_days(r)
        pp.step = cal.next(step)
        course = str(self.pp_course(r))
        pp.outcome = self.pp_code[course]
        if course == "proceedings":
            pp.court = cal.next(pp.step + self.pp_court_days(r))
            pp.letter_init = cal.add(pp.court, self.pp_letter_init_wd(r))
        return pp

    def _second_enquiry(self, child: Child, ep: Episode, closure: int, plan: CinPlan | None,
                        busy: int) -> tuple[int, CinPlan | None, ProtectionPlan | None]:
        """Add a later enquiry, with a fresh assessment, to a long episode."""
        r, cal = self.rnd, self.cal
        lo = max(busy, plan.start if plan else 0) + 10
        hi = closure - 30
        if hi <= lo:
            return closure, plan, None
        start = cal.next(lo + int(r.random() * (hi - lo)))
        if start < WORKING_TOGETHER_2013 or start >= closure - 20:
            return closure, plan, None
        y = self.year(start)
        a = Assessment("continuous", start, cal.add(start, self.assessment_wd(r)))
        enquiry = self._enquiry(cal.add(start, self.s47_lag(r)), y)
        a.auth = max(a.auth, enquiry.done)
        ep.assessments.append(a)
        ep.enquiries.append(enquiry)
        closure = max(closure, a.auth + 1)
        protection: ProtectionPlan | None = None
        if enquiry.icpc is not None and r.random() < y.cpp:
            protection = self._protection(child, enquiry.icpc)
            ep.protection.append(protection)
            if plan is not None:
                if plan.start < protection.start:
                    plan.end = protection.start  # ends the day the protection plan starts (rule 4017)
                    ep.plans.append(plan)
                plan = None
            closure = protection.end
            if r.random() < self.step_down:
                closure = protection.end + self.step_days(r)
                if r.random() < self.plan_share:
                    plan = CinPlan(protection.end, closure)
        return max(closure, a.auth + 1), plan, protection

    def _reassessment(self, ep: Episode, closure: int, busy: int) -> int:
        r, cal = self.rnd, self.cal
        lo, hi = busy + 90, closure - 60
        if hi <= lo:
            return closure
        start = cal.next(lo + int(r.random() * (hi - lo)))
        if start < WORKING_TOGETHER_2013:
            return closure
        a = Assessment("continuous", start, cal.add(start, self.assessment_wd(r)))
        ep.assessments.append(a)
        return max(closure, a.auth + 1)

    def _reason(self, child: Child, closure: int) -> str:
        reason = str(self.reason(self.rnd))
        age = (closure - child.dob) / 365.25
        if reason == "RC1" and age >= self.adoption_age or reason == "RC6" and age < self.adult_age:
            return "RC7"
        if reason == "RC2":
            if closure <= child.dob:
                return "RC7"
            child.death = closure
        return reason


_FACTOR_ORDER = {c: i for i, c in enumerate(spec.codes("assessment_factor"))}


def _factor_order(code: str) -> int:
    return _FACTOR_ORDER.get(code, 999)
