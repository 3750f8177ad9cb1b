"""First come, first served: order by arrival time (ties by request id)."""

import numpy as np

from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.fastops import positions
from ltrsched.policies.order_check import vouched
from ltrsched.policies.registry import register


@register
class FCFS(Policy):
    """Earliest arrival first. With the host's batch rules this is vLLM's default behaviour."""

    name = "fcfs"

    def rank(self, view: LiveView) -> np.ndarray:
        n = len(view)
        if n < 2:  # one request (a burst's tail runs alone for thousands of steps): skip the keys
            return np.zeros(n, dtype=np.intp)
        if view.arrival_ordered:  # the listing's own order: the positions 0..n-1, a view of a shared range
            return vouched(view, positions(n))
        return view.order_by()
