"""Headline measures on hand-made returns: each definition, its boundaries and its breakdowns."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cinqa import read_return, write_return
from cinqa.errors import CinqaError
from cinqa.measures import (ASSESSMENT_BANDS, AUTHORISED_BEFORE_START, CONFERENCE_BEFORE_START, CPP_BANDS, ICPC_BANDS,
                            MEASURES, TIMESCALES, age_band, assessment_band, cpp_band, definitions, measure_rows,
                            measures, sex_of)
from cinqa.returns import CensusReturn, Header
from cinqa.workdays import add_working_days

MEASURES_PY = Path(importlib.import_module("cinqa.measures").__file__)  # the module, not cinqa.measures()

# -- a tiny return builder (test_compare.py uses it too) --------------------------------------


def child(lid: str, *episodes: dict, dob: str | None = "2015-06-01", sex: str = "1", eth: str = "WBRI",
          upn: str | None = None, edd: str | None = None, disabilities: tuple[str, ...] = ("NONE",)) -> dict:
    """Describe a child; ``sex`` is a GenderCurrent code before 2024-25 and a Sex code after."""
    return dict(LAchildID=lid, UPN=upn, PersonBirthDate=dob, ExpectedPersonBirthDate=edd, sex=sex,
                Ethnicity=eth, disabilities=disabilities, episodes=episodes)


def episode(ref: str, close: str | None = None, reason: str | None = None, nfa: bool = False,
            source: str | None = "2A", need: str | None = "N1", icpc: str | None = None,
            assessments: tuple = (), s47: tuple = (), cpps: tuple = ()) -> dict:
    """Describe an episode. ``assessments``: (start, end, factors) or, in 2012-13, (kind, start, end);
    ``s47``: (start, icpc); ``cpps``: (start, end, initial, latest, previous)."""
    return dict(CINreferralDate=ref, CINclosureDate=close, ReasonForClosure=reason, ReferralNFA=nfa,
                ReferralSource=source, PrimaryNeedCode=need, DateOfInitialCPC=icpc, assessments=assessments,
                s47=s47, cpps=cpps)


def make_return(tmp_path: Path, year: str, *children: dict, la: str = "201", name: str | None = None) -> CensusReturn:
    """Write the described children as a census return of ``year`` and read it back."""
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in ("children", "disabilities", "episodes", "assessments",
                                                            "assessment_factors", "section47", "cp_plans")}
    sex_col = "Sex" if year >= "2024-25" else "GenderCurrent"
    for c, ch in enumerate(children, 1):
        ident = {k: ch[k] for k in ("LAchildID", "UPN", "PersonBirthDate", "ExpectedPersonBirthDate", "Ethnicity")}
        rows["children"].append({"child": c, **ident, sex_col: ch["sex"]})
        for d, code in enumerate(ch["disabilities"], 1):
            rows["disabilities"].append({"child": c, "disability": d, "Disability": code})
        for e, ep in enumerate(ch["episodes"], 1):
            flat = {k: v for k, v in ep.items() if k not in ("assessments", "s47", "cpps")}
            if year == "2012-13":
                flat.pop("ReferralSource")
            rows["episodes"].append({"child": c, "episode": e, **flat})
            for a, spec_ in enumerate(ep["assessments"], 1):
                if year == "2012-13":
                    kind, start, end, factors = *spec_, ()
                else:
                    kind, (start, end, factors) = "continuous", spec_
                rows["assessments"].append({"child": c, "episode": e, "assessment": a, "kind": kind,
                                            "AssessmentActualStartDate": start, "AssessmentAuthorisationDate": end})
                for n, code in enumerate(factors, 1):
                    rows["assessment_factors"].append({"child": c, "episode": e, "assessment": a, "factor": n,
                                                       "AssessmentFactors": code})
            for s, (start, conf) in enumerate(ep["s47"], 1):
                rows["section47"].append({"child": c, "episode": e, "s47": s, "S47ActualStartDate": start,
                                          "DateOfInitialCPC": conf, "ICPCnotRequired": False})
            for p, (start, end, initial, latest, previous) in enumerate(ep["cpps"], 1):
                rows["cp_plans"].append({"child": c, "episode": e, "cpp": p, "CPPstartDate": start, "CPPendDate": end,
                                         "InitialCategoryOfAbuse": initial, "LatestCategoryOfAbuse": latest,
                                         "NumberOfPreviousCPP": previous})
    tables = {t: pd.DataFrame(r) for t, r in rows.items()}
    path = tmp_path / (name or f"cin-{la}-{year}.xml")
    write_return(CensusReturn(year=year, header=Header(la=la), tables=tables), path)
    return read_return(path)


def value(table: pd.DataFrame, measure: str, breakdown: str = "all", category: str = "all") -> float:
    hit = table[(table["measure"] == measure) & (table["breakdown"] == breakdown) & (table["category"] == category)]
    assert len(hit) == 1, f"{measure}/{breakdown}/{category}: {len(hit)} rows"
    return float(hit["value"].iloc[0])


def has(table: pd.DataFrame, measure: str) -> bool:
    return bool((table["measure"] == measure).any())


# -- referrals ------------------------------------------------------------------------------


def test_referrals_count_episodes_referred_in_the_census_year_including_nfa(tmp_path):
    ret = make_return(tmp_path, "2023-24",
                      child("A", episode("2023-03-31", close="2023-04-20", reason="RC7"),
                            episode("2023-04-01", close="2023-04-02", reason="RC8", nfa=True)),
                      child("B", episode("2024-03-31")))
    m = measures(ret)
    assert value(m, "referrals") == 2
    assert value(m, "referrals_nfa") == 1
    assert value(m, "referrals_nfa_share") == 50
    assert list(m.columns) == ["measure", "breakdown", "category", "census_year", "value", "unit"]


def test_re_referral_counts_a_previous_referral_up_to_twelve_months_before(tmp_path):
    ret = make_return(tmp_path, "2023-24",
                      child("A", episode("2023-04-10", close="2023-05-01", reason="RC7"),
                            episode("2024-03-01")),                      # 11 months later: re-referral
                      child("B", episode("2022-05-10", close="2023-05-01", reason="RC7"),
                            episode("2023-05-10")),                      # exactly 12 months: re-referral
                      child("C", episode("2022-05-09", close="2023-05-01", reason="RC7"),
                            episode("2023-05-10")))                      # 12 months and a day: not
    m = measures(ret)
    assert value(m, "re_referrals") == 2
    assert value(m, "re_referral_share") == pytest.approx(100 * 2 / 4)
    assert set(measure_rows(ret, "re_referrals")["LAchildID"]) == {"A", "B"}


def test_re_referral_sees_referrals_of_the_previous_return_when_given(tmp_path):
    before = make_return(tmp_path, "2022-23", child("A", episode("2022-09-01", close="2022-10-01", reason="RC7")))
    now = make_return(tmp_path, "2023-24", child("A", episode("2023-06-01")))
    assert value(measures(now), "re_referrals") == 0
    assert value(measures(now, previous=before), "re_referrals") == 1


# -- children in need and episodes ----------------------------------------------------------


def test_children_in_need_at_31_march_are_open_episodes_not_nfa_counted_once(tmp_path):
    ret = make_return(tmp_path, "2023-24",
                      child("OPEN", episode("2022-06-01", close="2023-05-01", reason="RC7"), episode("2023-09-01")),
                      child("CLOSED", episode("2023-06-01", close="2024-03-31", reason="RC7")),
                      child("NFA", episode("2024-03-20", nfa=True)),
                      child("TWICE", episode("2023-05-01"), episode("2023-08-01")))
    m = measures(ret, population=20_000)
    assert value(m, "cin_31_march") == 2
    assert value(m, "cin_31_march_rate") == pytest.approx(1.0)
    assert set(measure_rows(ret, "cin_31_march")["LAchildID"]) == {"OPEN", "TWICE"}
    assert value(m, "cin_in_year") == 3


def test_episodes_of_need_leave_out_nfa_and_not_in_need_closures(tmp_path):
    ret = make_return(tmp_path, "2023-24",
                      child("A", episode("2023-05-01", close="2023-06-01", reason="RC7")),
                      child("B", episode("2023-05-01", close="2023-06-01", reason="RC8")),
                      child("C", episode("2023-05-01", close="2023-05-01", reason="RC9")),
                      child("D", episode("2023-05-01", close="2023-05-02", reason="RC8", nfa=True)),
                      child("E", episode("2022-05-01", close="2023-04-30", reason="RC5")))
    m = measures(ret)
    assert value(m, "episodes_starting") == 1
    assert value(m, "episodes_ending") == 2
    assert value(m, "episodes_ending", "reason_for_closure", "RC5") == 1
    assert value(m, "closures") == 5
    assert value(m, "closures", "reason_for_closure", "RC8") == 2
    assert value(m, "closures", "reason_for_closure", "RC4") == 0


# -- assessments ----------------------------------------------------------------------------


def _wd(start: str, n: int) -> str:
    return add_working_days(pd.Timestamp(start), n).strftime("%Y-%m-%d")


def test_assessment_timeliness_counts_45_working_days_as_in_time(tmp_path):
    start = "2023-06-01"
    ret = make_return(tmp_path, "2023-24", child("A", episode("2023-06-01", assessments=(
        (start, _wd(start, 45), ("3A",)),
        (start, _wd(start, 46), ("21",)),
        (start, start, ("4B", "3A")),
        ("2023-07-10", "2023-07-03", ("21",)),          # authorised before it started
        ("2024-03-01", None, ())))))                   # still open: not completed
    m = measures(ret)
    assert value(m, "assessments_completed") == 4
    assert value(m, "assessments_within_45_days_share") == pytest.approx(100 * 2 / 3)
    assert value(m, "assessment_duration_median") == 45
    assert value(m, "assessments_completed", "assessment_duration", "41 to 45") == 1
    assert value(m, "assessments_completed", "assessment_duration", "46 to 50") == 1
    assert value(m, "assessments_completed", "assessment_duration", "Same day") == 1
    assert value(m, "assessments_completed", "assessment_duration", "Authorised before start") == 1
    assert value(m, "assessment_factors", "factor", "3A") == 2
    assert value(m, "assessment_factors", "factor", "21") == 2
    assert value(m, "assessment_factors", "factor", "24A") == 0
    assert not has(m, "initial_within_10_days_share")


def test_2012_13_assessments_are_initial_and_core_with_their_own_timescales(tmp_path):
    ref = "2012-06-01"
    ret = make_return(tmp_path, "2012-13",
                      child("A", episode(ref, assessments=(("initial", ref, _wd(ref, 10)),
                                                           ("core", "2012-06-20", _wd("2012-06-20", 35))))),
                      child("B", episode(ref, assessments=(("initial", _wd(ref, 2), _wd(ref, 11)),
                                                           ("core", "2012-06-20", _wd("2012-06-20", 36))))))
    m = measures(ret)
    assert value(m, "assessments_completed") == 4
    assert value(m, "initial_assessments_completed") == 2
    assert value(m, "core_assessments_completed") == 2
    assert value(m, "initial_within_10_days_share") == 50   # timed from the referral, not the IA start
    assert value(m, "core_within_35_days_share") == 50
    for absent in ("assessments_within_45_days_share", "assessment_factors", "assessment_duration_median"):
        assert not has(m, absent)
    assert "referral_source" not in set(m.loc[m["measure"] == "referrals", "breakdown"])
    assert "assessment_duration" not in set(m.loc[m["measure"] == "assessments_completed", "breakdown"])


# -- section 47 and conferences -------------------------------------------------------------


def test_icpc_timeliness_is_15_working_days_from_the_s47_start(tmp_path):
    s = "2023-09-04"
    ret = make_return(tmp_path, "2023-24", child("A", episode("2023-09-01", icpc="2023-10-02", s47=(
        (s, _wd(s, 15)), (s, _wd(s, 16)), (s, "2023-09-01"), ("2024-03-20", None), ("2023-03-20", "2023-04-03")))))
    m = measures(ret)
    assert value(m, "s47_enquiries") == 4
    assert value(m, "icpcs") == 4                       # the one held before its S47 start counts here
    assert value(m, "icpc_within_15_days_share") == pytest.approx(100 * 2 / 3)
    assert value(m, "icpcs_transfer_in") == 1


# -- child protection plans -----------------------------------------------------------------


def test_plans_starting_ending_and_open_at_31_march(tmp_path):
    ret = make_return(tmp_path, "2023-24",
                      child("A", episode("2022-01-01", cpps=(
                          ("2022-01-10", "2023-04-10", "NEG", "NEG", 0),            # 1 to 2 years
                          ("2023-05-01", None, "EMO", "PHY", 0)))),                 # second plan, open
                      child("B", episode("2023-04-01", cpps=(
                          ("2023-04-03", "2023-07-03", "PHY", "PHY", 2),            # exactly 3 months
                          ("2023-07-04", "2023-10-05", "SAB", "SAB", 0)))),         # 3 months and a day
                      child("C", episode("2021-01-01", cpps=(("2021-06-01", "2023-06-01", "MUL", "NEG", 0),))))
    m = measures(ret, population=10_000)
    assert value(m, "cpp_starts") == 3
    assert value(m, "cpp_starts", "initial_category", "PHY") == 1
    assert value(m, "cpp_second_or_subsequent") == 3        # A's 2nd plan, B's 1st (2 previous) and 2nd
    assert value(m, "cpp_second_or_subsequent_share") == 100
    assert value(m, "cpp_ends") == 4
    assert value(m, "cpp_ends", "cpp_duration", "Up to 3 months") == 1
    assert value(m, "cpp_ends", "cpp_duration", "3 to 6 months") == 1
    assert value(m, "cpp_ends", "cpp_duration", "1 to 2 years") == 1
    assert value(m, "cpp_ends", "cpp_duration", "2 years or more") == 1
    assert value(m, "cpp_ended_2_years_share") == 25
    assert value(m, "cpp_31_march") == 1
    assert value(m, "cpp_31_march", "latest_category", "PHY") == 1
    assert value(m, "cpp_31_march", "initial_and_latest_category", "EMO > PHY") == 1
    assert value(m, "cpp_31_march_rate") == 1


# -- breakdowns -----------------------------------------------------------------------------


def test_demographic_breakdowns_of_children_in_need(tmp_path):
    ret = make_return(tmp_path, "2023-24",
                      child("UNBORN", episode("2024-02-01", source="3B"), dob=None, edd="2024-06-01", sex="0",
                            eth="NOBT"),
                      child("BABY", episode("2023-05-01", source="6"), dob="2023-03-31", sex="2", eth="MWBA",
                            disabilities=("NONE",)),
                      child("TEEN", episode("2023-05-01", source="3A", need="N5"), dob="2008-04-01", sex="9",
                            eth="CHNE", disabilities=("AUT", "LD")))
    m = measures(ret)
    assert value(m, "cin_31_march", "age", "Unborn") == 1
    assert value(m, "cin_31_march", "age", "Under 1") == 0       # first birthday on 31 March
    assert value(m, "cin_31_march", "age", "1 to 4") == 1
    assert value(m, "cin_31_march", "age", "10 to 15") == 1
    assert value(m, "cin_31_march", "sex", "Female") == 1
    assert value(m, "cin_31_march", "sex", "Not known or indeterminate") == 2
    assert value(m, "cin_31_march", "ethnicity", "Other") == 1
    assert value(m, "cin_31_march", "ethnicity", "Refused or not obtained") == 1
    assert value(m, "cin_31_march", "disability", "Disabled") == 1
    assert value(m, "cin_31_march", "primary_need", "N5") == 1
    assert value(m, "referrals", "referral_source", "Health services") == 2
    assert value(m, "referrals", "referral_source", "Police") == 1
    assert value(m, "referrals", "age", "Under 1") == 1           # a month old when referred


def test_sex_uses_sex_from_2024_25_and_maps_gender_before(tmp_path):
    new = make_return(tmp_path, "2024-25", child("A", episode("2024-05-01"), sex="F"),
                      child("B", episode("2024-05-01"), sex="U"))
    old = make_return(tmp_path, "2023-24", child("A", episode("2023-05-01"), sex="2"))
    assert list(sex_of(new.children)) == ["F", "U"]
    assert list(sex_of(old.children)) == ["F"]
    assert value(measures(new), "referrals", "sex", "Female") == 1


def test_bands_at_their_edges():
    days = pd.Series([0, 1, 10, 11, 45, 46, 61, -1, None], dtype="Int64")
    assert list(assessment_band(days)) == ["Same day", "1 to 10", "1 to 10", "11 to 20", "41 to 45", "46 to 50",
                                           "61 or more", "Authorised before start", "Not recorded"]
    start = pd.Series(pd.to_datetime(["2023-01-31", "2023-01-31", "2022-04-01", "2021-04-01", "2021-04-01"]))
    end = pd.Series(pd.to_datetime(["2023-04-30", "2023-05-01", "2023-03-31", "2023-03-31", "2023-04-01"]))
    assert list(cpp_band(start, end)) == ["Up to 3 months", "3 to 6 months", "6 months to 1 year", "1 to 2 years",
                                          "2 years or more"]
    born = pd.Series(pd.to_datetime(["2020-04-01", "2020-04-02", None, None]))
    due = pd.Series(pd.to_datetime([None, None, "2024-05-01", None]))
    on = pd.Series(pd.to_datetime(["2024-04-01"] * 4))
    assert list(age_band(born, due, on)) == ["1 to 4", "1 to 4", "Unborn", "Not recorded"]
    assert list(age_band(born, due, pd.Series(pd.to_datetime(["2025-04-01"] * 4))))[:2] == ["5 to 9", "1 to 4"]


# -- the registry and its API ---------------------------------------------------------------


def test_every_measure_is_documented_and_breakdowns_are_complete(tmp_path):
    d = definitions()
    assert set(d["measure"]) == set(MEASURES)
    assert d["description"].str.len().gt(10).all() and d["source"].str.len().gt(20).all()
    ret = make_return(tmp_path, "2023-24", child("A", episode("2023-05-01")))
    m = measures(ret)
    ages = m[(m["measure"] == "referrals") & (m["breakdown"] == "age")]
    assert list(ages["category"]) == ["Unborn", "Under 1", "1 to 4", "5 to 9", "10 to 15", "16 and over"]
    assert ages["value"].sum() == 1
    # every breakdown's categories add up to the total for counts of records
    counts = m[(m["unit"] == "count") & ~m["measure"].isin(["cin_31_march", "cin_in_year", "cpp_31_march"])]
    totals = counts[counts["breakdown"] == "all"].set_index("measure")["value"]
    sums = counts[counts["breakdown"] != "all"].groupby(["measure", "breakdown"])["value"].sum()
    for (measure, _), total in sums.items():
        assert total == totals[measure]


def test_rates_need_a_population_and_a_sensible_one(tmp_path):
    ret = make_return(tmp_path, "2023-24", child("A", episode("2023-05-01")))
    assert not has(measures(ret), "cin_31_march_rate")
    assert value(measures(ret, population={"2023-24": 5000}), "referrals_rate") == 2
    with pytest.raises(CinqaError, match="population"):
        measures(ret, population=-3)


def test_measure_rows_name_the_children_and_refuse_what_does_not_exist(tmp_path):
    ret = make_return(tmp_path, "2023-24", child("A", episode("2023-05-01", source="6")),
                      child("B", episode("2023-05-01", source="2A")))
    rows = measure_rows(ret, "referrals", "referral_source", "Police")
    assert list(rows["LAchildID"]) == ["A"] and "line" in rows
    with pytest.raises(CinqaError, match="unknown measure"):
        measure_rows(ret, "nonsense")
    with pytest.raises(CinqaError, match="does not exist in 2023-24"):
        measure_rows(ret, "initial_within_10_days_share")
    with pytest.raises(CinqaError, match="no breakdown"):
        measure_rows(ret, "referrals", "factor", "3A")
    with pytest.raises(CinqaError, match="unknown measure"):
        measures(ret, names=["nonsense"])


def test_fixture_returns_of_both_formats_give_every_applicable_measure():
    for path, year in (("tests/fixtures/cin-2012-13.xml", "2012-13"), ("tests/fixtures/cin-2023-24.xml", "2023-24")):
        ret = read_return(Path(__file__).parents[1] / path)
        m = measures(ret, population=1000)
        expected = {n for n, d in MEASURES.items() if year in d.years}
        assert set(m["measure"]) == expected
        assert m.loc[m["breakdown"] == "all", "value"].notna().all()


def test_an_empty_return_gives_zero_counts_and_no_shares(tmp_path):
    m = measures(make_return(tmp_path, "2023-24"))
    totals = m[m["breakdown"] == "all"].set_index("measure")
    assert totals.loc["referrals", "value"] == 0 and totals.loc["cin_31_march", "value"] == 0
    assert pd.isna(totals.loc["assessments_within_45_days_share", "value"])
    assert pd.isna(totals.loc["icpc_duration_median", "value"])


# -- the timescales and band labels are written once, here ------------------------------------------

def _spellings(label: str) -> set[str]:
    """Return a band label with its other spelling ("1 to 10" and "1-10", "61 or more" and "61+")."""
    for pattern, other in ((r"(\d+) to (\d+)", r"\1-\2"), (r"(\d+)-(\d+)", r"\1 to \2"),
                           (r"(\d+) or more", r"\1+"), (r"(\d+)\+", r"\1 or more")):
        if re.fullmatch(pattern, label):
            return {label, re.sub(pattern, other, label)}
    return {label}


def test_no_module_but_measures_writes_a_timescale_or_a_band_label():
    labels = set().union(*(_spellings(b) for b in (*ASSESSMENT_BANDS, *ICPC_BANDS, *CPP_BANDS, AUTHORISED_BEFORE_START,
                                                     CONFERENCE_BEFORE_START)))
    limits = {t.days for t in TIMESCALES.values()}
    package = MEASURES_PY.parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == MEASURES_PY:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(package.parent)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in labels:
                found.append(f"{where} band label {node.value!r}")
            elif isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                literal = [o.value for o in operands if isinstance(o, ast.Constant) and o.value in limits
                           and isinstance(o.value, int)]
                if literal and any("day" in ast.unparse(o).lower() for o in operands):
                    found.append(f"{where} working days compared with {literal[0]}")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any("TIMESCALE" in ast.unparse(t) for t in targets):
                    found.append(f"{where} defines {ast.unparse(targets[0])}")
    assert not found, "\n".join(found)


# -- pre-proceedings (2026-27 on) -------------------------------------------------------------------

def _pp(child: int, start: str, offer: bool | None, held: bool | None, step: str | None, outcome: str | None) -> dict:
    return {"child": child, "PPStartDate": start, "FGDMMeetingOffer": offer, "FGDMMeetingFac": held,
            "StepDecisionDate": step, "PPOutcome": outcome}


def _pre_proceedings_return(tmp_path: Path) -> CensusReturn:
    """Five children in need in 2026-27; children 1, 2 and 4 start pre-proceedings in the year."""
    from cinqa.testing import build_return

    return build_return("2026-27", {"children": [{}] * 5, "pre_proceedings": [
        _pp(1, "2026-05-01", True, True, "2026-08-21", "A"),    # 112 days to the step decision
        _pp(1, "2026-10-01", False, None, None, None),          # no decision or outcome yet
        _pp(2, "2026-06-01", True, False, "2026-06-11", "B"),   # 10 days
        _pp(3, "2026-03-31", True, True, "2026-04-10", "C"),    # started last year: not counted
        _pp(4, "2026-07-01", None, None, "2026-06-30", "C"),    # decision before the start: not timed
    ]}, tmp_path)


def test_pre_proceedings_measures_count_what_started_in_the_year(tmp_path):
    ret = _pre_proceedings_return(tmp_path)
    m = measures(ret)
    assert value(m, "pp_children") == 3
    assert value(m, "pp_children_share") == pytest.approx(100 * 3 / 5)
    assert value(m, "pp_fgdm_offered_share") == pytest.approx(100 * 2 / 3)   # child 4's offer not recorded
    assert value(m, "pp_fgdm_held_share") == 50                               # of the two offered
    assert value(m, "pp_outcomes") == 4
    assert [value(m, "pp_outcomes", "pp_outcome", c) for c in ("A", "B", "C", "Not recorded")] == [1, 1, 1, 1]
    assert value(m, "pp_days_to_step_decision_median") == 61                  # (112 + 10) / 2
    assert m.loc[m["measure"] == "pp_days_to_step_decision_median", "unit"].iloc[0] == "days"
    assert set(measure_rows(ret, "pp_children")["LAchildID"]) == {"C1", "C2", "C4"}
    held = measure_rows(ret, "pp_fgdm_held_share")
    assert held[["LAchildID", "hit"]].values.tolist() == [["C1", True], ["C2", False]]


def test_pre_proceedings_measures_exist_from_2026_27_only(tmp_path):
    from cinqa.testing import build_return

    before = measures(build_return("2025-26", None, tmp_path, name="before"))
    assert not before["measure"].str.startswith("pp_").any()
    d = definitions().set_index("measure")
    assert d.loc["pp_children", "years"] == "2026-27 (provisional)"
    assert d.loc["referrals", "years"] == "2012-13..2026-27 (2026-27 provisional)"
    assert d.loc["pp_children", "note"].startswith("not collected before 2026-27")
    with pytest.raises(CinqaError, match="does not exist in 2025-26"):
        measure_rows(build_return("2025-26", None, tmp_path, name="again"), "pp_children")


def test_pre_proceedings_figures_say_which_census_facts_are_provisional(tmp_path):
    from cinqa.measures import labelled, provisional

    assert provisional("referrals") == ""
    median = provisional("pp_days_to_step_decision_median")
    assert "module PreProceedingsandFGDM (I)" in median and "StepDecisionDate N00832 (U)" in median
    assert "PPStartDate N00826 (I)" in median and "PPOutcome" not in median
    assert "code A (U)" in provisional("pp_outcomes", "pp_outcome", "A")
    assert "code" not in provisional("pp_outcomes", "pp_outcome", "Not recorded")
    shown = labelled(measures(_pre_proceedings_return(tmp_path), names=["pp_outcomes"]))
    row = shown[shown["category"].str.startswith("A ")].iloc[0]
    assert row["category"] == "A outcome A (meaning not confirmed)" and "code A (U)" in row["provisional"]
    assert row["description"] == "Pre-proceedings by outcome" and row["value"] == 1
