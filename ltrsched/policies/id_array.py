"""Per-request policy memory keyed by request id, as a growable numpy array (vectorised lookups).

The array holds a window of ids, ``base`` .. ``base + len(data) - 1``: ``data[i]`` is id ``base + i``. It grows as
higher ids come, and its owner may drop the ids below the lowest it can still ask for (:meth:`IdArray.trim`, or
:meth:`IdArray.reserve` with ``lowest``): under a long-lived server, which numbers requests by arrival, the ids grow
for ever, and a window from 0 held 8-16 bytes per request ever served (docs/serving.md). In a run of a workload
whose requests arrive together, nothing is dropped and ``base`` stays 0: ``rows(ids)`` is then ``ids`` itself.
"""

from __future__ import annotations

import numpy as np

_max = np.maximum.reduce  # (ndarray.max() goes through a Python wrapper: ~1 us more per call)
_min = np.minimum.reduce

#: The smallest window [ids] (its length when made).
MIN_WINDOW = 1024


class IdArray:
    """A numpy array indexed by non-negative integer request ids, over a window of ids grown on demand.

    ``arr[ids]`` reads (ids never seen read ``fill``; the window grows to the ids above it); ``arr.get(ids)`` reads
    without growing it; ``arr[ids] = values`` writes. Direct access for speed, once ``arr.reserve(ids)`` made room:
    ``arr.data[arr.rows(ids)]`` (``rows`` raises ``IndexError`` for an id below the window, and ``data`` does for one
    above it). Ids below the window (dropped by :meth:`trim`, or never held) read ``fill``; writing one, or reserving it,
    extends the window down to it.

    Attributes:
        base: the id held at ``data[0]``.
        grew: the window grew since the last :meth:`trim` (its owner may then look for ids to drop).
    """

    def __init__(self, fill: float | int, dtype=np.float64, size: int | None = None):
        self.fill = fill
        self.dtype = dtype
        self._size = size = MIN_WINDOW if size is None else size  # the smallest window
        self.base = 0
        self.grew = False
        self.data = np.full(size, fill, dtype=dtype)
        self._top = 0  # one past the highest id reserved, written or read through [] (the window need not go past)

    def _grow(self, ids: np.ndarray, lowest: int | None = None) -> None:
        if len(ids) == 0:
            return
        top = int(_max(ids))
        if top >= self._top:
            self._top = top + 1
        base = self.base
        end = base + len(self.data)
        if base and int(_min(ids)) < base:  # (ids below the window: it extends down to them)
            self._rebase(int(_min(ids)), max(top + 1, end))
        elif top >= end:
            if lowest is not None:
                lowest = min(lowest, int(_min(ids)))
            if lowest is not None and lowest > base:  # (no longer than it would be grown in place)
                self._rebase(lowest, top + 1)
            else:
                self._rebase(base, top + 1)

    def _rebase(self, base: int, end: int) -> None:
        """Hold ids ``base`` .. ``end - 1`` (room up to twice as many), keeping the values of those held already."""
        old, old_base = self.data, self.base
        size = max(end - base, 2 * len(old) if base == old_base else 2 * (end - base), self._size)
        new = np.full(size, self.fill, dtype=self.dtype)
        lo, hi = max(base, old_base), min(base + size, old_base + len(old))
        if lo < hi:
            new[lo - base:hi - base] = old[lo - old_base:hi - old_base]
        if base + size > old_base + len(old):
            self.grew = True
        self.data, self.base = new, base

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The positions of ``ids`` in :attr:`data` (``ids`` itself while the window starts at 0). Raises
        ``IndexError`` for an id below the window."""
        base = self.base
        if not base:
            return ids
        rows = ids - base
        if len(rows) and _min(rows) < 0:
            raise IndexError(f"request id {int(_min(ids))} is below the ids held (from {base})")
        return rows

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        if self.base:
            if len(ids) and int(_min(ids)) < self.base:
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
        inside = (rows >= 0) & (rows < len(data))
        out = np.full(len(ids), self.fill, dtype=self.dtype)
        out[inside] = data[rows[inside]]
        return out

    def __setitem__(self, ids: np.ndarray, values) -> None:
        self._grow(ids)
        self.data[self.rows(ids)] = values

    def reserve(self, ids: np.ndarray, lowest: int | None = None) -> None:
        """Grow so that ``self.data[self.rows(ids)]`` can be read and written (no check per access). ``lowest``:
        the lowest id the caller may still ask for, if it knows it: a window that must grow then drops the ids
        below it (the new window no longer than one grown in place)."""
        self._grow(ids, lowest)

    def trim(self, lowest: int) -> None:
        """Drop the ids below ``lowest`` (the caller will not ask for them again) if they are at least half of the
        window, or the ids from ``lowest`` on need at most a quarter of it: those keep their values, in a window twice
        as long as they need (at least :data:`MIN_WINDOW`)."""
        self.grew = False
        n, base = len(self.data), self.base
        if lowest > base and (lowest - base >= n // 2 or 4 * max(self._top - lowest, 1) <= n):
            self._rebase(lowest, max(self._top, lowest + 1))
            self.grew = False

    def reset(self) -> None:
        if self.base:
            self.base, self.data = 0, np.full(self._size, self.fill, dtype=self.dtype)
        else:
            self.data[:] = self.fill
        self._top, self.grew = 0, False
