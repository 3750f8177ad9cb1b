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
def test_names_with_lone_surrogates_or_control_characters(capsys, monkeypatch, tmp_path, one_run):
    """A name holding a lone surrogate (a workload file named in another encoding than UTF-8: its bytes read as
    '\\udcff') was a TypeError traceback from matplotlib's font; a control character (ESC) an empty box, noted as a
    glyph a font would add; a right-to-left override turned the entry around. They are drawn as their escapes, as
    error lines print them."""
    copy_run(one_run, tmp_path / "sweep" / "runs" / "a", "fcfs\udcff", workload="w\udcfe")
    copy_run(one_run, tmp_path / "sweep" / "runs" / "b", "srtf\x1b[31m\u202ex", workload="w\nx")
    fig = plotted(capsys, monkeypatch, tmp_path / "sweep", "-o", tmp_path / "cdf.png")
    # (U+202E, right-to-left override, drew the rest of the entry backwards: "x(3=n)")
    assert legend_texts(fig) == [["fcfs\\udcff (n=3)"], ["srtf\\x1b[31m\\u202ex (n=3)"]]
    assert [fig.axes[k].get_title() for k in (0, 3)] == ["workload w\\udcfe", "workload w\\nx"]


@pytest.mark.filterwarnings("error")
def test_requests_that_did_not_finish_end_the_line_below_1(capsys, monkeypatch, tmp_path, one_run):
    """An engine run's aborted requests (no finish time, no latency) were left out of its CDF, which rose to 1 over
    the finished ones: a run that finished 2 of 3 requests drew as one that finished all. Its line ends at 2/3, and
    its legend says how many did not finish."""
    def abort_last(t):
        last = pl.int_range(pl.len()) == pl.len() - 1
        return t.with_columns([pl.when(last).then(None).otherwise(pl.col(c)).alias(c) for c in
                               ("finish_time", "latency_per_token", "ttft", "tpot", "e2e_latency")])

    copy_run(one_run, tmp_path / "sweep" / "runs" / "a", "FCFS", requests=abort_last)
    copy_run(one_run, tmp_path / "sweep" / "runs" / "b", "SRTF")
    fig = plotted(capsys, monkeypatch, tmp_path / "sweep", "-o", tmp_path / "cdf.png")
    assert legend_texts(fig) == [["FCFS (n=2, 1 unfinished)", "SRTF (n=3)"]]
    for ax in fig.axes:
        tops = {line.get_label().split(" (")[0]: max(line.get_ydata()) for line in ax.get_lines()}
        assert tops == {"FCFS": pytest.approx(2 / 3), "SRTF": 1.0}


@pytest.mark.parametrize("title, message", [
    # drawn down over the panels ("Tight layout not applied"), cut off at the image's edges
    ("line\n" * 199 + "line", "--title has 200 lines, more than the 3 that fit above the panels"),
    ("a\n" + "x" * 3000, "--title: its line 2 has 3,000 characters, more than the 70 that fit the figure's width"),
])
def test_a_title_larger_than_the_figure_is_one_line(capsys, tmp_path, one_run, title, message):
    r = run_cli_fast(capsys, "plot", "cdf", one_run, "--title", title, "-o", tmp_path / "c.png")
    assert_one_line_error(r, message)
    assert not (tmp_path / "c.png").exists()


@pytest.mark.filterwarnings("error")
def test_the_largest_title_that_fits(capsys, monkeypatch, tmp_path, one_run):
    """As many lines as a title may have, each of as many of the widest letter as a line may have (3 of 70): drawn
    whole, above the panels."""
    from ltrsched.plots.cdf import MAX_TITLE_CHARS, MAX_TITLE_LINES

    title = "\n".join(["W" * MAX_TITLE_CHARS] * MAX_TITLE_LINES)
    fig = plotted(capsys, monkeypatch, one_run, "--title", title, "-o", tmp_path / "c.png")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # (the figure was closed once saved)
    title = fig._suptitle.get_window_extent(renderer)
    assert 0 <= title.x0 and title.x1 <= fig.bbox.width and title.y1 <= fig.bbox.height
    assert all(title.y0 >= ax.get_window_extent(renderer).y1 for ax in fig.axes)


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


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory):
    """A saved 2-replica run with its step trace (replica 1 idles between two bursts)."""
    from conftest import LinearProfile, make_workload
    from ltrsched.policies import make_policy
    from ltrsched.routers import make_router
    from ltrsched.sim import SimConfig
    from ltrsched.sim.cluster import simulate_cluster

    wl = make_workload([30, 10, 20, 40], [5, 1, 3, 2], [0.0, 0.0, 2.0, 2.0])
    result = simulate_cluster(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), record_steps=True), 2,
                              make_router("round-robin"))
    return result.save(tmp_path_factory.mktemp("traced") / "run")


