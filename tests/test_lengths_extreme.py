"""Output and prompt lengths unlike ShareGPT's (other models' outputs): every length equal, one-token outputs
and prompts, reasoning-length outputs, a few outputs 1000x the median, requests at the context bound. Each
test reproduces a fault one of them exposed in the simulator, a policy, a router or the metrics."""

from __future__ import annotations

import numpy as np

from conftest import LinearProfile, make_workload
from ltrsched.policies import approx_oracle_scores, make_policy
from ltrsched.sim import SimConfig, simulate


def _finish_times(workload, spec: str, **config) -> np.ndarray:
    result = simulate(workload, make_policy(spec), SimConfig(profile=LinearProfile(), **config))
    return result.requests.sort("request_id")["finish_time"].to_numpy()


def test_the_exact_oracle_runs_equal_lengths_by_arrival():
    """``oracle`` (tau 1: the exact order) on a workload whose output lengths are all equal ran the requests in a
    random order (the noise model's, tau-b being NaN there), unwarned, unlike every other exact ranker (SRTF):
    its order is all ties, so requests run by arrival, as FCFS runs them."""
    assert len(set(approx_oracle_scores(np.full(50, 100), 1.0).tolist())) == 1
    wl = make_workload([300] * 40, [50] * 40, np.arange(40) * 0.01)
    fcfs = _finish_times(wl, "fcfs", max_num_seqs=4)
    assert np.array_equal(_finish_times(wl, "oracle", max_num_seqs=4), fcfs)
    assert np.array_equal(_finish_times(wl, "srtf", max_num_seqs=4), fcfs)
