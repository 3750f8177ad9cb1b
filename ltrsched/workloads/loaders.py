"""Loading workloads from files and built-in names: one entry point, :func:`load_workload`.

Files, by suffix:
- ``.parquet``: our own workload table (see :mod:`ltrsched.workloads.schema`; a token count under another tool's
  name, ``input_tokens`` or ``num_decode_tokens`` (:data:`~ltrsched.workloads.schema.LENGTH_NAMES`), is read where the
  table lacks ours, and two names for one count, ours among them, are an error; our runs' ``generated_tokens`` beside
  ``output_tokens`` is none), or a labels file from
  ``ltrsched label`` (:mod:`ltrsched.workloads.labels`: one split of its main run, prompt text joined by key). A
  table with prompt text but no ``prompt_tokens`` has them counted (Llama-3), as a ``.jsonl``'s; one with
  ``generated`` (or ``response``) text but no ``output_tokens`` too; without ``arrival_time`` (or
  ``arrival_time_ms`` [ms]) every request is at t = 0; without ``request_id`` rows are numbered. Arrival times of a
  temporal type are read whatever the name's suffix: date-times as seconds since the earliest (as a ``.csv``'s),
  durations as seconds. A flat table's column names are read in any case and with spaces around them, as a ``.csv``'s
  (``PROMPT``, ``Generated``, ``Request_ID``, ``Arrival_Time_ms``, ``Score``: :data:`PARQUET_ANY_CASE`, and the
  token counts' names); two columns whose names differ only so (``prompt`` and ``Prompt``) are an error naming both.
- ``.jsonl`` (or ``.ndjson``, ``.jsonlines``, ``.ldjson``: :mod:`ltrsched.workloads.file_suffix`): one
  ``{"prompt": ..., "generated": ...}`` object per line (the seed's traces; ``"response"`` or
  OpenAI's legacy fine-tuning ``"completion"`` for ``"generated"`` too, as a parquet's column); lengths are
  re-tokenized with the Llama-3 tokenizer (a number where text belongs is an error naming the line); an optional
  ``arrival_time`` [s] (or ``arrival_time_ms`` [ms]) is kept. A line may give the output's
  length instead of (or beside) the generated text, ``"output_tokens": N`` (e.g. another model's own count), and
  the prompt's beside (or instead of) its text, ``"prompt_tokens": N``: both used as is, as a parquet's given
  counts are (a line of lengths alone has no prompt text, as a ``.csv``'s). A count may be written as text in
  every container (a ``.jsonl``'s ``"12"``, a parquet's Utf8 column, as a ``.csv``'s fields are), read by one rule
  (:mod:`ltrsched.workloads.number_text`). A line's BurstGPT ``response tokens`` 0 (its keys as written) is a failed
  request, left out with a warning, as a ``.csv``'s row is (:func:`drop_failed_requests`). In a ``.jsonl``, ``.csv``
  or parquet of requests a prompt text that is blank (nothing, whitespace or invisible characters alone) is an
  error naming its line or row, its count given or not: an engine replay sends the text (a null text is a request
  of lengths alone). A ``"request_id": N`` on every line (or none) is kept as the request's id. A predictor's
  ``"score"``, the model's own ``"po_estimate"`` and a ``"predicted_length"`` (numbers, or null where missing) are
  kept as those columns. Ids, predictor numbers and arrival times in seconds written as text are read by the counts'
  rule too (a ``.jsonl``'s strings, a parquet's Utf8 columns, as a ``.csv``'s fields).
  Mooncake's traces (``{"timestamp": ms, "input_length": N, "output_length": N, "hash_ids": [...]}``) too: a line
  with ``input_length``/``output_length`` (:data:`MOONCAKE_KEYS`) has them read as the prompt and output counts and
  its ``timestamp`` as the arrival in milliseconds (Mooncake's unit; on other lines ``timestamp`` is seconds, and a
  file giving it on both kinds of line is an error: which unit?);
  ``hash_ids`` is not (no prefix cache is simulated). Other tools' count keys are read as ours
  (:data:`~ltrsched.workloads.schema.OTHER_LENGTH_KEYS`: OpenAI's usage ``completion_tokens``, vLLM's benchmark
  ``input_len``/``output_len``, ``num_prompt_tokens``/``num_output_tokens``); two keys for one count are an error.
- ``.jsonl`` of conversations, one per line (OpenAI's chat format, ``{"messages": [{"role", "content"}, ...]}``;
  ShareGPT's, LMSYS's), told by its first line: read as a ``.json`` array of them (below).
- ``.json``: a JSON array of ShareGPT conversations (complete or truncated), first turns, the paper's selection
  rules (first turns they leave out, e.g. replies of under 4 tokens, are counted in a warning on stderr); records
  with LMSYS-Chat-1M's or OpenAI's ``{"role", "content"}`` messages too
  (:func:`ltrsched.workloads.sharegpt.read_first_turn`). The text of system (or developer) messages before the first
  user turn precedes it in the prompt, its tokens counted, as a server is sent it (the packaged ShareGPT file's
  prompts are the user turn alone, the paper's). Records that are not conversations (not objects, no list
  of messages, first turns without a known speaker or text) are skipped with a one-line warning on stderr counting
  them by reason, as is a file cut off inside a record (the packaged ShareGPT file's cut is expected, and quiet); a
  file with no usable record is an error saying why. A parquet of such conversations (LMSYS-Chat-1M's own files: a
  ``conversation`` column) is read the same way; its ``score``, ``po_estimate``, ``predicted_length``,
  arrival times and ``request_id`` columns are kept, as a flat table's (a ``.json``'s or ``.jsonl``'s record's keys
  likewise, read as a request line's: :data:`~ltrsched.workloads.sharegpt.RECORD_COLUMNS`), and so are its own
  ``prompt_tokens`` and ``output_tokens`` of each first turn (a ``.json``'s or ``.jsonl``'s record's keys likewise,
  ours or another tool's, ``input_len``, ``completion_tokens``, by a request line's name table,
  :func:`~ltrsched.workloads.record_values.count_keys`: they were ignored) (a flat table's and a ``.jsonl``'s given counts are used too; they were
  recounted from the text): the file's count where a row gives one, the text's Llama-3 count where it is null; the
  paper's selection (prompt and output lengths) reads them. Counts that differ from the text's Llama-3 count are
  kept, and counted in a warning on stderr (they may be another tokenizer's); a count that is not a whole number
  >= 1 is an error naming the row (:func:`ltrsched.workloads.sharegpt.given_counts`).
- ``.csv``: length-only traces: ``num_prefill_tokens``/``prompt_tokens``, ``num_decode_tokens``/``output_tokens``
  and optionally ``arrived_at``/``arrival_time`` (column names in any case; Azure's published ``TIMESTAMP``,
  ``ContextTokens``, ``GeneratedTokens`` too, and BurstGPT's ``Timestamp`` [s], ``Request tokens``, ``Response
  tokens``: rows with ``Response tokens`` 0, BurstGPT's failed requests, are left out with a warning on stderr
  counting them, :func:`drop_failed_requests`; its ``Log Type``, ``Model`` and ``Total tokens`` are not read; every
  other name of :data:`~ltrsched.workloads.schema.LENGTH_NAMES`, e.g. OpenAI's usage ``completion_tokens``, and
  Mooncake's ``input_length``/``output_length``, beside which a plain-named numeric ``timestamp`` is an error: Mooncake
  gives it in milliseconds, so the name must say which, ``timestamp_ms`` or ``timestamp_s``; LiteLLM's spend-log
  export, its text ``request_id`` numbered in file order, ``startTime`` the arrival time:
  :func:`~ltrsched.workloads.log_records.litellm_table`). Arrival times are
  seconds, or date-times (e.g.
  ``2023-11-16 18:15:46.68``), read as seconds since the earliest; without them every request is at t = 0. Any
  of those names with ``_ms`` (``arrived_at_ms``, ``timestamp_ms``) holds milliseconds, with ``_s`` seconds. Two
  names for one field (``arrival_time`` and ``timestamp``, ``prompt_tokens`` and ``input_tokens``) are an error
  naming both: which holds it? (The first was used, silently.)
  Blank lines are skipped (a line of empty fields is a request with missing values). A ``request_id`` column (in
  any case) is kept as the requests' ids; ``score``, ``po_estimate``, ``predicted_length`` and ``prompt`` columns
  (in any case too) as those columns; a ``prompt`` is text as written, digits too (``42``, ``007``), and without a
  prompt count column its Llama-3 count is used (as a parquet's and a ``.jsonl``'s: a table of prompts and
  another model's ``output_tokens``); likewise the reply's text in a ``generated`` (or ``response``) column without
  an output count column (:data:`REPLY_NAMES`). In every format two columns (or keys) of the reply's text, two of
  those names or one beside Alpaca's ``output`` (:data:`UNREAD_REPLY_NAMES`), are an error naming both where the
  text is counted (one was used, silently). Lines may end with CR alone. Header names
  and numbers may have spaces around them (``a, b``). The header line repeated among the records (two files
  joined) is an error naming its row (:mod:`ltrsched.workloads.csv_joined`), and so is a line with more fields than
  the header or a quote left open (:mod:`ltrsched.workloads.csv_fields`).

Arrival times are read alike in every format (:func:`arrival_suffix`): under the ``.csv``'s names (``arrival_time``,
``arrived_at``, ``arrival``, ``timestamp``, Chatbot Arena's ``tstamp``, in any case: Azure's ``TIMESTAMP`` in a parquet
or a ``.jsonl`` too; they travelled along unread; a conversation file's too, LMSYS's ``timestamp`` column or a
``.json``'s or ``.jsonl``'s record's key, on every record or none: they were dropped), date-time text as seconds since
the earliest (:func:`_datetime_seconds`; a parquet refused it, a ``.jsonl`` too). They are seconds unless a name's
suffix says otherwise (:data:`UNIT_SUFFIXES`); two columns (or keys) giving them are an error. Plain-named times that
look like milliseconds (a span of days with a median gap of minutes, a span of hours with a median gap of over 5
minutes, or Unix milliseconds) carry a warning that ``replay`` arrivals print, naming the column to rename
(:func:`ltrsched.workloads.arrivals.seconds_unit_warning`); the Azure traces (an hour, gaps of 0.06-0.12 s) and Poisson
workloads in seconds do not.

Ids a file gives are whole numbers in [0, 10,000,000), each once (:func:`ltrsched.workloads.schema.request_ids`,
for every format); without them the requests are numbered 0, 1, ...: a parquet's, a ``.csv``'s and a request
``.jsonl``'s in the file's order, before a split or ``-n`` sample (a request keeps its id whatever the sample), a
conversation file's first turns in the order of the paper's selection and sample (as the built-in ``sharegpt``'s).
Errors name the file.

Text files are UTF-8 (a byte-order mark is dropped); an invalid byte is an error naming its line
(:mod:`ltrsched.workloads.utf8`), never replaced; a UTF-16 or UTF-32 file is an error saying so, and a compressed one
(``.csv.gz`` too) one saying to decompress it.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import polars as pl

from ltrsched.errors import UserError
from ltrsched.strict_json import shown
from ltrsched.fingerprint import file_digest
from ltrsched.inputs import check_not_special
from ltrsched.notices import explain_error
from ltrsched.workloads.arrival_names import (
    ARRIVAL_KEYS, ARRIVAL_NAMES, UNIT_SUFFIXES, arrival_suffix, arrival_text_error, escapes_a_letter, file_may_name_added,
    unread_arrival_unit,
)
from ltrsched.workloads.arrival_values import (
    arrival_error, first_bad_arrival, in_units, is_arrival, missing_time_error, mixed_kinds_error, other_name_error,
    two_keys_error,
)
from ltrsched.workloads.arrivals import seconds_unit_warning
from ltrsched.workloads.blank_text import blank_why, is_blank
from ltrsched.workloads.builtin import BUILTIN, builtin_workload
from ltrsched.workloads.count_values import count_error, csv_boolean, is_count
from ltrsched.workloads.empty_file import check_not_empty
from ltrsched.workloads.file_splits import (FILE_SPLITS, SPLIT_NAME, SplitCheck, record_splits, split_column,
                                           split_mask)
from ltrsched.workloads.file_rows import FILE_ROWS, FileRows
from ltrsched.workloads.count_values import ZERO_OUTPUT_HINT
from ltrsched.workloads.openai_usage import (TotalsOff, batch_output_line, failed_note, failed_why, is_batch_output,
                                             is_logged_exchange, line_usage)
from ltrsched.workloads.number_text import NUMBER_TEXT, number_texts, text_error, text_number, text_numbers
from ltrsched.workloads.csv_fields import field_error
from ltrsched.workloads.csv_joined import joined_files_error, repeated_header_row
from ltrsched.workloads.csv_separator import separator_hint
from ltrsched.workloads.id_names import ID_NAME, adopted_ids, id_column, whole_number, whole_numbers
from ltrsched.workloads.jsonl import jsonl_records
from ltrsched.workloads.load_progress import LoadProgress
from ltrsched.workloads.log_records import LITELLM_START, litellm_table
from ltrsched.workloads.schema import (
    LENGTH_NAMES, NUMERIC_OPTIONAL_COLUMNS, OPTIONAL_COLUMNS, OTHER_LENGTH_KEYS, REPLY_NAMES, REQUIRED_COLUMNS,
    RUN_RESULT_COUNTS,
    SYSTEM_SEPARATOR, Workload,
    first_non_numeric,
    first_non_numeric_row,
    length_columns, request_ids, validate,
)
from ltrsched.workloads.record_values import count_keys, optional_number, request_id_value
from ltrsched.workloads.selection import MAX_OUTPUT_TOKENS, left_out, paper_selection, sample_rows
from ltrsched.workloads.sharegpt import (
    CONVERSATION_KEYS, COUNT_COLUMNS, FILE_SPLIT, RECORD_NUMBER, SYSTEM_COLUMN, TABLE_COLUMNS, format_hint,
    gives_table_counts, is_conversation_table,
    load_sharegpt_records, may_give_counts, may_give_other_counts,
    may_give_arrivals, may_give_columns, may_give_prompter, may_give_reply_text, may_give_system_key, may_give_usage,
    may_give_system_text, record_hint,
    records_key,
)
from ltrsched.workloads.sse_logs import stream_dump_error
from ltrsched.workloads.stream_files import log_records
from ltrsched.workloads.system_key import SYSTEM_KEY, join_system_column, system_column, system_text
from ltrsched.workloads.tokenizer import count_tokens
from ltrsched.workloads.utf8 import decode_utf8, describe_surrogate, file_not_text_hint, lf_line_ends, lone_surrogate
from ltrsched.workloads.file_suffix import file_suffix

CSV_COLUMNS = {"arrival_time": ARRIVAL_NAMES, **LENGTH_NAMES}


#: Mooncake's trace keys (FAST'25 release, ``mooncake_trace.jsonl``): ``input_length`` and ``output_length``
#: [tokens], read as ``prompt_tokens`` and ``output_tokens``; on a line that has them, ``timestamp`` is the arrival
#: [ms] since the first request (Mooncake's unit). Its ``hash_ids`` (prefix-cache blocks) are not read: the simulator
#: has no prefix cache, so every prompt is prefilled in full.
MOONCAKE_KEYS = {"input_length": "prompt_tokens", "output_length": "output_tokens"}
#: A flat parquet's columns read in any case (and with spaces around them), as a ``.csv``'s are: the text the counts
#: come from, the ids, the arrival times (:data:`ARRIVAL_KEYS`) and the optional columns (``Prompt``, ``Score``,
#: ``Arrival_Time_ms``; the token counts' names too, :func:`~ltrsched.workloads.schema.length_columns`). Lower case
#: (Our names, in lower case.)
PARQUET_ANY_CASE = ("prompt", "generated", "response", "completion", "request_id", *ARRIVAL_KEYS, *OPTIONAL_COLUMNS)
#: Output-count column names (in lower case) under which 0 marks a failed request, not an output of no tokens:
#: BurstGPT's ``Response tokens`` (its ``BurstGPT_1.csv`` and ``_2.csv`` hold such rows, its ``*_without_fails_*``
#: files none). :func:`drop_failed_requests` leaves them out, with a warning; under any other name an output of 0
#: tokens is an error.
FAILED_OUTPUT_NAMES = ("response tokens",)
#: Other names of a reply's text (in lower case), not read as it (Alpaca's ``output``; a file of ``prompt`` and
#: ``output`` is refused, naming the columns read): beside one of :data:`REPLY_NAMES` either could be the reply
#: (the one read was used, silently), and where the reply's text is read the two are an error naming both
#: (:func:`_one_reply`).
UNREAD_REPLY_NAMES = ("output",)


def _one_reply(names, where: str, what: str = "columns") -> None:
    """One-line :class:`UserError` naming ``where`` if ``names`` (a table's columns, in any case, or a ``.jsonl``
    line's keys, as written: ``what``) give the reply's text twice: two of :data:`REPLY_NAMES` (a parquet's
    ``response`` and ``completion``: the first was used, silently), or one beside one of
    :data:`UNREAD_REPLY_NAMES` (``output`` beside ``response``: which is the reply?)."""
    name = (lambda n: n.strip().lower()) if what == "columns" else (lambda n: n)
    found = [n for n in names if isinstance(n, str) and name(n) in (*REPLY_NAMES, *UNREAD_REPLY_NAMES)]
    if len(found) > 1:
        both = "both" if len(found) == 2 else "all"
        raise UserError(f"{where}: {what} {' and '.join(repr(n) for n in found)} {both} may give the reply's text, "
                        f"from which output_tokens is counted; which does? keep one (drop or rename the "
                        f"other{'s' if len(found) > 2 else ''}), or give output_tokens")
#: A column a loader adds to a file's table while it is read: each request's row (a ``.csv``'s record after the
#: header, a parquet's row) or line (a ``.jsonl``'s), 1-based, as it is in the file, which
#: :func:`_sample_checked`'s errors name and then drops (rows left out, blank lines and BurstGPT's failed requests,
#: made the table's row numbers differ from the file's).
FILE_ROW = "__ltrsched_file_row__"


def _numbered(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(request_id=pl.arange(0, df.height, dtype=pl.Int64))


def load_jsonl(path: Path, arrival_info: dict | None = None) -> pl.DataFrame:
    """A ``.jsonl`` file's requests (see the module docstring). ``arrival_info`` (if given) receives the arrival-time
    key (``column``) and whether every line states its unit (``unit``: None where a line gives plain-named times,
    ``date-time`` where they are date-times)."""
    prompts, prompt_counts, generated, arrivals, timed, ids = [], [], [], [], [], []
    other_ids = []  # [per line] its 'id' as a whole number, else None (id_names: read where every line gives one)
    reply_keys = []  # [per line] the key of its reply's text as written ('response', 'completion'), for the errors
    units = set()  # the arrival-time keys the lines use
    named = []  # [per line] its arrival time's key as the file names it (a Mooncake line's 'timestamp'), or None
    dates = {}  # line -> (key, its date-time text): read as a .csv's are, once every line is read
    optional = {name: [] for name in NUMERIC_OPTIONAL_COLUMNS}  # [per line] (None where a line has none)
    mooncake = set()  # the numbers of the lines in Mooncake's keys
    stamps = {}  # whether a line is Mooncake's -> the first such line giving a 'timestamp' (_timestamp_units_error)
    checked_keys = set()  # keys found in no other case than JSONL_KEYS' and naming no arrival times in a unit unread
    plain_keys = set()  # keys of lines without another tool's token-count keys (OTHER_LENGTH_KEYS)
    failed_keys = []  # [per line] its key of FAILED_OUTPUT_NAMES if that gives an output of 0 (a failed request)
    batch_failed = []  # (line, why) of each OpenAI Batch API output line that failed (left out, with a note)
    totals_off = TotalsOff()  # usage objects whose total_tokens is not prompt + completion (a note)
    loading = LoadProgress(path)  # (a big file's lines read, then its texts tokenised, on stderr)
    # (what a line's keys say, worked out once for each set of keys, as written and in their order: most lines repeat
    # the first's; a look-up a line took 1.4 s of 100,000 lines' 5.9 s under cProfile)
    one_reply = set()  # the keys of lines that give the reply's text once (_one_reply)
    arrival_keys = {}  # a line's keys -> those naming its arrival time
    splits = {}  # line -> its own split, the 'split' key as written, where it gives one (a failed Batch API line too)
    for lineno, rec in log_records(path, loading):  # (a dump of streamed responses: one usage a stream, stream_files)
        if isinstance(rec, dict) and SPLIT_NAME in rec:  # (read in this pass: _split_rows read the file again)
            splits[lineno] = rec[SPLIT_NAME]
        if is_logged_exchange(rec):  # (a request file's line: read as one, its 'response' object was refused as no
            # text, as an OpenAI Batch API output line's would be)
            raise UserError(f"{path}:{lineno}: a request log's {{\"request\", \"response\"}} record, and the first "
                            "line is a request, not a conversation: a .jsonl holds requests or conversations (OpenAI's "
                            "chat format, a request log's records), one kind on every line")
        if is_batch_output(rec):  # (a request of lengths alone, from its usage: it was refused with a jq recipe)
            flat = batch_output_line(rec, path, lineno, totals_off)
            if flat is None:
                batch_failed.append((lineno, failed_why(rec)))
                continue
            rec = flat
        elif isinstance(rec, dict) and rec.get("usage") is not None:  # (a request line's usage beside its
            # text: its counts read as a conversation record's are; they were ignored, silently; one that is no object
            # refused in a record's words: it was ignored too)
            rec = line_usage(rec, path, lineno, totals_off)
        original = rec if isinstance(rec, dict) else {}
        if isinstance(rec, dict) and any(k in rec for k in MOONCAKE_KEYS):
            rec = _mooncake_line(rec, f"{path}:{lineno}")
        if isinstance(rec, dict) and not plain_keys.issuperset(rec):  # (each key looked at once, as checked_keys)
            if any(k in OTHER_LENGTH_KEYS for k in rec):
                rec = _other_length_keys(rec, f"{path}:{lineno}")
            else:
                plain_keys.update(rec)
        replies = [k for k in REPLY_NAMES if k in rec] if isinstance(rec, dict) else []
        if len(replies) > 1:
            raise UserError(f"{path}:{lineno}: {' and '.join(repr(k) for k in replies)} both give the reply's text; "
                            "give one")
        if replies and "output_tokens" not in rec and tuple(rec) not in one_reply:  # (an 'output' key beside it:
            # which is the reply?)
            _one_reply(list(rec), f"{path}:{lineno}", "keys")
            one_reply.add(tuple(rec))
        if replies and replies[0] != "generated":  # the reply's text under another name, as a parquet's 'response'
            # column is read (a {"prompt", "response"} file was refused; OpenAI's legacy fine-tuning file,
            # {"prompt", "completion"}, too)
            rec = {("generated" if k == replies[0] else k): v for k, v in rec.items()}
        for name in ("prompt", "generated"):  # a number where text belongs (JSON has types: 42 is no text)
            if isinstance(rec, dict) and rec.get(name) is not None and not isinstance(rec[name], str):
                key = replies[0] if name == "generated" and replies else name  # (the line's own: 'response' was
                # named 'generated', of an OpenAI Batch API output line, whose 'response' is an object)
                raise UserError(f"{path}:{lineno}: {key!r} must be text (a JSON string), got {shown(rec[name])}"
                                + (_MESSAGES_HINT if _is_messages(rec[name]) else _record_hint(original)))
        if not isinstance(rec, dict) or not (
                isinstance(rec.get("prompt"), str) or ("prompt" not in rec and "prompt_tokens" in rec)) or not (
                isinstance(rec.get("generated"), str) or ("generated" not in rec and "output_tokens" in rec)):
            conversation = isinstance(rec, dict) and any(k in rec for k in CONVERSATION_KEYS)
            unread = [k for k in rec if k in UNREAD_REPLY_NAMES and isinstance(rec[k], str)] if isinstance(
                rec, dict) and isinstance(rec.get("prompt"), str) else []  # (a {"prompt", "output"} line: "it has
            # 'prompt', 'output'", of a reply it has)
            # (a prompts file, as `label --prompts` reads: "it has 'prompt'" said not what was missing)
            prompt_only = isinstance(rec, dict) and isinstance(rec.get("prompt"), str) and not any(
                k.strip().lower() in ("generated", *REPLY_NAMES, *UNREAD_REPLY_NAMES, *LENGTH_NAMES["output_tokens"])
                for k in rec if isinstance(k, str)) and not record_hint(original)  # (DPO's 'chosen': its own hint)
            raise UserError(f"{path}:{lineno}: expected an object with string fields 'prompt' and 'generated' "
                            "(or, instead of a text, its length: 'prompt_tokens', 'output_tokens'; Mooncake's "
                            "'input_length', 'output_length')"
                            + (("; this line is a conversation and the first line is not: a .jsonl holds requests "
                                "or conversations (OpenAI's chat format), one kind on every line" if prompts else
                                "; its messages beside a prompt count are read as a request of lengths (a request "
                                "logged with its usage): give its output length too ('output_tokens' or "
                                "'completion_tokens'), or drop the prompt count to read the messages as a "
                                "conversation") if conversation else "")
                            + ("; a prompt without its output length (the reply's text or 'output_tokens') is no "
                               "request: label such prompts first (`ltrsched label --prompts FILE`)"
                               if prompt_only else "")
                            + (f"; its {unread[0]!r} is not read as the reply's text (Alpaca's name): name it "
                               "'generated' (or 'response')" if unread else "")
                            + _record_hint(original) + _null_texts(original)
                            + _line_keys(original if isinstance(rec, dict) else rec))
            # (the line's own keys: a Dolly line's 'response' was named 'generated', the name it is read by)
        # (BurstGPT's failed request, 'response tokens' 0: left out as a .csv's row is; it was refused)
        failed_keys.append(next((k for k in original if k.lower() in FAILED_OUTPUT_NAMES and k in OTHER_LENGTH_KEYS
                                 and rec.get("output_tokens") == 0
                                 and not isinstance(rec["output_tokens"], bool)), None))
        if "output_tokens" in rec:  # a count given is kept, beside the text too (as a parquet's): it was ignored
            rec["generated"] = 0 if failed_keys[-1] else _token_count(rec["output_tokens"], "output_tokens",
                                                                      f"{path}:{lineno}")
        if isinstance(rec.get("prompt"), str) and SYSTEM_KEY in rec:  # (Anthropic's system prompt beside it: sent
            # ahead of the prompt, as a conversation's system text, and counted so; it was dropped, silently)
            system = system_text(rec[SYSTEM_KEY])
            if system is None:
                raise UserError(f"{path}:{lineno}: {SYSTEM_KEY!r} must be text (a JSON string), got "
                                f"{shown(rec[SYSTEM_KEY])}")
            if system and not is_blank(rec["prompt"]):  # (a blank prompt stays one: refused below, as without it)
                rec["prompt"] = f"{system}{SYSTEM_SEPARATOR}{rec['prompt']}"
        # (a prompt count given beside the text is kept too: it was re-counted with Llama-3's tokenizer)
        prompt_counts.append(_token_count(rec["prompt_tokens"], "prompt_tokens", f"{path}:{lineno}")
                             if "prompt_tokens" in rec else -1)
        for name in ("prompt", "generated"):
            if not isinstance(rec.get(name), str):
                continue
            at = lone_surrogate(rec[name])
            if at is not None:
                raise UserError(f"{path}:{lineno}: {name!r} holds a lone UTF-16 surrogate "
                                f"({describe_surrogate(rec[name], at)}), half of a character that cannot be "
                                "tokenized; write the whole pair or the character itself")
        names = tuple(rec)
        keys = arrival_keys.get(names)
        if keys is None:  # (the .csv's names: 'timestamp' was not read)
            keys = arrival_keys[names] = [k for k in rec if arrival_suffix(k) is not None]
        if len(keys) > 1:
            raise UserError(two_keys_error(f"{path}:{lineno}", keys))
        if not checked_keys.issuperset(rec):  # (each key looked at once: most lines repeat the first's)
            cased = [k for k in rec if k not in JSONL_KEYS and k.strip().lower() in JSONL_KEYS
                     and arrival_suffix(k) is None]
            if cased:  # (a 'Score' or 'Request_ID' beside a line's request was dropped, silently)
                named = (f"key {cased[0]!r} is" if len(cased) == 1
                         else f"keys {', '.join(repr(k) for k in cased)} are")
                raise UserError(f"{path}:{lineno}: the {named} not read (keys match as written): write "
                                f"{', '.join(repr(k.strip().lower()) for k in cased)}")
            if not keys:
                unread_arrival_unit(rec, f"{path}:{lineno}")
            checked_keys.update(rec)
        key = keys[0] if keys else "arrival_time"
        unit = "milliseconds" if arrival_suffix(key) == "_ms" else "seconds"
        if keys:
            units.add(key)
        named.append(("timestamp" if key not in original and "timestamp" in original else key) if keys else None)
        arrival = rec.get(key, 0.0)
        if isinstance(arrival, str) and text_number(arrival) is not None:  # a number as text, as a .csv's (it
            arrival = text_number(arrival)  # was read as a date-time, and refused)
        if isinstance(arrival, str):  # a date-time, as a .csv's, whatever the key's suffix (read below)
            dates[lineno] = (key, arrival)
            arrival = 0.0
        if not is_arrival(arrival):  # (null, true, -1, NaN: a table's words, arrival_values)
            raise UserError(arrival_error(path, key, arrival, f"line {lineno}", "key"))
        try:
            arrival = float(arrival) * UNIT_SUFFIXES.get(arrival_suffix(key), 1.0)
        except OverflowError:  # an integer beyond float64 (JSON's integers have no bound): was a traceback
            raise UserError(f"{path}:{lineno}: {key!r} is too large to be a number of {unit} "
                            f"({len(str(arrival))} digits)") from None
        if "request_id" in rec:  # kept (it was dropped, and the lines numbered); request_ids() checks the values
            ids.append(request_id_value(rec["request_id"], f"{path}:{lineno}"))  # (beyond Int64: refused)
        else:
            ids.append(None)
        other_ids.append(whole_number(original[ID_NAME]) if ID_NAME in original else None)
        for name, values in optional.items():  # kept (they were dropped: `po` then drew its estimates instead
            # of the file's, silently, and `ltr` said the file had no score)
            values.append(optional_number(rec.get(name), name, f"{path}:{lineno}"))
        prompts.append(rec.get("prompt"))  # (None: a trace of lengths alone, as a .csv's)
        reply_keys.append(replies[0] if replies else "generated")
        generated.append(rec["generated"])
        arrivals.append(arrival)
        timed.append(lineno if keys else -lineno)
        if any(k in original for k in MOONCAKE_KEYS):
            mooncake.add(lineno)
        if "timestamp" in original:  # [ms] on a Mooncake line, else [s]
            stamps.setdefault(lineno in mooncake, lineno)
    if arrival_info is not None and splits:
        arrival_info["line splits"] = splits
    if batch_failed:  # (the warning, or the error if every line failed, as BurstGPT's failed requests)
        note = failed_note(len(batch_failed), len(batch_failed) + len(prompts), *batch_failed[0], path)
        if arrival_info is not None:
            arrival_info.setdefault("notes", []).append(note)
    totals_note = totals_off.note(len(batch_failed) + len(prompts))
    if totals_note and arrival_info is not None:  # (total_tokens was never looked at)
        arrival_info.setdefault("notes", []).append(f"warning: {path}: {totals_note}")
    if not prompts:
        raise UserError(f"{path}: no requests (empty file)")
    if len(stamps) == 2:  # (each line read in its unit: a file of both was read in two units, silently)
        raise UserError(_timestamp_units_error(path, stamps[True], stamps[False]))
    given = [n for n in named if n is not None]
    if given and any(n != given[0] for n in named):  # (untimed lines would arrive at t = 0; two names, each read as
        # it says, may be two units or epochs: a conversation record's are refused alike; they were both read)
        at = next(i for i, n in enumerate(named) if n != given[0])
        first = abs(timed[at])
        if named[at] is None:
            key = "timestamp" if first in mooncake else given[0]  # (a Mooncake line's is its 'timestamp')
            raise UserError(missing_time_error(f"{path}:{first}", key))
        raise UserError(other_name_error(f"{path}:{first}", named[at], given[0]))
    if dates:
        arrivals = _jsonl_dates(dates, arrivals, [abs(t) for t in timed], path)
    if arrival_info is not None and any(t > 0 for t in timed):
        plain = sorted(k for k in units if not arrival_suffix(k))
        arrival_info.update(column=plain[0] if plain else sorted(units)[0],
                            unit="date-time" if dates else None if plain else "given")
    lines = [abs(t) for t in timed]
    given_ids = {}
    if any(rid is not None for rid in ids):
        if None in ids:  # (numbers for the others could repeat an id given)
            raise UserError(f"{path}:{lines[ids.index(None)]}: no 'request_id', which other lines have; give it "
                            "on every line or none")
        given_ids["request_id"] = request_ids(pl.Series("request_id", ids, strict=False), str(path),
                                              lambda row: f"line {lines[row]}")
    elif (adopted := adopted_ids(other_ids)) is not None:  # (a line's 'id' on every line, whole numbers, each once
        # and in range: as a table's, id_names)
        given_ids["request_id"] = adopted
    given = np.array([g if isinstance(g, int) else -1 for g in generated], dtype=np.int64)  # lengths given as numbers
    texts = [g if isinstance(g, str) else "" for g in generated]
    prompt_given = np.array(prompt_counts, dtype=np.int64)
    with loading:
        bar = loading.phase(int((prompt_given < 0).sum() + (given < 0).sum()), "texts", "tokenised", "text")
        counts = {"prompt": _given_or_counted(prompt_given, [p or "" for p in prompts], bar),
                  "generated": _given_or_counted(given, texts, bar)}
    _no_blank_prompts(prompts, [c < 0 for c in prompt_counts], lambda i: f"{path}:{lines[i]}")
    failed = np.array([k is not None for k in failed_keys], dtype=bool)
    if failed.any():  # (the warning, or the error if every line failed, as a .csv's)
        _failed_note(int(failed.sum()), len(failed), failed_keys[int(failed.argmax())], path, arrival_info)
    for name, tokens in counts.items():  # name the line (the schema's check names a 0-based request id)
        empty = np.flatnonzero((tokens < 1) & ~failed)
        if len(empty):  # (a 'response' key was named 'generated', the name it is read by)
            key = reply_keys[empty[0]] if name == "generated" else name
            raise UserError(f"{path}:{lines[empty[0]]}: {key!r} has no tokens ({len(empty)} line(s) so); "
                            + (ZERO_OUTPUT_HINT if name == "generated" else
                               "every request needs at least one prompt and one output token"))
    texts = {"prompt": pl.Series("prompt", prompts, dtype=pl.String)} if any(p is not None for p in prompts) else {}
    df = pl.DataFrame(
        {
            **texts,
            "prompt_tokens": counts["prompt"],
            "output_tokens": counts["generated"],
            "arrival_time": np.asarray(arrivals, dtype=np.float64),
            **given_ids,
            **{name: pl.Series(name, values, dtype=pl.Float64) for name, values in optional.items()
               if any(v is not None for v in values)},
            FILE_ROW: pl.Series(FILE_ROW, lines, dtype=pl.Int64),
        }
    )
    return df.filter(~pl.Series(failed)) if failed.any() else df


def _timestamp_units_error(path: Path, mooncake: int, plain: int) -> str:
    """The one-line error for a ``.jsonl`` whose ``timestamp`` key is read in two units: milliseconds on line
    ``mooncake``, which gives Mooncake's keys (:data:`MOONCAKE_KEYS`), seconds on line ``plain``, which does not."""
    return (f"{path}:{max(mooncake, plain)}: 'timestamp' is read as milliseconds on line {mooncake}, beside "
            f"Mooncake's input_length/output_length (its unit), and as seconds on line {plain}, without them; which "
            "are they? name the key timestamp_ms (milliseconds) or timestamp_s (seconds) on every line")


def _jsonl_mixes_timestamp_units(path: Path) -> bool:
    """Whether a ``.jsonl`` gives ``timestamp`` both on a line with Mooncake's keys (milliseconds) and on one without
    (seconds), which loading read in two units before it was refused (:func:`_timestamp_units_error`); False for
    other files and one not readable as JSON Lines. Only a file whose bytes name both (or hold a ``\\u`` escape) is
    parsed."""
    if file_suffix(path) != ".jsonl":
        return False
    try:
        data = path.read_bytes()
        if b"\\u" not in data and (b"timestamp" not in data or not any(k.encode() in data for k in MOONCAKE_KEYS)):
            return False
        kinds = set()
        for line in io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=None):
            record = json.loads(line) if line.strip() else None
            if isinstance(record, dict) and "timestamp" in record:
                kinds.add(any(key in record for key in MOONCAKE_KEYS))
                if len(kinds) == 2:
                    return True
    except (OSError, ValueError, RecursionError):
        return False
    return False


