"""Drive the real vLLM scheduler with the adapter on a CPU, with a modelled GPU.

:func:`emulate` serves a workload through the installed vLLM's own V1 ``Scheduler`` code (0.26 or 0.32+;
request objects, KV block pool, queues, ``schedule()`` and ``update_from_output()``) with the
:class:`PolicyScheduler` plug-in, but instead of a model runner it answers each step with one sampled
token per finished prompt and advances a virtual clock by ``step_time(shape)``. Nothing runs on a GPU.

It checks the adapter where no GPU is available: with the same step-time profile, its results must equal
the simulator's under ``SimConfig(semantics="vllm-v1")`` (a test asserts this), so every difference a
real-engine validation finds is timing, not scheduling.
"""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager, nullcontext
from typing import Any, Callable

from ltrsched.arguments import check_argument, check_flag, check_workload_and_policy, shown
from ltrsched.engine.config import (MAX_EMULATED_BLOCKS, EngineConfig, default_context_bound, emulated_kv_short,
                                    model_dir, with_platform)
from ltrsched.engine.engine_log import loggers_held
from ltrsched.engine.environment import EngineEnvironment
from ltrsched.engine.live_table import RequestInfo
from ltrsched.engine.platform import CUDA
from ltrsched.engine.replay import replay
from ltrsched.engine.setup import EngineSetup, handed_to_next_scheduler
from ltrsched.engine.vllm_compat import model_runner_output, require_vllm
from ltrsched.engine.start_checks import kv_sizes_reason
from ltrsched.errors import ArgumentTypeError, ArgumentValueError
from ltrsched.policies import kv_bound, limit_rules
from ltrsched.policies.base import Policy
from ltrsched.policies.step_shape import MIN_STEP_S, StepShape
from ltrsched.results import RunResult
from ltrsched.workloads.schema import Workload


def checked_step_time(step_time: Callable[[StepShape], float], shape: StepShape) -> float:
    """``step_time(shape)`` [s]; a one-line :class:`~ltrsched.errors.ArgumentTypeError` (a TypeError) where it is not a
    number, an :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) where it is not a finite time of at least
    :data:`MIN_STEP_S` (NaN stopped the virtual clock, and the replay waited for the next arrival for good): the
    ``step_time`` argument of :func:`emulate` is what is wrong (both are a :class:`~ltrsched.errors.UserError` to
    the CLI)."""
    dt = step_time(shape)
    number = not isinstance(dt, bool) and isinstance(dt, numbers.Real)
    if not number or not (math.isfinite(dt) and dt >= MIN_STEP_S):
        owner = getattr(step_time, "__self__", None)  # (a profile's method: the profile is named)
        who = "step_time" if owner is None else f"profile {getattr(owner, 'name', type(owner).__name__)!r}"
        error = ArgumentValueError if number else ArgumentTypeError
        raise error(f"{who}: a step of {shape.num_prefill_tokens} prefill tokens and "
                    f"{shape.num_decode_seqs} decodes takes {dt!r} s; a step must take a finite time of at least "
                    f"{MIN_STEP_S:g} s")
    return dt


