"""Plots of big runs (helper scaleaudit): what is drawn stays bounded however many requests a run has."""

from __future__ import annotations

import matplotlib
import numpy as np
import polars as pl

from ltrsched.plots.cdf import MAX_DRAWN_STEPS, cdf_figure, ecdf, thinned_steps

matplotlib.use("Agg")


def test_a_big_runs_cdf_draws_a_bounded_number_of_steps_within_its_resolution():
    """A run of 1,000,000 requests drew 1,000,000 steps per panel (843 MB of memory for the plot, 344 MB now)."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    n = 5 * MAX_DRAWN_STEPS
    values = rng.lognormal(size=n)
    requests = pl.DataFrame({"latency_per_token": values, "ttft": values, "tpot": values,
                             "finish_time": np.ones(n)})
    fig = cdf_figure([("", [("a", requests)])])
    try:
        xs = fig.axes[0].lines[0].get_xdata()
        assert len(xs) <= MAX_DRAWN_STEPS + 1  # (the line starts with a point at 0)
        assert xs.min() == values.min() and xs.max() == values.max()
    finally:
        plt.close(fig)
    x, y = ecdf(values)
    drawn_x, drawn_y = thinned_steps(x, y)
    # the drawn step function, read at every value, is the CDF to within 1 / MAX_DRAWN_STEPS
    at = np.searchsorted(drawn_x, x, side="right") - 1
    assert np.abs(drawn_y[at] - y).max() <= 1 / MAX_DRAWN_STEPS + 1e-12
    small_x, small_y = thinned_steps(x[:100], y[:100])  # (a small run's line: every step)
    assert np.array_equal(small_x, x[:100]) and np.array_equal(small_y, y[:100])


def test_plot_cdf_reads_only_the_columns_it_plots(tmp_path):
    """load_runs read every column of each requests.parquet and held them all until the figure was drawn: 266 MB
    for the table of a 1,000,000-request run, 144 MB now (the metrics and finish_time)."""
    from ltrsched.plots.cdf import CDF_METRICS
    from ltrsched.plots.runs import load_runs
    from ltrsched.results import RunResult

    n = 50
    requests = pl.DataFrame({"request_id": np.arange(n), "prompt_tokens": np.full(n, 10), "ttft": np.full(n, 0.1),
                             "latency_per_token": np.full(n, 0.02), "finish_time": np.ones(n)})
    RunResult(requests, {"makespan": 1.0}, meta={"policy": "fcfs"}).save(tmp_path / "run")
    [run] = load_runs([tmp_path / "run"])
    assert set(run.requests.columns) == {"ttft", "latency_per_token", "finish_time"}  # (no tpot in this table)
    assert run.requests.height == n and set(run.requests.columns) <= {*CDF_METRICS, "finish_time"}
