"""A plugin call that never returns (``time.sleep(10**6)``, an endless loop) stops the run with one line, exit code
2, once it has run past ``LTRSCHED_PLUGIN_TIMEOUT`` seconds (:mod:`ltrsched.plugin_watchdog`): in ``simulate``
(policies, hooks, ``prepare``, routers), in sweep workers (process pool and Ray) and in the emulated engine.
Before, each of these hung with no message (the subprocess timeouts below turn a hang into a failure)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ltrsched.errors import UserError
from ltrsched.plugin_watchdog import DEFAULT_LIMIT_S, time_limit
from test_cli_simulate import assert_one_line_error

ROOT = Path(__file__).parents[1]

HANGING_PLUGIN = '''
import os
import time
import ltrsched.plugin_watchdog
from ltrsched.policies import Policy, register
from ltrsched.routers import Router, register as register_router

if os.environ.get("HANG_GRACE"):  # a shorter wait for a call that swallows the interrupt [s] (in every process)
    ltrsched.plugin_watchdog.GRACE_S = float(os.environ["HANG_GRACE"])


def forever(how):
    if os.environ.get("HANG_STAMP"):  # when the call began [s since the epoch], for the test to time the stop
        with open(os.environ["HANG_STAMP"], "w") as f:
            f.write(repr(time.time()))
    if how == "sleep":
        time.sleep(10**6)
    elif how == "loop":
        while True:
            pass
    elif how == "swallow":  # catches every Exception it is sent
        while True:
            try:
                time.sleep(10**6)
            except Exception:
                pass
    elif how == "bare":  # catches everything: only the process's end stops it
        while True:
            try:
                time.sleep(10**6)
            except BaseException:
                pass
    elif how == "nap":  # a slow call that returns
        time.sleep(1.5)


@register
class Hanging(Policy):
    name = "hanging"

    def __init__(self, how: str = "sleep", where: str = "rank", at: int = 3):
        self.how, self.where, self.at = how, where, at

    def prepare(self, requests):
        if self.where == "prepare":
            forever(self.how)

    def rank(self, view):
        if self.where == "rank" and view.step == self.at:
            forever(self.how)
        return view.order_by()

    def on_step(self, view, scheduled, dt):
        if self.where == "on_step" and view.step == self.at:
            forever(self.how)


@register_router
class HangingRouter(Router):
    name = "hanging-router"

    def route(self, row, at, replicas):
        if row == 3:
            forever("sleep")
        return row % len(replicas)
'''

#: How long a hanging call may run before the command prints its line [s]: the 1 s limit, a tenth of it between
#: two looks, and a loaded machine's margin (the interpreter's and vLLM's start come before it).
PROMPT_S = 10.0


@pytest.fixture
def plugin(tmp_path) -> Path:
    path = tmp_path / "hanging.py"
    path.write_text(HANGING_PLUGIN)
    return path


def run(*args, limit: str | None = "1", timeout: float = 300, **env):
    """The CLI in a subprocess with ``LTRSCHED_PLUGIN_TIMEOUT=limit``; (result, seconds from the start of the plugin's
    hanging call to the error line on stderr; 0 without either). The line's arrival is timed, not the process's end:
    vLLM's own teardown takes ~10 s after any replay."""
    stamp = Path(os.environ.get("TMPDIR", "/tmp")) / f"hang-stamp-{os.getpid()}-{time.monotonic_ns()}"
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "HANG_STAMP": str(stamp), **env}
    environ.pop("LTRSCHED_PLUGIN_TIMEOUT", None)
    if limit is not None:
        environ["LTRSCHED_PLUGIN_TIMEOUT"] = limit
    proc = subprocess.Popen([sys.executable, "-m", "ltrsched.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ, cwd=str(ROOT))
    timer = threading.Timer(timeout, proc.kill)  # a hang fails the test
    timer.start()
    try:
        err, error_at = [], None
        for line in proc.stderr:
            err.append(line)
            if error_at is None and line.startswith("error: "):
                error_at = time.time()
        out = proc.stdout.read()
        proc.wait()
    finally:
        timer.cancel()
    took = error_at - float(stamp.read_text()) if stamp.exists() and error_at is not None else 0.0
    stamp.unlink(missing_ok=True)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(err)), took


def assert_stopped(r, took: float, plugin: Path, method: str, when: str, who: str = "policy 'hanging'",
                   prompt: float = PROMPT_S, engine: bool = False):
    """Exit code 2 and the one line (vLLM's own log lines may come before it, on the engine), within ``prompt`` s."""
    message = f"{who} (plugin {plugin}): its {method}() call {when} ran longer than the plugin time limit of 1 s (now at {plugin}:"
    if engine:
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and message in last, r.stderr[-3000:]
    else:
        assert_one_line_error(r, message)
    assert "set LTRSCHED_PLUGIN_TIMEOUT to a larger limit in seconds (0: no limit)" in r.stderr
    assert 1 <= took < prompt, took


@pytest.mark.parametrize("how", ["sleep", "loop", "swallow", "sleep,starve=200"])
def test_a_rank_that_never_returns_stops_simulate(tmp_path, plugin, how):
    """Whatever the call does (starve=200: the plugin's rank inside the built-in starvation wrapper's)."""
    r, took = run("simulate", "-n", "30", "--plugin", str(plugin), "--policy", f"hanging:how={how}",
                  "--out", str(tmp_path / "out"))
    assert_stopped(r, took, plugin, "Hanging.rank", "at step 3")


@pytest.mark.parametrize("where, when", [("on_step", "at step 3"), ("prepare", "before the first step")])
def test_a_hook_or_prepare_that_never_returns_stops_simulate(tmp_path, plugin, where, when):
    r, took = run("simulate", "-n", "30", "--plugin", str(plugin), "--policy", f"hanging:where={where}",
                  "--out", str(tmp_path / "out"))
    assert_stopped(r, took, plugin, f"Hanging.{where}", when)


def test_a_router_that_never_returns_stops_a_cluster(tmp_path, plugin):
    r, took = run("simulate", "-n", "30", "--plugin", str(plugin), "--replicas", "2", "--router", "hanging-router",
                  "--out", str(tmp_path / "out"))
    assert_stopped(r, took, plugin, "HangingRouter.route", "for the arrival at t=0.000 s", who="router 'hanging-router'")


def test_a_cluster_whose_every_replica_calls_the_slow_policy_stops_in_one_line(capsys, tmp_path, plugin, monkeypatch):
    """The interrupted replica's exception leaves SimPy's loop only after the other replicas' steps at the same
    instant, each calling its own copy of the policy: the watchdog took the next replica's call for the interrupted
    one, still running, and ended the process GRACE_S later ("it did not stop when interrupted"), a notebook's or
    ``CliRunner``'s included. Each later call is interrupted too: the one line, and the process goes on."""
    import ltrsched.plugin_watchdog as watchdog
    from cli_helpers import assert_one_line_error as one_line, run_cli_fast

    ended = []

    def end_process(line):  # (the real one ends this process: the test's)
        ended.append(line)
        raise SystemExit  # (ends the watchdog's thread only)

    monkeypatch.setattr(watchdog, "end_process", end_process)
    monkeypatch.setattr(watchdog, "GRACE_S", 1.0)  # (each replica's call naps 1.5 s)
    r = run_cli_fast(capsys, "simulate", "-n", "30", "--no-progress", "--plugin", str(plugin), "--policy",
                     "hanging:how=nap", "--replicas", "3", env={**os.environ, "LTRSCHED_PLUGIN_TIMEOUT": "0.3"})
    assert ended == []
    one_line(r, f"policy 'hanging' (plugin {plugin}): its Hanging.rank() call at step 3 ran longer than the plugin "
                "time limit of 0.3 s")


def test_plugin_code_that_swallows_the_interrupt_ends_the_process(tmp_path, plugin):
    """A call that catches even BaseException cannot be stopped: the process ends with the line, GRACE_S later."""
    r, took = run("simulate", "-n", "30", "--plugin", str(plugin), "--policy", "hanging:how=bare",
                  "--out", str(tmp_path / "out"))
    assert_stopped(r, took, plugin, "Hanging.rank", "at step 3", prompt=PROMPT_S + 5)
    assert "it did not stop when interrupted, so ltrsched exits" in r.stderr


def test_the_limit_is_per_call_and_0_turns_it_off(tmp_path, plugin):
    """A 1.5 s call passes a 2 s limit and no limit, and stops the run under a 1 s limit."""
    args = ("simulate", "-n", "30", "--plugin", str(plugin), "--policy", "hanging:how=nap", "--out", str(tmp_path / "o"))
    for limit in ("0", "2"):
        r, _ = run(*args, limit=limit)
        assert r.returncode == 0, r.stderr[-2000:]
    r, took = run(*args)
    assert_stopped(r, took, plugin, "Hanging.rank", "at step 3")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_hanging_plugin_stops_a_sweep_and_keeps_the_finished_runs(tmp_path, plugin, jobs):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('policies = ["fcfs", "hanging"]\nnum_requests = 30\n')
    r, took = run("sweep", str(sweep), "-o", str(tmp_path / "sweep"), "-j", jobs, LTRSCHED_PLUGINS=str(plugin))
    assert_stopped(r, took, plugin, "Hanging.rank", "at step 3")
    finished = [p for p in (tmp_path / "sweep" / "runs").glob("*/summary.json")]
    assert len(finished) == 1, finished  # fcfs's run, saved


def processes_with(marker: str, wait_s: float = 3.0) -> list[str]:
    """The ``ps`` lines of processes whose environment holds ``marker`` after up to ``wait_s`` seconds for them to end."""
    deadline = time.monotonic() + wait_s
    while True:
        ps = subprocess.run(["ps", "-e", "eww", "-o", "pid=,args="], capture_output=True, text=True, check=True)
        left = [line[:200] for line in ps.stdout.splitlines() if marker in line]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def test_a_pool_worker_that_a_stuck_plugin_call_ends_is_one_line_and_no_process_is_left(tmp_path, plugin):
    """A call that swallows even BaseException ends its pool worker: the main process prints the worker's line, as a
    lone process would, with exit code 2 (it printed that line, then its own about a dead worker, exit code 1), and
    the pool's other worker ends with it."""
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('policies = ["fcfs", "hanging:how=bare"]\nnum_requests = 30\n')
    marker = f"HANG_MARK=sweep-{os.getpid()}-{time.monotonic_ns()}"
    r, took = run("sweep", str(sweep), "-o", str(tmp_path / "sweep"), "-j", "2", LTRSCHED_PLUGINS=str(plugin),
                  HANG_GRACE="0.3", HANG_MARK=marker.partition("=")[2])
    assert_stopped(r, took, plugin, "Hanging.rank", "at step 3", prompt=PROMPT_S + 0.3)
    assert r.stderr.strip().endswith("it did not stop when interrupted, so ltrsched exits"), r.stderr
    assert processes_with(marker) == []


def test_a_hanging_plugin_stops_a_capacity_search(tmp_path, plugin):
    # (--max-num-seqs 8: 30 requests above it, or capacity warns that they run at once, a line before the error)
    r, took = run("capacity", "--slo", "latency_per_token_mean=0.1", "-p", "hanging", "-n", "30", "--seeds", "1",
                  "--max-num-seqs", "8", "-o", str(tmp_path / "capacity"), "-j", "2", LTRSCHED_PLUGINS=str(plugin))
    assert_stopped(r, took, plugin, "Hanging.rank", "at step 3")


def test_a_hanging_plugin_stops_a_sweep_on_ray(tmp_path, plugin):
    """A Ray task takes the limit from the driver (a local Ray instance starts in ~10 s)."""
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('policies = ["hanging"]\nnum_requests = 30\n')
    r, took = run("sweep", str(sweep), "-o", str(tmp_path / "sweep"), "-j", "1", "--backend", "ray",
                  LTRSCHED_PLUGINS=str(plugin))
    assert_stopped(r, took, plugin, "Hanging.rank", "at step 3")


@pytest.mark.slow  # (a local Ray instance starts in 10-30 s)
def test_a_ray_worker_that_a_stuck_plugin_call_ends_is_one_line_and_not_retried(tmp_path, plugin):
    """The worker leaves its line in the run's directory: the driver prints it as the one line, exit code 2 (it ran
    the run again after the first death, then ended with three lines about dead workers, exit code 1)."""
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('policies = ["hanging:how=bare"]\nnum_requests = 30\n')
    r, took = run("sweep", str(sweep), "-o", str(tmp_path / "sweep"), "-j", "1", "--backend", "ray",
                  LTRSCHED_PLUGINS=str(plugin), HANG_GRACE="0.3")
    assert_stopped(r, took, plugin, "Hanging.rank", "at step 3", prompt=PROMPT_S + 0.3)
    assert r.stderr.strip().endswith("it did not stop when interrupted, so ltrsched exits"), r.stderr
    assert not list((tmp_path / "sweep" / "runs").glob("*/.plugin-exit"))  # read and removed


@pytest.mark.vllm
@pytest.mark.parametrize("where", ["rank", "on_step"])
def test_a_hanging_plugin_stops_the_emulated_engine(tmp_path, plugin, where):
    r, took = run("replay", "-n", "30", "--plugin", str(plugin), "--policy", f"hanging:where={where}",
                  "--emulate", "a100-llama3-8b", "--out", str(tmp_path / "out"))
    assert_stopped(r, took, plugin, f"Hanging.{where}", "at step 3", engine=True)


@pytest.mark.parametrize("value", ["soon", "-1", "inf", "nan"])
def test_a_bad_limit_is_one_line(tmp_path, plugin, value):
    r, _ = run("simulate", "-n", "30", "--plugin", str(plugin), "--policy", "hanging", "--out", str(tmp_path / "o"),
               limit=value)
    assert_one_line_error(r, f"LTRSCHED_PLUGIN_TIMEOUT must be a finite number of seconds >= 0 (0: no limit on a "
                             f"plugin call), got {value!r}")


def test_time_limit_reads_the_environment(monkeypatch):
    monkeypatch.delenv("LTRSCHED_PLUGIN_TIMEOUT", raising=False)
    assert time_limit() == DEFAULT_LIMIT_S == 60.0
    monkeypatch.setenv("LTRSCHED_PLUGIN_TIMEOUT", " 2.5 ")
    assert time_limit() == 2.5
    monkeypatch.setenv("LTRSCHED_PLUGIN_TIMEOUT", "-0.5")
    with pytest.raises(UserError):
        time_limit()


THREADED = '''
import sys, threading
from ltrsched.plugin_watchdog import PluginTimeoutError
from ltrsched.policies import make_policy
from ltrsched.policies.registry import load_plugin
from ltrsched.sim import simulate
from ltrsched.workloads import load_workload

load_plugin(sys.argv[1])
wl = load_workload("sharegpt", num_requests=30)
got = []

def body():
    try:
        simulate(wl, make_policy("hanging:how=" + sys.argv[2]))
    except PluginTimeoutError as exc:
        got.append(str(exc))

t = threading.Thread(target=body, daemon=True)
t.start()
t.join(30)
print(got[0] if got else "no error")
'''


def test_a_run_on_another_thread_is_stopped_too(tmp_path, plugin):
    """Off the main thread no signal handler can be set: an asynchronous exception stops a looping call."""
    script = tmp_path / "threaded.py"
    script.write_text(THREADED)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LTRSCHED_PLUGIN_TIMEOUT": "1"}
    r = subprocess.run([sys.executable, str(script), str(plugin), "loop"], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "policy 'hanging'" in r.stdout and "its Hanging.rank() call at step 3 ran longer than" in r.stdout, r.stdout


NO_PLUGIN = '''
import threading
from ltrsched.policies import Policy, make_policy
from ltrsched.sim import simulate
from ltrsched.workloads import load_workload

counts = set()

class Counting(Policy):  # not registered: no plugin
    name = "counting"

    def rank(self, view):
        counts.add(threading.active_count())
        return view.order_by()

make_policy("fcfs")  # loads LTRSCHED_PLUGINS' modules, if any
simulate(load_workload("sharegpt", num_requests=30), Counting())
print(sorted(counts))
'''


@pytest.mark.parametrize("plugins, threads", [(False, "[1]"), (True, "[2]")])
def test_the_watchdog_thread_runs_only_with_a_plugin(tmp_path, plugin, plugins, threads):
    """Without a plugin registered nothing starts: a run of built-in code costs nothing more."""
    script = tmp_path / "no_plugin.py"
    script.write_text(NO_PLUGIN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LTRSCHED_PLUGINS", None)
    if plugins:
        env["LTRSCHED_PLUGINS"] = str(plugin)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == threads
