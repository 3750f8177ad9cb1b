"""Predictors trained or evaluated on another model's lengths and prompts (predaudit2): which Kendall tau is reported,
class buckets that do not fit the data, prompts cut by the model, scores an LTR policy cannot order, checkpoints from
elsewhere, and the overhead measurement's batch sizes. Each case ends in a correct result or one line (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from cli_helpers import run_cli_fast
from label_data import english_rows, write_label_jsonl


def _one_line_error(r, *parts: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def _ranker(path, rows, **config):
    """An n-gram ranker (one epoch, 4,096 buckets) trained on ``rows`` and saved at ``path``."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(epochs=1, dim=4096, **config))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(path)
    return predictor


def _capped(rows, cap: int = 512, share: float = 0.6):
    """``rows`` with the first ``share`` of every 10 at a served model's ``cap`` [tokens]."""
    return [(p, cap if i % 10 < share * 10 else n) for i, (p, n) in enumerate(rows)]


# ---------------------------------------------------------------- which tau
def test_evaluate_and_train_name_the_tau_variant_and_it_is_tau_b_on_capped_lengths(tmp_path, capsys):
    """60% of the held-out lengths at a 512-token cap: tau-a and tau-b differ by a third there, and the outputs said
    only "tau"."""
    rows = _capped(english_rows(40, 1))
    write_label_jsonl(tmp_path / "ev.jsonl", rows)
    write_label_jsonl(tmp_path / "tr.jsonl", english_rows(60, 0))
    predictor = _ranker(tmp_path / "ck", english_rows(60, 0))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["tau_variant"] == "tau-b"
    scores, lengths = predictor.scores([p for p, _ in rows]), np.array([n for _, n in rows])
    assert result["tau"] == pytest.approx(kendalltau(scores, -lengths, variant="b").statistic, abs=1e-12)
    assert result["tau"] != pytest.approx(kendalltau(scores, -lengths, variant="c").statistic, abs=1e-3)
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
                     "-o", tmp_path / "m", "--epochs", "1")
    assert r.returncode == 0 and "held-out (40) Kendall tau-b " in r.stdout, r


# ---------------------------------------------------------------- class buckets
@pytest.mark.parametrize("lengths, bucket, fitting", [
    (lambda i, n: 1 + n % 49, 820, 4),  # a short-answer model: every length under 50 tokens
    (lambda i, n: 512 if i % 10 < 6 else n, 820, 41),  # 60% at a 512-token cap, the rest 93-268
    (lambda i, n: 2000 + n, 1000, 17),  # 2,090-2,268 tokens: one bucket of a width given by hand
])
def test_class_lengths_in_one_default_bucket_name_a_bucket_from_the_data(tmp_path, capsys, lengths, bucket, fitting):
    """The class buckets are fixed widths (820 tokens: a tenth of ChatGPT's 8k span); another model's lengths all in
    one were refused with "use a smaller --bucket", no width named. The width named is a tenth of the training
    lengths' range, and it trains."""
    from ltrsched.predictors.config import PredictorConfig, class_count
    from ltrsched.predictors.predictor import bucket_labels

    train = [(p, lengths(i, n)) for i, (p, n) in enumerate(english_rows(60, 0))]
    write_label_jsonl(tmp_path / "tr.jsonl", train)
    write_label_jsonl(tmp_path / "ev.jsonl", [(p, lengths(i, n)) for i, (p, n) in enumerate(english_rows(20, 1))])
    args = ("train", "--kind", "class", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
            "--epochs", "1", "-o", tmp_path / "c")
    r = run_cli_fast(capsys, *args, "--bucket", bucket)
    _one_line_error(r, f"falls in one bucket of {bucket} tokens (--bucket {bucket}): nothing to learn; use --bucket "
                       f"{fitting} or less (about 10 classes over these lengths")
    assert ("the default 820 is a tenth of ChatGPT's 8,192-token span" in r.stderr) == (bucket == 820)
    values = np.array([n for _, n in train])
    config = PredictorConfig(kind="class", loss="ce", bucket=fitting, num_classes=class_count(fitting, values.max()))
    assert len(np.unique(bucket_labels(config, values))) >= 5  # (several classes, not two)
    r = run_cli_fast(capsys, *args, "--bucket", fitting)
    assert r.returncode == 0, r.stderr


def test_rank_labels_in_one_bucket_name_label_bucket_1(tmp_path, capsys):
    write_label_jsonl(tmp_path / "tr.jsonl", [(p, 1 + n % 49) for p, n in english_rows(30, 0)])
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(10, 1))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
                     "--label-bucket", "100", "--epochs", "1", "-o", tmp_path / "r")
    _one_line_error(r, "(--label-bucket 100): nothing to learn; use --label-bucket 1 (the labels are then the lengths)")
