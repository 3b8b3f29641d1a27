"""A built wheel carries the rule suites, and the locator finds them in a checkout and in a wheel.

The fast tests read pyproject.toml and the locator. The slow one (opt-in with --runslow) builds a
real wheel offline with the venv's setuptools when it can (70.1+, or the wheel package), else stages
the wheel's files with build_py, and checks which suites are in it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from cinqa import benchmarks, report, rules
from cinqa.errors import CinqaError

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
PACKAGED = "cinqa._expectations"
NOTEBOOKS = "cinqa._notebooks"
BENCHMARKS = "cinqa._benchmarks"


def suite_files() -> list[str]:
    """Return the JSON files of the root expectations/ folder, the one place rules are written."""
    return sorted(p.name for p in (ROOT / "expectations").glob("*.json"))


def test_checkout_locator_reads_the_root_folder_with_every_suite() -> None:
    assert rules.EXPECTATIONS_DIR == ROOT / "expectations"
    assert rules.locate_expectations() == ROOT / "expectations"
    assert {f"{view}.json" for view in rules.VIEWS} <= set(suite_files())
    assert rules.UNCHECKED_FILE in suite_files()
    assert {e.view for e in rules.entries()} == set(rules.VIEWS)


def test_a_folder_without_suites_is_an_error_not_an_empty_rule_set(tmp_path: Path) -> None:
    with pytest.raises(CinqaError, match="no rule suites"):
        rules.rules_for_year("2025-26", tmp_path)


def test_installed_locator_reads_the_packaged_copy(tmp_path: Path) -> None:
    # site-packages: no pyproject.toml beside the package, even if another distribution ships
    # a top-level expectations/ folder.
    package = tmp_path / "site-packages" / "cinqa"
    (package / "_expectations").mkdir(parents=True)
    (tmp_path / "site-packages" / "expectations").mkdir()
    assert rules.locate_expectations(package) == package / "_expectations"


def test_checkout_locator_prefers_the_root_folder(tmp_path: Path) -> None:
    package = tmp_path / "checkout" / "cinqa"
    (package / "_expectations").mkdir(parents=True)  # e.g. left by an old in-place build
    (tmp_path / "checkout" / "expectations").mkdir()
    (tmp_path / "checkout" / "pyproject.toml").write_text("[project]\nname = 'cinqa'\n")
    assert rules.locate_expectations(package) == tmp_path / "checkout" / "expectations"


def test_pyproject_maps_the_root_folder_into_the_package_with_every_suite() -> None:
    assert SETUPTOOLS["package-dir"][PACKAGED] == "expectations"
    assert PACKAGED in SETUPTOOLS["packages"]
    patterns = SETUPTOOLS["package-data"][PACKAGED]
    shipped = sorted(name for name in suite_files() if any(Path(name).match(p) for p in patterns))
    assert shipped == suite_files()


def test_pyproject_lists_every_package_in_cinqa() -> None:
    # Packages are listed by hand (discovery cannot see the mapped folder), so a new subpackage
    # must be added there or the wheel would silently lack it.
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cinqa").rglob("__init__.py")}
    assert found | {PACKAGED, NOTEBOOKS, BENCHMARKS} == set(SETUPTOOLS["packages"])


def test_the_report_notebook_is_packaged_and_found() -> None:
    assert SETUPTOOLS["package-dir"][NOTEBOOKS] == "notebooks"
    assert SETUPTOOLS["package-data"][NOTEBOOKS] == ["qa-report.ipynb"]
    assert report.NOTEBOOK == ROOT / "notebooks" / "qa-report.ipynb"


def test_englands_figures_are_packaged_and_found() -> None:
    assert SETUPTOOLS["package-dir"][BENCHMARKS] == "data/benchmarks"
    shipped = [p.name for p in (ROOT / "data" / "benchmarks").iterdir()
               if any(p.match(pattern) for pattern in SETUPTOOLS["package-data"][BENCHMARKS])]
    assert shipped == [benchmarks.ENGLAND_CSV]
    assert benchmarks.locate_benchmarks() == ROOT / "data" / "benchmarks"
    package = ROOT / "build-free" / "site-packages" / "cinqa"  # no pyproject.toml beside it: an install
    assert benchmarks.locate_benchmarks(package) == package.resolve() / "_benchmarks"


def test_installed_report_locator_reads_the_packaged_copy(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "cinqa"
    package.mkdir(parents=True)
    assert report.locate_notebook(package) == package / "_notebooks" / "qa-report.ipynb"
    (tmp_path / "site-packages" / "pyproject.toml").write_text("[project]\nname = 'other'\n")
    assert report.locate_notebook(package) == package / "_notebooks" / "qa-report.ipynb"  # no notebooks/ there


def can_build_wheels() -> bool:
    """Say whether this venv's setuptools can make a wheel offline (70.1+ has bdist_wheel; older needs wheel)."""
    for name in ("setuptools.command.bdist_wheel", "wheel.bdist_wheel"):
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except ModuleNotFoundError:  # the parent package is absent
            continue
    return False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_built_wheel_carries_every_suite(tmp_path: Path) -> None:
    # Build a copy (an in-tree build would leave build/ in the checkout) with the venv's own
    # setuptools: no build isolation, so nothing is fetched from the network.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("cinqa", "expectations", "notebooks", "data/benchmarks"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    if can_build_wheels():
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(tmp_path / "dist"), str(source)], check=True, timeout=300)
        (wheel,) = (tmp_path / "dist").glob("cinqa-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
    else:
        # Without bdist_wheel, stage what the wheel would hold: bdist_wheel copies build_py's output.
        subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                        "--build-lib", str(tmp_path / "lib")], cwd=source, check=True, timeout=300)
        names = [p.relative_to(tmp_path / "lib").as_posix() for p in (tmp_path / "lib").rglob("*") if p.is_file()]
    packaged = sorted(n.removeprefix("cinqa/_expectations/") for n in names if n.startswith("cinqa/_expectations/"))
    assert packaged == suite_files()
    assert "cinqa/rules.py" in names
    assert "cinqa/_notebooks/qa-report.ipynb" in names
    assert f"cinqa/_benchmarks/{benchmarks.ENGLAND_CSV}" in names
    assert not [n for n in names if n.startswith("expectations/")]
