"""An arrival time's range and the one error line for a value that is none, whatever the container.

An arrival time is a finite number >= 0, in the unit its name states (``arrival_time_ms``: milliseconds; else
seconds: :func:`~ltrsched.workloads.arrival_names.arrival_suffix`), or a date-time text (every one in a file then a
date-time). A value that is none (null, ``-1``, ``NaN``, ``inf``, ``true``) is refused in one line naming the file,
the field (a table's column or a ``.jsonl``'s key, the file's own name: ``timestamp``, ``arrival_time_ms``), its row
or line, and the value as the file gives it (:func:`arrival_error`: ``-1500`` ms, not ``-1.5`` s); so is a date-time
among numbers (:func:`mixed_kinds_error`). A ``.csv``, a parquet and a ``.jsonl`` say the same. Before, a table said
``column arrival_time has 1 missing value(s)`` where a ``.jsonl`` said ``'arrival_time' must be a number of seconds or
a date-time, got None``; a negative or infinite time was ``1 request(s) with a negative or non-finite arrival_time
(first: -1.5)`` under our name in seconds; a date-time after a number was a table's "non-numeric values" and a
``.jsonl``'s "the arrival time is a number where line 2 gives a date-time", naming line 1. Text that is neither a
number nor a date-time is :func:`~ltrsched.workloads.arrival_names.arrival_text_error`'s.
"""

from __future__ import annotations

import math

import polars as pl

from ltrsched.workloads.arrival_names import UNIT_SUFFIXES, arrival_suffix


def _unit(field: str) -> str:
    """The unit of the arrival times a column or key named ``field`` holds, in words."""
    return "milliseconds" if arrival_suffix(field) == "_ms" else "seconds"


def shown_arrival(value) -> str:
    """``value`` (a time as read: a number, a boolean, or None) as the error shows it, alike in every container: an
    integral float as the whole number (``-1.0``: ``-1``), other numbers as Python writes them (``-0.5``, ``nan``,
    ``inf``), None as ``missing (null)``."""
    if value is None:
        return "missing (null)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def is_arrival(value) -> bool:
    """Whether ``value`` (a number as read, not text) is an arrival time: a finite number >= 0; never a boolean."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 if isinstance(value, int) else math.isfinite(value) and value >= 0


def arrival_error(path, field: str, value, where: str, what: str = "column") -> str:
    """The one-line error for an arrival time ``value`` (a number, boolean or None as read: not :func:`is_arrival`)
    in every container: ``path`` the file, ``field`` the file's own name of the ``what`` (``"column"`` or ``"key"``),
    ``where`` its place (``"row 2"``: a table's, 1-based after a header; ``"line 2"``: a ``.jsonl``'s)."""
    return (f"{path}: {what} {field!r} in {where} is {shown_arrival(value)}, not an arrival time (a finite number of "
            f"{_unit(field)} >= 0, or a date-time)")


def first_bad_arrival(col: pl.Series) -> int | None:
    """The 0-based row of a table's numeric (or Boolean) arrival column ``col`` (as the file gives it, before any unit
    is applied) that holds no arrival time (null, negative, NaN, infinite, a boolean); None if every row holds one, or
    if ``col`` is of another type (text: the caller reads it)."""
    if col.dtype == pl.Boolean:  # (true would cast to 1 s)
        return int(col.is_not_null().arg_max()) if col.len() else None
    if not col.dtype.is_numeric():
        return None
    values = col.cast(pl.Float64)
    bad = values.is_null() | ~values.is_finite().fill_null(False) | (values < 0).fill_null(False)
    return int(bad.arg_true()[0]) if bad.any() else None


def mixed_kinds_error(path, field: str, where: str, first_where: str, datetime: str, number_first: bool,
                      what: str = "column") -> str:
    """The one-line error for arrival times of two kinds: the value at ``where`` is of the other kind than the first
    value, at ``first_where`` (``number_first``: the first is a number, the one at ``where`` the date-time text
    ``datetime``; else the first is ``datetime`` and the one at ``where`` a number)."""
    this, first = ((f"a date-time ({datetime!r})", "a number") if number_first
                   else ("a number", f"a date-time ({datetime!r})"))
    return (f"{path}: {what} {field!r} in {where} is {this} where {first_where} gives {first}; give every arrival "
            f"time as a number ({_unit(field)}) or every one as a date-time")


def in_units(suffixes) -> str:
    """``", in other units"`` if the name suffixes (keys of :data:`UNIT_SUFFIXES`, or "" for none) state other
    units, else ``", both in seconds"`` (``arrival_time`` beside ``arrival_time_s``: it said "in other units")."""
    return ", in other units" if len({UNIT_SUFFIXES.get(s, 1.0) for s in suffixes}) > 1 else ", both in seconds"


def two_keys_error(where: str, keys) -> str:
    """The one-line error for a ``.jsonl`` request line or a conversation record (``where``: ``FILE:2``, ``FILE:
    record 2 (id 'b')``) that gives its arrival time under two or more ``keys`` (a record's said no word of their
    units)."""
    return (f"{where}: {' and '.join(repr(k) for k in keys)} both give the arrival time"
            f"{in_units(arrival_suffix(k) for k in keys)}; give one")


def missing_time_error(where: str, key: str, others: str = "lines") -> str:
    """The one-line error for a ``.jsonl`` request line or a conversation record (``where``, as
    :func:`two_keys_error`'s) without an arrival time where ``others`` (``"lines"``, ``"records"``) give one under
    ``key`` (it would arrive at t = 0). (A record's said "no arrival time, where others give 'timestamp'; give it on
    every record, under one name, or on none".)"""
    return f"{where}: no {key!r}, which other {others} have; give it on every {others[:-1]} or none"
