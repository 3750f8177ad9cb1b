"""Input paths that exist but are not regular files: a named pipe (FIFO), a device such as ``/dev/zero``, a socket.

The commands read an input file more than once (its SHA-256 for the run cache, its first line to tell its form,
then its records) and need its end: a pipe is empty on the second read, ``/dev/zero`` never ends, and a size of 0
(what ``stat`` says of both) made them "the file is empty" or "not found". They are refused by name.
"""

from __future__ import annotations

import stat
from pathlib import Path

from ltrsched.errors import UserError

PIPE = "a named pipe (FIFO)"
_KINDS = ((stat.S_ISFIFO, PIPE), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def special_kind(path: str | Path) -> str | None:
    """What ``path`` is (following links) if it exists and is neither a regular file nor a directory, else None."""
    try:
        mode = Path(path).stat().st_mode
    except (OSError, ValueError):  # missing, a link to nothing, a NUL byte: the caller's own checks say so
        return None
    return next((name for test, name in _KINDS if test(mode)), None)


def check_not_special(path: str | Path, what: str) -> None:
    """Raise :class:`UserError` if ``path`` is a pipe, device or socket (``what`` names it, e.g. "workload")."""
    kind = special_kind(path)
    if kind:
        raise UserError(f"{what} {str(path)!r} is {kind}, not a regular file: it is read more than once and to its "
                        "end; save its contents to a file and give that")
