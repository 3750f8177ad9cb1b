"""Output and prompt lengths unlike ShareGPT's (other models' outputs): every length equal, one-token outputs
and prompts, reasoning-length outputs, a few outputs 1000x the median, requests at the context bound. Each
test reproduces a fault one of them exposed in the simulator, a policy, a router or the metrics."""

from __future__ import annotations

import numpy as np

from cli_helpers import run_cli_fast
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


def test_a_quantum_or_threshold_past_any_run_counts_as_never(tmp_path, capsys):
    """``quantum`` (and ``starve``) up to the spec's 64-bit bound: a promotion's end tick, ``tick + quantum``, passed
    int64 and the run ended in an OverflowError traceback at the first promotion. A bound no run reaches stands for
    it: the run is the same as with that bound (a promoted request keeps its promotion to the end)."""
    big = 2**63 - 1
    wl = make_workload([200] * 30, [40] * 30)  # a burst: requests wait, and are promoted at starve=1
    for spec in (f"srtf:starve=1,quantum={big}", f"fcfs:starve={big},quantum={big}", f"mlfq:starve=2,starve_quantum={big}"):
        bound = spec.replace(str(big), str(2**62))
        assert np.array_equal(_finish_times(wl, spec, max_num_seqs=4), _finish_times(wl, bound, max_num_seqs=4)), spec
    trace = tmp_path / "burst.csv"
    trace.write_text("prompt_tokens,output_tokens\n" + "200,40\n" * 30)
    r = run_cli_fast(capsys, "simulate", "-w", trace, "-P", f"srtf:starve=1,quantum={big}", "--max-num-seqs", "4",
                     "--no-progress")
    assert r.returncode == 0 and "latency_per_token" in r.stdout, r.stderr
