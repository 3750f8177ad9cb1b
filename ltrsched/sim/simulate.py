"""Run a workload through one simulated replica: :func:`simulate` and its :class:`SimResult`."""

from __future__ import annotations

import math
import numbers
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import simpy

from ltrsched.arguments import check_argument, check_flag, check_workload_and_policy
from ltrsched.errors import ArgumentTypeError, ArgumentValueError, UserError
from ltrsched.metrics import request_metrics, speedup_vs_real_time, summarize
from ltrsched.policies import kv_bound, limit_rules
from ltrsched.policies.base import Policy
from ltrsched.policies.batching import BatchLimits, vllm_watermark_blocks
from ltrsched.policies.kv_bound import usable_blocks_bound
from ltrsched.policies.needs import check_needs
from ltrsched.plugin_watchdog import plugin_time_limit
from ltrsched.results import RunResult
from ltrsched.sim.config import PYTHON_NAMING, ConfigArgumentError, ConfigError, Naming, SimConfig, cache_short
from ltrsched.sim.process_failure import run_to_end
from ltrsched.sim.profiles.model import MIN_STEP_S
from ltrsched.sim.replica import Replica, StepTrace
from ltrsched.sim.request_table import FINISHED, RequestTable
from ltrsched.sim.step_shape import StepShape
from ltrsched.workloads.arrivals import check_arrival_span
from ltrsched.workloads.file_rows import FileRows, file_rows, request_named
from ltrsched.workloads.schema import Workload

GIB = 1 << 30


#: Simulator results share the engine runner's result type (same files, same schema).
SimResult = RunResult


def resolve_profile(profile: Any):
    """A profile object from a name, a path, or an object with ``step_time``."""
    if not isinstance(profile, (str, os.PathLike)):
        return profile
    from ltrsched.sim.profiles import load_profile

    return load_profile(str(profile))


@dataclass(frozen=True)
class FitFixes:
    """What an error about a request that cannot run tells its user to change, in the caller's own settings (the
    Python API's by default: ``simulate`` passes its options', a sweep or capacity run its own; neither of those
    sets the KV capacity or chunking: a profile sets the one, and they always chunk)."""

    context: str = "raise max_model_len if the model takes longer contexts, or leave them out"
    kv: str = "raise num_gpu_blocks (None: the profile's), or leave such requests out"
    budget: str = "raise max_num_batched_tokens, or set chunked_prefill=True"
    where: str = ""  # what the errors start with, e.g. "workload 'w.csv': "
    #: how the caller's user names the context limit when they set it (``--max-model-len``, ``'max_model_len'``)
    naming: Naming = PYTHON_NAMING


@dataclass(frozen=True)
class CacheBound:
    """Where the KV cache bounds a run's context (the profile's, no ``max_model_len`` given), as vLLM bounds an
    engine's (:func:`ltrsched.policies.kv_bound.usable_blocks_bound`), in the words of the line refusing a longer
    request.

    Attributes:
        full: the profile's context [tokens], before the bound.
        source: the cache in words, e.g. ``"the KV cache of --num-gpu-blocks 35 (vLLM's null block not among them)
            x 16 tokens"``.
        fix: what to change, in the caller's settings.
    """

    full: int
    source: str
    fix: str


def profile_named(config: SimConfig, profile: Any) -> str:
    """``config``'s profile as its user gave it (a file's name may be another profile's), ``profile`` its object."""
    return str(config.profile) if isinstance(config.profile, (str, os.PathLike)) else getattr(profile, "name", "")


