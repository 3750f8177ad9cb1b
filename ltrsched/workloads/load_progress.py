"""A big workload file's load on stderr, by :mod:`ltrsched.progress`'s conventions: off a terminal a plain line about
every 10 s of wall time (``LTRSCHED_PROGRESS_EVERY_S``; none for a shorter load), as ``load w.jsonl: 40,960 of
100,000 lines read, 10 s`` and then ``load w.jsonl: 61,440 of 200,000 texts tokenised, 20 s``; tqdm's bar on a
terminal. The phases share one clock (the load's). Nothing for a file under :data:`MIN_BYTES` (its load takes well
under a second: a bar would flash), nor for one that is no file on disk, nor inside :func:`hidden` (a command's
``--no-progress``)."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from ltrsched import progress

#: [bytes] The smallest file whose load shows its progress (a 16 MB ``.jsonl`` of prompts loads in about 0.5 s).
MIN_BYTES = 16 * 2**20
#: Lines read (texts tokenised) between two updates of the display [lines]: an update is a call and a clock read.
EVERY_LINES = 4096
#: Whether loads show their progress here (False inside :func:`hidden`).
_SHOWN: ContextVar[bool] = ContextVar("load_progress_shown", default=True)


@contextmanager
def hidden():
    """Loads inside show no progress (``simulate --no-progress``: the load's bar showed on a terminal all the same)."""
    token = _SHOWN.set(False)
    try:
        yield
    finally:
        _SHOWN.reset(token)


class LoadProgress:
    """The progress of loading ``path``, one phase at a time (:meth:`phase`): a context manager that closes the
    display of the last phase."""

    def __init__(self, path: Path):
        try:
            size = Path(path).stat().st_size
        except OSError:
            size = 0
        self.enabled = size >= MIN_BYTES and _SHOWN.get()
        name = Path(path).name
        self.label = f"load {name if name.isprintable() else ascii(name)}"
        self.start = progress.now()
        self._bar = None

    def phase(self, total: int, noun: str, verb: str, unit: str):
        """The display of a phase of ``total`` items (``noun``, plural, e.g. ``lines``; ``verb``, e.g. ``read``;
        ``unit`` tqdm's, singular), the last phase's closed; counted with ``update(k)``. None where the load shows
        none (a small file): the caller then counts nothing."""
        self.close()
        if not self.enabled:
            return None
        self._bar = progress.progress_bar(total, self.label, noun, verb, unit=unit, enabled=self.enabled,
                                          start=self.start, leave=False)
        return self._bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> LoadProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
