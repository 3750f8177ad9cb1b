"""Numbers written as text (token counts, request ids): the one rule every container reads them by.

A ``.csv`` has no types, so every count it gives is text; a parquet may hold them in a Utf8 column and a ``.jsonl``
as JSON strings (``"output_tokens": "12"``). Such text is read as the number it spells when, with spaces or tabs
around it, it is written in ASCII decimal notation: an optional sign, digits with an optional decimal point, and an
optional exponent (``12``, `` 12``, ``012``, ``+12``, ``12.0``, ``1e3``: what a ``.csv``'s count fields are read
as); the count's own checks (a whole number in 1..2**53) then apply as to any number. Anything else (``0x10``,
``1_000``, ``1,000``, digits of other scripts such as ``١٢``, ``nan``, ``inf``, an empty text) is refused in one
line naming the file, the row or line, and the field (:func:`text_error`). Before, a ``.csv`` read ``"12"`` and a
parquet's Utf8 column and a ``.jsonl``'s string refused it; a ``.csv`` refused ``+12`` (reading ``+12.0``) with an
error naming the column's first value and row, not the bad one, and ``١٢`` with polars' own error. Request ids
written as text are read by the same rule (:func:`ltrsched.workloads.schema.request_ids`; a ``.jsonl``'s
``"request_id": "7"`` was refused, and a parquet's Utf8 ``"7.0"``, which a ``.csv`` reads).
"""

from __future__ import annotations

import math
import re

import polars as pl

from ltrsched.errors import UserError

#: A number in ASCII decimal notation, spaces or tabs around it (the same pattern for Python's ``re`` and polars').
NUMBER_TEXT = r"^[ \t]*[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[ \t]*$"
#: Of those, the integers (read exactly, as Int64 where they fit).
_INTEGER_TEXT = r"^[ \t]*[-+]?[0-9]+[ \t]*$"
#: NaN in any case (``NaN``: polars' and pandas' spelling; ``nan``: numpy's and Python's), read where a column
#: may be missing (:data:`~ltrsched.workloads.schema.NUMERIC_OPTIONAL_COLUMNS`: a ``.csv`` read ``NaN`` and refused
#: ``nan``; a parquet's and a ``.jsonl``'s text refused both).
MISSING_TEXT = r"(?i)^[ \t]*[-+]?nan[ \t]*$"
_NUMBER = re.compile(NUMBER_TEXT)
_INTEGER = re.compile(_INTEGER_TEXT)
_MISSING = re.compile(MISSING_TEXT)


def text_number(text: str, missing: bool = False) -> int | float | None:
    """The number ``text`` spells by :data:`NUMBER_TEXT` (an ``int`` for digits alone, else a ``float``), or with
    ``missing`` NaN for :data:`MISSING_TEXT`; None if it spells none."""
    if missing and _MISSING.fullmatch(text):
        return math.nan
    if not _NUMBER.fullmatch(text):  # (fullmatch: re's "$" also matches before a last "\n", polars' does not)
        return None
    return int(text) if _INTEGER.fullmatch(text) else float(text)


def text_numbers(col: pl.Series, missing: bool = False) -> tuple[pl.Series, int | None]:
    """A text column of numbers ``col`` (String) read by :data:`NUMBER_TEXT`: Int64 if every value is digits alone
    (and fits), else Float64 (as a ``.csv``'s column of ``12`` and ``12.0`` is), nulls kept, texts that spell no
    number null (with ``missing``, :data:`MISSING_TEXT` NaN); and the 0-based row of the first non-null value that
    spells no number (None if none does)."""
    text = col.cast(pl.String)
    nan = text.str.contains(MISSING_TEXT).fill_null(False) if missing else pl.Series([False] * text.len())
    bad = (text.is_not_null() & ~text.str.contains(NUMBER_TEXT) & ~nan).fill_null(False)
    first = int(bad.arg_true()[0]) if bad.any() else None
    stripped = pl.DataFrame({"t": text, "bad": bad}).select(  # (a text that spells no number: null, not inf)
        pl.when(~pl.col("bad")).then(pl.col("t").str.strip_chars(" \t"))).to_series()
    integers = stripped.cast(pl.Int64, strict=False)
    if (integers.is_not_null() | text.is_null()).all():
        return integers.alias(col.name), first
    numbers = stripped.cast(pl.Float64, strict=False)
    if nan.any():
        numbers = pl.select(pl.when(pl.lit(nan)).then(float("nan")).otherwise(pl.lit(numbers))).to_series()
    return numbers.alias(col.name), first


def number_texts(col: pl.Series, path, rows: pl.Series, missing: bool = False) -> pl.Series:
    """A table's count column ``col`` (a ``.csv``'s or a parquet's, under the file's own name) as numbers if it holds
    text (String, Categorical: :func:`text_numbers`), else ``col`` itself (the schema checks the values); one-line
    :class:`UserError` (:func:`text_error`) naming ``path`` and the row (``rows``: each value's in the file) of the
    first text that spells no number (``missing``: NaN's too, a predictor column's missing value)."""
    if not isinstance(col.dtype, (pl.String, pl.Categorical, pl.Enum)):
        return col
    numbers, bad = text_numbers(col, missing)
    if bad is not None:
        raise UserError(text_error(path, col.name, col.cast(pl.String)[bad], f"row {rows[bad]}"))
    return numbers


def text_error(path, field: str, value: str, where: str, what: str = "column") -> str:
    """The one-line error for a count written as text that spells no number, in every container the words a
    ``.csv``'s column of text had: ``path`` the file, ``field`` the file's own name of the column or key (``what``:
    ``"column"`` or ``"key"``), ``where`` its row (``"row 2"``: a table's, 1-based after a header) or line (``"line
    2"``: a ``.jsonl``'s)."""
    return (f"{path}: {what} {field!r} has non-numeric values (String, first: {value!r}) in {where}; it must hold "
            "numbers (a number written as text: ASCII decimal digits, e.g. '12', as a .csv's fields are read)")
