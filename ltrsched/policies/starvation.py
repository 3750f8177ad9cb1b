"""Starvation prevention, combinable with any policy (spec suffix ``starve=T,quantum=Q``).

A request left out of the batch for ``threshold`` (T) consecutive steps is promoted ahead of every
non-promoted request for ``quantum`` (Q) steps of execution, then returns to its rank. Promoted
requests keep FIFO order among themselves (by promotion step, then arrival). Paper: T=200, Q=10.

The wrapper reads every live request's ``idle_steps`` once every T + 1 steps, not every step. Idle steps
grow by at most one per step; they restart at 0 when a request runs, and a newcomer starts at 0 (it has not
been left out of any batch yet: hosts list it first at a step with ``idle_steps`` 0). So after a read at step
s that found request r idle I steps (and not promoted), r reaches T at step s + T - I if it does not run
before, and any request that runs at step s or later (or arrives, or returns from promotion) reaches T no
earlier than s + T + 1. Until then the wrapper only looks at the requests due at each step (their
``idle_steps`` alone, since some may have run meanwhile), in the order of the step they are due; then it
reads every request again (earlier should a host number its steps with gaps, so that a request due is
still short of T). The promoted requests are kept in their order between steps; a promoted request
ran in the last step exactly when its ``idle_steps`` is 0, so the wrapper learns which spent a step of their
quantum from the view, for them alone, and needs no ``on_step`` of its own. A view whose size does not
match the announced arrivals and finishes is read whole.
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView, Policy, order_by
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.order_check import vouched
from ltrsched.policies.tracking import LiveIndex

_NONE = np.zeros(0, dtype=np.int64)
_max, _min = np.maximum.reduce, np.minimum.reduce
# 0-d array operands: numpy converts a Python scalar operand on every call (~0.5 us of a ~1 us operation)
_ZERO, _UNSET = np.array(0), np.array(-1)
_FALSE, _TRUE = np.array(False), np.array(True)
_NEVER = 1 << 62  # a step no run reaches


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
        self._threshold = np.array(threshold)  # (a 0-d operand)
        self._is_promoted = IdArray(False, np.bool_)
        self._since = IdArray(0, np.int64)  # step of promotion
        self._keep = np.ones(1024, dtype=bool)  # scratch (all True between uses)
        self._forget()

    def _forget(self) -> None:
        self._promoted = _NONE  # ids of the live requests with promoted steps left, in their order
        self._left = _NONE  # promoted steps of execution each has left (aligned, > 0)
        self._head: np.ndarray | None = None  # their positions (aligned) in the listing _head_at names, if known
        self._head_at: tuple | None = None  # (LiveIndex, version) of that listing
        self._read_at: int | None = None  # the step from which every live request's idle_steps must be read again
        # the requests not promoted at the last read, by the step at which each reaches the threshold unless it
        # runs first (ids and steps aligned, steps ascending); those before _due_next were looked at
        self._due_ids = self._due_steps = _NONE
        self._due_next = 0
        self._next_due = _NEVER  # the step of _due_ids[_due_next]
        self._num_live = 0  # live requests, by the hooks (a view with another count is read whole)
        self._announced = False  # the view being ranked has as many requests as the hooks announced
        self._spent_at: int | None = None  # the step whose rank last counted the promoted requests' runs
        self._gapless = True  # no step number was skipped since the last read
        self._index: LiveIndex | None = None  # request id -> position
        self._last: tuple | None = None  # (inner order, head, order returned, head distinct) of the last rank

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
        self._is_promoted.reset()
        self._since.reset()
        self._forget()
        self.inner.prepare(requests)

    def on_arrival(self, request_ids, now) -> None:
        self._num_live += len(request_ids)  # (a newcomer has been idle 0 steps: none is due before a read)
        self._is_promoted.reserve(request_ids)
        self._since.reserve(request_ids)
        self.inner.on_arrival(request_ids, now)

    def on_finish(self, request_ids, now) -> None:
        self._num_live -= len(request_ids)
        if len(self._promoted) and count_nonzero(self._is_promoted[request_ids]):
            self._is_promoted[request_ids] = _FALSE
            self._keep_promoted(self._is_promoted.data[self._promoted])
            self._head = None
        self.inner.on_finish(request_ids, now)

    def rank(self, view: LiveView) -> np.ndarray:
        order = self.inner.rank(view)
        step = view.step
        # every arrival and finish announced: the promoted requests are all listed (else that is checked)
        self._announced = len(view) == self._num_live
        head = _NONE
        if len(self._promoted):
            head = self._listed_promoted(view)
            if step != self._spent_at:
                head = self._spend(view, head)
        if self._spent_at is not None and step > self._spent_at + 1:
            self._gapless = False
        self._spent_at = step
        if self._read_at is None or step >= self._read_at or not self._announced:
            head = self._read_all(view, head)
        elif step >= self._next_due:
            head = self._look_at_due(view, head)
        if not len(head):
            return order
        # the inner order is a permutation by construction (a sort's, or vouched for): so is the promoted-first
        # order built from it when the promoted positions are distinct and in range (``_promoted_first``)
        proven = order is view._ranked and not order.flags.writeable
        last = self._last
        if last is not None and order is last[0] and head is last[1]:
            # the same inner order (unchanged: read-only) and promoted positions as last step
            return vouched(view, last[2]) if proven and last[3] else last[2]
        out = self._promoted_first(order, head)
        out.flags.writeable = False
        # one position per live request, none negative: the promoted positions were distinct (and in range, or
        # _promoted_first raised)
        distinct = len(out) == len(view) and int(_min(head)) >= 0
        if proven and distinct:
            vouched(view, out)
        # keep it for the next step if the inner order cannot change under it (read-only, owning its memory)
        self._last = (order, head, out, distinct) if not order.flags.writeable and order.base is None else None
        return out

    def _keep_promoted(self, keep: np.ndarray) -> None:
        """Keep the promoted requests where ``keep`` (aligned) is true."""
        self._promoted, self._left = self._promoted[keep], self._left[keep]
        if self._head is not None:
            self._head = self._head[keep]

    def _listed_promoted(self, view: LiveView) -> np.ndarray:
        """Positions of the promoted requests in ``view``, in their order (the last ones while the listing is the
        same)."""
        self._index = index = LiveIndex.of(view, self._index)
        at = (index, index.version)
        if self._head is not None and self._head_at == at:
            return self._head
        self._head_at = at
        if self._announced:
            self._head = index.positions(self._promoted, listed=True)
            return self._head
        head = index.positions(self._promoted)
        if len(head) and _min(head) < 0:  # a promoted request is not listed (its finish went unannounced)
            listed = head >= _ZERO
            self._is_promoted.data[self._promoted[~listed]] = _FALSE
            self._head = None
            self._keep_promoted(listed)
            head = head[listed]
        self._head = head
        return head

    def _spend(self, view: LiveView, head: np.ndarray) -> np.ndarray:
        """The promoted requests that ran in the last step (idle 0 steps now) have one step of execution less
        left; those with none left return to their rank. Returns the positions of those still promoted."""
        left = self._left
        left -= view.at("idle_steps", head) == _ZERO  # (a fresh array: aligned with _promoted only)
        if count_nonzero(left) == len(left):
            return head
        still = left != _ZERO
        self._is_promoted.data[self._promoted[~still]] = _FALSE
        self._keep_promoted(still)
        return self._head

    def _read_all(self, view: LiveView, head: np.ndarray) -> np.ndarray:
        """Read every live request's idle steps: promote those idle ``threshold`` steps or more (not promoted
        already), file the others by the step at which each reaches it, and return the positions of the
        promoted requests."""
        step = view.step
        idle = view.idle_steps
        if len(head):
            idle = idle.copy()
            idle[head] = _UNSET  # promoted: not waiting to be
        starving = idle >= self._threshold
        if count_nonzero(starving):
            head = self._promote(view, starving.nonzero()[0], head)
            idle = np.where(starving, _UNSET, idle)
        waiting = (idle >= _ZERO).nonzero()[0]
        due = (step + self.threshold) - idle[waiting]  # >= step + 1
        by = due.argsort(kind="stable")
        self._due_steps, self._due_ids, self._due_next = due[by], view.request_id[waiting[by]], 0
        self._next_due = int(self._due_steps[0]) if len(due) else _NEVER
        self._read_at = step + self.threshold + 1
        self._gapless = True
        self._num_live = len(view)
        return head

    def _look_at_due(self, view: LiveView, head: np.ndarray) -> np.ndarray:
        """Promote the requests due by this step that have not run since the last read (they are idle
        ``threshold`` steps now); return the positions of the promoted requests."""
        steps = self._due_steps
        j = int(steps.searchsorted(view.step, side="right"))
        ids = self._due_ids[self._due_next:j]
        self._due_next = j
        self._next_due = int(steps[j]) if j < len(steps) else _NEVER
        self._index = index = LiveIndex.of(view, self._index)
        at = index.positions(ids)
        at = at[at >= _ZERO]  # (not those that finished since)
        if len(at):
            idle = view.at("idle_steps", at)
            starving = idle >= self._threshold
            if count_nonzero(starving):
                new = at[starving]
                head = self._promote(view, np.sort(new) if len(new) > 1 else new, head)
            if not self._gapless:
                # a request idle fewer steps than the steps since the read (the host skipped step numbers)
                # reaches the threshold later than filed: read every request again by then
                soonest = view.step + self.threshold - int(_max(np.where(starving, _UNSET, idle)))
                if soonest < self._read_at:
                    self._read_at = soonest
        return head

    def _promote(self, view: LiveView, new: np.ndarray, head: np.ndarray) -> np.ndarray:
        """Promote the requests at positions ``new`` (ascending) now; return the positions of every promoted
        request in their order (``head``: those promoted before)."""
        self._index = LiveIndex.of(view, self._index)  # (the listing ``head`` and ``new`` are positions in)
        if not view.arrival_ordered:  # promoted at the same step: by arrival, then id
            new = new[order_by(view.at("arrival_time", new), view.at("request_id", new))]
        ids = view.at("request_id", new)
        try:  # (a host that announced its arrivals reserved their ids)
            self._is_promoted.data[ids] = _TRUE
        except IndexError:
            self._is_promoted.reserve(ids)
            self._since.reserve(ids)
            self._is_promoted.data[ids] = _TRUE
        self._since.data[ids] = view.step
        promoted = np.concatenate((self._promoted, ids))
        left = np.concatenate((self._left, np.full(len(ids), self.quantum, dtype=np.int64)))
        head = np.concatenate((head, new))
        if len(self._promoted) and self._since.data[self._promoted[-1]] == view.step:  # (ranked twice this step)
            by = order_by(self._since.data[promoted], view.at("arrival_time", head), promoted)
            promoted, left, head = promoted[by], left[by], head[by]
        self._promoted, self._left, self._head = promoted, left, head
        self._head_at = (self._index, self._index.version)
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
