"""A trace spanning a month (one request a day, simulated times up to 2.6e6 s) and every output one token: the
simulator jumps idle time (no steps while nothing is live), and times that far from 0 keep a request's metrics to
float64's precision there (an isolated request at day 29 is served as the one at day 0)."""

from __future__ import annotations

import numpy as np
import polars as pl

from conftest import make_workload
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster

DAY_S = 86_400.0


def test_a_month_of_isolated_requests_is_served_alike_and_idle_time_takes_no_steps():
    n, prompt, output = 31, 100, 20
    arrivals = np.arange(n) * (DAY_S + 0.123456789)  # the last at 2.59e6 s, fractions of a second on each
    result = simulate(make_workload([prompt] * n, [output] * n, arrivals), make_policy("fcfs"), SimConfig())
    req = result.requests
    assert result.summary["num_finished"] == n
    # one step per output token (prefill + first token, then decodes): no step in the 30 idle days
    assert result.summary["steps"] == n * output
    assert (req["queueing_delay"] == 0.0).all()
    for metric in ("ttft", "tpot", "e2e_latency", "max_waiting_time"):
        values = req[metric].to_numpy()
        # (float64 resolves 4.7e-10 s at 2.6e6 s: 20 steps of ~16 ms keep a relative error far under 1e-6)
        np.testing.assert_allclose(values, values[0], rtol=1e-6, err_msg=metric)
    assert req["ttft"].min() > 0


def test_one_token_outputs_have_null_tpot_and_gap_on_one_replica_and_on_a_cluster():
    n = 40
    workload = make_workload(np.arange(1, n + 1) * 7, [1] * n)
    single = simulate(workload, make_policy("fcfs"), SimConfig()).requests
    cluster = simulate_cluster(workload, make_policy("fcfs"), SimConfig(), replicas=2).requests
    for req in (single, cluster):
        assert req.height == n
        assert req["tpot"].null_count() == n and not req["tpot"].is_nan().any()
        assert req["max_token_gap"].null_count() == n
        # (one token: the wait is the TTFT, and the latency per token the e2e latency)
        assert req.select((pl.col("max_waiting_time") == pl.col("ttft")).all()).item()
        assert req.select((pl.col("latency_per_token") == pl.col("e2e_latency")).all()).item()
        assert (req["ttft"] > 0).all()
