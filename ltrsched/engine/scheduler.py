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
   admit, both in rank order (vLLM 0.26's second waiting queue, which it serves first, is empty then: its
   members to admit are in the waiting queue); paused residents are set aside and put back afterwards, keeping
   their KV;
   a request whose structured-output grammar is still compiling is held out of the plan (vLLM skips it until the
   grammar is ready: :meth:`PolicyScheduler._held_for_grammar`);
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
* async scheduling, prefix caching, speculative decoding, pipeline and data parallelism are refused: each
  would make a step's work differ from the plan.
* streaming-input sessions (vLLM 0.32's resumable requests) are refused: each is failed alone (``FINISHED_ERROR``,
  one warning line), the engine's other requests run on: see :meth:`PolicyScheduler._refuse_session`.
"""

from __future__ import annotations

import logging
import sys
import time
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np
from vllm.v1.core.sched.request_queue import SchedulingPolicy, create_request_queue
from vllm.v1.core.sched.scheduler import Scheduler

from ltrsched.engine.live_table import AS_PLANNED, FINISHED, LiveTable
from ltrsched.engine.queues import HeldRequests
from ltrsched.engine.request_slots import RequestSlots
from ltrsched.engine.setup import BadRequestArgs, EngineSetup, request_info, take_setup
from ltrsched.engine.step_log import StepLog
from ltrsched.engine.vllm_compat import fail_at_next_update, local_prefill_interval, second_waiting_queue
from ltrsched.plugin_watchdog import PluginInterrupt, PluginTimeoutError, start_watchdog
from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.batching import BatchLimits, form_batch
from ltrsched.policies.fastops import count_nonzero, ones
from ltrsched.policies.order_check import check_order
from ltrsched.policies.step_shape import decode_shape, few_chunks_shape, split_step_shape


#: A vLLM request's output tokens so far (a C-level attribute read; ``Request.num_output_tokens`` is a property).
_OUTPUT_TOKEN_IDS = attrgetter("_output_token_ids")
#: An ``EngineCoreOutputs``' list of outputs (one per request with news for that client).
_OUTPUTS = attrgetter("outputs")
#: Steps with at most this many prompt chunks read only the chunks' output counts from vLLM (see ``_sampled``).
_FEW_CHUNKS = 16
_NONE = ()
#: vLLM's scheduler attributes holding the requests its ``update_from_output`` fails, with an output without tokens
#: each (grammar compile errors; encoder cache mismatches, vLLM 0.32 only).
ERROR_SETS = ("grammar_compile_error_reqs", "encoder_cache_mismatch_reqs")
#: How many refused streaming-input session ids the adapter remembers (to fail their later inputs too).
REFUSED_IDS_KEPT = 4096

logger = logging.getLogger(__name__)


class EngineMismatchError(RuntimeError):
    """vLLM scheduled a step that differs from the plan (a bug in the adapter's model of vLLM)."""


def unsupported_settings(vllm_config, prefill_interval: int = 1) -> list[str]:
    """Engine settings the adapter cannot realise exactly (empty if none). ``prefill_interval``: every how many steps
    the scheduler admits prefill work (:func:`~ltrsched.engine.vllm_compat.local_prefill_interval`)."""
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
    if vllm_config.parallel_config.data_parallel_size > 1:
        # vLLM defers prefills on some steps (throttle_prefills) and each rank would rank only its own requests
        problems.append(f"data parallelism (data_parallel_size={vllm_config.parallel_config.data_parallel_size}; "
                        "run one engine per GPU)")
    if vllm_config.kv_transfer_config is not None:
        problems.append("KV connectors")
    if sc.policy != "fcfs":
        problems.append(f"scheduling policy {sc.policy!r} (the ltrsched policy replaces it; leave vLLM's at fcfs)")
    if sc.long_prefill_token_threshold:
        problems.append("long_prefill_token_threshold")
    if prefill_interval > 1:  # (vLLM 0.33 on: its schedule() then defers the plan's prompt chunks on most steps)
        problems.append(f"prefill_schedule_interval={prefill_interval} (prefill admitted only every "
                        f"{prefill_interval} steps; leave it at 1)")
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
        problems = unsupported_settings(self.vllm_config, local_prefill_interval(self))
        if problems:
            raise ValueError("ltrsched's PolicyScheduler cannot run with: " + "; ".join(problems))
        # Admission is the plan's decision: rule 3 checks the blocks of the chunk a request computes
        # this step (as the simulator does), not the whole prompt.
        self.scheduler_reserve_full_isl = False
        self.waiting = HeldRequests(self.waiting)
        # vLLM 0.26 keeps the requests waiting on a grammar, streaming input or remote KV in a second queue that its
        # schedule() serves before `waiting`: held like `waiting` between steps, empty during schedule()
        self._second_queue = second_waiting_queue(self)
        if self._second_queue is not None:
            setattr(self, self._second_queue, HeldRequests(getattr(self, self._second_queue)))
            self._no_skipped = create_request_queue(SchedulingPolicy.FCFS)
        # outputs from update_from_output are one per request that got tokens, less the failures (see there)
        self._plain_outputs = not (getattr(self, "is_mm_encoder_only", False) or getattr(self, "ec_connector", None))
        # the sets of requests vLLM fails in update_from_output (an output without tokens each), those this vLLM has:
        # 0.32 has both, 0.26 only the grammar's (reading the other raised AttributeError at every step)
        self._failing_sets = tuple(name for name in ERROR_SETS if hasattr(self, name))
        self._watchdog = None
        self._stopped: str | None = None  # the line of the plugin time limit this scheduler's watchdog enforced
        self._abandoned = False  # the run under way was abandoned (abandon_run): aborts skip the table and the policy
        self._refused: dict[str, None] = {}  # ids of the refused streaming-input sessions, oldest first
        setup = take_setup(self.vllm_config.additional_config)
        self.begin_run(setup)
        # under `vllm serve` no ltrsched harness brackets the steps with the plugin time limit: the scheduler
        # watches its own thread (vLLM's engine core builds it and steps it on its main thread), from now to
        # shutdown(); nothing runs per step (a watchdog thread looks at the stack)
        self._watchdog = start_watchdog() if setup.watch_plugins else None

    def shutdown(self) -> None:
        super().shutdown()
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None

    def _plugin_timeout(self, exc: PluginInterrupt) -> BaseException:
        """What a plugin call interrupted past the time limit raises: one line (:class:`PluginTimeoutError`, which
        vLLM's engine core reports as its fatal error) where this scheduler's own watchdog stopped it; another's
        interrupt as it is (the replay loop's bracket turns it into that error).

        The watchdog is stopped here, its interrupt having landed (the call stopped; the scheduler takes no more
        plugin calls, :meth:`_check_not_stopped`): left running until a :meth:`shutdown` that an in-process engine
        whose step raised never gets, it kept watching the thread for the process's life, with the files of the
        plugins registered when it started, and ended the process ("it did not stop when interrupted") at the next
        call of those plugins that it saw twice, a run of a new engine in the same process included; its signal
        handler stayed installed, so a later watchdog on that thread could not interrupt a ``time.sleep``."""
        dog = self._watchdog
        if dog is None or dog.message is None:
            return exc
        self._stopped = dog.message
        self._watchdog = None
        dog.stop()
        return PluginTimeoutError(dog.message)

    def _check_not_stopped(self) -> None:
        """Refuse to go on, in one line, once this scheduler's own watchdog stopped a plugin call: the call left the
        policy and the adapter's table half-updated (an ``on_step`` stopped after vLLM had freed the finished
        requests: they stayed live in the table, and the next step handed vLLM requests it had finished), and the
        watchdog, having fired once, no longer limits a call (a later call past the limit ended the process after
        :data:`~ltrsched.plugin_watchdog.GRACE_S`, saying the first call did not stop). vLLM's own aborts
        (:meth:`finish_requests`) still free the requests' KV blocks."""
        if self._stopped is not None:
            raise PluginTimeoutError(f"{self._stopped}; the scheduler stopped there and takes no more requests or steps")

    def begin_run(self, setup: EngineSetup) -> None:
        """Start a new run (fresh arrays, step log and step count) with ``setup``'s policy and clock.
        The engine must be idle: one engine serves several runs without a restart."""
        self._check_not_stopped()
        if self.get_num_unfinished_requests():
            raise RuntimeError("begin_run needs an idle engine")
        self._abandoned = False
        batch_seqs = setup.max_batch_seqs or self.max_num_running_reqs
        if not 0 < batch_seqs <= self.max_num_running_reqs:
            raise ValueError(f"max_batch_seqs must be in [1, vLLM's max_num_seqs={self.max_num_running_reqs}], got {batch_seqs}")
        self.limits = BatchLimits(
            max_num_batched_tokens=self.max_num_scheduled_tokens,
            max_num_seqs=batch_seqs,
            num_gpu_blocks=self.kv_cache_manager.block_pool.get_num_free_blocks(),  # the null block excluded
            block_size=self.block_size,
            # (vLLM's own, its null block counted; the simulator's vllm-v1 semantics models it with
            # ltrsched.policies.batching.vllm_watermark_blocks)
            watermark_blocks=self.kv_cache_manager.watermark_blocks,
            chunked_prefill=self.scheduler_config.enable_chunked_prefill,
            resident_first=True,
            max_resident_seqs=self.max_num_running_reqs,
            watermark_when_running=True,  # (allocate_slots' has_scheduled_reqs)
        )
        self.ranking_policy: Policy = setup.policy
        self.clock = setup.clock
        self.strict = setup.strict
        self.table = LiveTable()
        self.log = StepLog(setup.max_log_steps)
        self.num_steps = 0
        self.blocks_in_use = 0
        #: preemptions so far that the resident-slot cap (vLLM's max_num_seqs) forced beyond what the KV blocks needed
        #: (the plans' evict_for_cap: the thrash guard's cause, engine.replay)
        self.num_evicted_for_cap = 0
        self.slots = RequestSlots()  # slot -> vLLM Request (None once finished) and its request id
        self._slot: dict[str, int] = {}
        self._num_added = 0  # requests the table took so far (a request without an id gets this one)
        # the table drops its finished rows from this size on (a server's: setup.compact_rows; a run's never)
        self._compact_rows = setup.compact_rows or sys.maxsize
        self._prev_batch = np.zeros(0, dtype=np.int64)
        self._step: tuple | None = None  # what schedule() planned, until update_from_output
        self._prev_end = float("nan")
        self._prev_gone: np.ndarray | None = None  # members of _prev_batch that finished in its step
        self._aborted: list[np.ndarray] = []  # batch members aborted between schedule() and update_from_output()
        self._admit_queue = create_request_queue(SchedulingPolicy.FCFS)  # vLLM's waiting queue in schedule()
        self._wants_on_step = type(self.ranking_policy).on_step is not Policy.on_step
        #: the policy's ``on_step_ranks`` twin, told the batch as its ranks in the order (no mask over every live
        #: request to build or read; SRTF's kept order follows a batch at the head in place), as the simulator does
        self._on_step_ranks = getattr(self.ranking_policy, "on_step_ranks", None) if self._wants_on_step else None
        self._wants_on_finish = type(self.ranking_policy).on_finish is not Policy.on_finish  # (FCFS: the no-op)
        self._in_sync = True  # no step has differed from its plan: vLLM's running list mirrors the table
        self._none_paused = True  # the last schedule() paused no resident
        self._paused: dict[int, Any] = {}  # id -> request of the residents the last schedule() set aside (in sync)
        self._survivors: tuple | None = None  # (the last batch's requests, ids of those that finished), or None
        self._grammar_wait: dict[int, Any] = {}  # slot -> request: its grammar was not ready at the last look

    def abandon_run(self) -> None:
        """Give up the run under way (its replay failed): vLLM's aborts of its requests, which should follow, free
        their KV without touching the table or calling the policy (whose call may be what failed), so that the next
        :meth:`begin_run` finds the engine idle."""
        self._abandoned = True

    @property
    def planned_shape(self):
        """The :class:`StepShape` of the step the last ``schedule()`` planned (until its output is processed)."""
        return self._step[4] if self._step is not None else None

    # ------------------------------------------------------------------ arrivals and aborts
    def add_request(self, request) -> None:
        """A new request joins the table (and the policy hears of its arrival).

        A streaming-input session (vLLM 0.32's ``resumable`` request, whose input arrives in parts) is refused, and
        only it (:meth:`_refuse_session`): between inputs it keeps its KV blocks and a model runner slot while it
        cannot run, in vLLM's ``kv_holding_waiting`` queue, which vLLM's ``schedule()`` serves before ``waiting``;
        each next input arrives as a request with the same id that extends its prompt. The plan (the simulator's
        batch rules) models neither, so the adapter cannot hold that queue as it holds 0.26's ``skipped_waiting``:
        vLLM served the session outside the plan, and the table counted each input as a new request beside the
        first, which stayed live (a mismatch at every step). With sessions refused, vLLM's ``kv_holding_waiting``
        stays empty under the adapter: the other requests that would enter it (remote KV) need a KV connector,
        refused at start, and a preempted request keeps no KV."""
        if self._stopped is not None:  # (an attribute read per call: the check's method only when stopped)
            self._check_not_stopped()
        if self._refused and request.request_id in self._refused or getattr(request, "resumable", False):
            self._refuse_session(request)
            return
        now = self.clock()
        params = request.sampling_params
        try:
            info = request_info(params.extra_args if params is not None else None, request.num_prompt_tokens,
                                request.max_tokens, now, fallback_id=self._num_added)
        except BadRequestArgs as exc:
            self._refuse_args(request, exc)
            return
        super().add_request(request)
        slot = self._slot[request.request_id] = self.table.add(info, self.num_steps)
        self._num_added += 1
        self.slots.put(slot, request)
        if request.structured_output_request is not None:  # (its grammar compiles in a thread: see _held_for_grammar)
            self._grammar_wait[slot] = request
        try:  # (a plugin call: the try costs nothing unless it raises)
            self.ranking_policy.on_arrival(np.array([info.request_id], dtype=np.int64), now)
        except PluginInterrupt as exc:
            raise self._plugin_timeout(exc) from None

    def _refuse_args(self, request, exc: BadRequestArgs) -> None:
        """Fail a request whose ltrsched arguments cannot be read (a score that is no number, ...: :class:`BadRequestArgs`)
        alone, with one warning line naming it and the argument: vLLM registers it and finishes it at its next
        ``update_from_output`` with ``FINISHED_ERROR`` (:meth:`_fail_alone`). Raising here instead (a ``ValueError`` or
        ``AttributeError`` from reading the arguments, as before) stopped the engine core under ``vllm serve``, which takes any
        exception from ``add_request`` as fatal: one HTTP client's ``vllm_xargs`` ended every client's requests."""
        logger.warning("ltrsched's PolicyScheduler refuses request %r: %s; it is failed (FINISHED_ERROR), the other "
                       "requests run on", request.request_id, exc)
        self._fail_alone(request, f"ltrsched's PolicyScheduler refuses the request: {exc}")

    def _fail_alone(self, request, message: str) -> None:
        """Register ``request`` with vLLM and have vLLM fail it at its next ``update_from_output`` (it joins
        ``grammar_compile_error_reqs``, as a request whose grammar did not compile): ``FINISHED_ERROR``, an output
        without tokens for its client. It never enters the table or the plan (vLLM's waiting queue holds it between
        steps; :meth:`schedule` hands vLLM only the plan's members, and with no live request leaves it out), the policy
        never hears of it, and :meth:`finish_requests` finds it outside the table. ``message``: the error that vLLM 0.33
        on send the client (:func:`~ltrsched.engine.vllm_compat.fail_at_next_update`)."""
        super().add_request(request)
        fail_at_next_update(self, request.request_id, message)

    def _refuse_session(self, request) -> None:
        """Fail a streaming-input session, or a later input of one, alone, as vLLM fails a request whose grammar did
        not compile: vLLM registers it (in its waiting queue, which between steps only holds requests: ``schedule()``
        hands vLLM the plan's members) and it joins ``grammar_compile_error_reqs``, so vLLM's next
        ``update_from_output`` finishes it with ``FINISHED_ERROR`` and an output without tokens for its client
        (:meth:`finish_requests` finds it outside the table). It never enters the table or the plan, and the policy
        never hears of it. Raising here instead (``StreamingSessionError``, as before) stopped the engine core
        under ``vllm serve``, which takes any exception from ``add_request`` as fatal: one such client ended every
        client's requests.

        A next input of a session vLLM still holds is vLLM's (it queues it on the session, failed with it). One that
        comes after the session failed, or the session's closing request (not resumable, the same id), is registered
        and failed the same way, so each request handed to the engine gets an output; the closing request ends the
        adapter's record of the id (the last :data:`REFUSED_IDS_KEPT` ids are kept: a cancelled session sends none)."""
        rid = request.request_id
        if rid not in self._refused:
            logger.warning("ltrsched's PolicyScheduler cannot serve streaming-input session %r: it is failed "
                           "(FINISHED_ERROR), the other requests run on; send each input as a request of its own", rid)
            self._refused[rid] = None
            if len(self._refused) > REFUSED_IDS_KEPT:
                del self._refused[next(iter(self._refused))]
        if not getattr(request, "resumable", False):
            self._refused.pop(rid, None)
        held = self.requests.get(rid)
        super().add_request(request)  # (a session vLLM holds takes the input in its own queue)
        if held is None:
            fail_at_next_update(self, rid, "ltrsched's PolicyScheduler cannot serve streaming-input sessions; "
                                           "send each input as a request of its own")

    def finish_requests(self, request_ids, finished_status):
        """Aborts from outside: the requests leave the live set without a finish time."""
        done = super().finish_requests(request_ids, finished_status)
        if self._stopped is not None or self._abandoned:  # vLLM's part alone (the KV freed): the run is over
            return done
        if done:  # (vLLM took them out of its running list: the next step's pass over it finds the residents)
            self._survivors = None
            for r in done:
                self._paused.pop(id(r), None)
        slots = np.array([self._slot.pop(r.request_id) for r in done if r.request_id in self._slot], dtype=np.int64)
        if self._grammar_wait:
            for s in slots.tolist():
                self._grammar_wait.pop(s, None)
        if len(slots):
            t = self.table
            self.blocks_in_use -= self.limits.blocks_total(t.computed_tokens[slots][t.resident[slots]])
            t.finished(slots, float("nan"))
            self._prev_batch = self._prev_batch[~np.isin(self._prev_batch, slots)]
            if self._step is not None:  # aborted during a step: its members among them left in it
                members = slots[np.isin(slots, self._step[2].batch)]
                if len(members):
                    self._aborted.append(members)
            try:
                self.ranking_policy.on_finish(t.request_id[slots], self.clock())
            except PluginInterrupt as exc:
                raise self._plugin_timeout(exc) from None
        return done

    # ------------------------------------------------------------------ one step
    def schedule(self, *args: Any, **kwargs: Any):
        if self._stopped is not None:  # (an attribute read per call: the check's method only when stopped)
            self._check_not_stopped()
        t = self.table
        if t.size >= self._compact_rows and t.size >= 2 * t.num_live and self._step is None and not self._aborted:
            self._compact()
        if not t.num_live:
            if not self.waiting:
                return super().schedule(*args, **kwargs)
            # the held waiting queue holds only requests outside the table: the refused sessions (_refuse_session),
            # which vLLM fails at this step's update_from_output, must not be admitted; any other is vLLM's, as before
            waiting_all, failing = self.waiting, self.grammar_compile_error_reqs
            self.waiting = create_request_queue(SchedulingPolicy.FCFS)
            self.waiting.extend([r for r in waiting_all if r.request_id not in failing])
            try:
                return super().schedule(*args, **kwargs)
            finally:
                self.waiting = waiting_all
                waiting_all.remove_requests(self.running)  # (those vLLM admitted: the running list was empty)
        wall0 = time.perf_counter()
        now = self.clock()
        step = self.num_steps
        view = LiveView(t.live_columns(step), t.live, now, step, t.arrival_ordered)
        try:
            order = check_order(self.ranking_policy.rank(view), view, self.ranking_policy)
        except PluginInterrupt as exc:
            raise self._plugin_timeout(exc) from None
        if self._grammar_wait:  # (requests whose grammar is compiling may not join the batch: vLLM would skip them)
            held = self._held_for_grammar()
            if len(held):
                order = order[~np.isin(t.live[order], held)]
        plan = form_batch(order, t.pending_tokens, t.computed_tokens, t.resident, self.limits,
                          self.blocks_in_use, live=t.live)
        batch = plan.batch
        take = plan.num_new_tokens
        slots = self.slots
        running = self.running  # every request holding KV (vLLM's running list between steps)

        # preempt what the plan says (vLLM frees the KV and puts the request at the head of its waiting queue;
        # it leaves the running list to the caller: the pass over it below drops them). vLLM's part comes after
        # the table's work, which runs best right after form_batch's (see below)
        evicted = _NONE
        if len(plan.evict):  # (vLLM's part below, after the table's)
            evicted = slots.gather(plan.evict)
            t.preempted(plan.evict)
            self.num_evicted_for_cap += plan.evict_for_cap
            # an evicted member of the last batch has no KV now: it waits, it must not be marked paused below.
            # Every other member of the last batch holds KV (those that finished left it), so the ones still
            # resident are the others
            prev = self._prev_batch
            self._prev_batch = prev[t.resident[prev]]
            self._prev_gone = None

        # vLLM's queues for this call: the batch's residents, then the members to admit, in rank order
        batch_reqs = slots.gather(batch)
        n = len(batch)
        is_res = t.resident[batch]
        num_res = int(count_nonzero(is_res))
        admitted_slots = None
        engine_reqs = batch_reqs  # the order vLLM serves them in: residents first (see _check)
        if num_res == n:
            running_now, to_admit = batch_reqs, _NONE
        elif is_res.argmin() == num_res:  # the residents rank first, as they mostly do (the first False is there)
            running_now, to_admit = batch_reqs[:num_res], batch_reqs[num_res:]
            admitted_slots = batch[num_res:]
        else:
            admitted_slots = batch[~is_res]
            running_now, to_admit = slots.gather(batch[is_res]), slots.gather(admitted_slots)
            engine_reqs = None
        # residents outside the batch are set aside (paused, KV kept). vLLM's running list holds exactly the
        # resident requests (the evicted ones too, until here), so when it is no longer than the batch's
        # residents and the evicted nothing pauses
        survivors, self._survivors = self._survivors, None
        if len(running) == num_res + len(evicted) and self._in_sync:
            paused = _NONE
            self._paused.clear()
        elif self._in_sync and survivors is not None:
            # the residents are the last step's paused ones and its members still here: only those change
            kept = self._paused
            reqs, gone = survivors
            for r in reqs if not gone else [r for r in reqs if id(r) not in gone]:
                kept[id(r)] = r
            for r in running_now:
                kept.pop(id(r), None)
            for r in evicted:
                kept.pop(id(r), None)
            paused = list(kept.values())
        else:
            skip = set(map(id, running_now))
            if evicted:
                skip.update(map(id, evicted))
            paused = [r for r in running if id(r) not in skip]
            self._paused = {id(r): r for r in paused}
        # the step's shape and the table's update come before vLLM's schedule() (which reads neither): a numpy
        # call costs less right after form_batch's than after vLLM's work, which leaves the caches cold (the first
        # call of each kind there takes ~10-30 us on the 2-core VM: BENCHMARKS.md, issue 13).
        # The batch's counts before the step (form_batch's, when it kept them; preemption changes neither for
        # batch members). The table keeps pending = prompt + generated - computed for every request
        b_computed = t.computed_tokens[batch] if plan.computed_tokens is None else plan.computed_tokens
        b_pending = t.pending_tokens[batch] if plan.pending_tokens is None else plan.pending_tokens
        # the step's prompt chunks (members with other than one token pending), with what each takes and has
        # pending and the outputs its request holds before the step, when they are few (see _sampled)
        context = int(b_computed.dot(ones(n)))  # KV tokens of the batch before the step
        chunks = None
        if plan.one_token_each:
            shape = decode_shape(n, context)
        else:
            pos = (b_pending != 1).nonzero()[0]
            k = len(pos)
            if not k:
                shape = decode_shape(n, context)
            elif k <= _FEW_CHUNKS:  # (scalar reads: a numpy call costs more than a few of them)
                pos = pos.tolist()
                c_take = list(map(take.item, pos))
                c_pending = list(map(b_pending.item, pos))
                shape = few_chunks_shape(n, context, c_take, list(map(b_computed.item, pos)))
                chunks = (pos, c_take, c_pending, list(map(batch.item, pos)),
                          [len(batch_reqs[j]._output_token_ids) for j in pos])
            else:
                shape = split_step_shape(take, b_computed, b_pending)
                chunks = pos
        # nobody paused in the last step or this one: the batch's residents are the last batch's members left
        settled = self._in_sync and not paused and self._none_paused
        self._none_paused = not paused
        t.scheduled(batch, take, b_computed, self._prev_batch, step, now, admitted_slots, self._prev_gone, settled)
        planned = None if plan.one_token_each else take.tolist()  # (for the check)
        on_step = None  # the batch as (order, its ranks there) for on_step_ranks, else a mask over the view for on_step
        if self._on_step_ranks is not None:
            on_step = (order, n if plan.ranks is None else plan.ranks)  # (n: a Python int, the head of the order)
        elif self._wants_on_step:
            on_step = np.zeros(len(view), dtype=bool)
            on_step[order[:n] if plan.ranks is None else order[plan.ranks]] = True
        self.blocks_in_use = plan.blocks_in_use
        if evicted:
            stamp = time.monotonic()
            for r in evicted:
                self._preempt_request(r, stamp)  # prepends r to self.waiting: O(1) (HeldRequests)
        waiting_all = self.waiting
        self.running = running_now if running_now is not batch_reqs else batch_reqs[:]  # vLLM appends the admitted
        admit_queue = self._admit_queue
        admit_queue.clear()
        admit_queue.extend(to_admit)
        self.waiting = admit_queue
        second = self._second_queue
        if second is not None:  # (vLLM 0.26) its members to admit are in admit_queue; what vLLM skips lands here
            skipped_all = getattr(self, second)
            self._no_skipped.clear()
            setattr(self, second, self._no_skipped)
        wall1 = time.perf_counter()
        try:
            out = super().schedule(*args, **kwargs)
        finally:
            wall2 = time.perf_counter()
            scheduled = self.running  # vLLM's running list now: the requests it scheduled, in its order
            admitted = scheduled[num_res:]
            if paused:
                self.running = scheduled + paused
            if admitted:
                waiting_all.remove_requests(admitted)
            self.waiting = waiting_all
            if second is not None:  # (a request vLLM skipped stays in the queue that held it)
                if admitted:
                    skipped_all.remove_requests(admitted)
                setattr(self, second, skipped_all)

        mismatch = self._check(out, plan, planned, scheduled, engine_reqs, evicted)
        plugin_s = (wall1 - wall0) + (time.perf_counter() - wall2)
        self._step = (view, on_step, plan, now, shape, mismatch, wall2 - wall1, plugin_s, batch_reqs, b_pending, chunks)
        return out

    def _compact(self) -> None:
        """Drop the finished requests' rows from the table (a server's scheduler: ``EngineSetup.compact_rows``), and
        renumber every slot held anywhere: the live requests get the slots ``0 .. k-1`` in their slot order, so a
        policy's view lists them in the same order (policies key their memory by request id and position). Called
        between steps (no plan in flight), when at least half the rows are finished: amortised O(1) per request.

        The last batch's finished members (``_prev_gone``) leave it: the next step's table update then pauses the
        others and finds the same rerun (it is what a preemption before the step does)."""
        t = self.table
        prev = self._prev_batch
        prev = prev[t.state[prev] != FINISHED]
        old_size = t.size
        capacity = max(1024, 2 * t.num_live)
        kept = t.compact(capacity)
        new_of = np.full(old_size, -1, dtype=np.int64)
        new_of[kept] = np.arange(len(kept), dtype=np.int64)
        self.slots.compact(kept, capacity)
        self._slot = {rid: new_of.item(s) for rid, s in self._slot.items()}
        self._prev_batch = new_of[prev]
        self._prev_gone = None
        if self._grammar_wait:
            self._grammar_wait = {new_of.item(s): r for s, r in self._grammar_wait.items()}

    def _held_for_grammar(self) -> np.ndarray:
        """The slots of the requests whose structured-output grammar is not ready: the plan holds them out.

        vLLM compiles a request's grammar in a thread from its arrival and its ``schedule()`` skips a waiting request
        until the grammar is ready (``_handle_blocked_waiting_request``): a plan that admitted one was a mismatch
        (an :class:`EngineMismatchError` when ``strict``), and the table counted the tokens vLLM had not scheduled.
        A request leaves this wait once its grammar is ready. One whose compilation failed stays held and is put
        in vLLM's ``grammar_compile_error_reqs``, as vLLM's own check puts it (it never sees the request: the plan
        does not hand it over): vLLM's next ``update_from_output`` finishes it with an error (:meth:`finish_requests`
        takes it out of the table)."""
        wait = self._grammar_wait
        held = []
        for slot, request in list(wait.items()):
            grammar = request.structured_output_request.grammar  # (None while compiling; polls the compile's future)
            if grammar is None:
                held.append(slot)
            elif isinstance(grammar, Exception):
                fail_at_next_update(self, request.request_id, f"Invalid structured outputs: {grammar}")
                held.append(slot)
            else:
                del wait[slot]
        return np.array(held, dtype=np.int64)

    def _check(self, out, plan, planned: list | None, scheduled: list, engine_reqs: list | None, evicted: list) -> int:
        """Tokens per request and preemptions vLLM scheduled vs the plan; the number of differences.

        ``planned``: each member's tokens (None: one each). ``scheduled`` is vLLM's running list after its
        ``schedule()``; ``engine_reqs`` the batch's requests in the order vLLM was handed them (its running list,
        then its waiting queue), or None (not known: the check goes by request id).

        vLLM schedules only from those two lists, appends each request it admits to its running list, records
        each request's tokens as it schedules it (its running list in order, then the admitted in order) and
        keeps in its running list every request it neither preempted nor left without tokens. So when it
        scheduled as many requests as the batch has, preempted only the plan's, and its running list is the
        batch's requests in that order (compared by identity, a C loop), its token counts in the order it
        recorded them are the members' in that order: those are compared with the plan, without looking up
        each member's id. Any difference is diagnosed member by member."""
        got = out.num_scheduled_tokens
        n = len(plan.batch)
        evicted = {r.request_id for r in evicted} if evicted else set()
        if len(got) == n and out.preempted_req_ids == evicted and engine_reqs is not None and scheduled == engine_reqs:
            # (vLLM schedules at least one token per request it schedules: n tokens in all are one each)
            if sum(got.values()) == n if planned is None else list(got.values()) == planned:
                return 0  # the common case, checked in C loops
        batch_ids = self.slots.gather_ids(plan.batch)
        if planned is None:
            planned = [1] * n
        if len(got) == n and list(map(got.get, batch_ids)) == planned and out.preempted_req_ids == evicted:
            return 0
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

    def _sampled(self, emitted: int, reqs: list, plan, b_pending: np.ndarray, chunks):
        """Which batch members produced a token this step, from the plan, checked against what vLLM did:
        ``(sampled, differences)``, ``sampled`` None when every member did, else the tokens each produced.

        A member samples when it computes all its pending tokens (each decode: one pending, one taken).
        ``emitted`` is the number of outputs vLLM's ``update_from_output`` returned (-1: unknown). For a
        generating model with no error outputs (see ``update_from_output``) vLLM emits one output for each
        scheduled request that it appended tokens to, and appends at most one token per request per step
        (speculative decoding is refused). So when the outputs number the decodes plus the tokens the few
        prompt chunks produced (read from their requests), every decode produced its token: each decode is
        checked without touching its request. Otherwise, or with many chunks, each member's count is read from
        vLLM's request objects (one pass over the batch) and the differences from the plan are counted.

        ``chunks``: None when no member has other than one token pending; a few chunks as ``(positions in the
        batch, tokens each takes, tokens each had pending, slots, outputs its request held before the step)``,
        lists (``schedule`` reads them); many as an array of positions. ``sampled`` is
        :data:`~ltrsched.engine.live_table.AS_PLANNED` when each member produced a token exactly if it computed
        all its pending tokens and some few chunks did not."""
        take = plan.num_new_tokens
        if emitted >= 0 and type(chunks) is not np.ndarray:
            if chunks is None:
                if emitted == len(reqs):
                    return None, 0
            else:
                pos, c_take, c_pending, _, before = chunks
                got_chunks = [len(reqs[j]._output_token_ids) - b for j, b in zip(pos, before)]
                planned = [int(a == p) for a, p in zip(c_take, c_pending)]
                if got_chunks == planned and emitted == len(reqs) - len(pos) + sum(got_chunks):
                    return (None if all(planned) else AS_PLANNED), 0
        # many chunks, or a difference: each member's count as vLLM has it. A member aborted since schedule()
        # (finish_requests) produces nothing
        got = np.fromiter(map(len, map(_OUTPUT_TOKEN_IDS, reqs)), dtype=np.int64, count=len(reqs))
        got -= self.table.generated_tokens[plan.batch]
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
        if self._stopped is not None:
            self._check_not_stopped()
        plain = self._plain_outputs and not any([getattr(self, name) for name in self._failing_sets])
        outputs = super().update_from_output(scheduler_output, model_runner_output)
        if self._step is None:
            return outputs
        wall0 = time.perf_counter()
        view, on_step, plan, start, shape, mismatch, vllm_s, plugin_s, reqs, b_pending, chunks = self._step
        self._step = None
        now = self.clock()
        dt = now - start
        t = self.table
        batch = plan.batch
        if mismatch:  # vLLM scheduled another step than the plan: its own account of each member
            got = np.fromiter(map(len, map(_OUTPUT_TOKEN_IDS, reqs)), dtype=np.int64, count=len(reqs))
            sampled, wrong = got - t.generated_tokens[batch], 0
        else:
            emitted = sum(map(len, map(_OUTPUTS, outputs.values()))) if plain else -1
            sampled, wrong = self._sampled(emitted, reqs, plan, b_pending, chunks)
        t.stepped(batch, plan.num_new_tokens, b_pending, sampled, now, dt, plan.one_token_each,
                  chunks if type(chunks) is tuple else None)
        # the members that finished: vLLM names the requests it freed since schedule() (it starts a new set
        # there); those the table no longer holds were aborted since (finish_requests), and finished there
        # (vLLM decides the finishes: max_tokens, the workload's output + the policy's extra tokens under ignore_eos,
        # EOS where the driver has an output cap, max_model_len. The simulator's one rule is the first,
        # generated >= output_tokens in ltrsched.sim.replica: the same finishes under ignore_eos, deliberately
        # without EOS; check_fits keeps requests within max_model_len)
        freed = self.finished_req_ids
        gone = sorted(map(self._slot.pop, freed, repeat(-1))) if freed else _NONE
        if freed and gone[0] < 0:  # (-1, first: aborted since schedule())
            gone = gone[gone.count(-1):]
        if on_step is not None:
            try:
                if self._on_step_ranks is not None:
                    self._on_step_ranks(view, on_step[0], on_step[1], dt)
                else:
                    self.ranking_policy.on_step(view, on_step, dt)
            except PluginInterrupt as exc:
                raise self._plugin_timeout(exc) from None
        finished = None
        num_finished = len(gone)
        self._survivors = (reqs, None)
        if num_finished:  # (a few each step: one pass of scalar reads and writes over them in the table, one in slots)
            finished = gone
            request_ids, computed = t.finished(gone, now)
            self._survivors = (reqs, set(map(id, self.slots.release(gone))))
            self.blocks_in_use -= self.limits.blocks_total(computed)  # (a list: Python integers)
            if self._wants_on_finish:
                try:
                    self.ranking_policy.on_finish(np.array(request_ids, dtype=np.int64), now)
                except PluginInterrupt as exc:
                    raise self._plugin_timeout(exc) from None
        # the last batch, and those of its members that left it since (the next step's table update needs both)
        self._prev_batch = batch
        self._prev_gone = finished
        if self._aborted:  # members aborted during the step: finished in finish_requests
            aborted = np.concatenate(self._aborted)
            self._aborted = []
            self._survivors = None
            num_finished += len(aborted)
            self._prev_gone = aborted if finished is None else np.concatenate((finished, aborted))
        self.log.record(shape, start, now, now - self._prev_end, len(view), len(plan.evict), num_finished,
                        self.blocks_in_use, mismatch + wrong, vllm_s, plugin_s + time.perf_counter() - wall0)
        # the next step follows back to back if requests are left (else it waits for an arrival)
        self._prev_end = now if t.num_live else float("nan")
        self.num_steps += 1
        return outputs
