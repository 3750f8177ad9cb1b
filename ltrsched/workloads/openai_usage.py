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
(:func:`~ltrsched.workloads.record_values.count_keys`). A ``usage`` of neither key but Anthropic's (or OpenAI's
Responses API's) ``input_tokens``/``output_tokens`` gives them (:data:`INPUT_COUNTS`): the prompt's count is
``input_tokens`` plus Anthropic's prompt-cache tokens (:data:`CACHE_INPUT_KEYS`), which it leaves out; a ``usage`` of
both APIs' keys (a proxy translating one to the other) is read where they agree, refused where they disagree. A
``total_tokens`` that is not prompt + completion is counted in one warning per file (:class:`TotalsOff`). OpenAI's
cached and reasoning tokens (``*_tokens_details``) are part of its counts already, not added. A logged Anthropic
Messages API response, a streamed response's chunks and Anthropic's streaming events are read as a chat completion
(:func:`served_response`).
(Before, a log record was refused naming its format, a
``usage`` beside messages counted in a warning saying it was not read, a Batch API output line refused with a jq
recipe.)
"""

from __future__ import annotations

from dataclasses import dataclass

from ltrsched.errors import UserError
from ltrsched.workloads.count_values import count_error, is_count, shown_count
from ltrsched.workloads.log_records import (REASONING_KEYS, choice_message, is_litellm_record, is_responses_reply,
                                            is_responses_request,
                                            litellm_exchange, reasoning_text, request_messages, responses_reply,
                                            responses_stream)
from ltrsched.workloads.number_text import text_error, text_number
from ltrsched.workloads.schema import OTHER_LENGTH_KEYS
from ltrsched.workloads.sse_logs import stream_events

#: ``usage``'s count keys -> ours.
USAGE_COUNTS = {"prompt_tokens": "prompt_tokens", "completion_tokens": "output_tokens"}
#: Anthropic's (and OpenAI's Responses API's) ``usage`` count keys -> ours, read where a ``usage`` has neither of
#: :data:`USAGE_COUNTS` (they were not read: the text's Llama-3 counts were used without a word).
INPUT_COUNTS = {"input_tokens": "prompt_tokens", "output_tokens": "output_tokens"}
#: Anthropic's prompt tokens [tokens] that its ``input_tokens`` leaves out (those written to and read from its prompt
#: cache): the prompt's count is their sum with ``input_tokens``. (OpenAI's cached tokens, ``prompt_tokens_details``
#: and ``input_tokens_details.cached_tokens``, are part of its prompt count already, as ``completion_tokens_details.
#: reasoning_tokens`` are of ``completion_tokens``: not added.)
CACHE_INPUT_KEYS = ("cache_creation_input_tokens", "cache_read_input_tokens")
#: Where a record keeps its messages (:data:`ltrsched.workloads.sharegpt.CONVERSATION_KEYS`; not imported: sharegpt
#: imports this module).
_MESSAGES = ("conversations", "items", "conversation", "messages")


@dataclass
class TotalsOff:
    """A file's ``usage`` objects whose ``total_tokens`` [tokens] is not their prompt's count plus their completion's
    (OpenAI's definition), for one warning per file (:meth:`note`): they are read by those two counts all the same
    (some proxies add cached or tool tokens to the total)."""

    count: int = 0  #: how many
    first: str = ""  #: the first, as ``record 2 (total_tokens 130, 30 + 99 = 129)``

    def add(self, place: str, total, prompt: int, completion: int) -> None:
        """Count one more, ``place`` naming it (``record 2``, ``line 2``)."""
        self.count += 1
        if self.count == 1:
            self.first = (f"{place} (total_tokens {repr(total)[:24]}, {prompt:,} + {completion:,} = "
                          f"{prompt + completion:,})")

    def note(self, total: int) -> str | None:
        """The warning's text (without the file's name) for a file of ``total`` records or lines; None if none."""
        if not self.count:
            return None
        return (f"{self.count:,} of its {total:,} usage objects give a total_tokens that is not prompt + completion "
                f"tokens (first: {self.first}); read by their prompt and completion counts (a proxy may add cached "
                "or tool tokens to the total)")


def is_logged_exchange(record) -> bool:
    """Whether a JSON record is a request log's ``{"request": {..., "messages": [...]}, "response": ...}`` (a
    Responses API request's ``input`` in place of its messages), or a LiteLLM log record
    (:func:`~ltrsched.workloads.log_records.is_litellm_record`), read as one."""
    return (isinstance(record, dict) and isinstance(record.get("request"), dict)
            and (isinstance(record["request"].get("messages"), list) or is_responses_request(record["request"]))
            and "response" in record and not any(k in record for k in _MESSAGES)) or is_litellm_record(record)


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


def usage_counts(usage, field: str, path, place: str, off: TotalsOff | None = None) -> dict[str, int]:
    """The counts of an OpenAI ``usage`` object (``field``: where the record holds it, ``usage`` or
    ``response.usage``), as ``{ours: count}`` (a count absent or null left out: the text's is counted). One-line
    :class:`UserError` naming ``path`` and ``place`` (``record 2 (id 'a')``, ``line 2``) for a ``usage`` that is no
    object or a value that is no count, in every container's words. A ``total_tokens`` that is not the sum of the two
    counts given is counted in ``off`` (a warning, not an error)."""
    if usage is None:
        return {}
    if not isinstance(usage, dict):
        raise UserError(f"{path}: {place}: {field!r} must be an object of token counts, got {type(usage).__name__}")
    counts = _read_counts(usage, usage_names(usage), field, path, place)
    if any(usage.get(k) is not None for k in USAGE_COUNTS) and any(usage.get(k) is not None for k in INPUT_COUNTS):
        # (both OpenAI's and Anthropic's keys, as a proxy translating one API to the other may log: OpenAI's were
        # read without a word)
        theirs = _read_counts(usage, INPUT_COUNTS, field, path, place)
        cached = " with its cache's tokens" if any(usage.get(k) for k in CACHE_INPUT_KEYS) else ""
        for (key, ours), other in zip(USAGE_COUNTS.items(), INPUT_COUNTS):
            if ours in counts and ours in theirs and counts[ours] != theirs[ours]:
                raise UserError(f"{path}: {place}: {f'{field}.{key}'!r} ({counts[ours]:,}) and {f'{field}.{other}'!r} "
                                f"({theirs[ours]:,}{cached if ours == 'prompt_tokens' else ''}) disagree on the "
                                f"{ours}; which does the served model count? give one")
        counts = {**theirs, **counts}  # (they agree: one given by either alone read too)
    if off is not None and usage.get("total_tokens") is not None:
        _check_total(usage, off, place)
    return counts


def _check_total(usage: dict, off: TotalsOff, place: str) -> None:
    """Count ``usage`` in ``off`` where its ``total_tokens`` is not its two counts' sum (those of the keys it is read
    by, before Anthropic's cache tokens: neither API's total holds them twice). It was never looked at."""
    parts = [usage.get(k) for k in usage_names(usage)]
    if any(p is None for p in parts):
        return
    prompt, completion = (int(text_number(p) if isinstance(p, str) else p) for p in parts)  # (checked counts)
    total = usage["total_tokens"]
    number = text_number(total) if isinstance(total, str) else None if isinstance(total, bool) else total
    if number != prompt + completion:
        off.add(place, total, prompt, completion)


def _read_counts(usage: dict, names: dict[str, str], field: str, path, place: str) -> dict[str, int]:
    """``usage``'s counts under the keys ``names`` (:data:`USAGE_COUNTS` or :data:`INPUT_COUNTS`, Anthropic's prompt
    cache's tokens added to the latter's), as :func:`usage_counts` gives them."""
    counts = {}
    for key, ours in names.items():
        value = usage.get(key)
        if value is None:
            continue
        number = _number(value, f"{field}.{key}", path, place)
        if not is_count(number):
            raise UserError(count_error(path, f"{field}.{key}", number, place, "key", output=ours == "output_tokens"))
        counts[ours] = int(number)
    if names is INPUT_COUNTS and "prompt_tokens" in counts:
        for key in CACHE_INPUT_KEYS:
            value = usage.get(key)
            if value is None:
                continue
            number = _number(value, f"{field}.{key}", path, place)
            if number != 0 and not is_count(number):
                raise UserError(f"{path}: key {f'{field}.{key}'!r} in {place} is {shown_count(number)}, not a token "
                                "count (a whole number in 0..2**53)")
            counts["prompt_tokens"] += int(number)
    return counts


def usage_names(usage: dict) -> dict[str, str]:
    """The count keys ``usage`` gives its counts under -> ours: OpenAI's (:data:`USAGE_COUNTS`), or where it has neither
    of them, Anthropic's and the Responses API's (:data:`INPUT_COUNTS`)."""
    if any(usage.get(k) is not None for k in USAGE_COUNTS) or not any(k in usage for k in INPUT_COUNTS):
        return USAGE_COUNTS
    return INPUT_COUNTS


def _number(value, key: str, path, place: str):
    """A ``usage`` value as a number (integer text read as the number); one-line :class:`UserError` for text that
    spells none."""
    if isinstance(value, bool) or not isinstance(value, str):
        return value
    number = text_number(value)
    if number is None:
        raise UserError(text_error(path, key, value, place, what="key"))
    return number


def _with_counts(record: dict, counts: dict[str, int], field: str, where: str, usage=None) -> dict:
    """``record`` with ``counts`` (from its ``field``, the object ``usage``) as its own keys; one-line
    :class:`UserError` naming ``where`` for a count the record gives under its own key too."""
    names = usage_names(usage) if isinstance(usage, dict) else USAGE_COUNTS
    for ours, count in counts.items():
        own = _own_count_key(record, ours)
        if own is not None:
            theirs = next(k for k, o in names.items() if o == ours)
            raise UserError(f"{where}: {f'{field}.{theirs}'!r} and {own!r} both give the {ours}; which does? give one")
        record[ours] = count
    return record


def as_conversation(record, path, number: int, off: TotalsOff | None = None) -> tuple[dict | None, str]:
    """A conversation record (record ``number``, 1-based, of ``path``) with its OpenAI ``usage`` counts as its own
    keys (``prompt_tokens``, ``output_tokens``), ``""``; a request log's exchange as such a record too (the request's
    messages, then the response's first choice's message; the log record's other keys, e.g. its ``timestamp``, kept).
    ``(None, detail)`` for a logged exchange whose response failed (an ``error``, no choices): left out, ``detail``
    saying why. Other records as they are. One-line :class:`UserError` naming the record for a count given twice, a
    ``usage`` value that is no count, or a response of several choices (whose usage counts them all); a usage whose
    total is not its counts' sum counted in ``off``."""
    if not isinstance(record, dict):
        return record, ""
    if is_litellm_record(record):  # (it was refused: "'response' must be text")
        record = litellm_exchange(record, f"{path}: record {number:,}")
    if is_batch_output(record):  # (among conversations: skipped "with no messages", a warning counting it)
        raise UserError(f"{path}: record {number:,} is an OpenAI Batch API output line (custom_id, response), and "
                        "record 1 is a conversation or a request log's record: a file holds one format; split it")
    rid = record.get("id", record.get("conversation_id", ""))
    place = f"record {number:,}" + (f" (id {str(rid)!r})" if rid not in ("", None) else "")
    if is_logged_exchange(record):
        response = served_response(record["response"], f"{path}: {place}")
        choices = response.get("choices") if isinstance(response, dict) else None
        if not isinstance(choices, list) or not choices:
            error = response.get("error") if isinstance(response, dict) else None
            return None, ("its 'response' has an 'error'" if error is not None else
                          "its 'response' is null" if response is None else
                          "its 'response' is text, not a chat completion" if isinstance(response, str) else
                          "its 'response' is a list holding no chat-completion chunks"
                          if isinstance(record["response"], list) else "its 'response' has no 'choices'")
        if len(choices) > 1:
            raise UserError(f"{path}: {place}: 'response.choices' holds {len(choices)} replies (n > 1), and its usage "
                            "counts them all: which is served? log one choice per request")
        reply = choice_message(choices[0])
        request = record["request"]
        flat = {k: v for k, v in record.items() if k not in ("request", "response")}
        if "system" in request and "system" not in flat:  # (Anthropic's system prompt, as a record's is read)
            flat["system"] = request["system"]
        flat["messages"] = [*request_messages(request), *([reply] if isinstance(reply, dict) else [])]
        counts = usage_counts(response.get("usage"), "response.usage", path, place, off)
        return _with_counts(flat, counts, "response.usage", f"{path}: {place}", response.get("usage")), ""
    if "usage" in record and any(isinstance(record.get(k), list) for k in _MESSAGES):
        counts = usage_counts(record["usage"], "usage", path, place, off)
        flat = {k: v for k, v in record.items() if k != "usage"}
        return _with_counts(flat, counts, "usage", f"{path}: {place}", record["usage"]), ""
    return record, ""


