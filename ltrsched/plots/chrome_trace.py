"""A run's steps as a Chrome trace-event JSON file (loads in Perfetto, ui.perfetto.dev, and chrome://tracing).

One process per replica ("replica k"); its "steps" thread has one complete slice (``"ph": "X"``) per step, named
by what the step computed (:func:`step_name`: ``prefill``, ``decode`` or ``prefill+decode``), and counter tracks
(``"ph": "C"``) follow the batch (sequences, batched and prefill tokens), the KV cache (GPU and host blocks in use),
preemptions per step and live requests. Timestamps are simulated time in
microseconds (the trace-event format's unit). Counters drop to zero while a replica is idle.

A trace holds at most :data:`MAX_TRACE_STEPS` steps (about 680 bytes of JSON each): a long run's whole trace (1,000
requests, one at a time: 264k steps, 175 MB) is more than the viewers load. A longer run is traced a window at a time
(:func:`steps_in_window`, ``plot trace --start --end``). The file is written a piece at a time as its events are made
(:func:`trace_chunks`, :func:`ltrsched.atomic.write_chunks`): its text is never all in memory. ``plot trace`` reads a
saved run's steps.parquet a batch of steps at a time (:func:`trace_file_chunks`): nor are its steps.
"""

from __future__ import annotations

import math
import re
from contextlib import ExitStack, contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import polars as pl

from ltrsched import atomic, strict_json
from ltrsched.errors import UserError
from ltrsched.plots.runs import MAX_PLOTTED_S, polars_source

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


#: Most steps a trace holds. A trace-event JSON file takes about 680 bytes per step (counters included; 660-680
#: measured on simulate runs of 16k-264k steps); chrome://tracing loads at most 256 MB (google/trace-viewer#627) and
#: Perfetto's in-browser UI failed on a JSON trace of 900 MB (google/perfetto#99). 250,000 steps: about 170 MB.
MAX_TRACE_STEPS = 250_000


def check_trace_size(steps: pl.DataFrame) -> None:
    """Raise :class:`UserError` if ``steps`` (every replica's) are more than :data:`MAX_TRACE_STEPS`, naming the span
    of simulated time [s] they cover and a window of it that fits. (The whole trace was written: 264k steps of a
    1,000-request run were 175 MB, built in memory first: 1.8 GB.)"""
    _check_size(steps.lazy(), steps.height)


def _check_size(steps: pl.LazyFrame, count: int) -> None:
    """:func:`check_trace_size` of ``count`` steps (``steps``, whose ``start`` column is read only where they are too
    many: a file's is read then, not held before)."""
    if count <= MAX_TRACE_STEPS:
        return
    starts = steps.select(pl.col("start").sort()).collect()["start"]
    first, last = float(starts[0]), float(starts[-1])
    # (the window [first, fits) holds fewer than MAX_TRACE_STEPS steps; both ends shown rounded down, to the ms)
    fits = float(starts[MAX_TRACE_STEPS - 1])
    raise UserError(f"the step trace holds {count:,} steps ({_ms(first)}-{_ms(last)} s of simulated time), more "
                    f"than the {MAX_TRACE_STEPS:,} a trace holds (about 680 bytes each; trace viewers load a few "
                    f"hundred MB at most): trace a window of it, e.g. `ltrsched plot trace RUN --start {_ms(first)} "
                    f"--end {_ms(fits)}` (RUN: the run's directory, simulate --record-steps --out RUN)")


def _ms(seconds: float) -> str:
    """``seconds`` rounded down to the millisecond, without trailing zeros (``12.5``, ``0``)."""
    return f"{math.floor(seconds * 1000) / 1000:.3f}".rstrip("0").rstrip(".")


def steps_in_window(steps: pl.DataFrame, start: float | None = None, end: float | None = None) -> pl.DataFrame:
    """The steps that start at or after ``start`` and before ``end`` [s of simulated time] (None: no bound), every
    replica's; a :class:`UserError` if none does."""
    if start is None and end is None:
        return steps
    kept = steps.filter(_in_window(start, end))
    if not kept.height:
        _refuse_empty_window(start, end, steps["start"].min(), steps["start"].max())
    return kept


