"""Capacity's lower bound from the profile alone: an SLO below the profile's lightest step (one token of one sequence)
is `none` before any run, with its reason on stderr and in capacity.md; the bound is at most every latency a
simulation gives (chunked prefill, preemption, overheads), and an SLO just above it searches as without the rule."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cli_helpers import run_cli_fast
from conftest import make_workload
from ltrsched.experiments import capacity
from ltrsched.experiments.capacity import Slo, lightest_step_s, search_capacity, slo_bound
from ltrsched.experiments.runspec import RunSpec
from ltrsched.sim.profiles import load_profile

TEMPLATE = RunSpec("capacity", "s", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b",
                   num_requests=30, arrival="poisson")
#: The metrics the bound covers; each per request as the simulator's requests.parquet holds it.
BOUNDED = ("ttft", "tpot", "e2e_latency", "latency_per_token", "max_waiting_time")


def heavy_overheads(tmp_path):
    """A profile file whose lightest step is mostly CPU overhead and sampling (a flat table below 64 tokens)."""
    import ltrsched.sim.profiles

    data = json.loads((Path(ltrsched.sim.profiles.__file__).parent / "cpu-llama-tiny.json").read_text())
    data["name"], data["overhead_s_per_step"], data["overhead_s_per_seq"] = "heavy", 0.004, 0.001
    path = tmp_path / "heavy.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("policy", ["fcfs", "srtf", "mlfq"])
def test_the_lightest_step_is_at_most_every_simulated_latency(tmp_path, policy):
    """Chunked prefill (a 16-token budget splits every prompt), preemption (few KV blocks), short and long requests,
    one-token prompts and outputs, on three profiles: no request's latency is below the bound."""
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate

    rng = np.random.default_rng(1)
    prompts = np.r_[1, 1, rng.integers(1, 200, 38)]
    outputs = np.r_[1, 2, rng.integers(1, 60, 38)]
    workload = make_workload(prompts, outputs, np.sort(rng.uniform(0, 0.5, 40)))
    for profile in ("a100-llama3-8b", "cpu-llama-tiny", heavy_overheads(tmp_path)):
        step = lightest_step_s(load_profile(profile))
        for config in (SimConfig(profile=profile, max_num_batched_tokens=16, num_gpu_blocks=40),
                       SimConfig(profile=profile, preemption="recompute", num_gpu_blocks=30, max_num_seqs=4)):
            requests = simulate(workload, make_policy(policy), config).requests
            for metric in BOUNDED:
                values = requests[metric].drop_nulls().drop_nans()
                assert values.len() > 0 and values.min() >= step, (profile, config, metric, values.min(), step)
            # the bound is close: some TPOT is a lone decode's step, within a few percent of it
            assert requests["tpot"].drop_nulls().min() < 1.1 * step


def test_slo_bound_rules_out_below_the_lightest_step_only():
    step = lightest_step_s(load_profile("a100-llama3-8b"))
    assert step == pytest.approx(0.01586158)
    for metric in ("ttft_p90", "tpot_mean", "e2e_latency_p50", "latency_per_token_mean", "max_waiting_time_p99"):
        below = slo_bound(TEMPLATE, [Slo("queueing_delay_p90", 1e-9), Slo(metric, 0.999 * step)])
        assert (below.metric, below.limit, below.bound) == (metric, 0.999 * step, step)
        for limit in (step, 1.001 * step):
            assert slo_bound(TEMPLATE, [Slo(metric, limit)]) is None
    # the queueing delay has no bound (a request may start at once), nor does a profile that cannot be read
    assert slo_bound(TEMPLATE, [Slo("queueing_delay_p90", 1e-9)]) is None
    assert slo_bound(dataclasses.replace(TEMPLATE, profile="no-such"), [Slo("ttft_p90", 1e-9)]) is None


def test_a_profile_whose_step_time_is_not_monotone_gets_no_bound():
    profile = load_profile("a100-llama3-8b")
    assert lightest_step_s(dataclasses.replace(profile, overhead_s_per_seq=-1e-3)) is None
    ys = profile.non_attention_s
    assert lightest_step_s(dataclasses.replace(profile, non_attention_s=(ys[0] * 2, *ys[1:]))) is None
    assert lightest_step_s(object()) is None