class VirtualClock:
    """A clock the caller moves [s]."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class EmulatedDriver:
    """vLLM's scheduler + the adapter on the CPU; a step takes ``step_time(shape)`` seconds of virtual time."""

    #: What to do about a request longer than the context (its profile's, or ``--max-model-len``), as ``simulate``
    #: says it; from Python (:func:`emulated_driver`) in Python's names, and naming the KV cache where it bounds the
    #: context (:func:`python_context_fix`).
    context_fix = ": " + kv_bound.longer_context_fix()

    def __init__(self, scheduler: Any, clock: Any, step_time: Callable[[StepShape], float]):
        self.scheduler = scheduler
        self.clock = clock
        self.step_time = step_time

    def begin(self, policy: Policy) -> None:
        from ltrsched.engine.setup import EngineSetup

        self.clock.now = 0.0
        self.scheduler.begin_run(EngineSetup(policy=policy, clock=self.clock, strict=True,
                                             max_batch_seqs=self.scheduler.limits.max_num_seqs))

    def now(self) -> float:
        return self.clock.now

    def start(self) -> None:
        self.clock.now = 0.0

    def add(self, info: RequestInfo) -> None:
        from vllm.sampling_params import SamplingParams
        from vllm.v1.request import Request

        from ltrsched.engine.setup import request_extra

        params = SamplingParams(max_tokens=info.output_tokens, ignore_eos=True, extra_args=request_extra(info))
        self.scheduler.add_request(Request(request_id=str(info.request_id), prompt_token_ids=[0] * info.prompt_tokens,
                                           sampling_params=params, pooling_params=None, arrival_time=info.arrival_time))

    def has_unfinished(self) -> bool:
        return self.scheduler.get_num_unfinished_requests() > 0

    def abort(self, request_ids: list[int]) -> None:
        """Abort those of ``request_ids`` still in the engine, as vLLM's engine aborts them (their KV freed)."""
        from vllm.v1.request import RequestStatus

        self.scheduler.finish_requests([str(r) for r in request_ids], RequestStatus.FINISHED_ABORTED)

    def wait_until(self, t: float) -> None:
        self.clock.now = max(self.clock.now, t)

    def step(self) -> None:
        """One engine step: schedule, 'run' it for its modelled time, report a token per finished prompt."""
        out = self.scheduler.schedule()
        self.clock.now += checked_step_time(self.step_time, self.scheduler.planned_shape)
        ids = list(out.num_scheduled_tokens)
        requests = self.scheduler.requests
        sampled = [[] if requests[r].is_prefill_chunk else [0] for r in ids]
        self.scheduler.update_from_output(out, model_runner_output(ids, sampled))


def emulated_settings_reason(config: EngineConfig, stated: bool = True) -> str | None:
    """The one-line reason the emulated engine refuses ``config`` (the settings in Python's names), or None: what
    ``ltrsched replay --emulate`` refuses in its options' names (``ltrsched.validation.engines.engine_config``), which
    the emulated engine ignored from Python. It runs no model, so a setting that needs its tokens (``prompts="text"``,
    ``eos="model"``, ``max_tokens``, which caps only ``eos="model"``'s outputs) served every request its workload
    lengths as if it were not given, and so did a setting of how one runs (:data:`MODEL_RUN_SETTINGS`) other than what
    the engine takes where it is not given (:func:`unstated_settings`: a default its platform filled in is not the
    caller's). ``stated``: ``config`` is the caller's, so both KV sizes given (``num_gpu_blocks`` and
    ``kv_cache_gib``, :func:`~ltrsched.engine.start_checks.kv_sizes_reason`) are refused too (the blocks were taken,
    the GiB silently dropped); False for the command line's planned configuration
    (``ltrsched.validation.engines.emulated_plan``), which keeps the GiB stated beside the blocks they hold."""
    needs = [f"{name}={value!r}" for name, value, default in (("prompts", config.prompts, "random"),
                                                              ("eos", config.eos, "ignore")) if value != default]
    if needs:  # (prompt text is tokenised by the model's tokenizer; its EOS ends a request)
        return (f"{' and '.join(needs)} need{'s' if len(needs) == 1 else ''} a real model, and the emulated engine "
                "runs none: leave prompts='random' and eos='ignore', or serve the model on the real engine")
    if config.max_tokens is not None:
        return (f"max_tokens {config.max_tokens} caps requests that stop at the model's EOS (eos='model'), which the "
                "emulated engine does not serve: leave it out (with eos='ignore' each request serves exactly its "
                "workload length)")
    unstated = unstated_settings(config)
    runs = [name for name in MODEL_RUN_SETTINGS if getattr(config, name) not in (None, unstated[name])]
    if runs:
        return (f"{', '.join(runs)} set{'s' if len(runs) == 1 else ''} how a model runs, and the emulated engine "
                "runs none (its step times are step_time's): leave "
                f"{'it' if len(runs) == 1 else 'them'} out, or serve the model on the real engine")
    return kv_sizes_reason(config.num_gpu_blocks, config.kv_cache_gib) if stated else None


