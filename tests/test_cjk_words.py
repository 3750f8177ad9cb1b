"""Word n-grams of scripts written without spaces: ``\\w+`` made a whole Chinese or Japanese sentence one "word"
(a feature no other prompt has); "tokens+cjk-words" makes each CJK character a word. Text without CJK characters
gets the same features as "tokens+words", and checkpoints of "tokens+words" keep theirs."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from ltrsched.predictors.features import ngram_bags

DIM = 1 << 16


def _word_unigrams(text: str, ngrams: str) -> set[int]:
    """The word-unigram buckets of ``text``'s bag: keys ``hash * 8 + 4``, so ``4 mod 8`` in a multiple of 8 buckets
    (token keys are 1 and 2 mod 8, word bigrams 5)."""
    return {i for i in ngram_bags([text], DIM, ngrams).indices.tolist() if i % 8 == 4}


def _bucket(word: str) -> int:
    return (zlib.crc32(word.encode("utf-8")) * 8 + 4) % DIM


@pytest.mark.parametrize("text, words", [
    ("写一首关于大海的诗", list("写一首关于大海的诗")),
    ("日本語の文章を書いてください。", [*"日本語の文章を書いてください", "。"]),
    ("Explain 量子 computing", ["explain", "量", "子", "computing"]),
])
def test_each_cjk_character_is_a_word(text, words):
    assert _word_unigrams(text, "tokens+cjk-words") == {_bucket(w) for w in words}


def test_two_chinese_prompts_share_the_words_they_share():
    """(one 'word' each with "tokens+words": no word in common however many characters they share)"""
    a, b = "请写一首关于大海的诗", "请写一首关于春天的诗"
    assert _word_unigrams(a, "tokens+words") == {_bucket(a)} and _word_unigrams(b, "tokens+words") == {_bucket(b)}
    shared = _word_unigrams(a, "tokens+cjk-words") & _word_unigrams(b, "tokens+cjk-words")
    assert shared == {_bucket(c) for c in "请写一首关于的诗"}


def test_text_without_cjk_characters_has_the_same_features_as_tokens_and_words():
    texts = ["Write an ESSAY, please!", "", "x_y 3.5 é naïve", "한국어 문장입니다", "emoji 😀 ok", "tab\there"]
    new, old = ngram_bags(texts, DIM, "tokens+cjk-words"), ngram_bags(texts, DIM, "tokens+words")
    for name in ("indices", "offsets", "weights", "dense"):
        assert np.array_equal(getattr(new, name), getattr(old, name)), name


def test_cli_train_ngrams_writes_a_checkpoint_of_that_set(tmp_path, capsys):
    import json

    from ltrsched.predictors.commands import train
    from ltrsched.predictors.features import NGRAM_SETS
    from test_cli_simulate import run_cli_in_process

    assert tuple(next(p for p in train.params if p.name == "ngrams").type.choices) == NGRAM_SETS
    rng = np.random.default_rng(0)
    for name in ("t", "e"):
        with open(tmp_path / f"{name}.jsonl", "w") as f:
            for i in range(40):
                words = "".join(rng.choice(list("请写一首关于大海春天的诗长短"), size=6))
                f.write(json.dumps({"prompt": f"{words} {name}{i}", "output_tokens": int(rng.integers(1, 300))}) + "\n")
    code, out, err = run_cli_in_process(capsys, "train", "--data", str(tmp_path / "t.jsonl"), "--eval-data",
                                        str(tmp_path / "e.jsonl"), "--epochs", "1", "--ngrams", "tokens+cjk-words",
                                        "-o", str(tmp_path / "m"))
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "predictor.json").read_text())["ngrams"] == "tokens+cjk-words"
    code, out, err = run_cli_in_process(capsys, "train", "--backbone", "hf", "--hf-model", "minilm", "--ngrams",
                                        "tokens", "-o", str(tmp_path / "h"))
    assert code == 2 and err.strip() == "error: --ngrams needs --backbone ngram", err
