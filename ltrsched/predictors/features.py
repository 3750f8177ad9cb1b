"""Hashed n-gram features of a prompt (the fast CPU default backbone's input).

Each prompt becomes a bag of hashed n-grams (``dim`` buckets, log-scaled counts, L2-normalised) in the
(indices, offsets, weights) layout of ``torch.nn.EmbeddingBag``, plus dense length features (log prompt
tokens and its square, scaled). Three n-gram sets, chosen by ``ngrams``:

- ``"tokens"``: Llama-3 token unigrams and bigrams (the first default; checkpoints without an ``ngrams``
  field use it);
- ``"tokens+words"`` (default): those plus lower-cased word unigrams and bigrams (words = runs of word
  characters, and single punctuation marks), hashed with CRC-32 so that features are the same in every
  process. Words generalise across the token splits of one word (" Write" / "write" / "WRITE") and add
  1-2 points of held-out Kendall tau on ShareGPT (BENCHMARKS.md);
- ``"tokens+cjk-words"`` (``train --ngrams``): as ``"tokens+words"``, with each Chinese character and kana a word
  of its own (:data:`_WORD_CJK`: Chinese and Japanese have no spaces, so ``\\w+`` made a sentence one word). Text
  without them gets the same features; the same held-out tau on ShareGPT (46 of its 8,230 prompts have them).

Tokenizing and hashing are vectorised (quicktok's batch encoder + numpy; CRC-32 per distinct word), so
featurising runs at tens of thousands of prompts per second.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np

BIGRAM_PRIME = 1_000_003
NGRAM_SETS = ("tokens", "tokens+words", "tokens+cjk-words")
_WORD = re.compile(r"\w+|[^\w\s]")
#: Scripts written without spaces between words: Chinese characters (with their extensions and compatibility
#: forms), Japanese kana. ``\w+`` made a whole sentence of them one "word", seen in no other prompt.
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
#: :data:`_WORD` with each CJK character a word of its own (other runs of word characters as before: a text
#: without CJK characters gives the same words).
_WORD_CJK = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
# feature families are salted so that a token id and a word hash never share a bucket by construction
_SALT = {"tok1": 1, "tok2": 2, "word1": 4, "word2": 5}


@dataclass(frozen=True)
class NgramBags:
    """EmbeddingBag inputs for a batch of prompts."""

    indices: np.ndarray  # int32 [total entries] (int64 for over 2^31 buckets): half the bytes of the largest array
    offsets: np.ndarray  # int64 [n]: start of each prompt's entries
    weights: np.ndarray  # float32 [total entries]
    dense: np.ndarray  # float32 [n, 2]: length features

    def __len__(self) -> int:
        return len(self.offsets)


def _encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from ltrsched.workloads.tokenizer import _encoding

    toks, offs = _encoding().encode_batch(texts, 0, False)
    return np.asarray(toks, dtype=np.int64), np.asarray(offs, dtype=np.int64)


_HASHES: dict[str, int] = {}  # word -> CRC-32, shared by all calls (bounded below)


def _words(texts: list[str], word=_WORD) -> tuple[np.ndarray, np.ndarray]:
    """CRC-32 of every lower-cased word (``word``'s matches) of every text, and the row (text index) of each."""
    cache = _HASHES
    if len(cache) > 2_000_000:
        cache.clear()
    out: list[int] = []
    counts = np.zeros(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        words = word.findall(t.lower())
        counts[i] = len(words)
        for w in words:
            h = cache.get(w)
            if h is None:
                h = cache[w] = zlib.crc32(w.encode("utf-8"))
            out.append(h)
    return np.asarray(out, dtype=np.int64), np.repeat(np.arange(len(texts)), counts)


def _uni_bi(ids: np.ndarray, rows: np.ndarray, salt1: int, salt2: int) -> tuple[list, list]:
    same = rows[1:] == rows[:-1] if len(rows) > 1 else np.zeros(0, dtype=bool)
    keys = [ids * 8 + salt1, ((ids[:-1] * BIGRAM_PRIME + ids[1:]) * 8 + salt2)[same]]
    return keys, [rows, rows[1:][same]]


#: Prompts featurised at once. The work arrays (token ids, word hashes, their n-gram keys, the sort that counts
#: them) take ~10 times the bags they make: training on 50,000 ShareGPT prompts (30M characters) peaked at 2.6 GB
#: resident with them all at once, for 180 MB of bags (int64 indices then; BENCHMARKS.md, Predictors).
CHUNK = 4096


def ngram_bags(texts: list[str], dim: int, ngrams: str = "tokens") -> NgramBags:
    """Hashed n-gram bags of ``texts`` over ``dim`` buckets (``ngrams``: one of :data:`NGRAM_SETS`), made
    :data:`CHUNK` texts at a time (a text's bag is its own: the same arrays as all at once, in bounded memory)."""
    if ngrams not in NGRAM_SETS:
        from ltrsched.errors import UserError

        raise UserError(f"unknown n-gram set {ngrams!r}; use one of {', '.join(NGRAM_SETS)}")
    texts = ["" if t is None else str(t) for t in texts]
    if len(texts) <= CHUNK:
        return _bags(texts, dim, ngrams)
    fields: dict[str, list[np.ndarray]] = {"indices": [], "offsets": [], "weights": [], "dense": []}
    entries = 0
    for first in range(0, len(texts), CHUNK):
        part = _bags(texts[first: first + CHUNK], dim, ngrams)
        fields["offsets"].append(part.offsets + entries)  # (each chunk's offsets moved past the entries before)
        entries += len(part.indices)
        for name in ("indices", "weights", "dense"):
            fields[name].append(getattr(part, name))
    del part
    # one field at a time, its pieces dropped before the next is joined: at most every piece and one joined field
    return NgramBags(**{name: _joined(pieces) for name, pieces in fields.items()})


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """``pieces`` concatenated; the list is emptied (the pieces freed as soon as the result exists)."""
    out = np.concatenate(pieces)
    pieces.clear()
    return out


def _bags(texts: list[str], dim: int, ngrams: str) -> NgramBags:
    """:func:`ngram_bags` of ``texts`` (strings) all at once."""
    n = len(texts)
    toks, offs = _encode(texts)
    lengths = np.diff(offs)
    rows = np.repeat(np.arange(n), lengths)
    if ngrams == "tokens":  # the original layout, bit for bit (older checkpoints)
        same = rows[1:] == rows[:-1] if len(rows) > 1 else np.zeros(0, dtype=bool)
        keys = np.concatenate([toks % dim, ((toks[:-1] * BIGRAM_PRIME + toks[1:]) % dim)[same]])
        key_rows = np.concatenate([rows, rows[1:][same]])
    else:  # "tokens+words", "tokens+cjk-words"
        k1, r1 = _uni_bi(toks, rows, _SALT["tok1"], _SALT["tok2"])
        k2, r2 = _uni_bi(*_words(texts, _WORD_CJK if ngrams == "tokens+cjk-words" else _WORD), _SALT["word1"],
                         _SALT["word2"])
        keys = np.concatenate(k1 + k2) % dim
        key_rows = np.concatenate(r1 + r2)
    # count duplicates within a row: unique (row, key) pairs
    pair = key_rows * dim + keys
    uniq, counts = np.unique(pair, return_counts=True)
    u_rows = uniq // dim
    weights = np.log1p(counts).astype(np.float64)
    norms = np.sqrt(np.bincount(u_rows, weights=weights * weights, minlength=n))
    weights = weights / np.maximum(norms[u_rows], 1e-9)
    offsets = np.searchsorted(u_rows, np.arange(n)).astype(np.int64)
    logp = np.log(np.maximum(lengths, 1)).astype(np.float64) / 7.0
    dense = np.stack([logp, logp * logp], axis=1).astype(np.float32)
    index = np.int32 if dim <= 1 << 31 else np.int64
    return NgramBags((uniq % dim).astype(index), offsets, weights.astype(np.float32), dense)
