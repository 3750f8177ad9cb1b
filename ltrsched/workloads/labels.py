"""Served-model labels: the output lengths a served model generated for prompts (``ltrsched label``).

A labels file is a parquet table with one row per (run, prompt). Labels of the built-in ShareGPT prompts store
no prompt text, so that the committed file stays small: ``key`` (the ShareGPT record id, ``source_id``) names
the prompt, whose text is joined from the ShareGPT package when the file is loaded (:func:`attach_prompts`),
checked against the stored ``prompt_sha256``. Labels of a user's prompts file (``ltrsched label --prompts``)
carry the text in a ``prompt`` column (checked against ``prompt_sha256`` too), so they need no other file.

=================  =======  ==================================================================
column             dtype    meaning [unit]
=================  =======  ==================================================================
key                Utf8     the ShareGPT record id of the prompt (``source_id``)
split              Utf8     ``train`` or ``eval`` (``ltrsched.workloads.selection``'s windows)
run                Utf8     ``main`` (the labels: greedy by default) or ``sample`` (a second,
                            sampled run on a subset of the eval prompts: the another-seed ceiling)
prompt_sha256      Utf8     first 16 hex digits of the SHA-256 of the prompt text (UTF-8)
prompt_tokens      Int64    prompt length in the served model's tokens, chat template applied
output_tokens      Int64    tokens the model generated, its EOS token included, at most ``max_tokens`` [tokens]
finish_reason      Utf8     ``stop`` (the model's EOS) or ``length`` (hit ``max_tokens``: exactly that many)
model              Utf8     the served model's name (``smollm2``, or the directory's name)
model_sha256       Utf8     SHA-256 of the model directory's files (weights, config, tokenizer, template)
temperature        Float64  sampling temperature (0: greedy)
top_p              Float64  nucleus sampling threshold (1: off)
max_tokens         Int64    the output cap [tokens]
seed               Int64    the run's seed (a sampled request's vLLM seed derives from it and ``key``)
repetition_penalty Float64  vLLM's repetition penalty (1: off; labels made before it have no column: read as 1)
prompt             Utf8     only in labels of a prompts file: the prompt text (a system text first, then a
                            blank line, where the prompt has one)
system_prompt      Utf8     only in labels of a prompts file: the system text the prompt begins with, sent as
                            the system turn where the chat template takes one; ``""`` where none (labels made
                            before it have no column: their prompts are sent as one user message)
=================  =======  ==================================================================

Loaded as a workload (``load_workload("labels.parquet", split=...)``, so every command that takes ``-w`` or
``--data``), a labels file gives the ``main`` run's rows of the split (``eval`` by default, ``train``, or
``all``), with the prompt text joined, ``request_id`` numbered and every arrival at t = 0. An engine serving
its text sends the chat the labels were made with: a ``system_prompt`` as the system turn
(:func:`system_turns`, read by :func:`ltrsched.workloads.sharegpt.system_turns` as a conversation file's).
"""

from __future__ import annotations

import hashlib

import polars as pl

from ltrsched.errors import UserError
from ltrsched.workloads.blank_text import blank_why, is_blank
from ltrsched.workloads.count_values import ZERO_OUTPUT_HINT
from ltrsched.workloads.schema import SYSTEM_COLUMN, SYSTEM_SEPARATOR

MAIN_RUN = "main"
SAMPLE_RUN = "sample"
LABEL_COLUMNS: dict[str, pl.DataType] = {
    "key": pl.Utf8,
    "split": pl.Utf8,
    "run": pl.Utf8,
    "prompt_sha256": pl.Utf8,
    "prompt_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "finish_reason": pl.Utf8,
    "model": pl.Utf8,
    "model_sha256": pl.Utf8,
    "temperature": pl.Float64,
    "top_p": pl.Float64,
    "max_tokens": pl.Int64,
    "seed": pl.Int64,
    "repetition_penalty": pl.Float64,
}
#: The repetition penalty's column: labels made before it lack it (they were served without one, i.e. 1).
PENALTY_COLUMN = "repetition_penalty"
#: The prompt text column of labels made from a prompts file (the built-in ShareGPT's are joined by key).
TEXT_COLUMN = "prompt"
#: The columns that make a parquet table a labels file.
_MARKERS = ("key", "run", "model_sha256", "prompt_sha256")


