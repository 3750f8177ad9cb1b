"""Measure a step-time profile on an engine: probe workloads, the engine's step log, a least-squares fit.

``ltrsched profile`` serves a fixed set of *probes* through the engine with FCFS, one after another:

* decode probes: B requests with L-token prompts in a burst. Their prefill takes about B * L / budget
  steps, mixing prompt chunks with the decodes of requests already through; each request then decodes
  for that long plus D more tokens, so the engine runs about D decode-only steps of batch B over
  contexts near L: decode time by batch size and context length. The prefill steps are full-budget
  chunks at growing offsets (prefill attention) beside decodes (mixed steps).
* prefill probes: one request with a P-token prompt and one output token: a prefill step of P tokens.

Every step is logged with its shape (:class:`ltrsched.policies.step_shape.StepShape`) and its *cycle*
time (end of the previous step to the end of this one, CPU overhead included; the simulator's step
time). :func:`fit_profile` then fits the simulator's step-time model (``ltrsched.sim.profiles.model``)
by non-negative least squares::

    cycle = non_attention(num_tokens) + sampling(num_seqs) + a * decode_context_tokens
            + p * prefill_attention_pairs + overhead_s_per_step

with the tables piecewise linear on fixed knots (hat-function bases), ``sampling(1) = 0`` (its constant
is the non-attention table's), and ``overhead_s_per_step`` the measured median CPU time of the adapter's
and vLLM's scheduling per step (so the tables hold GPU time plus the rest of the loop).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl
from scipy.optimize import nnls

from ltrsched.workloads.schema import Workload

#: Knots of the fitted tables (tokens per step / sequences per step).
TOKEN_KNOTS = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 640, 768, 1024, 1536, 2048)
SEQ_KNOTS = (1, 8, 32, 64, 128, 256, 512)
#: Seconds between probes on the run's clock (each probe finishes long before the next arrives).
PROBE_GAP_S = 10_000.0
#: Fewest usable steps :func:`fit_steps` fits a profile to.
MIN_FIT_STEPS = 50
#: The step log's columns :func:`fit_steps` reads (besides the scheduling times it takes the overhead from).
FIT_COLUMNS = ("start", "cycle", "num_prefill_tokens", "num_prefill_seqs", "num_decode_seqs", "decode_context_tokens",
               "prefill_attention_pairs")


@dataclass(frozen=True)
class ProbePlan:
    """Which probes to run. Sizes in tokens; ``max_tokens_in_flight`` bounds B * (L + D) (KV memory);
    ``max_model_len`` (None: none) bounds each decode probe's prompt + output (the engine's context)."""

    decode_batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    decode_prompts: tuple[int, ...] = (128, 1024, 3072)
    decode_outputs: int = 32
    prefill_prompts: tuple[int, ...] = (16, 32, 64, 128, 256, 384, 512, 640, 768, 4096)
    max_tokens_in_flight: int = 140_000
    repeats: int = 2
    max_model_len: int | None = None

    def probes(self, max_num_seqs: int, budget: int) -> list[list[tuple[int, int]]]:
        """Each probe as its requests' (prompt tokens, output tokens); the first probe warms the engine up.
        ``budget`` is the engine's token budget per step [tokens]."""
        context = self.max_model_len or 1 << 62
        out: list[list[tuple[int, int]]] = [[(64, 8)] * 4]
        for _ in range(self.repeats):
            for length in self.decode_prompts:
                for batch in self.decode_batches:
                    # (a probe beyond the context: planned for a short --max-model-len, profile refused every cache
                    # size for it, "which no KV cache size gives", naming the cache, not the context): shorter prompts
                    fits = _prompt_within(length, batch, budget, self.decode_outputs, context)
                    outputs = -(-batch * fits // budget) + self.decode_outputs  # outlast the batch's prefill
                    if fits >= 1 and batch <= max_num_seqs and batch * (fits + outputs) <= self.max_tokens_in_flight:
                        out.append([(fits, outputs)] * batch)
            out.extend([[(p, 1)] for p in self.prefill_prompts])
        return out


def _prompt_within(length: int, batch: int, budget: int, decode_outputs: int, context: int) -> int:
    """The longest prompt, at most ``length`` [tokens], of a decode probe of ``batch`` requests that fits ``context``
    [tokens] with its outputs (those outlasting the batch's prefill at ``budget`` tokens a step, + ``decode_outputs``);
    0 if none does."""
    def total(prompt: int) -> int:
        return prompt + -(-batch * prompt // budget) + decode_outputs

    if total(length) <= context:
        return length
    prompt = min(length, max(0, (context - decode_outputs - 1) * budget // (budget + batch) + 1))
    while prompt > 0 and total(prompt) > context:
        prompt -= 1
    return prompt


def probe_plan(config, usable_blocks: int, max_model_len: int, quick: bool = False,
               repeats: int | None = None) -> ProbePlan:
    """The probes for an engine (an :class:`ltrsched.engine.config.EngineConfig`) holding ``usable_blocks``
    KV blocks and contexts up to ``max_model_len`` tokens.

    A GPU gets the full plan (batches to 256, contexts to 3,072 tokens). A CPU computes one to two orders
    of magnitude slower, so its plan keeps the same batch coverage (to 256, the default sequence cap: a
    table extrapolated beyond its largest probed batch under-predicted 65-100-sequence steps by 18%,
    VALIDATION.md) with shorter contexts (to 2,048) and repeats each probe 3 times instead of 2: its step
    times are noisier. Every probe fits the KV cache (90% of it) and the context limit."""
    from ltrsched.engine.platform import CPU

    cpu = config.platform == CPU
    if quick:
        plan = ProbePlan(decode_batches=(1, 4, 16, 64, 256),
                         decode_prompts=(128, 1024) if cpu else (128, 2048), repeats=1,
                         prefill_prompts=(16, 64, 256, 512, 768, 2048))
    elif cpu:
        plan = ProbePlan(decode_batches=(1, 2, 4, 8, 16, 32, 64, 128, 256), decode_prompts=(64, 512, 2048), repeats=3,
                         prefill_prompts=(16, 32, 64, 128, 256, 384, 512, 640, 768, 2048))
    else:
        plan = ProbePlan()
    limit = max_model_len - plan.decode_outputs - 1
    in_flight = min(plan.max_tokens_in_flight, int(0.9 * usable_blocks * config.block_size))
    # a prefill probe of more tokens than the KV cache holds was refused by the replay as "request(s) can never
    # fit the engine's KV cache", a request the user never gave (--num-gpu-blocks 100: the 2,048-token probe)
    return replace(
        plan,
        repeats=repeats or plan.repeats,
        # (a context of 33 tokens or fewer leaves no decode probe: its prompt of min(128, limit) < 1 token was refused
        # as "profile-probes: 341 request(s) with prompt_tokens < 1", a workload the user never gave)
        decode_prompts=(tuple(p for p in plan.decode_prompts if p <= limit)
                        or ((min(128, limit),) if limit >= 1 else ())),
        prefill_prompts=tuple(p for p in plan.prefill_prompts if p < max_model_len and p + 1 <= in_flight),
        max_tokens_in_flight=in_flight,
        max_model_len=max_model_len,
    )


def probe_workload(plan: ProbePlan, max_num_seqs: int, budget: int) -> Workload:
    """The probes as one workload: probe k arrives at ``k * PROBE_GAP_S`` [s]."""
    rows = [(k * PROBE_GAP_S, p, o) for k, probe in enumerate(plan.probes(max_num_seqs, budget)) for p, o in probe]
    arrival, prompt, output = (np.array(c) for c in zip(*rows))
    df = pl.DataFrame({"request_id": np.arange(len(rows), dtype=np.int64), "prompt_tokens": prompt.astype(np.int64),
                       "output_tokens": output.astype(np.int64), "arrival_time": arrival.astype(np.float64)})
    return Workload(df, "profile-probes")


def _hats(x: np.ndarray, knots: tuple[int, ...]) -> np.ndarray:
    """Hat-function basis on ``knots`` (linear interpolation weights; beyond the last knot, its slope)."""
    k = np.asarray(knots, dtype=np.float64)
    x = np.clip(np.asarray(x, dtype=np.float64), k[0], None)
    basis = np.zeros((len(x), len(k)))
    idx = np.clip(np.searchsorted(k, x, side="right") - 1, 0, len(k) - 2)
    w = (x - k[idx]) / (k[idx + 1] - k[idx])
    rows = np.arange(len(x))
    basis[rows, idx] = 1 - w
    basis[rows, idx + 1] = w
    return basis


@dataclass
class ProfileFit:
    """The fitted step-time terms and how well they fit.

    Attributes:
        token_knots, non_attention_s: the non-attention table [tokens] -> [s].
        seq_knots, sampling_s: the sampling table [sequences] -> [s].
        decode_attention_s_per_kv_token [s/token], prefill_attention_s_per_pair [s/pair].
        overhead_s_per_step: measured CPU scheduling time per step [s].
        num_samples: steps used; relative_errors: |fit - measured| / measured per step.
    """

    token_knots: tuple[float, ...]
    non_attention_s: tuple[float, ...]
    seq_knots: tuple[float, ...]
    sampling_s: tuple[float, ...]
    decode_attention_s_per_kv_token: float
    prefill_attention_s_per_pair: float
    overhead_s_per_step: float
    num_samples: int
    relative_errors: np.ndarray

    def summary(self) -> dict[str, float]:
        e = self.relative_errors
        return {"num_samples": self.num_samples, "median_rel_error": float(np.median(e)),
                "p90_rel_error": float(np.quantile(e, 0.9)), "mean_rel_error": float(e.mean())}


def with_idle_cycles(steps: pl.DataFrame) -> pl.DataFrame:
    """``steps`` with a cycle [s] for the steps that followed an idle engine, too.

    A step's cycle runs from the previous step's end to its own, so the first step after the engine ran
    out of requests has none (NaN). Every probe starts so, and a prefill probe is that one step alone:
    leaving them out left the non-attention table without a single step between 17 and 255 tokens (the
    CPU engine's cpu-smollm2 profile: flat at 0.100 s from 16 to 192 tokens where the engine took
    0.25-0.62 s, VALIDATION.md). Such a step gets its own duration (``end - start``: scheduling, forward
    pass, output processing) plus the median time between the back-to-back steps' duration and cycle
    (the engine loop outside a step, ~0.25 ms on the CPU engine). Logs without ``duration`` (or with no
    back-to-back step to take that gap from) are returned unchanged.
    """
    if "duration" not in steps.columns:
        return steps
    timed = steps.filter(pl.col("cycle").is_not_nan() & pl.col("duration").is_not_nan())
    if timed.height == 0:
        return steps
    gap = float((timed["cycle"] - timed["duration"]).median())
    return steps.with_columns(cycle=pl.when(pl.col("cycle").is_nan()).then(pl.col("duration") + gap)
                              .otherwise(pl.col("cycle")))


def usable_steps(steps: pl.DataFrame, warmup_s: float = PROBE_GAP_S) -> pl.DataFrame:
    """Steps with a cycle time (back to back, or after an idle engine: :func:`with_idle_cycles`), with work,
    starting at or after ``warmup_s`` on the run's clock [s] (the probes' warm-up probe ends before
    :data:`PROBE_GAP_S`; 0 for the step log of a served workload)."""
    steps = with_idle_cycles(steps)
    return steps.filter(pl.col("cycle").is_not_nan() & (pl.col("num_prefill_tokens") + pl.col("num_decode_seqs") > 0)
                        & (pl.col("start") >= warmup_s))


def without_decodes_after_prefill(steps: pl.DataFrame, k: int) -> pl.DataFrame:
    """``steps`` (one engine's step log, in step order) without the decode-only steps among the ``k`` steps that
    follow each step with prompt tokens. On the CPU engine decode steps right after a large prefill run slow
    (4 sequences: 6.7 ms one step after a probe's prefill, 5.1 ms 21-40 steps after; VALIDATION.md), and every
    decode probe's steps lie within ~35 steps of its prefill."""
    if k <= 0:
        return steps
    return steps.filter((pl.col("num_prefill_tokens") > 0) | (steps_since_prefill() > k))


def decode_steps_so_far() -> pl.Expr:
    """Per step of a profile's step log: how many decode-only steps its probe (the probes start
    :data:`PROBE_GAP_S` apart) has run up to and including it."""
    decode = (pl.col("num_prefill_tokens") == 0) & (pl.col("num_decode_seqs") > 0)
    return decode.cast(pl.Int64).cum_sum().over((pl.col("start") // PROBE_GAP_S).cast(pl.Int64))


def steps_since_prefill() -> pl.Expr:
    """Per step of one engine's step log (in step order): how many steps came since the last step with prompt
    tokens (0 for that step; steps before the first count from the log's start)."""
    return pl.int_range(pl.len()).over((pl.col("num_prefill_tokens") > 0).cum_sum())


def fit_steps(steps: pl.DataFrame, token_knots=TOKEN_KNOTS, seq_knots=SEQ_KNOTS, trim: float = 0.02,
              overhead_from_log: bool = True, warmup_s: float = PROBE_GAP_S) -> ProfileFit:
    """Fit the step-time model to an engine step log (see the module docstring).

    ``overhead_from_log``: take ``overhead_s_per_step`` from the logged scheduling times (a real engine,
    whose cycle times include them); False for an emulated engine, whose virtual clock does not.
    ``warmup_s``: steps starting before it are left out [s] (:func:`usable_steps`).

    A log that lacks a column the fit reads (a simulator's ``steps.parquet``, which times no cycle) or holds fewer
    than :data:`MIN_FIT_STEPS` usable steps raises :class:`~ltrsched.errors.ArgumentValueError` (a ValueError, and a
    one-line error on a command line; they were a polars ``ColumnNotFoundError`` and a plain ValueError)."""
    from ltrsched.errors import ArgumentValueError

    needed = FIT_COLUMNS + (("vllm_schedule_s", "plugin_s") if overhead_from_log else ())
    missing = [c for c in needed if c not in steps.columns]
    if missing:
        raise ArgumentValueError(f"the step log lacks the column(s) {', '.join(missing)} a profile's fit reads: give "
                                 "an engine's step log (replay's or profile's steps.parquet), not a simulator's")
    s = usable_steps(steps, warmup_s)
    if s.height < MIN_FIT_STEPS:
        raise ArgumentValueError(f"too few usable steps to fit a profile ({s.height})")
    overhead = float(np.median(s["vllm_schedule_s"].to_numpy() + s["plugin_s"].to_numpy())) if overhead_from_log else 0.0
    tokens = (s["num_prefill_tokens"] + s["num_decode_seqs"]).to_numpy()
    seqs = (s["num_prefill_seqs"] + s["num_decode_seqs"]).to_numpy()
    knots_t = tuple(k for k in token_knots if k <= max(2 * tokens.max(), token_knots[1]))
    knots_s = tuple(k for k in seq_knots if k <= max(2 * seqs.max(), seq_knots[1]))
    design = np.hstack([
        _hats(tokens, knots_t),
        _hats(seqs, knots_s)[:, 1:],  # sampling(first knot) = 0
        s["decode_context_tokens"].to_numpy()[:, None].astype(np.float64),
        s["prefill_attention_pairs"].to_numpy()[:, None].astype(np.float64),
    ])
    y = s["cycle"].to_numpy() - overhead
    scale = np.maximum(design.max(axis=0), 1e-30)  # columns of comparable size for the solver
    keep = np.ones(len(y), dtype=bool)
    for _ in range(2):  # fit, drop the worst-fitting trim fraction (GC pauses, warm-up), refit
        coef, _ = nnls(design[keep] / scale / y[keep, None], np.ones(keep.sum()))  # relative error
        coef = coef / scale
        rel = np.abs(design @ coef - y) / y
        keep = rel <= np.quantile(rel, 1 - trim)
    nt = len(knots_t)
    na = np.maximum.accumulate(coef[:nt])
    samp = np.concatenate(([0.0], np.maximum.accumulate(coef[nt:nt + len(knots_s) - 1])))
    fitted = design @ np.concatenate((na, samp[1:], coef[-2:])) + overhead
    return ProfileFit(
        token_knots=knots_t, non_attention_s=tuple(float(v) for v in na),
        seq_knots=knots_s, sampling_s=tuple(float(v) for v in samp),
        decode_attention_s_per_kv_token=float(coef[-2]), prefill_attention_s_per_pair=float(coef[-1]),
        overhead_s_per_step=overhead, num_samples=s.height,
        relative_errors=np.abs(fitted - s["cycle"].to_numpy()) / s["cycle"].to_numpy(),
    )


def fitted_profile(fit: ProfileFit, name: str, description: str, gpu: str, model: str, model_config: dict,
                   gpu_memory_bytes: int, engine_num_gpu_blocks: int, gpu_memory_utilization: float,
                   tensor_parallel: int = 1, block_size: int = 16, max_model_len: int = 8192,
                   host_link_bytes_per_s: float = 50e9, provenance: dict[str, Any] | None = None):
    """A simulator profile from a fit; its KV capacity reproduces the engine's block count (its null
    block excluded) at ``gpu_memory_utilization``."""
    from ltrsched.sim.kv_capacity import ModelShape, kv_bytes_per_token, weight_bytes_per_gpu
    from ltrsched.sim.profiles.model import StepTimeProfile

    shape = ModelShape.from_config(model_config, source=name)
    block_bytes = kv_bytes_per_token(shape, tensor_parallel) * block_size
    usable = engine_num_gpu_blocks - 1
    reserve = int(gpu_memory_bytes * gpu_memory_utilization - weight_bytes_per_gpu(shape, tensor_parallel)
                  - (usable + 0.5) * block_bytes)
    return StepTimeProfile(
        name=name, description=description, gpu=gpu, model=model, tensor_parallel=tensor_parallel,
        max_model_len=max_model_len, gpu_memory_bytes=int(gpu_memory_bytes), activation_reserve_bytes=max(reserve, 0),
        host_link_bytes_per_s=host_link_bytes_per_s,
        non_attention_num_tokens=tuple(float(k) for k in fit.token_knots), non_attention_s=fit.non_attention_s,
        sampling_num_seqs=tuple(float(k) for k in fit.seq_knots), sampling_s=fit.sampling_s,
        decode_attention_s_per_kv_token=fit.decode_attention_s_per_kv_token,
        prefill_attention_s_per_pair=fit.prefill_attention_s_per_pair,
        overhead_s_per_step=fit.overhead_s_per_step, overhead_s_per_seq=0.0,
        model_config=dict(model_config),
        provenance={**(provenance or {}), "fit": fit.summary(), "engine_num_gpu_blocks": engine_num_gpu_blocks,
                    "gpu_memory_utilization": gpu_memory_utilization},
    )
