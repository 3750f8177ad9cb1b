"""A replica's inbox in a cluster: the requests the router has sent it, in a table of its own."""

from __future__ import annotations

import numpy as np
import simpy

from ltrsched.sim.request_table import DYNAMIC, STATIC, RequestTable


class Horizon:
    """When the router's next arrival is due [s] (+inf when none): a cluster replica runs its steps
    without SimPy events until then (other replicas' steps cannot affect it)."""

    __slots__ = ("time",)

    def __init__(self, time: float = float("inf")):
        self.time = time

    def peek(self) -> float:
        return self.time


class Inbox:
    """Requests routed to one replica, appended at their arrival times (so in arrival order).

    The replica serves them from a table of its own (``table``: local row k is the k-th request routed
    here), so the rows it touches every step lie together in memory (a cluster's shared table spreads
    them N times wider, and costs a third more per step). :meth:`scatter` copies the run's state back
    into the cluster's table at the end.

    Attributes:
        table: the replica's request table (room for every request; rows past ``count`` unused, their
            arrival times +inf).
        rows: the cluster table's row of each local row [count valid].
        count: requests routed here so far.
        closed: the router has routed every request it will.
        arrival_ordered: the cluster's arrival order lists requests by arrival time, ties by request id
            (so the local rows do too; see ``LiveView.arrival_ordered``).
        horizon: when the router's next arrival is due (shared by the cluster's inboxes).
    """

    __slots__ = ("env", "source", "table", "rows", "count", "closed", "arrival_ordered", "horizon", "_pairs",
                 "_wake")

    def __init__(self, env: simpy.Environment, source: RequestTable, arrival_ordered: bool, horizon: Horizon):
        n = len(source.request_id)
        self.env = env
        self.source = source
        self.table = RequestTable.allocate(n)
        self.rows = np.zeros(n, dtype=np.int64)
        self.count = 0
        self.closed = False
        self.arrival_ordered = arrival_ordered
        self.horizon = horizon
        self._pairs = [(getattr(self.table, f), getattr(source, f)) for f in STATIC]
        self._wake: simpy.Event | None = None

    def put(self, row: int) -> None:
        """Queue the cluster table's row ``row`` (arriving now, not before the last one); wakes an idle
        replica."""
        k = self.count
        for local, shared in self._pairs:
            local[k] = shared[row]
        self.rows[k] = row
        self.count = k + 1
        self._notify()

    def put_many(self, rows: np.ndarray) -> None:
        """Queue the cluster table's rows ``rows`` (in arrival order, none before the last one queued)."""
        k, m = self.count, len(rows)
        for local, shared in self._pairs:
            local[k:k + m] = shared[rows]
        self.rows[k:k + m] = rows
        self.count = k + m
        self._notify()

    def close(self) -> None:
        """No more requests will come; an idle replica ends its run."""
        self.closed = True
        self._notify()

    def wait(self) -> simpy.Event:
        """An event that fires at the next :meth:`put` or :meth:`close` (the replica is idle)."""
        self._wake = self.env.event()
        return self._wake

    def scatter(self) -> None:
        """Copy the run's state of the routed requests into the cluster's table."""
        rows = self.rows[: self.count]
        for f in DYNAMIC:
            getattr(self.source, f)[rows] = getattr(self.table, f)[: self.count]

    def _notify(self) -> None:
        if self._wake is not None:
            wake, self._wake = self._wake, None
            wake.succeed()
