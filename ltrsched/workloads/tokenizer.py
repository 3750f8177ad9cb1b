"""Llama-3 token counts, offline (the tiktoken-format BPE bundled in the ``quicktok-v1`` package)."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np


@lru_cache(maxsize=1)
def _encoding():
    import quicktok

    return quicktok.get_encoding("llama3")


def count_tokens(texts: Sequence[str]) -> np.ndarray:
    """Llama-3 token count of each text (no special tokens) [tokens], as int64."""
    import quicktok

    texts = ["" if t is None else str(t) for t in texts]
    if not texts:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(quicktok.count_batch(_encoding(), texts), dtype=np.int64)
