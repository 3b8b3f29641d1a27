"""Time cinqa.validate against the validator LAs use today (csc-validator-be-cin) on the same files.

    .venv/bin/python bench/peer.py [--sizes 2000 10000 20000] [--year 2024-25] [--errors 2000] [--venv DIR]

The peer is installed from PyPI into its own throwaway virtual environment (default
``bench/.peer-venv``, git-ignored; never a cinqa dependency, never imported here) and run there
through its Python API exactly as its ``python -m cin_validator run FILE -r cinYYYY_YY`` command
does (parse with ElementTree, convert_data, process_data, CinValidator over the year's registry);
its CLI module also imports pytest, which the package does not declare. Both tools run in a fresh
process on the same seeded synthetic return (every module populated) for the same census year;
wall and CPU seconds of the whole process (imports included) and of the work itself are printed,
with the ratio peer / cinqa. With ``--errors N`` a return of N children with injected faults is
checked by both and the distinct rules and (rule, child) pairs each reports are compared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from run_all import banner, emit, measured  # noqa: E402

PEER = "csc-validator-be-cin"
# The peer pins pandas<2 but not numpy; pandas 1.5 wheels break on numpy 2 ("dtype size changed").
PEER_PINS = [PEER, "numpy<2"]

_PEER_SCRIPT = r"""
import contextlib, importlib, io, json, sys, time
import xml.etree.ElementTree as ET
t0, c0 = time.perf_counter(), time.process_time()
from cin_validator import cin_validator
registry = importlib.import_module("cin_validator.rules." + sys.argv[2]).registry
t1, c1 = time.perf_counter(), time.process_time()
root = ET.parse(sys.argv[1]).getroot()
data = cin_validator.process_data(cin_validator.convert_data(root))
t2, c2 = time.perf_counter(), time.process_time()
printed = io.StringIO()
with contextlib.redirect_stdout(printed):  # the peer prints, and swallows, each rule's exception
    v = cin_validator.CinValidator(data, registry)
t3, c3 = time.perf_counter(), time.process_time()
issues = v.full_issue_df
la = getattr(v, "la_rule_issues", None)
rules = set(issues["rule_code"].astype(str)) if len(issues) else set()
if la is not None and len(la) and "rule_code" in la:
    rules |= set(la["rule_code"].astype(str))
pairs = set(zip(issues["rule_code"].astype(str), issues["child_id"].astype(str))) if len(issues) else set()
print(json.dumps({"import": t1 - t0, "read": t2 - t1, "validate": t3 - t2,
                  "read_cpu": c2 - c1, "validate_cpu": c3 - c2, "rows": len(issues),
                  "rules": sorted(rules), "pairs": sorted(map(list, pairs)),
                  "rule_exceptions": printed.getvalue().count("Error with rule"),
                  "exception_text": printed.getvalue()[-2000:]}))
"""

_CINQA_SCRIPT = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
sys.path.insert(0, sys.argv[3])
import cinqa
import great_expectations  # cinqa imports it on first use: counted with the imports, as the peer's pandas is
t1, c1 = time.perf_counter(), time.process_time()
ret = cinqa.read_return(sys.argv[1])
t2, c2 = time.perf_counter(), time.process_time()
val = cinqa.validate(ret, sys.argv[2])
t3, c3 = time.perf_counter(), time.process_time()
cinqa.validate(ret, sys.argv[2])  # a re-run, as an analyst fixing a return makes many
t4, c4 = time.perf_counter(), time.process_time()
f = val.failures
print(json.dumps({"import": t1 - t0, "read": t2 - t1, "validate": t3 - t2, "again": t4 - t3,
                  "read_cpu": c2 - c1, "validate_cpu": c3 - c2, "again_cpu": c4 - c3, "rows": len(f),
                  "rules": sorted(set(f["rule"].astype(str))),
                  "pairs": sorted(map(list, set(zip(f["rule"].astype(str), f["LAchildID"].fillna("").astype(str))))),
                  "rule_exceptions": len(val.errored)}))
"""


