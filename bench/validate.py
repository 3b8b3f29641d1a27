"""Time cinqa.validate on synthetic returns against the reader, and say where the time goes.

    .venv/bin/python bench/validate.py [--sizes 10000 20000 200000] [--year 2025-26] [--repeat 2]
                                       [--dir DIR] [--no-plain] [--no-profile] [--workers N]

For each size a return with every module populated (``cinqa.synth.generate_file``, 1% of the
children given an injected fault) is read and validated against the full suite of its year;
the best of ``--repeat`` timings is kept. In the same run the plain engine (whole views, full
meta, every view suite in this process, a dictionary per failing row: how ``cinqa.validate``
ran before its speed-ups) validates the same return, so before/after ratios are comparable.
``validate s`` is cinqa.validate as it runs by default (view suites shared with a forked helper
process on 2+ cores), ``validate s (1 process)`` the same with ``workers=1``.

Where the time goes: GX's fixed cost is measured on a return of 50 children of the same year
(no data to speak of), divided by the number of expectations; the rest of the GX time is the
work on the data. A pyinstrument profile of one in-process validation (``workers=1``) of the
smallest size is summarised by stage. Targets (issues 5 and 10): 10k children read + validated
in <= 3 s in-process; 20k in <= 5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cinqa  # noqa: E402
from cinqa import rules, synth  # noqa: E402
from cinqa.testing import validate_plainly  # noqa: E402
from cinqa.validate import validate  # noqa: E402
from run_all import emit, load, machine  # noqa: E402

OVERHEAD_CHILDREN = 50

# Stages of a validation, each named by the functions (function, file) whose inclusive time counts
# for it; the first match on a call stack from the root wins, so no time is counted twice.
STAGES = (
    ("views (pandas)", (("view", "views.py"),)),
    ("GX: batch set-up (incl. fingerprinting the frame)", (("get_batch", "batch_definition.py"),)),
    ("row-condition filtering", (("query", "frame.py"), ("_apply_row_condition_filter", "pandas_execution_engine.py"))),
    ("GX: rebuild expectation configurations (pydantic)", (("configuration", "expectation.py"),
                                                           ("to_domain_obj", "expectation_configuration.py"))),
    ("GX: metric dependency graph", (("build_metric_dependency_graph", "metrics_calculator.py"),)),
    ("GX: metric computation (the work on the data)", (("resolve_metrics", "execution_engine.py"),)),
    ("failures table", (("_tidy", "validate.py"), ("summarise", "failures.py"))),
)


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Return the best wall-clock time, the best CPU time of this process, and the fastest run's result."""
    best: tuple[float, float, Any] = (float("inf"), float("inf"), None)
    for _ in range(repeat):
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        best = (min(best[0], wall), min(best[1], cpu), out if wall < best[0] else best[2])
    return best


def build(path: Path, year: str, children: int) -> Path:
    if not path.exists():
        synth.generate_file(path, year, children, seed=2025, error_rate=0.01, progress=False)
    return path


def gx_overhead(year: str, folder: Path, workers: int | None) -> tuple[float, float, float, int]:
    """Time GX on a return with almost no data: the first validation in this process (suites built,
    GX warmed up), then the fixed cost in one process and with ``workers``; and count the expectations."""
    ret = cinqa.read_return(build(folder / f"bench-{year}-{OVERHEAD_CHILDREN}.xml", year, OVERHEAD_CHILDREN))
    t = time.perf_counter()
    validate(ret, workers=workers)
    cold = time.perf_counter() - t
    alone = min(validate(ret, workers=1).seconds["gx"] for _ in range(3))
    shared = min(validate(ret, workers=workers).seconds["gx"] for _ in range(3))
    return cold, alone, shared, len(rules.rules_for_year(year))


