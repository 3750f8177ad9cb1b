"""Run engine work in fresh processes, one at a time, and say so in one line when such a process dies.

``profile --runs`` and ``validate --spread-repeats`` start each engine in a fresh spawned process (a new
interpreter, a new engine with its memory laid out anew), never two at once (they would time each other). An
exception in that process comes back as itself; a process that dies (killed, out of memory, an abort in the
engine's native code) would come back as a ``BrokenProcessPool`` traceback, and is a :class:`UserError` here
naming what it was doing. A fresh process whose parent is gone (``ltrsched`` killed, even by SIGKILL) exits within a
second instead of running its engine on, orphaned, into the output directory a later run would use. A plugin
policy's call that the watchdog cannot stop ends its fresh process (:func:`ltrsched.plugin_watchdog.end_process`); the
process leaves its line in a file (:func:`ltrsched.plugin_watchdog.leave_exit_line_in`) and :meth:`FreshProcesses.run`
raises it as the one line, exit code 2 (it was the process's line, then one about a dead process). A stop (Ctrl-C,
or SIGTERM and SIGHUP under :class:`~ltrsched.signal_stops.SignalStops`, which reach ``ltrsched`` alone) ends the fresh
process running, its run lost with the stop, instead of waiting for it to finish.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ltrsched.errors import UserError
from ltrsched.plugin_watchdog import PluginTimeoutError, exit_line_left_in, leave_exit_line_in


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


def _start_fresh(parent_pid: int, exit_line: str) -> None:
    """Runs first in each fresh process: end with the parent (:func:`_exit_with_parent`), and leave the line of a
    stuck plugin call that ends the process in the file ``exit_line`` (for :meth:`FreshProcesses.run` to raise)."""
    _exit_with_parent(parent_pid)
    leave_exit_line_in(exit_line)


class FreshProcesses:
    """A context manager: :meth:`run` calls a function in a new spawned process each time, one at a time."""

    def __enter__(self) -> "FreshProcesses":
        context = multiprocessing.get_context("spawn")
        # one process at a time, so one file holds the line of the one a stuck plugin call ended
        self._folder = tempfile.mkdtemp(prefix="ltrsched-fresh-")
        self._exit_line = os.path.join(self._folder, "exit-line")
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context, max_tasks_per_child=1,
                                         initializer=_start_fresh, initargs=(os.getpid(), self._exit_line))
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)

    def run(self, what: str, fn, *args):
        """``fn(*args)`` in a fresh process; ``what`` names it in the error should that process die."""
        try:
            return self._pool.submit(fn, *args).result()
        except KeyboardInterrupt:  # (Ctrl-C, SIGTERM, SIGHUP: ltrsched.signal_stops)
            self._end_processes()
            raise
        except BrokenProcessPool:
            line = exit_line_left_in(self._exit_line)
            if line is not None:  # a stuck plugin call ended it: that call's line, as a lone process prints it
                raise PluginTimeoutError(line) from None
            raise UserError(f"{what}: its process died before it finished (killed, out of memory, or a crash in the "
                            "engine's native code); what it saved before stays") from None

    def _end_processes(self) -> None:
        """End the process running now (SIGTERM), its run lost with the stop: a signal that reached this process alone
        (``kill``'s SIGTERM, a batch system's time limit) left it running its engine on, and :meth:`__exit__` waited
        for it to finish (a ``profile --runs`` or ``validate --spread-repeats`` pass: minutes)."""
        for process in list((getattr(self._pool, "_processes", None) or {}).values()):  # (no public way to end them)
            with contextlib.suppress(OSError, ValueError):
                process.terminate()