def _jsonl_dates(dates: dict[int, tuple[str, str]], arrivals: list[float], lines: list[int], path: Path
                 ) -> list[float]:
    """``arrivals`` [s] (a value per request, on file line ``lines``) with the date-times of ``dates`` (line -> key,
    text) as seconds since the earliest, read as a ``.csv``'s are (:func:`_datetime_seconds`). One-line
    :class:`UserError` naming the line for a number among date-times (which clock is it?) or a text that is no
    date-time."""
    numbers = [line for line in lines if line not in dates]
    first_line, (key, first) = next(iter(dates.items()))
    texts = pl.Series(key, [text for _, text in dates.values()], dtype=pl.String).str.strip_chars()
    seconds = _datetime_seconds(texts, f"{path}: key {key!r}")
    if seconds.dtype == pl.String:
        at = _format_break(texts)
        if at is not None:  # (a date-time in another format than the first's, as a table's and a conversation
            # record's: it was "key 'timestamp' has non-numeric values (String, first: '01/02/2024 00:00:09')")
            line, (name, _) = list(dates.items())[at]
            raise _format_break_error(texts, at, f"{path}: key {name!r}", f"line {line}")
        try:
            bad = texts.str.to_datetime(strict=False).is_null()
        except pl.exceptions.ComputeError:  # (no text is a date-time polars can infer a format from: the first)
            bad = pl.Series([True] * len(texts))
        at = int(bad.arg_max()) if bad.any() else 0
        line, (name, text) = list(dates.items())[at]
        raise UserError(arrival_text_error(path, name, text, f"line {line}", "key"))  # (as a table's)
    if numbers:  # (every line has a time: the caller refuses lines without one among timed ones; a text that is no
        # date-time among numbers, 'soon', is refused above, naming its key and line; a date-time after a number
        # named the number's line, "FILE:1: the arrival time is a number where line 2 gives a date-time")
        number_first = numbers[0] < first_line
        where, then = (first_line, numbers[0]) if number_first else (numbers[0], first_line)
        raise UserError(mixed_kinds_error(path, key, f"line {where}", f"line {then}", first, number_first, "key"))
    return seconds.to_list()


