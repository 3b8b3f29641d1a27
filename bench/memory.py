"""Measure the peak memory (RSS) of reading and validating returns of growing size.

    .venv/bin/python bench/memory.py [--sizes 20000 200000 800000] [--year 2025-26] [--cache DIR]

Each return is generated once with ``cinqa.synth.generate_file`` (seeded) into a cache folder
(default ``/tmp/cinqa-bench-cache``, kept between runs) and measured in a fresh process: read,
then validate, reporting the peak RSS after each step (``/proc/self/status`` VmHWM) and the
whole process's peak from ``wait4``. The per-child figure at each size shows whether growth is
linear. Target (issue 10): <= 8 GiB at 800k children.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from run_all import banner, emit, measured  # noqa: E402

TARGET_BYTES = 8 * 2**30
CACHE = Path("/tmp/cinqa-bench-cache")

_SCRIPT = r"""
import json, re, sys, time
sys.path.insert(0, sys.argv[3])

def hwm():
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmHWM:\s+(\d+) kB", fh.read()).group(1)) * 1024

import cinqa
base = hwm()
t, c = time.perf_counter(), time.process_time()
ret = cinqa.read_return(sys.argv[1])
read_s, read_cpu = time.perf_counter() - t, time.process_time() - c
after_read = hwm()
t, c = time.perf_counter(), time.process_time()
val = cinqa.validate(ret, sys.argv[2])
print(json.dumps({"base": base, "read": after_read, "validate": hwm(), "children": len(ret.children),
                  "rows": int(ret.sizes().sum()), "failures": len(val.failures), "errored": len(val.errored),
                  "read_s": read_s, "read_cpu": read_cpu,
                  "validate_s": time.perf_counter() - t, "validate_cpu": time.process_time() - c}))
"""


def ensure_file(cache: Path, year: str, children: int, seed: int) -> Path:
    """Return the cached synthetic return of ``children`` children, generating it the first time."""
    path = cache / f"mem-{year}-{children}-s{seed}.xml"
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT))
    from cinqa.synth import generate_file

    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.xml")
    t = time.perf_counter()
    generate_file(partial, year, children, seed=seed, progress=False)
    partial.replace(path)  # only a complete file is ever cached
    print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--year", default="2025-26")
    ap.add_argument("--seed", type=int, default=30)
    ap.add_argument("--cache", type=Path, default=CACHE, help="where generated returns are kept")
    args = ap.parse_args()

    banner("cinqa memory benchmark (read + validate, fresh process per size)")
    mib = 2**20
    print(f"{'children':>9} {'file MiB':>9} {'base MiB':>9} {'read MiB':>9} {'peak MiB':>9} {'KiB/child':>10} "
          f"{'peak/file':>9} {'read s':>7} {'cpu':>6} {'valid s':>8} {'cpu':>7} {'failures':>9}", flush=True)
    results = []
    for n in args.sizes:
        path = ensure_file(args.cache, args.year, n, args.seed)
        size = path.stat().st_size
        wall, cpu, rss, code, out, err = measured([sys.executable, "-c", _SCRIPT, str(path), args.year, str(ROOT)])
        if code != 0:
            print(f"{n:>9,} failed (exit {code}) after {wall:.0f} s: {err.strip()[-1500:]}", flush=True)
            emit(f"peak RSS read+validate, {n:,} children", f"FAILED (exit {code})", "", "memory")
            continue
        r = json.loads(out.strip().splitlines()[-1])
        peak = max(rss, r["validate"])
        per_child = peak / n / 1024
        results.append((n, peak))
        print(f"{n:>9,} {size / mib:>9.0f} {r['base'] / mib:>9.0f} {r['read'] / mib:>9.0f} {peak / mib:>9.0f} "
              f"{per_child:>10.1f} {peak / size:>9.2f} {r['read_s']:>7.1f} {r['read_cpu']:>6.1f} "
              f"{r['validate_s']:>8.1f} {r['validate_cpu']:>7.1f} {r['failures']:>9,}"
              + (f"  ({r['errored']} rules raised)" if r["errored"] else ""), flush=True)
        target = "<= 8 GiB" if n == 800_000 else ""
        emit(f"peak RSS read+validate, {n:,} children", f"{peak / 2**30:.2f} GiB ({per_child:.1f} KiB/child; "
             f"read {r['read_s']:.0f} s, validate {r['validate_s']:.0f} s wall, {r['validate_cpu']:.0f} s CPU)",
             target, "memory")
    for (n0, p0), (n1, p1) in zip(results, results[1:]):  # linear growth: these stay about equal
        print(f"marginal memory {n0:,} -> {n1:,} children: {(p1 - p0) / (n1 - n0) / 1024:.1f} KiB per extra child")
    big = [p for n, p in results if n >= 800_000]
    if big:
        print(f"800k target (<= 8 GiB): {'met' if max(big) <= TARGET_BYTES else 'MISSED'}")
    print("base = peak RSS after importing cinqa; read = peak after reading; peak = peak of the whole process")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
