"""Multi-level feedback queue, FastServe-like as the paper ran it (no skip-join).

New requests enter the top level (0). A request at level L is demoted once the execution time it
accumulated *at that level* exceeds ``quantum * threshold**L`` seconds, so the cumulative demotion points
are ``quantum * (1 + threshold + ... + threshold**L)``. Execution time is the sum of the durations of the
steps the request ran in (the host's ``run_time``). Levels are served top first; within a level the most
recently run requests stay in front (then by arrival). With ``promote=N``, a request idle for N
consecutive steps returns to the top level (its accumulated time restarts).
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.registry import register

MAX_LEVELS = 32


@register
class MLFQ(Policy):
    """Multi-level feedback queue; ``quantum`` [s] at the top level, each level ``threshold`` times longer."""

    name = "mlfq"

    def __init__(self, quantum: float = 0.03, threshold: float = 2.0, promote: int = 0):
        if not (0 < quantum < np.inf and 1 <= threshold < np.inf):
            raise ValueError(f"need finite quantum > 0 and threshold >= 1, got quantum={quantum}, threshold={threshold}")
        if promote < 0:
            raise ValueError(f"promote must be >= 0 steps, got {promote}")
        self.quantum = quantum
        self.threshold = threshold
        self.promote = promote
        # cumulative execution time [s] after which a request leaves level L
        with np.errstate(over="ignore"):  # a huge threshold: the deep levels' bounds are infinite
            self._bounds = quantum * np.cumsum(threshold ** np.arange(MAX_LEVELS, dtype=np.float64))
        self._last_run = IdArray(-1, np.int64)  # last step a request ran in
        self._time_base = IdArray(0.0)  # run_time at the last promotion to the top

    def prepare(self, requests) -> None:
        self._last_run.reset()
        self._time_base.reset()

    def levels(self, view: LiveView) -> np.ndarray:
        """Current level of each live request."""
        ids = view.request_id
        if self.promote:
            stale = view.idle_steps >= self.promote
            if stale.any():
                self._time_base[ids[stale]] = view.run_time[stale]
        executed = view.run_time - self._time_base[ids]
        return np.searchsorted(self._bounds, executed, side="right")

    def rank(self, view: LiveView) -> np.ndarray:
        return view.order_by(self.levels(view), -self._last_run[view.request_id])

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        self._last_run[view.request_id[scheduled]] = view.step
