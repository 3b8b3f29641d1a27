"""Seeded, realistic synthetic CIN census returns, with labelled error injection.

>>> from cinqa import synth
>>> ret = synth.generate("2023-24", children=300, seed=1)             # doctest: +SKIP
>>> ret, truth = synth.generate("2023-24", children=300, seed=1, errors=0.05)  # doctest: +SKIP
>>> rets = synth.generate_series(["2022-23", "2023-24"], children=300, seed=1)  # doctest: +SKIP

Children's histories are simulated forward in time (:mod:`cinqa.synth.timeline`) with the
national figures in ``params.yaml`` and then photographed as a census year's return
(:mod:`cinqa.synth.render`). Faults are injected afterwards, one rule at a time
(:mod:`cinqa.synth.faults`).

A clean return passes every error-level rule of its year, and every query but two that real
returns raise too and that follow from the national duration figures: 8670Q (an assessment still
open on 31 March after more than 45 working days) and 8675Q (an enquiry open after more than 15
working days without a conference), each for well under 1% of children. A 2026-27 return
(provisional) also has pre-proceedings modules for about 3% of its children; a return of only a
few dozen children may have none, which query 8995Q questions.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import pandas as pd

from cinqa import spec
from cinqa.files import atomic_path, output_path
from cinqa.progress import bar
from cinqa.returns import ISSUE_COLUMNS, CensusReturn, Header
from cinqa.synth import days as D
from cinqa.synth.params import Params, parameter_table
from cinqa.synth.render import Snapshot, in_year
from cinqa.synth.timeline import Child, Simulator, make_upn, stable_las
from cinqa.write import ReturnWriter

__all__ = [
    "SOFTWARE",
    "YEARS",
    "generate",
    "generate_file",
    "generate_runs",
    "generate_series",
    "header",
    "inject",
    "injectable_rules",
    "parameter_table",
    "read_truth",
    "truth_path",
    "write_samples",
    "write_truth",
]

YEARS = spec.YEARS
"""The census years synth generates: every year cinqa reads, provisional ones (2026-27) included."""
SOFTWARE = "cinqa synth"
DEFAULT_LA = "931"
CHUNK = 5000


def header(year: str, la: str) -> Header:
    """Return the header of a synthetic return (fixed, so output is reproducible)."""
    end = spec.end_year(year)
    return Header(collection="CIN", year=end, reference_date=spec.reference_date(year), la=la,
                  source_level="L", software=SOFTWARE, release="1", serial="001",
                  datetime=pd.Timestamp(end, 5, 15, 9, 30))


def _check(year: str, la: str) -> None:
    if year not in YEARS:
        raise ValueError(f"census year {year!r} is not one synth can generate; choose one of "
                         f"{YEARS[0]}..{YEARS[-1]}")
    if la not in spec.codes("la", year):
        raise ValueError(f"{la!r} is not a local authority code in {year}")


class _Population:
    """Candidate children in arrival order, for the census years ending ``first``..``last``."""

    def __init__(self, seed: int, first: int, last: int, la: str) -> None:
        self.rnd = random.Random(f"cinqa.synth:{seed}:{first}:{last}:{la}")
        self.la = la
        self.horizon = D.reference_day(last)
        lookback = D.add_years(0, Params(last).scalar("lookback_years"))
        self.window = D.census_start(first) - lookback
        self.sim = Simulator(self.rnd, self.horizon, random.Random(f"cinqa.synth.pp:{seed}:{first}:{last}:{la}"))
        self.id_offset = self.rnd.randrange(10_000_000)
        self.upn_offset = self.rnd.randrange(1_000_000_000)
        self.elsewhere = self.sim.p.scalar("upn_issued_elsewhere")
        self.former = self.sim.p.scalar("former_upn_share")
        self.others = [c for c in stable_las() if c != la]

    def candidate(self) -> Child:
        """Simulate the next child, first referred on a day drawn uniformly over the window."""
        first = self.window + int(self.rnd.random() * (self.horizon - self.window + 1))
        return self.sim.child(first)

    def identify(self, child: Child, index: int) -> None:
        """Give ``child`` its identifiers: unique LAchildID and UPN, derived from ``index``."""
        r = self.rnd
        self.sim.finish(child)
        child.index = index
        # multiplying by a number prime to 10 is a bijection modulo 10**k: unique, scattered ids
        child.la_child_id = f"{(index * 7_654_321 + self.id_offset) % 10_000_000:07d}"
        la = r.choice(self.others) if r.random() < self.elsewhere else self.la
        child.upn = make_upn(la, index * 48_271 + self.upn_offset)
        if r.random() < self.former:
            child.former_upn = make_upn(r.choice(self.others), index * 69_621 + self.upn_offset + 1)


def _children(year: str, n: int, seed: int, la: str) -> Iterator[Child]:
    """Yield ``n`` children belonging in ``year``'s return, reproducibly."""
    end = spec.end_year(year)
    pop = _Population(seed, end, end, la)
    start, ref = D.census_start(end), D.reference_day(end)
    made = 0
    while made < n:
        child = pop.candidate()
        if in_year(child, start, ref):
            made += 1
            pop.identify(child, made)
            yield child


