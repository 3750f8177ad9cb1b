"""When a command's held warnings and notes print (:class:`ltrsched.cli.Notices`).

The CLI holds the ``warning:``/``note:`` lines a command prints on stderr until it has run, so that bad input found
late still gets its one-line error alone. A long command calls :func:`work_starts` once its input is read and checked
and its work begins (engine runs, training, a sweep's runs, labelling): from there they print as they come.
"""

from __future__ import annotations

import sys


def work_starts() -> None:
    """The command's input is checked and its long work begins: print the notices held so far, and later ones at
    once. Nothing outside the CLI (stderr not a :class:`~ltrsched.cli.Notices`)."""
    begin = getattr(sys.stderr, "work_starts", None)
    if begin is not None:
        begin()
