"""Re-run notebooks and keep only the reference outputs of their ``# NBVAL_CHECK_OUTPUT`` cells.

Usage: ``.venv/bin/python notebooks/refresh_checked_outputs.py notebooks/01-explore-return.ipynb``

nbval compares a checked cell's output with the output stored in the notebook, and skips cells
that were never run, so checked cells need their reference output while every other cell is
committed empty: :func:`cinqa.notebooks.strip`, which the git filter also runs, keeps just those.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from cinqa.notebooks import CHECKED, strip


def refresh(path: Path) -> int:
    """Execute the notebook at ``path`` in its folder and rewrite it; return how many cells keep output."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(strip(nb), path)
    return sum(1 for c in nb.cells if c.cell_type == "code" and c.source.startswith(CHECKED))


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {refresh(Path(arg).resolve())} checked cell(s) keep their output")
