"""The adapter's per-request state, as numpy columns a policy can read (pure Python + numpy, no vLLM).

vLLM keeps its state in one Python object per request; reading 2,000 of them every step would cost
milliseconds. The adapter instead mirrors what a policy needs into growable arrays, indexed by a dense
*slot* per request, and updates only the rows a step touches (O(batch) per step).

Inside the engine each numpy call costs several times what it costs warm (vLLM's work between the adapter's
calls leaves the caches cold: BENCHMARKS.md, issue 13), so a step makes as few as it can: the counts a step
changes for every member in the same way (generated tokens, run time) are logged and added when someone reads
the column (a policy's view reads them through functions that add them first) or every few steps; the
result-only columns go through :mod:`ltrsched.engine.result_events`; the few requests admitted, finishing or
preempted in a step are written one by one; finished requests leave :attr:`LiveTable.live` when it is next read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ltrsched.engine.result_events import DEFERRED, ResultEvents
from ltrsched.policies.base import RequestState
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.recompute import recompute

WAITING = int(RequestState.WAITING)
RUNNING = int(RequestState.RUNNING)
PAUSED = int(RequestState.PAUSED)
FINISHED = 4  # never shown to a policy

_FEW = 16  # at most this many rows are updated one by one (scalar writes: a numpy call costs more)

#: ``sampled`` for :meth:`LiveTable.stepped`: each member produced a token exactly if it computed all its pending
#: tokens (some of the few prompt chunks did not)
AS_PLANNED = "as planned"

#: steps whose run times and tokens are added up only when the column is read (or after this many steps)
_RUN_TIMES_KEPT = 64
_NO_SLOTS: list = []

_COLUMNS: dict[str, tuple[Any, Any]] = {  # name -> (dtype, fill)
    "request_id": (np.int64, -1),
    "arrival_time": (np.float64, np.nan),
    "prompt_tokens": (np.int64, 0),
    "output_tokens": (np.int64, 0),
    "requested_output_tokens": (np.int64, 0),
    "generated_tokens": (np.int64, 0),
    "computed_tokens": (np.int64, 0),
    "pending_tokens": (np.int64, 0),
    "resident": (np.bool_, False),
    "state": (np.int8, WAITING),
    "last_run_step": (np.int64, 0),
    "max_idle_steps": (np.int64, 0),
    "run_time": (np.float64, 0.0),
    "score": (np.float64, np.nan),
    "po_estimate": (np.float64, np.nan),
    "predicted_length": (np.float64, np.nan),
    "num_preemptions": (np.int64, 0),
    "first_scheduled_time": (np.float64, np.nan),
    "first_token_time": (np.float64, np.nan),
    "last_token_time": (np.float64, np.nan),
    "max_token_gap": (np.float64, 0.0),  # (0.0 before a second token: null in the results, metrics.token_gap)
    "finish_time": (np.float64, np.nan),
}

#: The columns of a finished run, as :mod:`ltrsched.metrics` and the simulator's result files name them.
RESULT_COLUMNS = ("first_scheduled_time", "first_token_time", "finish_time", "max_token_gap", "max_idle_steps",
                  "num_preemptions", "run_time", "generated_tokens")


@dataclass(frozen=True)
class RequestInfo:
    """What the adapter knows of a request when it arrives (from ``SamplingParams.extra_args``).

    Attributes:
        request_id: the workload's integer id (policies key their memory by it).
        arrival_time: arrival on the run's clock [s].
        prompt_tokens: prompt length [tokens].
        output_tokens: tokens the engine will generate (``max_tokens`` with ``ignore_eos``) [tokens].
        requested_output_tokens: the workload's own length, without policy overhead tokens [tokens].
        score, po_estimate, predicted_length: predictor outputs (NaN if none).
    """

    request_id: int
    arrival_time: float
    prompt_tokens: int
    output_tokens: int
    requested_output_tokens: int
    score: float = float("nan")
    po_estimate: float = float("nan")
    predicted_length: float = float("nan")


class LiveTable:
    """Growable per-request arrays (one row per slot) plus the array of live slots.

    Token counts in tokens, times in seconds on the run's clock (NaN until the event happens). Column
    meanings follow :data:`ltrsched.policies.LIVE_COLUMNS` and the simulator's request table.
    """

    def __init__(self, capacity: int = 1024):
        self.size = 0
        self._cols = {name: np.full(capacity, fill, dtype=dtype) for name, (dtype, fill) in _COLUMNS.items()}
        self._live = np.zeros(0, dtype=np.int64)  # the live slots, finished ones included until _live_stale is reset
        self._live_stale = False
        self.num_live = 0  # len(self.live), kept without reading it
        #: every request so far was added in (arrival time, request id) order, so the live slots are listed by
        #: arrival, ties by id (what ``LiveView.arrival_ordered`` vouches for); False from the first that was not
        self.arrival_ordered = True
        self._last_key = (-np.inf, -np.inf)
        #: the result-only columns' updates (:data:`~ltrsched.engine.result_events.DEFERRED`), applied on a read
        self.events = ResultEvents()
        self._ran: list[tuple[np.ndarray, float]] = []  # (batch, duration [s]) of steps not in run_time yet
        self._grown: list[tuple[np.ndarray, list]] = []  # (batch, slots that made no token), not in generated yet
        #: computed tokens whose KV preemptions threw away so far [tokens] (the thrash guard's waste rule)
        self.discarded_tokens = 0

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            col = self.__dict__["_cols"][name]
        except KeyError:
            raise AttributeError(name) from None
        if name in DEFERRED and self.events:
            self.events.flush(self._cols)
        elif name == "run_time" and self._ran:
            self._add_run_times()
        elif name == "generated_tokens" and self._grown:
            self._add_tokens()
        return col

    @property
    def live(self) -> np.ndarray:
        """Slots of the arrived, unfinished requests, ascending."""
        if self._live_stale:  # (finishes only mark their rows: the pass over every live slot comes when one reads it)
            live = self._live
            self._live = live[self._cols["state"][live] != FINISHED]
            self._live_stale = False
        return self._live

    def add(self, info: RequestInfo, step: int) -> int:
        """Append a request; returns its slot. ``step`` is the index of the next scheduling step."""
        slot = self.size
        if slot == len(self._cols["request_id"]):
            for name, (dtype, fill) in _COLUMNS.items():
                grown = np.full(2 * slot, fill, dtype=dtype)
                grown[:slot] = self._cols[name]
                self._cols[name] = grown
        key = (info.arrival_time, info.request_id)
        if not key >= self._last_key:  # (a NaN arrival time compares False: unordered from then on)
            self.arrival_ordered = False
        self._last_key = key
        c = self._cols
        c["request_id"][slot] = info.request_id
        c["arrival_time"][slot] = info.arrival_time
        c["prompt_tokens"][slot] = info.prompt_tokens
        c["pending_tokens"][slot] = info.prompt_tokens
        c["output_tokens"][slot] = info.output_tokens
        c["requested_output_tokens"][slot] = info.requested_output_tokens
        c["score"][slot] = info.score
        c["po_estimate"][slot] = info.po_estimate
        c["predicted_length"][slot] = info.predicted_length
        c["last_run_step"][slot] = step - 1
        self.size += 1
        self._live = np.append(self._live, slot)  # (finished slots, if any, stay marked for the next read)
        self.num_live += 1
        return slot

    def live_columns(self, step: int) -> dict[str, Any]:
        """The columns a policy reads (for :class:`ltrsched.policies.LiveView`) at scheduling step ``step``."""
        c = self._cols
        last_run = c["last_run_step"]
        return {
            "request_id": c["request_id"],
            "arrival_time": c["arrival_time"],
            "prompt_tokens": c["prompt_tokens"],
            "output_tokens": c["output_tokens"],
            "generated_tokens": self._generated_at,
            "computed_tokens": c["computed_tokens"],
            "state": c["state"],
            "idle_steps": lambda idx: step - 1 - last_run[idx],
            "run_time": self._run_time_at,
            "score": c["score"],
            "po_estimate": c["po_estimate"],
            "predicted_length": c["predicted_length"],
        }

    def preempted(self, slots: np.ndarray) -> None:
        """``slots`` lost their KV (recompute preemption): they wait and will prefill their prompt and the tokens
        generated so far again (the rule: :func:`ltrsched.policies.recompute.recompute`, the simulator's too)."""
        c = self._cols
        generated = self.generated_tokens  # (the logged tokens added)
        self.discarded_tokens += recompute(slots, c["state"], c["resident"], c["computed_tokens"], c["pending_tokens"],
                                           c["prompt_tokens"], generated)
        self.events.preempted(slots)

    def scheduled(self, batch: np.ndarray, num_new_tokens: np.ndarray, computed_before: np.ndarray,
                  prev_batch: np.ndarray, step: int, now: float, admitted: np.ndarray | None = None,
                  prev_gone: np.ndarray | None = None, settled: bool = False) -> bool:
        """The step ``step`` starting at ``now`` [s] computes ``num_new_tokens`` for ``batch`` (whose
        ``computed_tokens`` were ``computed_before``); the last step's batch ``prev_batch`` members left out
        pause. ``admitted``: the members that hold no KV yet (None: every member does). ``prev_gone``: members of
        ``prev_batch`` that finished since (they stay finished; None: none). ``settled``: the caller knows that
        the batch's members holding KV are exactly the members of ``prev_batch`` still live and holding KV
        (nobody paused in the last step or this one), so that only the admitted members change state and can
        end an idle run. Pending tokens change when the step ends (:meth:`stepped`).

        Returns whether the step reruns the last step's batch (the same requests, each of which ran last
        step): then their states, residency, first scheduling and idle runs are already what they would be set
        to, and are not written. Otherwise only the admitted members change residency and first scheduling
        (a resident member ran before)."""
        c = self._cols
        last_run = c["last_run_step"]
        if settled:  # the resident members ran last step, and every other member of that step runs again
            rerun = admitted is None
            if not rerun:
                self.events.first_scheduled(now, admitted)
                if len(admitted) <= _FEW:
                    state, resident, idle = c["state"], c["resident"], c["max_idle_steps"]
                    for s in admitted.tolist():
                        state[s] = RUNNING
                        resident[s] = True
                        run = step - 1 - last_run.item(s)
                        if run > idle.item(s):
                            idle[s] = run
                else:
                    c["state"][admitted] = RUNNING
                    c["resident"][admitted] = True
                    idle_run = np.array(step - 1) - last_run[admitted]
                    if count_nonzero(idle_run):
                        c["max_idle_steps"][admitted] = np.maximum(c["max_idle_steps"][admitted], idle_run)
        else:
            idle_run = np.array(step - 1) - last_run[batch]  # idle steps each member ends now (a 0-d operand)
            num_idle = count_nonzero(idle_run)
            # every member ran last step (no idle run ends) and none is admitted, so the batch is a subset of the
            # last one; as many members as the last step left unfinished make it the same set
            rerun = not num_idle and admitted is None and len(batch) == len(prev_batch) - (
                0 if prev_gone is None else len(prev_gone))
            if not rerun:
                state = c["state"]
                state[prev_batch] = PAUSED
                if prev_gone is not None:
                    state[prev_gone] = FINISHED
                state[batch] = RUNNING
                if admitted is not None:
                    c["resident"][admitted] = True
                    self.events.first_scheduled(now, admitted)
                if num_idle:
                    c["max_idle_steps"][batch] = np.maximum(c["max_idle_steps"][batch], idle_run)
        last_run[batch] = step
        c["computed_tokens"][batch] = computed_before + num_new_tokens
        return rerun

    def stepped(self, batch: np.ndarray, num_new_tokens: np.ndarray, pending_before: np.ndarray, sampled,
                now: float, dt: float, one_token_each: bool = False, chunks: tuple | None = None) -> None:
        """The step of ``batch`` ended at ``now`` [s] after ``dt`` [s]: each member computed
        ``num_new_tokens`` of its ``pending_before`` tokens and produced ``sampled`` output tokens (an array of
        0 or 1, bool or int; None: one each; :data:`AS_PLANNED`: one exactly if it computed all its pending
        tokens). ``one_token_each``: every member had one token pending (pending counts are unchanged when all
        sampled). ``chunks``: the prompt chunks (members with other than one token pending) when they are few,
        as lists ``(positions in the batch, tokens taken, tokens pending, slots, ...)``; required with
        :data:`AS_PLANNED`. A decode's pending count stays 1, so then only the chunks' change.

        Run times and generated counts are added when read (or every ``_RUN_TIMES_KEPT`` steps); token times go
        to :attr:`events`. ``batch`` and ``sampled`` are kept until then: the caller must not change them."""
        c = self._cols
        self._ran.append((batch, dt))
        if len(self._ran) >= _RUN_TIMES_KEPT:
            self._add_run_times()
        if chunks is not None and (sampled is None or sampled is AS_PLANNED):
            # each member made one token but the chunks that did not reach their end; those change pending counts
            pending = c["pending_tokens"]
            missed, missed_slots = [], []
            for j, take, before, slot in zip(*chunks[:4]):
                if take == before:
                    pending[slot] = 1  # computed all it knew: the new token's KV is next
                else:
                    pending[slot] = before - take
                    missed.append(j)
                    missed_slots.append(slot)
            self._grown.append((batch, missed_slots))  # (added when read)
            if len(self._grown) >= _RUN_TIMES_KEPT:
                self._add_tokens()
            sampled = missed or None
        elif sampled is None and one_token_each:  # decodes only: pending counts stay 1
            self._grown.append((batch, _NO_SLOTS))
            if len(self._grown) >= _RUN_TIMES_KEPT:
                self._add_tokens()
        else:
            generated_before = self.generated_tokens[batch]  # (the logged tokens added first)
            if sampled is None:
                c["generated_tokens"][batch] = generated_before + 1
                c["pending_tokens"][batch] = 1  # each computed all its known tokens: the new token's KV is next
            else:
                c["generated_tokens"][batch] = generated_before + sampled
                c["pending_tokens"][batch] = pending_before - num_new_tokens + sampled  # a new token's KV is next
        if self.events.tokens(now, batch, sampled):
            self.events.flush(c)

    def _add_tokens(self) -> None:
        """Add the logged steps' tokens to their members' generated counts (one each, but the listed slots)."""
        generated = self._cols["generated_tokens"]
        grown = self._grown
        if not grown:
            return
        if len(grown) == 1:
            generated[grown[0][0]] += 1
        else:  # (one call for all the steps: a slot listed in several steps gets one each)
            np.add.at(generated, np.concatenate([batch for batch, _ in grown]), 1)
        for _, missed in grown:
            for slot in missed:
                generated[slot] -= 1
        self._grown = []

    def _generated_at(self, index: np.ndarray | None) -> np.ndarray:
        """The ``generated_tokens`` column at ``index`` (the policy's view reads it through this)."""
        generated = self.generated_tokens  # (the logged tokens added)
        return generated if index is None else generated[index]

    def _add_run_times(self) -> None:
        """Add the logged steps' durations to their members' run times (in step order: the same sums)."""
        run_time = self._cols["run_time"]
        ran = self._ran
        if not ran:
            return
        if len(ran) == 1:
            run_time[ran[0][0]] += ran[0][1]
        else:  # ufunc.at adds in the listed order, step by step for each slot: the per-step sums, bit for bit
            sizes = np.fromiter((len(batch) for batch, _ in ran), dtype=np.int64, count=len(ran))
            np.add.at(run_time, np.concatenate([batch for batch, _ in ran]),
                      np.repeat(np.array([dt for _, dt in ran], dtype=np.float64), sizes))
        self._ran = []

    def _run_time_at(self, index: np.ndarray | None) -> np.ndarray:
        """The ``run_time`` column at ``index`` (the policy's view reads it through this)."""
        if self._ran:
            self._add_run_times()
        run_time = self._cols["run_time"]
        return run_time if index is None else run_time[index]

    def finished(self, slots: np.ndarray | list[int], now: float) -> tuple[list[int], list[int]]:
        """``slots`` finished at ``now`` [s] and left the GPU. (They leave :attr:`live` when it is next read.)

        Returns their request ids and computed tokens [tokens], read in the same pass (the host frees their KV
        blocks and tells the policy)."""
        c = self._cols
        if len(slots) <= _FEW:  # (a few each step: scalar reads and writes)
            state, resident, finish = c["state"], c["resident"], c["finish_time"]
            request_id, computed = c["request_id"], c["computed_tokens"]
            ids, tokens = [], []
            for s in (slots.tolist() if isinstance(slots, np.ndarray) else slots):
                state[s] = FINISHED
                resident[s] = False
                finish[s] = now
                ids.append(request_id.item(s))
                tokens.append(computed.item(s))
        else:
            c["state"][slots] = FINISHED
            c["resident"][slots] = False
            c["finish_time"][slots] = now
            ids, tokens = c["request_id"][slots].tolist(), c["computed_tokens"][slots].tolist()
        self.num_live -= len(slots)
        self._live_stale = True
        return ids, tokens

    def _settle(self) -> None:
        """Add what is logged and not yet in the columns: result events, run times, generated tokens."""
        self.events.flush(self._cols)
        if self._ran:
            self._add_run_times()
        if self._grown:
            self._add_tokens()

    def compact(self, capacity: int) -> np.ndarray:
        """Drop the finished requests' rows: the live requests get the slots ``0 .. k-1`` in their slot order (a
        policy's view lists them in the same order), with their rows as they were (the logged run times, tokens and
        result events added first). For a server's scheduler, which keeps no run's result (:meth:`results` then
        holds only the rows kept). Returns the old slots of the rows kept, ascending: row ``j`` was slot
        ``kept[j]``; the caller renumbers whatever else holds slots. The arrays shrink to ``capacity`` rows (at
        least the live count)."""
        self._settle()
        kept = self.live
        k = len(kept)
        for name, (dtype, fill) in _COLUMNS.items():
            col = np.full(capacity, fill, dtype=dtype)
            col[:k] = self._cols[name][kept]
            self._cols[name] = col
        self.size = k
        self._live = np.arange(k, dtype=np.int64)
        return kept

    def results(self) -> dict[str, np.ndarray]:
        """Per-request result columns (rows in slot order)."""
        self._settle()
        n = self.size
        out = {name: self._cols[name][:n].copy() for name in ("request_id", "arrival_time", "prompt_tokens",
                                                             "requested_output_tokens") + RESULT_COLUMNS}
        out["served_output_tokens"] = self._cols["output_tokens"][:n].copy()
        return out