#: The keys a ``.jsonl`` request line is read by (as written: in lower case; the arrival time's in any case too,
#: :func:`arrival_suffix`).
JSONL_KEYS = ("prompt", *REPLY_NAMES, "prompt_tokens", "output_tokens", *MOONCAKE_KEYS, *OTHER_LENGTH_KEYS,
              "request_id", *ARRIVAL_KEYS, *NUMERIC_OPTIONAL_COLUMNS, SYSTEM_KEY)


#: What a ``.jsonl`` line whose ``prompt`` (or reply) is a list of chat messages is (TRL's conversational
#: prompt-completion format, ``{"prompt": [{"role": "user", ...}], "completion": [{"role": "assistant", ...}]}``), and
#: how to write it as a conversation, read as OpenAI's chat format is.
_MESSAGES_HINT = ("; it is a list of chat messages (TRL's conversational prompt-completion format): write each line as "
                  "one conversation, {\"messages\": prompt + completion} (jq -c '{messages: (.prompt + .completion)}')")


def _is_messages(value) -> bool:
    """Whether a JSON value is a list of chat messages (objects with a ``role``), as TRL's conversational
    prompt-completion lines hold in ``prompt`` and ``completion``."""
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def _record_hint(rec) -> str:
    """``"; it has ..."``, what a ``.jsonl`` line that is no request is (:func:`~ltrsched.workloads.sharegpt.
    format_hint`: Alpaca's, Dolly's, Anthropic HH's, UltraChat's record), or ``""``."""
    hint = record_hint(rec)
    return f"; it has {hint}" if hint else ""


def _table_hint(df: pl.DataFrame) -> str:
    """:func:`_record_hint` of a table (a flat parquet's or a ``.csv``'s columns)."""
    lists = [c for c, kind in df.schema.items() if isinstance(kind, pl.List) and kind.inner == pl.String]
    hint = format_hint(df.columns, lists)
    return f"; it has {hint}" if hint else ""


def _null_texts(rec) -> str:
    """``"; its 'prompt' is null"``: the text keys a ``.jsonl`` line that is no request gives as null, for its error
    (it said "it has 'prompt', 'generated'" alone, of a line that has both, one null), or ``""``."""
    nulls = [k for k in ("prompt", *REPLY_NAMES) if isinstance(rec, dict) and k in rec and rec[k] is None]
    return f"; its {' and '.join(repr(k) for k in nulls)} {'is' if len(nulls) == 1 else 'are'} null" if nulls else ""


def _line_keys(rec) -> str:
    """What a ``.jsonl`` line that is no request holds, for its error: ``"; it has 'input', 'output'"``, its keys
    named in another case (``Prompt``, ``Output_Tokens``, read by their names as written: a line of them said only
    "expected an object with string fields 'prompt' and 'generated'"), or what JSON value it is if no object."""
    if not isinstance(rec, dict):
        kind = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
            type(rec), "null")
        return f"; the line is {kind}"
    cased = [k for k in rec if k not in JSONL_KEYS and k.strip().lower() in JSONL_KEYS and arrival_suffix(k) is None]
    if cased:
        return (f"; its key(s) {', '.join(repr(k) for k in cased)} are not read (keys match as written): write "
                + ", ".join(repr(k.strip().lower()) for k in cased))
    keys = [repr(k) for k in rec]
    return f"; it has {', '.join(keys[:8])}{', ...' if len(keys) > 8 else ''}" if keys else "; it is empty"


def jsonl_conversations(path: Path) -> bool:
    """Whether a ``.jsonl`` holds conversations, one per line (its first line is one:
    :func:`~ltrsched.workloads.sharegpt.is_conversation_line`), read as a ``.json`` array of them is. Only the first
    non-blank line is read (a trace of a million requests is not decoded twice); one that is not readable JSON is
    no conversation (:func:`load_jsonl` then says what is wrong with it)."""
    from ltrsched.workloads.sharegpt import is_conversation_line

    try:
        with path.open("rb") as fh:
            for number, raw in enumerate(fh):
                text = raw.decode("utf-8-sig" if number == 0 else "utf-8")  # (a byte-order mark first)
                # (lines may end with \r alone, as jsonl_records reads them; JSON text holds no raw \r)
                line = next((part for part in text.split("\r") if part.strip()), None)
                if line is not None:
                    return is_conversation_line(json.loads(line))
    except (OSError, ValueError, RecursionError):
        return False
    return False


def _mooncake_line(rec: dict, where: str) -> dict:
    """A Mooncake trace line (:data:`MOONCAKE_KEYS`) in our keys: ``input_length`` -> ``prompt_tokens``,
    ``output_length`` -> ``output_tokens``, ``timestamp`` [ms] -> ``arrival_time_ms``; the values checked here, so
    that an error names the line's own key. One-line :class:`UserError` naming ``where`` (the line) for a line that
    gives a count or the arrival under both names (``input_length`` and ``prompt_tokens``: which holds it?)."""
    rec = dict(rec)
    for theirs, ours in MOONCAKE_KEYS.items():
        if theirs not in rec:
            continue
        if ours in rec:
            raise UserError(f"{where}: {theirs!r} and {ours!r} both give the {ours}; give one")
        rec[ours] = _token_count(rec.pop(theirs), theirs, where)
    if "timestamp" in rec:
        given = [k for k in rec if k != "timestamp" and arrival_suffix(k) is not None]
        if given:
            raise UserError(f"{where}: 'timestamp' (Mooncake's, milliseconds) and {given[0]!r} both give the arrival "
                            "time; give one")
        stamp = rec.pop("timestamp")
        stamp = text_number(stamp) if isinstance(stamp, str) and text_number(stamp) is not None else stamp  # (as
        # another line's arrival_time text is read: number_text)
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
            raise UserError(f"{where}: 'timestamp' must be a number of milliseconds (Mooncake's), got {shown(stamp)}")
        rec["arrival_time_ms"] = stamp
    return rec


def _other_length_keys(rec: dict, where: str) -> dict:
    """A ``.jsonl`` line whose token counts are under another tool's keys (OpenAI's usage ``completion_tokens``,
    vLLM's benchmark ``input_len``/``output_len``, ``num_prompt_tokens``/``num_output_tokens``:
    :data:`~ltrsched.workloads.schema.OTHER_LENGTH_KEYS`, as written) in ours, the values checked here so that an error
    names the line's own key; ``rec`` itself without them. One-line :class:`UserError` naming ``where`` (the line) for
    two keys giving one count (``completion_tokens`` beside ``output_tokens``: which holds it?). (Such a line was
    refused as "expected an object with string fields 'prompt' and 'generated'", or, beside the texts, its counts
    dropped and the texts' Llama-3 counts used.)"""
    found = {ours: key for ours, key in count_keys(rec, where).items() if key != ours}  # (the one name table)
    if not found:
        return rec
    rec = dict(rec)
    for ours, key in found.items():
        rec[ours] = _token_count(rec.pop(key), key, where)
    return rec


def _token_count(value, name: str, where: str) -> int:
    """A ``.jsonl`` line's ``output_tokens`` or ``prompt_tokens`` (``name``) [tokens]: a whole number >= 1 (an
    integral float too, as some writers make them; text as :mod:`ltrsched.workloads.number_text` reads it, as a
    ``.csv``'s field and a parquet's Utf8 value are: ``"12"`` was refused); one-line :class:`UserError` naming
    ``where`` (``"{path}:{line}"``) for anything else, in a table's words (:func:`~ltrsched.workloads.count_values.
    count_error`: ``got None`` was a table's ``missing value``)."""
    number = text_number(value) if isinstance(value, str) else value
    path, line = where.rsplit(":", 1)
    if number is None and isinstance(value, str):  # (named by its line, as every container's bad text is)
        raise UserError(text_error(path, name, value, f"line {line}", what="key"))
    if number == 0 and not isinstance(number, bool) and name.lower() in FAILED_OUTPUT_NAMES:
        return 0  # BurstGPT's failed request: left out with a warning (:func:`drop_failed_requests`), as a .csv's
    if not is_count(number):
        raise UserError(count_error(path, name, number, f"line {line}", "key",
                                    output=OTHER_LENGTH_KEYS.get(name, name) == "output_tokens"))
    return int(number)


def _no_blank_prompts(texts: list, counted, where) -> None:
    """One-line :class:`UserError` for the first prompt text whose tokens are counted (``counted[i]``) that is blank:
    whitespace or invisible characters alone (:mod:`ltrsched.workloads.blank_text`), an empty prompt as a text of
    nothing is (zero-width spaces were counted as tokens and served as a prompt; a text of nothing counts 0 tokens,
    which the caller's count check refuses). ``where(i)`` names the line or row."""
    checked = [text if counted[i] and isinstance(text, str) and text else None for i, text in enumerate(texts)]
    _refuse_blank(pl.Series(checked, dtype=pl.String), where, "a prompt is text to serve")


def _no_blank_texts(df: pl.DataFrame, where) -> None:
    """One-line :class:`UserError` for the first prompt text of ``df`` that is blank (empty, whitespace or invisible
    characters alone: :mod:`ltrsched.workloads.blank_text`), counts given or not: the text is what an engine replay
    (``--prompts text``) sends. A request without text (null) is a lengths-only one, kept. ``where(i)`` names row
    ``i``'s line or row in the file. (A blank text beside its own ``prompt_tokens`` was accepted and kept.)"""
    if "prompt" not in df.columns or not isinstance(df.schema["prompt"], (pl.String, pl.Categorical, pl.Enum)):
        return
    _refuse_blank(df["prompt"].cast(pl.String), where, "a prompt text is what an engine replay sends: give the text, "
                                                       "or no 'prompt' for a trace of lengths only")


