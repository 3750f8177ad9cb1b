"""One line describing a registered class (a policy, a router) for the ``policies`` and ``routers`` listings."""

from __future__ import annotations

import inspect
import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\"'])")
MAX_NAME_COLUMN = 80  # [characters]
_RST_LITERAL = re.compile(r"``([^`]+)``")  # ``name`` in a docstring, `name` in a listing (as the CLI's help writes it)


def doc_summary(cls: type, width: int = 120) -> str:
    """The whole sentences of the class's own docstring's first paragraph that fit in ``width`` characters (at
    least the first sentence), on one line. Only the class's own docstring counts: a plugin class without one
    is described as such, not by its base class's docstring ("Base class of scheduling policies.")."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return "(no docstring)"
    paragraph = _RST_LITERAL.sub(r"`\1`", inspect.cleandoc(doc).split("\n\n")[0])
    sentences = _SENTENCE_END.split(" ".join(paragraph.split()))
    text = sentences[0]
    for sentence in sentences[1:]:
        if len(text) + 1 + len(sentence) > width:
            break
        text += " " + sentence
    return text


def listing_lines(rows: list[tuple[str, str]], column: int) -> list[str]:
    """A listing's rows of (name, summary), one line each (greppable): the summaries start in one column, at
    least ``column`` characters in, after the longest name up to :data:`MAX_NAME_COLUMN` (a longer name pushed its
    own summary out of line; a plugin's longer one still does, rather than every row's)."""
    width = max([column - 1] + [len(name) for name, _ in rows if len(name) <= MAX_NAME_COLUMN])
    return [f"{name:<{width}} {summary}" for name, summary in rows]
