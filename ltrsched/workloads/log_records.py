"""Other serving tools' log records in a request log's words: the request's ``messages``, the response's ``choices``
and ``usage`` (:mod:`ltrsched.workloads.openai_usage` reads those).

- OpenAI's Responses API: a request's ``input`` (text, or a list of messages and other items) and ``instructions``
  (its system text) as messages (:func:`request_messages`); a response's ``output`` items as one choice
  (:func:`responses_reply`), its ``usage`` (``input_tokens``/``output_tokens``) as it is; its streamed events as the
  response ``response.completed`` carries (:func:`responses_stream`).
- LiteLLM's spend logs and logging callbacks' payloads (``messages``, ``response``: a chat completion, and
  ``prompt_tokens``/``completion_tokens``/``total_tokens`` beside them, ``startTime``, a ``request_id``):
  as a request log's exchange (:func:`litellm_exchange`); a spend log row without its prompt as a request of
  lengths alone (:func:`litellm_lengths`).

The output's length [tokens] is every token the model generated, its reasoning included: OpenAI's
``completion_tokens`` and the Responses API's ``output_tokens`` count their ``reasoning_tokens`` (a detail, not added
again), Anthropic's ``output_tokens`` its thinking. They all occupy decode steps and the KV cache, which is what a
scheduler serves. A reply's text holds what a log gives of its reasoning (Anthropic's ``thinking`` blocks,
:func:`reasoning_text`), which is counted only where no usage gives the count; the Responses API's reasoning
items hold a summary at most (not the reasoning), so are no text: without usage such a reply's count is its answer's.
"""

from __future__ import annotations

from ltrsched.errors import UserError
from ltrsched.workloads.arrival_names import arrival_suffix
from ltrsched.workloads.number_text import text_number

#: The Responses API's events that end a stream -> whether the response failed.
RESPONSE_ENDS = {"response.completed": False, "response.incomplete": False, "response.failed": True}
#: Keys only a LiteLLM log record has beside ``messages`` and ``response`` (its spend log's and its
#: ``StandardLoggingPayload``'s).
LITELLM_KEYS = ("call_type", "spend", "response_cost", "startTime", "litellm_call_id", "model_parameters",
                "cache_hit", "api_base", "request_tags")
#: LiteLLM's copies of the response's usage counts, beside it.
_LITELLM_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def is_responses_request(request) -> bool:
    """Whether a logged request is a Responses API one (an ``input``: text or a list) or a completions one (a
    ``prompt`` text: vLLM's and OpenAI's ``/v1/completions``), without ``messages``."""
    return (isinstance(request, dict) and not isinstance(request.get("messages"), list)
            and (isinstance(request.get("input"), (str, list)) or isinstance(request.get("prompt"), str)))


def request_messages(request: dict) -> list:
    """A logged request's messages: its ``messages``, or a Responses API request's ``instructions`` (a system
    message) and ``input`` (text: one user message; a list: its items, as they are), or a completions request's
    ``prompt`` as one user message."""
    if not is_responses_request(request):
        return request["messages"]
    if not isinstance(request.get("input"), (str, list)):
        return [{"role": "user", "content": request["prompt"]}]
    given = request["input"]
    items = [{"role": "user", "content": given}] if isinstance(given, str) else [_input_message(i) for i in given]
    instructions = request.get("instructions")
    return [{"role": "system", "content": instructions}, *items] if instructions else items


def _input_message(item):
    """A Responses API input item as a chat message: a message as it is; the model's ``function_call`` as an
    assistant's tool call, its ``function_call_output`` as a tool message (as a chat request's history holds them: a
    first turn answered by a call is then told as one, where it was "a message with no speaker")."""
    if not isinstance(item, dict) or "role" in item:
        return item
    if item.get("type") in ("function_call", "custom_tool_call"):
        return {"role": "assistant", "content": None, "tool_calls": [item]}
    if item.get("type") in ("function_call_output", "custom_tool_call_output"):
        return {"role": "tool", "content": item.get("output")}
    return item


