"""Shared by every test: the network is blocked for the whole session, and slow and browser tests are opt-in;
``two_runs`` gives two checked extracts of one synthetic return with known faults fixed, kept and added.

The block (``tests/netguard/sitecustomize.py``) lets loopback and local sockets through, which
Jupyter kernels need, and reaches Python subprocesses through ``PYTHONPATH``. Any blocked attempt,
even one that the code under test caught and ignored, fails the session at its end.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

_GUARD_DIR = Path(__file__).parent / "netguard"
_spec = importlib.util.spec_from_file_location("cinqa_netguard", _GUARD_DIR / "sitecustomize.py")
assert _spec is not None and _spec.loader is not None
netguard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(netguard)

_saved_env: dict[str, str | None] = {}
_log_dir: str | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (long fuzz and scale runs)")
    parser.addoption("--browser", action="store_true", default=False,
                     help="also run tests marked browser (headless Chromium; make test-browser)")


def pytest_configure(config: pytest.Config) -> None:
    global _log_dir
    _log_dir = tempfile.mkdtemp(prefix="cinqa-netguard-")
    paths = [str(_GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    for name, value in ((netguard.ENV_ON, "1"), (netguard.ENV_LOG, str(Path(_log_dir) / "attempts.log")),
                        ("PYTHONPATH", os.pathsep.join(paths))):
        _saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value
    netguard.install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opt_in = {"slow": ("--runslow", "slow; run with --runslow"),
              "browser": ("--browser", "renders the report in headless Chromium (a minute or more); "
                                       "run with --browser, as `make test-browser` does")}
    for marker, (option, reason) in opt_in.items():
        if config.getoption(option):
            continue
        for item in items:
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


def _attempts() -> list[str]:
    """Return every blocked network attempt so far, from this process and its subprocesses."""
    log = os.environ.get(netguard.ENV_LOG)
    return Path(log).read_text(encoding="utf-8").splitlines() if log and os.path.exists(log) else []


@pytest.fixture
def network_attempts() -> Iterator[Callable[[], list[str]]]:
    """Give a test the blocked network attempts made since it started.

    The test judges them itself, so they are forgotten afterwards rather than failing the session.
    """
    before = len(_attempts())
    yield lambda: _attempts()[before:]
    log = os.environ.get(netguard.ENV_LOG)
    if log and os.path.exists(log):
        kept = _attempts()[:before]
        Path(log).write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    attempts = _attempts()
    if attempts:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "network access attempted (blocked) during the tests", red=True)
            for line in attempts:
                reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    netguard.uninstall()
    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_env.clear()
    if _log_dir is not None:
        shutil.rmtree(_log_dir, ignore_errors=True)


# -- two runs of one return ---------------------------------------------------------------------

RUNS_YEAR = "2025-26"
FIRST_FAULTS = ("1520", "8510", "1530", "2884", "8620", "4011", "8525Q", "8555Q", "8606", "8740", "8805", "8905")
SECOND_FAULTS = ("1540", "2990", "4014", "8565", "8600", "8750", "8863Q", "8897Q")
"""Rules whose injected faults fail that rule alone (no second rule), so the truth counts every failure;
1520 and 8510 duplicate a value, so one fault fails two children."""


@dataclass(frozen=True)
class TwoRuns:
    """Two extracts of one return, written and checked: ``clean`` (no fault), ``first`` and ``second``."""

    paths: dict[str, Path]
    validations: dict[str, object]
    truth: pd.DataFrame


def build_two_runs(folder: Path, children: int = 300, seed: int = 7) -> TwoRuns:
    """Write and validate the clean return and two runs of it (:func:`cinqa.synth.generate_runs`) in ``folder``.

    Half the first run's faults are fixed in the second, the rest kept; the second adds faults of
    other rules to children the first left alone. ``truth`` lists every fault with its ``fate``
    (``synth.FIXED``, ``KEPT`` or ``NEW``).
    """
    import cinqa

    runs = cinqa.synth.generate_runs(RUNS_YEAR, children, seed, first=list(FIRST_FAULTS), fixed=0.5,
                                     then=list(SECOND_FAULTS))
    paths, validations = {}, {}
    for name in ("clean", "first", "second"):
        paths[name] = cinqa.write_return(getattr(runs, name), folder / f"{name}.xml")
        validations[name] = cinqa.validate(cinqa.read_return(paths[name]), progress=False)
    return TwoRuns(paths, validations, runs.truth)


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    """Give the tests one :class:`TwoRuns`, built once per session (three validations of 300 children)."""
    return build_two_runs(tmp_path_factory.mktemp("two-runs"))
