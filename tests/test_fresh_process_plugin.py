"""A plugin policy's call that swallows the watchdog's interrupt ends the fresh process ``validate --spread-repeats``
runs its engine in (:mod:`ltrsched.validation.fresh_process`): the command's one line is that call's, as a lone
process prints it, with exit code 2. It printed the process's line on stderr, then its own about a process that died
("killed, out of memory, or a crash"). Checked here without an engine: the fresh process runs the plugin's call
under the same watchdog bracket the engine's runs use."""

from __future__ import annotations

import os
import re
import time

import pytest

from ltrsched.plugin_watchdog import PluginTimeoutError
from ltrsched.validation.fresh_process import FreshProcesses
from test_plugin_timeout import HANGING_PLUGIN


def stuck_prepare(plugin: str, pid_file: str) -> None:
    """In the fresh process: a plugin policy's ``prepare`` that catches even BaseException, under a 0.2 s limit and a
    0.3 s grace, bracketed as an engine run brackets it."""
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    os.environ.update(LTRSCHED_PLUGIN_TIMEOUT="0.2", HANG_GRACE="0.3")
    from ltrsched.plugin_watchdog import plugin_time_limit
    from ltrsched.policies import make_policy
    from ltrsched.policies.registry import load_plugin

    load_plugin(plugin)
    policy = make_policy("hanging:how=bare,where=prepare")
    with plugin_time_limit():
        policy.prepare(None)


def test_a_stuck_plugin_call_that_ends_a_fresh_process_is_its_one_line(tmp_path, capfd):
    plugin = tmp_path / "hanging.py"
    plugin.write_text(HANGING_PLUGIN)
    pid_file = tmp_path / "child.pid"
    with FreshProcesses() as processes:
        with pytest.raises(PluginTimeoutError) as caught:
            processes.run("engine start 1 of 2", stuck_prepare, str(plugin), str(pid_file))
        folder = processes._folder
    line = str(caught.value)
    assert re.fullmatch(rf"policy 'hanging' \(plugin {re.escape(str(plugin))}\): its Hanging\.prepare\(\) call before "
                        r"the first step ran longer than the plugin time limit of 0\.2 s \(now at .*\); fix the plugin, "
                        r"or set LTRSCHED_PLUGIN_TIMEOUT to a larger limit in seconds \(0: no limit\); it did not stop "
                        r"when interrupted, so ltrsched exits", line), line
    assert "error:" not in capfd.readouterr().err  # the process left its line to the caller, printed nothing
    assert not os.path.exists(folder)  # (the file it left the line in is gone with the pool)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{child}")


def test_a_fresh_process_that_dies_otherwise_is_still_the_process_line():
    """Without a line left, a dead process is what it was: the process died (what it was doing named)."""
    from ltrsched.errors import UserError

    with FreshProcesses() as processes:
        with pytest.raises(UserError, match=r"^engine start 1 of 1: its process died before it finished") as caught:
            processes.run("engine start 1 of 1", os._exit, 2)
    assert not isinstance(caught.value, PluginTimeoutError)