def ensure_peer(venv: Path) -> Path | None:
    """Create ``venv`` and install the peer into it if needed; return its python, or None (printing why)."""
    python = venv / "bin" / "python"
    if python.exists():
        ok = subprocess.run([str(python), "-c", "import cin_validator.cin_validator"], capture_output=True, text=True)
        if ok.returncode == 0:
            return python
    print(f"installing {PEER} into {venv} ...", flush=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", *PEER_PINS],
             [str(python), "-c", "import cin_validator.cin_validator"]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1200)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"could not set up the peer: {' '.join(step)}: {exc}")
            return None
        if done.returncode != 0:
            print(f"could not set up the peer: {' '.join(step)} exited {done.returncode}:\n{done.stderr[-2000:]}")
            return None
    version = subprocess.run([str(python), "-m", "pip", "show", PEER], capture_output=True, text=True).stdout
    print(next((line for line in version.splitlines() if line.startswith("Version")), "Version unknown"))
    return python


def run_one(python: str, script: str, args: list[str], timeout: float) -> dict | None:
    """Run one tool in a fresh process; return its figures plus whole-process wall/CPU/RSS, or None."""
    wall, cpu, rss, code, out, err = measured([python, "-c", script, *args], timeout=timeout)
    lines = out.strip().splitlines()
    if code != 0 or not lines:
        print(f"  failed (exit {code} after {wall:.0f} s): {err.strip()[-1500:]}")
        return None
    res = json.loads(lines[-1])
    res.update(wall=wall, cpu=cpu, rss=rss)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000], help="children per return (default 10000)")
    ap.add_argument("--year", default="2024-25", help="census year of the returns and of both rulesets")
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--errors", type=int, default=2_000, help="children in the injected-faults return (0: skip)")
    ap.add_argument("--error-rate", type=float, default=0.05)
    ap.add_argument("--venv", type=Path, default=BENCH / ".peer-venv", help="the peer's own virtual environment")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed for one peer run")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from cinqa.synth import generate_file

    banner(f"cinqa.validate vs {PEER}, census {args.year}")
    ruleset = "cin" + args.year.replace("-", "_")
    python = ensure_peer(args.venv)
    if python is None:
        print("peer unavailable: only cinqa's figures follow")
    else:
        print(f"peer: {python} (ruleset {ruleset}), run as its CLI does, through its Python API")
    print("times in seconds; 'work' = read + validate inside the process, after importing the tool and its "
          "libraries (pandas for both, GX for cinqa); 'process' = the whole process, imports included (and, "
          "for cinqa, a second validation of the same return, timed as 'again'); CPU = user + system", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cinqa-peer-") as tmp:
        for n in args.sizes:
            path = generate_file(Path(tmp) / f"peer-{n}.xml", args.year, n, seed=args.seed, progress=False)
            print(f"\n{n:,} children, {path.stat().st_size / 2**20:.1f} MiB", flush=True)
            ours = run_one(sys.executable, _CINQA_SCRIPT, [str(path), args.year, str(ROOT)], args.timeout)
            theirs = run_one(str(python), _PEER_SCRIPT, [str(path), ruleset], args.timeout) if python else None
            for who, r in (("cinqa", ours), ("peer", theirs)):
                if r:
                    print(f"  {who:<6} read {r['read']:7.2f} (cpu {r['read_cpu']:6.2f})  validate {r['validate']:7.2f} "
                          f"(cpu {r['validate_cpu']:6.2f})  process {r['wall']:7.2f} (cpu {r['cpu']:6.2f})  "
                          f"peak RSS {r['rss'] / 2**20:6.0f} MiB  failures {r['rows']:,} in {len(r['rules'])} rules"
                          + (f"  [{r['rule_exceptions']} rules raised]" if r["rule_exceptions"] else "")
                          + (f"  again {r['again']:.2f} (cpu {r['again_cpu']:.2f})" if "again" in r else ""), flush=True)
            if ours and theirs:
                work = theirs["read"] + theirs["validate"], ours["read"] + ours["validate"]
                work_cpu = theirs["read_cpu"] + theirs["validate_cpu"], ours["read_cpu"] + ours["validate_cpu"]
                row = {"children": n, "peer work": work[0], "cinqa work": work[1], "peer cpu": work_cpu[0],
                       "cinqa cpu": work_cpu[1], "ratio": work[0] / work[1],
                       "ratio cpu": work_cpu[0] / work_cpu[1], "ratio process": theirs["wall"] / (ours["wall"] - ours["again"]),
                       "ratio process cpu": theirs["cpu"] / (ours["cpu"] - ours["again_cpu"]),
                       "ratio again": work[0] / ours["again"]}
                rows.append(row)
                print(f"  peer / cinqa: work {row['ratio']:.1f}x wall, {row['ratio cpu']:.1f}x CPU; whole process "
                      f"(without cinqa's re-run) {row['ratio process']:.1f}x wall, {row['ratio process cpu']:.1f}x CPU; "
                      f"peer work / cinqa re-run {row['ratio again']:.1f}x wall", flush=True)
                emit(f"peer/cinqa validate, {n:,} children ({args.year})",
                     f"{row['ratio']:.1f}x wall, {row['ratio cpu']:.1f}x CPU (peer {work[0]:.1f} s, cinqa {work[1]:.1f} s)",
                     ">= 30x at 10k" if n == 10_000 else "", "peer")
            elif ours:
                emit(f"cinqa read+validate, {n:,} children ({args.year})",
                     f"{ours['read'] + ours['validate']:.1f} s wall, {ours['read_cpu'] + ours['validate_cpu']:.1f} s CPU "
                     "(peer failed)", "", "peer")
        if len(rows) > 1:
            print("\ngrowth (read + validate seconds per 1,000 children):")
            for r in rows:
                k = 1000 / r["children"]
                print(f"  {r['children']:>8,}  peer {k * r['peer work']:7.2f} wall {k * r['peer cpu']:7.2f} CPU   "
                      f"cinqa {k * r['cinqa work']:7.3f} wall {k * r['cinqa cpu']:7.3f} CPU")
        if args.errors:
            compare_faults(args, python, ruleset, Path(tmp))
    return 0


def compare_faults(args: argparse.Namespace, python: Path | None, ruleset: str, tmp: Path) -> None:
    """Check a return with injected faults with both tools and compare what each reports."""
    from cinqa.synth import generate_file

    path = generate_file(tmp / "faults.xml", args.year, args.errors, seed=args.seed + 1,
                         error_rate=args.error_rate, progress=False)
    truth_path = path.with_name(path.stem + "-truth.csv")
    import pandas as pd

    # A child whose LAchildID was removed (8500) has "" in both the truth and cinqa's pairs.
    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False) if truth_path.exists() else None
    print(f"\ninjected faults: {args.errors:,} children, error rate {args.error_rate}"
          + (f", {len(truth):,} faults of {truth['rule'].nunique()} rules injected" if truth is not None else ""))
    ours = run_one(sys.executable, _CINQA_SCRIPT, [str(path), args.year, str(ROOT)], args.timeout)
    theirs = run_one(str(python), _PEER_SCRIPT, [str(path), ruleset], args.timeout) if python else None
    found = {}
    recall = []
    for who, r in (("cinqa", ours), ("peer", theirs)):
        if r:
            pairs = {tuple(p) for p in r["pairs"]}
            found[who] = (set(r["rules"]), pairs)
            line = f"  {who:<6} {r['rows']:>6,} failure rows, {len(r['rules'])} rules, {len(pairs):,} (rule, child) pairs"
            if truth is not None:
                want = set(zip(truth["rule"], truth["LAchildID"]))
                line += f"; injected (rule, child) pairs found: {len(want & pairs):,} of {len(want):,}"
                recall.append(f"{who} {len(want & pairs):,} of {len(want):,}")
                missed = sorted(want - pairs)
                if missed:
                    line += f"\n         missed: {', '.join(f'{r} {c}' for r, c in missed[:20])}"
            print(line)
    if recall:
        emit(f"injected (rule, child) pairs found, {args.errors:,} children ({args.year})", ", ".join(recall), "all",
             "peer")
    if len(found) == 2:
        (rc, pc), (rp, pp) = found["cinqa"], found["peer"]
        print(f"  rules both report: {len(rc & rp)}; only cinqa: {len(rc - rp)}; only peer: {len(rp - rc)}")
        print(f"  (rule, child) pairs both report: {len(pc & pp):,}; only cinqa: {len(pc - pp):,}; only peer: {len(pp - pc):,}")
        print(f"  rules only the peer reports: {' '.join(sorted(rp - rc)[:40])}")
        print(f"  rules only cinqa reports: {' '.join(sorted(rc - rp)[:40])}")


if __name__ == "__main__":
    raise SystemExit(main())
