"""One simulated serving replica: vLLM-style iteration-level batching as a SimPy process.

Each step: admit arrivals, ask the policy for the competition order, form the batch with
:func:`ltrsched.policies.form_batch` (the one place batch rules live), preempt what it says (swap or
recompute), time the step with the step-time profile (+ swap transfer time), then advance every batch
member's tokens. A request whose known tokens are all computed at the end of a step samples one output
token (the last prefill chunk yields the first token, as in vLLM).

Speed: a step costs a few dozen numpy calls on arrays of at most ``max_num_seqs`` entries, so the per-call
overhead dominates and the loop is written to make few calls: O(batch) bookkeeping only, a fast path for
decode-only steps, scalar arithmetic for a lone decoding request (a burst's last requests run alone for
thousands of steps), no SimPy event for a step while no other event is due before it ends, and decode runs
(:mod:`ltrsched.sim.decode_run`): while a decode-only batch cannot change, its steps up to the next finish,
arrival or event are taken in one pass. Every path does the same arithmetic in the same order, so results
do not depend on which one a step takes.
"""

from __future__ import annotations

import numbers
import traceback
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import simpy

from ltrsched.policies.base import LiveView, Policy, RequestState
from ltrsched.policies.batching import MAX_STALLED_STEPS, BatchLimits, ThrashGuard, form_batch
from ltrsched.policies.fastops import (  # ones(k): exact int64 sums by dot
    count_nonzero,
    ones,
)
from ltrsched.policies.order_check import check_order
from ltrsched.policies.recompute import recompute
from ltrsched.policies.step_shape import StepShape, decode_shape, few_chunks_shape, split_step_shape
from ltrsched.errors import ArgumentTypeError, ArgumentValueError
from ltrsched.sim.decode_run import MAX_RUN_SEQS, others_may_wait, runs_allowed, take_decode_run
from ltrsched.sim.profiles.model import MIN_STEP_S
from ltrsched.sim.live_set import MIN_LIVE_TO_SORT, drop_positions
from ltrsched.sim.process_failure import guarded
from ltrsched.sim.request_table import FINISHED, RequestTable
from ltrsched.workloads.arrivals import MAX_ARRIVAL_TIME_S

if TYPE_CHECKING:
    from ltrsched.sim.inbox import Inbox

WAITING = int(RequestState.WAITING)
RUNNING = int(RequestState.RUNNING)
PAUSED = int(RequestState.PAUSED)
SWAPPED = int(RequestState.SWAPPED)
_NONE = np.zeros(0, dtype=np.intp)  # no positions
# 0-d array operands: numpy converts a Python scalar operand on every call (~0.25 us of a ~0.6 us operation on
# a few hundred values); an array operand of the same value and dtype gives the same result without that
_ONE = np.array(1, dtype=np.int64)
_INF = float("inf")


#: The step trace's columns of seconds (float64); its others are counts of tokens, sequences or blocks (int64).
_FLOAT_COLUMNS = ("start", "duration")


def _floats() -> array:
    return array("d")


def _ints() -> array:
    return array("q")


@dataclass
class StepTrace:
    """Per-step records (filled only when asked for); times in seconds, sizes in tokens/blocks.

    One typed array per column (``array.array``: 8 bytes a value, float64 seconds and int64 counts), appended to
    once a step. Python lists of boxed numbers took 305-306 bytes of peak RSS a step (57 MB over the 186,717 steps of
    ``benchmarks/bench_step_trace_memory.py``'s burst run for 3,000 s); these take 118-123 (22-23 MB), 108 by
    tracemalloc (BENCHMARKS.md, "The step trace's memory")."""

    start: array = field(default_factory=_floats)
    duration: array = field(default_factory=_floats)
    num_seqs: array = field(default_factory=_ints)
    num_prefill_tokens: array = field(default_factory=_ints)
    num_decode_seqs: array = field(default_factory=_ints)
    num_live: array = field(default_factory=_ints)
    blocks_in_use: array = field(default_factory=_ints)
    host_blocks_in_use: array = field(default_factory=_ints)
    num_evicted: array = field(default_factory=_ints)
    swap_blocks: array = field(default_factory=_ints)
    num_batched_tokens: array = field(default_factory=_ints)
    num_finished: array = field(default_factory=_ints)
    resident_blocks: array = field(default_factory=_ints)  # recounted from request states (a check)

    def as_dict(self) -> dict[str, np.ndarray]:
        """The columns as numpy arrays (float64 seconds, int64 counts) that share the trace's memory: the trace takes
        no more steps once they are taken (a typed array with a view on it cannot grow)."""
        return {name: np.frombuffer(column, dtype=np.float64 if name in _FLOAT_COLUMNS else np.int64)
                for name, column in vars(self).items()}


