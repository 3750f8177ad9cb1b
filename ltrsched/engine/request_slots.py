"""vLLM's request objects by the adapter's slot, as numpy object arrays (pure Python + numpy, no vLLM).

Every step the adapter needs the vLLM ``Request`` objects (and their ids) of a batch of up to a few
hundred slots, several times: to hand vLLM its queues, to check what vLLM scheduled, to read what each
member generated. A Python loop per batch member costs ~30-60 ns per pass, ~10-15 us a pass at 256
members; gathering from an object array (``requests[batch].tolist()``) is one C loop, ~2 us.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RequestSlots:
    """Growable object arrays: ``requests[slot]`` (None once the request left) and ``ids[slot]`` (its
    vLLM request id, kept after it left so a late lookup still names it)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.requests = np.full(capacity, None, dtype=object)
        self.ids = np.full(capacity, None, dtype=object)

    def put(self, slot: int, request: Any) -> None:
        """Record ``request`` at ``slot`` (slots arrive in order 0, 1, 2, ...; the arrays grow as needed)."""
        if slot >= len(self.requests):
            grow = max(2 * len(self.requests), slot + 1) - len(self.requests)
            self.requests = np.concatenate((self.requests, np.full(grow, None, dtype=object)))
            self.ids = np.concatenate((self.ids, np.full(grow, None, dtype=object)))
        self.requests[slot] = request
        self.ids[slot] = request.request_id

    def gather(self, slots: np.ndarray) -> list:
        """The request objects at ``slots``, in order."""
        return self.requests[slots].tolist()

    def gather_ids(self, slots: np.ndarray) -> list[str]:
        """The request ids at ``slots``, in order."""
        return self.ids[slots].tolist()

    def release(self, slots: np.ndarray | list[int]) -> list:
        """``slots`` left the engine: drop the references to their request objects; returns those objects."""
        if len(slots) <= 16:  # (a few each step: scalar reads and writes cost less than numpy calls)
            requests = self.requests
            released = []
            for s in (slots.tolist() if isinstance(slots, np.ndarray) else slots):
                released.append(requests[s])
                requests[s] = None
            return released
        released = self.requests[slots].tolist()
        self.requests[slots] = None
        return released

    def compact(self, kept: np.ndarray, capacity: int) -> None:
        """Keep only the slots ``kept`` (ascending), renumbered ``0 .. len(kept)-1`` in that order, in arrays of
        ``capacity`` entries (at least ``len(kept)``): :meth:`LiveTable.compact`'s renumbering."""
        requests = np.full(capacity, None, dtype=object)
        ids = np.full(capacity, None, dtype=object)
        requests[:len(kept)] = self.requests[kept]
        ids[:len(kept)] = self.ids[kept]
        self.requests, self.ids = requests, ids