def served_response(response, where: str = "the response"):
    """A logged response as a chat completion's (``choices``, ``usage``): an Anthropic Messages API response
    (``"type": "message"``, its ``content`` a list of parts) as one choice of its content; a streamed response's
    chunks (a list of ``chat.completion.chunk`` objects) as one choice of their deltas' text (tool-call deltas as
    ``tool_calls``; a chunk of another choice's ``index`` as a second choice, n > 1), its ``usage`` the last chunk's
    that gives one; Anthropic's streaming events (:func:`anthropic_events`) as its response. Others as they are. (All
    were left out as responses that failed, "no 'choices'", or "a list holding no chat-completion chunks".)
    A stream logged as server-sent events (its text, or its events as ``{"event", "data"}`` objects) is read as its
    events (:func:`~ltrsched.workloads.sse_logs.stream_events`; ``where`` names the response in an error); a
    Responses API response (``output``) or stream as one choice of its output
    (:func:`~ltrsched.workloads.log_records.responses_reply`); Anthropic's ``thinking`` blocks as the reply's text
    (:func:`~ltrsched.workloads.log_records.reasoning_text`)."""
    response = stream_events(response, where)
    if isinstance(response, list):
        response = responses_stream(response) or response
    if isinstance(response, list) and any(isinstance(e, dict) and e.get("type") == "message_start" for e in response):
        response = anthropic_events(response)
    if is_responses_reply(response):
        return responses_reply(response)
    if isinstance(response, dict) and "choices" not in response and isinstance(response.get("content"), list) and (
            response.get("type") == "message" or response.get("role") == "assistant"):
        return {**response, "choices": [{"message": {"role": "assistant",
                                                     "content": reasoning_text(response["content"])}}]}
    if not isinstance(response, list) or not any(isinstance(c, dict) and isinstance(c.get("choices"), list)
                                                 for c in response):
        return response
    texts, thoughts, tools, indices, usage = {}, {}, set(), set(), None
    for chunk in response:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0) if isinstance(choice, dict) else 0
            indices.add(index)
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                if isinstance(choice, dict) and isinstance(choice.get("text"), str):  # (a completions stream's)
                    texts.setdefault(index, []).append(choice["text"])
                continue
            if isinstance(delta.get("content"), str):
                texts.setdefault(index, []).append(delta["content"])
            thought = next((delta[k] for k in REASONING_KEYS if isinstance(delta.get(k), str)), None)
            if thought:  # (a reasoning model's: generated too, log_records' rule; it was dropped)
                thoughts.setdefault(index, []).append(thought)
            if delta.get("tool_calls") or delta.get("function_call"):
                tools.add(index)
    choices = [{"message": {"role": "assistant", "content": "".join(texts.get(i, [])) or None,
                            **({"reasoning_content": "".join(thoughts[i])} if i in thoughts else {}),
                            **({"tool_calls": [{"streamed": True}]} if i in tools else {})}}
               for i in sorted(indices, key=str)]
    return {"choices": choices, **({"usage": usage} if usage is not None else {})}