class _OddMember:
    """The one member of a step that is not a plain decode: a prompt (or recompute) chunk, or the first token
    of a prompt whose last token was its one pending token. A step with one such member (the usual mixed
    step: a request was admitted) advances every member as a decode, then sets this one right in scalar
    arithmetic: the same operations as :meth:`Replica._advance_mixed` does on arrays, element by element.

    Holds its values from before the step (those the decode pass overwrites included)."""

    __slots__ = ("p", "i", "take", "computed", "pending", "generated", "last_token_time", "max_token_gap", "t")

    def __init__(self, p: int, batch, take, b_computed, b_pending, b_gen, t: RequestTable):
        i = int(batch[p])
        self.p, self.i, self.t = p, i, t
        self.take, self.computed = int(take[p]), int(b_computed[p])
        self.pending, self.generated = int(b_pending[p]), int(b_gen[p])
        self.last_token_time, self.max_token_gap = t.last_token_time[i], t.max_token_gap[i]

    def shape(self, k: int, b_computed) -> StepShape:
        """The step's shape (``k`` members, ``b_computed`` before the step)."""
        context = int(b_computed.dot(ones(k)))
        if self.pending == 1:  # a first token: a decode, as far as the step's shape goes
            return decode_shape(k, context)
        return few_chunks_shape(k, context, [self.take], [self.computed])  # (the engine adapter's, for its few chunks)

    def advance(self, b_gen, start, end) -> bool:
        """After the decode pass: the member computed ``take`` tokens and samples one only if they were all
        its known tokens. Sets its entry of ``b_gen`` (the batch's new generated counts) too. Returns whether
        it sampled."""
        t, i = self.t, self.i
        left = self.pending - self.take  # known tokens still without KV after the step
        sampled = left == 0
        t.computed_tokens[i] = self.computed + self.take
        b_gen[self.p] = t.generated_tokens[i] = self.generated + sampled
        t.pending_tokens[i] = left + sampled  # a sampled token's KV is next
        if sampled:
            if not t.first_token_time[i] <= end:  # np.fmin: NaN (no token yet) -> end
                t.first_token_time[i] = end
        else:  # it sampled nothing: undo the decode pass's token time and gap
            t.last_token_time[i] = self.last_token_time
            t.max_token_gap[i] = self.max_token_gap
        if not t.first_scheduled_time[i] <= start:
            t.first_scheduled_time[i] = start
        t.resident[i] = True
        return sampled


def _step_arrays(t: RequestTable) -> tuple[np.ndarray, ...]:
    """The table's arrays :meth:`Replica.run` touches every step, bound to locals there."""
    return (t.computed_tokens, t.generated_tokens, t.pending_tokens, t.resident, t.state, t.output_tokens, t.run_time,
            t.last_token_time, t.max_token_gap, t.last_run_step, t.max_idle_steps)


#: The longest step [s] a profile may give: the arrival-time horizon (1e8 s, about 3 years;
#: :data:`ltrsched.workloads.arrivals.MAX_ARRIVAL_TIME_S`). A profile object that gave 1e308 s for a step partway
#: through a run pushed the clock past float64's range: the run ended with "simulation ended with unfinished requests".
MAX_STEP_S = MAX_ARRIVAL_TIME_S


def _profile_name(step_time: Callable[[StepShape], float]) -> str:
    """How a one-line error names the profile object whose ``step_time`` it is (its ``name``, else its class)."""
    owner = getattr(step_time, "__self__", None)
    return str(getattr(owner, "name", type(owner).__name__ if owner is not None else "the step-time function"))


def _shape_text(shape: StepShape) -> str:
    return (f"{shape.num_prefill_tokens} prefill tokens and {shape.num_decode_seqs} decodes over "
            f"{shape.decode_context_tokens} context tokens")


def _step_time_message(step_time: Callable[[StepShape], float], shape: StepShape, dt: float, step: int) -> str:
    """The one-line error for step ``step`` (0-based) whose time ``dt`` [s] is not a finite time in
    [:data:`MIN_STEP_S`, :data:`MAX_STEP_S`): a profile object's (the Python API's; profile files are checked in full
    on load) for a heavier step than the one-token decode checked before the run. It ran on with NaN or infinite times
    (every request left unfinished: "simulation ended with unfinished requests") or with negative ones (latencies below
    zero)."""
    return (f"profile {_profile_name(step_time)!r}: step {step}, of {_shape_text(shape)}, takes {dt:.3g} s (swaps "
            f"included); a step must take a finite time of at least {MIN_STEP_S:g} s and below {MAX_STEP_S:.0e} s "
            f"(the simulator's time horizon)")