#: Texts of nothing but what :func:`~ltrsched.workloads.blank_text.is_blank` may call blank (whitespace, format,
#: control and combining characters, the blank glyphs): the candidates it then checks.
_MAYBE_BLANK = r"^[\s\p{Cf}\p{Cc}\p{M}\x{115F}\x{1160}\x{3164}\x{FFA0}\x{2800}]*$"


def _refuse_blank(texts: pl.Series, where, fix: str) -> None:
    """One-line :class:`UserError` naming (``where(i)``) the first blank text of ``texts`` (nulls are not checked) and
    how many are, ending in ``fix``."""
    maybe = texts.str.contains(_MAYBE_BLANK).fill_null(False)  # (is_blank on a million texts took 2.8 s; these 0.05)
    blank = [i for i in maybe.arg_true().to_list() if is_blank(texts[i])]
    if blank:
        raise UserError(f"{where(blank[0])}: the prompt is empty: {blank_why(texts[blank[0]])}, {len(blank):,} "
                        f"request(s) so; {fix}")


def _given_or_counted(given: np.ndarray, texts: list[str], bar=None) -> np.ndarray:
    """[tokens] per line: the count given (>= 0), else its text's Llama-3 token count (only those texts are
    tokenized; each counted on ``bar``, a progress display, if given)."""
    missing = np.flatnonzero(given < 0)
    if len(missing):
        given = given.copy()
        given[missing] = count_tokens([texts[i] for i in missing], bar)
    return given


