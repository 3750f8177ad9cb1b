"""A fixed-key competition order with some requests moved to its front, kept from step to step.

Starvation prevention around a policy whose order is by a key fixed per request (LTR) returns its promoted
requests first, then the inner order without them. Built from the inner order whenever either changes, a step on
which a request finished pays two passes over the live requests for the same change: the inner order renumbered
(``FixedKeyOrder``), then the promoted-first order built from it. Here the order is kept over a *base* listing
instead: the inner order at the step the kept order started (positions in that listing, ``_base``), for each base
position the request's position now (``_GONE`` once it left), and for each rank of the base order whether the
request there is in the rest of the order (live, not at the front: ``_keep``). A finish renumbers the base positions
after it (one slice subtraction), a move to or from the front flips a few ranks' flags, and the order is the front
then one compress, by those flags, of the positions now in base order (``_at``: one gather, made again only after a
finish; a step whose only change is a move pays the compress and the concatenation alone); the inner policy is not
ranked meanwhile (its hooks still are: it catches up when it is ranked again). With nothing at the front it is the
inner order itself (the wrapper keeps it then too).

It holds while the host lists requests by arrival with ascending ids (the base listing less the requests that
left is the listing now), announces every finish and adds no request (a newcomer stops it: the caller starts
again from the inner order, which merges newcomers in). Once the requests that left are a tenth of the base listing,
it is compacted (the live requests become the base listing, in the kept order), without the inner order. The order is a permutation of the live positions by
construction: the base order is one (the inner order, vouched for or a sort's), the positions now of the live base
entries are 0 .. n-1 (each finish took one out and moved those after it down by one), the rest is the live entries
not at the front, and the caller's front is the positions of the entries at the front, each once (read with
:meth:`positions`, which reads past the live positions if one of them is not at the front, for the distinct requests
it moved there); :meth:`order` checks the length, and that no front position reads past the live ones. Costs:
BENCHMARKS.md (issue 15).
"""

from __future__ import annotations

import math

import numpy as np

from ltrsched.policies.base import LiveView
from ltrsched.policies.fastops import count_nonzero, frozen
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.tracking import known_ascending, snapshot_ids

_FRONT = np.array(1 << 40)  # added to positions read for the front that are not at the front (past the live ones)
_GONE = np.array(-(1 << 62))  # a request that left (never read as a position again)
_LIVE_MIN = np.array(-(1 << 61))  # entries below this left
_LIVE_MIN_INT = -(1 << 61)
_TRUE, _FALSE = np.array(True), np.array(False)  # (0-d operands: numpy converts a Python scalar every call)
_max = np.maximum.reduce
#: Finishes followed at a step, up to this many (each a few scalar reads and one slice subtraction, the slices
#: disjoint); past it the caller starts again.
_MAX_FINISHES = 64
#: ``_SHIFTS[j]``: j + 1, the move of the positions listed after j + 1 departed requests (0-d operands)
_SHIFTS = tuple(np.array(j + 1) for j in range(_MAX_FINISHES))
#: Compact the base listing (drop the requests that left) once fewer than this share of it is live: the order's
#: gather runs over the whole base listing.
_MIN_LIVE_SHARE = 0.9


