"""Oracle shortest-remaining-time-first: order by the *true* remaining output tokens."""

import numpy as np

from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.registry import register
from ltrsched.policies.remaining_order import RemainingOrder


@register
class SRTF(Policy):
    """Fewest true remaining output tokens first; ties by arrival. An oracle: real systems can't know it.

    Only the last batch's remaining tokens change between steps, so the order is kept and updated from the batch,
    the finishes and the arrivals (:class:`~ltrsched.policies.remaining_order.RemainingOrder`), not sorted afresh
    over every live request each step, from 4,096 live requests (below, it sorts every step): always
    ``view.order_by(view.remaining_tokens)``."""

    name = "srtf"

    def __init__(self):
        self._order = RemainingOrder()

    def prepare(self, requests) -> None:
        self._order.reset()

    def on_arrival(self, request_ids, now) -> None:
        self._order.arrived(request_ids)

    def on_finish(self, request_ids, now) -> None:
        self._order.departed(request_ids)

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        self._order.ran_mask(view, scheduled)

    def on_step_ranks(self, view: LiveView, order: np.ndarray, ranks, step_time: float) -> None:
        """:meth:`on_step` with the batch named by its ranks in ``order`` (the simulator's replica calls this)."""
        self._order.ran(view, order, ranks)

    def rank(self, view: LiveView) -> np.ndarray:
        if len(view) < 2:  # one request (a burst's tail runs alone for thousands of steps): skip the keys
            return np.zeros(len(view), dtype=np.intp)
        return self._order.order(view)
