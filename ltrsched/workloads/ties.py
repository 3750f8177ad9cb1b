"""Tied output lengths and what they leave Kendall's tau-b to measure.

A model that nearly always stops at a cap (``max_tokens``) gives most prompts one length. Tau-b counts no pair of
equal lengths as ordered, so a ranker whose scores never tie (every built-in one) reaches at most
``sqrt(1 - tied / all)`` over all pairs [dimensionless], however right its order: tau 0.5 may be the best possible.
The bound is for scores without ties only: scores that tie exactly where the lengths tie (copies of one prompt, with
one length, score alike) leave those pairs out on both sides and reach 1 in the right order. The warning says so: a
tau-b of 1.0000 beside "at most 0.707" (200,000 copies of two prompts) read as a contradiction.
"""

from __future__ import annotations

import math

import numpy as np

#: Below this ceiling (about 19% of the pairs tied) a tau is read wrongly without the ceiling beside it.
WARN_BELOW = 0.9


def tied_pair_share(lengths: np.ndarray) -> float:
    """Share of the pairs of ``lengths`` [tokens] that are equal, in [0, 1] (0 for fewer than 2 lengths)."""
    n = len(lengths)
    if n < 2:
        return 0.0
    counts = np.unique(np.asarray(lengths), return_counts=True)[1].astype(np.float64)
    return float((counts * (counts - 1)).sum() / (n * (n - 1.0)))


def tau_ceiling(lengths: np.ndarray) -> float:
    """The highest Kendall tau-b against ``lengths`` [tokens] of scores without ties: ``sqrt(1 - tied share)``."""
    return math.sqrt(1.0 - tied_pair_share(lengths))


def ties_warning(lengths: np.ndarray, what: str) -> str | None:
    """A one-line warning if ties in ``lengths`` [tokens] (``what``: "held-out lengths") cap tau-b below
    :data:`WARN_BELOW`, naming the most common length and whether it is the largest (a cap?) or the shortest;
    None otherwise."""
    lengths = np.asarray(lengths)
    ceiling = tau_ceiling(lengths)
    if len(lengths) < 2 or ceiling >= WARN_BELOW:
        return None
    values, counts = np.unique(lengths, return_counts=True)
    top = int(np.argmax(counts))
    length = f"{values[top]} token{'' if values[top] == 1 else 's'}"
    if len(values) == 1:  # (it said "the most common, 1 tokens ... a cap?" of lengths all one)
        common = f"all {len(lengths)} prompts have one length, {length}"
    else:  # (named by what the data shows: the shortest length is no cap)
        place = (", is the largest length: a cap?" if top == len(values) - 1 else ", is the shortest length" if top == 0
                 else "")
        common = f"the most common, {length}, for {counts[top]} of {len(lengths)} prompts{place}"
    return (f"warning: {what}: {tied_pair_share(lengths):.0%} of the prompt pairs have equal lengths ({common}); "
            f"Kendall tau-b orders no tied pair, so a ranker whose scores never tie reaches at most {ceiling:.3f} here "
            "(scores that tie exactly where the lengths tie, as copies of one prompt do, are not so bounded: they reach "
            "1 in the right order)")
