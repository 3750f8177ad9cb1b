"""Llama-3 token counts, offline (the tiktoken-format BPE bundled in the ``quicktok-v1`` package)."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

#: Texts tokenised in one call where a load shows its progress [texts]: a call's token ids are built whole (4 bytes
#: a token) before they are counted, so a part at a time also bounds that array (200 MB for 100,000 prompts and
#: replies in one call).
CHUNK = 8192


@lru_cache(maxsize=1)
def _encoding():
    import quicktok

    return quicktok.get_encoding("llama3")


def count_tokens(texts: Sequence[str], bar=None) -> np.ndarray:
    """Llama-3 token count of each text (no special tokens) [tokens], as int64. With ``bar`` (a progress display:
    ``update(k)``), :data:`CHUNK` texts at a time, each part counted on it (the counts are the same)."""
    import quicktok

    texts = ["" if t is None else str(t) for t in texts]
    if not texts:
        return np.zeros(0, dtype=np.int64)
    if bar is None:
        return np.asarray(quicktok.count_batch(_encoding(), texts), dtype=np.int64)
    counts = []
    for first in range(0, len(texts), CHUNK):
        part = texts[first: first + CHUNK]
        counts.append(np.asarray(quicktok.count_batch(_encoding(), part), dtype=np.int64))
        bar.update(len(part))
    return np.concatenate(counts)
