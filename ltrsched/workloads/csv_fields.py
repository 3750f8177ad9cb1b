"""A ``.csv`` whose records do not split into the header's fields: a line with more fields than the header names (a
comma inside an unquoted field), or a quote left open (``"3,4``). polars' error named neither the line nor the
fix ("cannot parse CSV (ComputeError: found more fields than defined in 'Schema')")."""

from __future__ import annotations

import csv
import io


def field_error(text: str, path) -> str | None:
    """The one-line error for ``path``'s text ``text`` (its lines ended by LF) naming the first line (1-based, the
    header line 1) whose record has more fields than the header or whose quotes do not parse (Python's csv module,
    strict); None if every record splits (the caller then reports polars' own error)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1  # (the line the next record starts on: a quoted field may span lines)
    try:
        header = next(reader, None)
        if header is None:
            return None
        line = reader.line_num + 1
        for record in reader:
            if len(record) > len(header):
                return (f"{path}: line {line} has {len(record)} fields where the header names {len(header)}; quote a "
                        'field that holds a comma ("a, b"), or name every column in the header')
            line = reader.line_num + 1
    except csv.Error as exc:
        return (f"{path}: line {line}: the record does not parse as CSV ({exc}); a field that starts with a quote "
                'must end with one, and a quote inside a quoted field is written twice ("")')
    return None
