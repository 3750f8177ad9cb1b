"""The package's dependency rules, read from every import statement (function-level ones included).

Dependencies point toward ``policies`` and ``workloads``: those two (and ``routers``, beside policies) import no
part that runs or trains anything, so the same policy object runs in the simulator and inside vLLM; ``sim`` and
``engine`` never import each other (``validation`` joins them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ltrsched"
#: Parts of the package that run, train or report (none of them may be imported by the base parts below).
UPPER = {"sim", "engine", "predictors", "experiments", "validation", "labelling", "plots", "cli"}


def _imports_of(path: Path) -> set[str]:
    """The ``ltrsched`` parts and top-level modules (``models``, ``errors``, ...) one file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("ltrsched.")}
    return found


def imported_parts(part: str) -> dict[str, set[str]]:
    """Each top-level part of ``ltrsched`` that the files of ``part`` import -> the files importing it."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / part).rglob("*.py")):
        for name in _imports_of(path):
            found.setdefault(name, set()).add(str(path.relative_to(PACKAGE)))
    return found


@pytest.mark.parametrize("part", ["policies", "workloads", "routers"])
def test_base_parts_import_nothing_that_runs_or_trains(part):
    bad = {name: files for name, files in imported_parts(part).items() if name in UPPER}
    assert not bad, f"ltrsched.{part} imports {bad}"


@pytest.mark.parametrize("part, other", [("sim", "engine"), ("engine", "sim")])
def test_sim_and_engine_never_import_each_other(part, other):
    assert other not in imported_parts(part), imported_parts(part)[other]


def parts_reached(part: str) -> set[str]:
    """Every part of ``ltrsched`` that ``part`` reaches through the package's shared top-level modules (a function
    of ``ltrsched/models.py`` importing ``ltrsched.engine`` would join the simulator to the engine at run time)."""
    reached, todo = set(), {n for path in (PACKAGE / part).rglob("*.py") for n in _imports_of(path)}
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        module = PACKAGE / f"{name}.py"
        if module.is_file():
            todo |= _imports_of(module)
    return reached


@pytest.mark.parametrize("part, other", [("sim", "engine"), ("engine", "sim")])
def test_sim_and_engine_never_reach_each_other_through_shared_modules(part, other):
    assert other not in parts_reached(part)
