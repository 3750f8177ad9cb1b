"""``plot cdf`` of a sweep's --out draws the runs its sweep.csv lists (helper scalefollow): an earlier sweep file's
runs under the same runs/ were drawn beside them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ltrsched.results import RunResult
from cli_helpers import run_cli_fast

KEYS = {"workload": "lmsys-like", "profile": "a100-llama3-8b", "arrival": "burst", "rate": None, "seed": 0}


def _run(out, name, policy, n, latency):
    """A sweep run of ``n`` requests in ``out/runs/NAME``; returns its sweep.csv row."""
    requests = pl.DataFrame({"latency_per_token": np.full(n, latency), "ttft": np.full(n, 0.1),
                             "tpot": np.full(n, latency), "finish_time": np.arange(1.0, n + 1)})
    summary = {"num_requests": n, "latency_per_token_mean": latency, "makespan": float(n), "wall_time_s": 0.01}
    spec = {**KEYS, "policy": policy, "label": policy, "num_requests": n, "replicas": 1, "router": None}
    RunResult(requests, summary, meta={"policy": policy, "run_spec": spec}).save(out / "runs" / name)
    return {**KEYS, "policy": policy, **summary}


@pytest.fixture
def sweep_out(tmp_path):
    """A sweep --out whose sweep.csv (the last sweep file's) lists 2 of its 3 runs: fcfs and srtf of 20 requests; an
    earlier sweep file's fcfs of 30 requests (same settings but num_requests, which sweep.csv has no column for)."""
    out = tmp_path / "out"
    _run(out, "aaa", "fcfs", 30, 0.03)
    rows = [_run(out, "bbb", "fcfs", 20, 0.02), _run(out, "ccc", "srtf", 20, 0.01)]
    pl.DataFrame(rows).write_csv(out / "sweep.csv")
    return out


def test_plot_cdf_of_a_sweep_draws_the_runs_its_sweep_csv_lists(capsys, tmp_path, sweep_out):
    from ltrsched.plots.runs import load_runs

    notes = []
    runs = load_runs([sweep_out], notes)
    assert sorted(r.path.name for r in runs) == ["bbb", "ccc"]
    assert len(notes) == 1 and "left out 1 run(s)" in notes[0] and "aaa" in notes[0]
    result = run_cli_fast(capsys, "plot", "cdf", str(sweep_out), "-o", str(tmp_path / "c.png"))
    assert result.returncode == 0, result.stderr
    assert "(2 runs, 1 setting(s))" in result.stdout
    assert "sweep.csv does not list" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    # named on its own, the earlier sweep's run is drawn (and with the sweep's directory: 3 lines)
    result = run_cli_fast(capsys, "plot", "cdf", str(sweep_out / "runs" / "aaa"), str(sweep_out),
                          "-o", str(tmp_path / "d.png"))
    assert result.returncode == 0 and "(3 runs" in result.stdout


def test_plot_cdf_of_a_sweep_listing_none_of_its_runs_is_one_line(capsys, tmp_path, sweep_out):
    (sweep_out / "runs" / "bbb").rename(sweep_out / "bbb")
    (sweep_out / "runs" / "ccc").rename(sweep_out / "ccc")
    result = run_cli_fast(capsys, "plot", "cdf", str(sweep_out), "-o", str(tmp_path / "c.png"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "none of the 1 runs" in result.stderr


def test_plot_cdf_of_a_directory_without_sweep_csv_draws_every_run(capsys, tmp_path, sweep_out):
    """A reproduce directory keeps its earlier experiments' runs: all are drawn."""
    (sweep_out / "sweep.csv").unlink()
    result = run_cli_fast(capsys, "plot", "cdf", str(sweep_out), "-o", str(tmp_path / "c.png"))
    assert result.returncode == 0 and "(3 runs" in result.stdout and result.stderr == ""
