"""A series' colour and dash pattern are a function of its name over a whole figure (plot cdf's rows and panels,
reproduce's line panels), and stay told apart with many series."""

from __future__ import annotations

import numpy as np

from cli_helpers import run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.plots.styles import series_styles
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate


def save_run(directory, label, rate=5.0, policy="fcfs", outputs=(3, 9, 27), **spec):
    """A small simulated run saved as a sweep's run directory, labelled ``label`` at ``rate``."""
    result = simulate(make_workload([20] * len(outputs), list(outputs), np.arange(len(outputs)) * 0.05),
                      make_policy(policy), SimConfig(profile=LinearProfile()))
    result.meta["run_spec"] = {"workload": "test", "policy": policy, "label": label, "rate": rate,
                               "profile": "linear-test", "arrival": "poisson", "seed": 0, "scoring": "none", **spec}
    return result.save(directory)


def line_styles(fig):
    """(label without its count, colour, line style) of every line drawn, panel by panel."""
    from matplotlib.colors import to_hex

    return [(line.get_label().rsplit(" (n=", 1)[0], to_hex(line.get_color()), line.get_linestyle())
            for ax in fig.axes for line in ax.get_lines()]


def plotted(capsys, monkeypatch, *args):
    """``ltrsched plot cdf ARGS`` in this process: the figure it wrote (its lines read back) and the result."""
    from ltrsched import atomic

    figures, write = [], atomic.write_figure
    monkeypatch.setattr(atomic, "write_figure", lambda path, fig, **kw: figures.append(fig) or write(path, fig, **kw))
    r = run_cli_fast(capsys, "plot", "cdf", *args)
    assert r.returncode == 0, r.stderr
    (fig,) = figures
    return fig, r


def one_style_each(drawn, series):
    """Assert each series (label -> series) was drawn in one style everywhere, and distinct series differently."""
    styles: dict[str, set] = {}
    for label, colour, dash in drawn:
        styles.setdefault(series(label), set()).add((colour, dash))
    assert all(len(s) == 1 for s in styles.values()), styles
    assert len({next(iter(s)) for s in styles.values()}) == len(styles), styles


def test_a_policy_has_one_colour_in_every_row_and_panel(capsys, monkeypatch, tmp_path):
    """Two rows (rates), the policies in another order in each, one missing from the first: matplotlib's cycle
    started over in each panel, so SRTF took FCFS's colour in the second row (and LTR SRTF's)."""
    runs = tmp_path / "sweep" / "runs"
    for name, label, rate in (("a", "FCFS", 5.0), ("b", "SRTF", 5.0), ("c", "SRTF", 20.0), ("d", "LTR", 20.0),
                              ("e", "FCFS", 20.0)):
        save_run(runs / name, label, rate)
    fig, r = plotted(capsys, monkeypatch, tmp_path / "sweep", "-o", tmp_path / "cdf.png")
    assert "5 runs, 2 setting(s)" in r.stdout
    drawn = line_styles(fig)
    assert len(drawn) == 5 * 3  # every run in each of the 3 metrics' panels
    one_style_each(drawn, lambda label: label)
    assert {label for label, *_ in drawn} == {"FCFS", "SRTF", "LTR"}
    legends = [[t.get_text().split(" (n=")[0] for t in ax.get_legend().get_texts()] for ax in fig.axes
               if ax.get_legend()]
    assert legends == [["FCFS", "SRTF"], ["FCFS", "SRTF", "LTR"]]  # a legend per row, the series in one order


def test_a_reproduce_directorys_policy_keeps_its_colour_when_its_predictor_changes(capsys, monkeypatch, tmp_path):
    """reproduce scores LTR and PO with a predictor per workload, so their labels name another predictor in each
    row ("LTR scoring trained-ltr:a", "LTR scoring approx-score:tau=0.6"): the policy is one series all the same."""
    runs = tmp_path / "results" / "runs"
    for name, label, workload, scoring in (("a", "FCFS", "sharegpt", "none"), ("b", "LTR", "sharegpt", "trained-ltr:a"),
                                           ("c", "PO", "sharegpt", "approx-po:tau=0.5"),
                                           ("d", "PO", "lmsys", "approx-po:tau=0.6"),
                                           ("e", "LTR", "lmsys", "approx-score:tau=0.6"),
                                           ("f", "FCFS", "lmsys", "none")):
        save_run(runs / name, label, workload=workload, scoring=scoring)
    fig, _ = plotted(capsys, monkeypatch, tmp_path / "results", "-o", tmp_path / "cdf.png")
    drawn = line_styles(fig)
    assert {label for label, *_ in drawn} == {"FCFS scoring none", "LTR scoring trained-ltr:a",
                                              "PO scoring approx-po:tau=0.5", "PO scoring approx-po:tau=0.6",
                                              "LTR scoring approx-score:tau=0.6"}
    one_style_each(drawn, lambda label: label.split(" scoring ")[0])


def test_series_styles_stay_distinct_then_cycle():
    """Up to 10 series: tab10's colours, solid; up to 80: tab20's colours, then again dashed, dotted, dash-dotted;
    beyond: the same styles in the same order."""
    ten = series_styles(f"p{i}" for i in range(10))
    assert len({s.color for s in ten.values()}) == 10 and {s.linestyle for s in ten.values()} == {"-"}
    many = list(series_styles(f"p{i}" for i in range(85)).values())
    assert len(set(many[:80])) == 80 and {s.linestyle for s in many[:20]} == {"-"} and many[20].linestyle == "--"
    assert many[80:] == many[:5]
    again = series_styles(["b", "a", "b", "c"])  # first appearance, one style a name
    assert list(again) == ["b", "a", "c"] and len(set(again.values())) == 3
    avoided = series_styles(["x", "y"], avoid=["tab:blue", "tab:orange"])
    assert {s.color for s in avoided.values()}.isdisjoint({"#1f77b4", "#ff7f0e"})


def test_reproduce_line_panels_give_a_label_without_a_style_one_colour_of_its_own(monkeypatch, tmp_path):
    """fig3's "LTR at the paper's tau" has no entry in plotting.STYLE: it took matplotlib's cycle's first colour,
    FCFS's blue, in each panel (and a second such label orange, MLFQ's, or blue where it came first)."""
    from matplotlib.colors import to_hex

    from ltrsched import atomic
    from ltrsched.experiments import plotting

    figures, write = [], atomic.write_figure
    monkeypatch.setattr(atomic, "write_figure", lambda path, fig, **kw: figures.append(fig) or write(path, fig, **kw))
    line = ([1, 2], [0.1, 0.2])
    panels = {"a": {"FCFS": line, "LTR at the paper's tau": line, "Other": line},
              "b": {"Other": line, "LTR": line, "LTR at the paper's tau": line}}
    plotting.line_panels(panels, tmp_path / "f.png", "rate", "latency")
    (fig,) = figures
    drawn = [(line.get_label(), to_hex(line.get_color())) for ax in fig.axes for line in ax.get_lines()]
    one_style_each([(label, colour, "-") for label, colour in drawn], lambda label: label)
    assert dict(drawn)["FCFS"] == to_hex("tab:blue") and dict(drawn)["LTR"] == to_hex("tab:red")
    styled = {to_hex(c) for c, _ in plotting.STYLE.values()}
    assert styled.isdisjoint({dict(drawn)["Other"], dict(drawn)["LTR at the paper's tau"]})
