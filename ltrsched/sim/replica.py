"""One simulated serving replica: vLLM-style iteration-level batching as a SimPy process.

Each step: admit arrivals, ask the policy for the competition order, form the batch with
:func:`ltrsched.policies.form_batch` (the one place batch rules live), preempt what it says (swap or
recompute), time the step with the step-time profile (+ swap transfer time), then advance every batch
member's tokens. A request whose known tokens are all computed at the end of a step samples one output
token (the last prefill chunk yields the first token, as in vLLM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import simpy

from ltrsched.policies.base import LiveView, Policy, RequestState
from ltrsched.policies.batching import BatchLimits, form_batch
from ltrsched.sim.request_table import FINISHED, RequestTable
from ltrsched.policies.step_shape import StepShape, batch_step_shape

WAITING = int(RequestState.WAITING)
RUNNING = int(RequestState.RUNNING)
PAUSED = int(RequestState.PAUSED)
SWAPPED = int(RequestState.SWAPPED)


@dataclass
class StepTrace:
    """Per-step records (filled only when asked for); times in seconds, sizes in tokens/blocks."""

    start: list = field(default_factory=list)
    duration: list = field(default_factory=list)
    num_seqs: list = field(default_factory=list)
    num_prefill_tokens: list = field(default_factory=list)
    num_decode_seqs: list = field(default_factory=list)
    num_live: list = field(default_factory=list)
    blocks_in_use: list = field(default_factory=list)
    host_blocks_in_use: list = field(default_factory=list)
    num_evicted: list = field(default_factory=list)
    swap_blocks: list = field(default_factory=list)
    num_batched_tokens: list = field(default_factory=list)
    num_finished: list = field(default_factory=list)
    resident_blocks: list = field(default_factory=list)  # recounted from request states (a check)

    def as_dict(self) -> dict[str, list]:
        return dict(vars(self))


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
    ):
        self.env = env
        self.t = table
        self.policy = policy
        self.limits = limits
        self.step_time = step_time
        self.swap_seconds_per_block = swap_seconds_per_block
        self.host_blocks = host_blocks
        self.swap = preemption == "swap"
        self.trace = trace
        self.on_progress = on_progress
        self.stop_time = float("inf") if stop_time is None else stop_time
        self.steps = 0
        self.host_blocks_in_use = 0
        self.blocks_in_use = 0
        self.peak_blocks_in_use = 0
        self.num_preemptions = 0
        self.swapped_blocks_total = 0
        self.busy_time = 0.0

    # ------------------------------------------------------------------ the process
    def run(self):
        """SimPy process: serve until every request has finished."""
        t = self.t
        env = self.env
        arrival_order = np.argsort(t.arrival_time, kind="stable")
        arrivals = t.arrival_time[arrival_order]
        n = len(arrival_order)
        next_arrival = 0
        live = np.zeros(0, dtype=np.int64)
        columns = t.live_columns(lambda idx: self.steps - 1 - t.last_run_step[idx])
        prev_batch = np.zeros(0, dtype=np.int64)
        wants_on_step = getattr(type(self.policy), "on_step", Policy.on_step) is not Policy.on_step or not isinstance(
            self.policy, Policy)
        bs = self.limits.block_size

        while (next_arrival < n or len(live)) and env.now < self.stop_time:
            # -- admit arrivals up to now
            if next_arrival < n and arrivals[next_arrival] <= env.now:
                end = int(np.searchsorted(arrivals, env.now, side="right"))
                new = arrival_order[next_arrival:end]
                next_arrival = end
                t.state[new] = WAITING
                t.last_run_step[new] = self.steps - 1
                live = np.concatenate((live, new))
                self.policy.on_arrival(t.request_id[new], env.now)
            if not len(live):
                yield env.timeout(min(arrivals[next_arrival], self.stop_time) - env.now)
                continue

            # -- rank and form the batch (form_batch gets global request indices and arrays)
            view = LiveView(columns, live, env.now, self.steps)
            order = self.policy.rank(view)
            plan = form_batch(live[order], t.pending_tokens, t.computed_tokens, t.resident, self.limits,
                              self.blocks_in_use)

            # -- last step's batch (finished ones removed) pauses unless it runs again; then preemption
            t.state[prev_batch] = PAUSED
            swap_blocks = 0
            if len(plan.evict):
                ev = plan.evict
                ev_blocks = -(-t.computed_tokens[ev] // bs)
                self.num_preemptions += len(ev)
                t.num_preemptions[ev] += 1
                t.resident[ev] = False
                if self.swap:
                    room = self.host_blocks - self.host_blocks_in_use
                    fits = np.cumsum(ev_blocks) <= room
                    to_host = ev[fits]
                    moved = int(ev_blocks[fits].sum())
                    t.state[to_host] = SWAPPED
                    self.host_blocks_in_use += moved
                    swap_blocks += moved
                    recompute = ev[~fits]
                else:
                    recompute = ev
                t.state[recompute] = WAITING
                t.computed_tokens[recompute] = 0
                t.pending_tokens[recompute] = t.prompt_tokens[recompute] + t.generated_tokens[recompute]

            # -- the batch and its shape
            batch = plan.batch
            take = plan.num_new_tokens
            if self.host_blocks_in_use:  # swap-ins (nothing can be swapped while host memory is empty)
                swapped_in = batch[t.state[batch] == SWAPPED]
                if len(swapped_in):
                    in_blocks = int((-(-t.computed_tokens[swapped_in] // bs)).sum())
                    self.host_blocks_in_use -= in_blocks
                    swap_blocks += in_blocks
            b_computed = t.computed_tokens[batch]
            b_gen = t.generated_tokens[batch]
            # decode-only step: every member computes exactly its one pending token (members before the
            # last take all they need, so tokens == members and a last pending of 1 imply it) and has
            # produced a token before (else its first token / first scheduling must be recorded)
            # (with resident_first the chunk cut can fall on any member: check them all)
            steady = (int(take.sum()) == len(batch) and int(b_gen.min()) > 0
                      and (bool((t.pending_tokens[batch] == 1).all()) if self.limits.resident_first
                           else t.pending_tokens[batch[-1]] == 1))
            if steady:
                shape = StepShape(num_decode_seqs=len(batch), decode_context_tokens=int(b_computed.sum()) + len(batch))
            else:
                b_known = t.prompt_tokens[batch] + b_gen
                shape = batch_step_shape(take, b_computed, b_known)
            dt = self.step_time(shape) + swap_blocks * self.swap_seconds_per_block
            start = float(env.now)
            yield env.timeout(dt)
            end = env.now
            self.busy_time += dt

            # -- advance the batch
            if steady:  # every member samples a token; none is new
                t.computed_tokens[batch] = b_computed + 1
                new_gen = b_gen + 1
                t.generated_tokens[batch] = new_gen
                t.pending_tokens[batch] = 1
                sampled = batch
            else:
                new_computed = b_computed + take
                t.computed_tokens[batch] = new_computed
                sampled_mask = new_computed == b_known
                new_gen = b_gen + sampled_mask
                t.generated_tokens[batch] = new_gen
                t.pending_tokens[batch] = b_known + sampled_mask - new_computed  # a new token's KV is next
                sampled = batch[sampled_mask]
                t.first_token_time[sampled] = np.fmin(t.first_token_time[sampled], end)  # NaN -> end
                t.first_scheduled_time[batch] = np.fmin(t.first_scheduled_time[batch], start)
            t.resident[batch] = True
            gaps = end - t.last_token_time[sampled]  # NaN for first tokens: fmax ignores them
            t.max_token_gap[sampled] = np.fmax(t.max_token_gap[sampled], gaps)
            t.last_token_time[sampled] = end
            t.run_time[batch] += dt

            # -- states and idle runs (O(batch): a run of idle steps ends when the request runs again)
            t.state[batch] = RUNNING
            prev_batch = batch
            idle_run = self.steps - 1 - t.last_run_step[batch]
            t.max_idle_steps[batch] = np.maximum(t.max_idle_steps[batch], idle_run)
            t.last_run_step[batch] = self.steps

            if wants_on_step:
                scheduled = np.zeros(len(live), dtype=bool)
                scheduled[order[: len(batch)] if plan.ranks is None else order[plan.ranks]] = True
                self.policy.on_step(view, scheduled, dt)

            # -- finishes
            done_mask = new_gen >= t.output_tokens[batch]
            blocks_now = plan.blocks_in_use
            if done_mask.any():
                done = batch[done_mask]
                prev_batch = batch[~done_mask]
                blocks_now -= int((-(-t.computed_tokens[done] // bs)).sum())
                t.state[done] = FINISHED
                t.resident[done] = False
                t.finish_time[done] = end
                live = live[t.state[live] != FINISHED]
                self.policy.on_finish(t.request_id[done], end)
                if self.on_progress is not None:
                    self.on_progress(len(done))
            self.blocks_in_use = blocks_now
            if blocks_now > self.peak_blocks_in_use:
                self.peak_blocks_in_use = blocks_now
            self.swapped_blocks_total += swap_blocks

            if self.trace is not None:
                tr = self.trace
                tr.start.append(start)
                tr.duration.append(dt)
                tr.num_seqs.append(len(batch))
                tr.num_prefill_tokens.append(shape.num_prefill_tokens)
                tr.num_decode_seqs.append(shape.num_decode_seqs)
                tr.num_live.append(len(view))
                assert (t.pending_tokens[live] == t.prompt_tokens[live] + t.generated_tokens[live]
                        - t.computed_tokens[live]).all()
                tr.blocks_in_use.append(blocks_now)
                tr.host_blocks_in_use.append(self.host_blocks_in_use)
                tr.num_evicted.append(len(plan.evict))
                tr.swap_blocks.append(swap_blocks)
                tr.num_batched_tokens.append(int(take.sum()))
                tr.num_finished.append(int(done_mask.sum()))
                res = (t.state == RUNNING) | (t.state == PAUSED)
                tr.resident_blocks.append(int((-(-t.computed_tokens[res] // bs)).sum()))
            self.steps += 1
