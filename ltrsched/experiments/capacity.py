"""Capacity search: the highest Poisson arrival rate [req/s] at which a configuration meets its SLOs.

A configuration is a :class:`RunSpec` template (policy, workload, profile, batch limits, and any other
field, e.g. a cluster's replica count): the search varies only ``rate`` and ``seed``, so every other
field passes through to the runs and their keys. At each rate it runs the template under ``seeds``
seeds; a rate **meets** an SLO when the mean over the seeds of the run summaries' metric (e.g. each
seed's P90 TTFT) is at most the SLO's limit, and meets the SLO set when it meets every SLO. The mean
over seeds, rather than every seed, is used because it is the less noisy estimate of the metric at that
rate: a capacity found from it moves less from one seed set to the next.

The search brackets the capacity by doubling the rate from ``start_rate`` while it meets the SLOs (or
halving it while it does not), then bisects the bracket geometrically until its ends are within the
relative ``tolerance`` (``high / low <= 1 + tolerance``). Halving stops early where no lower rate can meet an SLO:
each halving's runs take longer (fewer requests share a step), and an SLO below the latency of unloaded service
halved the rate 10 times, for minutes, before reporting none. For a TTFT SLO the search knows its floor exactly
(:data:`UNLOADED_METRICS`): at the first rate that misses it on runs that form no queue, one more run per seed
serves each request alone up to its first token (:func:`alone_specs`, :func:`first_tokens_alone`: in this process, not
cached), and a limit below that run's statistic is ``none`` at once (:meth:`Search.unloaded_reached`), one above it
keeps halving. The same runs give a safe lower bound (not exact) on the E2E latency, latency per token, max waiting
time and TPOT (:data:`ALONE_BOUNDED_METRICS`: each request's TTFT served alone, then its later tokens' steps, each at
least the lightest step plus the request's own attention over its growing context), measured where such an
SLO is missed likewise: a limit below it is ``none`` at once too. For TPOT, E2E latency, latency per token and max waiting time the floor is otherwise extrapolated
(:meth:`Search.floor_reached`); the queueing delay, 0 unloaded, has none (:data:`FLOOR_METRICS`). The capacity is
the bracket's low end: the highest rate seen to meet the SLOs, with ``high``, a rate seen to miss them, at most
``tolerance`` above it. Rates are rounded to 4 significant digits (so reruns and neighbouring searches share runs).

Before any run, an SLO that the profile alone proves unmeetable at every rate rules its search out (``none``, no rate
tried; :func:`slo_bound`): every request's TTFT, TPOT, E2E latency, latency per token and max waiting time is at
least the profile's lightest step, one token of one sequence, so an SLO on one of them below that can never be met.

A rate where a run stopped for preemption thrash (:class:`~ltrsched.policies.batching.ThrashError`: far above capacity,
e.g. LTR with starvation prevention on long outputs) misses the SLOs (it is overloaded by definition), with no metrics:
its :attr:`RatePoint.stopped` says so, the table and figures say ``stopped: preemption thrash``, a line on stderr gives
the run's error, and the search bisects below it. Such a run saves no result (it is not cached): a rerun runs it
again, it stops again, and the table comes out the same. Any other error of a run stops the search, as before.

Searches for several templates advance in lockstep: each round runs every open search's next rate
(all its seeds) as one batch on the sweep backend, through the run cache (``<out>/runs/<hash>``, the
same layout and keys as ``ltrsched sweep``), so a rerun, or a wider search over the same out
directory, reuses every run it has seen.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from ltrsched.arguments import shown
from ltrsched.errors import UserError
from ltrsched.experiments.runner import RunStats
from ltrsched.experiments.runspec import RunSpec
from ltrsched.metrics import QUANTILES, SUMMARY_METRICS, request_metrics
from ltrsched.results import RunResult

#: Summary keys an SLO may name: each per-request metric's mean and quantiles ([s] or [s/token]).
SLO_METRICS = tuple(f"{m}_{stat}" for m in SUMMARY_METRICS for stat in ("mean", *QUANTILES))
#: Significant digits of the rates tried.
RATE_DIGITS = 4
#: Halvings below the start rate before a search reports that no rate meets the SLOs.
MAX_HALVINGS = 10
#: A rate's runs form no queue when their P90 queueing delay (arrival to first scheduled) is at most this many P90
#: TPOTs (decode steps), each a mean over the seeds: 90% of the requests start within about a step of arriving, as on
#: an idle engine. Measured on sharegpt (2,000 requests, seeds 0-1, a100-llama3-8b): 0.81-0.87 with FCFS and LTR from
#: 4 to 16 req/s (capacity about 19 at the README's SLOs), 500-1,700 from 32 to 1,024 req/s, where a queue builds.
QUEUE_FREE_STEPS = 2.0
#: Standard errors the floor rule allows each seed's statistic for the noise of its requests (:func:`service_summary`),
#: which a single seed has no spread across seeds to show. With 1, none of 102 limits tried (lmsys-like, fcfs, seed
#: 0, halving from 4 req/s: six metrics at 30 requests, P90 TTFT at 60) ended at ``none`` where a lower rate met it;
#: with 0, 2 did (P90 TPOT and P50 E2E latency, limits within 0.1% of what the lowest rates gave). Seeds 0-1, the same
#: limits, with 1: one, P90 TPOT <= 0.01595 s, none at 0.5 req/s, met at 0.0078 by 0.01594 (the lightest step 0.01586).
NOISE_SIGMAS = 1.0
#: Largest SLO limit [s or s/token]: about 3 years, as long as a run's arrivals may span
#: (``MAX_ARRIVAL_TIME_S``). A limit near 1e308 overflowed the figure's log axis (a RuntimeWarning on the terminal).
MAX_SLO_LIMIT = 1e8
#: Most seeded runs per rate: each rate tried runs a simulation per seed (a dozen rates or more per search),
#: and a count near a billion filled the memory with seeds before the first run (a MemoryError traceback).
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Slo:
    """An upper limit on a summary metric: ``metric`` (e.g. ``ttft_p90``) <= ``limit`` [s or s/token]."""

    metric: str
    limit: float

    def __post_init__(self) -> None:
        """One-line :class:`TypeError`/:class:`ValueError` naming the field for an SLO :func:`parse_slo` would refuse:
        a metric no summary has (``Slo("p90_ttft", 1)``: a search that ran every rate down to the floor and reported
        none, the metric missing from every run) or a limit that is not a positive number of seconds up to
        :data:`MAX_SLO_LIMIT` (nan: never met, none; a negative one: ruled out, none)."""
        if not isinstance(self.metric, str) or self.metric not in SLO_METRICS:
            raise ValueError(f"Slo metric must be a summary metric ({', '.join(SLO_METRICS)}), "
                             f"got {shown(self.metric)}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, numbers.Real):
            raise TypeError(f"Slo limit must be a number of seconds, got {shown(self.limit)}")
        if not (math.isfinite(self.limit) and 0 < self.limit <= MAX_SLO_LIMIT):
            raise ValueError(f"Slo limit must be a positive number of seconds up to {MAX_SLO_LIMIT:.0e}, "
                             f"got {shown(self.limit)}")
        object.__setattr__(self, "limit", float(self.limit))  # (a numpy float is no JSON number)

    def __str__(self) -> str:
        return f"{self.metric}<={self.limit:g}"


def parse_slo(text: str) -> Slo:
    """``"ttft_p90=2"`` (or ``"ttft_p90<=2"``, as :class:`Slo` prints it) -> ``Slo("ttft_p90", 2.0)``;
    :class:`UserError` for an unknown metric or a limit that is not a positive number up to :data:`MAX_SLO_LIMIT`."""
    metric, sep, value = text.partition("=")
    metric = metric.strip()
    if metric.endswith("<"):  # the form capacity writes its SLOs in (stdout, capacity.md): 'ttft_p90<' was no metric
        metric = metric[:-1].rstrip()
    if not sep or not metric or not value.strip():
        raise UserError(f"--slo {text!r}: expected METRIC=SECONDS (or METRIC<=SECONDS), e.g. ttft_p90=2")
    if "," in value and "=" in value:  # ('ttft_p90=0.1,tpot_p90=0.2' said "'0.1,tpot_p90=0.2' is not a number")
        raise UserError(f"--slo {text!r}: one SLO per --slo; repeat the option for each, e.g. "
                        "--slo ttft_p90=2 --slo tpot_p90=0.1")
    if metric.endswith(">") and metric[:-1].rstrip() in SLO_METRICS:  # (it said "unknown metric 'ttft_p90>'")
        raise UserError(f"--slo {text!r}: an SLO is an upper limit, METRIC=SECONDS (or METRIC<=SECONDS); a lower "
                        "limit on a latency is no service level")
    if metric not in SLO_METRICS:
        stat, _, name = metric.partition("_")  # p90_ttft: the statistic first
        hint = f" (did you mean {name}_{stat}?)" if f"{name}_{stat}" in SLO_METRICS else ""
        raise UserError(f"--slo {text!r}: unknown metric {metric!r}{hint}; known: {', '.join(SLO_METRICS)}")
    from ltrsched.policies.registry import to_float

    try:
        limit = to_float(value.strip())
    except ValueError:
        raise UserError(f"--slo {text!r}: {value.strip()!r} is not a number of seconds") from None
    if not limit > 0:  # (nan too)
        raise UserError(f"--slo {text!r}: the limit must be a positive number of seconds, got {value.strip()}")
    if limit > MAX_SLO_LIMIT:  # (inf too, and 1e400, read as inf: it said "must be a positive number")
        raise UserError(f"--slo {text!r}: the limit must be at most {MAX_SLO_LIMIT:.0e} s (about 3 years), "
                        f"got {value.strip()}")
    return Slo(metric, limit)


def parse_slos(texts: Sequence[str]) -> list[Slo]:
    """Every ``--slo`` parsed; at least one, each metric once."""
    if not texts:
        raise UserError("give at least one --slo METRIC=SECONDS, e.g. --slo ttft_p90=2")
    slos = [parse_slo(t) for t in texts]
    seen = set()
    for slo in slos:
        if slo.metric in seen:
            raise UserError(f"--slo: {slo.metric} is given twice")
        seen.add(slo.metric)
    return slos


def min_rate(num_requests: int) -> float:
    """The lowest rate a search tries for runs of ``num_requests`` requests [req/s]: their Poisson arrivals span
    about ``num_requests / rate`` seconds, which must stay well below the 1e8 s a run's arrivals may
    (``MAX_ARRIVAL_TIME_S``; a tenth of it here, so that no draw of the gaps reaches it)."""
    from ltrsched.workloads.arrivals import MAX_ARRIVAL_TIME_S

    return 10.0 * num_requests / MAX_ARRIVAL_TIME_S


def requests_per_run(template: RunSpec) -> int:
    """The requests in each run of ``template``: its ``num_requests``, or where that is None (all), its workload's."""
    if template.num_requests is not None:
        return template.num_requests
    from ltrsched.experiments.runner import base_workload

    return len(base_workload(template))


