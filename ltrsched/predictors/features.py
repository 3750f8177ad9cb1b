"""Hashed n-gram features of a prompt's Llama-3 tokens (the fast CPU default backbone's input).

Each prompt becomes a bag of hashed token unigrams and bigrams (``dim`` buckets, log-scaled counts,
L2-normalised) in the (indices, offsets, weights) layout of ``torch.nn.EmbeddingBag``, plus dense
length features (log prompt tokens and its square, scaled). Tokenizing and hashing are vectorised
(quicktok's batch encoder + numpy), so featurising runs at tens of thousands of prompts per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BIGRAM_PRIME = 1_000_003


@dataclass(frozen=True)
class NgramBags:
    """EmbeddingBag inputs for a batch of prompts."""

    indices: np.ndarray  # int64 [total entries]
    offsets: np.ndarray  # int64 [n]: start of each prompt's entries
    weights: np.ndarray  # float32 [total entries]
    dense: np.ndarray  # float32 [n, 2]: length features

    def __len__(self) -> int:
        return len(self.offsets)


def _encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from ltrsched.workloads.tokenizer import _encoding

    toks, offs = _encoding().encode_batch(texts, 0, False)
    return np.asarray(toks, dtype=np.int64), np.asarray(offs, dtype=np.int64)


def ngram_bags(texts: list[str], dim: int) -> NgramBags:
    """Hashed unigram + bigram bags of ``texts`` over ``dim`` buckets."""
    texts = ["" if t is None else str(t) for t in texts]
    n = len(texts)
    toks, offs = _encode(texts)
    lengths = np.diff(offs)
    rows = np.repeat(np.arange(n), lengths)
    same = rows[1:] == rows[:-1] if len(rows) > 1 else np.zeros(0, dtype=bool)
    keys = np.concatenate([toks % dim, ((toks[:-1] * BIGRAM_PRIME + toks[1:]) % dim)[same]])
    key_rows = np.concatenate([rows, rows[1:][same]])
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
    return NgramBags((uniq % dim).astype(np.int64), offsets, weights.astype(np.float32), dense)
