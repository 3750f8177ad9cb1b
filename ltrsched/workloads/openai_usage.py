"""OpenAI API records whose ``usage`` gives the served model's own token counts, read as a request's lengths.

Three shapes a serving engineer's logs take:

- a request log's ``{"request": {"messages": [...]}, "response": {"choices": [...], "usage": {...}}}`` (a proxy's
  log of a chat-completions call): read as the conversation of the request's messages and the response's first
  choice's message (:func:`as_conversation`), its counts from ``response.usage``;
- a chat-completion conversation record with a ``usage`` object beside its messages: its counts read from it;
- an OpenAI Batch API output line (``custom_id``, ``response.body.usage``; no prompt text): a request of lengths
  alone (:func:`batch_output_line`), as a ``.csv`` of ``prompt_tokens``/``output_tokens`` is; failed lines (an
  ``error``, a ``status_code`` other than 200) are left out with a note (:func:`failed_note`).

``usage.prompt_tokens`` [tokens] is the prompt's count and ``usage.completion_tokens`` [tokens] the output's, by the
rule for a record's own counts (:func:`~ltrsched.workloads.sharegpt.given_counts`): the given count is used in place
of the text's Llama-3 count, and counts that differ from the text's are counted in a warning. A count given both
there and as the record's own key is an error (which holds it?), as two keys for one count are
(:func:`~ltrsched.workloads.record_values.count_keys`). (Before, a log record was refused naming its format, a
``usage`` beside messages counted in a warning saying it was not read, a Batch API output line refused with a jq
recipe.)
"""

from __future__ import annotations

from ltrsched.errors import UserError
from ltrsched.workloads.count_values import count_error, is_count
from ltrsched.workloads.number_text import text_error, text_number
from ltrsched.workloads.schema import OTHER_LENGTH_KEYS

#: ``usage``'s count keys -> ours.
USAGE_COUNTS = {"prompt_tokens": "prompt_tokens", "completion_tokens": "output_tokens"}
#: Where a record keeps its messages (:data:`ltrsched.workloads.sharegpt.CONVERSATION_KEYS`; not imported: sharegpt
#: imports this module).
_MESSAGES = ("conversations", "items", "conversation", "messages")


def is_logged_exchange(record) -> bool:
    """Whether a JSON record is a request log's ``{"request": {..., "messages": [...]}, "response": ...}``."""
    return (isinstance(record, dict) and isinstance(record.get("request"), dict)
            and isinstance(record["request"].get("messages"), list) and "response" in record
            and not any(k in record for k in _MESSAGES))


def is_batch_output(record) -> bool:
    """Whether a JSON record is an OpenAI Batch API output line: ``custom_id`` and ``response`` (an object, or null
    for a failed request), without the input line's ``body`` (nor a request line's ``prompt``, nor messages)."""
    return (isinstance(record, dict) and "custom_id" in record and "response" in record
            and not any(k in record for k in ("body", "prompt", *_MESSAGES))
            and (record["response"] is None or isinstance(record["response"], dict)))


def _own_count_key(record: dict, ours: str) -> str | None:
    """The record's own key giving the count ``ours`` (ours or another tool's name), if any, not null."""
    return next((k for k, v in record.items() if v is not None and (k == ours or OTHER_LENGTH_KEYS.get(k) == ours)),
                None)


def usage_counts(usage, field: str, path, place: str) -> dict[str, int]:
    """The counts of an OpenAI ``usage`` object (``field``: where the record holds it, ``usage`` or
    ``response.usage``), as ``{ours: count}`` (a count absent or null left out: the text's is counted). One-line
    :class:`UserError` naming ``path`` and ``place`` (``record 2 (id 'a')``, ``line 2``) for a ``usage`` that is no
    object or a value that is no count, in every container's words."""
    if usage is None:
        return {}
    if not isinstance(usage, dict):
        raise UserError(f"{path}: {place}: {field!r} must be an object of token counts, got {type(usage).__name__}")
    counts = {}
    for key, ours in USAGE_COUNTS.items():
        value = usage.get(key)
        if value is None:
            continue
        number = text_number(value) if isinstance(value, str) else value
        if number is None:
            raise UserError(text_error(path, f"{field}.{key}", value, place, what="key"))
        if not is_count(number):
            raise UserError(count_error(path, f"{field}.{key}", number, place, "key", output=ours == "output_tokens"))
        counts[ours] = int(number)
    return counts


def _with_counts(record: dict, counts: dict[str, int], field: str, where: str) -> dict:
    """``record`` with ``counts`` (from its ``field``) as its own keys; one-line :class:`UserError` naming ``where``
    for a count the record gives under its own key too."""
    for ours, count in counts.items():
        own = _own_count_key(record, ours)
        if own is not None:
            theirs = next(k for k, o in USAGE_COUNTS.items() if o == ours)
            raise UserError(f"{where}: {f'{field}.{theirs}'!r} and {own!r} both give the {ours}; which does? give one")
        record[ours] = count
    return record


