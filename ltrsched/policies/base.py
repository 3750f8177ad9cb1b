"""The policy interface: what a scheduling policy sees each step and what it returns.

A policy is pure Python (+ numpy). It never imports the simulator or vLLM, so the same object runs in
``ltrsched.sim`` and inside the vLLM engine adapter (``ltrsched.engine``).

Every scheduling step the host (simulator or engine) builds a :class:`LiveView` of the live requests
(arrived, not finished) and calls :meth:`Policy.rank`. The returned order is the *competition order*:
``ltrsched.policies.batching.form_batch`` takes the longest prefix of it that fits the token budget,
the sequence cap and the KV cache, and preempts from the tail of it under memory pressure.
"""

from __future__ import annotations

import inspect
import weakref
from enum import IntEnum
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from ltrsched.policies.fastops import count_nonzero


#: A class's constructor parameter names after ``self``, by class, with the ``__init__`` they were read from (weak keys:
#: a plugin class is not kept; a replaced ``__init__`` is read again). ``inspect.signature`` on each
#: :meth:`Policy.parameters` call was a second of a 10,000-policy sweep's checks.
_INIT_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def init_parameter_names(cls: type) -> tuple[str, ...]:
    """The names of ``cls.__init__``'s parameters after ``self``, read once per class and ``__init__``."""
    init = cls.__init__
    cached = _INIT_NAMES.get(cls)
    if cached is not None and cached[0] is init:
        return cached[1]
    names = tuple(inspect.signature(init).parameters)[1:]
    _INIT_NAMES[cls] = (init, names)
    return names


class RequestState(IntEnum):
    """Where a live request is, as seen at the start of a step."""

    WAITING = 0  # no KV on the GPU (new, or preempted by recompute)
    RUNNING = 1  # ran in the previous step; its KV is on the GPU
    PAUSED = 2  # KV kept on the GPU but left out of the previous step's batch
    SWAPPED = 3  # KV moved to host memory (preempted by swap)


#: Columns every LiveView holds (one entry per live request). Units in brackets.
LIVE_COLUMNS: dict[str, str] = {
    "request_id": "int64: stable id of the request (workload row id)",
    "arrival_time": "float64 [s]: when the request arrived",
    "prompt_tokens": "int64 [tokens]: prompt length",
    "output_tokens": "int64 [tokens]: true output length (oracle policies only!)",
    "generated_tokens": "int64 [tokens]: output tokens produced so far",
    "computed_tokens": "int64 [tokens]: tokens whose KV is computed (prompt + output)",
    "state": "int8: RequestState",
    "idle_steps": "int64 [steps]: consecutive steps left out of the batch (0 if it ran last step)",
    "run_time": "float64 [s]: sum of the durations of the steps it ran in",
    "score": "float64: predictor score, higher = shorter expected output (NaN if none)",
    "po_estimate": "float64 [tokens]: the model's own output-length estimate (NaN if none)",
    "predicted_length": "float64 [tokens]: a predicted output length, e.g. a class bucket (NaN if none)",
}