def _empty_issues() -> pd.DataFrame:
    issues = pd.DataFrame({c: pd.Series(dtype="object") for c in ISSUE_COLUMNS})
    issues["line"] = issues["line"].astype("Int64")
    issues["child"] = issues["child"].astype("Int64")
    return issues


def _snapshot(year: str, children: Sequence[Child] | Iterator[Child], la: str) -> CensusReturn:
    snap = Snapshot(year)
    for child in children:
        snap.add(child)
    return CensusReturn(year=year, header=header(year, la), tables=snap.tables(), issues=_empty_issues())


def generate(year: str, children: int = 300, seed: int = 0, la: str = DEFAULT_LA,
             errors: float | Sequence[str] | None = None
             ) -> CensusReturn | tuple[CensusReturn, pd.DataFrame]:
    """Generate a realistic return of ``children`` children for census ``year`` (``"2023-24"``).

    With ``errors`` (a share of children, e.g. ``0.05``, or a list of rule codes) faults are
    injected and ``(return, truth)`` is returned; ``truth`` has one row per fault: rule,
    LAchildID, child, entity, episode, item, change.
    """
    _check(year, la)
    ret = _snapshot(year, _children(year, children, seed, la), la)
    if errors is None:
        return ret
    from cinqa.synth.faults import inject as _inject

    return _inject(ret, errors, seed=seed)


def generate_series(years: Sequence[str], children: int = 300, seed: int = 0,
                    la: str = DEFAULT_LA) -> list[CensusReturn]:
    """Generate consecutive years' returns of one authority, the same children recurring.

    ``children`` is the approximate number per year. Cases open on 31 March continue into the
    next return with the same identifiers, birth and referral dates; closed children may be
    referred again, some after a gap of years.
    """
    years = sorted(years)
    if not years:
        raise ValueError("no census years given")
    ends = [spec.end_year(y) for y in years]
    if ends != list(range(ends[0], ends[0] + len(ends))):
        raise ValueError(f"census years must be consecutive, got {', '.join(years)}")
    for y in years:
        _check(y, la)
    first, last = ends[0], ends[-1]
    total = _population_size(children, seed, first, last, la)
    pop = _Population(seed, first, last, la)
    everyone: list[Child] = []
    for i in range(total):
        child = pop.candidate()
        pop.identify(child, i + 1)
        everyone.append(child)
    return [_snapshot(y, everyone, la) for y in years]


FIXED, KEPT, NEW = "fixed", "kept", "new"
"""What became of a fault between two runs (:func:`generate_runs`): undone, left as it was, or made in the second."""


class Runs(NamedTuple):
    """Two runs of one return: the same children, part of the first run's faults fixed, new ones injected."""

    clean: CensusReturn
    first: CensusReturn
    second: CensusReturn
    truth: pd.DataFrame
    """One row per fault of either run (the truth columns of :func:`inject`) and ``fate``: :data:`FIXED` in the
    second run, :data:`KEPT` as it was, or :data:`NEW` in it."""


