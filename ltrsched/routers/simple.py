"""Routers that ignore the replicas' state: round-robin and (seeded) random."""

from __future__ import annotations

import numpy as np

from ltrsched.policies.approx_oracle import id_order, in_id_order
from ltrsched.routers.base import Router
from ltrsched.routers.registry import register


@register
class RoundRobin(Router):
    """Replicas in turn: request k (in arrival order) goes to replica k mod N."""

    name = "round-robin"
    reads_state = False

    def __init__(self):
        self._next = 0

    def prepare(self, requests, num_replicas: int) -> None:
        self._next = 0

    def route(self, request, now, replicas) -> int:
        k = self._next
        self._next = (k + 1) % len(replicas)
        return k


@register
class Random(Router):
    """A uniformly random replica, seeded: the same workload and seed give the same assignment."""

    name = "random"
    reads_state = False

    def __init__(self, seed: int = 0):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed
        self._choice: list[int] = []

    def prepare(self, requests, num_replicas: int) -> None:
        # one draw per request, made up front: the choice does not depend on routing order; the draws go to the
        # requests in order of id, not of row (a workload's rows in another order, same ids, routed otherwise)
        ids = requests["request_id"]
        draws = np.random.default_rng(self.seed).integers(num_replicas, size=len(ids))
        self._choice = in_id_order(draws, id_order(ids, len(ids))).tolist()

    def route(self, request, now, replicas) -> int:
        return self._choice[request]
