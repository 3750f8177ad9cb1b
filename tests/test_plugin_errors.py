"""The one line for an exception raised in plugin code (:mod:`ltrsched.plugin_errors`) names what the plugin raised,
also where it reached this process only as a worker's traceback text."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ltrsched.plugin_errors import plugin_error_line
from ltrsched.plugin_scope import command_plugins
from ltrsched.policies import make_policy
from ltrsched.policies.registry import load_plugin

PLUGIN = '''
import threading

from ltrsched.policies import Policy, register


class LockError(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()  # (no pickling it)


@register
class Locking(Policy):
    name = "locking"

    def rank(self, view):
        raise LockError("with a lock")
'''


def rank_in_worker() -> None:
    """Rank with the plugin's policy."""
    make_policy("locking").rank(None)


def test_an_exception_a_pool_worker_cannot_send_is_named_as_the_plugin_raised_it(tmp_path):
    """A sweep worker that cannot pickle the plugin's exception sends the pickling error instead, the plugin's
    traceback as its context: the line said "plugin code raised TypeError: cannot pickle '_thread.lock' object" at the
    plugin's line, where the plugin raised LockError. (Through the sweep's own spawned pool, in a process of its own:
    a forked pool inside the test process could hang on a lock another thread held at the fork.)"""
    plugin = tmp_path / "locking.py"
    plugin.write_text(PLUGIN)
    (tmp_path / "sweep.toml").write_text('policies = ["fcfs", "locking"]\nnum_requests = 3\n')
    env = {k: v for k, v in os.environ.items() if k != "LTRSCHED_TRACEBACK"}
    r = subprocess.run([sys.executable, "-m", "ltrsched.cli", "sweep", str(tmp_path / "sweep.toml"), "-o",
                        str(tmp_path / "sweep"), "-j", "2"], capture_output=True, text=True, timeout=300,
                       env={**env, "LTRSCHED_PLUGINS": str(plugin)})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith(
        f"plugin code raised LockError: with a lock ({plugin}:18, in rank); fix the plugin "
        "(LTRSCHED_TRACEBACK=1 shows the traceback)"), r.stderr


def test_an_exception_raised_here_keeps_its_own_name(tmp_path, monkeypatch):
    monkeypatch.delenv("LTRSCHED_TRACEBACK", raising=False)
    plugin = tmp_path / "locking.py"
    plugin.write_text(PLUGIN)
    with command_plugins():
        load_plugin(str(plugin))
        with pytest.raises(Exception) as caught:
            rank_in_worker()
        line = plugin_error_line(caught.value)
    assert line.startswith(f"plugin code raised LockError: with a lock ({plugin}:18, in rank); "), line
