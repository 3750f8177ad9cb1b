"""JSON Lines text files: one JSON value per line, read strictly (:mod:`ltrsched.workloads.utf8`)."""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Iterator

from ltrsched.errors import UserError
from ltrsched.strict_json import DuplicateKeyError, unique_keys
from ltrsched.workloads.load_progress import EVERY_LINES, LoadProgress
from ltrsched.workloads.utf8 import check_utf8


def jsonl_records(path: Path, loading: LoadProgress | None = None) -> Iterator[tuple[int, object]]:
    """``(line number, value)`` for each non-blank line of ``path`` (1-based; lines end with ``\\n``, ``\\r\\n`` or
    ``\\r``, as in a text file; a byte-order mark is dropped); one-line :class:`UserError` naming the line for one
    that is not JSON (or names a key twice, or is JSON Python cannot read: an integer of over 4,300 digits, nesting
    deeper than the recursion limit), or for an invalid UTF-8 byte. ``loading``: the load's progress, on which the
    lines read are counted (``load w.jsonl: K of N lines read``)."""
    data = path.read_bytes()
    check_utf8(data, path)  # (before any line is read: an invalid byte is the file's error, whatever comes before it)
    bar = loading.phase(total := _line_count(data), "lines", "read", "line") if loading is not None else None
    for lineno, line in enumerate(_lines(data), 1):
        if bar is not None and not lineno % EVERY_LINES:
            bar.update(EVERY_LINES)
        line = str(line, "utf-8")
        if not line.strip():
            continue
        if line.lstrip(" \t").startswith("\ufeff"):  # (json's "Unexpected UTF-8 BOM (decode using utf-8-sig)")
            raise UserError(f"{path}:{lineno}: the line begins with a byte-order mark (U+FEFF), which only a file's "
                            "start may hold: files joined together? remove it")
        try:
            record = _DECODER.decode(line)  # (json.loads built a decoder a line: 0.4 s of 100,000 lines)
        except DuplicateKeyError as exc:  # (json kept the last value silently)
            raise UserError(f"{path}:{lineno}: {exc}; keep one") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        except ValueError as exc:  # an integer of over 4,300 digits (Python's limit): was a traceback
            raise UserError(f"{path}:{lineno}: not readable JSON ({str(exc).split(';')[0]})") from None
        except RecursionError:  # e.g. 100,000 nested [ (json recurses once per level): was a traceback
            raise UserError(f"{path}:{lineno}: not readable JSON (nested too deeply)") from None
        yield lineno, record
    if bar is not None:
        bar.update(total - bar.n)


#: The one decoder of every line (what ``json.loads(line, object_pairs_hook=unique_keys)`` builds on each call).
_DECODER = json.JSONDecoder(object_pairs_hook=unique_keys)
_LINE_END = re.compile(rb"\r\n|\r|\n")


def _line_count(data: bytes) -> int:
    """How many lines :func:`_lines` cuts ``data`` into (blank ones too): its line ends, and a last line without one."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    ends = data.count(b"\n", start) + data.count(b"\r", start) - data.count(b"\r\n", start)
    return ends + (len(data) > start and data[-1:] not in (b"\n", b"\r"))


def _lines(data: bytes) -> Iterator[memoryview]:
    """The lines of ``data`` (a leading UTF-8 byte-order mark dropped), as a text file's: ``\\n``, ``\\r\\n`` or ``\\r``
    ends one, and the ends are left out. One line at a time: the whole file as a ``str`` took 4 bytes a character
    where one character was outside the BMP (an emoji), twice (the decoded text and its ``StringIO``): 1 GB for
    a 130 MB file of 200,000 ShareGPT prompts. A file without ``\\r`` (most are) is cut at each ``\\n`` by
    ``bytes.find``: the regular expression's search of every byte took 0.95 s of a 193 MB file's 2.0 s read, this
    0.05 s."""
    view = memoryview(data)
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if b"\r" not in data:
        while (end := data.find(b"\n", start)) >= 0:
            yield view[start: end]
            start = end + 1
        if start < len(data):
            yield view[start:]
        return
    for end in _LINE_END.finditer(data, start):
        yield view[start: end.start()]
        start = end.end()
    if start < len(data):
        yield view[start:]
