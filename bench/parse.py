"""Time cinqa.read_return against a bare lxml iterparse of the same file, and measure its peak memory.

    .venv/bin/python bench/parse.py [--sizes 20000 200000] [--repeat 3] [--dir DIR] [--profile]
                                    [--against REV]

Builds one return per size (synthetic children; nothing real), then for each prints the best of
``--repeat`` timings (taken in turns) of the floor (``lxml.etree.iterparse`` over every end event,
clearing each element) and of the reader, and the reader's peak RSS in a fresh process. Targets (issue 3):
reader <= 2x floor, peak RSS <= 4x file size. ``--against REV`` also times the reader of an earlier
git revision (its ``cinqa/read.py``, with today's other modules) in the same rounds, to show what a
change to the reader gained.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cinqa import ReturnWriter, read_return  # noqa: E402
from cinqa.read import _BATCH, _SAFE  # noqa: E402
from run_all import emit, load, machine  # noqa: E402

SEED_FIXTURE = ROOT / "tests" / "fixtures" / "cin-2023-24.xml"
CHUNK = 2_000


def build(path: Path, children: int, seed: int = 2024) -> Path:
    """Write a return of about ``children`` children to ``path``: cinqa.synth when it exists, in chunks."""
    try:
        from cinqa.synth import generate_file
    except ImportError:  # before cinqa.synth: the hand-written fixture's children, repeated
        return replicate(path, children)
    return generate_file(path, "2023-24", children, seed=seed, progress=False)


def replicate(path: Path, children: int) -> Path:
    """Repeat the hand-written fixture's children with fresh child numbers and LAchildIDs."""
    seed = read_return(SEED_FIXTURE)
    per = len(seed.children)
    reps_per_chunk = max(1, CHUNK // per)
    with ReturnWriter(path, seed.year, seed.header) as w:
        done = 0
        while done < children:
            reps = min(reps_per_chunk, -(-(children - done) // per))
            chunk: dict[str, pd.DataFrame] = {}
            for name, df in seed.tables.items():
                out = df.iloc[np.tile(np.arange(len(df)), reps)].reset_index(drop=True)
                out["child"] = out["child"].to_numpy() + done + np.repeat(np.arange(reps) * per, len(df))
                out["LAchildID"] = "B" + out["child"].astype(str).str.zfill(7)
                chunk[name] = out
            w.write_children(chunk)
            done += reps * per
    return path


def floor(path: Path) -> None:
    """The least any lxml reader must do: iterate every end event, clearing as it goes."""
    for _, elem in etree.iterparse(str(path), events=("end",)):
        elem.clear()


def lxml_part(path: Path) -> None:
    """What the reader asks of lxml alone: the same parse (options, events for <Header> and <Child>
    only) freeing children in the same batches, with no Python work on their elements."""
    n = 0
    for _, elem in etree.iterparse(str(path), events=("end",), tag=("Header", "Child"), **_SAFE):
        n += 1
        if n % _BATCH == 0:
            parent = elem.getparent()
            del parent[:parent.index(elem) + 1]


def best_of(fns: dict[str, Any], path: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """Return, per name, the best wall-clock and the best CPU time of ``repeat`` runs of each function.

    The functions take turns within each round, so that a stretch of a busy machine slows all of
    them alike rather than one (CPU time suffers less from other processes than wall time)."""
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            gc.collect()
            t, c = time.perf_counter(), time.process_time()
            fn(path)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return {k: (min(wall[k]), min(cpu[k])) for k in fns}


_RSS_SCRIPT = """
import re, resource, sys
sys.path.insert(0, {root!r})
import cinqa

def status(key):
    with open("/proc/self/status") as fh:
        return int(re.search(key + r":\\s+(\\d+) kB", fh.read()).group(1)) * 1024

base = status("VmRSS")
try:  # start the high-water mark afresh, so that imports' own peak does not count
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
except OSError:
    pass
ret = cinqa.read_return({path!r})
print(base, status("VmHWM"), len(ret.children))
"""


def reader_at(rev: str, folder: Path):
    """Return the ``read_return`` of ``cinqa/read.py`` as it was at git revision ``rev``."""
    import importlib.util

    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:cinqa/read.py"], check=True,
                            capture_output=True, text=True).stdout
    path = folder / "read_at_rev.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("read_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.read_return


def peak_rss(path: Path) -> tuple[int, int]:
    """Return (RSS after imports, peak RSS while reading) in bytes, from a fresh process reading ``path``."""
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT.format(root=str(ROOT), path=str(path))],
                         check=True, capture_output=True, text=True).stdout.split()
    return int(out[-3]), int(out[-2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to build the files (default: a temp folder)")
    ap.add_argument("--profile", action="store_true", help="profile one read of the largest file (pyinstrument)")
    ap.add_argument("--against", metavar="REV", help="also time the reader of this git revision, in the same rounds")
    args = ap.parse_args()

    print(f"cinqa parse benchmark, {dt.datetime.now():%Y-%m-%d %H:%M}")
    print(f"machine: {machine(f'lxml {etree.__version__}', f'pandas {pd.__version__}')}")
    print(f"load average at start: {load()}")
    tmp = tempfile.TemporaryDirectory(prefix="cinqa-bench-") if args.dir is None else None
    folder = Path(tmp.name) if tmp else args.dir
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    fns = {"floor": floor, "reader": read_return, "lxml part": lxml_part}
    if args.against:
        fns[f"reader at {args.against}"] = reader_at(args.against, folder)
    try:
        for n in args.sizes:
            path = folder / f"bench-{n}.xml"
            t = time.perf_counter()
            build(path, n)
            size = path.stat().st_size
            print(f"built {path.name}: {size / 2**20:.1f} MiB in {time.perf_counter() - t:.1f} s", flush=True)
            best = best_of(fns, path, args.repeat)
            (f, fc), (r, rc), (_, lc) = best["floor"], best["reader"], best["lxml part"]
            base, peak = peak_rss(path)
            row = {"children": n, "file MiB": size / 2**20, "floor s": f, "reader s": r, "reader/floor": r / f,
                   "floor cpu s": fc, "reader cpu s": rc, "cpu reader/floor": rc / fc,
                   "lxml part/floor": lc / fc, "python part/floor": (rc - lc) / fc}
            if args.against:
                old = best[f"reader at {args.against}"][1]
                row |= {f"{args.against} cpu s": old, f"cpu {args.against}/floor": old / fc, "cpu reader/old": rc / old}
            rows.append(row | {"peak RSS MiB": peak / 2**20, "peakRSS/file": peak / size,
                               "(peak-base)/file": (peak - base) / size})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format=lambda v: f"{v:.2f}"), flush=True)
        if args.profile:
            from pyinstrument import Profiler

            prof = Profiler()
            prof.start()
            read_return(folder / f"bench-{max(args.sizes)}.xml")
            prof.stop()
            print(prof.output_text(unicode=False, color=False, show_all=False))
    finally:
        if tmp:
            tmp.cleanup()
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("base = RSS after importing cinqa (pandas, numpy, pyarrow, lxml ...), before reading")
    print("lxml part = the reader's own parse with no Python work on the elements (CPU); python part = the rest:")
    print("  the walk over every element, the checks that nothing is lost, and typing the columns")
    print("targets: reader/floor <= 2, peakRSS/file <= 4")
    for r in rows:
        emit(f"read {r['children']:,} children vs a bare lxml iterparse of the same file (the floor)",
             f"{r['cpu reader/floor']:.2f}x the floor, CPU ({r['reader cpu s']:.2f} s vs {r['floor cpu s']:.2f} s)",
             "<= 2x", "parse")
        emit(f"peak RSS of reading {r['children']:,} children, beyond imports",
             f"{r['(peak-base)/file']:.2f}x the file size ({r['peakRSS/file']:.2f}x with imports)", "<= 4x", "parse")


if __name__ == "__main__":
    main()
