"""Audit of the engine commands (replay, profile, validate) on the emulated engine: the command line they record,
hostile option values, a served scheduler after its plugin watchdog fired, and process state an aborted run
leaves behind."""

from __future__ import annotations

import json
import shlex
import sys

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]

EMU = ("--emulate", "h100-llama3-8b")


# ---------------------------------------------------------------------------------------------- recorded command


def test_replay_records_its_own_command_not_the_host_programs_argv(capsys, tmp_path, monkeypatch):
    """Called from Python (pytest, a notebook, the API: ``ltrsched.cli.main([...])``) replay, profile and validate
    recorded ``sys.argv``, the host program's arguments (``ltrsched -q tests/x.py``), as the command that reruns the
    run."""
    monkeypatch.setattr(sys, "argv", ["pytest", "-q", "tests/x.py"])
    replay = ["replay", *EMU, "-n", "2", "--policy", "ltr:tau=0.5", "-o", "run dir"]
    r = run_cli_fast(capsys, *replay, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recorded = json.loads((tmp_path / "run dir" / "summary.json").read_text())["meta"]["command"]
    assert recorded == "ltrsched " + shlex.join(replay)
    assert shlex.split(recorded)[1:] == replay  # (the record reruns the same command)
    # (validate's record: test_validate_refuses_what_the_engine_would_refuse_at_its_start_before_replacing_its_out)


# ---------------------------------------------------------------------------------------------- hostile inputs


def test_an_emulated_refusal_found_once_the_engine_is_built_is_one_line_without_vllms_warnings(capsys, caplog,
                                                                                            tmp_path):
    """Building the emulated engine, vLLM warned about the CPU it models nothing on ("Triton is not installed", "CPU
    backend prefers block_size is multiples of 32", ...): with no handler of its own they reached stderr (Python's
    last-resort handler; pytest's log capture here), three lines ahead of every emulated run's output and of the
    one-line refusal of a request too long for its KV cache."""
    import logging

    from ltrsched.engine.emulate import EngineConfig, EngineSetup, build_scheduler
    from ltrsched.policies import make_policy

    # (torch warns once per process, at the first build in a test process, through a handler of its own: not here)
    build_scheduler(EngineConfig(num_gpu_blocks=10), EngineSetup(make_policy("fcfs"))).shutdown()
    vllm_level = logging.getLogger("vllm").level
    caplog.set_level(logging.WARNING)
    r = run_cli_fast(capsys, "replay", *EMU, "-n", "3", "--num-gpu-blocks", "3", cwd=tmp_path)
    # (the context the 3 blocks bound, as the real engine takes it without --max-model-len: default_context_bound)
    assert_one_line_error(r, "3 request(s) exceed the engine's max_model_len 32 tokens (first: request 0, 290 tokens), "
                             "its context from the KV cache of --num-gpu-blocks 3 (one of them vLLM's null block) x 16 "
                             "tokens: give more --num-gpu-blocks, or leave them out")
    assert not [rec.getMessage() for rec in caplog.records if rec.name.startswith("vllm")]
    assert logging.getLogger("vllm").level == vllm_level  # (held for the build only)


def test_validate_refuses_what_the_engine_would_refuse_at_its_start_before_replacing_its_out(capsys, tmp_path,
                                                                                         monkeypatch):
    """A request longer than the emulated engine's context or KV cache, or more --threads than CPUs for the CPU
    engine, was refused as the engine started, after validate had replaced the earlier validation in --out: that
    one's runs and report deleted, a note saying so printed above the error."""
    (tmp_path / "long.jsonl").write_text('{"prompt_tokens": 9000, "output_tokens": 10}\n')
    monkeypatch.setattr(sys, "argv", ["pytest", "-q", "tests/x.py"])
    validate = ["validate", *EMU, "-n", "2", "--policies", "fcfs", "--out", "v"]
    r = run_cli_fast(capsys, *validate, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # the command recorded is validate's own, not the host program's argv (as replay's: test above)
    manifest = json.loads((tmp_path / "v" / "validate-manifest.json").read_text())
    assert manifest["command"] == "ltrsched " + shlex.join(validate)
    engine_run = json.loads((tmp_path / "v" / "runs" / "burst" / "fcfs" / "engine" / "summary.json").read_text())
    assert engine_run["meta"]["command"] == manifest["command"]
    assert f"`{manifest['command']}`" in (tmp_path / "v" / "validation.md").read_text()
    before = {p: p.read_bytes() for p in (tmp_path / "v").rglob("*") if p.is_file()}
    for bad, message in ((["-w", "long.jsonl", *EMU], "1 request(s) exceed the engine's max_model_len 8192 tokens "
                                                      "(first: request 0 in line 1 of long.jsonl, 9010 tokens)"),
                         # (the context the 3 blocks bound, as the real engine's: default_context_bound)
                         (["-n", "2", "--num-gpu-blocks", "3", *EMU], "2 request(s) exceed the engine's max_model_len "
                                                                      "32 tokens (first: request 0, 290 tokens), its "
                                                                      "context from the KV cache of --num-gpu-blocks 3"),
                         (["-n", "2", "--threads", "100000"], "--threads 100000 exceeds the")):  # (the CPU engine)
        r = run_cli_fast(capsys, "validate", *bad, "--policies", "fcfs", "--out", "v", cwd=tmp_path)
        assert_one_line_error(r, message)
        assert {p: p.read_bytes() for p in (tmp_path / "v").rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------------------------------------- served scheduler

#: A plugin policy whose call at step ``at`` of ``where`` (rank or on_step) takes ``nap`` seconds (``calls`` counts
#: its rank and on_step calls), and one whose rank raises at step 1.
NAP_PLUGIN = '''
import time
from ltrsched.policies import Policy, register


@register
class AuditNap(Policy):
    name = "audit-nap"
    calls = 0

    def __init__(self, where: str = "rank", at: int = 1, nap: float = 2.0):
        self.where, self.at, self.nap = where, at, nap

    def rank(self, view):
        AuditNap.calls += 1
        if self.where == "rank" and view.step == self.at:
            time.sleep(self.nap)
        return view.order_by()

    def on_step(self, view, scheduled, dt):
        AuditNap.calls += 1
        if self.where == "on_step" and view.step == self.at:
            time.sleep(self.nap)


@register
class AuditBoom(Policy):
    name = "audit-boom"

    def rank(self, view):
        if view.step == 1:
            raise KeyError("boom")
        return view.order_by()
'''


@pytest.fixture(scope="module")
def nap_plugin(tmp_path_factory):
    from ltrsched.policies import load_plugin
    from ltrsched.policies.registry import available

    path = tmp_path_factory.mktemp("audit-plugin") / "audit_nap.py"
    path.write_text(NAP_PLUGIN)
    load_plugin(str(path))
    return available()["audit-nap"]


@pytest.mark.parametrize("where", ["rank", "on_step"])
def test_a_served_scheduler_whose_watchdog_fired_refuses_further_work_and_frees_the_kv_on_abort(nap_plugin, monkeypatch,
                                                                                               where):
    """Under ``vllm serve`` the scheduler's own watchdog stops a plugin call past the limit. The scheduler then went
    on: the next step called the policy again with no limit left (the watchdog fires once; a call past the grace
    time ended the process, saying the first call had not stopped), and after an ``on_step`` stopped, the requests
    vLLM had just finished stayed live in the adapter's table and were handed to vLLM again. Now every later step,
    arrival or run is refused with the same one line at once, no plugin call made, and vLLM's aborts still free
    every KV block."""
    import threading

    import numpy as np
    from vllm.v1.request import RequestStatus

    from ltrsched.engine.emulate import EmulatedDriver, EngineConfig, VirtualClock, build_scheduler
    from ltrsched.engine.live_table import RequestInfo
    from ltrsched.plugin_watchdog import PluginTimeoutError

    monkeypatch.setenv("LTRSCHED_PLUGIN_TIMEOUT", "0.2")
    scheduler = build_scheduler(EngineConfig(num_gpu_blocks=100), None,
                                {"ltrsched": {"policy": f"audit-nap:where={where},at=1,nap=1.5"}})
    driver = EmulatedDriver(scheduler, VirtualClock(), lambda shape: 0.01)
    free = scheduler.kv_cache_manager.block_pool.get_num_free_blocks()
    try:
        for i in range(3):  # 20-token prompts, 1 to 3 output tokens: request 0 finishes in step 1
            driver.add(RequestInfo(i, 0.0, 20, i + 1, i + 1, np.nan, np.nan, np.nan))
        with pytest.raises(PluginTimeoutError) as first:
            for _ in range(3):
                driver.step()
        calls = nap_plugin.calls
        for again in (driver.step, lambda: driver.add(RequestInfo(9, 0.0, 20, 2, 2, np.nan, np.nan, np.nan)),
                      lambda: driver.begin(nap_plugin())):
            with pytest.raises(PluginTimeoutError) as later:
                again()
            assert str(later.value) == f"{first.value}; the scheduler stopped there and takes no more requests or steps"
        assert nap_plugin.calls == calls and "\n" not in str(later.value)
        assert "9" not in scheduler.requests
        scheduler.finish_requests(list(scheduler.requests), RequestStatus.FINISHED_ABORTED)  # (vLLM's aborts)
        assert scheduler.get_num_unfinished_requests() == 0 and not scheduler.requests
        assert scheduler.kv_cache_manager.block_pool.get_num_free_blocks() == free
    finally:
        scheduler.shutdown()
    assert not any(t.name == "ltrsched-plugin-watchdog" for t in threading.enumerate())


# ---------------------------------------------------------------------------------------------- state left behind


def test_a_failed_run_leaves_the_engine_idle_for_the_next_run(nap_plugin):
    """A run that failed mid-way (a plugin's rank raised, Ctrl-C, a stall) left its requests in the engine, their
    KV allocated: the next run on the same engine (validate's policies, a notebook's second try) failed with
    "begin_run needs an idle engine", a RuntimeError traceback. The failed run's requests are now aborted; the error
    is the run's own."""
    from conftest import LinearProfile, make_workload
    from ltrsched.engine.emulate import EngineConfig, emulate, emulated_driver
    from ltrsched.policies import make_policy

    config = EngineConfig(num_gpu_blocks=100, max_num_batched_tokens=64, max_num_seqs=4)
    driver = emulated_driver(config, LinearProfile().step_time)
    free = driver.scheduler.kv_cache_manager.block_pool.get_num_free_blocks()
    workload = make_workload([20, 20, 20], [5, 5, 5], arrivals=[0.0, 0.0, 1e3])  # (the last one never added)
    with pytest.raises(KeyError, match="boom"):
        emulate(workload, make_policy("audit-boom"), LinearProfile().step_time, config, driver=driver)
    assert not driver.has_unfinished() and driver.scheduler.kv_cache_manager.block_pool.get_num_free_blocks() == free
    again = emulate(workload, make_policy("fcfs"), LinearProfile().step_time, config, driver=driver)
    fresh = emulate(workload, make_policy("fcfs"), LinearProfile().step_time, config)
    assert again.summary["num_finished"] == 3
    assert again.requests.equals(fresh.requests)


def test_building_the_emulated_engine_leaves_the_environment_as_it_found_it(monkeypatch):
    """vLLM's CPU platform, checking the emulated engine's configuration, wrote its CPU worker's variables
    (LD_PRELOAD of torch's libgomp, VLLM_WORKER_MULTIPROC_METHOD, NUMEXPR_MAX_THREADS, ...) into the process for
    good: every command it started later inherited them. An emulated engine runs no worker: they are put back."""
    import os

    from ltrsched.engine.emulate import EngineConfig, EngineSetup, build_scheduler
    from ltrsched.policies import make_policy

    for name in ("LD_PRELOAD", "VLLM_WORKER_MULTIPROC_METHOD", "NUMEXPR_MAX_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)  # (unset, as in a fresh process)
    monkeypatch.setenv("LTRSCHED_AUDIT_MINE", "kept")
    before = dict(os.environ)
    build_scheduler(EngineConfig(num_gpu_blocks=10), EngineSetup(make_policy("fcfs"))).shutdown()
    assert dict(os.environ) == before


def test_a_real_engine_start_that_fails_after_vllm_started_shuts_it_down_and_puts_the_environment_back(monkeypatch):
    """VllmDriver put the engine's environment variables and CPUs back, and shut it down, only where vLLM's start
    itself failed: a failure after it (reading the model's vocabulary, describing the host) left the engine running
    and the process pinned, for the process's life. vLLM's start is replaced here by one that sets a variable as the
    real start does and returns an engine whose vocabulary cannot be read."""
    import os
    from types import SimpleNamespace

    from ltrsched.engine import runner
    from ltrsched.engine.config import EngineConfig

    shut = []

    def start(self, config, load_format, seed):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"

        def vocab():
            raise RuntimeError("no vocabulary")

        model = SimpleNamespace(max_model_len=128, get_vocab_size=vocab)
        core = SimpleNamespace(engine_core=SimpleNamespace(scheduler=None), shutdown=lambda: shut.append(True))
        return SimpleNamespace(llm_engine=SimpleNamespace(engine_core=core, model_config=model))

    monkeypatch.setattr(runner.VllmDriver, "_start", start)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "mine")
    with pytest.raises(RuntimeError, match="no vocabulary"):
        runner.VllmDriver(EngineConfig())
    assert shut == [True] and os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "mine"


def test_after_a_served_schedulers_watchdog_fired_a_new_engine_in_the_process_replays_as_a_fresh_one(nap_plugin,
                                                                                                     monkeypatch):
    """An in-process engine whose step raised the served scheduler's one line is never shut down by vLLM (``vllm
    serve``'s engine core is; a notebook's ``LLM`` is not), and the watchdog it fired kept watching the thread for the
    process's life, its signal handler installed: the next engine's run of the same plugin was ended, the process
    exiting with "it did not stop when interrupted" at the first call the old watchdog saw twice. The watchdog now
    stops once its interrupt landed: no thread left, the signal handler back, and a new engine replays as a fresh
    process would."""
    import signal
    import threading

    import numpy as np

    import ltrsched.plugin_watchdog as watchdog
    from conftest import LinearProfile, make_workload
    from ltrsched.engine.emulate import EmulatedDriver, EngineConfig, VirtualClock, build_scheduler, emulate
    from ltrsched.engine.live_table import RequestInfo
    from ltrsched.policies import make_policy

    ended = []
    monkeypatch.setattr(watchdog, "end_process", ended.append)  # (it would end pytest's process)
    monkeypatch.setattr(watchdog, "GRACE_S", 0.0)
    monkeypatch.setenv("LTRSCHED_PLUGIN_TIMEOUT", "0.2")
    handler = signal.getsignal(watchdog.SIGNAL)
    scheduler = build_scheduler(EngineConfig(num_gpu_blocks=100), None,
                                {"ltrsched": {"policy": "audit-nap:where=rank,at=1,nap=1.5"}})
    driver = EmulatedDriver(scheduler, VirtualClock(), lambda shape: 0.01)
    for i in range(3):
        driver.add(RequestInfo(i, 0.0, 20, 3, 3, np.nan, np.nan, np.nan))
    with pytest.raises(watchdog.PluginTimeoutError):
        for _ in range(3):
            driver.step()
    # (no shutdown: the engine is dropped as it is)
    assert not any(t.name == "ltrsched-plugin-watchdog" for t in threading.enumerate())
    assert signal.getsignal(watchdog.SIGNAL) == handler
    config = EngineConfig(num_gpu_blocks=100, max_num_batched_tokens=64, max_num_seqs=4)
    workload = make_workload([20, 30, 40], [3, 2, 4])
    slow = emulate(workload, make_policy("audit-nap:where=rank,at=0,nap=0.1"), LinearProfile().step_time, config)
    assert ended == []
    fresh = emulate(workload, make_policy("fcfs"), LinearProfile().step_time, config)
    assert slow.requests.equals(fresh.requests)


# ---------------------------------------------------------------------------------------------- context (max_model_len)


def _lengths(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("".join(json.dumps({"prompt_tokens": p, "output_tokens": o}) + "\n" for p, o in rows))
    return path


def test_the_emulated_engines_context_is_its_profiles_as_the_simulators(capsys, tmp_path):
    """The emulated engine built vLLM's scheduler with the model's context (llama-3-8b's 8,192 tokens, whatever the
    profile), the simulator and validate's simulated side with the profile's (cpu-llama-tiny: 4,096): ``replay
    --emulate cpu-llama-tiny`` served a 6,000-token request that ``simulate -p cpu-llama-tiny`` refuses, and
    ``validate`` refused it only on its simulated side, naming a setting (max_model_len) no option sets. Now both
    refuse it before the engine is built, naming the option that raises it."""
    from ltrsched.engine.emulate import EngineConfig, EngineSetup, build_scheduler
    from ltrsched.policies import make_policy

    # (torch warns once per process, at the first build in a test process, through a handler of its own: not here)
    build_scheduler(EngineConfig(num_gpu_blocks=10), EngineSetup(make_policy("fcfs"))).shutdown()
    long = _lengths(tmp_path, "six.jsonl", [(5000, 1000), (50, 20)])
    message = (f"1 request(s) exceed the engine's max_model_len 4096 tokens (first: request 0 in line 1 of {long}, "
               "6000 tokens): raise "
               "--max-model-len if the model takes longer contexts, or leave them out")
    for command in (["replay", "-o", "out"], ["validate", "--policies", "fcfs", "--out", "out"]):
        r = run_cli_fast(capsys, *command, "--emulate", "cpu-llama-tiny", "-w", long, cwd=tmp_path)
        assert_one_line_error(r, message)
        assert not (tmp_path / "out").exists()
    r = run_cli_fast(capsys, "simulate", "-p", "cpu-llama-tiny", "-w", long, cwd=tmp_path)
    assert_one_line_error(r, "exceed the profile's context limit of 4096 tokens")


def test_max_model_len_lets_the_engine_commands_serve_longer_requests_as_simulate_does(capsys, tmp_path):
    """``simulate --max-model-len`` serves requests longer than the profile's context (reasoning models' 32k-128k
    outputs); replay and validate had no such option, so they refused them whatever the user gave. The emulated engine
    now takes ``--max-model-len`` for vLLM's scheduler and the simulated side alike; the real engine's is refused
    before the start where it exceeds the model's context (vLLM refuses it)."""
    long = _lengths(tmp_path, "long.jsonl", [(8150, 60), (50, 20)])
    r = run_cli_fast(capsys, "replay", *EMU, "-w", long, "--max-model-len", "9000", "-o", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import polars as pl

    served = pl.read_parquet(tmp_path / "run" / "requests.parquet").sort("request_id")
    assert served["output_tokens"].to_list() == [60, 20]
    # (validate takes the same emulated_config: ~6 s of report here, so not repeated)
    r = run_cli_fast(capsys, "replay", *EMU, "-w", long, "-o", "refused", cwd=tmp_path)  # (the profile's 8,192)
    assert_one_line_error(r, f"exceed the engine's max_model_len 8192 tokens (first: request 0 in line 1 of {long}, "
                             "8210 tokens): raise "
                             "--max-model-len")
    for value, message in (("9000", "--max-model-len 9000 exceeds llama-tiny's context of 4096 tokens "
                                    "(max_position_embeddings in its config.json), which vLLM refuses"),
                           ("1", "--max-model-len must be in 2..16,777,216 tokens, got 1"),
                           ("16777217", "--max-model-len must be in 2..16,777,216 tokens, got 16777217")):
        r = run_cli_fast(capsys, "replay", "-w", long, "--max-model-len", value, "-o", "refused", cwd=tmp_path)
        assert_one_line_error(r, message)  # (the CPU engine: refused before it starts)
    assert not (tmp_path / "refused").exists()


def test_max_model_len_is_the_context_of_a_config_that_tells_none(tmp_path, monkeypatch):
    """Where the model's config.json tells no context (the refusal asks for --max-model-len), the one given is checked
    against nothing; vLLM's own variable that lets it exceed the model's context is read as vLLM reads it."""
    from ltrsched.errors import UserError
    from ltrsched.validation.engines import _check_max_model_len

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    _check_max_model_len(100_000, "mine", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 2048}))
    with pytest.raises(UserError, match="exceeds mine's context of 2048 tokens"):
        _check_max_model_len(4096, "mine", str(tmp_path))
    monkeypatch.setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")
    _check_max_model_len(4096, "mine", str(tmp_path))
