"""Capacity's safe bounds from the runs serving each request alone: no request's E2E latency is below its TTFT served
alone plus, per later output token, the profile's lightest step and its own attention over its context (nor its
latency per token below that over its output tokens, its TPOT below that later part over its later tokens, its max
waiting time below its TTFT alone or its last token's step), whatever the load, so an SLO below the bound is `none` at
the first rate that misses it, where it halved 10 times before."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import polars as pl
import pytest

from conftest import make_workload
from ltrsched.experiments import capacity
from ltrsched.experiments.capacity import (ALONE_STEP_SLACK_S, WHOLE_OUTPUT, AloneBound, Slo, alone_bounds,
                                           later_tokens_attention_s, lightest_step_s, request_bounds, search_capacity,
                                           served_alone)
from ltrsched.experiments.runspec import RunSpec
from ltrsched.sim.profiles import load_profile
from test_capacity_floor import heavy_overheads

TEMPLATE = RunSpec("capacity", "s", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b",
                   num_requests=30, arrival="poisson")


@pytest.mark.parametrize("policy", ["fcfs", "srtf", "ltr:tau=0.62,starve=20,quantum=2", "mlfq", "po", "class"])
def test_no_requests_metric_under_load_is_below_its_bound_from_its_ttft_alone(tmp_path, policy):
    """Random prompts, outputs and arrivals, and four random configurations per policy (a token budget of 16 to 64,
    16 to 40 KV blocks, swaps or recomputes: a token after a recompute comes from a prefill step; paper or vllm-v1
    semantics; one unchunked), each on one of three profiles (one mostly overheads): every request's E2E latency,
    latency per token, max waiting time and TPOT is at least its bound (:func:`request_bounds`, as the search takes
    it). The bound is tight: served alone each metric's median is within 0.01% of it, and the bound of each context
    one token longer is above some request's metric served alone."""
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate

    rng = np.random.default_rng(zlib.crc32(policy.encode()))
    prompts, outputs = rng.integers(1, 120, 40), rng.integers(1, 60, 40)
    prompts[:2], outputs[:2] = (2, 3), (100, 90)  # (short prompts, long outputs: their longest wait is the last token)
    guesses = {"po_estimate": outputs * rng.uniform(0.5, 2, 40), "predicted_length": rng.integers(1, 60, 40)}
    loaded = make_workload(prompts, outputs, np.sort(rng.uniform(0, 0.3, 40)), **guesses)
    first = make_workload(prompts, np.ones(40, dtype=np.int64), np.arange(40) * 100.0, **guesses)
    whole = make_workload(prompts, outputs, np.arange(40) * 100.0, **guesses)
    extra = make_policy(policy).extra_output_tokens  # (po: 15)
    profiles = ["a100-llama3-8b", "cpu-llama-tiny", heavy_overheads(tmp_path)]
    for i in range(4):
        profile = profiles[i % 3]
        semantics = str(rng.choice(["paper", "vllm-v1"]))  # (vllm-v1 preempts by recompute)
        preemption = "recompute" if semantics == "vllm-v1" else str(rng.choice(["swap", "recompute"]))
        config = SimConfig(profile=profile, max_num_batched_tokens=int(rng.choice([16, 32, 64])),
                           num_gpu_blocks=int(rng.integers(16, 41)), preemption=preemption, semantics=semantics,
                           max_num_seqs=16)
        if i == 3:
            config = dataclasses.replace(config, max_num_batched_tokens=256, chunked_prefill=False)
        step = lightest_step_s(load_profile(profile))
        solo = simulate(first, make_policy("fcfs"), config).requests.sort("request_id")
        assert served_alone(solo)
        attention = (load_profile(profile).decode_attention_s_per_kv_token,
                     load_profile(profile).prefill_attention_s_per_pair)
        ttft = solo["ttft"].to_numpy()
        bounds = request_bounds(ttft, prompts, outputs, step, extra, attention)
        high = request_bounds(ttft, prompts + 1, outputs, step, extra, attention)  # (each context a token longer)
        load = simulate(loaded, make_policy(policy), config).requests.sort("request_id")
        alone = simulate(whole, make_policy(policy), config).requests.sort("request_id")
        for metric, bound in bounds.items():
            for run in (load, alone):
                values = run[metric].drop_nulls().to_numpy()  # (TPOT: none for a request of one token)
                assert len(values) == len(bound) and (values - bound).min() >= -1e-12, (config, metric)
            values = alone[metric].drop_nulls().to_numpy()
            assert np.median(values / bound) < 1.001, (config, metric)
            assert (values - high[metric]).min() < -1e-12, (config, metric)  # (one context token too high fails)
        assert (load["e2e_latency"].to_numpy() > 1.5 * bounds["e2e_latency"]).sum() > 10  # (the load is real)


