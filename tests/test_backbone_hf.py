"""The Hugging Face backbone's padding and scoring passes (tiny config-only models: random weights, no tokenizer)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    """A config's own pad_token_id (0 or 1) inside a prompt's ids (folded ids of a checkpoint folded "modulo", or a
    tokenizer's pad id in the text) reads as padding where the attention mask is not honoured: transformers' decoder
    rankers pool the rightmost token that is not the pad id (``_logits`` pools by the mask instead), RoBERTa counts
    positions from input_ids. Right padding comes after every real token, so neither reaches a prompt's output: each
    prompt (pad ids inside it, at its end, or all of it) gives the same output in a padded training batch as alone,
    up to the batch width's last bits (measured: <= 1.5e-8)."""
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


# ---------------------------------------------------------------- the pad id, on the tokenizer-less path
@settings(max_examples=40, deadline=None)
@given(vocab=st.integers(2, 1 << 18), which=st.sampled_from(["0", "1", "last"]), seed=st.integers(0, 2**32 - 1))
def test_no_folded_token_id_is_the_pad_id(vocab, which, seed):
    """Llama-3 ids folded into a model's vocabulary without a tokenizer: "modulo" (id mod (vocab - 1)) put every
    (vocab - 1)-th id on a pad id 0 or 1 (OPT-125M's 1: every '"'); "pad-free" skips it and keeps ids apart that the
    vocab - 1 slots keep apart. Both agree with the pad id at vocab - 1 (a config without one is given that)."""
    from ltrsched.predictors.backbones import fold_token_ids

    pad = {"0": 0, "1": 1, "last": vocab - 1}[which]
    if pad >= vocab:
        return
    ids = np.concatenate([np.arange(min(2 * vocab, 1 << 12)), np.random.default_rng(seed).integers(0, 128_256, 1024)])
    folded = fold_token_ids(ids, vocab, pad)
    assert pad not in folded and folded.min() >= 0 and folded.max() < vocab
    slot = ids % (vocab - 1)
    assert np.array_equal(fold_token_ids(ids, vocab, pad, "modulo"), slot)  # (the fold of older checkpoints)
    assert len(np.unique(folded)) == len(np.unique(slot))  # (one id per slot: nothing merged)
    if pad == vocab - 1:
        assert np.array_equal(folded, slot)


@pytest.mark.parametrize("name, text", [("opt", 'write a story about "cats"'), ("llama", "say it loud!")])
def test_a_prompt_ending_in_a_token_folded_to_pad_is_pooled_at_its_last_token(tmp_path, name, text):
    """'"' (Llama-3 id 1) folded "modulo" onto OPT's pad id 1, '!' (id 0) onto a pad id 0: the decoder ranker pooled a
    prompt ending in one at the token before (its score that of the prompt without it), and the pad row's embedding
    is zero and never trains. Folded "pad-free", the last token is read."""
    import torch

    backbone = _backbone(tmp_path, name)
    backbone.model.eval()

    def score(prompt):
        with torch.inference_mode():
            return float(backbone.forward(backbone.prepare([prompt]), [0])[0])

    backbone.fold = "modulo"
    assert backbone.prepare([text])[0][-1] == backbone.pad
    assert score(text) == pytest.approx(score(text[:-1]), abs=1e-6)  # (pooled at the token before)
    backbone.fold = "pad-free"
    assert backbone.pad not in backbone.prepare([text])[0]
    assert abs(score(text) - score(text[:-1])) > 1e-4


@settings(max_examples=40, deadline=None)
@given(vocab=st.integers(2, 1 << 18), which=st.sampled_from(["0", "1", "last"]))
def test_an_empty_prompt_is_given_no_pad_id(vocab, which):
    """Without a tokenizer an empty prompt was given token id 0 under every fold: the pad id of a pad-0 model (BERT's,
    a Llama or GPT-2 config given 0), whose embedding row is zero and never trains, so every empty prompt was read at
    the pad embedding. Folded "pad-free-bos" (new checkpoints) it reads as Llama-3's <|begin_of_text|> folded like a
    prompt's ids; the older folds keep id 0 (their checkpoints were trained so)."""
    from types import SimpleNamespace

    from ltrsched.predictors.backbones import LLAMA3_BEGIN_OF_TEXT, HFBackbone, fold_token_ids
    from ltrsched.predictors.config import TOKEN_FOLD

    pad = {"0": 0, "1": 1, "last": vocab - 1}[which]
    if pad >= vocab:
        return
    backbone = SimpleNamespace(tokenizer=None, fold=TOKEN_FOLD, vocab=vocab, pad=pad)
    ids = HFBackbone.empty_ids(backbone)
    assert len(ids) == 1 and pad not in ids and 0 <= ids[0] < vocab
    assert ids[0] == fold_token_ids(np.array([LLAMA3_BEGIN_OF_TEXT]), vocab, pad)[0]
    for fold in ("modulo", "pad-free"):
        assert list(HFBackbone.empty_ids(SimpleNamespace(tokenizer=None, fold=fold, vocab=vocab, pad=pad))) == [0]


@pytest.mark.parametrize("name", ["llama", "bert"])
def test_an_empty_prompt_is_not_read_at_the_pad_embedding(tmp_path, name):
    """A pad-0 model without a tokenizer (a Llama config given pad 0, BERT's own): the empty prompt's score was that of
    the input [pad] (its zero, untrained embedding row); now that of the folded begin-of-text token, alone and in a
    padded training batch."""
    import torch

    backbone = _backbone(tmp_path, name)
    assert backbone.pad == 0 and backbone.tokenizer is None
    data = backbone.prepare(["", "some words"])
    assert len(data[0]) == 0
    backbone.model.eval()
    with torch.inference_mode():
        empty = float(backbone.forward(data, [0])[0])
        as_pad = float(backbone.forward([np.array([backbone.pad])], [0])[0])
        as_bos = float(backbone.forward([backbone.empty_ids()], [0])[0])
    assert backbone.pad not in backbone.empty_ids()
    assert empty == as_bos and abs(empty - as_pad) > 1e-4
    backbone.model.train()
    with torch.no_grad():
        batch = backbone.forward(data, [0, 1]).numpy()
    assert batch[0] == pytest.approx(as_bos, abs=1e-6)


@pytest.mark.parametrize("name", ["opt", "llama", "gpt2"])
def test_a_decoder_is_pooled_at_the_last_token_by_the_mask(tmp_path, name):
    """A decoder ranker is read at each prompt's last token by the attention mask, not at the rightmost id other than
    the pad id (a tokenizer's pad id may be in a prompt: its end-of-text id written out), alone and in a padded
    batch."""
    import torch

    backbone = _backbone(tmp_path, name)
    pad = backbone.pad
    data = [np.array([5, 7, 9, pad]), np.array([5, 7, 9]), np.arange(2, 12)]
    backbone.model.eval()
    with torch.inference_mode():
        alone = backbone.forward(data, [0, 1, 2]).numpy()
    backbone.model.train()
    with torch.no_grad():
        batch = backbone.forward(data, [0, 1, 2]).numpy()
    assert abs(alone[0] - alone[1]) > 1e-4
    np.testing.assert_allclose(batch, alone, rtol=0, atol=1e-6)


_PROMPTS = ['say "hi"', "wow!", 'a "b" c', "end!", "list of things", '"', "!", 'why? "no"', ""] * 3


def _trained_ranker(model_dir, fold=None):
    """A one-epoch tiny ranker on the HF model saved in ``model_dir``, its backbone folding ``fold`` (None: the
    default)."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(backbone="hf", hf_path=str(model_dir), epochs=1, lr=1e-2, list_size=8,
                                          max_prompt_tokens=32))
    if fold is not None:
        predictor.backbone.fold = fold
    predictor.fit(_PROMPTS, np.arange(1, len(_PROMPTS) + 1) * 7)
    return predictor


def _trained_opt(tmp_path, fold=None):
    """A one-epoch tiny OPT ranker (pad id 1, no tokenizer), its backbone folding ``fold`` (None: the default)."""
    _TINY["opt"]().save_pretrained(tmp_path / "opt")
    return _trained_ranker(tmp_path / "opt", fold)


def test_a_checkpoint_without_the_fold_record_loads_and_scores_as_before(tmp_path):
    """An HF checkpoint written before predictor.json recorded its fold (trained "modulo", as the code then did) loads
    folding "modulo": its scores bit for bit (folded "pad-free" they are not: the key is what keeps them)."""
    from ltrsched.predictors.config import TOKEN_FOLD_KEY
    from ltrsched.predictors.predictor import Predictor

    trained = _trained_opt(tmp_path, "modulo")
    before = trained.scores(_PROMPTS)
    trained.save(tmp_path / "ck")
    path = tmp_path / "ck" / "predictor.json"
    record = json.loads(path.read_text())
    assert record.pop(TOKEN_FOLD_KEY) == "modulo"
    path.write_text(json.dumps(record))
    loaded = Predictor.load(tmp_path / "ck")
    assert loaded.backbone.fold == "modulo" and np.array_equal(loaded.scores(_PROMPTS), before)
    loaded.backbone.fold = "pad-free"
    assert not np.array_equal(loaded.scores(_PROMPTS), before)


def test_a_new_checkpoint_records_its_fold_and_round_trips(tmp_path):
    from ltrsched.predictors.config import TOKEN_FOLD_KEY
    from ltrsched.predictors.predictor import Predictor

    trained = _trained_opt(tmp_path)
    trained.save(tmp_path / "ck")
    assert json.loads((tmp_path / "ck" / "predictor.json").read_text())[TOKEN_FOLD_KEY] == "pad-free-bos-tokenizer"
    loaded = Predictor.load(tmp_path / "ck")
    assert loaded.backbone.fold == "pad-free-bos-tokenizer"
    assert np.array_equal(loaded.scores(_PROMPTS), trained.scores(_PROMPTS))


def _assert_an_old_fold_scores_as_before(trained, tmp_path, newer: str) -> None:
    """``trained``, saved, records its fold and loads folding so, scoring every prompt bit for bit as trained; read
    with the ``newer`` fold, only the empty prompt's score changes."""
    from ltrsched.predictors.config import TOKEN_FOLD_KEY
    from ltrsched.predictors.predictor import Predictor

    fold = trained.backbone.fold
    before = trained.scores(_PROMPTS)
    trained.save(tmp_path / "ck")
    assert json.loads((tmp_path / "ck" / "predictor.json").read_text())[TOKEN_FOLD_KEY] == fold
    loaded = Predictor.load(tmp_path / "ck")
    assert loaded.backbone.fold == fold and np.array_equal(loaded.scores(_PROMPTS), before)
    loaded.backbone.fold = newer
    changed = loaded.scores(_PROMPTS) != before
    assert changed.any() and all(p == "" for p in np.asarray(_PROMPTS)[changed])


def test_a_pad_free_checkpoint_scores_as_before(tmp_path):
    """A checkpoint folded "pad-free" (written before "pad-free-bos": an empty prompt given id 0) loads folding
    "pad-free" and scores every prompt, the empty one too, bit for bit as trained; read "pad-free-bos", the empty
    prompt's score changes and no other."""
    _assert_an_old_fold_scores_as_before(_trained_opt(tmp_path, "pad-free"), tmp_path, "pad-free-bos")


def test_an_unknown_fold_record_is_one_line(tmp_path, capsys):
    """(an n-gram checkpoint: the record is checked whatever the backbone; n-gram ones are saved without it)"""
    from cli_helpers import run_cli_fast
    from label_data import english_rows, write_label_jsonl

    from ltrsched.predictors.config import TOKEN_FOLD_KEY, PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rows = english_rows(20, 0)
    predictor = Predictor(PredictorConfig(epochs=1, dim=1 << 10))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(tmp_path / "ck")
    path = tmp_path / "ck" / "predictor.json"
    record = json.loads(path.read_text())
    assert TOKEN_FOLD_KEY not in record
    path.write_text(json.dumps({**record, TOKEN_FOLD_KEY: "xor"}))
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(6, 1))
    result = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and (f'{TOKEN_FOLD_KEY} must be one of modulo, pad-free, pad-free-bos, '
                                 'pad-free-bos-tokenizer, got "xor"') in lines[0], lines


