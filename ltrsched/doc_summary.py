"""One line describing a registered class (a policy, a router) for the ``policies`` and ``routers`` listings."""

from __future__ import annotations

import inspect
import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\"'])")


def doc_summary(cls: type, width: int = 120) -> str:
    """The whole sentences of the class's own docstring's first paragraph that fit in ``width`` characters (at
    least the first sentence), on one line. Only the class's own docstring counts: a plugin class without one
    is described as such, not by its base class's docstring ("Base class of scheduling policies.")."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return "(no docstring)"
    paragraph = inspect.cleandoc(doc).split("\n\n")[0]
    sentences = _SENTENCE_END.split(" ".join(paragraph.split()))
    text = sentences[0]
    for sentence in sentences[1:]:
        if len(text) + 1 + len(sentence) > width:
            break
        text += " " + sentence
    return text