@pytest.mark.parametrize("slo", ["latency_per_token_mean=0.0165", "ttft_p90=0.0159"])
def test_an_slo_just_above_the_bound_searches_as_without_the_rule(tmp_path, monkeypatch, slo):
    """0.0165 s per token: found at about 1.2 req/s, 4% above the bound; 0.0159 s TTFT: none, 0.3% above it, by the
    floor of unloaded service at the first rate (the runs serving each request alone give 0.0202 s; it took a few
    rates when the floor was extrapolated). Both as the search without the bound (same rates, same answer)."""
    from ltrsched.experiments.capacity import parse_slo
    from ltrsched.experiments.runner import ProcessBackend

    slos = [parse_slo(slo)]
    backend = ProcessBackend(1)
    try:
        (ruled,), _ = search_capacity([TEMPLATE], slos, [0], tmp_path, backend, start_rate=1.0, tolerance=0.2)
        monkeypatch.setattr(capacity, "slo_bound", lambda template, slos: None)
        (plain,), stats = search_capacity([TEMPLATE], slos, [0], tmp_path, backend, start_rate=1.0, tolerance=0.2)
    finally:
        backend.close()
    assert ruled.bound is None and len(stats.ran) == 0  # (the second search reused every run of the first)
    assert (ruled.status, ruled.capacity, sorted(ruled.points)) == (plain.status, plain.capacity, sorted(plain.points))
    assert ruled.status == ("found" if slo.startswith("latency") else "none")
    assert len(ruled.points) >= 2 if slo.startswith("latency") else (list(ruled.points) == [1.0] and ruled.floor)