def _save_word_tokenizer(directory):
    """A tiny word-level tokenizer in ``directory`` that, as GPT-2's, adds no special id: "" gives no id. Id 0 is
    "<pad>" (the tiny GPT-2's pad id), 1 "<|endoftext|>" (its begin- and end-of-text token), 2 "<unk>"."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<pad>", "<|endoftext|>", "<unk>", "say", "hi", "wow", "a", "b", "c", "end", "list", "of", "things", "why",
             "no", '"', "!", "?"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>",
                                         eos_token="<|endoftext|>", unk_token="<unk>",
                                         pad_token="<pad>").save_pretrained(directory)


def _trained_gpt2_with_tokenizer(tmp_path, fold=None):
    """A one-epoch tiny GPT-2 ranker (pad id 0) with :func:`_save_word_tokenizer`'s tokenizer, folding ``fold``."""
    _TINY["gpt2"]().save_pretrained(tmp_path / "gpt2")
    _save_word_tokenizer(tmp_path / "gpt2")
    return _trained_ranker(tmp_path / "gpt2", fold)


def test_an_empty_prompt_reads_as_the_tokenizers_begin_of_text_id(tmp_path):
    """A tokenizer that gives "" no id (GPT-2's kind) left an empty prompt at id 0, the pad id of this pad-0 model:
    now at the tokenizer's begin-of-text id ("<|endoftext|>", 1), alone and in a padded training batch."""
    import torch

    predictor = _trained_gpt2_with_tokenizer(tmp_path)
    backbone = predictor.backbone
    assert backbone.tokenizer is not None and backbone.pad == 0 and backbone.fold == "pad-free-bos-tokenizer"
    data = backbone.prepare(["", "say hi"])
    assert len(data[0]) == 0 and list(backbone.empty_ids()) == [1]
    backbone.model.eval()
    with torch.inference_mode():
        empty = float(backbone.forward(data, [0])[0])
        as_pad = float(backbone.forward([np.array([0])], [0])[0])
        as_bos = float(backbone.forward([np.array([1])], [0])[0])
    assert empty == as_bos and abs(empty - as_pad) > 1e-4
    backbone.model.train()
    with torch.no_grad():
        assert float(backbone.forward(data, [0, 1])[0]) == pytest.approx(as_bos, abs=1e-6)


