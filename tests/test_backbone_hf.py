"""The Hugging Face backbone's padding and scoring passes (tiny config-only models: random weights, no tokenizer)."""

from __future__ import annotations

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

#: Tiny configs (dropout 0: training mode is then deterministic), each with its pad token id: OPT's own 1, BERT's own
#: 0, RoBERTa's own 1 (its positions counted from input_ids), Llama and GPT-2 given 0 (their pooling: the rightmost
#: token that is not pad_token_id, whatever the attention mask says).
_TINY = {
    "opt": lambda: transformers.OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                          num_attention_heads=2, max_position_embeddings=64, word_embed_proj_dim=16,
                                          dropout=0.0, attention_dropout=0.0),
    "llama": lambda: transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                              num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                              pad_token_id=0),
    "gpt2": lambda: transformers.GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=64,
                                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=0,
                                            bos_token_id=None, eos_token_id=None),
    "bert": lambda: transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                            intermediate_size=32, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                            attention_probs_dropout_prob=0.0),
    "roberta": lambda: transformers.RobertaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                                  num_attention_heads=2, intermediate_size=32,
                                                  max_position_embeddings=66, hidden_dropout_prob=0.0,
                                                  attention_probs_dropout_prob=0.0),
}


def _backbone(tmp_path, name):
    from ltrsched.predictors.backbones import HFBackbone
    from ltrsched.predictors.config import PredictorConfig

    _TINY[name]().save_pretrained(tmp_path / name)
    return HFBackbone(PredictorConfig(backbone="hf", hf_path=str(tmp_path / name), max_prompt_tokens=32), 1)


@pytest.mark.parametrize("name", list(_TINY))
def test_padding_that_reads_as_a_real_token_changes_no_training_output(tmp_path, name):
    """Without a tokenizer, a config's own pad_token_id (0 or 1) is also a token id prompts are folded onto, so a
    training batch's padding reads as real tokens where the attention mask is not honoured: decoder rankers pool the
    rightmost token that is not the pad id, RoBERTa counts positions from input_ids. Right padding comes after every
    real token, so neither reaches a prompt's output: each prompt (pad ids inside it, at its end, or all of it) gives
    the same output in a padded training batch as alone, up to the batch width's last bits (measured: <= 1.5e-8)."""
    import torch

    backbone = _backbone(tmp_path, name)
    pad = backbone.pad
    assert pad in (0, 1)  # (the config's own, or given: a real token id here)
    data = [np.array([5, 7, pad, 9, 11]), np.array([5, 7, 9, pad]), np.array([pad, pad, 3]), np.array([pad, pad]),
            np.arange(2, 22), np.array([], dtype=np.int64)]
    backbone.model.train()
    with torch.no_grad():
        padded = backbone.forward(data, list(range(len(data))))
        alone = torch.cat([backbone.forward(data, [i]) for i in range(len(data))])
    np.testing.assert_allclose(padded.numpy(), alone.numpy(), rtol=0, atol=1e-6)


def test_scoring_builds_no_kv_cache(tmp_path, monkeypatch):
    """A ranker reads each prompt once, yet every scoring call of a decoder built a KV cache and filled it (a quarter
    of a tiny OPT's time a prompt). Scores are unchanged bit for bit (tiny OPT, Llama, GPT-2, BERT: 305 prompts)."""
    from transformers import cache_utils

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    _TINY["opt"]().save_pretrained(tmp_path / "opt")
    predictor = Predictor(PredictorConfig(backbone="hf", hf_path=str(tmp_path / "opt"), max_prompt_tokens=32))
    built = []
    init = cache_utils.DynamicCache.__init__

    def counted(self, *args, **kwargs):
        built.append(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(cache_utils.DynamicCache, "__init__", counted)
    prompts = ["write a story", "", "a b c d e f", "write a story"]
    scores = predictor.scores(prompts)
    assert built == [] and scores[0] == scores[3] and np.isfinite(scores).all()
