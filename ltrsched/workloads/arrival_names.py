"""The names a workload file gives its requests' arrival times under, in every format (a ``.csv``'s header, a
parquet's columns, a ``.jsonl`` line's keys, a conversation record's keys): one rule, :func:`arrival_suffix`."""

from __future__ import annotations

import re
from pathlib import Path

from ltrsched.workloads.file_suffix import file_suffix

#: A file's names for the arrival times (in any case, with spaces around them): ours, ``arrived_at``, ``arrival``,
#: ``timestamp`` (Azure's ``TIMESTAMP``, LMSYS's ``timestamp``, BurstGPT's ``Timestamp``) and ``tstamp`` (Chatbot
#: Arena's conversations, Unix seconds: :data:`ADDED_NAMES`).
ARRIVAL_NAMES = ("arrival_time", "arrived_at", "arrival", "timestamp", "tstamp")
#: Names of :data:`ARRIVAL_NAMES` read since a later change: a file naming one was loaded with every request at t = 0
#: (Chatbot Arena's ``tstamp``), so cache keys mark such files (:func:`file_may_name_added`) and no other's.
ADDED_NAMES = ("tstamp",)
#: Arrival-time units a name's suffix states: ``arrival_time_ms`` (or ``arrived_at_ms``, ``timestamp_ms``, ...)
#: holds milliseconds, ``arrival_time_s`` seconds (said so: no unit warning). A name without a suffix holds
#: seconds (or date-times); :func:`ltrsched.workloads.arrivals.seconds_unit_warning` warns when those look like
#: milliseconds. Suffix -> seconds per unit.
UNIT_SUFFIXES = {"_s": 1.0, "_ms": 1e-3}
#: Our arrival-time column: ``arrival_time`` and its unit suffixes (every format reads the other names of
#: :data:`ARRIVAL_NAMES` too: :func:`arrival_suffix`).
ARRIVAL_KEYS = ("arrival_time", *(f"arrival_time{s}" for s in UNIT_SUFFIXES))


def arrival_suffix(name: str) -> str | None:
    """The unit suffix (``""``: seconds, or date-times; else a key of :data:`UNIT_SUFFIXES`) of a column or key that
    names arrival times, in every format (a ``.csv``'s header, a parquet's columns, a ``.jsonl``'s keys, a
    conversation record's keys or a conversations parquet's columns): one of :data:`ARRIVAL_NAMES` (``arrival_time``,
    ``arrived_at``, ``arrival``, ``timestamp``, ``tstamp``; Azure's ``TIMESTAMP``), plain or with a suffix, in any case
    and with spaces around it; None for any other name. (A parquet and a ``.jsonl`` read ``arrival_time`` alone: a
    ``timestamp`` travelled along unread; conversation files read none but a conversations parquet's
    :data:`ARRIVAL_KEYS`.)"""
    return _SUFFIXES.get(name.strip().lower()) if isinstance(name, str) else None


def arrival_text_error(path, field: str, value: str, where: str, what: str = "column") -> str:
    """The one-line error for an arrival time written as text that is neither a number nor a date-time (``'soon'``),
    in every container: ``field`` the file's own name of the ``what`` (``"column"`` or ``"key"``), ``where`` its row
    (``"row 2"``) or line (``"line 2"``). (A ``.jsonl`` said "'arrival_time' must be a number of seconds or a
    date-time, got 'soon'", a parquet "column arrival_time has non-numeric values ... it must hold numbers or
    date-times".)"""
    unit = "milliseconds" if arrival_suffix(field) == "_ms" else "seconds"
    return (f"{path}: {what} {field!r} has non-numeric values (String, first: {value!r}) in {where}; it must hold "
            f"numbers ({unit}) or date-times")


#: Unit suffixes of arrival-time names that no format reads (microseconds, nanoseconds, minutes, hours, and spellings
#: of seconds and milliseconds other than ``_s`` and ``_ms``) -> the unit in words. A column so named was read as no
#: arrival times at all: every request at t = 0, the trace's times silently dropped (:func:`unread_arrival_unit`).
UNREAD_UNITS = {
    **dict.fromkeys(("us", "µs", "usec", "usecs", "micros", "microseconds"), "microseconds"),
    **dict.fromkeys(("ns", "nsec", "nsecs", "nanos", "nanoseconds"), "nanoseconds"),
    **dict.fromkeys(("min", "mins", "minutes"), "minutes"),
    **dict.fromkeys(("h", "hr", "hrs", "hours"), "hours"),
    **dict.fromkeys(("sec", "secs", "seconds"), "seconds"),
    **dict.fromkeys(("msec", "msecs", "millis", "milliseconds"), "milliseconds"),
}
#: Each arrival-time name with an unread unit suffix (lower case; ``_``, ``-`` or a space before the unit) -> its
#: base name and the unit in words.
_UNREAD = {f"{base}{sep}{unit}": (base, words) for base in ARRIVAL_NAMES for sep in ("_", "-", " ")
           for unit, words in UNREAD_UNITS.items()}


