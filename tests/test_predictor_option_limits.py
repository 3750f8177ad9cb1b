"""Predictor options at the limits of their types: `train --label-bucket 2**63` was an OverflowError traceback
(lengths are int64); `label-report --epochs 2**63` (or a seed past int64) was refused only after the progress lines
of its first ranker; a labels file that is a pipe was "not found". Each is one line (exit code 2), before any
work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ltrsched.errors import UserError
from test_cli_simulate import assert_one_line_error, run_cli

LABELS = Path(__file__).resolve().parents[1] / "data" / "smollm2-labels.parquet"


@pytest.mark.parametrize("field", ["label_bucket", "bucket"])
def test_a_bucket_wider_than_int64_is_refused(field):
    from ltrsched.predictors.config import PredictorConfig

    with pytest.raises(UserError, match=rf"^{field} must be in \[1, 9223372036854775807\], got 9223372036854775808$"):
        PredictorConfig(**{field: 2**63})
    assert getattr(PredictorConfig(**{field: 2**63 - 1}), field) == 2**63 - 1


@pytest.mark.parametrize("lr", [2.0, 1e23, 1e-9, 1e-300])
def test_a_learning_rate_out_of_trains_range_is_refused_by_the_config_too(lr):
    """``train --lr`` took [1e-8, 1] only; a PredictorConfig built in code took any positive rate (1e23: a ranker's
    scores of 1e24). Both now refuse it in the same words, from one definition of the bounds."""
    from ltrsched.predictors.commands import _check_train_numbers
    from ltrsched.predictors.config import PredictorConfig

    says = ("must be in [1e-08, 1] (Adam's step per weight: below, training moves no prompt's rank; above, it "
            f"collapses or only scales the scores), got {lr:g}")
    with pytest.raises(UserError) as err:
        PredictorConfig(lr=lr)
    assert str(err.value) == f"lr {says}"
    with pytest.raises(UserError) as err:
        _check_train_numbers(None, 32, 2048, 820, 1, lr, 0)
    assert str(err.value) == f"--lr {says}"


def test_the_learning_rates_at_the_bounds_are_taken():
    from ltrsched.predictors.config import MAX_LR, MIN_LR, PredictorConfig

    assert [PredictorConfig(lr=lr).lr for lr in (MIN_LR, MAX_LR, 1)] == [1e-8, 1.0, 1]


def test_train_with_a_label_bucket_wider_than_int64_is_one_line(tmp_path):
    for name, n in (("train.jsonl", 12), ("eval.jsonl", 8)):
        (tmp_path / name).write_text("".join(json.dumps({"prompt": f"{name} prompt number {i} " + "word " * i,
                                                         "output_tokens": 5 + 7 * i}) + "\n" for i in range(n)))
    r = run_cli("train", "--data", str(tmp_path / "train.jsonl"), "--eval-data", str(tmp_path / "eval.jsonl"),
                "--label-bucket", str(2**63), "-o", str(tmp_path / "ckpt"))
    assert_one_line_error(r, "label_bucket must be in [1, 9223372036854775807], got 9223372036854775808")
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--epochs", str(2**63), "epochs must be in [1, 10000], got 9223372036854775808"),
    ("--seed", str(2**63), "seed must be in [0, 9223372036854775807], got 9223372036854775808"),
])
def test_label_report_refuses_ranker_settings_before_training(tmp_path, option, value, message):
    r = run_cli("label-report", str(LABELS), "-o", str(tmp_path / "r"), "--sizes", "all", option, value)
    assert_one_line_error(r, message)  # (one line: no "training the ranker ..." ahead of it)
    assert not (tmp_path / "r" / "report.md").exists()


def test_label_report_names_a_labels_file_that_is_a_pipe(tmp_path):
    os.mkfifo(tmp_path / "labels.parquet")
    assert_one_line_error(run_cli("label-report", str(tmp_path / "labels.parquet"), "-o", str(tmp_path / "r")),
                          f"labels file '{tmp_path / 'labels.parquet'}' is a named pipe (FIFO), not a regular file")


def test_a_gguf_model_that_is_a_device_is_not_called_missing(tmp_path):
    from ltrsched.predictors.backbones import resolve_hf_model

    (tmp_path / "m.gguf").symlink_to("/dev/zero")
    with pytest.raises(UserError, match=r"^--hf-model '.*m\.gguf' is a character device, not a regular file"):
        resolve_hf_model(str(tmp_path / "m.gguf"))


@pytest.mark.parametrize("lr", [2.0, 1e-9])
def test_a_checkpoint_saved_with_a_rate_outside_the_range_still_loads(tmp_path, lr):
    """A config built in code took any positive rate before the range bounded it, and its checkpoint was saved;
    loading it (to score, evaluate or serve) then failed with the training range's error, although only training
    reads the rate. It loads, keeping the rate it was trained with; a config built now is still refused."""
    from ltrsched.predictors.config import CONFIG_FILE, PredictorConfig

    PredictorConfig().save(tmp_path)
    data = json.loads((tmp_path / CONFIG_FILE).read_text())
    (tmp_path / CONFIG_FILE).write_text(json.dumps({**data, "lr": lr}))
    assert PredictorConfig.load(tmp_path).lr == lr
    with pytest.raises(UserError):
        PredictorConfig(lr=lr)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({**data, "lr": -1.0}))
    with pytest.raises(UserError, match="lr must be > 0"):
        PredictorConfig.load(tmp_path)
