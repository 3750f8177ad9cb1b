"""A workload or prompts file's format, by its name's suffix: one rule for every reader.

JSON Lines (newline-delimited JSON) goes by several names: ``.jsonl`` (ours), ``.ndjson``, ``.jsonlines`` and
``.ldjson`` (:data:`JSON_LINES_ALIASES`). Each is read as a ``.jsonl`` is, by the same loader and under the same
parse cache entry (its key is the bytes and ``-lines``: a ``.ndjson`` and its ``.jsonl`` copy share it). (They were
refused, "a .ndjson file is JSON lines: name it w.jsonl".)
"""

from __future__ import annotations

from pathlib import Path

#: Other names of JSON-lines files, read as ``.jsonl``.
JSON_LINES_ALIASES = (".ndjson", ".jsonlines", ".ldjson")


def file_suffix(path: str | Path) -> str:
    """``path``'s suffix in lower case, a JSON-lines alias (:data:`JSON_LINES_ALIASES`) as ``.jsonl``."""
    suffix = Path(path).suffix.lower()
    return ".jsonl" if suffix in JSON_LINES_ALIASES else suffix
