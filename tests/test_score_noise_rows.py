"""The simulated predictors' noise belongs to the request (its id), not to its row: a workload and a copy with its rows
in another order (same ids, same arrivals, ties in arrival included) give every request the same approximate-oracle
score, PO estimate, class bucket and routed length, and so the same results. (The noise was drawn by position: sorting
a trace file changed ``ltr:tau=``, ``po``, ``class`` and ``least-work:tau=`` results.) Rows already in id order draw as
before (the golden grid, benchmarks/golden_grid.py, is unchanged)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.experiments.scoring import attach_scores
from ltrsched.policies import make_policy
from ltrsched.policies.approx_oracle import approx_oracle_scores, fill_missing_lengths, id_order, noisy_lengths
from ltrsched.routers import make_router
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster
from ltrsched.workloads.schema import Workload

#: A shuffle of 80 rows (a fixed seed), not the identity.
N = 80
PERM = np.random.default_rng(3).permutation(N)


def _workload(arrival_ties: bool = True, **extra) -> Workload:
    """80 requests, ids 100, 103, 106, ... (not 0..n-1), outputs of 1-59 tokens and every 8th of 900-2,499 (some
    equal; in more than one of ``class``'s 820-token buckets), arrivals in tenths of a second (many at the same
    instant) or all distinct."""
    rng = np.random.default_rng(11)
    out = rng.integers(1, 60, N)
    out[::8] = rng.integers(900, 2500, N // 8)
    out[10:14] = out[9]  # (equal lengths: tau-b's ties)
    arrivals = np.round(rng.uniform(0, 2.0, N), 1) if arrival_ties else np.sort(rng.uniform(0, 2.0, N))
    wl = make_workload(rng.integers(5, 60, N), out, arrivals, **extra)
    return Workload(wl.df.with_columns(request_id=pl.Series(100 + 3 * np.arange(N), dtype=pl.Int64)), "rows")


def _shuffled(workload: Workload) -> Workload:
    return Workload(workload.df[PERM], workload.name)


def _by_id(frame: pl.DataFrame, columns) -> pl.DataFrame:
    return frame.select("request_id", *columns).sort("request_id")


def test_the_workloads_rows_differ_and_arrivals_tie():
    """The premise: the copy lists the requests in another order, and several arrive at one instant."""
    wl = _workload()
    assert not (wl.df["request_id"].to_numpy() == _shuffled(wl).df["request_id"].to_numpy()).all()
    assert wl.df["arrival_time"].n_unique() < N // 2


@pytest.mark.parametrize("tau", [0.6, 0.2, 0.95])
def test_oracle_scores_follow_the_request_not_the_row(tau):
    lengths = _workload().df["output_tokens"].to_numpy()
    ids = 100 + 3 * np.arange(N)
    scores = approx_oracle_scores(lengths, tau, seed=4, request_ids=ids)
    moved = approx_oracle_scores(lengths[PERM], tau, seed=4, request_ids=ids[PERM])
    assert np.array_equal(moved, scores[PERM])


def test_few_requests_swapped_to_the_nearest_tau_follow_the_request():
    """Four requests: tau-b moves in steps of 1/3, so the scores are swapped onto the nearest one (``_nearest``'s
    seeded picks of pairs next to each other in score order), per request too."""
    lengths, ids = np.array([40, 7, 300, 12]), np.array([9, 2, 5, 30])
    for seed in range(3):
        scores = approx_oracle_scores(lengths, 0.5, seed, request_ids=ids)
        for perm in ([3, 2, 1, 0], [1, 3, 0, 2]):
            assert np.array_equal(approx_oracle_scores(lengths[perm], 0.5, seed, request_ids=ids[perm]), scores[perm])


def test_noisy_lengths_and_filled_lengths_follow_the_request():
    lengths = _workload().df["output_tokens"].to_numpy()
    ids = 100 + 3 * np.arange(N)
    noisy = noisy_lengths(lengths, 0.5, 2, request_ids=ids)
    assert np.array_equal(noisy_lengths(lengths[PERM], 0.5, 2, request_ids=ids[PERM]), noisy[PERM])
    given = np.where(np.arange(N) % 4 == 0, 500.0, np.nan)  # (a column with gaps: the gaps drawn)
    filled = fill_missing_lengths(given, lengths, 0.5, 2, what="t", request_ids=ids)
    assert np.array_equal(fill_missing_lengths(given[PERM], lengths[PERM], 0.5, 2, what="t", request_ids=ids[PERM]),
                          filled[PERM])


def test_rows_in_id_order_draw_as_without_ids():
    """Rows in id order (gaps in the ids included) draw the noise as before: bit for bit the positional draws."""
    lengths = _workload().df["output_tokens"].to_numpy()
    ids = 100 + 3 * np.arange(N)
    assert id_order(ids, N) is None
    for tau in (0.6, 0.2):
        assert np.array_equal(approx_oracle_scores(lengths, tau, 1, request_ids=ids), approx_oracle_scores(lengths, tau, 1))
    assert np.array_equal(noisy_lengths(lengths, 0.5, 0, request_ids=ids), noisy_lengths(lengths, 0.5, 0))


def _simulated(workload: Workload, policy: str, router: str | None = None) -> pl.DataFrame:
    config = SimConfig(profile=LinearProfile(), max_num_seqs=4)
    if router is None:
        result = simulate(workload, make_policy(policy), config)
        return _by_id(result.requests, ["first_token_time", "finish_time", "num_preemptions"])
    result = simulate_cluster(workload, make_policy(policy), config, replicas=2, router=make_router(router))
    return _by_id(result.requests, ["first_token_time", "finish_time", "replica"])


@pytest.mark.parametrize("policy", ["ltr:tau=0.6", "po", "class", "class:bucket=100", "oracle:tau=0.5",
                                    "ltr:tau=0.6,starve=20,quantum=4"])
def test_a_row_shuffled_workload_simulates_alike(policy):
    wl = _workload()
    assert _simulated(_shuffled(wl), policy).equals(_simulated(wl, policy))


def test_po_with_some_estimates_given_simulates_alike():
    """PO draws estimates only for the requests without one: per request among those."""
    wl = _workload(po_estimate=np.where(np.arange(N) % 3 == 0, 300.0, np.nan))
    assert _simulated(_shuffled(wl), "po").equals(_simulated(wl, "po"))


@pytest.mark.parametrize("router", ["least-work:tau=0.6", "rank:tau=0.6"])
def test_a_row_shuffled_workload_routes_alike(router):
    """Arrivals at distinct instants (the cluster routes same-instant arrivals in row order)."""
    wl = _workload(arrival_ties=False)
    assert _simulated(_shuffled(wl), "ltr:tau=0.6", router).equals(_simulated(wl, "ltr:tau=0.6", router))


@pytest.mark.parametrize("router", ["least-work:tau=0.6", "rank:tau=0.6"])
def test_routers_noise_follows_the_request(router):
    wl = _workload()
    made = []
    for w in (wl, _shuffled(wl)):
        r = make_router(router)
        r.prepare(w.policy_columns(), 2)
        values = r._length if router.startswith("least-work") else r._score
        made.append(dict(zip(w.df["request_id"].to_list(), values.tolist())))
    assert made[0] == made[1]


@pytest.mark.parametrize("scoring, column", [("approx-score:tau=0.6", "score"), ("approx-po:tau=0.5", "po_estimate"),
                                             ("approx-class:bucket=10,tau=0.4", "predicted_length")])
def test_scoring_attaches_per_request(scoring, column):
    """(Bucket 10 at tau 0.4: reachable, so noise is drawn; at bucket 100 these lengths' ties put tau 0.55 out of
    reach and the perfect classifier, which has none, is used.)"""
    wl = _workload()
    scored, info = attach_scores(wl, scoring, seed=2)
    moved, moved_info = attach_scores(_shuffled(wl), scoring, seed=2)
    assert _by_id(moved.df, [column]).equals(_by_id(scored.df, [column]))
    assert moved_info == info


@pytest.mark.parametrize("policy, router", [("ltr:tau=0.6", "least-work:tau=0.6"), ("po", "least-work:tau=0.6"),
                                            ("class", "rank:tau=0.6"), ("fcfs", "round-robin"),
                                            ("fcfs", "random:seed=3")])
def test_a_row_shuffled_workload_routes_same_instant_arrivals_alike(policy, router):
    """Same-instant arrivals are routed by request id, not by row (round-robin sent them to other replicas too), and
    ``random``'s seeded draws go to the requests by id."""
    wl = _workload()
    assert _simulated(_shuffled(wl), policy, router).equals(_simulated(wl, policy, router))