def cache_bound(config: SimConfig, profile: Any, num_blocks: int,
                fixes: FitFixes = FitFixes()) -> tuple[int, CacheBound | None]:
    """The context a run takes [tokens]: ``config.max_model_len``, else the profile's bounded by what the replica's
    ``num_blocks`` KV blocks of ``config.block_size`` tokens hold (vLLM's null block not among them: the engine
    ``validate`` pairs with it has one more), as both engines bound theirs
    (``ltrsched.engine.config.default_context_bound``); with the :class:`CacheBound` where the cache bounds it
    (named as ``fixes.naming`` names the settings), else None. The simulator took the profile's whole context on any
    cache: on 35 blocks of 16 tokens it served a request of 561 tokens that both engines refuse."""
    if config.max_model_len:
        return config.max_model_len, None
    full = int(profile.max_model_len)
    bound = usable_blocks_bound(num_blocks, config.block_size, full)
    if bound is None:
        return full, None
    naming = fixes.naming
    blocks = f"(vLLM's null block not among them) x {config.block_size} tokens"
    if config.num_gpu_blocks:
        return bound.context, CacheBound(full, f"the KV cache of {naming.setting('num_gpu_blocks', num_blocks)} "
                                               f"{blocks}", fixes.kv)
    name = profile_named(config, profile)
    util = config.gpu_memory_utilization
    if naming.has("gpu_memory_utilization") and naming.has("num_gpu_blocks"):
        at = f"at {naming.setting('gpu_memory_utilization', util)}"
        fix = (f"give {naming.name('num_gpu_blocks')} (more than {num_blocks}) or a larger "
               f"{naming.name('gpu_memory_utilization')}, or leave such requests out")
    else:  # (a sweep file or capacity run sets neither: its own fix)
        at, fix = f"(the {util:.0%} of its GPU memory the engine may use)", fixes.kv
    return bound.context, CacheBound(full, f"the KV cache of profile {name!r} {at}, {num_blocks} blocks {blocks}", fix)


def workload_named(workload: Workload) -> str:
    """``workload`` as a refusal names it: the file it was read from where its ``meta`` says (``source``, as given:
    ``data/long.csv``), else by its name (``workload 'test'``)."""
    source = workload.meta.get("source") if isinstance(workload.meta, dict) else None
    return source if isinstance(source, str) and source else f"workload {workload.name!r}"


def _request_named(table: RequestTable, i: int, workload: str | None, rows: FileRows | None = None) -> str:
    """Request ``i`` (0-based row of the table) as a refusal names it: by its id (the one its results carry) and its
    place, and the workload (``workload``: :func:`workload_named`; None where the line names it already, as a sweep's
    does). Its place is the file's (``rows``, where the workload was read from a file: ``row 20`` of a .csv or a
    parquet, ``line 20`` of a .jsonl, ``record 20`` of a conversations file), else its row in the table (1-based, as
    the workloads' own errors count rows). "request 0" alone named a number the loader gives a file without ids; the
    table's row was none of the file's once ``-n`` sampled it ("request 1 in row 2" of a file's row 20)."""
    request_id = int(table.request_id[i])
    return request_named(request_id, (rows.place(request_id) if rows is not None else None) or f"row {i + 1}", workload)


