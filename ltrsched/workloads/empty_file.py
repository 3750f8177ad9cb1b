"""An input file of no bytes, told apart from one whose size says nothing: the one empty-file check of the workload and
prompts readers.

``stat`` gives a size of 0 for a file of no bytes and for a file the kernel makes as it is read (``/proc/self/status``,
any procfs or sysfs file), whose reads give bytes: the second was refused as "the file is empty". Such a file is no
regular file with a known size: its contents may change between the reads a command makes of an input (its SHA-256 for
the run cache, its first line, its records), so it is refused by name, in one line, as a pipe or a device is
(:func:`ltrsched.inputs.check_not_special`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ltrsched.errors import UserError


def check_not_empty(path: Path, what: str) -> None:
    """One-line :class:`UserError` if ``path`` (a regular file, by ``stat``) has a size of 0: ``the file is empty``
    where a read gives no byte either, else that it is not a regular file with a known size (``what`` names the input,
    e.g. "workload"). One byte is read, without waiting (``O_NONBLOCK``: ``/proc/kmsg`` would wait for the kernel's
    next message), and only where the size is 0."""
    if path.stat().st_size:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UserError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
    try:
        first = os.read(fd, 1)
    except BlockingIOError:  # (nothing to read yet: made by the kernel as it is read, as above)
        first = None
    except OSError as exc:
        raise UserError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if first == b"":
        raise UserError(f"{path}: the file is empty")
    raise UserError(f"{what} {str(path)!r} is not a regular file with a known size (its size is 0, yet it reads bytes: "
                    "a /proc or /sys file, made as it is read, may change between the reads a command makes); save "
                    "its contents to a file and give that")
