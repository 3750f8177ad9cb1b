"""The simulator's context where no ``max_model_len`` is given: the profile's, bounded by what the KV cache holds, as
both engines bound theirs (one rule, :mod:`ltrsched.policies.kv_bound`; ``ltrsched.engine.config.default_context_bound``
for the engines). It was not: ``simulate --num-gpu-blocks 35`` (16-token blocks, a100-llama3-8b) and ``simulate
--gpu-memory-utilization 0.43`` (the profile's memory sizing the same 35 blocks) served a request of 300 + 261 tokens
that the emulated and the real engine on that cache (36 blocks, vLLM's null block among them) refuse: "exceed the
engine's max_model_len 560 tokens". A request of 600 tokens was refused as "can never fit the KV cache of 35 usable
blocks", where the engines name the context."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError

PROFILE = "a100-llama3-8b"
#: The profile's GPU memory at this utilization leaves 35 KV blocks of 16 tokens (tests/test_emulated_profile_cache.py).
UTILIZATION = 0.43
BLOCKS, CONTEXT = 35, 560


def test_the_rule_is_the_engines_null_block_count():
    from ltrsched.engine.config import default_context_bound, full_attention_bound
    from ltrsched.engine.emulate import EngineConfig
    from ltrsched.policies.kv_bound import usable_blocks_bound

    assert full_attention_bound(BLOCKS + 1, 16, 8192).context == CONTEXT
    assert usable_blocks_bound(BLOCKS, 16, 8192) == full_attention_bound(BLOCKS + 1, 16, 8192)
    assert usable_blocks_bound(BLOCKS, 16, 8192).needed == 8192 // 16 + 1
    assert usable_blocks_bound(BLOCKS, 16, CONTEXT) is None and usable_blocks_bound(BLOCKS, 16, CONTEXT + 1) is not None
    engine = default_context_bound(EngineConfig(num_gpu_blocks=BLOCKS + 1, block_size=16), 8192)
    assert engine == usable_blocks_bound(BLOCKS, 16, 8192)


def _csv(tmp_path, tokens: int) -> str:
    path = tmp_path / f"w{tokens}.csv"
    path.write_text(f"prompt_tokens,output_tokens\n300,{tokens - 300}\n")
    return str(path)


#: Where the cache comes from -> how the refusal names it and what it says to do.
SOURCES = {
    ("--num-gpu-blocks", str(BLOCKS)): (f"the KV cache of --num-gpu-blocks {BLOCKS}",
                                        "raise --num-gpu-blocks (or leave it to the profile), or leave such requests "
                                        "out"),
    ("--gpu-memory-utilization", str(UTILIZATION)): (
        f"the KV cache of profile '{PROFILE}' at --gpu-memory-utilization {UTILIZATION}, {BLOCKS} blocks",
        f"give --num-gpu-blocks (more than {BLOCKS}) or a larger --gpu-memory-utilization, or leave such requests out"),
}


@pytest.mark.parametrize("size", list(SOURCES))
@pytest.mark.parametrize("tokens", [CONTEXT + 1, CONTEXT + 40])
def test_simulate_refuses_a_request_beyond_the_context_its_cache_bounds(capsys, tmp_path, size, tokens):
    source, fix = SOURCES[size]
    path = _csv(tmp_path, tokens)
    r = run_cli_fast(capsys, "simulate", "-w", path, *size, "--no-progress")
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"error: 1 request(s) exceed the context limit of {CONTEXT} tokens (first: request 0 in row 1 "
                        f"of {path}, prompt "
                        f"300 + output {tokens - 300}), the profile's 8192 tokens bounded by {source} (vLLM's null "
                        f"block not among them) x 16 tokens, as vLLM bounds its context; {fix}\n")


@pytest.mark.parametrize("size", list(SOURCES))
def test_simulate_serves_a_request_of_the_bounded_context(capsys, tmp_path, size):
    r = run_cli_fast(capsys, "simulate", "-w", _csv(tmp_path, CONTEXT), *size, "--no-progress")
    assert r.returncode == 0, r.stderr


def test_the_python_api_names_its_fields():
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate

    wl = make_workload([15], [2])  # (17 tokens: the last sampled one never computed, they fit one block of 16)
    with pytest.raises(UserError, match=r"^1 request\(s\) exceed the context limit of 16 tokens \(first: request 0 "
                                        r"in row 1 of workload 'test', prompt 15 \+ output 2\), the profile's 100000 "
                                        r"tokens bounded by the KV cache "
                                        r"of num_gpu_blocks=1 \(vLLM's null block not among them\) x 16 tokens, as "
                                        r"vLLM bounds its context; raise num_gpu_blocks \(None: the profile's\), or "
                                        r"leave such requests out$"):
        simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), num_gpu_blocks=1))
    with pytest.raises(UserError, match=r"bounded by the KV cache of profile 'linear-test' at "
                                        r"gpu_memory_utilization=0.9, 1 blocks .*; give num_gpu_blocks \(more than 1\) "
                                        r"or a larger gpu_memory_utilization, or leave such requests out$"):
        simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(blocks=1)))
    # (a context given is taken as given, not bounded: 17 tokens on 2 blocks, which hold 32; it was 17 on 1 block,
    # which vLLM refuses to start with, and so does the simulator now: tests/test_sim_context_given.py)
    given = SimConfig(profile=LinearProfile(), num_gpu_blocks=2, max_model_len=17)
    assert simulate(wl, make_policy("fcfs"), given).requests["generated_tokens"].to_list() == [2]
    with pytest.raises(UserError, match=r"^1 request\(s\) exceed the context limit of 17 tokens set by max_model_len"):
        simulate(make_workload([15], [3]), make_policy("fcfs"), given)


@pytest.mark.parametrize("utilization", [UTILIZATION, 0.45, 0.5, 0.9])
def test_the_simulator_takes_the_context_the_emulated_engine_takes(utilization):
    """``validate --emulate``'s engine (its blocks sized from the profile's memory, one of them vLLM's null block) and
    the simulator on the same profile and utilization (its blocks without the null block) take one context: 560
    tokens at 0.43, 7,056 at 0.45, the profile's 8,192 at 0.5 and 0.9."""
    from ltrsched.sim import SimConfig
    from ltrsched.sim.profiles import load_profile
    from ltrsched.sim.simulate import cache_bound, kv_capacity_blocks
    from ltrsched.validation.engines import emulated_config, engine_config

    engine = emulated_config(engine_config(emulate_profile=PROFILE, gpu_memory_utilization=utilization), PROFILE)[0]
    config = SimConfig(profile=PROFILE, gpu_memory_utilization=utilization)
    blocks = kv_capacity_blocks(config)
    assert blocks == engine.num_gpu_blocks - 1
    assert cache_bound(config, load_profile(PROFILE), blocks)[0] == engine.max_model_len
