"""Helpers for turning noisy measurements into a valid profile table."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def isotonic(values: Sequence[float], weights: Sequence[float] | None = None) -> np.ndarray:
    """The least-squares non-decreasing fit of ``values`` (pool-adjacent-violators).

    Profile tables must be non-decreasing (more tokens are never faster); medians of timings are not,
    by a few microseconds of noise. Pooling adjacent violators removes that noise without the upward
    bias a running maximum would add.
    """
    y = np.asarray(values, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    if y.ndim != 1 or w.shape != y.shape:
        raise ValueError("values and weights must be 1-D and of equal length")
    means: list[float] = []
    wsum: list[float] = []
    counts: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist()):
        means.append(yi)
        wsum.append(wi)
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, w2, c2 = means.pop(), wsum.pop(), counts.pop()
            m1, w1 = means[-1], wsum[-1]
            means[-1] = (m1 * w1 + m2 * w2) / (w1 + w2)
            wsum[-1] = w1 + w2
            counts[-1] += c2
    return np.repeat(np.asarray(means), counts)
