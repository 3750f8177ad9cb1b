"""JSON as ltrsched writes and reads it: strict JSON (RFC 8259), an undefined number written as ``null``
(and printed as ``n/a``).

Python's :mod:`json` writes ``NaN`` and ``Infinity`` by default, which is not JSON: other tools' parsers (jq,
JavaScript, Go, serde) refuse such a file. Producers give None for an undefined value (a replica that served
no request has no makespan; Kendall's tau of constant scores); :func:`dumps` refuses a NaN, so one that slips
through fails loudly (in the tests) instead of writing a file other tools cannot read.
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` that raises ValueError for NaN or an infinity instead of writing it."""
    return json.dumps(obj, allow_nan=False, **kwargs)


def loads(text: str | bytes) -> Any:
    """:func:`json.loads` that reads ``NaN``, ``Infinity`` and ``-Infinity`` (as versions before this one wrote
    undefined values) as None, as the files written now hold them."""
    return json.loads(text, parse_constant=lambda _: None)


def defined(value: float | None) -> float | None:
    """``value``, or None where it is undefined (None, NaN or an infinity)."""
    return value if value is not None and math.isfinite(value) else None


def fmt(value: float | None, spec: str, undefined: str = "n/a") -> str:
    """``value`` formatted with ``spec`` (e.g. ``.3f``), or ``undefined`` where it is None or NaN."""
    return undefined if value is None or math.isnan(value) else format(value, spec)
