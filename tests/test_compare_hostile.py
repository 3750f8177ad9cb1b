"""validate's report (validation.md and validation.png, ltrsched/validation/compare.py) given what a validation may
hold: odd policy and case names, many policies, values that are missing, zero or equal, one policy. Each gives a
report and a figure (read back here), never a traceback or a warning."""

from __future__ import annotations

import math

import polars as pl
import pytest
from matplotlib.colors import to_rgba

from ltrsched.results import RunResult
from ltrsched.validation import compare
from ltrsched.validation.compare import METRICS, RUN_METRICS, STATS, ValidationTally

#: Bars per policy and case: each metric's mean and P90 (compare.PLOT_STATS).
PER_CASE = len(METRICS) * 2


def summary(value=1.0, **over):
    """A run summary with every compared value ``value`` (``over``: per key; None is undefined)."""
    keys = [f"{m}_{s}" for m in METRICS for s in STATS] + list(RUN_METRICS)
    return {**dict.fromkeys(keys, value), **over}


def run(summ):
    return RunResult(pl.DataFrame(), summ)


def report(tmp_path, monkeypatch, cases, repeats=1):
    """The report of ``cases`` ({case: {policy: (sim summary, [engine summaries])}}): validation.md's text, the
    figure it saved (kept for reading back), and the progress lines."""
    from ltrsched import atomic

    figures, write = [], atomic.write_figure
    monkeypatch.setattr(atomic, "write_figure", lambda path, fig, **kw: figures.append(fig) or write(path, fig, **kw))
    tally, progress = ValidationTally(), []
    for case, policies in cases.items():
        for policy, (sim, engines) in policies.items():
            progress.append(tally.add_policy(case, policy, run(sim), [run(e) for e in engines]))
        tally.end_case(case, {p: run(sim) for p, (sim, _) in policies.items()},
                       {p: [run(e) for e in engines] for p, (_, engines) in policies.items()})
    tmp_path.mkdir(parents=True, exist_ok=True)
    md = tally.write(tmp_path, "T", "ltrsched validate", 0.05, None, repeats)
    assert (tmp_path / "validation.png").read_bytes()[:4] == b"\x89PNG"
    (fig,) = figures
    return md.read_text(), fig, progress


