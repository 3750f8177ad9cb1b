"""Names given on the command line that end up inside files and reports (a profile's name, a score column's).

A line break, NUL, ESC or other control character in such a name splits or garbles the lines, tables and
file headers it is written into, so it is refused as one line before anything runs. Paths are not refused (a file
may be named so); messages show them, and any text of the user's, on one line (:func:`one_line`, :func:`shown_path`).
"""

from __future__ import annotations

import os

from ltrsched.errors import UserError


def one_line(message: object) -> str:
    """``message`` on one line, as the CLI prints errors and success lines: a line break in it (a file name's, a
    value's) written as its escape, ``\\n``, and so every other control character but the tab (``\\x1b``: an ESC
    of a file name recoloured or cleared the terminal)."""
    return str(message).translate(_ESCAPES)


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as a message prints it (``wrote PATH``, ``error: PATH: ...``): on one line (:func:`one_line`). A
    file named ``"a\\nb.png"`` made ``wrote a`` and ``b.png`` two lines, the second one no line of ours."""
    return one_line(os.fspath(path))


#: Line breaks (:meth:`str.splitlines` breaks at each) written as Python writes them, and the other control
#: characters but the tab (C0, DEL, C1) as ``\\xNN``.
_ESCAPES = {**{c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)] if c != ord("\t")},
            **str.maketrans({"\r": "\\r", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\u2028": "\\u2028",
                             "\u2029": "\\u2029"})}


def check_printable(value: str, option: str) -> None:
    """Raise :class:`UserError` unless ``value`` (given as ``option``, e.g. ``--name``) is printable text:
    no line breaks, tabs, NUL or other control characters (:meth:`str.isprintable`)."""
    if not value.isprintable():
        raise UserError(f"{option} must be printable text, without line breaks or control characters, got {value!r}")
