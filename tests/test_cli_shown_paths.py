"""Paths in the CLI's success lines (``wrote PATH``) shown on one line, as its error lines show them
(:func:`ltrsched.names.shown_path`): a file named with a line break split ``wrote ...`` into two lines, and an ESC
in a name reached the terminal as a control sequence."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from conftest import make_workload
from ltrsched.names import one_line, shown_path


@pytest.mark.parametrize("text, shown", [
    ("a\nb", "a\\nb"), ("a\r\nb", "a\\r\\nb"), ("a\x1b[31mb", "a\\x1b[31mb"), ("a\u2028b\x85c", "a\\u2028b\\x85c"),
    ("a\x00b\x7f", "a\\x00b\\x7f"), ("tab\tkept, é 中 ok", "tab\tkept, é 中 ok"),
])
def test_one_line_escapes_line_breaks_and_control_characters(text, shown):
    assert one_line(text) == shown
    assert len(one_line(text).splitlines()) == 1


def test_simulate_writes_its_paths_on_one_line(tmp_path, capsys):
    wl = tmp_path / "wl.parquet"
    make_workload([10, 20], [5, 6]).save(wl)
    out, trace = tmp_path / "run\nx", tmp_path / "t\x1b[2J.json"
    r = run_cli_fast(capsys, "simulate", "-w", wl, "-o", out, "--record-steps", "--trace", trace)
    assert r.returncode == 0, r.stderr
    wrote = [line for line in r.stdout.splitlines() if line.startswith("wrote ")]
    assert wrote == [f"wrote {shown_path(out / 'requests.parquet')}, {shown_path(out / 'summary.json')}, "
                     f"{shown_path(out / 'steps.parquet')}",
                     f"wrote {shown_path(trace)} (open in https://ui.perfetto.dev)"]
    assert "run\\nx/summary.json" in wrote[0] and "t\\x1b[2J.json" in wrote[1]
    assert "\x1b" not in r.stdout and (out / "summary.json").is_file()  # (the files keep their names)


def test_an_error_names_a_path_on_one_line_too(tmp_path, capsys):
    r = run_cli_fast(capsys, "plot", "trace", tmp_path / "a\x1b[31m\nb")
    assert r.returncode == 2 and r.stderr == f"error: {tmp_path}/a\\x1b[31m\\nb: not a run directory (no summary.json)\n"


def test_a_note_naming_the_workload_file_is_one_line(tmp_path, capsys):
    wl = tmp_path / "w\nx.parquet"
    make_workload([10, 20], [5, 6], arrivals=[0.0, 2.0]).save(wl)
    r = run_cli_fast(capsys, "simulate", "-w", wl)  # (burst arrivals set the file's own times aside: a note)
    assert r.returncode == 0 and r.stderr.startswith("note: ") and r.stderr.count("\n") == 1, r.stderr
    assert "note: w\\nx has arrival times of its own" in r.stderr
    assert r.stdout.startswith("w\\nx | fcfs | a100-llama3-8b\n")  # (the run's title: the workload's name)
