"""The engine's platform-dependent defaults are one rule from Python and from the command line
(:func:`ltrsched.engine.platform.platform_defaults`, filled in by :class:`~ltrsched.engine.config.EngineConfig`).

From Python, ``EngineConfig(...)`` on the CPU build served blocks of 16 tokens (vLLM 0.32's CPU attention refuses them:
"No common block size for 16"), in bf16 (``dtype="auto"``: about 2x slower than float32 on CPUs without AVX512-BF16),
on a KV cache of a fraction of RAM (no size stated: vLLM's profiling, the context not bounded by it), compiled
(minutes at every start), on the GPU platform; ``eos="model"`` without ``max_tokens`` was uncapped. The command line
took blocks of 128 tokens, float32, 1 GiB, eager, one thread, and 512 tokens.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from engine_stubs import stub_vllm_start
from ltrsched.engine.config import EngineConfig
from ltrsched.validation.engines import CPU_KV_CACHE_GIB, DEFAULT_MAX_TOKENS  # (the command line's, named for --help)

#: What the command line (``ltrsched replay``) serves on a CPU where no option is given.
CPU_SETTINGS = dict(platform="cpu", model="llama-tiny", block_size=128, dtype="float32", kv_cache_gib=CPU_KV_CACHE_GIB,
                    threads=1, enforce_eager=True)
#: vLLM's own GPU defaults (Python's before, kept).
GPU_SETTINGS = dict(platform="cuda", model="llama-3-8b", block_size=16, dtype="auto", kv_cache_gib=None, threads=None,
                    enforce_eager=False)


def _settings(config: EngineConfig, names=CPU_SETTINGS) -> dict:
    return {name: getattr(config, name) for name in names}


@pytest.fixture
def on_platform(monkeypatch):
    """Make the installed vLLM serve on the platform given (where the engine's start detects it)."""
    from ltrsched.engine import platform

    def serve_on(name: str) -> None:
        monkeypatch.setattr(platform, "engine_platform", lambda: name)

    return serve_on


def test_a_config_on_a_cpu_takes_the_command_lines_defaults():
    assert _settings(EngineConfig(platform="cpu")) == CPU_SETTINGS
    assert _settings(EngineConfig(platform="cuda"), GPU_SETTINGS) == GPU_SETTINGS  # (vLLM's, unchanged)


@pytest.mark.parametrize("options", [
    {}, dict(model="llama-100m"), dict(num_gpu_blocks=40), dict(kv_cache_gib=0.25), dict(block_size=256),
    dict(dtype="bfloat16"), dict(enforce_eager=False), dict(sampling="greedy"), dict(max_model_len=1024),
])
@pytest.mark.parametrize("platform", ["cpu", "cuda"])
def test_python_and_the_command_line_build_the_same_config(options, platform):
    """The config ``replay``'s options build (the platform given, as the engine's start detects it) is the one
    Python's ``EngineConfig`` of the same settings resolves to."""
    from ltrsched.engine.config import with_platform
    from ltrsched.validation.engines import engine_config

    cli = engine_config(platform=platform, **options)
    assert with_platform(EngineConfig(**options), platform) == cli
    assert EngineConfig(platform=platform, **options) == cli


def test_explicit_values_are_kept():
    given = dict(model="llama-100m", block_size=256, dtype="bfloat16", kv_cache_gib=0.25, threads=2,
                 enforce_eager=False)
    assert _settings(EngineConfig(platform="cpu", **given), given) == given
    config = EngineConfig(platform="cpu", num_gpu_blocks=40)  # the blocks size the cache: no GiB beside them
    assert config.kv_cache_gib is None and config.num_gpu_blocks == 40
    config = EngineConfig(platform="cuda", block_size=32, dtype="float32", enforce_eager=True)
    assert (config.block_size, config.dtype, config.enforce_eager) == (32, "float32", True)


def test_the_platform_is_resolved_once_at_the_start(on_platform):
    """Without a platform the settings stay unset (so that one config serves either build) until the engine's start
    detects it; then they are written once, and a config whose platform is known is returned as it is."""
    from ltrsched.engine.config import with_platform

    config = EngineConfig(model="llama-tiny")
    assert (config.platform, config.block_size, config.dtype, config.kv_cache_gib) == (None, None, None, None)
    on_platform("cpu")
    resolved = with_platform(config)
    assert _settings(resolved) == CPU_SETTINGS
    assert with_platform(resolved) is resolved and with_platform(resolved, "cuda") is resolved
    on_platform("cuda")
    assert _settings(with_platform(config), GPU_SETTINGS) == {**GPU_SETTINGS, "model": "llama-tiny"}


def test_a_model_that_stops_at_its_eos_is_capped_as_on_the_command_line():
    config = EngineConfig(eos="model")
    assert (config.max_tokens, config.sampling) == (DEFAULT_MAX_TOKENS, "greedy")
    assert EngineConfig(eos="model", max_tokens=9).max_tokens == 9
    assert (EngineConfig().max_tokens, EngineConfig().sampling) == (None, "random")  # (forced lengths: no cap)


def test_the_eos_cap_reaches_vllm():
    pytest.importorskip("vllm")
    from ltrsched.engine.live_table import RequestInfo
    from ltrsched.engine.runner import sampling_params

    info = RequestInfo(request_id=3, arrival_time=0.0, prompt_tokens=5, output_tokens=7, requested_output_tokens=7)
    params = sampling_params(EngineConfig(eos="model"), info)
    assert params.max_tokens == DEFAULT_MAX_TOKENS and params.temperature == 0.0


def test_the_kwargs_python_passes_to_vllm_on_a_cpu_are_the_command_lines(on_platform):
    """``engine_kwargs(EngineConfig(...))`` on the CPU build: blocks of 128 tokens (16 were refused by vLLM's CPU
    attention), float32, a stated 1 GiB KV cache (vLLM's profiling took a share of RAM), eager."""
    pytest.importorskip("vllm")
    from ltrsched.engine.runner import engine_kwargs
    from ltrsched.validation.engines import engine_config

    on_platform("cpu")
    python = engine_kwargs(EngineConfig(model="llama-tiny"), "dummy")
    cli = engine_kwargs(engine_config(model="llama-tiny", platform="cpu"), "dummy")
    assert python == cli
    assert (python["block_size"], python["dtype"], python["kv_cache_memory_bytes"], python["enforce_eager"]) == (
        128, "float32", 2**30, True)
    on_platform("cuda")  # vLLM's GPU defaults, as before: no KV size (its memory profiling), blocks of 16
    gpu = engine_kwargs(EngineConfig(model="llama-tiny"), "dummy")
    assert "kv_cache_memory_bytes" not in gpu and (gpu["block_size"], gpu["dtype"], gpu["enforce_eager"]) == (
        16, "auto", False)


def test_the_python_driver_starts_the_engine_with_the_resolved_config(on_platform, monkeypatch):
    """``VllmDriver(EngineConfig(...))`` starts vLLM (replaced here) with the platform's defaults, pins the CPU
    engine's one thread, and keeps the resolved config (what a run's result records)."""
    from ltrsched.engine import runner

    started = stub_vllm_start(monkeypatch)
    on_platform("cpu")
    with runner.VllmDriver(EngineConfig(model="llama-tiny")) as driver:
        assert _settings(started[0]) == CPU_SETTINGS and driver.config == started[0]
        assert driver.host.platform == "cpu" and driver.host.threads == 1
        assert driver.output_cap is None


def test_the_emulated_engine_from_python_keeps_the_gpu_defaults():
    """The emulated engine models a GPU: a config without a platform takes the GPU's defaults (blocks of 16 tokens),
    and its result records the settings it ran with."""
    pytest.importorskip("vllm")
    from ltrsched.engine.emulate import emulate
    from conftest import LinearProfile, make_workload

    from ltrsched.policies import make_policy

    result = emulate(make_workload([10, 20], [3, 4]), make_policy("fcfs"), LinearProfile().step_time,
                     EngineConfig(num_gpu_blocks=200))
    assert {k: result.meta["config"][k] for k in GPU_SETTINGS} == {**GPU_SETTINGS, "kv_cache_gib": None}
    assert result.meta["config"] == asdict(EngineConfig(platform="cuda", num_gpu_blocks=200))