def anthropic_events(events: list) -> dict:
    """A streamed Anthropic Messages API response's events (``message_start``, ``content_block_start``/``_delta``,
    ``message_delta``, ...) as the response they stream (``"type": "message"``): its content the blocks started, their
    ``text_delta``/``thinking_delta`` text appended; its usage ``message_start``'s (its ``input_tokens`` and cache
    tokens; its ``output_tokens``, a placeholder, dropped) updated by ``message_delta``'s (the ``output_tokens``
    [tokens] of the whole reply). An ``error`` event makes it a response with that ``error`` (failed)."""
    blocks: dict = {}
    usage: dict = {}
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = event.get("type")
        if kind == "error":
            return {"error": event.get("error") or True}
        if kind == "message_start" and isinstance(event.get("message"), dict):
            start = event["message"].get("usage")
            usage = {k: v for k, v in start.items() if k != "output_tokens"} if isinstance(start, dict) else {}
            blocks.update((i, dict(b)) for i, b in enumerate(event["message"].get("content") or ())
                          if isinstance(b, dict))
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            blocks[_block_index(event.get("index", len(blocks)))] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            block = blocks.setdefault(_block_index(event.get("index", 0)), {"type": "text", "text": ""})
            for delta, key in (("text_delta", "text"), ("thinking_delta", "thinking")):
                if event["delta"].get("type") == delta and isinstance(event["delta"].get(key), str):
                    block[key] = (block.get(key) or "") + event["delta"][key]
        elif kind == "message_delta" and isinstance(event.get("usage"), dict):
            usage.update((k, v) for k, v in event["usage"].items() if v is not None)
    return {"type": "message", "role": "assistant", "content": [blocks[i] for i in sorted(blocks, key=_block_order)],
            **({"usage": usage} if usage else {})}


