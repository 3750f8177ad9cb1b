"""``ltrsched plot trace`` on directories that are not a simulated run with steps: a replay run (its steps.parquet
is the engine's step log) was told "the step trace lacks num_seqs, num_batched_tokens, host_blocks_in_use; record
it with simulate --record-steps", an option of another command, for a run that was no simulation; a sweep's or
validate's output directory was "not a run directory" with no word of the runs it holds."""

from __future__ import annotations

import shutil

import pytest

from cli_helpers import run_cli_captured, run_cli_fast
from test_cli_simulate import assert_one_line_error


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory):
    """A replay run on vLLM's emulated scheduler (no real engine): requests, summary and the engine's step log
    (made once; in this process, as test_validation's emulated replays are: vLLM's scheduler needs no process of its
    own)."""
    out = tmp_path_factory.mktemp("replay") / "run"
    r = run_cli_captured("replay", "-n", "5", "--emulate", "a100-llama3-8b", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "steps.parquet").is_file()
    return out


def test_plot_trace_of_a_replay_run_says_it_is_an_engine_log(capsys, replay_run, tmp_path):
    r = run_cli_fast(capsys, "plot", "trace", replay_run, "-o", tmp_path / "t.json")
    assert_one_line_error(r, "its steps.parquet is a real engine's step log (a replay or validate engine run), not a "
                             "simulated step trace, which plot trace draws; simulate the same workload and policy "
                             "with --record-steps --out DIR and give DIR")
    assert "lacks" not in r.stderr and not (tmp_path / "t.json").exists()


def test_plot_trace_of_a_validate_directory_names_its_runs(capsys, replay_run, tmp_path):
    """validate's --out holds runs/CASE/POLICY/{engine,sim}: the engine's with its log, the simulator's without
    steps; none can be traced, and the hint says so (suggesting the engine run would fail again)."""
    out = tmp_path / "v"
    shutil.copytree(replay_run, out / "runs" / "burst" / "fcfs" / "engine")
    (out / "runs" / "burst" / "fcfs" / "sim").mkdir()
    shutil.copy(replay_run / "summary.json", out / "runs" / "burst" / "fcfs" / "sim")
    shutil.copy(replay_run / "requests.parquet", out / "runs" / "burst" / "fcfs" / "sim")
    assert_one_line_error(run_cli_fast(capsys, "plot", "trace", out, "-o", tmp_path / "t.json"),
                          f"{out}: not a run directory (no summary.json); it holds runs (e.g. "
                          f"{out}/runs/burst/fcfs/engine), none with a simulated step trace")
    assert_one_line_error(run_cli_fast(capsys, "plot", "trace", out / "runs" / "burst" / "fcfs" / "sim", "-o",
                                       tmp_path / "t.json"),
                          "the run has no steps.parquet; simulate it with --record-steps --out DIR (simulate's "
                          "option) and give DIR")


def test_plot_trace_of_a_directory_of_runs_suggests_one_it_can_trace(capsys, tmp_path):
    run = tmp_path / "sweep" / "runs" / "0abc"
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", "--record-steps", "--out", run)
    assert r.returncode == 0, r.stderr
    assert_one_line_error(run_cli_fast(capsys, "plot", "trace", tmp_path / "sweep", "-o", tmp_path / "t.json"),
                          f"not a run directory (no summary.json); it holds runs: give one's directory, e.g. {run}")
    r = run_cli_fast(capsys, "plot", "trace", run, "-o", tmp_path / "t.json")  # (the one it suggests can be traced)
    assert r.returncode == 0, r.stderr
