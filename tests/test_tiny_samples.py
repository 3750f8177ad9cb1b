"""Tiny inputs: a CDF panel of one value, equal values, zeros or none; Kendall's tau of one request (scipy's own
warning reached the user's stderr); a tau on a handful of held-out prompts, printed as if it meant something."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from cli_helpers import run_cli_fast
from label_data import english_rows, write_label_jsonl
from test_audit_pred2 import _labels, _ranker
from test_other_lengths import _label_overlaps, _shown_labels


# ---------------------------------------------------------------- CDF panels
#: Values of every panel: one request; two equal values; values all 0 (drawn from -0.055 to 0.055 with labels
#: -0.050 and -0.025: negative latencies); no value at all ("no finite values").
FEW_VALUES = {"one": [0.0158938], "two-equal": [0.0158938, 0.0158938], "all-zero": [0.0, 0.0], "none": []}


@pytest.mark.parametrize("values", FEW_VALUES.values(), ids=FEW_VALUES.keys())
def test_cdf_panels_of_few_values_have_a_readable_non_negative_scale(values):
    import matplotlib.pyplot as plt

    from ltrsched.plots.cdf import CDF_METRICS, cdf_figure

    requests = pl.DataFrame({m: values for m in CDF_METRICS}, schema={m: pl.Float64 for m in CDF_METRICS})
    fig = cdf_figure([("", [("fcfs", requests)])])
    try:
        assert _label_overlaps(fig) == []
        for ax in fig.axes:
            shown = _shown_labels(ax)
            assert len(shown) >= 2, [t.get_text() for t in shown]  # (a scale to read)
            assert all(t.get_position()[0] >= 0 for t in shown), [t.get_text() for t in shown]  # (no negative time)
            low, high = ax.get_xlim()
            for line in ax.get_lines():  # (inside the panel, not on its left spine)
                assert low < min(line.get_xdata()) and max(line.get_xdata()) < high, (ax.get_xlim(), line.get_xdata())
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- tau of one value
def _one_request(length: int = 57):
    from ltrsched.workloads.schema import Workload

    return Workload(pl.DataFrame({"request_id": [0], "prompt_tokens": [10], "output_tokens": [length],
                                  "arrival_time": [0.0]}), "test")


def _trained_ltr_scores(monkeypatch):
    """A stand-in for the trained ranker: a score per request (no checkpoint to train or load)."""
    from ltrsched.experiments import scoring

    def score(workload, name="sharegpt"):
        out = workload.df["output_tokens"].to_numpy()
        return workload.with_df(workload.df.with_columns(score=pl.Series(-np.log(out), dtype=pl.Float64)))
    monkeypatch.setattr(scoring, "_trained", lambda kind: score)


def _tau_of_tiny_inputs(monkeypatch):
    from ltrsched.experiments import approx, scoring
    from ltrsched.predictors.predictor import kendall_tau

    _trained_ltr_scores(monkeypatch)
    return {
        "trained-ltr scoring of 1 request": lambda: scoring.attach_scores(_one_request(), "trained-ltr:sharegpt")[1]
        ["kendall_tau"],
        "approx-po of 1 request": lambda: scoring.attach_scores(_one_request(), "approx-po:tau=0.5")[1]["kendall_tau"],
        "approx-class of 1 request": lambda: scoring.attach_scores(_one_request(), "approx-class:bucket=100,tau=0.5")[1]
        ["kendall_tau"],
        "kendall_tau_b of none": lambda: approx.kendall_tau_b(np.zeros(0), np.zeros(0)),
        "predictor's kendall_tau of 1 prompt": lambda: kendall_tau(np.array([0.3]), np.array([5])),
    }


@pytest.mark.parametrize("case", ["trained-ltr scoring of 1 request", "approx-po of 1 request",
                                  "approx-class of 1 request", "kendall_tau_b of none",
                                  "predictor's kendall_tau of 1 prompt"])
def test_tau_of_fewer_than_two_values_is_undefined_without_scipys_warning(monkeypatch, case):
    """A 1-request workload with ``trained-*`` scoring printed scipy's ``SmallSampleWarning: One or more sample
    arguments is too small; all returned values will be NaN`` (and the source line that raised it) on stderr."""
    compute = _tau_of_tiny_inputs(monkeypatch)[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tau = compute()
    assert tau is None or np.isnan(tau), tau


def test_tau_of_two_values_is_still_scipys():
    from ltrsched.experiments import approx
    from ltrsched.predictors.predictor import kendall_tau

    assert approx.kendall_tau_b(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert kendall_tau(np.array([1.0, 2.0]), np.array([3, 4])) == -1.0
    with pytest.raises(ValueError):  # (sizes that differ stay scipy's error)
        approx.kendall_tau_b(np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0]))


# ---------------------------------------------------------------- a tau on a few held-out prompts
def test_the_few_prompts_warning_gives_the_standard_error_of_chance():
    from ltrsched.predictors.tau_noise import MIN_HELD_OUT, few_prompts_warning, tau_standard_error

    assert tau_standard_error(3) == pytest.approx(0.6383, abs=1e-4)  # sqrt(2 (2n + 5) / (9 n (n - 1)))
    assert tau_standard_error(100) == pytest.approx(0.0678, abs=1e-4)
    line = few_prompts_warning(3)
    assert line.startswith("warning: a Kendall tau on only 3 held-out prompts says little") and "0.64" in line
    assert "\n" not in line
    assert few_prompts_warning(MIN_HELD_OUT - 1) is not None and few_prompts_warning(MIN_HELD_OUT) is None


def test_label_report_on_3_held_out_prompts_warns_that_its_taus_mean_little(tmp_path, capsys):
    """It printed tau -1.000 on 3 held-out prompts without a word (nor in report.md)."""
    _labels(tmp_path / "l.parquet", {"train": english_rows(20, 0), "eval": english_rows(3, 1)})
    r = run_cli_fast(capsys, "label-report", tmp_path / "l.parquet", "-o", tmp_path / "r", "--sizes", "all",
                     "--epochs", "1")
    assert r.returncode == 0, r.stderr
    found = [line for line in r.stderr.splitlines() if "held-out prompts says little" in line]
    assert found == ["warning: a Kendall tau on only 3 held-out prompts says little: by chance alone it has a "
                     "standard error of 0.64 (scores unrelated to the lengths); 100 or more bring it to 0.07"], r.stderr
    assert "Warning: a Kendall tau on only 3 held-out prompts says little" in (tmp_path / "r" / "report.md").read_text()


def test_evaluate_warns_on_few_prompts_and_not_on_100(tmp_path, capsys):
    _ranker(tmp_path / "m", english_rows(40, 0))
    write_label_jsonl(tmp_path / "few.jsonl", english_rows(3, 1))
    write_label_jsonl(tmp_path / "many.jsonl", english_rows(100, 2))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "m", "--data", tmp_path / "few.jsonl")
    assert r.returncode == 0 and "a Kendall tau on only 3 evaluated prompts says little" in r.stderr, r.stderr
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "m", "--data", tmp_path / "many.jsonl")
    assert r.returncode == 0 and "says little" not in r.stderr, r.stderr


def test_train_and_ensemble_warn_on_few_held_out_prompts(tmp_path, capsys):
    write_label_jsonl(tmp_path / "train.jsonl", english_rows(40, 0))
    write_label_jsonl(tmp_path / "eval.jsonl", english_rows(3, 1))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "train.jsonl", "--eval-data", tmp_path / "eval.jsonl",
                     "-o", tmp_path / "a", "--epochs", "1")
    assert r.returncode == 0 and "a Kendall tau on only 3 held-out prompts says little" in r.stderr, r.stderr
    _ranker(tmp_path / "b", english_rows(40, 0), seed=1)
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "a", "-m", tmp_path / "b", "--data", tmp_path / "train.jsonl",
                     "--eval-data", tmp_path / "eval.jsonl", "-o", tmp_path / "e")
    assert r.returncode == 0 and "a Kendall tau on only 3 held-out prompts says little" in r.stderr, r.stderr