#: :class:`EngineConfig`'s settings of how the model runs, which the emulated engine (no model: the step times are
#: ``step_time``'s) cannot honour; ``replay --emulate`` refuses their options (``--dtype``, ``--enforce-eager``,
#: ``--tensor-parallel-size``, ``--threads``, ``--sampling``).
MODEL_RUN_SETTINGS = ("dtype", "enforce_eager", "tensor_parallel_size", "threads", "sampling")


def unstated_settings(config: EngineConfig) -> dict:
    """What each of :data:`MODEL_RUN_SETTINGS` is in ``config`` where the caller did not give it: its platform's
    default (:func:`ltrsched.engine.platform.platform_defaults`; the GPU's where no platform is given, as the emulated
    engine models one), ``tensor_parallel_size`` 1, ``sampling`` ``random`` (``eos="ignore"``'s)."""
    from ltrsched.engine.platform import platform_defaults

    defaults = platform_defaults(config.platform or CUDA)
    return {"dtype": defaults["dtype"], "enforce_eager": defaults["enforce_eager"], "threads": defaults["threads"],
            "tensor_parallel_size": 1, "sampling": "random"}


def check_emulated_settings(config: EngineConfig, stated: bool = True) -> None:
    """:func:`emulated_settings_reason` as a one-line :class:`~ltrsched.errors.ArgumentValueError` (a ValueError)."""
    reason = emulated_settings_reason(config, stated)
    if reason is not None:
        raise ArgumentValueError(reason)


#: The loggers :func:`vllm_warnings_held` holds at error level: vLLM's and torch's.
HELD_LOGGERS = ("vllm", "torch")


@contextmanager
def vllm_warnings_held():
    """vLLM's and torch's log records below error level dropped inside the block, their loggers' levels put back on
    leaving. Building the emulated engine's configuration, vLLM warns about the CPU it models nothing on ("Triton is
    not installed", "CPU backend prefers block_size is multiples of 32", "Model Runner V2 requires Triton"): with no
    handler of vLLM's configured they reached stderr through Python's last-resort handler, three lines ahead of every
    emulated run's output, and ahead of a one-line refusal (a request too long for the KV cache) found once the engine
    was built. Torch warns through a handler of its own: where vLLM's model-info cache (``VLLM_CACHE_ROOT``) is fresh,
    writing it imports ``vllm.kernels``, whose Triton op makes torch log ``W... Triton not available,
    find_triton_kernels = []`` (``torch._library.triton``) once per process."""
    with loggers_held(HELD_LOGGERS):
        yield


