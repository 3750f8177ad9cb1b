"""A long run's progress on stderr: tqdm's bar on a terminal; elsewhere (a pipe, a CI log, ``nohup``) a plain line
about every :data:`EVERY_S` seconds of wall time, as ``simulate fcfs: 1,234 of 4,000 requests finished, 21 s``
(tqdm's bar is ``\\r`` updates, which a log shows as one line at the end, or as nothing).

The seconds between plain lines are ``LTRSCHED_PROGRESS_EVERY_S`` (default :data:`EVERY_S`; 0: no plain lines, as
the test suite sets it, whose runs may take over 10 s on a loaded machine and whose tests read stderr line by line).
Nothing here goes to stdout: a command's JSON or CSV output there stays as it was. This module imports only
``ltrsched.numbers`` (the simulator and the engine both use it and never import each other)."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from ltrsched.numbers import seconds_from_env

#: Seconds of wall time between two plain progress lines (and before the first: a shorter run prints none).
EVERY_S = 10.0
#: The environment variable that sets them [s] (0: none).
ENV = "LTRSCHED_PROGRESS_EVERY_S"
#: Seconds of wall time a phase before the first item (a sweep's checks of its runs) runs before :class:`LateLine` says
#: what it is doing [s].
LATE_LINE_S = 2.0
#: Seconds of wall time a loop waiting on work in flight waits at most before it checks whether a heartbeat line is
#: due (:func:`poll_s`, :func:`beat`): the lines keep their :data:`EVERY_S` cadence, late by at most this.
POLL_S = 1.0


def every_s() -> float:
    """Seconds between plain progress lines [s]: ``LTRSCHED_PROGRESS_EVERY_S``, else :data:`EVERY_S`; 0 is none. A
    value that is no finite number >= 0 is a :class:`~ltrsched.errors.UserError`."""
    return seconds_from_env(ENV, EVERY_S, "no progress lines")


def now() -> float:
    """The wall clock the plain lines read [s] (monotonic; a test replaces it to run without sleeping)."""
    return time.monotonic()


def is_terminal(stream) -> bool:
    """Whether ``stream`` is a terminal (False for a closed stream or one without ``isatty``)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@dataclass
class PlainProgress:
    """tqdm's bar's interface (``update``, ``write``, ``refresh``, ``close``, ``total``, ``n``, a context manager) for a
    stderr that is not a terminal: :meth:`update` prints ``LABEL: N of TOTAL NOUN VERB, S s`` when :data:`EVERY_S`
    seconds or more have passed since the start or the last line. The clock is read only on an update, so a run
    with no update for a while prints its next line at its next update."""

    total: int
    label: str  #: what runs, e.g. ``simulate fcfs``
    noun: str  #: what is counted, plural, e.g. ``requests``
    verb: str = "finished"  #: what happened to them, e.g. ``finished``, ``done``
    every_s: float = field(default_factory=every_s)  #: [s] between lines (0: none)
    clock: Callable[[], float] = field(default=None, repr=False)  # type: ignore[assignment]
    n: int = 0  #: counted so far
    #: the clock's reading [s] when the work began (None: now), which the seconds shown and the first line's are
    #: counted from: a later phase of one piece of work (a file's texts tokenised after its lines are read) goes on
    #: with the first's clock, so that two phases of 6 s print a line as one of 12 s does
    start: float | None = None
    _start: float = field(default=0.0, init=False, repr=False)
    _next: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.clock is None:
            self.clock = now
        self._start = self.clock() if self.start is None else self.start
        self._next = self._start + self.every_s

    def update(self, k: int = 1) -> None:
        """Count ``k`` more; print a line when one is due."""
        self.n += k
        if not self.every_s:
            return
        t = self.clock()
        if t >= self._next:
            self._next = t + self.every_s
            print(self.line(t - self._start), file=sys.stderr, flush=True)

    def beat(self, running: int) -> None:
        """A heartbeat while ``running`` items are under way and none has ended: the line, with ``R running`` before
        its seconds, when one is due (the same cadence as :meth:`update`'s, which it shares)."""
        if not self.every_s:
            return
        t = self.clock()
        if t >= self._next:
            self._next = t + self.every_s
            print(self.line(t - self._start, running), file=sys.stderr, flush=True)

    def line(self, elapsed: float, running: int | None = None) -> str:
        """The progress line after ``elapsed`` seconds [s], with ``running`` items under way if given."""
        under_way = f", {running:,} running" if running is not None else ""
        return f"{self.label}: {self.n:,} of {self.total or 0:,} {self.noun} {self.verb}{under_way}, {elapsed:.0f} s"

    def write(self, text: str, file: TextIO | None = None, **_) -> None:
        """``text`` on its own line (``file``: stderr by default, as tqdm's ``write`` writes a line above its bar)."""
        print(text, file=sys.stderr if file is None else file, flush=True)

    def refresh(self) -> None:
        """Nothing to redraw (tqdm's bar redraws itself here)."""

    def set_postfix(self, *_, **__) -> None:
        """Nothing shown (tqdm's bar shows these values after itself, e.g. a training's loss; the line keeps its
        one form)."""

    def close(self) -> None:
        """Nothing to clear (a line printed stays in the log)."""

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, label: str, noun: str, verb: str = "finished", unit: str = "req", enabled: bool = True,
                 start: float | None = None, **tqdm_options):
    """A progress display for ``total`` items: with ``enabled`` False a silent (disabled) tqdm bar; on a terminal
    stderr tqdm's bar (``label`` its description, ``unit`` its unit, ``tqdm_options`` passed on); otherwise a
    :class:`PlainProgress` (``label``, ``noun``, ``verb`` make its line; ``start``: :attr:`PlainProgress.start`),
    silent where :func:`every_s` is 0."""
    from tqdm import tqdm

    if not enabled:
        return tqdm(total=total, disable=True)
    if is_terminal(sys.stderr):
        return tqdm(total=total, desc=label, unit=unit, **tqdm_options)
    return PlainProgress(total, label, noun, verb, every_s(), start=start)


