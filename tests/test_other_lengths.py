"""Length distributions unlike ShareGPT's, through the pictures of a run: one-token outputs (every token from the
prefill), a lone request, every request of equal length (latencies within a few percent of each other). Each test
reproduces a fault one of them exposed in the Chrome trace or the CDF plot."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.plots.cdf import cdf_figure
from ltrsched.plots.chrome_trace import chrome_trace
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate


def _step_slices(prompts, outputs, arrivals) -> list[dict]:
    wl = make_workload(prompts, outputs, arrivals)
    result = simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), max_num_batched_tokens=64,
                                                         record_steps=True))
    return [e for e in chrome_trace(result.steps, result.meta)["traceEvents"] if e["ph"] == "X"]


def test_trace_steps_of_one_token_outputs_are_prefills():
    """Every step with prompt tokens was named ``prefill+decode``: a trace of one-token outputs (each token comes
    from the prefill; no step decodes) showed decode work in every step. A step is named by what it computed."""
    slices = _step_slices([100, 30, 70], [1, 1, 1], [0.0, 0.0, 0.0])
    assert {e["name"] for e in slices} == {"prefill"}
    # longer outputs: decode-only steps, and a step with both where a prompt arrives while another decodes
    slices = _step_slices([20, 20], [5, 5], [0.0, 0.05])
    names = {e["name"] for e in slices}
    assert names == {"prefill", "decode", "prefill+decode"}, names
    both = [e for e in slices if e["name"] == "prefill+decode"]
    assert all(e["args"]["prefill_tokens"] > 0 and e["args"]["seqs"] > 1 for e in both)


def _label_overlaps(fig) -> list[tuple[str, str, str]]:
    """Pairs of neighbouring x tick labels whose drawn boxes overlap, per panel."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    bad = []
    for ax in fig.axes:
        labels = sorted((t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()),
                        key=lambda t: t.get_window_extent(renderer).x0)
        boxes = [t.get_window_extent(renderer) for t in labels]
        bad += [(ax.get_xlabel(), a.get_text(), b.get_text())
                for a, b, box_a, box_b in zip(labels, labels[1:], boxes, boxes[1:]) if box_a.x1 > box_b.x0]
    return bad


@pytest.mark.parametrize("values", [[0.0158938], np.linspace(0.0170, 0.0204, 200)], ids=["lone", "equal-lengths"])
def test_cdf_tick_labels_of_a_narrow_range_do_not_run_into_each_other(values):
    """A lone request, or requests of equal lengths (latencies per token from 0.0170 to 0.0204 s), drew 9-10 ticks
    labelled 0.01525, 0.01550, ... on each panel's linear axis, written over one another."""
    import matplotlib.pyplot as plt

    v = np.asarray(values, dtype=np.float64)
    fig = cdf_figure([("", [("fcfs", pl.DataFrame({"latency_per_token": v, "ttft": v, "tpot": v}))])])
    try:
        assert _label_overlaps(fig) == []
        assert all(len(ax.get_xticks()) >= 3 for ax in fig.axes)  # (still a scale to read)
    finally:
        plt.close(fig)
