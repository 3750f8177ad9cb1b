"""``plot cdf``: every row's legend lists the series in one order, the figure's (their first appearance)."""

from __future__ import annotations

import matplotlib
import numpy as np
import polars as pl

from ltrsched.plots.cdf import cdf_figure

matplotlib.use("Agg")


def requests(n: int) -> pl.DataFrame:
    values = np.linspace(0.1, 1.0, n)
    return pl.DataFrame({"latency_per_token": values, "ttft": values, "tpot": values})


def legends(fig) -> list[list[str]]:
    return [[t.get_text().rsplit(" (n=", 1)[0] for t in ax.get_legend().get_texts()] for ax in fig.axes
            if ax.get_legend()]


def test_every_row_lists_the_series_in_one_order():
    """A row listed its runs in its own order: FCFS, SRTF in the first row, SRTF, LTR, FCFS in the second."""
    import matplotlib.pyplot as plt

    groups = [("rate 5", [("FCFS", requests(3)), ("SRTF", requests(4))]),
              ("rate 20", [("SRTF", requests(3)), ("LTR", requests(5)), ("FCFS", requests(2))]),
              ("rate 40", [("LTR", requests(2)), ("MLFQ", requests(2)), ("SRTF", requests(2))])]
    fig = cdf_figure(groups)
    try:
        assert legends(fig) == [["FCFS", "SRTF"], ["FCFS", "SRTF", "LTR"], ["SRTF", "LTR", "MLFQ"]]
    finally:
        plt.close(fig)


def test_labels_of_one_series_keep_their_rows_order_and_the_series_place():
    """Reproduce's "LTR scoring <predictor>" labels are one series (LTR) named per row: they take LTR's place."""
    import matplotlib.pyplot as plt

    series = {"LTR scoring a": "LTR", "LTR scoring b": "LTR"}
    groups = [("sharegpt", [("FCFS", requests(3)), ("LTR scoring a", requests(3))]),
              ("lmsys", [("LTR scoring b", requests(3)), ("FCFS", requests(3))])]
    fig = cdf_figure(groups, series=series)
    try:
        assert legends(fig) == [["FCFS", "LTR scoring a"], ["FCFS", "LTR scoring b"]]
    finally:
        plt.close(fig)
