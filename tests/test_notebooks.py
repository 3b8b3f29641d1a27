"""The notebooks: committed without children's data, stripped by the git filter, copied out for analysts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cinqa.cli import app
from cinqa.errors import CinqaError
from cinqa.notebooks import CHECKED, copy_notebooks, dumps, strip

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHILD = "A201123456789"


def worked_in() -> dict:
    """A notebook as an analyst leaves it: a child's UPN in an output, widget state, execution counts."""
    return {
        "cells": [
            {"cell_type": "code", "execution_count": 3, "metadata": {"execution": {"iopub.status.busy": "x"}},
             "source": ["ret.children.head()"],
             "outputs": [{"output_type": "execute_result", "execution_count": 3, "metadata": {},
                          "data": {"text/plain": [f"C001 {CHILD}"]}}]},
            {"cell_type": "code", "execution_count": 4, "metadata": {},
             "source": [f"{CHECKED}\n", "ret.year"],
             "outputs": [{"output_type": "stream", "name": "stderr", "text": ["Reading ..."]},
                         {"output_type": "execute_result", "execution_count": 4, "metadata": {"x": 1},
                          "data": {"text/plain": ["'2025-26'"]}}]},
            {"cell_type": "markdown", "metadata": {}, "source": ["# Heading"]},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "widgets": {"application/vnd.jupyter.widget-state+json": {"state": CHILD}}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def test_strip_keeps_only_the_checked_cells_reference_output():
    nb = strip(worked_in())
    text = dumps(nb)
    assert CHILD not in text and "widgets" not in text and "iopub" not in text
    first, checked, _ = nb["cells"]
    assert first["outputs"] == [] and first["execution_count"] is None
    assert checked["execution_count"] == 1
    assert checked["outputs"] == [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                                   "data": {"text/plain": ["'2025-26'"]}}]
    assert strip(json.loads(text)) == nb  # stripping twice changes nothing


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_the_committed_notebooks_are_already_stripped(path: Path):
    text = path.read_text(encoding="utf-8")
    assert dumps(strip(json.loads(text))) == text


def test_the_git_filter_commits_a_notebook_without_its_outputs(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / ".gitattributes", repo / ".gitattributes")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    # What `make hooks` configures, with this interpreter in place of the checkout's .venv.
    git("config", "filter.cinqa-notebook.clean", f"{sys.executable} -m cinqa.notebooks strip")
    (repo / "01-explore.ipynb").write_text(json.dumps(worked_in(), indent=1), encoding="utf-8")
    git("add", ".gitattributes", "01-explore.ipynb")
    staged = git("show", ":01-explore.ipynb")
    assert CHILD not in staged and "'2025-26'" in staged
    assert CHILD in (repo / "01-explore.ipynb").read_text(encoding="utf-8")  # the analyst's copy is untouched


def test_the_notebooks_command_copies_them_stripped_with_absolute_sample_paths(tmp_path: Path):
    work = tmp_path / "cin-work"
    result = CliRunner().invoke(app, ["notebooks", str(work)])
    assert result.exit_code == 0, result.output
    copies = sorted(p.name for p in work.iterdir())
    assert copies == sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")) and len(copies) >= 3
    assert "qa-report.ipynb" not in copies
    nb = json.loads((work / "01-explore-return.ipynb").read_text(encoding="utf-8"))
    params = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert json.dumps(str(ROOT / "data" / "sample-2025-26.xml")) in params and "../data" not in params
    assert all(c.get("outputs", []) == [] or CHECKED in "".join(c["source"]) for c in nb["cells"])


def test_the_notebooks_command_never_overwrites(tmp_path: Path):
    work = tmp_path / "cin-work"
    work.mkdir()
    (work / "02-drill-into-failures.ipynb").write_text("my own work", encoding="utf-8")
    result = CliRunner().invoke(app, ["notebooks", str(work)])
    assert result.exit_code == 2
    assert "02-drill-into-failures.ipynb: already exists" in result.stderr and "Traceback" not in result.output
    assert sorted(p.name for p in work.iterdir()) == ["02-drill-into-failures.ipynb"]
    assert (work / "02-drill-into-failures.ipynb").read_text(encoding="utf-8") == "my own work"


def test_copies_inside_the_repository_are_refused(tmp_path: Path):
    with pytest.raises(CinqaError, match="inside the repository"):
        copy_notebooks(ROOT / "notebooks" / "mine")
    assert not (ROOT / "notebooks" / "mine").exists()
