"""Stateless reference versions of the policies that keep incremental state (LTR's and PO's kept orders, starvation
prevention's due steps, MLFQ's kept order): each recounts every live request every step from the view's
columns, as the policies did before they kept state. Tests compare the two step by step."""

from __future__ import annotations

import numpy as np

from ltrsched.policies import LiveView, Policy, order_by
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.mlfq import MAX_LEVELS
from ltrsched.policies.order_check import _is_permutation
from ltrsched.policies.starvation import StarvationPrevention


class RefLTR(Policy):
    def __init__(self, ltr):
        self.ltr = ltr  # for its scores (fixed per request)

    def prepare(self, requests) -> None:
        self.ltr.prepare(requests)

    def rank(self, view: LiveView) -> np.ndarray:
        return view.order_by(-self.ltr.scores(view))


class RefSRTF(Policy):
    """SRTF as it ranked before it kept its order: one sort of every live request per step."""

    def rank(self, view: LiveView) -> np.ndarray:
        if len(view) < 2:
            return np.zeros(len(view), dtype=np.intp)
        return view.order_by(view.remaining_tokens)


class RefClass(Policy):
    """The classification baseline as it ranked before it kept its order: one sort per step."""

    def __init__(self, policy):
        from ltrsched.policies.classification import Classification

        self.policy = Classification(policy.bucket, policy.tau, policy.seed)  # (for its buckets, fixed per request)

    def prepare(self, requests) -> None:
        self.policy.prepare(requests)

    def rank(self, view: LiveView) -> np.ndarray:
        return view.order_by(self.policy._bucket_of.get(view.request_id))


class RefPO(Policy):
    """PO as it ranked before it kept its orders: one sort of every live request per step."""

    def __init__(self, po):
        self.tokens, self.tau, self.seed = po.tokens, po.tau, po.seed
        self._estimate = IdArray(np.nan)

    @property
    def extra_output_tokens(self) -> int:  # type: ignore[override]
        return self.tokens

    def prepare(self, requests) -> None:
        from ltrsched.policies.approx_oracle import fill_missing_lengths

        self._estimate.reset()
        est = fill_missing_lengths(requests["po_estimate"], requests["output_tokens"], self.tau, self.seed, what="po",
                                   request_ids=requests["request_id"])  # (the noise drawn per request, in id order)
        self._estimate[requests["request_id"]] = est

    def rank(self, view: LiveView) -> np.ndarray:
        phase = view.generated_tokens < self.tokens
        estimate = np.where(phase, 0.0, self._estimate.get(view.request_id))
        return view.order_by(~phase, estimate)


class RefStarvation(Policy):
    def __init__(self, inner: Policy, threshold: int, quantum: int):
        self.inner, self.threshold, self.quantum = inner, threshold, quantum
        self._left = IdArray(0, np.int64)
        self._since = IdArray(0, np.int64)

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


class RefMLFQ(Policy):
    def __init__(self, quantum: float = 0.03, threshold: float = 2.0, promote: int = 0):
        self.quantum, self.threshold, self.promote = quantum, threshold, promote
        with np.errstate(over="ignore"):
            self._bounds = quantum * np.cumsum(threshold ** np.arange(MAX_LEVELS, dtype=np.float64))
        self._last_run = IdArray(-1, np.int64)
        self._time_base = IdArray(0.0)

    def prepare(self, requests) -> None:
        self._last_run.reset()
        self._time_base.reset()

    def levels(self, view: LiveView) -> np.ndarray:
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


def reference(policy: Policy) -> Policy:
    """A stateless reference for ``policy`` (a fresh object; ``policy`` is only read for its parameters)."""
    from ltrsched.policies.classification import Classification
    from ltrsched.policies.ltr import LTR
    from ltrsched.policies.mlfq import MLFQ
    from ltrsched.policies.po import PO
    from ltrsched.policies.srtf import SRTF

    if isinstance(policy, StarvationPrevention):
        return RefStarvation(reference(policy.inner), policy.threshold, policy.quantum)
    if isinstance(policy, LTR):
        return RefLTR(policy)
    if isinstance(policy, MLFQ):
        return RefMLFQ(policy.quantum, policy.threshold, policy.promote)
    if isinstance(policy, PO):
        return RefPO(policy)
    if isinstance(policy, SRTF):
        return RefSRTF()
    if isinstance(policy, Classification):
        return RefClass(policy)
    return policy


class Lockstep(Policy):
    """Runs ``policy`` and its stateless reference side by side and fails at the first step whose orders
    differ. The host sees ``policy``'s order (and the reference follows the same run)."""

    def __init__(self, policy: Policy, ref: Policy | None = None):
        self.policy = policy
        self.ref = ref if ref is not None else reference(policy)
        self.steps = 0
        self.vouched = 0  # steps whose order the policy vouched for (order_check.vouched or order_by's)

    @property
    def extra_output_tokens(self) -> int:  # type: ignore[override]
        return self.policy.extra_output_tokens

    def prepare(self, requests) -> None:
        self.policy.prepare(requests)
        if self.ref is not self.policy:
            self.ref.prepare(requests)

    def on_arrival(self, request_ids, now) -> None:
        self.policy.on_arrival(request_ids, now)
        if self.ref is not self.policy:
            self.ref.on_arrival(request_ids, now)

    def on_finish(self, request_ids, now) -> None:
        self.policy.on_finish(request_ids, now)
        if self.ref is not self.policy:
            self.ref.on_finish(request_ids, now)

    def rank(self, view: LiveView) -> np.ndarray:
        got = self.policy.rank(view)
        vouched = got is view._ranked  # hosts accept it without checking its values: it must be a permutation
        if vouched:
            assert len(got) == len(view) and got.dtype.kind in "iu" and _is_permutation(got, len(view)), (
                f"step {view.step}: vouched for an order that is no permutation")
            self.vouched += 1
        want = self.ref.rank(view)
        assert np.array_equal(got, want), f"step {view.step}: orders differ ({len(view)} live)"
        if vouched:
            view._ranked = got  # (the reference's order_by took the mark)
        self.steps += 1
        return got

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        self.policy.on_step(view, scheduled, step_time)
        if self.ref is not self.policy:
            self.ref.on_step(view, scheduled, step_time)
