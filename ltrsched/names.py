"""Names given on the command line that end up inside files and reports (a profile's name, a score column's).

A line break, NUL, ESC or other control character in such a name splits or garbles the lines, tables and
file headers it is written into, so it is refused as one line before anything runs.
"""

from __future__ import annotations

from ltrsched.errors import UserError


def check_printable(value: str, option: str) -> None:
    """Raise :class:`UserError` unless ``value`` (given as ``option``, e.g. ``--name``) is printable text:
    no line breaks, tabs, NUL or other control characters (:meth:`str.isprintable`)."""
    if not value.isprintable():
        raise UserError(f"{option} must be printable text, without line breaks or control characters, got {value!r}")
