"""First come, first served: order by arrival time (ties by request id)."""

import numpy as np

from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.registry import register


@register
class FCFS(Policy):
    """Earliest arrival first. With the host's batch rules this is vLLM's default behaviour."""

    name = "fcfs"

    def rank(self, view: LiveView) -> np.ndarray:
        if len(view) < 2:  # one request (a burst's tail runs alone for thousands of steps): skip the keys
            return np.zeros(len(view), dtype=np.intp)
        return view.order_by()
