"""Starvation prevention, combinable with any policy (spec suffix ``starve=T,quantum=Q``).

A request left out of the batch for ``threshold`` (T) consecutive steps is promoted ahead of every
non-promoted request for ``quantum`` (Q) steps of execution, then returns to its rank. Promoted
requests keep FIFO order among themselves (by promotion step, then arrival). Paper: T=200, Q=10.

The wrapper reads every live request's ``idle_steps`` only on the steps where one of them can have reached
T. Idle steps grow by at most one per step (they restart at 0 when a request runs, and a newcomer starts at
0), so when the longest-idle request that is not promoted has been idle I steps at step s, none reaches T
before step s + T - I: until then nothing is read. The promoted requests are kept in their order between
steps; a promoted request ran in the last step exactly when its ``idle_steps`` is 0, so the wrapper learns
which spent a step of their quantum from the view, for them alone, and needs no ``on_step`` of its own.
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView, Policy, order_by
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.tracking import LiveIndex

_NONE = np.zeros(0, dtype=np.int64)
_max, _min = np.maximum.reduce, np.minimum.reduce
# 0-d array operands: numpy converts a Python scalar operand on every call (~0.5 us of a ~1 us operation)
_ZERO, _ONE, _UNSET = np.array(0), np.array(1), np.array(-1)
_FALSE, _TRUE = np.array(False), np.array(True)


class StarvationPrevention(Policy):
    """Wraps ``inner``; promotes long-idle requests. ``threshold`` and ``quantum`` are in steps."""

    def __new__(cls, inner: Policy | None = None, threshold: int = 200, quantum: int = 10):
        # the wrapper needs no on_step; it has one (a host then builds the scheduled mask every step) only to
        # pass it on to an inner policy that has one
        if cls is StarvationPrevention and inner is not None and _has_on_step(inner):
            cls = _StarvationPreventionStepped
        return super().__new__(cls)

    def __init__(self, inner: Policy, threshold: int = 200, quantum: int = 10):
        if threshold < 1 or quantum < 1:
            raise ValueError(f"starve and quantum must be >= 1, got starve={threshold}, quantum={quantum}")
        self.inner = inner
        self.threshold = threshold
        self.quantum = quantum
        self._threshold, self._quantum = np.array(threshold), np.array(quantum)  # (0-d operands)
        self._left = IdArray(0, np.int64)  # promoted steps of execution left
        self._since = IdArray(0, np.int64)  # step of promotion
        self._keep = np.ones(1024, dtype=bool)  # scratch (all True between uses)
        self._forget()

    def _forget(self) -> None:
        self._promoted = _NONE  # ids of the live requests with promoted steps left, in their order
        self._check_at: int | None = None  # the first step at which a request can have been idle `threshold` steps
        self._num_live = 0  # live requests, by the hooks (a view with another count is read whole)
        self._announced = False  # the view being ranked has as many requests as the hooks announced
        self._spent_at: int | None = None  # the step whose rank last counted the promoted requests' runs
        self._index: LiveIndex | None = None  # request id -> position

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
        self._forget()
        self.inner.prepare(requests)

    def on_arrival(self, request_ids, now) -> None:
        self._num_live += len(request_ids)  # (a newcomer has been idle 0 steps: no read needed)
        self._left.reserve(request_ids)
        self._since.reserve(request_ids)
        self.inner.on_arrival(request_ids, now)

    def on_finish(self, request_ids, now) -> None:
        self._num_live -= len(request_ids)
        if len(self._promoted) and count_nonzero(self._left[request_ids]):
            self._left[request_ids] = _ZERO
            self._promoted = self._promoted[self._left.data[self._promoted] > _ZERO]
        self.inner.on_finish(request_ids, now)

    def rank(self, view: LiveView) -> np.ndarray:
        order = self.inner.rank(view)
        # every arrival and finish announced: the promoted requests are all listed (else that is checked)
        self._announced = len(view) == self._num_live
        head = _NONE
        if len(self._promoted):
            head = self._listed_promoted(view)
            if view.step != self._spent_at:
                head = self._spend(view, head)
        self._spent_at = view.step
        if self._check_at is None or view.step >= self._check_at or not self._announced:
            head = self._promote_starving(view, head)
        if len(head):
            order = self._promoted_first(order, head)
        return order

    def _listed_promoted(self, view: LiveView) -> np.ndarray:
        """Positions of the promoted requests in ``view``, in their order."""
        self._index = index = LiveIndex.of(view, self._index)
        if self._announced:
            return index.positions(self._promoted, listed=True)
        head = index.positions(self._promoted)
        if len(head) and _min(head) < 0:  # a promoted request is not listed (its finish went unannounced)
            self._left[self._promoted[head < _ZERO]] = _ZERO
            self._promoted, head = self._promoted[head >= _ZERO], head[head >= _ZERO]
        return head

    def _spend(self, view: LiveView, head: np.ndarray) -> np.ndarray:
        """The promoted requests that ran in the last step (idle 0 steps now) have one step of execution less
        left; those with none left return to their rank. Returns the positions of those still promoted."""
        ran = view.at("idle_steps", head) == _ZERO
        if not count_nonzero(ran):
            return head
        ids = self._promoted[ran]
        left = self._left.data[ids] - _ONE
        self._left.data[ids] = left
        if len(left) == count_nonzero(left):
            return head
        still = self._left.data[self._promoted] > _ZERO
        self._promoted = self._promoted[still]
        return head[still]

    def _promote_starving(self, view: LiveView, head: np.ndarray) -> np.ndarray:
        """Promote the requests idle ``threshold`` steps or more (not promoted already), find the next step at
        which one can be, and return the positions of the promoted requests."""
        idle = view.idle_steps
        if len(head):
            idle = idle.copy()
            idle[head] = _UNSET  # promoted: not waiting to be
        starving = idle >= self._threshold
        if count_nonzero(starving):
            new = starving.nonzero()[0]
            ids = view.request_id
            if not view.arrival_ordered:  # promoted at the same step: by arrival, then id
                new = new[order_by(view.arrival_time[new], ids[new])]
            promoted = ids[new]
            try:  # (a host that announced its arrivals reserved their ids)
                self._left.data[promoted] = self._quantum
            except IndexError:
                self._left.reserve(promoted)
                self._since.reserve(promoted)
                self._left.data[promoted] = self._quantum
            self._since.data[promoted] = view.step
            if len(head) and self._since.data[self._promoted[-1]] == view.step:  # (ranked twice this step)
                promoted = np.concatenate((self._promoted, promoted))
                at = self._index.positions(promoted)
                by = order_by(self._since.data[promoted], view.arrival_time[at], promoted)
                self._promoted, head = promoted[by], at[by]
            else:  # promoted last: after every request promoted before
                self._promoted = np.concatenate((self._promoted, promoted))
                head = np.concatenate((head, new))
            idle = np.where(starving, _UNSET, idle)
        longest = int(_max(idle)) if len(idle) else -1
        self._check_at = view.step + self.threshold - max(longest, 0)
        self._num_live = len(view)
        return head

    def _promoted_first(self, order: np.ndarray, head: np.ndarray) -> np.ndarray:
        """The promoted requests (``head``: positions in their order), then ``order`` without them."""
        n = len(order)
        if len(self._keep) < n:
            self._keep = np.ones(2 * n, dtype=bool)
        keep = self._keep[:n]
        keep[head] = _FALSE
        rest = order[keep[order]]
        keep[head] = _TRUE
        return np.concatenate((head, rest))

    def describe(self):
        return {**self.inner.describe(), "starve": self.threshold, "quantum": self.quantum}

    def spec(self) -> str:
        inner = self.inner.spec()
        sep = "," if ":" in inner else ":"
        key = "starve_quantum" if "quantum" in self.inner.parameters() else "quantum"
        return f"{inner}{sep}starve={self.threshold},{key}={self.quantum}"


class _StarvationPreventionStepped(StarvationPrevention):
    """Starvation prevention around a policy that has an ``on_step``: passes it on."""

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        self.inner.on_step(view, scheduled, step_time)


def _has_on_step(policy: Policy) -> bool:
    return getattr(type(policy), "on_step", Policy.on_step) is not Policy.on_step