def as_conversation(record, path, number: int) -> tuple[dict | None, str]:
    """A conversation record (record ``number``, 1-based, of ``path``) with its OpenAI ``usage`` counts as its own
    keys (``prompt_tokens``, ``output_tokens``), ``""``; a request log's exchange as such a record too (the request's
    messages, then the response's first choice's message; the log record's other keys, e.g. its ``timestamp``, kept).
    ``(None, detail)`` for a logged exchange whose response failed (an ``error``, no choices): left out, ``detail``
    saying why. Other records as they are. One-line :class:`UserError` naming the record for a count given twice, a
    ``usage`` value that is no count, or a response of several choices (whose usage counts them all)."""
    if not isinstance(record, dict):
        return record, ""
    rid = record.get("id", record.get("conversation_id", ""))
    place = f"record {number:,}" + (f" (id {str(rid)!r})" if rid not in ("", None) else "")
    if is_logged_exchange(record):
        response = record["response"]
        choices = response.get("choices") if isinstance(response, dict) else None
        if not isinstance(choices, list) or not choices:
            error = response.get("error") if isinstance(response, dict) else None
            return None, ("its 'response' has an 'error'" if error is not None else
                          "its 'response' is null" if response is None else "its 'response' has no 'choices'")
        if len(choices) > 1:
            raise UserError(f"{path}: {place}: 'response.choices' holds {len(choices)} replies (n > 1), and its usage "
                            "counts them all: which is served? log one choice per request")
        reply = choices[0].get("message") if isinstance(choices[0], dict) else None
        request = record["request"]
        flat = {k: v for k, v in record.items() if k not in ("request", "response")}
        if "system" in request and "system" not in flat:  # (Anthropic's system prompt, as a record's is read)
            flat["system"] = request["system"]
        flat["messages"] = [*request["messages"], *([reply] if isinstance(reply, dict) else [])]
        counts = usage_counts(response.get("usage"), "response.usage", path, place)
        return _with_counts(flat, counts, "response.usage", f"{path}: {place}"), ""
    if "usage" in record and any(isinstance(record.get(k), list) for k in _MESSAGES):
        counts = usage_counts(record["usage"], "usage", path, place)
        flat = {k: v for k, v in record.items() if k != "usage"}
        return _with_counts(flat, counts, "usage", f"{path}: {place}"), ""
    return record, ""


def line_usage(record: dict, path, line: int) -> dict:
    """A ``.jsonl`` request line (line ``line`` of ``path``) with its ``usage`` object's counts as its own keys, as a
    conversation record's are read (:func:`as_conversation`)."""
    counts = usage_counts(record["usage"], "usage", path, f"line {line}")
    flat = {k: v for k, v in record.items() if k != "usage"}
    return _with_counts(flat, counts, "usage", f"{path}:{line}")


def batch_output_line(record: dict, path, line: int) -> dict | None:
    """An OpenAI Batch API output line (:func:`is_batch_output`, line ``line`` of ``path``) as a request line of
    lengths alone: ``{"prompt_tokens": P, "output_tokens": C}`` from ``response.body.usage`` (and the line's other
    keys but ``id``, ``custom_id``, ``response``, ``error``: an ``arrival_time`` added, say); None for a failed
    request (an ``error`` set, a ``status_code`` other than 200, no response). One-line :class:`UserError` naming the
    line for a successful one without both counts."""
    response = record.get("response")
    if record.get("error") is not None or response is None or response.get("status_code", 200) != 200:
        return None
    body = response.get("body")
    usage = body.get("usage") if isinstance(body, dict) else None
    counts = usage_counts(usage, "response.body.usage", path, f"line {line}")
    missing = [k for k, ours in USAGE_COUNTS.items() if ours not in counts]
    if missing:
        raise UserError(f"{path}:{line}: an OpenAI Batch API output line without "
                        f"{' and '.join(repr('response.body.usage.' + k) for k in missing)}: its request holds no "
                        "prompt text, so its lengths are read from its usage alone")
    flat = {k: v for k, v in record.items() if k not in ("id", "custom_id", "response", "error")}
    return _with_counts(flat, counts, "response.body.usage", f"{path}:{line}")


def failed_why(record: dict) -> str:
    """Why a Batch API output line failed, for :func:`failed_note`: its error's code, or its status code."""
    error = record.get("error")
    if isinstance(error, dict) and error.get("code"):
        return f"error {str(error['code'])[:40]!r}"
    if error is not None:
        return "an 'error'"
    response = record.get("response")
    return f"status_code {response.get('status_code')!r}" if isinstance(response, dict) else "no 'response'"


def failed_note(count: int, total: int, first: int, why: str, path) -> str:
    """The warning that ``count`` of a ``.jsonl``'s ``total`` Batch API output lines failed (the first on line
    ``first``, ``why``) and are left out, as BurstGPT's failed requests are; one-line :class:`UserError` if every
    line failed."""
    if count == total:
        raise UserError(f"{path}: every request ({count:,}) failed (OpenAI Batch API output lines with an 'error' or a "
                        f"status_code other than 200; first: line {first}, {why}): none is left to serve")
    return (f"warning: {path}: {count:,} of its {total:,} requests failed (OpenAI Batch API output lines with an "
            f"'error' or a status_code other than 200; first: line {first}, {why}); they are left out")