def round_rate(rate: float) -> float:
    """``rate`` rounded to :data:`RATE_DIGITS` significant digits."""
    return float(f"{rate:.{RATE_DIGITS - 1}e}")


@dataclass
class RatePoint:
    """What the runs at one rate showed: each SLO metric's mean over the seeds and per seed."""

    rate: float
    means: dict[str, float]
    per_seed: dict[str, list[float]]
    violated: tuple[str, ...]  # metrics whose mean exceeds their SLO
    queue_free: bool = False  # the runs formed no queue (QUEUE_FREE_STEPS); False where a summary lacks the metrics
    limits: dict[str, float] = field(default_factory=dict)  # each SLO metric's limit [s or s/token]
    stopped: str = ""  # a seed's run stopped for preemption thrash: its one-line error (then no metrics: each inf)
    #: Each SLO metric of the same runs without their queueing delay, per seed [s or s/token]: every request's metric
    #: from its first scheduling instead of its arrival, at the low end of its noise (:func:`service_summary`); inf
    #: where missing. Empty where not measured (the search measures it while no rate has met the SLOs): then no floor
    #: (:meth:`Search.floor_reached`).
    service: dict[str, list[float]] = field(default_factory=dict)
    #: The runs' hashes, one per seed in the seeds' order: each run's directory is ``runs/<hash>`` (a run stopped for
    #: preemption thrash has none: it saves no result). Empty where not recorded.
    run_hashes: tuple[str, ...] = ()

    @property
    def meets(self) -> bool:
        return not self.violated and not self.stopped


#: What the table, the rates file and the figures say of a rate whose runs a preemption thrash stopped.
STOPPED_TEXT = "stopped: preemption thrash"


def stopped_point(slos: Sequence[Slo], rate: float, error: str) -> RatePoint:
    """A rate at which a run stopped for preemption thrash (``error``: its line): it misses the SLOs, no metrics
    (each mean infinite, no per-seed value), and it shows no queue-free service (so it never ends a halving)."""
    return RatePoint(rate, {s.metric: math.inf for s in slos}, {s.metric: [] for s in slos}, (), False,
                     {s.metric: s.limit for s in slos}, stopped=error)


def _late(value: float | None) -> float:
    """A summary's metric as a number [s]; missing or undefined (None) counts as infinitely late."""
    return math.inf if value is None else float(value)


def evaluate(slos: Sequence[Slo], rate: float, summaries: Sequence[dict],
             services: Sequence[dict] | None = None) -> RatePoint:
    """Judge one rate from its seeds' run summaries (a metric missing or undefined in a summary, e.g. no request
    finished, counts as infinitely late); ``services``: the same runs' :func:`service_summary`, one per summary, for
    the floor rule (None: none measured)."""
    per_seed = {s.metric: [_late(summ.get(s.metric)) for summ in summaries] for s in slos}
    means = {m: (math.fsum(v) / len(v) if all(math.isfinite(x) for x in v) else math.inf) for m, v in per_seed.items()}
    violated = tuple(s.metric for s in slos if not means[s.metric] <= s.limit)
    service = {} if services is None else {s.metric: [_late(summ.get(s.metric)) for summ in services] for s in slos}
    return RatePoint(rate, means, per_seed, violated, _queue_free(summaries), {s.metric: s.limit for s in slos},
                     service=service)


def service_summary(requests: pl.DataFrame) -> dict[str, float]:
    """A run's :data:`FLOOR_METRICS` without the requests' queueing delays, each statistic at the low end of its
    noise: every request's metric as if it had arrived when it was first scheduled (its TTFT, E2E latency, latency
    per token and max waiting time less its own queueing delay [s or s/token]; TPOT unchanged), then per metric the
    mean less :data:`NOISE_SIGMAS` standard errors and each quantile ``q`` of ``n`` requests at
    ``q - NOISE_SIGMAS * sqrt(q (1 - q) / n)`` (the P90 of 30 requests, about the 27th value, is one request's: at
    the P84.5; of 2,000 at the P89.3). ``requests``: the run's ``requests.parquet``; a metric no request has is
    absent."""
    unqueued = request_metrics(requests.with_columns(arrival_time=pl.col("first_scheduled_time")))
    out = {}
    for metric in FLOOR_METRICS:
        values = unqueued[metric].drop_nulls().to_numpy().astype(np.float64)
        values = values[~np.isnan(values)]
        n = len(values)
        if not n:
            continue
        out[f"{metric}_mean"] = float(values.mean() - NOISE_SIGMAS * values.std() / math.sqrt(n))
        for label, q in QUANTILES.items():
            low = max(0.0, q - NOISE_SIGMAS * math.sqrt(q * (1 - q) / n))
            out[f"{metric}_{label}"] = float(np.quantile(values, low))
    return out


def _queue_free(summaries: Sequence[dict]) -> bool:
    """Whether runs formed no queue: their mean P90 queueing delay at most :data:`QUEUE_FREE_STEPS` mean P90 TPOTs."""
    def mean(key: str) -> float:
        values = [_late(summ.get(key)) for summ in summaries]
        return math.fsum(values) / len(values) if values else math.inf

    queue, step = mean("queueing_delay_p90"), mean("tpot_p90")
    return math.isfinite(queue) and math.isfinite(step) and queue <= QUEUE_FREE_STEPS * step


def _service(point: RatePoint, metric: str) -> list[float] | None:
    """Per seed, ``metric`` at ``point`` without the queueing delays (:attr:`RatePoint.service`) [s or s/token]; None
    where not measured, or a value is missing or not finite (no floor from it)."""
    service = point.service.get(metric, [])
    return service if service and all(math.isfinite(x) for x in service) else None


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


