"""Progress bars for the long steps: reading a file, running the rules, rendering the report.

One helper, :func:`bar`, used by the reader, the validation, the report and the command line, so
every long step shows the same kind of bar in the same place: on stderr when stderr is a
terminal, as a widget in a notebook (``tqdm.auto`` chooses), and nothing at all otherwise (a
pipe, a log file, a scheduled job, the report's own kernel). The environment variable
``CINQA_PROGRESS`` (``0`` or ``1``) overrides that choice; a function's ``progress`` argument
overrides both.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

ENV = "CINQA_PROGRESS"


def shown(asked: bool | None = None) -> bool:
    """Decide whether to draw progress: as asked, else as ``CINQA_PROGRESS`` says, else where someone sees it."""
    if asked is not None:
        return asked
    setting = os.environ.get(ENV, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    return _in_notebook() or _on_terminal()


def _on_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def _in_notebook() -> bool:
    # Looked up, not imported: a kernel has loaded IPython already, and a script must not pay for it.
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


@contextlib.contextmanager
def bar(description: str, total: float | None, *, unit: str = "it", show: bool | None = None) -> Iterator[Any]:
    """Yield a tqdm bar of ``total`` steps that draws only where :func:`shown` says, and close it afterwards.

    ``unit="B"`` counts bytes (shown as kB, MB); ``total`` may be set later (``b.total = n``) when
    it is known only once the step has begun.
    """
    from tqdm.auto import tqdm

    as_bytes = unit == "B"
    with tqdm(total=total, desc=description, unit=unit, unit_scale=as_bytes, unit_divisor=1024 if as_bytes else 1000,
              disable=not shown(show), leave=False, file=sys.stderr, dynamic_ncols=True) as b:
        yield b
