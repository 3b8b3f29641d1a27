"""Time the synthetic return generator and measure its peak memory.

    .venv/bin/python bench/synth.py [--sizes 20000 200000 800000] [--year 2025-26] [--dir DIR] [--keep]

For each size, a fresh process writes a return with ``cinqa.synth.generate_file`` (streaming, in
chunks of children) and reports wall and CPU seconds, children per second and its own peak RSS;
the generator alone (``cinqa.synth.generate``, no file) is timed at the smallest size. Files go to
a temporary folder (or ``--dir``) and are removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(mode: str, size: int, year: str, path: Path, seed: int) -> dict[str, float]:
    """Run one measurement in this process and return its figures."""
    from cinqa import synth

    synth.generate(year, children=50, seed=seed)  # warm: calendar and parameter tables
    wall, cpu = time.perf_counter(), time.process_time()
    if mode == "file":
        synth.generate_file(path, year, size, seed=seed, progress=False)
    else:
        synth.generate(year, children=size, seed=seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wall": wall, "cpu": cpu, "rss_mb": rss_kib / 1024,
            "file_mb": path.stat().st_size / 1e6 if mode == "file" else 0.0}


def run(mode: str, size: int, year: str, path: Path, seed: int) -> dict[str, float]:
    """Measure in a fresh Python process, so that peak RSS is this run's alone."""
    out = subprocess.run([sys.executable, __file__, "--one", mode, str(size), year, str(path), str(seed)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 800_000])
    parser.add_argument("--year", default="2025-26")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--one", nargs=5, metavar=("MODE", "SIZE", "YEAR", "PATH", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mode, size, year, path, seed = args.one
        print(json.dumps(measure(mode, int(size), year, Path(path), int(seed))))
        return 0
    folder = args.dir or Path(tempfile.mkdtemp(prefix="cinqa-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"cinqa.synth benchmark, {args.year}, seed {args.seed}; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'what':<24}{'children':>10}{'wall s':>9}{'cpu s':>8}{'children/s':>12}{'cpu child/s':>12}"
          f"{'peak RSS MB':>13}{'file MB':>9}")
    rows = [("generate (no file)", "memory", min(args.sizes))] + [("generate_file", "file", n) for n in args.sizes]
    for label, mode, size in rows:
        path = folder / f"synth-{args.year}-{size}.xml"
        r = run(mode, size, args.year, path, args.seed)
        print(f"{label:<24}{size:>10,}{r['wall']:>9.1f}{r['cpu']:>8.1f}{size / r['wall']:>12,.0f}"
              f"{size / r['cpu']:>12,.0f}{r['rss_mb']:>13,.0f}{r['file_mb']:>9,.0f}", flush=True)
        if mode == "file" and not args.keep:
            path.unlink(missing_ok=True)
    if not args.keep and args.dir is None:
        folder.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
