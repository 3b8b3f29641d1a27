"""Write output files atomically, with the permissions any new file of the user's would get, and find
the files the package ships (in a checkout, or inside an installed wheel)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block completes.

    The temporary file is removed when the block raises (or is interrupted), so ``path`` either
    keeps its old content or gets the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private; the output gets the mode any new file of the user's would.
        os.chmod(tmp, 0o666 & ~_umask())
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
