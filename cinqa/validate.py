"""Validate a census return against the DfE rules of its year with Great Expectations.

Each validation view is validated once against the suite of its rules, in an ephemeral GX
context: nothing is written to disk, analytics and progress bars are off. Results are read by
the rule in their ``meta`` (GX returns them out of order), a rule whose evaluation raised is
reported in ``Validation.errored`` rather than as failures, and the failing rows are looked up
in the views to give the tidy failures table described in ``notes/TEAM.md``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.errors import YearError
from cinqa.returns import CensusReturn
from cinqa.views import ViewBuilder

FAILURE_COLUMNS = ("rule", "severity", "message", "entity", "child", "LAchildID", "episode", "item", "fields",
                   "values", "line")
SUMMARY_COLUMNS = ("rule", "severity", "message", "children", "rows")
ERRORED_COLUMNS = ("rule", "entity", "expectation", "error")
MISSING = "(missing)"
_RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": ["row"],
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 0,
}


@dataclass
class Validation:
    """The outcome of validating one return: failures, a per-rule summary and the raw GX results."""

    year: str
    ret: CensusReturn
    failures: pd.DataFrame
    summary: pd.DataFrame
    errored: pd.DataFrame
    gx_result: dict[str, Any]
    checked: tuple[str, ...]
    views: dict[str, pd.DataFrame] = field(repr=False, default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        errors = int((self.summary["severity"] == "error").sum())
        queries = int((self.summary["severity"] == "query").sum())
        return (f"<Validation {self.year}: {len(self.checked)} rules checked, {len(self.failures)} failing rows "
                f"({errors} error rules, {queries} query rules), {len(self.errored)} rules errored>")


def validate(ret: CensusReturn, year: str | None = None, *, rules: Iterable[str] | None = None,
             expectations: str | Path | None = None) -> Validation:
    """Check ``ret`` against every DfE rule of census ``year`` (default: the return's own year).

    ``rules`` limits the check to those rule codes (``["8525Q", "8600"]``); ``expectations`` is
    another folder of rule suites (default: the package's ``expectations/``).
    """
    from cinqa import rules as registry

    year = year or ret.year
    if year not in spec.YEARS:
        raise YearError(f"census year {year!r} is not supported; choose one of {', '.join(spec.YEARS)}")
    wanted = tuple(sorted(set(rules))) if rules is not None else None
    clock = time.perf_counter()
    suites = registry.suites(year, wanted, expectations)
    seconds = {"suites": time.perf_counter() - clock}

    clock = time.perf_counter()
    builder = ViewBuilder(ret, year)
    views = {name: builder.view(name) for name in suites}
    seconds["views"] = time.perf_counter() - clock

    clock = time.perf_counter()
    results: dict[str, Any] = {}
    for name, suite in suites.items():
        if len(views[name]):
            results[name] = _batch(name, views[name]).validate(suite, result_format=_RESULT_FORMAT)
    seconds["gx"] = time.perf_counter() - clock

    clock = time.perf_counter()
    failures, errored = _tidy(results, views)
    summary = _summarise(failures)
    seconds["failures"] = time.perf_counter() - clock
    checked = tuple(sorted({e.meta["rule"] for s in suites.values() for e in s.expectations}))
    return Validation(year=year, ret=ret, failures=failures, summary=summary, errored=errored, gx_result=results,
                      checked=checked, views=views, seconds=seconds)


# -- Great Expectations ---------------------------------------------------------------------


@cache
def _context() -> Any:
    """Return the process's ephemeral GX context with one pandas data source."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


@cache
def _source() -> Any:
    return _context().data_sources.add_pandas("cinqa")


@cache
def _batch_definition(view: str) -> Any:
    return _source().add_dataframe_asset(view).add_batch_definition_whole_dataframe("whole")


def _batch(view: str, df: pd.DataFrame) -> Any:
    return _batch_definition(view).get_batch(batch_parameters={"dataframe": df})


def _raised(result: Any) -> str | None:
    """Return the exception text if the expectation's evaluation raised (GX has two shapes for it)."""
    info = result.exception_info or {}
    if "raised_exception" in info:
        return (info.get("exception_message") or "raised an exception") if info["raised_exception"] else None
    messages = [v.get("exception_message") or "raised an exception" for v in info.values()
                if isinstance(v, dict) and v.get("raised_exception")]
    return "; ".join(messages) if messages else None


# -- tidy tables ----------------------------------------------------------------------------


def _tidy(results: dict[str, Any], views: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts: list[pd.DataFrame] = []
    errored: list[dict[str, Any]] = []
    for name, res in results.items():
        view = views[name]
        for r in res.results:
            cfg = r.expectation_config
            meta = cfg.meta or {}
            problem = _raised(r)
            if problem is not None:
                errored.append({"rule": meta.get("rule"), "entity": meta.get("entity"), "expectation": cfg.type,
                                "error": problem})
                continue
            found = (r.result or {}).get("unexpected_index_list")
            # Listed rows are failures even when GX calls the expectation a success: it computes
            # success over non-missing values only, so a "must be present" check on an all-missing
            # column would otherwise pass.
            if r.success and not found:
                continue
            if not found:
                # A table-level expectation fails the whole view; report it once, on no particular row.
                rows = np.array([0] if len(view) == 1 else [], dtype="int64")
                if not len(rows):
                    errored.append({"rule": meta.get("rule"), "entity": meta.get("entity"), "expectation": cfg.type,
                                    "error": "failed without saying which rows"})
                    continue
            else:
                rows = np.fromiter((d["row"] for d in found), dtype="int64", count=len(found))
            parts.append(_failure_rows(view, rows, meta, _tested_columns(cfg.kwargs)))
    failures = (pd.concat(parts, ignore_index=True) if parts else _empty_failures())
    if len(failures):
        failures = (failures.drop_duplicates(["rule", "entity", "_row"])
                    .sort_values(["line", "_order", "_row"], na_position="first", kind="stable"))
    failures = failures.drop(columns=["_row", "_order"]).reset_index(drop=True)
    return _typed_failures(failures), pd.DataFrame(errored, columns=list(ERRORED_COLUMNS))


def _tested_columns(kwargs: dict[str, Any]) -> list[str]:
    out = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    out += [c for c in kwargs.get("column_list") or [] if c not in out]
    return out


def _failure_rows(view: pd.DataFrame, rows: np.ndarray, meta: dict[str, Any], tested: list[str]) -> pd.DataFrame:
    sub = view.iloc[rows]
    fields = list(meta.get("fields") or [])
    show = list(meta.get("show") or [f for f in fields if f in view.columns] or tested)
    values = _values(sub, show)
    n = len(sub)
    return pd.DataFrame({
        "rule": [str(meta["rule"])] * n,
        "severity": [meta["severity"]] * n,
        "message": [meta["message"]] * n,
        "entity": [meta["entity"]] * n,
        "child": sub["child"].array,
        "LAchildID": sub["LAchildID"].array,
        "episode": sub["episode"].array,
        "item": sub["item"].array,
        "fields": [", ".join(fields)] * n,
        "values": values,
        "line": sub["line"].array,
        "_row": sub["row"].to_numpy(),
        "_order": [_rule_order(str(meta["rule"]))] * n,
    })


def _values(sub: pd.DataFrame, columns: list[str]) -> list[str]:
    """Render ``Field=value; Field=value`` for each row, dates as YYYY-MM-DD."""
    if not columns:
        return [""] * len(sub)
    rendered = [f"{c}=" + _render(sub[c]) for c in columns if c in sub]
    if not rendered:
        return [""] * len(sub)
    out = rendered[0]
    for r in rendered[1:]:
        out = out + "; " + r
    return out.tolist()


def _render(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        text = s.dt.strftime("%Y-%m-%d")
    elif pd.api.types.is_bool_dtype(s.dtype):
        text = s.map({True: "true", False: "false"})
    else:
        text = s.astype("object").map(lambda v: str(v).lower() if isinstance(v, (bool, np.bool_)) else str(v),
                                      na_action="ignore")
    return text.astype("object").where(s.notna().to_numpy(), MISSING).astype("str").reset_index(drop=True)


def _rule_order(rule: str) -> int:
    digits = "".join(ch for ch in rule if ch.isdigit())
    return int(digits) if digits else 0


def _empty_failures() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in (*FAILURE_COLUMNS, "_row", "_order")})


def _typed_failures(df: pd.DataFrame) -> pd.DataFrame:
    out = df.loc[:, list(FAILURE_COLUMNS)].copy()
    for c in ("rule", "severity", "message", "entity", "LAchildID", "fields", "values"):
        out[c] = out[c].astype("str")
    for c in ("child", "episode", "item", "line"):
        out[c] = out[c].astype("Int64")
    return out


def _summarise(failures: pd.DataFrame) -> pd.DataFrame:
    if failures.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("children", "rows") else "str")
                             for c in SUMMARY_COLUMNS})
    g = failures.groupby(["rule", "severity", "message"], sort=False)
    out = pd.DataFrame({"children": g["child"].nunique(), "rows": g.size()}).reset_index()
    out["_sev"] = (out["severity"] != "error").astype(int)
    out["_order"] = out["rule"].map(_rule_order)
    out = out.sort_values(["_sev", "_order", "rule"], kind="stable").drop(columns=["_sev", "_order"])
    out["children"] = out["children"].astype("int64")
    out["rows"] = out["rows"].astype("int64")
    return out.loc[:, list(SUMMARY_COLUMNS)].reset_index(drop=True)
