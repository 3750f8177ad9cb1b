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
