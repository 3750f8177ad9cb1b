"""Checks that vLLM is importable at the version the adapter is written against (0.26.0)."""

from __future__ import annotations

import importlib.metadata
import os

from ltrsched.errors import MissingDependencyError, UserError

VLLM_VERSION = "0.26.0"


def vllm_version() -> str | None:
    """The installed vLLM version, or None."""
    try:
        return importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return None


def require_vllm_installed() -> str:
    """Raise a one-line :class:`UserError` unless vLLM 0.26.0 is installed (metadata only: no import, fast);
    return its version."""
    found = vllm_version()
    if found is None:
        raise MissingDependencyError("vLLM", "engine")
    if found != VLLM_VERSION:
        raise UserError(f"the engine adapter needs vLLM {VLLM_VERSION}, found {found}: pip install 'ltrsched[engine]'")
    return found


def require_vllm(cpu_only: bool = False) -> None:
    """Raise a one-line :class:`UserError` unless vLLM 0.26.0 can be imported.

    ``cpu_only``: only vLLM's scheduler will run (the emulated engine), so its import-time complaints
    about missing GPU kernels (Triton, ``vllm._C``) are noise and are silenced. The warning ``requests``
    gives on import without a character-detection package is always noise (an error stays one line)."""
    import warnings

    found = require_vllm_installed()
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
    warnings.filterwarnings("ignore", module="requests")
    if cpu_only:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "CRITICAL")
    try:
        import vllm.v1.core.sched.scheduler  # noqa: F401
    except Exception as exc:  # a broken install: name it in one line
        raise UserError(f"vLLM {found} is installed but does not import: {type(exc).__name__}: {exc}") from None


def require_gpu() -> None:
    """Raise a one-line :class:`UserError` unless a CUDA GPU is visible."""
    import torch

    if not torch.cuda.is_available():
        raise UserError("no CUDA GPU is visible: the real engine needs one; without a GPU add --emulate PROFILE "
                        "(vLLM's scheduler on the CPU) or use `ltrsched simulate`")