def test_alone_bounds_are_the_mean_over_seeds_of_each_statistic_of_the_requests_bounds():
    step = 0.01
    seeds = [pl.DataFrame({"ttft": [0.02, 0.03, 0.015], WHOLE_OUTPUT: [1, 11, 3], "prompt_tokens": [5, 2, 100]}),
             pl.DataFrame({"ttft": [0.04, 0.02, 0.03], WHOLE_OUTPUT: [2, 1, 1], "prompt_tokens": [7, 1, 1]})]
    slos = [Slo("e2e_latency_mean", 1.0), Slo("latency_per_token_p90", 1.0), Slo("max_waiting_time_p50", 1.0),
            Slo("ttft_p90", 1.0), Slo("tpot_mean", 1.0), Slo("queueing_delay_p99", 1.0)]
    bounds = alone_bounds(slos, seeds, step, attention=(1e-4, 1e-5))
    assert set(bounds) == {"e2e_latency_mean", "latency_per_token_p90", "max_waiting_time_p50",
                           "tpot_mean"}  # (TTFT: exact)
    d = step - ALONE_STEP_SLACK_S

    # each later token at least d plus min(1e-4 c, 1e-5 c (c + 1) / 2) over its context c (the recompute's pairs are
    # the lesser below c = 19); requests of one token have no TPOT
    def attention(c):
        return min(1e-4 * c, 1e-5 * c * (c + 1) / 2)

    later = [np.array([0.0, 10 * d + sum(attention(c) for c in range(3, 13)), 2 * d + attention(101) + attention(102)]),
             np.array([d + attention(8), 0.0, 0.0])]
    e2e = [np.array([0.02, 0.03, 0.015]) + later[0], np.array([0.04, 0.02, 0.03]) + later[1]]
    lpt = [e2e[0] / [1, 11, 3], e2e[1] / [2, 1, 1]]
    tpot = [later[0][1:] / [10, 2], later[1][:1]]
    # (the third request of seed 0 waits longer for its last token, d + attention(102) = 0.0202 s, than for its first)
    wait = [np.array([0.02, 0.03, d + attention(102)]), np.array([0.04, 0.02, 0.03])]
    expected = {"e2e_latency_mean": (e2e[0].mean() + e2e[1].mean()) / 2,
                "latency_per_token_p90": (np.quantile(lpt[0], 0.9) + np.quantile(lpt[1], 0.9)) / 2,
                "max_waiting_time_p50": (np.median(wait[0]) + np.median(wait[1])) / 2,
                "tpot_mean": (tpot[0].mean() + tpot[1].mean()) / 2}
    assert expected["max_waiting_time_p50"] == pytest.approx((0.0202 + 0.03) / 2, abs=1e-7)
    for key, value in expected.items():  # (less the slack for rounding: 1e-6 s and 1e-6 of the value)
        assert value - 2e-6 <= bounds[key] < value and bounds[key] == pytest.approx(value, abs=1.1e-6, rel=1e-6)
    assert alone_bounds(slos, [], step) == {}