def _block_index(index):
    """An event's content block ``index`` as a key (a whole number as it is; anything else as its text)."""
    return index if type(index) is int else str(index)


def _block_order(index) -> tuple:
    """Content blocks in their ``index``'s order (whole numbers first, numerically)."""
    return (0, index, "") if type(index) is int else (1, 0, index)


def line_usage(record: dict, path, line: int, off: TotalsOff | None = None) -> dict:
    """A ``.jsonl`` request line (line ``line`` of ``path``) with its ``usage`` object's counts as its own keys, as a
    conversation record's are read (:func:`as_conversation`, ``off`` alike)."""
    counts = usage_counts(record["usage"], "usage", path, f"line {line}", off)
    flat = {k: v for k, v in record.items() if k != "usage"}
    return _with_counts(flat, counts, "usage", f"{path}:{line}", record["usage"])


def _status_ok(status) -> bool:
    """Whether a Batch API output line's ``status_code`` is HTTP 200, given as a number or as text (``"200"``, as a
    log rewritten by another tool may hold it: it counted as a failure)."""
    if isinstance(status, bool):
        return False
    if isinstance(status, str):
        return status.strip() == "200"
    return status == 200


def batch_output_line(record: dict, path, line: int, off: TotalsOff | None = None) -> dict | None:
    """An OpenAI Batch API output line (:func:`is_batch_output`, line ``line`` of ``path``) as a request line of
    lengths alone: ``{"prompt_tokens": P, "output_tokens": C}`` from ``response.body.usage`` (and the line's other
    keys but ``id``, ``custom_id``, ``response``, ``error``: an ``arrival_time`` added, say); None for a failed
    request (an ``error`` set, a ``status_code`` other than 200, no response). One-line :class:`UserError` naming the
    line for a successful one without both counts (``off``: as :func:`as_conversation`'s)."""
    response = record.get("response")
    if record.get("error") is not None or response is None or not _status_ok(response.get("status_code", 200)):
        return None
    body = response.get("body")
    usage = body.get("usage") if isinstance(body, dict) else None
    counts = usage_counts(usage, "response.body.usage", path, f"line {line}", off)
    missing = [k for k, ours in (usage_names(usage) if isinstance(usage, dict) else USAGE_COUNTS).items()
               if ours not in counts]
    if missing:
        raise UserError(f"{path}:{line}: an OpenAI Batch API output line without "
                        f"{' and '.join(repr('response.body.usage.' + k) for k in missing)}: its request holds no "
                        "prompt text, so its lengths are read from its usage alone")
    flat = {k: v for k, v in record.items() if k not in ("id", "custom_id", "response", "error")}
    return _with_counts(flat, counts, "response.body.usage", f"{path}:{line}", usage)


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
