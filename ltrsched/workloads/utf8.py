"""Strict UTF-8 for text workload files (jsonl, csv, ShareGPT json).

An invalid byte is an error naming the file, the line and the byte, never a replacement character: a
replaced byte changes the prompt (and its token count) without a word. JSON text can hold what no UTF-8
byte can: an escaped lone UTF-16 surrogate (``"\\ud800"``), half of a character that no tokenizer encodes;
:func:`lone_surrogate` finds one.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from ltrsched.errors import UserError


#: Byte-order marks of the encodings a text file may be saved in besides UTF-8 (Windows' "Unicode" is UTF-16 LE),
#: longest first (UTF-32 LE's begins with UTF-16 LE's).
_OTHER_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
               (codecs.BOM_UTF16_BE, "UTF-16"))


#: The first bytes of a compressed file (or an archive) of the formats a data set is downloaded in -> the format.
_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"),
               (b"PK\x03\x04", "zip"), (b"7z\xbc\xaf\x27\x1c", "7z"))


def compressed(data: bytes) -> str | None:
    """The compression format (``gzip``, ``zstd``, ...) whose first bytes ``data`` starts with, or None."""
    return next((name for magic, name in _COMPRESSED if data.startswith(magic)), None)


def not_text_hint(data: bytes, source: str | Path) -> str | None:
    """The one-line message for a file ``source`` that cannot be read because it is compressed (``data``: its first
    bytes at least), e.g. ``"x.jsonl: the file is gzip-compressed; decompress it first"``; None if it is not. Only
    for a file that fails to read as it should (a text file whose first bytes happen to spell ``BZh`` reads)."""
    kind = compressed(data)
    if kind is None:
        return None
    if kind in ("zip", "7z"):
        return f"{source}: the file is a {kind} archive; extract the file it holds and give that"
    return f"{source}: the file is {kind}-compressed; decompress it first and give the file it holds"


def file_not_text_hint(path: Path) -> str | None:
    """:func:`not_text_hint` of the file ``path`` (its first bytes), for a file that failed to read as it should (a
    parquet polars refused); None if it is not compressed or cannot be read."""
    try:
        with Path(path).open("rb") as fh:
            return not_text_hint(fh.read(8), path)
    except OSError:
        return None


def check_not_utf16(data: bytes, source: str | Path) -> None:
    """One-line :class:`UserError` naming ``source`` if ``data`` is UTF-16 or UTF-32 text: it starts with their
    byte-order mark, or with a NUL byte beside a character, as ASCII text in those encodings does (in UTF-16, on the
    same side of at least 2 of its first 8 two-byte units: a UTF-8 prompts file whose first prompt starts with a NUL
    character has one such unit, and was refused as UTF-16 text). Such a file was "not valid UTF-8: byte 0xff" (a
    mark), or read as UTF-8 with a NUL between its characters: "not valid JSON at line 1 column 2"."""
    found = next((f"{name} text (its byte-order mark)" for bom, name in _OTHER_BOMS if data.startswith(bom)), None)
    if found is None and len(data) >= 4 and b"\x00\x00\x00" in (data[:3], data[1:4]) and any(data[:4]):
        found = "UTF-32 text (NUL bytes beside its characters)"
    elif found is None and len(data) >= 2 and (data[0] == 0) != (data[1] == 0) and _utf16_units(data):
        found = "UTF-16 text (NUL bytes beside its characters)"
    if found is not None:
        raise UserError(f"{source}: the file is {found}, not UTF-8; save it as UTF-8")


def _utf16_units(data: bytes) -> bool:
    """Whether at least 2 of the first 8 two-byte units of ``data`` (every unit, if it has one) hold a NUL byte beside
    a character on the side its first unit does (UTF-16 of ASCII text: every unit; big-endian, the NUL first)."""
    side = 0 if data[0] == 0 else 1
    units = [data[i: i + 2] for i in range(0, 2 * min(len(data) // 2, 8), 2)]
    return sum(u[side] == 0 and u[1 - side] != 0 for u in units) >= min(2, len(units))


def decode_utf8(data: bytes, source: str | Path, cut_tail_ok: bool = False) -> str:
    """``data`` as text, a leading byte-order mark dropped; raises :class:`UserError` naming ``source``, the line
    (1-based, ``\\n``, ``\\r\\n`` or ``\\r`` ending a line, as Python's text files count them) and the byte of the
    first invalid one. ``cut_tail_ok``: a file cut off inside its last character (a truncated download, which the
    caller reads in part) loses that character instead."""
    check_not_utf16(data, source)
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    body = memoryview(data)[start:]
    try:
        return str(body, "utf-8")
    except UnicodeDecodeError as exc:
        if cut_tail_ok and exc.reason == "unexpected end of data" and exc.end == len(body):
            return str(body[:exc.start], "utf-8")
        pos = start + exc.start  # the first invalid byte's offset in the file (0-based)
    hint = not_text_hint(data, source)  # (a .jsonl.gz renamed: "not valid UTF-8: byte 0x8b")
    if hint is not None:
        raise UserError(hint)
    head = data[:pos]
    line = 1 + head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n")
    line_start = max(head.rfind(b"\n"), head.rfind(b"\r")) + 1
    raise UserError(f"{source}:{line}: not valid UTF-8: byte 0x{data[pos]:02x} (byte {pos - line_start + 1} of the "
                    f"line, offset {pos} in the file); the text would change if read; save the file as UTF-8")


#: [bytes] How much of a file :func:`check_utf8` decodes at a time.
_CHECK_CHUNK = 1 << 16


def check_utf8(data: bytes, source: str | Path) -> None:
    """Raise :func:`decode_utf8`'s :class:`UserError` if ``data`` is not valid UTF-8, without holding its text:
    decoded 64 KiB at a time, each piece dropped (for a caller that reads the file a line at a time)."""
    check_not_utf16(data, source)
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for first in range(0, len(view), _CHECK_CHUNK):
            decoder.decode(view[first: first + _CHECK_CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        decode_utf8(data, source)  # raises the error naming the line and the byte
        raise


def lone_surrogate(text: str) -> int | None:
    """Index of the first lone UTF-16 surrogate in ``text`` [characters], or None if it has none (JSON's
    ``"\\ud83d"`` escape decodes to one: half of a surrogate pair, not a character, so it cannot be encoded
    as UTF-8 or tokenized)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def describe_surrogate(text: str, at: int) -> str:
    """``"\\ud800 at character 12"``: the surrogate at ``at`` of ``text``, for an error message."""
    return f"\\u{ord(text[at]):04x} at character {at + 1}"


def lf_line_ends(data: bytes) -> bytes:
    """``data`` (a ``.csv``'s bytes) with its line ends as ``\n`` where every line ends with CR alone (an old Mac
    export's): a CSV reader that splits at ``\n`` read such a file as one line, its header's last name run into the
    first row's field. Any other ``data`` as it is (a CR inside a quoted field of a file of ``\n`` lines is text)."""
    return data.replace(b"\r", b"\n") if b"\r" in data and b"\n" not in data else data
