"""``emulate()`` and ``build_scheduler`` from Python refuse what ``ltrsched replay --emulate`` refuses, in one line
with Python's names (a ValueError): both KV sizes stated (the blocks were taken, ``kv_cache_gib`` silently dropped),
a setting of how a model runs (``dtype``, ``enforce_eager``, ``tensor_parallel_size``, ``threads``, ``sampling``,
other than the engine's default), or one that needs a real model (``prompts``, ``eos``, ``max_tokens``): each was
ignored and the run served the workload's lengths. The command line's planned configuration, which keeps the GiB
beside the blocks they hold, still runs (``test_the_planned_configuration_keeps_both_sizes``;
``replay --emulate --kv-cache-gib``: tests/test_engine_hostile.py). The refusals come before vLLM is imported: each
case here takes milliseconds."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.engine.config import EngineConfig
from ltrsched.errors import UserError
from ltrsched.policies import make_policy

#: (the Python setting, the command line's options for it, the Python line, a word of the command line's line)
CASES = [
    (dict(num_gpu_blocks=100, kv_cache_gib=1.0), ["--num-gpu-blocks", "100", "--kv-cache-gib", "1"],
     "give kv_cache_gib or num_gpu_blocks, not both", "not both"),
    (dict(num_gpu_blocks=100, tensor_parallel_size=2), ["--tensor-parallel-size", "2"],
     "tensor_parallel_size sets how a model runs, and the emulated engine runs none (its step times are step_time's): "
     "leave it out, or serve the model on the real engine", "runs none"),
    (dict(num_gpu_blocks=100, threads=2), ["--threads", "2"],
     "threads sets how a model runs, and the emulated engine runs none (its step times are step_time's): leave it out, "
     "or serve the model on the real engine", "runs none"),
    (dict(num_gpu_blocks=100, eos="model"), ["--eos", "model"],
     "eos='model' needs a real model, and the emulated engine runs none: leave prompts='random' and eos='ignore', or "
     "serve the model on the real engine", "real model"),
    (dict(num_gpu_blocks=100, prompts="text"), ["--prompts", "text"],
     "prompts='text' needs a real model, and the emulated engine runs none: leave prompts='random' and eos='ignore', "
     "or serve the model on the real engine", "real model"),
    (dict(num_gpu_blocks=100, max_tokens=2), ["--max-tokens", "2"],
     "max_tokens 2 caps requests that stop at the model's EOS (eos='model'), which the emulated engine does not serve: "
     "leave it out (with eos='ignore' each request serves exactly its workload length)", "--max-tokens"),
]
RUN_LINE = ("{} sets how a model runs, and the emulated engine runs none (its step times are step_time's): leave it "
            "out, or serve the model on the real engine")
CASES += [(dict(num_gpu_blocks=100, **{name: value}), options, RUN_LINE.format(name), "runs none")
          for name, value, options in (("dtype", "float32", ["--dtype", "float32"]),
                                       ("enforce_eager", True, ["--enforce-eager"]),
                                       ("sampling", "greedy", ["--sampling", "greedy"]))]
IDS = ["both-kv-sizes", "tensor-parallel", "threads", "eos-model", "prompts-text", "max-tokens", "dtype",
       "enforce-eager", "sampling"]


@pytest.mark.parametrize("settings, options, line, word", CASES, ids=IDS)
def test_emulate_refuses_what_the_command_line_refuses(capsys, tmp_path, settings, options, line, word):
    from ltrsched.engine.emulate import emulate

    with pytest.raises(ValueError) as caught:  # (it ran, serving the workload's lengths)
        emulate(make_workload([10, 20], [3, 4]), make_policy("fcfs"), LinearProfile().step_time,
                EngineConfig(**settings))
    assert str(caught.value) == line and isinstance(caught.value, UserError)  # (one line, as the CLI prints it)
    r = run_cli_fast(capsys, "replay", "--emulate", "a100-llama3-8b", "-n", "2", *options, "-o", "run", cwd=tmp_path)
    assert r.returncode == 2 and word in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("settings, line", [(c[0], c[2]) for c in CASES], ids=IDS)
def test_build_scheduler_refuses_the_callers_settings(settings, line):
    from ltrsched.engine.emulate import build_scheduler, emulated_driver

    with pytest.raises(ValueError, match="^" + line.replace("(", r"\(").replace(")", r"\)") + "$"):
        build_scheduler(EngineConfig(**settings), None)
    with pytest.raises(ValueError, match="runs none|not both|does not serve"):  # (its scheduler: the same rule)
        emulated_driver(EngineConfig(**settings), LinearProfile().step_time)


def test_the_planned_configuration_keeps_both_sizes():
    """The command line's planned configuration (blocks beside the GiB they came from) is not the caller's: the
    check that refuses both is skipped for it (``check_context=False``; ``emulate`` with the driver built from it),
    while the other settings are still checked."""
    from ltrsched.engine.emulate import emulated_settings_reason

    planned = EngineConfig(num_gpu_blocks=100, kv_cache_gib=1.0)
    assert emulated_settings_reason(planned, stated=False) is None
    assert emulated_settings_reason(planned) == "give kv_cache_gib or num_gpu_blocks, not both"
    assert emulated_settings_reason(EngineConfig(num_gpu_blocks=100, tensor_parallel_size=2), stated=False) is not None

@pytest.mark.parametrize("settings", [
    dict(platform="cpu"), dict(platform="cuda"), dict(platform="cpu", threads=1, dtype="float32", enforce_eager=True),
    dict(dtype="auto", enforce_eager=False, sampling="random", tensor_parallel_size=1),
], ids=["cpu-defaults", "cuda-defaults", "cpu-defaults-given", "gpu-defaults-given"])
def test_a_platforms_defaults_are_no_setting_the_caller_stated(settings):
    """The settings a platform fills in (``EngineConfig(platform="cpu")``: 1 thread, float32, eager), or given as
    the engine would take them unstated, change nothing in the emulated engine: not refused."""
    from ltrsched.engine.emulate import emulated_settings_reason

    assert emulated_settings_reason(EngineConfig(num_gpu_blocks=100, **settings)) is None



def test_kv_cache_gib_alone_says_to_give_the_blocks():
    """``replay --emulate`` sizes ``--kv-cache-gib`` by its profile's bytes per token; from Python the engine has no
    profile (only ``step_time``): it said "needs num_gpu_blocks" of a configuration that gave a size, without why."""
    from ltrsched.engine.emulate import emulate

    with pytest.raises(ValueError) as caught:
        emulate(make_workload([10], [3]), make_policy("fcfs"), LinearProfile().step_time, EngineConfig(kv_cache_gib=1))
    assert str(caught.value) == (
        "the emulated engine needs num_gpu_blocks (its KV blocks, vLLM's null block among them): kv_cache_gib 1 alone "
        "does not size its KV cache from Python (a block's bytes are its profile's); give num_gpu_blocks = "
        "int(kv_cache_gib x 2**30) // (profile.kv_bytes_per_token x block_size 16) instead")
    with pytest.raises(ValueError, match=r"^the emulated engine needs num_gpu_blocks \(its KV blocks, vLLM's null "
                                         r"block among them\)$"):
        emulate(make_workload([10], [3]), make_policy("fcfs"), LinearProfile().step_time, EngineConfig())