@dataclass(frozen=True)
class Floor:
    """Why a search stopped halving: ``metric`` [s or s/token] was ``value`` (mean over seeds) at ``rate`` [req/s],
    above its SLO's ``limit``, and at least ``bound`` at every lower rate (:meth:`Search.floor_reached`)."""

    metric: str
    rate: float
    value: float
    limit: float
    bound: float

    def __str__(self) -> str:
        return (f"{self.metric} {self.value:.4g} > {self.limit:g} even at {self.rate:g} req/s, where the runs form "
                f"no queue; without the queueing delay what is left is the latency of unloaded service, and the last "
                f"two halvings gained so little that no lower rate gets it below {self.bound:.4g}")


#: Slack of :func:`slo_bound` [s]: a run's latencies are differences of clock readings of up to ~1e9 s, each
#: rounded to float64 (its spacing there is 1.2e-7 s), so a latency may come out that much below its steps' sum.
BOUND_SLACK_S = 1e-6
#: Relative slack of :func:`slo_bound`: the rounding of a mean over thousands of requests and seeds (~1e-12).
BOUND_SLACK_REL = 1e-6
#: Per-request metrics each at least the duration of one step the request is in [s or s/token]: TTFT (the step
#: that samples its first token), TPOT (one step per later token), E2E latency and latency per token (one step per
#: output token), max waiting time (at least the TTFT). The queueing delay may be 0.
STEP_BOUNDED_METRICS = ("ttft", "tpot", "e2e_latency", "latency_per_token", "max_waiting_time")
#: Metrics under the floor rule (:meth:`Search.floor_reached`): those with a latency of unloaded service, at least a
#: step. Not the queueing delay: it is 0 on an idle engine, and its quantiles do not fade on a convex curve but drop
#: at once where the engine idles for enough arrivals. Measured (lmsys-like, 30 requests, seeds 0-2, fcfs on
#: a100-llama3-8b): P90 queueing delay 0.010-0.016 s at every halving from 8 to 0.125 req/s, its gains below the
#: seeds' noise (2 req/s above 4 for seed 0), then 0.001-0.009 s at 0.0625 and 0 for seeds 1-2 from 0.0156 req/s.
FLOOR_METRICS = STEP_BOUNDED_METRICS


def lightest_step_s(profile) -> float | None:
    """The shortest step a simulation on ``profile`` can take that computes a token [s]: one token of one sequence
    with no attention context, ``non_attention(1) + sampling(1) + overhead_s_per_step + overhead_s_per_seq``. Every
    step term is non-decreasing in the step's tokens, sequences and context (tables non-decreasing, coefficients at
    least 0: what a profile file must hold), so no step with a token is shorter; None for a profile object that does
    not hold that (its steps are not bounded by this one)."""
    from ltrsched.policies.step_shape import StepShape
    from ltrsched.sim.profiles.model import StepTimeProfile

    if not isinstance(profile, StepTimeProfile):
        return None
    tables = (profile.non_attention_s, profile.sampling_s)
    terms = (profile.decode_attention_s_per_kv_token, profile.prefill_attention_s_per_pair,
             profile.overhead_s_per_step, profile.overhead_s_per_seq)
    if any(b < a for ys in tables for a, b in zip(ys, ys[1:])) or not all(t >= 0 for t in terms):
        return None
    step = profile.step_time(StepShape(num_decode_seqs=1, decode_context_tokens=0))
    return step if math.isfinite(step) and step > 0 else None


@dataclass(frozen=True)
class Bound:
    """Why a search was ruled out before any run: ``metric`` [s or s/token] is at least ``bound`` at every rate
    (each request's value is at least the profile's lightest step, :func:`lightest_step_s`), above its SLO's
    ``limit``."""

    metric: str
    limit: float
    bound: float
    profile: str

    def __str__(self) -> str:
        return (f"{self.metric} > {self.limit:g} at every rate: ruled out by the bound, without running; no request's "
                f"{self.metric.rsplit('_', 1)[0]} is below the {self.bound:.4g} s of profile {self.profile}'s lightest "
                f"step (one token of one sequence)")


def slo_bound(template: RunSpec, slos: Sequence[Slo]) -> Bound | None:
    """The first SLO of ``slos`` that no rate can meet on ``template``'s profile (its limit below the profile's
    lightest step, less :data:`BOUND_SLACK_S` and :data:`BOUND_SLACK_REL`), as a :class:`Bound`; None if none is
    ruled out (or the profile cannot be read: its runs say why)."""
    from ltrsched.sim.simulate import resolve_profile

    metrics = [s for s in slos if s.metric.rsplit("_", 1)[0] in STEP_BOUNDED_METRICS]
    if not metrics:
        return None
    try:
        step = lightest_step_s(resolve_profile(template.profile))
    except UserError:
        return None
    if step is None:
        return None
    floor = step * (1 - BOUND_SLACK_REL) - BOUND_SLACK_S
    for slo in metrics:
        if slo.limit < floor:
            return Bound(slo.metric, slo.limit, step, str(template.profile))
    return None


#: Metrics whose SLO the floor of unloaded service rules out exactly (:func:`unloaded_floor`): TTFT alone. Each
#: request's TTFT under any load is at least its TTFT served alone, in every configuration, since
#:
#: * a step's time is non-decreasing in its tokens, sequences and decode context (what :func:`lightest_step_s` checks
#:   of a profile), and its prefill attention term is ``prefill_attention_s_per_pair`` times the pairs, whose sum over
#:   a prompt's chunks is the same however the prompt is cut;
#: * a prompt's chunk is cut only by the step's token budget (read in ``batching``'s paper rules: a KV shortage or the
#:   sequence cap drops whole members; vllm-v1 and every policy checked by simulation, below), so under load each
#:   prefill step of the request but its last either holds a full budget of tokens or the request's own full chunk: at
#:   least the alone run's full chunk's non-attention time; by induction the request's progress after j of its steps is
#:   at most alone's, so it needs at least as many steps, and its last holds at least alone's last chunk (or it needed a
#:   step more, of a full budget); a preemption only loses progress (recompute) or adds a swap; waiting adds time; every
#:   step holds at least its sequences (overheads, sampling).
#:
#: Not the later tokens: a token after a recompute comes from a prefill step, which on a short context can take less
#: than the decode step alone (a100-llama3-8b: prefill 4.2e-9 s per pair, decode 1.4e-7 s per KV token; below ~66
#: tokens of context), so TPOT, E2E latency, latency per token and the max waiting time have no exact floor and keep
#: the extrapolating rule (:meth:`Search.floor_reached`; each also a safe bound:
#: :data:`ALONE_BOUNDED_METRICS`), though none was seen faster under load: every policy (fcfs, srtf, ltr, ltr with
#: starvation prevention, mlfq, po, class), swap and recompute with 600 KV blocks, chunked or not, paper and vllm-v1
#: semantics, on lmsys-like, sharegpt and a Pareto-tailed variant (a100-llama3-8b), lmsys-like on a100-llama3-70b-tp8,
#: sharegpt on cpu-smollm2, 150 requests at 0.5 to 128 req/s each: no request's TTFT, TPOT, E2E latency, latency per
#: token or max waiting time below its own served alone (tests/test_capacity_unloaded.py checks TTFT).
UNLOADED_METRICS = ("ttft",)
#: Coefficient of variation of the alone runs' gamma inter-arrival times: nearly even gaps (5 sigma: 5%).
ALONE_CV = 0.01


def alone_specs(template: RunSpec, seeds: Sequence[int]) -> list[RunSpec]:
    """The runs that serve each request of ``template``'s runs alone, one per seed: the same requests (the seed draws
    them, whatever the arrivals) arriving at :func:`min_rate` with nearly even gaps (gamma, :data:`ALONE_CV`), about
    ``1e7 / num_requests`` s apart, far longer than a request served alone takes (:func:`served_alone` checks it).
    Served FCFS on one replica with no scoring (``policy`` ``fcfs``, ``scoring`` ``none``, no router): a request's TTFT
    served alone is the same whatever the policy, its scores and the router (:func:`first_tokens_alone`), so the
    configurations of a search that differ only in those share these runs."""
    rate = round_rate(min_rate(requests_per_run(template)))
    return [dataclasses.replace(template, experiment="capacity", setting=f"{template.workload} alone",
                                arrival="gamma", cv=ALONE_CV, rate=rate, seed=seed, policy="fcfs", scoring="none",
                                replicas=1, router=None) for seed in seeds]


