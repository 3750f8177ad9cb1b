"""Approximate-oracle scores: true lengths perturbed to a requested Kendall's tau.

``score = -(log(length) + sigma * z)`` with ``z`` standard normal (seeded); ``sigma`` is found by
bisection so that Kendall's tau-b between the score and ``-length`` (i.e. between "predicted shortness"
and true shortness) equals the requested tau within ``tolerance`` on the given lengths. tau >= the
largest tau reachable with ties in the lengths gives the exact order (sigma = 0).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau

from ltrsched.errors import UserError

#: How close [dimensionless] :func:`approx_oracle_scores` brings Kendall tau-b to the requested tau.
TOLERANCE = 0.005


def check_tau(tau: float | None) -> None:
    """Raise ValueError unless ``tau`` is None or in (0, 1] (spec parameters call this at construction)."""
    if tau is not None and not 0 < tau <= 1:
        raise ValueError(f"tau must be in (0, 1], got {tau}")


def check_seed(seed: int) -> None:
    """Raise ValueError unless ``seed`` is a non-negative integer (numpy's generators take no others)."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def _tau(score: np.ndarray, lengths: np.ndarray) -> float:
    return float(kendalltau(score, -lengths).statistic)


def approx_oracle_scores(lengths: np.ndarray, tau: float, seed: int = 0, tolerance: float = TOLERANCE) -> np.ndarray:
    """Scores (higher = shorter) whose Kendall tau-b against the true lengths is ``tau`` (+-tolerance).

    Args:
        lengths: true output lengths [tokens], > 0.
        tau: target Kendall tau-b in (0, 1].
        seed: noise seed.
    """
    if not 0 < tau <= 1:
        raise UserError(f"tau must be in (0, 1], got {tau}")
    lengths = np.asarray(lengths, dtype=np.float64)
    base = -np.log(lengths)
    if len(lengths) < 2:
        return base
    z = np.random.default_rng(seed).standard_normal(len(lengths))
    best = _tau(base, lengths)
    if tau >= best - tolerance:
        return base
    lo, hi = 0.0, 1.0
    while _tau(base - hi * z, lengths) > tau:  # find an upper bracket
        hi *= 2
        if hi > 1e6:
            break
    score = base - hi * z
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        score = base - mid * z
        got = _tau(score, lengths)
        if abs(got - tau) <= tolerance:
            break
        lo, hi = (mid, hi) if got > tau else (lo, mid)
    return score


def unreachable_tau_warning(lengths: np.ndarray, tau: float, what: str) -> str | None:
    """A one-line ``warning:`` when ties in ``lengths`` [tokens] put ``tau`` out of the approximate oracle's reach,
    naming the reachable maximum; None when it is reachable (or 1 - :data:`TOLERANCE` or more: the exact order).

    Scores without ties reach a Kendall tau-b of at most :func:`~ltrsched.workloads.ties.tau_ceiling`. Above it
    :func:`approx_oracle_scores` meets ``tau`` only with noise below the scores' float resolution, which ties
    equal lengths' scores and keeps every other pair in order: the exact order, not a ranker of that tau. With
    every length equal no order has a tau at all (the scores' order is random). ``what``: the spec, e.g. ``ltr``."""
    from ltrsched.workloads.ties import tau_ceiling, tied_pair_share  # (lengths alone: no predictor needed)

    lengths = np.asarray(lengths)
    if len(lengths) < 2 or tau >= 1 - TOLERANCE:
        return None
    ceiling = tau_ceiling(lengths)
    if tau <= ceiling + TOLERANCE:
        return None
    if ceiling == 0:
        return (f"warning: {what}: tau {tau:g} cannot be reached: all {len(lengths):,} output lengths are equal "
                f"({lengths[0]} tokens), so no order has a Kendall tau (the reachable maximum is 0) and the "
                "requests are ranked at random")
    return (f"warning: {what}: tau {tau:g} cannot be reached on this workload: {tied_pair_share(lengths):.0%} of its "
            f"request pairs have equal output lengths, which Kendall tau-b orders in no pair, so scores without ties "
            f"reach at most {ceiling:.3f}; above that the requests are ranked in the exact order, not at tau {tau:g} "
            f"(ask for tau <= {ceiling:.3f})")


def warn_unreachable_tau(lengths: np.ndarray, tau: float, what: str) -> None:
    """Print :func:`unreachable_tau_warning` on stderr where it has one (the CLI prints each distinct line once:
    :mod:`ltrsched.notices`); for every user of the approximate oracle (``ltr:tau=``, the ``rank``/``least-work``
    routers' ``tau``)."""
    import sys

    warning = unreachable_tau_warning(lengths, tau, what)
    if warning:
        print(warning, file=sys.stderr)


def noisy_lengths(lengths: np.ndarray, tau: float, seed: int = 0) -> np.ndarray:
    """Predicted lengths [tokens] with Kendall tau ``tau`` against the truth (a length-valued oracle): finite,
    positive and in the order of :func:`approx_oracle_scores`, so their tau is the scores' tau.

    They are ``exp(-score)`` (the true length times log-normal noise) wherever each is a normal float and at
    most the largest float over twice the number of requests (a router adds them up). Where one is not (the
    noise's scale runs to ~1e6 when ``tau`` is below what noise reaches on a few requests: ``exp`` gave inf and
    0, which tied requests that the scores order, and made a router's sums inf), the log-lengths are mapped
    linearly onto that range: the same order, without overflow."""
    log_lengths = -approx_oracle_scores(lengths, tau, seed)
    if len(log_lengths) == 0:
        return np.exp(log_lengths)
    low, high = _LOG_TINY, _LOG_MAX - np.log(2 * len(log_lengths))  # (sums stay below half the largest float)
    least, most = log_lengths.min(), log_lengths.max()
    if least < low or most > high:
        if most > least:
            log_lengths = low + (log_lengths - least) * ((high - low) / (most - least))
        else:
            log_lengths = np.full_like(log_lengths, min(max(least, low), high))
    return np.exp(log_lengths)


#: [log tokens] Natural logs of the smallest normal and the largest float64 (a noisy length's bounds).
_LOG_TINY, _LOG_MAX = float(np.log(np.finfo(np.float64).tiny)), float(np.log(np.finfo(np.float64).max))


def fill_missing_lengths(values, lengths, tau: float, seed: int = 0) -> np.ndarray:
    """``values`` [tokens] with NaNs replaced by :func:`noisy_lengths` of the true ``lengths`` at ``tau``."""
    out = np.asarray(values, dtype=np.float64).copy()
    missing = np.isnan(out)
    if missing.any():
        out[missing] = noisy_lengths(np.asarray(lengths)[missing], tau, seed)
    return out
