"""A fixed-key competition order kept over a base listing, for steps on which requests only finish.

``FixedKeyOrder`` renumbers its kept order (positions now) after each finish: the stayed positions after a departed one
move up, which reads and writes every entry several times (a compare, a compress, a subtraction and a shift for one
finish; for several, a table built by a cumulative count over the listing and read once per entry): at 200,000 live
requests most of a step (BENCHMARKS.md, "Big queues"). Here, as SRTF's ``RemainingOrder`` does, the order is kept over a
*base listing* (the listing when it started; ids ascending): the order as base positions (``_base``), for each base
position its position now (``_now``), and beside ``_base`` an ascending sequence number (``_seq``, the rank at the
start) by which a departed request's rank is found by binary search. A finish moves the positions now after it up by one
slice subtraction (``remaining_order.move_up_after``: together at most one pass), takes the departed ranks out of
``_base`` and ``_seq`` by moving the entries before them up (requests finish after running, in the batch at the
order's head: a cost of the batch, not of the listing), and the order is one gather of the positions now in base
order. Units: positions and ranks are indices into the listings [requests].

The caller (``FixedKeyOrder``) vouches that the host lists requests by arrival with ascending ids, that the order it
starts from is a permutation of the listing (so is each order made here: every departed request was live in the base
listing, each once, and the live entries' positions now are 0 .. n-1), and that no request arrived since (a newcomer:
the caller orders that step its own way and starts again later).
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.remaining_order import move_up_after

_GONE = -1  # ``_seq_of`` of a base position whose request left (the sequence numbers are >= 0)


class BaseListingOrder:
    """The last order without the requests that finished, kept over a base listing: :meth:`start`, then per finish
    step :meth:`leave`. ``order`` is the order it last made (or started from)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.order: np.ndarray | None = None  # the order kept (positions now, read-only); None: nothing kept
        self._ids: np.ndarray | None = None  # the base listing's ids (ascending)
        self._base: np.ndarray | None = None  # buffer: [_start:] the order as base positions
        self._seq: np.ndarray | None = None  # buffer: [_start:] ascending, aligned with _base
        self._start = 0
        self._seq_of: np.ndarray | None = None  # base position -> its entry in _seq (_GONE: left)
        self._now: np.ndarray | None = None  # base position -> position now (stale for those that left)

    def start(self, ids: np.ndarray, order: np.ndarray) -> None:
        """Keep ``order`` (a permutation of the positions of the listing ``ids``, ascending ids)."""
        n = len(order)
        seq = np.arange(n)
        self._ids, self._base, self._seq, self._start = ids, order.copy(), seq, 0
        self._seq_of = np.empty(n, dtype=np.intp)
        self._seq_of[order] = seq
        self._now, self.order = np.arange(n), order

    def leave(self, gone: np.ndarray, n: int) -> np.ndarray | None:
        """The kept order without the requests ``gone`` (ids, ascending, distinct), for a listing of ``n``: the kept
        listing less them. None (and nothing kept) if one of them was not live in the base listing or ``n`` is not the
        count left.

        The departed ranks are taken out by moving the entries before the last of them towards it (the kept arrays
        then start later): a cost of that rank, not of the listing. Requests finish only after running, and a batch is
        the order's head, so that rank is about the batch's size."""
        ids, seq_of, d, start = self._ids, self._seq_of, len(gone), self._start
        at = ids.searchsorted(gone)
        live = len(self._base) - start
        if not d or at[-1] >= len(ids) or not np.array_equal(ids[at], gone) or live - d != n:
            self.reset()
            return None
        s = seq_of[at]
        seq = self._seq[start:]
        ranks = seq.searchsorted(s)
        if (s < 0).any() or ranks[-1] >= live or not np.array_equal(seq[ranks], s):
            self.reset()  # (one left before: its _seq_of is _GONE)
            return None
        seq_of[at] = _GONE
        move_up_after(self._now, len(ids), at)
        ranks.sort()
        head = int(ranks[-1]) + 1  # (the entries after the last departed rank stay where they are)
        for kept in (self._base, self._seq):
            kept[start + d:start + head] = np.delete(kept[start:start + head], ranks)
        self._start = start = start + d
        order = self._now.take(self._base[start:])
        order.flags.writeable = False
        self.order = order
        return order

    @property
    def base_size(self) -> int:
        """Entries of the base listing [requests], those that left included."""
        return 0 if self._ids is None else len(self._ids)
