"""A ``max_model_len`` given beyond what the simulator's KV cache holds is refused, as vLLM refuses to start on such a
cache (``check_enough_kv_cache_memory``) and both engines refuse it (``ltrsched.engine.config.kv_short_reason``), in
the same words (:func:`ltrsched.policies.kv_bound.short_reason`), the blocks counted as the simulator counts them
(vLLM's null block not among them). The simulator ran it: ``simulate --num-gpu-blocks 35 --max-model-len 8192``
(a100-llama3-8b, 16-token blocks) served a request of 300 + 261 tokens. From the command line one line, exit 2; from
Python a ValueError (``ConfigError``, as ``SimConfig``'s other checks); from sweeps, capacity and clusters too."""

from __future__ import annotations

import importlib.resources
import json

import pytest

from cli_helpers import run_cli_fast
from conftest import LinearProfile, make_workload

PROFILE = "a100-llama3-8b"
#: The profile's GPU memory at this utilization leaves 35 KV blocks of 16 tokens (tests/test_sim_kv_bound.py).
UTILIZATION = 0.43
BLOCKS, CONTEXT = 35, 560

LINE = ("--max-model-len 8192 needs 512 KV blocks of 16 tokens (vLLM's null block not among them), and {given} holds "
        "35, which vLLM refuses once started: {fix}, or give --max-model-len 560 or less")
#: How the cache is given -> how the line names it and what it says to do.
SOURCES = {
    ("--num-gpu-blocks", str(BLOCKS)): ("--num-gpu-blocks 35", "give --num-gpu-blocks 512 or more"),
    ("--gpu-memory-utilization", str(UTILIZATION)): (
        f"the KV cache of profile '{PROFILE}' (its GPU memory at --gpu-memory-utilization {UTILIZATION})",
        "give --num-gpu-blocks 512 or more, or a larger --gpu-memory-utilization"),
}


def _csv(tmp_path, tokens: int) -> str:
    path = tmp_path / f"w{tokens}.csv"
    path.write_text(f"prompt_tokens,output_tokens\n300,{tokens - 300}\n")
    return str(path)


@pytest.mark.parametrize("replicas", [(), ("--replicas", "2")])
@pytest.mark.parametrize("size", list(SOURCES))
def test_simulate_refuses_a_context_its_kv_cache_does_not_hold(capsys, tmp_path, size, replicas):
    given, fix = SOURCES[size]
    r = run_cli_fast(capsys, "simulate", "-w", _csv(tmp_path, CONTEXT + 1), *size, "--max-model-len", "8192",
                     *replicas, "--no-progress")
    assert r.returncode == 2, r.stdout
    assert r.stderr == f"error: {LINE.format(given=given, fix=fix)}\n"


@pytest.mark.parametrize("size", list(SOURCES))
def test_a_context_the_cache_holds_runs_and_one_token_more_is_refused(capsys, tmp_path, size):
    ran = run_cli_fast(capsys, "simulate", "-w", _csv(tmp_path, CONTEXT), *size, "--max-model-len", str(CONTEXT),
                       "--no-progress")
    assert ran.returncode == 0, ran.stderr
    r = run_cli_fast(capsys, "simulate", "-w", _csv(tmp_path, CONTEXT), *size, "--max-model-len", str(CONTEXT + 1),
                     "--no-progress")
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: --max-model-len {CONTEXT + 1} needs 36 KV blocks of 16 tokens"), r.stderr


