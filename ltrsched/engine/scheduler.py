"""``PolicyScheduler``: vLLM 0.26's V1 scheduler, ordered by an ltrsched policy every step.

Load it with ``LLM(..., scheduler_cls=PolicyScheduler, async_scheduling=False,
enable_prefix_caching=False)`` (the runner does) or ``--scheduler-cls
ltrsched.engine.scheduler.PolicyScheduler``. Each step:

1. the policy ranks every live request (waiting, running, paused) from a :class:`LiveView` of the
   adapter's own arrays (:mod:`ltrsched.engine.live_table`);
2. :func:`ltrsched.policies.form_batch` (the batch rules, shared with the simulator) turns the ranking
   into a plan: the batch, its tokens, and which residents to preempt;
3. the plan is handed to vLLM's own ``Scheduler.schedule()``: the preempted requests are preempted
   first (vLLM's ``_preempt_request``: KV freed, recomputed later); for the duration of the call the
   running queue holds only the batch's resident members and the waiting queue only the members to
   admit, both in rank order; paused residents are set aside and put back afterwards, keeping their KV;
4. the step vLLM scheduled is checked against the plan (tokens per request, preemptions); a difference
   raises :class:`EngineMismatchError` (``strict``) or is counted in the step log.

Where vLLM V1 forces a difference from the paper's semantics (the simulator models each of them with
``SimConfig(semantics="vllm-v1")``; see ``ltrsched.policies.batching``):

* vLLM serves its running queue before admitting waiting requests: the token budget goes to resident
  batch members first, so the chunk cut at the budget edge can fall on a better-ranked admitted request
  (rule 5).
* vLLM caps requests holding KV (running + paused) at its ``max_num_seqs`` (its model runner keeps a slot
  per resident request): beyond it the lowest-ranked paused residents are preempted (rule 6). The batch
  cap can be set below it (``EngineSetup.max_batch_seqs``, the runner's ``max_num_seqs``) so that more
  requests pause with their KV kept.
* V1 has no swap: preemption always recomputes.
* one KV block is vLLM's null block: the usable capacity is ``num_gpu_blocks - 1``.
* async scheduling, prefix caching, speculative decoding and pipeline parallelism are refused: each
  would make a step's work differ from the plan.
"""

from __future__ import annotations

import time
from operator import attrgetter
from typing import Any

import numpy as np
from vllm.v1.core.sched.request_queue import SchedulingPolicy, create_request_queue
from vllm.v1.core.sched.scheduler import Scheduler

from ltrsched.engine.live_table import FINISHED, LiveTable
from ltrsched.engine.queues import HeldRequests
from ltrsched.engine.request_slots import RequestSlots
from ltrsched.engine.setup import EngineSetup, request_info, take_setup
from ltrsched.engine.step_log import StepLog
from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.batching import BatchLimits, form_batch
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.order_check import check_order
from ltrsched.policies.step_shape import split_step_shape


#: A vLLM request's output tokens so far (a C-level attribute read; ``Request.num_output_tokens`` is a property).
_OUTPUT_TOKEN_IDS = attrgetter("_output_token_ids")
#: An ``EngineCoreOutputs``' list of outputs (one per request with news for that client).
_OUTPUTS = attrgetter("outputs")
#: Steps with at most this many prompt chunks read only the chunks' output counts from vLLM (see ``_sampled``).
_FEW_CHUNKS = 16


class EngineMismatchError(RuntimeError):
    """vLLM scheduled a step that differs from the plan (a bug in the adapter's model of vLLM)."""


