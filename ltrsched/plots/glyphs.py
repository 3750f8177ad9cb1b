"""Characters a figure's font lacks, noted once per command.

matplotlib warns once per missing character and per drawing pass ("Glyph 20808 (\\N{CJK UNIFIED IDEOGRAPH-5148})
missing from font(s) DejaVu Sans." and the source line that drew it: two lines each), so one policy or workload
named in Chinese put a dozen lines on stderr for each figure (the layout pass and the save each warn). No font with
CJK glyphs ships with matplotlib, so the characters are drawn as empty boxes either way; the command says so once.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Iterator, TextIO

#: matplotlib's warning for a character no font of the text's family has (its code point, then the fonts).
_MISSING_GLYPH = re.compile(r"Glyph (\d+) \(.*\) missing from font\(s\) (.+?)\.?\Z", re.DOTALL)

#: Characters listed in the note at most (the rest are counted).
MAX_LISTED = 20


def missing_glyph(message: object) -> tuple[str, str] | None:
    """The character and the font(s) named by matplotlib's missing-glyph warning ``message``; None for any other."""
    match = _MISSING_GLYPH.match(str(message))
    if match is None:
        return None
    try:
        return chr(int(match[1])), match[2]
    except (ValueError, OverflowError):
        return None


def _shown(char: str) -> str:
    """``char`` as the note prints it: itself if printable, else its ``\\uXXXX`` escape."""
    return char if char.isprintable() else f"\\u{ord(char):04x}"


def missing_glyphs_note(missing: dict[str, str]) -> str:
    """The one note line for the characters ``missing`` (character -> the font(s) that lack it), in order met."""
    fonts = ", ".join(dict.fromkeys(missing.values()))
    chars = list(missing)
    listed = "".join(_shown(c) for c in chars[:MAX_LISTED])
    more = f" and {len(chars) - MAX_LISTED:,} more" if len(chars) > MAX_LISTED else ""
    return (f"note: the figures' font ({fonts}) has no glyph for {len(chars):,} character(s) of their text, drawn as "
            f"empty boxes: {listed}{more}; to see them, install a font that has them and name it after the first "
            "in matplotlib's font.family (a matplotlibrc line such as 'font.family: DejaVu Sans, Noto Sans CJK JP')\n")


@contextlib.contextmanager
def missing_glyphs_noted(stream: TextIO) -> Iterator[dict[str, str]]:
    """Within the block, matplotlib's missing-glyph warnings are collected instead of shown (other warnings are
    shown as before); at its end, however it ends, one note line naming the characters is written to ``stream``
    if any was missing. Yields the collection (character -> font names)."""
    missing: dict[str, str] = {}
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        found = missing_glyph(message)
        if found is None:
            return shown(message, category, filename, lineno, file, line)
        missing.setdefault(*found)
        return None

    warnings.showwarning = show
    try:
        yield missing
    finally:
        if warnings.showwarning is show:
            warnings.showwarning = shown
        if missing:
            stream.write(missing_glyphs_note(missing))