def legend_texts(fig):
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def table_rows(md):
    return [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| case |")]


@pytest.mark.filterwarnings("error")
def test_odd_names_are_drawn_and_tabled_as_written(tmp_path, monkeypatch):
    """A policy named $\\foo$ ended the report in a mathtext ValueError traceback (validation.md written, no
    figure); a '|' in a name shifted its table row's columns; a name starting with '_' had no legend entry."""
    names = ["$\\foo$", "_mine", "λ/ü,x", "a|b"]
    md, fig, _ = report(tmp_path, monkeypatch, {"$x$ w": {n: (summary(1.0 + i), [summary(1.1 + i)])
                                                             for i, n in enumerate(names)}})
    assert legend_texts(fig) == ["\\$\\foo\\$", "_mine", "λ/ü,x", "a|b"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["\\$x\\$ w"]  # (the case, under its bars)
    rows = table_rows(md)
    assert len(rows) == 4 * 15 and all(len(row.replace("\\|", "").split("|")) == 10 for row in rows)
    assert "| $x$ w | a\\|b | e2e_latency | mean |" in md


@pytest.mark.filterwarnings("error")
def test_a_policy_keeps_its_colour_and_dash_in_every_case():
    """The bars were coloured by metric, every policy alike; a policy's bars now take its style of
    plots.styles.series_styles (the one plot cdf gives it), in every case and metric, past 20 policies dashed.
    (The figure alone, not saved: the report's files are checked above and below.)"""
    import matplotlib.pyplot as plt

    from ltrsched.plots.styles import series_styles

    first = [f"p{i}" for i in range(22)]
    tally = ValidationTally()
    for case, order, engine in (("burst", first, 1.02), ("poisson@5/s", ["x", *reversed(first)], 0.98)):
        for policy in order:
            tally.add_policy(case, policy, run(summary(1.0)), [run(summary(engine))])
    fig = compare.report_figure(pl.concat(tally.rows), 0.05)
    try:
        policies = [*first, "x"]  # (first appearance)
        styles = series_styles(policies)
        (ax,) = fig.axes
        assert len(ax.containers) == len(policies)
        for policy, bars in zip(policies, ax.containers):
            assert [p.get_facecolor() for p in bars] == [to_rgba(styles[policy].color)] * 2 * PER_CASE
            assert {p.get_linestyle() for p in bars} == {styles[policy].linestyle}
        assert styles["p21"].linestyle == "--" and legend_texts(fig) == policies
        assert not ax.get_legend().get_in_layout()  # (23 entries: beside the panel)
    finally:
        plt.close(fig)


@pytest.mark.filterwarnings("error")
def test_forty_five_policies_get_a_legend_beside_the_panels(tmp_path, monkeypatch):
    from PIL import Image

    policies = [f"policy-{i}" for i in range(45)]
    _, fig, _ = report(tmp_path, monkeypatch, {"burst": {p: (summary(1.0), [summary(1.05)]) for p in policies}})
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == policies and not legend.get_in_layout()
    with Image.open(tmp_path / "validation.png") as image:
        width = image.width
    assert width > fig.get_figwidth() * 120 + 100  # (the image grew to hold the legend beside the panel)


@pytest.mark.filterwarnings("error")
def test_zero_missing_and_undefined_values(tmp_path, monkeypatch):
    """An engine value of 0 was a ZeroDivisionError traceback in the ranking (its mean s/token) and '+inf%' in the
    table, with 'invalid value' RuntimeWarnings from the figure; 0 against 0 was '+nan%', a failed gate; a summary
    without the E2E mean (nothing finished) a TypeError traceback in the progress line; without the mean s/token a
    KeyError or an arbitrary place in the ranking, its pairs counted as separated."""
    lpt = "latency_per_token_mean"
    cases = {"c": {
        "zero": (summary(0.0), [summary(0.0)]),  # equal: no error
        "engine-zero": (summary(1.0), [summary(0.0)]),  # undefined
        "none": (summary(None), [summary(None)]),  # nothing compared
        "no-lpt": (summary(2.0, **{lpt: None}), [summary(2.1, **{lpt: None})]),
        "fine": (summary(1.0), [summary(1.02)]),
    }}
    md, fig, progress = report(tmp_path, monkeypatch, cases)
    assert progress[2].endswith("sim/engine mean E2E n/a / n/a s")
    table = pl.read_csv(tmp_path / "validation.csv")
    errors = {p: set(table.filter(pl.col("policy") == p)["rel_error"].to_list()) for p in table["policy"].unique()}
    assert errors["zero"] == {0.0} and errors["engine-zero"] == {float("inf")} and "none" not in errors
    rows = table_rows(md)
    assert "| c | zero | ttft | mean | 0 | 0 | +0.0% |  |" in rows
    assert "| c | engine-zero | ttft | mean | 1 | 0 | n/a ✗ |  |" in rows
    # 6 gated values per policy with values: zero's pass, engine-zero's fail, no-lpt's and fine's pass
    assert "**18 of 24 gated values" in md
    # the ranking: lowest mean s/token first, the policies without it last; no pair with them is separated
    ranking = next(line for line in md.splitlines() if line.startswith("- c: "))
    assert "(sim: zero, engine-zero, fine, none, no-lpt; engine: zero, engine-zero, fine, none, no-lpt)" in ranking
    # zero and engine-zero (engine means 0 and 0: a ZeroDivisionError) are not apart; each is apart from fine, whose
    # sim value is engine-zero's: the simulator orders only zero and fine alike
    assert "the engine separates 2 pair(s) beyond its noise, the simulator orders 1 of them alike" in ranking
    (ax,) = fig.axes
    # (no bars for 'none': it has no row; engine-zero's undefined errors are NaN bars: nothing drawn)
    assert len(ax.containers) == 4 and all(math.isnan(bar.get_height()) for bar in ax.containers[1])


@pytest.mark.filterwarnings("error")
def test_all_undefined_one_policy_and_identical_values(tmp_path, monkeypatch):
    """A report of one policy whose values are all undefined: no bar, every panel says so, no empty legend; one
    policy of identical values in two repeats: no noise, no error, nothing separated."""
    md, fig, _ = report(tmp_path / "none", monkeypatch, {"c": {"fcfs": (summary(None), [summary(None)])}})
    assert "**0 of 0 gated values" in md and not legend_texts(fig)
    assert [t.get_text() for t in fig.axes[0].texts] == ["no finite values"]
    monkeypatch.undo()
    md, fig, _ = report(tmp_path / "same", monkeypatch,
                        {"c": {"fcfs": (summary(1.0), [summary(1.0), summary(1.0)])}}, repeats=2)
    assert "**6 of 6 gated values" in md and "the engine separates 0 pair(s)" in md
    assert all(line.endswith("| +0.0% | 0.0% |") for line in table_rows(md))
    assert legend_texts(fig) == ["fcfs"] and len(fig.axes[0].containers) == 1


def test_relative_difference_of_zero_means():
    assert compare.relative_difference(0.0, 0.0) == 0.0
    assert compare.relative_difference(1.0, 0.0) == float("inf")
    assert compare.relative_difference(1.5, 1.0) == pytest.approx(0.5)


@pytest.mark.filterwarnings("error")
def test_a_pipe_in_a_name_keeps_the_step_time_and_own_speed_tables_in_shape(tmp_path):
    from ltrsched.validation.compare import compare_runs, write_report
    from ltrsched.validation.own_speed import own_speed_table

    cases = compare_runs(run(summary(1.0)), [run(summary(1.0))]).with_columns(case=pl.lit("c|d"),
                                                                              policy=pl.lit("a|b"))
    ratios = pl.DataFrame({"case": ["c|d"], "policy": ["a|b"], "repeat": [0], "step_time_ratio": [1.01]})
    own = own_speed_table([("c|d", "a|b", 0, 1.01, "ttft_mean", 1.0, 1.0, 0.0)])
    md = write_report(cases.select(compare.REPORT_COLUMNS), [], tmp_path, "T", "cmd", 0.05, step_time_ratios=ratios,
                      own_speed=own).read_text()
    assert "| c\\|d | a\\|b | 1.010 |" in md and "| c\\|d | 1 of 1 | +0.0% | 0.0% |" in md
    for row in table_rows(md):
        assert row.replace("\\|", "").count("|") in (9, 4, 5), row  # (the value, ratio and own-speed tables)
