"""Decode runs: many decode-only steps of a replica taken at once, while nothing can change its batch.

Long contexts (prompts of 50-120k tokens, outputs of 8-32k) keep one or a few requests decoding for tens of thousands
of steps, and the replica's loop costs ~17-35 us a step (rank, form_batch, the step's bookkeeping) where the step
itself is one profile call. A decode run replaces ``m`` such loop iterations by one pass over the ``m`` steps: the
same step times, clocks, counters and step trace, bit for bit.

A run starts at a step whose batch ``form_batch`` has formed (so its rank and plan are the per-step path's), and
takes it and the next ones while all of this holds:

- the policy is a built-in one whose ``rank`` keeps nothing that a skipped call would change and that has no
  ``on_step`` that must see each step (:data:`POLICIES`: FCFS, LTR, the approximate oracle, the classifier, SRTF and
  PO; SRTF and PO keep nothing from step to step below 4,096 live requests, and a run takes at most
  :data:`MAX_RUN_LIVE`), or starvation prevention around one of those (``ltr:starve=T,quantum=Q``): it has no
  ``on_step`` but counts its ticks and quanta at each rank, so its optional ``decode_run_limit`` cuts the run before
  any skipped rank could change its order (a threshold or a re-read of the idle counters due, a member's quantum
  spent) and ``decode_run_taken`` advances it as the skipped ranks would have (:func:`run_limit`). MLFQ takes
  runs where every live request is a member and there is no ``promote`` (``decode_run_taken`` records the run's last
  step as the members' last run; the rank after the run sorts, as its kept order would have ordered); with requests
  waiting its levels and recency may reorder them step by step, so MLFQ then, MLFQ with ``promote``, starvation
  prevention around MLFQ and plugin policies take the per-step path;
- the profile is the built-in :class:`~ltrsched.sim.profiles.model.StepTimeProfile` itself (a profile object's
  ``step_time`` may keep state or raise: it is called once a step, on the per-step path);
- the batch is the head of the order (no member dropped, nothing evicted), at most :data:`MAX_RUN_SEQS` members,
  each resident with one pending token and a token sampled before (a decode);
- no live request outside the batch may join it later in the run: there are none, or the batch rules are the
  paper's (no ``resident_first``, no ``watermark_when_running``, no ``max_resident_seqs``; vLLM V1's are not
  analysed here, so they keep the per-step path) and the policy keeps the members ahead of the others
  (:data:`ORDER_KEEPING`: keys fixed per request, or SRTF's remaining tokens, which only fall for the members).
  Then the first of the others stays out: it was out of this step's prefix (the budget, the sequence cap: both the
  same at every step) or cut where its blocks did not fit, and the members' blocks only grow. A paused one keeps its
  blocks (counted in the blocks in use), and the run ends before the step at which it would be evicted;
- no member finishes in the run: it ends one step before the first finish (that step takes the per-step path);
- the blocks in use (the members' and any paused request's) fit the cache at every step (they grow by one for each
  member whose blocks are full, as ``form_batch`` counts them): no cut among the members, no preemption;
- every step of the run ends before ``bound`` [s]: the next event that matters (SimPy's next event, or a cluster
  inbox's horizon: the router's next arrival), the replica's next arrival and its stop time; so no step yields to
  SimPy and none admits a request.

The arithmetic is the per-step path's, in the same order: step ``j``'s time is ``step_time(decode_shape(k, C + j k))``
(``C`` the members' computed tokens before the run), the clock the running sum ``now + dt`` step by step, each
member's run time the running sum of the steps' ``end - start`` (``np.cumsum`` adds in sequence), token gaps the same
subtractions, and the trace one row per step as ``Replica._record`` appends it. ``tests/test_sim_decode_run.py``
runs workloads with runs on and off (:data:`ENABLED`) and compares every request's metrics, the request table, the
step trace and the counters with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ltrsched.policies import po as po_module
from ltrsched.policies import remaining_order
from ltrsched.policies.base import RequestState
from ltrsched.policies.classification import Classification
from ltrsched.policies.fcfs import FCFS
from ltrsched.policies.ltr import LTR, ApproxOracle
from ltrsched.policies.mlfq import MLFQ
from ltrsched.policies.po import PO
from ltrsched.policies.srtf import SRTF
from ltrsched.policies.starvation import StarvationPrevention
from ltrsched.policies.step_shape import MIN_STEP_S, decode_shape
from ltrsched.sim.profiles.model import StepTimeProfile
from ltrsched.workloads.arrivals import MAX_ARRIVAL_TIME_S

if TYPE_CHECKING:
    from ltrsched.sim.replica import Replica

#: Whether replicas take decode runs (tests switch it off to compare with the per-step path).
ENABLED = True
#: Built-in policies a run may skip the ranks of: exact types (a subclass may override ``rank`` or add hooks).
POLICIES = frozenset({FCFS, LTR, ApproxOracle, Classification, SRTF, PO})
#: Of those, the ones that keep the members of a decode-only batch ahead of every request outside it from step to step
#: (fixed keys; SRTF's remaining tokens fall for the members alone). PO's estimate phase moves a member that leaves it
#: behind requests with shorter estimates.
ORDER_KEEPING = frozenset({FCFS, LTR, ApproxOracle, Classification, SRTF})
#: Most live requests a run is taken with: below SRTF's and PO's 4,096, from which they keep their order between steps.
MAX_RUN_LIVE = 1024
#: Most members a run takes: a bigger batch has a finish every few steps (runs would be short), and every try costs.
MAX_RUN_SEQS = 64
#: Fewest steps worth a run: a shorter one costs about what its steps do on the per-step path.
MIN_RUN_STEPS = 8

_RUNNING = int(RequestState.RUNNING)
_PAUSED = int(RequestState.PAUSED)


def runs_allowed(policy: object, step_time: object) -> bool:
    """Whether a replica under ``policy`` timing its steps with ``step_time`` may take decode runs at all (the
    switch, the policy's exact type, the built-in profile's own ``step_time``)."""
    owner = getattr(step_time, "__self__", None)
    return (ENABLED and (_inner_type(policy) in POLICIES or type(policy) is MLFQ) and type(owner) is StepTimeProfile
            and getattr(step_time, "__func__", None) is StepTimeProfile.step_time)


def _inner_type(policy: object) -> type:
    """``policy``'s exact type, or for starvation prevention itself (not its subclass that passes ``on_step`` on)
    its inner policy's: the wrapper's own state follows a run through :func:`run_limit` and :func:`run_taken`."""
    if type(policy) is StarvationPrevention:
        return type(policy.inner)
    return type(policy)


def run_limit(policy: object, step: int, members: int, live: int) -> int | None:
    """The most steps [steps] ``policy`` lets a run from ``step`` with its order's first ``members`` requests of
    ``live`` take (its optional ``decode_run_limit``; None: no limit, a policy of :data:`POLICIES` keeps nothing a run
    skips)."""
    limit = getattr(policy, "decode_run_limit", None)
    return None if limit is None else limit(step, members, live)


def others_may_wait(policy: object, limits) -> bool:
    """Whether a run may leave live requests outside its batch under ``policy`` and ``limits`` (the paper's batch
    rules and a policy of :data:`ORDER_KEEPING`)."""
    return (_inner_type(policy) in ORDER_KEEPING and not limits.resident_first and not limits.watermark_when_running
            and limits.max_resident_seqs is None)


@dataclass(slots=True)
class DecodeRun:
    """What a try took: ``steps`` steps (0: none, nothing changed) and where it left the clock.

    Attributes:
        steps: steps taken [steps].
        now: the clock after the last one, its end [s] (where none: the clock as it was).
        retry: where none were taken, whether a try on the same live requests may take some: False when a member's
            finish is due within :data:`MIN_RUN_STEPS` steps (the live set changes at that finish).
    """

    steps: int
    now: float
    retry: bool = True


def _max_run_live(policy: object) -> int:
    """Most live requests a run is taken with under ``policy``: :data:`MAX_RUN_LIVE`, and for SRTF and PO below the
    count from which they keep their order between steps (``remaining_order._KEEP_MIN``, ``po._SPLIT_MIN``, read at
    the call): a run skips the hooks that keep it, and the next rank would sort afresh."""
    kind = _inner_type(policy)
    if kind is SRTF:
        return min(MAX_RUN_LIVE, remaining_order._KEEP_MIN - 1)
    if kind is PO:
        return min(MAX_RUN_LIVE, po_module._SPLIT_MIN - 1)
    return MAX_RUN_LIVE


def take_decode_run(rep: "Replica", live: np.ndarray, members: np.ndarray, now, bound: float,
                    others_wait: bool) -> DecodeRun:
    """Take the decode steps of ``members`` (this step's batch, as ``form_batch`` formed it: the head of the order,
    nothing evicted) of the live requests ``live`` from ``now`` [s] while every step ends before ``bound`` [s] and no
    member finishes, updating ``rep`` (its table, counters, trace) as that many per-step iterations would.
    ``others_wait``: :func:`others_may_wait` (else every live request must be a member). No step (nothing changed) where
    the conditions of the module's docstring do not hold or fewer than :data:`MIN_RUN_STEPS` steps would be taken. A
    member may have been paused last step: it runs again in the run's first (its idle run ends there)."""
    t = rep.t
    limits = rep.limits
    k = len(members)
    n = len(live)
    if not k or k > MAX_RUN_SEQS or n > _max_run_live(rep.policy) or (n > k and not others_wait):
        return DecodeRun(0, now)
    gen = t.generated_tokens[members]
    # steps before the first finish: a member finishes at the step its generated count reaches its output
    m = int((t.output_tokens[members] - gen).min()) - 1
    if m < MIN_RUN_STEPS:
        return DecodeRun(0, now, retry=False)
    policy = rep.policy
    limit = run_limit(policy, rep.steps, k, n)  # (starvation prevention: before a threshold, a quantum's end...)
    if limit is not None:
        m = min(m, limit)
        if m < MIN_RUN_STEPS:
            return DecodeRun(0, now)
    if not (t.pending_tokens[members] == 1).all() or not gen.all() or not t.resident[members].all():
        return DecodeRun(0, now)
    states = t.state[members]
    if not ((states == _RUNNING) | (states == _PAUSED)).all():
        return DecodeRun(0, now)
    # KV blocks: step j (0-based) adds a block for each member whose computed tokens before it fill its blocks
    c = t.computed_tokens[members]
    bs = limits.block_size
    adds = np.zeros(m, dtype=np.int64)
    for first in ((-c) % bs).tolist():
        adds[first::bs] += 1
    added = adds.cumsum()
    blocks = rep.blocks_in_use + added  # blocks in use after each step
    m = min(m, int(blocks.searchsorted(limits.num_gpu_blocks, side="right")))
    if m < MIN_RUN_STEPS:
        return DecodeRun(0, now)

    # the steps' times and clock, as the per-step path computes them (a Python loop: the same float operations)
    step_time = rep.step_time
    context = int(c.sum())
    swap_s = 0 * rep.swap_seconds_per_block  # (no block swapped: the per-step path adds 0 * its seconds per block)
    now0 = now
    starts: list[float] = []
    durations: list[float] = []
    for j in range(m):
        dt = step_time(decode_shape(k, context + j * k))
        if type(dt) is not float:
            break
        dt = dt + swap_s
        if not MIN_STEP_S <= dt < MAX_ARRIVAL_TIME_S:  # (the replica's MAX_STEP_S: it raises there)
            break
        end = now + dt
        if not end < bound:
            break
        starts.append(float(now))
        durations.append(dt)
        now = end
    m = len(starts)
    if m < MIN_RUN_STEPS:
        return DecodeRun(0, now0)

    start_arr = np.array(starts)
    dur_arr = np.array(durations)
    ends = np.empty(m)
    ends[:-1] = start_arr[1:]
    ends[-1] = now
    ran = ends - start_arr  # each step's end - start, the members' run time (the per-step path's ``ran``)

    # the members' counters
    steps0 = rep.steps
    t.computed_tokens[members] = c + m
    t.generated_tokens[members] = gen + m
    run_time = t.run_time[members]
    acc = np.empty(m + 1)
    acc[1:] = ran
    for p in range(k):
        acc[0] = run_time[p]
        run_time[p] = acc.cumsum()[-1]  # (sequential adds: run_time += ran, step by step)
    t.run_time[members] = run_time
    last = t.last_token_time[members]
    gaps = np.fmax(t.max_token_gap[members], ends[0] - last)  # the first step's gap: from each member's last token
    if m > 1:
        gaps = np.fmax(gaps, (ends[1:] - ends[:-1]).max())  # then from the step before (every member sampled)
    t.max_token_gap[members] = gaps
    t.last_token_time[members] = ends[-1]
    last_run = t.last_run_step[members]
    t.max_idle_steps[members] = np.maximum(t.max_idle_steps[members], (steps0 - 1) - last_run)  # its first step's idle
    t.last_run_step[members] = steps0 + m - 1
    t.state[members] = _RUNNING

    # the replica's counters
    busy = np.empty(m + 1)
    busy[0] = rep.busy_time
    busy[1:] = dur_arr
    rep.busy_time = float(busy.cumsum()[-1])
    blocks = blocks[:m]
    rep.blocks_in_use = int(blocks[-1])
    if rep.blocks_in_use > rep.peak_blocks_in_use:
        rep.peak_blocks_in_use = rep.blocks_in_use
    rep.steps = steps0 + m
    if limit is not None:
        policy.decode_run_taken(steps0, t.request_id[members], m)
    if rep.trace is not None:
        _record_run(rep, members, n, start_arr, dur_arr, blocks, added[:m], c)
    return DecodeRun(m, now)