def _complete_table(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """A workload parquet without the token counts its text gives, or without arrival times: counts from the text
    (Llama-3, as a ``.jsonl``'s: ``prompt`` for ``prompt_tokens``, ``generated``, ``response`` or ``completion``
    for ``output_tokens``: :data:`REPLY_NAMES`) and every arrival at t = 0. Columns the table has are kept as they
    are."""
    texts = {"prompt_tokens": ("prompt",), "output_tokens": REPLY_NAMES}
    for column, sources in texts.items():
        if column in df.columns:
            continue
        if column == "output_tokens":  # (response beside completion: the first was used, silently)
            _one_reply(df.columns, str(path))
        source = next((c for c in sources if c in df.columns), None)
        if source is None:
            continue  # validate() names what is missing
        if isinstance(df.schema[source], (pl.Categorical, pl.Enum, pl.Null)):
            df = df.with_columns(pl.col(source).cast(pl.String))
        if df.schema[source] != pl.String:  # (it said "missing column prompt_tokens", of a table of numbers)
            first = df[source].drop_nulls().head(1).to_list()
            row = f" (first: {first[0]!r}, row {int(df[source].is_not_null().arg_max()) + 1})" if first else ""
            raise UserError(f"{path}: column {source} holds {df.schema[source]} values{row}, not text, so "
                            f"{column} cannot be counted from it; it must hold the text (or give {column})")
        missing = df[source].is_null()
        if missing.any():
            at = int(missing.arg_max())
            row = df[FILE_ROW][at] if FILE_ROW in df.columns else at + 1
            raise UserError(f"{path}: row {row} has no {source!r} text to count {column} from")
        # (a parquet string is valid UTF-8: no lone surrogate, unlike JSON text)
        texts = df[source].to_list()
        if column == "prompt_tokens":
            rows = df[FILE_ROW] if FILE_ROW in df.columns else pl.int_range(1, df.height + 1, eager=True)
            _no_blank_prompts(texts, [True] * len(texts), lambda i: f"{path}: row {rows[i]}")
        df = df.with_columns(pl.Series(column, count_tokens(texts), dtype=pl.Int64))
    if "arrival_time" not in df.columns:
        df = df.with_columns(arrival_time=pl.lit(0.0, dtype=pl.Float64))
    return df


def _first_turns(path: Path, num_requests: int | None, seed: int, arrival_info: dict | None = None,
                 split: str | None = None) -> pl.DataFrame:
    """The requests of a file of conversations (ShareGPT .json, or a parquet of them): the paper's selection of
    first turns (every eligible one, ``num_requests`` sampled), all at t = 0 unless a parquet gives
    ``arrival_time``, numbered unless it gives ``request_id``. Outputs longer than the context leaves are cut to it
    (the paper's rule), with a warning on stderr counting those among the requests used (it counted the whole
    file's, however few ``num_requests`` sampled). First turns the paper's rules leave out (prompt or reply
    lengths, repeated prompts) are counted in a warning (:func:`~ltrsched.workloads.selection.left_out`). The
    parse's notes (records skipped as malformed, a file cut off) are printed on stderr once the requests are
    chosen, or ahead of an error's one line (:func:`ltrsched.notices.explain_error`: they may say why it came).
    ``arrival_info`` receives what :func:`_table_arrivals` tells of a parquet's arrival times, and ``warning``,
    :func:`_unit_warning` of every record's. ``split`` (``train`` or ``eval``) takes the first turns of the records of
    that split by the file's own (:func:`_record_split`), as a request file's rows are taken (``arrival_info["file
    split"]`` then says so); other values read every record, as before."""
    notes: list[str] = []
    try:
        df = _chosen_first_turns(path, num_requests, seed, notes, arrival_info, split)
    except UserError:  # ("has only 1", "no eligible requests": the warning counting what was left out says why)
        explain_error(notes)
        raise
    for line in notes:
        print(line, file=sys.stderr)
    return df


def _chosen_first_turns(path: Path, num_requests: int | None, seed: int, notes: list[str],
                        arrival_info: dict | None = None, split: str | None = None) -> pl.DataFrame:
    """:func:`_first_turns`' requests; the warnings to print once they are chosen appended to ``notes``."""
    arrival_info = {} if arrival_info is None else arrival_info
    # (a conversation file's arrival times are read by the rule a flat table's are: any of arrival_suffix's names,
    # date-times as seconds since the earliest, a unit suffix; LMSYS's 'timestamp' and a .jsonl's keys were dropped)
    check = SplitCheck()  # (every record's own split, checked in the parse's pass)
    records, named = _other_arrival_name(load_sharegpt_records(path, notes, check), path)
    keep = _record_split(records, path, split, check) if split in FILE_SPLITS else None  # (after the parse's checks)
    records = records.drop(FILE_SPLIT, strict=False)
    records = _table_arrivals(records, path, arrival_info, named)  # (RECORD_NUMBER kept: it travels through the
    # selection, to name a request's record: _placed)
    if keep is not None:  # (every record's times checked first, as a request file's rows are)
        records = records.filter(keep)
        arrival_info["file split"] = split
    if named:  # (a unit warning names the column to rename: the file's)
        arrival_info["column"] = named
    dropped = left_out(records)  # (they were left out without a word)
    if dropped:
        notes.append(f"warning: {path}: {dropped}")
    if "arrival_time" in records.columns:
        arrival_info["warning"] = _unit_warning(records["arrival_time"], arrival_info, path)
    over = "_over_context"  # marks each row before the selection caps it (a column: the sample does not change)
    records = records.with_columns(
        (pl.col("prompt_tokens") + pl.col("output_tokens") > MAX_OUTPUT_TOKENS).alias(over))
    df = paper_selection(records, split="all", n=num_requests, seed=seed, source=str(path))
    capped = int(df[over].sum())
    if capped:
        notes.append(f"warning: {path}: {capped} of the {df.height:,} first turn(s) used have a prompt + output of "
                     f"more than {MAX_OUTPUT_TOKENS:,} tokens (the paper's context); their outputs are cut to "
                     f"{MAX_OUTPUT_TOKENS:,} tokens minus the prompt, as the model would have stopped there")
    df = df.drop("response", over, SYSTEM_COLUMN, strict=False)  # (the system text an engine sends as the system
    # turn is read from the parse by the engine: sharegpt.system_turns; the workload's columns are the flat formats')
    df = df if "arrival_time" in df.columns else df.with_columns(arrival_time=pl.lit(0.0))
    df = df if "request_id" in df.columns else _numbered(df)
    records = df[RECORD_NUMBER].alias(FILE_ROW) if RECORD_NUMBER in df.columns else None
    df = df.drop(RECORD_NUMBER, strict=False)
    # (before the notes: an error is the one line printed). The rows are first turns chosen and shuffled: an error
    # names the record by its id (a row number here is none of the file's)
    ids = df["source_id"].cast(pl.String).to_list() if "source_id" in df.columns else []
    validate(df, str(path), lambda row: f"record id {ids[row]!r}" if row < len(ids) and ids[row] else
             "a record without an id")
    return df if records is None else df.with_columns(records)  # (each first turn's record: _placed takes it out)


def _record_split(records: pl.DataFrame, path: Path, split: str, check: SplitCheck | None = None
                  ) -> pl.Series | None:
    """Which of a conversations file's first turns (``records``, its parse) are in ``split`` by their records' own
    split (:data:`~ltrsched.workloads.sharegpt.FILE_SPLIT`: a ``.json``'s or ``.jsonl``'s record's ``split`` key, a
    conversations parquet's ``split`` column in any case), by a request file's rule
    (:func:`~ltrsched.workloads.file_splits.split_mask`); None for a file whose records give none. One-line
    :class:`UserError` for a value that is no split, naming its record (a parquet's row) and id: every record's, those
    that give no first turn (the paper's rules leave them out: a later chunk, one opening with the assistant's turn)
    too (:func:`~ltrsched.workloads.file_splits.record_splits`: theirs were never checked), as ``check`` has them
    where the parse checked them (a ``.json``'s or ``.jsonl``'s: the file is not read again). (A record's own split was
    dropped: ``train`` refused such a file as one without a split.)"""
    table = file_suffix(path) == ".parquet"
    name = split_column(pl.read_parquet_schema(path), str(path)) if table else SPLIT_NAME
    if check is not None and check.known:  # (a .json's or .jsonl's, checked in the parse's pass)
        check.refuse_off(str(path))
    elif (every := record_splits(path, name)) is not None:  # (every record's, in the file's order: the first bad one
        # named, whoever's it is)
        values, place = every
        split_mask(values, name, split, str(path), place, "column" if table else "key", any_in_split=False)
    if FILE_SPLIT not in records.columns:
        return None
    numbers, ids = records[RECORD_NUMBER], records["source_id"].cast(pl.String).to_list()
    place = lambda at: (f"{'row' if table else 'record'} {numbers[at]:,}"  # noqa: E731
                        + (f" (id {ids[at]!r})" if ids[at] else ""))
    values = [None if v is None else json.loads(v) for v in records[FILE_SPLIT]]
    return split_mask(values, name, split, str(path), place, "column" if table else "key")


def _read_csv(data: bytes, text_columns: tuple[str, ...] = ()) -> pl.DataFrame:
    """The CSV's table, column types inferred from its first 10,000 rows, or if a later row does not parse as
    those, from every row: a trace whose first 10,000 arrival times were whole seconds (or whose token counts
    turn from 10 to 10.0) was refused at the first fractional one. (Inferring from every row always takes
    about 10x as long: 2.6 s instead of 0.27 s for a million rows.) ``text_columns`` (header names) are read
    as text, as written, whatever they look like."""
    overrides = dict.fromkeys(text_columns, pl.String)
    try:
        return pl.read_csv(io.BytesIO(data), infer_schema_length=10_000, schema_overrides=overrides)
    except pl.exceptions.ComputeError:
        return pl.read_csv(io.BytesIO(data), infer_schema_length=None, schema_overrides=overrides)


def _read_csv_checked(data: bytes, text: str, path: Path, text_columns: tuple[str, ...]) -> pl.DataFrame:
    """:func:`_read_csv` of ``path``'s bytes ``data`` (its text ``text``), one-line :class:`UserError` if polars cannot
    read it (naming the line where a record does not split: :func:`field_error`)."""
    try:
        return _read_csv(data, text_columns)
    except Exception as exc:  # (polars names no line: a record with an extra field, a quote left open)
        raise UserError(field_error(text, path)
                        or f"{path}: cannot parse CSV ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def _count_text_to_read(col: pl.Series) -> bool:
    """Whether a ``.csv``'s count column as polars read it must be read again as text, by the rule every container's
    count text is (:mod:`ltrsched.workloads.number_text`): text, or floats among which polars read a word as a number
    (``inf``, ``NaN``; its other numbers are the rule's own, so a column of ``12.0`` is not read twice, which took
    twice as long). Integers (digits alone) are the rule's, and true/false is refused as a parquet's Boolean is."""
    if col.dtype.is_float():
        return not col.is_finite().fill_null(True).all()
    return not col.dtype.is_integer() and col.dtype != pl.Boolean


def _csv_header(data: bytes, text: str, path: Path) -> list[str]:
    """The column names of a ``.csv``'s header line (every column read as text)."""
    try:
        return pl.read_csv(io.BytesIO(data), n_rows=0, infer_schema_length=0).columns
    except Exception as exc:
        raise UserError(field_error(text, path)
                        or f"{path}: cannot parse CSV ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def _count_columns(columns: list[str]) -> tuple[str, ...]:
    """The columns of ``columns`` (a ``.csv``'s header, a parquet's) named as a token count (:data:`LENGTH_NAMES`, in
    any case, with spaces around them)."""
    names = {n for names in LENGTH_NAMES.values() for n in names}
    return tuple(c for c in columns if c.strip().lower() in names)


def _without_blank_lines(raw: pl.DataFrame, text: str) -> tuple[pl.DataFrame, pl.Series]:
    """``raw`` without the rows polars makes of blank lines (a row of nulls): an empty line after the last
    record or between records, as editors and ``cat`` of several files leave, which Python's csv module and
    pandas skip; the file was refused for "missing values" it does not have. A line of empty fields (``,,``)
    stays a row of missing values. ``text`` is the file's text: its records (csv module) tell which rows are
    blank lines; if they do not match polars' rows one to one, every row is kept. Also each kept row's number
    in the file (1-based: the first record after the header is row 1; a blank line counts as one)."""
    rows = pl.int_range(1, raw.height + 1, dtype=pl.Int64, eager=True).alias(FILE_ROW)
    empty = raw.select(pl.all_horizontal(pl.all().is_null())).to_series() if raw.width else None
    if empty is None or not empty.any():
        return raw, rows
    import csv

    try:
        blank = [not record for record in csv.reader(io.StringIO(text, newline=""))]  # (a flag per record)
    except csv.Error:
        return raw, rows
    if len(blank) != raw.height + 1:  # (+ the header)
        return raw, rows
    keep = ~(empty & pl.Series(blank[1:], dtype=pl.Boolean))
    return raw.filter(keep), rows.filter(keep)


def load_csv(path: Path, arrival_info: dict | None = None) -> pl.DataFrame:
    """A ``.csv`` trace's requests (see the module docstring). ``arrival_info`` (if given) receives the arrival-time
    column's name (``column``) and its unit (``unit``: ``_s``, ``_ms``, ``date-time``, or None: seconds assumed)."""
    data = lf_line_ends(path.read_bytes())  # (lines ended by CR alone: polars read one line, "no requests")
    text = decode_utf8(data, path)  # polars names no line of an invalid byte, and replaces one in the header
    if not text.strip():  # (blank lines alone: polars' "NoDataError: empty CSV")
        raise UserError(f"{path}: no requests (no line with text)")
    try:
        raw = _read_csv(data)
    except Exception:  # (a count in other digits, '١٢': polars inferred an integer and failed to parse it)
        raw = _read_csv_checked(data, text, path, _count_columns(_csv_header(data, text, path)))
    prompt = _csv_column(raw, ("prompt",), "prompt", path)
    # the reply's text, counted where the file gives no output count (as a parquet's and a .jsonl's: a table of
    # prompts and replies was refused, "no column for output_tokens")
    reply = None if _csv_column(raw, LENGTH_NAMES["output_tokens"], "output_tokens", path) else _csv_column(
        raw, REPLY_NAMES, "output_tokens", path)
    if reply is not None:  # (an 'output' column beside it: which is the reply?)
        _one_reply(raw.columns, str(path))
    texts = tuple(c for c in (prompt, reply, system_column(raw.columns) if prompt else None) if c is not None)
    counts = tuple(c for c in _count_columns(raw.columns) if _count_text_to_read(raw[c]))
    counts += tuple(c for c in raw.columns if arrival_suffix(c) is not None and raw.schema[c].is_float()
                    and _count_text_to_read(raw[c]))  # (arrival times: polars read 'NaN', 'inf' as numbers)
    if counts or any(raw.schema[c] != pl.String for c in texts):  # a CSV has no types: prompts "1", "42" (or
        # "007", "1e3") are text, which polars read as numbers (refused as "not text", or changed: 007 -> 7); and
        # counts that are not digits alone are read by the rule every container's text is (number_text: polars read
        # '+12.0' and 'NaN' as numbers, and refused '+12')
        raw = _read_csv_checked(data, text, path, (*texts, *counts))
    raw, rows = _without_blank_lines(raw, text)
    if raw.height == 0:
        raise UserError(f"{path}: no requests (empty file)")
    joined = repeated_header_row(raw)
    if joined is not None:  # (named as the first column's "non-numeric 'arrival_time'" in that row)
        raise UserError(joined_files_error(path, rows[joined]))
    if prompt is not None:  # (a system column ahead of the prompt, as a .jsonl line's 'system': it was dropped)
        raw = join_system_column(raw, prompt, str(path))
    cols, names_found = {}, {}
    plain = None  # the arrival column, if its times are numbers under a name without a unit (seconds)
    litellm = litellm_table(raw.columns)  # (a LiteLLM spend log: its text request_id was refused, "not a whole number")
    for ours, names in CSV_COLUMNS.items():
        scale = 1.0
        if ours == "arrival_time":
            found, suffix = _csv_arrival_column(raw, names, path)
            if found is None and litellm:  # (its startTime, date-times: the arrival times, as its .jsonl's)
                found = _csv_column(raw, (LITELLM_START.lower(),), ours, path)
            plain = None if suffix else found
            if arrival_info is not None and found is not None:
                arrival_info.update(column=found, unit=suffix or None)
            scale = UNIT_SUFFIXES.get(suffix, 1.0)
        else:
            found = _csv_column(raw, names, ours, path)
        if found is None and ours == "arrival_time":  # lengths only: all at t = 0, as in a .jsonl without them
            cols[ours] = pl.Series(ours, [0.0] * raw.height)
            continue
        if found is None and ours == "prompt_tokens" and prompt is not None:  # counted from the text, as a
            # parquet's and a .jsonl's are (a table of prompts and another model's output counts was refused)
            cols[ours] = _counted_texts(raw[prompt], ours, path, rows, arrival_info)
            continue
        if found is None and ours == "output_tokens" and reply is not None:
            cols[ours] = _counted_texts(raw[reply], ours, path, rows, arrival_info)
            continue
        if found is None:
            text = {"prompt_tokens": "a 'prompt'",
                    "output_tokens": "a 'generated' (or 'response', 'completion')"}[ours]
            raise UserError(f"{path}: no column for {ours} (looked for {', '.join(names)}, in any case, and for "
                            f"{text} text to count); have {', '.join(raw.columns)}" + separator_hint(raw.columns)
                            + _table_hint(raw))
        names_found[ours] = found
        # (a count's text by the rule every container reads it by; an arrival time's may be a date-time)
        boolean = csv_boolean(raw[found], rows)
        if boolean is not None:  # (a .jsonl's true, a parquet's Boolean: refused in their words)
            raise UserError(arrival_error(path, found, boolean[0], f"row {boolean[1]}") if ours == "arrival_time" else
                            count_error(path, found, boolean[0], f"row {boolean[1]}", output=ours == "output_tokens"))
        col = (_arrival_numbers(_spaced_numbers(raw[found]), path, found, lambda at: f"row {rows[at]}")
               if ours == "arrival_time" else number_texts(raw[found], path, rows))
        if ours == "arrival_time" and col.dtype == pl.String:
            col, scale = _datetime_seconds(col.str.strip_chars(), f"{path}: column {found!r}"), 1.0
            plain = plain if col.dtype == pl.String else None  # (date-times: seconds apart)
            if arrival_info is not None and col.dtype != pl.String:
                arrival_info["unit"] = "date-time"  # (seconds apart, whatever the column's name says)
            if col.dtype != pl.String:  # (a date-time missing: the line every container's null has)
                _arrival_numbers(col, path, found, lambda at: f"row {rows[at]}")
            at = _format_break(col) if col.dtype == pl.String else None
            if at is not None:
                raise _format_break_error(col, at, f"{path}: column {found!r}", f"row {rows[at]}")
        if ours == "arrival_time" and col.dtype == pl.String:  # (the words of every container's)
            row = text_numbers(col)[1]
            raise UserError(arrival_text_error(path, found, col[row], f"row {rows[row]}"))
        if not col.dtype.is_numeric():  # e.g. true/false (a Boolean column would cast to 1/0 tokens) or text
            row, first = first_non_numeric_row(col), first_non_numeric(col)
            raise UserError(f"{path}: column {found!r} has non-numeric values ({col.dtype}"
                            + (f", first: {first[0]!r}) in row {rows[row]}" if first else ")")
                            + "; it must hold numbers" + (" (seconds) or date-times" if ours == "arrival_time" else ""))
        cols[ours] = col if scale == 1.0 else col.cast(pl.Float64) * scale
    _mooncake_timestamp(plain, list(names_found.values()), path)  # (plain-named numbers: seconds)
    if arrival_info is not None:  # (a count's error names the file's column: 'input_len' was 'prompt_tokens')
        arrival_info["count names"] = {c: names_found[c] for c in ("prompt_tokens", "output_tokens") if c in names_found}
    try:
        df = pl.DataFrame(
            {
                # floats here: validate() rejects fractional token counts rather than truncating them (integers kept
                # as they are: as floats, 2**53 + 1 was 2**53, and read)
                **{c: cols[c] if cols[c].dtype.is_integer() else cols[c].cast(pl.Float64, strict=True)
                   for c in ("prompt_tokens", "output_tokens")},
                "arrival_time": cols["arrival_time"].cast(pl.Float64, strict=True),
                FILE_ROW: rows,
            }
        )
    except Exception:
        raise UserError(f"{path}: non-numeric values in the length or arrival columns") from None
    # the workload's optional columns travel along (a score column was dropped, and `--policy ltr` then said
    # the file lacked it); the schema checks them. So do the ids the file gives (they were dropped, and the rows
    # numbered: duplicate ids passed, and results named other ids than the user's)
    ids = _csv_column(raw, ("request_id",), "request_id", path)
    other = id_column(raw.columns) if ids is None else None  # (a file's 'id', whole numbers on every row: id_names)
    if litellm:  # (LiteLLM's request_id is its label, as a file's 'id' is: the rows numbered where it is text)
        ids, other = None, ids
    other_ids = adopted_ids(whole_numbers(_spaced_numbers(raw[other]))) if other is not None else None
    for name in OPTIONAL_COLUMNS:  # in any case, as the others (a 'Score' or 'PO_ESTIMATE' column was dropped:
        found = _csv_column(raw, (name,), name, path)  # `po` drew its estimates instead, silently)
        if found is not None:
            df = df.with_columns((raw[found] if name == "prompt" else number_texts(_spaced_numbers(raw[found]), path,
                                                                                rows, missing=True)).alias(name))
    df = df if ids is None else df.with_columns(_spaced_numbers(raw[ids]).alias("request_id"))
    if other_ids is not None:
        df = df.with_columns(other_ids)
    return drop_failed_requests(df, names_found.get("output_tokens"), path, arrival_info)


def _arrival_numbers(col: pl.Series, path: Path, name: str, place, what: str = "column") -> pl.Series:
    """A table's arrival column ``col`` (a ``.csv``'s or a parquet's, the file's ``name`` for it) as numbers where it
    holds numbers (text read by the rule every container reads numbers as text by: :mod:`~ltrsched.workloads.
    number_text`), else ``col`` itself (text: date-times the caller reads, or text that is neither). One-line
    :class:`UserError` (:mod:`~ltrsched.workloads.arrival_values`) naming ``place(i)`` (row ``i``'s words, 0-based)
    for a number that is no arrival time (null, negative, NaN, infinite, a boolean) or a date-time among numbers;
    ``what`` names the field (``"key"``: a conversation record's)."""
    if col.dtype == pl.String:
        number = col.str.contains(NUMBER_TEXT).fill_null(False)
        given = col.is_not_null()
        if (given & ~number).any():  # (date-times, or text that is neither: the caller reads them)
            others = col.filter(given & ~number).str.strip_chars()
            if number.any() and _datetime_seconds(others, f"{path}: {what} {name!r}").dtype != pl.String:
                first = int(given.arg_true()[0])  # (numbers and date-times: which clock is it?)
                number_first = bool(number[first])
                at = int((given & (~number if number_first else number)).arg_true()[0])
                text = col[at] if number_first else col[first]
                raise UserError(mixed_kinds_error(path, name, place(at), place(first), text.strip(), number_first,
                                                  what))
            return col
        col = text_numbers(col)[0]
    at = first_bad_arrival(col)
    if at is not None:
        raise UserError(arrival_error(path, name, col[at], place(at), what))
    return col


def _counted_texts(texts: pl.Series, column: str, path: Path, rows: pl.Series, info: dict | None = None
                   ) -> pl.Series:
    """A ``.csv``'s text column's Llama-3 token counts [tokens] (Int64) as ``column`` (``prompt_tokens`` from its
    ``prompt``, ``output_tokens`` from its reply, :data:`REPLY_NAMES`), for a file without those counts; one-line
    :class:`UserError` naming the row (``rows``: each text's in the file) of a missing text (an empty field), or for
    a column of token ids throughout (:data:`_TOKEN_IDS`). Some such values among text are text (a prompt may be a
    list to sort), counted so, with a warning in ``info["notes"]`` naming the first one's row: if they are ids, their
    count is not the ids' (they were counted without a word)."""
    missing = texts.is_null()
    if missing.any():
        raise UserError(f"{path}: row {rows[int(missing.arg_max())]} has no {texts.name.strip()!r} text to count "
                        f"{column} from (give {column} as a column, or the text on every row)")
    ids = texts.str.contains(_TOKEN_IDS)
    if ids.all():  # (a tokenized data set's input_ids, written out as "[128000, 9906]":
        # their text's count, 9 tokens for 3 ids, was served silently)
        raise UserError(f"{path}: column {texts.name.strip()!r} holds token ids, not text (row {rows[0]}: "
                        f"{texts[0][:40]!r}), whose token count is not the ids'; give the counts in a {column} column")
    if ids.any() and info is not None:
        at = int(ids.arg_max())
        info.setdefault("notes", []).append(
            f"warning: {path}: {int(ids.sum()):,} of the {texts.len():,} values of column {texts.name.strip()!r} are "
            f"lists of numbers, as token ids are written (row {rows[at]}: {texts[at][:40]!r}); they are counted as "
            f"text (not as ids): if they are token ids, give the counts in a {column} column")
    if column == "prompt_tokens":
        _no_blank_prompts(texts.to_list(), [True] * texts.len(), lambda i: f"{path}: row {rows[i]}")
    return pl.Series(column, count_tokens(texts.to_list()), dtype=pl.Int64)


#: A text that is a list of token ids (``[128000, 9906, 1917]``), as a tokenized data set's columns are written.
_TOKEN_IDS = r"^\s*\[\s*\d+(?:\s*,\s*\d+)*\s*\]\s*$"


def drop_failed_requests(df: pl.DataFrame, column: str | None, path: Path, info: dict | None) -> pl.DataFrame:
    """``df`` without the failed requests a trace marks by an output of 0 tokens in its output-count ``column``
    (the file's own name: :data:`FAILED_OUTPUT_NAMES`, BurstGPT's ``Response tokens``); ``df`` itself under other
    names (an output of 0 tokens stays the schema's error) or where ``output_tokens`` does not hold numbers (the
    schema says so). A failed request generated nothing, and cannot be served as one that generates 0 tokens (every
    request decodes at least one). How many were left out goes to ``info["notes"]``, a warning printed once the
    workload has loaded (an error is then the one line printed). One-line :class:`UserError` if every row failed."""
    if column is None or column.strip().lower() not in FAILED_OUTPUT_NAMES or not df["output_tokens"].dtype.is_numeric():
        return df
    failed = (pl.col("output_tokens") == 0).fill_null(False)
    count = int(df.select(failed.sum()).item())
    if not count:
        return df
    _failed_note(count, df.height, column, path, info)
    return df.filter(~failed)


def _failed_note(count: int, total: int, column: str, path: Path, info: dict | None) -> None:
    """The warning (in ``info["notes"]``) that ``count`` of a file's ``total`` requests are left out, failed by
    ``column`` (the file's name of it) 0: a table's (:func:`drop_failed_requests`) and a ``.jsonl``'s, whose lines
    give ``response tokens`` 0; one-line :class:`UserError` if every request failed."""
    if count == total:
        raise UserError(f"{path}: every request ({count:,}) has {column.strip()!r} 0, BurstGPT's mark of a failed "
                        "request (no output): none is left to serve")
    if info is not None:
        info.setdefault("notes", []).append(
            f"warning: {path}: {count:,} of its {total:,} requests have {column.strip()!r} 0, BurstGPT's mark of "
            "a failed request (no output); they are left out (BurstGPT's *_without_fails_* files have none)")


def _mooncake_timestamp(arrival: str | None, columns: list[str], path: Path) -> None:
    """One-line :class:`UserError` if a table (a ``.csv``'s or a flat parquet's) gives plain-named numeric arrival
    times under Mooncake's name, ``timestamp`` (``arrival``: the file's arrival column of numbers under a name
    without a unit; None for none, or for one whose name or date-times say the unit), beside
    Mooncake's count columns (``input_length``, ``output_length``: among ``columns``, the count columns read). A
    ``.jsonl`` line in Mooncake's keys has its ``timestamp`` read in milliseconds, Mooncake's unit; a table's
    plain-named times are seconds: a Mooncake trace written out as a table (``pandas.read_json(...).to_csv()``) was
    read 1000x slower, silently. The name's unit says which (``timestamp_ms``, ``timestamp_s``)."""
    mooncake = [c for c in columns if c.strip().lower() in MOONCAKE_KEYS]
    if arrival is None or arrival.strip().lower() != "timestamp" or not mooncake:
        return
    what = "column" if len(mooncake) == 1 else "columns"
    raise UserError(f"{path}: column {arrival!r} beside Mooncake's {what} {' and '.join(repr(c) for c in mooncake)}: "
                    "Mooncake's traces give the timestamp in milliseconds, but a table's plain-named arrival times are "
                    "read as seconds; which are they? name the column timestamp_ms (milliseconds) or timestamp_s "
                    "(seconds)")


def _spaced_numbers(col: pl.Series) -> pl.Series:
    """A CSV column of numbers with spaces around them (``3, 4``: polars reads `` 4`` as text) as Float64 numbers,
    and one of empty fields alone (polars reads it as text: an empty score column, all missing, was refused as
    "non-numeric") as Float64 nulls; ``col`` itself unless it is such text (every non-empty value a number once
    its spaces are stripped)."""
    if col.dtype != pl.String:
        return col
    if col.null_count() == col.len():
        return col.cast(pl.Float64)
    text = col.str.strip_chars()
    if not (text != col).any():  # (no spaces: text the caller refuses, or date-times)
        return col
    numbers = text.cast(pl.Float64, strict=False)
    if (numbers.is_null() & text.is_not_null() & (text != "")).any():
        return col
    return numbers


def _csv_column(raw: pl.DataFrame, names: tuple[str, ...], ours: str, path: Path) -> str | None:
    """The name of ``raw``'s column for ``ours``: the one of ``names`` the header has, in any case (Azure's are
    TIMESTAMP, ...); None if it has none. One-line :class:`UserError` if it has two of ``names`` (``arrival_time``
    and ``timestamp``: the first was used, silently), or names one twice (polars renames
    the second ``x_duplicated_0``; names match in any case): the first was used, silently, whichever held the
    values. Names match with spaces around them too, as a header written ``a, b`` has them."""
    by_name = {c.strip().lower(): c for c in reversed(raw.columns)}  # (" output_tokens": a space after a comma)
    present = [by_name[c] for c in names if c in by_name]
    if len(present) > 1:  # (the first was used, silently: arrival_time beside timestamp, whichever held the times)
        what = {"arrival_time": "arrival times", "prompt_tokens": "prompt lengths",
                "output_tokens": "output lengths"}.get(ours, ours)
        raise UserError(f"{path}: columns {' and '.join(repr(c) for c in present)} "
                        f"{'both' if len(present) == 2 else 'all'} give the {what} "
                        f"({ours}); which does? keep one (drop or rename the other{'s' if len(present) > 2 else ''})")
    found = present[0] if present else None
    if found is None:
        return None
    twins = [c for c in raw.columns if c != found and (c.strip().lower() == found.strip().lower() or re.fullmatch(
        re.escape(found) + r"_duplicated_\d+", c))]
    if twins:
        raise UserError(f"{path}: the header names column {found!r} {len(twins) + 1} times (in any case); "
                        f"which holds the {ours}? keep one")
    return found


def _csv_arrival_column(raw: pl.DataFrame, names: tuple[str, ...], path: Path) -> tuple[str | None, str]:
    """``raw``'s arrival-time column and the unit suffix its name states ("" for none, else a key of
    :data:`UNIT_SUFFIXES`): the one of ``names`` the header has, plain or with a suffix (in any case). One-line
    :class:`UserError` if it has them in more than one unit (``arrived_at`` and ``arrived_at_ms``): which holds the
    times?"""
    found = {suffix: _csv_column(raw, tuple(n + suffix for n in names), "arrival_time", path)
             for suffix in ("", *UNIT_SUFFIXES)}
    found = {suffix: name for suffix, name in found.items() if name is not None}
    if not found:
        unread_arrival_unit(raw.columns, str(path))
    if len(found) > 1:
        raise UserError(f"{path}: columns {' and '.join(repr(n) for n in found.values())} both give arrival times"
                        f"{in_units(found)}; keep one")
    return next(((name, suffix) for suffix, name in found.items()), (None, ""))


def _any_case_renames(columns: list[str], path: Path) -> dict[str, str]:
    """The renames that give a flat parquet's columns named in another case (or with spaces around them) our names
    (:data:`PARQUET_ANY_CASE`: ``PROMPT`` -> ``prompt``; a ``.csv``'s names match so too). One-line
    :class:`UserError` naming ``path`` for two columns whose names differ only so (``prompt`` and ``Prompt``,
    ``prompt_tokens`` and ``PROMPT_TOKENS``): which holds the values? (The exact one was used, silently.)"""
    known = {*PARQUET_ANY_CASE, *(n for names in LENGTH_NAMES.values() for n in names)}
    by_name: dict[str, list[str]] = {}
    for c in columns:
        if c.strip().lower() in known:
            by_name.setdefault(c.strip().lower(), []).append(c)
    for name, found in by_name.items():
        if len(found) > 1:
            raise UserError(f"{path}: columns {' and '.join(repr(c) for c in found)} differ only in case (or spaces), "
                            f"and names match in any case: which holds the {name}? keep one (drop or rename the "
                            f"other{'s' if len(found) > 2 else ''})")
    return {found[0]: name for name, found in by_name.items() if name in PARQUET_ANY_CASE and found[0] != name}


def _parquet_reads_any_case(path: Path) -> bool:
    """Whether ``path`` is a flat parquet with a column :func:`_any_case_renames` renames (``Prompt``, ``Score``,
    ``Request_ID``, ``Arrival_Time``), which loading ignored before (its score, ids or arrivals were not read, or the
    table was refused); False for other files, a labels or conversations table, and a parquet polars cannot read."""
    if file_suffix(path) != ".parquet":
        return False
    try:
        head = pl.read_parquet(path, n_rows=0)
        from ltrsched.workloads.labels import is_labels

        if is_labels(head) or is_conversation_table(head):
            return False
        return bool(_any_case_renames(head.columns, path))
    except Exception:  # (a parquet polars cannot read, or two names for one column: loading it says why)
        return False


def _other_arrival_name(df: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, str | None]:
    """A flat parquet whose arrival times are under another of the names a ``.csv``'s are read by
    (:func:`arrival_suffix`: ``TIMESTAMP``, ``arrived_at_ms``), with that column named ours (``arrival_time``, its
    suffix kept), and the file's name for it; ``df`` and None if it has no such column. One-line :class:`UserError`
    (as a ``.csv``'s) for two columns giving the times (``timestamp`` and ``arrival_time``)."""
    if not any(arrival_suffix(c) is not None and c not in ARRIVAL_KEYS for c in df.columns):
        if not any(c in ARRIVAL_KEYS for c in df.columns):
            unread_arrival_unit(df.columns, str(path))
        return df, None
    found, suffix = _csv_arrival_column(df, CSV_COLUMNS["arrival_time"], path)
    return df.rename({found: f"arrival_time{suffix}"}), found


def _table_arrivals(df: pl.DataFrame, path: Path, arrival_info: dict | None = None, named: str | None = None
                    ) -> pl.DataFrame:
    """A parquet table's ``arrival_time_ms`` (or ``arrival_time_s``) as ``arrival_time`` [s] (:data:`UNIT_SUFFIXES`);
    ``df`` itself without one. ``arrival_info`` (if given) receives the column (``column``) and its unit (``unit``: the
    suffix, or None for ``arrival_time``). Date-time text is read as a ``.csv``'s is (:func:`_datetime_seconds`: it
    was refused as non-numeric), temporal types as :func:`_temporal_seconds` says. Errors name the column by
    ``named`` (the file's name for it) if given. One-line :class:`UserError` for a table with more than one of them,
    or a text column that holds no date-times."""
    given = [name for name in ("arrival_time", *(f"arrival_time{s}" for s in UNIT_SUFFIXES)) if name in df.columns]
    if len(given) > 1:
        raise UserError(f"{path}: columns {' and '.join(given)} both give arrival times"
                        f"{in_units(n[len('arrival_time'):] for n in given)}; keep one")
    if not given:
        return df
    if arrival_info is not None:
        arrival_info.update(column=given[0], unit=given[0][len("arrival_time"):] or None)
    col = df[given[0]]
    name = named or given[0]
    place, what = _arrival_place(df, path)
    if isinstance(col.dtype, (pl.Datetime, pl.Date, pl.Duration)):  # (refused as "non-numeric values")
        if arrival_info is not None:
            arrival_info["unit"] = "date-time"  # (seconds apart, whatever the column's name says)
        seconds = _arrival_numbers(_temporal_seconds(col), path, name, place, what)  # (a null: every container's)
        return df.drop(given[0]).with_columns(seconds.alias("arrival_time"))
    if col.dtype == pl.String or col.dtype.is_numeric() or col.dtype == pl.Boolean:  # (numbers as text as a .csv's:
        # they were read as date-times, and refused; null, -1, NaN, true: one line, arrival_values)
        col = _arrival_numbers(col, path, name, place, what)
        df = df.with_columns(col.alias(given[0]))
    if col.dtype == pl.String:  # date-time text, as a .csv's (Azure's TIMESTAMP), whatever the name's suffix
        seconds = _datetime_seconds(col.str.strip_chars(), f"{path}: {what} {name!r}")
        if seconds.dtype != pl.String:
            if arrival_info is not None:
                arrival_info["unit"] = "date-time"  # (seconds apart, whatever the column's name says)
            seconds = _arrival_numbers(seconds, path, name, place, what)  # (a null: every container's line)
            return df.drop(given[0]).with_columns(seconds.alias("arrival_time"))
        at = _format_break(seconds)
        if at is not None:
            raise _format_break_error(seconds, at, f"{path}: {what} {name!r}", place(at))
    if given[0] == "arrival_time" and col.dtype != pl.String:
        return df
    if not col.dtype.is_numeric():  # (the error named no row)
        first, at = first_non_numeric(col), first_non_numeric_row(col)
        where = "" if at is None else place(at)
        if col.dtype == pl.String and first:  # (the words of every container's: a .csv's)
            at = text_numbers(col)[1]  # (the first text that spells no number: 'inf' is none, though polars reads it)
            raise UserError(arrival_text_error(path, name, col[at], place(at), what))
        raise UserError(f"{path}: column {name} has non-numeric values ({col.dtype}"
                        + (f", first: {first[0]!r}) in {where}" if first else ")") + "; it must hold numbers"
                        + (" or date-times" if col.dtype == pl.String else ""))
    return df.with_columns((col.cast(pl.Float64) * UNIT_SUFFIXES[given[0][len("arrival_time"):]]).alias(
        "arrival_time")).drop(given[0])


def _arrival_place(df: pl.DataFrame, path: Path) -> tuple:
    """How an arrival error names row ``at`` (0-based) of ``df``, a table as read: ``place(at)`` and the field's kind
    (``"column"``, or ``"key"`` for a conversation record's). A flat table's row in the file (``row 2``); a conversation
    file's first turn's record (:data:`~ltrsched.workloads.sharegpt.RECORD_NUMBER`: ``record 2 (id 'b')`` of a
    ``.json``'s or ``.jsonl``'s, ``row 2 (id 'b')`` of a parquet's; it named "record id ''"); else by its id, as a
    parse cached before named it."""
    if FILE_ROW in df.columns:
        return (lambda at: f"row {df[FILE_ROW][at]}"), "column"
    ids = df["source_id"].cast(pl.String) if "source_id" in df.columns else None
    named = lambda at: f" (id {ids[at]!r})" if ids is not None and ids[at] else ""  # noqa: E731
    if RECORD_NUMBER in df.columns:
        records = file_suffix(path) != ".parquet"
        return ((lambda at: f"{'record' if records else 'row'} {df[RECORD_NUMBER][at]:,}{named(at)}"),
                "key" if records else "column")
    if ids is not None:  # (a first turn's: records skipped are no rows)
        return (lambda at: f"record id {ids[at]!r}"), "column"
    return (lambda at: f"row {at + 1}"), "column"


def _temporal_seconds(col: pl.Series) -> pl.Series:
    """A parquet's temporal arrival column as seconds [s] (Float64): date-times (``Datetime``, with or without a
    time zone, or ``Date``; a pandas export of a trace's wall-clock times) as seconds since the earliest, as a
    ``.csv``'s date-times are read; durations (``Duration``: time since the start) as they are."""
    if isinstance(col.dtype, pl.Duration):
        return col.dt.total_microseconds().cast(pl.Float64) / 1e6
    stamps = col.cast(pl.Datetime("us")) if isinstance(col.dtype, pl.Date) else col
    return (stamps - stamps.min()).dt.total_microseconds().cast(pl.Float64) / 1e6


def _sample_checked(df: pl.DataFrame, num_requests: int | None, seed: int, path: Path,
                    count_names: dict[str, str] | None = None, keep: pl.Series | None = None) -> pl.DataFrame:
    """A seeded sample of a file's rows, after checking every row (a bad row passed when no seed drew it); errors
    name the file (``path``), and a count's column by the file's own name (``count_names``: ours -> the file's, e.g.
    ``input_len``, as a ``.jsonl``'s error names the line's key). ``keep`` (a flag per row: a split's,
    :func:`_split_rows`) selects the rows sampled from, once every row is checked. Rows without a ``request_id``
    column are numbered 0, 1, ... in the file's order (each request's place among the file's requests), before the
    split and the sample: a request keeps its id whatever ``num_requests`` (it was numbered after sampling, so ``-n
    100`` and ``-n 200`` gave one request two ids, and two draws of the score noise that follows ids). The rows
    sampled keep their :data:`FILE_ROW` (where ``df`` has it: :func:`_placed` takes it out)."""
    numbered = "request_id" not in df.columns
    rows = df[FILE_ROW] if FILE_ROW in df.columns else None
    df = df.drop(FILE_ROW, strict=False)
    what = "line" if file_suffix(path) == ".jsonl" else "row"
    df = validate(_numbered(df) if numbered else df, str(path),
                  None if rows is None else lambda row: f"{what} {rows[row]}", count_names)
    _no_blank_texts(df, lambda row: (f"{path}:{rows[row]}" if what == "line" else f"{path}: row {rows[row]}")
                    if rows is not None else f"{path}: row {row + 1}")
    if rows is not None:  # (each row's place travels through the sample, which takes the same rows with it)
        df = df.with_columns(rows)
    if keep is not None:
        df = df.filter(keep)
    return sample_rows(df, num_requests, seed, str(path))


def _placed(df: pl.DataFrame, unit: str) -> tuple[pl.DataFrame, dict]:
    """``df`` (a file's requests, chosen) without :data:`FILE_ROW`, and the workload ``meta`` entry giving each
    request's place in the file by its id (:class:`~ltrsched.workloads.file_rows.FileRows`, ``unit``: ``row``,
    ``line`` or ``record``), which a refusal of a request names (the table's row is none of the file's once rows are
    sampled or left out); none where ``df`` has no such column."""
    if FILE_ROW not in df.columns:
        return df, {}
    places = FileRows.of(df["request_id"].to_numpy(), df[FILE_ROW].to_numpy(), unit)
    return df.drop(FILE_ROW), {FILE_ROWS: places}


#: A date-time's time zone at its end (``Z``, ``+02:00``, ``-0500``), after a time of day.
_ZONE = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"


def _datetime_seconds(col: pl.Series, where: str = "the column") -> pl.Series:
    """Date-time text as seconds since the earliest [s] (a trace's wall-clock timestamps); ``col`` itself if
    it is not date-time text (the caller names the non-numeric values). Dates written with the day and the month
    first (``01/02/2023``) are read in the one order every row allows (US traces' month first was refused as "non-
    numeric"); one-line :class:`UserError` naming ``where`` if both orders read every row and give other times
    (``01/02/2023 23:59`` then ``01/03/2023 00:01`` was read 28 days apart, not 2 minutes, silently), or if a
    date-time without a time zone is among ones with one (the time is unknown; mixed zones are read, as UTC)."""

    def seconds(text: pl.Series) -> pl.Series | None:
        try:
            stamps = text.str.to_datetime(strict=True)
        except Exception:
            return None
        return (stamps - stamps.min()).dt.total_microseconds().cast(pl.Float64) / 1e6

    day_first = seconds(col)
    if day_first is None:  # (a date-time without a zone among ones with one: "must be a number of seconds or a
        # date-time", of a date-time)
        zoned = col.str.contains(_ZONE).fill_null(False)
        given = col.is_not_null()
        naive = col.filter(given & ~zoned).head(1)
        if zoned.any() and naive.len() and seconds(naive) is not None:  # (a date-time, not other text)
            naive, aware = naive[0], col.filter(zoned)[0]
            raise UserError(f"{where}: the date-time {naive!r} has no time zone where others have one (first: "
                            f"{aware!r}): which zone is it in? give every date-time a zone (e.g. +00:00), or none")
    swapped = col.str.replace(r"^(\s*)(\d{1,2})([/.-])(\d{1,2})([/.-])", "${1}${4}${3}${2}${5}")
    month_first = None if swapped.equals(col) else seconds(swapped)
    if day_first is not None and month_first is not None and not day_first.equals(month_first):
        first = col.drop_nulls().head(1).to_list()
        raise UserError(f"{where}: date-times such as {first[0]!r} read day first or month first, and the two "
                        "readings give other arrival times; write them year first (ISO 8601, e.g. 2023-02-01 18:15:46)")
    found = day_first if day_first is not None else month_first
    return col if found is None else found


def _format_break(texts: pl.Series) -> int | None:
    """Where date-time text changes format: the index of the first value that does not read in the format of the
    first (which does read as a date-time), e.g. ``01/02/2024 00:00:01`` after ``2024-01-01 00:00:00``; None if the
    first is no date-time or every value reads. (The error named the first value, a date-time, as "non-numeric".)"""
    try:
        stamps = texts.str.to_datetime(strict=False)
    except pl.exceptions.PolarsError:  # (no format can be inferred from the first value: it is no date-time)
        return None
    bad = stamps.is_null() & texts.is_not_null()
    given = texts.is_not_null()
    if not bad.any() or not given.any() or bad[int(given.arg_max())]:
        return None
    return int(bad.arg_max())


def _format_break_error(texts: pl.Series, at: int, where: str, row: str) -> UserError:
    """The one-line error for date-time text that changes format at index ``at`` (:func:`_format_break`), in
    ``row`` (e.g. "row 2") of ``where``."""
    first = texts.drop_nulls()[0]
    return UserError(f"{where}: {texts[at]!r} in {row} is not a date-time in the format of the first, {first!r}; "
                     "write every arrival time as a date-time in one format (ISO 8601, e.g. 2023-02-01 18:15:46)")


def workload_fingerprint(source: str) -> dict[str, str]:
    """What :func:`load_workload` reads for ``source``, as part of a cache key: a built-in's name (plus
    the ShareGPT records' content key for ``sharegpt``), or a file's content hash (SHA-256 of its bytes).
    Raises :class:`UserError` if ``source`` is neither."""
    if source in BUILTIN:
        return {"builtin": source, **({"records": records_key()} if source == "sharegpt" else {})}
    path = Path(source)
    if path.is_dir():  # (as load_workload says it: sweeps and capacity said "neither a file nor a built-in")
        raise UserError(f"workload {source!r} is a directory, not a file")
    check_not_special(path, "workload")
    if not path.is_file():
        known = ", ".join(BUILTIN)
        raise UserError(f"workload not found: {source!r} is neither a file nor a built-in ({known})")
    # a .csv's or .jsonl's own ids, kept since this marker: runs cached before numbered the requests instead; a
    # .jsonl's predictor columns (or a .csv's in another case) likewise (runs cached before had none: `po` drew its
    # estimates)
    # and arrival times in a unit its name states (arrival_time_ms, ...), read since this marker: before, they were
    # no arrival column (every request at t = 0)
    # and a conversations parquet's own token counts, used since this marker (runs cached before recounted the text)
    # and a .jsonl's Mooncake keys, read since this marker (a line of text beside input_length/output_length and
    # timestamp had its text's counts and arrived at t = 0)
    # and a flat parquet's columns named in another case (Score, Request_ID, Arrival_Time, Prompt), read since this
    # marker (runs cached before had no score, numbered the rows, or put every request at t = 0)
    # and conversations with OpenAI's developer messages ahead of their first turn, read since this marker (runs
    # cached before skipped them, "with unknown speakers"); and conversations whose speakers are written in another
    # case ("Human", "GPT", "Assistant"), read since this marker (skipped before likewise); and a flat parquet's or a
    # .jsonl's arrival times under a .csv's other names (timestamp, TIMESTAMP, arrived_at), read since this marker
    # (runs cached before put every request at t = 0); and a conversation file's arrival times (a .json's or .jsonl's
    # records', a conversations parquet's under another name, LMSYS's timestamp), read since this marker (likewise);
    # and a .json's or .jsonl's conversation records' request_id, score, po_estimate and predicted_length, kept since
    # this marker (runs cached before numbered the requests and had no score: `po` drew its estimates); and the system
    # and developer text before a conversation's first user turn, counted in its prompt since this marker
    # and arrival times named by a name read since (ADDED_NAMES: Chatbot Arena's tstamp), in any format, read since
    # this marker (runs cached before put every request at t = 0); and a .csv's or .jsonl's token counts under the
    # names read since this marker (ADDED_LENGTH_NAMES: completion_tokens, input_len, ...; runs cached before counted
    # the text's tokens instead); and a parquet's count under ours and another tool's name, refused since this marker
    # (runs cached before read ours); and a .jsonl's 'timestamp' in milliseconds on Mooncake's lines and seconds on
    # others, refused since this marker (runs cached before read each line in its unit); and a .json's or .jsonl's
    # conversation records' own prompt_tokens and output_tokens, used since this marker (runs cached before counted
    # the text's tokens, where a conversations parquet's counts were used)
    return {"sha256": file_digest(path), **({"ids": "given"} if _gives_ids(path) else {}),
            **({"mooncake": "read"} if _jsonl_gives_mooncake(path) else {}),
            **({"columns": "kept"} if _jsonl_gives_columns(path) else {}),
            **({"arrivals": "units"} if _gives_unit_arrivals(path) else {}),
            **({"counts": "given"} if _parquet_gives_counts(path) else {}),
            **({"names": "any case"} if _parquet_reads_any_case(path) else {}),
            **({"turns": "developer"} if _may_give_developer_turns(path) else {}),
            **({"speakers": "any case"} if _may_give_cased_speakers(path) else {}),
            # (OpenAssistant's prompter messages read as the user's since this marker: runs cached before skipped
            # their conversations, "with unknown speakers")
            **({"speakers prompter": "the user"} if _conversations_file(path) and may_give_prompter(path) else {}),
            **({"arrival names": "read"} if _reads_other_arrival_names(path) else {}),
            # (a record's null arrival time, read as none given before: refused since "null refused")
            **({"conversation arrivals": "read, null refused"} if _conversations_give_arrivals(path) else {}),
            **({"conversation columns": "kept"} if _conversations_file(path) and may_give_columns(path) else {}),
            # (", a blank user turn empty": a blank user turn after system text left out as an empty prompt since this
            # marker: runs cached before served the system text alone)
            **({"system text": "counted, a blank user turn empty"} if _conversations_file(path)
               and may_give_system_text(path) else {}),
            # (a record's or request line's 'system' key, Anthropic's system prompt, counted in the prompt since this
            # marker: runs cached before counted the prompt without it)
            **({"system key": "counted"} if may_give_system_key(path) else {}),
            **({"system column": "counted"} if _table_gives_system(path) else {}),  # (a table's: it was dropped)
            # (", first turn alone": a record's counts beside a conversation going on after its first reply refused,
            # which runs cached before read as the first turn's)
            # (a user turn alone with its reply's text under a request line's name, 'response', read since this
            # marker: a parse before skipped it, "the last message is the user's")
            **({"conversation table counts": "first turn alone"} if gives_table_counts(path) else {}),
            **({"conversation reply text": "read"} if _conversations_file(path) and may_give_reply_text(path) else {}),
            **({"conversation counts": "given, a reply optional, first turn alone"} if _conversations_file(path)
               and may_give_counts(path) else {}),
            **({"conversation count names": "other tools', a reply optional, first turn alone"}
               if _conversations_file(path) and may_give_other_counts(path) else {}),
            **({"added arrival names": "read"} if file_may_name_added(path) else {}),
            **({"added length names": "read"} if _names_added_lengths(path) else {}),
            **({"count names": "two refused"} if _parquet_counts_twice(path) else {}),
            **({"mooncake timestamps": "one unit"} if _jsonl_mixes_timestamp_units(path) else {}),
            # (an OpenAI usage's counts, a request log's {"request", "response"}, read since this marker: runs cached
            # before counted the text's tokens, or skipped the logs)
            # ("anthropic's too": input_tokens/output_tokens, an Anthropic response and streamed chunks read since;
            # "status text": a Batch API line's status_code "200" a success since; "both apis": a usage of OpenAI's and
            # Anthropic's keys that disagree refused since, where OpenAI's were read; "anthropic events": a streamed
            # Anthropic response's events read since, where they were left out; "logs": responses logged as server-sent
            # events, Responses API, completions and LiteLLM records, reasoning text read since: log_records, sse_logs)
            **({"openai usage": "read, anthropic's too, status text, both apis, anthropic events, logs"}
               if may_give_usage(path) else {}),
            # (a request file's 'id' of whole numbers read as its ids since this marker: runs cached before numbered
            # the requests)
            **({"id": "read as the request id"} if _gives_id_name(path) else {}),
            # (a .csv's or .jsonl's requests without ids numbered in the file's order before -n samples them since this
            # marker: runs cached before numbered the sample, in its order)
            **({"numbered": "file order, before sampling"} if _numbers_requests(path) else {})}


#: Names of :data:`~ltrsched.workloads.schema.LENGTH_NAMES` read since a later change (in lower case): a ``.csv``
#: or ``.jsonl`` giving them beside the texts had the texts' tokens counted instead, so cache keys mark such files
#: (:func:`_names_added_lengths`). (A parquet's are marked as any other tool's count names are,
#: :func:`_parquet_gives_counts`; a ``.jsonl``'s ``input_length`` and ``output_length`` were read before, Mooncake's.)
ADDED_LENGTH_NAMES = ("input_len", "input_length", "num_prompt_tokens", "completion_tokens", "output_length",
                      "num_output_tokens")


def _names_added_lengths(path: Path) -> bool:
    """Whether a ``.csv``'s header or a ``.jsonl``'s bytes name one of :data:`ADDED_LENGTH_NAMES` (a ``.jsonl``'s: as
    a key, or hold a ``\\u`` escape of a letter, which could spell one), which loading did not read before. A cache
    key's probe: False for other files and a file that cannot be read (loading it says why)."""
    import csv

    suffix = file_suffix(path)
    try:
        if suffix == ".csv":
            with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
                return any(name.strip().lower() in ADDED_LENGTH_NAMES for name in next(csv.reader(fh), []))
        if suffix == ".jsonl":
            data = path.read_bytes()
            return escapes_a_letter(data) or any(f'"{name}"'.encode() in data for name in ADDED_LENGTH_NAMES
                                                 if name not in MOONCAKE_KEYS)
    except (OSError, csv.Error):
        return False
    return False


def _conversations_give_arrivals(path: Path) -> bool:
    """Whether ``path`` is a conversations file whose arrival times loading dropped before (every request at t = 0):
    a ``.json``, a ``.jsonl`` of conversations or a conversations parquet that
    :func:`~ltrsched.workloads.sharegpt.may_give_arrivals` says may give them (a record's ``timestamp``, LMSYS's
    ``timestamp`` column). False for other files and a file not readable as its format (loading it says why)."""
    return _conversations_file(path) and may_give_arrivals(path)


def _conversations_file(path: Path) -> bool:
    """Whether ``path`` is read as conversations: a ``.json``, a ``.jsonl`` of conversations
    (:func:`jsonl_conversations`) or a conversations parquet. False for a parquet polars cannot read."""
    suffix = file_suffix(path)
    try:
        return (suffix == ".json" or (suffix == ".jsonl" and jsonl_conversations(path)) or (
            suffix == ".parquet" and is_conversation_table(pl.read_parquet(path, n_rows=0))))
    except Exception:  # (a parquet polars cannot read)
        return False


def _reads_other_arrival_names(path: Path) -> bool:
    """Whether a flat parquet's column or a ``.jsonl`` request line's key names arrival times as only a ``.csv``'s
    were read before (:func:`arrival_suffix`: ``timestamp``, ``TIMESTAMP``, ``arrived_at``; not Mooncake's
    ``timestamp``, read before): they travelled along unread, every request at t = 0. (Date-time text, now read too,
    was refused.) False for other files and a file not readable as its format (loading it says why)."""
    suffix = file_suffix(path)
    try:
        if suffix == ".parquet":
            from ltrsched.workloads.labels import is_labels

            head = pl.read_parquet(path, n_rows=0)
            return not is_labels(head) and not is_conversation_table(head) and any(
                arrival_suffix(c) is not None and c.strip().lower() not in ARRIVAL_KEYS for c in head.columns)
        if suffix == ".jsonl":
            data = path.read_bytes()
            lower = data.lower()
            if b"\\u" not in data and b"arriv" not in lower and b"timestamp" not in lower:
                return False
            for _, rec in jsonl_records(path):
                if isinstance(rec, dict) and any(
                        arrival_suffix(k) is not None and k not in ARRIVAL_KEYS
                        and not (k == "timestamp" and any(m in rec for m in MOONCAKE_KEYS)) for k in rec):
                    return True
    except Exception:  # (OSError, a UserError of a line that is no JSON, a parquet polars cannot read)
        return False
    return False


#: A message's speaker written with a capital or a space (``"from": "Human"``, ``"role": "Assistant"``), in a
#: conversations file's bytes.
_CASED_SPEAKER = re.compile(rb'"(?:from|role)"\s*:\s*"[^"]*[A-Z \t]')


def _may_give_cased_speakers(path: Path) -> bool:
    """Whether ``path`` may hold conversations whose speakers are written in another case (``Human``, ``GPT``,
    ``Assistant``), which loading skipped before ("with unknown speakers"; :func:`~ltrsched.workloads.sharegpt.
    read_first_turn` reads them in any case now): a ``.json`` or ``.jsonl`` whose bytes give one (or hold a ``\\u``
    escape, which could spell one), or any conversations parquet (as :func:`_may_give_developer_turns`). False for
    other files and a parquet polars cannot read."""
    return _conversations_may_hold(path, lambda data: b"\\u" in data or _CASED_SPEAKER.search(data) is not None)


def _may_give_developer_turns(path: Path) -> bool:
    """Whether ``path`` may hold conversations with a ``developer`` message (OpenAI's system message), which loading
    skipped before (:data:`~ltrsched.workloads.sharegpt._SYSTEM`): a ``.json`` or a ``.jsonl`` whose bytes name one
    (or hold a ``\\u`` escape, which could spell one), or any conversations parquet (its strings are compressed,
    and its messages would be read in full to tell). False for other files and a parquet polars cannot read."""
    return _conversations_may_hold(path, lambda data: b"developer" in data or b"\\u" in data)


def _conversations_may_hold(path: Path, in_bytes) -> bool:
    """Whether ``path`` may hold conversations a parse rule changed for: a ``.json``/``.jsonl`` whose bytes
    ``in_bytes`` finds it in, or any conversations parquet (its strings are compressed). False for other files and a
    file that cannot be read (loading it says why)."""
    suffix = file_suffix(path)
    try:
        if suffix in (".json", ".jsonl"):
            return in_bytes(path.read_bytes())
        if suffix == ".parquet":
            return is_conversation_table(pl.read_parquet(path, n_rows=0))
    except Exception:  # (OSError, a parquet polars cannot read: loading it says why)
        return False
    return False


def _parquet_gives_counts(path: Path) -> bool:
    """Whether ``path`` is a parquet whose token counts loading ignored before: a conversations table's own (under
    any of :data:`~ltrsched.workloads.schema.LENGTH_NAMES`), or a flat table's under another tool's name where it
    lacks ours (``input_tokens``: the text was counted instead). False for other files and a parquet polars cannot
    read."""
    if file_suffix(path) != ".parquet":
        return False
    try:
        head = pl.read_parquet(path, n_rows=0)
    except Exception:
        return False
    cols = head.columns
    renamed = any(ours not in cols and any(c.strip().lower() in names for c in cols)
                  for ours, names in LENGTH_NAMES.items())
    return renamed or (is_conversation_table(head) and any(c in cols for c in COUNT_COLUMNS))


def _parquet_counts_twice(path: Path) -> bool:
    """Whether ``path`` is a parquet with one of our count columns beside another tool's name for it
    (``prompt_tokens`` and ``input_len``), which loading read as ours, silently, before it was refused
    (:func:`~ltrsched.workloads.schema.length_columns`): a run cached before must not stand for it. False for other
    files and a parquet polars cannot read."""
    if file_suffix(path) != ".parquet":
        return False
    try:
        cols = pl.read_parquet(path, n_rows=0).columns
    except Exception:
        return False
    return any(ours in cols and any(c != ours and c.strip().lower() in names
                                    and c.strip().lower() not in RUN_RESULT_COUNTS for c in cols)
               for ours, names in LENGTH_NAMES.items())


def _gives_unit_arrivals(path: Path) -> bool:
    """Whether a ``.csv`` header, a ``.jsonl`` line or a parquet's columns name arrival times with a unit suffix
    (:data:`UNIT_SUFFIXES`: ``arrived_at_ms``, ``arrival_time_s``, ...), which loading ignored before. False for a
    file not readable as its format (loading it says why)."""
    import csv

    suffix = file_suffix(path)
    names = {f"{n}{s}" for n in CSV_COLUMNS["arrival_time"] for s in UNIT_SUFFIXES}
    try:
        if suffix == ".csv":
            with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
                return any(name.strip().lower() in names for name in next(csv.reader(fh), []))
        if suffix == ".parquet":
            return bool(names & set(pl.read_parquet(path, n_rows=0).columns))
        if suffix == ".jsonl":
            data = path.read_bytes()
            if b"\\u" not in data and b"arrival_time_" not in data:
                return False
            for line in io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=None):
                if line.strip():
                    record = json.loads(line)
                    if isinstance(record, dict) and names & set(record):
                        return True
    except Exception:  # (OSError, ValueError, RecursionError, csv.Error, a parquet polars cannot read)
        return False
    return False


def _jsonl_gives_columns(path: Path) -> bool:
    """Whether a ``.jsonl`` has a line giving one of :data:`NUMERIC_OPTIONAL_COLUMNS` (not null), a ``.csv``
    header names one in another case (``Score``) or with spaces around it, or a conversations parquet has one of
    :data:`~ltrsched.workloads.sharegpt.TABLE_COLUMNS`: columns loading dropped before. False
    for other files and for a file that is not readable as its format (loading it says why). Only a ``.jsonl``
    whose bytes name one of them (or hold a ``\\u`` escape, which could spell one) is parsed."""
    import csv

    if file_suffix(path) == ".parquet":  # a conversations table's columns (it dropped them: `ltr` said it had no
        try:  # score, `po` drew its estimates, every request arrived at t = 0)
            head = pl.read_parquet(path, n_rows=0)
        except Exception:
            return False
        return is_conversation_table(head) and any(c in head.columns for c in TABLE_COLUMNS)
    if file_suffix(path) == ".csv":
        try:
            with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
                header = next(csv.reader(fh), [])
        except (OSError, csv.Error):
            return False
        return any(name.strip().lower() in NUMERIC_OPTIONAL_COLUMNS and name not in NUMERIC_OPTIONAL_COLUMNS
                   for name in header)
    if file_suffix(path) != ".jsonl":
        return False
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if b"\\u" not in data and not any(name.encode() in data for name in NUMERIC_OPTIONAL_COLUMNS):
        return False
    try:
        for line in io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=None):  # (as jsonl_records)
            if line.strip():
                record = json.loads(line)
                if isinstance(record, dict) and any(record.get(name) is not None for name in NUMERIC_OPTIONAL_COLUMNS):
                    return True
    except (ValueError, RecursionError):
        return False
    return False


def _jsonl_gives_mooncake(path: Path) -> bool:
    """Whether a ``.jsonl`` has a line with one of Mooncake's keys (:data:`MOONCAKE_KEYS`), which loading ignored
    before; False for other files and one not readable as JSON Lines. Only a file whose bytes name one of them (or
    hold a ``\\u`` escape, which could spell one) is parsed."""
    if file_suffix(path) != ".jsonl":
        return False
    try:
        data = path.read_bytes()
        if b"\\u" not in data and not any(key.encode() in data for key in MOONCAKE_KEYS):
            return False
        for line in io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=None):
            if line.strip():
                record = json.loads(line)
                if isinstance(record, dict) and any(key in record for key in MOONCAKE_KEYS):
                    return True
    except (OSError, ValueError, RecursionError):
        return False
    return False


