"""Lint the rule suites: known meta keys only, and row conditions that select the same rows on any engine.

A meta key outside :data:`cinqa.rules.META_KEYS` and :data:`cinqa.rules.OPTIONAL_META_KEYS` is a
typo (``guidence``) that would otherwise be ignored, leaving the rule without what it meant to say.

pandas keeps a null row under ``NOT_IN`` or ``!=`` (``~isin``, NaN != x), SQL engines (Spark, SQL
databases) drop it (NULL NOT IN (...) is unknown). A negated comparison over a column that may be
null is therefore allowed only in an AND group that also requires the column to be present; the
null rows are then selected, or not, by a branch of their own. Every view column is taken as
possibly null, since any value of a return may be missing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cinqa import rules

NEGATED = frozenset({"NOT_IN", "!="})
# A condition written as a pandas string: its negations cannot be checked for a guard.
NEGATED_TEXT = re.compile(r"!=|\bnot\s+in\b|~")


def unguarded(cond: Any, present: frozenset[str] = frozenset()) -> list[str]:
    """List the negated comparisons of ``cond`` over a column that its AND group does not require present."""
    if isinstance(cond, str):
        return [cond] if NEGATED_TEXT.search(cond) else []
    if not isinstance(cond, dict):
        return []
    kind = cond.get("type")
    if kind == "or":
        return [hit for sub in cond["conditions"] for hit in unguarded(sub)]
    if kind == "and":
        subs = cond["conditions"]
        required = frozenset(c["column"]["name"] for c in subs if c.get("type") == "nullity" and c["is_null"] is False)
        return [hit for sub in subs for hit in unguarded(sub, present | required)]
    if kind == "comparison" and cond["operator"] in NEGATED and cond["column"]["name"] not in present:
        return [f"{cond['column']['name']} {cond['operator']} {cond['parameter']!r}"]
    return []


KNOWN_META = frozenset(rules.META_KEYS + rules.OPTIONAL_META_KEYS)


def unknown_meta_keys(suite: dict[str, Any]) -> list[str]:
    """List the meta keys of ``suite``'s expectations (and of their versions) that the registry does not know."""
    out = []
    for i, exp in enumerate(suite.get("expectations", [])):
        meta = exp.get("meta") or {}
        named = f"expectation {i + 1} (rule {meta.get('rule', '?')})"
        out += [f"{named}: {k}" for k in meta if k not in KNOWN_META]
        for version in meta.get("versions") or []:
            out += [f"{named}, version {version.get('rule', '?')}: {k}" for k in version
                    if k not in KNOWN_META - {"versions"}]
    return out


@pytest.mark.parametrize("path", sorted(p for p in Path(rules.EXPECTATIONS_DIR).glob("*.json")
                                        if p.name != rules.UNCHECKED_FILE), ids=lambda p: p.name)
def test_meta_keys_are_known(path):
    assert not unknown_meta_keys(json.loads(path.read_text("utf-8"))), path.name


@pytest.mark.parametrize("meta, hits", [
    ({"rule": "8500", "guidance": "g"}, 0),
    ({"rule": "8500", "no_guidance": "r"}, 0),
    ({"rule": "8500", "guidence": "g"}, 1),
    ({"rule": "8500", "versions": [{"rule": "8500", "no_guidence": "r"}]}, 1),
    ({"rule": "8500", "versions": [{"rule": "8500", "versions": []}]}, 1),
])
def test_the_lint_finds_a_misspelt_meta_key(meta, hits):
    assert len(unknown_meta_keys({"expectations": [{"type": "t", "meta": meta}]})) == hits


@pytest.mark.parametrize("entry", rules.entries(), ids=lambda e: f"{e.view}-{e.rule}-{min(e.years, default='')}")
def test_row_conditions_do_not_depend_on_null_semantics(entry):
    assert not unguarded(entry.kwargs.get("row_condition")), (
        f"{entry.view}.json, rule {entry.rule}: write the null rows as a branch of their own "
        "(nullity is_null true, OR the comparison beside nullity is_null false)")


def test_every_suite_is_linted():
    assert {e.view for e in rules.entries()} >= {"children", "episodes", "header"}
    assert any(e.kwargs.get("row_condition") for e in rules.entries())


@pytest.mark.parametrize("cond, hits", [
    ({"type": "comparison", "column": {"name": "UPNunknown"}, "operator": "NOT_IN", "parameter": ["UN2"]}, 1),
    ({"type": "and", "conditions": [
        {"type": "nullity", "column": {"name": "UPN"}, "is_null": False},
        {"type": "comparison", "column": {"name": "UPNunknown"}, "operator": "NOT_IN", "parameter": ["UN2"]}]}, 1),
    ({"type": "or", "conditions": [
        {"type": "and", "conditions": [
            {"type": "nullity", "column": {"name": "ReasonForClosure"}, "is_null": True}]},
        {"type": "and", "conditions": [
            {"type": "comparison", "column": {"name": "ReasonForClosure"}, "operator": "!=", "parameter": "RC1"}]}]}, 1),
    ('ReasonForClosure != "RC1"', 1),
    ("UPNunknown not in ['UN2']", 1),
    ({"type": "and", "conditions": [
        {"type": "nullity", "column": {"name": "UPNunknown"}, "is_null": False},
        {"type": "comparison", "column": {"name": "UPNunknown"}, "operator": "NOT_IN", "parameter": ["UN2"]}]}, 0),
    ({"type": "comparison", "column": {"name": "ReferralNFA"}, "operator": "==", "parameter": True}, 0),
    (None, 0),
])
def test_the_lint_finds_an_unguarded_negation(cond, hits):
    assert len(unguarded(cond)) == hits
