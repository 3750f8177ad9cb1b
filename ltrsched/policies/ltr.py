"""Learning to rank (the paper's policy) and the approximate oracle built on it."""

from __future__ import annotations

import numpy as np

from ltrsched.policies.approx_oracle import approx_oracle_scores, check_seed, check_tau, warn_unreachable_tau
from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.fixed_order import FixedKeyOrder
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.needs import warn_missing_scores
from ltrsched.policies.registry import register


@register
class LTR(Policy):
    """Rank every live request by its predictor score (higher = shorter expected output), ties by arrival.

    The score is fixed at arrival (a ``score`` column from ``ltrsched predict``). Preemptive: each step all
    live requests compete, so a better-ranked arrival displaces running requests from the batch.
    With ``tau`` set, scores come from the approximate oracle at that Kendall tau instead (no column needed).
    Since scores never change, the order is kept between steps and updated only when requests arrive or
    finish (:class:`~ltrsched.policies.fixed_order.FixedKeyOrder`).
    """

    name = "ltr"

    def __init__(self, tau: float | None = None, seed: int = 0):
        check_tau(tau)
        check_seed(seed)
        self.tau = tau
        self.seed = seed
        self._oracle = IdArray(np.nan)
        self._order = FixedKeyOrder()

    @property
    def needs(self) -> tuple[str, ...]:
        return () if self.tau is not None else ("score",)

    def prepare(self, requests) -> None:
        self._oracle.reset()
        self._order.reset()
        if self.tau is not None:
            lengths = requests["output_tokens"]
            # (a tau the ties put out of reach ran silently at the exact order, or at random with equal lengths)
            warn_unreachable_tau(lengths, self.tau, f"{self.name}:tau={self.tau:g}")
            ids = requests["request_id"]  # (the noise follows the request, not its row: approx_oracle.id_order)
            self._oracle[ids] = approx_oracle_scores(lengths, self.tau, self.seed, request_ids=ids)
        else:
            warn_missing_scores(requests, f"policy {self.name!r}", f"`{self.name}:tau=0.62`")

    def on_arrival(self, request_ids, now) -> None:
        self._order.arrived(request_ids)

    def on_finish(self, request_ids, now) -> None:
        self._order.departed(request_ids)

    def scores(self, view: LiveView) -> np.ndarray:
        return self._oracle.get(view.request_id) if self.tau is not None else view.score

    def rank(self, view: LiveView) -> np.ndarray:
        return self._order.order(view, self._keys)

    #: ``rank`` orders by a key fixed per request (ties by arrival, then id), so the order of any subset of the live
    #: requests is this order without the others: a wrapper may keep such an order itself (starvation prevention's
    #: :class:`~ltrsched.policies.front_order.FrontOrder`). A subclass that overrides ``rank`` is not assumed to.
    fixed_key_rank = rank

    def _keys(self, view: LiveView) -> np.ndarray:
        return -self.scores(view)


@register
class ApproxOracle(LTR):
    """LTR on approximate-oracle scores: true lengths perturbed to Kendall tau ``tau`` (1 = exact order)."""

    name = "oracle"

    def __init__(self, tau: float = 1.0, seed: int = 0):
        super().__init__(tau=tau, seed=seed)
