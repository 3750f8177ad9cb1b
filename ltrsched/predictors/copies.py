"""Copies of one held-out prompt with different output lengths, and what they leave Kendall's tau-b to measure.

A model sampled several times per prompt gives one prompt several lengths. A predictor reads the text alone, so it
scores copies of a prompt alike and orders none of them. Over ``D`` pairs of different lengths, ``S`` of which are
copies of one prompt, tau-b of any such scores is at most ``sqrt(1 - S / D)`` [dimensionless]: of the pairs, at most
``U <= D - S`` are untied on both sides, and tau-b, at most ``U / sqrt(D x the pairs untied in the scores)``, is then
at most ``U / sqrt(D U) = sqrt(U / D)``. Five prompts sampled 20 times each: 0.899, however good the predictor. The
bound of :mod:`ltrsched.workloads.ties` is for scores that never tie; this one holds for every score that ties copies.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from ltrsched.workloads.ties import WARN_BELOW  # (one threshold for both ceilings)


def _pairs(counts) -> int:
    """Pairs within groups of the sizes ``counts``."""
    return sum(c * (c - 1) // 2 for c in counts)


def copies_ceiling(prompts: list[str], lengths) -> tuple[float, int, int] | None:
    """(The highest Kendall tau-b against ``lengths`` [tokens], one per prompt, of scores that tie copies of one
    prompt; how many prompts are copies of a prompt given with another length too; how many such prompts there are.)
    None where no two copies differ in length, or every length is equal (no tau)."""
    lengths = np.asarray(lengths).tolist()
    n = len(prompts)
    apart = n * (n - 1) // 2 - _pairs(Counter(lengths).values())  # D: pairs of different lengths
    seen: dict[str, Counter] = defaultdict(Counter)  # prompt -> its lengths, counted
    for prompt, length in zip(prompts, lengths):
        seen[prompt][length] += 1
    differing = sum(_pairs([sum(c.values())]) - _pairs(c.values()) for c in seen.values())  # S
    if not differing or not apart:
        return None
    spread = [sum(c.values()) for c in seen.values() if len(c) > 1]
    return math.sqrt(1.0 - differing / apart), sum(spread), len(spread)


def copies_warning(prompts: list[str], lengths, what: str = "held-out prompts") -> str | None:
    """A one-line warning where copies of one prompt with different ``lengths`` [tokens] cap tau-b below
    :data:`~ltrsched.workloads.ties.WARN_BELOW` (``what``: "held-out prompts"); None otherwise."""
    found = copies_ceiling(prompts, lengths)
    if found is None or found[0] >= WARN_BELOW:
        return None
    ceiling, spread, texts = found
    named = f"{texts:,} prompt{'s' if texts > 1 else ''}"
    return (f"warning: {spread:,} of the {len(prompts):,} {what} are copies of {named} given with different lengths "
            "(a model sampled more than once): a predictor reads the text alone and scores copies alike, so its "
            f"Kendall tau-b reaches at most {ceiling:.3f} here, however it ranks")
