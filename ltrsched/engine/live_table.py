"""The adapter's per-request state, as numpy columns a policy can read (pure Python + numpy, no vLLM).

vLLM keeps its state in one Python object per request; reading 2,000 of them every step would cost
milliseconds. The adapter instead mirrors what a policy needs into growable arrays, indexed by a dense
*slot* per request, and updates only the rows a step touches (O(batch) per step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ltrsched.engine.result_events import DEFERRED, ResultEvents
from ltrsched.policies.base import RequestState
from ltrsched.policies.fastops import count_nonzero

WAITING = int(RequestState.WAITING)
RUNNING = int(RequestState.RUNNING)
PAUSED = int(RequestState.PAUSED)
FINISHED = 4  # never shown to a policy

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
    "max_token_gap": (np.float64, 0.0),
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
        self.live = np.zeros(0, dtype=np.int64)  # slots of arrived, unfinished requests (in slot order)
        #: every request so far was added in (arrival time, request id) order, so the live slots are listed by
        #: arrival, ties by id (what ``LiveView.arrival_ordered`` vouches for); False from the first that was not
        self.arrival_ordered = True
        self._last_key = (-np.inf, -np.inf)
        #: the result-only columns' updates (:data:`~ltrsched.engine.result_events.DEFERRED`), applied on a read
        self.events = ResultEvents()

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            col = self.__dict__["_cols"][name]
        except KeyError:
            raise AttributeError(name) from None
        if name in DEFERRED and self.events:
            self.events.flush(self._cols)
        return col

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
        self.live = np.append(self.live, slot)
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
            "generated_tokens": c["generated_tokens"],
            "computed_tokens": c["computed_tokens"],
            "state": c["state"],
            "idle_steps": lambda idx: step - 1 - last_run[idx],
            "run_time": c["run_time"],
            "score": c["score"],
            "po_estimate": c["po_estimate"],
            "predicted_length": c["predicted_length"],
        }

    def preempted(self, slots: np.ndarray) -> None:
        """``slots`` lost their KV (recompute preemption): they wait and will prefill prompt + output again."""
        c = self._cols
        c["resident"][slots] = False
        c["state"][slots] = WAITING
        c["computed_tokens"][slots] = 0
        c["pending_tokens"][slots] = c["prompt_tokens"][slots] + c["generated_tokens"][slots]
        self.events.preempted(slots)

    def scheduled(self, batch: np.ndarray, num_new_tokens: np.ndarray, computed_before: np.ndarray,
                  prev_batch: np.ndarray, step: int, now: float, admitted: np.ndarray | None = None,
                  prev_gone: np.ndarray | None = None) -> bool:
        """The step ``step`` starting at ``now`` [s] computes ``num_new_tokens`` for ``batch`` (whose
        ``computed_tokens`` were ``computed_before``); the last step's batch ``prev_batch`` members left out
        pause. ``admitted``: the members that hold no KV yet (None: every member does). ``prev_gone``: members of
        ``prev_batch`` that finished since (they stay finished; None: none). Pending tokens change when the step
        ends (:meth:`stepped`).

        Returns whether the step reruns the last step's batch (the same requests, each of which ran last
        step): then their states, residency, first scheduling and idle runs are already what they would be set
        to, and are not written. Otherwise only the admitted members change residency and first scheduling
        (a resident member ran before)."""
        c = self._cols
        last_run = c["last_run_step"]
        idle_run = np.array(step - 1) - last_run[batch]  # idle steps each member ends now (a 0-d operand: cheaper)
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

    def stepped(self, batch: np.ndarray, num_new_tokens: np.ndarray, pending_before: np.ndarray,
                generated_before: np.ndarray, sampled: np.ndarray | None, now: float, dt: float,
                one_token_each: bool = False) -> None:
        """The step of ``batch`` ended at ``now`` [s] after ``dt`` [s]: each member computed
        ``num_new_tokens`` of its ``pending_before`` tokens and produced ``sampled`` output tokens (0 or 1, bool
        or int; None: one each), having had ``generated_before``. ``one_token_each``: every member had one token
        pending (pending counts are unchanged when all sampled). The token times go to :attr:`events`
        (``batch`` and ``sampled`` are kept until they are applied: the caller must not change them)."""
        c = self._cols
        c["run_time"][batch] += dt
        if sampled is None:
            c["generated_tokens"][batch] = generated_before + 1
            if not one_token_each:  # each computed all its known tokens: the new token's KV is next
                c["pending_tokens"][batch] = 1
        else:
            c["generated_tokens"][batch] = generated_before + sampled
            c["pending_tokens"][batch] = pending_before - num_new_tokens + sampled  # a new token's KV is next
        if self.events.tokens(now, batch, sampled):
            self.events.flush(c)

    def finished(self, slots: np.ndarray, now: float) -> None:
        """``slots`` finished at ``now`` [s] and left the GPU."""
        c = self._cols
        c["state"][slots] = FINISHED
        c["resident"][slots] = False
        c["finish_time"][slots] = now
        self.live = self.live[c["state"][self.live] != FINISHED]

    def results(self) -> dict[str, np.ndarray]:
        """Per-request result columns (rows in slot order)."""
        self.events.flush(self._cols)
        n = self.size
        out = {name: self._cols[name][:n].copy() for name in ("request_id", "arrival_time", "prompt_tokens",
                                                             "requested_output_tokens") + RESULT_COLUMNS}
        out["served_output_tokens"] = self._cols["output_tokens"][:n].copy()
        return out
