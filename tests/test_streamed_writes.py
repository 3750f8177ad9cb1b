"""The two biggest writes go to their temp file a piece at a time, the file's bytes never all in memory: ``plot trace``
(a 250,000-step trace: 490-534 MB more than the run while writing a 158 MB file, 64 MB after) and
``atomic.write_parquet`` (a 1,000,000-request table: the file's bytes in a buffer first). Same bytes as before; the
atomic temp file + rename is kept (BENCHMARKS.md, "Streamed writes")."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tracemalloc

import numpy as np
import polars as pl
import pytest

from ltrsched import atomic
from ltrsched.errors import UserError, WriteFailedError


def _peak_bytes(write) -> int:
    """The most bytes Python's allocator held at once beyond what it held before, while ``write()`` ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        write()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------------------------------------- write_chunks
def test_each_chunk_is_in_the_temp_file_before_the_next_is_made(tmp_path):
    target = tmp_path / "out.bin"
    pieces = [b"a" * 10, b"", b"bc" * 7, b"d"]

    def chunks():
        written = 0
        for piece in pieces:
            assert atomic.temp_path(target).stat().st_size == written  # (what came before is on its way to disk)
            assert not target.exists()  # (the file appears whole or not at all)
            yield piece
            written += len(piece)

    assert atomic.write_chunks(target, chunks()) == target
    assert target.read_bytes() == b"".join(pieces) and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_an_error_from_the_chunks_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def chunks():
        yield b"{"
        raise UserError("the steps are damaged")

    with pytest.raises(UserError, match="^the steps are damaged$"):
        atomic.write_chunks(target, chunks())
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


# -------------------------------------------------------------------------------------------------- plot trace
#: sha256 of trace_text(_steps(), _META) and of its window [2, 9.5) s, written by the code before the trace was
#: streamed (8040676, which built the whole text, then wrote it)
WHOLE_SHA256 = "c7875d1fef51cd239180e39c830a23a8d0487cc0424586a89fa42a1aeb0404a7"
WINDOW_SHA256 = "ee7d571d2fb836995a4581b30ac3410521562d7d544f7d4e28e882bbcf2e60d4"
_META = {"workload": "w", "policy": "fcfs", "replicas": 2, "other": 1}


def _steps(n_per_replica: int = 40) -> pl.DataFrame:
    """Two replicas' steps (replica 1's rows first, unsorted as a trace may be), an idle gap after every 7th step;
    floats made by Python's arithmetic, the same bits on every platform."""
    from ltrsched.plots.chrome_trace import REQUIRED

    rows: dict[str, list] = {c: [] for c in (*REQUIRED, "replica")}
    for r in (1, 0):
        t = 0.0
        for i in range(n_per_replica):
            dur = 0.25 if i % 3 else 0.5 + 0.1 * r
            for c, v in (("replica", r), ("start", t), ("duration", dur), ("num_seqs", 1 + (i * 7 + r) % 5),
                         ("num_decode_seqs", (i * 3) % 4), ("num_batched_tokens", 17 * (i % 9)),
                         ("num_prefill_tokens", 0 if i % 4 == 1 else 11 * (i % 6)),
                         ("num_evicted", 1 if i % 11 == 5 else 0), ("num_live", 3 + i % 8),
                         ("blocks_in_use", 40 + (i * 5) % 13), ("host_blocks_in_use", i % 2),
                         ("num_finished", int(i % 3 == 0))):
                rows[c].append(v)
            t += dur + (1.5 if i % 7 == 6 else 0.0)
    return pl.DataFrame(rows)


def _run(steps):
    from ltrsched.results import RunResult

    return RunResult(pl.DataFrame({"request_id": [0]}), {}, steps, dict(_META))


