"""A token count's range and the one error line for a value that is no count, whatever the container.

A count [tokens] is a whole number in 1..:data:`MAX_TOKENS` (an integral float too: ``12.0``). A value that is none
(``0``, ``-3``, ``12.5``, ``2**60``, ``inf``, ``true``, or null: nothing given where a count must be) is refused in
one line naming the file, the field (a table's column or a ``.jsonl``'s key), its row or line, and the value
(:func:`count_error`): a ``.csv``, a parquet, a ``.jsonl`` request line and a conversation record's own count say
the same. Before, a ``.jsonl`` said ``'prompt_tokens' must be a whole number of tokens in 1..2**53, got None``, a
table ``column prompt_tokens has 1 missing value(s), the first in row 2`` (and for 0, 12.5 and 2**60 three other
sentences), a conversations file a fourth. Text that spells no number is :func:`~ltrsched.workloads.number_text.
text_error`'s; a ``.csv``'s ``true``/``false`` (any case, as polars reads a Boolean column) is a boolean, as a
``.jsonl``'s ``true`` and a parquet's Boolean are (:func:`csv_boolean`: it was refused as text that spells no number,
or as ``non-numeric values (Boolean, ...)``).
"""

from __future__ import annotations

import polars as pl

from ltrsched.workloads.number_text import NUMBER_TEXT

#: The largest count [tokens]: any larger is no length (and would not fit an int64 sum, nor a float exactly).
MAX_TOKENS = 2**53
#: What an error refusing an output of 0 tokens adds, in every format: the likely cause and what to do. A model that
#: stops at once generates its EOS token alone; a count that leaves the EOS token out then says 0, and an empty reply
#: text counts 0 (every request decodes at least one token, so none can be served as generating nothing).
ZERO_OUTPUT_HINT = ("an output of 0 tokens (an empty reply) is most likely a model that stopped at once (EOS as its "
                    "first token) counted without its EOS token; give output_tokens 1 (the EOS token), or leave the "
                    "request out")


def shown_count(value) -> str:
    """``value`` (a count as read: a number, a boolean, or None) as the error shows it, alike in every container: an
    integral float within the range as the whole number (a table's ``0.0`` column value and a ``.jsonl``'s ``-0.0``:
    ``0``), other numbers as Python writes them (``12.5``, ``1e+30``, ``inf``), None as ``missing (null)``."""
    if value is None:
        return "missing (null)"
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_TOKENS:
        return str(int(value))
    return repr(value)


def is_count(value) -> bool:
    """Whether ``value`` (a number as read, not text) is a token count: a whole number (an integral float too) in
    1..:data:`MAX_TOKENS`; never a boolean."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (not isinstance(value, float) or value.is_integer()) and 1 <= value <= MAX_TOKENS


def count_error(path, field: str, value, where: str, what: str = "column", output: bool | None = None) -> str:
    """The one-line error for a count ``value`` (a number, boolean or None as read: not :func:`is_count`) in every
    container: ``path`` the file (or a workload's name), ``field`` the file's own name of the ``what`` (``"column"``
    or ``"key"``), ``where`` its place (``"row 2"``: a table's, 1-based after a header; ``"line 2"``: a
    ``.jsonl``'s; ``"record 2 (id 'b')"``). An output of 0 (``output``: by default, ``field`` is ``output_tokens``)
    adds :data:`ZERO_OUTPUT_HINT`."""
    output = field == "output_tokens" if output is None else output
    zero = output and value == 0 and not isinstance(value, bool)
    return (f"{path}: {what} {field!r} in {where} is {shown_count(value)}, not a token count (a whole number in "
            "1..2**53)" + (f"; {ZERO_OUTPUT_HINT}" if zero else ""))


def csv_boolean(col: pl.Series, rows: pl.Series) -> tuple[bool, int] | None:
    """A ``.csv``'s count (or arrival-time) column ``col`` as polars read it (Boolean, or text) whose first value that
    spells no number is a boolean (``true``/``false`` in any case, spaces or tabs around it: what polars reads as
    one): that boolean and its row (``rows``: each value's in the file), for :func:`count_error` (or
    :func:`~ltrsched.workloads.arrival_values.arrival_error`); None otherwise (the text rule speaks of other text). A
    ``.csv`` has no types, so its ``True`` is the boolean a ``.jsonl``'s ``true`` and a parquet's Boolean column are,
    and refused in their words."""
    if col.dtype == pl.Boolean:
        given = col.is_not_null()
        return (bool(col.filter(given)[0]), int(rows.filter(given)[0])) if given.any() else None
    if col.dtype != pl.String:
        return None
    bad = (col.is_not_null() & ~col.str.contains(NUMBER_TEXT)).fill_null(False)
    if not bad.any():
        return None
    first = col.filter(bad)[0].strip(" \t").lower()
    return (first == "true", int(rows.filter(bad)[0])) if first in ("true", "false") else None
