"""The plain progress lines of a predictor's slow parts off a terminal (before: nothing until done): a training's
featurising of its prompts before the first list (the probe: a pass of its language model per prompt) and its
held-out scoring after each epoch (``train rank: K of N prompts featurised, S s``, ``... held-out prompts scored``),
and ``predict`` / ``evaluate`` scoring a workload (``predict: K of N prompts scored, S s``). The probe is a stand-in
(an n-gram backbone that reports each prompt's features as ready one by one, as the probe does): no language model
loads; the clock is a fake one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import run_cli_fast
from test_progress import FakeClock
from test_progress_commands import _counting, _lines

WORDS = "please explain the story of a word list write answer today city code python".split()


@pytest.fixture(autouse=True)
def every_10_s(monkeypatch):
    """The lines every 10 s, as outside the test suite (its conftest turns them off)."""
    monkeypatch.delenv("LTRSCHED_PROGRESS_EVERY_S", raising=False)


class PerPrompt:
    """An n-gram backbone whose ``prepare`` reports each prompt's features as ready, one by one, through
    ``on_featurised`` (as :class:`~ltrsched.predictors.probe.ProbeBackbone` does: a model pass per prompt)."""

    def __init__(self, inner):
        self.inner = inner
        self.on_featurised = None

    def prepare(self, prompts):
        data = self.inner.prepare(prompts)
        for _ in prompts:
            if self.on_featurised is not None:
                self.on_featurised(1)
        return data

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def per_prompt(monkeypatch):
    import ltrsched.predictors.predictor as predictor

    real = predictor.make_backbone
    monkeypatch.setattr(predictor, "make_backbone", lambda config, outputs: PerPrompt(real(config, outputs)))


def _write(path, name: str, n: int) -> None:
    path.write_text("".join(
        json.dumps({"prompt": " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3 + i % 5)) + f" {name} {i}",
                    "output_tokens": 10 + 7 * (i % 11)}) + "\n" for i in range(n)))


def test_train_prints_prompts_featurised_and_held_out_prompts_scored(tmp_path, capsys, monkeypatch, per_prompt):
    _write(tmp_path / "train.jsonl", "train", 64)
    _write(tmp_path / "eval.jsonl", "eval", 24)
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(3.0))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "train.jsonl", "--eval-data", tmp_path / "eval.jsonl",
                     "-o", tmp_path / "m", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    assert _counting(_lines(r.stderr, "train rank", "prompts featurised"), 64), r.stderr
    scored = _lines(r.stderr, "train rank", "held-out prompts scored")  # (before training and after each epoch)
    assert scored and all(t == 24 and 0 < d <= 24 and s >= 10 for d, t, s in scored), r.stderr
    assert "featurised" not in r.stdout and "scored" not in r.stdout


@pytest.fixture
def model(tmp_path, per_prompt):
    """A trained n-gram ranker (with the stand-in backbone) under ``tmp_path/m``, and a workload of 40 prompts."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    _write(tmp_path / "w.jsonl", "score", 40)
    rows = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text().splitlines()]
    prompts = [f"{r['prompt']} train" for r in rows]
    p = Predictor(PredictorConfig(kind="rank", epochs=1))
    p.fit(prompts, np.array([r["output_tokens"] for r in rows]))
    p.save(tmp_path / "m")
    return tmp_path / "m", tmp_path / "w.jsonl", [r["prompt"] for r in rows]


def test_predict_prints_prompts_scored_and_writes_the_same_scores(tmp_path, capsys, monkeypatch, model):
    import polars as pl

    from ltrsched.predictors.predictor import Predictor

    directory, workload, prompts = model
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(3.0))
    r = run_cli_fast(capsys, "predict", "-m", directory, "-w", workload, "-o", tmp_path / "s.parquet")
    assert r.returncode == 0, r.stderr
    assert _counting(_lines(r.stderr, "predict", "prompts scored"), 40), r.stderr
    assert "scored" not in r.stdout
    assert np.array_equal(pl.read_parquet(tmp_path / "s.parquet")["score"].to_numpy(),
                          Predictor.load(directory).scores(prompts))


def test_evaluate_prints_prompts_scored_and_its_json_alone_on_stdout(capsys, monkeypatch, model):
    directory, workload, _ = model
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(3.0))
    r = run_cli_fast(capsys, "evaluate", "-m", directory, "--data", workload)
    assert r.returncode == 0, r.stderr
    assert _counting(_lines(r.stderr, "evaluate", "prompts scored"), 40), r.stderr
    assert json.loads(r.stdout)["num_prompts"] == 40


def test_an_n_gram_model_counts_its_prompts_scored_by_batch(monkeypatch, capsys):
    """A backbone that prepares its features at once (n-grams, HF token ids) counts prompts as its batches are
    scored."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor
    from ltrsched.progress import PlainProgress

    p = Predictor(PredictorConfig(kind="rank"))
    clock = FakeClock(6.0)
    p.progress = lambda total, noun, verb: PlainProgress(total, "predict", noun, verb, every_s=10.0, clock=clock)
    p.scores([f"prompt {i}" for i in range(10)], batch_size=3)
    assert _lines(capsys.readouterr().err, "predict", "prompts scored") == [(6, 10, 12), (10, 10, 24)]


def test_the_probe_reports_each_prompt_featurised_and_each_remembered_one():
    """:meth:`ProbeBackbone.features` calls ``on_featurised`` per prompt its model runs, and once for the prompts
    it remembers (training) or repeats; the model is a stand-in (a state per prompt from its length)."""
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from ltrsched.predictors.probe import ProbeBackbone

    probe = ProbeBackbone.__new__(ProbeBackbone)
    probe.model = SimpleNamespace(mean=torch.zeros(2))
    probe.config, probe.context = SimpleNamespace(max_prompt_tokens=2048), 1 << 30  # (no prompt cut)
    probe._templated_ids = lambda prompt: [len(prompt)]
    probe._last_state = lambda ids: torch.tensor([float(ids[0]), 1.0])
    counts = []
    probe.on_featurised = counts.append
    probe._memo, probe._cut_memo = {"seen": torch.ones(2)}, set()
    feats = probe.features(["seen", "new", "new", "other"])
    assert counts == [2, 1, 1] and feats.shape == (4, 2)
    assert float(feats[1, 0]) == 3.0