def is_responses_reply(response) -> bool:
    """Whether a logged response is a Responses API one: an ``output`` list, no ``choices``."""
    return isinstance(response, dict) and isinstance(response.get("output"), list) and "choices" not in response


def responses_reply(response: dict) -> dict:
    """A Responses API response as a chat completion's: one choice whose message content is its ``message`` items'
    parts (``output_text``), a ``function_call`` item a tool call; none (a response that failed) where its
    ``status`` is ``failed`` or it has an ``error``. Its ``usage`` as it is."""
    if response.get("error") is not None or response.get("status") == "failed":
        return {**response, "error": response.get("error") or {"status": "failed"}}
    parts, calls = [], False
    for item in response["output"]:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message" and isinstance(item.get("content"), list):
            parts.extend(item["content"])
        elif item.get("type") in ("function_call", "custom_tool_call"):
            calls = True
    message = {"role": "assistant", "content": parts or None, **({"tool_calls": [{"output": True}]} if calls else {})}
    return {**response, "choices": [{"message": message}]}


#: A chat message's reasoning text (vLLM's reasoning parsers' ``reasoning_content``, DeepSeek's; ``reasoning``:
#: vLLM's newer name, OpenRouter's), generated ahead of its ``content``.
REASONING_KEYS = ("reasoning_content", "reasoning")


def choice_message(choice):
    """A chat completion choice's reply message: its ``message`` (a completions choice's ``text`` as one), its
    reasoning text (:data:`REASONING_KEYS`) ahead of its content, joined by a newline (this module's rule: the model
    generated both; without usage the reply's count left it out). None where it has neither."""
    if not isinstance(choice, dict):
        return None
    message = choice.get("message")
    if message is None and isinstance(choice.get("text"), str):
        return {"role": "assistant", "content": choice["text"]}
    if not isinstance(message, dict):
        return None
    reasoning = next((message[k] for k in REASONING_KEYS if isinstance(message.get(k), str) and message[k]), None)
    if reasoning is None or not isinstance(message.get("content"), (str, type(None))):
        return message
    content = message.get("content") or ""
    return {**message, "content": f"{reasoning}\n{content}" if content else reasoning}


def responses_stream(events: list):
    """The response a Responses API stream's events carry: the last ending event's (:data:`RESPONSE_ENDS`), failed
    where that is ``response.failed``; an ``error`` event makes a failed one. None if they hold no ending event."""
    for event in reversed(events):
        if not isinstance(event, dict):
            continue
        if event.get("type") == "error":
            return {"error": event.get("error") or event.get("message") or True}
        if event.get("type") in RESPONSE_ENDS and isinstance(event.get("response"), dict):
            response = event["response"]
            if RESPONSE_ENDS[event["type"]]:
                return {**response, "error": response.get("error") or {"status": "failed"}}
            return response
    return None


def reasoning_text(blocks: list) -> list:
    """Anthropic content blocks with each ``thinking`` block as a text part of its thinking (the model generated it:
    :mod:`this module <ltrsched.workloads.log_records>`'s rule), a ``redacted_thinking`` block (encrypted) left out."""
    read = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
            read.append({"type": "text", "text": block["thinking"]})
        elif not (isinstance(block, dict) and block.get("type") == "redacted_thinking"):
            read.append(block)
    return read


def is_litellm_record(record) -> bool:
    """Whether a JSON record is a LiteLLM log record of a chat call: ``messages`` (a list) and ``response`` (a chat
    completion: an object with ``choices``) beside LiteLLM's own keys or its usage counts (:data:`LITELLM_KEYS`)."""
    return (isinstance(record, dict) and isinstance(record.get("messages"), list)
            and isinstance(record.get("response"), dict) and "choices" in record["response"]
            and any(k in record for k in (*LITELLM_KEYS, *_LITELLM_COUNTS)))