def _check_fits(table: RequestTable, limits: BatchLimits, max_model_len: int, chunked: bool,
                fixes: FitFixes = FitFixes(), given: bool = True, extra_from: str = "the policy",
                bounded: CacheBound | None = None, workload: str | None = None,
                rows: FileRows | None = None, watermark: float = 0.0) -> None:
    """Refuse a request the replica can never run, in one :class:`~ltrsched.errors.ArgumentValueError` (a ValueError
    to a Python caller, a UserError to the command line). ``given``: whether the user set ``max_model_len`` [tokens]
    (else it is the profile's, or the profile's bounded by the KV cache: ``bounded``, :func:`cache_bound`).
    ``extra_from``: who adds the table's extra output tokens (``policy po``), as the KV line names them. ``workload``:
    the workload as the line names it (:func:`workload_named`; None: ``fixes.where`` names it); ``rows``: where each
    request is in the workload's file (:func:`~ltrsched.workloads.file_rows.file_rows`; None: the table's rows).
    ``watermark``: the fraction of the blocks ``limits.watermark_blocks`` keeps free (``SimConfig.watermark``), for the
    fix of a request that the cache holds but its watermark does not leave room for (:func:`_watermark_why`)."""
    # the context limit applies to the workload's own lengths, not to a policy's extra tokens (PO's 15-token length
    # estimate). The table serves them in the same request (output_tokens, its KV and its steps), and vLLM stops a
    # request at max_model_len, so the engine counts them (ltrsched.engine.replay.check_context) and refuses a request
    # within 15 tokens of the context, which this runs. Counting them here too would refuse a run of the paper's
    # experiments: `reproduce table3` (and `all`) simulates PO on 10,000 lmsys-like-70b requests (synthetic data
    # generation), 3 of them within 15 tokens of the profile's 8,192 (2 of exactly 8,192). The rule itself is shared:
    # limit_rules.beyond_context (int64-safe: a request of 2**63 - 1 prompt and output tokens passed as -2 tokens
    # long; max_model_len <= MAX_TOKENS keeps its difference in range)
    too_long = limit_rules.beyond_context(table.prompt_tokens, table.requested_output_tokens, max_model_len)
    if len(too_long):
        i = too_long[0]
        first = (f"(first: {_request_named(table, i, workload, rows)}, prompt {table.prompt_tokens[i]} + output "
                 f"{table.requested_output_tokens[i]})")
        if bounded is not None:  # (the engines' line names where their bound comes from too)
            raise ArgumentValueError(
                f"{fixes.where}{len(too_long)} request(s) exceed the context limit of {max_model_len} tokens {first}, "
                f"the profile's {bounded.full} tokens bounded by {bounded.source}, as vLLM bounds its context; "
                + bounded.fix
            )
        limit = (f"the context limit of {max_model_len} tokens set by {fixes.naming.name('max_model_len')}" if given
                 else f"the profile's context limit of {max_model_len} tokens")
        raise ArgumentValueError(f"{fixes.where}{len(too_long)} request(s) exceed {limit} {first}; " + fixes.context)
    total = table.prompt_tokens + table.output_tokens
    usable, blocks = limits.blocks_alone, limits.most_blocks_held(total)
    too_big = np.flatnonzero(blocks > usable)
    if len(too_big):
        i = too_big[0]
        # (the tokens held, where a policy adds some: a request of 161 tokens needed 11 blocks of 16 under PO, its 15
        # estimate tokens unnamed, as the engine's line names them)
        extra = int(table.output_tokens[i] - table.requested_output_tokens[i])
        held = (f" for {int(total[i])} tokens, {limit_rules.extra_tokens_named(extra, extra_from)}" if extra else "")
        raise ArgumentValueError(
            f"{fixes.where}{len(too_big)} request(s) can never fit the KV cache of {usable} usable blocks "
            f"(first: {_request_named(table, i, workload, rows)} needs {blocks[i]} blocks of {limits.block_size} "
            f"tokens{held}); "
            + (_watermark_why(limits, int(blocks[too_big].max()), watermark, fixes)
               if blocks[too_big].max() <= limits.num_gpu_blocks else fixes.kv)
        )
    # without chunked prefill a request's tokens to compute run in one step: its prompt at first, after a recompute
    # the prompt + the tokens it generated, at most prompt + output - 1 (the last sampled token is never computed;
    # output >= 1, so that covers the prompt too). vLLM 0.32's scheduler takes a waiting request whole likewise; its
    # start-up check is stricter and context-wide (budget >= max_model_len): this one refuses what cannot run
    if not chunked:
        largest_step = total - 1
        too_wide = np.flatnonzero(largest_step > limits.max_num_batched_tokens)
        if len(too_wide):
            i = too_wide[0]
            raise ArgumentValueError(
                f"{fixes.where}without chunked prefill, a step's token budget ({limits.max_num_batched_tokens} "
                f"tokens) must cover a recompute of prompt + output - 1 tokens, the most one step of a request "
                f"computes ({len(too_wide)} request(s) need more; first: {_request_named(table, i, workload, rows)}, "
                f"{int(largest_step[i])} tokens); " + fixes.budget
            )


