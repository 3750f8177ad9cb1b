"""Follow-ups to ``simulate``: ``--trace`` refuses a file that is no trace before the run (it was refused after it,
once ``--out`` was saved); PO's warning about equal output lengths names the workload's lengths, not the ones PO
serves (15 estimate tokens more). Each case takes milliseconds."""

from __future__ import annotations

import json

from cli_helpers import assert_one_line_error, run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate


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


def test_po_warning_names_the_workloads_own_lengths(capsys):
    """One-token outputs: it said '(16 tokens)', counting PO's 15 estimate tokens; the estimates are drawn as before."""
    workload = make_workload([10] * 300, [1] * 300)
    result = simulate(workload, make_policy("po"), SimConfig(profile=LinearProfile()))
    err = capsys.readouterr().err
    assert "all 300 output lengths are equal (1 token)," in err, err
    assert result.requests["generated_tokens"].to_list() == [16] * 300
