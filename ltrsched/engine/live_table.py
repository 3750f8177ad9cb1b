"""The adapter's per-request state, as numpy columns a policy can read (pure Python + numpy, no vLLM).

vLLM keeps its state in one Python object per request; reading 2,000 of them every step would cost
milliseconds. The adapter instead mirrors what a policy needs into growable arrays, indexed by a dense
*slot* per request, and updates only the rows a step touches (O(batch) per step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ltrsched.policies.base import RequestState

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
        self.live = np.zeros(0, dtype=np.int64)  # slots of arrived, unfinished requests (arrival order)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["_cols"][name]
        except KeyError:
            raise AttributeError(name) from None

    def add(self, info: RequestInfo, step: int) -> int:
        """Append a request; returns its slot. ``step`` is the index of the next scheduling step."""
        slot = self.size
        if slot == len(self._cols["request_id"]):
            for name, (dtype, fill) in _COLUMNS.items():
                grown = np.full(2 * slot, fill, dtype=dtype)
                grown[:slot] = self._cols[name]
                self._cols[name] = grown
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
        c["num_preemptions"][slots] += 1

    def scheduled(self, batch: np.ndarray, num_new_tokens: np.ndarray, prev_batch: np.ndarray, step: int,
                  now: float) -> None:
        """The step ``step`` starting at ``now`` [s] computes ``num_new_tokens`` for ``batch``; the last
        step's batch members left out pause."""
        c = self._cols
        c["state"][prev_batch] = PAUSED
        c["state"][batch] = RUNNING
        c["resident"][batch] = True
        c["computed_tokens"][batch] += num_new_tokens
        c["pending_tokens"][batch] -= num_new_tokens
        c["first_scheduled_time"][batch] = np.fmin(c["first_scheduled_time"][batch], now)
        idle_run = step - 1 - c["last_run_step"][batch]
        c["max_idle_steps"][batch] = np.maximum(c["max_idle_steps"][batch], idle_run)
        c["last_run_step"][batch] = step

    def sampled(self, slots: np.ndarray, generated: np.ndarray, now: float) -> None:
        """``slots`` produced their next output token at ``now`` [s]; ``generated`` is their new count."""
        c = self._cols
        c["generated_tokens"][slots] = generated
        c["pending_tokens"][slots] += 1  # the new token's KV is computed next step
        c["first_token_time"][slots] = np.fmin(c["first_token_time"][slots], now)
        gaps = now - c["last_token_time"][slots]  # NaN for first tokens: fmax ignores them
        c["max_token_gap"][slots] = np.fmax(c["max_token_gap"][slots], gaps)
        c["last_token_time"][slots] = now

    def finished(self, slots: np.ndarray, now: float) -> None:
        """``slots`` finished at ``now`` [s] and left the GPU."""
        c = self._cols
        c["state"][slots] = FINISHED
        c["resident"][slots] = False
        c["finish_time"][slots] = now
        self.live = self.live[c["state"][self.live] != FINISHED]

    def results(self) -> dict[str, np.ndarray]:
        """Per-request result columns (rows in slot order)."""
        n = self.size
        out = {name: self._cols[name][:n].copy() for name in ("request_id", "arrival_time", "prompt_tokens",
                                                             "requested_output_tokens") + RESULT_COLUMNS}
        out["served_output_tokens"] = self._cols["output_tokens"][:n].copy()
        return out
