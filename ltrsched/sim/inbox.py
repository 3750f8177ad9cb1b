"""A replica's inbox in a cluster: the requests the router has sent it, in arrival order."""

from __future__ import annotations

import numpy as np
import simpy


class Inbox:
    """Requests routed to one replica, appended at their arrival times (so in arrival order).

    ``rows`` and ``times`` have room for every request of the table; entries past ``count`` are unused
    (times +inf), so the replica reads them like the sorted arrival arrays of a lone replica.

    Attributes:
        rows: table rows of the routed requests [count valid].
        times: their arrival times [s] (+inf past ``count``).
        count: requests routed here so far.
        closed: the router has routed every request it will.
    """

    __slots__ = ("env", "rows", "times", "count", "closed", "_wake")

    def __init__(self, env: simpy.Environment, capacity: int):
        self.env = env
        self.rows = np.zeros(capacity, dtype=np.int64)
        self.times = np.full(capacity, np.inf)
        self.count = 0
        self.closed = False
        self._wake: simpy.Event | None = None

    def put(self, row: int, time: float) -> None:
        """Queue table row ``row``, arriving at ``time`` [s] (not before the last one); wakes an idle replica."""
        k = self.count
        self.rows[k] = row
        self.times[k] = time
        self.count = k + 1
        self._notify()

    def close(self) -> None:
        """No more requests will come; an idle replica ends its run."""
        self.closed = True
        self._notify()

    def wait(self) -> simpy.Event:
        """An event that fires at the next :meth:`put` or :meth:`close` (the replica is idle)."""
        self._wake = self.env.event()
        return self._wake

    def owned(self, n: int) -> np.ndarray:
        """Boolean mask over the table's ``n`` rows: routed here."""
        mask = np.zeros(n, dtype=bool)
        mask[self.rows[: self.count]] = True
        return mask

    def _notify(self) -> None:
        if self._wake is not None:
            wake, self._wake = self._wake, None
            wake.succeed()