def assert_chrome_trace(path):
    """What the trace-event format (and Perfetto's JSON importer) needs: a ``traceEvents`` list of events, each
    with a name, a phase ``ph`` and whole process and thread ids; slices (X) and counters (C) a finite timestamp
    ``ts`` [us] >= 0, slices a duration, counters finite numbers only; no NaN or Infinity anywhere."""
    import math

    def refuse(constant):
        raise AssertionError(f"{constant} in the trace")

    doc = json.loads(path.read_text(), parse_constant=refuse)
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list) and doc["traceEvents"]
    number = (int, float)
    for e in doc["traceEvents"]:
        assert isinstance(e["name"], str) and e["ph"] in ("M", "X", "C"), e
        assert type(e["pid"]) is int and e["pid"] >= 0 and type(e.get("tid", 0)) is int, e
        if e["ph"] in ("X", "C"):
            assert isinstance(e["ts"], number) and math.isfinite(e["ts"]) and e["ts"] >= 0, e
        if e["ph"] == "X":
            assert isinstance(e["dur"], number) and math.isfinite(e["dur"]) and e["dur"] >= 0, e
        if e["ph"] == "C":
            assert e["args"] and all(isinstance(v, number) and not isinstance(v, bool) and math.isfinite(v)
                                     for v in e["args"].values()), e
    return doc


def test_plot_trace_writes_a_valid_chrome_trace(capsys, tmp_path, traced_run):
    r = run_cli_fast(capsys, "plot", "trace", traced_run, "-o", tmp_path / "t.json")
    assert r.returncode == 0, r.stderr
    doc = assert_chrome_trace(tmp_path / "t.json")
    assert {e["pid"] for e in doc["traceEvents"]} == {0, 1}


@pytest.mark.parametrize("column, value, message", [
    # a NaN or infinite replica: ValueError/OverflowError tracebacks from int(); 0.5 was drawn as replica 0
    ("replica", pl.lit(float("nan")), "column 'replica' has values that are not finite"),
    ("replica", pl.lit(float("inf")), "column 'replica' has values that are not finite"),
    ("replica", pl.Series([0.5]), "column 'replica' holds 1 value(s) that are no replica number, a whole number in "
                                  "[0, 2,147,483,648) (first: 0.5)"),
    ("replica", pl.Series([-1]), "(first: -1)"),
    ("replica", pl.Series([2**40]), "(first: 1.09951e+12)"),
    # a NaN or infinite counter was written as null ("seqs": null), exit 0: no counter for viewers
    ("num_seqs", pl.Series([float("nan")]), "column 'num_seqs' has values that are not finite"),
    ("blocks_in_use", pl.Series([float("inf")]), "column 'blocks_in_use' has values that are not finite"),
    ("num_evicted", pl.Series([-2]), "column 'num_evicted' holds 1 negative value(s) (first: -2), no count"),
])
def test_plot_trace_of_a_damaged_step_trace_is_one_line(capsys, tmp_path, traced_run, column, value, message):
    """One step's value damaged (the first, or all of them for a literal)."""
    run = tmp_path / "run"
    shutil.copytree(traced_run, run)
    steps = pl.read_parquet(run / "steps.parquet")
    if isinstance(value, pl.Series):  # the first step's value only
        value = pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(value[0])).otherwise(pl.col(column))
    steps.with_columns(value.alias(column)).write_parquet(run / "steps.parquet")
    assert_one_line_error(run_cli_fast(capsys, "plot", "trace", run, "-o", tmp_path / "t.json"), message)
    assert not (tmp_path / "t.json").exists()


def test_plot_trace_of_a_run_named_with_a_lone_surrogate(capsys, tmp_path, traced_run):
    """A workload named by bytes that are no UTF-8 (read as a lone surrogate, '\\udcff') was written into the trace's
    otherData as the JSON escape of no character (RFC 8259, 8.2: how readers take one is unpredictable); now as the
    escape's text."""
    run = tmp_path / "run"
    shutil.copytree(traced_run, run)
    summary = json.loads((run / "summary.json").read_text())
    summary["meta"]["workload"] = "w\udcff.csv"
    (run / "summary.json").write_text(json.dumps(summary))
    assert run_cli_fast(capsys, "plot", "trace", run, "-o", tmp_path / "t.json").returncode == 0
    doc = assert_chrome_trace(tmp_path / "t.json")
    assert doc["otherData"]["workload"] == "w\\udcff.csv"


