"""Length predictors: loss values, learning a known function, save/load, HF backbone offline, bad input."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import make_workload  # noqa: E402
from ltrsched.errors import UserError  # noqa: E402
from ltrsched.predictors import PredictorConfig, listmle_loss, pairwise_loss  # noqa: E402
from ltrsched.predictors.predictor import Predictor  # noqa: E402

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def synthetic(n, seed):
    """Prompts whose output length is a known function of their words (plus filler)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(WORDS), n)
    filler = ["please", "tell", "me", "about", "the", "weather", "today", "now"]
    prompts = [" ".join([WORDS[i]] * 3 + list(rng.choice(filler, 5))) for i in k]
    lengths = 20 * (k + 1) + rng.integers(0, 5, n)
    return prompts, lengths


def test_listmle_hand_computed():
    scores = torch.tensor([1.0, 0.0, 2.0])
    labels = torch.tensor([10.0, 20.0, 30.0])  # true order: 0, 1, 2 (shortest first)
    s = [1.0, 0.0, 2.0]
    expected = ((math.log(math.exp(1) + math.exp(0) + math.exp(2)) - 1)
                + (math.log(math.exp(0) + math.exp(2)) - 0) + (2 - 2)) / 3
    assert float(listmle_loss(scores, labels)) == pytest.approx(expected, rel=1e-6)
    # the right order has a lower loss than the reversed one
    assert float(listmle_loss(torch.tensor([3.0, 2.0, 1.0]), labels)) < float(listmle_loss(torch.tensor([1.0, 2.0, 3.0]), labels))
    assert s  # noqa


def test_pairwise_hand_computed():
    scores = torch.tensor([0.0, 1.0])
    labels = torch.tensor([10.0, 20.0])  # 0 is shorter, should score higher: margin = 0 - 1
    assert float(pairwise_loss(scores, labels)) == pytest.approx(math.log1p(math.exp(1.0)), rel=1e-6)


@pytest.mark.parametrize("kind, loss", [("rank", "listmle"), ("rank", "pairwise"), ("class", "ce")])
def test_learns_a_known_function(kind, loss):
    prompts, lengths = synthetic(1500, 0)
    ev_p, ev_l = synthetic(400, 1)
    cfg = PredictorConfig(kind=kind, loss=loss, bucket=20, num_classes=10, dim=1 << 12, epochs=8, seed=0)
    pred = Predictor(cfg)
    metrics = pred.fit(prompts, lengths, ev_p, ev_l)
    assert metrics[-1]["tau"] > 0.8, metrics[-1]
    if kind == "class":
        assert metrics[-1]["accuracy"] > 0.8


def test_save_load_round_trip(tmp_path):
    prompts, lengths = synthetic(300, 0)
    pred = Predictor(PredictorConfig(dim=1 << 10, epochs=2))
    pred.fit(prompts, lengths)
    pred.save(tmp_path / "ck")
    again = Predictor.load(tmp_path / "ck")
    assert np.array_equal(pred.scores(prompts), again.scores(prompts))
    assert again.config.metrics == pred.config.metrics


def test_hf_backbone_tiny_random_model_offline(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.OPTConfig(vocab_size=512, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                 num_attention_heads=2, max_position_embeddings=64, word_embed_proj_dim=16)
    cfg.save_pretrained(tmp_path / "tiny-opt")  # config only: random weights
    prompts, lengths = synthetic(64, 0)
    pcfg = PredictorConfig(backbone="hf", hf_path=str(tmp_path / "tiny-opt"), epochs=1, lr=1e-3,
                           list_size=16, max_prompt_tokens=32)
    pred = Predictor(pcfg)
    pred.fit(prompts, lengths, prompts[:20], lengths[:20])
    scores = pred.scores(prompts)
    assert scores.shape == (64,) and np.isfinite(scores).all()
    pred.save(tmp_path / "ck")
    assert np.allclose(Predictor.load(tmp_path / "ck").scores(prompts), scores, atol=1e-5)


def test_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="at least 2"):
        Predictor(PredictorConfig(dim=64)).fit(["one"], np.array([3]))
    with pytest.raises(UserError, match="positive output length"):
        Predictor(PredictorConfig(dim=64)).fit(["a", "b"], np.array([3, 0]))
    with pytest.raises(UserError, match="not a predictor checkpoint"):
        Predictor.load(tmp_path)
    pred = Predictor(PredictorConfig(dim=64, epochs=1))
    pred.save(tmp_path / "ck")
    cfg = PredictorConfig.load(tmp_path / "ck")
    cfg.dim = 128
    cfg.save(tmp_path / "ck")
    with pytest.raises(UserError, match="do not match"):
        Predictor.load(tmp_path / "ck")
    with pytest.raises(UserError, match="no config.json"):
        Predictor(PredictorConfig(backbone="hf", hf_path=str(tmp_path)))


def test_cli_predict_needs_prompt_text(tmp_path):
    wl = tmp_path / "wl.parquet"
    make_workload([4, 5], [4, 5]).save(wl)
    pred = Predictor(PredictorConfig(dim=64, epochs=1))
    pred.save(tmp_path / "ck")
    r = subprocess.run([sys.executable, "-m", "ltrsched.cli", "predict", "-m", str(tmp_path / "ck"), "-w", str(wl),
                        "-o", str(tmp_path / "out.parquet")], capture_output=True, text=True)
    assert r.returncode == 2 and "no prompt text" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.parquet").exists()