def build_scheduler(config: EngineConfig, setup: EngineSetup | None, additional_config: dict | None = None,
                    check_context: bool = True):
    """A :class:`PolicyScheduler` built the way vLLM's engine core builds one, on the CPU: with ``setup``, or
    (None) with the policy ``additional_config`` names, as under ``vllm serve --additional-config``. A one-line
    :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) for more than :data:`MAX_EMULATED_BLOCKS` blocks, and
    for a KV cache of ``num_gpu_blocks`` that holds no request of ``max_model_len`` tokens, which vLLM's engine refuses
    at its start (:func:`ltrsched.engine.config.emulated_kv_short`), unless ``check_context`` is False: the command
    line checks a ``--max-model-len`` given in its own words, and without one the context is the profile's, not the
    user's (``ltrsched.validation.engines.emulated_config``). Without ``max_model_len`` the context
    is the model's bounded by what the cache holds, as the real engine takes it
    (:func:`ltrsched.engine.config.default_context_bound`). Settings left None take the defaults of the GPU it models
    (:func:`ltrsched.engine.config.with_platform`: blocks of 16 tokens) unless ``config.platform`` is given. A
    one-line ValueError for settings the emulated engine does not serve (:func:`check_emulated_settings`; both KV
    sizes only where ``check_context``: the caller's own configuration, not the command line's planned one), and for
    a model that is neither a built-in name nor a model directory (:func:`ltrsched.engine.config.model_dir`), before
    vLLM is imported."""
    check_emulated_settings(config, stated=check_context)
    config = with_platform(config, CUDA)
    if config.num_gpu_blocks is None:  # (the command line sizes it from its profile; sim/ is not engine's to import)
        given = "" if config.kv_cache_gib is None else (
            f": kv_cache_gib {config.kv_cache_gib:g} alone does not size its KV cache from Python (a block's bytes "
            "are its profile's); give num_gpu_blocks = int(kv_cache_gib x 2**30) // (profile.kv_bytes_per_token x "
            f"block_size {config.block_size}) instead")
        raise ArgumentValueError(f"the emulated engine needs num_gpu_blocks (its KV blocks, vLLM's null block among "
                                 f"them){given}")
    if config.num_gpu_blocks > MAX_EMULATED_BLOCKS:  # (10**12 from Python: building the pool never ended)
        raise ArgumentValueError(f"num_gpu_blocks {config.num_gpu_blocks:,} is more than the emulated engine holds: "
                                 f"vLLM's block pool makes an object per block (about 3 us and 130 bytes each), so at "
                                 f"most {MAX_EMULATED_BLOCKS:,}; give fewer, or a larger block_size")
    # (vLLM's engine refuses to start on a KV cache that holds no request of max_model_len tokens: so does this one,
    # from Python too, in the words the command line's refusal has, the fields named as Python names them)
    short = emulated_kv_short(config, name=limit_rules.field_name) if check_context else None
    if short is not None:
        raise ArgumentValueError(short)
    path = model_dir(config.model)  # (an unknown model: its one line, an ArgumentValueError, before vLLM's import)
    require_vllm(cpu_only=True)
    # vLLM's CPU platform writes the variables of the CPU worker it plans while it checks a configuration
    # (LD_PRELOAD of torch's libgomp, VLLM_WORKER_MULTIPROC_METHOD=spawn, NUMEXPR_MAX_THREADS=1, ...): the emulated
    # engine runs no worker, and every command the process started later inherited them: every variable is put back
    with vllm_warnings_held(), EngineEnvironment(names=None):
        return _build_scheduler(config, path, setup, additional_config or {})


def _build_scheduler(config: EngineConfig, path: str, setup: EngineSetup | None, additional_config: dict):
    """:func:`build_scheduler`'s work; ``path``: the model's directory (:func:`ltrsched.engine.config.model_dir`)."""
    import torch
    from vllm.config import CacheConfig, DeviceConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    from ltrsched.engine.scheduler import PolicyScheduler

    model = ModelConfig(model=path, dtype="bfloat16", seed=0, skip_tokenizer_init=True)
    bound = None
    if config.max_model_len is not None:
        # the context is the profile's or --max-model-len, as the simulator takes it: the config.json vLLM's config
        # objects are built from does not bound it (no model runs here); given to ModelConfig, one beyond the model's
        # was refused unless VLLM_ALLOW_LONG_MAX_MODEL_LEN was set before vLLM's first engine in the process
        model.max_model_len = config.max_model_len
    else:
        # the model's, bounded by the cache as the real engine bounds it (vLLM starts on no cache that holds no
        # request of its context): it served a request of (blocks - 1) x block_size + 1 tokens that vLLM refuses
        bound = default_context_bound(config, int(model.max_model_len))
        if bound is not None:
            model.max_model_len = bound.context
    sched = SchedulerConfig(max_num_seqs=config.vllm_max_num_seqs, max_num_batched_tokens=config.max_num_batched_tokens,
                            max_model_len=model.max_model_len, enable_chunked_prefill=True, async_scheduling=False,
                            is_encoder_decoder=False, watermark=config.watermark)
    cache = CacheConfig(block_size=config.block_size, enable_prefix_caching=False)
    cache.num_gpu_blocks = config.num_gpu_blocks
    vllm_config = VllmConfig(scheduler_config=sched, model_config=model, cache_config=cache,
                             device_config=DeviceConfig(device="cpu"), additional_config=additional_config)
    kv = KVCacheConfig(num_blocks=config.num_gpu_blocks, kv_cache_tensors=[], kv_cache_groups=[
        KVCacheGroupSpec(["layer"], FullAttentionSpec(block_size=config.block_size, num_kv_heads=1, head_size=1,
                                                      dtype=torch.float32))])
    with handed_to_next_scheduler(setup) if setup is not None else nullcontext():
        scheduler = PolicyScheduler(vllm_config=vllm_config, kv_cache_config=kv, block_size=config.block_size,
                                    structured_output_manager=StructuredOutputManager(vllm_config), log_stats=False)
    # (the bound its KV cache put on the model's context, None where there is none: named by python_context_fix)
    scheduler.kv_context_bound = bound
    return scheduler


