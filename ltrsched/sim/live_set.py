"""Dropping finished requests from a replica's live listing by their positions.

A step's finished requests are members of its batch, whose positions in the live listing the step knows (the
batch's ranks in the order). Removing them by position costs nothing when they are the head or the tail of the
listing (a FCFS burst's usual finish: a slice), a copy of the kept runs between a few, or one boolean mask over
the listing for many; a filter on the request states also gathers every live request's state (~75 us in all at
50,000 live).
The kept entries keep their order: policies break ties by it.
"""

from __future__ import annotations

import numpy as np

#: Live requests per scattered position at or above which the kept runs between the positions are copied one by
#: one (~1 us each); below, one boolean mask over the listing (a pass over it, ~1 ns per entry, ~2 us a call).
ENTRIES_PER_COPIED_RUN = 1000
#: Live requests below which several positions are dropped by the mask at once: sorting them to look for a head or
#: a tail run costs more numpy calls (~1 us each) than the mask's pass saves.
MIN_LIVE_TO_SORT = 4096


def drop_positions(live: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``live`` without the entries at positions ``at`` (distinct, any order), the rest in their order.

    Always a new array object (LiveGather caches gathers by the identity of the index array): a slice of
    ``live`` (a view of its memory) when ``at`` is its head or its tail (one position, or from
    ``MIN_LIVE_TO_SORT`` live), else a copy. Raises IndexError for a position past the end, and for a negative one
    where it sorts them (the replica's positions come from the checked order: never negative).
    """
    n = len(live)
    d = len(at)
    if d == 1:  # one finish: the usual decode step's
        p = int(at[0])
        if not 0 <= p < n:
            raise IndexError(f"position {p} is outside a live listing of {n}")
        if p == 0:
            return live[1:]
        if p == n - 1:
            return live[:-1]
        out = np.empty(n - 1, dtype=live.dtype)
        out[:p] = live[:p]
        out[p:] = live[p + 1:]
        return out
    if d == 0:
        return live[:]
    if n < MIN_LIVE_TO_SORT:
        return _masked(live, at)
    at = np.sort(at)
    first, last = int(at[0]), int(at[-1])
    if first < 0 or last >= n:
        raise IndexError(f"positions {first}..{last} are not all inside a live listing of {n}")
    if last == d - 1:  # the head (distinct positions: 0..d-1)
        return live[d:]
    if first == n - d:  # the tail
        return live[:first]
    if d * ENTRIES_PER_COPIED_RUN <= n:
        out = np.empty(n - d, dtype=live.dtype)
        start = o = 0
        for p in at.tolist():
            out[o:o + p - start] = live[start:p]
            o += p - start
            start = p + 1
        out[o:] = live[start:]
        return out
    return _masked(live, at)


def _masked(live: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``live`` without the positions ``at`` (distinct, in 0..len(live)-1), by one boolean mask."""
    keep = np.ones(len(live), dtype=bool)
    keep[at] = False
    return live[keep]
