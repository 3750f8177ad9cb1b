"""Predictors on other prompt sources and label-report's default learning-curve sizes (predsources audit)."""
from __future__ import annotations

import json

import polars as pl

from cli_helpers import run_cli_fast
from test_labels import synthetic_labels


def test_label_report_default_sizes_fit_the_train_prompts(capsys, tmp_path, monkeypatch):
    """The default --sizes 250,500,1000,2000 warned on every report of the committed 400-train-prompt labels that
    500, 1000 and 2000 exceed its train prompts; the default now keeps the sizes below them (explicit ones are
    still checked). Scaled down: defaults 10, 50, 100 on 30 train prompts."""
    import ltrsched.predictors.label_report as lr

    monkeypatch.setattr(lr, "DEFAULT_SIZES", (10, 50, 100, "all"))
    synthetic_labels(tmp_path / "l.parquet", num_train=30, num_eval=20, num_sample=0)
    r = run_cli_fast(capsys, "label-report", str(tmp_path / "l.parquet"), "--out", str(tmp_path / "a"), "--epochs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--sizes" not in r.stderr, r.stderr
    assert [p["num_train"] for p in json.loads((tmp_path / "a" / "report.json").read_text())["learning_curve"]] == [10, 30]
    # (explicit sizes past the train prompts still warn: test_labels.py::test_label_report_numbers_on_synthetic_labels)

def test_the_committed_labels_default_curve_is_250_and_all():
    from ltrsched.predictors.label_report import default_sizes

    df = pl.read_parquet("data/smollm2-labels.parquet")
    num_train = df.filter((pl.col("run") == "main") & (pl.col("split") == "train")).height
    assert num_train == 400
    assert default_sizes(num_train) == [250, "all"]
    assert default_sizes(250) == ["all"] and default_sizes(2001) == [250, 500, 1000, 2000, "all"]
