"""Hostile workload files an audit of the CLI found mishandled: a parquet whose ``request_id`` or ``arrival_time``
holds lists (tracebacks), a parquet's date-time arrivals (refused as "non-numeric", though a .csv's date-times are
read), and a Mooncake line without its ``timestamp`` named by another key. Each is now a correct load or a one-line
error (exit code 2)."""

from __future__ import annotations

import datetime
import json

import polars as pl
import pytest

from ltrsched.workloads.loaders import load_workload
from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error


@pytest.mark.parametrize("ids, shown", [([[0], [1]], "[0]"), ([{"a": 1}, {"a": 2}], "{'a': 1}")])
def test_request_ids_that_are_lists_or_structs_are_a_one_line_error(capsys, tmp_path, ids, shown):
    """A list column's comparison with 0 was a NotImplementedError traceback."""
    path = tmp_path / "t.parquet"
    pl.DataFrame({"request_id": ids, "prompt_tokens": [1, 2], "output_tokens": [5, 6]}).write_parquet(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w",
                                       str(path)), f"t.parquet: row 1: request_id {shown} is not a whole "
                                                                "number")


def test_arrival_times_that_are_lists_are_a_one_line_error(capsys, tmp_path):
    """The unit check cast the column to Float64 before the schema's check: an InvalidOperationError traceback."""
    path = tmp_path / "t.parquet"
    pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [1, 2], "output_tokens": [5, 6],
                  "arrival_time": [[0.0], [1.0]]}).write_parquet(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)),
                          "t.parquet: column arrival_time has non-numeric values (List(Float64), first: [0.0])")


def _table(arrivals, column="arrival_time") -> pl.DataFrame:
    n = len(arrivals)
    return pl.DataFrame({"request_id": list(range(n)), "prompt_tokens": [5] * n, "output_tokens": [3] * n,
                         column: arrivals})


def test_a_parquets_date_times_are_seconds_since_the_earliest(capsys, tmp_path):
    """A pandas export of a trace's wall-clock times (Datetime, Date, with a time zone) was refused as "non-numeric
    values"; a .csv's date-times were read as seconds since the earliest. So are a parquet's."""
    t0 = datetime.datetime(2023, 11, 16, 18, 15, 46)
    path = tmp_path / "t.parquet"
    _table([t0 + datetime.timedelta(seconds=5), t0, t0 + datetime.timedelta(seconds=60.5)]).write_parquet(path)
    wl = load_workload(str(path))
    assert wl.df["arrival_time"].to_list() == [5.0, 0.0, 60.5] and "arrival_warning" not in wl.meta
    zoned = _table([t0, t0 + datetime.timedelta(hours=1)]).with_columns(
        pl.col("arrival_time").dt.replace_time_zone("Europe/Paris"))
    zoned.write_parquet(path)
    assert load_workload(str(path)).df["arrival_time"].to_list() == [0.0, 3600.0]
    _table([datetime.date(2023, 1, 1), datetime.date(2023, 1, 2)]).write_parquet(path)
    assert load_workload(str(path)).df["arrival_time"].to_list() == [0.0, 86400.0]
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--arrival", "replay", "--rate", "1")
    assert r.returncode == 0, r.stderr


def test_a_parquets_durations_are_seconds_whatever_the_columns_suffix(tmp_path):
    path = tmp_path / "t.parquet"
    _table([datetime.timedelta(seconds=1.5), datetime.timedelta(seconds=3)], "arrival_time_ms").write_parquet(path)
    assert load_workload(str(path)).df["arrival_time"].to_list() == [1.5, 3.0]  # (a Duration states its unit)


def test_a_missing_date_time_is_a_one_line_error(capsys, tmp_path):
    path = tmp_path / "t.parquet"
    _table([datetime.datetime(2023, 1, 1), None]).write_parquet(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w",
                                       str(path)), "t.parquet: column 'arrival_time' in row 2 is missing (null), not an arrival time")


def test_a_mooncake_line_without_its_timestamp_is_named_by_its_key(capsys, tmp_path):
    """It said "no 'arrival_time', which other lines have", a key no line of the file has."""
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"input_length": 5, "output_length": 5}) + "\n"
                    + json.dumps({"timestamp": 10, "input_length": 5, "output_length": 5}) + "\n")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)),
                          "m.jsonl:1: no 'timestamp', which other lines have; give it on every line or none")


def test_a_directory_given_as_a_sweeps_or_capacitys_workload_is_named_a_directory(capsys, tmp_path):
    """simulate said "is a directory, not a file"; a sweep and capacity (which key runs by the workload's
    fingerprint first) said it was "neither a file nor a built-in", of a path that exists."""
    (tmp_path / "data").mkdir()
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["data"]\npolicies = ["fcfs"]\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out")),
                          f"workload '{tmp_path / 'data'}' is a directory, not a file")
    assert_one_line_error(run_cli_fast(capsys, "capacity", "-w", str(tmp_path / "data"), "-p", "fcfs", "--slo",
                                       "ttft_p90=2",
                                               "--out", str(tmp_path / "cap")),
                          f"workload '{tmp_path / 'data'}' is a directory, not a file")


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_separated_by_another_character_says_so(capsys, tmp_path, sep):
    """A spreadsheet's export in some locales separates fields by ';': the header was one column, and the error
    named it without saying why."""
    path = tmp_path / "t.csv"
    path.write_text(f"prompt_tokens{sep}output_tokens\n5{sep}5\n")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)),
                          f"(one column: the file separates its fields by {sep!r}, where a .csv here separates them "
                          "by ','; save it with commas)")
