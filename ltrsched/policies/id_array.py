"""Per-request policy memory keyed by request id, as a growable numpy array (vectorised lookups).

The array holds a window of ids, ``base + k`` .. ``base + len(data) - 1``: ``data[i]`` is id ``base + i`` for
``i >= k``. It grows as higher ids come, and its owner may drop the ids below the lowest it can still ask for
(:meth:`IdArray.trim`, or :meth:`IdArray.reserve` with ``lowest``): under a long-lived server, which numbers requests
by arrival, the ids grow for ever, and a window from 0 held 8-16 bytes per request ever served (docs/serving.md).

A few old ids still held far below the rest (a request live for a long time while many others come and go) would
keep the window spanning every id served since: when the ids held span more than :data:`SPARSE_SPAN` times their
count (and more than :data:`MIN_SPARSE` ids), the owner's :meth:`~IdArray.trim` (or :meth:`~IdArray.reserve`) with
``held`` moves those below the dense rest into ``k`` slots at the front of ``data`` (``data[i]`` for ``i < k`` is
id ``old[i]``, ascending), so that memory follows the count of ids held, not their range. Until then ``k`` is 0.

In a run of a workload whose requests arrive together, nothing is dropped and ``base`` stays 0: ``rows(ids)`` is
then ``ids`` itself.
"""

from __future__ import annotations

import numpy as np

_max = np.maximum.reduce  # (ndarray.max() goes through a Python wrapper: ~1 us more per call)
_min = np.minimum.reduce

#: The smallest window [ids] (its length when made).
MIN_WINDOW = 1024
#: Ids held that span more than this many times their count are laid out as a few old ids plus a dense window.
SPARSE_SPAN = 8
#: ...and only past this span [ids] (below it a window over the span costs at most 8-16 * this bytes).
MIN_SPARSE = 16 * MIN_WINDOW

_NO_IDS = np.zeros(0, dtype=np.int64)