def test_a_pad_free_bos_checkpoint_with_a_tokenizer_scores_as_before(tmp_path):
    """A checkpoint folded "pad-free-bos" with a tokenizer (an empty prompt trained at id 0) loads folding so and scores
    every prompt, "" too, bit for bit as trained; read "pad-free-bos-tokenizer", only ""'s score changes."""
    trained = _trained_gpt2_with_tokenizer(tmp_path, "pad-free-bos")
    assert list(trained.backbone.empty_ids()) == [0]
    _assert_an_old_fold_scores_as_before(trained, tmp_path, "pad-free-bos-tokenizer")


def test_the_begin_of_text_id_is_never_the_pad_id():
    """The first of a tokenizer's begin-of-text, classifier, end-of-text, separator and unknown ids that is in the
    vocabulary and not the pad id; none such (GPT-2 itself: <|endoftext|> is all of them and its pad id here, vocab - 1):
    Llama-3's begin-of-text folded as without a tokenizer."""
    from types import SimpleNamespace

    from ltrsched.predictors.backbones import LLAMA3_BEGIN_OF_TEXT, fold_token_ids, tokenizer_begin_id

    def begin(vocab, pad, **ids):
        names = ("bos_token_id", "cls_token_id", "eos_token_id", "sep_token_id", "unk_token_id")
        return list(tokenizer_begin_id(SimpleNamespace(**{n: ids.get(n) for n in names}), vocab, pad))

    assert begin(64, 0, bos_token_id=1, eos_token_id=2) == [1]
    assert begin(64, 1, bos_token_id=1, eos_token_id=2) == [2]
    assert begin(64, 0, bos_token_id=99, cls_token_id=5) == [5]  # (past the embeddings: not taken)
    gpt2 = begin(50257, 50256, bos_token_id=50256, eos_token_id=50256, unk_token_id=50256)
    assert gpt2 == list(fold_token_ids(np.array([LLAMA3_BEGIN_OF_TEXT]), 50257, 50256, "pad-free")) and 50256 not in gpt2
    assert 0 not in begin(64, 0)
