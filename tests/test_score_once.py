"""Each prompt scored once per command: a class model's ``predict`` scored every prompt twice (its scores, then its
predicted lengths), and ``evaluate`` scored twice too (a class model's tau, then its accuracy) and once more for
``--plot`` (any model): for a model backbone (probe, hf) twice the minutes. The backbone is a stand-in that counts
the prompts it prepares (an n-gram one: no model loads); the outputs are compared with the old path's, scores and
lengths computed apart."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from cli_helpers import run_cli_fast

WORDS = "please explain the story of a word list write answer today city code python".split()


class Counting:
    """An n-gram backbone that counts each prompt it prepares (features of a model backbone: a pass per prompt)."""

    prepared: Counter = Counter()

    def __init__(self, inner):
        self.inner = inner

    def prepare(self, prompts):
        Counting.prepared.update(prompts)
        return self.inner.prepare(prompts)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def counting(monkeypatch):
    import ltrsched.predictors.predictor as predictor

    real = predictor.make_backbone
    monkeypatch.setattr(predictor, "make_backbone", lambda config, outputs: Counting(real(config, outputs)))
    Counting.prepared = Counter()
    return Counting


def _rows(name: str, n: int) -> list[dict]:
    return [{"prompt": " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3 + i % 5)) + f" {name} {i}",
             "output_tokens": 10 + 37 * (i % 11)} for i in range(n)]


@pytest.fixture(params=["class", "rank"])
def model(request, tmp_path, counting):
    """A trained n-gram model of each kind under ``tmp_path/m`` (a class model of 40-token buckets), and a workload of
    30 prompts, ``tmp_path/w.jsonl``."""
    from ltrsched.predictors.config import PredictorConfig, class_count
    from ltrsched.predictors.predictor import Predictor

    rows = _rows("score", 30)
    (tmp_path / "w.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train = _rows("train", 40)
    kind = request.param
    config = (PredictorConfig(kind="class", bucket=40, num_classes=class_count(40, 500), epochs=1)
              if kind == "class" else PredictorConfig(kind="rank", epochs=1))
    p = Predictor(config)
    p.fit([r["prompt"] for r in train], np.array([r["output_tokens"] for r in train]))
    p.save(tmp_path / "m")
    counting.prepared = Counter()
    return kind, tmp_path / "m", tmp_path / "w.jsonl", rows


def _scored_once(counting, rows) -> bool:
    return {counting.prepared[r["prompt"]] for r in rows} == {1}


def test_predict_scores_each_prompt_once_and_writes_what_it_wrote(tmp_path, capsys, model, counting):
    import polars as pl

    from ltrsched.predictors.predictor import Predictor

    kind, directory, workload, rows = model
    r = run_cli_fast(capsys, "predict", "-m", directory, "-w", workload, "-o", tmp_path / "s.parquet")
    assert r.returncode == 0, r.stderr
    assert _scored_once(counting, rows), counting.prepared
    out = pl.read_parquet(tmp_path / "s.parquet")
    old = Predictor.load(directory)  # (the old path: scores and lengths, each from a pass of its own)
    prompts = [r["prompt"] for r in rows]
    assert out["score"].to_numpy().tobytes() == old.scores(prompts).tobytes()
    if kind == "class":
        assert out["predicted_length"].to_numpy().tobytes() == old.predicted_lengths(prompts).tobytes()
    else:
        assert "predicted_length" not in out.columns


def test_evaluate_with_a_plot_scores_each_prompt_once_and_prints_what_it_printed(tmp_path, capsys, model, counting):
    from ltrsched import strict_json
    from ltrsched.predictors.commands import TAU_VARIANT
    from ltrsched.predictors.predictor import Predictor, bucket_accuracy, kendall_tau

    kind, directory, workload, rows = model
    r = run_cli_fast(capsys, "evaluate", "-m", directory, "--data", workload, "--plot", tmp_path / "cal.png")
    assert r.returncode == 0, r.stderr
    assert _scored_once(counting, rows), counting.prepared
    assert (tmp_path / "cal.png").stat().st_size > 0
    old = Predictor.load(directory)
    prompts, lengths = [r["prompt"] for r in rows], np.array([r["output_tokens"] for r in rows])
    expected = {"tau": kendall_tau(old.scores(prompts), lengths)}
    if kind == "class":
        expected["accuracy"] = bucket_accuracy(old.predicted_lengths(prompts), lengths, old.config.bucket,
                                               old.config.num_classes)
    want = strict_json.dumps({"num_prompts": len(prompts), **expected, "tau_variant": TAU_VARIANT}, indent=2)
    assert r.stdout.splitlines()[: len(want.splitlines())] == want.splitlines()


@pytest.mark.parametrize("kind", ["class", "rank"])
def test_training_prepares_its_held_out_prompts_once(counting, kind):
    """``fit`` scores the held-out prompts before training and after each epoch: their features are prepared once
    (they were tokenised and featurised each time, a class model's twice an epoch: its tau, then its accuracy), and
    the metrics are those of a fresh scoring, bit for bit."""
    from ltrsched.predictors.config import PredictorConfig, class_count
    from ltrsched.predictors.predictor import Predictor

    train, held = _rows("train", 40), _rows("eval", 12)
    config = (PredictorConfig(kind="class", bucket=40, num_classes=class_count(40, 500), epochs=2) if kind == "class"
              else PredictorConfig(kind="rank", epochs=2))
    p = Predictor(config)
    held_prompts, held_lengths = [r["prompt"] for r in held], np.array([r["output_tokens"] for r in held])
    p.fit([r["prompt"] for r in train], np.array([r["output_tokens"] for r in train]), held_prompts, held_lengths)
    assert {counting.prepared[r["prompt"]] for r in held} == {1}, counting.prepared
    assert len(p.config.metrics) == 2 and all(("accuracy" in m) == (kind == "class") for m in p.config.metrics)
    last = p.config.metrics[-1]
    assert p.evaluate(held_prompts, held_lengths) == {k: last[k] for k in ("tau", "accuracy") if k in last}
    assert {counting.prepared[r["prompt"]] for r in held} == {2}  # (after training nothing is kept)
