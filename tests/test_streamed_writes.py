"""Big writes go to their temp file a piece at a time, the file's bytes never all in memory: ``atomic.write_chunks`` and
``atomic.write_parquet`` (a 1,000,000-request table: the file's bytes in a buffer first). Same bytes as before; the
atomic temp file + rename is kept (BENCHMARKS.md, "Streamed writes")."""

from __future__ import annotations

import errno
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
