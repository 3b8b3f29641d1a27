"""The computing modules load no plotting or widget library; plotting and widgets live in display and drill.

Two views of the same promise: a fresh interpreter that imports a module has not loaded them
(what a script or the command line pays for), and no import statement reachable from the
module, even one deferred into a function, names them (where the code says it belongs).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

PRESENTATION = ("matplotlib", "ipywidgets", "IPython")
"""Top-level packages that only cinqa.display, cinqa.drill and the report may import."""

COMPUTING = [name for name in ("cinqa", "cinqa.read", "cinqa.views", "cinqa.rules", "cinqa.validate",
                               "cinqa.measures", "cinqa.compare", "cinqa.collect", "cinqa.failures", "cinqa.teams",
                               "cinqa.history")
             if importlib.util.find_spec(name) is not None]


@pytest.mark.parametrize("module", COMPUTING)
def test_a_fresh_interpreter_importing_it_loads_no_plotting_or_widgets(module):
    code = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
            "print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules} & set(sys.argv[2:]))))")
    done = subprocess.run([sys.executable, "-c", code, module, *PRESENTATION], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module that is not a package
        return False


def _imported(module: str) -> list[str]:
    """Return the modules that ``module``'s source imports anywhere in it, deferred imports included."""
    found = importlib.util.find_spec(module)
    assert found is not None and found.origin, module
    tree = ast.parse(Path(found.origin).read_text(encoding="utf-8"))
    package = module if found.submodule_search_locations else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            # ``from cinqa import display`` imports the submodule; ``from cinqa.x import f`` only x.
            subs = [f"{base}.{a.name}" for a in node.names if base.startswith("cinqa")]
            out += [base, *filter(_is_module, subs)]
    return out


def _chain_to_presentation(module: str) -> list[str] | None:
    """Return the import chain from ``module`` to a presentation library, or None if there is none."""
    seen = {module}
    paths = [[module]]
    while paths:
        path = paths.pop()
        for name in _imported(path[-1]):
            if name.partition(".")[0] in PRESENTATION:
                return [*path, name]
            if name.startswith("cinqa") and name not in seen:
                seen.add(name)
                paths.append([*path, name])
    return None


@pytest.mark.parametrize("module", COMPUTING)
def test_no_import_reachable_from_it_names_plotting_or_widgets(module):
    chain = _chain_to_presentation(module)
    assert chain is None, " -> ".join(chain)


def test_the_import_walk_finds_what_display_and_drill_import():
    assert _chain_to_presentation("cinqa.display")[-1].startswith(("matplotlib", "IPython"))
    assert _chain_to_presentation("cinqa.drill") is not None
