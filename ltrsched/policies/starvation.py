"""Starvation prevention, combinable with any policy (spec suffix ``starve=T,quantum=Q``).

A request left out of the batch for ``threshold`` (T) consecutive steps is promoted ahead of every
non-promoted request for ``quantum`` (Q) steps of execution, then returns to its rank. Promoted
requests keep FIFO order among themselves (by promotion step, then arrival). Paper: T=200, Q=10.

The wrapper reads every live request's ``idle_steps`` once every T + 1 steps, not every step. Idle steps
grow by at most one per step; they restart at 0 when a request runs, and a newcomer starts at 0 (it has not
been left out of any batch yet: hosts list it first at a step with ``idle_steps`` 0). So after a read at step
s that found request r idle I steps (and not promoted), r reaches T at step s + T - I if it does not run
before, and any request that runs at step s or later (or arrives, or returns from promotion) reaches T no
earlier than s + T + 1. Until then the wrapper only looks at the requests due at each step (their
``idle_steps`` alone, since some may have run meanwhile; those that finished meanwhile are skipped by a flag
their ``on_finish`` set), in the order of the step they are due; then it reads every request again (earlier
should a host number its steps with gaps, so that a request due is still short of T).

The promoted requests are kept between steps in three aligned buffers, in their order: ids, positions in the
listing (found again only when the listing changes) and the *tick* (rank with a new step number) at which each
has spent its quantum if it runs at every tick until then: its promotion tick + Q, plus one for every tick
at which it had not run. A promoted request ran in the last step exactly when its ``idle_steps`` is 0, so one
read of the promoted requests' idle steps per tick tells which missed one (usually none, or the tail of
them: the batch is a prefix of the order); the wrapper needs no ``on_step`` of its own. The spent ticks
ascend along the promoted order while misses come as such a tail (a newcomer's is the latest), so the
requests whose quantum is spent are a prefix, dropped by moving the buffers' start; appending promotions
writes at their end. A view whose size does not match the announced arrivals and finishes is read whole.

Around a policy that orders by a key fixed per request (LTR: ``fixed_key_rank``) the promoted-first order itself
is kept (:class:`~ltrsched.policies.front_order.FrontOrder`) while the host lists requests by arrival and nobody
arrives: a finish renumbers one table, promotions and returns flip a few flags of another, and the inner policy is
not ranked meanwhile, whether or not anything is promoted (it is kept from the first step after one that nobody
arrived at; before: it was ranked every step, and every change of its order or of the promoted requests rebuilt
the promoted-first order from it, two passes over the live requests on a step with a finish; until 2026-12-05 it
was ranked on every step with nothing promoted). Its positions also spare the wrapper reading the listing's ids.
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView, Policy, order_by
from ltrsched.policies.fastops import count_nonzero, frozen
from ltrsched.policies.front_order import FrontOrder
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.order_check import library_policy, vouched, vouched_again
from ltrsched.policies.tracking import LiveIndex

_NONE = np.zeros(0, dtype=np.int64)
_max, _min = np.maximum.reduce, np.minimum.reduce
# 0-d array operands: numpy converts a Python scalar operand on every call (~0.5 us of a ~1 us operation)
_ZERO, _UNSET = np.array(0), np.array(-1)
_FALSE, _TRUE = np.array(False), np.array(True)
_NEVER = 1 << 62  # a step no run reaches


class StarvationPrevention(Policy):
    """Wraps ``inner``; promotes long-idle requests. ``threshold`` and ``quantum`` are in steps."""

    def __new__(cls, inner: Policy | None = None, threshold: int = 200, quantum: int = 10):
        # the wrapper needs no on_step; it has one (a host then builds the scheduled mask every step) only to
        # pass it on to an inner policy that has one
        if cls is StarvationPrevention and inner is not None and _has_on_step(inner):
            cls = _StarvationPreventionStepped
        return super().__new__(cls)

    def __init__(self, inner: Policy, threshold: int = 200, quantum: int = 10):
        if threshold < 1 or quantum < 1:
            key = "starve_quantum" if "quantum" in inner.parameters() else "quantum"  # (MLFQ's quantum is its own)
            raise ValueError(f"starve and {key} must be >= 1, got starve={threshold}, {key}={quantum}")
        self.inner = inner
        self.threshold = threshold
        self.quantum = quantum
        # in arithmetic, a bound no run reaches stands for a larger T or Q (the spec's 64-bit bound: tick + Q and
        # step + T passed int64, an OverflowError at the first promotion); the run is the same
        self._t = min(threshold, _NEVER)
        self._q = min(quantum, _NEVER)
        self._threshold = np.array(self._t)  # (a 0-d operand)
        self._is_promoted = IdArray(False, np.bool_)
        self._gone = IdArray(False, np.bool_)  # finished (announced): no longer due
        self._keep = np.ones(1024, dtype=bool)  # scratch (all True between uses)
        # the promoted-first order kept here, for an inner policy whose order is by a key fixed per request
        self._front = FrontOrder() if _fixed_key(inner) else None
        # a plugin may edit an order it returned and set it read-only again: its orders are never kept by identity
        self._trust_inner = library_policy(inner)
        self._forget()

    def _forget(self) -> None:
        # the promoted requests, in their order, are entries _s.._e-1 of three aligned buffers: ids, positions in
        # the listing _pos_at names, and the tick at which each has spent its quantum if it runs at every tick
        self._pid = np.zeros(64, dtype=np.int64)
        self._pos = np.zeros(64, dtype=np.intp)
        self._end = np.zeros(64, dtype=np.int64)
        self._s = self._e = 0
        self._ends_ascend = True  # _end[_s:_e] ascends (then the spent ones are a prefix)
        self._pos_at: tuple | None = None  # (LiveIndex, version) of the listing _pos holds positions in
        self._pos_ids: np.ndarray | None = None  # that listing's ids array, when nothing can change it
        self._stale = False  # promoted requests finished since the last rank (dropped at the next)
        self._version = 0  # bumped whenever the promoted positions change
        self._tick = 0  # ranks with a new step number
        self._promo_step: int | None = None  # the step of the latest promotions
        self._promo_count = 0  # how many of the promoted (the last ones) were promoted at that step
        self._read_at: int | None = None  # the step from which every live request's idle_steps must be read again
        # the requests not promoted at the last read, by the step at which each reaches the threshold unless it
        # runs first, in runs of one step each (in listing order); those before _due_next were looked at
        self._due_ids = _NONE
        self._due_steps: list[int] = []  # the steps at which requests are due, ascending
        self._due_ends: list[int] = []  # where the run of _due_ids due at each ends
        self._due_group = self._due_next = 0  # the first run not looked at, and where it starts
        self._filed_by_arrival = False  # the requests were filed from a listing by arrival
        self._next_due = _NEVER  # the step of _due_ids[_due_next]
        self._num_live = 0  # live requests, by the hooks (a view with another count is read whole)
        self._announced = False  # the view being ranked has as many requests as the hooks announced
        self._spent_at: int | None = None  # the step of the last rank
        self._gapless = True  # no step number was skipped since the last read
        self._index: LiveIndex | None = None  # request id -> position
        self._last: tuple | None = None  # (inner order, version, order returned, head distinct) of the last rank
        self._last_front: tuple | None = None  # ((version, front version), order returned) of the last kept order
        self._quiet = False  # nobody arrived since the last rank
        if self._front is not None:
            self._front.reset()

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.needs

    @property
    def extra_output_tokens(self) -> int:  # type: ignore[override]
        return self.inner.extra_output_tokens

    def prepare(self, requests) -> None:
        self._is_promoted.reset()
        self._gone.reset()
        self._forget()
        self.inner.prepare(requests)

    def on_arrival(self, request_ids, now) -> None:
        self._num_live += len(request_ids)  # (a newcomer has been idle 0 steps: none is due before a read)
        self._is_promoted.reserve(request_ids)
        gone = self._gone
        gone.reserve(request_ids)
        gone.data[gone.rows(request_ids)] = _FALSE
        if self._front is not None:  # (a newcomer: the inner policy merges it in)
            self._front.reset()
        self._quiet = False
        self.inner.on_arrival(request_ids, now)

    def on_finish(self, request_ids, now) -> None:
        self._num_live -= len(request_ids)
        gone, is_promoted = self._gone, self._is_promoted
        try:  # (a host that announced its arrivals reserved their ids)
            gone.data[gone.rows(request_ids)] = _TRUE
            promoted = self._e > self._s and count_nonzero(
                is_promoted.data[is_promoted.rows(request_ids)])
        except IndexError:
            gone[request_ids] = _TRUE
            promoted = self._e > self._s and count_nonzero(is_promoted[request_ids])
        if promoted:
            is_promoted[request_ids] = _FALSE
            self._stale = True
        if self._front is not None:
            self._front.departed(request_ids)
        self.inner.on_finish(request_ids, now)

    def rank(self, view: LiveView) -> np.ndarray:
        if self._gone.grew or self._is_promoted.grew:  # (arrivals grew the id arrays: drop the ids gone)
            self._trim(view)
        front = self._front
        # while the promoted-first order is kept here, the inner policy is not ranked (it catches up when it is)
        kept = front is not None and front.follow(view)
        order = None if kept else self.inner.rank(view)
        self._update_promoted(view, kept)
        s, e = self._s, self._e
        quiet, self._quiet = self._quiet, True
        if s == e:
            if kept:  # nothing promoted: the inner order, kept here
                out = self._front_order(view)
                if out is not None:
                    return out
                return self.inner.rank(view)
            # keep the inner order from here on, after a step that nobody arrived at (a newcomer stops it)
            if quiet and front is not None and self._announced:
                self._start_front(view, order)
            return order
        if kept or (front is not None and self._announced and self._start_front(view, order)):
            out = self._front_order(view)
            if out is not None:
                return out
            # (not one position per live request: cannot happen; the inner order and positions found anew)
            self._pos_at = self._pos_ids = None
            self._locate(view, False)
            if order is None:
                order = self.inner.rank(view)
            s, e = self._s, self._e
        # the inner order is a permutation by construction (a sort's, or vouched for): so is the promoted-first
        # order built from it when the promoted positions are distinct and in range (``_promoted_first``)
        proven = order is view._ranked and not order.flags.writeable and self._trust_inner
        last = self._last
        if last is not None and order is last[0] and self._version == last[1]:
            # the same inner order (unchanged: read-only) and promoted positions as last step
            return vouched(view, last[2]) if proven and last[3] else last[2]
        head = self._pos[s:e]
        out = self._promoted_first(order, head)
        out.flags.writeable = False
        # one position per live request, none negative: the promoted positions were distinct (and in range, or
        # _promoted_first raised)
        distinct = len(out) == len(view) and int(_min(head)) >= 0
        if proven and distinct:
            vouched(view, out)
        # keep it for the next step if the inner order cannot change under it (read-only, owning its memory)
        self._last = (order, self._version, out, distinct) if frozen(order) and self._trust_inner else None
        return out

    def _update_promoted(self, view: LiveView, kept: bool) -> None:
        """Bring the promoted requests up to date for ``view``: their positions, the quantum steps they spent, and
        the requests promoted now (``kept``: the kept order's table holds the positions)."""
        step = view.step
        # every arrival and finish announced: the promoted requests are all listed (else that is checked)
        self._announced = len(view) == self._num_live
        new_tick = step != self._spent_at
        if new_tick:
            if self._spent_at is not None and step > self._spent_at + 1:
                self._gapless = False
            self._spent_at = step
            self._tick += 1
        if self._e > self._s:
            self._locate(view, kept)
            if new_tick and self._e > self._s:
                self._spend(view)
        if self._read_at is None or step >= self._read_at or not self._announced:
            self._read_all(view)
        elif step >= self._next_due:
            self._look_at_due(view, kept)

    def _keep_only(self, keep: np.ndarray) -> None:
        """Keep the promoted requests where ``keep`` (aligned with them) is true, in their order."""
        s, e = self._s, self._e
        k = count_nonzero(keep)
        if k == e - s:
            return
        for buf in (self._pid, self._pos, self._end):
            buf[s:s + k] = buf[s:e][keep]
        if self._promo_count:  # (the last ones)
            self._promo_count = count_nonzero(keep[e - s - self._promo_count:])
        self._e = s + k
        self._version += 1

    def _locate(self, view: LiveView, kept: bool) -> None:
        """Bring the promoted requests' positions up to date for ``view`` (found again only when the listing
        changed, in the kept order's table when it is ``kept``), first dropping those that finished (or, when the
        view does not add up, are not listed)."""
        if self._stale:  # promoted requests finished
            self._stale = False
            is_promoted, pids = self._is_promoted, self._pid[self._s:self._e]  # (held: they were written)
            self._keep_only(is_promoted.data[is_promoted.rows(pids)])
            if self._e == self._s:
                return
        if kept:
            front, at = self._front, self._pos_at
            if at is None or at[0] is not front or at[1] != front.listing:
                s, e = self._s, self._e
                self._pos[s:e] = front.positions(self._pid[s:e], True)
                self._pos_at, self._pos_ids = (front, front.listing), None
                self._version += 1
            return
        ids = view.request_id
        if ids is self._pos_ids:
            return
        self._index = index = LiveIndex.of(view, self._index)
        at = self._pos_at
        if at is None or at[0] is not index or at[1] != index.version:
            s, e = self._s, self._e
            pids = self._pid[s:e]
            if self._announced:
                self._pos[s:e] = index.positions(pids, listed=True)
            else:
                head = self._pos[s:e] = index.positions(pids)
                if _min(head) < 0:  # a promoted request is not listed (its finish went unannounced)
                    listed = head >= _ZERO
                    self._is_promoted[pids[~listed]] = _FALSE
                    self._keep_only(listed)
            self._pos_at = (index, index.version)
            self._version += 1
        self._pos_ids = ids if frozen(ids) else None

    def _spend(self, view: LiveView) -> None:
        """The promoted requests that did not run in the last step (idle steps > 0 now) spend their quantum a
        tick later; those whose quantum is spent by this tick return to their rank."""
        s, e = self._s, self._e
        p = e - s
        idle = view.at("idle_steps", self._pos[s:e])
        ends = self._end[s:e]
        missed = count_nonzero(idle)
        if missed:
            if missed == p or count_nonzero(idle[p - missed:]) == missed:  # the tail missed: still ascending
                ends[p - missed:] += 1
            else:
                ends += idle != _ZERO
                self._ends_ascend = False
        tick = self._tick
        if self._ends_ascend:
            if ends[0] > tick:  # (the first is spent first)
                return
            k = int(ends.searchsorted(tick, side="right"))  # the spent ones: a prefix
            if k:
                spent = self._pid[s:s + k]
                self._is_promoted.data[self._is_promoted.rows(spent)] = _FALSE
                self._moved(spent, False)
                self._s = s + k
                self._version += 1
        else:
            keep = ends > tick
            if count_nonzero(keep) < p:
                spent = self._pid[s:e][~keep]
                self._is_promoted.data[self._is_promoted.rows(spent)] = _FALSE
                self._moved(spent, False)
                self._keep_only(keep)
        if self._e == self._s:
            self._s = self._e = 0
            self._ends_ascend = True

    def _read_all(self, view: LiveView) -> None:
        """Read every live request's idle steps: promote those idle ``threshold`` steps or more (not promoted
        already) and file the others by the step at which each reaches it."""
        step = view.step
        idle = view.idle_steps
        if self._e > self._s:
            idle = idle.copy()
            idle[self._pos[self._s:self._e]] = _UNSET  # promoted: not waiting to be
        starving = idle >= self._threshold
        if count_nonzero(starving):
            self._promote(view, starving.nonzero()[0])
            idle = np.where(starving, _UNSET, idle)
        waiting = (idle >= _ZERO).nonzero()[0]
        due = (step + self._t) - idle[waiting]  # >= step + 1
        by = due.argsort(kind="stable")
        due, self._due_ids = due[by], view.request_id[waiting[by]]
        # the requests due at each step are a run of _due_ids (in listing order): its step and where it ends
        cuts = (due[1:] != due[:-1]).nonzero()[0] + 1
        self._due_steps = due[np.concatenate(([0], cuts))].tolist() if len(due) else []
        self._due_ends = cuts.tolist() + [len(due)]
        self._due_group = self._due_next = 0
        self._filed_by_arrival = view.arrival_ordered
        self._next_due = self._due_steps[0] if len(due) else _NEVER
        self._read_at = step + self._t + 1
        self._gapless = True
        self._num_live = len(view)

    def _look_at_due(self, view: LiveView, kept: bool) -> None:
        """Promote the requests due by this step that have not run since the last read (they are idle
        ``threshold`` steps now)."""
        steps, g, step = self._due_steps, self._due_group, view.step
        while g < len(steps) and steps[g] <= step:  # (one run a step, unless the host skipped step numbers)
            g += 1
        runs = g - self._due_group
        j = self._due_ends[g - 1]
        ids = self._due_ids[self._due_next:j]
        self._due_group, self._due_next = g, j
        self._next_due = steps[g] if g < len(steps) else _NEVER
        try:  # (filed from a view whose requests the hooks announced: reserved)
            gone = self._gone.data[self._gone.rows(ids)]
        except IndexError:
            gone = self._gone[ids]
        if count_nonzero(gone):  # (finished since)
            ids = ids[~gone]
            if not len(ids):
                return
        if kept:  # (the kept order's table: the listing's ids need not be read)
            at = self._front.positions(ids, False)
        else:
            self._index = index = LiveIndex.of(view, self._index)
            at = index.positions(ids, listed=True)
        idle = view.at("idle_steps", at)
        starving = idle >= self._threshold
        k = count_nonzero(starving)
        if k:
            new = at if k == len(at) else at[starving]
            new_ids = None
            if kept:  # (their ids, without reading the listing's)
                new_ids = ids if k == len(ids) else ids[starving]
            if k > 1 and (runs > 1 or not self._filed_by_arrival):
                new = np.sort(new)  # (one run filed from a listing by arrival is listed by arrival still)
                if new_ids is not None:  # (the kept order's listing has ascending ids: positions follow them)
                    new_ids = np.sort(new_ids)
            self._promote(view, new, new_ids)
        if not self._gapless:
            # a request idle fewer steps than the steps since the read (the host skipped step numbers)
            # reaches the threshold later than filed: read every request again by then
            soonest = view.step + self._t - int(_max(np.where(starving, _UNSET, idle)))
            if soonest < self._read_at:
                self._read_at = soonest

    def _promote(self, view: LiveView, new: np.ndarray, ids: np.ndarray | None = None) -> None:
        """Promote the requests at positions ``new`` (ascending; ``ids``: theirs, if known) now: append them to the
        promoted requests."""
        if not view.arrival_ordered and len(new) > 1:  # promoted at the same step: by arrival, then id
            new = new[order_by(view.at("arrival_time", new), view.at("request_id", new))]
            ids = None
        if ids is None:
            ids = view.at("request_id", new)
        try:  # (a host that announced its arrivals reserved their ids)
            self._is_promoted.data[self._is_promoted.rows(ids)] = _TRUE
        except IndexError:
            self._is_promoted[ids] = _TRUE
        s, e = self._s, self._e
        self._moved(ids, True)
        if s == e:  # positions in this listing from now on
            front = self._front
            if front is not None and front.active:
                self._pos_at, self._pos_ids = (front, front.listing), None
            else:
                self._index = index = LiveIndex.of(view, self._index)
                self._pos_at = (index, index.version)
                ids_now = view.request_id
                self._pos_ids = ids_now if frozen(ids_now) else None
        k = len(ids)
        if e + k > len(self._pid):
            s, e = self._make_room(k)
        self._pid[e:e + k] = ids
        self._pos[e:e + k] = new
        self._end[e:e + k] = self._tick + self._q  # (the latest spent tick: the ends still ascend)
        self._e = e + k
        self._version += 1
        if view.step != self._promo_step:
            self._promo_step, self._promo_count = view.step, k
            return
        # ranked twice this step, promoting both times: this step's promotions by arrival, then id
        lo = e - self._promo_count
        self._promo_count += k
        if self._promo_count > k:
            pos, pid = self._pos[lo:e + k], self._pid[lo:e + k]
            by = order_by(view.at("arrival_time", pos), pid)
            self._pos[lo:e + k], self._pid[lo:e + k] = pos[by], pid[by]

    def _trim(self, view: LiveView) -> None:
        """Drop from the id arrays the ids below the lowest this wrapper may still ask them for: the live requests'
        (``view``'s), the promoted ones' and those filed as due (a finished one among them must still read as gone).
        A server numbers its requests by arrival for ever: without this the arrays held every id it served (and, but
        for ``held``, every id since the oldest still live)."""
        held = (view.request_id, self._pid[self._s:self._e], self._due_ids[self._due_next:])
        held = [ids for ids in held if len(ids)]
        if held:
            lowest = min(int(_min(ids)) for ids in held)
            held = np.concatenate(held) if len(held) > 1 else held[0]
            self._gone.trim(lowest, held)
            self._is_promoted.trim(lowest, held)

    def _moved(self, ids: np.ndarray, to_front: bool) -> None:
        """Requests ``ids`` were promoted (or returned to their rank): so in the kept order, if one is kept."""
        front = self._front
        if front is not None and front.active:
            front.move(ids, to_front)

    def _start_front(self, view: LiveView, order: np.ndarray) -> bool:
        """Keep the promoted-first order from ``order`` (the inner order) from now on, if it can be."""
        front = self._front
        if not front.start(view, order, self._pos[self._s:self._e]):
            return False
        self._pos_at, self._pos_ids = (front, front.listing), None
        return True

    def _front_order(self, view: LiveView) -> np.ndarray | None:
        """The promoted requests, then the others in the inner order, from the kept order (None: it was not one
        position per live request)."""
        key = (self._version, self._front.version)
        last = self._last_front
        if last is not None and last[0] == key:
            return vouched_again(view, last[1])
        out = self._front.order(self._pos[self._s:self._e])
        if out is None:
            return None
        self._last_front = (key, out)
        return vouched(view, out)

    def _make_room(self, k: int) -> tuple[int, int]:
        """Move the promoted requests to the buffers' start, growing them if they would be over half full with
        ``k`` more; returns the new (start, end)."""
        s, e = self._s, self._e
        p = e - s
        if 2 * (p + k) > len(self._pid):
            size = 2 * (p + k)
            for name in ("_pid", "_pos", "_end"):
                old = getattr(self, name)
                new = np.zeros(size, dtype=old.dtype)
                new[:p] = old[s:e]
                setattr(self, name, new)
        else:
            for buf in (self._pid, self._pos, self._end):
                buf[:p] = buf[s:e].copy()
        self._s, self._e = 0, p
        return 0, p

    def _promoted_first(self, order: np.ndarray, head: np.ndarray) -> np.ndarray:
        """The promoted requests (``head``: positions in their order), then ``order`` without them."""
        n = len(order)
        if len(self._keep) < n:
            self._keep = np.ones(2 * n, dtype=bool)
        keep = self._keep[:n]
        keep[head] = _FALSE
        rest = order[keep[order]]
        keep[head] = _TRUE
        return np.concatenate((head, rest))

    def decode_run_limit(self, step: int, members: int, live: int) -> int:
        """The most decode steps [steps] a host may take from ``step`` (the step just ranked) with the order's first
        ``members`` requests of ``live`` as the batch, ranking none of the steps after the first, before this wrapper's order could
        change: 0 where it cannot tell. The skipped ranks would each only count a tick and move the quantum ends of
        the promoted requests outside the batch a tick later (:meth:`decode_run_taken` does that): no read of every
        request is due (``_read_at``), no request filed as due reaches ``_next_due`` (a threshold: the run is cut
        there, though a due member would not be promoted), and no member's quantum is spent (its end stays above the
        tick). The members are the promoted requests' head: the batch is a prefix of the promoted-first order. (A
        skipped rank may also have started keeping the promoted-first order, :class:`FrontOrder`: the next rank starts
        it instead, and the order is the same either way.)"""
        if (not self._announced or self._read_at is None or self._spent_at != step or self._stale
                or self._gone.grew or self._is_promoted.grew):
            return 0
        limit = min(self._read_at, self._next_due) - step
        s, e = self._s, self._e
        ran = min(members, e - s)  # promoted members
        if ran:
            limit = min(limit, int(_min(self._end[s:s + ran])) - self._tick)
        return max(limit, 0)

    def decode_run_taken(self, step: int, member_ids: np.ndarray, steps: int) -> None:
        """A host took ``steps`` decode steps from ``step`` with the order's first requests (``member_ids``), within
        :meth:`decode_run_limit`, and ranked none after the first: advance as the ``steps - 1`` skipped ranks would
        have (a tick each; a promoted request outside the batch spends its quantum a tick later at each)."""
        skipped = steps - 1
        if skipped <= 0:
            return
        self._tick += skipped
        self._spent_at = step + skipped
        s, e = self._s, self._e
        ran = min(len(member_ids), e - s)
        if e - s > ran:  # (the tail of the promoted order: the ends still ascend, if they did)
            self._end[s + ran:e] += skipped

    def quantum_key(self) -> str:
        """The spec's name of :attr:`quantum`: ``starve_quantum`` where the inner policy has a ``quantum`` of its
        own (MLFQ's [s]), else ``quantum``."""
        return "starve_quantum" if "quantum" in self.inner.parameters() else "quantum"

    def describe(self):
        # (under "quantum" it overwrote MLFQ's own quantum in the result files: mlfq:quantum=0.05,starve=5,
        # starve_quantum=3 was described as quantum=3)
        return {**self.inner.describe(), "starve": self.threshold, self.quantum_key(): self.quantum}

    def spec(self) -> str:
        inner = self.inner.spec()
        sep = "," if ":" in inner else ":"
        return f"{inner}{sep}starve={self.threshold},{self.quantum_key()}={self.quantum}"


class _StarvationPreventionStepped(StarvationPrevention):
    """Starvation prevention around a policy that has an ``on_step``: passes it on, and ``on_step_ranks`` too."""

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        self.inner.on_step(view, scheduled, step_time)

    def on_step_ranks(self, view: LiveView, order: np.ndarray, ranks, step_time: float) -> None:
        """:meth:`on_step` with the batch named by its ranks in ``order``, the order the *wrapper* returned (promoted
        first), not the inner policy's; ``step_time`` [s]. Passed on as ranks, without a mask over every live
        request, to an inner policy of this package that has ``on_step_ranks``: those read ``order`` only as the
        positions ``order[:ranks]`` / ``order[ranks]`` (PO), or use it as their own order only when it is that very
        array (MLFQ: ``order is self._order``; else a mask of the same positions), so another order naming the same
        positions has the same effect. A plugin's twin may take the ranks as ranks in its own order: it (and an inner
        policy without the twin) is told the mask, as the host would have told it (before: always the mask, built by
        the simulator's replica over every live request each step)."""
        inner = self.inner
        if self._trust_inner and hasattr(inner, "on_step_ranks"):
            inner.on_step_ranks(view, order, ranks, step_time)
            return
        scheduled = np.zeros(len(order), dtype=bool)
        scheduled[order[:ranks] if type(ranks) is int else order[ranks]] = True
        inner.on_step(view, scheduled, step_time)


def _has_on_step(policy: Policy) -> bool:
    return getattr(type(policy), "on_step", Policy.on_step) is not Policy.on_step


def _fixed_key(policy: Policy) -> bool:
    """Whether ``policy`` ranks by a key fixed per request (it says so of its own ``rank``: LTR)."""
    rank = getattr(type(policy), "rank", None)
    return rank is not None and getattr(type(policy), "fixed_key_rank", None) is rank
