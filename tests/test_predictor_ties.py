"""Other models' output lengths for the rankers: a model that nearly always stops at its cap gives most prompts one
length. Kendall tau-b then cannot reach 1 however right a ranker is, and a class model that always predicts the
cap's bucket scores a high accuracy: both read wrongly without a word on stderr."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from ltrsched.workloads.ties import tau_ceiling, tied_pair_share, ties_warning

FILLER = ["please", "explain", "the", "story", "of", "a", "word", "list", "write", "answer", "today", "city"]


def _workload(path, n: int, seed: int, lengths) -> None:
    """``n`` prompts of filler words with "long" or "short" among them, and ``lengths(is_long, rng)`` [tokens]."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            is_long = bool(rng.random() < 0.5)
            words = list(rng.choice(FILLER, size=int(rng.integers(3, 9)))) + ["long" if is_long else "short", str(i)]
            f.write(json.dumps({"prompt": " ".join(words), "output_tokens": int(lengths(is_long, rng))}) + "\n")


def _cli(capsys, *args) -> tuple[int, str, str]:
    from test_cli_simulate import run_cli_in_process  # (the model loads in seconds, not a fresh interpreter's)

    return run_cli_in_process(capsys, *args)


def _capped(is_long, rng):
    """A model that stops at its 512-token cap for 85% of the prompts, earlier for the rest."""
    return 512 if rng.random() < 0.85 else int(rng.integers(1, 512))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ceiling_is_scipys_tau_b_of_a_perfect_ranker_without_ties(seed):
    rng = np.random.default_rng(seed)
    lengths = np.where(rng.random(500) < 0.8, 512, rng.integers(1, 512, 500))
    perfect = -lengths + 0.01 * rng.random(500)  # the true order, ties broken at random
    assert tau_ceiling(lengths) == pytest.approx(kendalltau(perfect, -lengths).statistic, abs=1e-12)
    assert tau_ceiling(lengths) < 0.7
    assert tied_pair_share(np.array([5, 5, 5, 7])) == pytest.approx(3 / 6)  # 3 of the 6 pairs tied
    assert tau_ceiling(np.arange(1, 50)) == 1.0 and ties_warning(np.arange(1, 50), "x") is None


def test_capped_lengths_are_warned_with_the_ceiling_in_train_and_evaluate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    _workload(tmp_path / "train.jsonl", 300, 0, _capped)
    _workload(tmp_path / "eval.jsonl", 200, 1, _capped)
    lengths = np.array([json.loads(line)["output_tokens"] for line in open(tmp_path / "eval.jsonl")])
    ceiling = tau_ceiling(lengths)
    code, out, err = _cli(capsys, "train", "--data", str(tmp_path / "train.jsonl"), "--eval-data",
                          str(tmp_path / "eval.jsonl"), "-o", str(tmp_path / "m"), "--epochs", "1")
    assert code == 0, err
    assert f"a ranker whose scores never tie reaches at most {ceiling:.3f} here" in err
    assert f"512 tokens, for {(lengths == 512).sum()} of 200 prompts" in err
    code, out, err = _cli(capsys, "evaluate", "-m", str(tmp_path / "m"), "--data", str(tmp_path / "eval.jsonl"))
    assert code == 0 and json.loads(out)["num_prompts"] == 200
    assert err.startswith("warning: ") and f"at most {ceiling:.3f} here" in err and err.count("\n") == 1
    # lengths of a model that stops where it likes: no ties to speak of, no warning
    _workload(tmp_path / "free.jsonl", 200, 2, lambda is_long, rng: int(rng.integers(300, 2000) if is_long
                                                                        else rng.integers(1, 300)))
    code, out, err = _cli(capsys, "evaluate", "-m", str(tmp_path / "m"), "--data", str(tmp_path / "free.jsonl"))
    assert code == 0 and err == ""


