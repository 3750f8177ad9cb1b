"""Checks found by following README.md as a newcomer: what a command prints must name the files it wrote."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import run_cli_fast


def test_simulate_record_steps_names_every_file_it_wrote_with_its_directory(capsys, tmp_path):
    """`simulate --record-steps --out DIR` printed `wrote DIR/requests.parquet, DIR/summary.json, steps.parquet`:
    the steps file without its directory, as if it were in the current one."""
    out = tmp_path / "runs" / "srtf"
    res = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "30", "--policy", "srtf", "--record-steps",
                       "--out", out)
    assert res.returncode == 0, res.stderr
    wrote = next(line for line in res.stdout.splitlines() if line.startswith("wrote "))
    named = [Path(p.strip()) for p in wrote.removeprefix("wrote ").split(",")]
    assert named == [out / "requests.parquet", out / "summary.json", out / "steps.parquet"]
    assert all(p.is_file() for p in named)


def test_simulate_without_record_steps_names_no_steps_file(capsys, tmp_path):
    out = tmp_path / "run"
    res = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "30", "--policy", "fcfs", "--out", out)
    assert res.returncode == 0, res.stderr
    wrote = next(line for line in res.stdout.splitlines() if line.startswith("wrote "))
    assert wrote == f"wrote {out}/requests.parquet, {out}/summary.json"
    assert not (out / "steps.parquet").exists()
