"""Starvation prevention, combinable with any policy (spec suffix ``starve=T,quantum=Q``).

A request left out of the batch for ``threshold`` (T) consecutive steps is promoted ahead of every
non-promoted request for ``quantum`` (Q) steps of execution, then returns to its rank. Promoted
requests keep FIFO order among themselves (by promotion step, then arrival). Paper: T=200, Q=10.
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView, Policy, order_by
from ltrsched.policies.id_array import IdArray


class StarvationPrevention(Policy):
    """Wraps ``inner``; promotes long-idle requests. ``threshold`` and ``quantum`` are in steps."""

    def __init__(self, inner: Policy, threshold: int = 200, quantum: int = 10):
        if threshold < 1 or quantum < 1:
            raise ValueError(f"starve and quantum must be >= 1, got starve={threshold}, quantum={quantum}")
        self.inner = inner
        self.threshold = threshold
        self.quantum = quantum
        self._left = IdArray(0, np.int64)  # promoted steps of execution left
        self._since = IdArray(0, np.int64)  # step of promotion

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.needs

    @property
    def extra_output_tokens(self) -> int:  # type: ignore[override]
        return self.inner.extra_output_tokens

    def prepare(self, requests) -> None:
        self._left.reset()
        self._since.reset()
        self.inner.prepare(requests)

    def on_arrival(self, request_ids, now) -> None:
        self.inner.on_arrival(request_ids, now)

    def on_finish(self, request_ids, now) -> None:
        self._left[request_ids] = 0
        self.inner.on_finish(request_ids, now)

    def rank(self, view: LiveView) -> np.ndarray:
        order = self.inner.rank(view)
        ids = view.request_id
        left = self._left[ids]
        starving = (view.idle_steps >= self.threshold) & (left == 0)
        if starving.any():
            self._left[ids[starving]] = self.quantum
            self._since[ids[starving]] = view.step
            left = self._left[ids]
        promoted = left > 0
        if not promoted.any():
            return order
        head = np.flatnonzero(promoted)
        head = head[order_by(self._since[ids[head]], view.arrival_time[head], ids[head])]
        return np.concatenate((head, order[~promoted[order]]))

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        ids = view.request_id[scheduled]
        left = self._left[ids]
        ran = left > 0
        if ran.any():
            self._left[ids[ran]] = left[ran] - 1
        self.inner.on_step(view, scheduled, step_time)

    def describe(self):
        return {**self.inner.describe(), "starve": self.threshold, "quantum": self.quantum}

    def spec(self) -> str:
        inner = self.inner.spec()
        sep = "," if ":" in inner else ":"
        key = "starve_quantum" if "quantum" in self.inner.parameters() else "quantum"
        return f"{inner}{sep}starve={self.threshold},{key}={self.quantum}"
