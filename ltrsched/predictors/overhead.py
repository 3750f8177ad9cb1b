"""Predictor overhead on this machine: time per request and per batch (for the paper's Table 4)."""

from __future__ import annotations

import time

import numpy as np

from ltrsched.errors import UserError


def measure_overhead(predictor, prompts: list[str], batch_size: int = 32, repeat: int = 3) -> dict:
    """Best-of-``repeat`` wall time to score ``prompts`` in batches of ``batch_size``; every pass computes every
    prompt's features (what a backbone memoizes per prompt is forgotten first). A batch size above the prompt count
    scores them all as one batch, and is reported as that count. Raises :class:`UserError` for no prompts, or a
    batch size or repeat count below 1 (a batch size of 0 was a ValueError from ``range``, no prompts a
    ZeroDivisionError, and a negative batch size timed nothing and reported ~1e8 prompts/s).

    Returns per_request_s, per_batch_s, total_s [s], prompts_per_s, batch_size, num_prompts and threads (torch's
    thread count it ran with: the time depends on it).
    """
    import torch

    if not prompts:
        raise UserError("no prompts to time the predictor on: give at least one")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise UserError(f"the batch size of a predictor timing must be a whole number >= 1, got {batch_size!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        raise UserError(f"the repeat count of a predictor timing must be a whole number >= 1, got {repeat!r}")
    batch_size = int(min(batch_size, len(prompts)))
    predictor.scores(prompts[:batch_size])  # warm-up
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
        "threads": torch.get_num_threads(),
    }
