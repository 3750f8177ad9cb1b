"""Helpers for policies that keep state from step to step instead of recounting every live request.

A policy that follows its host step by step (``rank`` on the view of step s, ``on_step`` on that same view,
``on_finish``/``on_arrival``, then ``rank`` on the view of step s + 1) knows from the hooks what changed: which
requests ran, finished or arrived. It can then update a few requests' state per step and re-derive the rest
only when it loses track (a rank without ``on_step`` in between, a live set it cannot explain), by
recounting from the view's columns as a stateless policy would. Results are the same either way.

Here: comparing two views' listings (:func:`same_ids`), request id -> position (:class:`LiveIndex`), where
a step's batch sits in the order (:func:`batch_positions`), and requests filed by the step at which something
becomes due for them (:class:`DueSteps`).
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView
from ltrsched.policies.fastops import count_nonzero

_NO_IDS = np.zeros(0, dtype=np.int64)


def snapshot_ids(ids: np.ndarray) -> np.ndarray:
    """``ids`` (a view's ``request_id`` column) kept for comparing with a later view's: the array itself when
    nothing can change it (read-only and owning its memory, as the simulator's gathered columns are), else a copy."""
    if ids.flags.writeable or ids.base is not None:
        return ids.copy()
    return ids


def same_ids(ids: np.ndarray, snapshot: np.ndarray | None) -> bool:
    """Whether a view lists the same requests in the same order as the one ``snapshot`` was taken from."""
    if snapshot is None:
        return False
    return ids is snapshot or (len(ids) == len(snapshot) and not count_nonzero(ids != snapshot))


_max = np.maximum.reduce
_min = np.minimum.reduce
_UNSET = np.array(-1)  # (0-d array operands spare numpy converting a Python int every call)

#: The key under which a view records that a policy proved it lists request ids in ascending order
#: (:func:`vouch_ascending`), so that a :class:`LiveIndex` for it need not check (one pass over the ids).
_ASCENDING_IDS = "#ascending_ids"


def vouch_ascending(view: LiveView) -> None:
    """Record that ``view`` lists request ids in strictly ascending order, for a caller that has proven it (e.g.
    :class:`~ltrsched.policies.fixed_order.FixedKeyOrder`, from the last listing's ascending ids, the departures
    and the newcomers): a :class:`LiveIndex` for the view then finds positions by binary search unchecked."""
    view._cache[_ASCENDING_IDS] = True


def known_ascending(view: LiveView) -> bool:
    """Whether a policy proved that ``view`` lists request ids in ascending order (:func:`vouch_ascending`)."""
    return _ASCENDING_IDS in view._cache


#: The smallest id -> position table [entries] (its length when made).
MIN_TABLE = 1024
#: A listing whose ids span more than this many times its length (and more than :data:`MIN_TABLE` ids) is looked up
#: through its sorted ids instead of a table over the span: ids that sparse would make the table mostly holes.
SPARSE_SPAN = 8


class LiveIndex:
    """Request id -> position in the latest view, kept from view to view; one per host, shared by a wrapper and
    the policy it wraps (:meth:`of`). When the view lists ids in ascending order (a workload whose ids follow
    arrival order, listed by arrival) a position is a binary search; otherwise an id -> position table is
    rebuilt, only when the listing changed and someone asks.

    The table holds a window of ids, ``_base`` .. ``_base + len(_pos) - 1``, from 0 while the lowest id listed is
    below the span of the ids listed (a run of a workload), else from the lowest id listed: under a long-lived
    server, whose ids grow for ever, a table from 0 held 8 bytes per request ever served. Ids that sparse (spanning
    more than :data:`SPARSE_SPAN` times the listing) are found by binary search in their sorted copy instead. Either
    way it holds a few times the listing's length [entries], whatever ids were served.

    Attributes:
        version: bumped whenever the listing changes, so a policy that kept something per position knows
            whether it still holds.
    """

    __slots__ = ("_pos", "_base", "_sorted", "_marked", "_ids", "_ascending", "version")

    def __init__(self):
        self._pos = np.full(MIN_TABLE, -1, dtype=np.intp)
        self._base = 0  # the id at _pos[0]
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # sparse ids: (sorted ids, their positions)
        self._marked: np.ndarray | None = None  # the listing whose positions _pos (or _sorted) holds
        self._ids: np.ndarray | None = None  # the listing followed (a snapshot)
        self._ascending: bool | None = None  # whether it lists ids in ascending order (None: not checked)
        self.version = 0

    @classmethod
    def of(cls, view: LiveView, last: "LiveIndex | None") -> "LiveIndex":
        """The index for ``view``: the one another policy already brought up to date for it, else ``last`` (the
        caller's from earlier steps, or a new one) brought up to date."""
        index = view.shared("#live_index", lambda: (cls() if last is None else last)._follow(view.request_id))
        if index._ascending is None and _ASCENDING_IDS in view._cache:  # (proven by another policy)
            index._ascending = True
        return index

    def _follow(self, ids: np.ndarray) -> "LiveIndex":
        if not same_ids(ids, self._ids):
            self._ids = snapshot_ids(ids)
            self._ascending = None
            self.version += 1
        return self

    @property
    def ascending(self) -> bool:
        """Whether the view lists request ids in ascending order."""
        if self._ascending is None:
            self._ascending = is_ascending(self._ids)
        return self._ascending

    def positions(self, ids: np.ndarray, listed: bool = False) -> np.ndarray:
        """Positions of ``ids`` in the view; -1 for an id it does not list, unless the caller knows every one is
        ``listed`` (then nothing is checked). Ids are non-negative."""
        listing = self._ids
        if self.ascending:
            at = listing.searchsorted(ids)
            if listed:
                return at
            found = listing[np.minimum(at, len(listing) - 1)] == ids if len(listing) else np.zeros(len(ids), bool)
            return np.where(found, at, _UNSET)
        if self._marked is not listing:
            self._mark(listing)
        pos = self._pos
        if pos is None:
            return _sorted_positions(self._sorted, ids, listed)
        base = self._base
        if not base:
            try:
                return pos[ids]
            except IndexError:  # ids beyond the table are listed nowhere
                return np.where(ids < len(pos), pos[np.minimum(ids, len(pos) - 1)], _UNSET)
        rows = ids - base
        if listed:
            return pos[rows]
        inside = (rows >= 0) & (rows < len(pos))
        return np.where(inside, pos[np.where(inside, rows, 0)], _UNSET)

    def _mark(self, listing: np.ndarray) -> None:
        """Hold the positions of ``listing`` (not in ascending order): clear the last listing's from the table and
        write this one's, in a new table if its ids leave this one's window (or in sorted ids, if they are sparse)."""
        pos, base, marked = self._pos, self._base, self._marked
        self._marked = listing
        if pos is not None:
            if marked is not None:
                pos[marked - base if base else marked] = _UNSET
            if not base:  # (a table from 0, a run's: the write is tried before the ids' bounds are counted)
                try:
                    pos[listing] = np.arange(len(listing))
                    return
                except IndexError:  # an id beyond the table
                    pass
        n = len(listing)  # (at least 2: a shorter listing is ascending)
        lo, hi = int(_min(listing)), int(_max(listing))
        if pos is not None and base and base <= lo and hi < base + len(pos):
            pos[listing - base] = np.arange(n)
            return
        span = hi - lo + 1
        if span > SPARSE_SPAN * n and span > MIN_TABLE:
            order = listing.argsort(kind="stable")
            self._pos, self._sorted = None, (listing[order], order)
            return
        self._sorted = None
        if lo <= span:  # (a run's ids: the table from 0, doubled as it always was)
            base, size = 0, max(2 * len(pos) if pos is not None and not base else MIN_TABLE, hi + 1)
        else:
            base, size = lo, max(2 * span, MIN_TABLE)
        pos = np.full(size, -1, dtype=np.intp)
        pos[listing - base if base else listing] = np.arange(n)
        self._pos, self._base = pos, base


def _sorted_positions(sorted_ids: tuple[np.ndarray, np.ndarray], ids: np.ndarray, listed: bool) -> np.ndarray:
    """Positions of ``ids`` through a listing's sorted ids and their positions (-1 for an id not listed, unless every
    one is ``listed``)."""
    keys, order = sorted_ids
    at = keys.searchsorted(ids)
    if listed:
        return order[at]
    at = np.minimum(at, len(keys) - 1)
    return np.where(keys[at] == ids, order[at], _UNSET)


def is_ascending(ids: np.ndarray) -> bool:
    """Whether ``ids`` strictly ascend."""
    return len(ids) < 2 or not count_nonzero(ids[1:] <= ids[:-1])


def batch_positions(order: np.ndarray | None, scheduled: np.ndarray) -> tuple[np.ndarray, bool]:
    """The positions of the ``scheduled`` requests, and whether they are the head of ``order`` (the order the
    policy returned for the view). Hosts form the batch as a prefix of the order, so that is usually a slice
    (no pass over every live request); else the positions in ascending order."""
    k = int(count_nonzero(scheduled))
    if order is not None and k <= len(order):
        head = order[:k]
        if count_nonzero(scheduled[head]) == k:
            return head, True
    return scheduled.nonzero()[0], False


def split_by_tail(before: int, after: np.ndarray, arrived: np.ndarray) -> bool:
    """Whether the last ``len(arrived)`` entries of ``after`` (a view's ids) are exactly ``arrived`` (in any
    order), with ``before`` entries ahead of them: newcomers listed after every request that stayed."""
    m = len(arrived)
    if before + m != len(after):
        return False
    if not m:
        return True
    tail = after[before:]
    return bool(np.array_equal(np.sort(tail), np.sort(arrived)))


class DueSteps:
    """Requests keyed by the step at which something becomes due for them (e.g. a promotion after T idle
    steps). Entries are not removed as requests finish or are filed again: whoever pops a step checks that each
    request is still due, and its owner drops the entries no longer due with :meth:`keep` (when they outnumber the
    live requests, say: filed every step a request runs or arrives, they would otherwise number the requests
    served, or run, over the last T steps, whatever the count live).

    Entries filed since the last :meth:`keep` are held per step (a dict of arrays); those that :meth:`keep` kept, as
    two arrays sorted by step (ids, steps), so that a cut costs a few numpy calls over every entry, not a few per
    step filed.

    Attributes:
        size: the entries filed [ids] (a request filed twice counts twice).
    """

    __slots__ = ("_due", "_kept_ids", "_kept_steps", "size")

    def __init__(self):
        self._due: dict[int, list[np.ndarray]] = {}
        self._kept_ids = self._kept_steps = _NO_IDS
        self.size = 0

    def clear(self) -> None:
        self._due.clear()
        self._kept_ids = self._kept_steps = _NO_IDS
        self.size = 0

    def add(self, step: int, ids: np.ndarray) -> None:
        if len(ids):
            got = self._due.get(step)
            if got is None:
                self._due[step] = [ids]
            else:
                got.append(ids)
            self.size += len(ids)

    def held(self) -> list[np.ndarray]:
        """The requests filed (arrays of ids, under any step)."""
        held = [ids for got in self._due.values() for ids in got]
        if len(self._kept_ids):
            held.append(self._kept_ids)
        return held

    def pop(self, step: int) -> np.ndarray | None:
        """The requests filed under ``step`` (None if none), forgotten here."""
        got = self._due.pop(step, None)
        steps = self._kept_steps
        if len(steps) and steps[0] <= step:  # (kept entries filed under this step: a run of the sorted steps)
            lo, hi = steps.searchsorted(step), steps.searchsorted(step, side="right")
            if hi > lo:
                kept = self._kept_ids
                part = kept[lo:hi]
                if lo:
                    self._kept_ids, self._kept_steps = np.delete(kept, np.s_[lo:hi]), np.delete(steps, np.s_[lo:hi])
                else:
                    self._kept_ids, self._kept_steps = kept[hi:], steps[hi:]
                got = [part] if got is None else [part, *got]
        if got is None:
            return None
        ids = got[0] if len(got) == 1 else np.concatenate(got)
        self.size -= len(ids)
        return ids

    def keep(self, still_due) -> None:
        """Keep only the entries ``still_due(ids, steps)`` (a bool mask aligned with the entries' ``ids`` and the
        ``steps`` they are filed under) marks: one pass over every entry (and a sort of those kept by step, unless
        they are so already: those kept before, then those filed since under later steps, the usual case)."""
        due = self._due
        parts = [ids for got in due.values() for ids in got]
        filed = [step for step, got in due.items() for _ in got]
        if not parts and not len(self._kept_ids):
            return
        steps = np.repeat(np.array(filed, dtype=np.int64), [len(ids) for ids in parts])
        if len(self._kept_ids):  # (kept first: filed before, under steps up to those filed since)
            parts.insert(0, self._kept_ids)
            steps = np.concatenate((self._kept_steps, steps))
        ids = np.concatenate(parts) if len(parts) > 1 else parts[0]
        kept = np.asarray(still_due(ids, steps), dtype=bool)
        ids, steps = ids[kept], steps[kept]
        if count_nonzero(steps[1:] < steps[:-1]):
            by = steps.argsort(kind="stable")
            ids, steps = ids[by], steps[by]
        self._kept_ids, self._kept_steps = ids, steps
        due.clear()
        self.size = len(ids)

    def fill(self, ids: np.ndarray, steps: np.ndarray) -> None:
        """File every ``ids[i]`` under ``steps[i]`` (after a recount)."""
        if not len(ids):
            return
        order = steps.argsort(kind="stable")
        steps, ids = steps[order], ids[order]
        cuts = np.flatnonzero(steps[1:] != steps[:-1]) + 1
        for part_ids, step in zip(np.split(ids, cuts), steps[np.r_[0, cuts]].tolist()):
            self.add(int(step), part_ids)
