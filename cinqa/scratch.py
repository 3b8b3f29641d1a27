"""The one private temporary folder of a cinqa run, removed when the run ends however it ends.

Everything a run writes besides the outputs asked for (openpyxl's temporary files, the executed
report notebook, the report kernel's connection file, IPython's and matplotlib's caches) goes to
one folder, ``cinqa-run-<pid>-<random>`` in the system's temporary directory, made readable by its
owner only (mode 0700). :func:`private_run` points :mod:`tempfile`, ``TMPDIR`` (which the report's
kernel inherits) and ``JUPYTER_RUNTIME_DIR`` at it, and removes it when the run ends: normally, on
an error, on Ctrl-C (SIGINT), on SIGTERM and on SIGHUP. The two signals become an exception so that
every ``finally`` runs first (the ``.part`` file of an output being written is removed on the way).

Python drops an exception raised while it runs a finaliser or a weak reference's callback, printing
"Exception ignored in ..." to stderr: a Ctrl-C that lands there would be lost, and the run would go on
to write its outputs and exit 0. Inside a run, Ctrl-C is therefore also remembered, the dropped
interrupt is not printed, and :func:`raise_if_interrupted` (called before an output is renamed into
place, and when the command returns) raises it again.

SIGKILL cannot be caught. The next run looks for folders of runs whose process no longer exists,
removes them, and says so on stderr; a folder whose process is alive is left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

PREFIX = "cinqa-run-"
_NAME = re.compile(rf"^{PREFIX}(\d+)-")
STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals that end a run the way Ctrl-C does: its temporary files are removed, then it stops."""
_ACTIVE: list[Path] = []
_INTERRUPTED: list[bool] = [False]


class Stopped(KeyboardInterrupt):
    """A run was told to stop by a signal other than Ctrl-C (SIGTERM, SIGHUP)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def current() -> Path | None:
    """Return the folder of the run in progress, if there is one."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def private_run() -> Iterator[Path]:
    """Run the block in a new private temporary folder and remove the folder afterwards.

    Inside a run already in progress, the block shares its folder. In the main thread, SIGTERM and
    SIGHUP raise :class:`Stopped` while the block runs; once the folder is removed, the process
    ends by the same signal (its exit status says so) after one line on stderr.
    """
    if _ACTIVE:
        yield _ACTIVE[-1]
        return
    base = Path(tempfile.gettempdir())
    sweep(base)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
    os.chmod(folder, 0o700)
    saved_env = {name: os.environ.get(name) for name in ("TMPDIR", "JUPYTER_RUNTIME_DIR")}
    saved_tempdir = tempfile.tempdir
    handlers = _catch_stops()
    saved_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupt(saved_hook)
    _INTERRUPTED[0] = False
    _ACTIVE.append(folder)
    stopped: Stopped | None = None
    try:
        os.environ["TMPDIR"] = str(folder)
        os.environ["JUPYTER_RUNTIME_DIR"] = str(folder / "jupyter-runtime")
        tempfile.tempdir = str(folder)
        yield folder
    except KeyboardInterrupt as exc:
        # Stopping abandons coroutines mid-way (the report's kernel client); Python would warn of each
        # on stderr when it collects them.
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        if isinstance(exc, Stopped):
            stopped = exc
        raise
    finally:
        _ACTIVE.pop()
        tempfile.tempdir = saved_tempdir
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        sys.unraisablehook = saved_hook
        _INTERRUPTED[0] = False  # a run's Ctrl-C is the run's: it must not stop what comes after it
        if stopped is not None:
            _end_by(stopped.signum)


def raise_if_interrupted() -> None:
    """Raise :class:`KeyboardInterrupt` if a Ctrl-C came during the run in progress, even one Python dropped."""
    if _ACTIVE and _INTERRUPTED[0]:
        raise KeyboardInterrupt


def _quiet_interrupt(hook: Callable[[Any], object]) -> Callable[[Any], object]:
    """Wrap ``sys.unraisablehook`` so that a dropped Ctrl-C prints nothing (it is remembered instead)."""

    def quiet(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _INTERRUPTED[0] = True
            return
        hook(unraisable)

    return quiet


def _catch_stops() -> dict[int, object]:
    """Make the stopping signals raise :class:`Stopped`, and Ctrl-C raise :class:`KeyboardInterrupt`
    and be remembered; return the handlers they had."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        _INTERRUPTED[0] = True
        raise KeyboardInterrupt

    def stop(signum: int, _frame: FrameType | None) -> None:
        # Raised once: a second signal during the clean-up must not cut the clean-up short.
        for s in STOPPING:
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    handlers = {s: signal.signal(s, stop) for s in STOPPING}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        handlers[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
    return handlers


def _end_by(signum: int) -> None:
    """Print one line, then end the process by ``signum``, so whoever sent it sees it took effect."""
    name = signal.Signals(signum).name
    print(f"cinqa: stopped by {name}; its temporary files are removed and no output was half-written",
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def sweep(base: str | Path) -> list[Path]:
    """Remove the folders in ``base`` that runs of this user left when killed; say so on stderr.

    A folder is a killed run's when its name carries the prefix and a process id that no longer
    exists, and this user owns it. Return the folders removed.
    """
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        m = _NAME.match(entry.name)
        if not m or _alive(int(m.group(1))):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != _uid():
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.exists(entry.path):
            removed.append(Path(entry.path))
            print(f"cinqa: removed {entry.path}, the temporary folder of an earlier run (process "
                  f"{m.group(1)}) that was killed before it could clean up", file=sys.stderr, flush=True)
    return removed


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