@pytest.mark.filterwarnings("error")
def test_an_slo_below_the_bound_is_none_without_a_run(tmp_path, capsys):
    """ttft_p90=0.001 ran 2 rates per policy (43.5 s of CPU for capacity --quick) before the floor of unloaded
    latency said none; the profile's lightest step (0.0159 s) says so before any run."""
    workload = tmp_path / "w.parquet"  # (lmsys-like's sampling: 3 s of a loaded machine's CPU)
    make_workload([20, 300, 5], [30, 2, 100], [0.0, 0.1, 0.2]).save(workload)
    out = tmp_path / "cap"
    r = run_cli_fast(capsys, "capacity", "-w", str(workload), "-n", "3", "--seeds", "1", "-p", "fcfs", "-p", "srtf",
                     "--slo", "ttft_p90=0.001", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    reason = ("ttft_p90 > 0.001 at every rate: ruled out by the bound, without running; no request's ttft is below "
              "the 0.01586 s of profile a100-llama3-8b's lightest step (one token of one sequence)")
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("capacity: ")]
    assert lines == [f"capacity: policy {p} on a100-llama3-8b: none; {reason}" for p in ("fcfs", "srtf")]
    assert "0 runs simulated, 0 reused" in r.stdout and not (out / "runs").exists()
    table = pl.read_csv(out / "capacity.csv")
    assert table["status"].to_list() == ["none"] * 2 and table["rates_tried"].to_list() == [0, 0]
    md = (out / "capacity.md").read_text()
    assert f"- policy fcfs, profile a100-llama3-8b: none; {reason}\n" in md
    assert (out / "capacity-rates.csv").read_text() == "policy,profile,rate,ttft_p90,meets_slos,note,run_hashes\n"
    # (a log axis of no rate: a ValueError traceback)
    assert (out / "figures" / "capacity-ttft_p90.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.filterwarnings("error")
def test_a_search_ruled_out_beside_one_that_ran_is_named_so_in_the_legend(tmp_path, monkeypatch):
    """Its line has no point (no rate ran): the legend entry alone said nothing of why."""
    from ltrsched import atomic
    from ltrsched.experiments.capacity import Bound, Search, evaluate
    from ltrsched.experiments.capacity_report import capacity_figures, none_notes, rates_table

    slos = [Slo("ttft_p90", 1.0)]
    ran = Search(TEMPLATE, start_rate=1.0, tolerance=0.05, max_rate=4.0)
    for rate in (1.0, 2.0):
        ran.points[rate] = evaluate(slos, rate, [{"ttft_p90": rate / 1.5}])
    ran.low, ran.high, ran.done = 1.0, 2.0, True
    ruled = Search(dataclasses.replace(TEMPLATE, policy="srtf"), start_rate=1.0, tolerance=0.05, max_rate=4.0)
    ruled.rule_out(Bound("ttft_p90", 0.001, 0.0159, "a100-llama3-8b"))
    legends, write = [], atomic.write_figure
    monkeypatch.setattr(atomic, "write_figure", lambda path, fig, **kw: legends.append(
        [t.get_text() for t in fig.axes[0].get_legend().get_texts()]) or write(path, fig, **kw))
    capacity_figures([ran, ruled], slos, tmp_path)
    assert legends == [["fcfs", "srtf (none: ruled out by the bound)", "SLO ttft_p90 = 1"]]
    assert rates_table([ran, ruled], slos)["policy"].to_list() == ["fcfs", "fcfs"]
    assert none_notes([ran, ruled]) == [f"policy srtf, profile a100-llama3-8b: none; {ruled.bound}"]


def test_a_ttft_slo_that_a_lower_rate_meets_is_found_not_ruled_out_by_the_floor(tmp_path):
    """`capacity -w lmsys-like -n 30 --seeds 1 -p fcfs --slo 'ttft_p90<=0.032'` ended at none after 4 and 2 req/s
    (P90 TTFT 0.0343 and 0.0344 s: one halving that gained nothing), though `simulate --rate 1` (same seed) gives
    0.0315: the P90 queueing delay, 0.0155 s at 2 req/s, fades at once, not on the convex curve the floor rule
    extrapolates. Without it, and with two halvings' gains, the search finds about 1.5 req/s."""
    from ltrsched.experiments.capacity import parse_slo
    from ltrsched.experiments.runner import ProcessBackend, load_summary

    backend = ProcessBackend(1)
    try:
        (s,), _ = search_capacity([TEMPLATE], [parse_slo("ttft_p90<=0.032")], [0], tmp_path, backend, start_rate=4.0)
    finally:
        backend.close()
    assert s.floor is None and s.status == "found" and 1.0 <= s.capacity < s.high <= 2.0
    assert s.points[2.0].queue_free and not s.points[2.0].meets and s.points[1.0].meets  # (the rule applied)
    at_1 = load_summary(tmp_path, capacity.specs_at(TEMPLATE, 1.0, [0])[0])
    assert at_1["ttft_p90"] == pytest.approx(0.0315, abs=5e-4)


def test_the_service_summary_is_each_metric_from_first_scheduling_at_the_low_end_of_its_noise():
    from ltrsched.experiments.capacity import NOISE_SIGMAS, service_summary
    from ltrsched.metrics import request_metrics

    rng = np.random.default_rng(0)
    n = 50
    arrival = np.sort(rng.uniform(0, 10, n))
    scheduled = arrival + rng.exponential(0.05, n)
    first = scheduled + rng.uniform(0.02, 0.04, n)
    requests = request_metrics(pl.DataFrame({
        "request_id": np.arange(n), "arrival_time": arrival, "prompt_tokens": np.full(n, 100),
        "output_tokens": np.full(n, 10), "first_scheduled_time": scheduled, "first_token_time": first,
        "finish_time": first + 0.2, "max_token_gap": np.full(n, 0.025)}))
    s = service_summary(requests)
    service = first - scheduled  # each request's TTFT less its own queueing delay
    assert s["ttft_mean"] == pytest.approx(service.mean() - NOISE_SIGMAS * service.std() / np.sqrt(n))
    assert s["ttft_p90"] == pytest.approx(np.quantile(service, 0.9 - NOISE_SIGMAS * np.sqrt(0.09 / n)))
    assert s["e2e_latency_p50"] == pytest.approx(np.quantile(service + 0.2, 0.5 - NOISE_SIGMAS * np.sqrt(0.25 / n)))
    assert s["tpot_mean"] == pytest.approx(0.2 / 9)  # (no queueing in it, no spread)
    assert "queueing_delay_mean" not in s and s["ttft_p90"] < requests["ttft"].quantile(0.9)
