"""JSON as ltrsched writes and reads it: strict JSON (RFC 8259), an undefined number written as ``null``
(and printed as ``n/a``).

Python's :mod:`json` writes ``NaN`` and ``Infinity`` by default, which is not JSON: other tools' parsers (jq,
JavaScript, Go, serde) refuse such a file. Producers give None for an undefined value (a replica that served
no request has no makespan; Kendall's tau of constant scores); :func:`dumps` writes ``null`` for a NaN or an
infinity that slips through, so a file is always readable and a save never fails on one.
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` that writes ``null`` for a NaN or an infinity (in dicts, lists and tuples) instead of
    ``NaN`` / ``Infinity``."""
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def shown(value: Any, limit: int = 60) -> str:
    """``value`` as JSON for a message (not a file: a NaN shows as ``NaN``), cut to ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def loads(text: str | bytes) -> Any:
    """:func:`json.loads` that reads ``NaN``, ``Infinity`` and ``-Infinity`` (as versions before this one wrote
    undefined values) as None, as the files written now hold them. A document nested deeper than Python's
    recursion limit (no file this tool writes) is a ValueError, as any other damaged JSON."""
    try:
        return json.loads(text, parse_constant=lambda _: None)
    except RecursionError:
        raise ValueError("nested too deeply to be read") from None


def defined(value: float | None) -> float | None:
    """``value``, or None where it is undefined (None, NaN or an infinity)."""
    return value if value is not None and math.isfinite(value) else None


def fmt(value: float | None, spec: str, undefined: str = "n/a") -> str:
    """``value`` formatted with ``spec`` (e.g. ``.3f``), or ``undefined`` where it is None or NaN."""
    return undefined if value is None or math.isnan(value) else format(value, spec)


class DuplicateKeyError(ValueError):
    """A JSON object names a key twice (Python's json keeps the last value silently)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object as a dict (``object_pairs_hook`` of :func:`json.loads`); :class:`DuplicateKeyError` if a key is
    given twice: json keeps the last one silently, where TOML refuses the file, so an edited file that names a
    setting twice ran with whichever came last."""
    data = dict(pairs)
    if len(data) < len(pairs):
        seen: set = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise DuplicateKeyError(f"the key {twice!r} is given twice")
    return data
