"""Per-request simulator state as a struct of numpy arrays (one entry per request of the workload)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ltrsched.policies.base import RequestState

#: Simulator-only states beyond :class:`RequestState` (never shown to a policy).
NOT_ARRIVED = -1
FINISHED = 4


@dataclass
class RequestTable:
    """Arrays over all requests, indexed by workload row (0..N-1).

    Token counts are in tokens, times in seconds (NaN until the event happens).
    ``pending_tokens`` (= prompt + generated - computed: what the request would compute if scheduled) and
    ``resident`` (KV on the GPU) are kept up to date incrementally for the batch former.
    ``last_run_step`` is the last step a request ran in (its admission step - 1 before it first runs), so
    its idle steps at step s are ``s - 1 - last_run_step``.
    ``output_tokens`` is what the replica serves (the workload's length plus any policy overhead such
    as PO's self-estimate); ``requested_output_tokens`` is the workload's own length.
    """

    request_id: np.ndarray
    arrival_time: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    requested_output_tokens: np.ndarray
    score: np.ndarray
    po_estimate: np.ndarray
    predicted_length: np.ndarray
    generated_tokens: np.ndarray
    computed_tokens: np.ndarray
    pending_tokens: np.ndarray
    resident: np.ndarray
    state: np.ndarray
    last_run_step: np.ndarray
    max_idle_steps: np.ndarray
    run_time: np.ndarray
    num_preemptions: np.ndarray
    first_scheduled_time: np.ndarray
    first_token_time: np.ndarray
    last_token_time: np.ndarray
    max_token_gap: np.ndarray
    finish_time: np.ndarray

    @classmethod
    def from_frame(cls, df: pl.DataFrame, extra_output_tokens: int = 0) -> "RequestTable":
        n = df.height

        def opt(col: str) -> np.ndarray:
            if col in df.columns:
                return df[col].cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(np.float64, copy=True)
            return np.full(n, np.nan)

        out = df["output_tokens"].to_numpy().astype(np.int64)
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        zeros = lambda: np.zeros(n, dtype=np.int64)  # noqa: E731
        return cls(
            request_id=df["request_id"].to_numpy().astype(np.int64),
            arrival_time=df["arrival_time"].to_numpy().astype(np.float64),
            prompt_tokens=df["prompt_tokens"].to_numpy().astype(np.int64),
            output_tokens=out + int(extra_output_tokens),
            requested_output_tokens=out,
            score=opt("score"),
            po_estimate=opt("po_estimate"),
            predicted_length=opt("predicted_length"),
            generated_tokens=zeros(),
            computed_tokens=zeros(),
            pending_tokens=df["prompt_tokens"].to_numpy().astype(np.int64),
            resident=np.zeros(n, dtype=bool),
            state=np.full(n, NOT_ARRIVED, dtype=np.int8),
            last_run_step=zeros(),
            max_idle_steps=zeros(),
            run_time=np.zeros(n),
            num_preemptions=zeros(),
            first_scheduled_time=nan(),
            first_token_time=nan(),
            last_token_time=nan(),
            max_token_gap=np.zeros(n),
            finish_time=nan(),
        )

    @classmethod
    def allocate(cls, n: int) -> "RequestTable":
        """Room for ``n`` requests, none filled in (``arrival_time`` +inf), run state as :meth:`from_frame`
        starts it. A cluster replica's table: the router fills its rows in arrival order (:data:`STATIC`)."""
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        zeros = lambda: np.zeros(n, dtype=np.int64)  # noqa: E731
        return cls(
            request_id=zeros(), arrival_time=np.full(n, np.inf), prompt_tokens=zeros(), output_tokens=zeros(),
            requested_output_tokens=zeros(), score=nan(), po_estimate=nan(), predicted_length=nan(),
            generated_tokens=zeros(), computed_tokens=zeros(), pending_tokens=zeros(),
            resident=np.zeros(n, dtype=bool), state=np.full(n, NOT_ARRIVED, dtype=np.int8), last_run_step=zeros(),
            max_idle_steps=zeros(), run_time=np.zeros(n), num_preemptions=zeros(), first_scheduled_time=nan(),
            first_token_time=nan(), last_token_time=nan(), max_token_gap=np.zeros(n), finish_time=nan(),
        )

    def resize(self, n: int) -> None:
        """Room for ``n`` requests (at least as many as now): every array is replaced by a longer one, its
        rows kept and the new ones as :meth:`allocate` makes them (a cluster replica's table grows as the
        router sends it requests). Arrays taken from the table before are stale afterwards."""
        fresh = RequestTable.allocate(n)
        for name in self.__dataclass_fields__:
            old, new = getattr(self, name), getattr(fresh, name)
            new[: len(old)] = old
            setattr(self, name, new)

    def live_columns(self, idle_steps) -> dict[str, np.ndarray]:
        """The arrays a policy may read, under their :data:`ltrsched.policies.LIVE_COLUMNS` names.

        ``idle_steps`` is a function index -> idle steps (derived from ``last_run_step`` and the step).
        Columns fixed for a run are gathered once per live set (see :class:`LiveGather`)."""
        return {
            "request_id": LiveGather(self.request_id),
            "arrival_time": LiveGather(self.arrival_time),
            "prompt_tokens": LiveGather(self.prompt_tokens),
            "output_tokens": LiveGather(self.output_tokens),
            "generated_tokens": self.generated_tokens,
            "computed_tokens": self.computed_tokens,
            "state": self.state,
            "idle_steps": idle_steps,
            "run_time": self.run_time,
            "score": LiveGather(self.score),
            "po_estimate": LiveGather(self.po_estimate),
            "predicted_length": LiveGather(self.predicted_length),
        }

    def workload_columns(self) -> dict[str, np.ndarray]:
        """What :meth:`Policy.prepare` (and a router's) receives: read-only views of the table's columns, so that a
        plugin writing into them fails there instead of changing the workload the run serves (its lengths)."""
        columns = {
            "request_id": self.request_id,
            "arrival_time": self.arrival_time,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "score": self.score,
            "po_estimate": self.po_estimate,
            "predicted_length": self.predicted_length,
        }
        for name, values in columns.items():
            columns[name] = view = values.view()
            view.flags.writeable = False
        return columns


#: Fields fixed before a request arrives (its description); the others are the run's state.
STATIC = ("request_id", "arrival_time", "prompt_tokens", "output_tokens", "requested_output_tokens", "score",
          "po_estimate", "predicted_length", "pending_tokens")
#: Fields the run changes.
DYNAMIC = ("generated_tokens", "computed_tokens", "pending_tokens", "resident", "state", "last_run_step",
           "max_idle_steps", "run_time", "num_preemptions", "first_scheduled_time", "first_token_time",
           "last_token_time", "max_token_gap", "finish_time")

RESIDENT_STATES = (int(RequestState.RUNNING), int(RequestState.PAUSED))


class LiveGather:
    """``values[index]`` for a column that does not change during a run (a LiveView column function).

    The live set changes only on arrivals and finishes, and the replica then makes a new index array, so
    the gather is redone only when it gets a different index object; steps in between share the result.
    The result is read-only, so a policy cannot change what later steps see.
    """

    __slots__ = ("_index", "_out", "values")

    def __init__(self, values: np.ndarray):
        self.values = values
        self._index: np.ndarray | None = None
        self._out: np.ndarray | None = None

    def __call__(self, index: np.ndarray | None) -> np.ndarray:
        if index is None:
            return self.values
        if index is not self._index:
            out = self.values[index]
            out.flags.writeable = False
            self._index, self._out = index, out
        return self._out

    def at(self, index: np.ndarray) -> np.ndarray:
        """``values[index]`` for a few positions (``LiveView.at``), not cached: the live set's gather stays cached
        for the next read of the whole column (it was replaced by each such call, and gathered again)."""
        return self.values[index]