def _record_run(rep: "Replica", members: np.ndarray, num_live: int, starts: np.ndarray, durations: np.ndarray,
                blocks: np.ndarray, added: np.ndarray, computed_before: np.ndarray) -> None:
    """The run's rows of the step trace, each as ``Replica._record`` appends a decode-only step of ``members`` among
    ``num_live`` live requests (no eviction, swap or finish): its resident blocks recounted from the residents it
    keeps (the members, RUNNING now, and any other row of the last step traced that is still running or paused)."""
    t, tr = rep.t, rep.trace
    m, k = len(starts), len(members)
    tr.start.extend(starts.tolist())
    tr.duration.extend(durations.tolist())
    for column, value in ((tr.num_seqs, k), (tr.num_prefill_tokens, 0), (tr.num_decode_seqs, k),
                          (tr.num_live, num_live),
                          (tr.host_blocks_in_use, rep.host_blocks_in_use), (tr.num_evicted, 0), (tr.swap_blocks, 0),
                          (tr.num_batched_tokens, k), (tr.num_finished, 0)):
        column.extend([value] * m)
    tr.blocks_in_use.extend(blocks.tolist())
    can = np.union1d(rep._trace_residents, members)
    states = t.state[can]
    res = rep._trace_residents = can[(states == _RUNNING) | (states == _PAUSED)]
    # the residents' blocks before the run (the members' computed tokens as they were), then what each step added
    before = t.computed_tokens[res].copy()
    before[np.searchsorted(res, members)] = computed_before
    tr.resident_blocks.extend((rep.limits.blocks_total(before) + added).tolist())