class LiveView:
    """Public state of the live requests at one scheduling step.

    Columns (see :data:`LIVE_COLUMNS`) are numpy arrays aligned with each other, one entry per live
    request, in no particular order. ``view.score`` etc. index the host's arrays lazily, so a policy
    pays only for the columns it reads.

    Args:
        columns: column name -> array over *all* requests the host tracks, or a function mapping an
            index array to the column's values there (for derived columns).
        index: positions of the live requests in those arrays (None: all of them).
        now: simulated or wall time of the step [s].
        step: index of the scheduling step (0, 1, ...).
        arrival_ordered: the host vouches that the live requests are listed by arrival time, ties by
            request id, so that :meth:`order_by` need not sort by them (False: nothing is assumed).
    """

    __slots__ = ("_columns", "_index", "_cache", "now", "step", "arrival_ordered", "_ranked", "_vouched")

    def __init__(self, columns: Mapping[str, np.ndarray], index: np.ndarray | None, now: float, step: int,
                 arrival_ordered: bool = False):
        self._columns = columns
        self._index = index
        self._cache: dict[str, np.ndarray] = {}
        self.now = float(now)
        self.step = int(step)
        self.arrival_ordered = arrival_ordered
        #: the last order :meth:`order_by` returned, if it has one position per live request (a permutation by
        #: construction, read-only): hosts accept it without checking its values (see ``order_check``)
        self._ranked: np.ndarray | None = None
        #: the last order the library's own code vouched for (``order_check.vouched``): a permutation whoever returns it
        self._vouched: np.ndarray | None = None

    def order_by(self, *keys: np.ndarray) -> np.ndarray:
        """Positions sorted by ``keys`` ascending (the first most significant), ties by arrival time, then
        by request id: the usual competition order. ``view.order_by()`` is first come, first served.

        Always ``order_by(*keys, view.arrival_time, view.request_id)``. When the host lists requests by
        arrival (``arrival_ordered``), ties keep their positions, so only ``keys`` are sorted (stably),
        without reading or checking the arrival and id columns.

        The result is read-only (copy it to change it): an unchanged order from here is a permutation by
        construction, which the host need not check position by position.
        """
        n = len(self)
        if n < 2:
            order = np.zeros(n, dtype=np.intp)
        elif not self.arrival_ordered:
            order = order_by(*keys, self.arrival_time, self.request_id)
        elif not keys:
            order = np.arange(n)
        elif len(keys) == 1:
            order = _stable_argsort(np.asarray(keys[0]))
        else:
            order = np.lexsort(keys[::-1])
        if order.ndim == 1 and len(order) == n:  # (keys of another length give another length)
            order.setflags(write=False)
            self._ranked = order
        return order

    def __len__(self) -> int:
        if self._index is None:
            return len(next(iter(self._columns.values())))
        return len(self._index)

    def column(self, name: str) -> np.ndarray:
        """The named column for the live requests (read-only: the view keeps it for every policy that ranks
        this view, e.g. a starvation-prevention wrapper after the policy it wraps, so a policy that wrote into
        it would change what they see)."""
        arr = self._cache.get(name)
        if arr is None:
            try:
                full = self._columns[name]
            except KeyError:
                raise AttributeError(f"LiveView has no column {name!r}; columns: {sorted(self._columns)}") from None
            if callable(full):
                arr = full(self._index)
            elif self._index is not None:
                arr = full[self._index]  # (a fresh array)
                arr.flags.writeable = False
            else:
                arr = full
            if arr.flags.writeable:  # possibly the host's own array: a read-only view of it
                arr = arr.view()
                arr.flags.writeable = False
            self._cache[name] = arr
        return arr

    def at(self, name: str, positions: np.ndarray) -> np.ndarray:
        """The named column at ``positions`` only: ``view.column(name)[positions]`` without gathering or
        computing the column for every live request (a policy that updates a few requests per step reads only
        theirs). Nothing is cached: a column read whole later is gathered then."""
        arr = self._cache.get(name)
        if arr is not None:
            return arr[positions]
        full = self._columns.get(name)
        if full is None:
            return self.column(name)[positions]  # (the error naming the columns there are)
        index = positions if self._index is None else self._index[positions]
        if callable(full):  # (a column function's uncached ``at``, if it has one: its cache keeps the live set's)
            return getattr(full, "at", full)(index)
        return full[index]

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()``, called once per view: what one policy derives from the view is there for the others that
        rank the same view (a wrapper and the policy it wraps). ``key`` names it; it starts with ``#`` (no
        column name does)."""
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = make()
        return value

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.column(name)

    @property
    def remaining_tokens(self) -> np.ndarray:
        """True output tokens still to generate (oracle information)."""
        return self.column("output_tokens") - self.column("generated_tokens")


def _column_property(name: str, doc: str) -> property:
    def get(view: LiveView) -> np.ndarray:
        arr = view._cache.get(name)
        return view.column(name) if arr is None else arr

    return property(get, doc=doc)


# The standard columns as properties: a plain attribute lookup that fails first and falls back to
# __getattr__ costs more than the rest of a cached column read.
for _name, _doc in LIVE_COLUMNS.items():
    setattr(LiveView, _name, _column_property(_name, _doc))
del _name, _doc


def order_by(*keys: np.ndarray) -> np.ndarray:
    """Positions sorted by ``keys`` ascending, the *first* key most significant (stable).

    ``order_by(bucket, arrival)`` sorts by bucket, ties by arrival. Unlike ``np.lexsort`` the primary key
    comes first. The result is always ``np.lexsort(keys[::-1])``. When the tie-breaking keys are already
    ascending along the positions (a host that lists requests by arrival, ties broken by arrival and id),
    only the primary key is sorted (one stable sort instead of one per key), with numpy's radix sort when it
    is a small non-negative integer (e.g. SRTF's remaining tokens): several times faster than lexsort.
    """
    n = len(keys[0])
    if n < 2:  # nothing to sort (a burst's last request runs alone for thousands of steps)
        return np.zeros(n, dtype=np.intp)
    if n >= _SHORTCUT_MIN and all(_ascending(key) for key in keys[1:]):
        return _stable_argsort(np.asarray(keys[0]))
    return np.lexsort(keys[::-1])


_SHORTCUT_MIN = 256  # below this lexsort is as fast as the checks


def _ascending(key: np.ndarray) -> bool:
    """Whether a numeric ``key`` never decreases along the positions (False with any NaN)."""
    key = np.asarray(key)
    return key.dtype.kind in "biuf" and count_nonzero(key[1:] >= key[:-1]) == len(key) - 1


def _stable_argsort(key: np.ndarray) -> np.ndarray:
    """``np.lexsort((key,))``: positions by ``key``, ties in position order; numpy's radix sort for a small
    non-negative integer key."""
    if key.dtype.kind not in "biuf":
        return np.lexsort((key,))
    small = _as_uint16(key)
    return (key if small is None else small).argsort(kind="stable")


def _as_uint16(key: np.ndarray) -> np.ndarray | None:
    """An integer ``key`` with all values in [0, 2**16) as uint16 (numpy radix-sorts 16-bit integers),
    else None."""
    # The bitwise OR of all values is in [0, 2**16) exactly when every value is: a negative value makes it
    # negative (two's complement), and a value >= 2**16 sets a bit above 15. One reduction, ~0.6 us less
    # than shifting every value and counting.
    if key.dtype.kind not in "iu" or int(_bitwise_or_all(key)) >> 16:
        return None
    return key.astype(np.uint16, copy=False)


_bitwise_or_all = np.bitwise_or.reduce


class Policy:
    """Base class of scheduling policies.

    Subclasses implement :meth:`rank`. Optional hooks receive the host's events. A policy keeps any
    per-request memory keyed by ``request_id``; it must not assume ids are dense or small.

    Class attributes:
        name: registry name (spec strings are ``name`` or ``name:key=value,...``).
        needs: LiveView columns that must hold real values (not NaN) for the policy to work, e.g.
            ``("score",)``. Hosts check this before a run and say which command produces them.
        extra_output_tokens: tokens the policy adds to every request's output (PO's self-estimate).
    """

    name: ClassVar[str] = "policy"
    needs: ClassVar[tuple[str, ...]] = ()
    extra_output_tokens: ClassVar[int] = 0

    def rank(self, view: LiveView) -> np.ndarray:
        """Return the competition order: a permutation of ``range(len(view))`` (a 1-D integer array), best
        first. Hosts check it (:func:`ltrsched.policies.order_check.check_order`) and stop the run otherwise."""
        raise NotImplementedError

    def prepare(self, requests: Mapping[str, np.ndarray]) -> None:
        """Called once before a run with the whole workload (columns ``request_id``, ``arrival_time``,
        ``prompt_tokens``, ``output_tokens`` and any of ``score``/``po_estimate``/``predicted_length``),
        e.g. to derive scores. Must reset any state from an earlier run."""

    def on_arrival(self, request_ids: np.ndarray, now: float) -> None:
        """Requests ``request_ids`` arrived at ``now`` [s] (called before the step that first sees them).

        Hosts announce every request here and every departure in :meth:`on_finish`; a policy that keeps state
        from step to step may rely on that (and re-derives it from a view that does not add up)."""

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        """A step ran. ``scheduled`` is a bool mask aligned with ``view`` (the view ``rank`` got) of the
        requests in the batch; ``step_time`` is the step's duration [s].

        Optional twin: a policy may also define ``on_step_ranks(view, order, ranks, step_time)``, the same event
        with the batch named by its ranks in ``order`` (what :meth:`rank` returned for ``view``): ``order[:ranks]``
        for an int, else ``order[ranks]``. The simulator calls it instead of this hook where a policy has it (no
        mask over every live request to build or read: :class:`ltrsched.policies.mlfq.MLFQ`), and so does the engine
        adapter (``ltrsched.engine.scheduler``); a host without the twin calls this one, so a policy defining the twin
        must give both the same effect.

        Optional for decode runs (the simulator's ``ltrsched.sim.decode_run``, never the engine adapter): a built-in
        policy that counts steps in ``rank`` or ``on_step`` (starvation prevention, MLFQ) may define
        ``decode_run_limit(step, members, live)``, the most steps a run from ``step`` (just ranked) with the order's first ``members`` requests of ``live`` may
        take, ranking none of the steps after its first and calling no ``on_step``, before the order could change, and
        ``decode_run_taken(step, member_ids, steps)``, which advances its state as those ranks and ``on_step`` calls
        would have (``member_ids``: the batch's request ids). A policy without them
        takes runs only where it keeps nothing a skipped rank would change (``decode_run.POLICIES``)."""

    def on_finish(self, request_ids: np.ndarray, now: float) -> None:
        """Requests ``request_ids`` finished (or were aborted) at ``now`` [s] and left the live set."""

    def parameters(self) -> dict[str, Any]:
        """Constructor parameters and their current values (a policy stores each as an attribute)."""
        return {n: getattr(self, n) for n in init_parameter_names(type(self)) if hasattr(self, n)}

    def describe(self) -> dict[str, Any]:
        """Name and parameters, for result files."""
        return {"policy": self.name, **self.parameters()}

    def spec(self) -> str:
        """A spec string that recreates this policy."""
        params = {k: v for k, v in self.parameters().items() if v is not None}
        if not params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in params.items())
