"""Lint the rule suites: a row condition must select the same rows whatever the engine's null semantics.

pandas keeps a null row under ``NOT_IN`` or ``!=`` (``~isin``, NaN != x), SQL engines (Spark, SQL
databases) drop it (NULL NOT IN (...) is unknown). A negated comparison over a column that may be
null is therefore allowed only in an AND group that also requires the column to be present; the
null rows are then selected, or not, by a branch of their own. Every view column is taken as
possibly null, since any value of a return may be missing.
"""

from __future__ import annotations

import re
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