def profile(ret: cinqa.CensusReturn) -> None:
    """Profile one in-process validation and print the time per stage and the heaviest functions."""
    from pyinstrument import Profiler

    prof = Profiler(interval=0.0005)
    prof.start()
    validate(ret, workers=1)
    prof.stop()
    root = prof.last_session.root_frame()
    total = root.time
    stage_time: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)

    def name_of(frame: Any) -> str:
        return f"{frame.function} ({Path(frame.file_path or '?').name}:{frame.line_no})"

    def walk(frame: Any, seen: frozenset[str], staged: bool) -> None:
        key = name_of(frame)
        if key not in seen:
            inclusive[key] += frame.time
        if not staged:
            file = Path(frame.file_path or "").name
            for stage, functions in STAGES:
                if (frame.function, file) in functions:
                    stage_time[stage] += frame.time
                    staged = True
                    break
        for child in frame.children:
            walk(child, seen | {key}, staged)

    walk(root, frozenset(), False)
    print(f"\nprofile of one validation of {len(ret.children)} children in this process (workers=1), "
          f"{total:.2f} s sampled:")
    for stage, _ in STAGES:
        print(f"  {stage_time[stage]:6.2f} s {100 * stage_time[stage] / total:5.1f}%  {stage}")
    rest = total - sum(stage_time.values())
    print(f"  {rest:6.2f} s {100 * rest / total:5.1f}%  other (GX validator and result bookkeeping)")
    print("heaviest functions (inclusive):")
    for key, seconds in sorted(inclusive.items(), key=lambda kv: -kv[1])[3:23]:
        print(f"  {seconds:6.2f} s {100 * seconds / total:5.1f}%  {key}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 200_000])
    ap.add_argument("--year", default="2025-26")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None, help="where to build (and keep) the files (default: a temp folder)")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain engine (no before/after figures)")
    ap.add_argument("--no-profile", action="store_true", help="skip the pyinstrument profile")
    ap.add_argument("--workers", type=int, default=None, help="processes for the view suites (default: cinqa's)")
    args = ap.parse_args()

    started = time.perf_counter()
    import great_expectations  # noqa: F401  (the import is a fixed per-process cost; timed apart)

    gx_import = time.perf_counter() - started
    print(f"cinqa validate benchmark, {dt.datetime.now():%Y-%m-%d %H:%M}, census year {args.year}")
    print(f"machine: {machine(f'pandas {pd.__version__}')}")
    print(f"load average at start: {load()}  (other processes slow every figure; CPU columns suffer less)")
    print(f"import great_expectations: {gx_import:.1f} s (once per process, not counted below)")
    tmp = tempfile.TemporaryDirectory(prefix="cinqa-bench-") if args.dir is None else None
    folder = Path(tmp.name) if tmp else args.dir
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    try:
        cold, alone, overhead, n_exp = gx_overhead(args.year, folder, args.workers)
        print(f"first validation in this process ({OVERHEAD_CHILDREN} children; builds the suites): {cold:.2f} s")
        print(f"GX fixed cost on {OVERHEAD_CHILDREN} children, {n_exp} expectations: {alone:.2f} s in one process "
              f"= {1000 * alone / n_exp:.1f} ms per expectation per validation; {overhead:.2f} s as validate runs "
              f"by default (view suites shared between processes)")
        for i, n in enumerate(sorted(args.sizes)):
            t = time.perf_counter()
            path = build(folder / f"bench-{args.year}-{n}.xml", args.year, n)
            print(f"\n{path.name}: {path.stat().st_size / 2**20:.0f} MiB, ready in {time.perf_counter() - t:.0f} s",
                  flush=True)
            read, read_cpu, ret = best_of(lambda: cinqa.read_return(path), args.repeat)
            print("rows per table: " + ", ".join(f"{k} {v}" for k, v in ret.sizes().items()), flush=True)
            wall, cpu, v = best_of(lambda: validate(ret, workers=args.workers), args.repeat)
            row = {"children": n, "read s": read, "views s": v.seconds["views"], "GX s": v.seconds["gx"],
                   "failures s": v.seconds["failures"], "validate s": wall, "read+validate s": read + wall,
                   "validate/read": wall / read, "read cpu s": read_cpu, "validate cpu s (this process)": cpu,
                   "failing rows": len(v.failures)}
            row["GX work s"] = max(0.0, v.seconds["gx"] - overhead)
            if args.workers != 1:
                row["validate s (1 process)"] = best_of(lambda: validate(ret, workers=1), args.repeat)[0]
            if not args.no_plain:
                reps = args.repeat if n <= 20_000 else 1
                p_wall, p_cpu, (p_failures, p_errored) = best_of(lambda: validate_plainly(ret), reps)
                same = p_failures.equals(v.failures) and p_errored.equals(v.errored)
                row.update({"plain validate s": p_wall, "plain/read": p_wall / read, "speed-up": p_wall / wall,
                            "same failures": same})
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False, float_format=lambda x: f"{x:.2f}"), flush=True)
            if i == 0 and not args.no_profile:
                profile(ret)
            del ret, v
            gc.collect()
    finally:
        if tmp:
            tmp.cleanup()
    table = pd.DataFrame(rows)
    print(f"\nload average at end: {load()}")
    cols = [c for c in ("children", "read s", "views s", "GX s", "GX work s", "failures s", "validate s",
                        "validate s (1 process)", "read+validate s", "validate/read", "plain validate s",
                        "plain/read", "speed-up", "same failures") if c in table]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print(f"GX fixed cost {1000 * alone / n_exp:.1f} ms per expectation x {n_exp} expectations = {alone:.2f} s per "
          f"validation in one process, {overhead:.2f} s shared as validate runs; 'GX work' is the rest of the GX time")
    print("validate = as cinqa.validate runs by default (view suites shared with a helper process when there are "
          "2+ cores; no gain when other processes keep the cores busy); plain = the engine before its speed-ups, "
          "same run; speed-up = plain validate / validate")
    print("targets: 10k read+validate <= 3 s in-process; 20k read+validate <= 5 s on 2 cores")
    target = {10_000: "<= 3 s", 20_000: "<= 5 s"}
    for r in rows:
        emit(f"read + validate {r['children']:,} children ({args.year}, every module)",
             f"{r['read+validate s']:.2f} s wall (read {r['read s']:.2f} s, validate {r['validate s']:.2f} s; "
             f"{r['validate/read']:.2f}x the read)", target.get(r["children"], ""), "validate")
    emit("GX fixed cost per expectation per validation", f"{1000 * alone / n_exp:.1f} ms x {n_exp} expectations "
         f"= {alone:.2f} s in one process, {overhead:.2f} s shared", "", "validate")


if __name__ == "__main__":
    main()
