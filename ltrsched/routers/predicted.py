"""Routers that use the length predictor: rank-aware (the LTR score) and least predicted work (lengths)."""

from __future__ import annotations

import numpy as np

from ltrsched.errors import UserError
from ltrsched.policies.approx_oracle import (
    approx_oracle_scores, check_seed, check_tau, noisy_lengths, warn_unreachable_tau,
)
from ltrsched.policies.fastops import count_nonzero
from ltrsched.routers.base import Router
from ltrsched.routers.registry import register


def _warn_uninformative(scores: np.ndarray, request_ids: np.ndarray, name: str) -> None:
    """A ``warning:`` line on stderr where the ``score`` column cannot rank (as the LTR policy warns of the same
    column; the router routed silently): requests without a score (NaN: compared as neither ahead nor behind, each is
    routed as by least-outstanding and none counts ahead of a scored one), or one score for every request (each then
    counts every outstanding request as ahead: least-outstanding)."""
    import sys

    fix = ("give every request a score (`ltrsched predict`), or use approximate-oracle scores with a tau parameter "
           "(rank:tau=0.62)")
    missing = np.flatnonzero(np.isnan(scores))
    if len(missing):
        print(f"warning: router {name!r}: {len(missing):,} of {len(scores):,} request(s) have no score (first: request "
              f"{request_ids[missing[0]]}); each is routed as by least-outstanding, and counts ahead of no scored "
              f"request: {fix}", file=sys.stderr)
    scored = scores[~np.isnan(scores)]
    if len(scored) > 1 and scored.min() == scored.max():
        print(f"warning: router {name!r}: all {len(scored):,} scored request(s) have the same score ({scored[0]:g}); "
              "routed by it, the router is least-outstanding: check the predictor that wrote the column, or use "
              "approximate-oracle scores with a tau parameter (rank:tau=0.62)", file=sys.stderr)


@register
class Rank(Router):
    """Rank-aware: the replica where the fewest outstanding requests rank ahead of the new one.

    Ahead means a score at least as high (predicted no longer; under LTR those run first). Ties by
    outstanding requests, then the lowest index. Scale-free: uses only the order of the scores.

    Scores come from the workload's ``score`` column (``ltrsched predict``), or with ``tau`` set from
    the approximate oracle at that Kendall tau (as ``ltr:tau=...``; no column needed).
    """

    name = "rank"

    def __init__(self, tau: float | None = None, seed: int = 0):
        check_tau(tau)
        check_seed(seed)
        self.tau = tau
        self.seed = seed
        self._score = np.zeros(0)

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return () if self.tau is not None else ("score",)

    def prepare(self, requests, num_replicas: int) -> None:
        if self.tau is not None:
            warn_unreachable_tau(requests["output_tokens"], self.tau, f"router {self.name}:tau={self.tau:g}")
            self._score = approx_oracle_scores(requests["output_tokens"], self.tau, self.seed)
        else:
            self._score = np.asarray(requests["score"], dtype=np.float64)
            _warn_uninformative(self._score, requests["request_id"], self.name)

    def route(self, request, now, replicas) -> int:
        score = self._score
        mine = score[request]

        def key(r):
            return count_nonzero(score[r.requests] >= mine), r.outstanding_requests, r.index

        return min(replicas, key=key).index


@register
class LeastWork(Router):
    """The replica with the least predicted work: output tokens its requests are still predicted to generate.

    Work is the sum, over the outstanding requests, of predicted length - generated tokens (at least 1);
    ties by outstanding requests, then the lowest index.

    Predicted lengths [tokens] come from the workload's ``predicted_length`` column (``ltrsched predict``
    with a ``--kind class`` model; every request needs one), or with ``tau`` set from a noise model: the true lengths perturbed to
    that Kendall tau (as ``class:tau=...``; no column needed).
    """

    name = "least-work"

    def __init__(self, tau: float | None = None, seed: int = 0):
        check_tau(tau)
        check_seed(seed)
        self.tau = tau
        self.seed = seed
        self._length = np.zeros(0)

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return () if self.tau is not None else ("predicted_length",)

    def prepare(self, requests, num_replicas: int) -> None:
        if self.tau is not None:
            warn_unreachable_tau(requests["output_tokens"], self.tau, f"router {self.name}:tau={self.tau:g}")
            self._length = noisy_lengths(requests["output_tokens"], self.tau, self.seed)
        else:
            self._length = np.asarray(requests["predicted_length"], dtype=np.float64)
            missing = np.flatnonzero(np.isnan(self._length))
            if len(missing):  # NaN work compares as never less: every request went to the replica holding one
                raise UserError(
                    f"router {self.name!r}: {len(missing)} request(s) have no predicted_length (first: request "
                    f"{requests['request_id'][missing[0]]}); give every request one, or route on noisy true "
                    "lengths with a tau parameter, e.g. `--router least-work:tau=0.62`")

    def work(self, replica) -> float:
        """Predicted output tokens the replica's outstanding requests still have to generate [tokens]."""
        left = self._length[replica.requests] - replica.generated_tokens
        return float(np.maximum(left, 1.0).sum())

    def route(self, request, now, replicas) -> int:
        return min(replicas, key=lambda r: (self.work(r), r.outstanding_requests, r.index)).index
