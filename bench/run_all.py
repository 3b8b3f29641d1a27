"""Run every benchmark in bench/ and print one combined table (optionally into the README).

    .venv/bin/python bench/run_all.py [--quick] [--update-readme] [--skip peer memory ...]

Each script runs in its own process with modest sizes; its output is echoed and its summary lines
(``BENCH|what|figure|target|script``, printed by the scripts this file owns) are gathered into one
table with the machine, date and load average. The final tables of parse, synth and validate
(and of any script that prints no such lines) are quoted as they stand. With ``--update-readme`` the README's
``## Performance`` section, and only that section, is rewritten with the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
README = ROOT / "README.md"
TAG = "BENCH|"


def machine(*versions: str) -> str:
    """Describe this machine in one line: CPU model, cores, memory, Python, then ``versions``
    (such as ``"pandas 3.1.1"``) and the system."""
    cpu = platform.machine()
    mem = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
                break
    except OSError:
        pass
    software = ", ".join([f"Python {platform.python_version()}", *versions, f"{platform.system()} {platform.release()}"])
    return f"{cpu}, {os.cpu_count()} CPUs{mem}; {software}"


def load() -> str:
    """Return the 1, 5 and 15 minute load averages as text."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def banner(title: str) -> None:
    """Print the title, date, machine and load average that every table here is judged by."""
    print(f"{title}, {dt.datetime.now():%Y-%m-%d %H:%M}")
    print(f"machine: {machine()}")
    print(f"load average (1/5/15 min): {load()} on {os.cpu_count()} CPUs", flush=True)


def measured(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float | None = None, echo: bool = False) -> tuple[float, float, int, int, str, str]:
    """Run ``cmd`` and return (wall s, CPU s, peak RSS bytes, exit code, stdout, stderr) of that process.

    CPU time and peak RSS come from ``wait4`` on the child itself, so they are its own (and its
    waited-for children's), not this process's. With ``echo`` the child's output is printed as it comes.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd, text=True)
        deadline = None if timeout is None else start + timeout
        # a second open file description, so that reading does not move the child's write offset
        follow = open(f"/proc/self/fd/{out.fileno()}", encoding="utf-8", errors="replace") if echo else None
        while True:  # poll with wait4 rather than proc.wait, which would reap the child and lose its usage
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                deadline = None
            if follow is not None:
                print(follow.read(), end="", flush=True)
            time.sleep(0.05)
        if follow is not None:
            print(follow.read(), end="", flush=True)
            follow.close()
        code = os.waitstatus_to_exitcode(status)
        cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024
        proc.returncode = code
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return wall, cpu, rss, code, out.read(), err.read()


def emit(what: str, figure: str, target: str = "", script: str = "") -> None:
    """Print one summary line that run_all.py gathers into the combined table."""
    print(f"{TAG}{what}|{figure}|{target}|{script}", flush=True)


# name, argv (after the interpreter), arguments for --quick
SCRIPTS: list[tuple[str, list[str], list[str]]] = [
    ("parse", ["bench/parse.py", "--sizes", "20000", "200000", "--repeat", "2"], ["--sizes", "20000", "--repeat", "1"]),
    ("synth", ["bench/synth.py", "--sizes", "20000", "200000"], ["--sizes", "20000"]),
    ("validate", ["bench/validate.py"], []),
    ("report", ["bench/report.py", "--children", "20000"], ["--children", "20000"]),
    ("startup", ["bench/startup.py", "--repeat", "5"], ["--repeat", "2"]),
    ("memory", ["bench/memory.py", "--sizes", "20000", "200000", "800000"], ["--sizes", "20000"]),
    ("peer", ["bench/peer.py", "--sizes", "10000"], ["--sizes", "2000"]),
]


# Scripts whose final table is quoted beside their summary lines: it shows more than one line can.
QUOTED = ("parse", "synth", "validate")


def last_table(text: str) -> list[str]:
    """Return the last block of lines that looks like a table (several aligned lines) in ``text``."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() and not line.startswith(TAG):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    tables = [b for b in blocks if len(b) >= 2]
    return tables[-1] if tables else []


def markdown(rows: list[tuple[str, str, str, str]], quoted: dict[str, list[str]], header: list[str]) -> str:
    """Render the combined results as the README's Performance section body."""
    lines = [
        "Every figure comes from a script in `bench/` that measures its baseline in the same run;",
        "`make bench` runs them all (`bench/run_all.py --update-readme` rewrites this section).",
        "",
        *[f"{h}  " for h in header],
        "",
        "Where the time goes, and what came of the profiles, is in [bench/README.md](bench/README.md).",
        "",
        "| what | figure | target | from |",
        "|---|---|---|---|",
        *[f"| {w} | {f} | {t} | `bench/{s}.py` |" for w, f, t, s in rows],
    ]
    for name, table in quoted.items():
        lines += ["", f"`bench/{name}.py`:", "", "```", *table, "```"]
    return "\n".join(lines) + "\n"


def update_readme(body: str) -> None:
    """Replace the README text between ``## Performance`` and the next ``## `` heading with ``body``."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Performance[^\n]*\n(.*?)(?=^## )", text, flags=re.S | re.M)
    if match is None:
        raise SystemExit("README.md has no '## Performance' section followed by another '## ' heading")
    README.write_text(text[:match.start(1)] + "\n" + body + "\n" + text[match.end(1):], encoding="utf-8")
    print(f"rewrote the Performance section of {README}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smallest sizes only (a smoke run, minutes)")
    ap.add_argument("--skip", nargs="*", default=[], help="scripts to leave out (parse synth validate report startup memory peer)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these scripts")
    ap.add_argument("--update-readme", action="store_true", help="rewrite the README's Performance section")
    args = ap.parse_args()

    banner("cinqa benchmarks")
    header = [f"Run {dt.datetime.now():%Y-%m-%d %H:%M}", f"Machine: {machine()}", f"Load average at start: {load()}"]
    rows: list[tuple[str, str, str, str]] = []
    quoted: dict[str, list[str]] = {}
    failed: list[str] = []
    for name, argv, quick in SCRIPTS:
        if name in args.skip or (args.only is not None and name not in args.only):
            continue
        if not (ROOT / argv[0]).exists():
            print(f"\n== {name}: {argv[0]} does not exist yet, skipped")
            continue
        cmd = [sys.executable, argv[0], *(quick if args.quick else argv[1:])]
        print(f"\n== {name}: {' '.join(cmd[1:])}", flush=True)
        wall, cpu, rss, code, out, err = measured(cmd, cwd=ROOT, echo=True)
        if code != 0:
            print(err[-3000:], end="")
            failed.append(f"{name} (exit {code})")
        print(f"== {name}: {wall:.0f} s wall, {cpu:.0f} s CPU, exit {code}", flush=True)
        tagged = [line[len(TAG):].split("|") for line in out.splitlines() if line.startswith(TAG)]
        rows += [(w, f, t, s or name) for w, f, t, s in tagged]
        if code == 0 and (not tagged or name in QUOTED):
            quoted[name] = last_table(out)
    header.append(f"Load average at end: {load()}")
    print("\n" + "=" * 100)
    for h in header:
        print(h)
    width = max((len(r[0]) for r in rows), default=10)
    print(f"{'what':<{width}}  {'figure':<60}  target")
    for w, f, t, s in rows:
        print(f"{w:<{width}}  {f:<60}  {t}")
    for name, table in quoted.items():
        print(f"\n{name}:")
        print("\n".join(table))
    if failed:
        print("\nfailed: " + ", ".join(failed))
    if args.update_readme:
        update_readme(markdown(rows, quoted, header))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
