"""JSON Lines text files: one JSON value per line, read strictly (:mod:`ltrsched.workloads.utf8`)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator

from ltrsched.errors import UserError
from ltrsched.strict_json import DuplicateKeyError, unique_keys
from ltrsched.workloads.utf8 import decode_utf8


def jsonl_records(path: Path) -> Iterator[tuple[int, object]]:
    """``(line number, value)`` for each non-blank line of ``path`` (1-based; lines end with ``\\n``, ``\\r\\n`` or
    ``\\r``, as in a text file; a byte-order mark is dropped); one-line :class:`UserError` naming the line for one
    that is not JSON (or names a key twice, or is JSON Python cannot read: an integer of over 4,300 digits, nesting
    deeper than the recursion limit), or for an invalid UTF-8 byte."""
    with io.StringIO(decode_utf8(path.read_bytes(), path), newline=None) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=unique_keys)
            except DuplicateKeyError as exc:  # (json kept the last value silently)
                raise UserError(f"{path}:{lineno}: {exc}; keep one") from None
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            except ValueError as exc:  # an integer of over 4,300 digits (Python's limit): was a traceback
                raise UserError(f"{path}:{lineno}: not readable JSON ({str(exc).split(';')[0]})") from None
            except RecursionError:  # e.g. 100,000 nested [ (json recurses once per level): was a traceback
                raise UserError(f"{path}:{lineno}: not readable JSON (nested too deeply)") from None
            yield lineno, record