def litellm_exchange(record: dict, where: str) -> dict:
    """A LiteLLM log record (:func:`is_litellm_record`) as a request log's exchange: its ``messages`` the request's,
    its ``response`` the response, its ``prompt_tokens``/``completion_tokens`` (and ``total_tokens``) the response's
    usage where that has none; its ``request_id`` (LiteLLM's text) as its ``id``, its ``startTime`` as its
    ``arrival_time``, where it gives neither. One-line :class:`UserError` naming ``where`` for a count that the
    response's usage gives otherwise."""
    response = dict(record["response"])
    given = {k: record[k] for k in _LITELLM_COUNTS if record.get(k) is not None}
    usage = response.get("usage")
    if isinstance(usage, dict):
        for key, value in given.items():
            theirs = usage.get(key)
            if theirs is not None and _number(theirs) != _number(value):
                raise UserError(f"{where}: {key!r} ({value!r}) and 'response.usage.{key}' ({theirs!r}) disagree; "
                                "which does the served model count? give one")
    elif given:
        response["usage"] = given
    rest = {k: v for k, v in record.items() if k not in ("messages", "response", "request_id", *_LITELLM_COUNTS)}
    if record.get("request_id") is not None:
        rest.setdefault("id", record["request_id"])
    if record.get("startTime") is not None and not any(arrival_suffix(k) is not None for k in rest):
        rest["arrival_time"] = rest.pop("startTime")
    return {"request": {"messages": record["messages"]}, "response": response, **rest}


def litellm_lengths(record):
    """A LiteLLM spend log row that does not store its prompt (``messages`` and ``response`` empty: ``{}``, ``""``,
    null, LiteLLM's default) as a request line of lengths alone: its ``prompt_tokens``/``completion_tokens``, its
    ``request_id`` as its ``id``, its ``startTime`` as its ``arrival_time`` (:func:`litellm_exchange`'s rule). Any
    other record as it is. (It was refused: "'response' must be text (a JSON string), got {}".)"""
    if not (isinstance(record, dict) and any(k in record for k in LITELLM_KEYS)
            and all(not record.get(k) for k in ("messages", "response")) and "prompt" not in record):
        return record
    read = {k: v for k, v in record.items() if k not in ("messages", "response", "request_id")}
    if record.get("request_id") is not None:
        read.setdefault("id", record["request_id"])
    if record.get("startTime") is not None and not any(arrival_suffix(k) is not None for k in read):
        read["arrival_time"] = read.pop("startTime")
    return read


#: A LiteLLM spend log's start time (its ``LiteLLM_SpendLogs`` table's ``startTime``, a date-time), read as a table's
#: arrival time where it names none of ours (:func:`litellm_table`).
LITELLM_START = "startTime"


def litellm_table(columns) -> bool:
    """Whether a table's header (a ``.csv``'s) is a LiteLLM spend log's (``LiteLLM_SpendLogs``, as its database or UI
    exports it: ``request_id``, ``call_type``, ``spend``, ``startTime``, ``prompt_tokens``, ``completion_tokens``, ...):
    a ``request_id`` beside one of LiteLLM's own columns (:data:`LITELLM_KEYS`), names in any case. Its rows are read
    by :func:`litellm_lengths`' rule: ``request_id`` (LiteLLM's text, ``chatcmpl-...``, a UUID) is the row's label,
    not a request id (read as a file's ``id`` is: :mod:`~ltrsched.workloads.id_names`), ``startTime`` the arrival
    time, ``prompt_tokens``/``completion_tokens`` the lengths.

    Text ids are numbered in file order (0 for the first row, before any ``-n`` sample), not hashed: a request id is
    a whole number in [0, 10,000,000) given once, and a hash of 10,000 ids into that range repeats one with a
    chance of about 99% (n^2 / 2m = 5 expected); file order is every id-less file's rule (a LiteLLM ``.jsonl``'s
    too), gives the same numbers to the same file whatever ``-n``, and a result's row names the file's row
    (:mod:`~ltrsched.workloads.file_rows`). A copy sorted otherwise is numbered otherwise."""
    names = {c.strip().lower() for c in columns if isinstance(c, str)}
    return "request_id" in names and any(k.lower() in names for k in LITELLM_KEYS)


def _number(value):
    """A count as a number (its text read as one; a boolean as None), to compare two copies of it."""
    if isinstance(value, bool):  # (no count: agrees with none, as 1 == True would)
        return None
    number = text_number(value) if isinstance(value, str) else value
    return value if number is None else number
