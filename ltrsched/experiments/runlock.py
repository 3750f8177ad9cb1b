"""One exclusive lock per run: invocations sharing an ``--out`` never compute a run twice at once.

The lock is an advisory ``flock`` on a file beside the run's results. The kernel releases it when the
holder's file is closed or the holder dies (SIGKILL, power loss), so a crashed run never leaves a stale
lock behind. Where ``fcntl`` does not exist (Windows) runs are not locked.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from ltrsched.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def run_lock(path: str | os.PathLike, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    Yields True once held. With ``wait=False`` it yields False at once if another process holds it.
    """
    if fcntl is None:  # pragma: no cover
        yield True
        return
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot create the run lock {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
