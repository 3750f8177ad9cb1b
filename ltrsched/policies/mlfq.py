"""Multi-level feedback queue, FastServe-like as the paper ran it (no skip-join).

New requests enter the top level (0). A request at level L is demoted once the execution time it
accumulated *at that level* exceeds ``quantum * threshold**L`` seconds, so the cumulative demotion points
are ``quantum * (1 + threshold + ... + threshold**L)``. Execution time is the sum of the durations of the
steps the request ran in (the host's ``run_time``). Levels are served top first; within a level the most
recently run requests stay in front (then by arrival). With ``promote=N``, a request idle for N
consecutive steps returns to the top level (its accumulated time restarts).

Only the requests that ran change level or recency, so the order is kept from step to step: the last
step's batch is taken out, its members' levels are read again (their ``run_time`` only), and they go back in
front of their levels (they ran last), by arrival among themselves; newcomers join the end of the top level
(they never ran). Within each level that is the batch, then the others as they were, then the newcomers: the
others stay sorted by level, so the batch and the newcomers are merged in where their levels start. The order's
levels are kept as its non-empty levels' sizes, not one level per request, so the merge is the others cut where a
level of the batch starts, the batch's pieces put in, copied once (no pass over every live request but that copy,
and the renumbering of positions after a finish). When the batch was the head of the order (the host's usual
batch), its members are read level by level: run time only grows, so a member stays or moves down, which one
comparison with its level's bound per level tells; only the members that moved down are placed by a binary search
of the bounds. Each level's members are listed by position with a sort only where the kept order did not list
them so already (the order keeps, per level, how many of its first requests are by position); when nobody moved
and nothing finished or arrived, the order stands (the same array). While the host lists requests by arrival, its
announced arrivals and finishes and the view's length say which requests are listed where (no pass over their ids:
``Policy.on_arrival``); the simulator's replica names the batch by its ranks in the order (``on_step_ranks``), not
by a mask over every live request. When the policy cannot follow the host step by step (see
:mod:`ltrsched.policies.tracking`), or a promotion is due, it sorts every live request instead. The order is the
same either way. Costs: BENCHMARKS.md (issues 13 and 15).
"""

from __future__ import annotations

import numpy as np

from ltrsched.policies.base import LiveView, Policy
from ltrsched.policies.fastops import count_nonzero
from ltrsched.policies.id_array import IdArray
from ltrsched.policies.order_check import vouched, vouched_again
from ltrsched.policies.registry import register
from ltrsched.policies.tracking import DueSteps, batch_positions, same_ids, snapshot_ids, split_by_tail

MAX_LEVELS = 32

_NEW = -(1 << 62)  # idle-run start of a request announced by on_arrival and not yet seen in a view
#: promote: the entries filed as due are cut to those still due (at most one per live request) once they number more
#: than ``DUE_SLACK`` times the live requests plus ``MIN_DUE``: filed every step a request runs or arrives, they
#: numbered the requests served (or run) over the last ``promote`` steps: 599,892 at 1,000 arrivals a step of 1-3
#: tokens each and promote=256 with at most 2,076 live, the id arrays 262,144 entries wide (now 7,106 and 19,984:
#: ``benchmarks/bench_server_churn.py``, BENCHMARKS.md). One pass over them, at most once every ``MIN_DUE`` entries
#: filed.
DUE_SLACK = 2
MIN_DUE = 1024
_FAR = 1 << 62  # a step count no run reaches