def _in_window(start: float | None, end: float | None) -> pl.Expr:
    """Whether a step starts in [``start``, ``end``) [s] (None: no bound)."""
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end
    return (pl.col("start") >= lo) & (pl.col("start") < hi)


def _refuse_empty_window(start: float | None, end: float | None, first: float, last: float) -> None:
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end
    raise UserError(f"no step of the run starts in the window [{lo:g}, {hi:g}) s: its steps start at "
                    f"{first:g}-{last:g} s of simulated time")


def chrome_trace(steps: pl.DataFrame, meta: dict[str, Any] | None = None, start: float | None = None,
                 end: float | None = None) -> dict[str, Any]:
    """The trace-event document of a step trace (a ``replica`` column gives one process per replica): the steps
    starting in [``start``, ``end``) [s] (None: from the first, to the last), at most :data:`MAX_TRACE_STEPS`."""
    events, rest = _trace_parts(steps, meta, start, end)
    return {"traceEvents": list(events), **rest}


#: Events whose JSON text :func:`trace_chunks` makes at once (about 100 bytes of text each, 2-3 kB as Python objects
#: while their chunk is made: 10,000 held 10 MB more at peak than 2,000, BENCHMARKS.md "Streamed writes").
EVENTS_PER_CHUNK = 2_000
#: Steps of a replica whose columns are read as Python lists at once (:func:`_replica_events`).
STEPS_PER_SLICE = 2_000


def trace_text(steps: pl.DataFrame, meta: dict[str, Any] | None = None, start: float | None = None,
               end: float | None = None) -> str:
    """:func:`chrome_trace`'s document as compact strict JSON: :func:`trace_chunks` joined."""
    return "".join(trace_chunks(steps, meta, start, end))


def trace_chunks(steps: pl.DataFrame, meta: dict[str, Any] | None = None, start: float | None = None,
                 end: float | None = None) -> Iterator[str]:
    """:func:`chrome_trace`'s document as compact strict JSON, in pieces of :data:`EVENTS_PER_CHUNK` events made as
    they are read, for a writer to write each as it comes: the text of 250,000 steps built whole, then encoded, took
    490-534 MB of memory more than the run (BENCHMARKS.md, "Streamed writes"). Every error (the steps, ``meta``, the
    window) is raised here, before the first piece is made."""
    events, rest = _trace_parts(steps, meta, start, end)
    return _text_chunks(events, rest)


def _text_chunks(events: Iterator[dict[str, Any]], rest: dict[str, Any]) -> Iterator[str]:
    compact = {"separators": (",", ":")}
    yield '{"traceEvents":['
    comma = ""
    # (a list's compact JSON is its items' joined by ",": a chunk's text less its brackets is theirs)
    while chunk := list(islice(events, EVENTS_PER_CHUNK)):
        yield comma + strict_json.dumps(chunk, **compact)[1:-1]
        comma = ","
    yield "]," + strict_json.dumps(rest, **compact)[1:]  # ('{"displayTimeUnit":...}': the document's other keys)


def _trace_parts(steps: pl.DataFrame, meta: dict[str, Any] | None, start: float | None,
                 end: float | None) -> tuple[Iterator[dict[str, Any]], dict[str, Any]]:
    """The trace's events (made as they are read) and its document's other keys, once the steps and ``meta`` are
    checked (every error raised here, before any event is made)."""
    _check_required(steps.columns)
    _check_numbers(steps)
    other = _other_data(meta)
    if "replica" not in steps.columns:  # (numbered before the window: a step's number is its place in the run)
        steps = steps.with_columns(replica=pl.lit(0, dtype=pl.Int64))
    # (the columns a trace reads only: the copies below are of them)
    steps = steps.select(*REQUIRED, "replica").sort("replica", "start", maintain_order=True).with_columns(
        step=pl.int_range(pl.len()).over("replica"), next_start=pl.col("start").shift(-1).over("replica"))
    total = steps.height
    steps = steps_in_window(steps, start, end)
    check_trace_size(steps)
    return _events(steps), _rest(other, start, end, total)