def unsupported_settings(vllm_config) -> list[str]:
    """Engine settings the adapter cannot realise exactly (empty if none)."""
    sc, cc = vllm_config.scheduler_config, vllm_config.cache_config
    problems = []
    if sc.async_scheduling:
        problems.append("async scheduling (use async_scheduling=False / --no-async-scheduling)")
    if cc.enable_prefix_caching:
        problems.append("prefix caching (use enable_prefix_caching=False / --no-enable-prefix-caching)")
    if vllm_config.speculative_config is not None:
        problems.append("speculative decoding")
    if vllm_config.parallel_config.pipeline_parallel_size > 1:
        problems.append("pipeline parallelism")
    if vllm_config.kv_transfer_config is not None:
        problems.append("KV connectors")
    if sc.policy != "fcfs":
        problems.append(f"scheduling policy {sc.policy!r} (the ltrsched policy replaces it; leave vLLM's at fcfs)")
    if sc.long_prefill_token_threshold:
        problems.append("long_prefill_token_threshold")
    return problems


class PolicyScheduler(Scheduler):
    """vLLM's V1 scheduler with the competition order from an ltrsched :class:`Policy`.

    Attributes (beyond vLLM's):
        ranking_policy: the policy (``self.policy`` is vLLM's own FCFS/priority setting).
        limits: the batch limits handed to :func:`form_batch` (vLLM's, in blocks and tokens).
        table: the per-request arrays policies read and results come from.
        log: the per-step record (shape, times, plan, plug-in overhead).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        problems = unsupported_settings(self.vllm_config)
        if problems:
            raise ValueError("ltrsched's PolicyScheduler cannot run with: " + "; ".join(problems))
        # Admission is the plan's decision: rule 3 checks the blocks of the chunk a request computes
        # this step (as the simulator does), not the whole prompt.
        self.scheduler_reserve_full_isl = False
        self.waiting = HeldRequests(self.waiting)
        # outputs from update_from_output are one per request that got tokens, less the failures (see there)
        self._plain_outputs = not (getattr(self, "is_mm_encoder_only", False) or getattr(self, "ec_connector", None))
        self.begin_run(take_setup(self.vllm_config.additional_config))

    def begin_run(self, setup: EngineSetup) -> None:
        """Start a new run (fresh arrays, step log and step count) with ``setup``'s policy and clock.
        The engine must be idle: one engine serves several runs without a restart."""
        if self.get_num_unfinished_requests():
            raise RuntimeError("begin_run needs an idle engine")
        batch_seqs = setup.max_batch_seqs or self.max_num_running_reqs
        if not 0 < batch_seqs <= self.max_num_running_reqs:
            raise ValueError(f"max_batch_seqs must be in [1, vLLM's max_num_seqs={self.max_num_running_reqs}], got {batch_seqs}")
        self.limits = BatchLimits(
            max_num_batched_tokens=self.max_num_scheduled_tokens,
            max_num_seqs=batch_seqs,
            num_gpu_blocks=self.kv_cache_manager.block_pool.get_num_free_blocks(),  # the null block excluded
            block_size=self.block_size,
            watermark_blocks=self.kv_cache_manager.watermark_blocks,
            chunked_prefill=self.scheduler_config.enable_chunked_prefill,
            resident_first=True,
            max_resident_seqs=self.max_num_running_reqs,
        )
        self.ranking_policy: Policy = setup.policy
        self.clock = setup.clock
        self.strict = setup.strict
        self.table = LiveTable()
        self.log = StepLog()
        self.num_steps = 0
        self.blocks_in_use = 0
        self.slots = RequestSlots()  # slot -> vLLM Request (None once finished) and its request id
        self._slot: dict[str, int] = {}
        self._prev_batch = np.zeros(0, dtype=np.int64)
        self._step: tuple | None = None  # what schedule() planned, until update_from_output
        self._prev_end = float("nan")
        self._all_sampled_at: float | None = None  # the end of the last step if every member sampled in it
        self._wants_on_step = type(self.ranking_policy).on_step is not Policy.on_step
        self._in_sync = True  # no step has differed from its plan: vLLM's running list mirrors the table
        self._held_mark = 0  # len(self.requests) - table.size after the last schedule()

    @property
    def planned_shape(self):
        """The :class:`StepShape` of the step the last ``schedule()`` planned (until its output is processed)."""
        return self._step[4] if self._step is not None else None

    # ------------------------------------------------------------------ arrivals and aborts
    def add_request(self, request) -> None:
        super().add_request(request)
        now = self.clock()
        params = request.sampling_params
        info = request_info(params.extra_args if params is not None else None, request.num_prompt_tokens,
                            request.max_tokens, now, fallback_id=self.table.size)
        slot = self._slot[request.request_id] = self.table.add(info, self.num_steps)
        self.slots.put(slot, request)
        self.ranking_policy.on_arrival(np.array([info.request_id], dtype=np.int64), now)

    def finish_requests(self, request_ids, finished_status):
        """Aborts from outside: the requests leave the live set without a finish time."""
        done = super().finish_requests(request_ids, finished_status)
        slots = np.array([self._slot.pop(r.request_id) for r in done if r.request_id in self._slot], dtype=np.int64)
        if len(slots):
            t = self.table
            self.blocks_in_use -= int(self.limits.blocks_for(t.computed_tokens[slots][t.resident[slots]]).sum())
            t.finished(slots, float("nan"))
            self._prev_batch = self._prev_batch[~np.isin(self._prev_batch, slots)]
            self.ranking_policy.on_finish(t.request_id[slots], self.clock())
        return done

    # ------------------------------------------------------------------ one step
    def schedule(self, *args: Any, **kwargs: Any):
        t = self.table
        if not len(t.live):
            return super().schedule(*args, **kwargs)
        wall0 = time.perf_counter()
        now = self.clock()
        step = self.num_steps
        view = LiveView(t.live_columns(step), t.live, now, step, t.arrival_ordered)
        order = check_order(self.ranking_policy.rank(view), view, self.ranking_policy)
        plan = form_batch(order, t.pending_tokens, t.computed_tokens, t.resident, self.limits,
                          self.blocks_in_use, live=t.live)
        batch = plan.batch
        slots = self.slots

        # preempt what the plan says (vLLM frees the KV and puts the request at the head of its waiting queue)
        if len(plan.evict):
            evicted = slots.gather(plan.evict)
            gone = set(map(id, evicted))
            self.running = [r for r in self.running if id(r) not in gone]
            stamp = time.monotonic()
            for r in evicted:
                self._preempt_request(r, stamp)  # prepends r to self.waiting: O(1) (HeldRequests)
            t.preempted(plan.evict)
            # an evicted member of the last batch has no KV now: it waits, it must not be marked paused below
            self._prev_batch = self._prev_batch[~np.isin(self._prev_batch, plan.evict)]

        # vLLM's queues for this call: the batch's residents, then the members to admit, in rank order
        batch_reqs = slots.gather(batch)
        is_res = t.resident[batch]
        num_res = int(count_nonzero(is_res))
        if num_res == len(batch):
            running_now, to_admit = batch_reqs, []
        else:
            running_now, to_admit = slots.gather(batch[is_res]), slots.gather(batch[~is_res])
        # residents outside the batch are set aside (paused, KV kept). vLLM's running list holds exactly the
        # resident requests, so when it is no longer than the batch's residents nothing pauses
        if len(self.running) == num_res and self._in_sync:
            paused = []
        else:
            in_batch = set(map(id, running_now))
            paused = [r for r in self.running if id(r) not in in_batch]
        waiting_all = self.waiting
        self.running = list(running_now)  # vLLM appends the admitted requests to it
        self.waiting = create_request_queue(SchedulingPolicy.FCFS)
        for r in to_admit:
            self.waiting.add_request(r)
        wall1 = time.perf_counter()
        try:
            out = super().schedule(*args, **kwargs)
        finally:
            wall2 = time.perf_counter()
            admitted = self.running[len(running_now):]
            if paused:
                self.running = self.running + paused
            if admitted:
                waiting_all.remove_requests(admitted)
            self.waiting = waiting_all

        # requests vLLM holds less those the table ever added: only a request leaving vLLM lowers it
        self._held_mark = len(self.requests) - t.size
        batch_ids = slots.gather_ids(batch)
        mismatch = self._check(out, batch_ids, plan)
        # the batch's counts before the step (form_batch's, when it kept them; preemption changes neither for
        # batch members). The table keeps pending = prompt + generated - computed for every request
        b_computed = t.computed_tokens[batch] if plan.computed_tokens is None else plan.computed_tokens
        b_pending = t.pending_tokens[batch] if plan.pending_tokens is None else plan.pending_tokens
        shape = split_step_shape(plan.num_new_tokens, b_computed, b_pending)
        rerun = t.scheduled(batch, plan.num_new_tokens, b_computed, self._prev_batch, step, now, num_res < len(batch))
        self.blocks_in_use = plan.blocks_in_use
        plugin_s = (wall1 - wall0) + (time.perf_counter() - wall2)
        self._step = (view, order, plan, now, shape, mismatch, wall2 - wall1, plugin_s, batch_reqs, batch_ids,
                      b_pending, rerun)
        return out

    def _check(self, out, batch_ids: list[str], plan) -> int:
        """Tokens per request and preemptions vLLM scheduled vs the plan; the number of differences."""
        got = out.num_scheduled_tokens
        planned = [1] * len(batch_ids) if plan.one_token_each else plan.num_new_tokens.tolist()
        evicted = set(self.slots.gather_ids(plan.evict)) if len(plan.evict) else set()
        if len(got) == len(batch_ids) and list(map(got.get, batch_ids)) == planned and out.preempted_req_ids == evicted:
            return 0  # the common case, checked in C loops
        wrong = [r for r, n in zip(batch_ids, planned) if got.get(r) != n]
        extra = len(got) - (len(batch_ids) - len(wrong))
        if out.preempted_req_ids != evicted:
            wrong.append(f"preempted {sorted(out.preempted_req_ids ^ evicted)}")
        n = len(wrong) + max(extra, 0)
        if n:
            self._in_sync = False
        if n and self.strict:
            raise EngineMismatchError(
                f"step {self.num_steps}: vLLM scheduled {dict(got)} but the plan was "
                f"{ dict(zip(batch_ids, planned)) } (differences: {wrong})"
            )
        return n

    def _sampled(self, emitted: int, reqs: list, plan, b_pending: np.ndarray, b_gen: np.ndarray):
        """Which batch members produced a token this step, from the plan, checked against what vLLM did:
        ``(sampled, differences)``, ``sampled`` None when every member did, else the tokens each produced.

        A member samples when it computes all its pending tokens (each decode: one pending, one taken).
        ``emitted`` is the number of outputs vLLM's ``update_from_output`` returned (-1: unknown). For a
        generating model with no error outputs (see ``update_from_output``) vLLM emits one output for each
        scheduled request that it appended tokens to, and appends at most one token per request per step
        (speculative decoding is refused). So when the outputs number the decodes plus the tokens the few
        prompt chunks produced (read from their requests), every decode produced its token: each decode is
        checked without touching its request. Otherwise, or with many chunks, each member's count is read from
        vLLM's request objects (one pass over the batch) and the differences from the plan are counted."""
        take = plan.num_new_tokens
        if plan.one_token_each:
            chunks = None
            k_chunks = 0
        else:
            chunks = (b_pending != 1).nonzero()[0]  # prompt chunks (and first tokens of 1-token prompts)
            k_chunks = len(chunks)
        if k_chunks <= _FEW_CHUNKS and emitted >= 0:
            if not k_chunks:
                if emitted == len(reqs):
                    return None, 0
            else:
                pos = chunks.tolist()
                got = [len(reqs[j]._output_token_ids) for j in pos]
                got_chunks = [g - b for g, b in zip(got, b_gen[chunks].tolist())]
                planned = (take[chunks] == b_pending[chunks]).tolist()
                if got_chunks == planned and emitted == len(reqs) - k_chunks + sum(got_chunks):
                    if all(planned):
                        return None, 0
                    return take == b_pending, 0
        # many chunks, or a difference: each member's count as vLLM has it. A member aborted since schedule()
        # (finish_requests) produces nothing
        got = np.fromiter(map(len, map(_OUTPUT_TOKEN_IDS, reqs)), dtype=np.int64, count=len(reqs)) - b_gen
        planned = (take == b_pending) & (self.table.state[plan.batch] != FINISHED)
        diff = int(count_nonzero(got != planned))
        if diff:
            self._in_sync = False
            if self.strict:
                raise EngineMismatchError(
                    f"step {self.num_steps}: vLLM's outputs differ from the plan for {diff} requests (tokens "
                    f"produced {got.tolist()}, planned {planned.astype(int).tolist()})")
        return got, diff

    def update_from_output(self, scheduler_output, model_runner_output):
        # vLLM adds outputs without tokens only for requests it fails (grammar compile errors, encoder cache
        # mismatches, connectors) or for pooling and encoder-only models
        plain = self._plain_outputs and not (self.grammar_compile_error_reqs or self.encoder_cache_mismatch_reqs)
        outputs = super().update_from_output(scheduler_output, model_runner_output)
        if self._step is None:
            return outputs
        wall0 = time.perf_counter()
        view, order, plan, start, shape, mismatch, vllm_s, plugin_s, reqs, ids, b_pending, rerun = self._step
        self._step = None
        now = self.clock()
        dt = now - start
        t = self.table
        batch = plan.batch
        b_gen = t.generated_tokens[batch]
        if mismatch:  # vLLM scheduled another step than the plan: its own account of each member
            got = np.fromiter(map(len, map(_OUTPUT_TOKEN_IDS, reqs)), dtype=np.int64, count=len(reqs))
            sampled, wrong = got - b_gen, 0
        else:
            emitted = sum(map(len, map(_OUTPUTS, outputs.values()))) if plain else -1
            sampled, wrong = self._sampled(emitted, reqs, plan, b_pending, b_gen)
        t.stepped(batch, plan.num_new_tokens, b_pending, b_gen, sampled, now, dt, plan.one_token_each,
                  self._all_sampled_at if rerun and sampled is None else None)
        self._all_sampled_at = now if sampled is None else None
        # vLLM drops a request from self.requests when it finishes (no KV connectors here): if none left
        # since schedule() (the mark is unchanged), no member finished
        if len(self.requests) - t.size == self._held_mark:
            done = None
        else:
            done = ~np.fromiter(map(self.requests.__contains__, ids), dtype=bool, count=len(ids))
        if self._wants_on_step:
            scheduled = np.zeros(len(view), dtype=bool)
            scheduled[order[: len(batch)] if plan.ranks is None else order[plan.ranks]] = True
            self.ranking_policy.on_step(view, scheduled, dt)
        num_finished = 0 if done is None else int(count_nonzero(done))
        if num_finished:
            finished = batch[done]
            self.blocks_in_use -= int(self.limits.blocks_for(t.computed_tokens[finished]).sum())
            t.finished(finished, now)
            for rid in self.slots.gather_ids(finished):
                self._slot.pop(rid, None)
            self.slots.release(finished)
            self.ranking_policy.on_finish(t.request_id[finished], now)
        self._prev_batch = batch[~done] if num_finished else batch
        self.log.record(
            start=start, end=now, cycle=now - self._prev_end, shape=shape, num_live=len(view),
            num_evicted=len(plan.evict), num_finished=num_finished, blocks_in_use=self.blocks_in_use,
            mismatches=mismatch + wrong, vllm_schedule_s=vllm_s, plugin_s=plugin_s + time.perf_counter() - wall0,
        )
        # the next step follows back to back if requests are left (else it waits for an arrival)
        self._prev_end = now if len(t.live) else float("nan")
        self.num_steps += 1
        return outputs
