"""Decode runs: many decode-only steps of a replica taken at once, while nothing can change its batch.

Long contexts (prompts of 50-120k tokens, outputs of 8-32k) keep one or a few requests decoding alone for tens of
thousands of steps, and the replica's loop costs ~17-30 us a step (rank, form_batch, the step's bookkeeping) where
the step itself is one profile call. A decode run replaces ``m`` such loop iterations by one pass over the ``m``
steps: the same step times, clocks, counters and step trace, bit for bit.

Conditions (:func:`take_decode_run` checks those of the step state, the replica those of the run):

- the policy is a built-in one whose ``rank`` keeps no state that a skipped call would change and that has no
  ``on_step`` that must see each step (:data:`POLICIES`: FCFS, LTR, the approximate oracle, the classifier, and,
  below :data:`MAX_RUN_SEQS` live requests, SRTF and PO, which keep nothing from step to step below 4,096); MLFQ
  and starvation prevention (their quanta and idle counters) and plugin policies take the per-step path;
- the profile is the built-in :class:`~ltrsched.sim.profiles.model.StepTimeProfile` itself (a profile object's
  ``step_time`` may keep state or raise: it is called once a step, on the per-step path);
- every live request is in the batch: at most ``max_num_seqs``, ``max_num_batched_tokens`` and
  ``max_resident_seqs`` of them, each with KV on the GPU (resident), one pending token and a token sampled before
  (a decode), nothing on the host;
- no request finishes in the run: it ends one step before the first finish (that step takes the per-step path);
- the KV blocks the members need fit the cache at every step (the blocks in use grow by one for each member whose
  blocks are full, as ``form_batch`` counts them): no cut, no preemption;
- every step of the run ends before ``bound`` [s]: the next event that matters (SimPy's next event, or a cluster
  inbox's horizon: the router's next arrival), the replica's next arrival and its stop time; so no step yields to
  SimPy and none admits a request.

The arithmetic is the per-step path's, in the same order: step ``j``'s time is ``step_time(decode_shape(k, C + j k))``
(``C`` the members' computed tokens before the run), the clock the running sum ``now + dt`` step by step, each
member's run time the running sum of the steps' ``end - start`` (``np.cumsum`` adds in sequence), token gaps the same
subtractions, and the trace one row per step as ``Replica._record`` appends it. ``tests/test_sim_decode_run.py``
runs workloads with runs on and off (:data:`ENABLED`) and compares every request's metrics, clocks and the step trace
with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ltrsched.policies.base import RequestState
from ltrsched.policies.classification import Classification
from ltrsched.policies.fcfs import FCFS
from ltrsched.policies.ltr import LTR, ApproxOracle
from ltrsched.policies.po import PO
from ltrsched.policies.srtf import SRTF
from ltrsched.policies.step_shape import MIN_STEP_S, decode_shape
from ltrsched.sim.profiles.model import StepTimeProfile
from ltrsched.workloads.arrivals import MAX_ARRIVAL_TIME_S

if TYPE_CHECKING:
    from ltrsched.sim.replica import Replica

#: Whether replicas take decode runs (tests switch it off to compare with the per-step path).
ENABLED = True
#: Built-in policies a run may skip the ranks of: exact types (a subclass may override ``rank`` or add hooks).
POLICIES = frozenset({FCFS, LTR, ApproxOracle, Classification, SRTF, PO})
#: Most live requests a run takes: below SRTF's and PO's 4,096, from which they keep their order between steps.
MAX_RUN_SEQS = 1024
#: Fewest steps worth a run: a shorter one costs about what its steps do on the per-step path.
MIN_RUN_STEPS = 8

_RUNNING = int(RequestState.RUNNING)
_PAUSED = int(RequestState.PAUSED)


def runs_allowed(policy: object, step_time: object) -> bool:
    """Whether a replica under ``policy`` timing its steps with ``step_time`` may take decode runs at all (the
    switch, the policy's exact type, the built-in profile's own ``step_time``)."""
    owner = getattr(step_time, "__self__", None)
    return (ENABLED and type(policy) in POLICIES and type(owner) is StepTimeProfile
            and getattr(step_time, "__func__", None) is StepTimeProfile.step_time)


@dataclass(slots=True)
class DecodeRun:
    """The steps a run took (``steps`` of them) and where it left the clock.

    Attributes:
        steps: steps taken [steps].
        now: the clock after the last one, its end [s].
    """

    steps: int
    now: float


def take_decode_run(rep: "Replica", live: np.ndarray, now, bound: float) -> DecodeRun | None:
    """Take the decode steps of the live requests ``live`` (all of them the batch) from ``now`` [s] while every step
    ends before ``bound`` [s] and no member finishes, updating ``rep`` (its table, counters, trace) as that many
    per-step iterations would. None (nothing changed) where the conditions of the module's docstring do not hold or
    fewer than :data:`MIN_RUN_STEPS` steps would be taken. A member may have been paused last step: it runs again in
    the run's first (its idle run ends there)."""
    t = rep.t
    limits = rep.limits
    k = len(live)
    if k > limits.max_num_seqs or k > limits.max_num_batched_tokens or k > MAX_RUN_SEQS or rep.host_blocks_in_use:
        return None
    if limits.max_resident_seqs is not None and k > limits.max_resident_seqs:
        return None
    gen = t.generated_tokens[live]
    # steps before the first finish: a member finishes at the step its generated count reaches its output
    m = int((t.output_tokens[live] - gen).min()) - 1
    if m < MIN_RUN_STEPS:
        return None
    if not (t.pending_tokens[live] == 1).all() or not gen.all() or not t.resident[live].all():
        return None
    states = t.state[live]
    if not ((states == _RUNNING) | (states == _PAUSED)).all():
        return None
    # KV blocks: step j (0-based) adds a block for each member whose computed tokens before it fill its blocks
    c = t.computed_tokens[live]
    bs = limits.block_size
    adds = np.zeros(m, dtype=np.int64)
    for first in ((-c) % bs).tolist():
        adds[first::bs] += 1
    added = adds.cumsum()
    blocks = rep.blocks_in_use + added  # blocks in use after each step
    m = min(m, int(blocks.searchsorted(limits.num_gpu_blocks, side="right")))
    if m < MIN_RUN_STEPS:
        return None

    # the steps' times and clock, as the per-step path computes them (a Python loop: the same float operations)
    step_time = rep.step_time
    context = int(c.sum())
    swap_s = 0 * rep.swap_seconds_per_block  # (no block swapped: the per-step path adds 0 * its seconds per block)
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
        return None

    start_arr = np.array(starts)
    dur_arr = np.array(durations)
    ends = np.empty(m)
    ends[:-1] = start_arr[1:]
    ends[-1] = now
    ran = ends - start_arr  # each step's end - start, the members' run time (the per-step path's ``ran``)

    # the members' counters
    steps0 = rep.steps
    t.computed_tokens[live] = c + m
    t.generated_tokens[live] = gen + m
    run_time = t.run_time[live]
    acc = np.empty(m + 1)
    acc[1:] = ran
    for p in range(k):
        acc[0] = run_time[p]
        run_time[p] = acc.cumsum()[-1]  # (sequential adds: run_time += ran, step by step)
    t.run_time[live] = run_time
    last = t.last_token_time[live]
    gaps = np.fmax(t.max_token_gap[live], ends[0] - last)  # the first step's gap: from each member's last token
    if m > 1:
        gaps = np.fmax(gaps, (ends[1:] - ends[:-1]).max())  # then from the step before (every member sampled)
    t.max_token_gap[live] = gaps
    t.last_token_time[live] = ends[-1]
    last_run = t.last_run_step[live]
    t.max_idle_steps[live] = np.maximum(t.max_idle_steps[live], (steps0 - 1) - last_run)  # the first step's idle run
    t.last_run_step[live] = steps0 + m - 1
    t.state[live] = _RUNNING

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
    if rep.trace is not None:
        _record_run(rep, live, start_arr, dur_arr, blocks, added[:m], c)
    return DecodeRun(m, now)