def unread_arrival_unit(names, where: str) -> None:
    """One-line :class:`~ltrsched.errors.UserError` naming ``where`` (a file, or a file's line) if one of ``names``
    (a header's columns, a record's keys) names arrival times in a unit no format reads (``arrival_time_us``,
    ``timestamp_ns``, ``arrived_at_min``: :data:`UNREAD_UNITS`); the caller asks only where no name it reads gives
    the times. (Such a column was not read: every request arrived at t = 0, and ``--arrival replay`` said the file
    had no arrival times.)"""
    from ltrsched.errors import UserError

    for name in names:
        found = _UNREAD.get(name.strip().lower()) if isinstance(name, str) else None
        if found is not None:
            base, words = found
            raise UserError(f"{where}: {name!r} gives arrival times in {words}, a unit ltrsched does not read; "
                            f"convert them to seconds ({base} or {base}_s) or milliseconds ({base}_ms), or drop "
                            "the column")


#: Each name :func:`arrival_suffix` reads (in lower case) -> its unit suffix: one look-up a key (the search of every
#: name and suffix, 5 keys a line, took most of a 100,000-line ``.jsonl``'s load).
_SUFFIXES = {base + suffix: suffix for suffix in ("", *UNIT_SUFFIXES) for base in ARRIVAL_NAMES}


#: A JSON key that is one of :data:`ARRIVAL_NAMES` (in any case, spaces around it, a unit suffix), in a file's bytes.
ARRIVAL_KEY_BYTES = re.compile(rb'"\s*(?:' + b"|".join(n.encode() for n in ARRIVAL_NAMES) + rb')(?:_s|_ms)?\s*"\s*:', re.I)
#: A ``\u`` escape of a letter, ``_`` or a space, which could spell such a key (JSON writers escape none of them).
_ESCAPED_LETTER = re.compile(rb"\\u00(?:[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|20)")


def json_may_name_arrivals(data: bytes) -> bool:
    """Whether JSON text (a ``.json``'s or a ``.jsonl``'s bytes) may have a key :func:`arrival_suffix` reads as
    arrival times: one written so, or an escaped letter that could spell one. (A cache key's probe: a file it says
    False of has none.)"""
    return ARRIVAL_KEY_BYTES.search(data) is not None or escapes_a_letter(data)


def escapes_a_letter(data: bytes) -> bool:
    """Whether JSON text holds a ``\\u`` escape of a letter, ``_`` or a space, which could spell a key or a name a
    cache key's probe looks for in its bytes (JSON writers escape none of them; non-ASCII text's escapes are others)."""
    return _ESCAPED_LETTER.search(data) is not None


#: A JSON key of :data:`ADDED_NAMES` (any case, spaces around it, a unit suffix), in a file's bytes.
ADDED_KEY_BYTES = re.compile(rb'"\s*(?:' + b"|".join(n.encode() for n in ADDED_NAMES) + rb')(?:_s|_ms)?\s*"\s*:', re.I)


def is_added_name(name) -> bool:
    """Whether a column or key names arrival times by one of :data:`ADDED_NAMES` (``tstamp``, ``TSTAMP_ms``, ...)."""
    suffix = arrival_suffix(name)
    return suffix is not None and name.strip().lower()[:len(name.strip()) - len(suffix)] in ADDED_NAMES


def file_may_name_added(path: Path) -> bool:
    """Whether the workload file ``path`` may name arrival times by one of :data:`ADDED_NAMES`, which loading did not
    read before (every request at t = 0): a ``.csv`` header or a parquet's column that does, a ``.json``'s or
    ``.jsonl``'s bytes that have such a key (or an escaped letter that could spell one). A cache key's probe: False
    for other files and a file that cannot be read (loading it says why)."""
    import csv

    import polars as pl

    suffix = file_suffix(path)
    try:
        if suffix in (".json", ".jsonl"):
            data = path.read_bytes()
            return ADDED_KEY_BYTES.search(data) is not None or escapes_a_letter(data)
        if suffix == ".csv":
            with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
                return any(is_added_name(name) for name in next(csv.reader(fh), []))
        if suffix == ".parquet":
            return any(is_added_name(name) for name in pl.read_parquet_schema(path))
    except Exception:  # (OSError, csv.Error, a parquet polars cannot read)
        return False
    return False
