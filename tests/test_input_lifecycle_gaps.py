"""Input and lifecycle gaps an audit found: a CSV with two arrival columns used the first, silently; a slow
millisecond trace starting near 0 replayed 1000x slower without a warning; a conversations parquet's own token
counts were recounted from its text; closing an engine left the process pinned (CPUs, torch's thread count). Each
is now a correct load, a one-line warning, or a one-line error (exit code 2), never a traceback."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.workloads.loaders import load_workload
from test_cli_simulate import assert_one_line_error, run_cli


# -- two columns for one field of a .csv ---------------------------------------------------------------------------

@pytest.mark.parametrize("first, second", [("arrival_time", "timestamp"), ("TIMESTAMP", "arrived_at"),
                                           ("arrival_time_ms", "timestamp_ms")])
def test_a_csv_with_two_arrival_columns_names_both(tmp_path, first, second):
    """``arrival_time`` beside ``timestamp``: the first in CSV_COLUMNS' order was used, whichever held the times."""
    path = tmp_path / "t.csv"
    path.write_text(f"{first},{second},prompt_tokens,output_tokens\n0,5,3,4\n1,9,3,4\n")
    with pytest.raises(UserError, match=f"t.csv: columns '.*' and '.*' both give the arrival times \\(arrival_time\\); "
                                        "which does\\? keep one \\(drop or rename the other\\)$") as info:
        load_workload(str(path))
    assert repr(first) in str(info.value) and repr(second) in str(info.value)
    assert_one_line_error(run_cli("simulate", "-w", str(path)), "both give the arrival times")


def test_a_csv_with_two_prompt_length_columns_names_both(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("prompt_tokens,input_tokens,output_tokens\n3,30,4\n")
    with pytest.raises(UserError, match="columns 'prompt_tokens' and 'input_tokens' both give the prompt lengths"):
        load_workload(str(path))


def test_a_csv_with_one_name_per_field_still_loads(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Timestamp,ContextTokens,GeneratedTokens\n0,3,4\n1.5,5,6\n")
    assert load_workload(str(path)).df["arrival_time"].to_list() == [0.0, 1.5]


# -- a slow millisecond trace from 0 ------------------------------------------------------------------------------

@pytest.mark.parametrize("n, gap_ms", [(50, 1500.0), (100, 500.0), (12, 2000.0), (100, 1500.0)])
def test_a_slow_millisecond_trace_from_zero_warns(tmp_path, n, gap_ms):
    """Times from 0 in ms, 0.5-2 s apart: read as seconds, a span under a day, so the days rule did not warn (50
    requests 1.5 s apart: 20 hours, gaps of 25 minutes), and the run replayed 1000x slower, silently."""
    from ltrsched.workloads.arrivals import seconds_unit_warning

    times = np.arange(n) * gap_ms
    assert seconds_unit_warning(times) is not None
    path = tmp_path / "t.csv"
    pl.DataFrame({"arrival_time": times, "prompt_tokens": [5] * n, "output_tokens": [5] * n}).write_csv(path)
    r = run_cli("simulate", "-w", str(path), "--arrival", "replay")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {path}: its arrival times, read as seconds")
    assert "name the column arrival_time_ms" in lines[0]


@pytest.mark.parametrize("rate, n", [(r, n) for r in (0.05, 0.5, 2.0, 20.0) for n in (20, 200, 2000)]
                         + [(0.01, 20), (0.01, 200)])
def test_seconds_poisson_workloads_do_not_warn(rate, n):
    """(At 0.01 req/s, 2,000 requests span 2.3 days with median gaps of 69 s: the days rule's ground, a trace in
    milliseconds at 10 req/s read as seconds, which it warns of.)"""
    from ltrsched.workloads.arrivals import arrival_times, seconds_unit_warning

    for seed in range(5):
        assert seconds_unit_warning(arrival_times(n, "poisson", rate, seed=seed)) is None


def test_a_handful_of_requests_minutes_apart_does_not_warn():
    from ltrsched.workloads.arrivals import seconds_unit_warning

    assert seconds_unit_warning(np.array([0.0, 1500.0, 3000.0])) is None  # 50 minutes: their pace says little


@pytest.mark.parametrize("name", ["azure-2023-code.csv", "azure-2023-conv.csv"])
def test_the_azure_traces_do_not_warn_even_scaled_down(name):
    """The committed Azure traces (../shared/data) as given, and thinned to every 20th request (gaps of about 1-2.5
    s, an hour), stay below the slow rule."""
    from ltrsched.sim.profiles.derive_a100 import default_data_dir
    from ltrsched.workloads.arrivals import seconds_unit_warning

    trace = default_data_dir().parent / "traces" / name
    if not trace.exists():
        pytest.skip(f"reference data not found at {trace}")
    wl = load_workload(str(trace))
    assert "arrival_warning" not in wl.meta
    times = np.sort(wl.df["arrival_time"].to_numpy())
    assert seconds_unit_warning(times[::20]) is None