class IdArray:
    """A numpy array indexed by non-negative integer request ids, over a window of ids grown on demand.

    ``arr[ids]`` reads (ids never seen read ``fill``; the window grows to the ids above it); ``arr.get(ids)`` reads
    without growing it; ``arr[ids] = values`` writes. Direct access for speed, once ``arr.reserve(ids)`` made room:
    ``arr.data[arr.rows(ids)]`` (``rows`` raises ``IndexError`` for an id below the window that is not one of the
    old ids held, and ``data`` does for one above it). Ids below the window (dropped by :meth:`trim`, or never held)
    read ``fill``; writing one, or reserving it, extends the window down to it (or, while old ids are held apart,
    holds it among them).

    Attributes:
        base: the id held at ``data[0]`` when no old ids are held apart (``k == 0``); in general ``data[i]`` is id
            ``base + i`` for ``i >= k``.
        k: how many old ids are held apart, at ``data[:k]`` (ids ``old``, ascending, all below ``base + k``).
        grew: the window grew since the last :meth:`trim` (its owner may then look for ids to drop).
    """

    def __init__(self, fill: float | int, dtype=np.float64, size: int | None = None):
        self.fill = fill
        self.dtype = dtype
        self._size = size = MIN_WINDOW if size is None else size  # the smallest window
        self.base = 0
        self.k = 0
        self.old = _NO_IDS
        self.grew = False
        self.data = np.full(size, fill, dtype=dtype)
        self._top = 0  # one past the highest id reserved, written or read through [] (the window need not go past)

    def _grow(self, ids: np.ndarray, lowest: int | None = None, held: np.ndarray | None = None) -> None:
        if len(ids) == 0:
            return
        top = int(_max(ids))
        if top >= self._top:
            self._top = top + 1
        base = self.base
        end = base + len(self.data)
        start = base + self.k
        if base and int(_min(ids)) < start:  # (ids below the window: it extends down to them, or holds them apart)
            keys = None if top < end or held is None else self._sparse(np.concatenate((held, ids)), top + 1)
            if keys is not None:
                self._relayout(keys, top + 1)
            elif self.k:
                below = ids[ids < start]
                new = np.setdiff1d(below, self.old)
                if len(new) or top >= end:
                    self._layout(np.union1d(self.old, new), start, max(top + 1, end))
            else:
                self._layout(_NO_IDS, int(_min(ids)), max(top + 1, end))
        elif top >= end:
            keys = None if held is None else self._sparse(np.concatenate((held, ids)), top + 1)
            if keys is not None:
                self._relayout(keys, top + 1)
                return
            if lowest is not None:
                lowest = min(lowest, int(_min(ids)))
            if lowest is not None and lowest > start:  # (no longer than it would be grown in place)
                self._layout(self.old[self.old >= lowest], lowest, top + 1)
            else:
                self._layout(self.old, start, top + 1)

    @staticmethod
    def _sparse(held: np.ndarray, end: int) -> np.ndarray | None:
        """Ids ``held`` (up to ``end - 1``), sorted and each once, if they span too many ids for their count to hold
        as one window; else None."""
        span = end - int(_min(held))
        if span <= MIN_SPARSE or span <= SPARSE_SPAN * len(held):
            return None
        keys = np.unique(held)
        return keys if span > SPARSE_SPAN * len(keys) else None

    def _relayout(self, keys: np.ndarray, end: int) -> None:
        """Hold ids ``keys`` (ascending, each once; and the window up to ``end - 1``): the ids from the lowest one
        whose ids above span at most :data:`SPARSE_SPAN` times their count (or :data:`MIN_SPARSE`) as the window, those
        below apart."""
        n = len(keys)
        span = end - keys
        ok = (span <= SPARSE_SPAN * (n - np.arange(n))) | (span <= MIN_SPARSE)
        j = int(ok.argmax()) if ok.any() else n
        start = int(keys[j]) if j < n else end - 1
        self._layout(keys[:j], start, end)

    def _layout(self, old: np.ndarray, start: int, end: int) -> None:
        """Hold ids ``old`` (ascending, below ``start``) apart and the window ``start`` .. ``end - 1`` (room up to twice
        as many; the window as it is, if it is the same and holds them), keeping the values of those held already."""
        cur_start, cur_len = self.base + self.k, len(self.data) - self.k
        if start == cur_start and end <= cur_start + cur_len:  # (only the ids apart change)
            size = cur_len
        else:
            size = max(end - start, 2 * cur_len if start == cur_start else 2 * (end - start), self._size)
        k = len(old)
        new = np.full(k + size, self.fill, dtype=self.dtype)
        lo, hi = max(start, cur_start), min(start + size, cur_start + cur_len)
        if lo < hi:
            new[k + lo - start:k + hi - start] = self.data[self.k + lo - cur_start:self.k + hi - cur_start]
        if self.k:  # (the old ids held apart until now: apart still, or in the new window)
            was = self.old
            vals = self.data[:self.k]
            inside = (was >= start) & (was < start + size)
            new[k + was[inside] - start] = vals[inside]
        if k:
            new[:k] = self.get(old)
        if start + size > cur_start + cur_len:
            self.grew = True
        self.data, self.base, self.k, self.old = new, start - k, k, old

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The positions of ``ids`` in :attr:`data` (``ids`` itself while the window starts at 0). Raises
        ``IndexError`` for an id below the window that is not held apart."""
        base = self.base
        if not base:
            return ids
        rows = ids - base
        if len(rows) and _min(rows) < self.k:
            return self._rows_apart(ids, rows)
        return rows

    def _rows_apart(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        below = rows < self.k
        asked = ids[below]
        old = self.old
        at = np.minimum(old.searchsorted(asked), max(len(old) - 1, 0))
        if not len(old) or not (old[at] == asked).all():
            missing = asked if not len(old) else asked[old[at] != asked]
            raise IndexError(f"request id {int(_min(missing))} is below the ids held (from {self.base + self.k})")
        rows[below] = at
        return rows

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        if self.base:
            if len(ids) and int(_min(ids)) < self.base + self.k:
                return self.get(ids)
            self._grow(ids)
            return self.data[ids - self.base]
        self._grow(ids)
        return self.data[ids]

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The values at ``ids`` without growing the window (ids outside it read ``fill``): for memory written only
        for a known set of ids (a workload's, in ``prepare``) and read for any."""
        data, base = self.data, self.base
        if not len(ids) or not base and int(_max(ids)) < len(data):
            return data[ids]
        rows = ids - base
        k = self.k
        inside = (rows >= k) & (rows < len(data))
        out = np.full(len(ids), self.fill, dtype=self.dtype)
        out[inside] = data[rows[inside]]
        if k:
            below = rows < k
            asked = ids[below]
            at = np.minimum(self.old.searchsorted(asked), k - 1)
            found = self.old[at] == asked
            where = below.nonzero()[0][found]
            out[where] = data[at[found]]
        return out

    def __setitem__(self, ids: np.ndarray, values) -> None:
        self._grow(ids)
        self.data[self.rows(ids)] = values

    def reserve(self, ids: np.ndarray, lowest: int | None = None, held: np.ndarray | None = None) -> None:
        """Grow so that ``self.data[self.rows(ids)]`` can be read and written (no check per access). ``lowest``:
        the lowest id the caller may still ask for, if it knows it: a window that must grow then drops the ids
        below it (the new window no longer than one grown in place). ``held``: every id the caller may still ask
        for, if it knows them: a window that must grow then holds only those (a few old ones apart if they are
        sparse)."""
        self._grow(ids, lowest, held)

    def trim(self, lowest: int, held: np.ndarray | None = None) -> None:
        """Drop the ids below ``lowest`` (the caller will not ask for them again) if they are at least half of the
        window, or the ids from ``lowest`` on need at most a quarter of it: those keep their values, in a window twice
        as long as they need (at least :data:`MIN_WINDOW`). With ``held`` (every id the caller may still ask for,
        ``lowest`` their lowest): where those are sparse, hold only them (the old ones apart), whatever their range."""
        self.grew = False
        start = self.base + self.k
        n = len(self.data) - self.k
        keys = None if held is None or not len(held) else self._sparse(held, max(self._top, lowest + 1))
        if keys is not None:
            self._relayout(keys, max(self._top, lowest + 1))
        elif lowest > start and (lowest - start >= n // 2 or 4 * max(self._top - lowest, 1) <= n):
            self._layout(self.old[self.old >= lowest], lowest, max(self._top, lowest + 1))
        elif self.k and lowest > self.old[0]:  # (old ids held apart gone: dropped)
            self._layout(self.old[self.old >= lowest], start, start + n)
        self.grew = False

    def reset(self) -> None:
        if self.base or self.k:
            self.base, self.k, self.old = 0, 0, _NO_IDS
            self.data = np.full(self._size, self.fill, dtype=self.dtype)
        else:
            self.data[:] = self.fill
        self._top, self.grew = 0, False
