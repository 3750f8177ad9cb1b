"""Example plugin: "power of two choices" routing — a complete router in one small file.

Use it anywhere a router spec goes:
    ltrsched simulate --replicas 8 --plugin examples/routers/power_of_two.py --router power-of-two:seed=1
"""

import numpy as np

from ltrsched.routers import Router, register


@register
class PowerOfTwo(Router):
    """Two replicas drawn at random (seeded); the one with fewer outstanding requests wins."""

    name = "power-of-two"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def prepare(self, requests, num_replicas: int) -> None:
        self.rng = np.random.default_rng(self.seed)  # a fresh stream per run

    def route(self, request: int, now: float, replicas) -> int:
        if len(replicas) == 1:
            return 0
        a, b = self.rng.choice(len(replicas), size=2, replace=False)
        return min(replicas[a], replicas[b], key=lambda r: (r.outstanding_requests, r.index)).index
