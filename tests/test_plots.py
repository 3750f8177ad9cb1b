"""Pictures: Chrome/Perfetto trace files and CDF plots (their structure), and the commands that write them."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.plots.cdf import ecdf
from ltrsched.plots.chrome_trace import chrome_trace, write_chrome_trace
from ltrsched.plots.runs import group_for_plot, load_runs
from ltrsched.policies import make_policy
from ltrsched.routers import make_router
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster
from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error, run_cli

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cluster_run():
    rng = np.random.default_rng(0)
    n = 60
    wl = make_workload(rng.integers(5, 200, n), rng.integers(1, 80, n), np.sort(rng.uniform(0, 3, n)))
    cfg = SimConfig(profile=LinearProfile(blocks=40), block_size=16, max_num_batched_tokens=128, max_num_seqs=8,
                    record_steps=True)
    return simulate_cluster(wl, make_policy("srtf"), cfg, replicas=3, router=make_router("least-outstanding"))


def test_chrome_trace_structure(cluster_run, tmp_path):
    path = write_chrome_trace(cluster_run, tmp_path / "trace.json")
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    assert {e["ph"] for e in events} == {"M", "X", "C"}
    steps = cluster_run.steps
    for k in range(3):
        mine = steps.filter(pl.col("replica") == k)
        names = [e["args"]["name"] for e in events if e["ph"] == "M" and e["pid"] == k and e["name"] == "process_name"]
        assert names == [f"replica {k}"]
        slices = [e for e in events if e["ph"] == "X" and e["pid"] == k]
        assert len(slices) == mine.height
        # microseconds, one slice per step, in step order
        assert [e["ts"] for e in slices] == pytest.approx((mine["start"] * 1e6).to_list())
        assert [e["dur"] for e in slices] == pytest.approx((mine["duration"] * 1e6).to_list())
        assert [e["args"]["seqs"] for e in slices] == mine["num_seqs"].to_list()
        counters = [e for e in events if e["ph"] == "C" and e["pid"] == k]
        assert {e["name"] for e in counters} == {"batch size [seqs]", "batched tokens", "preemptions", "live requests",
                                                 "KV blocks in use"}
        kv = [e["args"]["gpu"] for e in counters if e["name"] == "KV blocks in use"]
        assert kv == mine["blocks_in_use"].to_list()
        assert sum(e["args"]["evicted"] for e in counters if e["name"] == "preemptions") == mine["num_evicted"].sum()
    for e in events:  # what the trace-event format requires of each kind
        assert isinstance(e["name"], str) and isinstance(e["pid"], int)
        if e["ph"] in ("X", "C"):
            assert isinstance(e["ts"], float) and e["ts"] >= 0
            assert all(isinstance(v, (int, float)) for v in e["args"].values())
        if e["ph"] == "X":
            assert e["dur"] > 0 and e["tid"] == 0
    assert cluster_run.summary["num_preemptions"] > 0  # the preemption counter had something to show


def test_chrome_trace_of_a_lone_run_and_idle_gaps():
    wl = make_workload([10, 10], [3, 3], [0.0, 5.0])
    result = simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), record_steps=True))
    events = chrome_trace(result.steps, result.meta)["traceEvents"]
    assert {e["pid"] for e in events} == {0}
    seqs = [(e["ts"], e["args"]["seqs"]) for e in events if e["name"] == "batch size [seqs]"]
    # the batch counter drops to 0 between the first request's last step and the second's arrival
    first_done = max(ts for ts, s in seqs if ts < 5e6)
    assert dict(seqs)[first_done] == 0 and seqs[-1][1] == 0


def test_ecdf():
    x, y = ecdf(np.array([3.0, np.nan, 1.0, 2.0, np.inf]))
    assert x.tolist() == [1.0, 2.0, 3.0] and y.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])


def _save_runs(tmp_path):
    """A sweep-like directory: 2 policies x 2 rates, and a plain run directory."""
    from ltrsched.workloads import apply_arrivals

    base = make_workload(np.full(40, 50), np.arange(1, 41) * 3)
    cfg = SimConfig(profile=LinearProfile())
    for rate in (5.0, 20.0):
        wl = apply_arrivals(base, "poisson", rate=rate, seed=0)
        for policy in ("fcfs", "srtf"):
            r = simulate(wl, make_policy(policy), cfg)
            r.meta["run_spec"] = {"workload": "test", "policy": policy, "label": policy.upper(), "rate": rate,
                                  "profile": "linear-test", "arrival": "poisson", "seed": 0, "scoring": "none"}
            r.save(tmp_path / "sweep" / "runs" / f"{policy}-{rate}")
    return tmp_path / "sweep"


def test_cdf_groups_runs_by_setting(tmp_path):
    runs = load_runs([_save_runs(tmp_path)])
    groups = dict(group_for_plot(runs))
    assert sorted(groups) == ["rate 20.0", "rate 5.0"]
    assert sorted(label for label, _ in groups["rate 5.0"]) == ["FCFS", "SRTF"]


def test_plot_cdf_command(tmp_path, cluster_run):
    """The real process (matplotlib's backend chosen there, the figure written); the bad inputs below run in-process:
    they are refused before anything is plotted."""
    sweep = _save_runs(tmp_path)
    cluster_run.save(tmp_path / "cluster")
    out = tmp_path / "cdf.png"
    r = run_cli("plot", "cdf", str(sweep), str(tmp_path / "cluster"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == PNG and "5 runs" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["{tmp}", "-o", "{tmp}/cdf.png"], "neither a run directory"),
    (["{tmp}/sweep", "-o", "{tmp}/cdf.txt"], "--out must end in"),
])
def test_plot_cdf_bad_input_is_one_line(capsys, tmp_path, args, message):
    _save_runs(tmp_path)
    r = run_cli_fast(capsys, "plot", "cdf", *[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(r, message)
    assert not (tmp_path / "cdf.png").exists() and not (tmp_path / "cdf.txt").exists()


def test_plot_trace_command(tmp_path, cluster_run):
    """The real process; the bad inputs below run in-process."""
    cluster_run.save(tmp_path / "run")
    r = run_cli("plot", "trace", str(tmp_path / "run"), "-o", str(tmp_path / "t.json"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]


def test_plot_trace_of_a_run_without_steps_is_one_line(capsys, tmp_path):
    lone = simulate(make_workload([10], [3]), make_policy("fcfs"), SimConfig(profile=LinearProfile()))
    lone.save(tmp_path / "nosteps")
    assert_one_line_error(run_cli_fast(capsys, "plot", "trace", tmp_path / "nosteps", "-o", tmp_path / "u.json"),
                          "no steps.parquet")
    assert not (tmp_path / "u.json").exists()


@pytest.mark.parametrize("column, value, message", [
    ("start", pl.lit("0.5"), "column 'start' holds String, not numbers"),  # TypeError traceback
    ("start", pl.lit(None, pl.Float64), "column 'start' has"),  # TypeError traceback
    ("replica", pl.lit("a"), "column 'replica' holds String, not numbers"),  # ValueError traceback from int()
    ("num_seqs", pl.lit("x"), "column 'num_seqs' holds String, not numbers"),  # written into the trace as text
    ("duration", pl.lit(float("nan")), "column 'duration' has values that are not finite"),  # null timestamps
    # 1.7e308 s is an infinite number of microseconds: "ts": null in every event, exit 0; negative times too
    ("start", pl.lit(1.7e308), "value(s) outside [0, 1e+12] s (first: 1.7e+308)"),
    ("duration", pl.lit(-1.0), "value(s) outside [0, 1e+12] s (first: -1)"),
])
def test_plot_trace_of_damaged_steps_is_one_line(capsys, tmp_path, cluster_run, column, value, message):
    run = tmp_path / "run"
    cluster_run.save(run)
    cluster_run.steps.with_columns(value.alias(column)).write_parquet(run / "steps.parquet")
    assert_one_line_error(run_cli_fast(capsys, "plot", "trace", run, "-o", tmp_path / "t.json"), message)
    assert not (tmp_path / "t.json").exists()


def test_plot_trace_refuses_to_write_over_the_runs_summary(capsys, tmp_path, cluster_run):
    """`plot trace RUN -o RUN/summary.json` wrote the trace over the summary it read (exit 0): the run was lost."""
    run = tmp_path / "run"
    cluster_run.save(run)
    before = (run / "summary.json").read_bytes()
    r = run_cli_fast(capsys, "plot", "trace", run, "-o", tmp_path / "run" / ".." / "run" / "summary.json")
    assert_one_line_error(r, f"the run's summary {run / 'summary.json'} would be overwritten by the output")
    assert (run / "summary.json").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["-o", "run", "--trace", "run/summary.json"], "--trace run/summary.json is where --out run writes too"),
    (["-o", "run", "--trace", "./run/../run/summary.json", "--cdf", "c.png"], "is where --out run writes too"),
])
def test_simulate_trace_may_not_be_a_file_of_its_run(capsys, tmp_path, args, message):
    """`simulate -o RUN --trace RUN/summary.json` wrote the run, then the trace over its summary.json (exit 0)."""
    make_workload([10, 20], [3, 4]).save(tmp_path / "w.parquet")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", "w.parquet", *args, cwd=tmp_path), message)
    assert not (tmp_path / "run").exists() and not (tmp_path / "c.png").exists()
