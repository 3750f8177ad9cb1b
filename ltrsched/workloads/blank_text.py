"""Blank text: a prompt that shows nothing, where an empty prompt is refused.

A text is blank if every character in it is whitespace or invisible: format characters (Unicode category ``Cf``:
zero-width space U+200B, zero-width (non-)joiner U+200C/U+200D, word joiner U+2060, byte-order mark U+FEFF, soft
hyphen U+00AD, ...), control characters (``Cc``), combining marks without a base character (``Mn``, ``Mc``,
``Me``), and the fillers that render as nothing (Hangul fillers, braille blank). Such a prompt was accepted as
text (a tokenizer counts tokens for each of those characters), served and scored as a request with no question.
"""

from __future__ import annotations

import unicodedata

#: Category prefixes of characters that show nothing by themselves (format, control, combining marks).
_INVISIBLE_CATEGORIES = ("Cf", "Cc", "M")
#: Letters and symbols drawn as empty space: Hangul fillers (U+115F, U+1160, U+3164, U+FFA0), braille blank U+2800.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _invisible(ch: str) -> bool:
    return ch in _BLANK_GLYPHS or unicodedata.category(ch).startswith(_INVISIBLE_CATEGORIES)


def is_blank(text: str) -> bool:
    """True if ``text`` is empty or holds only whitespace and invisible characters (the module's list); it stops at
    the first visible character (a 1 MB prompt costs nothing)."""
    return all(ch.isspace() or _invisible(ch) for ch in text)


def blank_why(text: str) -> str:
    """What a blank ``text`` (:func:`is_blank`) holds, for an error: ``"nothing"``, ``"only whitespace"``, or
    ``"only invisible characters (first: U+200B ZERO WIDTH SPACE)"``."""
    if not text:
        return "nothing"
    first = next((ch for ch in text if not ch.isspace()), None)
    if first is None:
        return "only whitespace"
    name = unicodedata.name(first, "a control character" if unicodedata.category(first) == "Cc" else "unnamed")
    return f"only invisible characters (first: U+{ord(first):04X} {name})"
