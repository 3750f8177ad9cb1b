"""Routers that balance the replicas' load: outstanding requests, or KV use."""

from __future__ import annotations

from ltrsched.routers.base import Router, first_idle
from ltrsched.routers.registry import register

KV_MEASURES = ("blocks", "tokens")


@register
class LeastOutstanding(Router):
    """The replica with the fewest outstanding requests (routed, not finished); ties: the lowest index."""

    name = "least-outstanding"

    def route(self, request, now, replicas) -> int:
        return min(replicas, key=lambda r: (r.outstanding_requests, r.index)).index


@register
class LeastKV(Router):
    """The replica with the least KV load (blocks in use, or tokens of its requests).

    Ties by outstanding requests, then the lowest index. ``by=blocks``: KV blocks in use on the GPU now
    (what a real router reads from the engine's metrics; queued requests hold none yet). ``by=tokens``:
    prompt + generated tokens of the outstanding requests, queued ones included (the KV they hold or will
    need; swapped-out and recompute-preempted requests count theirs too).

    ``by=blocks`` does not see a queue: where long prompts arrive faster than a replica prefills them, the replica
    that started its prefill last shows the fewest blocks (its chunks so far) and collects the queue (20 requests of
    30,000-token prompts, 0.1 s apart, on 3 replicas: 1, 1 and 18); ``by=tokens`` counts the queued requests' prompts
    (7, 7 and 6).
    """

    name = "least-kv"

    def __init__(self, by: str = "blocks"):
        if by not in KV_MEASURES:
            raise ValueError(f"by must be one of {', '.join(KV_MEASURES)}, got {by!r}")
        self.by = by

    def route(self, request, now, replicas) -> int:
        if self.by == "blocks":
            return min(replicas, key=lambda r: (r.kv_blocks_in_use, r.outstanding_requests, r.index)).index
        idle = first_idle(replicas)  # (no tokens: the least; reading every replica's tokens is the cost)
        if idle is not None:
            return idle
        return min(replicas, key=lambda r: (r.context_tokens, r.outstanding_requests, r.index)).index
