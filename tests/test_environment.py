"""The suite runs with empty caches: nothing an earlier run left behind can hide a missing install step; and each
test module leaves the process (environment, CPUs, torch's threads) as it found it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CACHE_VARIABLES, FRESH_CACHES, ProcessState


def test_every_cache_points_into_this_sessions_temporary_directory():
    home = Path.home().resolve()
    for name in CACHE_VARIABLES:
        path = Path(os.environ[name]).resolve()
        assert path.is_relative_to(FRESH_CACHES.resolve()), name
        assert not path.is_relative_to(home / ".cache"), name


def test_commands_the_suite_starts_inherit_the_fresh_caches():
    from ltrsched.workloads.sharegpt import cache_dir

    code = "import os; from ltrsched.workloads.sharegpt import cache_dir; print(cache_dir())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) == cache_dir() and Path(out).is_relative_to(FRESH_CACHES)


def test_what_starting_the_cpu_engine_changes_is_put_back_after_the_module():
    """conftest's ProcessState, put back after every module: starting vLLM's CPU engine in the test process
    (tests/test_engine_cpu.py) left the process pinned to one CPU, OMP_NUM_THREADS=1, vLLM's LD_PRELOAD for
    every command a later test starts, and torch.set_num_threads a no-op: the serial suite then failed
    tests/test_predictors.py's thread-count tests."""
    torch = pytest.importorskip("torch")
    from ltrsched.engine.platform import pin_threads

    before = ProcessState.now()
    try:
        pin_threads(1)  # the engine's start: the process's CPUs, OMP_NUM_THREADS, MKL_NUM_THREADS, torch's count
        os.environ["LD_PRELOAD"] = "libtcmalloc_minimal.so.4"  # vLLM's CPU platform
        torch.set_num_threads = lambda threads: None  # vLLM's CPU worker
        changed = ProcessState.now()
        assert changed != before and changed.torch_setter_own is False
    finally:
        before.restore()
    assert ProcessState.now() == before and torch.set_num_threads is torch._C.set_num_threads
    assert os.environ.get("PYTEST_CURRENT_TEST", "").endswith("(call)")  # (pytest's own variable is left alone)
