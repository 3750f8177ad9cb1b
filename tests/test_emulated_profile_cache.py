"""The emulated engine's KV cache where the options state no size (neither ``--num-gpu-blocks`` nor
``--kv-cache-gib``): its profile's GPU memory sizes it, at ``--gpu-memory-utilization``, as vLLM's memory profiling
sizes a GPU's. That cache bounds the context as a stated one does (one rule: ``engine.config.default_context_bound``).
It did not: on a100-llama3-8b at ``--gpu-memory-utilization 0.43`` (35 blocks of 16 tokens and vLLM's null block) the
emulated engine took the profile's 8,192 tokens and served a request of 561 tokens, which the real engine on that
cache refuses (it bounds the context to 560 tokens; a real GPU engine whose profiled cache holds 560 tokens refuses to
start on 8,192), and refused a longer one in other words ("can never fit the engine's KV cache"); ``--max-model-len``
beyond it was refused naming a ``--num-gpu-blocks 36`` nobody gave. No engine starts here."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from ltrsched.errors import UserError

PROFILE = "a100-llama3-8b"
#: The profile's GPU memory at this utilization leaves 35 KV blocks of 16 tokens (sim.kv_capacity), 36 with vLLM's
#: null block: a context of 35 x 16 = 560 tokens.
UTILIZATION = 0.43
BLOCKS, CONTEXT = 36, 560


def _planned(**options):
    from ltrsched.validation.engines import emulated_config, engine_config

    return emulated_config(engine_config(emulate_profile=PROFILE, gpu_memory_utilization=UTILIZATION, **options),
                           PROFILE)


def test_the_profiles_memory_sizes_the_blocks_assumed_here():
    from ltrsched.sim.profiles import load_profile

    assert load_profile(PROFILE).num_gpu_blocks(16, UTILIZATION) + 1 == BLOCKS


def test_a_cache_sized_from_the_profiles_memory_bounds_the_context_as_a_stated_one():
    config, profile = _planned()
    assert config.num_gpu_blocks == BLOCKS
    assert config.max_model_len == profile.max_model_len == CONTEXT  # (it was the profile's 8,192)
    stated, stated_profile = _planned(num_gpu_blocks=BLOCKS)
    assert stated.max_model_len == stated_profile.max_model_len == CONTEXT


def _csv(tmp_path, tokens: int) -> str:
    path = tmp_path / f"w{tokens}.csv"
    path.write_text(f"prompt_tokens,output_tokens\n300,{tokens - 300}\n")
    return str(path)


#: What the emulated engine's refusal of a request beyond the context says where the options state the cache, and
#: where the profile's memory sized it: one line, the real engine's, naming where the cache came from.
SOURCES = {
    (): (f"the KV cache of profile '{PROFILE}' at --gpu-memory-utilization {UTILIZATION}, {BLOCKS} blocks",
         f"give --num-gpu-blocks (more than {BLOCKS}) or a larger --gpu-memory-utilization, or leave them out"),
    ("--num-gpu-blocks", str(BLOCKS)): (f"the KV cache of --num-gpu-blocks {BLOCKS}",
                                        "give more --num-gpu-blocks, or leave them out"),
}


@pytest.mark.parametrize("size", list(SOURCES))
@pytest.mark.parametrize("tokens", [CONTEXT + 1, CONTEXT + 40])
def test_validate_refuses_a_request_beyond_it_in_the_real_engines_words(capsys, tmp_path, size, tokens):
    """561 tokens was served (its 560 computed tokens fit the 35 usable blocks); 600 was refused as "1 request(s) can
    never fit the engine's KV cache of 35 usable blocks (first: request 0 needs 38 blocks)"."""
    source, fix = SOURCES[size]
    r = run_cli_fast(capsys, "validate", "--emulate", PROFILE, "--gpu-memory-utilization", str(UTILIZATION), *size,
                     "-w", _csv(tmp_path, tokens), "--policies", "fcfs", "-o", str(tmp_path / "v"))
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"error: 1 request(s) exceed the engine's max_model_len {CONTEXT} tokens (first: request 0 "
                        f"in row 1 of {tmp_path / f'w{tokens}.csv'}, {tokens} tokens), its context from {source} "
                        "(one of them vLLM's null block) x 16 tokens: "
                        f"{fix}\n")
    assert not (tmp_path / "v").exists()


