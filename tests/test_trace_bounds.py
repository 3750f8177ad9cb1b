"""plot trace and simulate --trace are bounded: a run of more steps than a trace holds (MAX_TRACE_STEPS, lowered here)
is one error line naming a window that fits, and --start/--end trace a window of it. Before, every step was written
(1,000 requests one at a time: 264k steps, a 175 MB file, 1.8 GB of memory while writing)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error
from test_plot_hostile import assert_chrome_trace, traced_run  # noqa: F401 (a fixture)


@pytest.fixture
def few_steps_per_trace(monkeypatch):
    """A trace holds at most 5 steps (250,000 in use: a run that long takes seconds to simulate)."""
    from ltrsched.plots import chrome_trace

    monkeypatch.setattr(chrome_trace, "MAX_TRACE_STEPS", 5)
    return 5


def _slices(path):
    return [e for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]


def test_a_trace_of_more_steps_than_a_trace_holds_is_one_line(capsys, tmp_path, traced_run, few_steps_per_trace):
    steps = pl.read_parquet(traced_run / "steps.parquet")
    assert steps.height > few_steps_per_trace
    r = run_cli_fast(capsys, "plot", "trace", traced_run, "-o", tmp_path / "t.json")
    assert_one_line_error(r, f"the step trace holds {steps.height:,} steps (")
    assert "more than the 5 a trace holds" in r.stderr and "--start 0 --end " in r.stderr
    assert not (tmp_path / "t.json").exists()


def test_the_window_the_error_names_fits_in_a_trace(capsys, tmp_path, traced_run, few_steps_per_trace):
    """The --start/--end the error line suggests is a window of at most MAX_TRACE_STEPS steps, which traces."""
    r = run_cli_fast(capsys, "plot", "trace", traced_run, "-o", tmp_path / "t.json")
    window = r.stderr.split("`ltrsched plot trace RUN ")[1].split("`")[0].split()
    r = run_cli_fast(capsys, "plot", "trace", traced_run, "-o", tmp_path / "t.json", *window)
    assert r.returncode == 0, r.stderr
    assert_chrome_trace(tmp_path / "t.json")
    assert 0 < len(_slices(tmp_path / "t.json")) <= few_steps_per_trace


def test_simulate_trace_of_a_run_too_long_to_trace_is_one_line(capsys, tmp_path, few_steps_per_trace):
    from conftest import make_workload

    make_workload([10, 20, 30], [8, 8, 8]).save(tmp_path / "w.parquet")
    r = run_cli_fast(capsys, "simulate", "-w", "w.parquet", "--trace", "t.json", cwd=tmp_path)
    assert_one_line_error(r, "more than the 5 a trace holds")
    assert not (tmp_path / "t.json").exists()


def test_a_window_traces_the_steps_that_start_in_it(capsys, tmp_path, traced_run):
    """Steps starting in [start, end) on every replica, numbered as in the whole run; a replica busy past the window's
    end keeps its counters (they drop to 0 where it idles, not where the window ends)."""
    whole = tmp_path / "whole.json"
    assert run_cli_fast(capsys, "plot", "trace", traced_run, "-o", whole).returncode == 0
    every = _slices(whole)
    starts = sorted({e["ts"] for e in every})
    lo, hi = starts[1] / 1e6, starts[-1] / 1e6  # (the second start on, the last one left out)
    r = run_cli_fast(capsys, "plot", "trace", traced_run, "-o", tmp_path / "w.json", "--start", repr(lo),
                     "--end", repr(hi))
    assert r.returncode == 0, r.stderr
    doc = assert_chrome_trace(tmp_path / "w.json")
    inside = [e for e in every if lo * 1e6 <= e["ts"] < hi * 1e6]
    assert _slices(tmp_path / "w.json") == inside  # (same names, args and step numbers as in the whole trace)
    assert doc["otherData"]["window_s"].startswith(f"[{lo:g}, {hi:g}) of ")



def test_counters_drop_to_zero_where_a_replica_idles_not_where_the_window_ends():
    """Three back-to-back steps, then a gap: a window of the first two zeroes no counter (the third follows at once);
    the whole trace zeroes them once, after the third."""
    from ltrsched.plots.chrome_trace import REQUIRED, chrome_trace

    steps = pl.DataFrame({c: [1, 1, 1, 1] for c in REQUIRED}).with_columns(
        start=pl.Series([0.0, 1.0, 2.0, 10.0]), duration=pl.Series([1.0, 1.0, 1.0, 1.0]))

    def zeroed_at(doc):
        return sorted({e["ts"] for e in doc["traceEvents"] if e["ph"] == "C" and e["name"] == "live requests"
                       and e["args"]["live"] == 0})

    assert zeroed_at(chrome_trace(steps)) == [3e6, 11e6]
    assert zeroed_at(chrome_trace(steps, None, 0.0, 2.0)) == []
    assert zeroed_at(chrome_trace(steps, None, 0.0, 2.5)) == [3e6]


@pytest.mark.parametrize("args, message", [
    (["--start", "nan"], "--start nan: give a time [s of simulated time], a finite number >= 0"),
    (["--end", "inf"], "--end inf: give a time [s of simulated time], a finite number >= 0"),
    (["--start", "-1"], "--start -1: give a time"),
    (["--start", "2", "--end", "2"], "--start 2 is not before --end 2: the window holds no time"),
    (["--start", "3", "--end", "1"], "--start 3 is not before --end 1"),
    (["--start", "1e6"], "no step of the run starts in the window [1e+06, inf) s: its steps start at "),
])
def test_a_window_that_holds_no_step_is_one_line(capsys, tmp_path, traced_run, args, message):
    r = run_cli_fast(capsys, "plot", "trace", traced_run, "-o", tmp_path / "t.json", *args)
    assert_one_line_error(r, message)
    assert not (tmp_path / "t.json").exists()


def test_the_trace_text_is_the_document_as_compact_strict_json(traced_run):
    """trace_text writes each event as it is made (not the whole document's objects first): the same bytes."""
    from ltrsched import strict_json
    from ltrsched.plots.chrome_trace import chrome_trace, trace_text
    from ltrsched.results import RunResult

    run = RunResult.load(traced_run)
    assert trace_text(run.steps, run.meta) == strict_json.dumps(chrome_trace(run.steps, run.meta),
                                                                separators=(",", ":"))
    assert trace_text(run.steps, run.meta, 0.0, 1e9) == strict_json.dumps(chrome_trace(run.steps, run.meta, 0.0, 1e9),
                                                                          separators=(",", ":"))
