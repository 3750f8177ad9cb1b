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


#: Rows an inbox's table and row list start with once a request comes (they then double as needed).
MIN_CAPACITY = 16


class Inbox:
    """Requests routed to one replica, appended at their arrival times (so in arrival order).

    The replica serves them from a table of its own (``table``: local row k is the k-th request routed
    here), so the rows it touches every step lie together in memory (a cluster's shared table spreads
    them N times wider, and costs a third more per step). :meth:`scatter` copies the run's state back
    into the cluster's table at the end.

    Memory is O(requests routed here): the table has room for about as many requests as came, and grows
    (doubling) when full. The router copies a request into the table when there is room (a row the replica
    does not read until it admits the request, as it does the requests that come while it runs a step);
    when there is none, it only appends the request's cluster row to ``rows``, and the replica grows the
    table and copies the request in with :meth:`pull`, between two of its steps. So the table's arrays are
    replaced only in the replica's own process, at a point where it rebinds what it holds of them; never
    while it is suspended in a step (a router runs only then).

    Attributes:
        table: the replica's request table (rows past ``filled`` unused, their arrival times +inf; there is
            always one at least, so the replica's loop runs until the inbox is closed).
        rows: the cluster table's row of each local row [count valid].
        count: requests routed here so far.
        filled: requests copied into ``table`` so far (the first ``filled`` of them; <= count: the others
            wait for the replica's next :meth:`pull`).
        closed: the router has routed every request it will.
        arrival_ordered: the cluster's arrival order lists requests by arrival time, ties by request id
            (so the local rows do too; see ``LiveView.arrival_ordered``).
        horizon: when the router's next arrival is due (shared by the cluster's inboxes).
    """

    __slots__ = ("env", "source", "table", "rows", "count", "filled", "closed", "arrival_ordered", "horizon",
                 "_pairs", "_capacity", "_wake")

    def __init__(self, env: simpy.Environment, source: RequestTable, arrival_ordered: bool, horizon: Horizon):
        self.env = env
        self.source = source
        self.table = RequestTable.allocate(1)
        self.rows = np.zeros(0, dtype=np.int64)
        self.count = 0
        self.filled = 0
        self.closed = False
        self.arrival_ordered = arrival_ordered
        self.horizon = horizon
        self._pairs = self._static_pairs()
        self._capacity = 1
        self._wake: simpy.Event | None = None

    def put(self, row: int) -> None:
        """Queue the cluster table's row ``row`` (arriving now, not before the last one); wakes an idle
        replica."""
        k = self.count
        if k == self.filled and k + 1 < self._capacity:  # room in the table (and in rows: as long)
            for local, shared in self._pairs:
                local[k] = shared[row]
            self.rows[k] = row
            self.count = self.filled = k + 1
        else:  # the replica pulls it
            if k == len(self.rows):
                self._grow_rows(k + 1)
            self.rows[k] = row
            self.count = k + 1
        self._notify()

    def put_many(self, rows: np.ndarray) -> None:
        """Queue the cluster table's rows ``rows`` (in arrival order, none before the last one queued)."""
        k, m = self.count, len(rows)
        if k + m > len(self.rows):
            self._grow_rows(k + m)
        self.rows[k:k + m] = rows
        self.count = k + m
        self._notify()

    def pull(self) -> bool:
        """Copy the requests routed since the last pull into ``table`` (the replica calls this between its
        steps). Returns whether the table grew: its arrays are then new ones, and any taken before stale."""
        k, count = self.filled, self.count
        if k == count:
            return False
        grew = count >= self._capacity  # (a row past the last one stays unused)
        if grew:
            self._capacity = max(count + 1, 2 * self._capacity, MIN_CAPACITY)
            self.table.resize(self._capacity)
            self._pairs = self._static_pairs()
            if len(self.rows) < self._capacity:
                self._grow_rows(self._capacity)
        if count - k <= 3:  # (scalar copies cost less than numpy's fancy indexing for a few)
            rows = self.rows
            for j in range(k, count):
                row = int(rows[j])
                for local, shared in self._pairs:
                    local[j] = shared[row]
        else:
            rows = self.rows[k:count]
            for local, shared in self._pairs:
                local[k:count] = shared[rows]
        self.filled = count
        return grew

    def close(self) -> None:
        """No more requests will come; an idle replica ends its run."""
        self.closed = True
        self._notify()

    def wait(self) -> simpy.Event:
        """An event that fires at the next :meth:`put` or :meth:`close` (the replica is idle)."""
        self._wake = self.env.event()
        return self._wake

    def scatter(self) -> None:
        """Copy the run's state of the routed requests into the cluster's table (the replica's run is over;
        requests routed after it ended are pulled first: their state is the initial one)."""
        self.pull()
        rows = self.rows[: self.count]
        for f in DYNAMIC:
            getattr(self.source, f)[rows] = getattr(self.table, f)[: self.count]

    def _static_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(getattr(self.table, f), getattr(self.source, f)) for f in STATIC]

    def _grow_rows(self, need: int) -> None:
        rows = np.zeros(max(need, 2 * len(self.rows), MIN_CAPACITY), dtype=np.int64)
        rows[: self.count] = self.rows[: self.count]
        self.rows = rows

    def _notify(self) -> None:
        if self._wake is not None:
            wake, self._wake = self._wake, None
            wake.succeed()
