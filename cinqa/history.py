"""The run history: a compact record of every check of a return, and what changed between runs.

A history is a folder (``--history DIR``) that holds:

* ``index.csv``: one line per run (:data:`INDEX_COLUMNS`): when, the SHA-256 of the file checked,
  its LA and census year, the cinqa version, the verdict and its counts, and the name of the run's
  failures file;
* ``runs/<run>.csv.gz``: the run's failures, one line each (:data:`RUN_COLUMNS`): exactly what
  :func:`cinqa.failures.identity` names a failure by (rule, LAchildID, row key, a digest of the
  failing values) plus the rule's severity. No value and no other child data is kept.

Plain CSV, gzipped per run, because an analyst (or an auditor) can open it with anything and see
that nothing else is in it; gzip brings a failure to about 17 bytes (3,000 failures with random
identifiers and digests: 52 KB, from 146 KB of CSV; the sample history's runs of about 20: 0.5 KB).
Every file is written whole and renamed into place (:func:`cinqa.files.atomic_path`), the failures
file before the index line that names it, and a run claims the folder while it writes
(:func:`cinqa.files.outputs_claimed`), so two runs never interleave.

A file checked again with the same content (the same SHA-256), as the same LA and census year, is
recorded, marked as a re-run of the first run of that file (``rerun_of``), so the log stays
complete; comparisons and the trend skip re-runs, so checking the same extract twice never reads
as "no change since last week".

:func:`changes` compares a run with the previous run of a different file for the same LA and
census year. Failures are matched on rule, LAchildID and row key: one present only now is *new*,
one present only before is *resolved*, one in both is *still open*; a still-open failure whose
values digest differs fails on changed values (``values_changed``), and still counts as still open.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cinqa import failures as judge
from cinqa import spec
from cinqa.errors import ReadError
from cinqa.export import inert_frame, readable_text
from cinqa.files import atomic_path, outputs_claimed

if TYPE_CHECKING:
    from cinqa.validate import Validation

INDEX = "index.csv"
RUNS = "runs"
RUN_SUFFIX = ".csv.gz"
INDEX_COLUMNS = ("run", "run_time", "file_sha256", "LA", "census_year", "cinqa_version", "children", "status",
                 "errors", "queries", "error_rules", "query_rules", "structural_issues", "not_evaluated",
                 "rerun_of")
RUN_COLUMNS = (*judge.IDENTITY_COLUMNS, "severity")
_COUNTS = ("children", "errors", "queries", "error_rules", "query_rules", "structural_issues", "not_evaluated")

NEW = "new"
RESOLVED = "resolved"
STILL_OPEN = "still open"
CHANGES = (NEW, RESOLVED, STILL_OPEN)
"""What became of a failure between two runs; a still-open failure may have changed values."""
CHANGE_COUNTS = (NEW, RESOLVED, STILL_OPEN, "values_changed")
"""The count columns of :meth:`Changes.by_rule` and :meth:`Changes.by_child`."""


class HistoryError(ReadError):
    """A run-history folder holds a file that is not what cinqa writes there, or a damaged one."""


# -- writing ----------------------------------------------------------------------------------


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 of the file at ``path`` as hex, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record(validation: Validation, folder: str | Path, *, source: str | Path | None = None,
           when: dt.datetime | None = None) -> pd.Series:
    """Record a validation as a run in the history ``folder`` (created if needed); return its index line.

    ``source`` is the file that was checked (default: the path the return was read from); its
    SHA-256 identifies the extract. ``when`` is the run's time (default: now, UTC).
    """
    import cinqa

    ret = validation.ret
    source = source if source is not None else ret.path
    if source is None:
        raise HistoryError(folder, "a run is recorded with the file it checked; this return was not read from "
                                   "a file (pass source=)")
    when = (when or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    folder = Path(folder)
    failures = validation.failures
    ids = judge.identity(failures)
    ids["severity"] = failures["severity"].astype("str")
    v = validation.verdict
    sha = file_sha256(source)
    with outputs_claimed(folders=[folder]):
        index = read_index(folder)
        same = index[(index["file_sha256"] == sha) & (index["LA"] == (ret.header.la or ""))
                     & (index["census_year"] == validation.year)]
        run = stem = f"{when:%Y%m%dT%H%M%SZ}-{sha[:8]}"
        taken = set(index["run"])
        for n in range(2, len(taken) + 2):
            if run not in taken:
                break
            run = f"{stem}-{n}"
        line = {"run": run, "run_time": when.isoformat(timespec="seconds"), "file_sha256": sha,
                "LA": ret.header.la or "", "census_year": validation.year,
                "cinqa_version": cinqa.__version__, "children": len(ret.children), "status": v.status,
                "errors": v.error_rows, "queries": v.query_rows, "error_rules": v.error_rules,
                "query_rules": v.query_rules, "structural_issues": v.structural_issues,
                "not_evaluated": v.not_evaluated, "rerun_of": same["run"].iloc[0] if len(same) else ""}
        _write_run(folder / RUNS / f"{run}{RUN_SUFFIX}", ids.loc[:, list(RUN_COLUMNS)])
        index = pd.concat([index, _typed_index(pd.DataFrame([line]))], ignore_index=True)
        with atomic_path(folder / INDEX) as tmp:
            inert_frame(index).to_csv(tmp, index=False, lineterminator="\n")
    return index.iloc[-1]


def _write_run(path: Path, ids: pd.DataFrame) -> None:
    # LAchildIDs come from the return: one that starts like a formula is written inert, as in every CSV.
    text = inert_frame(ids).to_csv(index=False, lineterminator="\n").encode("utf-8")
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        # No file name or time in the gzip header: the same failures give the same bytes.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(text)


# -- reading ----------------------------------------------------------------------------------


def _typed_index(df: pd.DataFrame) -> pd.DataFrame:
    out = df.loc[:, list(INDEX_COLUMNS)].copy()
    for c in INDEX_COLUMNS:
        out[c] = out[c].astype("int64") if c in _COUNTS else out[c].fillna("").astype("str")
    return out


def _empty_index() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c in _COUNTS else "str") for c in INDEX_COLUMNS})


def read_index(folder: str | Path) -> pd.DataFrame:
    """Return the runs recorded in the history ``folder``, oldest first (empty when there is none yet).

    Refuses, with a :class:`HistoryError` naming the file (and line), a folder that holds anything
    cinqa does not write there, an index that is damaged, or a run whose failures file is missing.
    """
    folder = Path(folder)
    if not folder.exists():
        return _empty_index()
    if not folder.is_dir():
        raise HistoryError(folder, "a run history is a folder, and this is a file")
    index_path = folder / INDEX
    foreign = [p for p in folder.iterdir() if not _ours(p) and p.name not in (INDEX, RUNS)]
    if foreign:
        raise HistoryError(foreign[0], "this file is not part of a cinqa run history; a history folder holds only "
                                       f"{INDEX} and {RUNS}/ (move it, or choose another --history folder)")
    runs_dir = folder / RUNS
    if runs_dir.exists() and not runs_dir.is_dir():
        raise HistoryError(runs_dir, f"{RUNS} in a run history is a folder, and this is a file")
    if not index_path.exists():
        stray = sorted(p for p in runs_dir.iterdir() if not _ours(p)) if runs_dir.is_dir() else []
        if stray:
            raise HistoryError(stray[0], f"the run history has no {INDEX}, so this file belongs to no recorded run")
        return _empty_index()
    index = _read_index_file(index_path)
    listed = {f"{r}{RUN_SUFFIX}" for r in index["run"]}
    present = {p.name for p in runs_dir.iterdir() if not _ours(p)} if runs_dir.is_dir() else set()
    unlisted = sorted(present - listed)
    if unlisted:
        raise HistoryError(runs_dir / unlisted[0], f"this file is no run listed in {index_path}")
    for i, name in enumerate(f"{r}{RUN_SUFFIX}" for r in index["run"]):
        if name not in present:
            raise HistoryError(index_path, f"run {name[:-len(RUN_SUFFIX)]} is listed but its failures file "
                                           f"{RUNS}/{name} is missing", line=i + 2)
    return index


def _ours(p: Path) -> bool:
    # Hidden files are cinqa's own: locks (.cinqa-lock) and unfinished writes (.<name>.*.part).
    return p.name.startswith(".")


def _read_index_file(path: Path) -> pd.DataFrame:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise HistoryError(path, "not a run-history index: it is not UTF-8 text", line=1) from None
    rows = _csv_rows(path, io.StringIO(text))
    if not rows or tuple(rows[0]) != INDEX_COLUMNS:
        raise HistoryError(path, f"not a run-history index: the first line must be {','.join(INDEX_COLUMNS)}",
                           line=1)
    seen: set[str] = set()
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(INDEX_COLUMNS):
            raise HistoryError(path, f"{len(row)} fields where a run has {len(INDEX_COLUMNS)}", line=n)
        line = dict(zip(INDEX_COLUMNS, row, strict=True))
        for c in _COUNTS:
            if not line[c].isdigit():
                raise HistoryError(path, f"{c} is {line[c]!r}, not a whole number", line=n)
        if line["status"] not in judge.STATUSES:
            raise HistoryError(path, f"status {line['status']!r} is not a verdict cinqa gives", line=n)
        if not line["run"] or "/" in line["run"] or line["run"].startswith(".") or line["run"] in seen:
            raise HistoryError(path, f"run {line['run']!r} is empty, repeated or not a file name", line=n)
        seen.add(line["run"])
        try:
            dt.datetime.fromisoformat(line["run_time"])
        except ValueError:
            raise HistoryError(path, f"run_time {line['run_time']!r} is not a date and time", line=n) from None
    rows[1:] = [[readable_text(cell) for cell in row] for row in rows[1:]]
    frame = pd.DataFrame(rows[1:], columns=list(INDEX_COLUMNS)) if len(rows) > 1 else _empty_index()
    return _typed_index(frame)


def _csv_rows(path: Path, text: Iterable[str]) -> list[list[str]]:
    reader = csv.reader(text)
    try:
        return list(reader)
    except csv.Error as exc:
        raise HistoryError(path, f"not CSV as cinqa writes it ({exc})", line=reader.line_num) from None


def read_run(folder: str | Path, run: str) -> pd.DataFrame:
    """Return the failures recorded for ``run`` in the history ``folder`` (:data:`RUN_COLUMNS`)."""
    path = Path(folder) / RUNS / f"{run}{RUN_SUFFIX}"
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            rows = _csv_rows(path, fh)
    except FileNotFoundError:
        raise HistoryError(path, "the run's failures file is missing") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise HistoryError(path, f"not a run's failures file: it cannot be read as gzipped CSV ({exc})") from None
    if not rows or tuple(rows[0]) != RUN_COLUMNS:
        raise HistoryError(path, f"not a run's failures file: the first line must be {','.join(RUN_COLUMNS)}",
                           line=1)
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(RUN_COLUMNS):
            raise HistoryError(path, f"{len(row)} fields where a failure has {len(RUN_COLUMNS)}", line=n)
    return pd.DataFrame([[readable_text(cell) for cell in row] for row in rows[1:]],
                        columns=list(RUN_COLUMNS)).astype("str")


# -- comparing --------------------------------------------------------------------------------


def runs_of(index: pd.DataFrame, la: str, year: str) -> pd.DataFrame:
    """Return the runs of one LA and census year that compare: oldest first, re-runs of a file left out."""
    mine = index[(index["LA"] == la) & (index["census_year"] == year) & (index["rerun_of"] == "")]
    return mine.reset_index(drop=True)


@dataclass(frozen=True)
class Changes:
    """What changed between two runs of one LA's return for one census year.

    ``failures`` has one row per failure of either run: rule, severity, LAchildID, row, ``change``
    (one of :data:`CHANGES`) and ``values_changed`` (a still-open failure now failing on other values).
    ``previous`` is None when the run is the first of its LA and year.
    """

    run: pd.Series
    previous: pd.Series | None
    failures: pd.DataFrame
    latest: pd.Series

    @property
    def rerun(self) -> bool:
        """Whether the run asked about was a re-run of a file already checked (compared as that file's first run)."""
        return bool(self.latest["rerun_of"])

    def _counts(self, by: str) -> pd.DataFrame:
        f = self.failures
        if f.empty:
            cols = {by: pd.Series(dtype="str")} | ({"severity": pd.Series(dtype="str")} if by == "rule" else {})
            return pd.DataFrame(cols | {c: pd.Series(dtype="int64") for c in CHANGE_COUNTS})
        keys = [by, "severity"] if by == "rule" else [by]
        out = pd.crosstab([f[k] for k in keys], f["change"]).reindex(columns=list(CHANGES), fill_value=0)
        out["values_changed"] = f.groupby(keys, observed=True)["values_changed"].sum().reindex(out.index)
        out = out.reset_index().rename_axis(columns=None)
        for c in CHANGE_COUNTS:
            out[c] = out[c].astype("int64")
        if by == "rule":
            out["_sev"] = (out["severity"] != "error").astype(int)
            out["_order"] = out["rule"].map(judge.rule_order)
            out = out.sort_values(["_sev", "_order", "rule"], kind="stable").drop(columns=["_sev", "_order"])
        else:
            out = out.sort_values([NEW, STILL_OPEN, by], ascending=[False, False, True], kind="stable")
        return out.reset_index(drop=True)

    def by_rule(self) -> pd.DataFrame:
        """Count new, resolved and still-open failures per rule (errors first), and those with changed values."""
        return self._counts("rule")

    def by_child(self) -> pd.DataFrame:
        """Count new, resolved and still-open failures per child (LAchildID), most new first."""
        return self._counts("LAchildID")

    def totals(self) -> dict[str, int]:
        """Count new, resolved and still-open failures in all, and the still-open ones with changed values."""
        counts = self.failures["change"].value_counts()
        out = {c: int(counts.get(c, 0)) for c in CHANGES}
        out["values_changed"] = int(self.failures["values_changed"].sum())
        return out

    def describe(self) -> list[str]:
        """Say in plain lines what changed since the previous run: one per rule, then the totals."""
        when = _when(self.run["run_time"])
        lines = []
        if self.rerun:
            lines.append(f"This file was checked before ({self.latest['rerun_of']}); the changes are those of its "
                         "first run.")
        if self.previous is None:
            lines.append(f"Since the last run: this is the first run of LA {self.run['LA']} {self.run['census_year']} "
                         f"in the history ({when}); nothing to compare with.")
            return lines
        before = self.previous
        counts = (f"{judge.counted(int(before['errors']), 'error')}, "
                  f"{judge.counted(int(before['queries']), 'query', 'queries')}")
        lines.append(f"Since the last run ({_when(before['run_time'])}, {counts}) to this one ({when}):")
        for r in self.by_rule().to_dict("records"):
            changed = f" ({r['values_changed']:,} on changed values)" if r["values_changed"] else ""
            lines.append(f"  {r['rule']} {r['severity']}: {r[NEW]:,} new, {r[RESOLVED]:,} resolved, "
                         f"{r[STILL_OPEN]:,} still open{changed}")
        t = self.totals()
        changed = f" ({t['values_changed']:,} failing on changed values)" if t["values_changed"] else ""
        lines.append(f"In all: {t[NEW]:,} new, {t[RESOLVED]:,} resolved, {t[STILL_OPEN]:,} still open{changed}.")
        return lines


def _when(run_time: str) -> str:
    """Spell a run's recorded time for people: "12 Jan 2026 09:00 UTC"."""
    return f"{dt.datetime.fromisoformat(run_time).astimezone(dt.timezone.utc):%d %b %Y %H:%M} UTC"


def compare_runs(now: pd.DataFrame, before: pd.DataFrame) -> pd.DataFrame:
    """Match two runs' failures on rule, LAchildID and row; say of each whether it is new, resolved or still open.

    Identical keys (two failures of one rule on one row, which a duplicated identifier can give)
    are paired in order of their values digests, equal digests first.
    """
    key = ["rule", "LAchildID", "row"]
    a, b = now.copy(), before.copy()
    a["_i"], b["_j"] = range(len(a)), range(len(b))
    # Equal digests pair first, then the rest of each key in digest order.
    exact = key + ["values_hash"]
    a["_n"] = a.sort_values(exact).groupby(exact).cumcount()
    b["_n"] = b.sort_values(exact).groupby(exact).cumcount()
    same = a.merge(b, on=[*exact, "_n"], suffixes=("", "_b"))[["_i", "_j"]]
    ra, rb = a[~a["_i"].isin(same["_i"])].copy(), b[~b["_j"].isin(same["_j"])].copy()
    ra["_n"] = ra.sort_values(exact).groupby(key).cumcount()
    rb["_n"] = rb.sort_values(exact).groupby(key).cumcount()
    moved = ra.merge(rb, on=[*key, "_n"], suffixes=("", "_b"))[["_i", "_j"]]
    open_now = set(same["_i"]) | set(moved["_i"])
    open_before = set(same["_j"]) | set(moved["_j"])
    cols = ["rule", "severity", "LAchildID", "row"]
    kept = a.loc[a["_i"].isin(open_now), cols].assign(change=STILL_OPEN, values_changed=a["_i"].isin(moved["_i"]))
    new = a.loc[~a["_i"].isin(open_now), cols].assign(change=NEW, values_changed=False)
    gone = b.loc[~b["_j"].isin(open_before), cols].assign(change=RESOLVED, values_changed=False)
    out = pd.concat([new, gone, kept], ignore_index=True)
    out["values_changed"] = out["values_changed"].astype("bool")
    return out.loc[:, [*cols, "change", "values_changed"]]


def changes(folder: str | Path, run: str | None = None, *, la: str | None = None,
            year: str | None = None) -> Changes:
    """Compare a run in the history ``folder`` with the previous run of another file for its LA and year.

    ``run`` defaults to the latest run of ``la`` and ``year`` (default: the latest run of all).
    A re-run of a file already checked is compared as that file's first run.
    """
    index = read_index(folder)
    if index.empty:
        raise HistoryError(folder, "the run history holds no run yet")
    if run is not None:
        if run not in set(index["run"]):
            raise HistoryError(folder, f"the run history has no run {run!r}")
        latest = index[index["run"] == run].iloc[0]
    else:
        wanted = pd.Series(True, index=index.index)
        if la is not None:
            wanted &= index["LA"] == la
        if year is not None:
            wanted &= index["census_year"] == year
        mine = index[wanted]
        if mine.empty:
            raise HistoryError(folder, f"the run history has no run of LA {la} {year}")
        latest = mine.iloc[-1]
    first = latest["rerun_of"] or latest["run"]
    series = runs_of(index, latest["LA"], latest["census_year"])
    place = series.index[series["run"] == first][0]
    this = series.iloc[place]
    previous = series.iloc[place - 1] if place > 0 else None
    now = read_run(folder, this["run"])
    before = read_run(folder, previous["run"]) if previous is not None else now.iloc[:0]
    found = compare_runs(now, before)
    if previous is None:
        # The first run has nothing to compare with: its failures are open, not new.
        found["change"] = STILL_OPEN
    return Changes(run=this, previous=previous, failures=found, latest=latest)


def trend(folder: str | Path, la: str, year: str) -> pd.DataFrame:
    """Return the errors and queries of every run of ``la`` and ``year`` (re-runs left out), oldest first."""
    series = runs_of(read_index(folder), la, year)
    out = series.loc[:, ["run", "run_time", "errors", "queries", "children", "status"]].copy()
    out["run_time"] = pd.to_datetime(out["run_time"], utc=True)
    return out.reset_index(drop=True)


def run_of(folder: str | Path, path: str | Path, year: str) -> str | None:
    """Return the latest run in the history ``folder`` of the file at ``path`` checked as census ``year``, or None."""
    index = read_index(folder)
    mine = index[(index["file_sha256"] == file_sha256(path)) & (index["census_year"] == year)]
    return str(mine["run"].iloc[-1]) if len(mine) else None


def write_sample(folder: str | Path, year: str = "2025-26", children: int = 300, seed: int = 2026) -> Path:
    """Write the committed sample history: two weekly runs of one synthetic return, then a re-run of the second.

    The returns come from :func:`cinqa.synth.generate_runs` (half the first run's faults fixed, new
    ones injected) and are checked in a private temporary folder; only the history is kept. The
    runs' times are fixed, so the same arguments write the same bytes.
    """
    import tempfile

    from cinqa import synth
    from cinqa.read import read_return
    from cinqa.validate import validate
    from cinqa.write import write_return

    if len(read_index(folder)):
        raise HistoryError(folder, "the sample history is written into a new folder; this one holds runs already")
    runs = synth.generate_runs(year, children, seed)
    monday = dt.datetime(spec.end_year(year), 1, 12, 9, 0, tzinfo=dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="cinqa-history-") as tmp:
        checked = [validate(read_return(write_return(r, Path(tmp) / f"run-{i}.xml")), progress=False)
                   for i, r in enumerate((runs.first, runs.second), start=1)]
        record(checked[0], folder, when=monday)
        record(checked[1], folder, when=monday + dt.timedelta(days=7))
        record(checked[1], folder, when=monday + dt.timedelta(days=7, hours=5))
    return Path(folder)
