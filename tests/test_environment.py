"""The suite runs with empty caches: nothing an earlier run left behind can hide a missing install step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import CACHE_VARIABLES, FRESH_CACHES


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
