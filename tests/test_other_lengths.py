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


def _shown_labels(ax) -> list:
    """The x tick labels (major and minor) that a panel draws: with text, inside its limits."""
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True)
            if t.get_visible() and t.get_text() and lo <= t.get_position()[0] <= hi]


def _label_overlaps(fig) -> list[tuple[str, str, str]]:
    """Pairs of neighbouring x tick labels whose drawn boxes overlap, per panel."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    bad = []
    for ax in fig.axes:
        boxes = sorted(((t.get_window_extent(renderer), t.get_text()) for t in _shown_labels(ax)),
                       key=lambda box: box[0].x0)
        bad += [(ax.get_xlabel(), a, b) for (box_a, a), (box_b, b) in zip(boxes, boxes[1:]) if box_a.x1 > box_b.x0]
    return bad


#: Values of one panel that drew unreadable x tick labels: a lone request; equal lengths (latency per token from
#: 0.0170 to 0.0204 s); two policies' TPOT of a lone request 1e-6 s apart; a heavy tail's latency per token over a
#: decade or so (0.018 to 0.35 s/token, a log axis); two values near 1e-3 s.
NARROW_AND_WIDE = {"lone": [0.0158938], "equal-lengths": np.linspace(0.0170, 0.0204, 200),
                   "near-equal": [0.0158791, 0.0158803], "heavy-tail": np.geomspace(0.018, 0.35, 50),
                   "near-1e-3": [0.00110936, 0.00110958]}


@pytest.mark.parametrize("values", NARROW_AND_WIDE.values(), ids=NARROW_AND_WIDE.keys())
def test_cdf_tick_labels_do_not_run_into_each_other(values):
    """Each of :data:`NARROW_AND_WIDE` drew x tick labels written over one another: 9-10 ticks labelled 0.01525,
    0.01550, ... (or 0.0001125, 0.0001150, ...) on a linear axis, 2, 3, 4 and 6 x 10^-2 in scientific notation on a
    log one, and 1e-7 steps from an offset, "1e-6+1.5879e-2", over the axis label."""
    import matplotlib.pyplot as plt

    v = np.asarray(values, dtype=np.float64)
    fig = cdf_figure([("", [("fcfs", pl.DataFrame({"latency_per_token": v, "ttft": v, "tpot": v}))])])
    try:
        assert _label_overlaps(fig) == []
        for ax in fig.axes:
            shown = _shown_labels(ax)
            assert len(shown) >= 2, [t.get_text() for t in shown]  # (still a scale to read)
            assert "+" not in ax.xaxis.get_offset_text().get_text()
    finally:
        plt.close(fig)


def test_the_calibration_plot_draws_a_heavy_tails_longest_outputs():
    """``evaluate --plot`` left out each decile's lengths beyond its whiskers: on lengths of a heavy tail (lognormal
    sigma 2, as a reasoning model's mix of short answers and long traces) the axis ended near the whiskers' top, and
    the longest outputs, those a scheduler most needs ranked last, were in no part of the figure."""
    import matplotlib.pyplot as plt

    from ltrsched.predictors.calibration import calibration_figure

    rng = np.random.default_rng(0)
    lengths = np.maximum(np.round(rng.lognormal(4, 2, 100)), 1).astype(np.int64)
    fig = calibration_figure(rng.normal(size=100), lengths, 0.0)
    try:
        ax = fig.axes[0]
        low, high = ax.get_ylim()
        assert low <= lengths.min() and high >= lengths.max(), (ax.get_ylim(), lengths.max())
        assert ax.get_yscale() == "log"  # (a linear axis to 10,000 tokens drew most boxes as flat lines at 0)
    finally:
        plt.close(fig)


def test_the_equal_lengths_warning_of_one_token_outputs_says_1_token():
    """``ltr:tau=`` on outputs of one token each warned that all were equal "(1 tokens)"."""
    from ltrsched.policies.approx_oracle import unreachable_tau_warning

    assert "(1 token), so" in unreachable_tau_warning(np.ones(200, dtype=np.int64), 0.6, "ltr:tau=0.6")
    assert "(100 tokens), so" in unreachable_tau_warning(np.full(200, 100), 0.6, "ltr:tau=0.6")


def test_capacity_warns_where_every_request_of_a_run_fits_one_batch(tmp_path, capsys):
    """20 reasoning-length requests (--max-num-seqs 256) met the SLOs at every rate up to --max-rate (capacity
    ``above max``, 1,024 req/s), without a word: a run of them is one burst, never a sustained load. A lone
    request is refused; three here, two rates: the warning says so, once; a run with more requests than the cap has
    none."""
    from cli_helpers import run_cli_fast
    from ltrsched.experiments.commands import _few_requests_warnings

    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n" + "100,50\n" * 6)
    args = ("capacity", "-w", workload, "--seeds", "1", "-p", "fcfs", "--slo", "ttft_p90=100",
            "--start-rate", "4", "--max-rate", "8", "--jobs", "1")
    r = run_cli_fast(capsys, *args, "-n", "3", "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert said == ["warning: runs of 3 requests are no more than --max-num-seqs 256 per replica: all of them can run "
                    "at once, so a high rate is one burst of them, not a sustained load, and the capacity found may "
                    "be far too high (or above max); give -n well above 256 (by default 4,000 per replica)"], r.stderr
    # (more requests than the cap, per replica: none)
    assert _few_requests_warnings({1: 257, 2: 513}, 256, 4000) == []
    assert _few_requests_warnings({2: 512}, 256, 4000)[0].startswith("warning: runs of 512 requests over 2 replicas")
