"""Work done once per command on the same inputs (preddup): ``Predictor.load`` reads its weights file and its
``predictor.json`` once each (it read the weights twice, torch's load and the digest check, and predictor.json four
times); ``ensemble`` refuses one checkpoint given twice (``-m a -m ./a``: loaded twice, scored twice and averaged in
at twice the weight, without a word) before loading any; the prompts a model backbone cuts are counted from the
token ids it scores them by (each prompt was tokenised a second time to count them). Spies count the calls."""

from __future__ import annotations

import builtins
import io
from collections import Counter

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from label_data import english_rows, write_label_jsonl


@pytest.fixture
def opened(monkeypatch):
    """A Counter of the files opened (by name), through ``open`` and ``Path.open`` (``io.open``) alike."""
    counts: Counter = Counter()
    real = io.open

    def spy(file, *args, **kwargs):
        counts[str(file).rsplit("/", 1)[-1]] += 1
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    return counts


def _ranker(path, rows):
    """A one-epoch n-gram ranker of 4,096 buckets trained on ``rows`` (prompt, length) and saved at ``path``."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(epochs=1, dim=4096))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(path)
    return predictor


def test_load_reads_the_weights_and_the_config_once_each(tmp_path, opened):
    from ltrsched.predictors.predictor import Predictor

    trained = _ranker(tmp_path / "ck", english_rows(30, 0))
    opened.clear()
    loaded = Predictor.load(tmp_path / "ck")
    assert opened["weights.pt"] == 1 and opened["predictor.json"] == 1, opened
    prompts = [p for p, _ in english_rows(8, 1)]
    assert np.array_equal(loaded.scores(prompts), trained.scores(prompts))  # (the same weights, bit for bit)
    assert loaded.weights_digest is not None
    assert np.array_equal(loaded.training_prompts, trained.training_prompts)