def test_a_trace_file_sorted_another_way_simulates_alike(capsys, tmp_path):
    """The user's case: a ``.csv`` trace with its requests' ids, and the same file sorted by output length."""
    from cli_helpers import run_cli_fast

    rng = np.random.default_rng(1)
    n = 60
    df = pl.DataFrame({"request_id": np.arange(n) * 2 + 5, "arrival_time": np.round(rng.uniform(0, 1, n), 1),
                       "prompt_tokens": rng.integers(10, 300, n), "output_tokens": rng.integers(5, 600, n)})
    df.write_csv(tmp_path / "trace.csv")
    df.sort("output_tokens").write_csv(tmp_path / "sorted.csv")
    got = []
    for name in ("trace", "sorted"):
        r = run_cli_fast(capsys, "simulate", "-w", tmp_path / f"{name}.csv", "--policy", "ltr:tau=0.6", "--no-progress",
                         "--out", tmp_path / f"out-{name}")
        assert r.returncode == 0, r.stderr
        got.append(_by_id(pl.read_parquet(tmp_path / f"out-{name}" / "requests.parquet"),
                          ["first_token_time", "finish_time"]))
    assert got[0].equals(got[1])


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
@pytest.mark.parametrize("spec", ["ltr:tau=0.6", "po", "class"])
def test_the_engine_adapter_on_a_row_shuffled_workload_equals_the_simulator_on_the_original(spec):
    """The engine adapter prepares the same policies from the workload's columns (in its rows' order): the noise per
    request keeps it equal to the simulator whatever the rows' order (vLLM's V1 scheduler, emulated on the CPU)."""
    from ltrsched.engine.emulate import EngineConfig, emulate
    from test_engine_emulated import COMPARED

    wl = _workload()
    profile = LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=399)
    engine = emulate(_shuffled(wl), make_policy(spec), profile.step_time,
                     EngineConfig(num_gpu_blocks=400, max_num_batched_tokens=128, max_num_seqs=4))
    sim = simulate(wl, make_policy(spec), SimConfig(  # (test_engine_emulated._both's: vLLM V1's rules)
        profile=profile, max_num_batched_tokens=128, max_num_seqs=4, num_gpu_blocks=399, watermark=0.0,
        preemption="recompute", semantics="vllm-v1"))
    assert _by_id(engine.requests, COMPARED).equals(_by_id(sim.requests, COMPARED))
