"""Worker processes that end when their parent does.

A pool worker outlives a parent killed by SIGKILL (or the OOM killer): it keeps computing a run nobody
will read, holding its memory (~165 MB each). :func:`bind_to_parent`, called in the worker's
initializer, ends the worker when the parent is gone: on Linux the kernel sends it SIGKILL at once
(``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread checks ``os.getppid()`` every
:data:`POLL_S` seconds and exits the worker when its parent changed (it was re-parented).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

#: How often the watchdog thread checks the parent [s].
POLL_S = 0.5
#: ``PR_SET_PDEATHSIG`` from ``<linux/prctl.h>``.
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while True:
        time.sleep(POLL_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def bind_to_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (its parent) dies. Call it first thing in a worker."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="ltrsched-parent-watch", daemon=True).start()