def fewest_blocks_beside_watermark(needed: int, watermark: float) -> int:
    """The fewest KV blocks ``N`` [blocks] whose paper-rules watermark, ``int(watermark x N)`` blocks (``setup_run``),
    leaves ``needed`` blocks to a request admitted alone (``N - int(watermark x N) >= needed``; it never decreases
    with ``N``, so a bisection between ``needed`` and ``needed / (1 - watermark) + 1`` finds it). ``watermark`` in
    [0, 1)."""
    low, high = needed, int(math.ceil(needed / (1.0 - watermark))) + 1
    while low < high:
        mid = (low + high) // 2
        if mid - int(watermark * mid) >= needed:
            high = mid
        else:
            low = mid + 1
    return low


def _watermark_why(limits: BatchLimits, needed: int, watermark: float, fixes: FitFixes) -> str:
    """The end of the refusal of a request of ``needed`` blocks [blocks] that the KV cache holds (``needed`` <=
    ``limits.num_gpu_blocks``) but not beside the watermark the paper's batch rules keep free even for a request
    alone (the ``--semantics vllm-v1`` run serves it): that watermark named, and what to change in the caller's
    settings (``fixes.naming``): the blocks it takes, vLLM V1's rules, a smaller watermark, where its user sets them;
    else ``fixes.kv``. It said "... of 198 usable blocks; raise --num-gpu-blocks" of a cache of 200 blocks, and
    the run with ``--semantics vllm-v1`` served the request."""
    naming = fixes.naming
    rules = (f"the paper's batch rules ({naming.setting('semantics', 'paper')})" if naming.has("semantics")
             else "the paper's batch rules")
    why = kv_bound.watermark_held(limits.num_gpu_blocks, limits.watermark_blocks, rules)
    fix = []
    if naming.has("num_gpu_blocks"):
        fix.append(f"give {naming.setting('num_gpu_blocks', fewest_blocks_beside_watermark(needed, watermark))} "
                   "or more")
    if naming.has("semantics"):
        fix.append(naming.setting("semantics", "vllm-v1"))
    if naming.has("watermark"):
        fix.append(f"a smaller {naming.name('watermark')}")
    if not fix:
        return f"{why}; {fixes.kv}"
    return f"{why}: {', or '.join(fix)}, or leave such requests out"


#: The most tokens a context or a KV block may hold [tokens]: a request's counts (prompt + output + a policy's extra
#: tokens) and a block's rounding (computed + block_size - 1) then stay far inside int64, whose sums wrapped around
#: without a word (a block of 2**63 - 1 tokens counted every request as holding no block).
MAX_TOKENS = 1 << 60


def _check_token_range(field: str, value: int, naming: Naming, given: bool = True) -> None:
    """Refuse a ``block_size`` or ``max_model_len`` [tokens] past :data:`MAX_TOKENS` (``given``: set by the user, not
    the profile), in one line naming the setting as its user does."""
    if value > MAX_TOKENS:
        what = naming.name(field) if given else f"the profile's {field}"
        raise ArgumentValueError(f"{what} must be at most 2**60 tokens, got {value:,}")


def _check_step_time(profile) -> None:
    """The lightest step (one decode of a one-token context) must take a finite time of at least
    :data:`MIN_STEP_S`: zero-time steps make every latency 0 (profile files are checked in full on load)."""
    dt = profile.step_time(StepShape(num_decode_seqs=1, decode_context_tokens=1))
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real):  # (None: a TypeError from math.isfinite)
        name = getattr(profile, "name", type(profile).__name__)
        raise ArgumentTypeError(f"profile {name!r}: step_time gave {dt!r} for a one-token decode step; it must give a "
                                f"time in seconds (a number)")
    if not (math.isfinite(dt) and dt >= MIN_STEP_S):
        name = getattr(profile, "name", type(profile).__name__)
        raise ArgumentValueError(f"profile {name!r}: a one-token decode step takes {dt:.3g} s; a step must take a "
                                 f"finite time of at least {MIN_STEP_S:g} s")


