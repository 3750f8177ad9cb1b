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
