"""A request file's ``id`` as its requests' ids: one rule for a ``.jsonl`` request line's key, a ``.csv``'s column and
a flat parquet's (in any case, spaces around it, as the tables' other names).

``request_id`` (ours) is the request id wherever it is given. Where it is not, a file's ``id`` is, if every request
gives one that is a whole number (an integer, an integral float, integer text: :mod:`~ltrsched.workloads.number_text`),
and every one is a request id we can keep (:func:`usable`: in [0, 10,000,000), each once). An ``id`` that is text of
another kind (``chatcmpl-1``, a UUID), missing on some requests, repeated (a conversation's or a user's id on several
lines) or outside that range (a log's 64-bit ids) is another tool's label, not a request id: not read, the requests
numbered 0, 1, ... as without it (a file that loaded before it was read still loads). (``id`` was never read: the
requests were numbered, results named other ids than the file's, and duplicates passed, where a ``request_id`` column
of the same values was kept and checked.) A conversation record's ``id`` stays its record's id (``source_id``), which
errors and notes name. :func:`adopted_ids` is the rule's one place.
"""

from __future__ import annotations

import polars as pl

from ltrsched.workloads.number_text import text_number, text_numbers
from ltrsched.workloads.schema import MAX_REQUEST_ID

#: A file's name for its requests' ids besides ours (``request_id``), matched in any case in a table.
ID_NAME = "id"


def id_column(columns) -> str | None:
    """A table's ``id`` column among ``columns`` (``id`` in any case, spaces around it) where it has no
    ``request_id`` (in any case) beside it, else None. (Two ``id`` columns, ``id`` and ``ID``: None, neither read.)"""
    names = [c for c in columns if isinstance(c, str)]
    if any(c.strip().lower() == "request_id" for c in names):
        return None
    found = [c for c in names if c.strip().lower() == ID_NAME]
    return found[0] if len(found) == 1 else None


def whole_numbers(values: pl.Series) -> pl.Series | None:
    """``values`` (a file's ``id`` column as read) as numbers (Float64 or Int64) if every value is a whole number
    (integers, integral floats, integer text), else None (text of another kind, a null, a boolean: no ids)."""
    if values.null_count():
        return None
    if values.dtype.is_integer():
        return values
    if values.dtype.is_float():
        numbers = values
    elif values.dtype == pl.String:
        numbers, bad = text_numbers(values.str.strip_chars())
        if bad is not None or not numbers.dtype.is_numeric():
            return None
        if numbers.dtype.is_integer():
            return numbers
        numbers = numbers.cast(pl.Float64)
    else:
        return None
    whole = (numbers.is_finite() & (numbers == numbers.floor())).all()
    return numbers if whole else None


def adopted_ids(numbers) -> pl.Series | None:
    """A file's ``id`` values as its requests' ids (``request_id``, Int64) where every request gives a whole number and
    they are :func:`usable`, else None (numbered as without them). ``numbers``: :func:`whole_numbers`' Series, or
    :func:`whole_number`'s value per ``.jsonl`` line (None where a line gives none)."""
    if numbers is None or len(numbers) == 0:
        return None
    series = pl.Series("request_id", numbers, strict=False)
    if series.null_count() or not usable(series):
        return None
    return series.cast(pl.Int64)


def usable(numbers) -> bool:
    """Whether ``numbers`` (a file's ``id`` values, whole numbers: :func:`whole_numbers`, or :func:`whole_number`'s per
    line) can be its requests' ids: each in [0, MAX_REQUEST_ID) and given once."""
    numbers = pl.Series(numbers, dtype=pl.Float64, strict=False)
    return bool(((numbers >= 0) & (numbers < MAX_REQUEST_ID)).all()) and numbers.n_unique() == len(numbers)


def whole_number(value) -> int | float | None:
    """A ``.jsonl`` line's ``id`` value as a number if it is a whole number (an integer, an integral float, integer
    text), else None."""
    number = text_number(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    if isinstance(number, float) and not number.is_integer():
        return None
    return number
