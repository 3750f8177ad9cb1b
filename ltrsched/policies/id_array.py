"""Per-request policy memory keyed by request id, as a growable numpy array (vectorised lookups)."""

from __future__ import annotations

import numpy as np

_max = np.maximum.reduce  # (ndarray.max() goes through a Python wrapper: ~1 us more per call)


class IdArray:
    """A numpy array indexed by non-negative integer request ids, grown on demand.

    ``arr[ids]`` reads (ids never seen read ``fill``); ``arr[ids] = values`` writes.
    """

    def __init__(self, fill: float | int, dtype=np.float64, size: int = 1024):
        self.fill = fill
        self.dtype = dtype
        self.data = np.full(size, fill, dtype=dtype)

    def _grow(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        top = int(_max(ids))
        if top >= len(self.data):
            new = np.full(max(top + 1, 2 * len(self.data)), self.fill, dtype=self.dtype)
            new[: len(self.data)] = self.data
            self.data = new

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        self._grow(ids)
        return self.data[ids]

    def __setitem__(self, ids: np.ndarray, values) -> None:
        self._grow(ids)
        self.data[ids] = values

    def reserve(self, ids: np.ndarray) -> None:
        """Grow so that ``self.data[ids]`` can be read and written directly (no check per access)."""
        self._grow(ids)

    def reset(self) -> None:
        self.data[:] = self.fill
