"""Oracle shortest-remaining-time-first: order by the *true* remaining output tokens."""

import numpy as np

from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.registry import register


@register
class SRTF(Policy):
    """Fewest true remaining output tokens first; ties by arrival. An oracle: real systems can't know it."""

    name = "srtf"

    def rank(self, view: LiveView) -> np.ndarray:
        if len(view) < 2:  # one request (a burst's tail runs alone for thousands of steps): skip the keys
            return np.zeros(len(view), dtype=np.intp)
        return view.order_by(view.remaining_tokens)