@pytest.mark.parametrize("per_chunk", [None, 7, 1])
def test_the_streamed_trace_has_the_bytes_the_whole_text_had(tmp_path, monkeypatch, per_chunk):
    """Whatever the chunks' and slices' sizes (7 events, 3 steps: boundaries inside a step's events and a replica's
    steps), the file is byte for byte what the code that built the whole text wrote."""
    from ltrsched.plots import chrome_trace

    if per_chunk:
        monkeypatch.setattr(chrome_trace, "EVENTS_PER_CHUNK", per_chunk)
        monkeypatch.setattr(chrome_trace, "STEPS_PER_SLICE", max(1, per_chunk // 2))
    chrome_trace.write_chrome_trace(_run(_steps()), tmp_path / "t.json")
    chrome_trace.write_chrome_trace(_run(_steps()), tmp_path / "w.json", 2.0, 9.5)
    assert hashlib.sha256((tmp_path / "t.json").read_bytes()).hexdigest() == WHOLE_SHA256
    assert hashlib.sha256((tmp_path / "w.json").read_bytes()).hexdigest() == WINDOW_SHA256
    assert chrome_trace.trace_text(_steps(), _META).encode() == (tmp_path / "t.json").read_bytes()


def test_writing_a_trace_holds_a_small_part_of_its_text(tmp_path, monkeypatch):
    """2 x 400 steps (a 0.55 MB file) in chunks of 40 events: Python holds under half the file's size at once
    (0.17-0.23 measured: a chunk's events as dicts, about 2.4 kB each); the whole text, then its bytes, held 3.0 times
    it."""
    from ltrsched.plots import chrome_trace

    monkeypatch.setattr(chrome_trace, "EVENTS_PER_CHUNK", 40)
    monkeypatch.setattr(chrome_trace, "STEPS_PER_SLICE", 16)
    run, path = _run(_steps(400)), tmp_path / "t.json"
    peak = _peak_bytes(lambda: chrome_trace.write_chrome_trace(run, path))
    size = path.stat().st_size
    assert size > 500_000 and peak < 0.5 * size, (peak, size)


# ----------------------------------------------------------------------------------------------- write_parquet
def _table(rows: int = 100_000) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame({"request_id": np.arange(rows), **{f"t{k}": rng.random(rows) for k in range(6)},
                         "output_tokens": rng.integers(1, 4_000, rows)})


def test_a_parquet_file_has_polars_own_bytes_and_reads_back_equal(tmp_path):
    df = _table(20_000)
    buf = io.BytesIO()
    df.write_parquet(buf)
    atomic.write_parquet(tmp_path / "r.parquet", df)
    assert (tmp_path / "r.parquet").read_bytes() == buf.getvalue()
    assert pl.read_parquet(tmp_path / "r.parquet").equals(df)


def test_writing_a_parquet_file_holds_a_small_part_of_it(tmp_path):
    """A 4.8 MB file of 8 columns: Python holds under half its size at once (a column chunk at a time: 0.16
    measured); a buffer of the whole file held 1.25 times it."""
    df, path = _table(), tmp_path / "r.parquet"
    peak = _peak_bytes(lambda: atomic.write_parquet(path, df))
    size = path.stat().st_size
    assert size > 4_000_000 and peak < 0.5 * size, (peak, size)


class _FailsAfter:
    """``os`` as ltrsched.atomic sees it where a write past the first ``room`` bytes raises ``error`` (a disk that
    fills, ENOSPC; Ctrl-C while the file is written)."""

    def __init__(self, room: int, error: BaseException) -> None:
        self.room, self.error = room, error

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if len(data) > self.room:
            raise self.error
        self.room -= len(data)
        return os.write(fd, data)


def test_a_full_disk_in_a_parquet_write_is_an_os_error_with_its_errno(tmp_path, monkeypatch):
    """polars reports the sink's failed write as a ComputeError without errno: the write raises the disk's error."""
    target = tmp_path / "r.parquet"
    target.write_bytes(b"old")
    monkeypatch.setattr(atomic, "os", _FailsAfter(100_000, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    with pytest.raises(WriteFailedError) as caught:
        atomic.write_parquet(target, _table(20_000))
    assert caught.value.errno == errno.ENOSPC and str(caught.value) == f"cannot write {target}: No space left on device"
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["r.parquet"]


def test_ctrl_c_in_a_parquet_write_is_a_keyboard_interrupt(tmp_path, monkeypatch):
    """(polars turned the interrupt raised in the sink's write into a ComputeError: a traceback, not the abort.)"""
    monkeypatch.setattr(atomic, "os", _FailsAfter(100_000, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        atomic.write_parquet(tmp_path / "r.parquet", _table(20_000))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------- plot trace of a saved run
def _saved(tmp_path, steps: pl.DataFrame):
    """A run directory holding ``steps`` as its steps.parquet (and a summary with :data:`_META`)."""
    import json

    run = tmp_path / "run"
    run.mkdir()
    steps.write_parquet(run / "steps.parquet")
    pl.DataFrame({"request_id": [0]}).write_parquet(run / "requests.parquet")
    (run / "summary.json").write_text(json.dumps({"summary": {}, "meta": _META}))
    return run


@pytest.mark.parametrize("order", ["sorted", "as made"])
@pytest.mark.parametrize("per_batch", [2_000, 7, 1])
def test_a_trace_read_from_the_file_a_batch_at_a_time_has_the_same_bytes(capsys, tmp_path, monkeypatch, order,
                                                                         per_batch):
    """plot trace reads the run's steps.parquet a batch of steps at a time (batches of 1, 3, 7 steps: a replica's
    steps and a step's next start across their boundaries); the file is byte for byte what the whole table gave, in a
    simulator's order (replica, then start) or another (sorted in memory, as before)."""
    from cli_helpers import run_cli_fast
    from ltrsched.plots import chrome_trace

    steps = _steps()
    run = _saved(tmp_path, steps.sort("replica", "start", maintain_order=True) if order == "sorted" else steps)
    monkeypatch.setattr(chrome_trace, "STEPS_PER_BATCH", per_batch)
    for args, digest in (((), WHOLE_SHA256), (("--start", "2", "--end", "9.5"), WINDOW_SHA256)):
        out = tmp_path / "t.json"
        r = run_cli_fast(capsys, "plot", "trace", str(run), "-o", str(out), *args)
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def test_plot_trace_holds_a_batch_of_the_runs_steps_at_a_time(capsys, tmp_path, monkeypatch):
    """Every table polars makes while plot trace writes the trace of a 20,000-step run, batches of 1,000 steps, holds
    at most a batch's columns (checks: a column, or one value, at a time). It read the whole table, then sorted a copy:
    for 250,000 steps the process's peak RSS was 169 MB, now 100 MB, about that of its imports (BENCHMARKS.md,
    "Streamed writes")."""
    from cli_helpers import run_cli_fast
    from ltrsched.plots import chrome_trace

    n = 20_000
    steps = pl.DataFrame({c: np.arange(n, dtype=np.float64 if c in ("start", "duration") else np.int64)
                          for c in chrome_trace.REQUIRED}).with_columns(duration=pl.lit(0.5))
    run = _saved(tmp_path, steps)
    monkeypatch.setattr(chrome_trace, "STEPS_PER_BATCH", 1_000)
    sizes = []

    def counted(collect):
        def collected(self, *args, **kwargs):
            df = collect(self, *args, **kwargs)
            sizes.append(df.height * df.width)
            return df
        return collected

    for name in ("collect", "_collect_eager"):  # (a query's; a DataFrame's method's, pl.read_parquet's)
        monkeypatch.setattr(pl.LazyFrame, name, counted(getattr(pl.LazyFrame, name)))
    r = run_cli_fast(capsys, "plot", "trace", str(run), "-o", str(tmp_path / "t.json"), "--start", "19990")
    assert r.returncode == 0, r.stderr
    assert sizes and max(sizes) <= 1_000 * (len(chrome_trace.REQUIRED) + 3), max(sizes)


@pytest.mark.parametrize("damage", ["cut short", "empty"])
def test_a_damaged_steps_file_is_one_line(capsys, tmp_path, damage):
    from cli_helpers import run_cli_fast
    from test_cli_simulate import assert_one_line_error

    run = _saved(tmp_path, _steps())
    path = run / "steps.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2] if damage == "cut short" else b"")
    r = run_cli_fast(capsys, "plot", "trace", str(run), "-o", str(tmp_path / "t.json"))
    assert_one_line_error(r, f"cannot read the run's step trace {path}: parquet: File out of specification")


# --------------------------------------------------------------------------------------------------- write_csv
def test_a_csv_file_has_polars_own_text_in_utf8(tmp_path):
    df = _table(5_000).with_columns(name=pl.lit("π \"ü\", x"), none=pl.lit(None, dtype=pl.Float64))
    atomic.write_csv(tmp_path / "r.csv", df)
    assert (tmp_path / "r.csv").read_bytes() == df.write_csv().encode("utf-8")


def test_writing_a_csv_file_holds_a_small_part_of_it(tmp_path):
    """A 12.6 MB CSV of 8 columns: Python holds under half its size at once (polars hands it over a batch of rows at a
    time: 0.25 measured); its text, then its bytes, held 2.0 times it."""
    df, path = _table(), tmp_path / "r.csv"
    peak = _peak_bytes(lambda: atomic.write_csv(path, df))
    size = path.stat().st_size
    assert size > 8_000_000 and peak < 0.5 * size, (peak, size)


def test_a_full_disk_in_a_csv_write_is_an_os_error_with_its_errno(tmp_path, monkeypatch):
    target = tmp_path / "r.csv"
    target.write_bytes(b"old")
    monkeypatch.setattr(atomic, "os", _FailsAfter(100_000, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    with pytest.raises(WriteFailedError) as caught:
        atomic.write_csv(target, _table(20_000))
    assert caught.value.errno == errno.ENOSPC and str(caught.value) == f"cannot write {target}: No space left on device"
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_a_steps_file_removed_while_its_trace_is_written_is_one_line(capsys, tmp_path, monkeypatch):
    """The steps file is read twice (checked, then traced): removed in between (the run deleted, or rerun into its
    directory), the trace is one line naming the file, exit 2, and neither the trace nor its temp file is left."""
    from cli_helpers import run_cli_fast
    from test_cli_simulate import assert_one_line_error

    from ltrsched.plots import chrome_trace

    run = _saved(tmp_path, _steps().sort("replica", "start"))
    check = chrome_trace._check_size

    def check_then_remove(*args):
        check(*args)
        (run / "steps.parquet").unlink()

    monkeypatch.setattr(chrome_trace, "_check_size", check_then_remove)
    out = tmp_path / "out" / "t.json"
    r = run_cli_fast(capsys, "plot", "trace", str(run), "-o", str(out))
    assert_one_line_error(r, f"cannot read the run's step trace {run / 'steps.parquet'}: ")
    assert not out.parent.exists() or not list(out.parent.iterdir())
