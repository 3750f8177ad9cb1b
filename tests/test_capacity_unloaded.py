"""Capacity's exact floor of unloaded service: each request's TTFT at any rate is at least its TTFT served alone, so
an SLO on a TTFT statistic above what the alone runs give is `none` at the first rate that misses it (no halving), and
one below it keeps halving (the extrapolating floor rule no longer guesses for TTFT)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import make_workload
from ltrsched.experiments.capacity import (MAX_HALVINGS, Search, Slo, UnloadedFloor, alone_specs, search_capacity,
                                           served_alone, unloaded_floor)
from ltrsched.experiments.runner import load_requests, open_backend
from ltrsched.experiments.runspec import RunSpec

TEMPLATE = RunSpec("capacity", "s", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b",
                   num_requests=30, arrival="poisson")


@pytest.mark.parametrize("policy", ["fcfs", "srtf", "ltr:tau=0.62,starve=20,quantum=2", "mlfq", "po", "class"])
def test_each_requests_ttft_under_load_is_at_least_its_ttft_served_alone(policy):
    """The property the floor rests on (capacity.UNLOADED_METRICS), where it is hardest: a 32-token budget cuts
    prompts into chunks that differ under load, few KV blocks preempt (swap and recompute), vllm-v1 and unchunked."""
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate

    rng = np.random.default_rng(3)
    prompts, outputs = rng.integers(1, 120, 40), rng.integers(1, 40, 40)
    guesses = {"po_estimate": outputs * rng.uniform(0.5, 2, 40), "predicted_length": rng.integers(1, 40, 40)}
    loaded = make_workload(prompts, outputs, np.sort(rng.uniform(0, 0.3, 40)), **guesses)
    alone = make_workload(prompts, outputs, np.arange(40) * 100.0, **guesses)
    for config in (SimConfig(max_num_batched_tokens=32, num_gpu_blocks=24),
                   SimConfig(max_num_batched_tokens=32, num_gpu_blocks=24, preemption="recompute"),
                   SimConfig(max_num_batched_tokens=32, num_gpu_blocks=24, preemption="recompute", max_num_seqs=32,
                             semantics="vllm-v1"),
                   SimConfig(max_num_batched_tokens=256, chunked_prefill=False, num_gpu_blocks=24)):
        solo = simulate(alone, make_policy(policy), config).requests.sort("request_id")
        assert served_alone(solo)
        load = simulate(loaded, make_policy(policy), config).requests.sort("request_id")
        # (up to the rounding of clock readings: the floor subtracts capacity.BOUND_SLACK_S, 1e-6 s)
        assert (load["ttft"] >= solo["ttft"] - 1e-12).all(), (config, (load["ttft"] - solo["ttft"]).min())
        assert (load["ttft"] > solo["ttft"]).sum() > 10  # (the load is real)


def test_served_alone_needs_each_arrival_after_the_finish_before_it():
    df = pl.DataFrame({"arrival_time": [0.0, 10.0, 20.0], "first_scheduled_time": [0.0, 10.0, 20.0],
                       "finish_time": [5.0, 15.0, 25.0]})
    assert served_alone(df)
    assert not served_alone(df.with_columns(finish_time=pl.Series([5.0, 21.0, 25.0])))  # an overlap
    assert not served_alone(df.with_columns(first_scheduled_time=pl.Series([0.0, 10.5, 20.0])))  # a wait


def test_unloaded_floor_is_the_mean_over_seeds_of_the_alone_statistic_on_ttft_only():
    slos = [Slo("ttft_p90", 0.02), Slo("tpot_p90", 0.02), Slo("queueing_delay_p90", 0.1), Slo("ttft_mean", 0.02)]
    floor = unloaded_floor(slos, [{"ttft_p90": 0.022, "tpot_p90": 0.03, "ttft_mean": 0.019},
                                  {"ttft_p90": 0.024, "tpot_p90": 0.03, "ttft_mean": None}])
    assert floor == {"ttft_p90": pytest.approx(0.023 * (1 - 1e-6) - 1e-6, abs=1e-15)}


def drive(search: Search, ttft) -> Search:
    """Run a search against a P90 TTFT of ``ttft(rate)`` on queue-free runs whose service is the metric itself (the
    extrapolating floor rule stops a flat metric after three rates)."""
    slo = Slo("ttft_p90", 0.001)
    for _ in range(50):
        rate = search.next_rate
        if rate is None:
            return search
        from ltrsched.experiments.capacity import evaluate

        summary = {"ttft_p90": ttft(rate), "queueing_delay_p90": 0.0, "tpot_p90": 0.02}
        search.record(evaluate([slo], rate, [summary], [{"ttft_p90": ttft(rate)}]))
    raise AssertionError("the search did not end")


def test_an_exact_floor_above_the_limit_ends_at_the_first_rate_and_one_below_keeps_halving():
    above = Search(TEMPLATE, 4.0, 0.05, 1024.0, unloaded={"ttft_p90": 0.002})
    drive(above, lambda r: 0.03)
    assert above.status == "none" and list(above.points) == [4.0] and isinstance(above.floor, UnloadedFloor)
    assert (above.floor.bound, above.floor.limit, above.floor.value) == (0.002, 0.001, 0.03)
    # the extrapolation would call this flat metric's floor after three rates; the exact floor says a low enough
    # rate meets it, so the search halves to its end
    below = Search(TEMPLATE, 4.0, 0.05, 1024.0, unloaded={"ttft_p90": 0.0009})
    drive(below, lambda r: 0.03)
    assert below.status == "none" and below.floor is None and len(below.points) == MAX_HALVINGS + 1
    guessed = drive(Search(TEMPLATE, 4.0, 0.05, 1024.0), lambda r: 0.03)
    assert len(guessed.points) == 3 and guessed.floor is not None


def test_an_slo_below_the_unloaded_ttft_is_none_after_one_rate_and_the_policies_share_one_alone_run(tmp_path,
                                                                                                     monkeypatch):
    """lmsys-like, 30 requests, seed 0: P90 TTFT 0.0344 s at 4 req/s, 0.0222 s at 0.0156 req/s; served alone its
    requests give 0.0202 s, so 0.018 (above the lightest step, 0.0159 s) is ruled out at once: one rate, and one run
    serving each request alone up to its first token, for both policies (a request's TTFT alone is the same under
    each), simulated here and not cached (a rerun reuses the rate's runs and serves the alone run again)."""
    import dataclasses

    from ltrsched.experiments import capacity

    served, first_tokens_alone = [], capacity.first_tokens_alone
    monkeypatch.setattr(capacity, "first_tokens_alone", lambda spec: served.append(spec) or first_tokens_alone(spec))
    templates = [TEMPLATE, dataclasses.replace(TEMPLATE, policy="ltr:tau=0.62")]
    with open_backend("process", jobs=1) as backend:
        (s, ltr), stats = search_capacity(templates, [Slo("ttft_p90", 0.018)], [0], tmp_path, backend)
        assert s.status == ltr.status == "none" and list(s.points) == list(ltr.points) == [4.0]
        assert isinstance(s.floor, UnloadedFloor) and s.floor.bound == ltr.floor.bound
        assert len(stats.ran) == 2 and 0.018 < s.floor.bound < s.floor.value
        # (before: one run per policy, serving every output token)
        assert served == alone_specs(TEMPLATE, [0]) == alone_specs(templates[1], [0])
        assert str(s.floor).startswith("ttft_p90 0.03426 > 0.018 at 4 req/s, and at every rate: ruled out by the "
                                       "floor of unloaded service, ")
        again, stats = search_capacity(templates, [Slo("ttft_p90", 0.018)], [0], tmp_path, backend)
        assert not stats.ran and len(stats.skipped) == 2 and again[0].floor == s.floor and len(served) == 2
    from ltrsched.experiments.capacity_report import capacity_table, none_notes

    assert capacity_table([s], 1)["runs"].to_list() == [2]  # (it said 1: the alone run uncounted)
    assert none_notes([s]) == [f"policy fcfs, profile a100-llama3-8b: none; {s.floor}"]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_alone_runs_serve_the_same_requests_as_the_searchs_runs_of_that_seed(seed):
    """The floor is per request: it holds only if the alone run of a seed draws the very requests (ids, prompt and
    output tokens) that the search's Poisson runs of that seed serve, whatever the arrival process."""
    import dataclasses

    from ltrsched.experiments.runner import build_workload

    columns = ["request_id", "prompt_tokens", "output_tokens"]
    searched = build_workload(dataclasses.replace(TEMPLATE, rate=2.0, seed=seed)).df.sort("request_id")
    alone = build_workload(alone_specs(TEMPLATE, [seed])[0]).df.sort("request_id")
    assert searched.select(columns).equals(alone.select(columns))
    assert served_alone(alone.with_columns(finish_time=pl.col("arrival_time") + 1.0,
                                           first_scheduled_time=pl.col("arrival_time")))


#: Configurations whose alone runs serve to each request's first token only: (seed, the template's fields) for
#: chunks of a small budget, no chunking with recompute, a policy adding output tokens (po), scores from the outputs
#: (ltr:tau, approx-score) and from a router (rank), MLFQ's quanta, clusters whose router reads state or scores, a
#: block size of 128 on another profile; "long" is a file of 400 requests, prompts up to 6,000 tokens (several
#: chunks of 768) and outputs up to 600 (lmsys-like's prompts fit one chunk; sharegpt took 6 s to load).
ALONE_CASES = {
    "lmsys-like fcfs": (0, dict(workload="lmsys-like", policy="fcfs")),
    "long ltr:tau, 64-token budget": (1, dict(workload="long", policy="ltr:tau=0.62", max_num_batched_tokens=64)),
    "long po, recompute, unchunked": (0, dict(workload="long", policy="po", preemption="recompute",
                                              chunked_prefill=False, max_num_batched_tokens=8192)),
    "lmsys-like mlfq, cpu-llama-tiny": (1, dict(workload="lmsys-like", policy="mlfq", profile="cpu-llama-tiny",
                                                max_num_batched_tokens=32, max_model_len=8192)),
    "long ltr starve, scored, 2 replicas least-kv": (0, dict(
        workload="long", policy="ltr:starve=20,quantum=2", scoring="approx-score:tau=0.6", replicas=2,
        router="least-kv", max_num_seqs=8)),
    "lmsys-like srtf, 3 replicas rank": (1, dict(workload="lmsys-like", policy="srtf", replicas=3,
                                                 router="rank:tau=0.5", block_size=32, max_num_batched_tokens=100)),
    "long fcfs, 768-token budget": (1, dict(workload="long", policy="fcfs")),
}


@pytest.fixture(scope="module")
def long_workload(tmp_path_factory) -> str:
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("alone") / "long.parquet"
    make_workload(rng.integers(1, 6000, 400), rng.integers(1, 600, 400)).save(path)
    return str(path)


@pytest.mark.parametrize("case", list(ALONE_CASES))
def test_serving_to_the_first_token_gives_every_requests_ttft_alone_to_the_bit(tmp_path, case, long_workload):
    """first_tokens_alone (FCFS, one replica, every output cut to one token) against the run that served each
    request alone before it (the template's policy, scoring and router, whole outputs): each request's TTFT, the
    summary's TTFT statistics and so the floors are the same floats, in a few steps per request (its prompt's
    chunks) instead of one more per output token."""
    import dataclasses
    import math

    from polars.testing import assert_series_equal

    from ltrsched.experiments.capacity import first_tokens_alone
    from ltrsched.experiments.runner import execute_run

    seed, fields = ALONE_CASES[case]
    fields = {**fields, "workload": long_workload if fields["workload"] == "long" else fields["workload"]}
    template = RunSpec("capacity", "s", "x", **{"profile": "a100-llama3-8b", "num_requests": 40,
                                                 "arrival": "poisson", **fields})
    (spec,) = alone_specs(template, [seed])
    before = dataclasses.replace(spec, policy=template.policy, scoring=template.scoring, replicas=template.replicas,
                                 router=template.router)
    whole = execute_run(before, tmp_path)
    ran = load_requests(tmp_path, before).sort("request_id")
    first = first_tokens_alone(spec)
    now = first.requests.sort("request_id")
    assert served_alone(ran) and served_alone(now)
    assert_series_equal(now["ttft"], ran["ttft"], check_exact=True)
    assert (ran["output_tokens"] > 1).sum() > 30 and (now["generated_tokens"] == 1).all()
    stats = [f"ttft_{q}" for q in ("mean", "p50", "p90", "p99")]
    assert {k: first.summary[k] for k in stats} == {k: whole[k] for k in stats}
    slos = [Slo(k, 1.0) for k in stats]
    assert unloaded_floor(slos, [first.summary]) == unloaded_floor(slos, [whole])
    budget = spec.max_num_batched_tokens if spec.chunked_prefill else math.inf
    prefill_steps = sum(max(1, math.ceil(p / budget)) for p in now["prompt_tokens"].to_list())
    assert first.summary["steps"] == prefill_steps < whole["steps"] // 3
