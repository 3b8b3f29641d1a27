"""Every DfE rule: its pass/fail cases (tests/cases/<rule>.yml) and the registry's own consistency."""

import json
import re
import shutil
from difflib import SequenceMatcher
from pathlib import Path

import pandas as pd
import pytest

from cinqa import rules, spec
from cinqa.testing import build_return, load_cases, run_case
from cinqa.validate import validate
from cinqa.views import build_views

CASES = Path(__file__).parent / "cases"


def default_year(rule: str) -> str:
    """The latest supported year the rule applies to (the latest year at all if none is supported)."""
    years = set().union(*(e.years for e in rules.entries() if e.rule == rule))
    supported = [y for y in spec.SUPPORTED_YEARS if y in years]
    return (supported or sorted(years))[-1]


def all_cases():
    out = []
    for path in sorted(CASES.glob("*.yml")):
        for case in load_cases(path, default_year(path.stem)):
            out.append(pytest.param(case, id=case.id))
    return out


@pytest.mark.parametrize("case", all_cases())
def test_rule_case(case, tmp_path):
    outcome = run_case(case, tmp_path)
    assert not outcome.problems(), f"{case.source}: " + "; ".join(outcome.problems())


def test_every_rule_has_failing_and_passing_cases():
    lacking = []
    for rule in sorted({e.rule for e in rules.entries()}):
        path = CASES / f"{rule}.yml"
        cases = load_cases(path, default_year(rule)) if path.exists() else []
        kinds = {c.expect for c in cases}
        if kinds != {"pass", "fail"}:
            lacking.append(f"{rule} ({', '.join(sorted(kinds)) or 'no case file'})")
    assert not lacking, "rules without both a failing and a passing case: " + ", ".join(lacking)


def test_every_case_file_belongs_to_a_rule():
    known = {e.rule for e in rules.entries()}
    assert {p.stem for p in CASES.glob("*.yml")} <= known


def test_every_expectation_says_what_it_checks():
    for e in rules.entries():
        where = f"{e.view}.json rule {e.rule}"
        assert all(e.meta.get(k) for k in rules.META_KEYS), where
        assert isinstance(e.meta["fields"], list) and all(isinstance(f, str) for f in e.meta["fields"]), where
        assert e.severity == ("query" if e.rule.endswith("Q") else "error"), where
        assert e.entity == rules.view_entity(e.view), where
        assert e.years, where
        assert e.meta.get("years_status", "V") in ("V", "I", "U"), where
        # Years before the 2022-23 rule lists are inferred (or, for provisional 2012-13 rules
        # whose DfE code is unknown, unverified) and must say so.
        if min(e.years) < rules.FIRST_LISTED_YEAR:
            assert e.years_status in ("I", "U"), where
        if e.years_status == "U":
            assert e.meta.get("note"), where


SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
# The queries' DfE messages open with a stock request that says nothing about the rule.
STOCK_OPENING = re.compile(r"^please check( and (either )?amend( data)? or provide a reason)?\s*")


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def guidance_problem(meta: dict) -> str:
    """Say what is wrong with an expectation's fix guidance (empty when nothing is).

    It must have ``guidance`` (one to three sentences that do not repeat the DfE message) or a
    written ``no_guidance`` reason, not both.
    """
    guidance, reason = meta.get("guidance"), meta.get("no_guidance")
    if guidance and reason:
        return "has both guidance and a no_guidance reason"
    if not guidance and not reason:
        return "has neither guidance nor a no_guidance reason"
    text = guidance or reason
    if not isinstance(text, str) or len(_words(text).split()) < 5:
        return f"{'guidance' if guidance else 'no_guidance'} is not written out: {text!r}"
    if reason:
        return ""
    sentences = len(SENTENCE_END.findall(guidance.strip()))
    if not 1 <= sentences <= 3 or not guidance.strip().endswith("."):
        return f"guidance is not one to three sentences ending in a full stop ({sentences} found)"
    message, words = STOCK_OPENING.sub("", _words(meta["message"])), _words(guidance)
    if message in words or SequenceMatcher(None, message, words).ratio() > 0.6:
        return "guidance repeats the DfE message"
    return ""


@pytest.mark.parametrize("entry", rules.entries(), ids=lambda e: f"{e.view}-{e.rule}-{min(e.years)}-{e.position}")
def test_every_rule_of_every_year_has_fix_guidance_or_a_reason(entry):
    problem = guidance_problem(entry.meta)
    assert not problem, f"{entry.view}.json rule {entry.rule} ({entry.years_text}): {problem}"


