"""Training on many prompts in bounded memory, with the same model: the features are made a chunk of prompts at a
time (BENCHMARKS.md, Predictors: training on 200,000 prompts)."""

from __future__ import annotations

import numpy as np
import pytest

from ltrsched.predictors import features

TEXTS = ["Write an essay about the sea", "", "hi", "写一首关于大海的诗", "emoji 😀 and  spaces\n\nnew line",
         "a b c d e f g", "x" * 50, "Explain: (1) this; (2) that!"] * 3 + [None, "last one"]


def _arrays(bags) -> list[bytes]:
    return [bags.indices.tobytes(), bags.offsets.tobytes(), bags.weights.tobytes(), bags.dense.tobytes(),
            str((bags.indices.dtype, bags.offsets.dtype, bags.weights.dtype, bags.dense.dtype)).encode()]


@pytest.mark.parametrize("ngrams", features.NGRAM_SETS)
def test_features_are_made_a_chunk_of_prompts_at_a_time_with_the_same_arrays(ngrams, monkeypatch):
    """All prompts' work arrays at once took ~10 times the bags they made (2.5 GB resident to train on 50,000
    ShareGPT prompts); made in chunks, the bags are the same bytes as all at once."""
    whole = features.ngram_bags(TEXTS, 1 << 12, ngrams)
    sizes = []
    make = features._bags
    monkeypatch.setattr(features, "_bags", lambda texts, dim, ngrams: sizes.append(len(texts)) or make(texts, dim, ngrams))
    monkeypatch.setattr(features, "CHUNK", 5)
    chunked = features.ngram_bags(TEXTS, 1 << 12, ngrams)
    assert sizes == [5] * 5 + [1]
    assert _arrays(chunked) == _arrays(whole)


def test_training_on_chunked_features_gives_the_same_weights(monkeypatch):
    import torch

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rng = np.random.default_rng(0)
    prompts = [f"prompt {i} " + " ".join(rng.choice(["long", "short", "story", "list", "写"], size=5)) for i in range(90)]
    lengths = rng.integers(1, 500, len(prompts))

    def weights():
        pred = Predictor(PredictorConfig(dim=1 << 10, epochs=2, list_size=16))
        pred.fit(prompts, lengths)
        return {k: v.clone() for k, v in pred.backbone.model.state_dict().items()}

    whole = weights()
    monkeypatch.setattr(features, "CHUNK", 7)
    chunked = weights()
    assert whole.keys() == chunked.keys()
    assert all(torch.equal(whole[k], chunked[k]) for k in whole)


def test_bags_hold_bucket_indices_as_int32_and_train_the_same_model_as_int64_ones(monkeypatch):
    """The bags' indices were int64: 2/3 of their bytes (485 of 730 MB for 200,000 ShareGPT prompts). Held as int32
    they go to torch as int64 again, so the model is the same bit for bit."""
    import torch

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    assert features.ngram_bags(TEXTS, 1 << 20, "tokens+words").indices.dtype == np.int32
    rng = np.random.default_rng(1)
    prompts = [f"prompt {i} " + " ".join(rng.choice(["long", "short", "story", "list", "写"], size=5)) for i in range(60)]
    lengths = rng.integers(1, 500, len(prompts))
    held_out = prompts[:10]

    def trained():
        pred = Predictor(PredictorConfig(dim=1 << 10, epochs=2, list_size=16))
        pred.fit(prompts, lengths)
        return pred.backbone.model.state_dict(), pred.scores(held_out)

    small, small_scores = trained()
    make = features._bags

    def as_int64(texts, dim, ngrams):
        bags = make(texts, dim, ngrams)
        return features.NgramBags(bags.indices.astype(np.int64), bags.offsets, bags.weights, bags.dense)

    monkeypatch.setattr(features, "_bags", as_int64)
    wide, wide_scores = trained()
    assert all(torch.equal(small[k], wide[k]) for k in wide)
    assert small_scores.tobytes() == wide_scores.tobytes()
