"""A sweep's router parameter that its router checks only when prepared on the workload (``least-work``'s
``max_model_len`` below the longest request) is refused before any run (helper scalefollow): the runs sorted ahead
of it ran first."""

from __future__ import annotations

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error


def _workload(tmp_path):
    """30 requests, the longest (request 29) 39 prompt + 49 output = 88 tokens, with predicted lengths."""
    path = tmp_path / "w.csv"
    path.write_text("prompt_tokens,output_tokens,predicted_length\n"
                    + "".join(f"{10 + i},{20 + i},{20 + i}\n" for i in range(30)))
    return path


def test_a_routers_max_model_len_below_the_longest_request_is_refused_before_any_run(tmp_path, capsys):
    _workload(tmp_path)
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["w.csv"]\npolicies = ["fcfs"]\nreplicas = [2]\n'
                     'routers = ["round-robin", "least-work:max_model_len=80"]\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(r, f"error: {sweep}: router 'least-work': max_model_len=80 is below request 29's 39 "
                             "prompt + 49 output tokens")
    assert not (tmp_path / "o" / "runs").exists()  # (round-robin's run, sorted ahead, ran before)


def test_a_routers_prepare_in_the_check_prints_nothing_and_refuses_nothing_valid(tmp_path, capsys):
    """A valid max_model_len runs; the check's prepare prints no line of its own (rank's warning about the stand-in
    zeros of its scoring column would be one)."""
    _workload(tmp_path)
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["w.csv"]\npolicies = ["fcfs"]\nreplicas = [2]\nscoring = "approx-score:tau=0.6"\n'
                     'routers = ["least-work:max_model_len=88", "rank"]\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert r.returncode == 0, r.stderr
    assert "2 runs simulated" in r.stdout and "warning" not in r.stderr
