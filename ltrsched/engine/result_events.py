"""The live table's result-only columns, updated in bulk (pure numpy, no vLLM).

Some per-request columns are results only: no policy reads them (they are not in the policy's view) and
nothing in a step depends on them: when a request was first scheduled, its first and last token times, the
longest gap between two of its tokens, and how often it was preempted. Updating them every step costs the
adapter about a dozen numpy calls on batch-sized arrays per step, each several microseconds inside the engine
(BENCHMARKS.md, issue 13). Instead each step appends the arrays it has anyway (the batch, who sampled) to a
log, and the log is applied to the columns in a few calls over many steps at once: when it grows past
:data:`FLUSH_ENTRIES` entries, and before anyone reads one of the columns (:class:`LiveTable` flushes on
every read of them). The columns come out exactly as the per-step updates made them: the same float
subtractions, and maxima and minima, which do not depend on the order they are taken in.
"""

from __future__ import annotations

import numpy as np

#: The columns kept here (the live table reads them only after a flush).
DEFERRED = ("first_scheduled_time", "first_token_time", "last_token_time", "max_token_gap", "num_preemptions")

#: Logged slots (summed over the steps) that trigger a flush: ~65 steps of 250 members; a flush then costs ~3 us
#: per step logged (the per-step updates it replaces ~25 us inside the engine).
FLUSH_ENTRIES = 1 << 14

class ResultEvents:
    """What happened to which slots when, for the result-only columns, until :meth:`flush` writes it to them.

    Arrays handed in are kept by reference until the next flush: the caller must not change them later (the
    adapter hands in each step's fresh batch arrays)."""

    def __init__(self) -> None:
        self._tokens: list[tuple[float, np.ndarray, np.ndarray | None]] = []
        self._scheduled: list[tuple[float, np.ndarray]] = []
        self._preempted: list[np.ndarray] = []
        self._entries = 0

    def __bool__(self) -> bool:
        return bool(self._entries)

    def tokens(self, now: float, slots: np.ndarray, sampled: np.ndarray | list | None) -> bool:
        """The members ``slots`` of a step that ended at ``now`` [s] produced ``sampled`` tokens each (an array
        of 0 or 1, bool or int, aligned; None: one each; a list: one each but the members at these positions).
        True when the log is due for a flush."""
        self._tokens.append((now, slots, sampled))
        self._entries += len(slots)
        return self._entries >= FLUSH_ENTRIES

    def first_scheduled(self, now: float, slots: np.ndarray) -> None:
        """``slots`` were scheduled at ``now`` [s] holding no KV (the first time, or again after a preemption)."""
        self._scheduled.append((now, slots))
        self._entries += len(slots)

    def preempted(self, slots: np.ndarray) -> None:
        """``slots`` were preempted (once each)."""
        self._preempted.append(slots)
        self._entries += len(slots)

    def flush(self, cols: dict[str, np.ndarray]) -> None:
        """Apply everything logged to the columns ``cols`` (the live table's) and empty the log."""
        if self._scheduled:
            slots, times = _concat_times(self._scheduled)
            np.fmin.at(cols["first_scheduled_time"], slots, times)  # (fmin: NaN until the first)
            self._scheduled = []
        if self._preempted:
            np.add.at(cols["num_preemptions"], np.concatenate(self._preempted), 1)
            self._preempted = []
        if self._tokens:
            self._flush_tokens(cols)
            self._tokens = []
        self._entries = 0

    def _flush_tokens(self, cols: dict[str, np.ndarray]) -> None:
        """Each slot's token times, in step order: the first, the last, and the longest gap between two, the
        one before the log included (the per-step update's ``fmax(gap, now - last)``: NaN without one)."""
        entries = self._tokens
        sizes = np.fromiter((len(s) for _, s, _ in entries), dtype=np.int64, count=len(entries))
        slot = np.concatenate([s for _, s, _ in entries])
        t = np.repeat(np.array([now for now, _, _ in entries], dtype=np.float64), sizes)
        if any(sampled is not None for _, _, sampled in entries):
            got = np.ones(len(slot), dtype=bool)  # who made a token: all, but the few listed ones
            missed = []
            at = 0
            for (_, s, sampled), size in zip(entries, sizes.tolist()):
                if type(sampled) is list:
                    missed += [at + j for j in sampled]
                elif sampled is not None:
                    got[at: at + size] = sampled.astype(bool, copy=False)
                at += size
            got[missed] = False
            slot, t = slot[got], t[got]
        if not len(slot):
            return
        order = _stable_order(slot)  # by slot, each slot's tokens in step order
        slot, t = slot[order], t[order]
        start = np.empty(len(slot), dtype=bool)
        start[0] = True
        np.not_equal(slot[1:], slot[:-1], out=start[1:])
        starts = start.nonzero()[0]
        who = slot[starts]
        last = cols["last_token_time"]
        before = np.empty_like(t)
        before[1:] = t[:-1]
        before[starts] = last[who]  # each slot's last token before the log (NaN: none)
        gaps = np.fmax.reduceat(t - before, starts)  # (fmax ignores NaN)
        gap = cols["max_token_gap"]
        gap[who] = np.fmax(gap[who], gaps)
        first = cols["first_token_time"]
        first[who] = np.fmin(first[who], t[starts])
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:] - 1
        ends[-1] = len(slot) - 1
        last[who] = t[ends]


def _stable_order(slot: np.ndarray) -> np.ndarray:
    """``slot.argsort(kind="stable")`` for non-negative slots, by 16-bit radix sorts (numpy's radix sort takes
    16-bit integers: linear time; a stable sort of int64 keys is a merge sort, 20x slower on a batch log whose
    batches are not in slot order)."""
    if int(slot.max()) < 1 << 16:
        return slot.astype(np.uint16).argsort(kind="stable")
    if int(slot.max()) < 1 << 32:  # least significant half first, then the other: stable by the whole slot
        low = (slot & 0xFFFF).astype(np.uint16).argsort(kind="stable")
        high = (slot[low] >> 16).astype(np.uint16).argsort(kind="stable")
        return low[high]
    return slot.argsort(kind="stable")


def _concat_times(entries: list[tuple[float, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The slots of ``(time, slots)`` entries, concatenated, and each one's time."""
    sizes = np.fromiter((len(s) for _, s in entries), dtype=np.int64, count=len(entries))
    slots = np.concatenate([s for _, s in entries])
    return slots, np.repeat(np.array([now for now, _ in entries], dtype=np.float64), sizes)
