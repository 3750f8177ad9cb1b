"""Run engine work in fresh processes, one at a time, and say so in one line when such a process dies.

``profile --runs`` and ``validate --spread-repeats`` start each engine in a fresh spawned process (a new
interpreter, a new engine with its memory laid out anew), never two at once (they would time each other). An
exception in that process comes back as itself; a process that dies (killed, out of memory, an abort in the
engine's native code) would come back as a ``BrokenProcessPool`` traceback, and is a :class:`UserError` here
naming what it was doing. A fresh process whose parent is gone (``ltrsched`` killed, even by SIGKILL) exits within a
second instead of running its engine on, orphaned, into the output directory a later run would use.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ltrsched.errors import UserError


PARENT_POLL_S = 0.5
"""How often (seconds) a fresh process checks that the process that started it is still there."""


def _exit_with_parent(parent_pid: int) -> None:
    """Runs first in each fresh process: a daemon thread ends the process once its parent has gone (it is then
    re-parented, so ``getppid`` changes). A poll, not ``PR_SET_PDEATHSIG``: that fires when the *thread* that
    started the process ends, and the pool may start its processes from a thread of its own."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(143)  # as if terminated: its run is lost with the parent that was to save it

    threading.Thread(target=watch, name="ltrsched-parent-watch", daemon=True).start()


class FreshProcesses:
    """A context manager: :meth:`run` calls a function in a new spawned process each time, one at a time."""

    def __enter__(self) -> "FreshProcesses":
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context, max_tasks_per_child=1,
                                         initializer=_exit_with_parent, initargs=(os.getpid(),))
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run(self, what: str, fn, *args):
        """``fn(*args)`` in a fresh process; ``what`` names it in the error should that process die."""
        try:
            return self._pool.submit(fn, *args).result()
        except BrokenProcessPool:
            raise UserError(f"{what}: its process died before it finished (killed, out of memory, or a crash in the "
                            "engine's native code); what it saved before stays") from None