@pytest.mark.parametrize("meta, problem", [
    ({"message": "LA Child ID missing"}, "neither"),
    ({"message": "LA Child ID missing", "guidance": "The ID was not copied from the case record.",
      "no_guidance": "Nothing to say about this one."}, "both"),
    ({"message": "LA Child ID missing", "guidance": "LA Child ID missing."}, "not written out"),
    ({"message": "Please check and either amend data or provide a reason: Child is over 25 years old",
      "guidance": "The rule fires when the child is over 25 years old, so check it."}, "repeats"),
    ({"message": "Child is over 25 years old", "guidance": "A child is over 25 years old on record."}, "repeats"),
    ({"message": "LA Child ID missing", "guidance": "One. Two words here. Three more words. Four of them."},
     "three sentences"),
    ({"message": "LA Child ID missing", "guidance": "The ID was not copied from the case record"}, "three sentences"),
    ({"message": "LA Child ID missing", "no_guidance": "Depends entirely on the local system."}, ""),
    ({"message": "LA Child ID missing", "guidance": "The child was added to the extract from a partner "
      "system without its case-management ID; fix it on the person record."}, ""),
])
def test_the_guidance_check_names_what_is_wrong(meta, problem):
    found = guidance_problem(meta)
    assert (problem in found and bool(found)) if problem else found == ""


def test_guidance_is_listed_and_added_beside_the_rule_facts():
    listed = rules.list_rules("2025-26").set_index("rule")
    entry = next(e for e in rules.rules_for_year("2025-26") if e.rule == "8805")
    assert entry.guidance and listed.loc["8805", "guidance"] == entry.guidance
    out = rules.with_rule_facts(pd.DataFrame({"rule": ["8805"], "message": [entry.message]}), "2025-26")
    assert out.loc[0, "guidance"] == entry.guidance and out.loc[0, "message"] == entry.message


def test_a_rule_in_two_parts_lists_each_parts_guidance_once(tmp_path):
    meta = {"rule": "8500", "message": "m", "severity": "error", "years": "2023-24", "entity": "children"}
    suite = {"name": "children", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c},
         "meta": {**meta, "fields": [c], "guidance": g}}
        for c, g in (("LAchildID", "First."), ("UPN", "Second."), ("Sex", "First."))]}
    (tmp_path / "children.json").write_text(json.dumps(suite), "utf-8")
    assert rules.list_rules("2023-24", tmp_path)["guidance"].tolist() == ["First. Second."]


def test_a_rule_has_one_message_and_severity_per_year():
    for year in spec.YEARS:
        seen: dict[str, tuple[str, str]] = {}
        for e in rules.rules_for_year(year):
            assert seen.setdefault(e.rule, (e.message, e.severity)) == (e.message, e.severity), (year, e.rule)


@pytest.mark.parametrize("year", spec.YEARS)
def test_list_rules_matches_the_registry(year):
    listed = rules.list_rules(year)
    assert tuple(listed.columns) == rules.LIST_COLUMNS
    assert listed["rule"].is_unique
    checkable = set(listed.loc[listed["checkable"], "rule"])
    assert checkable == {e.rule for e in rules.rules_for_year(year)}
    others = listed[~listed["checkable"]]
    assert (others["reason"].str.len() > 0).all()
    assert set(others["rule"]) == {u.rule for u in rules.unchecked() if year in u.years} - checkable


def _rules_change(year: str) -> bool:
    """Tell whether ``year``'s assembled rules differ from the year before (or it is the first)."""
    i = spec.YEARS.index(year)
    if i == 0:
        return True
    def resolved(y):
        return json.dumps([rules.expectation_config(e, y)["kwargs"] | {"rule": e.rule}
                           for e in rules.rules_for_year(y)], sort_keys=True, default=str)
    return resolved(year) != resolved(spec.YEARS[i - 1])


@pytest.mark.parametrize("year", [pytest.param(y, marks=() if _rules_change(y) else pytest.mark.slow)
                                  for y in spec.YEARS])
def test_the_base_return_passes_every_rule_of_its_year(year, tmp_path, request):
    # Years whose rules are those of the year before are covered by it; they run with --runslow.
    if not _rules_change(year) and not request.config.getoption("--runslow", default=False):
        pytest.skip("same rules as the year before; run with --runslow")
    v = validate(build_return(year, {}, tmp_path))
    assert v.errored.empty, v.errored.to_dict("records")
    assert v.failures.empty, v.failures[["rule", "values"]].to_dict("records")
    assert set(v.checked) == {e.rule for e in rules.rules_for_year(year)}


