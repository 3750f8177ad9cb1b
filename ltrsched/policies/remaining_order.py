"""SRTF's competition order (fewest true remaining output tokens first, ties by arrival, then id), kept from step to
step.

``view.order_by(view.remaining_tokens)`` gathers two columns over every live request and sorts them every step: at
20,000 waiting requests ~135 us of a 193 us step, at 200,000 ~2.2 ms of 2.3 ms (BENCHMARKS.md, "Big queues"). Yet a
request's remaining tokens change only when it runs: between two steps only the last batch's keys moved (down, by the
tokens each sampled), some of its members finished, and newcomers joined at the tail of a listing by arrival.

So the order is kept over a *base listing* (the listing at the last sort, newcomers appended): one ascending array of
composite keys ``remaining * 2**32 + base position`` (ties by base position are ties by position now, so by arrival,
then id, in a listing by arrival), the base positions beside it, and for each base position the request's position
now (``_now``). At a step the batch's ranks are cut off the head (a moved start when the batch is the order's head,
the usual case; else one delete), the positions now after each departed request move up by one (one slice
subtraction per finish, the slices disjoint: together at most one pass, only on a step with finishes), and the
batch's survivors and the newcomers, whose keys are read at their positions alone (``LiveView.at``), are sorted among
themselves and written in front of the rest when their largest composite key is below its smallest (a batch at the
head only loses tokens: the usual case; written in place, no copy), else merged by one binary search each. The order
returned is one gather of the positions now in key order. The result is ``view.order_by(view.remaining_tokens)``,
value for value. Once fewer than half the base listing is live, the live requests become the base listing.

Below ``_KEEP_MIN`` (4,096) live requests every step sorts, as SRTF did before, and nothing is kept: there keeping the
order (the hooks, the batch's ids and keys, the merge, the gather) costs about what the sort does (the simulator's
burst: 1.04x the sort's step at 2,000 live, 0.91x at 4,000, 0.63x at 10,000; BENCHMARKS.md, "Big queues").

It holds while the host lists requests by arrival (``LiveView.arrival_ordered``), names each step's batch
(``on_step_ranks``, or the ``on_step`` mask) for the very view and order it was given, announces every finish and
arrival, finishes only requests that ran in the last step, and lists newcomers after the requests that stayed (each
checked at a cost of the batch's size, not the live set's); otherwise the policy sorts that step, as before, and
starts again from the sort. The kept order is a permutation by construction (the live base entries' positions now are
0 .. n-1, each once: each finish took one out and moved those after it up by one, newcomers take the next ones), so it
is vouched for.
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.order_check import vouched

_SHIFT = 32  # composite key: remaining tokens in the high bits, the base position in the low 32
_BASE_MASK = np.array((1 << _SHIFT) - 1)
_KEY_LIMIT = 1 << 30  # |remaining tokens| below this and base positions below 2**31: the composite fits an int64
_BASE_LIMIT = 1 << 31
#: Finishes followed at a step one slice at a time up to this many; past it, one cumulative count over the base.
_MAX_SLICES = 64
_SHIFTS = tuple(np.array(j) for j in range(_MAX_SLICES + 1))  # (0-d operands)
#: From this many live requests the order is kept; below it every step sorts, as SRTF did before the kept order (the
#: hooks, the batch's ids and keys, the merge and the gather cost about what the sort does at 2,000 live requests).
#: BENCHMARKS.md, "Big queues".
_KEEP_MIN = 4096


class RemainingOrder:
    """``view.order_by(view.remaining_tokens)``, updated from the last batch, the finishes and the arrivals.

    Call :meth:`order` per rank, :meth:`ran` with the step's batch (its ranks in the order returned), and
    :meth:`departed` / :meth:`arrived` from the policy's hooks."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._view: LiveView | None = None  # the view the kept order is for
        self._order: np.ndarray | None = None  # its order (positions, read-only, vouched)
        self._comp: np.ndarray | None = None  # buffer: [_start:] remaining * 2**32 + base position, ascending
        self._base: np.ndarray | None = None  # buffer: [_start:] the base positions, aligned with _comp
        self._start = 0
        self._now: np.ndarray | None = None  # base position -> position now ([:_nbase]; stale for those that left)
        self._nbase = 0
        self._batch = None  # ranks in _order of the requests that ran since (an int k: the first k)
        self._member_ids: np.ndarray | None = None  # their ids, in rank order
        self._departed: list[np.ndarray] = []
        self._arrived: list[np.ndarray] = []

    def departed(self, request_ids: np.ndarray) -> None:
        self._departed.append(request_ids)

    def arrived(self, request_ids: np.ndarray) -> None:
        self._arrived.append(request_ids)

    def ran(self, view: LiveView, order: np.ndarray, ranks) -> None:
        """The step on ``view`` ran the requests at ``ranks`` of ``order`` (an int k: ``order[:k]``; else ranks,
        ascending). Followed only if ``order`` is the one returned for ``view``."""
        if view is not self._view or order is not self._order:
            self._view = self._batch = None
            return
        self._batch = ranks
        self._member_ids = view.at("request_id", order[:ranks] if isinstance(ranks, (int, np.integer)) else order[ranks])

    def ran_mask(self, view: LiveView, scheduled: np.ndarray) -> None:
        """:meth:`ran` for a host that names the batch by a mask over the view's positions."""
        if view is self._view and len(scheduled) == len(self._order):
            self.ran(view, self._order, scheduled[self._order].nonzero()[0])
        else:
            self._view = self._batch = None

    def order(self, view: LiveView) -> np.ndarray:
        """The competition order of ``view`` by remaining tokens, ties by arrival, then id."""
        n = len(view)
        if n < _KEEP_MIN:  # a sort, nothing kept
            self._view = self._batch = None
            self._departed.clear()
            self._arrived.clear()
            return view.order_by(view.remaining_tokens)
        if view is self._view and self._batch is None and not self._departed and not self._arrived:
            return self._order  # (ranked twice, nothing ran in between)
        order = None
        if self._view is not None and self._batch is not None and view.arrival_ordered and n >= 2:
            order = self._follow(view, n)
        self._departed.clear()
        self._arrived.clear()
        self._batch = None
        if order is None:
            return self._sort(view, n)
        self._view, self._order = view, vouched(view, order)
        if 2 * n < self._nbase:
            self._compact(order)
        return order

    def _sort(self, view: LiveView, n: int) -> np.ndarray:
        """The order by a sort, kept from here on where the listing is by arrival."""
        remaining = view.remaining_tokens
        order = view.order_by(remaining)
        self._view = None
        if n < 2 or not view.arrival_ordered or n >= _BASE_LIMIT // 2:
            return order
        keys = remaining[order]
        if count_nonzero(np.abs(keys) >= _KEY_LIMIT):
            return order
        comp = keys << _SHIFT
        comp += order
        self._view, self._order = view, order
        self._comp, self._base, self._start = comp, order.copy(), 0
        self._now, self._nbase = np.arange(n), n
        return order

    def _compact(self, order: np.ndarray) -> None:
        """Make the live requests the base listing (their positions now): the base positions of those that left
        drop out of ``_now``."""
        comp = self._comp[self._start:] >> _SHIFT
        comp <<= _SHIFT
        comp += order
        self._comp, self._base, self._start = comp, order.copy(), 0
        self._now, self._nbase = np.arange(len(order)), len(order)

    def _follow(self, view: LiveView, n: int) -> np.ndarray | None:
        """The kept order for ``view``, the kept arrays updated (None: sort instead; what is kept is then dropped)."""
        batch, start, comp, base = self._batch, self._start, self._comp, self._base
        if isinstance(batch, (int, np.integer)):
            k = int(batch)
            members = base[start:start + k]  # the batch's base positions, in rank order
            rest_at = start + k
        else:
            members = base[start:][batch]
            comp, base = np.delete(comp[start:], batch), np.delete(base[start:], batch)
            rest_at = 0
        n_old = len(self._order)
        # departures: batch members only, each once
        stay = members
        left = members[:0]
        if self._departed:
            gone = np.concatenate(self._departed) if len(self._departed) > 1 else self._departed[0]
            gone = np.sort(gone)
            ids = self._member_ids
            at = np.minimum(gone.searchsorted(ids), len(gone) - 1)
            hit = gone[at] == ids
            if count_nonzero(hit) != len(gone) or (len(gone) > 1 and count_nonzero(gone[1:] == gone[:-1])):
                return None  # a departed request that did not run last step, or one announced twice
            left = np.sort(members[hit])
            stay = members[~hit]
        n_kept = n_old - len(left)
        m = n - n_kept
        if self._arrived:
            new = np.concatenate(self._arrived) if len(self._arrived) > 1 else self._arrived[0]
            if m != len(new) or not _listed_at_tail(view, n_kept, n, new) or self._nbase + m >= _BASE_LIMIT:
                return None
        elif m:
            return None
        now, nbase = self._now, self._nbase
        if len(left):  # positions now after each departed request move up by the count of those before them
            move_up_after(now, nbase, left)
        if m:  # newcomers: the next base positions, at the tail of the listing
            if nbase + m > len(now):
                grown = np.empty(max(2 * len(now), nbase + m), dtype=now.dtype)
                grown[:nbase] = now[:nbase]
                self._now = now = grown
            now[nbase:nbase + m] = np.arange(n_kept, n)
            stay = np.concatenate((stay, np.arange(nbase, nbase + m)))
            self._nbase = nbase = nbase + m
        if len(stay):
            pos = now[stay]
            keys = view.at("output_tokens", pos) - view.at("generated_tokens", pos)
            if count_nonzero(np.abs(keys) >= _KEY_LIMIT):
                return None
            ins = keys << _SHIFT
            ins += stay
            ins.sort()
            ins_base = ins & _BASE_MASK
            j = len(ins)
            if rest_at >= j and (rest_at == len(comp) or ins[-1] < comp[rest_at]):  # in front of the rest, in place
                rest_at -= j
                comp[rest_at:rest_at + j] = ins
                base[rest_at:rest_at + j] = ins_base
            else:
                rest_comp, rest_base = comp[rest_at:], base[rest_at:]
                at = rest_comp.searchsorted(ins)
                comp, base, rest_at = np.insert(rest_comp, at, ins), np.insert(rest_base, at, ins_base), 0
        self._comp, self._base, self._start = comp, base, rest_at
        return now[base[rest_at:]]



