"""Cheaper spellings of a few numpy operations, for loops that make dozens of numpy calls per simulated step
on arrays of a few hundred values, where a call's fixed overhead (~0.2-0.6 us) is most of its cost.
Each gives exactly the result of the plain numpy spelling it replaces."""

from __future__ import annotations

import numpy as np

#: ``count_nonzero(a)``: the number of nonzero (True) entries of an array, ``np.count_nonzero(a)`` without an
#: axis: the cheapest numpy reduction (any()/all()/sum() of a mask cost ~4x more). numpy's C function, without
#: its Python wrapper (array-function dispatch, axis handling): ~0.13 us less per call.
try:
    from numpy._core.multiarray import count_nonzero
except ImportError:  # pragma: no cover - another numpy layout
    count_nonzero = np.count_nonzero

_ONES = np.ones(1024, dtype=np.int64)
_ONES.flags.writeable = False


def ones(n: int) -> np.ndarray:
    """``n`` int64 ones (a read-only view of a shared array): ``int(x.dot(ones(len(x))))`` is ``int(x.sum())``
    for an integer ``x`` (exact), in about half the time on a few hundred values."""
    global _ONES
    if n > len(_ONES):
        _ONES = np.ones(2 * n, dtype=np.int64)
        _ONES.flags.writeable = False
    return _ONES[:n]


_RANGE = np.arange(1024, dtype=np.intp)
_RANGE.flags.writeable = False


def positions(n: int) -> np.ndarray:
    """``np.arange(n)`` as a read-only view of a shared range, grown by doubling (never written: a view handed out
    keeps its values): no pass over ``n`` values per call, where ``np.arange`` writes all of them (FCFS's order of
    every live request, each step: ~20-30 us at 50,000-100,000 live)."""
    global _RANGE
    if n > len(_RANGE):
        _RANGE = np.arange(2 * n, dtype=np.intp)
        _RANGE.flags.writeable = False
    return _RANGE[:n]


def frozen(a: np.ndarray) -> bool:
    """Whether ``a`` is read-only and owns its memory, so nobody can change its values under one who holds it
    (a read-only view may look at a buffer someone else writes)."""
    return not a.flags.writeable and a.base is None