def test_a_request_of_the_bounded_context_fits():
    from ltrsched.validation.engines import check_emulated_fits, engine_config
    from conftest import make_workload

    config = engine_config(emulate_profile=PROFILE, gpu_memory_utilization=UTILIZATION)
    check_emulated_fits(make_workload([300], [CONTEXT - 300]), config, PROFILE)
    with pytest.raises(UserError, match=rf"exceed the engine's max_model_len {CONTEXT} tokens"):
        check_emulated_fits(make_workload([300], [CONTEXT - 299]), config, PROFILE)


def test_a_max_model_len_beyond_it_is_refused_naming_the_profile_not_an_option_never_given():
    """It said "and --num-gpu-blocks 36 holds 36": the user gave no --num-gpu-blocks."""
    with pytest.raises(UserError) as caught:
        _planned(max_model_len=600)
    assert str(caught.value) == (
        f"--max-model-len 600 needs 39 KV blocks of 16 tokens (one of them vLLM's null block), and the KV cache of "
        f"profile '{PROFILE}' (its GPU memory at --gpu-memory-utilization {UTILIZATION}) holds {BLOCKS}, which vLLM "
        f"refuses once started: give --num-gpu-blocks 39 or more, or a larger --gpu-memory-utilization, or give "
        f"--max-model-len {CONTEXT} or less")
    assert _planned(max_model_len=CONTEXT)[0].max_model_len == CONTEXT


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_replay_serves_the_bounded_context_and_refuses_one_token_more(capsys, tmp_path):
    """The emulated engine itself (vLLM's scheduler built on the CPU) takes the bounded context."""
    common = ("replay", "--emulate", PROFILE, "--gpu-memory-utilization", str(UTILIZATION))
    served = run_cli_fast(capsys, *common, "-w", _csv(tmp_path, CONTEXT), "-o", str(tmp_path / "served"))
    assert served.returncode == 0, served.stderr
    assert (tmp_path / "served" / "summary.json").is_file()
    refused = run_cli_fast(capsys, *common, "-w", _csv(tmp_path, CONTEXT + 1), "-o", str(tmp_path / "refused"))
    source, fix = SOURCES[()]
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr == (f"error: 1 request(s) exceed the engine's max_model_len {CONTEXT} tokens (first: request "
                              f"0 in row 1 of {tmp_path / f'w{CONTEXT + 1}.csv'}, {CONTEXT + 1} tokens), its context from {source} (one of them vLLM's null block) x "
                              f"16 tokens: {fix}\n")


@pytest.mark.parametrize("profile, block_size", [("cpu-llama-tiny", 128), ("cpu-smollm2", 128), ("a100-llama3-8b", 16)])
def test_without_block_size_the_emulated_engine_takes_the_simulators(profile, block_size):
    """The block size ``simulate -p PROFILE`` takes (that of the engine the profile was measured on, else 16), and so
    the cache the simulator sizes from the profile's memory, vLLM's null block added. The emulated engine took 16
    for every profile: ``--emulate cpu-llama-tiny`` ran on 16,381 blocks of 16 tokens where ``simulate`` ran on
    2,047 (usable) of 128."""
    from ltrsched.sim.commands import build_config
    from ltrsched.sim.profiles import load_profile
    from ltrsched.validation.engines import emulated_config, engine_config

    config = emulated_config(engine_config(emulate_profile=profile), profile)[0]
    sim = build_config(load_profile(profile), 768, 256, None, 0.9, None, "vllm-v1", None, None, True)
    assert config.block_size == sim.block_size == block_size
    assert config.num_gpu_blocks == load_profile(profile).num_gpu_blocks(block_size, 0.9) + 1
    assert engine_config(emulate_profile=profile, block_size=32).block_size == 32  # (a stated one is kept)
