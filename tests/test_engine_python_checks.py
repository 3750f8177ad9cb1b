"""The engine's Python API refuses what the command line refuses before the engine starts, in one line, with
Python's names (:mod:`ltrsched.engine.start_checks`, ``EngineConfig``'s ``dtype``).

From Python, ``EngineConfig(num_gpu_blocks=64, kv_cache_gib=2)`` gave vLLM both sizes (``num_gpu_blocks_override``
and ``kv_cache_memory_bytes``), a CPU KV cache beyond the RAM available started vLLM (refused deep inside, or the
host swapped), and ``dtype="float64"`` was taken until vLLM's pydantic check; ``replay`` refuses all three with exit 2.
No engine starts here: vLLM's start is replaced, and the RAM available is stated.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine_stubs import stub_vllm_start
from ltrsched.engine.config import DTYPES, EngineConfig
from ltrsched.errors import UserError


@pytest.fixture
def driver_start(monkeypatch):
    """``VllmDriver``'s vLLM start replaced (the configs it was called with are listed), on the CPU build, with
    2.0 GiB of RAM available of 8.0."""
    from ltrsched.engine import platform

    started = stub_vllm_start(monkeypatch)
    monkeypatch.setattr(platform, "engine_platform", lambda: "cpu")
    monkeypatch.setattr(platform, "available_memory_bytes", lambda: 2 * 2**30)
    monkeypatch.setattr(platform, "memory_gib", lambda: 8.0)
    return started


BOTH = r"^give kv_cache_gib or num_gpu_blocks, not both$"


@pytest.mark.parametrize("platform", [None, "cpu", "cuda"])
def test_both_kv_sizes_are_refused_before_vllm_is_given_them(platform, monkeypatch):
    from ltrsched.engine import platform as platforms
    from ltrsched.engine.runner import engine_kwargs

    monkeypatch.setattr(platforms, "engine_platform", lambda: "cpu")
    with pytest.raises(ValueError, match=BOTH):
        engine_kwargs(EngineConfig(platform=platform, num_gpu_blocks=64, kv_cache_gib=2), "dummy")


def test_the_driver_refuses_both_kv_sizes_before_the_engine_starts(driver_start):
    from ltrsched.engine.runner import VllmDriver

    with pytest.raises(ValueError, match=BOTH):
        VllmDriver(EngineConfig(model="llama-tiny", num_gpu_blocks=64, kv_cache_gib=1))
    assert driver_start == []
    with VllmDriver(EngineConfig(model="llama-tiny", num_gpu_blocks=64)) as driver:  # (one size: started)
        assert (driver.config.num_gpu_blocks, driver.config.kv_cache_gib) == (64, None)


def test_the_command_lines_line_for_both_sizes_is_unchanged():
    from ltrsched.validation.engines import engine_config

    with pytest.raises(UserError, match=r"^give --kv-cache-gib or --num-gpu-blocks, not both$"):
        engine_config(platform="cpu", kv_cache_gib=1.0, num_gpu_blocks=64)


def test_a_resolved_configs_blocks_may_still_replace_its_default_size():
    """Internal code replaces a resolved config's blocks (``ltrsched.validation.commands._auto_rates``: the CPU's
    default 1 GiB beside the blocks it holds; the emulated plan: the GiB stated beside the blocks they hold, named in
    the lines in the user's unit; tests/test_engine_hostile.py): the config itself takes both; only the real
    engine's start refuses them."""
    config = replace(EngineConfig(platform="cpu"), num_gpu_blocks=2048)
    assert (config.num_gpu_blocks, config.kv_cache_gib) == (2048, 1.0)


def test_the_driver_refuses_a_cpu_kv_cache_beyond_the_ram_available(driver_start):
    """The command line's check (its line unchanged: tests/test_engine_hostile.py), from Python in Python's names."""
    from ltrsched.engine.runner import VllmDriver

    with pytest.raises(ValueError, match=r"^kv_cache_gib 2\.5 asks for a KV cache of 2\.5 GiB, more than the 2\.0 GiB "
                                         r"of RAM available on this machine \(of 8\.0 GiB\): give a smaller kv_cache_gib$"):
        VllmDriver(EngineConfig(model="llama-tiny", kv_cache_gib=2.5))
    # llama-tiny: 4,096 bytes a token in float32, blocks of 128 tokens
    with pytest.raises(ValueError, match=r"^num_gpu_blocks 4097 asks for a KV cache of 2\.0 GiB \(4,097 blocks x 128 "
                                         r"tokens x 4,096 bytes per token of llama-tiny\), more than the 2\.0 GiB of RAM "
                                         r"available on this machine \(of 8\.0 GiB\): give fewer num_gpu_blocks$"):
        VllmDriver(EngineConfig(model="llama-tiny", num_gpu_blocks=4097))
    assert driver_start == []
    with VllmDriver(EngineConfig(model="llama-tiny", num_gpu_blocks=4096)):
        pass
    with VllmDriver(EngineConfig(model="llama-tiny", kv_cache_gib=2.0)):
        pass
    assert len(driver_start) == 2


def test_the_ram_check_is_the_command_lines_rule(monkeypatch):
    """One function, two namings; unknown RAM leaves vLLM's own check; a GPU's cache is not held in RAM."""
    from ltrsched.engine import platform
    from ltrsched.engine.config import model_dir
    from ltrsched.engine.start_checks import check_start, cpu_kv_fits_reason
    from ltrsched.policies.limit_rules import option_name

    monkeypatch.setattr(platform, "available_memory_bytes", lambda: 2**30)
    path = model_dir("llama-tiny")
    python = cpu_kv_fits_reason(None, 2049, 128, "llama-tiny", path, "float32")
    cli = cpu_kv_fits_reason(None, 2049, 128, "llama-tiny", path, "float32", option_name)
    assert python.replace("num_gpu_blocks", "--num-gpu-blocks") == cli
    assert cpu_kv_fits_reason(None, 2048, 128, "llama-tiny", path, "float32") is None
    check_start(EngineConfig(platform="cuda", kv_cache_gib=100.0))  # (a GPU's memory, not the host's RAM)
    with pytest.raises(ValueError, match="^kv_cache_gib 100 asks"):
        check_start(EngineConfig(platform="cpu", kv_cache_gib=100.0))
    monkeypatch.setattr(platform, "available_memory_bytes", lambda: None)
    check_start(EngineConfig(platform="cpu", kv_cache_gib=100.0))


@pytest.mark.parametrize("dtype", ["float64", "double", "bf16", "Float32", "", "fp8"])
def test_an_unknown_dtype_is_refused_from_python_as_on_the_command_line(dtype):
    from ltrsched.validation.engines import engine_config

    with pytest.raises(ValueError, match=rf"^dtype must be one of {', '.join(DTYPES)}, got {dtype!r}$"):
        EngineConfig(dtype=dtype)
    with pytest.raises(UserError, match=rf"^--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}$"):
        engine_config(platform="cpu", dtype=dtype)


def test_every_dtype_the_command_line_takes_python_takes():
    """One list: the options' check reads EngineConfig's (a full engine_config() per dtype took 4 s under load)."""
    from ltrsched.validation import engines

    assert engines.DTYPES is DTYPES
    for dtype in DTYPES:
        assert EngineConfig(dtype=dtype).dtype == dtype == EngineConfig(platform="cpu", dtype=dtype).dtype
    assert EngineConfig().dtype is None and EngineConfig(platform="cpu").dtype == "float32"  # (None: the platform's)
