"""plot cdf and plot trace given what users meet: odd names, empty metric columns, many policies, damaged step
traces and summaries. Each gives a figure (read back here) or one error line, exit 2; never a traceback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error
from test_plot_styles import save_run


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """A saved 3-request run (FCFS, rate 5) to copy under other names."""
    return save_run(tmp_path_factory.mktemp("base") / "run", "FCFS")


def copy_run(one_run, directory, label=None, requests=None, **spec):
    """``one_run`` copied to ``directory``, its label and run-spec fields replaced, its requests table too."""
    shutil.copytree(one_run, directory)
    summary = json.loads((directory / "summary.json").read_text())
    summary["meta"]["run_spec"].update({**({"label": label} if label is not None else {}), **spec})
    (directory / "summary.json").write_text(json.dumps(summary))
    if requests is not None:
        requests(pl.read_parquet(directory / "requests.parquet")).write_parquet(directory / "requests.parquet")
    return directory


def plotted(capsys, monkeypatch, *args):
    """``plot cdf ARGS`` in this process: the figure it saved (kept for reading back), and the result."""
    from ltrsched import atomic

    figures, write = [], atomic.write_figure
    monkeypatch.setattr(atomic, "write_figure", lambda path, fig, **kw: figures.append(fig) or write(path, fig, **kw))
    r = run_cli_fast(capsys, "plot", "cdf", *args)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
    (fig,) = figures
    return fig


def legend_texts(fig):
    return [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes if ax.get_legend()]


@pytest.mark.filterwarnings("error")
def test_odd_names_and_a_metric_no_run_has(capsys, monkeypatch, tmp_path, one_run):
    """A name with two $ was typeset as math (`$\\foo$`: a ValueError traceback from mathtext, after the runs were
    read), one starting with "_" was left out of the legend, a very long one ran over the panels to its left. A row
    whose runs have TTFT only (no latency per token; 1-token outputs have no TPOT) had its legend on the empty first
    panel: "No artists with labels found" on stderr, and no legend."""
    names = ["_mine", "$\\foo$ x", "λ/ü,x", "y" * 200]
    for i, name in enumerate(names):
        copy_run(one_run, tmp_path / "sweep" / "runs" / f"r{i}", name, workload="$\\bar$ w/1")
    drop = lambda t: t.with_columns(latency_per_token=pl.lit(None, pl.Float64), tpot=pl.lit(np.nan))  # noqa: E731
    copy_run(one_run, tmp_path / "sweep" / "runs" / "r9", "FCFS", requests=drop, workload="plain")
    fig = plotted(capsys, monkeypatch, tmp_path / "sweep", "-o", tmp_path / "cdf.png")
    assert (tmp_path / "cdf.png").read_bytes()[:4] == b"\x89PNG"
    first, second = legend_texts(fig)
    assert first == ["_mine (n=3)", "\\$\\foo\\$ x (n=3)", "λ/ü,x (n=3)", "y" * 77 + "... (n=3)"]
    assert second == ["FCFS (n=3)"]
    assert fig.axes[0].get_title() == "workload \\$\\bar\\$ w/1"
    assert not fig.axes[2].get_legend().get_in_layout()  # (right of the row: the long entry)
    empty = [ax for ax in fig.axes[3:] if not ax.get_lines()]
    assert len(empty) == 2 and all([t.get_text() for t in ax.texts] == ["no finite values"] for ax in empty)


@pytest.mark.filterwarnings("error")
def test_many_policies_get_a_legend_beside_the_row(capsys, monkeypatch, tmp_path, one_run):
    """45 policies: the legend inside the first panel overflowed the row ("Tight layout not applied")."""
    from PIL import Image

    for i in range(45):
        copy_run(one_run, tmp_path / "sweep" / "runs" / f"r{i:02d}", f"policy-{i}")
    fig = plotted(capsys, monkeypatch, tmp_path / "sweep", "-o", tmp_path / "cdf.png")
    (texts,) = legend_texts(fig)
    assert texts == [f"policy-{i} (n=3)" for i in range(45)]
    legend = fig.axes[2].get_legend()
    assert not legend.get_in_layout() and legend._ncols == 3
    with Image.open(tmp_path / "cdf.png") as image:
        width = image.width
    assert width > fig.get_figwidth() * 120 * 1.1  # (the image grew to hold the legend beside the panels)
