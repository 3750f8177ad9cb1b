"""`ltrsched capacity` and `sweep` under hostile values their earlier audits did not try: SLO texts that name a real
metric but are no single upper limit, a limit too large to be a float, a first seed at the top of the seed range (each
one line, exit 2, before any run: no --out written), and a file where a run's directory goes."""

from __future__ import annotations

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast


@pytest.mark.parametrize("slo, message", [
    # (it said "'0.1,ttft_p90=0.2' is not a number of seconds")
    ("ttft_p90=0.1,ttft_p90=0.2", "--slo 'ttft_p90=0.1,ttft_p90=0.2': one SLO per --slo; repeat the option for each"),
    ("ttft_p90=0.1,tpot_p90=0.2", "one SLO per --slo; repeat the option for each, e.g. --slo ttft_p90=2 --slo "
                                  "tpot_p90=0.1"),
    # (it said "unknown metric 'ttft_p90>'", of a metric it knows)
    ("ttft_p90>=1", "--slo 'ttft_p90>=1': an SLO is an upper limit, METRIC=SECONDS (or METRIC<=SECONDS)"),
    # (1e400 is read as inf: it said "the limit must be a positive number of seconds, got 1e400")
    ("ttft_p90=1e400", "--slo 'ttft_p90=1e400': the limit must be at most 1e+08 s (about 3 years), got 1e400"),
    ("ttft_p90=inf", "the limit must be at most 1e+08 s (about 3 years), got inf"),
    ("ttft_p90=-inf", "the limit must be a positive number of seconds, got -inf"),
    ("ttft_p90=1e-400", "the limit must be a positive number of seconds, got 1e-400"),  # (0.0 as a float)
])
def test_an_slo_that_is_no_single_upper_limit_is_one_line_saying_so(capsys, tmp_path, slo, message):
    r = run_cli_fast(capsys, "capacity", "--slo", slo, "--out", tmp_path / "o")
    assert_one_line_error(r, message)
    assert not (tmp_path / "o").exists()


def test_a_comma_in_a_limit_without_a_metric_after_it_is_still_no_number(capsys, tmp_path):
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=0,5", "--out", tmp_path / "o")
    assert_one_line_error(r, "--slo 'ttft_p90=0,5': '0,5' is not a number of seconds")


@pytest.mark.parametrize("seeds, message", [
    ("1", "--seed must be below 2**64, got 18446744073709551616"),  # (it said "below 2**64 - 0 (runs use SEED..SEED+0)")
    ("3", "--seed must be below 2**64 - 2 (runs use SEED..SEED+2), got 18446744073709551616"),
])
def test_a_first_seed_past_the_seed_range_names_the_bound_plainly(capsys, tmp_path, seeds, message):
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=1", "--seed", str(2**64), "--seeds", seeds,
                     "--out", tmp_path / "o")
    assert_one_line_error(r, message)
    assert not (tmp_path / "o").exists()


def test_a_file_where_a_runs_directory_goes_is_one_line_naming_it(capsys, tmp_path):
    """A file in place of ``OUT/runs/<hash>`` (a sweep's or a capacity search's run): it said "cannot create the run
    lock .../.lock: File exists"."""
    sweep = tmp_path / "s.json"
    sweep.write_text('{"workloads": ["lmsys-like"], "policies": ["fcfs"], "num_requests": 5}')
    out = tmp_path / "o"
    assert run_cli_fast(capsys, "sweep", sweep, "--out", out, "--jobs", "1").returncode == 0
    (run,) = (out / "runs").iterdir()
    for child in run.iterdir():
        child.unlink()
    run.rmdir()
    run.write_text("not a run")
    r = run_cli_fast(capsys, "sweep", sweep, "--out", out, "--jobs", "1")
    assert_one_line_error(r, f"{run} is not a run directory but a file in its place, where this run's results go; "
                             "remove it (the run is then computed again)")
    run.unlink()
    assert run_cli_fast(capsys, "sweep", sweep, "--out", out, "--jobs", "1").returncode == 0