@dataclass
class RunSetup:
    """What a run needs before its first step, checked (shared by :func:`simulate` and the cluster).

    Attributes:
        profile: the step-time profile object.
        limits: batch limits of one replica (KV capacity in blocks included).
        table: the request state arrays (policy overhead tokens included).
        host_blocks: host swap capacity of one replica [blocks].
        swap_s_per_block: host-link time of one KV block [s].
        max_model_len: the longest prompt + output a request may have [tokens] (given, or the profile's bounded by
            the KV cache).
    """

    profile: Any
    limits: BatchLimits
    table: RequestTable
    host_blocks: int
    swap_s_per_block: float
    max_model_len: int


#: How to make room for one KV block, in :class:`SimConfig`'s field names (what the Python API sets); a command
#: passes its own settings' names to :func:`kv_capacity_blocks` (a sweep file has no ``--block-size`` option).
KV_ROOM_FIX = "use a smaller block_size or a larger gpu_memory_utilization, or set num_gpu_blocks"


def kv_capacity_blocks(config: SimConfig, profile: Any = None, fix: str = KV_ROOM_FIX,
                       naming: Naming = PYTHON_NAMING) -> int:
    """One replica's KV capacity [blocks of ``config.block_size`` tokens]: ``config.num_gpu_blocks``, or what the
    profile's GPU memory leaves at ``config.gpu_memory_utilization``. None left is a :class:`UserError` ending in
    ``fix`` (the caller's settings that change it), naming the utilization as ``naming`` does (in words where
    the caller's user cannot set it: a sweep file, capacity)."""
    if config.num_gpu_blocks:
        return config.num_gpu_blocks
    profile = resolve_profile(config.profile) if profile is None else profile
    num_blocks = profile.num_gpu_blocks(block_size=config.block_size,
                                        gpu_memory_utilization=config.gpu_memory_utilization)
    if num_blocks <= 0:
        util = config.gpu_memory_utilization
        at = (f"at {naming.name('gpu_memory_utilization')} {util:g}" if naming.has("gpu_memory_utilization")
              else f"in the {util:.0%} of its GPU memory the engine may use")
        name = getattr(profile, "name", config.profile)
        raise ArgumentValueError(f"profile {name!r} leaves no GPU memory for one KV block of {config.block_size} "
                                 f"tokens {at}; {fix}")
    return num_blocks


#: Host swap capacity past which more changes nothing [blocks] (no run swaps out 2**62 blocks): what an infinite
#: ``swap_space_gib`` (no limit) or one whose bytes pass float64's range gives.
MAX_HOST_BLOCKS = 1 << 62


def host_capacity_blocks(swap_space_gib: float, block_bytes: int) -> int:
    """Host swap capacity [blocks of ``block_bytes`` bytes] of ``swap_space_gib`` GiB (>= 0, +inf: no limit), at most
    :data:`MAX_HOST_BLOCKS` (an int(NaN) ValueError for +inf or past ~1.7e299 GiB, where the bytes overflow)."""
    blocks = swap_space_gib * GIB // block_bytes  # (inf // x is NaN: the comparison below is then False)
    return int(blocks) if blocks < MAX_HOST_BLOCKS else MAX_HOST_BLOCKS


def check_run_arguments(workload: Any, policy: Any, config: Any) -> None:
    """One-line :class:`TypeError` naming the argument of :func:`simulate` (or the cluster's) that is not a
    :class:`Workload`, a :class:`Policy` or a :class:`SimConfig` (``config`` may be None: the defaults)."""
    check_workload_and_policy(workload, policy)
    check_argument(config, (SimConfig, type(None)), "config", "a SimConfig, or None for the defaults")


def as_value_error(check, *args, **kwargs) -> None:
    """``check(*args, **kwargs)``, a check shared with other hosts (a policy's columns, the arrival span) whose
    :class:`UserError` is raised as an :class:`~ltrsched.errors.ArgumentValueError` with the same message: a ValueError
    to a Python caller, as the engine's ``replay`` raises it, and the same one line on the command line."""
    try:
        check(*args, **kwargs)
    except ArgumentValueError:
        raise
    except UserError as exc:
        raise ArgumentValueError(str(exc)) from None