def first_tokens_alone(spec: RunSpec) -> RunResult:
    """Serve ``spec``'s requests (an :func:`alone_specs` run) up to their first token: simulated in this process (not
    cached: it costs about what reading a cached run does) with each request's output cut to one token, so each takes
    its prompt's prefill steps instead of one step more per output token (sharegpt, 2,000 requests, a100-llama3-8b,
    seeds 0-1: 2,020 and 2,025 steps, 0.06 s of CPU once the workload is built, where serving every output token took
    544,862 and 548,995 steps; ``capacity --quick --slo ttft_p90=0.02``, which measures the floor for its five
    policies, from 46.7 to 8.5 s of CPU, one core of the 2-core Xeon machine at load 5-9, 2026-12-07).

    Each request's TTFT there is, to the bit, its TTFT served alone with its whole output, under the template's
    policy, scoring and router (tested on several workloads, configurations, policies and clusters in
    tests/test_capacity_unloaded.py). Served alone (:func:`served_alone`, checked on this run: it was scheduled at its
    arrival, on an engine every earlier request had left with its KV), a request's steps up to its first token
    depend only on its prompt, its arrival time and the configuration:

    * the batch: a policy only orders the live requests (the simulator checks that its rank is a permutation), and
      its hooks (``on_step``, ...) touch no batch, so the order of one request is that request whatever the policy,
      its scores or the output lengths they come from; ``batching.form_batch`` then reads the request's uncomputed
      prompt tokens, its computed tokens and residency and the blocks in use (none but its own), no output length;
    * no preemption: while its prompt is computed the request holds at most its prompt's blocks, fewer than the most
      it ever holds, which the run's fit check keeps within what a request alone may use; it is the one resident;
    * the step's time is the profile's of the step's shape (prefill tokens, attention pairs, one sequence);
    * the clock starts at the arrival time and each step ends at its start plus that time (the same floats), and the
      first token is sampled at the end of the step that computes the prompt's last token: before it the request
      has generated nothing, so the finish rule (generated >= output, a policy's extra tokens included) cannot end
      it sooner with any output length >= 1;
    * a cluster's replica runs the lone replica's loop with the same limits, and alone the router can only pick an
      idle replica, like every other; the preemption-thrash guard, scaled by the output tokens, acts only on
      preemptions.

    Cutting the outputs refuses nothing the template's runs ran (the fit checks need at most prompt + output
    tokens), and the one-token run is served alone wherever the whole one was (each request finishes sooner).
    Without the policy the run reads no score (the approximate oracle's ``ltr:tau=`` scores from one-token outputs,
    all tied, warned that the tau was out of reach). The requests keep their whole output lengths in
    :data:`WHOLE_OUTPUT` (for :func:`alone_bounds`)."""
    from ltrsched.experiments.runner import _sim_config, build_workload
    from ltrsched.policies import make_policy
    from ltrsched.sim import simulate

    workload = build_workload(spec)
    df = workload.df
    workload = workload.with_df(df.with_columns(pl.col("output_tokens").alias(WHOLE_OUTPUT),
                                                pl.lit(1, dtype=df.schema["output_tokens"]).alias("output_tokens")))
    return simulate(workload, make_policy(spec.policy), _sim_config(spec))


def served_alone(requests: pl.DataFrame) -> bool:
    """Whether every request of a run (its ``requests.parquet``) arrived after the one before it finished: each was
    served on an idle engine, scheduled when it arrived."""
    df = requests.sort("arrival_time")
    arrival, finish = df["arrival_time"].to_numpy(), df["finish_time"].to_numpy()
    first = df["first_scheduled_time"].to_numpy()
    return bool(np.all(np.isfinite(finish)) and np.all(arrival[1:] > finish[:-1]) and np.all(first == arrival))


def unloaded_floor(slos: Sequence[Slo], alone: Sequence[dict]) -> dict[str, float]:
    """Per SLO on a :data:`UNLOADED_METRICS` metric, the least its mean over the seeds can be at any rate [s]: the mean
    over the seeds of the statistic of the alone runs' summaries (``alone``, one per seed, each served alone:
    :func:`served_alone`), less :data:`BOUND_SLACK_S` and :data:`BOUND_SLACK_REL` for rounding. Each request's metric
    at any rate is at least its own alone (:data:`UNLOADED_METRICS`), so each seed's mean and quantiles are (a
    quantile of values each at least another's is at least that one's), and so is their mean. A metric missing from
    a summary has no floor."""
    out = {}
    for slo in slos:
        if slo.metric.rsplit("_", 1)[0] not in UNLOADED_METRICS:
            continue
        values = [summ.get(slo.metric) for summ in alone]
        if values and all(v is not None and math.isfinite(v) for v in values):
            out[slo.metric] = _mean([float(v) for v in values]) * (1 - BOUND_SLACK_REL) - BOUND_SLACK_S
    return out


#: Metrics with a safe lower bound (not exact) from the runs serving each request alone (:func:`alone_bounds`, each
#: request's from :func:`request_bounds`). Per request, with ``a`` its TTFT served alone (:data:`UNLOADED_METRICS`: its
#: TTFT at any rate is at least ``a``), ``p`` its prompt tokens, ``o`` its output tokens (the workload's), ``s = o + x``
#: those it is served (``x``: the policy's extra tokens, PO's length estimate, sampled like the others) and ``L`` the
#: profile's lightest step (:func:`lightest_step_s`), at any rate:
#:
#: * each later token ``j`` (2..s) is sampled at the end of a context of ``c = p + j - 1`` tokens, and the steps from
#:   the token before to it take at least ``L + m(c)``, ``m(c) = min(d c, q c (c + 1) / 2)``: they run one after the
#:   other on the request's one replica; the last of them samples the token (a step samples at most one token of a
#:   request: a decode, or the prefill of a chunk or a recompute ending at its context's last token) and is at least
#:   ``L`` in its terms other than attention (each at least the lightest step's); and they hold at least this
#:   request's attention over that context: a decode reads ``c`` KV tokens (``d c``, ``d``: the profile's decode
#:   attention per KV token), while after a recompute (every computed token thrown away: ``policies.recompute``) the
#:   prefill chunks that recompute the ``c`` tokens hold ``c (c + 1) / 2`` causal pairs however they are cut (``q``:
#:   per pair; a 1-token last chunk counts as a decode of ``c``); swaps and waiting only add time. These gaps follow
#:   the first token and one another, so the later tokens take at least ``(s - 1) L + A``, ``A`` the sum of ``m(c)``
#:   over ``c = p + 1 .. p + s - 1`` (:func:`later_tokens_attention_s`);
#: * E2E latency >= ``a + (s - 1) L + A`` (its TTFT, then its later tokens, the extra ones included);
#: * latency per token >= ``(a + (s - 1) L + A) / o`` (the E2E latency over the workload's output tokens);
#: * TPOT >= ``L + A / (s - 1)`` for a request of ``s > 1`` tokens (its later tokens' time over ``s - 1``; TPOT is
#:   undefined for the others, at every rate);
#: * max waiting time >= ``max(a, L + m(p + s - 1))`` for ``s > 1`` (else ``a``): at least the TTFT, and at least the
#:   largest gap between two tokens, at least the last one's (``m`` grows with the context).
#:
#: Each statistic of values each at least their bound is at least the bound's statistic, and so is the mean over the
#: seeds. The decode is the lesser from ``c >= 2 d / q - 1`` (66 tokens on a100-llama3-8b, 21 on cpu-smollm2), where a
#: token's bound is its own decode served alone; only the tokens of shorter contexts count less (a token after a
#: recompute there may beat the decode served alone, which is why no exact floor of these metrics exists). So each
#: statistic served alone is within 0.01% of its bound, mostly the slack for rounding (:data:`BOUND_SLACK_S` is 0.006%
#: of a 0.016 s step): 0.000-0.003% for E2E latency, 0.007-0.009% per token and for TPOT, 0.002-0.007% for max
#: waiting time (a100-llama3-8b, fcfs: sharegpt and lmsys-like, 2,000 requests, seed 0; sharegpt, 200 requests, seeds
#: 0-2; lmsys-like, 30 requests, seed 0); with ``L`` alone per later token (and ``a`` alone for the max waiting time)
#: 0.11-1.03%, 0.16-0.45% and 0-0.07%.
#:
#: What it saves, at limits 1% below the bound with ``L`` alone (0.05% for latency per token; fcfs on a100-llama3-8b):
#: sharegpt, 200 requests, seeds 0-1: E2E latency mean, P50 and P90, max waiting time mean and P90, latency per token
#: P99 halved 10 times (11 rates, 22 runs) to ``none``, E2E P99 7 rates, max waiting time P99 4, latency per token mean
#: 8 and P90 9; each now ``none`` at the first rate (2 runs and the 2 runs serving each request alone). lmsys-like, 30
#: requests, seed 0: the E2E latency's four statistics and the mean max waiting time 11 rates, now 1. Between that
#: bound and this one (sharegpt, 200 requests, seeds 0-2): P90 E2E latency <= 8.46 s (bound 8.444 -> 8.468), P90
#: latency per token <= 0.01592 s (0.01588 -> 0.01593) and P50 max waiting time <= 0.01594 s (0.01593 -> 0.01594) each
#: halved 10 times (11 rates, 36 runs with the 3 alone) and are now ``none`` at the first rate (6 runs). TPOT (the
#: attention term was first its own): sharegpt, 200 requests, seeds 0-2, P90 TPOT <= 0.0159 s (the lightest step
#: 0.01586, the bound 0.01592): 11 rates and 33 runs, the extrapolating rule's, now 1 rate (3 runs and the 3 alone;
#: README.md, "capacity" section, gives the commands).
ALONE_BOUNDED_METRICS = ("e2e_latency", "latency_per_token", "max_waiting_time", "tpot")
#: What the rounding of a run's clock may take off each step's measured length [s]: each step's end is the float
#: nearest its start plus its time, and clock readings stay below 2**28 s (arrivals end by 1e8 s,
#: ``MAX_ARRIVAL_TIME_S``), where float64's spacing is at most this.
ALONE_STEP_SLACK_S = float(np.spacing(2.0**28))
#: The column of :func:`first_tokens_alone`'s requests that keeps each request's whole output length [tokens].
WHOLE_OUTPUT = "whole_output_tokens"