def test_a_class_model_no_better_than_the_most_common_bucket_is_warned(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    _workload(tmp_path / "train.jsonl", 300, 0, _capped)
    _workload(tmp_path / "eval.jsonl", 200, 1, _capped)
    code, out, err = _cli(capsys, "train", "--kind", "class", "--bucket", "100", "--data", str(tmp_path / "train.jsonl"),
                          "--eval-data", str(tmp_path / "eval.jsonl"), "-o", str(tmp_path / "c"), "--epochs", "2")
    assert code == 0, err
    lengths = np.array([json.loads(line)["output_tokens"] for line in open(tmp_path / "eval.jsonl")])
    share = ((lengths >= 500) & (lengths < 600)).mean()
    code, out, err = _cli(capsys, "evaluate", "-m", str(tmp_path / "c"), "--data", str(tmp_path / "eval.jsonl"))
    accuracy = json.loads(out)["accuracy"]
    assert code == 0 and accuracy <= share
    assert (f"warning: bucket accuracy {accuracy:.3f} is no better than always predicting the most common bucket "
            f"(500-599 tokens), which {share:.3f} of these prompts fall in") in err
    # lengths the prompt tells ("long" or "short"): a class model beats the most common bucket, and says nothing
    two = lambda is_long, rng: int(rng.integers(900, 1500) if is_long else rng.integers(5, 300))  # noqa: E731
    _workload(tmp_path / "t.jsonl", 400, 3, two)
    _workload(tmp_path / "e.jsonl", 200, 4, two)
    code, out, err = _cli(capsys, "train", "--kind", "class", "--data", str(tmp_path / "t.jsonl"), "--eval-data",
                          str(tmp_path / "e.jsonl"), "-o", str(tmp_path / "c2"), "--epochs", "5")
    assert code == 0 and "bucket accuracy" not in err, err
    code, out, err = _cli(capsys, "evaluate", "-m", str(tmp_path / "c2"), "--data", str(tmp_path / "e.jsonl"))
    assert code == 0 and json.loads(out)["accuracy"] > 0.6 and err == "", err


def test_the_most_common_bucket_of_one_token_is_named_as_its_length(capsys):
    """A short-answer model's lengths (1-3 tokens) with --bucket 1: the warning named the bucket "(2-2 tokens)"."""
    from ltrsched.predictors.commands import _warn_majority
    from ltrsched.predictors.config import PredictorConfig

    lengths = np.array([1, 2, 2, 2, 3, 3])
    for bucket, span in ((1, "2 tokens"), (2, "2-3 tokens")):
        _warn_majority(PredictorConfig(kind="class", loss="ce", bucket=bucket, num_classes=8), lengths, 0.0)
        assert f"always predicting the most common bucket ({span}), which " in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["rank", "class"])
def test_scoring_prepares_features_a_bounded_number_of_prompts_at_a_time(kind, monkeypatch):
    """`predict` on 200,000 prompts prepared every prompt's features at once (5.7 GB resident); now a few batches at
    a time, with the same scores as features prepared all at once."""
    import torch

    from ltrsched.predictors import predictor as module
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rng = np.random.default_rng(0)
    prompts = [" ".join(rng.choice(FILLER, size=int(rng.integers(1, 30)))) + f" {i} 写诗 😀" for i in range(700)]
    pred = Predictor(PredictorConfig(kind=kind, dim=256, bucket=100, num_classes=8))
    backbone = pred.backbone
    with torch.inference_mode():  # the reference: every prompt prepared at once, scored in batches of 64
        data = backbone.prepare(prompts)
        whole = np.concatenate([backbone.forward(data, np.arange(s, min(s + 64, 700))).float().numpy()
                                for s in range(0, 700, 64)])
    sizes = []
    prepare = backbone.prepare
    monkeypatch.setattr(backbone, "prepare", lambda part: sizes.append(len(part)) or prepare(part))
    monkeypatch.setattr(module, "PREPARE_BATCHES", 2)
    raw = pred._raw(prompts, batch_size=64)
    assert sizes == [128] * 5 + [60]
    np.testing.assert_array_equal(raw, whole)
    expected = whole.astype(np.float64) if kind == "rank" else -Predictor._expected_bucket(whole)
    np.testing.assert_array_equal(pred.scores(prompts, batch_size=64), expected)
