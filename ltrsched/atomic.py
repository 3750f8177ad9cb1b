"""Atomic, durable file writes: a file appears whole or not at all, and stays whole after a power loss.

Every write goes to a temp file beside the target (``.<name>.tmp<pid>``), is flushed and fsynced, renamed
over the target, and the directory is fsynced so that the rename itself is on disk. A write that fails
(disk full, file size limit, no permission, a directory or device at the path) removes its temp file and raises
:class:`~ltrsched.errors.WriteFailedError` naming the file: an :class:`OSError` to a Python caller (``except
OSError``; its ``errno`` the failed call's, None for a device refused), one line with exit code 2 on the command line
(a :class:`~ltrsched.errors.UserError`, as it was; ``except UserError`` still catches it).

A big file is written a piece at a time as it is made (:func:`write_chunks`, :func:`write_parquet`), never whole in
memory first.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from ltrsched.errors import WriteFailedError
from ltrsched.inputs import special_kind


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or a new entry in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not sync directories; the rename is still atomic
    finally:
        os.close(fd)


def temp_path(path: str | os.PathLike) -> Path:
    """The temp file a write of ``path`` goes through (this process)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _discard(tmp: Path) -> None:
    """Remove a temp file if it is there; where it cannot be (its parent is a file, or gone) there is none."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably (parents created); :class:`~ltrsched.errors.WriteFailedError`
    (an OSError and a UserError) on failure."""
    return write_chunks(path, (data,))


def write_chunks(path: str | os.PathLike, chunks: Iterable[bytes]) -> Path:
    """Write the concatenation of ``chunks`` to ``path`` atomically and durably, each chunk as it comes: the file's
    bytes are never all in memory (``plot trace`` writes a trace of 158 MB so). An exception from ``chunks`` removes
    the temp file and propagates; a failed write is a :class:`~ltrsched.errors.WriteFailedError`."""

    def fill(fd: int) -> None:
        for chunk in chunks:
            _write_all(fd, chunk)

    return _write_through(path, fill)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_through(path: str | os.PathLike, fill: Callable[[int], None]) -> Path:
    """Create the temp file, ``fill(fd)`` it (its descriptor, open for writing), fsync it, rename it over ``path`` and
    fsync the directory; on any failure remove the temp file (an OSError raised as WriteFailedError)."""
    path = Path(path)
    kind = special_kind(path)
    if kind:  # (`evaluate --plot /dev/null`, run as root, renamed a PNG over the device: /dev/null was a file)
        raise WriteFailedError(f"cannot write {path}: it is {kind}, which the write would replace (a new file is "
                               "renamed over the path); give a regular file's path")
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fill(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise WriteFailedError(f"cannot write {path}: {_reason(exc)}", exc.errno) from None
    except BaseException:
        _discard(tmp)
        raise
    fsync_dir(path.parent)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically and durably."""
    return write_bytes(path, text.encode("utf-8"))


class _FdSink:
    """A binary file object over an open descriptor, for a writer that takes one (polars' parquet writer): each
    ``write`` goes to the file at once (:func:`_write_all`). The first exception it raised is kept in ``error``:
    polars reports any as a ComputeError, in which an OSError loses its errno and a KeyboardInterrupt (Ctrl-C while it
    wrote) is no interrupt any more."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            _write_all(self.fd, data)
        except BaseException as exc:
            self.error = self.error or exc
            raise
        return len(data)

    def flush(self) -> None:
        """Nothing held: each write went to the file."""


def write_parquet(path: str | os.PathLike, df: Any) -> Path:
    """Write a polars DataFrame as parquet atomically and durably, each piece polars makes (a column chunk) written
    to the temp file as it comes: the file's bytes are never all in memory (a 33 MB file of 1,000,000 requests held
    34.5 MB of Python heap in a buffer, now 0.8 MB). The bytes are those of ``df.write_parquet`` to a path or a
    buffer."""
    return _write_through(path, lambda fd: _polars_write(df.write_parquet, fd))


def write_csv(path: str | os.PathLike, df: Any) -> Path:
    """Write a polars DataFrame as CSV atomically and durably, each batch of rows polars makes written to the temp file
    as it comes (:func:`write_parquet`'s way): the text of a 1,000,000-row table, then its bytes, held 310 MB beside
    a 61 MB table (BENCHMARKS.md, "Streamed writes"). The bytes are those of ``df.write_csv()``, UTF-8."""
    return _write_through(path, lambda fd: _polars_write(df.write_csv, fd))


def _polars_write(write: Callable[[Any], Any], fd: int) -> None:
    """``write(sink)``, a polars writer, into the open descriptor ``fd`` (:class:`_FdSink`): the sink's own error (the
    disk's, with its errno, or Ctrl-C) is raised, not polars' ComputeError that reports it."""
    sink = _FdSink(fd)
    try:
        write(sink)
    except BaseException:
        if sink.error is not None:
            raise sink.error from None
        raise


def write_figure(path: str | os.PathLike, fig: Any, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure atomically and durably (format from the file suffix)."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
    return write_bytes(path, buf.getvalue())