@pytest.mark.parametrize("damage, message", [
    ("no steps", "the step trace holds no steps: nothing to trace"),  # an empty trace, exit 0
    ("meta list", "the run's 'meta' is list, not a table: a damaged summary.json"),  # AttributeError traceback
])
def test_plot_trace_of_an_empty_trace_or_a_damaged_summary_is_one_line(capsys, tmp_path, traced_run, damage,
                                                                       message):
    run = tmp_path / "run"
    shutil.copytree(traced_run, run)
    if damage == "no steps":
        pl.read_parquet(run / "steps.parquet").head(0).write_parquet(run / "steps.parquet")
    else:
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "meta": [1]}))
    assert_one_line_error(run_cli_fast(capsys, "plot", "trace", run, "-o", tmp_path / "t.json"), message)
    assert not (tmp_path / "t.json").exists()


@pytest.mark.filterwarnings("error")
def test_simulate_cdf_of_a_plugin_policy_named_with_dollars_and_1_token_outputs(capsys, monkeypatch, tmp_path):
    """`simulate --cdf` labels its line with the policy: a plugin's policy named `$\\foo$` ended in a mathtext
    traceback after the run; 1-token outputs (no TPOT) leave the TPOT panel saying so."""
    from conftest import make_workload
    from ltrsched import atomic

    (tmp_path / "dollar.py").write_text(
        "from ltrsched.policies import Policy, register\n\n"
        "@register\nclass Dollar(Policy):\n    \"\"\"FCFS under a name matplotlib would typeset.\"\"\"\n\n"
        "    name = '$\\\\foo$'\n\n    def rank(self, view):\n        return view.order_by(view.arrival_time)\n")
    make_workload([10, 20, 30], [1, 1, 1]).save(tmp_path / "w.parquet")
    figures, write = [], atomic.write_figure
    monkeypatch.setattr(atomic, "write_figure", lambda path, fig, **kw: figures.append(fig) or write(path, fig, **kw))
    r = run_cli_fast(capsys, "simulate", "-w", "w.parquet", "--plugin", "dollar.py", "--policy", "$\\foo$",
                     "--cdf", "c.png", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
    (fig,) = figures
    assert legend_texts(fig) == [["\\$\\foo\\$ (n=3)"]]
    # (why, as the summary's table says it: the panel said "no finite values" alone)
    assert [t.get_text() for t in fig.axes[2].texts] == [
        "no finite values:\nevery finished request has\n1 output token (no time between tokens)"]


@pytest.mark.filterwarnings("error")
def test_reproduce_line_panels_with_a_panel_of_zeros_or_missing_values(tmp_path):
    """A fig3/fig4 panel whose values were all missing (NaN, a summary's null) ended `reproduce` in "ValueError: Data
    cannot be log-scaled"; one of zeros only (no request waited at a low rate) warned "Data has no positive values".
    Such a panel's axis stays linear now."""
    from ltrsched.experiments.plotting import line_panels

    panels = {"missing": {"FCFS": ([2, 8], [float("nan"), None]), "LTR": ([2, 8], [None, None])},
              "zeros": {"FCFS": ([2, 8], [0.0, 0.0])},
              "some": {"FCFS": ([2, 8], [0.5, 2.0]), "LTR": ([2, 8], [None, 1.0])}}
    assert line_panels(panels, tmp_path / "f.png", "rate", "wait").read_bytes()[:4] == b"\x89PNG"


def test_plot_cdf_of_a_validate_directory_names_the_runs_it_holds(capsys, tmp_path, one_run):
    """validate's --out holds runs/CASE/POLICY/{engine,sim}, deeper than a sweep's runs/HASH: plot cdf said only
    "neither a run directory nor a sweep/reproduce directory", with no word of the runs there."""
    out = tmp_path / "v"
    for kind in ("engine", "sim"):
        copy_run(one_run, out / "runs" / "burst" / "fcfs" / kind)
    r = run_cli_fast(capsys, "plot", "cdf", out, "-o", tmp_path / "c.png")
    assert_one_line_error(r, f"{out}: neither a run directory (summary.json + requests.parquet) nor a sweep/reproduce "
                             f"directory with finished runs under runs/; it holds runs deeper down (e.g. "
                             f"{out / 'runs' / 'burst' / 'fcfs' / 'engine'}): give their directories")
    r = run_cli_fast(capsys, "plot", "cdf", *(out / "runs" / "burst" / "fcfs" / k for k in ("engine", "sim")),
                     "-o", tmp_path / "c.png")
    assert r.returncode == 0 and "2 runs" in r.stdout, r.stderr


def test_a_lone_requests_cdf_is_a_visible_step(capsys, monkeypatch, tmp_path, one_run):
    """A run with one finished request: its CDF, one point at (x, 1), was drawn as a line of one point, nothing to
    see; each line now rises from 0 at its smallest value."""
    run = copy_run(one_run, tmp_path / "lone", requests=lambda t: t.head(1))
    fig = plotted(capsys, monkeypatch, run, "-o", tmp_path / "c.png")
    for ax in fig.axes:
        (line,) = ax.get_lines()
        x, y = line.get_xdata(), line.get_ydata()
        assert len(x) == 2 and x[0] == x[1] and list(y) == [0.0, 1.0]
    assert legend_texts(fig) == [["FCFS (n=1)"]]


def test_a_lone_replica_beside_a_cluster_run_is_labelled_without_a_router(tmp_path, one_run):
    """A run directory of one replica plotted beside a cluster run: its line read "FCFS x1 router None"."""
    from ltrsched.plots.runs import group_for_plot, load_runs

    copy_run(one_run, tmp_path / "sweep" / "runs" / "a")
    copy_run(one_run, tmp_path / "sweep" / "runs" / "b", replicas=2, router="round-robin")
    ((_, lines),) = group_for_plot(load_runs([tmp_path / "sweep"]))
    assert [label for label, _ in lines] == ["FCFS x1", "FCFS x2 router round-robin"]


def test_a_long_title_with_a_control_character_is_shown_cut_in_one_short_line(capsys, tmp_path, one_run):
    """The error echoed the whole title (3,010 characters: a line of 3,200); it shows its escaped start and end, its
    length and where the control character is."""
    title = "load " * 300 + "\x1b[31m" + "x" * 1500 + "\u202e end"
    r = run_cli_fast(capsys, "plot", "cdf", one_run, "--title", title, "-o", tmp_path / "c.png")
    assert_one_line_error(r, "error: --title 'load load load load load load load load...xxxxxxxxx\\u202e end' "
                             f"({len(title):,} characters): '\\x1b' (character 1,501) is a control character")
    assert len(r.stderr.strip()) < 300 and "\u202e" not in r.stderr and not (tmp_path / "c.png").exists()


def test_runs_in_directories_named_with_bytes_that_are_no_utf8(capsys, tmp_path, one_run, traced_run):
    """A run directory whose name holds a byte that is no UTF-8 (b'\\xff', read as '\\udcff'): polars took the path
    for no path, a TypeError traceback from plot cdf and plot trace. Both read it, the trace byte for byte that of the
    run under a UTF-8 name."""
    shutil.copytree(one_run, tmp_path / "run\udcff")
    r = run_cli_fast(capsys, "plot", "cdf", tmp_path / "run\udcff", "-o", tmp_path / "cdf.png")
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
    shutil.copytree(traced_run, tmp_path / "traced\udcfe")
    for run, out in ((traced_run, "a.json"), (tmp_path / "traced\udcfe", "b.json")):
        r = run_cli_fast(capsys, "plot", "trace", run, "-o", tmp_path / out, "--end", "2.5")
        assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


@pytest.mark.parametrize("vary, message", [
    ("label", "81 runs would be 81 lines in a row of panels, more than the 80 whose styles tell them "
              "apart; plot fewer runs at once"),
    ("rate", "41 settings would make 41 rows of panels; plot fewer runs at once"),
])
def test_too_many_lines_or_rows_are_refused_before_any_table_is_read(capsys, tmp_path, one_run, vary, message):
    """A sweep of 10,000 policies drew 10,000 lines in one row (188 s of CPU, 1 GB, a legend of 625 columns); one of
    10,000 settings read every run's requests table before refusing (15.7 s of CPU, now 2.1-2.7; BENCHMARKS.md,
    "Streamed writes"). Here the last run's requests.parquet is damaged: it is never read."""
    count = 81 if vary == "label" else 41
    for i in range(count):
        copy_run(one_run, tmp_path / "sweep" / "runs" / f"r{i:03d}",
                 **({"label": f"p{i}"} if vary == "label" else {"rate": float(i + 1)}), workload="test")
    (tmp_path / "sweep" / "runs" / f"r{count - 1:03d}" / "requests.parquet").write_bytes(b"PAR1 damaged")
    r = run_cli_fast(capsys, "plot", "cdf", tmp_path / "sweep", "-o", tmp_path / "cdf.png")
    assert_one_line_error(r, message)
    assert not (tmp_path / "cdf.png").exists()