def _record_run(rep: "Replica", live: np.ndarray, starts: np.ndarray, durations: np.ndarray, blocks: np.ndarray,
                added: np.ndarray, computed_before: np.ndarray) -> None:
    """The run's rows of the step trace, each as ``Replica._record`` appends a decode-only step of ``live`` (no
    eviction, swap or finish): its resident blocks recounted from the residents it keeps (the members, RUNNING now,
    and any other row of the last step traced that is still running or paused)."""
    t, tr = rep.t, rep.trace
    m, k = len(starts), len(live)
    tr.start.extend(starts.tolist())
    tr.duration.extend(durations.tolist())
    for column, value in ((tr.num_seqs, k), (tr.num_prefill_tokens, 0), (tr.num_decode_seqs, k), (tr.num_live, k),
                          (tr.host_blocks_in_use, rep.host_blocks_in_use), (tr.num_evicted, 0), (tr.swap_blocks, 0),
                          (tr.num_batched_tokens, k), (tr.num_finished, 0)):
        column.extend([value] * m)
    tr.blocks_in_use.extend(blocks.tolist())
    can = np.union1d(rep._trace_residents, live)
    states = t.state[can]
    res = rep._trace_residents = can[(states == _RUNNING) | (states == _PAUSED)]
    # the residents' blocks before the run (the members' computed tokens as they were), then what each step added
    before = t.computed_tokens[res].copy()
    before[np.searchsorted(res, live)] = computed_before
    tr.resident_blocks.extend((rep.limits.blocks_total(before) + added).tolist())