@pytest.mark.parametrize("year", spec.YEARS)
def test_expectations_read_only_columns_their_views_have(year, tmp_path):
    views = build_views(build_return(year, {}, tmp_path))
    for e in rules.rules_for_year(year):
        cols = set(views[e.view].columns)
        named = {v for k, v in e.kwargs.items() if k in ("column", "column_A", "column_B", "min_column", "max_column")}
        named |= set(e.kwargs.get("column_list") or [])
        named |= set(_condition_columns(e.kwargs.get("row_condition")))
        named |= set(e.meta.get("show") or [])
        assert named <= cols, f"{e.view}.json rule {e.rule} in {year}: no view column {sorted(named - cols)}"


def _condition_columns(cond):
    if not cond:
        return []
    if "conditions" in cond:
        return [c for sub in cond["conditions"] for c in _condition_columns(sub)]
    return [cond["column"]["name"]]


def test_changed_rules_apply_in_the_right_years():
    def versions(rule):
        return sorted((min(e.years), max(e.years), e.message) for e in rules.entries() if e.rule == rule)

    assert [v[:2] for v in versions("4180")] == [("2012-13", "2023-24"), ("2024-25", "2026-27")]
    assert versions("4180")[1][2] == "Sex must be provided and equal M, F, or U"
    assert {e.rule for e in rules.rules_for_year("2021-22")} >= {"8525", "8569"}
    assert not {"8525Q", "8569Q"} & {e.rule for e in rules.rules_for_year("2021-22")}
    assert "8866" not in {e.rule for e in rules.rules_for_year("2012-13")}


def test_a_check_written_once_gives_one_entry_per_version(tmp_path):
    check = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "LAchildID"},
             "meta": {"message": "LA Child ID missing", "entity": "children", "fields": ["LAchildID"],
                      "versions": [{"rule": "9001", "severity": "error", "years": "2012-13..2021-22", "note": "old"},
                                   {"rule": "9001Q", "severity": "query", "years": "2022-23..2026-27"}]}}
    (tmp_path / "children.json").write_text(json.dumps({"name": "children", "expectations": [check]}))
    old, new = rules.entries(tmp_path)
    assert (old.rule, old.severity, old.years_text, old.meta["note"]) == ("9001", "error", "2012-13..2021-22", "old")
    assert (new.rule, new.severity, new.years_text, "note" in new.meta) == ("9001Q", "query", "2022-23..2026-27", False)
    assert old.kwargs == new.kwargs == check["kwargs"] and old.message == new.message == "LA Child ID missing"
    assert "versions" not in old.meta
    assert [e.rule for e in rules.rules_for_year("2021-22", tmp_path)] == ["9001"]
    assert [e.rule for e in rules.rules_for_year("2022-23", tmp_path)] == ["9001Q"]


def test_the_renamed_and_regraded_rules_are_written_once():
    # 8525 became the query 8525Q in 2022-23: one check, two versions, not two copies of the check.
    checks = {}
    for e in rules.entries():
        checks.setdefault((e.view, e.type, json.dumps(e.kwargs, sort_keys=True)), set()).add(e.position)
    assert all(len(positions) == 1 for positions in checks.values())


def test_adding_a_rule_follows_the_walk_through(tmp_path, monkeypatch):
    """Follow docs/rules.md on a made-up rule in a copy of the suites: entry and guidance, cases, injector or reason."""
    from cinqa import synth
    from cinqa.synth import faults

    suites, year = tmp_path / "expectations", "2025-26"
    shutil.copytree(rules.EXPECTATIONS_DIR, suites)
    children = json.loads((suites / "children.json").read_text("utf-8"))
    fix = "Usually a test prefix was left on the person ID by a data migration. Remove it on the person record."
    children["expectations"].append({
        "type": "expect_column_values_to_not_match_regex", "kwargs": {"column": "LAchildID", "regex": "^ZZ"},
        "meta": {"rule": "9901", "message": "LA Child ID must not start with ZZ (made up)", "severity": "error",
                 "years": "2024-25..2026-27", "entity": "children", "fields": ["LAchildID"], "guidance": fix}})
    (suites / "children.json").write_text(json.dumps(children), "utf-8")
    made_up = next(e for e in rules.entries(suites) if e.rule == "9901")
    assert guidance_problem(made_up.meta) == "" and made_up.guidance == fix
    assert "neither guidance" in guidance_problem({**made_up.meta, "guidance": ""}), "the meta-test asks for it"
    assert rules.list_rules(year, suites).set_index("rule").loc["9901", "guidance"] == fix
    assert faults.unexplained_rules(year, suites) == ["9901"]
    assert "9901" not in faults.injectable_rules(year, suites) and faults.unexplained_rules(year) == []

    cases = tmp_path / "9901.yml"
    cases.write_text('rule: "9901"\ncases:\n'
                     '  - {name: starts with ZZ, expect: fail, failing: [ZZ1], tables: {children: [{LAchildID: ZZ1}]}}\n'
                     '  - {name: ZZ inside, expect: pass, tables: {children: [{LAchildID: A1ZZ}]}}\n', "utf-8")
    outcomes = [run_case(case, tmp_path, expectations=suites) for case in load_cases(cases, year)]
    assert [(o.case.expect, o.problems()) for o in outcomes] == [("fail", []), ("pass", [])]

    monkeypatch.setitem(faults.NOT_INJECTABLE, "9901", (None, "made up"))
    assert faults.unexplained_rules(year, suites) == [] and faults.uninjectable_rules(year, suites)["9901"] == "made up"
    monkeypatch.delitem(faults.NOT_INJECTABLE, "9901")
    monkeypatch.setattr(faults, "INJECTORS", dict(faults.INJECTORS))
    faults.register("9901", "children", faults.Edit("children", {"LAchildID": lambda f, k: f"ZZ{k['LAchildID']}"}))
    assert faults.unexplained_rules(year, suites) == [] and "9901" in faults.injectable_rules(year, suites)
    assert "9901" not in faults.injectable_rules("2023-24", suites), "the years are the suite entry's"

    bad, truth = synth.inject(synth.generate(year, children=30, seed=3), ["9901"], seed=1, expectations=suites)
    found = validate(bad, rules=["9901"], expectations=suites).failures
    assert list(truth["rule"]) == ["9901"] and list(found["LAchildID"]) == list(truth["LAchildID"])