def label_schema(with_text: bool) -> dict[str, pl.DataType]:
    """The columns of a labels table's part files (:mod:`ltrsched.labelling.parts`): :data:`LABEL_COLUMNS`, and the
    prompt text if ``with_text``."""
    return {**LABEL_COLUMNS, TEXT_COLUMN: pl.Utf8} if with_text else dict(LABEL_COLUMNS)


def labels_file_schema(with_text: bool) -> dict[str, pl.DataType]:
    """The columns of a labels file ``ltrsched label`` writes: :func:`label_schema`'s, and with the prompt text its
    system text (:data:`SYSTEM_COLUMN`)."""
    return {**label_schema(True), SYSTEM_COLUMN: pl.Utf8} if with_text else label_schema(False)


def is_labels(df: pl.DataFrame) -> bool:
    """True if ``df`` is a labels table (``ltrsched label``'s output) rather than a workload."""
    return all(c in df.columns for c in _MARKERS)


def prompt_digest(text: str) -> str:
    """The ``prompt_sha256`` of a prompt: the first 16 hex digits of the SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def check_labels(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """Check a labels table's columns, types and values; raise :class:`UserError` naming the first problem. Labels
    made before :data:`PENALTY_COLUMN` get it, at 1 (no penalty: what they were served with)."""
    if PENALTY_COLUMN not in df.columns:
        df = df.with_columns(pl.lit(1.0, dtype=pl.Float64).alias(PENALTY_COLUMN))
    missing = [c for c in LABEL_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{name}: not a complete labels file, missing column(s) {', '.join(missing)}")
    for col, dtype in LABEL_COLUMNS.items():  # a cast to an integer truncates 12.7 to 12, silently
        if dtype == pl.Int64 and df.schema[col].is_decimal():  # (a Decimal 12.70 too)
            df = df.with_columns(pl.col(col).cast(pl.Float64))
        if dtype == pl.Int64 and df.schema[col].is_float():  # (NaN equals its floor in polars: polars' strict
            v = pl.col(col)  # cast message was the error, naming no row)
            bad = df.with_row_index("row", offset=1).filter(v.is_not_null() & (~v.is_finite() | (v != v.floor())))
            if bad.height:
                raise UserError(f"{name}: column {col} has {bad.height} non-integer value(s) (first: {bad[col][0]}, "
                                f"row {bad['row'][0]} of {df.height}, key {bad['key'][0]!r}); token counts are whole "
                                "numbers")
    try:
        df = df.with_columns([pl.col(c).cast(t, strict=True) for c, t in LABEL_COLUMNS.items() if df.schema[c] != t])
    except Exception as exc:
        raise UserError(f"{name}: a labels column has the wrong type: {str(exc).splitlines()[0]}") from None
    columns = label_schema(TEXT_COLUMN in df.columns)
    for column, what in ((TEXT_COLUMN, "the prompt text"), (SYSTEM_COLUMN, "the system text")):
        if df.schema.get(column, pl.Utf8) != pl.Utf8:
            raise UserError(f"{name}: column {column} holds {df.schema[column]}, not {what}")
    if SYSTEM_COLUMN in df.columns:
        columns[SYSTEM_COLUMN] = pl.Utf8
    nulls = [c for c in columns if df[c].null_count()]
    if nulls:
        raise UserError(f"{name}: column {nulls[0]} has {df[nulls[0]].null_count()} missing value(s)")
    _check_counts(df, name)
    _check_prompt_text(df, name)
    _check_system_text(df, name)
    for col, allowed in (("run", (MAIN_RUN, SAMPLE_RUN)), ("split", ("train", "eval")), ("finish_reason", ("stop", "length"))):
        wrong = df.filter(~pl.col(col).is_in(list(allowed)))
        if wrong.height:
            raise UserError(f"{name}: column {col} has the value {wrong[col][0]!r}; allowed: {', '.join(allowed)}")
    _check_sampling(df, name)
    _check_cap(df, name)
    _check_one_model(df, name)
    if df.select("run", "key").is_duplicated().any():
        raise UserError(f"{name}: a prompt key appears twice in one run")
    return df


def _check_counts(df: pl.DataFrame, name: str) -> None:
    """:class:`UserError` naming the first row with a token count below 1: a prompt has a token, and an output
    counts its EOS token (a reply of the EOS token alone is 1 token: a 0 is a count without it)."""
    why = {"prompt_tokens": "a prompt has at least one token",
           "output_tokens": "output_tokens counts the EOS token, so a reply of the EOS token alone is 1 token (a 0 "
                            "is a count without it: count the EOS token)"}
    for col, fix in why.items():
        bad = df.with_row_index("row", offset=1).filter(pl.col(col) < 1)
        if bad.height:
            if col == "output_tokens" and bad[col][0] == 0:  # (the likely cause, and what to do)
                fix = ZERO_OUTPUT_HINT
            raise UserError(f"{name}: {bad.height} row(s) with {col} < 1 (first: row {bad['row'][0]} of {df.height}, "
                            f"key {bad['key'][0]!r}, {col} {bad[col][0]}); {fix}")


def _check_prompt_text(df: pl.DataFrame, name: str) -> None:
    """:class:`UserError` naming the rows whose prompt text (labels of a prompts file) is blank: empty, or whitespace
    and invisible characters alone (:mod:`ltrsched.workloads.blank_text`), as a prompts file's are refused (they were
    accepted, and scored as text of another language)."""
    if TEXT_COLUMN not in df.columns:
        return
    texts = df[TEXT_COLUMN].to_list()
    rows = [row for row, text in enumerate(texts, 1) if is_blank(text)]  # (zero-width spaces alone were text)
    if rows:
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise UserError(f"{name}: {len(rows)} row(s) of {df.height} with an empty prompt (nothing, or whitespace and "
                        f"invisible characters alone: row(s) {shown}; the first, key {df['key'][rows[0] - 1]!r}, holds "
                        f"{blank_why(texts[rows[0] - 1])}); a prompt is text to serve")


def _check_system_text(df: pl.DataFrame, name: str) -> None:
    """:class:`UserError` naming the first row whose ``system_prompt`` is not the text its prompt begins with (then a
    blank line), or that has one without the prompt text (the built-in's labels have none to begin)."""
    if SYSTEM_COLUMN not in df.columns:
        return
    if TEXT_COLUMN not in df.columns:
        raise UserError(f"{name}: column {SYSTEM_COLUMN} without the prompt text ({TEXT_COLUMN}): a system text is "
                        "part of a prompts file's labels")
    for row, (key, prompt, system) in enumerate(df.select("key", TEXT_COLUMN, SYSTEM_COLUMN).iter_rows(), 1):
        if system and not prompt.startswith(system + SYSTEM_SEPARATOR):
            raise UserError(f"{name}: row {row} of {df.height} (key {key!r}): the prompt does not begin with its "
                            f"{SYSTEM_COLUMN} and a blank line; the file was edited after labelling")


def system_turns(df: pl.DataFrame) -> dict[str, str]:
    """The system text each prompt of the labels table ``df`` begins with, by the prompt's text (its rows with a
    ``system_prompt``; a prompt whose text two rows split otherwise is left out): what an engine sends as the
    system turn, as :func:`ltrsched.workloads.sharegpt.system_turns` gives a conversation file's. Empty for labels
    without the column."""
    if SYSTEM_COLUMN not in df.columns or TEXT_COLUMN not in df.columns:
        return {}
    pairs = df.select(TEXT_COLUMN, SYSTEM_COLUMN).filter(pl.col(SYSTEM_COLUMN).fill_null("") != "").unique()
    once = pairs.filter(pl.col(TEXT_COLUMN).is_unique())
    return dict(zip(once[TEXT_COLUMN].to_list(), once[SYSTEM_COLUMN].to_list()))


#: The sampling settings' ranges, as ``ltrsched label`` checks its options (``labelling.settings.Sampling``):
#: column -> (low, high, low included); both ends finite, high included.
SAMPLING_RANGES = {"temperature": (0.0, 100.0, True), "top_p": (0.0, 1.0, False),
                   "repetition_penalty": (0.0, 100.0, False)}


def sampling_interval(name: str) -> str:
    """The range of sampling setting ``name`` as an interval, e.g. ``(0, 1]`` for top_p."""
    low, high, closed = SAMPLING_RANGES[name]
    return f"{'[' if closed else '('}{low:g}, {high:g}]"


def _check_sampling(df: pl.DataFrame, name: str) -> None:
    """:class:`UserError` naming the first row whose sampling setting no run can have had: a temperature outside
    [0, 100], a top_p outside (0, 1] or a repetition penalty outside (0, 100] (NaN and infinities included), or a
    negative seed."""
    for col, (low, high, closed) in SAMPLING_RANGES.items():
        v = pl.col(col)
        inside = ((v >= low) if closed else (v > low)) & (v <= high) & v.is_finite()
        bad = df.filter(~inside)
        if bad.height:
            raise UserError(f"{name}: column {col} has {bad.height} value(s) outside {sampling_interval(col)} (first: "
                            f"{bad[col][0]}, key {bad['key'][0]!r}, run {bad['run'][0]})")
    bad = df.filter(pl.col("seed") < 0)
    if bad.height:
        raise UserError(f"{name}: column seed has {bad.height} negative value(s) (first: {bad['seed'][0]}, "
                        f"key {bad['key'][0]!r}, run {bad['run'][0]})")


def _check_cap(df: pl.DataFrame, name: str) -> None:
    """:class:`UserError` naming the first row whose length contradicts its cap: ``output_tokens`` above
    ``max_tokens`` (the server stops there), or a ``length`` finish below it. ``ltrsched label`` serves only
    prompts with room for ``max_tokens`` in the context (``labelling.run``), so the context never ends a
    response first: ``length`` is exactly ``max_tokens`` tokens. ``stop`` may be ``max_tokens`` tokens too
    (vLLM checks the EOS before the cap, so an EOS as the last allowed token is a stop)."""
    output, cap = pl.col("output_tokens"), pl.col("max_tokens")
    bad = df.with_row_index("row", offset=1).filter((output > cap) | ((pl.col("finish_reason") == "length") & (output < cap)))
    if bad.height:
        r = bad.row(0, named=True)
        why = ("more than its cap: the server stops at max_tokens" if r["output_tokens"] > r["max_tokens"] else
               "a length finish below the cap (`ltrsched label` serves only prompts with room for max_tokens)")
        raise UserError(f"{name}: row {r['row']} of {df.height} (key {r['key']!r}, run {r['run']}) has output_tokens "
                        f"{r['output_tokens']}, max_tokens {r['max_tokens']}, finish_reason {r['finish_reason']!r}: "
                        f"{why}; {bad.height} row(s) so")


def _check_one_model(df: pl.DataFrame, name: str) -> None:
    """:class:`UserError` unless every row is one model's (by content hash) at one output cap: a labels file is
    one served model's lengths (``ltrsched label`` writes nothing else), and a mix would train, evaluate or
    report on two models' (or caps') lengths as one, e.g. a ranker trained on one model's and tested on another's."""
    for column, what in (("model_sha256", "models"), ("max_tokens", "output caps (max_tokens)")):
        values = df[column].unique(maintain_order=True).to_list()
        if len(values) > 1:
            models = df.group_by(column, maintain_order=True).agg(pl.col("model").first())["model"].to_list()
            raise UserError(f"{name} mixes the labels of {len(values)} {what} ({', '.join(map(str, values[:2]))}"
                            + (f"; models {', '.join(models[:2])}" if column == "model_sha256" else "")
                            + "): a labels file holds one model's labels at one cap; label each into its own file")


def sharegpt_prompts() -> pl.DataFrame:
    """The ShareGPT first turns by key: ``key``, ``prompt``, ``chatgpt_output_tokens`` (the length of
    ChatGPT's reply in Llama-3 tokens, the built-in workload's label)."""
    from ltrsched.workloads.sharegpt import load_sharegpt_records

    return load_sharegpt_records().select(
        pl.col("source_id").alias("key"), "prompt", pl.col("output_tokens").alias("chatgpt_output_tokens"))


def attach_prompts(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """``df`` (labels rows) with ``prompt`` and ``chatgpt_output_tokens``: joined from the ShareGPT package by
    ``key`` (every key must be found), or, for labels that carry their text (labels of a prompts file, or a
    workload written from labels, e.g. by ``ltrsched predict``), that text and the ChatGPT lengths they carry
    (else null). Either way each text must hash to the row's ``prompt_sha256``."""
    if TEXT_COLUMN in df.columns:
        out = df if "chatgpt_output_tokens" in df.columns else df.with_columns(
            chatgpt_output_tokens=pl.lit(None, dtype=pl.Int64))
        where = "the file was edited after labelling"
    else:
        text = sharegpt_prompts()
        out = df.drop([c for c in ("chatgpt_output_tokens",) if c in df.columns]).join(text, on="key", how="left")
        lost = out.filter(pl.col("prompt").is_null())
        if lost.height:
            raise UserError(f"{name}: {lost.height} prompt key(s) are not in the installed ShareGPT package "
                            f"(first: {lost['key'][0]!r}); labels need the package they were made from")
        where = "the installed ShareGPT package is not the one labelled"
    digests = pl.Series([prompt_digest(t) for t in out["prompt"].to_list()], dtype=pl.Utf8)
    changed = out.filter(digests != out["prompt_sha256"])
    if changed.height:
        raise UserError(f"{name}: the text of {changed.height} prompt(s) differs from what was labelled "
                        f"(first: key {changed['key'][0]!r}); {where}")
    return out


def labels_workload(df: pl.DataFrame, name: str, split: str = "eval", run: str = MAIN_RUN,
                    num_requests: int | None = None, seed: int = 0, meta: dict | None = None):
    """A :class:`~ltrsched.workloads.schema.Workload` of one run's rows of a labels table in ``split``
    (``eval``, ``train`` or ``all``), in file order, with the prompt text joined; ``num_requests`` samples."""
    from ltrsched.workloads.schema import Workload, validate
    from ltrsched.workloads.selection import SPLITS, sample_rows

    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    before_penalty = PENALTY_COLUMN not in df.columns  # (made before the option: their workload stays as it was)
    df = check_labels(df, name)
    rows = df.filter(pl.col("run") == run)
    if split != "all":
        rows = rows.filter(pl.col("split") == split)
    if rows.height == 0:
        raise UserError(f"{name}: no {run!r} labels in the {split} split")
    rows = sample_rows(rows, num_requests, seed, f"{name} ({split} split)")
    penalty = run_penalty(rows, name)
    if before_penalty:  # (a validation keys its kept runs by the requests' table: an old file's is unchanged)
        rows = rows.drop(PENALTY_COLUMN)
    rows = attach_prompts(rows, name).with_columns(
        request_id=pl.arange(0, rows.height, dtype=pl.Int64), arrival_time=pl.lit(0.0))
    keys = rows["key"].to_list()  # (the rows are one run's and split's, sampled: an error names the key, not a row)
    validate(rows, name, lambda row: f"the row of key {keys[row]!r}")
    return Workload(rows, name, {**(meta or {}), "labels": True, "split": split, "run": run, PENALTY_COLUMN: penalty})


def run_penalty(rows: pl.DataFrame, name: str) -> float:
    """The one repetition penalty of a run's labels ``rows``: what an engine replaying them with the model's own EOS
    decodes with (``ltrsched.engine.runner.sampling_params``), so that its lengths are the labels' again.
    :class:`UserError` if the rows hold two (``ltrsched label`` serves a run with one)."""
    values = rows[PENALTY_COLUMN].unique(maintain_order=True).to_list()
    if len(values) > 1:
        raise UserError(f"{name}: the {rows['run'][0]!r} labels mix {len(values)} repetition penalties "
                        f"({', '.join(f'{v:g}' for v in values[:3])}): an engine replays a run with one; label "
                        "each into its own file")
    return float(values[0])
