"""Run engine work in fresh processes, one at a time, and say so in one line when such a process dies.

``profile --runs`` and ``validate --spread-repeats`` start each engine in a fresh spawned process (a new
interpreter, a new engine with its memory laid out anew), never two at once (they would time each other). An
exception in that process comes back as itself; a process that dies (killed, out of memory, an abort in the
engine's native code) would come back as a ``BrokenProcessPool`` traceback, and is a :class:`UserError` here
naming what it was doing.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ltrsched.errors import UserError


class FreshProcesses:
    """A context manager: :meth:`run` calls a function in a new spawned process each time, one at a time."""

    def __enter__(self) -> "FreshProcesses":
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context, max_tasks_per_child=1)
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
