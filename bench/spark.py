"""Time pooled validation on Spark local against pandas, one return at a time, on the same store.

    .venv/bin/python bench/spark.py [--sizes 20000 200000] [--las 4] [--year 2025-26]
                                    [--pooled-las 10] [--pooled-children 500] [--master local[*]] [--dir DIR]
                                    [--pandas-views]

For each size a store (:mod:`cinqa.pool`) of ``--las`` synthetic LAs of ``--year`` sharing the
children (1% of them given an injected fault) is validated twice in this run: by pandas, each
LA-year read back from the store and checked by ``cinqa.validate`` in turn (the baseline), and by
``cinqa.spark.validate_store`` on one Spark session (its start is timed apart), the views built on
Spark (``--pandas-views`` also times them built in pandas per LA-year). The ratio is
Spark's wall time over pandas'; both saw the same machine. Then a pooled run over ``--pooled-las``
LAs in each of ``--pooled-years`` years (20 LA-years by default) prints its summary per LA and year.
Wall and CPU seconds are printed with the load average: CPU counts this process and its children
(Spark's JVM and Python workers), the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cinqa  # noqa: E402
from cinqa import spec  # noqa: E402
from cinqa.pool import pooled_returns, read_pooled, write_pooled  # noqa: E402
from run_all import banner, emit, load  # noqa: E402


def cpu_seconds() -> float:
    """Return the CPU seconds (user + system) of this process and every process it started that still runs."""
    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


def make_store(folder: Path, year: str, las: list[str], children: int) -> Path:
    """Write one synthetic return of ``children`` children per LA of ``las`` into the store ``folder``."""
    if pooled_returns_or_none(folder) == [(year, la) for la in sorted(las)]:
        return folder
    for i, la in enumerate(las):
        ret, _ = cinqa.synth.generate(year, children=children, seed=2025 + i, la=la, errors=0.01)
        write_pooled(ret, folder)
    return folder


def pooled_returns_or_none(folder: Path) -> list[tuple[str, str]] | None:
    try:
        return pooled_returns(folder)
    except cinqa.errors.CinqaError:
        return None


def on_pandas(store: Path) -> tuple[float, float, int]:
    """Validate each LA-year of ``store`` with cinqa.validate; return wall and CPU seconds and failing rows."""
    wall, cpu, rows = time.perf_counter(), cpu_seconds(), 0
    for year, la in pooled_returns(store):
        rows += len(cinqa.validate(read_pooled(store, year, la), progress=False).failures)
    return time.perf_counter() - wall, cpu_seconds() - cpu, rows


def on_spark(store: Path, spark: object, views_on: str = "spark") -> tuple[float, float, object]:
    from cinqa.spark import validate_store

    wall, cpu = time.perf_counter(), cpu_seconds()
    result = validate_store(store, spark=spark, progress=False, views_on=views_on)
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20000, 200000],
                        help="children per store (none: only the pooled run)")
    parser.add_argument("--las", type=int, default=4, help="LAs each store's children are shared over")
    parser.add_argument("--year", default="2025-26")
    parser.add_argument("--pooled-las", type=int, default=10, help="LAs per year of the pooled run (0: none)")
    parser.add_argument("--pooled-children", type=int, default=500, help="children per LA-year of the pooled run")
    parser.add_argument("--pooled-years", type=int, default=2, help="consecutive census years of the pooled run")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--dir", type=Path, default=None, help="keep the stores here (default: a temporary folder)")
    parser.add_argument("--pandas-views", action="store_true",
                        help="also time validate_store with its views built in pandas per LA-year (views_on='pandas')")
    args = parser.parse_args()

    from cinqa.spark import session

    codes = sorted(spec.codes("la", args.year))
    folder = args.dir or Path(tempfile.mkdtemp(prefix="cinqa-bench-spark-"))
    banner("cinqa on Spark local against pandas")
    clock = time.perf_counter()
    spark = session(args.master)
    spark.range(1).count()
    print(f"Spark session ({args.master}, parallelism {spark.sparkContext.defaultParallelism}) "
          f"started in {time.perf_counter() - clock:.1f} s", flush=True)

    rows = []
    for size in args.sizes:
        store = make_store(folder / f"store-{size}", args.year, codes[:args.las], size // args.las)
        p_wall, p_cpu, p_rows = on_pandas(store)
        s_wall, s_cpu, result = on_spark(store, spark)
        same = "yes" if len(result.failures) == p_rows else f"NO ({len(result.failures)} vs {p_rows})"
        rows.append((size, args.las, p_wall, p_cpu, s_wall, s_cpu, s_wall / p_wall, same, result.seconds, load()))
        print(f"{size:,} children over {args.las} LAs: pandas {p_wall:.1f} s, Spark {s_wall:.1f} s "
              f"({s_wall / p_wall:.1f}x); load {load()}", flush=True)
        if args.pandas_views:
            o_wall, o_cpu, old = on_spark(store, spark, "pandas")
            print(f"  Spark with the views built in pandas per LA-year: {o_wall:.1f} s ({o_cpu:.0f} CPU s, "
                  f"{o_wall / p_wall:.1f}x pandas; views / GX / failures "
                  f"{old.seconds['views']:.1f} / {old.seconds['gx']:.1f} / {old.seconds['failures']:.1f} s), "
                  f"same failing rows: {'yes' if len(old.failures) == p_rows else 'NO'}", flush=True)
        emit(f"Spark local / pandas, {size:,} children over {args.las} LAs", f"{s_wall / p_wall:.1f}x",
             "pooled data only", "spark.py")

    if rows:
        print("\n| children | LAs | pandas s (CPU s) | Spark s (CPU s) | Spark / pandas | same failing rows | "
              "Spark: views / GX / failures s | load |")
        print("|---|---|---|---|---|---|---|---|")
    for size, las, pw, pc, sw, sc, ratio, same, secs, when in rows:
        print(f"| {size:,} | {las} | {pw:.1f} ({pc:.0f}) | {sw:.1f} ({sc:.0f}) | {ratio:.1f}x | {same} | "
              f"{secs['views']:.1f} / {secs['gx']:.1f} / {secs['failures']:.1f} | {when} |")

    if args.pooled_las:
        end = spec.end_year(args.year)
        years = [f"{end - 1 - k}-{str(end - k)[2:]}" for k in reversed(range(args.pooled_years))]
        store = folder / f"pooled-{args.pooled_las}x{len(years)}-{args.pooled_children}"
        for year in years:
            make_store(store, year, sorted(spec.codes("la", year))[:args.pooled_las], args.pooled_children)
        wall, cpu, result = on_spark(store, spark)
        print(f"\nPooled run: {len(result.summary)} LA-years of {args.pooled_children} children each, "
              f"{len(result.failures):,} failing rows, {wall:.1f} s ({cpu:.0f} CPU s); load {load()}")
        print(result.summary.to_string(index=False))
        emit(f"pooled Spark run, {len(result.summary)} LA-years x {args.pooled_children} children",
             f"{wall:.0f} s", "", "spark.py")
    spark.stop()


if __name__ == "__main__":
    main()