def generate_runs(year: str, children: int = 300, seed: int = 0, la: str = DEFAULT_LA,
                  first: float | Sequence[str] = 0.05, fixed: float = 0.5,
                  then: float | Sequence[str] = 0.03) -> Runs:
    """Generate two successive extracts of one census year's return, as an analyst checks them week by week.

    Both are the return of the same ``children`` children (from ``seed``). The first carries the
    faults ``first`` (a share of children or rule codes, as :func:`inject` takes them); in the second
    a share ``fixed`` of those faults is undone (each with every row it made: a duplicated value's
    two children together), the rest kept as they were, and the faults ``then`` are injected into
    children the first run left alone. A fault of the whole return (no child) is always kept.
    """
    if not 0 <= fixed <= 1:
        raise ValueError(f"fixed={fixed} is not a share between 0 and 1")
    _check(year, la)
    clean = _snapshot(year, _children(year, children, seed, la), la)
    one, truth1 = inject(clean, first, seed=seed)
    faults = pd.Series(truth1.attrs["fault"], index=truth1.index, dtype="int64")
    with_child = sorted(set(faults[truth1["child"].notna()]))
    rnd = random.Random(f"cinqa.synth.runs:{seed}:{year}:{la}")
    undone = set(rnd.sample(with_child, round(fixed * len(with_child))))
    truth1 = truth1.assign(fate=[FIXED if f in undone else KEPT for f in faults])
    reverted = set(truth1.loc[faults.isin(undone), "child"].dropna().astype(int))
    tables = {}
    for name, df in one.tables.items():
        back = clean.tables[name]
        merged = pd.concat([df[~df["child"].isin(reverted)], back[back["child"].isin(reverted)]], ignore_index=True)
        tables[name] = merged.sort_values(list(spec.TABLE_KEYS[name]), kind="stable").reset_index(drop=True)
    base = CensusReturn(year=year, header=one.header, tables=tables, issues=_empty_issues())
    touched = sorted(set(truth1["child"].dropna().astype(int)))
    two, truth2 = inject(base, then, seed=seed + 1, avoid=touched)
    truth2 = truth2.assign(fate=NEW)
    truth = pd.concat([truth1, truth2], ignore_index=True)
    truth.attrs = {}
    return Runs(clean, one, two, truth)


def _population_size(children: int, seed: int, first: int, last: int, la: str) -> int:
    """Estimate how many arrivals over ``first``..``last`` give about ``children`` per year."""
    pilot = _Population(seed + 7919, first, first, la)
    start, ref = D.census_start(first), D.reference_day(first)
    trials = 2000
    hits = sum(in_year(pilot.candidate(), start, ref) for _ in range(trials))
    one = ref - pilot.window
    whole = D.reference_day(last) - pilot.window
    return max(1, round(children * whole / (one * max(hits, 1) / trials)))


def generate_file(path: str | Path, year: str, children: int, seed: int = 0, la: str = DEFAULT_LA,
                  error_rate: float = 0.0, chunk: int = CHUNK, progress: bool | None = None) -> Path:
    """Write a return of ``children`` children to ``path`` in chunks, in bounded memory.

    Without errors the file is byte-identical to ``write_return(generate(year, children, seed, la),
    path)``. With ``error_rate`` (a share of children) faults are injected chunk by chunk and their
    truth table is written beside the file as ``<name>-truth.csv``. A bar counts the children
    written where someone can see it (``progress``: see :func:`cinqa.progress.shown`).
    """
    _check(year, la)
    if not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate={error_rate} is not a share between 0 and 1")
    path = Path(path)
    head = header(year, la)
    truths: list[pd.DataFrame] = []
    done = 0

    def flush(writer: ReturnWriter, snap: Snapshot) -> None:
        nonlocal done
        tables = snap.tables()
        if error_rate:
            chunk_ret, truth = inject(CensusReturn(year=year, header=head, tables=tables), error_rate,
                                      seed=seed * 100_003 + len(truths))
            truth["child"] += done
            truths.append(truth)
            tables = chunk_ret.tables
        writer.write_children(tables)
        done += snap.n

    with ReturnWriter(path, year, head) as writer, \
            bar(path.name, children, unit="child", show=progress) as counter:
        snap = Snapshot(year)
        for child in _children(year, children, seed, la):
            snap.add(child)
            if snap.n == chunk:
                flush(writer, snap)
                counter.update(snap.n)
                snap = Snapshot(year)
        if snap.n:
            flush(writer, snap)
            counter.update(snap.n)
    if error_rate:
        write_truth(pd.concat(truths, ignore_index=True), truth_path(path))
    return path


