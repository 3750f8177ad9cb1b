"""A JSON record's request id and predictor numbers (``score``, ``po_estimate``, ``predicted_length``), read by one
rule in a ``.jsonl`` request line and in a conversation record of a ``.json`` or ``.jsonl`` (whose were dropped); the
keys of its token counts, ours or another tool's, found by one name table in both (:func:`count_keys`)."""

from __future__ import annotations

from ltrsched.errors import UserError
from ltrsched.workloads.number_text import text_number
from ltrsched.workloads.schema import COUNT_COLUMNS, OTHER_LENGTH_KEYS


def optional_number(value, name: str, where: str) -> float | None:
    """A record's ``score``, ``po_estimate`` or ``predicted_length`` (``name``): a number as float, None if the
    record gives none (or null); text as a table's is read (:func:`~ltrsched.workloads.number_text.text_number`);
    one-line :class:`UserError` naming ``where`` (the line or record) for anything else (the schema checks the
    values' range)."""
    if value is None:
        return None
    number = text_number(value, missing=True) if isinstance(value, str) else value  # (as a table's: "0.5" and
    # "NaN", missing, were refused)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise UserError(f"{where}: {name!r} must be a number (or null), got {value!r}")
    try:
        return float(number)
    except OverflowError:  # an integer beyond float64 (JSON's integers have no bound)
        raise UserError(f"{where}: {name!r} is too large to be a number ({len(str(value))} digits)") from None


def request_id_value(value, where: str) -> int | float:
    """A record's ``request_id`` as given (a number; an integer beyond Int64 as a float, which
    :func:`~ltrsched.workloads.schema.request_ids` then refuses as out of range); one-line :class:`UserError` naming
    ``where`` for anything else (null, a boolean, text that spells no number). Text is read as a table's is
    (:func:`~ltrsched.workloads.number_text.text_number`: ``"7"`` was refused, which a ``.csv`` and a parquet's Utf8
    column read). ``request_ids`` checks the values."""
    number = text_number(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise UserError(f"{where}: 'request_id' must be a whole number, got {value!r}")
    return float(number) if isinstance(number, int) and abs(number) >= 2**62 else number


#: Every key :func:`count_keys` reads a count by, ours and other tools'.
_COUNT_KEYS = frozenset((*COUNT_COLUMNS, *OTHER_LENGTH_KEYS))


def count_keys(record: dict, where: str) -> dict[str, str]:
    """The keys of a JSON record (a ``.jsonl`` request line, a ``.json``'s or ``.jsonl``'s conversation record) that
    give its token counts, as written: ours (``prompt_tokens``, ``output_tokens``) or another tool's
    (:data:`~ltrsched.workloads.schema.OTHER_LENGTH_KEYS`: OpenAI usage's ``completion_tokens``, vLLM benchmark's
    ``input_len``/``output_len``, ``num_prompt_tokens``...), as ``{ours: the record's key}``. One-line
    :class:`UserError` naming ``where`` for two keys giving one count (``completion_tokens`` beside ``output_tokens``:
    which holds it?), ours named first."""
    found: dict[str, str] = {}
    if _COUNT_KEYS.isdisjoint(record):  # (most records: no sort)
        return found
    for key in sorted(record, key=lambda k: k not in COUNT_COLUMNS):  # (ours first, then the record's order)
        ours = key if key in COUNT_COLUMNS else OTHER_LENGTH_KEYS.get(key)
        if ours is None:
            continue
        if ours in found:
            raise UserError(f"{where}: {found[ours]!r} and {key!r} both give the {ours}; which does? give one")
        found[ours] = key
    return found
