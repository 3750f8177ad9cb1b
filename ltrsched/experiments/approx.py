"""Approximate predictors: noisy stand-ins for a length predictor at a chosen Kendall's tau.

Where no predictor trained on real text exists for a workload, the experiments use predictions whose
rank correlation with the true output length equals the paper's *measured* Kendall tau (tau-b) for
that predictor. All three stand-ins share one construction: a Gaussian latent
``rho * z + sqrt(1 - rho^2) * eps`` (``z`` the normal scores of the true lengths, ``eps`` seeded
noise), with ``rho`` found by bisection so that tau-b of the final prediction hits the target.

* :func:`approx_lengths` - length estimates [tokens] with the workload's length distribution (PO).
* :func:`approx_class_lengths` - bucket predictions [tokens, bucket midpoints] of a length classifier
  with bucket width ``bucket``; tau-b counts the ties that coarse buckets create, so a perfect
  820-token classifier already has a low tau.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

_SALT = {"score": 11, "length": 23, "class": 37}


def kendall_tau_b(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Kendall's tau-b between a prediction and the true lengths (NaN if either is constant or has fewer than 2
    values: a 1-request workload's, for which scipy also printed its ``SmallSampleWarning`` on the user's stderr)."""
    # (scipy.stats imported here, not at the top: the scoring module, which every experiment's run specs name, imports
    # this one, and a cached `reproduce`, which computes no score, paid about 0.9 s CPU for scipy.stats)
    from scipy.stats import kendalltau

    prediction, truth = np.asarray(prediction, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if min(len(prediction), len(truth)) < 2:
        return float("nan")
    return float(kendalltau(prediction, truth).statistic)


def _latent_parts(output_tokens: np.ndarray, seed: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.special import ndtri
    from scipy.stats import rankdata

    out = np.asarray(output_tokens, dtype=np.float64)
    rng = np.random.default_rng([seed, salt])
    jitter = rng.random(len(out)) * 0.5  # break ties in the true lengths at random
    ranks = rankdata(out + jitter, method="ordinal")
    z = ndtri((ranks - 0.5) / len(out))
    eps = rng.standard_normal(len(out))
    return z, eps


def _calibrate(
    z: np.ndarray, eps: np.ndarray, truth: np.ndarray, tau: float, transform: Callable[[np.ndarray], np.ndarray],
    iterations: int = 22,
) -> tuple[np.ndarray, float]:
    """Bisection on rho in [0, 1]: the transformed latent whose tau-b with ``truth`` is closest to ``tau``."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"target Kendall tau must be in [0, 1], got {tau}")

    def make(rho: float) -> np.ndarray:
        return transform(rho * z + np.sqrt(max(0.0, 1.0 - rho * rho)) * eps)

    best = make(1.0)
    best_tau = kendall_tau_b(best, truth)
    if not best_tau > tau:  # target not reachable (e.g. coarse buckets): the perfect predictor
        return best, best_tau
    lo, hi = 0.0, 1.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        cand = make(mid)
        t = kendall_tau_b(cand, truth)
        if np.isnan(t) or t < tau:
            lo = mid
        else:
            hi = mid
            best, best_tau = cand, t
        if abs(best_tau - tau) < 0.002:
            break
    return best, best_tau


def _to_length_quantiles(output_tokens: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    sorted_out = np.sort(np.asarray(output_tokens, dtype=np.float64))

    def transform(latent: np.ndarray) -> np.ndarray:
        ranks = np.argsort(np.argsort(latent, kind="stable"), kind="stable")
        return sorted_out[ranks]

    return transform


def approx_lengths(output_tokens: np.ndarray, tau: float, seed: int = 0) -> tuple[np.ndarray, float]:
    """Length estimates [tokens] with the true length distribution and tau-b ~= ``tau`` (e.g. PO's
    self-estimates). Returns ``(estimates, achieved_tau)``."""
    out = np.asarray(output_tokens, dtype=np.float64)
    z, eps = _latent_parts(out, seed, _SALT["length"])
    return _calibrate(z, eps, out, tau, _to_length_quantiles(out))


def bucket_midpoints(lengths: np.ndarray, bucket: int) -> np.ndarray:
    """Length [tokens] -> the midpoint of its bucket of width ``bucket`` (bucket 0 = 1..bucket tokens)."""
    idx = np.floor((np.asarray(lengths, dtype=np.float64) - 1) / bucket)
    return idx * bucket + (bucket + 1) / 2.0


def approx_class_lengths(
    output_tokens: np.ndarray, bucket: int, tau: float, seed: int = 0
) -> tuple[np.ndarray, float, float]:
    """A length classifier's predictions: bucket midpoints [tokens] with tau-b ~= ``tau`` where that is
    reachable (else the perfect classifier). Returns ``(predicted_length, achieved_tau, accuracy)``;
    accuracy = share of requests put in their true bucket."""
    if bucket <= 0:
        raise ValueError(f"bucket width must be positive, got {bucket}")
    out = np.asarray(output_tokens, dtype=np.float64)
    z, eps = _latent_parts(out, seed, _SALT["class"])
    to_len = _to_length_quantiles(out)
    pred, achieved = _calibrate(z, eps, out, tau, lambda x: bucket_midpoints(to_len(x), bucket))
    accuracy = float(np.mean(pred == bucket_midpoints(out, bucket)))
    return pred, achieved, accuracy
