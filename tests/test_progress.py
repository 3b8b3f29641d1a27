"""Progress: bars that advance on a terminal, widgets in a notebook, nothing when no one is looking."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import cinqa
from cinqa import rules
from cinqa.progress import ENV
from cinqa.read import _Reader
from cinqa.validate import run_suites
from cinqa.views import ViewBuilder

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample-2025-26.xml"
CINQA = Path(sys.executable).with_name("cinqa")


def in_a_terminal(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``args`` with a 120-column pseudo-terminal as stdin, stdout and stderr; return its exit code and output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a pty starts 0 columns wide, where a bar has no room to draw
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.execve(args[0], args, {**os.environ, **(env or {})})
    out = bytearray()
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child has closed the terminal
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


def frames(text: str, what: str) -> list[tuple[int, int]]:
    """Return the (done, total) counts of every frame the bar named ``what`` drew, in order."""
    return [(int(a), int(b)) for a, b in re.findall(re.escape(what) + r":\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)", text)]


def test_on_a_terminal_validation_counts_the_rules_run_and_reading_reaches_the_end_of_the_file():
    code, text = in_a_terminal([str(CINQA), "validate", str(SAMPLE)])
    assert code in (0, 1), text
    rules_run = frames(text, f"Validating {SAMPLE.name}")
    assert rules_run, text
    total = rules_run[-1][1]
    # The last frames may fall within tqdm's redraw interval: that every rule is counted is shown below.
    assert total > 100 and {t for _, t in rules_run} == {total}
    assert any(0 < done < total for done, _ in rules_run), rules_run  # it moved, not just 0 then done
    assert [d for d, _ in rules_run] == sorted(d for d, _ in rules_run)
    assert re.search(rf"Reading {re.escape(SAMPLE.name)}:\s+\d+%\|[^|]*\|\s*[\d.]+k?/363k", text), text  # bytes
    assert "0/?" not in text and "Verdict:" in text


def test_reading_counts_every_byte_of_the_file():
    ticks: list[int] = []
    _Reader(SAMPLE, None, ticks.append).read()
    assert sum(ticks) == SAMPLE.stat().st_size and len(ticks) > 1


def test_when_not_on_a_terminal_nothing_is_drawn():
    done = subprocess.run([str(CINQA), "validate", str(SAMPLE)], capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != ENV})
    assert done.returncode in (0, 1), done.stderr
    assert done.stderr == "" and "Verdict:" in done.stdout


def test_cinqa_progress_0_silences_a_terminal():
    code, text = in_a_terminal([str(CINQA), "rules", "--year", "2023-24"], {ENV: "0"})
    assert code == 0 and "rules in 2023-24" in text
    code, text = in_a_terminal([sys.executable, "-c", f"import cinqa; cinqa.read_return({str(SAMPLE)!r})"], {ENV: "0"})
    assert code == 0 and text.strip() == ""


def test_in_a_notebook_reading_shows_a_widget(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(ENV, raising=False)  # the kernel inherits this environment
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(f"import cinqa\nret = cinqa.read_return({str(SAMPLE)!r})"))
    NotebookClient(nb, kernel_name="python3", timeout=600).execute()
    outputs = nb.cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
    assert not any(o.get("name") == "stderr" for o in outputs), outputs


@pytest.mark.parametrize("workers", [1, 2])
def test_every_expectation_is_counted_once_whichever_process_ran_it(workers):
    ret = cinqa.read_return(SAMPLE, progress=False)
    plans = rules.view_suites(ret.year)
    builder = ViewBuilder(ret, ret.year)
    views = {name: builder.view(name) for name in plans}
    ticks: list[int] = []
    run_suites(plans, views, workers, ticks.append)
    assert sum(ticks) == sum(len(p.entries) for p in plans.values())
    assert len(ticks) > len(plans) // 2 and all(t >= 0 for t in ticks)
