"""Write output files atomically, with the permissions any new file of the user's would get, never over
an input and never two runs at once; and find the files the package ships (in a checkout, or inside an
installed wheel).

A run declares its inputs with :func:`inputs_protected` and claims its outputs with
:func:`outputs_claimed`; every writer goes through :func:`atomic_path`, which refuses a path that is
one of the inputs, so no writer can forget the check.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from cinqa.errors import CsvError, PathError
from cinqa.scratch import raise_if_interrupted

_INPUTS: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("cinqa_inputs", default=())


class OutputError(PathError):
    """An output path cannot be written: it is an input, or another run is writing it."""


def output_path(path: str | Path) -> Path:
    """Return ``path`` made absolute with ``..`` resolved, refusing it when it is one of the run's inputs.

    Resolving first means a path such as ``new/../out.csv`` creates no folder ``new``.
    """
    given = Path(path)
    resolved = given.resolve()
    for source in _INPUTS.get():
        if resolved == source or (resolved.exists() and source.exists() and os.path.samefile(resolved, source)):
            raise OutputError(given, "this is an input file; choose another output path (inputs are never "
                                     "modified)")
    return resolved


def unwritable(path: str | Path, folder: str | Path, exc: OSError) -> OutputError:
    """Return the error that says output ``path`` cannot be written in ``folder``, and why."""
    return OutputError(path, f"cannot write in {folder} ({exc.strerror or exc})")


@contextlib.contextmanager
def inputs_protected(paths: Iterable[str | Path]) -> Iterator[None]:
    """Refuse, inside the block, every output path that is one of ``paths`` (by resolved path or same file)."""
    token = _INPUTS.set((*_INPUTS.get(), *(Path(p).resolve() for p in paths)))
    try:
        yield
    finally:
        _INPUTS.reset(token)


@contextlib.contextmanager
def outputs_claimed(files: Iterable[str | Path] = (), folders: Iterable[str | Path] = ()) -> Iterator[None]:
    """Claim output files and folders for the block, refusing any that another run has claimed.

    Each claim is a lock (``flock``) on a hidden file, beside an output file (``.<name>.cinqa-lock``)
    or inside an output folder (``.cinqa-lock``), removed when the block ends, with any folder made
    to hold it that is still empty; the system releases a lock if its run dies, so a killed run
    never blocks the next.
    """
    outs = [(f, f.parent / f".{f.name}.cinqa-lock") for f in map(output_path, files)]
    outs += [(d, d / ".cinqa-lock") for d in map(output_path, folders)]
    with contextlib.ExitStack() as stack:
        for out, lock in dict.fromkeys(outs):
            stack.enter_context(_claim(out, lock))
        yield


@contextlib.contextmanager
def _claim(out: Path, lock: Path) -> Iterator[None]:
    # Folders made only to hold the lock are removed again if the run wrote nothing into them.
    created = []
    folder = lock.parent
    while not folder.exists():
        created.append(folder)
        folder = folder.parent
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise unwritable(out, lock.parent, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(out, "another cinqa run is writing this output; wait for it to finish or choose "
                                   "another path") from None
        # The run before may have removed the lock file between our open and our lock: lock the new one.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block completes.

    The temporary file is removed when the block raises (or is interrupted), so ``path`` either
    keeps its old content or gets the complete new one. A path that is one of the run's inputs is
    refused (see :func:`output_path`).
    """
    path = output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise unwritable(path, path.parent, exc) from None
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private; the output gets the mode any new file of the user's would.
        os.chmod(tmp, 0o666 & ~_umask())
        raise_if_interrupted()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def locate_shipped(checkout: str, packaged: str, package_dir: str | Path | None = None) -> Path:
    """Find a file or folder kept at the repository root (``checkout``, relative to it) and shipped in
    the wheel inside the package (``packaged``, relative to the ``cinqa`` folder; mapped in pyproject.toml).

    ``package_dir`` is the ``cinqa`` folder (default: this module's). A checkout, and an editable
    install of one, reads the root copy, so an edit counts at once; otherwise the packaged one.
    """
    package = Path(package_dir or Path(__file__).parent).resolve()
    root = package.parent
    # pyproject.toml marks a checkout: beside an installed package (site-packages), a folder of that
    # name would belong to some other distribution.
    if (root / "pyproject.toml").is_file() and (root / checkout).exists():
        return root / checkout
    return package / packaged


def csv_text(path: Path) -> str:
    """Return the text of the CSV file ``path`` without the byte-order mark Excel writes; refuse, naming it, one that cannot be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CsvError(path, "file not found") from None
    except IsADirectoryError:
        raise CsvError(path, "is a folder, not a CSV file") from None
    except OSError as exc:
        raise CsvError(path, f"cannot be read ({exc.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(path, f"not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8'",
                       raw.count(b"\n", 0, exc.start) + 1) from None
