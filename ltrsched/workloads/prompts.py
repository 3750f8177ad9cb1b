"""Prompt text without lengths, from a user's file: what ``ltrsched label --prompts FILE`` serves.

A labelling run needs prompts only (the served model makes the lengths), so a file here needs no output field:

- ``.json``: ShareGPT conversations (complete or truncated; or LMSYS/OpenAI ``{"role", "content"}`` messages):
  first turns, the paper's length rules (:func:`ltrsched.workloads.selection.eligible`; those they leave out are
  counted in a warning), keyed by record id, as the built-in workload (a record without one, as OpenAI's chat
  format has none, by ``turn-N``: the N-th first turn read, 1-based); a parquet of conversations (LMSYS-Chat-1M's)
  likewise. A request without the assistant's reply (a user turn alone, after any system messages: a chat request
  as logged) is a prompt too, as labelling needs no reply: the paper's prompt-length rule applies to it, and a
  record without an id is keyed ``request-N`` (its 1-based record number); both kinds in the file's order
  (:mod:`ltrsched.workloads.conversation_prompts`);
- ``.jsonl``: one object per line with a string ``prompt`` (other fields are ignored); an ``id`` (string or
  integer) keys it, else ``line-N`` (its 1-based line number); a string ``system`` is its system text, which the
  prompt then begins with, as a conversation's (the system text, a blank line, the prompt); or one conversation per
  line (OpenAI's chat format), read as a ``.json``'s;
- ``.parquet``: a string ``prompt`` column; a ``key``, ``id`` or ``source_id`` column keys the rows, else
  ``row-N`` (1-based); a string ``system`` column is each row's system text, as a ``.jsonl`` line's;
- ``.csv``: a ``prompt`` column (in any case), text as written, keyed as a parquet's rows (a trace of lengths
  alone, such as the workload ``.csv`` traces, has no prompts);
- ``.txt``: plain text, one prompt per line (a line ends at ``\n``, ``\r\n`` or ``\r``; blank lines are skipped;
  a prompt of several lines needs a ``.jsonl``; a line of whitespace and invisible characters alone is blank:
  :mod:`ltrsched.workloads.blank_text`), keyed ``line-N`` (its 1-based line number).

Text files are strict UTF-8 (:mod:`ltrsched.workloads.utf8`). Empty prompts (nothing, whitespace or invisible
characters alone: :mod:`ltrsched.workloads.blank_text`) are refused, as is a key given twice;
a prompt given twice is kept once (its first key), so no prompt can land in two splits, with a warning on stderr
counting the repeats.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import polars as pl

from ltrsched.errors import UserError
from ltrsched.inputs import check_not_special
from ltrsched.notices import explain_error
from ltrsched.strict_json import shown
from ltrsched.workloads.blank_text import blank_why, is_blank
from ltrsched.workloads.csv_separator import separator_hint
from ltrsched.workloads.empty_file import check_not_empty
from ltrsched.workloads.jsonl import jsonl_records
from ltrsched.workloads.system_key import SYSTEM_KEY, system_text
from ltrsched.workloads.utf8 import describe_surrogate, lone_surrogate
from ltrsched.workloads.file_suffix import file_suffix

SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".txt")
_KEY_COLUMNS = ("key", "id", "source_id")


#: :func:`load_prompts`' column of each prompt's system text (``""`` where none), with ``with_system``.
SYSTEM = "system"


def load_prompts(path: str | Path, with_system: bool = False) -> pl.DataFrame:
    """``key`` and ``prompt`` (both Utf8) of the file's prompts, in file order, each prompt once; with
    ``with_system``, :data:`SYSTEM` too: the system text each prompt begins with (a conversation's system and
    developer messages, a ``.jsonl`` line's ``system``), followed by a blank line
    (:data:`~ltrsched.workloads.sharegpt.SYSTEM_SEPARATOR`), which a chat template may take as a system turn
    (``ChatPrompts.encode``); ``""`` where none. One-line :class:`UserError` for a file that holds none or that
    cannot be read as one of :data:`SUFFIXES`."""
    path = Path(path).expanduser()
    check_not_special(path, "prompts file")
    if not path.is_file():
        raise UserError(f"prompts file not found: {path}")
    check_not_empty(path, "prompts file")  # (as a workload's: each format said it otherwise, a parquet "out of
    # specification"; a /proc file, size 0, was "the file is empty")
    suffix = file_suffix(path)
    notes: list[str] = []  # the parse's, printed once the prompts are read, or ahead of an error they explain
    try:
        df = _read(path, suffix, notes)
    except UserError:
        explain_error(notes)  # ("no prompt is eligible", without the warning counting what was left out and why)
        raise
    repeated = ~df["prompt"].is_first_distinct()
    if repeated.any():  # (left out without a word: 100 lines labelled 90 prompts)
        at = int(repeated.arg_true()[0])
        first = df["key"][int((df["prompt"] == df["prompt"][at]).arg_true()[0])]
        notes.append(f"warning: {path}: {int(repeated.sum()):,} of its {df.height:,} prompts repeat an earlier one "
                     f"(first: key {df['key'][at]!r}, the prompt of key {first!r}); each prompt is kept once, by its "
                     "first key")
    for line in notes:
        print(line, file=sys.stderr)
    df = df.filter(~repeated)
    if not with_system:
        return df.select("key", "prompt")
    return df if SYSTEM in df.columns else df.with_columns(pl.lit("", dtype=pl.Utf8).alias(SYSTEM))


def _jsonl_conversations(path: Path) -> bool:
    """Whether a ``.jsonl`` holds conversations, one per line (OpenAI's chat format), not prompts."""
    from ltrsched.workloads.loaders import jsonl_conversations

    return jsonl_conversations(path)


def _is_conversations(path: Path) -> bool:
    """Whether a parquet file holds conversations (e.g. LMSYS-Chat-1M's) rather than prompts."""
    from ltrsched.workloads.sharegpt import is_conversation_table

    try:
        return is_conversation_table(pl.read_parquet(path, n_rows=0))
    except Exception:
        return False  # (read again, with its error, as a prompts table)


def _jsonl(path: Path) -> pl.DataFrame:
    """``key``, ``prompt`` and :data:`SYSTEM` of a ``.jsonl`` of prompts; a line's ``system`` (it was ignored) begins
    its prompt, as a conversation's system text does."""
    from ltrsched.workloads.sharegpt import SYSTEM_SEPARATOR

    keys, prompts, systems = [], [], []
    for lineno, rec in jsonl_records(path):
        prompt = rec.get("prompt") if isinstance(rec, dict) else None
        if prompt is not None and not isinstance(prompt, str):  # (JSON has types: 42 is no text)
            raise UserError(f"{path}:{lineno}: 'prompt' must be text (a JSON string), got {shown(prompt)}")
        if not isinstance(prompt, str):
            from ltrsched.workloads.sharegpt import record_hint

            hint = record_hint(rec)  # (Alpaca's, Dolly's, Anthropic HH's, UltraChat's record)
            raise UserError(f"{path}:{lineno}: expected an object with a string field 'prompt'"
                            + (f"; it has {hint}" if hint else ""))
        key = rec.get("id", f"line-{lineno}")
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise UserError(f"{path}:{lineno}: 'id' must be a string or an integer, got {key!r}")
        _check_text(prompt, f"{path}:{lineno}")
        system = system_text(rec.get(SYSTEM_KEY))  # (a list of text blocks too, as a workload's line: system_key)
        if system is None:
            raise UserError(f"{path}:{lineno}: {SYSTEM_KEY!r} must be text (a JSON string), got "
                            f"{shown(rec[SYSTEM_KEY])}")
        at = lone_surrogate(system) if system else None
        if at is not None:
            raise UserError(f"{path}:{lineno}: the system text holds a lone UTF-16 surrogate "
                            f"({describe_surrogate(system, at)}), half of a character that cannot be tokenized")
        keys.append(str(key))
        prompts.append(f"{system}{SYSTEM_SEPARATOR}{prompt}" if system else prompt)  # ("": none, as a conversation's)
        systems.append(system or "")
    if not prompts:
        raise UserError(f"{path}: no prompts (empty file)")
    return pl.DataFrame({"key": keys, "prompt": prompts, SYSTEM: systems},
                        schema={"key": pl.Utf8, "prompt": pl.Utf8, SYSTEM: pl.Utf8})


def _read(path: Path, suffix: str, notes: list[str]) -> pl.DataFrame:
    """:func:`load_prompts`' prompts of ``path`` (its ``suffix`` in lower case), keys checked; the parse's warnings
    appended to ``notes``."""
    from ltrsched.workloads.sse_logs import stream_prompts_error

    dump = stream_prompts_error(path) if suffix in (".jsonl", ".txt") else None
    if dump is not None:  # (a .jsonl's was "not valid JSON"; a .txt's 'data: {...}' lines were labelled as prompts)
        raise UserError(dump)
    if suffix == ".json" or (suffix == ".parquet" and _is_conversations(path)) or (
            suffix == ".jsonl" and _jsonl_conversations(path)):
        from ltrsched.workloads.conversation_prompts import conversation_prompts

        df = conversation_prompts(path, notes)
    elif suffix == ".jsonl":
        df = _jsonl(path)
    elif suffix == ".parquet":
        df = _parquet(path)
    elif suffix == ".csv":
        df = _csv(path)
    elif suffix == ".txt":
        df = _txt(path)
    else:
        raise UserError(f"{path}: prompts come from a {', '.join(SUFFIXES)} file")
    _check_keys(df, path)
    return df


def _parquet(path: Path) -> pl.DataFrame:
    try:
        raw = pl.read_parquet(path)
    except Exception as exc:
        from ltrsched.workloads.utf8 import file_not_text_hint

        hint = file_not_text_hint(path)  # (a .parquet.gz renamed: "The file must end with PAR1 or PARE")
        raise UserError(hint or f"{path}: cannot read parquet ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    from ltrsched.workloads.labels import is_labels

    if is_labels(raw):
        raise UserError(f"{path} is a labels file (`ltrsched label`'s output), not prompts; pass the prompts it labelled")
    return _prompt_table(raw, path)


def _csv(path: Path) -> pl.DataFrame:
    """A ``.csv``'s ``prompt`` column (its header's name in any case, as a workload ``.csv``'s), every field read as
    text as written (``007`` stays ``007``); keyed as a parquet's. A trace of lengths alone has no such column."""
    import io

    from ltrsched.workloads.utf8 import decode_utf8, lf_line_ends

    data = lf_line_ends(path.read_bytes())  # (lines ended by CR alone: one line to polars, "no text column 'prompt'")
    if not decode_utf8(data, path).strip():  # (strict: an invalid byte is an error naming its line, never replaced)
        raise UserError(f"{path}: no prompts (no line with text)")  # (it was polars' "NoDataError: empty CSV")
    try:
        raw = pl.read_csv(io.BytesIO(data), infer_schema=False)
    except Exception as exc:
        raise UserError(f"{path}: cannot parse CSV ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    names = {c.strip().lower(): c for c in raw.columns}
    if "prompt" not in names:
        hint = separator_hint(raw.columns)  # (a ';'-separated file of prompts: "a trace of lengths holds none")
        raise UserError(f"{path}: no text column 'prompt' (have {', '.join(raw.columns) or 'none'})"
                        + (hint or "; a .csv trace of lengths holds no prompts"))
    raw = raw.rename({c: c.strip().lower() for c in raw.columns
                      if c.strip().lower() in ("prompt", SYSTEM, *_KEY_COLUMNS)})
    return _prompt_table(raw, path)


def _txt(path: Path) -> pl.DataFrame:
    """One prompt per non-blank line of a plain-text file, keyed ``line-N`` (1-based, as a ``.jsonl``'s)."""
    from ltrsched.workloads.utf8 import decode_utf8

    text = decode_utf8(path.read_bytes(), path)  # (strict: an invalid byte is an error naming its line)
    keys, prompts = [], []
    for lineno, line in enumerate(re.split(r"\r\n|\r|\n", text), 1):  # (not splitlines: U+2028, \f... are text here)
        if not is_blank(line):  # (a line of zero-width spaces alone shows as blank: skipped as one)
            keys.append(f"line-{lineno}")
            prompts.append(line)
    if not prompts:
        raise UserError(f"{path}: no prompts (no line with text)")
    return pl.DataFrame({"key": keys, "prompt": prompts}, schema={"key": pl.Utf8, "prompt": pl.Utf8})


def _prompt_table(raw: pl.DataFrame, path: Path) -> pl.DataFrame:
    """``key``, ``prompt`` and :data:`SYSTEM` of a table (a parquet's, a ``.csv``'s) with a ``prompt`` column of
    text; a ``system`` column of text (empty or missing: none) is each prompt's system text, which the prompt then
    begins with, as a ``.jsonl`` line's ``system`` (it was ignored: the prompts were labelled without it)."""
    if "prompt" in raw.columns and raw.schema["prompt"] not in (pl.Utf8, pl.String, pl.Null):
        first = raw["prompt"].drop_nulls().head(1).to_list()  # (it said "no text column 'prompt'", of one it has)
        row = f" (first: {first[0]!r}, row {int(raw['prompt'].is_not_null().arg_max()) + 1})" if first else ""
        raise UserError(f"{path}: column 'prompt' holds {raw.schema['prompt']} values{row}, not text")
    if "prompt" not in raw.columns:
        raise UserError(f"{path}: no text column 'prompt' (have {', '.join(raw.columns) or 'none'})")
    if raw.height == 0:
        raise UserError(f"{path}: no prompts (empty table)")
    key_col = next((c for c in _KEY_COLUMNS if c in raw.columns), None)
    if key_col and isinstance(raw.schema[key_col], (pl.List, pl.Array, pl.Struct, pl.Object)):  # (polars' cast
        first = raw[key_col].drop_nulls().head(1).to_list()  # error was a traceback)
        row = int(raw[key_col].is_not_null().arg_max()) + 1
        raise UserError(f"{path}: column {key_col!r} holds {raw.schema[key_col]} values"
                        + (f" (first: {first[0]!r}, row {row})" if first else "") + "; a key is text or a whole number")
    keys = (raw[key_col].cast(pl.Utf8, strict=False) if key_col else
            pl.Series([f"row-{i}" for i in range(1, raw.height + 1)], dtype=pl.Utf8))
    if SYSTEM in raw.columns and raw.schema[SYSTEM] not in (pl.Utf8, pl.String, pl.Null):
        first = raw[SYSTEM].drop_nulls().head(1).to_list()
        raise UserError(f"{path}: column {SYSTEM!r} holds {raw.schema[SYSTEM]} values"
                        + (f" (first: {first[0]!r}, row {int(raw[SYSTEM].is_not_null().arg_max()) + 1})" if first else "")
                        + ", not text")
    systems = raw[SYSTEM].cast(pl.Utf8).fill_null("") if SYSTEM in raw.columns else pl.Series([""] * raw.height)
    df = pl.DataFrame({"key": keys, "prompt": raw["prompt"], SYSTEM: systems},
                      schema={"key": pl.Utf8, "prompt": pl.Utf8, SYSTEM: pl.Utf8})
    for what, col in (("key", "key"), ("prompt", "prompt")):
        missing = df[col].is_null()
        if missing.any():
            row = int(missing.arg_max()) + 1
            raise UserError(f"{path}: row {row} has no {what}" + (f" (column {key_col!r})" if what == "key" else ""))
    for row, prompt in enumerate(df["prompt"].to_list(), 1):
        _check_text(prompt, f"{path}: row {row}")
    from ltrsched.workloads.sharegpt import SYSTEM_SEPARATOR

    return df.with_columns(prompt=pl.when(pl.col(SYSTEM) != "").then(pl.col(SYSTEM) + SYSTEM_SEPARATOR + pl.col("prompt"))
                           .otherwise(pl.col("prompt")))


def _check_text(prompt: str, where: str) -> None:
    if is_blank(prompt):  # (zero-width spaces alone were a prompt: :mod:`ltrsched.workloads.blank_text`)
        raise UserError(f"{where}: the prompt is empty ({blank_why(prompt)})")
    at = lone_surrogate(prompt)
    if at is not None:
        raise UserError(f"{where}: the prompt holds a lone UTF-16 surrogate ({describe_surrogate(prompt, at)}), half of "
                        "a character that cannot be tokenized")


def _check_keys(df: pl.DataFrame, path: Path) -> None:
    dup = df.filter(pl.col("key").is_duplicated())
    if dup.height:
        raise UserError(f"{path}: the key {dup['key'][0]!r} names {dup.filter(pl.col('key') == dup['key'][0]).height} "
                        "prompts; keys must be unique")
