"""Capacity search (issue 15, item 2): the bracketing-and-bisection logic on known curves, one-line errors
for bad input, and an end-to-end search whose answer is checked against its own cached runs."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import polars as pl
import pytest

from ltrsched.experiments.capacity import Search, Slo, evaluate, parse_slo, round_rate, specs_at
from ltrsched.experiments.runspec import RunSpec

TEMPLATE = RunSpec("capacity", "s", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b",
                   num_requests=300, arrival="poisson")


def run_cli(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "ltrsched.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def assert_one_line_error(r, message):
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr[-2000:]


def drive(search: Search, metric) -> Search:
    """Run a search against ``metric(rate)`` (one seed) until it is done."""
    slo = Slo("ttft_p90", 1.0)
    for _ in range(200):
        rate = search.next_rate
        if rate is None:
            return search
        search.record(evaluate([slo], rate, [{"ttft_p90": metric(rate)}]))
    raise AssertionError("the search did not end")


@pytest.mark.parametrize("threshold", [0.37, 3.0, 13.3, 20.0, 100.0, 777.0])
@pytest.mark.parametrize("tolerance", [0.02, 0.05, 0.2])
def test_the_search_brackets_a_monotone_threshold_within_its_tolerance(threshold, tolerance):
    s = drive(Search(TEMPLATE, start_rate=4.0, tolerance=tolerance, max_rate=1024.0), lambda r: r / threshold)
    assert s.status == "found"
    assert s.low <= threshold < s.high and s.high / s.low <= 1 + tolerance
    assert s.points[s.low].meets and not s.points[s.high].meets
    assert s.capacity == s.low
    assert all(p.meets == (r <= threshold) for r, p in s.points.items())
    assert len(s.points) <= 2 + abs(math.log2(threshold / 4)) + math.log2(math.log(4) / math.log1p(tolerance)) + 1


def test_a_search_that_never_fails_stops_at_max_rate_and_one_that_never_meets_reports_none():
    up = drive(Search(TEMPLATE, start_rate=4.0, tolerance=0.05, max_rate=100.0), lambda r: 0.0)
    assert up.status == "above max" and up.capacity == 100.0 and up.high is None
    assert sorted(up.points) == [4.0, 8.0, 16.0, 32.0, 64.0, 100.0]
    down = drive(Search(TEMPLATE, start_rate=4.0, tolerance=0.05, max_rate=100.0), lambda r: 2.0)
    assert down.status == "none" and down.capacity is None
    assert min(down.points) == pytest.approx(4.0 / 1024, rel=1e-3)


@pytest.mark.parametrize("max_rate, top", [(1000.4, 1000.0), (1000.6, 1001.0), (33.33333, 33.33)])
def test_a_max_rate_of_more_than_4_digits_ends_the_search_at_its_rounding(max_rate, top):
    """--max-rate 1000.4: the search tried 1000 (its rounding), which met the SLOs and was below 1000.4, so it tried
    1000 again, for ever (capacity hung, its runs all cached)."""
    up = drive(Search(TEMPLATE, start_rate=4.0, tolerance=0.05, max_rate=max_rate), lambda r: 0.0)
    assert up.status == "above max" and up.capacity == top


def test_halving_stops_where_a_runs_arrivals_would_outlast_the_arrival_bound():
    # from a tiny start rate, halvings reached rates whose runs' arrivals span beyond 1e8 s: a one-line error
    # from the workload, after other runs had been done
    from ltrsched.experiments.capacity import min_rate

    floor = min_rate(TEMPLATE.num_requests)
    down = drive(Search(TEMPLATE, start_rate=3 * floor, tolerance=0.05, max_rate=100.0), lambda r: 2.0)
    assert down.status == "none" and min(down.points) >= floor and len(down.points) == 2


def test_a_start_rate_below_the_floor_is_refused_before_any_run(tmp_path):
    r = run_cli("capacity", "--slo", "ttft_p90=2", "--quick", "-n", "100", "--policy", "fcfs", "--start-rate", "1e-6",
                "--out", str(tmp_path / "c"))
    assert_one_line_error(r, "--start-rate 1e-06 req/s spreads a run's 100 requests over about 1e+08 s; give at least 1e-05")
    assert not (tmp_path / "c" / "runs").exists()


def test_a_rate_meets_an_slo_by_the_mean_over_seeds():
    slos = [Slo("ttft_p90", 2.0), Slo("tpot_p90", 0.1)]
    p = evaluate(slos, 8.0, [{"ttft_p90": 1.0, "tpot_p90": 0.05}, {"ttft_p90": 2.9, "tpot_p90": 0.05}])
    assert p.means["ttft_p90"] == pytest.approx(1.95) and p.meets  # one seed above the limit, the mean below
    p = evaluate(slos, 8.0, [{"ttft_p90": 1.0, "tpot_p90": 0.05}, {"ttft_p90": 3.1}])  # a metric missing: late
    assert p.violated == ("ttft_p90", "tpot_p90")


def test_the_search_varies_only_rate_and_seed():
    template = dataclasses.replace(TEMPLATE, max_num_seqs=8, scoring="approx-score:tau=0.6")
    specs = specs_at(template, 12.5, [3, 4])
    assert [(s.rate, s.seed) for s in specs] == [(12.5, 3), (12.5, 4)]
    for s in specs:
        assert dataclasses.replace(s, rate=None, seed=0).key() == dataclasses.replace(template, rate=None, seed=0).key()
    assert round_rate(math.sqrt(16 * 32)) == 22.63


@pytest.mark.parametrize("args, message", [
    ([], "give at least one --slo METRIC=SECONDS"),
    (["--slo", "ttft_p90"], "--slo 'ttft_p90': expected METRIC=SECONDS"),
    (["--slo", "ttft_p95=2"], "unknown metric 'ttft_p95'; known: latency_per_token_mean"),
    (["--slo", "throughput_rps=2"], "unknown metric 'throughput_rps'"),
    (["--slo", "ttft_p90=-1"], "the limit must be a positive number of seconds, got -1"),
    (["--slo", "ttft_p90=nan"], "the limit must be a positive number of seconds, got nan"),
    (["--slo", "ttft_p90=fast"], "'fast' is not a number of seconds"),
    (["--slo", "ttft_p90=0_5"], "'0_5' is not a number of seconds"),  # float("0_5") is 5.0
    (["--slo", "ttft_p90=2", "--slo", "ttft_p90=3"], "--slo: ttft_p90 is given twice"),
    (["--slo", "ttft_p90=2", "--tolerance", "0"], "--tolerance must be between 0.001 and 1"),
    (["--slo", "ttft_p90=2", "--start-rate", "-4"], "--start-rate must be a positive number"),
    (["--slo", "ttft_p90=2", "--start-rate", "64", "--max-rate", "32"], "--start-rate 64 is above --max-rate 32"),
    # rates and limits near float64's largest overflowed the figures' log axes: a RuntimeWarning on the terminal
    # (or, at 1.7e308, a LinAlgError traceback)
    (["--slo", "ttft_p90=2", "--start-rate", "1e308", "--max-rate", "1.7e308"],
     "--start-rate 1e+308 req/s is above 1e+09 (a request every nanosecond, a thousand in the shortest step a "
     "profile models): arrivals that dense are a burst at any rate; give a lower rate"),
    (["--slo", "ttft_p90=2", "--max-rate", "1.0000001e9"], "--max-rate 1000000100 req/s is above 1e+09"),
    (["--slo", "ttft_p90=1e308"], "--slo 'ttft_p90=1e308': the limit must be at most 1e+08 s (about 3 years), got 1e308"),
    (["--slo", "ttft_p90=2", "--seeds", "0"], "--seeds must be in 1..1,000"),
    # two spellings of one policy searched it twice, with two rows in the table
    (["--slo", "ttft_p90=2", "--policy", "fcfs", "--policy", "fcfs:"],
     "--policy: 'fcfs' and 'fcfs:' are the same policy (fcfs); give each policy once"),
    (["--slo", "ttft_p90=2", "--policy", "ltr:tau=0.5", "--policy", "ltr:seed=0,tau=0.50"],
     "'ltr:tau=0.5' and 'ltr:seed=0,tau=0.50' are the same policy (ltr:tau=0.5,seed=0)"),
    (["--slo", "ttft_p90=2", "--seeds", "1001"], "--seeds must be in 1..1,000 (a run per seed at every rate tried), got 1,001"),
    (["--slo", "ttft_p90=2", "--seeds", str(10**12)], "--seeds must be in 1..1,000"),  # was a MemoryError traceback
    (["--slo", "ttft_p90=2", "-n", "0"], "--num-requests must be >= 1"),
    (["--slo", "ttft_p90=2", "-p", "nope"], "unknown policy"),
    (["--slo", "ttft_p90=2", "--profile", "nosuch"], "unknown profile 'nosuch'"),
    (["--slo", "ttft_p90=2", "-w", "nosuch.csv"], "workload 'nosuch.csv' is neither a file nor a built-in"),
    (["--slo", "ttft_p90=2", "--scoring", "approx-po:tau=2"], "tau must be in (0, 1], got 2.0"),
    (["--slo", "ttft_p90=2", "--address", "127.0.0.1:1"], "--address needs --backend ray"),
    (["--slo", "ttft_p90=2", "-n", "4001"], "asked for 4001 requests but the eval split has only 4000"),
    (["--slo", "ttft_p90=2", "--quick", "--replicas", "4"], "asked for 8000 requests but the eval split has only 4000"),
    (["--slo", "ttft_p90=2", "--replicas", "0"], "--replicas must be >= 1, got 0"),
    # found by the first run, as "replicas must be an integer in 1..4096" (no option named)
    (["--slo", "ttft_p90=2", "-n", "30", "--replicas", "4097"], "--replicas must be at most 4,096, got 4,097"),
    (["--slo", "ttft_p90=2", "--replicas", "2", "--router", "nope"], "unknown router"),
])
def test_bad_capacity_input_is_one_line_before_any_run(tmp_path, capsys, args, message):
    from ltrsched.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["capacity", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "o").exists()


def mean_metric(out, template: RunSpec, rate: float, seeds, metric: str) -> float:
    from ltrsched.experiments.runner import load_summary

    return sum(load_summary(out, s)[metric] for s in specs_at(template, rate, seeds)) / len(seeds)


def test_found_capacity_meets_the_slo_and_a_rate_tolerance_above_it_does_not(tmp_path):
    """Checked from the cached runs, not from the search's own bookkeeping."""
    out = tmp_path / "cap"
    args = ["capacity", "-w", "lmsys-like", "-n", "300", "--seeds", "2", "-p", "fcfs", "-p", "ltr:tau=0.8",
            "--max-num-seqs", "16", "--slo", "ttft_p90=1.5", "--slo", "latency_per_token_mean=0.5",
            "--tolerance", "0.1", "--start-rate", "2", "--out", str(out), "--jobs", "2"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    table = pl.read_csv(out / "capacity.csv")
    assert table["policy"].to_list() == ["fcfs", "ltr:tau=0.8"] and set(table["status"]) == {"found"}
    from ltrsched.experiments.runner import run_all

    for row in table.iter_rows(named=True):
        template = RunSpec("capacity", "lmsys-like", row["policy"], workload="lmsys-like", policy=row["policy"],
                           profile="a100-llama3-8b", num_requests=300, arrival="poisson", max_num_seqs=16)
        c, high = row["capacity_rps"], row["bracket_high"]
        assert high <= c * 1.1 * (1 + 1e-3)
        assert mean_metric(out, template, c, [0, 1], "ttft_p90") <= 1.5
        assert mean_metric(out, template, c, [0, 1], "latency_per_token_mean") <= 0.5
        above = round_rate(c * 1.1)
        stats = run_all(specs_at(template, above, [0, 1]), out, jobs=2, progress=False)
        assert len(stats.ran) + len(stats.skipped) == 2
        assert (mean_metric(out, template, above, [0, 1], "ttft_p90") > 1.5
                or mean_metric(out, template, above, [0, 1], "latency_per_token_mean") > 0.5)
        assert row["runs"] == 2 * row["rates_tried"]
        assert row["limiting_slo"] in ("ttft_p90", "latency_per_token_mean", "ttft_p90, latency_per_token_mean")
    rates = pl.read_csv(out / "capacity-rates.csv")
    assert rates.height == table["rates_tried"].sum()
    for metric in ("ttft_p90", "latency_per_token_mean"):
        png = out / "figures" / f"capacity-{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "capacity.md").read_text()
    assert "| policy | profile | capacity_rps | bracket_low | bracket_high |" in md and "SLOs: ttft_p90<=1.5" in md
    # a rerun reuses every run and finds the same capacities
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"0 runs simulated, {table['runs'].sum()} reused" in again.stdout
    assert pl.read_csv(out / "capacity.csv").equals(table)


def test_template_fields_pass_through_to_the_runs_and_the_table(tmp_path):
    """Any RunSpec field (here max_num_seqs; a cluster's replica count likewise) reaches the runs' keys
    and becomes a column of the table when it varies."""
    from ltrsched.experiments.capacity import search_capacity
    from ltrsched.experiments.capacity_report import capacity_table
    from ltrsched.experiments.runner import load_summary, open_backend, run_dir
    from ltrsched.results import read_summary_file

    templates = [dataclasses.replace(TEMPLATE, num_requests=150, max_num_seqs=m) for m in (4, 64)]
    slos = [Slo("ttft_p90", 1.0)]
    with open_backend("process", 1) as backend:
        searches, stats = search_capacity(templates, slos, [0], tmp_path, backend, start_rate=2.0, tolerance=0.2)
    table = capacity_table(searches, 1)
    assert table.columns[:3] == ["policy", "profile", "max_num_seqs"] and table["max_num_seqs"].to_list() == [4, 64]
    assert stats.total == sum(len(s.points) for s in searches)
    for s in searches:
        for rate in s.points:
            spec = specs_at(s.template, rate, [0])[0]
            meta = read_summary_file(run_dir(tmp_path, spec) / "summary.json")["meta"]
            assert meta["run_spec"]["max_num_seqs"] == s.template.max_num_seqs and meta["run_spec"]["rate"] == rate
            assert load_summary(tmp_path, spec)["ttft_p90"] == s.points[rate].means["ttft_p90"]
    assert searches[0].capacity < searches[1].capacity  # 4 sequences at a time saturate sooner


def test_parse_slo_accepts_every_summary_latency_metric():
    from ltrsched.experiments.capacity import SLO_METRICS
    from ltrsched.metrics import summarize
    from conftest import make_workload

    assert parse_slo("max_waiting_time_p99=10") == Slo("max_waiting_time_p99", 10.0)
    assert parse_slo(" tpot_p90 = 0.1") == Slo("tpot_p90", 0.1)
    # every name is a key of a real run's summary
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate

    result = simulate(make_workload([10, 20, 30], [5, 6, 7]), make_policy("fcfs"), SimConfig(profile="a100-llama3-8b"))
    assert set(SLO_METRICS) <= set(result.summary) and set(SLO_METRICS) <= set(summarize(result.requests))


def test_a_capacity_per_replica_count_and_router(tmp_path):
    """--replicas / --router make templates like any other field: the runs are cluster runs (their keys
    and summaries say so), and the table gets replicas and router columns."""
    from ltrsched.experiments.runner import run_dir
    from ltrsched.results import read_summary_file

    out = tmp_path / "cap"
    r = run_cli("capacity", "-w", "lmsys-like", "-n", "200", "--seeds", "1", "-p", "fcfs", "--max-num-seqs", "8",
                "--replicas", "1", "--replicas", "2", "--router", "least-outstanding", "--slo", "ttft_p90=1.5",
                "--tolerance", "0.2", "--start-rate", "2", "--out", str(out), "--jobs", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    table = pl.read_csv(out / "capacity.csv")
    assert table.columns[:4] == ["policy", "profile", "replicas", "router"]
    assert table["replicas"].to_list() == [1, 2] and table["router"].to_list() == [None, "least-outstanding"]
    lone, pair = table["capacity_rps"].to_list()
    assert pair > lone  # two replicas serve more
    template = RunSpec("capacity", "lmsys-like", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b",
                       num_requests=200, arrival="poisson", max_num_seqs=8, replicas=2, router="least-outstanding")
    doc = read_summary_file(run_dir(out, specs_at(template, pair, [0])[0]) / "summary.json")
    assert doc["meta"]["run_spec"]["replicas"] == 2 and doc["summary"]["num_replicas"] == 2  # a cluster run
    assert doc["meta"]["router"] == "least-outstanding"


def test_the_largest_rates_and_slo_limits_allowed_plot_without_warnings(tmp_path):
    """At the bounds (rates up to 1e9 req/s, a limit of 1e8 s, a limit of 1e-300 s that no rate meets) the search and
    its figures print nothing on stderr: no RuntimeWarning from numpy or matplotlib, no traceback."""
    r = run_cli("capacity", "--slo", "ttft_p90=1e8", "--slo", "tpot_p99=1e-300", "-p", "fcfs", "-n", "100",
                "--seeds", "1", "--start-rate", "2.5e8", "--max-rate", "1e9", "--out", str(tmp_path / "o"), "-j", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Warning" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(list((tmp_path / "o" / "figures").glob("*.png"))) == 2


def test_capacity_refuses_to_write_its_table_over_the_workload(tmp_path, capsys):
    """`capacity -w OUT/capacity.csv -o OUT` replaced the trace it read with the capacity table (exit 0)."""
    from ltrsched.cli import main

    trace = tmp_path / "capacity.csv"
    trace.write_text("prompt_tokens,output_tokens\n" + "".join(f"{10 + i},{5 + i}\n" for i in range(40)))
    before = trace.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        main(["capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "-w", str(trace), "-n", "30", "--seeds", "1",
              "--out", str(tmp_path), "-j", "1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.strip().splitlines() == [
        f"error: --workload {trace} would be overwritten by the output {trace}: write the output elsewhere"], err
    assert trace.read_bytes() == before and not (tmp_path / "runs").exists()



def drive_loaded(search: Search, metric, queue, slo=Slo("ttft_p90", 1.0)) -> Search:
    """Run a search against ``metric(rate)`` with runs whose P90 queueing delay is ``queue(rate)`` steps (a P90 TPOT of
    20 ms; None: the summaries lack both, and the service) and two seeds a relative 2% apart, until it is done. The
    metric's service (without the queueing delay, for the floor rule) is the metric less that P90 queueing delay."""
    for _ in range(200):
        rate = search.next_rate
        if rate is None:
            return search
        m, steps = metric(rate), queue(rate)
        q = {} if steps is None else {"queueing_delay_p90": 0.02 * steps, "tpot_p90": 0.02}
        services = None if steps is None else [{slo.metric: m * f - 0.02 * steps} for f in (0.99, 1.01)]
        search.record(evaluate([slo], rate, [{slo.metric: m * 0.99, **q}, {slo.metric: m * 1.01, **q}], services))
    raise AssertionError("the search did not end")


def unloaded(rate):  # a latency floor of 30 ms, plus a queueing term that fades with the load (capacity 10 req/s)
    return 0.030 + 0.005 * rate / (10 - min(rate, 9.99))


@pytest.mark.parametrize("start", [4.0, 3.333])  # (3.333 halves to 1.667, not exactly half)
def test_an_slo_below_the_unloaded_latency_stops_after_two_halvings_with_the_reason(start):
    """ttft_p90=0.001 halved the rate 10 times (each halving's runs slower) before reporting none: over 11 minutes.
    (It stopped after one halving, on one gain: a curve's convexity needs two, the second no larger.)"""
    s = drive_loaded(Search(TEMPLATE, start_rate=start, tolerance=0.05, max_rate=1024.0), unloaded, lambda r: 0.9,
                     slo=Slo("ttft_p90", 0.001))
    low = round_rate(round_rate(start / 2) / 2)
    assert s.status == "none" and s.capacity is None and sorted(s.points) == [low, round_rate(start / 2), start]
    f = s.floor
    assert (f.metric, f.rate, f.limit) == ("ttft_p90", low, 0.001) and f.value == pytest.approx(unloaded(low))
    assert 0.001 < f.bound < unloaded(0) - 0.018  # under the true floor of the service: a bound, not an estimate
    assert str(f).startswith(f"ttft_p90 {unloaded(low):.4g} > 0.001 even at {low:g} req/s, where the runs form no queue")


@pytest.mark.parametrize("limit", [0.0301, 0.0303, 0.031])
def test_an_slo_just_above_the_unloaded_latency_finds_the_same_capacity_as_without_the_floor_rule(limit):
    """The floor rule only stops halvings no lower rate could have rescued: the rates tried and the capacity are
    those of the search without it (summaries without a queueing delay never stop early)."""
    slo = Slo("ttft_p90", limit)
    with_rule = drive_loaded(Search(TEMPLATE, start_rate=4.0, tolerance=0.05, max_rate=1024.0), unloaded,
                             lambda r: 0.9, slo=slo)
    without = drive_loaded(Search(TEMPLATE, start_rate=4.0, tolerance=0.05, max_rate=1024.0), unloaded,
                           lambda r: None, slo=slo)
    assert without.floor is None and without.status == "found"
    assert with_rule.status == "found" and with_rule.floor is None
    assert sorted(with_rule.points) == sorted(without.points) and with_rule.capacity == without.capacity


def test_an_slo_on_the_queueing_delay_is_not_stopped_by_the_floor_rule():
    """The queueing delay has no latency of unloaded service: its P90 sat on a plateau of about a step (0.010-0.016 s,
    seed noise putting 2 req/s above 4) down to 0.125 req/s, then dropped to 0 where the engine idled for most
    arrivals (lmsys-like, 30 requests). `--slo queueing_delay_p90=1e-9 --seeds 1 --seed 1` stopped at 2 req/s as none
    ("no lower rate gets it below 0.01422"); it finds 0.02209 req/s."""
    slo = Slo("queueing_delay_p90", 1e-9)

    def delay(rate):
        return 0.0 if rate < 0.1 else 0.0155 if rate == 2.0 else 0.015

    s = Search(TEMPLATE, start_rate=4.0, tolerance=0.05, max_rate=1024.0)
    for _ in range(50):
        if s.next_rate is None:
            break
        s.record(evaluate([slo], s.next_rate, [{"queueing_delay_p90": delay(s.next_rate), "tpot_p90": 0.016}]))
    assert s.points[2.0].queue_free and s.points[4.0].queue_free  # (the rule's precondition held)
    assert s.floor is None and s.status == "found" and s.low < 0.1 <= s.high <= 1.05 * s.low


def test_a_queueing_delay_that_drops_at_once_below_the_rates_tried_does_not_stop_the_halving():
    """P90 TTFT is the P90 queueing delay plus the service: the delay sits at about a step while more than a tenth of
    the arrivals find the engine busy, then drops to 0 (lmsys-like, 30 requests, seed 0: 0.0155 s at 2 req/s, 0.0058
    at 0.0156, P90 TTFT 0.0344 s to 0.0222). The rule read the sum's small gains as its floor and said none; the
    service alone (the metric less the delay) shows that the rates below can still gain the whole delay."""
    def ttft(rate):  # a service of 20 ms that sharing steps raises a little, plus the delay's plateau of 15 ms
        return 0.020 + 0.0004 * rate + (0.015 if rate >= 0.1 else 0.0)

    s = drive_loaded(Search(TEMPLATE, start_rate=4.0, tolerance=0.05, max_rate=1024.0), ttft,
                     lambda r: 0.75 if r >= 0.1 else 0.0, slo=Slo("ttft_p90", 0.025))
    assert s.floor is None and s.status == "found" and 0.05 < s.capacity < 0.1 <= s.high
    assert all(s.points[r].queue_free for r in s.points)  # (the rule's precondition held at every rate)


def test_a_metric_flat_over_one_halving_and_falling_below_is_not_taken_for_its_floor():
    """A run of 30 requests is a burst at 4 and at 2 req/s (all of them overlap at both): its metric is flat there, on
    no queue, then falls as the rate does (lmsys-like, fcfs, seed 0: P90 TPOT 0.01681 s, 0.01684, then 0.01655 at 1
    req/s). One halving's gain of 0 ended the search at none at 2 req/s, for an SLO that 1 req/s meets; a convex curve
    needs two gains, the second no larger than the first."""
    def burst_then_falling(rate):  # (a P90 queueing delay of 1 ms: the service is about the metric)
        return 0.0348 if rate >= 2 else 0.0300 + 0.0024 * rate / 2

    s = drive_loaded(Search(TEMPLATE, start_rate=4.0, tolerance=0.05, max_rate=1024.0), burst_then_falling,
                     lambda r: 0.05, slo=Slo("ttft_p90", 0.032))
    assert s.floor is None and s.status == "found" and 1.0 <= s.capacity < s.high <= 2.0
    assert not s.points[2.0].meets and s.points[1.0].queue_free


def test_the_flat_metric_far_above_capacity_does_not_stop_the_halving():
    """Far above capacity every run is a burst and the metric barely moves between halvings, as at the floor; but
    there requests wait hundreds of steps to start (a queue), so the search halves on and finds 10."""
    def burst(rate):
        return 50.0 if rate > 10 else 0.5

    s = drive_loaded(Search(TEMPLATE, start_rate=256.0, tolerance=0.05, max_rate=1024.0), burst,
                     lambda r: 500.0 if r > 10 else 0.9)
    assert s.status == "found" and s.floor is None and s.low <= 10 < s.high


def test_an_infeasible_slo_ends_at_its_first_rate_with_one_line_saying_why(tmp_path, capsys):
    """(0.02 s: above the profile's lightest step, 0.0159 s, which rules lower SLOs out before any run:
    tests/test_capacity_floor.py; below the unloaded P90 TTFT, 0.0226-0.0232 s from 0.0078 to 0.001 req/s, and the
    0.0220 s of the run serving each request alone. The extrapolated floor ended it after three rates, 4 to 1 req/s;
    the exact floor of unloaded service at the first: tests/test_capacity_unloaded.py.)"""
    from cli_helpers import run_cli_fast

    out = tmp_path / "cap"
    r = run_cli_fast(capsys, "capacity", "-w", "lmsys-like", "-n", "60", "--seeds", "1", "-p", "fcfs",
                     "--slo", "ttft_p90=0.02", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    table = pl.read_csv(out / "capacity.csv")
    assert table["status"].to_list() == ["none"] and table[["rates_tried", "runs"]].rows() == [(1, 2)]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("capacity: ")]
    assert len(lines) == 1 and "policy fcfs on a100-llama3-8b: none; ttft_p90 " in lines[0]
    assert ("> 0.02 at 4 req/s, and at every rate: ruled out by the floor of unloaded service, 0.02201 s with each "
            "request served alone (no request's ttft is shorter under load)") in lines[0]
    # capacity.md said only `none`: it now gives the same reason under the table (the .csv keeps its columns)
    md = (out / "capacity.md").read_text()
    reason = lines[0].split(": none; ", 1)[1]
    assert f"- policy fcfs, profile a100-llama3-8b: none; {reason}\n" in md
    assert "none; " not in (out / "capacity.csv").read_text()


def test_a_none_without_the_floor_rule_notes_the_slos_the_lowest_rate_missed():
    """Halvings that end without reaching the floor of unloaded latency (their limit) leave no floor to quote: the
    note names the lowest rate tried and what it missed."""
    from ltrsched.experiments.capacity_report import none_notes

    down = drive(Search(TEMPLATE, start_rate=4.0, tolerance=0.05, max_rate=100.0), lambda r: 2.0)
    up = drive(Search(dataclasses.replace(TEMPLATE, policy="ltr"), start_rate=4.0, tolerance=0.05, max_rate=8.0),
               lambda r: 0.0)
    assert down.floor is None and down.status == "none" and up.status == "above max"
    assert none_notes([down, up]) == [
        f"policy fcfs, profile a100-llama3-8b: none; even the lowest rate tried, {min(down.points):g} req/s, "
        "missed ttft_p90"]
