"""Hostile workload and labels files of other sources than ShareGPT, through the commands that read them: an output
named as the input, date-times in more than one format, numbers too large to print."""

from __future__ import annotations

import polars as pl

from cli_helpers import assert_one_line_error, run_cli_fast


def test_predict_refuses_to_write_over_its_workload(tmp_path, capsys):
    """`predict -w labels.parquet -o labels.parquet` replaced a labels file (train, eval and sampled rows: 120) with
    its scored eval split alone (30 rows plus a score), silently; the other commands refuse an output that names an
    input."""
    labels = tmp_path / "labels.parquet"
    pl.DataFrame({"prompt": ["a b c", "d e f"], "output_tokens": [3, 9]}).write_parquet(labels)
    before = labels.read_bytes()
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "ckpt", "-w", labels, "-o", tmp_path / "." / "labels.parquet")
    assert_one_line_error(r, f"--workload {labels} would be overwritten by the output")
    assert labels.read_bytes() == before


def test_date_times_in_two_formats_name_the_one_that_changes(tmp_path, capsys):
    """Arrival date-times in two formats (an ISO date, then a US one) were "non-numeric values (first:
    '2024-01-01 00:00:00') in row 1; it must hold numbers (seconds) or date-times": the row named held a date-time.
    A .csv's and a parquet's error now name the value that changes format and its row, as a .jsonl's names its line."""
    csv = tmp_path / "w.csv"
    csv.write_text("timestamp,prompt_tokens,output_tokens\n2024-01-01 00:00:00,10,20\n\n"
                   "2024-01-01 00:00:03,10,20\n01/02/2024 00:00:01,11,21\n")
    r = run_cli_fast(capsys, "simulate", "-w", csv, "--arrival", "replay")
    assert_one_line_error(r, "'01/02/2024 00:00:01' in row 4 is not a date-time in the format of the first, "
                          "'2024-01-01 00:00:00'")
    table = tmp_path / "w.parquet"
    pl.DataFrame({"prompt_tokens": [10, 20, 30], "output_tokens": [5, 7, 8],
                  "timestamp": ["2024-01-01 00:00:00", "2024-01-01 00:00:05", "yesterday"]}).write_parquet(table)
    r = run_cli_fast(capsys, "simulate", "-w", table, "--arrival", "replay")
    assert_one_line_error(r, "'yesterday' in row 3 is not a date-time in the format of the first")
    # (text that is no date-time from its first row on keeps its error; one format throughout is read)
    csv.write_text("timestamp,prompt_tokens,output_tokens\nsoon,10,20\nlater,11,21\n")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", csv), "non-numeric values (String, first: 'soon') in row 1")
    csv.write_text("timestamp,prompt_tokens,output_tokens\n2024-01-01 00:00:00,10,20\n2024-01-01 00:00:03,11,21\n")
    r = run_cli_fast(capsys, "simulate", "-w", csv, "--arrival", "replay", "-o", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert pl.read_parquet(tmp_path / "run" / "requests.parquet")["arrival_time"].sort().to_list() == [0.0, 3.0]


def test_an_arrival_time_of_1e300_prints_as_a_number_not_300_digits(tmp_path, capsys):
    """A trace with one arrival at 1e300 s: burst arrivals' note said "(1,000,000,...,160.0 s from first to last)"
    and a replay's error "request 0 arrives 31,688,...,544 years after request 1", 300 digits each."""
    csv = tmp_path / "w.csv"
    csv.write_text("arrival_time,prompt_tokens,output_tokens\n1e300,10,20\n1.0,10,21\n3.0,5,5\n")
    r = run_cli_fast(capsys, "simulate", "-w", csv)
    assert r.returncode == 0 and "(1e+300 s from first to last)" in r.stderr, r.stderr
    r = run_cli_fast(capsys, "simulate", "-w", csv, "--arrival", "replay")
    assert_one_line_error(r, "(request 0 in row 1 arrives 3.17e+292 years after request 1 in row 2)")
    assert len(r.stderr) < 600


def test_capacity_refuses_a_tpot_slo_where_every_output_is_one_token(tmp_path, capsys):
    """Another model's replies of 1 token each (a classifier's, a yes/no judge's): TPOT is undefined in every run,
    `capacity --slo tpot_p90=0.05` ran every rate down to 0.004 req/s as missing it, then its figure ended in a
    ValueError traceback (a log axis of no finite value)."""
    csv = tmp_path / "w.csv"
    csv.write_text("prompt_tokens,output_tokens\n" + "".join(f"{10 + i},1\n" for i in range(20)))
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "--slo", "tpot_p90=0.05", "-w", csv, "-n", "20",
                     "--seeds", "1", "-p", "fcfs", "-j", "1", "-o", tmp_path / "cap")
    assert_one_line_error(r, "--slo tpot_p90=0.05: TPOT (the time per output token after the first) is undefined "
                             f"for every request of {csv}: all of its outputs are 1 token")
    assert not (tmp_path / "cap" / "runs").exists()


def test_capacity_refuses_a_tpot_slo_where_one_seeds_requests_are_all_one_token(tmp_path, capsys):
    """39 replies of 1 token and one of 10: seed 3's 20 requests hold the long one, seed 4's do not, so the runs of
    seed 4 had no TPOT (infinitely late), every rate missed `tpot_p90=0.05` and the figure ended in a traceback."""
    csv = tmp_path / "w.csv"
    csv.write_text("prompt_tokens,output_tokens\n" + "".join(f"{10 + i},{10 if i == 7 else 1}\n" for i in range(40)))
    r = run_cli_fast(capsys, "capacity", "--slo", "tpot_p90=0.05", "-w", csv, "-n", "20", "--seeds", "2", "--seed", "3",
                     "-p", "fcfs", "-j", "1", "--max-rate", "8", "-o", tmp_path / "cap")
    assert_one_line_error(r, "--slo tpot_p90=0.05: TPOT (the time per output token after the first) is undefined in "
                             f"the runs of seed 4: the 20 requests it draws from {csv} all have outputs of 1 token")
    assert not (tmp_path / "cap" / "runs").exists()