def _checked_step_value(step_time: Callable[[StepShape], float], shape: StepShape, dt, step: int):
    """``dt`` if it is a real number (not a bool), else :class:`ArgumentTypeError` naming the profile object, the step
    and the value (a string, None, a numpy array or a Decimal escaped as a raw TypeError from the step's arithmetic)."""
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real):
        raise ArgumentTypeError(f"profile {_profile_name(step_time)!r}: step_time gave {type(dt).__name__} {dt!r:.60} "
                                f"at step {step}, of {_shape_text(shape)}; it must give a time in seconds (a number)")
    return dt


def _step_time_raised(step_time: Callable[[StepShape], float], shape: StepShape, step: int,
                      exc: Exception) -> ArgumentValueError:
    """The one-line error for an exception raised inside a profile object's ``step_time`` (user code, like a plugin
    policy's): the exception, the innermost frame it passed through (file:line, in function) and the step."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno}, in {frames[-1].name})" if len(frames) > 1 else ""
    what = (str(exc).strip().splitlines() or [""])[0]
    return ArgumentValueError(f"profile {_profile_name(step_time)!r}: step_time raised {type(exc).__name__}"
                              f"{': ' + what if what else ''}{where} at step {step}, of {_shape_text(shape)}; "
                              f"fix the profile object")


class Replica:
    """Serves the requests of a :class:`RequestTable` under a policy.

    Args:
        env: the SimPy environment (its clock is the simulated time [s]).
        table: request state arrays (mutated in place).
        policy: the scheduling policy.
        limits: batch limits (token budget, sequence cap, KV blocks, watermark).
        step_time: StepShape -> step duration [s].
        swap_seconds_per_block: host-link transfer time of one KV block [s].
        host_blocks: host swap capacity [blocks]; evictions beyond it recompute.
        preemption: "swap" or "recompute".
        trace: a StepTrace to fill, or None.
        on_progress: called with the number of requests finished in a step (for progress bars).
        stop_time: end the run at this simulated time [s] (None: when every request has finished).
        inbox: in a cluster, where the router queues this replica's requests, in the inbox's own table
            (``table`` is then ``inbox.table``; see :class:`Inbox`); None: the replica serves every request
            of the table at its arrival time.

    Read by a cluster's router between steps (see ``ltrsched.sim.cluster``): ``live`` (the live requests'
    table rows), ``num_admitted`` (rows admitted: 0..num_admitted-1 in a cluster), ``num_finished``,
    ``blocks_in_use`` (a step under way counts its allocation).
    """

    def __init__(
        self,
        env: simpy.Environment,
        table: RequestTable,
        policy: Policy,
        limits: BatchLimits,
        step_time: Callable[[StepShape], float],
        swap_seconds_per_block: float,
        host_blocks: int,
        preemption: str = "swap",
        trace: StepTrace | None = None,
        on_progress: Callable[[int], None] | None = None,
        stop_time: float | None = None,
        inbox: "Inbox | None" = None,
    ):
        self.env = env
        self.t = table
        self.policy = policy
        self.limits = limits
        self.step_time = step_time
        # a built-in profile's step_time raising is a bug of ours: its traceback is kept
        self._own_profile = type(getattr(step_time, "__self__", None)).__module__.startswith("ltrsched.")
        self.swap_seconds_per_block = swap_seconds_per_block
        self.host_blocks = host_blocks
        self.swap = preemption == "swap"
        self.trace = trace
        self.on_progress = on_progress
        self.stop_time = float("inf") if stop_time is None else stop_time
        self.inbox = inbox
        # the preemption-thrash guard's scale: the workload's requests (a cluster replica's table grows with
        # what the router sends it, so its length is no measure; a cluster of several replicas replaces the guard
        # with one scaled by what each is sent, cluster._fresh_guards)
        source = table if inbox is None else inbox.source
        self.thrash_guard = ThrashGuard(len(source.request_id),
                                        int(source.prompt_tokens.sum()) + int(source.output_tokens.sum()))
        self.live = np.zeros(0, dtype=np.int64)
        # this step's preemptions, recomputes, discarded tokens, preemptions the resident-slot cap forced
        self._guard_due: tuple[int, int, int, int] | None = None
        self.num_admitted = 0
        self.num_finished = 0
        self.steps = 0
        self.host_blocks_in_use = 0
        self.blocks_in_use = 0
        self.peak_blocks_in_use = 0
        self.swapped_blocks_total = 0
        self.busy_time = 0.0
        self._trace_residents = _NONE  # the requests resident after the last step traced (_record)

    @property
    def num_preemptions(self) -> int:
        """Preemptions so far (swaps and recomputes)."""
        return self.thrash_guard.num_preemptions

    def _sampled_tokens(self) -> int:
        """Output tokens sampled so far by every request of the table (the thrash guard's measure of progress)."""
        return int(self.t.generated_tokens.sum())

    # ------------------------------------------------------------------ the process
    def run(self):
        """SimPy process: serve until every request has finished (:meth:`_serve`). An exception it raises (a
        plugin policy's) ends it as :class:`~ltrsched.sim.process_failure.ProcessFailed`, which
        :func:`~ltrsched.sim.process_failure.run_to_end` raises as raised: SimPy's copy of it failed for an
        exception whose ``__init__`` takes other arguments."""
        return guarded(self._serve())

    def _serve(self):
        """The process's body: serve until every request has finished.

        The replica keeps its own clock, ``now``. A step that ends before any other scheduled event
        runs without handing control to SimPy: nothing else could run in between, so this is the same as
        one Timeout per step, without its cost. When another event is due first (another process, or
        ``env.run(until=...)``), the step ends with a real Timeout and SimPy's clock catches up. (A
        Timeout of ``end - env.now`` ends exactly at ``end``: for 0 <= a <= b, a + (b - a) == b in
        floating point.) In a cluster the only other events that matter are the router's: the replica
        runs ahead of SimPy's clock up to the next arrival (``inbox.horizon``), so it never runs a step
        that starts after an arrival still to be routed, and other replicas' steps do not interrupt it.

        A cluster replica's table holds only the requests routed to it and grows as they come
        (:meth:`Inbox.pull`). The router routes only while the replica is suspended (at a ``yield``); the
        replica pulls what came at the top of its next loop iteration, between steps, and rebinds the
        arrays it holds when the table grew. Nothing it holds during a step (the batch's arrays, the
        policy's view, the LiveGather caches) ever sees two versions of the table.
        """
        t = self.t
        env = self.env
        policy = self.policy
        limits = self.limits
        inbox = self.inbox
        if inbox is None:
            arrival_order = np.argsort(t.arrival_time, kind="stable")
            arrivals = t.arrival_time[arrival_order]
            n = len(arrival_order)
            # rows sorted by arrival, ties by request id: every live set lists its requests in the competition
            # order's tie-break (admissions append later rows, finishes keep a subsequence), which
            # LiveView.order_by then need not sort by
            arrival_ordered = bool(count_nonzero(np.lexsort((t.request_id, t.arrival_time)) != np.arange(n)) == 0)
        else:  # the inbox's table lists requests in arrival order (+inf arrival times past those routed)
            if t is not inbox.table:
                raise ValueError("a replica with an inbox serves the inbox's table")
            arrival_order = np.arange(len(t.arrival_time))
            arrivals = t.arrival_time
            n = len(arrival_order)
            arrival_ordered = inbox.arrival_ordered
        has_inbox = inbox is not None
        routed = has_inbox  # requests were routed here since the last pull (looked at after each yield)
        peek = env.peek if inbox is None else inbox.horizon.peek  # when the next event that matters is due
        next_arrival = 0
        live = np.zeros(0, dtype=np.int64)
        columns = t.live_columns(lambda idx: self.steps - 1 - t.last_run_step[idx])
        prev_batch = np.zeros(0, dtype=np.int64)
        wants_on_step = getattr(type(self.policy), "on_step", Policy.on_step) is not Policy.on_step or not isinstance(
            self.policy, Policy)
        # a policy that takes the batch as its ranks in the order (MLFQ: ``on_step_ranks``) is told them instead of
        # a scheduled mask, which would cost a pass over every live request here and one in the policy
        on_step_ranks = getattr(policy, "on_step_ranks", None) if wants_on_step else None
        # arrays touched every step (rebound below when a cluster replica's table grows)
        computed, generated, pending, resident, state, output_tokens, run_time, last_token_time, max_token_gap, \
            last_run_step, max_idle_steps = _step_arrays(t)
        now = env.now
        prev_end = now  # when the last step ended [s]
        prev_all_sampled = False  # every member of the last step's batch sampled a token at prev_end
        stalled = 0  # consecutive steps with an empty batch
        # decode runs (ltrsched.sim.decode_run): a decode-only batch's steps at once while nothing can change it;
        # tried on a batch of at most run_seqs members (0: never), not again while a finish is due too soon in the
        # live set no_run_live (a finish or an admission gives a new one)
        run_seqs = MAX_RUN_SEQS if runs_allowed(policy, self.step_time) else 0
        others_wait = others_may_wait(policy, limits)
        no_run_live = None

        while routed or ((next_arrival < n or len(live)) and now < self.stop_time):
            if routed:  # copy what the router sent meanwhile into the table; a new table needs new locals
                routed = False
                if inbox.pull():
                    arrival_order = np.arange(len(t.arrival_time))
                    arrivals = t.arrival_time
                    n = len(arrival_order)
                    columns = t.live_columns(lambda idx: self.steps - 1 - t.last_run_step[idx])
                    computed, generated, pending, resident, state, output_tokens, run_time, last_token_time, \
                        max_token_gap, last_run_step, max_idle_steps = _step_arrays(t)
                continue
            # -- admit arrivals up to now
            admitted = next_arrival < n and arrivals[next_arrival] <= now
            if admitted:
                end = int(arrivals.searchsorted(now, side="right"))
                live = self._admit(live, arrival_order[next_arrival:end], now)
                next_arrival = self.num_admitted = end
            if not len(live):
                if inbox is not None and next_arrival >= inbox.count:  # idle until the router sends one
                    if inbox.closed:
                        break
                    yield inbox.wait()
                    routed = True
                    continue
                wake = min(arrivals[next_arrival], self.stop_time)
                now = now + (wake - now)  # what a SimPy timeout of (wake - now) ends at
                if peek() <= now:
                    yield env.timeout(now - env.now)
                    routed = has_inbox and inbox.count != inbox.filled
                continue

            # -- rank and form the batch (form_batch gets global request indices and arrays)
            view = LiveView(columns, live, now, self.steps, arrival_ordered)
            order = check_order(policy.rank(view), view, policy)  # a permutation of the live positions
            plan = form_batch(order, pending, computed, resident, limits, self.blocks_in_use, live)
            if len(plan.batch) <= run_seqs and live is not no_run_live and plan.ranks is None and not len(plan.evict):
                # (no step of the run ends at or after the next event, arrival or the stop time)
                bound = min(peek(), arrivals[next_arrival] if next_arrival < n else _INF, self.stop_time)
                run = take_decode_run(self, live, plan.batch, now, bound, others_wait)
                if not run.steps:
                    no_run_live = None if run.retry else live
                else:  # this step and the next ones ran: the last one's batch was this one, every member sampled
                    if len(prev_batch):  # last step's members left out of the run pause, as at its first step
                        state[prev_batch] = PAUSED
                        state[plan.batch] = RUNNING
                    now = prev_end = run.now
                    prev_batch = plan.batch
                    prev_all_sampled = True
                    stalled = 0
                    continue

            # -- the batch. A lone decoding member (a burst's last requests run alone for thousands of
            # steps) takes scalar arithmetic: numpy calls cost ~10x more for one element.
            batch = plan.batch
            take = plan.num_new_tokens
            k = len(batch)
            if k:
                stalled = 0
            else:  # nothing can run: only a bug could get here, and it must not spin forever
                stalled += 1
                if stalled >= MAX_STALLED_STEPS:
                    raise RuntimeError(
                        f"the simulator made no progress for {stalled} consecutive steps at t={now:.3f} s: "
                        f"none of the {len(live)} live requests could run (a bug in the batch rules or the "
                        f"policy {type(policy).__name__}; please report it with the workload and configuration)")
            solo = k == 1 and pending[batch[0]] == 1 and generated[batch[0]] > 0
            # rerun: every member ran last step and there are as many members as the last step left
            # unfinished, so the batch is that same set. Its members are RUNNING already: pausing them and
            # setting them running again would leave the same states, so neither is written. A member ran
            # last step when no idle run ends now, unless it was admitted now (its last_run_step is the step
            # before its admission), hence no rerun in a step that admits.
            rerun = False
            if not solo:
                idle_run = np.array(self.steps - 1) - last_run_step[batch]  # idle steps each member ends now
                num_idle = count_nonzero(idle_run)
                rerun = not num_idle and k == len(prev_batch) and not admitted

            # -- last step's batch (finished ones removed) pauses unless it runs again; then preemption
            if not rerun:  # (a rerun's members stay RUNNING)
                state[prev_batch] = PAUSED
            swap_blocks = self._preempt(plan.evict, plan.evict_blocks, plan.evict_for_cap) if len(plan.evict) else 0
            # swap-ins (nothing can be swapped while host memory is empty, nor in a batch of residents only)
            if self.host_blocks_in_use and not plan.all_resident:
                swap_blocks += self._swap_in(batch)
            odd = None  # the one member that is not a plain decode, if just one (see _OddMember)
            if solo:
                i = int(batch[0])
                shape = decode_shape(1, int(computed[i]))
            else:
                # the batch's counts before the step (form_batch's, when it kept them: preemption and swap-in
                # change neither for batch members)
                b_computed, b_pending = plan.computed_tokens, plan.pending_tokens
                if b_computed is None or b_pending is None:
                    b_computed, b_pending = computed[batch], pending[batch]
                b_gen = generated[batch]
                # members that are not plain decodes (1 token pending and a token produced before): prompt
                # chunks and first tokens. pending >= 1, so that is pending > 1, or pending > 0 where gen == 0.
                # When form_batch saw one pending token each, only first tokens (gen == 0) can be odd.
                if plan.one_token_each and count_nonzero(b_gen) == k:
                    odd_pos = _NONE
                else:
                    odd_pos = (b_pending > (b_gen != 0)).nonzero()[0]
                if not len(odd_pos):  # decode-only: every member computes its one pending token
                    shape = decode_shape(k, int(b_computed.dot(ones(k))))
                elif len(odd_pos) == 1:  # the usual mixed step: one request admitted
                    odd = _OddMember(int(odd_pos[0]), batch, take, b_computed, b_pending, b_gen, t)
                    shape = odd.shape(k, b_computed)
                else:
                    shape = split_step_shape(take, b_computed, b_pending)  # several prompt chunks
            try:
                dt = self.step_time(shape)
            except Exception as exc:  # (a profile object's own code: one line, the exception chained)
                if self._own_profile:
                    raise
                raise _step_time_raised(self.step_time, shape, self.steps, exc) from exc
            if type(dt) is not float:  # (a profile object's: a string, None, an array gave a raw TypeError)
                dt = _checked_step_value(self.step_time, shape, dt, self.steps)
            dt = dt + swap_blocks * self.swap_seconds_per_block
            if not MIN_STEP_S <= dt < MAX_STEP_S:  # (NaN too) a profile object's time for a shape beyond its lightest
                raise ArgumentValueError(_step_time_message(self.step_time, shape, dt, self.steps))
            start = float(now)
            end = now + dt  # what a SimPy timeout of dt ends at
            # the step's duration as the clock measured it, for the members' run times and the policy's on_step: the
            # engine's (its clock's end - start, not always dt in floating point: 0.017 + 0.003 - 0.017 is
            # 0.002999...), so that a policy comparing run times with a quantum (MLFQ) decides as it does there
            ran = end - start
            if peek() <= end:  # another event is due first: let SimPy run it
                self.blocks_in_use = plan.blocks_in_use  # (what a router sees in the meantime)
                yield env.timeout(end - env.now)
                # requests routed here meanwhile are pulled after this step (it runs on the arrays it started with)
                routed = has_inbox and inbox.count != inbox.filled
            now = end
            self.busy_time += dt

            # -- advance the batch
            if solo:
                num_done = self._advance_solo(i, ran, end)
                prev_all_sampled = True
            else:
                if len(odd_pos) < 2:
                    # every member as a decode (one token computed, one sampled); then the odd one, if any,
                    # is set right in scalar arithmetic
                    computed[batch] = b_computed + _ONE  # (b_computed is the plan's: not in place)
                    b_gen += _ONE
                    generated[batch] = b_gen
                    if rerun and prev_all_sampled:
                        # every member's last token came at prev_end (the value last_token_time holds), so each
                        # gap is the same float subtraction: do it once (no gather, no NaN)
                        gaps = np.array(end - prev_end)
                    else:
                        gaps = end - last_token_time[batch]  # NaN for first tokens: fmax ignores them
                    max_token_gap[batch] = np.fmax(max_token_gap[batch], gaps)
                    last_token_time[batch] = end
                    prev_all_sampled = odd is None or odd.advance(b_gen, start, end)
                else:
                    sampled = self._advance_mixed(batch, take, b_computed, b_gen, b_pending, start, end)
                    gaps = end - last_token_time[sampled]  # NaN for first tokens: fmax ignores them
                    max_token_gap[sampled] = np.fmax(max_token_gap[sampled], gaps)
                    last_token_time[sampled] = end
                    prev_all_sampled = len(sampled) == k
                run_time[batch] += ran
                # states and idle runs (O(batch): a run of idle steps ends when the request runs again)
                if not rerun:
                    state[batch] = RUNNING
                if num_idle:  # else every member also ran last step
                    max_idle_steps[batch] = np.maximum(max_idle_steps[batch], idle_run)
                last_run_step[batch] = self.steps
                # the finish rule: output reached (the workload's length + a policy's extra tokens; b_gen holds the new
                # counts). The engine adapter leaves finishes to vLLM (ltrsched.engine.scheduler, update_from_output):
                # max_tokens is this count under ignore_eos; vLLM's EOS and max_model_len stops have no counterpart
                # here, deliberately (labelled lengths; the fit checks keep requests within the context)
                done_mask = b_gen >= output_tokens[batch]
                num_done = count_nonzero(done_mask)
            prev_batch = batch
            prev_end = end

            if on_step_ranks is not None:
                on_step_ranks(view, order, k if plan.ranks is None else plan.ranks, ran)
            elif wants_on_step:
                scheduled = np.zeros(len(live), dtype=bool)
                scheduled[order[:k] if plan.ranks is None else order[plan.ranks]] = True
                policy.on_step(view, scheduled, ran)

            # -- finishes
            blocks_now = plan.blocks_in_use
            if num_done:
                if solo:
                    done, prev_batch = batch, batch[:0]
                else:
                    done, prev_batch = batch[done_mask], batch[~done_mask]
                blocks_now -= self._finish(done, end)
                if len(live) < MIN_LIVE_TO_SORT:  # a pass over a few thousand costs fewer numpy calls
                    live = self._new_live(live[state[live] != FINISHED])
                else:  # by their positions in the listing: the batch's ranks in the order
                    at = order[:k] if plan.ranks is None else order[plan.ranks]
                    live = self._new_live(drop_positions(live, at if solo else at[done_mask]))
            self.blocks_in_use = blocks_now
            if blocks_now > self.peak_blocks_in_use:
                self.peak_blocks_in_use = blocks_now
            self.swapped_blocks_total += swap_blocks

            if self.trace is not None:
                self._record(start, dt, shape, plan, swap_blocks, int(num_done), len(view))
            if self._guard_due is not None:
                # the step's preemptions, told once it is done, as the engine's replay tells them: with the live
                # requests and the tokens sampled after it (its finished requests gone, its tokens counted). Told
                # before it (live at its start, its tokens not yet sampled), a no-progress window started at a step
                # where a request finished was longer, and the run stopped a window later than on the engine
                count, recomputed, discarded, for_cap = self._guard_due
                self._guard_due = None
                self.thrash_guard.preempted(count, recomputed, self.steps, self.policy, len(live),
                                            self._sampled_tokens, discarded, for_cap)
            self.steps += 1

        if now > env.now:  # SimPy's clock ends where the last step did
            yield env.timeout(now - env.now)

    # ------------------------------------------------------------------ parts of a step
    def _admit(self, live: np.ndarray, new: np.ndarray, now) -> np.ndarray:
        """Arrivals ``new`` join the live requests (a new array: LiveGather caches by identity)."""
        t = self.t
        t.state[new] = WAITING
        t.last_run_step[new] = self.steps - 1
        self.policy.on_arrival(t.request_id[new], now)
        return self._new_live(np.concatenate((live, new)))

    def _new_live(self, live: np.ndarray) -> np.ndarray:
        """Freeze a new live set: LiveGather caches its gathers by the identity of this array."""
        live.flags.writeable = False
        self.live = live
        return live

    def _preempt(self, ev: np.ndarray, cum: np.ndarray | None = None, for_cap: int = 0) -> int:
        """Preempt residents ``ev`` (lowest-ranked first): swap to host while it has room, else recompute.
        ``cum``: the running total of the blocks they hold, if known (the plan's ``evict_blocks``). ``for_cap``: how
        many of them the resident-slot cap forced (the plan's ``evict_for_cap``: the thrash error's cause).
        Returns the blocks moved to the host. The thrash guard is told at the end of the step (``_guard_due``).
        Swap is the simulator's alone: the engine adapter preempts by recompute only (vLLM V1 has no swap), which
        ``semantics="vllm-v1"`` requires; the recompute accounting is shared (:mod:`ltrsched.policies.recompute`)."""
        t = self.t
        if cum is None:
            cum = self.limits.blocks_for(t.computed_tokens[ev]).cumsum()
        t.num_preemptions[ev] += 1
        t.resident[ev] = False
        moved = 0
        if self.swap:
            room = self.host_blocks - self.host_blocks_in_use
            moved = int(cum[-1])
            if moved <= room:  # all go to the host (the usual case): nothing to recompute
                t.state[ev] = SWAPPED
                self.host_blocks_in_use += moved
                self._guard_due = (len(ev), 0, 0, for_cap)
                return moved
            fits = cum <= room  # a prefix (the total grows along ev)
            to_host = ev[fits]
            n_fit = len(to_host)
            moved = int(cum[n_fit - 1]) if n_fit else 0
            t.state[to_host] = SWAPPED
            self.host_blocks_in_use += moved
            to_recompute = ev[~fits]
        else:
            to_recompute = ev
        # (the rule, the engine adapter's too: ltrsched.policies.recompute)
        discarded = recompute(to_recompute, t.state, t.resident, t.computed_tokens, t.pending_tokens, t.prompt_tokens,
                              t.generated_tokens)
        self._guard_due = (len(ev), len(to_recompute), discarded, for_cap)
        return moved

    def _swap_in(self, batch: np.ndarray) -> int:
        """Bring swapped batch members back to the GPU; returns the blocks moved."""
        t = self.t
        swapped_in = batch[t.state[batch] == SWAPPED]
        if not len(swapped_in):
            return 0
        in_blocks = self.limits.blocks_total(t.computed_tokens[swapped_in])
        self.host_blocks_in_use -= in_blocks
        t.resident[swapped_in] = True
        return in_blocks

    def _advance_solo(self, i: int, dt: float, end) -> bool:
        """The decode-only step for a lone member ``i``, in scalar arithmetic (the same operations as the
        array path, element by element). Returns whether it finished."""
        t = self.t
        t.computed_tokens[i] += 1
        generated = t.generated_tokens[i] + 1
        t.generated_tokens[i] = generated
        gap = end - t.last_token_time[i]
        if gap > t.max_token_gap[i]:  # np.fmax: a NaN gap (no token before) never wins
            t.max_token_gap[i] = gap
        t.last_token_time[i] = end
        t.run_time[i] += dt
        t.state[i] = RUNNING
        idle_run = self.steps - 1 - t.last_run_step[i]
        if idle_run > t.max_idle_steps[i]:
            t.max_idle_steps[i] = idle_run
        t.last_run_step[i] = self.steps
        return generated >= t.output_tokens[i]  # (the finish rule: see run's done_mask)

    def _advance_mixed(self, batch, take, b_computed, b_gen, b_pending, start, end) -> np.ndarray:
        """Advance a batch with prefill work by ``take`` tokens; members that computed all their known
        tokens sample one. Updates ``b_gen`` in place to the new counts; returns the members that sampled."""
        t = self.t
        t.computed_tokens[batch] = b_computed + take
        left = b_pending - take  # known tokens still without KV after the step
        sampled_mask = left == 0
        b_gen += sampled_mask
        t.generated_tokens[batch] = b_gen
        t.pending_tokens[batch] = left + sampled_mask  # a sampled token's KV is next
        sampled = batch[sampled_mask]
        t.first_token_time[sampled] = np.fmin(t.first_token_time[sampled], end)  # NaN -> end
        t.first_scheduled_time[batch] = np.fmin(t.first_scheduled_time[batch], start)
        t.resident[batch] = True
        return sampled

    def _finish(self, done: np.ndarray, end) -> int:
        """Requests ``done`` finished at ``end``; returns the KV blocks they free."""
        t = self.t
        done_computed = t.computed_tokens[done]
        # (usually one or two: Python integers cost less than four numpy calls)
        freed = self.limits.blocks_total(done_computed.tolist() if len(done) <= 4 else done_computed)
        t.state[done] = FINISHED
        t.resident[done] = False
        t.finish_time[done] = end
        self.num_finished += len(done)
        self.policy.on_finish(t.request_id[done], end)
        if self.on_progress is not None:
            self.on_progress(len(done))
        return freed

    def _record(self, start, dt, shape, plan, swap_blocks, num_finished, num_live) -> None:
        """Append one step to the trace (with consistency checks: this path is for tests and analysis).

        The checks cost O(batch), not O(live requests): the counts are checked on the rows the step changed (its batch
        and its evicted requests; no other row's counts change), and the resident blocks are recounted from the states
        of the rows that can be resident, the last step's residents and this batch (a request becomes resident only by
        running). Over every request they cost 100 us a step, 2.4x the CPU time of the steps themselves, in a burst of
        20,000 requests on a 32-block KV cache (``--record-steps``, ``--trace``); now 20 us
        (``benchmarks/bench_record_steps.py``, BENCHMARKS.md)."""
        t = self.t
        tr = self.trace
        tr.start.append(start)
        tr.duration.append(dt)
        tr.num_seqs.append(len(plan.batch))
        tr.num_prefill_tokens.append(shape.num_prefill_tokens)
        tr.num_decode_seqs.append(shape.num_decode_seqs)
        tr.num_live.append(num_live)
        changed = np.concatenate((plan.batch, plan.evict))
        changed = changed[t.state[changed] != FINISHED]
        assert (t.pending_tokens[changed] == t.prompt_tokens[changed] + t.generated_tokens[changed]
                - t.computed_tokens[changed]).all()
        tr.blocks_in_use.append(self.blocks_in_use)
        tr.host_blocks_in_use.append(self.host_blocks_in_use)
        tr.num_evicted.append(len(plan.evict))
        tr.swap_blocks.append(swap_blocks)
        tr.num_batched_tokens.append(plan.num_batched_tokens)
        tr.num_finished.append(num_finished)
        can = np.union1d(self._trace_residents, plan.batch)
        states = t.state[can]
        res = self._trace_residents = can[(states == RUNNING) | (states == PAUSED)]
        tr.resident_blocks.append(self.limits.blocks_total(t.computed_tokens[res]))
