"""Streamed responses logged as server-sent events (SSE), read as the response they stream.

A streamed call's response reaches a log in one of three shapes:

- the stream's raw text, ``data: {json}`` lines (Anthropic's with ``event: NAME`` lines too), a blank line after
  each event, OpenAI's (and vLLM's) ending with ``data: [DONE]``: as a logged response (a JSON string), or as a whole
  file (``curl -N ... >> out.jsonl``, one stream after another);
- the events as JSON objects, ``{"event": NAME, "data": "<json text>"}`` (an SSE client's or proxy's record of
  each), as a logged response's list, or one per line of a ``.jsonl``.

:func:`stream_events` decodes either into the list of the events' JSON objects (a chunk list, Anthropic's or the
Responses API's events), which :func:`~ltrsched.workloads.openai_usage.served_response` reads as any streamed
response. A file of streams holds no request, hence no prompt text: each stream is a request of lengths alone from
its usage (:func:`stream_file_records`), as an OpenAI Batch API output line is; a stream without usage (OpenAI's
unless asked with ``stream_options: {"include_usage": true}``) is refused in one line saying so. (Before, such a
response was left out as one that failed, "no 'choices'", and such a file refused as "not valid JSON" or "it has
'event', 'data'".)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Iterator

from ltrsched.errors import UserError
from ltrsched.strict_json import DuplicateKeyError, unique_keys
from ltrsched.workloads.utf8 import check_utf8

#: OpenAI's last event's data, which is no JSON (the stream's end).
DONE = "[DONE]"
#: An SSE line's field names (a line ``NAME: value``), and a comment's start (``: ping``).
_FIELDS = ("data", "event", "id", "retry")
#: The keys of an SSE event logged as a JSON object (``data`` text, the others optional).
EVENT_KEYS = frozenset(_FIELDS)
#: The JSON ``type`` of the event that ends a stream (Anthropic's; the Responses API's three ends) besides OpenAI's
#: :data:`DONE`.
_LAST_TYPES = ("message_stop", "response.completed", "response.failed", "response.incomplete")
#: What to do about a stream without usage, in its error.
INCLUDE_USAGE = ("stream with stream_options {\"include_usage\": true} (vLLM's OpenAI server too), whose last chunk "
                 "gives the usage, or log each request with its response as {\"request\": ..., \"response\": ...}")


def is_sse_line(line: str) -> bool:
    """Whether a text line is an SSE field (``data: ...``, ``event: ...``) or comment (``: ping``)."""
    head = line.lstrip("\ufeff")
    return head.startswith(":") or any(head.startswith(f"{name}:") for name in _FIELDS)


def is_event_record(record) -> bool:
    """Whether a JSON value is an SSE event logged as an object: ``data`` text and no keys but :data:`EVENT_KEYS`."""
    return isinstance(record, dict) and isinstance(record.get("data"), str) and EVENT_KEYS.issuperset(record)


#: An SSE line's end (``str.splitlines`` splits at U+2028 too, which JSON text may hold).
_LINE_END = re.compile(r"\r\n|\r|\n")


def sse_datas(text: str, where: Callable[[int], str]) -> Iterator[tuple[int, str]]:
    """``(line, data)`` of each event of SSE text ``text`` (``line``: 0-based, of the event's first ``data:`` line):
    its ``data:`` lines' values joined by newlines (one space after the colon dropped, as the SSE standard says), an
    event ending at a blank line or the text's end; comments, ``event:``, ``id:`` and ``retry:`` lines skipped.
    One-line :class:`UserError` (``where(line)`` naming it) for a line that is none of those (other records after the
    stream: they were dropped, silently)."""
    data: list[str] = []
    first = 0
    for number, line in enumerate(_LINE_END.split(text)):
        if not line.strip():
            if data:
                yield first, "\n".join(data)
            data = []
            continue
        if not is_sse_line(line):
            raise UserError(f"{where(number)}: not a server-sent event line ('data: ...', 'event: ...'), and the "
                            f"stream's first line is one: {line.strip()[:60]!r}; a stream's text holds its events alone")
        if line.startswith("data:"):
            if not data:
                first = number
            value = line[len("data:"):]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield first, "\n".join(data)


#: JSON text's decoder, strict as a ``.jsonl`` line's (a key named twice refused: :func:`~ltrsched.strict_json.unique_keys`).
_DECODER = json.JSONDecoder(object_pairs_hook=unique_keys)


def _decoded(data: str, where: Callable[[], str]):
    """An event's data as its JSON value; :data:`DONE` as None. One-line :class:`UserError` (``where()`` naming the
    event) for data that is no JSON, or names a key twice (as a ``.jsonl`` line's)."""
    if data.strip() == DONE:
        return None
    try:
        return _DECODER.decode(data)
    except DuplicateKeyError as exc:
        raise UserError(f"{where()}: in its data, {exc}; keep one") from None
    except (ValueError, RecursionError) as exc:  # (JSONDecodeError, too-long integer text, deep nesting)
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not readable"
        raise UserError(f"{where()}: its data is not JSON ({reason}): {data[:60]!r}") from None


def stream_events(response, where: str):
    """A logged response that is a stream's SSE text (a string of ``data:`` lines) or a list of its events as
    objects (:func:`is_event_record`) as the list of its events' JSON values (:data:`DONE` dropped); any other
    response as it is. One-line :class:`UserError` naming ``where`` (``log.jsonl: record 2``) and the event for data
    that is no JSON."""
    if isinstance(response, str) and is_sse_line(response.lstrip().partition("\n")[0]):
        events = ((_decoded(d, lambda: f"{where}: the response's line {line + 1:,} (an SSE event)"))
                  for line, d in sse_datas(response, lambda n: f"{where}: the response's line {n + 1:,}"))
        return [e for e in events if e is not None]
    if isinstance(response, list) and response and all(is_event_record(e) for e in response):
        events = (_decoded(e["data"], lambda: f"{where}: the response's event {i + 1:,} (an SSE event)")
                  for i, e in enumerate(response))
        return [e for e in events if e is not None]
    return response


def _ends_stream(event) -> bool:
    """Whether a decoded event is a stream's last (Anthropic's ``message_stop``, the Responses API's end)."""
    return isinstance(event, dict) and event.get("type") in _LAST_TYPES


def _chunk_id(event):
    """An OpenAI chunk's ``id`` (a stream's chunks share it), or None for other events."""
    return event.get("id") if isinstance(event, dict) and isinstance(event.get("choices"), list) else None


def file_streams(path: Path) -> Iterator[tuple[int, list]] | None:
    """``(line, events)`` for each stream of a file of SSE text, or of SSE events as JSON objects one per line (a
    ``.jsonl``), ``line`` its first line (1-based); None if ``path`` is neither (its first non-blank line is no SSE
    line nor event object). A stream ends at OpenAI's ``[DONE]``, an event that ends one (:data:`_LAST_TYPES`), or
    an OpenAI chunk of another ``id``."""
    try:
        with path.open("rb") as fh:
            first = next((raw for raw in fh if raw.strip()), b"")
    except OSError:
        return None
    head = first.decode("utf-8", "replace").lstrip("\ufeff").strip()
    if is_sse_line(head):
        data = path.read_bytes()
        check_utf8(data, path)
        datas = ((line + 1, d) for line, d in sse_datas(data.decode("utf-8-sig"), lambda n: f"{path}:{n + 1}"))
    else:
        try:
            record = json.loads(head)
        except (ValueError, RecursionError):
            return None
        if not is_event_record(record):
            return None
        datas = _record_datas(path)
    return _streams(datas, path)


#: A stream dump's first line: an event's JSON data (or OpenAI's end), or an event's name (Anthropic's).
_DUMP_START = re.compile(r"^\ufeff?(?:data: ?(?:[{\[]|\[DONE\])|event: ?[A-Za-z_.]+\s*$)")


def _first_line(path: Path) -> str | None:
    """A file's first non-blank line (its first 4,096 bytes at most, stripped), or None if it cannot be read."""
    try:
        with path.open("rb") as fh:
            return next((raw for raw in fh if raw.strip()), b"")[:4096].decode("utf-8", "replace").strip()
    except OSError:
        return None


def stream_dump_error(path: Path) -> str | None:
    """The one-line error for a file of another suffix (``.txt``, ``.log``, ``.sse``) whose first non-blank line
    starts a dump of streamed responses (:data:`_DUMP_START`): it is read as a ``.jsonl``. None for any other file.
    (A ``.txt`` was "a .txt file holds prompts without output lengths", another suffix "unknown workload format".)"""
    first = _first_line(path)
    if first is None or not _DUMP_START.match(first):
        return None
    return (f"{path}: a dump of streamed responses (server-sent events, 'data: ...' lines), which a .jsonl is read "
            f"as: name it {path.stem}.jsonl")


def stream_prompts_error(path: Path) -> str | None:
    """The one-line error for a prompts file (``label --prompts``: a ``.jsonl`` or a ``.txt``) that is a dump of
    streamed responses: its first non-blank line starts SSE text (:data:`_DUMP_START`) or is an SSE event logged as
    a JSON object (:func:`is_event_record`). A dump holds the responses alone, no request, so no prompt text to label
    (a workload reads it as lengths alone). None for any other file. (It was "not valid JSON" for a ``.jsonl``; a
    ``.txt``'s ``data: {...}`` lines were labelled as prompts.)"""
    first = _first_line(path)
    if first is None:
        return None
    if not _DUMP_START.match(first):
        try:
            if not is_event_record(json.loads(first)):
                return None
        except (ValueError, RecursionError):
            return None
    return (f"{path}: a dump of streamed responses (server-sent events), which holds the responses alone, without "
            "the prompts they answer: nothing to label (a workload reads it as lengths); give the prompts, a .jsonl "
            "of {\"prompt\": ...} lines or a .txt of one prompt a line")


def _record_datas(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, data)`` of a ``.jsonl`` of SSE events as objects; one-line :class:`UserError` for a line that is no
    such object (a file of events holds events alone)."""
    from ltrsched.workloads.jsonl import jsonl_records

    for line, record in jsonl_records(path):
        if not is_event_record(record):
            raise UserError(f"{path}:{line}: not a server-sent event ({{\"event\": ..., \"data\": \"<json text>\"}}), "
                            "and line 1 is one: a file of streamed events holds events alone, one per line")
        yield line, record["data"]


def _streams(datas: Iterator[tuple[int, str]], path: Path) -> Iterator[tuple[int, list]]:
    """The streams of ``datas`` (:func:`file_streams`)."""
    events: list = []
    start, chunk = 0, None
    for line, data in datas:
        event = _decoded(data, lambda: f"{path}:{line}")
        if event is None:  # ([DONE])
            if events:
                yield start, events
            events, chunk = [], None
            continue
        if events and chunk is not None and _chunk_id(event) not in (None, chunk):  # (a stream without [DONE])
            yield start, events
            events = []
        if not events:
            start = line
        events.append(event)
        chunk = _chunk_id(event) if _chunk_id(event) is not None else chunk
        if _ends_stream(event):
            yield start, events
            events, chunk = [], None
    if events:
        yield start, events
