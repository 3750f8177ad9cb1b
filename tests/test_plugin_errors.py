"""The one line for an exception raised in plugin code (:mod:`ltrsched.plugin_errors`) names what the plugin raised,
also where it reached this process only as a worker's traceback text."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

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
    """Rank with the plugin's policy (in a forked pool worker, which has the plugin loaded)."""
    make_policy("locking").rank(None)


def simulate_in_worker() -> None:
    """Simulate a few requests with the plugin's policy, as a sweep's worker does."""
    from conftest import make_workload
    from ltrsched.sim import simulate

    simulate(make_workload([20] * 3, [5] * 3), make_policy("locking"))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_an_exception_a_pool_worker_cannot_send_is_named_as_the_plugin_raised_it(tmp_path, monkeypatch):
    """A sweep worker that cannot pickle the plugin's exception sends the pickling error instead, the plugin's
    traceback as its context: the line said "plugin code raised TypeError: cannot pickle '_thread.lock' object" at the
    plugin's line, where the plugin raised LockError."""
    monkeypatch.delenv("LTRSCHED_TRACEBACK", raising=False)
    plugin = tmp_path / "locking.py"
    plugin.write_text(PLUGIN)
    import ltrsched.sim  # noqa: F401  (before the fork: the worker starts with it)

    with command_plugins():
        load_plugin(str(plugin))
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            with pytest.raises(TypeError, match="cannot pickle") as caught:
                pool.submit(simulate_in_worker).result()
        line = plugin_error_line(caught.value)
    assert line == (f"plugin code raised LockError: with a lock ({plugin}:18, in rank); fix the plugin "
                    "(LTRSCHED_TRACEBACK=1 shows the traceback)")


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