def python_setup_run(workload: Workload, policy: Policy, config: SimConfig) -> RunSetup:
    """:func:`setup_run` for a Python caller (:func:`simulate`, the cluster's): a :class:`ConfigError` it raises (a
    ``max_model_len`` the KV cache does not hold) is a :class:`ConfigArgumentError`, an
    :class:`~ltrsched.errors.ArgumentValueError` too (a UserError, as ``emulate()`` raises it), with the same message
    (a command catches the ConfigError from :func:`setup_run` and renders it in its options' names)."""
    try:
        return setup_run(workload, policy, config)
    except ConfigError as exc:
        raise ConfigArgumentError.of(exc) from None


def setup_run(workload: Workload, policy: Policy, config: SimConfig, fixes: FitFixes = FitFixes()) -> RunSetup:
    """Check that the workload suits the policy and fits the replica, and build the request table. ``fixes``: what
    the errors about a request that cannot run tell the user to change."""
    profile = resolve_profile(config.profile)
    as_value_error(check_needs, policy, workload.has_column, f"workload {workload.name!r}")
    _check_token_range("block_size", config.block_size, fixes.naming)
    num_blocks = kv_capacity_blocks(config, profile, naming=fixes.naming)
    vllm_v1 = config.semantics == "vllm-v1"
    limits = BatchLimits(
        max_num_batched_tokens=config.max_num_batched_tokens,
        max_num_seqs=config.max_num_seqs,
        num_gpu_blocks=num_blocks,
        block_size=config.block_size,
        # (vLLM V1 counts its null block, which num_blocks leaves out, in the blocks it takes the watermark of)
        watermark_blocks=(vllm_watermark_blocks(config.watermark, num_blocks) if vllm_v1
                          else int(config.watermark * num_blocks)),
        chunked_prefill=config.chunked_prefill,
        resident_first=vllm_v1,
        max_resident_seqs=config.max_resident_seqs or (config.max_num_seqs if vllm_v1 else None),
        watermark_when_running=vllm_v1,
    )
    _check_token_range("max_model_len", config.max_model_len or profile.max_model_len, fixes.naming,
                       given=bool(config.max_model_len))
    if not config.num_gpu_blocks:  # (a given context the profile's cache does not hold; given blocks: SimConfig's)
        short = cache_short(config, num_blocks, profile_named(config, profile))
        if short is not None:
            raise short
    max_model_len, bounded = cache_bound(config, profile, num_blocks, fixes)
    if policy.extra_output_tokens > max_model_len:  # (also keeps the token counts far from int64 overflow)
        raise ArgumentValueError(f"policy {policy.spec()!r} adds {policy.extra_output_tokens} output tokens to every "
                                 f"request (its length-estimate phase), more than the context of {max_model_len} "
                                 "tokens; use fewer")
    table = RequestTable.from_frame(workload.df, extra_output_tokens=policy.extra_output_tokens)
    _check_fits(table, limits, max_model_len, config.chunked_prefill, fixes, given=bool(config.max_model_len),
                extra_from=f"policy {policy.name}", bounded=bounded,
                workload=None if fixes.where else workload_named(workload), rows=file_rows(workload.meta),
                watermark=config.watermark)
    as_value_error(check_arrival_span, table.arrival_time, f"workload {workload.name!r}")
    _check_step_time(profile)

    block_bytes = profile.kv_bytes_per_token * config.block_size
    host_blocks = host_capacity_blocks(config.swap_space_gib, block_bytes)
    swap_s_per_block = block_bytes / profile.host_link_bytes_per_s
    return RunSetup(profile, limits, table, host_blocks, swap_s_per_block, max_model_len)


def make_replica(env: simpy.Environment, setup: RunSetup, policy: Policy, config: SimConfig,
                 table: RequestTable | None = None, **kwargs) -> Replica:
    """A replica serving ``table`` (default: ``setup``'s) under ``policy`` (``kwargs``: trace, on_progress,
    inbox)."""
    return Replica(
        env, setup.table if table is None else table, policy, setup.limits, setup.profile.step_time,
        setup.swap_s_per_block, setup.host_blocks, preemption=config.preemption, stop_time=config.stop_time,
        **kwargs,
    )


