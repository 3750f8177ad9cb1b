"""Under ``vllm serve --scheduler-cls ltrsched.engine.scheduler.PolicyScheduler`` no ltrsched harness brackets the
steps with the plugin time limit (``replay`` does: :mod:`ltrsched.plugin_watchdog`), so a plugin call that never
returned hung the server's engine core with no message. The scheduler built from ``--additional-config`` now
watches its own thread; checked on the emulated engine (vLLM's real scheduler, no model), built as vLLM's engine
core builds it under ``vllm serve``."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]

#: A plugin policy whose call at step ``at`` of ``where`` (rank, on_step or on_arrival) takes ``nap`` seconds:
#: longer than the test's limit, short enough that a test without the limit fails rather than hangs.
PLUGIN = '''
import time
from ltrsched.policies import Policy, register


@register
class ServeNap(Policy):
    name = "serve-nap"

    def __init__(self, where: str = "rank", at: int = 1, nap: float = 4.0):
        self.where, self.at, self.nap = where, at, nap
        self.arrivals = 0

    def rank(self, view):
        if self.where == "rank" and view.step == self.at:
            time.sleep(self.nap)
        return view.order_by()

    def on_step(self, view, scheduled, dt):
        if self.where == "on_step" and view.step == self.at:
            time.sleep(self.nap)

    def on_arrival(self, request_ids, now):
        self.arrivals += 1
        if self.where == "on_arrival" and self.arrivals == self.at:
            time.sleep(self.nap)
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    from ltrsched.policies import load_plugin

    path = tmp_path_factory.mktemp("serve-plugin") / "serve_nap.py"
    path.write_text(PLUGIN)
    load_plugin(str(path))
    return path


def _served(spec: str):
    """A scheduler built as under ``vllm serve --additional-config '{"ltrsched": {"policy": spec}}'`` and a driver
    that adds requests and steps it (no model: one token per step)."""
    from ltrsched.engine.emulate import EmulatedDriver, EngineConfig, VirtualClock, build_scheduler

    scheduler = build_scheduler(EngineConfig(num_gpu_blocks=100), None, {"ltrsched": {"policy": spec}})
    return scheduler, EmulatedDriver(scheduler, VirtualClock(), lambda shape: 0.01)


def _info(i: int):
    from ltrsched.engine.live_table import RequestInfo

    return RequestInfo(request_id=i, arrival_time=0.0, prompt_tokens=20, output_tokens=5, requested_output_tokens=5,
                       score=np.nan, po_estimate=np.nan, predicted_length=np.nan)


def _watchdogs() -> int:
    return sum(t.name == "ltrsched-plugin-watchdog" for t in threading.enumerate())


@pytest.mark.parametrize("where, message", [
    ("rank", "its ServeNap.rank() call at step 1 ran longer than the plugin time limit of 0.3 s"),
    ("on_step", "its ServeNap.on_step() call at step 1 ran longer than the plugin time limit of 0.3 s"),
    ("on_arrival", "its ServeNap.on_arrival() call"),
])
def test_a_plugin_call_past_the_limit_stops_the_served_scheduler_with_one_line(plugin, monkeypatch, where, message):
    from ltrsched.plugin_watchdog import PluginTimeoutError

    monkeypatch.setenv("LTRSCHED_PLUGIN_TIMEOUT", "0.3")
    scheduler, driver = _served(f"serve-nap:where={where},at=2" if where == "on_arrival" else
                                f"serve-nap:where={where}")
    try:
        t0 = time.monotonic()
        with pytest.raises(PluginTimeoutError) as caught:
            for i in range(3):
                driver.add(_info(i))
            for _ in range(4):
                driver.step()
        assert time.monotonic() - t0 < 3.0  # stopped at the limit, not at the end of the 4 s call
        assert _watchdogs() == 0  # (its thread ended once its interrupt landed, shutdown or not: test_engine_audit)
        line = str(caught.value)
        assert line.startswith(f"policy 'serve-nap' (plugin {plugin}): {message}") and "\n" not in line, line
    finally:
        scheduler.shutdown()
    assert _watchdogs() == 0


def test_without_the_limit_or_under_the_replay_harness_the_scheduler_starts_no_watchdog(plugin, monkeypatch):
    from ltrsched.engine.emulate import EngineConfig, VirtualClock, build_scheduler
    from ltrsched.engine.setup import EngineSetup
    from ltrsched.policies import make_policy

    monkeypatch.setenv("LTRSCHED_PLUGIN_TIMEOUT", "0")
    scheduler, driver = _served("serve-nap:nap=0.05")
    assert _watchdogs() == 0
    for i in range(3):
        driver.add(_info(i))
    for _ in range(3):
        driver.step()  # (the short call returns: nothing stops it)
    scheduler.shutdown()
    monkeypatch.setenv("LTRSCHED_PLUGIN_TIMEOUT", "0.3")
    # the replay loop brackets its runs itself (plugin_time_limit): a scheduler it installs a setup in adds none
    scheduler = build_scheduler(EngineConfig(num_gpu_blocks=100), EngineSetup(make_policy("serve-nap"), VirtualClock()))
    assert _watchdogs() == 0
    scheduler.shutdown()
