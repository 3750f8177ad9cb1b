"""Follow-ups to ``simulate``: ``--trace`` refuses a file that is no trace before the run (it was refused after it,
once ``--out`` was saved). Each case takes milliseconds."""

from __future__ import annotations

import json

from cli_helpers import assert_one_line_error, run_cli_fast


def test_trace_that_would_replace_another_file_is_refused_before_the_run(capsys, tmp_path):
    """Before: the run was simulated and its --out directory written, then the trace's check refused the file."""
    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n10,3\n20,4\n")
    other = tmp_path / "summary.json"
    other.write_text('{"policy": "fcfs"}')
    r = run_cli_fast(capsys, "simulate", "-w", workload, "-o", tmp_path / "run", "--trace", other, "--no-progress")
    assert_one_line_error(r, f"--trace {other} exists and is not a Chrome trace")
    assert "simulated" not in r.stdout and not (tmp_path / "run").exists()
    assert json.loads(other.read_text()) == {"policy": "fcfs"}