def test_an_e2e_slo_below_the_bound_is_none_at_the_first_rate_and_meetable_slos_find_the_same_capacity(tmp_path,
                                                                                                      monkeypatch):
    """lmsys-like, 30 requests, seed 0: P90 E2E latency 13.8 s at 4 req/s; each request's TTFT served alone plus the
    lightest step per later token gave a bound of 13.16 s, plus each later token's own attention over its context
    13.214 (served alone: 13.2141). 13.2 is `none` after one rate and the alone run, where with the lightest step alone
    it halved as without a bound. Limits each just above what the lowest rates give (P90 E2E latency 13.2142 s, P90
    latency per token 0.015956, P50 max waiting time 0.016073; bounds 13.21398, 0.0159543, 0.0160713) find the same
    capacity through the same rates as with the lightest step alone."""
    from ltrsched.experiments.runner import ProcessBackend

    meetable = [Slo("e2e_latency_p90", 13.2142), Slo("latency_per_token_p90", 0.015956),
                Slo("max_waiting_time_p50", 0.016073)]
    backend = ProcessBackend(1)
    try:
        (ruled,), _ = search_capacity([TEMPLATE], [Slo("e2e_latency_p90", 13.2)], [0], tmp_path, backend)
        (met,), _ = search_capacity([TEMPLATE], meetable, [0], tmp_path, backend, start_rate=0.008, tolerance=0.3)
        monkeypatch.setattr(capacity, "_attention_s", lambda template: (0.0, 0.0))  # (the lightest step alone)
        (before,), _ = search_capacity([TEMPLATE], [Slo("e2e_latency_p90", 13.2)], [0], tmp_path, backend)
        (plain,), _ = search_capacity([TEMPLATE], meetable, [0], tmp_path, backend, start_rate=0.008, tolerance=0.3)
    finally:
        backend.close()
    assert ruled.status == "none" and list(ruled.points) == [4.0] and isinstance(ruled.floor, AloneBound)
    assert ruled.floor.bound == pytest.approx(13.214, abs=0.001) and ruled.alone_bounds == {
        "e2e_latency_p90": ruled.floor.bound}
    assert str(ruled.floor) == (
        "e2e_latency_p90 13.8 > 13.2 at 4 req/s, and at every rate: ruled out by the bound from unloaded service, "
        "13.21 s: each request's ttft served alone plus, per later output token, 0.01586 s (the profile's lightest "
        "step) plus its own attention over its context (a decode's, or a recompute's if less) (no request's "
        "e2e_latency is below it under load)")
    assert before.alone_bounds["e2e_latency_p90"] == pytest.approx(13.16, abs=0.01)
    assert before.status == "none" and len(before.points) > 1 and not isinstance(before.floor, AloneBound)
    assert met.status == "found" and set(met.alone_bounds) == {s.metric for s in meetable}
    assert all(0.9998 * slo.limit < met.alone_bounds[slo.metric] < slo.limit for slo in meetable)  # (within 0.02%)
    assert (met.capacity, sorted(met.points)) == (plain.capacity, sorted(plain.points)) == (
        0.002, [0.002, 0.002378, 0.002828, 0.004, 0.008])