def move_up_after(now: np.ndarray, nbase: int, left: np.ndarray) -> None:
    """Move the positions now ``now[:nbase]`` up by the count of the base positions ``left`` (distinct, ascending)
    below each: one slice subtraction per departed request (at most one pass in all), or past :data:`_MAX_SLICES`
    of them a cumulative count."""
    d = len(left)
    if d > _MAX_SLICES:
        dec = np.zeros(nbase + 1, dtype=now.dtype)
        dec[left + 1] = 1
        now[:nbase] -= dec.cumsum()[:nbase]
        return
    bounds = left.tolist()
    for j in range(1, d):
        lo, hi = bounds[j - 1] + 1, bounds[j]
        if lo < hi:
            now[lo:hi] -= _SHIFTS[j]
    if bounds[-1] + 1 < nbase:
        now[bounds[-1] + 1:nbase] -= _SHIFTS[d]


def _listed_at_tail(view: LiveView, n_kept: int, n: int, new: np.ndarray) -> bool:
    """Whether positions ``n_kept`` .. ``n - 1`` of ``view`` hold exactly the newcomers ``new`` (distinct), listed after
    the request at ``n_kept - 1`` by (arrival, id)."""
    tail = np.arange(n_kept, n)
    ids = view.at("request_id", tail)
    if not np.array_equal(np.sort(ids), np.sort(new)) or (len(new) > 1 and len(np.unique(new)) != len(new)):
        return False
    if not n_kept:
        return True
    edge = np.array([n_kept - 1, n_kept])
    a = view.at("arrival_time", edge)
    r = view.at("request_id", edge)
    return bool(a[0] < a[1] or (a[0] == a[1] and r[0] < r[1]))
