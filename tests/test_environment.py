"""environment.yml and the installed package must follow pyproject.toml, the one list of dependencies."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONDA = yaml.safe_load((ROOT / "environment.yml").read_text())
EDITABLE = re.compile(r"^-e \.(?:\[(?P<extras>[\w,-]*)\])?$")


def conda_packages():
    return [d for d in CONDA["dependencies"] if isinstance(d, str)]


def pip_lines():
    sections = [d["pip"] for d in CONDA["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return sections[0]


def test_conda_lists_only_python_and_pip():
    names = sorted(re.split(r"[=<>!~ ]", d, maxsplit=1)[0] for d in conda_packages())
    assert names == ["pip", "python"]


def test_python_floor_matches_requires_python():
    floor = re.fullmatch(r">=\s*(\d+\.\d+)", PYPROJECT["requires-python"]).group(1)
    pythons = [d for d in conda_packages() if d.startswith("python")]
    assert pythons == [f"python={floor}"]


def test_pip_installs_only_this_repo_with_known_extras():
    lines = pip_lines()
    assert len(lines) == 1, f"pip section must install only the repo, got {lines}"
    match = EDITABLE.match(lines[0])
    assert match, f"expected '-e .[extras]', got {lines[0]!r}"
    extras = set(filter(None, (match["extras"] or "").split(",")))
    assert extras <= set(PYPROJECT["optional-dependencies"])


def test_installed_requirements_match_pyproject():
    expected = {Requirement(r) for r in PYPROJECT["dependencies"]}
    for extra, reqs in PYPROJECT["optional-dependencies"].items():
        expected |= {Requirement(f'{r}; extra == "{extra}"') for r in reqs}
    installed = {Requirement(r) for r in importlib.metadata.requires("cinqa")}
    assert installed == expected, "reinstall with `make venv` after editing pyproject.toml"