def test_a_tpot_slo_below_the_bound_is_none_at_the_first_rate_and_one_above_finds_the_same_capacity(tmp_path,
                                                                                                    monkeypatch):
    """lmsys-like, 30 requests, seed 0: the profile's lightest step is 0.01586 s (all TPOT had before a run); each
    request's later tokens at least that plus their own attention over their contexts gives P90 TPOT >= 0.01593 at
    every rate (served alone: 0.015929). 0.0159 is `none` after one rate and the alone run, where the extrapolating
    rule stopped it after 5 rates (4 down to 0.25 req/s); 0.01595 is above the bound, met at low rates: its capacity
    and rates are those without the bound."""
    from ltrsched.experiments.runner import ProcessBackend

    backend = ProcessBackend(1)
    try:
        (ruled,), _ = search_capacity([TEMPLATE], [Slo("tpot_p90", 0.0159)], [0], tmp_path, backend)
        (above,), _ = search_capacity([TEMPLATE], [Slo("tpot_p90", 0.01595)], [0], tmp_path, backend, start_rate=0.03,
                                      tolerance=0.3)
        monkeypatch.setattr(capacity, "_attention_s", lambda template: (0.0, 0.0))  # (the lightest step alone)
        (before,), _ = search_capacity([TEMPLATE], [Slo("tpot_p90", 0.0159)], [0], tmp_path, backend)
        (plain,), _ = search_capacity([TEMPLATE], [Slo("tpot_p90", 0.01595)], [0], tmp_path, backend, start_rate=0.03,
                                      tolerance=0.3)
    finally:
        backend.close()
    assert ruled.status == "none" and list(ruled.points) == [4.0] and isinstance(ruled.floor, AloneBound)
    assert ruled.floor.bound == pytest.approx(0.015928, abs=2e-6)
    assert str(ruled.floor) == (
        "tpot_p90 0.01681 > 0.0159 at 4 req/s, and at every rate: ruled out by the bound from unloaded service, "
        "0.01593 s/token: each later output token of a request at least 0.01586 s (the profile's lightest step) plus "
        "its own attention over its context (a decode's, or a recompute's if less) (no request's tpot is below it "
        "under load)")
    assert before.status == "none" and len(before.points) == 5 and not isinstance(before.floor, AloneBound)
    assert above.alone_bounds == ruled.alone_bounds and above.status == "found"
    assert (above.capacity, sorted(above.points)) == (plain.capacity, sorted(plain.points))
    assert above.capacity == pytest.approx(0.004459)


def test_later_tokens_attention_is_the_sum_of_the_lesser_of_decode_and_recompute_over_each_later_context():
    rng = np.random.default_rng(3)
    prompt, served = rng.integers(1, 300, 200), rng.integers(1, 200, 200)
    for d, q in ((1.40484e-07, 4.20103e-09), (6.2e-06, 5.8e-07), (1e-4, 1e-5), (1e-9, 1.0), (1e-7, 0.0), (1e-7, 1e-320)):
        expected = [sum(min(d * c, q * c * (c + 1) / 2) for c in range(p + 1, p + s)) for p, s in zip(prompt, served)]
        assert later_tokens_attention_s(prompt, served, d, q) == pytest.approx(expected, rel=1e-12, abs=1e-18)


def test_a_bound_below_the_limit_leaves_the_extrapolating_floor_rule_on():
    """Not exact: a bound at most the limit says nothing of whether a lower rate meets it (unlike TTFT's floor)."""
    from ltrsched.experiments.capacity import Search, evaluate

    slo = Slo("e2e_latency_p90", 1.0)
    search = Search(dataclasses.replace(TEMPLATE), 4.0, 0.05, 1024.0, unloaded={}, alone_bounds={slo.metric: 0.5})
    for _ in range(20):
        rate = search.next_rate
        if rate is None:
            break
        summary = {"e2e_latency_p90": 3.0, "queueing_delay_p90": 0.0, "tpot_p90": 0.02}
        search.record(evaluate([slo], rate, [summary], [{"e2e_latency_p90": 3.0}]))
    assert search.status == "none" and len(search.points) == 3 and search.floor is not None
    assert not isinstance(search.floor, AloneBound)


@pytest.mark.parametrize("timed", [dict(duration=5.0), dict(stop_time=100.0)])
def test_a_template_whose_runs_keep_only_some_requests_measures_no_floor_or_bound(timed):
    """With a duration (or a stop time) each rate's runs summarise another subset of the requests (lmsys-like, 30
    requests, duration 5 s: 14 at 4 req/s, 8 at 1), and the alone run served 1: its floor held of no run."""
    from ltrsched.experiments.capacity import Search, evaluate

    point = evaluate([Slo("ttft_p90", 0.01)], 4.0, [{"ttft_p90": 0.03, "queueing_delay_p90": 0.0, "tpot_p90": 0.02}])
    assert point.queue_free and not point.meets
    assert Search(TEMPLATE, 4.0, 0.05, 1024.0).needs_unloaded(point)
    assert not Search(dataclasses.replace(TEMPLATE, **timed), 4.0, 0.05, 1024.0).needs_unloaded(point)