class FrontOrder:
    """The order of a fixed-key inner policy with requests moved to its front, kept over a base listing.

    :meth:`start` from the inner order, then per rank :meth:`follow` the announced finishes (:meth:`departed`),
    :meth:`move` requests to and from the front, and :meth:`order` for the front's positions. Attributes:
    ``listing`` is bumped whenever positions change (a finish), ``version`` whenever the order does.
    """

    def __init__(self):
        self.listing = 0
        self.version = 0
        self._base_of = IdArray(-1, np.intp)  # request id -> base position (for the base listing's requests)
        self.reset()

    def reset(self) -> None:
        self._ids: np.ndarray | None = None  # the base listing's request ids (ascending); None: nothing kept
        self._base: np.ndarray | None = None  # the inner order of the base listing (rank -> base position)
        self._rank: np.ndarray | None = None  # base position -> rank in _base (its inverse)
        self._now: np.ndarray | None = None  # base position -> position now (_GONE: left)
        self._keep: np.ndarray | None = None  # rank -> live and not at the front (in the rest of the order)
        self._at: np.ndarray | None = None  # rank -> position now (_now[_base]) while no finish changed _now since
        self._live = 0  # base requests still live
        self._compact_below = 0  # compact once fewer base requests than this are live
        self._left: list[int] = []  # ids announced finished since the last follow

    @property
    def active(self) -> bool:
        return self._ids is not None

    def departed(self, request_ids: np.ndarray) -> None:
        """Requests ``request_ids`` finished (followed at the next :meth:`follow`). Kept as Python ints, converted
        here, next to the host's own array work on the finishes: converted at the next rank instead, the conversion
        cost ~5 us more on the CPU engine's cold caches (BENCHMARKS.md, issue 13)."""
        if self._ids is not None:
            self._left += request_ids.tolist()

    def start(self, view: LiveView, order: np.ndarray, front: np.ndarray) -> bool:
        """Keep ``order`` (the inner order of ``view``) with the requests at positions ``front`` at the front.
        False (nothing kept) unless ``order`` is a permutation by construction (vouched for, or a sort's) and the
        host lists requests by arrival with ids ascending, as the inner policy proved (``tracking.vouch_ascending``:
        no pass over the ids here, on each step that tries)."""
        self.reset()
        if (not view.arrival_ordered or not known_ascending(view) or order is not view._ranked or not frozen(order)
                or len(order) < 2):
            return False
        ids = view.request_id
        now = np.arange(len(ids))
        base_of = self._base_of  # (only the listing's ids are asked for from here on: those below its first may go)
        base_of.reserve(ids, lowest=ids.item(0), held=ids)
        base_of.data[base_of.rows(ids)] = now
        rank = np.empty(len(ids), dtype=np.intp)
        rank[order] = now
        keep = np.ones(len(ids), dtype=bool)
        keep[rank[front]] = _FALSE
        self._ids, self._base, self._now, self._live = snapshot_ids(ids), order, now, len(ids)
        self._rank, self._keep, self._at = rank, keep, order  # (positions now are the base positions)
        self._compact_below = _compact_below(len(ids))
        self.listing += 1
        self.version += 1
        return True

    def follow(self, view: LiveView) -> bool:
        """Apply the finishes announced since the last call; whether the kept order is ``view``'s (False: nothing
        is kept any more; a newcomer, a finish of a request not listed, a view of another size, a host that no
        longer lists by arrival, or too few of the base listing left)."""
        if self._ids is None:
            return False
        if self._left:
            gone, self._left = self._left, []
            if not self._leave(gone):
                self.reset()
                return False
        if not view.arrival_ordered or len(view) != self._live:
            self.reset()
            return False
        if self._live < self._compact_below:
            self._compact()
        return True

    def _compact(self) -> None:
        """Make the live requests the base listing (their positions now), in the kept order: the requests that left
        drop out of the gather. Positions and the order stay the same (``listing`` and ``version`` are not bumped):
        the live entries' positions now are 0 .. n-1, each once, so the new base order is a permutation of them."""
        now = self._now
        at = now.take(self._base, mode="wrap") if self._at is None else self._at  # (in range)
        live = at > _LIVE_MIN
        order = at[live]  # the live base entries' positions now in the inner order: their new base positions
        ids = self._ids[now > _LIVE_MIN]  # the listing now: the live base entries, in base order
        now = np.arange(len(ids))
        base_of = self._base_of
        base_of.data[base_of.rows(ids)] = now
        rank = np.empty(len(ids), dtype=np.intp)
        rank[order] = now
        self._ids, self._base, self._now, self._rank, self._keep, self._at = ids, order, now, rank, self._keep[live], order
        self._compact_below = _compact_below(len(ids))

    def _leave(self, gone: list[int]) -> bool:
        """Take the requests ``gone`` (ids; sorted here) out (False: not all of them were live in the base listing,
        each once; the caller then drops what is kept, as it may be partly renumbered).

        A few leave at a step, so they are handled in Python scalars, in one pass in base order: each one's base
        position is read from the id table and checked to hold its id, and the base positions between it and the
        departed one before move up by the number that left before it, one slice subtraction per departed request
        (together one pass over the base listing after the first). Numpy calls on arrays of a few ids (a sort, a
        search, the checks) cost ~10 us each on the CPU engine's cold caches (BENCHMARKS.md, issue 13); these
        scalar reads cost well under 1 us."""
        d = len(gone)
        if d > _MAX_FINISHES:
            return False
        ids, now, base_of, lo, k = self._ids, self._now, self._base_of.data, self._base_of.base, self._base_of.k
        keep, rank = self._keep, self._rank
        n, known = len(ids), len(base_of)
        last = -1  # the base position of the departed request before (ascending: the base ids ascend)
        gone.sort()
        for j, g in enumerate(gone):
            b = base_of.item(g - lo) if k <= g - lo < known else self._apart(g) if k else -1
            if not last < b < n or ids.item(b) != g or now.item(b) < _LIVE_MIN_INT:
                return False  # not in the base listing, left before, or announced twice
            if j and last + 1 < b:
                now[last + 1:b] -= _SHIFTS[j - 1]  # listed after j of them
            now[b] = _GONE
            keep[rank.item(b)] = False
            last = b
        if d and last + 1 < n:
            now[last + 1:] -= _SHIFTS[d - 1]
        self._live -= d
        self._at = None
        self.listing += 1
        self.version += 1
        return True

    def _apart(self, request_id: int) -> int:
        """The base position of ``request_id``, below the id table's window: one of the old ids it holds apart (a
        request live long after those listed beside it), else -1."""
        return int(self._base_of.get(np.array([request_id], dtype=np.int64)).item(0))

    def positions(self, request_ids: np.ndarray, front: bool) -> np.ndarray:
        """Positions now of live requests (all at the front, or none). Read for the front (``front``), they read past
        the live positions (``_FRONT`` more) if one of them is not at the front, which :meth:`order` refuses."""
        base_of = self._base_of
        b = base_of.data[base_of.rows(request_ids)]
        at = self._now[b]
        if front and count_nonzero(self._keep[self._rank[b]]):
            return at + _FRONT
        return at

    def move(self, request_ids: np.ndarray, to_front: bool) -> None:
        """Move live requests to the front (out of the rest of the order) or back to their rank: their flags only
        (positions do not change)."""
        base_of = self._base_of
        self._keep[self._rank[base_of.data[base_of.rows(request_ids)]]] = _FALSE if to_front else _TRUE
        self.version += 1

    def order(self, front: np.ndarray) -> np.ndarray | None:
        """``front`` (the positions of the requests at the front, in their order: from :meth:`positions`, each
        once), then the others in the inner order. None (and nothing kept any more) if that is not one position per
        live request: a position at the front that is not at the front here reads ``_FRONT`` or more."""
        at = self._at
        if at is None:  # (a finish renumbered positions since the last order: moves alone leave them)
            at = self._at = self._now[self._base]
        rest = at[self._keep]
        if not len(front):
            if len(rest) == self._live:
                return rest
        elif len(rest) + len(front) == self._live and _max(front) < self._live:
            return np.concatenate((front, rest))
        self.reset()
        return None


def _compact_below(n: int) -> int:
    """Compact a base listing of ``n`` requests once fewer than this many are live (``_MIN_LIVE_SHARE`` of it: for
    a count of live requests, being below the share is being below its ceiling)."""
    return math.ceil(_MIN_LIVE_SHARE * n)
