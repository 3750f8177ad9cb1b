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
