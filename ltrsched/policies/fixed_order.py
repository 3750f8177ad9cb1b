"""The competition order under a key fixed for each request (LTR's score), kept from step to step.

``view.order_by(key)`` sorts every live request every step. When each request's key never changes, the order
changes only when the live set does: between arrivals and finishes it is the same array, and after them it is
the last order without the requests that left, with the newcomers merged in. A stable sort of a few
thousand float keys costs tens of microseconds; reusing the order costs nothing, and updating it a few
passes over the live requests. The result is always ``view.order_by(key)``.

From ``_BASE_MIN`` live requests listed by arrival, a step on which requests only finished takes the order kept over
a base listing (:class:`~ltrsched.policies.base_listing.BaseListingOrder`: one slice subtraction per finish and one
gather, where renumbering the order read and wrote every entry several times): at 200,000 waiting requests LTR's step
went from 9.1x FCFS's to 5.3x (on a score column; BENCHMARKS.md, "Big queues").
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ltrsched.policies.base import LiveView, order_by
from ltrsched.policies.base_listing import BaseListingOrder
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.order_check import vouched
from ltrsched.policies.tracking import LiveIndex, is_ascending, same_ids, snapshot_ids, vouch_ascending

#: Merge newcomers one by one only while they are at most this share of the live requests; past it a sort is
#: cheaper (a burst's first step, say).
_MERGE_MAX_SHARE = 0.25
#: From this many live requests the kept order is renumbered after several finishes by a table (``_renumber``), below
#: it by a binary search per position (fewer numpy calls: the 2,000-request ShareGPT burst's PO took 5% more
#: instructions with the table at every count).
_TABLE_MIN = 4096
#: From this many live requests a step on which requests only finished takes the order kept over a base listing
#: (``BaseListingOrder``: one slice subtraction per finish and one gather, where the renumbering below reads and writes
#: every entry several times); below it the renumbering's fewer numpy calls cost less. BENCHMARKS.md, "Big queues".
_BASE_MIN = 4096
_ZERO = np.array(0)  # (a 0-d array operand spares numpy converting a Python int every call)
_SIGN_BIT = np.array(63)  # (an arithmetic right shift of an int64 by 63: -1 if it is negative, else 0)


class FixedKeyOrder:
    """``view.order_by(key(view))`` for a ``key`` that is fixed per request, updated incrementally.

    It works from the views alone, in any host and whatever order the host lists requests in (ties are broken
    by arrival time, then request id, as :meth:`LiveView.order_by` does), finding where the requests of the
    last order are listed now with a :class:`~ltrsched.policies.tracking.LiveIndex`. Told which requests left
    and arrived (:meth:`departed`, :meth:`arrived`, from the policy's hooks), it takes a shortcut when the host
    lists requests by arrival and their ids ascend (the simulator with the usual workloads): the requests that
    stayed keep their order and move up by the number of requests listed before them that left. An order made so
    from one that was a permutation (a sort's, or one made so before) is one by construction: every departed
    request was listed once, the newcomers are the positions after the others. It is vouched for
    (:func:`~ltrsched.policies.order_check.vouched`), so hosts need not check it value by value.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._index: LiveIndex | None = None  # request id -> position, shared with a wrapper
        self._ids: np.ndarray | None = None  # the listing the order is for (a snapshot)
        self._ascending = False  # whether that listing's ids ascend
        self._by_arrival = False  # whether it was listed by arrival
        self._order: np.ndarray | None = None  # the order returned for it (read-only)
        self._proven = False  # _order is a permutation of that listing's positions by construction
        self._departed: list[np.ndarray] = []  # requests that left since (their ids)
        self._arrived: list[np.ndarray] = []  # and arrived
        self._kept = BaseListingOrder()  # the order over a base listing, for steps with finishes alone (big listings)

    def departed(self, request_ids: np.ndarray) -> None:
        self._departed.append(request_ids)

    def arrived(self, request_ids: np.ndarray) -> None:
        self._arrived.append(request_ids)

    def order(self, view: LiveView, key: Callable[[LiveView], np.ndarray]) -> np.ndarray:
        """The competition order of ``view`` by ``key(view)`` (ascending), ties by arrival time, then id."""
        ids = view.request_id
        if same_ids(ids, self._ids):
            self._departed.clear()
            self._arrived.clear()
            return vouched(view, self._order) if self._proven else self._order
        n = len(ids)
        order = None
        ascending = proven = False
        if self._order is not None and n >= 2:
            if self._ascending and self._by_arrival and view.arrival_ordered and (self._departed or self._arrived):
                if self._departed and not self._arrived and self._proven and n >= _BASE_MIN:
                    order = self._leave(n)
                    ascending = proven = order is not None
                if order is None:
                    order, ascending = self._shift(view, ids, key)
                proven = order is not None and self._proven and len(order) == n
            if order is None:
                order = self._update(view, key)
        if order is None:
            order = view.order_by(key(view))
            proven = order is view._ranked  # (a sort's: a permutation)
        if order is not self._order:
            order.flags.writeable = False
        if proven:
            vouched(view, order)
        self._ids, self._order, self._proven = snapshot_ids(ids), order, proven
        self._ascending = ascending or is_ascending(ids)
        if self._ascending:  # (a wrapper's LiveIndex for this view need not check it again)
            vouch_ascending(view)
        self._by_arrival = view.arrival_ordered
        self._departed.clear()
        self._arrived.clear()
        return order

    def _leave(self, n: int) -> np.ndarray | None:
        """The last order without the requests that left, kept over a base listing (``BaseListingOrder``: one slice
        subtraction per finish and one gather), started from the last order if it is not kept there; None: not
        explained by the finishes (nothing kept then)."""
        kept = self._kept
        if kept.order is not self._order:
            kept.start(self._ids, self._order)
        gone = np.concatenate(self._departed) if len(self._departed) > 1 else self._departed[0]
        if len(gone) > 1:
            gone = np.sort(gone)
            if count_nonzero(gone[1:] == gone[:-1]):
                kept.reset()
                return None  # announced twice
        order = kept.leave(gone, n)
        if order is not None and 2 * n < kept.base_size:
            kept.reset()  # (mostly gone: the next finish step starts again from this order)
        return order

    def _shift(self, view: LiveView, ids: np.ndarray, key) -> tuple[np.ndarray | None, bool]:
        """The last order for a listing that lost the departed requests and has the newcomers after the others;
        and whether its ids still ascend. (None: not that listing.) A permutation whenever the last order was one:
        the departed requests were listed, each once (distinct positions removed), the stayed ones are renumbered
        in order, and the newcomers take the positions after them (``_merge`` places each once)."""
        old = self._ids
        n_old, n = len(old), len(ids)
        left_at = old[:0]
        if self._departed:
            gone = np.concatenate(self._departed) if len(self._departed) > 1 else self._departed[0]
            if len(gone) > 1:
                gone = np.sort(gone)
            # (the old listing's ids ascend: a departed request's position is a binary search, checked to hold
            # its id; the counts below check the rest as far as the hooks' contract goes)
            left_at = old.searchsorted(gone)
            if left_at[-1] >= n_old or count_nonzero(old[left_at] != gone) or (
                    len(gone) > 1 and not count_nonzero(gone[1:] != gone[:-1]) == len(gone) - 1):
                return None, False  # a departed request that was not listed, or announced twice
        n_kept = n_old - len(left_at)
        m = n - n_kept
        if self._arrived:
            new = np.concatenate(self._arrived) if len(self._arrived) > 1 else self._arrived[0]
            if m != len(new) or count_nonzero(ids[n_kept:] != np.sort(new)) or (
                    n_kept and ids[n_kept] <= ids[n_kept - 1]):
                return None, False  # newcomers not listed after the others, by id
        elif m:
            return None, False
        kept = self._order
        if len(left_at) == 1:
            f = left_at.reshape(())  # (a 0-d operand)
            kept = kept[kept != f]
            after = f - kept  # negative exactly where kept > f
            after >>= _SIGN_BIT  # -1 there, 0 elsewhere: integer operations only (a boolean operand is cast)
            kept += after
        elif len(left_at) and n_old >= _TABLE_MIN:
            kept = _renumber(kept, left_at, n_old)
        elif len(left_at):
            out = np.zeros(n_old, dtype=bool)
            out[left_at] = True
            kept = kept[~out[kept]]
            kept -= left_at.searchsorted(kept)
        if not m:
            return kept, True
        if m > _MERGE_MAX_SHARE * n:
            return None, False
        return _merge(view, kept, np.arange(n_kept, n), key), True

    def _update(self, view: LiveView, key) -> np.ndarray | None:
        """The last order without the requests that left, with the newcomers merged in, for any listing (None:
        sort instead)."""
        self._index = index = LiveIndex.of(view, self._index)
        n = len(view)
        at = index.positions(self._ids[self._order])  # the last order's requests, positions now (-1: left)
        kept = at[at >= _ZERO]
        m = n - len(kept)
        if not m:
            return kept
        if m > _MERGE_MAX_SHARE * n:
            return None
        listed = np.zeros(n, dtype=bool)
        listed[kept] = True
        return _merge(view, kept, (~listed).nonzero()[0], key)


def _renumber(order: np.ndarray, left_at: np.ndarray, n: int) -> np.ndarray:
    """``order`` (positions in a listing of ``n``) without the positions ``left_at`` (distinct, ascending, at least
    two), the others renumbered for the listing without them: each moves up by the count of those before it.

    That count is a table over positions up to the last one that left (the positions past it all move up by all of
    them), read once per position: a few plain passes over ``order``, where a binary search of each position among
    the ones that left cost ~log2(len(left_at)) dependent steps per position (a burst's finishes are at the head of
    the listing, so the table is short). A position that left reads a count above ``n``, which makes it negative."""
    top = int(left_at[-1]) + 1  # (positions from here on move up by all of them)
    before = np.zeros(top + 1, dtype=np.intp)
    before[left_at + 1] = 1
    before = before.cumsum()  # before[p]: positions that left below p, p <= top
    before[left_at] = n + 1  # (those positions: below 0 after the subtraction)
    moved = np.minimum(order, top)
    np.take(before, moved, out=moved)
    np.subtract(order, moved, out=moved)
    return moved[moved >= _ZERO]


def _merge(view: LiveView, kept: np.ndarray, new: np.ndarray, key) -> np.ndarray:
    """``kept`` (positions in order) with the positions ``new`` merged in by (key, arrival, id)."""
    n = len(kept) + len(new)
    keys = np.asarray(key(view))
    arrival, rid = view.arrival_time, view.request_id
    new = new[order_by(keys[new], arrival[new], rid[new])]
    # where each newcomer goes: past every kept request with a smaller (key, arrival, id)
    kept_keys = keys[kept]
    new_keys = keys[new]
    ins = kept_keys.searchsorted(new_keys, side="left")
    ends = kept_keys.searchsorted(new_keys, side="right")
    for j in (ends > ins).nonzero()[0].tolist():  # equal keys: then by arrival, then by id
        lo, hi = int(ins[j]), int(ends[j])
        seg = kept[lo:hi]
        a, r = arrival[new[j]], rid[new[j]]
        seg_arrival = arrival[seg]
        a_lo = int(seg_arrival.searchsorted(a, side="left"))
        a_hi = int(seg_arrival.searchsorted(a, side="right"))
        ins[j] = lo + a_lo + int(rid[seg[a_lo:a_hi]].searchsorted(r, side="left"))
    dest = ins + np.arange(len(new))
    out = np.empty(n, dtype=np.intp)
    out[dest] = new
    rest = np.ones(n, dtype=bool)
    rest[dest] = False
    out[rest] = kept
    return out
