"""SRTF's competition order (fewest true remaining output tokens first, ties by arrival, then id), kept from step to
step.

``view.order_by(view.remaining_tokens)`` gathers two columns over every live request and sorts them every step: at
20,000 waiting requests ~135 us of a 193 us step, at 200,000 ~2.2 ms of 2.3 ms (BENCHMARKS.md, "Big queues"). Yet a
request's remaining tokens change only when it runs: between two steps only the last batch's keys moved (down, by the
tokens each sampled), some of its members finished, and newcomers joined at the tail of a listing by arrival. So the
order is kept with each request's key beside it, as one sorted array of composite keys ``remaining * 2**32 +
position`` (ties by position are ties by arrival, then id, in a listing by arrival): at a step the batch's ranks are
cut out (a slice when the batch is the order's head, the usual case), the positions after a departed request move
up by one each (only on a step with finishes), and the batch's survivors and the newcomers, whose keys are read at
their positions alone (``LiveView.at``), are sorted among themselves and merged in: in front of the rest when their
largest composite key is below its smallest (a batch at the head only loses tokens: the usual case), else by one
binary search each. The result is ``view.order_by(view.remaining_tokens)``, value for value.

It holds while the host lists requests by arrival (``LiveView.arrival_ordered``), names each step's batch
(``on_step_ranks``, or the ``on_step`` mask) for the very view and order it was given, announces every finish and
arrival, finishes only requests that ran in the last step, and lists newcomers after the requests that stayed (each
checked at a cost of the batch's size, not the live set's); otherwise the policy sorts that step, as before, and
starts again from the sort. The kept order is a permutation by construction (the last one less distinct ranks,
renumbered in order, plus the survivors' and newcomers' distinct positions), so it is vouched for.
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.order_check import vouched

_SHIFT = 32  # composite key: remaining tokens in the high bits, the position in the low 32
_POS_MASK = np.array((1 << _SHIFT) - 1)
_KEY_LIMIT = 1 << 30  # |remaining tokens| at most this, positions below 2**32: the composite fits an int64
_SIGN_BIT = np.array(63)


class RemainingOrder:
    """``view.order_by(view.remaining_tokens)``, updated from the last batch, the finishes and the arrivals.

    Call :meth:`order` per rank, :meth:`ran` with the step's batch (its ranks in the order returned), and
    :meth:`departed` / :meth:`arrived` from the policy's hooks."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._view: LiveView | None = None  # the view the kept order is for
        self._order: np.ndarray | None = None  # its order (positions, read-only, vouched)
        self._comp: np.ndarray | None = None  # remaining * 2**32 + position, aligned with _order (ascending)
        self._batch = None  # ranks in _order of the requests that ran since (an int k: the first k)
        self._members: np.ndarray | None = None  # their positions in the kept order's view, in rank order
        self._member_ids: np.ndarray | None = None  # and their ids
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
        self._members = order[:ranks] if isinstance(ranks, (int, np.integer)) else order[ranks]
        self._member_ids = view.at("request_id", self._members)

    def ran_mask(self, view: LiveView, scheduled: np.ndarray) -> None:
        """:meth:`ran` for a host that names the batch by a mask over the view's positions."""
        if view is self._view and len(scheduled) == len(self._order):
            self.ran(view, self._order, scheduled[self._order].nonzero()[0])
        else:
            self._view = self._batch = None

    def order(self, view: LiveView) -> np.ndarray:
        """The competition order of ``view`` by remaining tokens, ties by arrival, then id."""
        n = len(view)
        if view is self._view and self._batch is None and not self._departed and not self._arrived:
            return self._order  # (ranked twice, nothing ran in between)
        kept = None
        if self._view is not None and self._batch is not None and view.arrival_ordered and n >= 2:
            kept = self._follow(view, n)
        self._departed.clear()
        self._arrived.clear()
        self._batch = None
        if kept is None:
            remaining = view.remaining_tokens
            order = view.order_by(remaining)
            if n < 2 or not view.arrival_ordered:
                self._view = None
                return order
            keys = remaining[order]
            if count_nonzero(np.abs(keys) >= _KEY_LIMIT) or n >= 1 << _SHIFT:
                self._view = None
                return order
            comp = keys << _SHIFT
            comp += order
            self._view, self._order, self._comp = view, order, comp
            return order
        order, comp = kept
        self._view, self._order, self._comp = view, vouched(view, order), comp
        return order

    def _follow(self, view: LiveView, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The kept order and composite keys for ``view`` (None: sort instead)."""
        old_order, comp, batch, members = self._order, self._comp, self._batch, self._members
        n_old = len(old_order)
        if isinstance(batch, (int, np.integer)):
            k = int(batch)
            rest_order, rest_comp = old_order[k:], comp[k:]
        else:
            rest_order, rest_comp = np.delete(old_order, batch), np.delete(comp, batch)
        # departures: batch members only, each once
        left_at = members[:0]
        stay = members
        if self._departed:
            gone = np.concatenate(self._departed) if len(self._departed) > 1 else self._departed[0]
            hit = np.isin(self._member_ids, gone)
            if count_nonzero(hit) != len(gone):
                return None  # a departed request that did not run last step, or one announced twice
            left_at = np.sort(members[hit])
            stay = members[~hit]
        n_kept = n_old - len(left_at)
        m = n - n_kept
        if self._arrived:
            new = np.concatenate(self._arrived) if len(self._arrived) > 1 else self._arrived[0]
            if m != len(new) or not _listed_at_tail(view, n_kept, n, new):
                return None
        elif m:
            return None
        # the positions after each departed one move up by the count of those before them
        if len(left_at):
            rest_order, rest_comp = _renumbered(rest_order, rest_comp, left_at)
            stay = stay - left_at.searchsorted(stay)
        # the survivors' and newcomers' keys, at their positions now
        pos = np.concatenate((stay, np.arange(n_kept, n))) if m else stay
        if not len(pos):
            return rest_order, rest_comp
        keys = view.at("output_tokens", pos) - view.at("generated_tokens", pos)
        if count_nonzero(np.abs(keys) >= _KEY_LIMIT):
            return None
        ins = keys << _SHIFT
        ins += pos
        ins.sort()
        ins_pos = ins & _POS_MASK
        if not len(rest_comp) or ins[-1] < rest_comp[0]:  # all in front of the rest: the usual case
            return np.concatenate((ins_pos, rest_order)), np.concatenate((ins, rest_comp))
        at = rest_comp.searchsorted(ins)
        return np.insert(rest_order, at, ins_pos), np.insert(rest_comp, at, ins)


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


def _renumbered(order: np.ndarray, comp: np.ndarray, left_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``order`` (positions, none of them in ``left_at``) and ``comp`` (composite keys of the same requests), each
    position moved up by the count of ``left_at`` (distinct, ascending) below it."""
    if len(left_at) == 1:
        f = left_at.reshape(())
        shift = f - order  # negative exactly where order > f
        shift >>= _SIGN_BIT  # -1 there, else 0
    else:
        shift = -left_at.searchsorted(order)
    return order + shift, comp + shift