def truth_path(path: str | Path) -> Path:
    """Return where the truth table of the return at ``path`` is written (``<name>-truth.csv``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}-truth.csv")


def write_truth(truth: pd.DataFrame, path: str | Path) -> Path:
    """Write a truth table as CSV (missing values empty), atomically and never over an input.

    The path goes through :func:`cinqa.files.atomic_path` as every output does: ``..`` is resolved
    before any folder is made, and a path that is one of the run's inputs is refused.
    """
    path = output_path(path)
    with atomic_path(path) as tmp:
        truth.to_csv(tmp, index=False, lineterminator="\n")
    return path


def read_truth(path: str | Path) -> pd.DataFrame:
    """Read a truth table written by :func:`write_truth`."""
    truth = pd.read_csv(path, dtype={"rule": "str", "LAchildID": "str", "entity": "str", "change": "str"})
    for c in ("child", "episode", "item"):
        truth[c] = truth[c].astype("Int64")
    return truth


def injectable_rules(year: str, expectations: str | Path | None = None) -> list[str]:
    """Return the rule codes that can be injected into a return of ``year`` (rules read from ``expectations``)."""
    from cinqa.synth.faults import injectable_rules as _rules

    return _rules(year, expectations)


def inject(ret: CensusReturn, errors: float | Sequence[str], seed: int = 0,
           expectations: str | Path | None = None, avoid: Sequence[int] = ()) -> tuple[CensusReturn, pd.DataFrame]:
    """Return a copy of ``ret`` with faults injected, and the truth table of what was changed.

    No fault goes to a child whose ordinal is in ``avoid``.
    """
    from cinqa.synth.faults import inject as _inject

    return _inject(ret, errors, seed=seed, expectations=expectations, avoid=avoid)


def write_samples(folder: str | Path, children: int = 300, seed: int = 2026, la: str = DEFAULT_LA,
                  years: Sequence[str] = YEARS, errors_year: str | None = spec.SUPPORTED_YEARS[-1],
                  series: Sequence[str] = YEARS[-5:]) -> list[Path]:
    """Write the committed samples of one fictional authority.

    ``sample-<year>.xml`` for each year (each year's children drawn afresh);
    ``sample-<errors_year>-errors.xml``, that year's sample with one fault of every child-level
    rule of the year, each in a different child, and ``sample-<errors_year>-errors-truth.csv``
    saying which (the latest supported year, not a provisional one);
    ``series/sample-<year>.xml`` for the ``series`` years, in which the same children recur.
    """
    from cinqa.synth.faults import child_level_rules
    from cinqa.write import write_return

    folder = Path(folder)
    written = []
    for year in years:
        ret = generate(year, children, seed, la)
        written.append(write_return(ret, folder / f"sample-{year}.xml"))
        if year == errors_year:
            bad, truth = inject(ret, child_level_rules(year), seed=seed)
            path = write_return(bad, folder / f"sample-{year}-errors.xml")
            written += [path, write_truth(truth, truth_path(path))]
    if series:
        for one in generate_series(series, children, seed, la):
            written.append(write_return(one, folder / "series" / f"sample-{one.year}.xml"))
    return written
