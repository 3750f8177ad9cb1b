"""PO's order split by its estimate phase, kept from step to step for a host that lists requests by arrival.

PO's order is the requests still in the estimate phase (fewer than ``tokens`` output tokens generated) by position
(the host lists them by arrival), then the others in the kept estimate order (``FixedKeyOrder``'s, a permutation of
the positions). Splitting it afresh reads every live request's generated tokens and splits the estimate order by a
mask scattered at random: several passes over the live requests per step. While the live set stays the same (the
estimate order is the same array) only the requests that ran can leave the phase (a request's generated tokens
change only when it runs), so :meth:`PhaseSplit.order` reads theirs, takes those that left out of the phase part
and inserts them among the others by their rank in the estimate order: the same order, built from the last one with
copies of its two parts and no pass that reads every live request's tokens.

It follows the host from the hooks: the positions that ran in the view it last split (``PhaseSplit.batch``, from
``on_step`` or ``on_step_ranks``). Without them (a rank without a step in between, another view), after a change of
the live set, or when a request that ran is back in the phase (its generated tokens lowered), it splits afresh.
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.order_check import vouched, vouched_again


class PhaseSplit:
    """``concatenate((positions in the phase, ascending), base without them))`` for a host listing by arrival,
    kept from the last split while ``base`` (the estimate order) is the same array."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._base: np.ndarray | None = None  # the estimate order the split is of (None: nothing kept)
        self._view: LiveView | None = None  # the view it was made for
        self._order: np.ndarray | None = None  # and returned (vouched, read-only)
        self._phase: np.ndarray | None = None  # position -> in the phase (our own array)
        self._first: np.ndarray | None = None  # the positions in the phase, ascending
        self._ranks: np.ndarray | None = None  # the others' ranks in ``_base``, ascending (None: all of them)
        self._rank_of: np.ndarray | None = None  # position -> its rank in ``_base`` (made when first needed)
        #: the last step's batch as the hooks told it: (view, order, ranks), the positions ``order[:ranks]`` for an
        #: int, ``order[ranks]`` for an array, ``order`` for None (read only when the view is ``_view``; kept as told,
        #: a tuple, so that a hook costs the host no more than storing it)
        self.batch: tuple | None = None

    def order(self, view: LiveView, base: np.ndarray, tokens: int) -> np.ndarray:
        """The phase's positions (fewer than ``tokens`` [tokens] generated) ascending, then ``base`` without them;
        ``base`` is a vouched permutation of ``view``'s positions, which lists requests by arrival."""
        batch, self.batch = self.batch, None
        if batch is not None and batch[0] is self._view and base is self._base:
            told, ranks = batch[1], batch[2]
            ran = told if ranks is None else told[:ranks] if type(ranks) is int else told[ranks]
            order = self._follow(view, ran, tokens)
            if order is not None:
                self._view, self._order = view, order
                return order
        phase = view.generated_tokens < tokens
        if not count_nonzero(phase):
            first, past, order = phase.nonzero()[0], None, base  # (none in the phase: ``base``, no copy)
        else:
            past = (~phase[base]).nonzero()[0]  # (ranks in ``base``; a boolean index there, scattered, costs ~5x more)
            first = phase.nonzero()[0]
            order = vouched(view, np.concatenate((first, base.take(past))))  # (complementary parts: a permutation)
        self._base, self._view, self._order = base, view, order
        self._phase, self._first, self._ranks, self._rank_of = phase, first, past, None
        return order

    def _follow(self, view: LiveView, ran: np.ndarray, tokens: int) -> np.ndarray | None:
        """The last order updated for the requests that ran (None: split afresh)."""
        if not len(ran):
            return vouched_again(view, self._order)
        now_in = view.at("generated_tokens", ran) < tokens
        was_in = self._phase[ran]
        if count_nonzero(now_in & ~was_in):
            return None  # back in the phase
        left = ran[was_in & ~now_in]
        if not len(left):
            return vouched_again(view, self._order)
        left.sort()
        self._phase[left] = False
        self._first = first = np.delete(self._first, self._first.searchsorted(left))
        rank_of = self._rank_of
        if rank_of is None:
            base = self._base
            self._rank_of = rank_of = np.empty(len(base), dtype=np.intp)
            rank_of[base] = np.arange(len(base))
        ranks = rank_of[left]
        ranks.sort()
        self._ranks = ranks = np.insert(self._ranks, self._ranks.searchsorted(ranks), ranks)
        # (the phase's positions without some, and the rest's ranks with them: still complementary, a permutation)
        return vouched(view, np.concatenate((first, self._base.take(ranks))))
