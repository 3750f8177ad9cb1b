"""Dropping finished requests from a replica's live listing by their positions.

A step's finished requests are members of its batch, whose positions in the live listing the step knows (the
batch's ranks in the order). Removing them by position costs O(finished) Python work plus one copy of the
kept entries, or nothing at all when they are the head or the tail of the listing (a FCFS burst's usual finish:
a slice), where a filter on the request states reads every live request's state (~75 us at 50,000 live).
The kept entries keep their order: policies break ties by it.
"""

from __future__ import annotations

import numpy as np

#: Scattered positions up to which the kept runs are copied one by one (~0.3 us each); beyond, one boolean
#: mask over the span between the head and tail runs (a pass over it, ~1 ns per entry).
MAX_COPIED_RUNS = 32


def drop_positions(live: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``live`` without the entries at positions ``at`` (distinct, any order), the rest in their order.

    Always a new array object (LiveGather caches gathers by the identity of the index array): a slice of
    ``live`` (a view of its memory) when ``at`` covers a head and a tail of it, else a copy. Raises
    IndexError for a position outside ``live``.
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
    at = np.sort(at)
    if at[0] < 0 or at[-1] >= n:
        raise IndexError(f"positions {int(at[0])}..{int(at[-1])} are not all inside a live listing of {n}")
    # at[i] - i never decreases (distinct sorted positions): the head run is where it is 0 (at[i] == i), the
    # tail run where it is n - d (the last positions)
    shifted = at - np.arange(d)
    head = int(shifted.searchsorted(0, side="right"))
    tail = d - int(shifted.searchsorted(n - d, side="left"))
    lo, hi = head, n - tail  # the span left after the head and tail runs
    middle = at[head:d - tail]
    if not len(middle):
        return live[lo:hi]
    if len(middle) <= MAX_COPIED_RUNS:
        out = np.empty(hi - lo - len(middle), dtype=live.dtype)
        start = lo
        o = 0
        for p in middle.tolist():
            out[o:o + p - start] = live[start:p]
            o += p - start
            start = p + 1
        out[o:] = live[start:hi]
        return out
    keep = np.ones(hi - lo, dtype=bool)
    keep[middle - lo] = False
    return live[lo:hi][keep]