def _gives_ids(path: Path) -> bool:
    """Whether a ``.csv`` (its header, in any case) or ``.jsonl`` (its first record, as every line gives them or
    none) gives request ids; False for other formats, whose ids were always kept, and for a file that is not
    readable as its format (loading it says why)."""
    import csv

    suffix = file_suffix(path)
    if suffix not in (".csv", ".jsonl"):
        return False
    try:
        with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
            if suffix == ".csv":
                return "request_id" in (name.strip().lower() for name in next(csv.reader(fh), []))
            record = json.loads(next((line for line in fh if line.strip()), "null"))
            return isinstance(record, dict) and "request_id" in record
    except (OSError, ValueError, RecursionError, csv.Error):  # (a first record nested too deeply: was a traceback)
        return False


def _numbers_requests(path: Path) -> bool:
    """Whether a ``.csv`` or a ``.jsonl`` of request lines gives no ``request_id`` (:func:`_gives_ids`), so that its
    requests are numbered (:func:`_sample_checked`). A cache key's probe: False for other files."""
    suffix = file_suffix(path)
    try:
        if suffix not in (".csv", ".jsonl") or (suffix == ".jsonl" and jsonl_conversations(path)):
            return False
    except Exception:  # (a file not readable as its format: loading it says why)
        return False
    return not _gives_ids(path)


