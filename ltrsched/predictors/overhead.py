"""Predictor overhead on this machine: time per request and per batch (for the paper's Table 4)."""

from __future__ import annotations

import time

import numpy as np


def measure_overhead(predictor, prompts: list[str], batch_size: int = 32, repeat: int = 3) -> dict:
    """Best-of-``repeat`` wall time to score ``prompts`` in batches of ``batch_size``; every pass computes every
    prompt's features (what a backbone memoizes per prompt is forgotten first).

    Returns per_request_s, per_batch_s [s], prompts_per_s, batch_size, num_prompts.
    """
    predictor.scores(prompts[: min(len(prompts), batch_size)])  # warm-up
    best = np.inf
    for _ in range(repeat):
        predictor.forget_features()  # a backbone that memoizes per prompt (probe) must compute each one again
        t0 = time.perf_counter()
        for start in range(0, len(prompts), batch_size):
            predictor.scores(prompts[start: start + batch_size], batch_size=batch_size)
        best = min(best, time.perf_counter() - t0)
    batches = -(-len(prompts) // batch_size)
    return {
        "num_prompts": len(prompts), "batch_size": batch_size, "total_s": best,
        "per_request_s": best / len(prompts), "per_batch_s": best / batches, "prompts_per_s": len(prompts) / best,
    }
