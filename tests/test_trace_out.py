"""The picture commands' output files. plot trace -o / simulate --trace write over an earlier trace (a rerun) or an
empty file, and refuse any other file, as `profile -o` refuses a file that is no profile: another run's summary.json,
a workload or sweep .json was replaced by the trace, exit 0. A file named by its suffix alone (-o .png) is told so."""

from __future__ import annotations

import json
import shutil

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error
from test_plot_hostile import traced_run  # noqa: F401 (a fixture)

OTHERS = {
    "another run's summary": '{"summary": {"makespan": 1.0}, "meta": {}}',
    "a ShareGPT workload": '[{"conversations": [{"from": "human", "value": "hi"}]}]',
    "a trace-event array": '[{"name": "x", "ph": "X", "ts": 0, "dur": 1, "pid": 0, "tid": 0}]',
    "not JSON": "some notes\n",
}


@pytest.mark.parametrize("what", list(OTHERS))
def test_plot_trace_refuses_to_write_over_a_file_that_is_no_trace(capsys, tmp_path, traced_run, what):
    out = tmp_path / "t.json"
    out.write_text(OTHERS[what])
    r = run_cli_fast(capsys, "plot", "trace", traced_run, "-o", out)
    assert_one_line_error(r, f"--out {out} exists and is not a Chrome trace (trace-event JSON, as `plot trace` "
                             "writes): the trace would replace it; give another --out, or move that file away first")
    assert out.read_text() == OTHERS[what]


def test_simulate_trace_refuses_to_write_over_another_runs_summary(capsys, tmp_path):
    from conftest import make_workload

    make_workload([10, 20, 30], [4, 4, 4]).save(tmp_path / "w.parquet")
    assert run_cli_fast(capsys, "simulate", "-w", "w.parquet", "-o", "a", cwd=tmp_path).returncode == 0
    summary = (tmp_path / "a" / "summary.json").read_text()
    r = run_cli_fast(capsys, "simulate", "-w", "w.parquet", "--trace", "a/summary.json", cwd=tmp_path)
    assert_one_line_error(r, "--trace a/summary.json exists and is not a Chrome trace")
    assert (tmp_path / "a" / "summary.json").read_text() == summary


def test_a_trace_or_an_empty_file_is_written_over(capsys, tmp_path, traced_run):
    out = tmp_path / "t.json"
    out.write_text("")
    assert run_cli_fast(capsys, "plot", "trace", traced_run, "-o", out).returncode == 0
    first = out.read_bytes()
    run = tmp_path / "run"
    shutil.copytree(traced_run, run)
    summary = json.loads((run / "summary.json").read_text())
    summary["meta"]["policy"] = "srtf"
    (run / "summary.json").write_text(json.dumps(summary))
    r = run_cli_fast(capsys, "plot", "trace", run, "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() != first and json.loads(out.read_text())["otherData"]["policy"] == "srtf"


@pytest.mark.parametrize("command, option, name, example", [
    (["plot", "cdf", "RUN"], "-o", ".png", "cdf.png"),
    (["plot", "cdf", "RUN"], "-o", ".PDF", "cdf.PDF"),
    (["plot", "trace", "RUN"], "-o", ".json", "trace.json"),
    (["simulate", "-n", "1"], "--cdf", ".svg", "cdf.svg"),
])
def test_a_file_named_by_its_suffix_alone_is_told_so(capsys, tmp_path, traced_run, command, option, name, example):
    """`-o .png` was told "--out must end in .png, .pdf, .svg, got .png" (pathlib reads a hidden file, no suffix)."""
    args = [traced_run if a == "RUN" else a for a in command]
    r = run_cli_fast(capsys, *args, option, tmp_path / name)
    shown = "--out" if option == "-o" else option
    assert_one_line_error(r, f"{shown} {tmp_path / name}: the name is its suffix alone, which names a hidden file "
                             f"without one; give a name before the suffix, e.g. {example}")