def check_finished(table: RequestTable, config: SimConfig) -> np.ndarray:
    """The finished mask; without a stop time every request must have finished (else a simulator bug)."""
    finished = table.state == FINISHED
    if config.stop_time is None and (not finished.all() or (table.generated_tokens != table.output_tokens).any()):
        raise RuntimeError("simulation ended with unfinished requests")  # pragma: no cover - a simulator bug
    return finished


def request_frame(workload: Workload, table: RequestTable, **extra: pl.Series) -> pl.DataFrame:
    """One row per request: the workload's columns, the run's timestamps and counts, ``extra`` columns,
    and the derived metrics (:func:`ltrsched.metrics.request_metrics`)."""
    df = workload.df.drop([c for c in ("prompt",) if c in workload.df.columns]).with_columns(
        served_output_tokens=pl.Series(table.output_tokens),
        generated_tokens=pl.Series(table.generated_tokens),
        first_scheduled_time=pl.Series(table.first_scheduled_time),
        first_token_time=pl.Series(table.first_token_time),
        finish_time=pl.Series(table.finish_time),
        max_token_gap=pl.Series(table.max_token_gap),
        max_idle_steps=pl.Series(table.max_idle_steps),
        num_preemptions=pl.Series(table.num_preemptions),
        run_time=pl.Series(table.run_time),
        **extra,
    )
    return request_metrics(df)


def replica_counters(replica: Replica) -> dict[str, Any]:
    """A replica's run counters (steps, busy time [s], preemptions, swapped and peak KV blocks)."""
    return dict(
        steps=replica.steps,
        busy_time=replica.busy_time,
        num_preemptions=replica.num_preemptions,
        swapped_blocks=replica.swapped_blocks_total,
        peak_blocks_in_use=replica.peak_blocks_in_use,
    )


def simulate(workload: Workload, policy: Policy, config: SimConfig | None = None, progress: bool = False) -> SimResult:
    """Simulate serving ``workload`` under ``policy``; see :class:`SimResult`."""
    check_run_arguments(workload, policy, config)
    check_flag(progress, "progress")  # ("no" showed a bar)
    config = config or SimConfig()
    setup = python_setup_run(workload, policy, config)
    table = setup.table
    env = simpy.Environment()
    trace = StepTrace() if config.record_steps else None
    bar = None
    with plugin_time_limit():  # a plugin call that never returns stops the run with one line
        policy.prepare(table.workload_columns())
        if progress:
            from ltrsched.progress import progress_bar

            bar = progress_bar(len(workload), f"simulate {policy.name}", "requests", leave=False)
        replica = make_replica(env, setup, policy, config, trace=trace, on_progress=bar.update if bar else None)
        wall = time.perf_counter()
        env.process(replica.run())
        run_to_end(env)  # (env.run(), a plugin's exception raised as raised)
        wall = time.perf_counter() - wall
    if bar is not None:
        bar.close()
    finished = check_finished(table, config)

    requests = request_frame(workload, table)
    summary = summarize(requests.filter(pl.col("finish_time").is_not_nan()))
    summary["num_finished"] = int(finished.sum())
    summary.update(
        **replica_counters(replica),
        num_gpu_blocks=setup.limits.num_gpu_blocks,
        host_blocks=setup.host_blocks,
        wall_time_s=wall,
        speedup_vs_real_time=speedup_vs_real_time(summary["makespan"], wall),
    )
    meta = {
        "workload": workload.name,
        "policy": policy.spec(),
        "policy_params": policy.describe(),
        "profile": getattr(setup.profile, "name", str(config.profile)),
        "config": config.describe(),
    }
    steps = pl.DataFrame(trace.as_dict()) if trace is not None else None
    return SimResult(requests, summary, steps, meta)
