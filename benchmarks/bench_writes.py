"""Peak memory and time of ltrsched's two biggest file writes, each in this fresh process: ``plot trace`` (the Chrome
trace-event JSON of a saved run, :func:`ltrsched.plots.chrome_trace.write_chrome_trace`) and
:func:`ltrsched.atomic.write_parquet` of a run's requests table tiled to ``--rows`` rows (its copies back to back in
simulated time, the request ids renumbered).

    python benchmarks/bench_writes.py trace RUN --end 3977.98 -o tr.json    # RUN: simulate --record-steps -o RUN
    python benchmarks/bench_writes.py parquet RUN/requests.parquet --rows 1000000 -o r1m.parquet

What is read and built before the write (the run, the tiled table) is not counted: just before the write the
process's peak RSS is reset (``/proc/self/clear_refs``, Linux), so ``peak`` is the most memory the process
held while writing [MB], ``added`` that less the RSS it held before [MB]. CPU time is ``time.process_time`` [s].
The file's size [MB] and sha256 are printed (to compare the bytes of two versions); ``parquet`` also checks that the
file reads back equal to the table.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import resource
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import polars as pl  # noqa: E402

MB = 1024 * 1024
#: a requests table's columns that are points in simulated time [s] (the others are counts and durations)
TIMESTAMPS = ("arrival_time", "first_scheduled_time", "first_token_time", "finish_time")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Give the C heap's free memory back to the OS (glibc; else a buffer the write makes may fit in pages that
    building the table freed, and not show), then reset VmHWM (the peak RSS) to the current RSS (Linux 4.0+)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def measured(write, python_heap: bool = False) -> None:
    """Run ``write()`` (returns the path written) and print its peak memory, time, and the file's size and digest;
    ``python_heap``: also the most memory Python's allocator held at once beyond what it held before [MB]
    (tracemalloc, which slows the write: its time is then not comparable)."""
    if python_heap:
        tracemalloc.start()
    _reset_peak()
    before = _status_kb("VmRSS") / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    base = tracemalloc.get_traced_memory()[0]
    path = Path(write())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = _status_kb("VmHWM") / 1024
    if python_heap:
        print(f"Python heap peak while writing: {(tracemalloc.get_traced_memory()[1] - base) / MB:.1f} MB")
        tracemalloc.stop()
    size = path.stat().st_size / MB
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    whole = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(f"file {size:.1f} MB sha256 {digest[:16]}; write: {wall:.2f} s wall, {cpu:.2f} s CPU, peak {peak:.1f} MB "
          f"(RSS before {before:.1f} MB, added {peak - before:.1f} MB); process peak {whole:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("trace", "parquet"))
    ap.add_argument("source", type=Path, help="trace: a run directory with steps; parquet: a requests.parquet")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--start", type=float, default=None, help="trace: the window's start [s of simulated time]")
    ap.add_argument("--end", type=float, default=None, help="trace: the window's end [s of simulated time]")
    ap.add_argument("--rows", type=int, default=1_000_000, help="parquet: rows of the table written")
    ap.add_argument("--python-heap", action="store_true", help="also Python's heap peak (tracemalloc; slower)")
    args = ap.parse_args()
    if args.what == "trace":
        from ltrsched.plots.chrome_trace import write_chrome_trace
        from ltrsched.results import RunResult

        run = RunResult.load(args.source)
        print(f"{run.steps.height:,} steps in the run")
        measured(lambda: write_chrome_trace(run, args.out, args.start, args.end), args.python_heap)
        return
    from ltrsched import atomic

    table = pl.read_parquet(args.source)
    copies = -(-args.rows // table.height)
    # (the copies back to back: copy k's timestamps [s] k spans later, one id a request, as a longer run's table has)
    span = float(table["finish_time"].max()) if "finish_time" in table.columns else 0.0
    shifted = [c for c in TIMESTAMPS if c in table.columns]
    table = pl.concat([table.with_columns(pl.col(c) + k * span for c in shifted) for k in range(copies)])
    table = table.head(args.rows)
    if "request_id" in table.columns:
        table = table.with_columns(request_id=pl.int_range(table.height, dtype=table["request_id"].dtype))
    table = table.rechunk()
    print(f"{table.height:,} rows, {len(table.columns)} columns, {table.estimated_size() / MB:.1f} MB in memory")
    measured(lambda: atomic.write_parquet(args.out, table), args.python_heap)
    assert pl.read_parquet(args.out).equals(table), "the file does not read back equal to the table"


if __name__ == "__main__":
    main()
