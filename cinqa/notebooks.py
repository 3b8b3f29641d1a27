"""The workbook's notebooks: kept free of children's data in the repository, copied out for analysts.

An analyst who runs a notebook saves its outputs, child identifiers included, into the file.
:func:`strip` takes them out again, keeping only the reference outputs of the cells nbval checks
(those starting ``# NBVAL_CHECK_OUTPUT``, which show no child's data), so the tests still
compare them. The repository runs it as a git clean filter (``.gitattributes``; ``make hooks``
configures it), so what is committed is stripped whatever the working copy holds::

    python -m cinqa.notebooks strip < notebook.ipynb > stripped.ipynb

:func:`copy_notebooks` (``cinqa notebooks DIR``) gives an analyst copies to work in, outside
the repository, with the sample paths of their parameters made absolute so they run as copied.
Only the standard library is used: the git filter runs for every notebook git looks at.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from cinqa.errors import CinqaError
from cinqa.files import atomic_path, locate_shipped

CHECKED = "# NBVAL_CHECK_OUTPUT"
"""The first line of a cell whose output nbval compares with the output stored in the notebook."""

ANALYST_NOTEBOOKS = "[0-9][0-9]-*.ipynb"
"""The notebooks analysts work in (``qa-report.ipynb`` is rendered by ``cinqa report`` instead)."""

_RELATIVE = re.compile(r"""(["'])(\.\./[^"'\n]+)\1""")


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def strip(nb: dict[str, Any]) -> dict[str, Any]:
    """Remove every output and execution count from the notebook ``nb`` but the checked cells' reference outputs.

    A checked cell keeps its results and displays (numbered 1, 2, ... in order), never its
    streams or errors; the notebook's metadata keeps only its kernel and language. ``nb`` is
    changed in place and returned.
    """
    kept = 0
    for cell in nb.get("cells", []):
        cell.get("metadata", {}).pop("execution", None)
        if cell.get("cell_type") != "code":
            continue
        if _source(cell).startswith(CHECKED):
            kept += 1
            cell["execution_count"] = kept
            cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("output_type") in ("execute_result",
                                                                                             "display_data")]
            for out in cell["outputs"]:
                out["metadata"] = {}
                if "execution_count" in out:
                    out["execution_count"] = kept
        else:
            cell["outputs"] = []
            cell["execution_count"] = None
    meta = nb.get("metadata", {})
    nb["metadata"] = {"kernelspec": meta.get("kernelspec", {}), "language_info": {"name": "python"}}
    return nb


def dumps(nb: dict[str, Any]) -> str:
    """Write ``nb`` as nbformat writes a notebook, so a stripped file differs only where it was stripped."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def copy_notebooks(dest: str | Path, source: str | Path | None = None) -> list[Path]:
    """Copy the analysts' notebooks into the folder ``dest``, stripped of outputs; return the copies.

    ``source`` is the notebooks folder (default: the checkout's ``notebooks/``, else the wheel's).
    Refuses a ``dest`` inside the repository (its copies would be committed) and any copy that
    would overwrite a file, before writing anything. A parameter naming a file by a path relative
    to the notebooks folder (the embedded samples) is given that file's absolute path when it exists.
    """
    src = Path(source) if source is not None else locate_shipped("notebooks", "_notebooks")
    dest = Path(dest)
    names = sorted(src.glob(ANALYST_NOTEBOOKS))
    if not names:
        raise CinqaError(f"{src}: no notebooks to copy; reinstall cinqa")
    repo = _repository(src)
    if repo is not None and dest.resolve().is_relative_to(repo):
        raise CinqaError(f"{dest}: this folder is inside the repository ({repo}), where the copies' outputs "
                         "(children's data) could be committed; choose a folder outside it")
    if dest.exists() and not dest.is_dir():
        raise CinqaError(f"{dest}: not a folder")
    taken = [dest / p.name for p in names if (dest / p.name).exists()]
    if taken:
        raise CinqaError(f"{taken[0]}: already exists; notebooks are never overwritten (remove it or choose "
                         "another folder)")
    written = []
    for p in names:
        try:
            nb = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CinqaError(f"{p}: not a readable notebook ({exc})") from None
        for cell in nb.get("cells", []):
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                cell["source"] = _RELATIVE.sub(lambda m: _absolute(m, src), _source(cell))
        with atomic_path(dest / p.name) as tmp:
            tmp.write_text(dumps(strip(nb)), encoding="utf-8")
        written.append(dest / p.name)
    return written


def _absolute(match: re.Match[str], folder: Path) -> str:
    target = (folder / match.group(2)).resolve()
    return json.dumps(str(target)) if target.exists() else match.group(0)


def _repository(folder: Path) -> Path | None:
    """Return the git repository ``folder`` is in (the nearest parent holding ``.git``), if any."""
    for parent in [folder.resolve(), *folder.resolve().parents]:
        if (parent / ".git").exists():
            return parent
    return None


def main(argv: list[str]) -> int:
    """Run ``strip`` as a filter from stdin to stdout (the git clean filter); return the exit status."""
    if argv != ["strip"]:
        print("usage: python -m cinqa.notebooks strip < notebook.ipynb > stripped.ipynb", file=sys.stderr)
        return 2
    text = sys.stdin.read()
    try:
        nb = json.loads(text)
    except ValueError as exc:
        print(f"cinqa.notebooks: stdin is not a notebook ({exc}); left as it is", file=sys.stderr)
        sys.stdout.write(text)
        return 0
    sys.stdout.write(dumps(strip(nb)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
