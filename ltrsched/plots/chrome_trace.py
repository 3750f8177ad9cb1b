"""A run's steps as a Chrome trace-event JSON file (loads in Perfetto, ui.perfetto.dev, and chrome://tracing).

One process per replica ("replica k"); its "steps" thread has one complete slice (``"ph": "X"``) per step, named
by what the step computed (:func:`step_name`: ``prefill``, ``decode`` or ``prefill+decode``), and counter tracks
(``"ph": "C"``) follow the batch (sequences, batched and prefill tokens), the KV cache (GPU and host blocks in use),
preemptions per step and live requests. Timestamps are simulated time in
microseconds (the trace-event format's unit). Counters drop to zero while a replica is idle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ltrsched import atomic, strict_json
from ltrsched.errors import UserError
from ltrsched.plots.runs import MAX_PLOTTED_S

US = 1e6  # microseconds per second

#: counter track -> {series name: step-trace column}; sampled at the step's start
START_COUNTERS = {
    "batch size [seqs]": {"seqs": "num_seqs", "decode seqs": "num_decode_seqs"},
    "batched tokens": {"total": "num_batched_tokens", "prefill": "num_prefill_tokens"},
    "preemptions": {"evicted": "num_evicted"},
    "live requests": {"live": "num_live"},
}
#: sampled at the step's end (the state it leaves)
END_COUNTERS = {"KV blocks in use": {"gpu": "blocks_in_use", "host": "host_blocks_in_use"}}
#: step-trace columns a trace needs
REQUIRED = ("start", "duration", "num_seqs", "num_decode_seqs", "num_batched_tokens", "num_prefill_tokens",
            "num_evicted", "num_live", "blocks_in_use", "host_blocks_in_use", "num_finished")


def chrome_trace(steps: pl.DataFrame, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace-event document of a step trace (a ``replica`` column gives one process per replica)."""
    missing = [c for c in REQUIRED if c not in steps.columns]
    if missing:
        raise UserError(f"the step trace lacks {', '.join(missing)}; record it with simulate --record-steps")
    _check_numbers(steps)
    if meta is not None and not isinstance(meta, dict):  # (an AttributeError traceback)
        raise UserError(f"the run's 'meta' is {type(meta).__name__}, not a table: a damaged summary.json")
    meta = meta or {}
    if "replica" not in steps.columns:
        steps = steps.with_columns(replica=pl.lit(0, dtype=pl.Int64))
    events: list[dict[str, Any]] = []
    for (k,), part in steps.sort("replica", "start", maintain_order=True).group_by("replica", maintain_order=True):
        pid = int(k)
        events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": f"replica {pid}"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": "steps"}})
        events.extend(_replica_events(pid, part))
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {k: str(v) for k, v in meta.items() if k in ("workload", "policy", "profile", "router", "replicas")},
    }


#: One more than the largest replica number a trace takes (its process id, a 32-bit integer in trace viewers).
PID_LIMIT = 2**31


def _check_numbers(steps: pl.DataFrame) -> None:
    """Raise :class:`UserError` where a column the trace reads is not numbers in every step (a damaged or foreign
    steps.parquet): text, a missing value, a value that is not finite (a counter written as ``null``, a replica a
    ``ValueError`` traceback), a negative one, a start or duration [s] above :data:`MAX_PLOTTED_S`, a replica that
    is no whole number below :data:`PID_LIMIT` (0.5 and 0 were drawn as one replica), or no step at all (an empty
    trace, exit 0)."""
    if not steps.height:
        raise UserError("the step trace holds no steps: nothing to trace")
    for c in (*REQUIRED, *(["replica"] if "replica" in steps.columns else [])):
        column = steps[c]
        if not column.dtype.is_numeric():
            raise UserError(f"the step trace's column {c!r} holds {column.dtype}, not numbers")
        if column.null_count():
            raise UserError(f"the step trace's column {c!r} has {column.null_count()} missing value(s)")
        values = column.cast(pl.Float64)
        if not values.is_finite().all():
            raise UserError(f"the step trace's column {c!r} has values that are not finite (NaN or infinite)")
        if c in ("start", "duration"):  # 1.7e308 s is an infinite number of microseconds: "ts": null, exit 0
            bad = column.filter((column < 0) | (column > MAX_PLOTTED_S))
            if bad.len():
                raise UserError(f"the step trace's column {c!r} holds {bad.len()} value(s) outside [0, "
                                f"{MAX_PLOTTED_S:.0e}] s (first: {bad[0]:g})")
        elif c == "replica":
            bad = column.filter((values < 0) | (values >= PID_LIMIT) | (values != values.floor()))
            if bad.len():
                raise UserError(f"the step trace's column 'replica' holds {bad.len()} value(s) that are no replica "
                                f"number, a whole number in [0, {PID_LIMIT:,}) (first: {bad[0]:g})")
        elif (values < 0).any():
            bad = column.filter(values < 0)
            raise UserError(f"the step trace's column {c!r} holds {bad.len()} negative value(s) (first: {bad[0]:g}), "
                            "no count")


def step_name(prefill_tokens: int, decode_seqs: int) -> str:
    """A step's slice name: ``prefill`` where it computed prompt tokens [tokens] only (every step of a workload of
    one-token outputs, whose one token comes from the prefill), ``decode`` where only sequences' next tokens
    (``decode_seqs`` [seqs]), ``prefill+decode`` where both. (Every step with prompt tokens was named
    ``prefill+decode``, so a trace of one-token outputs showed decode work that no step did.)"""
    if prefill_tokens and decode_seqs:
        return "prefill+decode"
    return "prefill" if prefill_tokens else "decode"


def _replica_events(pid: int, steps: pl.DataFrame) -> list[dict[str, Any]]:
    cols = {c: steps[c].to_list() for c in REQUIRED}
    events: list[dict[str, Any]] = []
    n = steps.height
    for j in range(n):
        start, dur = cols["start"][j], cols["duration"][j]
        ts, end = start * US, (start + dur) * US
        prefill = cols["num_prefill_tokens"][j]
        events.append({
            "name": step_name(prefill, cols["num_decode_seqs"][j]), "cat": "step", "ph": "X", "pid": pid, "tid": 0,
            "ts": ts, "dur": dur * US,
            "args": {"step": j, "seqs": cols["num_seqs"][j], "batched_tokens": cols["num_batched_tokens"][j],
                     "prefill_tokens": prefill, "evicted": cols["num_evicted"][j], "finished": cols["num_finished"][j]},
        })
        for name, series in START_COUNTERS.items():
            events.append({"name": name, "ph": "C", "pid": pid, "ts": ts,
                           "args": {s: cols[c][j] for s, c in series.items()}})
        for name, series in END_COUNTERS.items():
            events.append({"name": name, "ph": "C", "pid": pid, "ts": end,
                           "args": {s: cols[c][j] for s, c in series.items()}})
        idle = j + 1 == n or cols["start"][j + 1] > start + dur  # no step starts where this one ends
        if idle:
            for name, series in START_COUNTERS.items():
                events.append({"name": name, "ph": "C", "pid": pid, "ts": end, "args": {s: 0 for s in series}})
    return events


def write_chrome_trace(result, path: str | Path) -> Path:
    """Write ``result``'s step trace (a :class:`ltrsched.results.RunResult` with steps) as trace-event JSON,
    atomically and durably (:mod:`ltrsched.atomic`)."""
    if result.steps is None:
        raise UserError("the run has no step trace; simulate with --record-steps (or --trace)")
    doc = chrome_trace(result.steps, result.meta)
    return atomic.write_text(path, strict_json.dumps(doc, separators=(",", ":")))
