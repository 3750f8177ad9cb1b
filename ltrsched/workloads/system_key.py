"""A record's ``system`` key: the system prompt given beside the request rather than as a message.

Anthropic's Messages API takes the system prompt as a top-level ``system`` (a string, or a list of content blocks
``{"type": "text", "text": ...}``), not as a ``system`` message; some request logs write it so beside a ``prompt``
too. Its text is sent to the model ahead of the user's turn, so it counts among the prompt's tokens, as a
conversation's system messages do (joined by :data:`~ltrsched.workloads.schema.SYSTEM_SEPARATOR`, a blank line,
ahead of the user's text). A conversation record's ``system`` was dropped, and a ``.jsonl`` request line's too
(a prompts file's line read it: :func:`ltrsched.workloads.prompts.load_prompts`): their prompts were counted
without it, silently (a 15-token question after 20 times "You are a poet." was a 15-token prompt, not 116).
"""

from __future__ import annotations

import re

#: The key, as written (keys match as written, as a ``.jsonl`` request line's others).
SYSTEM_KEY = "system"
#: The content-block types that hold text (Anthropic's ``text``; OpenAI's parts too).
_TEXT_BLOCKS = ("text", "input_text")
#: The key in a file's bytes (a cache key marks the ``.json`` and ``.jsonl`` files that may name it, whose prompts were
#: counted without it before: :func:`ltrsched.workloads.sharegpt.may_give_system_key`).
SYSTEM_KEY_BYTES = re.compile(rb'"system"\s*:')


def system_text(value) -> str | None:
    """The text of a record's ``system`` value: a string as it is, a list of text blocks (``{"type": "text", "text":
    ...}``) joined by newlines (as a message's content parts are); ``""`` for null or an empty list (no system
    prompt); None for anything else (a number, a block that is no text: not readable)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [b.get("text") if isinstance(b, dict) and b.get("type") in _TEXT_BLOCKS else None for b in value]
        return "\n".join(texts) if all(isinstance(t, str) for t in texts) else None
    return None