def test_listing_says_how_each_years_rule_is_known():
    def status(year):
        listed = rules.list_rules(year)
        return dict(zip(listed["rule"], listed["status"]))

    # Years before the DfE rule lists are inferred; the listed years of the same rule are not.
    assert status("2012-13")["100"] == "I" and status("2026-27")["100"] == "V"
    assert status("2012-13")["IA-8670Q"] == "U"
    provisional = status("2026-27")
    assert {r for r, s in provisional.items() if s != "V"} >= {
        "8995Q", "9000Q", "9005", "9006", "9007", "9008", "9009", "9010Q", "9011", "9012", "9013", "9015Q"}
    assert provisional["8995Q"] == provisional["9000Q"] == "U"


def test_pre_proceedings_queries_are_queries_and_say_fgdm(tmp_path):
    # data-to-insight's draft registers 9010Q and 9015Q as errors and speaks of FGM in 8995Q.
    ret = build_return("2026-27", {"pre_proceedings": [{"FGDMMeetingFac": None, "ReviewMeetingsCount": None}]},
                       tmp_path)
    summary = validate(ret).summary.set_index("rule")
    assert summary.loc[["9010Q", "9015Q"], "severity"].tolist() == ["query", "query"]
    empty = validate(build_return("2026-27", {"pre_proceedings": []}, tmp_path, name="none")).summary
    message = empty.set_index("rule").loc["8995Q", "message"]
    assert "(pre-proceedings and FGDM)" in message and "FGM" not in message


def test_list_rules_shows_each_rules_status_and_note():
    listed = rules.list_rules("2012-13").set_index("rule")
    assert listed.loc["CA-1103", "status"] == "U"
    assert listed.loc["CA-1103", "note"].startswith("Provisional code and wording")
    assert listed.loc["8500", "note"] == ""


def test_a_rule_with_two_versions_in_a_year_lists_both_notes_once(tmp_path):
    suite = {"name": "children", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "LAchildID"},
         "meta": {"rule": "8500", "message": "m", "severity": "error", "years": "2023-24", "entity": "children",
                  "fields": ["LAchildID"], "note": "First."}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "UPN"},
         "meta": {"rule": "8500", "message": "m", "severity": "error", "years": "2023-24", "entity": "children",
                  "fields": ["UPN"], "note": "Second."}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "Sex"},
         "meta": {"rule": "8500", "message": "m", "severity": "error", "years": "2023-24", "entity": "children",
                  "fields": ["Sex"], "note": "First."}}]}
    (tmp_path / "children.json").write_text(json.dumps(suite), "utf-8")
    assert rules.list_rules("2023-24", tmp_path)["note"].tolist() == ["First. Second."]


def test_with_rule_facts_puts_status_note_and_guidance_after_the_message():
    frame = pd.DataFrame({"rule": ["CA-1103", "nope"], "severity": ["error", "error"], "message": ["a", "b"],
                          "rows": [1, 2]})
    out = rules.with_rule_facts(frame, "2012-13")
    assert list(out.columns) == ["rule", "severity", "message", "status", "note", "guidance", "rows"]
    assert out["guidance"].iloc[1] == ""
    assert out["status"].tolist() == ["U", ""]
    assert out["note"].iloc[0].startswith("Provisional") and out["note"].iloc[1] == ""
