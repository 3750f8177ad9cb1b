"""Routers that use the length predictor: rank-aware (the LTR score) and least predicted work (lengths)."""

from __future__ import annotations

import numpy as np

from ltrsched.errors import UserError
from ltrsched.policies.approx_oracle import (
    approx_oracle_scores, check_seed, check_tau, noisy_lengths, warn_unreachable_tau,
)
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.limit_rules import MAX_MODEL_LEN, MIN_MODEL_LEN
from ltrsched.routers.base import Router, first_idle
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
    """Rank-aware: the replica where the fewest outstanding requests rank ahead of the new one (scores read as
    ranks only).

    Ahead means a score at least as high (predicted no longer; under LTR those run first). Ties by
    outstanding requests, then the lowest index. Scale-free: uses only the order of the scores, never their
    values, so any predictor's column routes alike: a trained ranker's (ListMLE, pairwise: unitless), a class
    model's (minus its bucket index), the approximate oracle's (minus a log length plus noise). No score is read
    as a length (``least-work`` takes lengths [tokens] from ``predicted_length``).

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
            self._score = approx_oracle_scores(requests["output_tokens"], self.tau, self.seed,
                                               request_ids=requests["request_id"])  # (as ltr:tau='s, per request)
        else:
            self._score = np.asarray(requests["score"], dtype=np.float64)
            _warn_uninformative(self._score, requests["request_id"], self.name)

    def route(self, request, now, replicas) -> int:
        idle = first_idle(replicas)
        if idle is not None:
            return idle
        score = self._score
        mine = score[request]

        def key(r):
            return count_nonzero(score[r.requests] >= mine), r.outstanding_requests, r.index

        return min(replicas, key=key).index


def check_model_len(max_model_len: int | None) -> None:
    """Raise ValueError unless ``max_model_len`` [tokens] is None or a whole number in the engine's range
    (:data:`~ltrsched.policies.limit_rules.MIN_MODEL_LEN`..:data:`~ltrsched.policies.limit_rules.MAX_MODEL_LEN`)."""
    if max_model_len is None:
        return
    if isinstance(max_model_len, (bool, np.bool_)) or not isinstance(max_model_len, (int, np.integer)):
        raise ValueError(f"max_model_len must be a whole number of tokens, got {max_model_len!r}")
    if not MIN_MODEL_LEN <= max_model_len <= MAX_MODEL_LEN:
        raise ValueError(f"max_model_len must be in {MIN_MODEL_LEN}..{MAX_MODEL_LEN:,} tokens, got {max_model_len:,}")


def output_bounds(requests, max_model_len: int | None, name: str) -> np.ndarray:
    """The most output tokens each request can generate [tokens, float64]: ``max_model_len`` minus its prompt tokens,
    at least 1 (an engine stops a request whose context reaches ``max_model_len``).

    ``max_model_len`` None: the workload's longest request (prompt + output tokens), the tightest context every
    replica is known to serve (the simulator refuses a workload with a request longer than its ``max_model_len``).
    A ``max_model_len`` below that request is a one-line :class:`UserError` (it cannot be the replicas')."""
    prompts = np.asarray(requests["prompt_tokens"], dtype=np.int64)
    if len(prompts) == 0:
        return np.zeros(0)
    totals = prompts + np.asarray(requests["output_tokens"], dtype=np.int64)
    longest = int(np.argmax(totals))
    if max_model_len is None:
        max_model_len = int(totals[longest])
    elif totals[longest] > max_model_len:
        raise UserError(
            f"router {name!r}: max_model_len={max_model_len} is below request {requests['request_id'][longest]}'s "
            f"{prompts[longest]:,} prompt + {totals[longest] - prompts[longest]:,} output tokens, which the replicas "
            "serve; give the replicas' max_model_len, or leave the parameter out (the workload's longest request)")
    return np.maximum(max_model_len - prompts, 1).astype(np.float64)


@register
class LeastWork(Router):
    """The replica with the least predicted output tokens left, each request's prediction capped at
    max_model_len - prompt.

    Work is the sum, over the outstanding requests, of predicted length - generated tokens (at least 1);
    ties by outstanding requests, then the lowest index.

    Predicted lengths [tokens] come from the workload's ``predicted_length`` column (``ltrsched predict``
    with a ``--kind class`` model: bucket midpoints [tokens]; every request needs one), or with ``tau`` set from a
    noise model: the true lengths perturbed to that Kendall tau (as ``class:tau=...``; no column needed). The
    ``score`` column is never read: an LTR score (ListMLE, pairwise) is unitless, not a length (the ``rank`` router
    uses it as a rank).

    Each predicted length is bounded to what the request can generate: at most ``max_model_len`` [tokens] minus its
    prompt, at least 1 token. ``max_model_len``: this parameter where given; left out, for a ``predicted_length``
    column the replicas' own context as the host gives it (:attr:`ReplicaView.max_model_len`: the simulator's
    ``--max-model-len``, else the profile's bounded by the KV cache: a real router knows no more), and for the noise
    model (``tau``, true lengths perturbed) or where the host gives no context, the workload's longest request (prompt
    + output), the tightest context the replicas are known to serve. (Unbounded,
    the noise model's log-normal errors predicted up to 4.4e10 tokens for a 30,000-token request at tau 0.6, 40
    requests of a 1/30k-token mix, and a few such requests made their replicas look busy for the whole run: of 40
    requests of 1 or 3,000 tokens, one every 50 ms, 34 went to one of 2 replicas; tests/test_cluster.py.)
    """

    name = "least-work"

    def __init__(self, tau: float | None = None, seed: int = 0, max_model_len: int | None = None):
        check_tau(tau)
        check_seed(seed)
        check_model_len(max_model_len)
        self.tau = tau
        self.seed = seed
        self.max_model_len = max_model_len
        self._length = np.zeros(0)
        self._predicted = np.zeros(0)  # unbounded [tokens]
        self._prompts = np.zeros(0, dtype=np.int64)
        self._bounded_by_replicas = False

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return () if self.tau is not None else ("predicted_length",)

    def prepare(self, requests, num_replicas: int) -> None:
        bounds = output_bounds(requests, self.max_model_len, self.name)
        self._prompts = np.asarray(requests["prompt_tokens"], dtype=np.int64)
        # (the noise model reads the true lengths anyway: its bound stays the workload's longest request, which on
        # a 100,000-token context kept a 1/3,000-token mix at 20/20 where the context's bound gave 30/10)
        self._bounded_by_replicas = self.max_model_len is not None or self.tau is not None
        if self.tau is not None:
            warn_unreachable_tau(requests["output_tokens"], self.tau, f"router {self.name}:tau={self.tau:g}")
            length = noisy_lengths(requests["output_tokens"], self.tau, self.seed, request_ids=requests["request_id"])
        else:
            length = np.asarray(requests["predicted_length"], dtype=np.float64)
            missing = np.flatnonzero(np.isnan(length))
            if len(missing):  # NaN work compares as never less: every request went to the replica holding one
                raise UserError(
                    f"router {self.name!r}: {len(missing)} request(s) have no predicted_length (first: request "
                    f"{requests['request_id'][missing[0]]}); give every request one, or route on noisy true "
                    "lengths with a tau parameter, e.g. `--router least-work:tau=0.62`")
        self._predicted = length
        self._length = np.clip(length, 1.0, bounds)

    def _bound_by(self, replicas) -> None:
        """Bound a ``predicted_length`` column's lengths by the replicas' own context (:attr:`ReplicaView.max_model_len`,
        the run's ``--max-model-len`` or the profile's) where no ``max_model_len`` parameter was given and the host
        names one: the workload's longest request, the bound before the first arrival, is a hint of the true lengths
        that a predictor's router would not have."""
        self._bounded_by_replicas = True
        context = getattr(replicas[0], "max_model_len", None) if len(replicas) else None
        if context is not None:
            self._length = np.clip(self._predicted, 1.0, np.maximum(int(context) - self._prompts, 1).astype(np.float64))

    def work(self, replica) -> float:
        """Predicted output tokens the replica's outstanding requests still have to generate [tokens]."""
        left = self._length[replica.requests] - replica.generated_tokens
        return float(np.maximum(left, 1.0).sum())

    def route(self, request, now, replicas) -> int:
        if not self._bounded_by_replicas:
            self._bound_by(replicas)
        idle = first_idle(replicas)
        if idle is not None:
            return idle
        return min(replicas, key=lambda r: (self.work(r), r.outstanding_requests, r.index)).index