def _gives_id_name(path: Path) -> bool:
    """Whether a request file (a ``.csv``'s header, a ``.jsonl``'s first request line, a flat parquet's schema) names
    an ``id`` without a ``request_id`` (:func:`~ltrsched.workloads.id_names.id_column`), read as its requests' ids since
    a cache key marked it (runs cached before numbered the requests). A cache key's probe: False for other files and
    a file that is not readable as its format (loading it says why)."""
    import csv

    suffix = file_suffix(path)
    try:
        if suffix == ".parquet":
            schema = pl.read_parquet_schema(path)
            return not is_conversation_table(pl.DataFrame(schema=schema)) and bool(id_column(list(schema)))
        if suffix not in (".csv", ".jsonl") or (suffix == ".jsonl" and jsonl_conversations(path)):
            return False
        with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
            if suffix == ".csv":
                return id_column(next(csv.reader(fh), [])) is not None
            record = json.loads(next((line for line in fh if line.strip()), "null"))
            return isinstance(record, dict) and ID_NAME in record and "request_id" not in record
    except Exception:  # (OSError, ValueError, RecursionError, csv.Error, a parquet polars cannot read)
        return False


def _table_gives_system(path: Path) -> bool:
    """Whether a ``.csv`` (its header) or a flat parquet (its schema) has a ``system`` column beside a ``prompt``
    (names in any case: :func:`~ltrsched.workloads.system_key.system_column`), counted in the prompt since a cache
    key marked it; False for other files and one not readable as its format (loading it says why)."""
    import csv

    suffix = file_suffix(path)
    try:
        if suffix == ".csv":
            with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
                names = next(csv.reader(fh), [])
        elif suffix == ".parquet":
            names = list(pl.read_parquet_schema(path))
        else:
            return False
    except Exception:  # (OSError, csv.Error, a parquet polars cannot read)
        return False
    return system_column(names) is not None and any(n.strip().lower() == "prompt" for n in names)


