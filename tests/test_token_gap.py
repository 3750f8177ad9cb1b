"""``max_token_gap`` (the longest time between two consecutive output tokens [s]) is null for a request that generated
fewer than two tokens, in the simulator's results and the engine's alike (one rule: ltrsched.metrics.token_gap). It
was 0.0: a perfect stream claimed where there is no gap, diluting any mean or percentile of the column.
``max_waiting_time`` (max of TTFT and the gap) is unchanged: the TTFT alone there."""

from __future__ import annotations

import numpy as np
import polars as pl

from conftest import LinearProfile, make_workload
from ltrsched.metrics import request_metrics
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate


def _frame(**cols) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    base = {"request_id": np.arange(n), "arrival_time": np.zeros(n), "prompt_tokens": np.full(n, 10)}
    return pl.DataFrame({**base, **cols})


def test_the_gap_is_null_where_fewer_than_two_tokens_were_generated():
    """Rows: one token (finished), two tokens, five, one of five generated when a stop time ended the run, none yet,
    and a request the engine's table never saw (all null). Only the requests with two or more tokens keep a gap."""
    nan = float("nan")
    df = request_metrics(_frame(
        output_tokens=[1, 2, 5, 5, 5, 5], served_output_tokens=[1, 2, 5, 5, 5, None],
        generated_tokens=[1, 2, 5, 1, 0, None],
        first_scheduled_time=[0.1, 0.1, 0.1, 0.1, nan, None], first_token_time=[0.3, 0.3, 0.3, 0.3, nan, None],
        finish_time=[0.3, 0.5, 0.9, nan, nan, None], max_token_gap=[0.0, 0.2, 0.25, 0.0, 0.0, None]))
    assert df["max_token_gap"].to_list() == [None, 0.2, 0.25, None, None, None]
    assert df["max_token_gap"].dtype == pl.Float64
    wait = df["max_waiting_time"].to_list()  # max(ttft, gap), as with the 0.0 gaps: ttft alone without a gap
    assert wait[:4] == [0.3, 0.3, 0.3, 0.3] and np.isnan(wait[4]) and wait[5] is None
    assert df["tpot"].to_list()[:2] == [None, 0.2]  # (TPOT's rule alike: undefined for one token)


def test_without_generated_tokens_the_served_or_the_workloads_length_decides():
    """A table of finished requests without ``generated_tokens`` (an older requests.parquet read back, capacity's
    service summary): the served length decides, else the workload's."""
    cols = dict(first_scheduled_time=[0.0, 0.0], first_token_time=[0.1, 0.1], finish_time=[0.1, 0.4],
                max_token_gap=[0.0, 0.3])
    served = request_metrics(_frame(output_tokens=[1, 1], served_output_tokens=[1, 16], **cols))
    assert served["max_token_gap"].to_list() == [None, 0.3]
    workload = request_metrics(_frame(output_tokens=[1, 3], **cols))
    assert workload["max_token_gap"].to_list() == [None, 0.3]
    again = request_metrics(workload)  # (idempotent: capacity recomputes the metrics of a run's requests)
    assert again["max_token_gap"].to_list() == [None, 0.3]


def test_the_simulators_one_token_requests_have_no_gap_and_the_others_theirs():
    """Simulated: null exactly for the one-token requests, a positive gap for the others (the two-token one's is the
    time between its two tokens), the max waiting time of a one-token request its TTFT; under PO (15 estimate tokens
    more per request) every request generates more than one token and keeps its gap."""
    wl = make_workload([10, 20, 30, 5], [1, 2, 5, 1], [0.0, 0.0, 0.01, 0.02])
    run = simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), max_num_seqs=2))
    r = run.requests.sort("request_id")
    gap = r["max_token_gap"]
    assert gap.is_null().to_list() == [True, False, False, True]
    assert gap[1] == r["finish_time"][1] - r["first_token_time"][1] and gap[2] > 0
    assert r["max_waiting_time"][0] == r["ttft"][0] and r["max_waiting_time"][3] == r["ttft"][3]
    po = simulate(wl, make_policy("po"), SimConfig(profile=LinearProfile(), max_num_seqs=2)).requests
    assert po["max_token_gap"].null_count() == 0 and (po["max_token_gap"] > 0).all()


def test_a_clusters_one_token_requests_have_no_gap():
    """The cluster's results go through the same rule (two replicas, round robin)."""
    from ltrsched.sim.cluster import simulate_cluster

    wl = make_workload([10, 10, 10, 10], [1, 3, 1, 3])
    run = simulate_cluster(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile()), replicas=2)
    r = run.requests.sort("request_id")
    assert r["max_token_gap"].is_null().to_list() == [True, False, True, False]


def test_the_golden_grids_gaps_as_zero_hash_is_the_hash_of_the_old_rule(monkeypatch):
    """``benchmarks/golden_grid.py --gaps-as-zero`` proves a change only made one-token requests' gaps null: a run's
    hash with its nulls as 0.0 is the hash of the same run under the old rule (the gap kept as the host wrote it),
    and the plain hashes differ (the grid's one-token requests)."""
    import importlib.util
    from pathlib import Path

    from ltrsched import metrics

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "golden_grid.py"
    spec = importlib.util.spec_from_file_location("golden_grid_for_test", path)
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    wl = grid.with_short_outputs(make_workload([10, 20, 30, 5, 7, 9], [6, 7, 5, 8, 9, 4]), 4)
    assert wl.df["output_tokens"].to_list() == [1, 2, 5, 8, 1, 2]

    def run():
        return simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), max_num_seqs=2, record_steps=True))

    new = run()
    monkeypatch.setattr(metrics, "token_gap", lambda columns: pl.col("max_token_gap"))
    old = run()
    assert old.requests["max_token_gap"].null_count() == 0 and new.requests["max_token_gap"].null_count() == 2
    assert grid.run_hash(new, gaps_as_zero=True) == grid.run_hash(old) != grid.run_hash(new)
