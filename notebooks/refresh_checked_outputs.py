"""Re-run notebooks and keep only the reference outputs of their ``# NBVAL_CHECK_OUTPUT`` cells.

Usage: ``.venv/bin/python notebooks/refresh_checked_outputs.py notebooks/01-explore-return.ipynb``

nbval compares a checked cell's output with the output stored in the notebook, and skips cells
that were never run, so checked cells need their reference output while every other cell is
committed empty.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARK = "# NBVAL_CHECK_OUTPUT"


def refresh(path: Path) -> int:
    """Execute the notebook at ``path`` in its folder and rewrite it; return how many cells keep output."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    kept = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if cell.source.startswith(MARK):
            kept += 1
            cell.execution_count = kept
            cell.outputs = [o for o in cell.outputs if o.output_type in ("execute_result", "display_data")]
            for out in cell.outputs:
                out.metadata = {}
                if "execution_count" in out:
                    out.execution_count = kept
        else:
            cell.outputs = []
            cell.execution_count = None
    nb.metadata = {"kernelspec": nb.metadata["kernelspec"], "language_info": {"name": "python"}}
    nbformat.write(nb, path)
    return kept


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {refresh(Path(arg).resolve())} checked cell(s) keep their output")