def test_the_python_api_raises_a_value_error_naming_its_fields():
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate
    from ltrsched.sim.cluster import simulate_cluster
    from ltrsched.sim.config import ConfigError

    with pytest.raises(ConfigError) as caught:  # (given blocks: at once, as SimConfig's other checks)
        SimConfig(profile=PROFILE, num_gpu_blocks=BLOCKS, max_model_len=8192)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == ("max_model_len 8192 needs 512 KV blocks of 16 tokens (vLLM's null block not among "
                                 "them), and num_gpu_blocks 35 holds 35, which vLLM refuses once started: give "
                                 "num_gpu_blocks 512 or more, or give max_model_len 560 or less")
    # (blocks from the profile's GPU memory: once the run knows them)
    config = SimConfig(profile=LinearProfile(blocks=BLOCKS), max_model_len=8192)
    line = ("max_model_len 8192 needs 512 KV blocks of 16 tokens (vLLM's null block not among them), and the KV cache "
            "of profile 'linear-test' (its GPU memory at gpu_memory_utilization 0.9) holds 35, which vLLM refuses "
            "once started: give num_gpu_blocks 512 or more, or a larger gpu_memory_utilization, or give max_model_len "
            "560 or less")
    wl = make_workload([300], [260])
    for run in (lambda: simulate(wl, make_policy("fcfs"), config),
                lambda: simulate_cluster(wl, make_policy("fcfs"), config, 2)):
        with pytest.raises(ConfigError) as caught:
            run()
        assert str(caught.value) == line
    held = SimConfig(profile=LinearProfile(blocks=BLOCKS), max_model_len=CONTEXT)
    assert simulate(wl, make_policy("fcfs"), held).requests["generated_tokens"].to_list() == [260]


def test_the_line_is_the_engines_counted_without_the_null_block():
    """The emulated engine on the same cache (one block more: vLLM's null block) refuses the same context with the
    same bound, in the same words (counting the null block)."""
    from ltrsched.engine.config import EngineConfig, emulated_kv_short
    from ltrsched.policies import limit_rules
    from ltrsched.sim import SimConfig

    engine = emulated_kv_short(EngineConfig(num_gpu_blocks=BLOCKS + 1, max_model_len=8192),
                               name=limit_rules.field_name)
    with pytest.raises(ValueError) as caught:
        SimConfig(num_gpu_blocks=BLOCKS, max_model_len=8192)
    assert engine == ("max_model_len 8192 needs 513 KV blocks of 16 tokens (one of them vLLM's null block), and "
                      "num_gpu_blocks 36 holds 36, which vLLM refuses once started: give num_gpu_blocks 513 or more, "
                      "or give max_model_len 560 or less")
    assert str(caught.value) == (engine.replace("513", "512").replace("36", "35")
                                 .replace("one of them vLLM's null block", "vLLM's null block not among them"))


def _small_profile(tmp_path) -> str:
    """a100-llama3-8b with GPU memory for 20 KV blocks of 16 tokens (tests/test_hostile_sim_inputs.py)."""
    from ltrsched.sim import SimConfig
    from ltrsched.sim.simulate import kv_capacity_blocks

    small = json.loads((importlib.resources.files("ltrsched.sim.profiles") / f"{PROFILE}.json").read_text())
    blocks = kv_capacity_blocks(SimConfig(profile=PROFILE))
    small["gpu_memory_bytes"] -= int((blocks - 20) * 16 * 131072 / 0.9)  # (131,072 KV bytes per token)
    path = tmp_path / "small.json"
    path.write_text(json.dumps(small))
    assert kv_capacity_blocks(SimConfig(profile=str(path))) == 20
    return str(path)


def test_sweep_and_capacity_refuse_it_before_any_run(capsys, tmp_path):
    small = _small_profile(tmp_path)
    wl = tmp_path / "w.csv"
    wl.write_text("prompt_tokens,output_tokens\n" + "10,5\n" * 40)
    cache = (f"and the KV cache of profile '{small}' (the 90% of its GPU memory the engine may use) holds 20, which "
             "vLLM refuses once started: use a profile with more GPU memory, or give ")
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'policies = ["fcfs"]\nworkloads = ["{wl}"]\nprofiles = ["{small}"]\nmax_model_len = 8192\n')
    r = run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out"), "--jobs", "1")
    assert r.returncode == 2
    assert r.stderr == (f"error: {sweep}: 'max_model_len' 8192 needs 512 KV blocks of 16 tokens (vLLM's null block not "
                        f"among them), {cache}'max_model_len' 320 or less\n")
    assert not (tmp_path / "out" / "sweep.csv").exists()
    r = run_cli_fast(capsys, "capacity", "-w", str(wl), "--profile", small, "-p", "fcfs", "--slo", "ttft_p90=1",
                     "-n", "40", "--seeds", "1", "--jobs", "1", "--max-model-len", "8192", "--out", str(tmp_path / "c"))
    assert r.returncode == 2
    assert r.stderr == (f"error: --max-model-len 8192 needs 512 KV blocks of 16 tokens (vLLM's null block not among "
                        f"them), {cache}--max-model-len 320 or less\n")