def later_tokens_attention_s(prompt: np.ndarray, served: np.ndarray, decode_s_per_kv_token: float,
                              prefill_s_per_pair: float) -> np.ndarray:
    """Per request (arrays aligned: ``prompt`` tokens, ``served`` output tokens, a policy's extra ones included), the
    least attention time its later tokens' steps hold under any load [s] (:data:`ALONE_BOUNDED_METRICS`, TPOT): the
    sum over the contexts ``c`` from ``prompt + 1`` to ``prompt + served - 1`` of ``min(d c, q c (c + 1) / 2)``, ``d``
    the decode attention per KV token [s/token], ``q`` the prefill attention per pair [s/pair] (0 for a request of
    one token). In closed form: the quadratic below ``c = 2 d / q - 1``, where the two cross, the linear from it."""
    d, q = float(decode_s_per_kv_token), float(prefill_s_per_pair)
    low = prompt.astype(np.float64) + 1.0
    high = prompt.astype(np.float64) + served.astype(np.float64) - 1.0  # (high < low: no later token)
    if d <= 0.0 or q <= 0.0:
        return np.zeros_like(low)
    cross = 2.0 * d / q - 1.0  # from this context on a decode costs no more than its recompute
    cross = float(math.ceil(cross)) if cross < 2.0**62 else 2.0**62  # (a tiny q: inf, no integer; past any context)

    def count(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # of the contexts a..b
        return np.maximum(b - a + 1.0, 0.0)

    def tetra(n: np.ndarray) -> np.ndarray:  # sum of c (c + 1) / 2 for c = 1..n
        return n * (n + 1.0) * (n + 2.0) / 6.0

    quad_high = np.minimum(high, cross - 1.0)
    quad = np.where(quad_high >= low, tetra(quad_high) - tetra(low - 1.0), 0.0)
    lin_low = np.maximum(low, cross)
    lin = np.where(high >= lin_low, (lin_low + high) * count(lin_low, high) / 2.0, 0.0)
    return q * quad + d * lin


def request_bounds(ttft: np.ndarray, prompt: np.ndarray, outputs: np.ndarray, step_s: float, extra_tokens: int = 0,
                   attention: tuple[float, float] = (0.0, 0.0)) -> dict[str, np.ndarray]:
    """Per request (arrays aligned: ``ttft`` served alone [s], ``prompt`` tokens, ``outputs`` the workload's output
    tokens), the least each :data:`ALONE_BOUNDED_METRICS` metric can be at any rate [s or s/token], the proof's terms:
    its later tokens' steps ``(s - 1) L + A`` (``s = outputs + extra_tokens``, ``L = step_s`` less
    :data:`ALONE_STEP_SLACK_S`, ``A`` :func:`later_tokens_attention_s` with ``attention``, the profile's decode
    attention per KV token [s/token] and prefill attention per pair [s/pair]; 0, 0 where unknown: the lightest step
    alone); E2E latency ``ttft + (s - 1) L + A``; latency per token that over ``outputs``; TPOT ``((s - 1) L + A) /
    (s - 1)`` (only the requests of ``s > 1`` tokens: the others have none); max waiting time the TTFT, or the last
    token's step, ``L`` plus the attention over the last context, if longer."""
    step = max(0.0, step_s - ALONE_STEP_SLACK_S)
    outputs = outputs.astype(np.float64)
    served = outputs + extra_tokens
    later = (served - 1) * step + later_tokens_attention_s(prompt, served, *attention)  # the later tokens' steps [s]
    e2e = ttft + later
    # the last token's own step (its context prompt + served - 1: one later token of a request served - 1 long; none
    # for a request of one token)
    last = np.where(served > 1, step, 0.0) + later_tokens_attention_s(prompt + served - 2, np.minimum(served, 2),
                                                                       *attention)
    many = served > 1  # (TPOT is undefined for a request of one token)
    return {"e2e_latency": e2e, "latency_per_token": e2e / outputs, "max_waiting_time": np.maximum(ttft, last),
            "tpot": later[many] / (served[many] - 1)}


def alone_bounds(slos: Sequence[Slo], alone: Sequence[pl.DataFrame], step_s: float,
                 extra_tokens: int = 0, attention: tuple[float, float] = (0.0, 0.0)) -> dict[str, float]:
    """Per SLO on an :data:`ALONE_BOUNDED_METRICS` metric, a safe lower bound on its mean over the seeds at any rate
    [s or s/token]: the mean over the seeds of the statistic (as :func:`ltrsched.metrics.summarize` takes it) of each
    request's bound (:func:`request_bounds`), from ``alone`` (:func:`first_tokens_alone`'s requests, one frame per
    seed, each served alone: their ``ttft``, ``prompt_tokens`` and :data:`WHOLE_OUTPUT`), ``step_s``, the profile's
    lightest step [s] (0 where unknown), ``extra_tokens``, the policy's extra output tokens per request, and
    ``attention``, the profile's decode attention per KV token [s/token] and prefill attention per pair [s/pair] (0, 0
    where unknown); then less :data:`BOUND_SLACK_S` and :data:`BOUND_SLACK_REL` as :func:`unloaded_floor`. Below a
    limit it rules nothing out: the metric may still have no rate that meets it."""
    per_seed = [request_bounds(requests["ttft"].to_numpy().astype(np.float64),
                               requests["prompt_tokens"].to_numpy().astype(np.float64),
                               requests[WHOLE_OUTPUT].to_numpy(), step_s, extra_tokens, attention)
                for requests in alone]
    out = {}
    for slo in slos:
        metric, stat = slo.metric.rsplit("_", 1)
        if metric not in ALONE_BOUNDED_METRICS or not per_seed:
            continue
        values = [bounds[metric] for bounds in per_seed]
        if not all(len(v) and np.isfinite(v).all() for v in values):
            continue
        stats = [float(v.mean()) if stat == "mean" else float(np.quantile(v, QUANTILES[stat])) for v in values]
        out[slo.metric] = _mean(stats) * (1 - BOUND_SLACK_REL) - BOUND_SLACK_S
    return out


@dataclass(frozen=True)
class UnloadedFloor(Floor):
    """Why a search stopped halving: ``metric`` [s] was ``value`` (mean over seeds) at ``rate`` [req/s] and is at least
    ``bound`` at every rate (its value with each request served alone, :func:`unloaded_floor`), above its SLO's
    ``limit`` (a :class:`Floor` known exactly, not extrapolated)."""

    def __str__(self) -> str:
        return (f"{self.metric} {self.value:.4g} > {self.limit:g} at {self.rate:g} req/s, and at every rate: ruled out "
                f"by the floor of unloaded service, {self.bound:.4g} s with each request served alone (no request's "
                f"{self.metric.rsplit('_', 1)[0]} is shorter under load)")


@dataclass(frozen=True)
class AloneBound(Floor):
    """Why a search stopped halving: ``metric`` [s or s/token] was ``value`` (mean over seeds) at ``rate`` [req/s] and
    is at least ``bound`` at every rate (:func:`alone_bounds`, from each request served alone and ``step``, the
    profile's lightest step [s]), above its SLO's ``limit``."""

    step: float = 0.0
    extra_tokens: int = 0  # the policy's extra output tokens per request (PO's length estimate), counted in the bound

    def __str__(self) -> str:
        metric = self.metric.rsplit("_", 1)[0]
        unit = " s/token" if metric in ("latency_per_token", "tpot") else " s"
        extra = f", its policy's {self.extra_tokens} extra tokens included" if self.extra_tokens else ""
        step = (f"{self.step:.4g} s (the profile's lightest step) plus its own attention over its context (a decode's, "
                f"or a recompute's if less)")
        later = f" plus, per later output token, {step}{extra}"
        what = {"e2e_latency": f"each request's ttft served alone{later}",
                "latency_per_token": f"each request's ttft served alone{later}, over its output tokens",
                "max_waiting_time": f"each request's ttft served alone, or its last output token's step if longer: "
                                    f"{step}{extra}",
                "tpot": f"each later output token of a request at least {step}{extra}"}[metric]
        return (f"{self.metric} {self.value:.4g} > {self.limit:g} at {self.rate:g} req/s, and at every rate: ruled out "
                f"by the bound from unloaded service, {self.bound:.4g}{unit}: {what} "
                f"(no request's {metric} is below it under load)")


@dataclass
class Search:
    """The bracketing-and-bisection search for one template (see the module's docstring).

    After :attr:`done`: ``low`` is the capacity (None: even the lowest rate tried missed the SLOs),
    ``high`` the lowest rate seen to miss them (None: every rate up to ``max_rate`` met them).
    """

    template: RunSpec
    start_rate: float
    tolerance: float
    max_rate: float
    low: float | None = None
    high: float | None = None
    points: dict[float, RatePoint] = field(default_factory=dict)
    done: bool = False
    #: set where halving stopped because no lower rate can meet an SLO (an UnloadedFloor or AloneBound where the runs
    #: serving each request alone showed it)
    floor: Floor | None = None
    #: Each SLO's floor of unloaded service (:func:`unloaded_floor`), measured at the first rate that missed such an
    #: SLO while no rate had met the SLOs; None: not measured (or its runs were not served alone)
    unloaded: dict[str, float] | None = None
    #: Each SLO's safe bound from the same runs (:func:`alone_bounds`, [s or s/token]), measured with :attr:`unloaded`
    alone_bounds: dict[str, float] = field(default_factory=dict)
    #: The profile's lightest step [s] (0: unknown) and the policy's extra output tokens that :attr:`alone_bounds` used
    alone_step: float = 0.0
    alone_extra_tokens: int = 0
    bound: Bound | None = None  # set where the profile alone ruled every rate out, before any run (rule_out)
    _next: float | None = None

    def __post_init__(self) -> None:
        self._next = round_rate(self.start_rate)

    @property
    def next_rate(self) -> float | None:
        """The rate to run next; None once the search is done."""
        return None if self.done else self._next

    def record(self, point: RatePoint) -> None:
        """Take the result at :attr:`next_rate` and choose the next rate (or finish)."""
        assert not self.done and point.rate == self._next
        self.points[point.rate] = point
        r = point.rate
        if point.meets:
            self.low = r
        else:
            self.high = r
        if self.high is None:  # every rate so far met the SLOs: double, up to max_rate (as rounded: a max_rate of
            nxt = round_rate(r * 2)  # 1000.4 tried its rounding, 1000, for ever, each time below 1000.4)
            self._finish_or(nxt if r < round_rate(self.max_rate) else None, cap=self.max_rate)
        elif self.low is None:  # every rate so far missed: halve, at most MAX_HALVINGS times, not below min_rate,
            half = round_rate(r / 2)  # nor below a rate already at the floor of unloaded latency
            self.floor = self.unloaded_reached(point) or self.floor_reached(point)
            self._finish_or(half if len(self.points) <= MAX_HALVINGS and half >= self._lowest_rate()
                            and self.floor is None else None)
        elif self.high / self.low <= 1 + self.tolerance:
            self.done = True
        else:
            mid = round_rate(math.sqrt(self.low * self.high))
            self._finish_or(mid if self.low < mid < self.high else None)

    def rule_out(self, bound: Bound) -> None:
        """End the search before any run: ``bound`` shows that no rate meets an SLO (status ``none``)."""
        assert not self.points
        self.bound, self.done = bound, True

    def unloaded_reached(self, point: RatePoint) -> UnloadedFloor | None:
        """Whether ``point``, a rate that missed, missed an SLO whose floor of unloaded service (:attr:`unloaded`) is
        above its limit: then no rate meets it, exactly (:data:`UNLOADED_METRICS`)."""
        for metric in point.violated:
            bound = (self.unloaded or {}).get(metric)
            if bound is not None and bound > point.limits[metric]:
                return UnloadedFloor(metric, point.rate, point.means[metric], point.limits[metric], bound)
            bound = self.alone_bounds.get(metric)
            if bound is not None and bound > point.limits[metric]:
                return AloneBound(metric, point.rate, point.means[metric], point.limits[metric], bound,
                                  self.alone_step, self.alone_extra_tokens)
        return None

    def needs_unloaded(self, point: RatePoint) -> bool:
        """Whether the search should measure its floor of unloaded service (:func:`alone_specs`) before taking
        ``point``: no rate has met the SLOs, ``point`` misses one on a :data:`UNLOADED_METRICS` or
        :data:`ALONE_BOUNDED_METRICS` metric with runs that formed no queue (:attr:`RatePoint.queue_free`: above
        capacity the halvings go on whatever the floor, and a search that then finds its capacity would pay the runs
        for nothing), and none was measured yet. Never for a template with a ``duration`` or a ``stop_time``: its runs
        summarise only the requests that arrive, or finish, in time, another set at each rate, which the alone runs do
        not serve (lmsys-like, 30 requests, ``duration`` 5 s: 14 requests at 4 req/s, 8 at 1, and 1 in the alone
        run, whose floor was that one request's TTFT)."""
        timed = self.template.duration is not None or self.template.stop_time is not None
        return (self.unloaded is None and self.low is None and not point.meets and point.queue_free and not timed
                and any(m.rsplit("_", 1)[0] in UNLOADED_METRICS + ALONE_BOUNDED_METRICS for m in point.violated))

    def floor_reached(self, point: RatePoint) -> Floor | None:
        """Whether ``point``, a halving that missed, shows that no lower rate meets one of its missed SLOs.

        Each request's metric is its queueing delay (arrival to first scheduled; none in TPOT) plus its service (the
        same metric from its first scheduling, :func:`service_summary`), so a run's metric is at least its service's,
        statistic by statistic, at every rate. Below saturation the service falls as the rate falls, by less at each
        halving (a convex curve through the service of an idle engine at rate 0: sharing a step with others fades as
        the load does). So where the halvings from ``4r`` to ``2r`` and from ``2r`` to ``r`` (the next two rates tried
        above) show such a curve, the second gaining no more than the first, the first's gain, ``s(4r) - s(2r)``, is
        at least all that the rates below ``r`` can still gain. Where even ``s(r)`` (the mean over the seeds, each
        seed's statistic at the low end of its requests' noise) less twice that gain stays above the limit, no rate
        meets the SLO. (Not less the seeds' spread: each seed is the same requests at every rate, so a seed whose
        requests are slower is so at every rate, which is no noise; `capacity --quick -p fcfs`: seed 1's P90 TTFT
        without the queueing delay 0.0012-0.0013 s above seed 0's at every rate from 0.5 to 0.0039 req/s.)

        Why not the metric itself, and one halving, as before: the queueing delay is on no convex curve (its quantiles
        drop at once, by about a step, where few enough arrivals find the engine busy; lmsys-like, 30 requests, seed
        0, fcfs: P90 TTFT 0.0344 s at 2 req/s, 0.0315 at 1, 0.0222 at 0.0156); a run short enough to be a burst at
        the upper rates is flat there, far from its floor (P90 TPOT 0.01681 s at 4 req/s, 0.01684 at 2, 0.01655 at
        1); and a P90 of 30 requests is one request's value, so its gains jump (:data:`NOISE_SIGMAS`). Each ended
        searches at ``none`` that a lower rate met.

        The argument needs the rates on the unloaded side of the curve, where the runs form no queue
        (:data:`QUEUE_FREE_STEPS`): far above capacity the metric is as flat, every run a burst, but there requests
        wait hundreds of steps to start. A point without the service (:attr:`RatePoint.service`), a summary without
        the queueing delay or TPOT never stops the search, nor does an SLO on the queueing delay, which has no
        latency of unloaded service to stop at (:data:`FLOOR_METRICS`), nor does an SLO whose exact floor
        (:attr:`unloaded`) was measured: it is at most the limit, or :meth:`unloaded_reached` stopped the search."""
        above = self._above(point)  # (halved, rounded: not always exactly twice point.rate)
        above2 = self._above(above) if above is not None else None
        if above2 is None or above.meets or above2.meets:
            return None
        if not (point.queue_free and above.queue_free and above2.queue_free):
            return None
        for metric in point.violated:
            if metric.rsplit("_", 1)[0] not in FLOOR_METRICS or metric in (self.unloaded or {}):
                continue  # (an exact floor of unloaded service at most the limit: a low enough rate meets it)
            service, service1, service2 = (_service(p, metric) for p in (point, above, above2))
            if service is None or service1 is None or service2 is None:
                continue
            gain, earlier = max(0.0, _mean(service1) - _mean(service)), max(0.0, _mean(service2) - _mean(service1))
            if gain > earlier:  # no sign of a convex curve yet
                continue
            bound = _mean(service) - 2 * earlier
            limit = point.limits[metric]
            if bound > limit:
                return Floor(metric, point.rate, point.means[metric], limit, bound)
        return None

    def _above(self, point: RatePoint) -> RatePoint | None:
        """The point of the next rate tried above ``point``'s; None if none."""
        return self.points.get(min((r for r in self.points if r > point.rate), default=None))

    def _lowest_rate(self) -> float:
        """:func:`min_rate` of the template's runs [req/s] (a template of all its workload's requests, num_requests
        None, was a TypeError traceback at the first halving, after its runs)."""
        return min_rate(requests_per_run(self.template))

    def _finish_or(self, rate: float | None, cap: float | None = None) -> None:
        if rate is None:
            self.done = True
        else:
            self._next = min(rate, round_rate(cap)) if cap is not None else rate

    def rounds_left(self) -> tuple[int, int]:
        """Rounds this search still runs, the next one included: (likely, most). Likely: where the rate after the next
        brackets the capacity (the doubling or halving ends there), then the bisection of that bracket
        (:func:`bisection_rounds`); where it is bracketed already, its bisection alone (exact, as the rounding of
        rates goes). Most: every rate up to ``max_rate`` met (doubling) or :data:`MAX_HALVINGS` halvings all missed,
        then a bisection of a 2x bracket. A floor of unloaded service (:meth:`unloaded_reached`,
        :meth:`floor_reached`) or the lowest rate (:func:`min_rate`) may end a halving sooner; never later."""
        if self.done:
            return 0, 0
        nxt, tol = self._next, self.tolerance
        cap = round_rate(self.max_rate)
        doubled = bisection_rounds(nxt, round_rate(nxt * 2), tol)  # (a 2x bracket at this scale)
        halvings_left = MAX_HALVINGS + 1 - len(self.points)  # (rates a halving may still try: record's rule)
        if self.low is not None and self.high is not None:
            rounds = bisection_rounds(self.low, self.high, tol)
            return rounds, rounds
        if self.low is not None:  # doubling: the next rate misses (or, at the cap, meets: done)
            up = 1 + math.ceil(math.log2(max(cap / nxt, 1.0)))  # rates from the next to the cap
            likely = 1 + (bisection_rounds(self.low, nxt, tol) if nxt < cap else 0)
            return likely, max(likely, up + doubled)
        if self.high is not None:  # halving: the next rate meets
            likely = 1 + bisection_rounds(nxt, self.high, tol)
            return likely, max(likely, halvings_left + doubled)
        up = 1 + math.ceil(math.log2(max(cap / nxt, 1.0)))  # the first round: up or down, one rate more, then bisect
        likely = 2 + doubled
        return likely, max(likely, max(up, halvings_left) + doubled)

    @property
    def capacity(self) -> float | None:
        return self.low

    @property
    def status(self) -> str:
        """``found`` (a bracket within the tolerance), ``above max`` (every rate up to the cap met the
        SLOs), ``none`` (no rate tried met them; :attr:`floor` says why no lower rate was tried, where that was
        the reason, :attr:`bound` why no rate was, where the profile ruled them all out) or ``open`` (still
        running)."""
        if not self.done:
            return "open"
        if self.low is None:
            return "none"
        if self.high is None:
            return "above max"
        return "found"


def bisection_rounds(low: float, high: float, tolerance: float) -> int:
    """Rounds a search bisecting the bracket [``low``, ``high``] [req/s] runs until ``high / low <= 1 + tolerance``:
    each round's rate is the bracket's geometric midpoint rounded (:func:`round_rate`), about ``ceil(log2(ln(high /
    low) / ln(1 + tolerance)))`` (4 for a 2x bracket at 5%); counted keeping the wider half each round (the most the
    rounding may take), and ending where a midpoint rounds onto an end (:meth:`Search.record`)."""
    rounds = 0
    while high / low > 1 + tolerance:
        mid = round_rate(math.sqrt(low * high))
        if not low < mid < high:
            break
        rounds += 1
        low, high = (mid, high) if high / mid >= mid / low else (low, mid)
    return rounds


def rounds_estimate(searches: Sequence[Search]) -> tuple[int, int]:
    """Rounds the searches still run, the next one included: (likely, most), the most of their
    :meth:`Search.rounds_left` (they advance in lockstep, one round running every open search's next rate)."""
    left = [s.rounds_left() for s in searches]
    return max((likely for likely, _ in left), default=0), max((most for _, most in left), default=0)


def round_text(number: int, searches: Sequence[Search]) -> str:
    """What the progress shows of round ``number`` (from 1) of ``searches``: ``capacity round 3 of ~7 (at most 12)``;
    the estimate is :func:`rounds_estimate`'s, from the searches' state before the round; ``at most`` left out where it
    is the likely count (a bracket's bisection)."""
    likely, most = rounds_estimate(searches)
    text = f"capacity round {number} of ~{number - 1 + likely}"
    return text + (f" (at most {number - 1 + most})" if most > likely else "")


def _show_round(bar, text: str) -> None:
    """``text`` as ``bar``'s label: the plain line's (:class:`~ltrsched.progress.PlainProgress`, ``LABEL: K of N runs
    done, S s``) or tqdm's description; nothing without a bar."""
    from ltrsched.progress import PlainProgress

    if isinstance(bar, PlainProgress):
        bar.label = text
    elif bar is not None and hasattr(bar, "set_description"):
        bar.set_description(text)


def specs_at(template: RunSpec, rate: float, seeds: Sequence[int]) -> list[RunSpec]:
    """The runs of ``template`` at ``rate`` [req/s], one per seed (Poisson arrivals)."""
    return [dataclasses.replace(template, experiment="capacity", setting=f"{template.workload} @ {rate:g}",
                                arrival=template.arrival if template.arrival in ("poisson", "gamma") else "poisson",
                                rate=rate, seed=seed)
            for seed in seeds]


def search_capacity(templates: Sequence[RunSpec], slos: Sequence[Slo], seeds: Sequence[int], out: str | Path,
                    backend, start_rate: float = 4.0, tolerance: float = 0.05, max_rate: float = 1024.0,
                    bar=None, prepare=None) -> tuple[list[Search], RunStats]:
    """Run one :class:`Search` per template to the end; returns them and what the runner did over all
    rounds. ``backend``: an open :class:`~ltrsched.experiments.runner.Backend`; ``bar``: a progress bar
    (:func:`ltrsched.progress.progress_bar`'s), each round's runs added to its total; ``prepare``: called with each
    round's runs still to compute (:func:`~ltrsched.experiments.runner.run_all`'s, e.g. loading a predictor)."""
    from ltrsched.experiments.runner import load_requests, load_summary, run_all, run_hashes

    seeds, start_rate, tolerance, max_rate = search_arguments(templates, slos, seeds, start_rate, tolerance, max_rate)
    searches = [Search(t, start_rate, tolerance, max_rate) for t in templates]
    for s in searches:
        bound = slo_bound(s.template, slos)
        if bound is not None:
            s.rule_out(bound)
            _say(f"capacity: {describe(s.template)}: none; {bound}", bar)
    tally = RunStats()
    served: dict[RunSpec, RunResult] = {}  # the runs serving each request alone, by spec (first_tokens_alone)
    for number in itertools.count(1):
        open_ = [(s, s.next_rate) for s in searches if s.next_rate is not None]
        if not open_:
            return searches, tally
        _show_round(bar, round_text(number, searches))  # (the runs done grow each round: this says how far it goes)
        batch = {id(s): specs_at(s.template, rate, seeds) for s, rate in open_}
        specs = [spec for specs in batch.values() for spec in specs]
        round_hashes = run_hashes(specs)  # (each run's once: run_all and the points read it)
        stats = run_all(specs, out, backend=backend, bar=bar, progress=False, thrash_ok=True, hashes=round_hashes,
                        prepare=prepare)
        tally.merge(stats)
        points = {}
        for s, rate in open_:
            hashes = [round_hashes[spec] for spec in batch[id(s)]]
            runs = list(zip(batch[id(s)], hashes))
            stopped = [stats.stopped[h] for h in hashes if h in stats.stopped]
            if stopped:
                points[id(s)] = stopped_point(slos, rate, stopped[0])
                _say(f"capacity: {describe(s.template)}: {rate:g} req/s misses the SLOs ({STOPPED_TEXT}): {stopped[0]}",
                     bar)
            else:  # (the service, for the floor rule, only while halving: no rate has met the SLOs)
                services = None if s.low is not None else [service_summary(load_requests(out, spec, h))
                                                           for spec, h in runs]
                points[id(s)] = evaluate(slos, rate, [load_summary(out, spec, h) for spec, h in runs], services)
            points[id(s)].run_hashes = tuple(hashes)
        for s, _ in open_:
            if s.needs_unloaded(points[id(s)]):
                specs = alone_specs(s.template, seeds)
                for spec in specs:  # (each served once: searches that differ only in policy or router share them)
                    if spec not in served:
                        served[spec] = first_tokens_alone(spec)
                runs = [served[spec] for spec in specs]
                alone = all(served_alone(r.requests) for r in runs)
                s.unloaded = unloaded_floor(slos, [r.summary for r in runs]) if alone else {}
                s.alone_step, s.alone_extra_tokens = _lightest_step(s.template), _extra_tokens(s.template)
                s.alone_bounds = (alone_bounds(slos, [r.requests for r in runs], s.alone_step, s.alone_extra_tokens,
                                               _attention_s(s.template)) if alone else {})
        for s, rate in open_:
            s.record(points[id(s)])
            if s.floor is not None:
                _say(f"capacity: {describe(s.template)}: none; {s.floor}", bar)


def _lightest_step(template: RunSpec) -> float:
    """:func:`lightest_step_s` of ``template``'s profile [s]; 0 where it has none (a step then takes at least 0)."""
    from ltrsched.sim.simulate import resolve_profile

    return lightest_step_s(resolve_profile(template.profile)) or 0.0


def _attention_s(template: RunSpec) -> tuple[float, float]:
    """``template``'s profile's decode attention per KV token [s/token] and prefill attention per pair [s/pair], for
    TPOT's bound (:func:`alone_bounds`); 0, 0 where :func:`lightest_step_s` does not bound its steps."""
    from ltrsched.sim.simulate import resolve_profile

    profile = resolve_profile(template.profile)
    if lightest_step_s(profile) is None:
        return 0.0, 0.0
    return float(profile.decode_attention_s_per_kv_token), float(profile.prefill_attention_s_per_pair)


def _extra_tokens(template: RunSpec) -> int:
    """The output tokens ``template``'s policy adds to every request (PO's length estimate; 0 for most)."""
    from ltrsched.policies import make_policy

    return int(make_policy(template.policy).extra_output_tokens)


def _check_list(values, argument: str, expected: str, empty_ok: bool = False) -> list:
    """``values`` as a list: one-line :class:`TypeError` naming ``argument`` unless it is a list or tuple (a string
    is a sequence of characters), :class:`ValueError` if it is empty (unless ``empty_ok``)."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{argument} must be a list or tuple, got {shown(values)}")
    if not values and not empty_ok:
        raise ValueError(f"{argument} must hold at least one {expected}, got an empty list")
    return list(values)


def _check_number(value, argument: str, unit: str = "") -> float:
    """``value`` as a float: one-line :class:`TypeError` naming ``argument`` unless it is a real number (not a bool),
    :class:`ValueError` unless it is finite and above 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number{unit}, got {shown(value)}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{argument} must be a positive, finite number{unit}, got {shown(value)}")
    return float(value)


def search_arguments(templates, slos, seeds, start_rate, tolerance, max_rate) -> tuple[list[int], float, float, float]:
    """``seeds``, ``start_rate``, ``tolerance`` and ``max_rate`` of :func:`search_capacity` as Python numbers (a numpy
    seed was a JSON TypeError traceback from the run's key); a one-line :class:`TypeError`/:class:`ValueError` naming
    the argument it cannot search with (``ltrsched capacity`` checks its options, in its own words, before it calls
    it). Without the checks, no seed was a ZeroDivisionError traceback, no SLO an ``above max`` that no SLO bounded, a
    ``max_rate`` below ``start_rate`` (or nan) a capacity above the cap, a zero, negative or nan rate the first run's
    error naming no argument, a string where a list goes an AttributeError."""
    from ltrsched.sim.rates import MAX_RATE, MIN_RATE

    for template in _check_list(templates, "templates", "RunSpec", empty_ok=True):  # (none: no search)
        if not isinstance(template, RunSpec):
            raise TypeError(f"templates must hold RunSpec objects, got {shown(template)}")
    metrics = set()
    for slo in _check_list(slos, "slos", "Slo (parse_slo('ttft_p90=2') for a text)"):
        if not isinstance(slo, Slo):
            raise TypeError(f"slos must hold Slo objects (parse_slo('ttft_p90=2') for a text), got {shown(slo)}")
        if slo.metric in metrics:
            raise ValueError(f"slos name {slo.metric} twice")
        metrics.add(slo.metric)
    seeds = _check_list(seeds, "seeds", "seed")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"seeds must list at most {MAX_SEEDS:,} seeds (a run per seed at every rate), "
                         f"got {len(seeds):,}")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seeds must hold integers, got {shown(seed)}")
        if not 0 <= seed < 2**64:
            raise ValueError(f"seeds must be in 0..2**64-1, got {seed}")
    seeds = [int(seed) for seed in seeds]
    if len(set(seeds)) < len(seeds):  # (the same runs counted twice in every mean)
        raise ValueError(f"seeds must be distinct, got {seeds}")
    tolerance = _check_number(tolerance, "tolerance", " (relative: 0.05 is 5%)")
    rates = []
    for argument, rate in (("start_rate", start_rate), ("max_rate", max_rate)):
        rate = _check_number(rate, argument, " of requests per second")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"{argument} must be in {MIN_RATE:.0e}..{MAX_RATE:.0e} req/s, got {rate:g}")
        rates.append(rate)
    start_rate, max_rate = rates
    if start_rate > max_rate:
        raise ValueError(f"start_rate {start_rate:g} is above max_rate {max_rate:g}")
    lowest = max((min_rate(requests_per_run(t)) for t in templates), default=0.0)
    if start_rate < lowest:
        raise ValueError(f"start_rate {start_rate:g} req/s spreads a run's requests over more than the arrivals may "
                         f"span; give at least {lowest:.3g} req/s")
    return seeds, start_rate, tolerance, max_rate


def describe(template: RunSpec) -> str:
    """A search's configuration in a line: its policy and profile, and its cluster where it has one."""
    cluster = f", {template.replicas} replicas, router {template.router}" if template.replicas > 1 else ""
    return f"policy {template.policy} on {template.profile}{cluster}"


def _say(line: str, bar) -> None:
    """``line`` on stderr, above ``bar`` (a progress bar) where there is one."""
    import sys

    if bar is not None:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)
