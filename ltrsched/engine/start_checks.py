"""Checks of the real engine's settings before vLLM starts, one rule for Python and the command line.

Each ``*_reason`` function returns the one-line reason the settings are refused, or None; ``name`` says what the user
calls a setting (:mod:`ltrsched.policies.limit_rules`: Python's field name by default, ``limit_rules.option_name``'s
``--kv-cache-gib`` on a command line). :func:`check_start` raises them as the driver starts
(:class:`~ltrsched.engine.runner.VllmDriver`), an :class:`~ltrsched.errors.ArgumentValueError`: a ValueError to a
Python caller, one line with exit code 2 on the command line (whose own checks,
``ltrsched.validation.engines.engine_config``, call the same functions earlier, in the options' names).
"""

from __future__ import annotations

from ltrsched.engine.config import EngineConfig
from ltrsched.errors import ArgumentValueError
from ltrsched.policies.limit_rules import Name, field_name


def kv_sizes_reason(num_gpu_blocks: int | None, kv_cache_gib: float | None, name: Name = field_name) -> str | None:
    """Both KV-cache sizes stated (``num_gpu_blocks`` [blocks] and ``kv_cache_gib`` [GiB]): vLLM was given both
    (``num_gpu_blocks_override`` and ``kv_cache_memory_bytes``) from Python, the emulated engine took the blocks and
    dropped the GiB, and the command line refuses them. Only for a configuration a caller states (the real engine's,
    the emulated engine's from Python: :func:`ltrsched.engine.emulate.emulated_settings_reason`): the emulated
    engine's planned one keeps the GiB stated beside the blocks they hold
    (``ltrsched.validation.engines.emulated_plan``), to name them in the user's unit."""
    if num_gpu_blocks is not None and kv_cache_gib is not None:
        return f"give {name('kv_cache_gib')} or {name('num_gpu_blocks')}, not both"
    return None


def cpu_kv_fits_reason(kv_cache_gib: float | None, num_gpu_blocks: int | None, block_size: int, model: str,
                       path: str, dtype: str, name: Name = field_name) -> str | None:
    """The CPU engine's KV cache (``kv_cache_gib`` [GiB], or ``num_gpu_blocks`` x the bytes of a block of vLLM's pool,
    :func:`ltrsched.engine.config.pool_block_bytes`; ``block_size`` [tokens], ``dtype`` as resolved) more than the RAM
    available now (:func:`ltrsched.engine.platform.available_memory_bytes`): vLLM's CPU worker refused it only after
    loading the model (about 40 s), with a message naming its own option, or the host swapped. ``model``: its name in
    the line; ``path``: its directory. None where the available RAM cannot be read (vLLM's check remains)."""
    from ltrsched.engine import platform

    available = platform.available_memory_bytes()
    if available is None:
        return None
    if num_gpu_blocks is not None:
        from ltrsched.engine.config import model_kv_bytes_per_token, pool_block_bytes

        # (a block holds one of vLLM's KV groups: part of the layers of a model mixing sliding-window layers)
        per_token = pool_block_bytes(path, dtype, block_size) // block_size
        wanted = num_gpu_blocks * block_size * per_token
        option = f"{name('num_gpu_blocks')} {num_gpu_blocks}"
        group = "" if per_token == model_kv_bytes_per_token(path, dtype) else " in one of vLLM's KV groups"
        how = f" ({num_gpu_blocks:,} blocks x {block_size} tokens x {per_token:,} bytes per token of {model}{group})"
        fix = f"give fewer {name('num_gpu_blocks')}"
    elif kv_cache_gib is not None:
        wanted = kv_cache_gib * 2**30
        option, how, fix = f"{name('kv_cache_gib')} {kv_cache_gib:g}", "", f"give a smaller {name('kv_cache_gib')}"
    else:
        return None
    if wanted <= available:
        return None
    gib = wanted // 2**30  # (an integer: num_gpu_blocks 10**400 is beyond a float)
    size = f"{wanted / 2**30:,.1f}" if gib < 10**15 else f"about 10^{len(str(gib)) - 1}"
    return (f"{option} asks for a KV cache of {size} GiB{how}, more than the {available / 2**30:.1f} GiB of RAM "
            f"available on this machine (of {platform.memory_gib():.1f} GiB): {fix}")


def check_start(config: EngineConfig) -> None:
    """One-line :class:`~ltrsched.errors.ArgumentValueError` (a ValueError), before the real engine starts on
    ``config`` (its platform known: :func:`ltrsched.engine.config.with_platform`), for both KV sizes stated
    (:func:`kv_sizes_reason`) or, on a CPU, a KV cache larger than the RAM available (:func:`cpu_kv_fits_reason`).
    Reads the model's config.json (a built-in name writes it) where the CPU's cache is sized in blocks."""
    from ltrsched.engine.config import model_dir
    from ltrsched.engine.platform import CPU

    reason = kv_sizes_reason(config.num_gpu_blocks, config.kv_cache_gib)
    if reason is None and config.platform == CPU:
        # (the model's directory sizes a block: read only where blocks size the cache)
        path = model_dir(config.model) if config.num_gpu_blocks is not None else ""
        reason = cpu_kv_fits_reason(config.kv_cache_gib, config.num_gpu_blocks, config.block_size, config.model, path,
                                    config.dtype)
    if reason is not None:
        raise ArgumentValueError(reason)