def _check_required(columns: Any) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise UserError(f"the step trace lacks {', '.join(missing)}; record it with simulate --record-steps")


def _other_data(meta: dict[str, Any] | None) -> dict[str, str]:
    """The run's names a trace's ``otherData`` holds, from its ``meta`` (a :class:`UserError` if that is no table)."""
    if meta is not None and not isinstance(meta, dict):  # (an AttributeError traceback)
        raise UserError(f"the run's 'meta' is {type(meta).__name__}, not a table: a damaged summary.json")
    # (a lone surrogate, a name's byte that is no UTF-8, as its escape's text: "\\udcff" in the JSON was no character)
    return {k: str(v).encode("utf-8", "backslashreplace").decode() for k, v in (meta or {}).items()
            if k in ("workload", "policy", "profile", "router", "replicas")}


def _rest(other: dict[str, str], start: float | None, end: float | None, total: int) -> dict[str, Any]:
    """The document's keys after its events: ``otherData`` names the window of the run's ``total`` steps, if any."""
    if start is not None or end is not None:
        other["window_s"] = (f"[{start if start is not None else 0:g}, {end if end is not None else 'end'}) "
                             f"of {total:,} steps")
    return {"displayTimeUnit": "ms", "otherData": other}


#: Steps of a steps.parquet read at once by :func:`trace_file_chunks` (the file's rows, in its order).
STEPS_PER_BATCH = 20_000


def trace_file_chunks(path: str | Path, meta: dict[str, Any] | None = None, start: float | None = None,
                      end: float | None = None) -> Iterator[str]:
    """:func:`trace_chunks` of the steps in a ``steps.parquet`` file, the same text, read :data:`STEPS_PER_BATCH`
    steps at a time: the steps are never all in memory (250,000 steps: the run's table and two copies of it, sorted
    and windowed, 64 MB beside the loaded run; BENCHMARKS.md, "Streamed writes"). The file is read twice, to check it
    (every error raised here, before the first piece is made) and to make the events; one whose steps are not in
    order of replica, then start (not one a simulator wrote) is read whole and sorted, as :func:`trace_chunks`
    does. A file that cannot be read is a :class:`UserError` naming it, when checked or while its events are made."""
    path = Path(path)
    opened = ExitStack()
    try:
        with _reading(path):
            source = opened.enter_context(polars_source(path))
            schema = pl.read_parquet_schema(source)
            _check_required(schema)
            columns = [*REQUIRED, *(["replica"] if "replica" in schema else [])]
            steps = pl.scan_parquet(source).select(columns)
            total = steps.select(pl.len()).collect().item()
            _check_lazy_numbers(steps, schema, total)
            other = _other_data(meta)
            if "replica" not in schema:
                steps = steps.with_columns(replica=pl.lit(0, dtype=pl.Int64))
            if not _in_order(steps, total):  # (another writer's order: sorted in memory)
                whole = steps.drop("replica") if "replica" not in schema else steps
                return trace_chunks(whole.collect(), meta, start, end)
            begins = pl.col("start")
            kept, first, last = steps.select(_in_window(start, end).sum(), begins.min().alias("first"),
                                             begins.max().alias("last")).collect(engine="streaming").row(0)
            if not kept:
                _refuse_empty_window(start, end, first, last)
            _check_size(steps.filter(_in_window(start, end)), kept)
    except BaseException:
        opened.close()
        raise
    events = _file_events(path, steps, total, start, end, opened)
    return _text_chunks(events, _rest(other, start, end, total))


