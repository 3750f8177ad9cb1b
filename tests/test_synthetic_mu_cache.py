"""The synthetic workloads' log-mean is solved once per length model (helper scalefollow): each build solved it
twice (prompt and output), 0.07 s a solve, 85% of building a 20-request lmsys-like workload."""

from __future__ import annotations

import numpy as np

from ltrsched.workloads import synthetic
from ltrsched.workloads.synthetic import SYNTHETIC, synthetic_workload_frame


def test_a_synthetic_workloads_log_mean_is_solved_once_per_model(monkeypatch):
    synthetic_workload_frame("lmsys-like", 20, seed=0)  # (solves this model's, if no earlier test did)
    calls = []
    real = np.random.default_rng

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic.np.random, "default_rng", counting)
    for seed in range(1, 6):
        synthetic_workload_frame("lmsys-like", 20, seed=seed)
    assert calls == [(seed,) for seed in range(1, 6)]  # the frames' own generators; no solver's (seed 12345)


def test_the_cached_log_mean_is_the_solved_one_and_the_frames_unchanged():
    spec = SYNTHETIC["lmsys-like"]
    for model in (spec.prompt, spec.output):
        assert model._mu() == synthetic._solve_mu.__wrapped__(model.mean, model.sigma, model.low, model.high)
    first = synthetic_workload_frame("lmsys-like", 50, seed=3)
    synthetic._solve_mu.cache_clear()
    assert synthetic_workload_frame("lmsys-like", 50, seed=3).equals(first)
