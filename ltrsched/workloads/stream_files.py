"""A ``.jsonl``'s records as :func:`~ltrsched.workloads.loaders.load_jsonl` reads them: a dump of streamed responses
(server-sent events: :mod:`ltrsched.workloads.sse_logs`) as requests of lengths alone, one a stream, from each
stream's usage; a LiteLLM spend log row without its prompt as its lengths
(:func:`~ltrsched.workloads.log_records.litellm_lengths`); other lines as they are.

Such a file holds the responses alone, no request (no prompt text), so a stream's lengths are its usage's
(``prompt_tokens``/``completion_tokens``, or Anthropic's ``input_tokens``/``output_tokens``: read as a request line's
``usage`` is, :func:`~ltrsched.workloads.openai_usage.line_usage`); a stream without usage, one that failed (an error
event) and one of several choices (n > 1) are refused in one line naming the stream's first line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ltrsched.errors import UserError
from ltrsched.workloads.jsonl import jsonl_records
from ltrsched.workloads.load_progress import LoadProgress
from ltrsched.workloads.log_records import litellm_lengths
from ltrsched.workloads.openai_usage import INPUT_COUNTS, USAGE_COUNTS, served_response
from ltrsched.workloads.sse_logs import INCLUDE_USAGE, file_streams


def log_records(path: Path, loading: LoadProgress | None = None) -> Iterator[tuple[int, object]]:
    """``(line, record)`` of a ``.jsonl``: each stream of a dump of streamed responses as ``{"usage": {...}}``
    (:func:`stream_usage`, ``line`` its first line), else each line's JSON value
    (:func:`~ltrsched.workloads.jsonl.jsonl_records`; a LiteLLM spend log row without its prompt as its lengths:
    :func:`~ltrsched.workloads.log_records.litellm_lengths`). ``loading``: the load's progress, as
    :func:`~ltrsched.workloads.jsonl.jsonl_records` counts lines on it."""
    streams = file_streams(path)
    if streams is None:
        yield from ((line, litellm_lengths(record)) for line, record in jsonl_records(path, loading))
        return
    for line, events in streams:
        yield line, stream_usage(events, f"{path}:{line}")


def stream_usage(events: list, where: str) -> dict:
    """A stream's events (decoded) as ``{"usage": usage}``: the usage of the response they stream
    (:func:`~ltrsched.workloads.openai_usage.served_response`). One-line :class:`UserError` naming ``where`` (the
    stream's first line) for a stream that failed, of several choices, or whose usage lacks a count."""
    response = served_response(events, where)
    if not isinstance(response, dict) or response.get("error") is not None:
        raise UserError(f"{where}: a streamed response that failed (an error event), a request not served: remove "
                        "its stream from the dump")
    choices = response.get("choices")
    if isinstance(choices, list) and len(choices) > 1:
        raise UserError(f"{where}: a streamed response of {len(choices)} choices (n > 1), and its usage counts them "
                        "all: which is served? stream one choice per request")
    usage = response.get("usage")
    names = INPUT_COUNTS if isinstance(usage, dict) and not any(k in usage for k in USAGE_COUNTS) else USAGE_COUNTS
    if not isinstance(usage, dict):
        raise UserError(f"{where}: a streamed response without usage (its chunks give none), and a dump of streams "
                        f"holds no prompt text: its lengths come from its usage alone; {INCLUDE_USAGE}")
    missing = [k for k in names if usage.get(k) is None]
    if missing:
        raise UserError(f"{where}: a streamed response whose usage has no {' or '.join(map(repr, missing))}: a dump of "
                        "streams holds no prompt text, so its lengths come from its usage alone")
    return {"usage": usage}
