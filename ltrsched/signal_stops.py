"""How a long command stops on a signal: Ctrl-C (SIGINT), ``kill`` or a batch system's time limit (SIGTERM) and a
closed terminal or a dropped ssh session (SIGHUP) each stop it as Ctrl-C does. ``ltrsched label`` then writes its
finished labels (``labelling.run``; a further signal while they are written waits until they are on disk);
``sweep`` and ``capacity`` keep their finished runs (``experiments.commands``).

The CLI exits 128 + the number of the signal that stopped the command (130, 143, 129): the stop is a
``KeyboardInterrupt`` whose argument names it (``KeyboardInterrupt("SIGHUP")``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

#: The signals that stop a command as Ctrl-C does (SIGHUP where the platform has it). SIGHUP's default action
#: ended the process at once: up to ``--chunk`` - 1 finished labels per chunk in flight were lost.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class SignalStops:
    """While its ``with`` block runs (in the main thread, where Python runs signal handlers; nothing elsewhere), each
    of :data:`STOP_SIGNALS` raises ``KeyboardInterrupt(NAME)``, except one that was ignored before (``nohup``'s SIGHUP,
    a background job's SIGINT: still ignored); inside :meth:`writing` they wait instead. The handlers before are put
    back on leaving."""

    def __init__(self) -> None:
        self._before: dict[int, object] = {}
        self._writing: int | None = None  # labels being written (signals wait); None: a signal stops the run
        self.held: list[str] = []  # the signals that arrived while labels were written, by name

    def __enter__(self) -> SignalStops:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                before = signal.getsignal(sig)
                if before is signal.SIG_IGN:
                    continue
                signal.signal(sig, self._stop)
                self._before[sig] = before
        return self

    def __exit__(self, *exc) -> None:
        for sig, before in self._before.items():
            signal.signal(sig, before if before is not None else signal.SIG_DFL)  # (None: not set from Python)
        self._before.clear()

    def _stop(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self._writing is None:
            raise KeyboardInterrupt(name)
        self.held.append(name)
        if len(self.held) == 1:
            # (a terminal that hung up fails the write, and a print inside one to the same stream is refused as
            # reentrant: neither may stop the write of the labels)
            with contextlib.suppress(OSError, RuntimeError):
                print(f"note: label: {name}: still writing {self._writing} label(s), please wait", file=sys.stderr,
                      flush=True)

    @contextlib.contextmanager
    def writing(self, count: int, stopping: bool) -> Iterator[None]:
        """Inside: ``count`` labels are being written, and the signals wait (the first says so, once). After it, a
        signal that waited stops the run (``KeyboardInterrupt(NAME)``) unless it is ``stopping`` already (a signal
        or an error: that stop goes on, with its exit code)."""
        self._writing = count
        try:
            yield
        finally:
            self._writing = None
        if self.held and not stopping:
            raise KeyboardInterrupt(self.held[0])