def _in_order(steps: pl.LazyFrame, total: int) -> bool:
    """Whether ``total`` steps are in order of replica, then start (as a simulator writes them: then sorting them
    changes nothing), read :data:`STEPS_PER_BATCH` at a time."""
    last = None  # (the previous batch's last replica and start)
    for first in range(0, total, STEPS_PER_BATCH):
        batch = steps.slice(first, STEPS_PER_BATCH).select("replica", "start").collect()
        if last is not None:
            batch = pl.concat([pl.DataFrame([last], schema=batch.schema, orient="row"), batch])
        replica, begins = pl.col("replica").diff(), pl.col("start").diff()
        if not batch.select(((replica > 0) | ((replica == 0) & (begins >= 0))).all()).item():
            return False
        last = batch.row(-1)
    return True


def steps_file_columns(path: str | Path) -> list[str]:
    """The column names of a ``steps.parquet`` (its schema alone is read); a :class:`UserError` if it cannot be read."""
    with _reading(Path(path)), polars_source(path) as source:
        return list(pl.read_parquet_schema(source))


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Raise a failure to read the steps file ``path`` (damaged, cut short, gone) as one line, a :class:`UserError`."""
    try:
        yield
    except (OSError, pl.exceptions.PolarsError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read the run's step trace {path}: {reason}") from None


def _file_events(path: Path, steps: pl.LazyFrame, total: int, start: float | None, end: float | None,
                 opened: ExitStack) -> Iterator[dict[str, Any]]:
    """:func:`_events` of the ``total`` steps of ``steps`` (a file's, in order of replica then start) starting in the
    window, made :data:`STEPS_PER_BATCH` steps of the file at a time (a slice of the file: polars reads its pages
    only; its batches of a stream read a row group, 262,144 steps, at once: 29 MB more): a step's number counts its
    replica's steps before it, its ``next_start`` is its replica's next step's start, in the batch or the next one."""
    window, done, named = _in_window(start, end), {}, set()
    held = None
    with opened:  # (the file, where it was opened to be read: polars_source)
        for first in range(0, total + STEPS_PER_BATCH, STEPS_PER_BATCH):
            with _reading(path):
                batch = steps.slice(first, STEPS_PER_BATCH).collect() if first < total else None
            if held is not None:
                yield from _batch_events(held, batch, window, done, named)
            held = batch


def _batch_events(batch: pl.DataFrame, following: pl.DataFrame | None, window: pl.Expr, done: dict[int, int],
                  named: set[int]) -> Iterator[dict[str, Any]]:
    """The events of a batch of a file's steps (``following``: the next batch, None after the last) in the window;
    ``done``: each replica's steps in earlier batches (updated), ``named``: the replicas whose names were made."""
    ends = batch.select("replica", "start")
    if following is not None:
        ends = pl.concat([ends, following.select("replica", "start").head(1)])
    same = pl.col("replica").shift(-1) == pl.col("replica")
    batch = batch.with_columns(
        ends.select(next_start=pl.when(same).then(pl.col("start").shift(-1))).head(batch.height)["next_start"])
    first = 0
    for k, count in batch["replica"].rle().struct.unnest().select("value", "len").iter_rows():
        pid, part = int(k), batch.slice(first, count)
        first, before = first + count, done.get(int(k), 0)
        done[pid] = before + count
        part = part.with_columns(step=pl.int_range(before, before + count, dtype=pl.Int64)).filter(window)
        if not part.height:
            continue
        if pid not in named:
            named.add(pid)
            yield from _process_names(pid)
        yield from _replica_events(pid, part)


def _process_names(pid: int) -> Iterator[dict[str, Any]]:
    """A replica's process and thread names (metadata events), before its steps'."""
    yield {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": f"replica {pid}"}}
    yield {"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}}
    yield {"name": "thread_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": "steps"}}


def _events(steps: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """Each replica's process and thread names, then its steps' events (:func:`_replica_events`); ``steps`` sorted by
    replica (each replica's steps are a slice of them, not a copy as a group_by's)."""
    first = 0
    for k, count in steps["replica"].rle().struct.unnest().select("value", "len").iter_rows():
        pid, part = int(k), steps.slice(first, count)
        first += count
        yield from _process_names(pid)
        yield from _replica_events(pid, part)


#: One more than the largest replica number a trace takes (its process id, a 32-bit integer in trace viewers).
PID_LIMIT = 2**31


def _check_numbers(steps: pl.DataFrame) -> None:
    """Raise :class:`UserError` where a column the trace reads is not numbers in every step (a damaged or foreign
    steps.parquet): text, a missing value, a value that is not finite (a counter written as ``null``, a replica a
    ``ValueError`` traceback), a negative one, a start or duration [s] above :data:`MAX_PLOTTED_S`, a replica that
    is no whole number below :data:`PID_LIMIT` (0.5 and 0 were drawn as one replica), or no step at all (an empty
    trace, exit 0)."""
    _check_lazy_numbers(steps.lazy(), steps.schema, steps.height)


def _check_lazy_numbers(steps: pl.LazyFrame, schema: Any, height: int) -> None:
    """:func:`_check_numbers` of ``height`` steps (``steps``, with column types ``schema``), read once (a file's in
    pieces: polars' streaming engine) for each column's counts of missing and bad values and its first bad one."""
    if not height:
        raise UserError("the step trace holds no steps: nothing to trace")
    columns = [*REQUIRED, *(["replica"] if "replica" in schema else [])]
    for c in columns:
        _check_column(steps, c, schema[c])


def _check_column(steps: pl.LazyFrame, c: str, dtype: Any) -> None:
    """:func:`_check_lazy_numbers` of column ``c`` (of type ``dtype``), read alone: a file's 11 columns read at once
    held 33 MB more (250,000 steps)."""
    if not dtype.is_numeric():
        raise UserError(f"the step trace's column {c!r} holds {dtype}, not numbers")
    column = pl.col(c)
    values = column.cast(pl.Float64)
    if c in ("start", "duration"):  # 1.7e308 s is an infinite number of microseconds: "ts": null, exit 0
        bad = (column < 0) | (column > MAX_PLOTTED_S)
    elif c == "replica":
        bad = (values < 0) | (values >= PID_LIMIT) | (values != values.floor())
    else:
        bad = values < 0
    missing, finite, count, first = steps.select(
        column.null_count().alias("missing"), values.is_finite().all().alias("finite"), bad.sum().alias("bad"),
        column.filter(bad).first().alias("first")).collect(engine="streaming").row(0)
    if missing:
        raise UserError(f"the step trace's column {c!r} has {missing} missing value(s)")
    if not finite:
        raise UserError(f"the step trace's column {c!r} has values that are not finite (NaN or infinite)")
    if not count:
        return
    if c in ("start", "duration"):
        raise UserError(f"the step trace's column {c!r} holds {count} value(s) outside [0, {MAX_PLOTTED_S:.0e}] s "
                        f"(first: {first:g})")
    if c == "replica":
        raise UserError(f"the step trace's column 'replica' holds {count} value(s) that are no replica number, a "
                        f"whole number in [0, {PID_LIMIT:,}) (first: {first:g})")
    raise UserError(f"the step trace's column {c!r} holds {count} negative value(s) (first: {first:g}), no count")


def step_name(prefill_tokens: int, decode_seqs: int) -> str:
    """A step's slice name: ``prefill`` where it computed prompt tokens [tokens] only (every step of a workload of
    one-token outputs, whose one token comes from the prefill), ``decode`` where only sequences' next tokens
    (``decode_seqs`` [seqs]), ``prefill+decode`` where both. (Every step with prompt tokens was named
    ``prefill+decode``, so a trace of one-token outputs showed decode work that no step did.)"""
    if prefill_tokens and decode_seqs:
        return "prefill+decode"
    return "prefill" if prefill_tokens else "decode"


def _replica_events(pid: int, steps: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """One replica's events, step by step: its slice, counters at its start and end, and zeroed counters where the
    replica then idles (its next step, in the window or after it, starts later)."""
    for part in steps.iter_slices(STEPS_PER_SLICE):  # (250,000 steps' columns as lists at once: 59 MB more)
        yield from _slice_events(pid, part)


def _slice_events(pid: int, steps: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """:func:`_replica_events` of consecutive steps of one replica (their ``step`` and ``next_start`` set)."""
    cols = {c: steps[c].to_list() for c in (*REQUIRED, "step", "next_start")}
    for j in range(steps.height):
        start, dur = cols["start"][j], cols["duration"][j]
        ts, end = start * US, (start + dur) * US
        prefill = cols["num_prefill_tokens"][j]
        yield {
            "name": step_name(prefill, cols["num_decode_seqs"][j]), "cat": "step", "ph": "X", "pid": pid, "tid": 0,
            "ts": ts, "dur": dur * US,
            "args": {"step": cols["step"][j], "seqs": cols["num_seqs"][j],
                     "batched_tokens": cols["num_batched_tokens"][j], "prefill_tokens": prefill,
                     "evicted": cols["num_evicted"][j], "finished": cols["num_finished"][j]},
        }
        for name, series in START_COUNTERS.items():
            yield {"name": name, "ph": "C", "pid": pid, "ts": ts, "args": {s: cols[c][j] for s, c in series.items()}}
        for name, series in END_COUNTERS.items():
            yield {"name": name, "ph": "C", "pid": pid, "ts": end, "args": {s: cols[c][j] for s, c in series.items()}}
        following = cols["next_start"][j]
        if following is None or following > start + dur:  # no step starts where this one ends: idle
            for name, series in START_COUNTERS.items():
                yield {"name": name, "ph": "C", "pid": pid, "ts": end, "args": {s: 0 for s in series}}


#: How a trace-event file this module writes begins (:func:`trace_text`; whitespace allowed, as other writers' JSON
#: objects of trace events have): a file that does not is no trace to write over.
TRACE_START = re.compile(rb'\s*\{\s*"traceEvents"\s*:')


def check_trace_out(path: str | Path, option: str = "--out") -> None:
    """One-line :class:`UserError` if ``path`` is a file that is neither empty nor a trace-event JSON object (what a
    rerun writes over), as ``profile -o`` refuses a file that is no profile: another run's summary.json, a workload or
    sweep .json was replaced by the trace, exit 0. Reads the file's first 64 bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):  # (a new file; a directory is the caller's)
        return
    except OSError:  # (unreadable: the write says why, or replaces it)
        return
    if head and not TRACE_START.match(head):
        raise UserError(f"{option} {path} exists and is not a Chrome trace (trace-event JSON, as `plot trace` writes): "
                        f"the trace would replace it; give another {option}, or move that file away first")


def write_chrome_trace(result, path: str | Path, start: float | None = None, end: float | None = None,
                       option: str = "--trace") -> Path:
    """Write ``result``'s step trace (a :class:`ltrsched.results.RunResult` with steps) as trace-event JSON,
    atomically and durably (:mod:`ltrsched.atomic`), a piece at a time (:func:`trace_chunks`): the steps starting in
    [``start``, ``end``) [s], at most :data:`MAX_TRACE_STEPS` (:func:`chrome_trace`). ``path`` may be new, empty or an
    earlier trace (:func:`check_trace_out`; ``option`` names it in the error)."""
    if result.steps is None:
        raise UserError("the run has no step trace; simulate with --record-steps (or --trace)")
    check_trace_out(path, option)
    return _write(path, trace_chunks(result.steps, result.meta, start, end))


def write_trace_of_file(steps_path: str | Path, meta: dict[str, Any] | None, path: str | Path,
                        start: float | None = None, end: float | None = None, option: str = "--out") -> Path:
    """:func:`write_chrome_trace` of a saved run's ``steps.parquet`` (``steps_path``; ``meta``: its summary's), read a
    batch of steps at a time (:func:`trace_file_chunks`): the same bytes, without the steps in memory."""
    check_trace_out(path, option)
    return _write(path, trace_file_chunks(steps_path, meta, start, end))


def _write(path: str | Path, chunks: Iterator[str]) -> Path:
    return atomic.write_chunks(path, (chunk.encode("utf-8") for chunk in chunks))