def poll_s(bar) -> float | None:
    """Seconds [s] a loop waiting on work in flight for ``bar`` should wait at most before calling :func:`beat`:
    :data:`POLL_S` for a plain progress that prints lines, None (wait as long as it takes) for tqdm's bar, a disabled
    one, or a plain one with no lines."""
    return POLL_S if isinstance(bar, PlainProgress) and bar.every_s else None


def beat(bar, running: int) -> None:
    """A heartbeat on ``bar`` (:meth:`PlainProgress.beat`) while ``running`` items are under way; nothing on tqdm's bar
    (it shows its own elapsed time) or any other."""
    if isinstance(bar, PlainProgress):
        bar.beat(running)


class Heartbeat:
    """While its ``with`` block runs (one item under way in this process, e.g. a run computed here), a daemon thread
    calls :func:`beat` on ``bar`` every :func:`poll_s` seconds, so that an item of minutes shows its line; nothing
    (no thread) where :func:`poll_s` is None."""

    def __init__(self, bar, running: int = 1):
        self.bar, self.running = bar, running
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self, wait: float) -> None:
        while not self._stop.wait(wait):
            beat(self.bar, self.running)

    def __enter__(self) -> Heartbeat:
        wait = poll_s(self.bar)
        if wait is not None:
            self._thread = threading.Thread(target=self._loop, args=(wait,), name="ltrsched-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class LateLine:
    """One ``text`` line on stderr (the one of the block's start) if its ``with`` block still runs after ``after_s``
    seconds of wall time (default :data:`LATE_LINE_S`), printed by a daemon timer thread, never after the block has
    ended; nothing where :func:`every_s` is 0 (no progress lines). For a phase with no count of its own before a
    command's progress line starts: a sweep of 10,000 runs checked them for 30-50 s on a loaded machine, silent."""

    def __init__(self, text: str, after_s: float | None = None):
        self.text = text
        self.after_s = LATE_LINE_S if after_s is None else after_s
        self.printed = False
        self._lock = threading.Lock()
        self._ended = False
        self._timer: threading.Timer | None = None

    def _print(self) -> None:
        with self._lock:
            if not self._ended:
                self.printed = True
                self._stream.write(self.text + "\n")  # (one write: the line stays whole beside the main thread's)
                self._stream.flush()

    def __enter__(self) -> LateLine:
        self._stream = sys.stderr  # (the stderr of the block's start: a redirection inside it hides no line)
        if every_s():
            self._timer = threading.Timer(self.after_s, self._print)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._ended = True
        if self._timer is not None:
            self._timer.cancel()
