"""PO: the served LLM predicts its own output length (Perception in Advance, as the paper ran it).

Each request first generates ``tokens`` (15) extra output tokens, the model's self-estimate of its
length; the host adds them to every request's output (``extra_output_tokens``). Requests still in that
estimate phase (fewer than ``tokens`` tokens generated) go first, FCFS among themselves; after it,
requests are ordered by the estimate, shortest first, ties by arrival.

The estimate is the ``po_estimate`` column [tokens] when the workload has one. Otherwise it is drawn
from a noise model: the true length perturbed to Kendall tau ``tau`` (default 0.51, the paper's PO tau on
ShareGPT; 0.67 on LMSYS), see :mod:`ltrsched.policies.approx_oracle`.

Both keys are fixed per request (the estimate; arrival, then id), so the two groups' orders are kept from step to step
(:class:`~ltrsched.policies.fixed_order.FixedKeyOrder`) and each step only splits them by phase (a few passes over the
live requests). Before, it sorted every live request at every step (``view.order_by(~phase, estimate)``, the same
order): one-token requests at once, 10,000 / 20,000 / 100,000 of them, simulated in 0.68 / 2.28 / 56.8 s, then in
0.48 / 1.09 / 14.6 s (CPU time; the phase makes each request 15 tokens longer: ~16 times the steps, each now a few
passes over the live requests). Measured again, with the command, machine and load: BENCHMARKS.md, "One-token bursts"
(``benchmarks/bench_one_token_burst.py``). From 4,096 live requests listed by arrival the split is kept too
(:class:`~ltrsched.policies.phase_split.PhaseSplit`): while the live set stays, only the batch (told by ``on_step`` or
``on_step_ranks``) can leave the phase, so a step reads the batch's tokens and copies the two parts.
"""

from __future__ import annotations

import numbers

import numpy as np

from ltrsched.arguments import shown

from ltrsched.policies.approx_oracle import check_seed, check_tau, noisy_lengths, warn_unreachable_tau
from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.fixed_order import FixedKeyOrder
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.order_check import vouched
from ltrsched.policies.phase_split import PhaseSplit
from ltrsched.policies.registry import register

#: From this many live requests (listed by arrival) PO keeps its phase split from step to step (``PhaseSplit``); below
#: it a fresh split costs fewer numpy calls than keeping one.
_SPLIT_MIN = 4096


@register
class PO(Policy):
    """Self-estimated length, shortest first, after a FCFS estimate phase of ``tokens`` output tokens."""

    name = "po"

    def __init__(self, tau: float = 0.51, seed: int = 0, tokens: int = 15):
        if isinstance(tokens, (bool, np.bool_)) or not isinstance(tokens, numbers.Integral):  # (1.5, NaN were taken)
            raise TypeError(f"tokens must be a whole number of output tokens >= 0, got {shown(tokens)}")
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        check_tau(tau)
        check_seed(seed)
        self.tau = tau
        self.seed = seed
        self.tokens = tokens
        self._estimate = IdArray(np.nan)
        self._by_estimate = FixedKeyOrder()  # every live request by (estimate, arrival, id); told arrivals, finishes
        self._by_arrival = FixedKeyOrder()  # every live request by (arrival, id), for hosts not listing by arrival
        self._split = PhaseSplit()  # the order split by phase, kept while the live set stays (hosts listing by arrival)

    @property
    def extra_output_tokens(self) -> int:  # type: ignore[override]
        return self.tokens

    def prepare(self, requests) -> None:
        self._estimate.reset()
        self._by_estimate.reset()
        self._by_arrival.reset()
        self._split.reset()
        # (approx_oracle.fill_missing_lengths, its warning on the workload's own lengths: the served ones, which the
        # noise is drawn from as before, less the estimate's tokens; it said "all 300 output lengths are equal (16
        # tokens)" of one-token outputs)
        est = np.asarray(requests["po_estimate"], dtype=np.float64).copy()
        missing = np.isnan(est)
        if missing.any():
            served = np.asarray(requests["output_tokens"])[missing]
            warn_unreachable_tau(served - self.tokens, self.tau, f"{self.name}:tau={self.tau:g}")
            ids = np.asarray(requests["request_id"])[missing]  # (drawn per request, in id order, whatever the rows')
            est[missing] = noisy_lengths(served, self.tau, self.seed, request_ids=ids)
        self._estimate[requests["request_id"]] = est

    def on_arrival(self, request_ids, now) -> None:
        self._by_estimate.arrived(request_ids)

    def on_finish(self, request_ids, now) -> None:
        self._by_estimate.departed(request_ids)

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        self._split.batch = (view, scheduled.nonzero()[0], None) if len(scheduled) == len(view) else None

    def on_step_ranks(self, view: LiveView, order: np.ndarray, ranks, step_time: float) -> None:
        """:meth:`on_step` with the batch named by its ranks in ``order`` (``order[:ranks]`` for an int, else
        ``order[ranks]``; the simulator's replica calls this): no mask over every live request, and nothing read
        until the next rank needs it."""
        self._split.batch = (view, order, ranks)

    def rank(self, view: LiveView) -> np.ndarray:
        """``view.order_by(~phase, estimate)`` (``estimate`` 0 in the phase): the requests in the estimate phase by
        (arrival, id), then the others by (estimate, arrival, id), from the two kept orders (listed by arrival:
        the split itself kept too, :class:`~ltrsched.policies.phase_split.PhaseSplit`)."""
        by_estimate = self._by_estimate.order(view, self._estimates)
        if not self.tokens:
            return by_estimate
        proven = by_estimate is view._ranked  # (vouched: a permutation)
        if view.arrival_ordered and proven and len(by_estimate) >= _SPLIT_MIN:
            return self._split.order(view, by_estimate, self.tokens)
        if self._split.batch is not None:
            self._split.batch = None  # (nothing else kept to drop: the split is not used for this listing)
        phase = view.generated_tokens < self.tokens
        k = count_nonzero(phase)
        if not k:
            return by_estimate
        if view.arrival_ordered:
            first = phase.nonzero()[0]
        else:
            by_arrival = self._by_arrival.order(view, _arrival)
            proven = proven and by_arrival is view._ranked
            first = by_arrival[phase[by_arrival]] if k < len(phase) else by_arrival
        if k == len(phase):
            order = first
        else:
            # (``compress``, not ``by_estimate[mask]``: in the estimate order the phase is scattered at random, and
            # numpy's boolean indexing then costs ~5 ns a position, mispredicted branches; compress ~1 ns)
            order = np.concatenate((first, by_estimate.compress(~phase[by_estimate])))
        # (two permutations' complementary parts: one, by construction)
        return vouched(view, order) if proven else order

    def _estimates(self, view: LiveView) -> np.ndarray:
        return self._estimate.get(view.request_id)


def _arrival(view: LiveView) -> np.ndarray:
    return view.arrival_time