def load_workload(source: str, num_requests: int | None = None, seed: int = 0, split: str | None = None) -> Workload:
    """A workload from a built-in name or a file path; ``num_requests`` samples (seeded) from it.

    ``split`` ("eval", "train" or "all") applies to ShareGPT data and labels files (see
    :mod:`ltrsched.workloads.selection`; None: "eval") and to a request file's own ``split`` column or key
    (:mod:`ltrsched.workloads.file_splits`: "train" and "eval" its rows of that split; None and "all" every row, the
    column unread).
    """
    if source in BUILTIN:
        return builtin_workload(source, num_requests, seed, split or "eval")
    arrival: dict = {}  # the arrival-time column and its unit (load_csv, load_jsonl, _table_arrivals), and notes
    try:
        return _file_workload(source, num_requests, seed, split, arrival)
    except UserError:  # (BurstGPT's failed rows left out, then "has only 90": the warning counting them says why)
        explain_error(arrival.get("notes", ()))
        raise


def _file_workload(source: str, num_requests: int | None, seed: int, split: str, arrival: dict) -> Workload:
    """:func:`load_workload` of a file; ``arrival`` receives what its readers tell (``notes``: warnings printed once
    the workload has loaded)."""
    if not source.strip():  # (Path("") is the current directory: "workload '' is a directory, not a file")
        raise UserError(f"no workload given (the name {source!r} is empty): give a built-in ({', '.join(BUILTIN)}) "
                        "or a file")
    path = Path(source)
    if not path.exists():
        known = ", ".join(BUILTIN)
        raise UserError(f"workload not found: {source!r} is neither a file nor a built-in ({known})")
    if path.is_dir():
        raise UserError(f"workload {source!r} is a directory, not a file")
    check_not_special(path, "workload")  # (a pipe, /dev/zero: "the file is empty", of a size 0 that says nothing)
    suffix = file_suffix(path)
    check_not_empty(path, "workload")  # (a /proc file, size 0, was "the file is empty")
    if suffix == ".parquet":
        from ltrsched.workloads.labels import is_labels, labels_workload

        # (its columns first: a conversations table's first turns are parsed once and cached, and its messages were
        # read in full on every load to tell what it is)
        if is_conversation_table(_read_parquet(path, n_rows=0)):  # e.g. LMSYS-Chat-1M's: first turns, as a .json's
            return _conversations_workload(path, num_requests, seed, split, arrival)
        df = _read_parquet(path)
        if is_labels(df):
            return labels_workload(df, path.stem, split or "eval", num_requests=num_requests, seed=seed,
                                   meta={"source": str(path)})
        columns = df.columns  # the file's own: a missing column's error named the ids and arrival times added here
        df = df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias(FILE_ROW))
        renames = _any_case_renames(columns, path)  # (PROMPT: "missing column(s) prompt_tokens", where a .csv read it)
        df = df.rename(renames)
        # (counts as text, read as a .csv's and a .jsonl's are: a Utf8 column of '12' was refused)
        df = df.with_columns([number_texts(df[c], path, df[FILE_ROW]) for c in _count_columns(df.columns)]
                             + [number_texts(df[c], path, df[FILE_ROW], missing=True)  # (NaN: missing)
                                for c in NUMERIC_OPTIONAL_COLUMNS if c in df.columns])
        df, named = _other_arrival_name(df, path)  # (TIMESTAMP, arrived_at: they travelled along unread)
        output_name = None if "output_tokens" in columns else next(
            (c for c in columns if c.strip().lower() in LENGTH_NAMES["output_tokens"]), None)
        arrival["count names"] = {ours: next(c for c in columns if c.strip().lower() in names) for ours, names in
                                  LENGTH_NAMES.items() if any(c.strip().lower() in names for c in columns)
                                  and ours not in columns}  # (as length_columns reads them: the file's in errors)
        df = length_columns(df, str(path))  # (input_tokens, num_decode_tokens, ...: where it lacks ours)
        if "output_tokens" in df.columns:
            df = drop_failed_requests(df, output_name, path, arrival)
        df = _table_arrivals(df, path, arrival, named)
        if arrival.get("unit") is None:  # (plain-named numbers: seconds; Mooncake's timestamp is milliseconds)
            _mooncake_timestamp(named, [c for c in columns if c.strip().lower() in MOONCAKE_KEYS], path)
        if named:  # (a unit warning names the column to rename: the file's)
            arrival["column"] = named
        elif arrival.get("column") in renames.values():
            arrival["column"] = next(c for c, ours in renames.items() if ours == arrival["column"])
        other = id_column(columns) if "request_id" not in df.columns else None  # (an 'id' of whole numbers on every
        # row is the request id, as a .csv's and a .jsonl's: id_names)
        other_ids = adopted_ids(whole_numbers(df[other])) if other is not None else None
        if other_ids is not None:
            df = df.with_columns(other_ids)
        if "request_id" not in df.columns:  # numbered as the file's rows, before sampling
            df = _numbered(df)
        # (a system column ahead of the prompt, as a .jsonl line's 'system': it travelled along, not counted)
        df = join_system_column(df, "prompt", str(path))
        # (counts completed before sampling: every row is checked, and -n refused a table without them)
        df = _complete_table(df, path)
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}; have {', '.join(columns)}"
                            + _table_hint(df))
    elif suffix in (".json", ".jsonl") and (suffix == ".json" or jsonl_conversations(path)):  # conversations
        # (a .jsonl in OpenAI's chat format, or a .json array): first turns, numbered, as they carry no integer ids
        return _conversations_workload(path, num_requests, seed, split, arrival)
    elif suffix == ".jsonl":
        df = load_jsonl(path, arrival)
    elif suffix == ".csv":
        df = load_csv(path, arrival)
    elif suffix == ".txt":  # (prompts only: a workload needs each request's output length)
        raise UserError(stream_dump_error(path) or f"{path}: a .txt file holds prompts without output lengths; label them with `ltrsched label "
                        "--prompts FILE.txt` (one prompt per line), or give each its length in a .jsonl "
                        "({\"prompt\": ..., \"output_tokens\": N} per line)")
    else:  # (a .csv.gz said "unknown workload format '.gz'" alone)
        raise UserError(file_not_text_hint(path) or stream_dump_error(path)
                        or f"{path}: unknown workload format {suffix!r}; use .parquet, .jsonl (or .ndjson, "
                        ".jsonlines, .ldjson), .json or .csv")
    warning = _unit_warning(df["arrival_time"], arrival, path) if "arrival_time" in df.columns else None
    line_splits = arrival.pop("line splits", None)  # (a .jsonl's lines' own, read in its one pass)
    keep = _split_rows(df, path, split, line_splits) if split in FILE_SPLITS else None  # (a file's own split, where
    # one is asked)
    df, places = _placed(_sample_checked(df, num_requests, seed, path, arrival.pop("count names", None), keep),
                         "line" if suffix == ".jsonl" else "row")
    workload = Workload(df, path.stem, {**_meta(path, arrival, warning), **places,
                                        **({"split": split} if keep is not None else {})})
    for line in arrival.get("notes", ()):  # (after the checks; ahead of an error, load_workload prints them)
        print(line, file=sys.stderr)
    return workload


def _conversations_workload(path: Path, num_requests: int | None, seed: int, split: str | None,
                            arrival: dict) -> Workload:
    """A conversations file's workload (:func:`_first_turns`), meta ``split`` where its records' own split was read."""
    df, places = _placed(_first_turns(path, num_requests, seed, arrival, split),
                         "row" if file_suffix(path) == ".parquet" else "record")
    applied = arrival.pop("file split", None)
    return Workload(df, path.stem, {**_meta(path, arrival, arrival.get("warning")), **places,
                                    **({"split": applied} if applied else {})})


def _read_parquet(path: Path, n_rows: int | None = None) -> pl.DataFrame:
    """A workload parquet's table (its first ``n_rows`` rows); one-line :class:`UserError` if polars cannot read it."""
    try:
        return pl.read_parquet(path, n_rows=n_rows)
    except Exception as exc:
        hint = file_not_text_hint(path)  # (a .parquet.gz renamed: "The file must end with PAR1 or PARE")
        raise UserError(hint or f"cannot read workload {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


def _split_rows(df: pl.DataFrame, path: Path, split: str, line_splits: dict | None = None) -> pl.Series | None:
    """Which rows of a request file's table ``df`` (as read: :data:`FILE_ROW` numbers its rows, or lines, in the file)
    are in ``split`` by the file's own split (:mod:`~ltrsched.workloads.file_splits`): a ``.csv``'s or a flat
    parquet's ``split`` column, in any case, or a ``.jsonl`` line's ``split`` key (``line_splits``: each line's, as
    :func:`load_jsonl` read them; None where no line gives one); None for a file without one. One-line
    :class:`UserError` for a value that is no split, naming its row (line)."""
    suffix = file_suffix(path)
    rows = df[FILE_ROW]
    if suffix == ".jsonl":
        if line_splits is None:
            return None
        return split_mask([line_splits.get(line) for line in rows], SPLIT_NAME, split, str(path),
                          lambda at: f"line {rows[at]}", "key")
    if suffix == ".csv":
        data = lf_line_ends(path.read_bytes())
        text = decode_utf8(data, path)
        header = _csv_header(data, text, path)
        name = split_column(header, str(path))
        if name is None:
            return None
        values = _read_csv_checked(data, text, path, (name, *_count_columns(header)))[name]  # (as text, as written)
    elif suffix == ".parquet":
        name = split_column(pl.read_parquet_schema(path), str(path))
        if name is None:
            return None
        values = pl.read_parquet(path, columns=[name])[name]
    else:
        return None
    return split_mask(values.gather(rows - 1).to_list(), name, split, str(path), lambda at: f"row {rows[at]}")


def _meta(path: Path, arrival_info: dict, warning: str | None) -> dict:
    """A file's workload meta: its ``source``, and where its arrival times may be milliseconds read as seconds,
    ``arrival_warning`` (the warning :func:`ltrsched.workloads.arrivals.apply_arrivals` prints when it replays
    them) and ``arrival_column`` (the column to rename)."""
    meta = {"source": str(path)}
    if warning:
        meta.update(arrival_warning=warning, arrival_column=arrival_info.get("column"))
    return meta


def _unit_warning(times: pl.Series, arrival_info: dict, path: Path) -> str | None:
    """The one-line warning (without ``warning:``) for a file's arrival times ``times`` [s] read as seconds that
    look like milliseconds (:func:`ltrsched.workloads.arrivals.seconds_unit_warning`), naming the column to rename;
    None if they look like seconds or their column's name states the unit (``arrival_info["unit"]``)."""
    column = arrival_info.get("column")
    if column is None or arrival_info.get("unit") is not None or not times.dtype.is_numeric():
        return None  # (not numbers: the schema's check names them; the cast here was a traceback for a list column)
    why = seconds_unit_warning(times.cast(pl.Float64, strict=False).to_numpy())
    if why is None:
        return None
    what = "key" if file_suffix(path) == ".jsonl" else "column"
    return (f"{path}: its arrival times, read as seconds ({what} {column!r}), {why}; if they are milliseconds, name "
            f"the {what} {column.strip()}_ms (if seconds, {column.strip()}_s, to say so)")