def python_context_fix(config: EngineConfig, scheduler) -> str:
    """What the emulated engine's line about a request beyond its context says to do from Python (:func:`emulate`), as
    the command line's says it (``ltrsched.validation.engines``), the settings in Python's names
    (``limit_rules.field_name``): where its KV cache bounds the model's context (``scheduler.kv_context_bound``), that
    cache and more ``num_gpu_blocks``; else raise ``max_model_len``. It said "raise --max-model-len" of a context its
    ``num_gpu_blocks`` bounded, an option a Python caller has not, and which does not raise that bound."""
    bound = getattr(scheduler, "kv_context_bound", None)
    if bound is None:
        return ": " + kv_bound.longer_context_fix(limit_rules.field_name)
    return (f", its context from {kv_bound.bounded_source(bound, config.block_size, limit_rules.field_name)}: "
            + kv_bound.bounded_fix(limit_rules.field_name))


def emulated_driver(config: EngineConfig, step_time: Callable[[StepShape], float],
                    check_context: bool = True) -> EmulatedDriver:
    """An :class:`EmulatedDriver` over a fresh CPU scheduler built from ``config``; ``check_context``: as
    :func:`build_scheduler`'s."""
    from ltrsched.policies import make_policy

    clock = VirtualClock()
    setup = EngineSetup(policy=make_policy("fcfs"), clock=clock, max_batch_seqs=config.max_num_seqs)
    driver = EmulatedDriver(build_scheduler(config, setup, check_context=check_context), clock, step_time)
    driver.context_fix = python_context_fix(config, driver.scheduler)  # (a command line sets its own words)
    return driver


def emulate(workload: Workload, policy: Policy, step_time: Callable[[StepShape], float],
            config: EngineConfig, driver: EmulatedDriver | None = None, progress: bool = False,
            progress_label: str | None = None) -> RunResult:
    """Serve ``workload`` through vLLM's scheduler + the adapter, timing steps with ``step_time`` [s]
    (on ``driver`` if given, e.g. to serve several runs with one scheduler); ``progress``, ``progress_label``: as
    :func:`~ltrsched.engine.replay.replay`'s. ``config`` states the KV cache in ``num_gpu_blocks`` and leaves the
    settings of how a model runs unstated (:func:`check_emulated_settings`: a one-line ValueError otherwise). Its
    ``block_size`` left None is the GPU's 16 tokens whatever profile ``step_time`` belongs to, where ``replay
    --emulate PROFILE`` takes the block size of the engine the profile was measured on (128 for the ``cpu-*``
    profiles): give ``block_size=ltrsched.sim.profiles.engine_block_size(profile)`` for the command line's run."""
    check_workload_and_policy(workload, policy)  # (before the scheduler is built: seconds)
    check_argument(config, EngineConfig, "config", "an EngineConfig")
    check_flag(progress, "progress")
    # (before the scheduler is built; both KV sizes where ``driver`` is not given: a driver's builder checked its own
    # configuration, and the command line's runs pass its planned one, the GiB beside the blocks they hold)
    check_emulated_settings(config, stated=driver is None)
    if not callable(step_time):  # (a profile object: its step_time method is what is wanted; a UserError too)
        raise ArgumentTypeError(f"step_time must be a function of a StepShape giving seconds (a profile's "
                                f".step_time), got {shown(step_time)}")
    config = with_platform(config, CUDA)  # (the GPU it models; the result records the settings it ran with)
    driver = driver or emulated_driver(config, step_time)
    return replay(workload, policy, driver, config, host="emulated vLLM scheduler (CPU, modelled step times)",
                  progress=progress, progress_label=progress_label)
