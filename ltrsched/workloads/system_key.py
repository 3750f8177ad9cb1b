"""A record's ``system`` key: the system prompt given beside the request rather than as a message.

Anthropic's Messages API takes the system prompt as a top-level ``system`` (a string, or a list of content blocks
``{"type": "text", "text": ...}``), not as a ``system`` message; some request logs write it so beside a ``prompt``
too. Its text is sent to the model ahead of the user's turn, so it counts among the prompt's tokens, as a
conversation's system messages do (joined by :data:`~ltrsched.workloads.schema.SYSTEM_SEPARATOR`, a blank line,
ahead of the user's text). A conversation record's ``system`` was dropped, and a ``.jsonl`` request line's too
(a prompts file's line read it: :func:`ltrsched.workloads.prompts.load_prompts`): their prompts were counted
without it, silently (a 15-token question after 20 times "You are a poet." was a 15-token prompt, not 116); so was
a ``.csv``'s or flat parquet's ``system`` column (:func:`join_system_column`), which a prompts file's is read by.
"""

from __future__ import annotations

import re

import polars as pl

from ltrsched.errors import UserError
from ltrsched.workloads.blank_text import is_blank
from ltrsched.workloads.schema import SYSTEM_SEPARATOR

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


def system_column(columns) -> str | None:
    """A table's column of system text: the one named ``system`` in any case, spaces around it (a table's names are
    read in any case), or None."""
    return next((c for c in columns if isinstance(c, str) and c.strip().lower() == SYSTEM_KEY), None)


def join_system_column(df: pl.DataFrame, prompt: str, where: str) -> pl.DataFrame:
    """``df`` (a ``.csv``'s or a flat parquet's requests) with its :func:`system_column` ahead of each ``prompt``
    text, a blank line between (:data:`~ltrsched.workloads.schema.SYSTEM_SEPARATOR`), as a ``.jsonl`` line's
    ``system`` and a prompts file's ``system`` column are read, and without the column; ``df`` itself without one.
    A row with no system text (null, ``""``), or with no prompt text or a blank one (refused as an empty prompt, as
    without it), keeps its prompt. (The column was dropped, silently: the prompt counted without it.) One-line
    :class:`UserError` naming ``where`` (the file) for a column that is not text."""
    name = system_column(df.columns)
    if name is None or prompt not in df.columns:
        return df
    col = df[name]
    if col.dtype == pl.Null:
        return df.drop(name)
    if col.dtype != pl.String:
        first = col.drop_nulls().head(1).to_list()
        raise UserError(f"{where}: column {name!r} holds {col.dtype} values"
                        + (f" (first: {first[0]!r}, row {int(col.is_not_null().arg_max()) + 1})" if first else "")
                        + ", not the system text; it must hold text")
    texts = df[prompt].to_list()
    joined = [f"{s}{SYSTEM_SEPARATOR}{t}" if s and isinstance(t, str) and not is_blank(t) else t
              for s, t in zip(col.to_list(), texts)]
    return df.with_columns(pl.Series(prompt, joined, dtype=df.schema[prompt])).drop(name)