@register
class MLFQ(Policy):
    """Multi-level feedback queue; ``quantum`` [s] at the top level, each level ``threshold`` times longer."""

    name = "mlfq"

    def __init__(self, quantum: float = 0.03, threshold: float = 2.0, promote: int = 0):
        if not (0 < quantum < np.inf and 1 <= threshold < np.inf):
            raise ValueError(f"need finite quantum > 0 and threshold >= 1, got quantum={quantum}, threshold={threshold}")
        if promote < 0:
            raise ValueError(f"promote must be >= 0 steps, got {promote}")
        self.quantum = quantum
        self.threshold = threshold
        self.promote = promote
        # cumulative execution time [s] after which a request leaves level L
        with np.errstate(over="ignore"):  # a huge threshold: the deep levels' bounds are infinite
            self._bounds = quantum * np.cumsum(threshold ** np.arange(MAX_LEVELS, dtype=np.float64))
        self._last_run = IdArray(-1, np.int64)  # last step a request ran in
        self._time_base = IdArray(0.0)  # run_time at the last promotion to the top
        self._idle_from = IdArray(_NEW, np.int64)  # promote: last step it ran (its first step - 1 before)
        self._due = DueSteps()  # promote: step -> requests that will have been idle `promote` steps by then
        self._flag = IdArray(False, np.bool_)  # scratch: marks finished requests
        self._forget()

    def _forget(self) -> None:
        """Drop what was kept from the last step (the next rank sorts every live request)."""
        self._view: LiveView | None = None  # the view last ranked
        self._ids: np.ndarray | None = None  # its request ids (a snapshot), when it was not listed by arrival
        self._live = 0  # its length
        self._order: np.ndarray | None = None  # the order returned for it
        self._segs: list[list[int]] = []  # [level, requests] of each non-empty level along that order (it is by level)
        self._batch: np.ndarray | None = None  # positions of the requests that ran in its step
        self._batch_ids: np.ndarray | None = None
        self._batch_is_head = False  # the batch is order[:len(batch)]
        self._lead: dict[int, int] = {}  # level -> how many of its first requests along the order are listed by position
        self._scheduled: np.ndarray | None = None  # the step's scheduled mask (when not the head)
        self._next_step: int | None = None  # the step the next view must have for the kept order to hold
        self._proven = False  # the order returned is a permutation by construction (see rank)
        self._aligned = False  # on_step's scheduled mask had one entry per request of the view it followed
        self._arrived: list[np.ndarray] = []  # announced since the last rank
        self._finished: list[np.ndarray] = []  # and finished

    def prepare(self, requests) -> None:
        self._last_run.reset()
        self._time_base.reset()
        self._idle_from.reset()
        self._due.clear()
        self._forget()

    def levels(self, view: LiveView) -> np.ndarray:
        """Current level of each live request."""
        ids = view.request_id
        if self.promote:
            stale = view.idle_steps >= self.promote
            if stale.any():
                self._time_base[ids[stale]] = view.run_time[stale]
        executed = view.run_time - self._time_base[ids]
        return np.searchsorted(self._bounds, executed, side="right")

    # ------------------------------------------------------------------ hooks
    def on_arrival(self, request_ids, now) -> None:
        for arr in (self._last_run, self._time_base, self._idle_from, self._flag):
            arr.reserve(request_ids)
        if self.promote:
            self._idle_from[request_ids] = _NEW
        self._arrived.append(request_ids)

    def on_finish(self, request_ids, now) -> None:
        if self.promote:
            self._idle_from[request_ids] = _NEW + 1  # never due again
        self._finished.append(request_ids)

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        followed = view is self._view
        batch, is_head = batch_positions(self._order if followed else None, scheduled)
        self._ran(view, batch, None if is_head else scheduled, len(scheduled) == len(view))

    def on_step_ranks(self, view: LiveView, order: np.ndarray, ranks: int | np.ndarray, step_time: float) -> None:
        """:meth:`on_step` for a host that names the batch by its ranks in the order it formed the batch from
        (``order``, what :meth:`rank` returned for ``view``, as the host checked it): ``order[:ranks]`` for an
        int (a prefix: the usual batch), else ``order[ranks]`` (ascending ranks). The same as ``on_step`` with
        the scheduled mask; for the batch at the head of the kept order, neither the host nor the policy makes
        or reads a mask over every live request (the simulator's replica calls this when a policy has it).
        ``step_time``: the step's duration [s]. A view not followed (none kept for it: a lone request's, say) only
        records who ran, which needs no mask either."""
        if view is not self._view:  # (not followed: _ran records who ran, in any order)
            self._ran(view, order[:ranks] if type(ranks) is int else order[ranks], None, True)
            return
        if type(ranks) is int and order is self._order:
            self._ran(view, order[:ranks], None, True)  # (the host checked: one position per request of the view)
            return
        scheduled = np.zeros(len(order), dtype=bool)
        scheduled[order[:ranks] if type(ranks) is int else order[ranks]] = True
        self.on_step(view, scheduled, step_time)

    def _ran(self, view: LiveView, batch: np.ndarray, scheduled: np.ndarray | None, aligned: bool) -> None:
        """The requests at ``batch`` (positions in ``view``) ran at ``view.step``; ``scheduled``: the step's mask
        when the batch is not the head of the order returned for ``view`` (None when it is); ``aligned``: the
        host named one entry per request of ``view``."""
        ids = view.at("request_id", batch)  # (not the column for every live request: see _follow)
        try:  # (arrivals reserved their ids)
            last_run = self._last_run
            last_run.data[last_run.rows(ids)] = view.step
        except IndexError:
            self._last_run[ids] = view.step
        if view is self._view:
            self._aligned = aligned
            self._batch, self._batch_ids, self._batch_is_head = batch, ids, scheduled is None
            self._scheduled = scheduled
            self._next_step = view.step + 1
            if self.promote:
                self._idle_from[ids] = view.step
                self._due.add(view.step + 1 + self.promote, ids)

    # ------------------------------------------------------------------ decode runs (the simulator's)
    def decode_run_limit(self, step: int, members: int, live: int) -> int:
        """The most decode steps [steps] a host may take from ``step`` (the step just ranked) with the order's first
        ``members`` requests of ``live`` as the batch, calling neither ``on_step`` nor ``rank`` for them (then
        :meth:`decode_run_taken`): unlimited where every live request is a member and there is no ``promote`` (a
        demotion or a new recency within the batch cannot leave anyone out of it), else 0. The next rank then sorts
        (nothing kept follows the run: ``rank`` cleared ``_next_step``), by level and the step each request last ran
        in, as the kept order would have ordered them (the module's docstring: the same order either way)."""
        if live != members or self.promote or self._last_run.grew:
            return 0
        return 1 << 62

    def decode_run_taken(self, step: int, member_ids: np.ndarray, steps: int) -> None:
        """A host took ``steps`` decode steps from ``step`` within :meth:`decode_run_limit`, the batch the requests
        ``member_ids``: they ran last at the run's last step, as that many ``on_step`` calls would record."""
        self._last_run[member_ids] = step + steps - 1

    # ------------------------------------------------------------------ ranking
    def rank(self, view: LiveView) -> np.ndarray:
        if self._last_run.grew:  # (arrivals grew the id arrays: drop the ids gone)
            self._trim(view)
        if len(view) < 2 and not self.promote:  # one request (a burst's tail runs alone for thousands of steps)
            return self._alone(view)
        order = None
        if view.step == self._next_step:
            order = self._follow(view)
        if order is None:
            if self.promote and view.step != self._next_step:
                self._recount_idle(view)
            levels = self.levels(view)
            order = view.order_by(levels, -self._last_run[view.request_id])
            self._segs = [[level, c] for level, c in enumerate(np.bincount(levels).tolist()) if c]  # (by level)
            self._lead = {}
            self._proven = order is view._ranked  # (a sort's: a permutation)
            if self._proven:  # (the library's own sort: vouched for, whoever hands it to the host)
                vouched_again(view, order)
        else:
            # made from the last order, a permutation of the last view's positions, by taking the batch out,
            # renumbering around the members that finished (distinct positions) and placing the batch and the
            # newcomers (the positions after the others) back in, each once (consecutive slices of the batch and
            # of the others, the last one to their end): a permutation, given one scheduled flag per request of the
            # last view
            self._proven = self._proven and self._aligned and len(order) == len(view)
            if self._proven:
                vouched(view, order)  # (read-only)
            else:
                order.flags.writeable = False  # (returned again while nothing changes: see order_check)
        self._view, self._order, self._live = view, order, len(view)
        # (by arrival, the hooks tell who is listed where: see _follow)
        self._ids = None if view.arrival_ordered else snapshot_ids(view.request_id)
        self._next_step, self._batch = None, None
        self._arrived.clear()
        self._finished.clear()
        return order

    def _trim(self, view: LiveView) -> None:
        """Drop from the id arrays the ids below the lowest this policy may still ask them for: the live requests'
        (``view``'s), those announced since the last rank and the last batch's, and those filed as due (``promote``).
        A server numbers its requests by arrival for ever: without this the arrays held every id it served (and, but
        for ``held``, every id since the oldest still live)."""
        held = [view.request_id, *self._arrived, *self._finished, *self._due.held()]
        if self._batch_ids is not None:
            held.append(self._batch_ids)
        held = [ids for ids in held if len(ids)]
        if held:
            lowest = min(int(ids.min()) for ids in held)
            held = np.concatenate(held) if len(held) > 1 else held[0]
            for arr in (self._last_run, self._time_base, self._idle_from, self._flag):
                arr.trim(lowest, held)
        self._last_run.grew = False

    def _alone(self, view: LiveView) -> np.ndarray:
        """The order of at most one live request (no level read: any level leads). Nothing is kept (on_step still
        records who ran), so the next rank of two or more sorts."""
        self._forget()
        order = _LONE if len(view) else _NONE
        return vouched_again(view, order)  # (read-only: a permutation of its one position)

    def _recount_idle(self, view: LiveView) -> None:
        """promote: file every live request under the step it will have been idle ``promote`` steps."""
        ids = view.request_id
        idle = view.idle_steps
        self._idle_from[ids] = view.step - 1 - idle
        self._due.clear()
        waiting = idle < self.promote  # the others are promoted while they wait (levels())
        self._due.fill(ids[waiting], view.step + self.promote - idle[waiting])

    def _promotions_due(self, view: LiveView) -> bool:
        """promote: file newcomers; whether a request reaches ``promote`` idle steps now."""
        step = view.step
        idle_from = self._idle_from
        for ids in self._arrived:
            ids = ids[idle_from[ids] == _NEW]  # (not finished since)
            idle_from[ids] = step - 1
            self._due.add(step + self.promote, ids)
        due = self._due.pop(step)
        if self._due.size > DUE_SLACK * len(view) + MIN_DUE:  # (filed every step a request runs or arrives)
            if self.promote < _FAR:
                self._due.keep(self._still_due)
            else:  # (filed under steps no run reaches, past 64-bit steps: never due)
                self._due.clear()
        # (a finished request filed as due reads _NEW + 1, or _NEW once its id is dropped: not due either way)
        return due is not None and bool(count_nonzero(idle_from.get(due) == step - 1 - self.promote))

    def _still_due(self, ids: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """promote: which of the requests ``ids``, filed under ``steps``, are still due then: idle since the step
        they were filed for (not run since, nor finished). The others never are again: a request's last run only
        moves on to later steps, and a finished one's reads _NEW + 1 (_NEW once its id is dropped)."""
        idle_from = self._idle_from
        try:  # (ids filed as due are held: _trim keeps them)
            last = idle_from.data[idle_from.rows(ids)]
        except IndexError:
            last = idle_from.get(ids)
        return last == steps - (1 + self.promote)

    def _follow(self, view: LiveView) -> np.ndarray | None:
        """The kept order updated for the step that ran (None: sort instead)."""
        if self.promote and self._promotions_due(view):
            return None  # a promotion moves a request that did not run: sort
        n = len(view)
        if n < 2:
            return None
        batch, batch_ids, order, segs = self._batch, self._batch_ids, self._order, self._segs
        # the kept order without the batch: its members' keys did not change, nor did their relative order
        runs = None  # the batch's levels along the order, [level, members] each (when it is the order's head)
        if self._batch_is_head:
            k = len(batch)
            runs, rest_segs = _split_segments(segs, k)
            consumed = {level: members for level, members in runs}  # (before finishes)
            rest = order[k:]
        else:
            ran = self._scheduled[order]
            rest = order[~ran]
            # the members' levels in the kept order: where their ranks fall among the levels' ends
            ends = np.cumsum([c for _, c in segs])
            left = np.bincount(ends.searchsorted(np.flatnonzero(ran), side="right"), minlength=len(segs)).tolist()
            rest_segs = [[level, c - d] for (level, c), d in zip(segs, left) if c > d]
        m = 0
        same = not (self._arrived or self._finished)
        by_arrival = view.arrival_ordered and self._view.arrival_ordered
        if same:
            # nothing announced (hosts announce every arrival and finish: Policy.on_arrival): listed by arrival, a
            # view of the same length lists the same requests in the same order, which the ids need not show (a
            # gather and a compare over every live request, ~70 us of a step on the CPU engine's cold caches)
            if not (by_arrival and n == self._live) and not same_ids(view.request_id, self._ids):
                return None  # the live set changed unannounced
        elif not by_arrival:
            return None  # where the others are listed now, and newcomers go, is unknown without a sort
        else:
            # requests finish after a step they ran in: the batch members that finished leave, the others
            # keep their order (listed by arrival), and newcomers are listed after all of them
            gone = 0
            if self._finished:
                finished = np.concatenate(self._finished) if len(self._finished) > 1 else self._finished[0]
                if len(finished) == 1:  # the usual finish: found among the batch's ids (one comparison)
                    j = int((batch_ids == finished[0]).argmax()) if len(batch_ids) else 0
                    if not len(batch_ids) or batch_ids[j] != finished[0]:
                        return None  # a request left that did not run (an abort): sort
                    gone = 1
                else:
                    flags = self._flag
                    flag = flags.data
                    try:  # (arrivals reserved their ids)
                        rows = flags.rows(finished)
                        flag[rows] = True
                        done = flag[flags.rows(batch_ids)]
                    except IndexError:  # a finished request that never arrived: sort
                        flag[:] = False
                        return None
                    flag[rows] = False
                    gone = int(count_nonzero(done))
                    if gone != len(finished):
                        return None  # a request left that did not run (an abort): sort
                    if gone == 1:
                        j = int(done.argmax())
                # (the ids are read again only with promote: else the views are listed by arrival, see below)
                if gone == 1:  # renumber around its position, then cut it out
                    at = batch[j]  # its position in the last view
                    after = at - rest  # negative exactly where rest > at
                    after >>= _SIGN_BIT  # -1 there, 0 elsewhere (integer operations: no boolean cast)
                    after += rest
                    rest = after
                    batch = batch - (batch > at)
                    batch = np.concatenate((batch[:j], batch[j + 1:]))
                    if self.promote:
                        batch_ids = np.concatenate((batch_ids[:j], batch_ids[j + 1:]))
                    if runs is not None:
                        for run in runs:  # (the run it was in has one member less)
                            if j < run[1]:
                                run[1] -= 1
                                break
                            j -= run[1]
                elif gone:
                    left_at = np.sort(batch[done])  # positions in the last view
                    stay = ~done
                    batch = batch[stay]
                    if self.promote:
                        batch_ids = batch_ids[stay]
                    rest = rest - left_at.searchsorted(rest)
                    batch = batch - left_at.searchsorted(batch)
                    if runs is not None:
                        s = 0
                        for run in runs:
                            e = s + run[1]
                            run[1] = int(count_nonzero(stay[s:e]))
                            s = e
            arrived = np.concatenate(self._arrived) if self._arrived else batch_ids[:0]
            m = len(arrived)
            before = self._live - gone
            if before + m != n:
                return None  # a view that does not add up
            if m and not split_by_tail(0, view.at("request_id", slice(before, n)), arrived):  # (the tail's ids only)
                return None
        if runs is not None and view.arrival_ordered:  # (positions follow arrival: members by position)
            pieces = self._relevel_head(view, batch, batch_ids, runs, consumed, same)
            if pieces is None:
                return self._order  # every member stayed at its level, listed by position already: the same order
            return self._assemble(pieces, rest, rest_segs, n, m, consumed)
        # the batch back in: new levels, in front of their levels (they ran last), by arrival among themselves
        new_levels = self._levels_of(view, batch, batch_ids)
        if view.arrival_ordered:
            shift = n.bit_length()  # positions < 2**shift
            packed = np.left_shift(new_levels, shift, out=new_levels)
            packed |= batch
            packed.sort()  # by (level, position)
            pieces = _by_level(packed, shift)
        else:
            by = np.lexsort((batch_ids, view.at("arrival_time", batch), new_levels))
            batch = batch[by]
            counts = np.bincount(new_levels).tolist() if len(new_levels) else []
            pieces = []
            b = 0
            for level, c in enumerate(counts):
                if c:
                    pieces.append([level, batch[b:b + c]])
                    b += c
        self._lead = {}
        return self._assemble(pieces, rest, rest_segs, n, m, {})

    def _relevel_head(self, view: LiveView, batch: np.ndarray, batch_ids: np.ndarray, runs: list, consumed: dict,
                      same: bool) -> list | None:
        """The batch's members by their new levels, ``[level, positions by position]`` per level in ascending
        levels, when the batch was the head of the kept order (the host's usual batch); None when that is the
        kept order's head as it is and ``same`` (nothing finished or arrived): the order stands.

        ``runs``: the members per level along ``batch`` (``[level, members]``); ``consumed``: level -> requests of
        that level the batch took from the head of the kept order (before finishes). Each level's members are
        compared with the level's bound (their run time only grows, so a member stays or moves down), and listed by
        position with a sort only where the kept order did not list them so (its ``_lead``)."""
        rt = view.at("run_time", batch)
        if self.promote:  # (else nobody's accumulated time ever restarts: the base stays 0)
            base = self._time_base
            rt = rt - base.data[base.rows(batch_ids)]
        bounds = self._bounds
        lead = self._lead
        pieces = []
        ascending = True  # the pieces' levels ascend (else sorted below)
        s = 0
        for level, members in runs:
            if not members:
                continue
            e = s + members
            part = batch[s:e]
            by_position = members < 2 or consumed[level] <= lead.get(level, 0)
            if level < _TOP:
                r = rt[s:e]
                below = r < bounds[level]  # (False for NaN: searchsorted puts NaN past every bound)
                stay = int(count_nonzero(below))
            else:
                stay = members
            if stay == members:  # nobody moved down
                if not by_position:
                    part = np.sort(part)
                    same = False
                pieces.append([level, part])
            elif level + 1 < _TOP and count_nonzero(r < bounds[level + 1]) == members:  # some moved one level down
                same = False
                moved = part[~below]
                part = part[below]
                if not by_position:  # (each sorted in place: fresh arrays. np.where's keys cost more on the CPU
                    # engine's cold caches, ~25 us: the step's only call of that kind)
                    moved.sort()
                    part.sort()
                if stay:
                    pieces.append([level, part])
                pieces.append([level + 1, moved])
            else:  # further down (a long step): every member's level from its run time
                same = False
                shift = (int(part.max()) + 1).bit_length()
                packed = np.left_shift(bounds.searchsorted(r, side="right"), shift)
                packed |= part
                packed.sort()
                pieces += _by_level(packed, shift)
                ascending = False
            s = e
        if same:
            return None
        if not ascending:
            pieces.sort(key=_first)
        # members of one level from two runs (movers and stayers): one piece, by position
        merged = [pieces[0]] if pieces else []
        for piece in pieces[1:]:
            if piece[0] == merged[-1][0]:
                merged[-1] = [piece[0], np.sort(np.concatenate((merged[-1][1], piece[1])))]
            else:
                merged.append(piece)
        return merged

    def _assemble(self, pieces: list, rest: np.ndarray, rest_segs: list, n: int, m: int, consumed: dict) -> np.ndarray:
        """Within each level: the batch's members (``pieces``: ``[level, positions]`` in ascending levels, ran
        last, by position), then the others as they were (``rest``, by level; ``rest_segs``: ``[level, requests]``
        along it), then newcomers (never ran, listed last; top level). Both are listed by level, so the order is the
        others cut where a level of the batch starts among them, with the batch's piece of that level put in (a few
        slices, one copy). Keeps the new order's levels and its lead per level (see ``_relevel_head``)."""
        old_lead = self._lead
        out = []
        segs = []
        lead = {}
        r = cut = 0  # others up to the current level, others placed
        i = j = 0
        nb, nr = len(pieces), len(rest_segs)
        newcomers = m > 0
        while i < nb or j < nr or newcomers:
            level = min(pieces[i][0] if i < nb else _TOP + 1, rest_segs[j][0] if j < nr else _TOP + 1,
                        0 if newcomers else _TOP + 1)
            count = 0
            if i < nb and pieces[i][0] == level:
                piece = pieces[i][1]
                i += 1
                if r > cut:
                    out.append(rest[cut:r])
                    cut = r
                out.append(piece)
                count = lead[level] = len(piece)
            if j < nr and rest_segs[j][0] == level:
                rc = rest_segs[j][1]
                j += 1
                r += rc
                if not count and level in old_lead:  # what is left of the kept order's lead
                    left = old_lead[level] - consumed.get(level, 0)
                    if left > 0:
                        lead[level] = left
                count += rc
            if newcomers and level == 0:
                newcomers = False
                if r > cut:
                    out.append(rest[cut:r])
                    cut = r
                out.append(np.arange(n - m, n))
                if not count:  # (newcomers alone: listed by position)
                    lead[0] = m
                count += m
            segs.append([level, count])
        if cut < len(rest):
            out.append(rest[cut:])
        self._segs, self._lead = segs, lead
        return np.concatenate(out)

    def _levels_of(self, view: LiveView, positions: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The current levels of the requests at ``positions`` (ids ``ids``), from their ``run_time``."""
        run_time = view.at("run_time", positions)
        if self.promote:  # (else nobody's accumulated time ever restarts: the base stays 0)
            base = self._time_base
            run_time = run_time - base.data[base.rows(ids)]
        return self._bounds.searchsorted(run_time, side="right")


_LEVEL_NUMBERS = np.arange(MAX_LEVELS + 1)
_TOP = MAX_LEVELS  # the deepest level (past every bound): nobody moves down from it
_SIGN_BIT = np.array(63)  # (an arithmetic right shift of an int64 by 63: -1 if it is negative, else 0)
_LONE = np.zeros(1, dtype=np.intp)  # the order of one live request
_LONE.flags.writeable = False
_NONE = _LONE[:0]
# low bits as 0-d operands (numpy converts a Python int operand on every call)
_MASKS = [np.array((1 << shift) - 1) for shift in range(64)]


def _split_segments(segs: list, k: int) -> tuple[list, list]:
    """An order's ``[level, requests]`` segments split at its first ``k`` requests: those of the head, the rest's."""
    head, rest = [], []
    for level, c in segs:
        if not k:
            rest.append([level, c])
        elif c <= k:
            head.append([level, c])
            k -= c
        else:
            head.append([level, k])
            rest.append([level, c - k])
            k = 0
    return head, rest


def _by_level(packed: np.ndarray, shift: int) -> list:
    """``[level, positions]`` per level present among ``packed``, ascending ``level << shift | position`` keys."""
    pieces = []
    b = 0
    positions = packed & _MASKS[shift]
    for level, c in enumerate(_level_counts(packed, shift)):
        if c:
            pieces.append([level, positions[b:b + c]])
            b += c
    return pieces


def _first(piece: list) -> int:
    return piece[0]


def _level_counts(packed: np.ndarray, shift: int) -> list[int]:
    """Requests per level (0, 1, ...) among ``packed``, ascending ``level << shift | position`` keys: from its
    first and last level when they are one or two (the usual batch), else by a binary search of each level's start."""
    k = len(packed)
    if not k:
        return []
    lo = int(packed[0]) >> shift
    hi = int(packed[k - 1]) >> shift
    if lo == hi:
        return [0] * lo + [k]
    if hi == lo + 1:
        c = int(packed.searchsorted(hi << shift))
        return [0] * lo + [c, k - c]
    starts = packed.searchsorted(_LEVEL_NUMBERS[lo + 1:hi + 1] << shift).tolist()
    return [0] * lo + np.diff([0, *starts, k]).tolist()
