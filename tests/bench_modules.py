"""Loading a script of ``benchmarks/`` (not a package) as a module, for the tests of its pure parts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str, monkeypatch=None) -> ModuleType:
    """``benchmarks/<name>.py`` executed as the module ``name``. With ``monkeypatch``, ``benchmarks/`` is put first on
    ``sys.path`` for the test's duration (a script that imports another of them, e.g. ``bench_simulator``)."""
    if monkeypatch is not None:
        monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
