"""The prompts of a conversations file (ShareGPT's, LMSYS's or OpenAI's messages), for ``ltrsched label --prompts``.

Labelling needs prompts only, so a conversation's first turn is a prompt whether or not the assistant's reply
follows it. The answered ones are the parse's first turns (:func:`~ltrsched.workloads.sharegpt.load_sharegpt_records`,
cached) under the paper's rules (:func:`~ltrsched.workloads.selection.eligible`); the requests without a reply (a
user turn alone, after any system messages: a chat request as logged) are read from the file's records
(:func:`~ltrsched.workloads.sharegpt.conversation_records`, the parse's reader) under the paper's prompt-length rule.
Both kinds come in the file's order, and the parse's note that left the requests out is replaced by one note saying
they are prompts too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ltrsched.errors import UserError

#: :func:`~ltrsched.workloads.sharegpt.read_first_turn`'s reason for a request without the assistant's reply.
UNANSWERED = "requests without the assistant's reply"
#: A frame's column of each prompt's 1-based record number in the file (dropped once the prompts are in file order).
_RECORD = "_record"


@dataclass
class _Pass:
    """One read of a conversations file's records (:func:`_read`).

    Attributes:
        requests: ``key``, ``prompt``, ``system`` and the record number of each request without the assistant's
            reply, in file order: each read as the first turn it opens (its record with a placeholder reply).
        answered: ``prompt`` and record number of each record with a first turn (its prompt as the parse reads
            it), in file order.
        skips: the :class:`~ltrsched.workloads.sharegpt.Skip` categories counted as the parse counts them
            (:func:`~ltrsched.workloads.sharegpt.count_skip`).
        total: the records read.
        cannot_tokenize: the note on the requests left out for a lone UTF-16 surrogate in their prompt (``""``: none),
            and how many.
        blank: the requests left out for an empty prompt (whitespace and invisible characters alone: they were
            counted as prompts outside the paper's length rule).
    """

    requests: pl.DataFrame
    answered: pl.DataFrame
    skips: dict
    total: int
    cannot_tokenize: tuple[str, int] = ("", 0)
    blank: int = 0

    @property
    def unanswered(self) -> int:
        """The records that are requests without the assistant's reply (those without text included)."""
        return self.skips.get((False, UNANSWERED), [0])[0]


def conversation_prompts(path: Path, notes: list[str]) -> pl.DataFrame:
    """``key``, ``prompt`` and ``system`` (the system text the prompt begins with, ``""`` where none) of the
    conversations file ``path``'s prompts, in file order: first turns the paper's rules take, keyed by record id
    (else ``turn-N``, the N-th first turn parsed), and requests without the assistant's reply whose prompt the
    paper's length rule takes, keyed by id (else ``request-N``, the N-th record). What the user should know is
    appended to ``notes`` (``warning: <file>: ...`` lines). One-line :class:`UserError` for a file with neither."""
    from ltrsched.workloads import selection
    from ltrsched.workloads.prompts import SYSTEM
    from ltrsched.workloads.sharegpt import SYSTEM_COLUMN, load_sharegpt_records

    try:
        records = load_sharegpt_records(path, notes)
    except UserError:  # (no complete conversation: "needs a user turn and a reply", of a file of requests)
        read = _read(path)
        if read.requests.height == 0 and read.blank:  # (it said "no complete conversation", advising replies)
            raise UserError(f"{path}: no prompt to send: {read.blank} request(s) without the assistant's reply, each "
                            "with an empty prompt (whitespace or invisible characters alone), and no complete "
                            "conversation") from None
        if read.requests.height == 0:
            raise
        return _eligible_requests(read, path, notes, answered=False).drop(_RECORD)
    # (read again only where the parse, cached, counted some: a large file's second pass takes long)
    read = _read(path) if any(UNANSWERED in line for line in notes) else None
    # a record without an id (OpenAI's chat format has none) is keyed by its first turn's place among them: every
    # such key was "", and the file refused for "the key '' names N prompts"
    number = pl.format("turn-{}", pl.int_range(1, pl.len() + 1))
    records = records.with_columns(source_id=pl.when(pl.col("source_id").cast(pl.Utf8) == "").then(number)
                                   .otherwise(pl.col("source_id").cast(pl.Utf8)),
                                   _occurrence=pl.int_range(pl.len()).over("prompt"))
    pool = selection.eligible(records)
    dropped = selection.left_out(records)  # (they were left out without a word)
    # (also where the rules leave no first turn but requests without a reply remain: those were labelled alone, and
    # the first turns left out without a word; where nothing remains, the error below says why)
    if dropped and (pool.height or (read is not None and read.requests.height)):
        notes.append(f"warning: {path}: {dropped}")
    if pool.height == 0 and (read is None or read.requests.height == 0):
        raise UserError(f"{path}: no first turn with a prompt of {selection.MIN_PROMPT_TOKENS}.."
                        f"{selection.MAX_PROMPT_TOKENS} tokens and a reply of >= {selection.MIN_OUTPUT_TOKENS} "
                        "(the paper's rules)")
    system = pl.col(SYSTEM_COLUMN).fill_null("") if SYSTEM_COLUMN in pool.columns else pl.lit("")
    answered = pool.select(pl.col("source_id").cast(pl.Utf8).alias("key"), "prompt", system.cast(pl.Utf8).alias(SYSTEM),
                           "_occurrence")
    if read is None:
        return answered.drop("_occurrence")
    # each first turn's record number: the k-th first turn of a prompt text in the parse is the k-th in the records
    # (a first turn the parse drops, one with a lone surrogate, drops every one of its text); one not found (a parse
    # cached from other bytes cannot be: the cache is keyed by them) comes after the others
    at = read.answered.with_columns(_occurrence=pl.int_range(pl.len()).over("prompt"))
    answered = answered.join(at, on=["prompt", "_occurrence"], how="left").drop("_occurrence")
    requests = _eligible_requests(read, path, notes, answered=True)
    df = pl.concat([answered, requests]).sort(_RECORD, nulls_last=True, maintain_order=True).drop(_RECORD)
    if df.height == 0:
        raise UserError(f"{path}: no first turn with a prompt of {selection.MIN_PROMPT_TOKENS}.."
                        f"{selection.MAX_PROMPT_TOKENS} tokens and a reply of >= {selection.MIN_OUTPUT_TOKENS}, nor a "
                        "request without the assistant's reply with such a prompt (the paper's rules)")
    return df


def _read(path: Path) -> _Pass:
    """The requests without the assistant's reply of a conversations file (:class:`_Pass`), with its records'
    first turns and skips; no requests if the file cannot be read (its parse says why)."""
    from ltrsched.workloads.prompts import SYSTEM
    from ltrsched.workloads.sharegpt import (CONVERSATION_KEYS, FirstTurn, Skip, conversation_records, count_skip,
                                             read_first_turn)
    from ltrsched.workloads.utf8 import describe_surrogate, lone_surrogate
    from ltrsched.workloads.blank_text import is_blank
    from ltrsched.workloads.openai_usage import as_conversation

    rows, answered, skips, total, surrogates, blank = [], [], {}, 0, [], 0
    try:
        records, _ = conversation_records(path)
        for total, record in enumerate(records, 1):
            read = as_conversation(record, path, total)[0]  # (a request log's exchange, as the parse reads it)
            record = record if read is None else read
            turn = read_first_turn(record, system=True)
            if isinstance(turn, FirstTurn):
                if lone_surrogate(turn.prompt) is None:  # (the parse leaves the others out, with a note)
                    answered.append((turn.prompt, total))
                continue
            count_skip(skips, turn, total, record)
            if not (isinstance(turn, Skip) and turn.reason == UNANSWERED):
                continue
            key = next(k for k in CONVERSATION_KEYS if record.get(k))
            user = record[key][-1]
            reply = {"from": "gpt", "value": "."} if "from" in user else {"role": "assistant", "content": "."}
            turn = read_first_turn({**record, key: [*record[key], reply]}, system=True)
            if not isinstance(turn, FirstTurn):
                continue
            if is_blank(turn.prompt):
                blank += 1
                continue
            at = lone_surrogate(turn.prompt)
            if at is not None:  # (half of a character: no tokenizer encodes it; it was a UnicodeEncodeError traceback)
                surrogates.append(f"record {total:,}" + (f", id {turn.id[:40]!r}" if turn.id else "")
                                  + f": {describe_surrogate(turn.prompt, at)}")
                continue
            rows.append((turn.id or f"request-{total}", turn.prompt, turn.system, total))
    except (UserError, OSError):
        rows, answered, skips, total, surrogates, blank = [], [], {}, 0, [], 0
    unanswered = skips.get((False, UNANSWERED), [0])[0]
    note = (f"warning: {path}: skipped {len(surrogates):,} of its {unanswered:,} {UNANSWERED}, whose prompt holds a "
            f"lone UTF-16 surrogate, which cannot be tokenized (first: {surrogates[0]})" if surrogates else "")
    return _Pass(pl.DataFrame(rows, schema={"key": pl.Utf8, "prompt": pl.Utf8, SYSTEM: pl.Utf8, _RECORD: pl.Int64},
                              orient="row"),
                 pl.DataFrame(answered, schema={"prompt": pl.Utf8, _RECORD: pl.Int64}, orient="row"), skips, total,
                 (note, len(surrogates)), blank)


def _eligible_requests(read: _Pass, path: Path, notes: list[str], answered: bool) -> pl.DataFrame:
    """The requests of ``read`` whose prompt the paper's length rule keeps (Llama-3 tokens, as a conversation's), the
    others counted in a note; ``answered``: the file has complete conversations too, whose parse's note counted the
    requests as left out: that note is replaced by one that leaves them out of its count, and one note says they are
    prompts here."""
    from ltrsched.workloads import selection
    from ltrsched.workloads.sharegpt import left_out_note
    from ltrsched.workloads.tokenizer import count_tokens

    requests = read.requests
    tokens = pl.Series(count_tokens(requests["prompt"].to_list()), dtype=pl.Int64)
    keep = tokens.is_between(selection.MIN_PROMPT_TOKENS, selection.MAX_PROMPT_TOKENS)
    note, cannot = read.cannot_tokenize
    if not keep.any() and not answered:
        raise UserError(f"{path}: no request with a prompt of {selection.MIN_PROMPT_TOKENS}.."
                        f"{selection.MAX_PROMPT_TOKENS} tokens (the paper's rule) among its {read.unanswered:,} "
                        "without the assistant's reply" + (f" ({cannot:,} holding a lone UTF-16 surrogate)"
                                                           if cannot else "")
                        + (f" ({read.blank:,} with an empty prompt)" if read.blank else ""))
    if note:
        notes.append(note)
    rule = f"a prompt outside {selection.MIN_PROMPT_TOKENS}..{selection.MAX_PROMPT_TOKENS} tokens (the paper's rule)"
    out = read.unanswered - cannot - read.blank - int(keep.sum())  # (a request without text too: 0 tokens)
    why = [f"{n:,} with {what}" for n, what in ((read.blank, selection.EMPTY_PROMPT), (out, rule)) if n]
    if answered:
        parsed = f"warning: {path}: {left_out_note(read.skips, read.total)}"
        rest = left_out_note({k: v for k, v in read.skips.items() if k != (False, UNANSWERED)}, read.total)
        if parsed in notes:  # (it counted them as left out, and a second note said they were not)
            notes[notes.index(parsed):notes.index(parsed) + 1] = [f"warning: {path}: {rest}"] if rest else []
        tokenized = read.unanswered - cannot
        if tokenized:
            one = tokenized == 1
            notes.append(f"warning: {path}: labelling needs no reply: {'the other' if cannot else 'its'} {tokenized:,} "
                         f"{'request' if one else 'requests'} without the assistant's reply "
                         f"{'is a prompt' if one else 'are prompts'} too" + (f", but for {' and '.join(why)}" if why else ""))
    elif why:
        notes.append(f"warning: {path}: left out {out + read.blank:,} of its {read.unanswered:,} {UNANSWERED}"
                     + (f": {', '.join(why)}" if read.blank else f", with {rule}"))
    return requests.filter(keep)
