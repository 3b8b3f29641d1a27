"""Validate a census return against the DfE rules of its year with Great Expectations.

Each validation view is validated once against the suite of its rules, in an ephemeral GX
context: nothing is written to disk, analytics and progress bars are off. Results are read by
the rule in their ``meta`` (GX returns them out of order), a rule whose evaluation raised is
reported in ``Validation.errored`` rather than as failures, and the failing rows are looked up
in the views to give the failures table that :mod:`cinqa.failures` describes.

GX spends a fixed ~20-50 ms per expectation on each validation, whatever the data size,
mostly rebuilding each expectation's configuration (a pydantic dump of all its fields) for
every metric it asks for, and filtering the batch again for each metric of an expectation
with a row condition. So that what GX does per expectation stays small:

* the suites are built once per process and carry a lean ``meta`` (rule and entry number);
  the full meta is put back on the results afterwards;
* while cinqa validates, GX builds an expectation's configuration once per kwargs lookup
  instead of once per key it looks up (:func:`_install_pinning`);
* GX is given only the columns a view's suite reads, with ``row`` as the frame's index, so
  filtering copies few columns and failing rows come back as one list of row numbers
  (``exclude_unexpected_values``) instead of one dictionary per failing row;
* expectations that share a row condition run together on the rows it selects, filtered once
  with the clause GX itself would use, instead of GX filtering again for every metric;
* GX first gives every expectation's verdict alone and lists the failing rows only of those
  that failed, raised or may hide failing rows (:func:`_run_group`), unless most expectations
  run so far have failed (:class:`_Tally`); the raw results of the others carry their verdict,
  not GX's row counts;
* on a machine with more than one core, a large validation runs part of the view suites in
  a forked helper process while this process runs the rest (POSIX only; ``workers=1`` or the
  environment variable ``CINQA_WORKERS=1`` turns it off).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import html
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from cinqa import failures as table
from cinqa import spec
from cinqa.errors import TableError, YearError
from cinqa.progress import bar
from cinqa.returns import CensusReturn, issue_lines, issues_first
from cinqa.views import ViewBuilder

_RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": ["row"],
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 0,
    # With ``row`` as the index this gives [{"row": [3, 17, ...]}] instead of a dict per row.
    "exclude_unexpected_values": True,
}
_VERDICT_FORMAT = {"result_format": "BOOLEAN_ONLY"}
"""GX's result format for each expectation's first run: its verdict, not its rows (see :func:`_run_group`)."""
_REPR_ISSUES = 10
_REPR_HTML_ROWS = 50
_PARALLEL_MIN_EXPECTATIONS = 24
"""Below this many expectations a helper process costs more than it saves."""


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

    @property
    def verdict(self) -> table.Verdict:
        """Whether the return is ready to submit (see :func:`cinqa.failures.verdict`)."""
        return table.verdict(self.failures, self.errored, self.ret.issues)

    @property
    def rule_summary(self) -> pd.DataFrame:
        """The summary with each failing rule's status (V, I or U), note and fix guidance in the year.

        See :func:`cinqa.rules.with_rule_facts`.
        """
        from cinqa.rules import with_rule_facts

        return with_rule_facts(self.summary, self.year)

    def __repr__(self) -> str:
        errors = int((self.summary["severity"] == "error").sum())
        queries = int((self.summary["severity"] == "query").sum())
        head = (f"<Validation {self.year}: {len(self.checked)} rules checked, {len(self.failures)} failing rows "
                f"({errors} error rules, {queries} query rules), {len(self.errored)} rules errored; "
                f"verdict: {self.verdict}")
        issues = issue_lines(self.ret.issues)
        if not issues:
            return head + ">"
        # Structural issues come first: a file that was not fully read makes every count below a lower bound.
        shown = issues[:_REPR_ISSUES] + ([f"... {len(issues) - _REPR_ISSUES:,} more"]
                                         if len(issues) > _REPR_ISSUES else [])
        return (f"{head};\n{table.counted(len(issues), 'structural issue')} (line numbers of the XML file):\n"
                + "\n".join(f"  {line}" for line in shown) + ">")

    def _repr_html_(self) -> str:
        """Show the verdict, the structural issues with their lines, then the failing rules (for notebooks)."""
        v = self.verdict
        parts = [f"<p><b>{html.escape(str(v))}</b>: census year {self.year}, {len(self.checked)} rules checked, "
                 f"{len(self.failures):,} failing rows.</p>"]
        parts += [f"<p>{html.escape(line)}</p>" for line in v.details]
        issues = issues_first(self.ret.issues)
        if len(issues):
            parts.append(f"<p><b>{table.counted(len(issues), 'structural issue')}</b> (lines of the XML file; "
                         f"errors first):</p>")
            parts.append(_html_frame(issues.head(_REPR_HTML_ROWS)))
            if len(issues) > _REPR_HTML_ROWS:
                parts.append(f"<p>... and {len(issues) - _REPR_HTML_ROWS:,} more (see <code>.ret.issues</code>).</p>")
        if len(self.summary):
            parts.append(_html_frame(self.rule_summary))
        return "\n".join(parts)


def _html_frame(df: pd.DataFrame) -> str:
    """Write a table as HTML without its index, missing values blank."""
    return df.astype("object").where(df.notna(), "").to_html(index=False, escape=True, border=0)


def validate(ret: CensusReturn, year: str | None = None, *, rules: Iterable[str] | None = None,
             expectations: str | Path | None = None, workers: int | None = None,
             progress: bool | None = None,
             runner: Callable[[dict[str, Any], dict[str, pd.DataFrame], Callable[[int], Any]], dict[str, Any]]
             | None = None) -> Validation:
    """Check ``ret`` against every DfE rule of census ``year`` (default: the return's own year).

    ``rules`` limits the check to those rule codes (``["8525Q", "8600"]``); ``expectations`` is
    another folder of rule suites (default: the package's ``expectations/``). ``workers`` is the
    number of processes the view suites may share (default: ``CINQA_WORKERS``, else 2 when the
    machine has two cores or more; a small validation always runs in this process alone). A bar
    counts the rules run where someone can see it (``progress``: see :func:`cinqa.progress.shown`).
    Tables edited since reading must keep every column, with its type, that reading gave them
    (:meth:`CensusReturn.check_tables`); otherwise a :class:`~cinqa.errors.TableError` names each one.
    ``runner`` runs the suites over the views instead of :func:`run_suites`, taking its ``tick``
    (:mod:`cinqa.spark`'s).
    """
    from cinqa import rules as registry

    if not isinstance(ret, CensusReturn):
        raise TableError(f"validate checks a CensusReturn (from cinqa.read_return), not a {type(ret).__name__}")
    ret.check_tables()
    year = year or ret.year
    if year not in spec.YEARS:
        raise YearError(f"census year {year!r} is not supported; choose one of {', '.join(spec.YEARS)}")
    wanted = tuple(sorted(set(rules))) if rules is not None else None
    label = ret.path.name if ret.path is not None else f"the {year} return"
    with bar(f"Validating {label}: loading the rules", None, unit="rule", show=progress) as counter:
        clock = time.perf_counter()
        plans = registry.view_suites(year, wanted, expectations)
        seconds = {"suites": time.perf_counter() - clock}

        counter.set_description(f"Validating {label}: preparing the data")
        clock = time.perf_counter()
        builder = ViewBuilder(ret, year)
        views = {name: builder.view(name) for name in plans}
        seconds["views"] = time.perf_counter() - clock

        counter.reset(total=sum(len(p.entries) for p in plans.values()))
        counter.set_description(f"Validating {label}")
        clock = time.perf_counter()
        results = (run_suites(plans, views, workers, counter.update) if runner is None
                   else runner(plans, views, counter.update))
        seconds["gx"] = time.perf_counter() - clock

    clock = time.perf_counter()
    failures, errored = _tidy(results, views)
    summary = table.summarise(failures)
    seconds["failures"] = time.perf_counter() - clock
    checked = tuple(sorted({e.rule for p in plans.values() for e in p.entries}))
    return Validation(year=year, ret=ret, failures=failures, summary=summary, errored=errored, gx_result=results,
                      checked=checked, views=views, seconds=seconds)


def run_suites(plans: dict[str, Any], views: dict[str, pd.DataFrame], workers: int | None = None,
               tick: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Validate each view against its suite with GX; return the GX results by view, with full meta.

    ``plans`` are :func:`cinqa.rules.view_suites`; views without rows are not validated.
    ``tick(n)`` is told of every ``n`` expectations run (or skipped, on a view without rows).
    """
    tick = tick or _ignore
    names = [n for n in plans if len(views[n])]
    tick(sum(len(plans[n].entries) for n in plans if n not in names))
    frames = {n: _frame(views[n], plans[n].columns) for n in names}
    size = sum(len(plans[n].entries) for n in names)
    if _workers(workers) < 2 or size < _PARALLEL_MIN_EXPECTATIONS or len(names) < 2:
        tally = _Tally()
        parts = {n: _run_one(plans[n], frames[n], tick, tally) for n in names}
    else:
        parts = _run_shared(names, plans, frames, tick)
    return {n: _merge(plans[n], parts[n]) for n in names}


def _ignore(_: int) -> None:
    """Take a progress tick and do nothing with it."""


def _frame(view: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Give GX the columns a suite reads, indexed by ``row`` (GX matches names regardless of case)."""
    out = _narrow(view, columns)
    out.index = pd.Index(view["row"].to_numpy(), name="row")
    return out


def _narrow(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Keep ``columns`` (all of them when none are named), never the ``row`` column itself."""
    wanted = {c.lower() for c in columns}
    return frame.loc[:, [c for c in frame.columns if (not wanted or c.lower() in wanted) and c != "row"]]


def _run_one(plan: Any, frame: pd.DataFrame, tick: Callable[[int], Any] = _ignore,
             tally: _Tally | None = None) -> list[Any]:
    """Run a view's condition groups: each on the rows its condition selects, as GX would select them.

    ``tally`` counts what this validation's groups have run so far (see :class:`_Tally`).
    """
    tally = tally if tally is not None else _Tally()
    out = []
    for group in plan.groups:
        rows, suite = frame, group.suite
        if group.clause is not None:
            try:
                rows = frame.query(group.clause)
            except Exception:  # let GX apply the condition itself and report the error per rule
                rows, suite = frame, group.conditioned
        if suite is group.suite and group.columns:
            # Only the group's own columns: GX fingerprints (hashes) every frame it is given.
            rows = _narrow(rows, group.columns)
        out.append(_run_group(plan.view, rows, suite, tally))
        tick(len(group.suite.expectations))
    return out


@dataclass
class _Tally:
    """Count the expectations one validation has run, and those of them :func:`_unsettled` named.

    Judging first (:func:`_run_group`) pays only while few expectations fail: a verdict costs GX
    about half of what listing rows does, and a failing expectation then runs twice. A return
    with faults in most rules (the 300-child sample with errors fails 103 of 112) made GX's part
    some 40% slower, so once more than a third of the expectations run have been unsettled, the
    next groups list their rows at once. On many rows a verdict also repeats real work on the
    data, so a group of more than :data:`_BLIND_ROWS` rows is judged first only once
    :data:`_EVIDENCE` expectations have shown that few fail (at 20,000 children, 95 of 112 fail).
    """

    run: int = 0
    unsettled: int = 0

    def judge_first(self, rows: int) -> bool:
        """Tell whether a group of ``rows`` rows should give its verdicts before listing any rows."""
        if self.unsettled * 3 > self.run:
            return False
        return rows <= _BLIND_ROWS or self.run >= _EVIDENCE


_BLIND_ROWS = 1_000
"""Up to this many rows a group is judged first before anything is known of how many expectations fail."""
_EVIDENCE = 20
"""How many expectations must have run before a larger group is judged first."""


def _run_group(view: str, rows: pd.DataFrame, suite: Any, tally: _Tally) -> Any:
    """Validate ``rows`` against ``suite``: every expectation for its verdict, then the unsettled ones for their rows.

    Listing the failing rows (GX's ``COMPLETE`` result format) costs GX about as much again as
    the verdict (``BOOLEAN_ONLY``), and on a clean return almost every expectation passes. So GX
    first gives each expectation's verdict alone; the expectations :func:`_unsettled` names run
    again with :data:`_RESULT_FORMAT`, and their results take the place of the verdicts. While
    ``tally`` says most expectations fail, GX lists the rows of every expectation at once instead.
    """
    with _pinned():
        batch = _batch(view, rows)
        if not tally.judge_first(len(rows)):
            listed = batch.validate(suite, result_format=_RESULT_FORMAT)
            tally.run += len(listed.results)
            tally.unsettled += sum(_unsettled(r, rows) for r in listed.results)
            return listed
        quick = batch.validate(suite, result_format=_VERDICT_FORMAT)
        again = {_entry(r) for r in quick.results if _unsettled(r, rows)}
        tally.run += len(quick.results)
        tally.unsettled += len(again)
        if not again:
            return quick
        # Copies: a suite binds the expectations it is given to itself.
        subset = type(suite)(name=suite.name, meta=suite.meta,
                             expectations=[copy.copy(e) for e in suite.expectations if int(e.meta["entry"]) in again])
        full = {_entry(r): r for r in batch.validate(subset, result_format=_RESULT_FORMAT).results}
    quick.results = [full.get(_entry(r), r) for r in quick.results]
    return quick


def _entry(result: Any) -> int:
    """Return the position in its view's entries of the expectation a lean suite's result is for."""
    return int(result.expectation_config.meta["entry"])


def _unsettled(result: Any, rows: pd.DataFrame) -> bool:
    """Tell whether a verdict-only result may hide failing rows, so its expectation must run again for them.

    That is so when it failed or raised (a raised rule is reported with the error the full run
    gives), when ``mostly`` lets it pass with failing rows, and when its column has no value in
    ``rows`` and its metric keeps missing values (:func:`_judges_missing`): GX then calls a map
    expectation a success (it judges non-missing values only) while listing every row of a check
    such as "must be present" as failing (see :func:`_tidy`).
    """
    if not result.success or _raised(result) is not None:
        return True
    cfg = result.expectation_config
    mostly = cfg.kwargs.get("mostly")
    if mostly is not None and mostly < 1:
        return True
    column = cfg.kwargs.get("column")
    if not isinstance(column, str) or not len(rows) or not _judges_missing(cfg.type):
        return False
    named = [c for c in rows.columns if c == column] or [c for c in rows.columns if c.lower() == column.lower()]
    return not named or not rows[named[0]].notna().any()


@cache
def _judges_missing(kind: str) -> bool:
    """Tell whether expectation type ``kind`` may list rows whose value is missing (its map metric keeps them).

    An expectation GX cannot place this way is taken to list them (it then runs again for its rows).
    """
    from great_expectations.expectations.registry import get_expectation_impl, get_metric_provider
    from great_expectations.execution_engine import PandasExecutionEngine

    try:
        metric = get_expectation_impl(kind).map_metric
        provider, _ = get_metric_provider(f"{metric}.condition", PandasExecutionEngine())
    except Exception:  # not a map expectation, or not one GX knows
        return True
    return not getattr(provider, "filter_column_isnull", True)


def _merge(plan: Any, parts: list[Any]) -> Any:
    """Join a view's group results into one GX suite result whose expectations read as written."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

    results = []
    for part in parts:
        for r in part.results:
            lean = r.expectation_config
            full = copy.deepcopy(plan.configs[int(lean.meta["entry"])])
            if "batch_id" in lean.kwargs:
                full.kwargs["batch_id"] = lean.kwargs["batch_id"]
            r.expectation_config = full
            results.append(r)
    passed = sum(1 for r in results if r.success)
    return ExpectationSuiteValidationResult(
        results=results, success=passed == len(results), suite_name=f"cinqa-{plan.view}-{plan.year}",
        statistics={"evaluated_expectations": len(results), "successful_expectations": passed,
                    "unsuccessful_expectations": len(results) - passed,
                    "success_percent": 100.0 * passed / len(results) if results else None},
        meta=parts[0].meta if parts else {}, batch_id=parts[0].batch_id if parts else None)


def _workers(workers: int | None) -> int:
    if workers is None:
        text = os.environ.get("CINQA_WORKERS", "")
        workers = int(text) if text.strip().isdigit() else min(2, os.cpu_count() or 1)
    if workers > 1 and "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return workers


def _run_shared(names: list[str], plans: dict[str, Any], frames: dict[str, pd.DataFrame],
                tick: Callable[[int], Any] = _ignore) -> dict[str, Any]:
    """Run the view suites in this process and a forked helper process at the same time.

    The helper inherits the built suites, GX and the frames (fork copies nothing up front). Both
    processes take the next view from one shared counter, largest first, so neither waits long
    for the other; the helper sends back the GX results of the views it ran. A view the helper
    took but did not return (it failed or died) is run here afterwards. The helper counts the
    expectations it has run in shared memory, and ``tick`` hears of both processes' work from here.
    """
    # Largest first: a fixed cost per expectation and per condition group, plus the rows.
    cost = {n: (len(plans[n].entries) + len(plans[n].groups)) * (1.0 + len(frames[n]) / 50_000) for n in names}
    order = sorted(names, key=lambda n: -cost[n])
    ctx = multiprocessing.get_context("fork")
    taken = ctx.Value("i", 0)
    done = ctx.Value("i", 0)
    receive, send = ctx.Pipe(duplex=False)
    helper = ctx.Process(target=_helper, args=(send, taken, order, plans, frames, done), daemon=True)
    helper.start()
    send.close()
    clock = time.monotonic()
    theirs: Any = None
    mine = told = 0

    def report(n: int = 0) -> None:
        nonlocal mine, told
        mine += n
        now = mine + done.value
        if now > told:
            tick(now - told)
            told = now

    try:
        tally = _Tally()
        results = {n: _run_one(plans[n], frames[n], report, tally) for n in _take(taken, order)}
        # A helper that never answers (say, a lock some other thread held when it was forked) is
        # given up after a while; what it took is then run here.
        patience = max(30.0, 3 * (time.monotonic() - clock))
        waited = time.monotonic()
        while time.monotonic() - waited < patience:
            report()
            if receive.poll(0.05):  # the results, or the end of the pipe if the helper died
                try:
                    theirs = receive.recv()
                except (EOFError, OSError):
                    pass
                break
    finally:
        receive.close()
        if helper.is_alive():
            helper.join(1.0)
        if helper.is_alive():
            helper.terminate()
        helper.join()
    if isinstance(theirs, dict):
        results.update(theirs)
    for n in order:
        if n not in results:
            results[n] = _run_one(plans[n], frames[n], tally=tally)
    tick(sum(len(plans[n].entries) for n in names) - told)
    return results


def _take(taken: Any, order: list[str]) -> Iterable[str]:
    """Yield the views not yet taken by either process, claiming each under the counter's lock."""
    while True:
        with taken.get_lock():
            i = taken.value
            taken.value = i + 1
        if i >= len(order):
            return
        yield order[i]


def _helper(send: Any, taken: Any, order: list[str], plans: dict[str, Any], frames: dict[str, pd.DataFrame],
            done: Any) -> None:
    def count(n: int) -> None:
        with done.get_lock():
            done.value += n

    out: dict[str, Any] = {}
    tally = _Tally()
    try:
        for n in _take(taken, order):
            out[n] = _run_one(plans[n], frames[n], count, tally)
    except BaseException:  # noqa: S110  the parent runs what is missing and sees any error itself
        pass
    try:
        send.send(out)
    except Exception:  # a result that cannot be pickled: the parent runs those views itself
        send.send({})
    finally:
        send.close()


# -- Great Expectations ---------------------------------------------------------------------


@cache
def _context() -> Any:
    """Return the process's ephemeral GX context with one pandas data source."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    # An ephemeral context mirrors its whole configuration, as YAML, into an in-memory store on
    # every change (about 10 ms each: the data source, then an asset and a batch definition per
    # view), and nothing reads that mirror back; the context itself keeps what was added.
    ctx._save_project_config = lambda: None
    _install_pinning()
    return ctx


_PINNED: dict[int, Any] = {}
"""The configuration of each expectation whose kwargs GX is looking up under :func:`_pinned`, by ``id``."""
_PINNING = [0]
"""How many :func:`_pinned` blocks are running (GX lookups outside them are left as GX ships them)."""
_PINNED_LOOKUPS = ("_get_runtime_kwargs", "_get_success_kwargs", "_get_domain_kwargs")
"""GX's ``Expectation`` methods that read ``self.configuration`` once per kwarg they look up."""


def _install_pinning() -> None:
    """Let an expectation's kwargs lookups under :func:`_pinned` build its configuration once, not once per key.

    GX 1.x's ``Expectation.configuration`` is a pydantic dump of every field, made anew on each
    read, and :data:`_PINNED_LOOKUPS` read it once for every domain, success and runtime key: about
    160 dumps per expectation per validation, some 40% of GX's time on a small return. An
    expectation does not change during one lookup (they only read it), so the outermost lookup
    builds the configuration once and the reads inside it get that one. Outside :func:`_pinned`
    every read builds it afresh, as in GX.
    """
    from great_expectations.expectations.expectation import Expectation

    if getattr(Expectation, "_cinqa_pinning", False):
        return
    build = Expectation.configuration.fget

    def configuration(self: Any) -> Any:
        pinned = _PINNED.get(id(self))
        return build(self) if pinned is None else pinned

    def pinning(lookup: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(lookup)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            key = id(self)
            if not _PINNING[0] or key in _PINNED:
                return lookup(self, *args, **kwargs)
            _PINNED[key] = build(self)
            try:
                return lookup(self, *args, **kwargs)
            finally:
                del _PINNED[key]

        return run

    Expectation.configuration = property(configuration, doc=Expectation.configuration.__doc__)
    for name in _PINNED_LOOKUPS:
        setattr(Expectation, name, pinning(getattr(Expectation, name)))
    Expectation._cinqa_pinning = True


@contextlib.contextmanager
def _pinned() -> Iterator[None]:
    """Run GX with each expectation's configuration built once per kwargs lookup (see :func:`_install_pinning`)."""
    _context()
    _PINNING[0] += 1
    try:
        yield
    finally:
        _PINNING[0] -= 1


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


def _tidy(results: dict[str, Any], views: dict[str, pd.DataFrame],
          keys: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn GX results into the failures table and the rules that errored; ``keys`` are view
    columns put first on each failure (a pooled run's census_year and la)."""
    parts: list[pd.DataFrame] = []
    errored: list[dict[str, Any]] = []
    for name, res in results.items():
        view = views[name]
        failing: list[tuple[dict[str, Any], np.ndarray, list[str]]] = []
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
                rows = _rows(found)
            failing.append((meta, rows, _tested_columns(cfg.kwargs)))
        if failing:
            parts.append(_failure_rows(view, failing, keys))
    failures = (pd.concat(parts, ignore_index=True) if parts else _empty_failures(keys))
    if len(failures):
        failures = (failures.drop_duplicates(["rule", "entity", "_row"])
                    .sort_values(["line", "_order", "_row"], na_position="first", kind="stable"))
    failures = failures.drop(columns=["_row", "_order"]).reset_index(drop=True)
    typed = table.typed(failures)
    if keys:
        typed = pd.concat([failures.loc[:, list(keys)], typed], axis=1)
    return typed, pd.DataFrame(errored, columns=list(table.ERRORED_COLUMNS))


def _rows(found: list[Any]) -> np.ndarray:
    """Read the failing view rows from an ``unexpected_index_list``: one dict with a list of rows
    (``exclude_unexpected_values``) or one dict per row."""
    out: list[int] = []
    for item in found:
        row = item["row"] if isinstance(item, dict) else item
        if isinstance(row, (list, tuple, np.ndarray)):
            out += [int(r) for r in row]
        else:
            out.append(int(row))
    return np.asarray(out, dtype="int64")


def _tested_columns(kwargs: dict[str, Any]) -> list[str]:
    out = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    out += [c for c in kwargs.get("column_list") or [] if c not in out]
    return out


def _failure_rows(view: pd.DataFrame, failing: list[tuple[dict[str, Any], np.ndarray, list[str]]],
                  keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Build the failure rows of one view: for each failing expectation (meta, view rows, tested
    columns), its rows with their locator and ``values`` (a dict per row of the fields shown);
    the view's rows are taken once for all, and each shown column made plain Python values once."""
    shows = []
    for meta, _, tested in failing:
        fields = list(meta.get("fields") or [])
        show = list(meta.get("show") or [f for f in fields if f in view.columns] or tested)
        shows.append([c for c in show if c in view.columns])
    counts = np.array([len(rows) for _, rows, _ in failing], dtype="int64")
    shown = list(dict.fromkeys(c for show in shows for c in show))
    needed = list(dict.fromkeys(["row", *keys, "child", "LAchildID", "episode", "item", "line", *shown]))
    # Only the columns the failures show: taking whole (wide) view rows costs more than the rest.
    sub = view.iloc[np.concatenate([rows for _, rows, _ in failing]), [view.columns.get_loc(c) for c in needed]]
    plain = {c: table.plain_values(sub[c]) for c in shown}
    values = np.empty(len(sub), dtype=object)
    start = 0
    for show, n in zip(shows, counts):
        columns = [plain[c][start:start + n] for c in show]
        values[start:start + n] = [dict(zip(show, row)) for row in zip(*columns)] if show else [{} for _ in range(n)]
        start += n

    def each(values_per_failure: list[Any]) -> np.ndarray:
        return np.repeat(np.array(values_per_failure, dtype=object), counts)

    metas = [meta for meta, _, _ in failing]
    return pd.DataFrame({
        **{k: sub[k].array for k in keys},
        "rule": each([str(m["rule"]) for m in metas]),
        "severity": each([m["severity"] for m in metas]),
        "message": each([m["message"] for m in metas]),
        "entity": each([m["entity"] for m in metas]),
        "child": sub["child"].array,
        "LAchildID": sub["LAchildID"].array,
        "episode": sub["episode"].array,
        "item": sub["item"].array,
        "fields": each([", ".join(m.get("fields") or []) for m in metas]),
        "values": values,
        "line": sub["line"].array,
        "_row": sub["row"].to_numpy(),
        "_order": np.repeat(np.array([table.rule_order(str(m["rule"])) for m in metas], dtype="int64"), counts),
    })


def _empty_failures(keys: tuple[str, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in (*keys, *table.FAILURE_COLUMNS, "_row", "_order")})
