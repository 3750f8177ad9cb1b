"""The workload: a table of request records (polars), saved and loaded as parquet.

One row per request. Required columns:

======================  =========  ==========================================================
column                  dtype      meaning [unit]
======================  =========  ==========================================================
request_id              Int64      stable id, unique within the workload, in [0, 10,000,000)
prompt_tokens           Int64      prompt length [tokens], >= 1
output_tokens           Int64      output length to generate [tokens], >= 1
arrival_time            Float64    arrival [s] from the start of the run, >= 0
======================  =========  ==========================================================

Optional columns: ``prompt`` (Utf8, the prompt text), ``score`` (Float64, predictor score, higher =
shorter expected output), ``po_estimate`` (Float64, the served model's own length estimate [tokens]),
``predicted_length`` (Float64, a predicted output length [tokens], e.g. a classifier's bucket).
Other columns (e.g. ``source_id``, ``score_<name>``) travel along untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from ltrsched.errors import UserError
from ltrsched.workloads import count_values
from ltrsched.workloads.count_values import MAX_TOKENS
from ltrsched.workloads.number_text import text_numbers

REQUIRED_COLUMNS: dict[str, pl.DataType] = {
    "request_id": pl.Int64,
    "prompt_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "arrival_time": pl.Float64,
}
#: Required columns holding whole numbers (ids, token counts); a float column must hold integral values.
INTEGER_COLUMNS = ("request_id", "prompt_tokens", "output_tokens")
#: The token counts [tokens]: a value that is no count is refused in one line, whatever the container
#: (:func:`~ltrsched.workloads.count_values.count_error`).
COUNT_COLUMNS = ("prompt_tokens", "output_tokens")
#: request ids must lie in [0, MAX_REQUEST_ID): policies index per-request arrays by id
#: (:class:`ltrsched.policies.id_array.IdArray`, up to 25 bytes per id for MLFQ: 250 MB at the bound).
MAX_REQUEST_ID = 10_000_000
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {
    "prompt": pl.Utf8,
    "score": pl.Float64,
    "po_estimate": pl.Float64,
    "predicted_length": pl.Float64,
}
NUMERIC_OPTIONAL_COLUMNS = ("score", "po_estimate", "predicted_length")
#: The column holding the system text a prompt begins with (``""`` or null: none), for an engine serving the text to
#: send as the system turn: in a conversation file's parsed first turns (:mod:`ltrsched.workloads.sharegpt`) and in
#: labels made from a prompts file (:mod:`ltrsched.workloads.labels`).
SYSTEM_COLUMN = "system_prompt"
#: What joins a system text and the user's prompt in a prompt's text: a blank line.
SYSTEM_SEPARATOR = "\n\n"
#: The names of a reply's text (a ``.csv``'s columns in any case, a ``.jsonl``'s keys as written; a conversation
#: record's key beside a user turn alone), whose Llama-3 count is the output length where the file gives no output
#: count (:data:`LENGTH_NAMES`); ``completion`` is OpenAI's legacy fine-tuning files' (``{"prompt", "completion"}``).
REPLY_NAMES = ("generated", "response", "completion")
#: Names token counts go by in other tools' files, ours first, matched in any case: a ``.csv`` reads them all (e.g.
#: vidur's ``num_prefill_tokens``, Azure's ``ContextTokens``); a parquet reads the others where it lacks ours
#: (:func:`length_columns`); a ``.jsonl`` line's keys as written (:data:`OTHER_LENGTH_KEYS`). BurstGPT's ``Request
#: tokens`` and ``Response tokens`` too (a ``Response tokens`` of 0 marks a failed request there:
#: :func:`ltrsched.workloads.loaders.drop_failed_requests`); OpenAI's usage records' ``completion_tokens`` (beside
#: ``prompt_tokens``, ours), vLLM's benchmark ``input_len``/``output_len``, ``num_prompt_tokens``/``num_output_tokens``
#: and Mooncake's ``input_length``/``output_length`` (whose ``timestamp`` is milliseconds:
#: :data:`ltrsched.workloads.loaders.MOONCAKE_KEYS`). Every one counts tokens; names that may count characters or
#: words (``prompt_length``, ``response_length``) are not read.
LENGTH_NAMES = {
    "prompt_tokens": ("prompt_tokens", "num_prefill_tokens", "prompt_len", "input_tokens", "contexttokens",
                      "request tokens", "input_len", "input_length", "num_prompt_tokens"),
    "output_tokens": ("output_tokens", "num_decode_tokens", "output_len", "generated_tokens", "generatedtokens",
                      "response tokens", "completion_tokens", "output_length", "num_output_tokens"),
}
#: The names of :data:`LENGTH_NAMES` other than ours -> ours: a ``.jsonl`` line's keys read as its counts (as
#: written, in lower case).
OTHER_LENGTH_KEYS = {name: ours for ours, names in LENGTH_NAMES.items() for name in names if name != ours}
#: BurstGPT's count names as its files write them, read as ``.jsonl`` keys too (keys match as written: a BurstGPT
#: trace saved as JSON Lines, ``Request tokens``/``Response tokens``, was refused, "write 'request tokens'").
OTHER_LENGTH_KEYS.update({"Request tokens": "prompt_tokens", "Response tokens": "output_tokens"})
#: A column of our runs' ``requests.parquet`` (the simulator's and the engine's) named as another tool's output
#: count: the tokens the run generated, beside the request's ``output_tokens``. Such a file replayed as a workload
#: reads ``output_tokens``; beside ours it is not a second name for the count (:func:`length_columns`).
RUN_RESULT_COUNTS = ("generated_tokens",)


def length_columns(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """``df`` (a parquet's table) with a token-count column under another tool's name (:data:`LENGTH_NAMES`, in any
    case: ``input_tokens``, ``num_decode_tokens``, ``Prompt_Tokens``) renamed to ours, where it has none of ours: it
    travelled along unread, and the counts were taken from the text (or the table refused as "missing column
    prompt_tokens"). One-line :class:`UserError` naming ``name`` (the file) if it has two such names for one count,
    ours among them (``prompt_tokens`` beside ``input_len``: ours was read, silently, whatever the other held), as a
    ``.csv``'s and a ``.jsonl``'s are: which holds it? (Our runs' ``generated_tokens`` beside ``output_tokens`` is
    no second name: :data:`RUN_RESULT_COUNTS`.)"""
    renames = {}
    for ours, names in LENGTH_NAMES.items():
        found = [c for c in df.columns if c.strip().lower() in names]
        if ours in df.columns:
            found = [c for c in found if c == ours or c.strip().lower() not in RUN_RESULT_COUNTS]
            if len(found) > 1:
                raise UserError(f"{name}: columns {' and '.join(repr(c) for c in found)} "
                                f"{'both' if len(found) == 2 else 'all'} give the {ours}; which does? keep one "
                                f"(drop or rename the other{'s' if len(found) > 2 else ''})")
            continue
        if len(found) > 1:
            raise UserError(f"{name}: columns {' and '.join(repr(c) for c in found)} both give the {ours}; which "
                            "does? keep one (drop or rename the other)")
        if found:
            renames[found[0]] = ours
    return df.rename(renames) if renames else df


def as_polars(table, name: str = "workload") -> pl.DataFrame:
    """``table`` as a polars DataFrame: a polars frame as is, a pandas frame converted column by column through numpy
    (no pyarrow needed, as ``pl.from_pandas`` does; pandas' missing values, NaN and ``pd.NA``, become nulls).
    :class:`TypeError` naming what to pass for anything else (a dict of columns failed with an AttributeError)."""
    if isinstance(table, pl.DataFrame):
        return table
    kind = type(table)
    if kind.__name__ == "DataFrame" and kind.__module__.split(".")[0] == "pandas":
        names = [str(c) for c in table.columns]
        if len(set(names)) < len(names):
            raise UserError(f"{name}: the pandas frame has repeated column names "
                            f"({', '.join(sorted({c for c in names if names.count(c) > 1}))})")
        columns = {}
        for col in table.columns:
            values = table[col]
            if values.dtype.kind in "iufb" and not values.isna().any():
                columns[str(col)] = pl.Series(str(col), values.to_numpy())
            else:  # (text, nullable ints, NaN: as Python values, missing ones None)
                columns[str(col)] = pl.Series(str(col), values.to_numpy(dtype=object, na_value=None).tolist(),
                                              strict=False)
        return pl.DataFrame(columns)
    raise TypeError(f"Workload(df): df must be a polars DataFrame (or a pandas one), not {kind.__name__}"
                    + ("; pl.DataFrame(columns) makes one from a dict of columns" if isinstance(table, dict) else ""))


@dataclass
class Workload:
    """A validated request table plus a name and free-form provenance notes.

    ``df`` is checked (:func:`validate`) when the workload is made and whenever it is assigned (``w.df = frame``
    raises :class:`UserError` for a bad frame: an output of 0 tokens then ended a simulation as "unfinished
    requests"); :meth:`with_df` makes a new workload from a frame. ``df`` may be a polars or a pandas DataFrame
    (:func:`as_polars`). Reading ``w.df`` hands out a copy of the checked frame (``DataFrame.clone``: its columns
    shared, ~1.5 us), so that polars' in-place changes (``w.df.replace_column(...)``, ``w.df[0, "output_tokens"] =
    0``, ``w.df.columns = [...]``) change the copy, never the workload, and cannot bypass the checks (an output of 0
    tokens so written reached the simulator); to change a workload, assign the changed frame (``w.df = frame``)."""

    df: pl.DataFrame
    name: str = "workload"
    meta: dict = field(default_factory=dict)

    def __setattr__(self, attr: str, value) -> None:
        if attr == "df":  # kept as _df (the checked frame), read through __getattr__ as a copy
            if "name" in self.__dict__:  # (__init__ sets df before name: __post_init__ checks it)
                value = validate(as_polars(value, self.name), self.name)
            attr = "_df"
        object.__setattr__(self, attr, value)

    def __getattr__(self, attr: str):  # (called only for what the instance and its class lack: df)
        if attr == "df" and "_df" in self.__dict__:
            return self.__dict__["_df"].clone()
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __post_init__(self) -> None:
        self.df = self._df  # (checked by __setattr__, now that the name the errors give is set)

    def __len__(self) -> int:
        return self._df.height

    @property
    def has_text(self) -> bool:
        return self.has_column("prompt")

    def has_column(self, name: str) -> bool:
        """True if ``name`` exists and holds at least one non-null value."""
        return name in self._df.columns and self._df[name].null_count() < self._df.height

    def save(self, path: str | Path) -> Path:
        """Write as parquet, atomically and durably (:mod:`ltrsched.atomic`); :class:`UserError` on failure."""
        from ltrsched import atomic

        return atomic.write_parquet(path, self._df)

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> "Workload":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"workload file not found: {path}")
        try:
            df = pl.read_parquet(path)
        except Exception as exc:
            raise UserError(f"cannot read workload {path}: {type(exc).__name__}: {exc}") from None
        return cls(df, name or path.stem)

    def policy_columns(self, extra_output_tokens: int = 0) -> dict[str, np.ndarray]:
        """What :meth:`ltrsched.policies.Policy.prepare` receives: ``request_id``, ``arrival_time`` [s],
        ``prompt_tokens``, ``output_tokens`` (served: the workload's plus ``extra_output_tokens``) [tokens],
        and ``score``, ``po_estimate``, ``predicted_length`` (NaN where missing)."""
        df = self._df

        def opt(col: str) -> np.ndarray:
            if col not in df.columns:
                return np.full(df.height, np.nan)
            return df[col].cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(np.float64, copy=True)

        columns = {
            "request_id": df["request_id"].to_numpy().astype(np.int64),
            "arrival_time": df["arrival_time"].to_numpy().astype(np.float64),
            "prompt_tokens": df["prompt_tokens"].to_numpy().astype(np.int64),
            "output_tokens": df["output_tokens"].to_numpy().astype(np.int64) + int(extra_output_tokens),
            "score": opt("score"),
            "po_estimate": opt("po_estimate"),
            "predicted_length": opt("predicted_length"),
        }
        for values in columns.values():  # read-only, as the simulator's (a policy writing into them fails alike)
            values.flags.writeable = False
        return columns

    def with_df(self, df: pl.DataFrame, **meta) -> "Workload":
        return Workload(df, self.name, {**self.meta, **meta})


def first_non_numeric(col: pl.Series) -> list:
    """``[value]``: the first non-null value of a non-numeric column that does not read as a number, for an error
    to show (a column of text holding ``'10'`` and ``'abc'`` showed ``'10'``); its first value where all read as
    numbers (e.g. Booleans); ``[]`` where all are null."""
    row = first_non_numeric_row(col)
    return [] if row is None else col.slice(row, 1).to_list()  # (a list's row: a Series, many lines)


def first_non_numeric_row(col: pl.Series) -> int | None:
    """The row (0-based) of :func:`first_non_numeric`'s value, None where every value is null. Text that reads as
    NaN (``nan``, which polars leaves as text where it reads ``NaN`` as a number) is no number (a ``.csv`` column of
    ``3`` and ``nan`` showed ``'3'``, row 1)."""
    shown = col.is_not_null()
    if col.dtype == pl.String:
        number = col.str.strip_chars().cast(pl.Float64, strict=False)
        unread = shown & (number.is_null() | number.is_nan()).fill_null(True)
        shown = unread if unread.any() else shown
    return int(shown.arg_true()[0]) if shown.any() else None


def _row(row_name: Callable[[int], str] | None, row: int) -> str:
    """``row`` (0-based) of a table as an error names it: ``row_name(row)``, by default ``"row {row + 1}"``."""
    return row_name(row) if row_name is not None else f"row {row + 1}"


def _count_error(count_names: dict[str, str]) -> Callable:
    """:func:`~ltrsched.workloads.count_values.count_error` naming a count column by the file's own name
    (``count_names``: ours -> the file's), the zero-output hint kept for the output count under any name."""
    return lambda name, col, value, where: count_values.count_error(name, count_names.get(col, col), value, where,
                                                                    output=col == "output_tokens")


def validate(df: pl.DataFrame, name: str = "workload", row_name: Callable[[int], str] | None = None,
             count_names: dict[str, str] | None = None) -> pl.DataFrame:
    """Check and normalise a request table; raise :class:`UserError` naming the first problem, and for a value, the
    first row that holds it: ``row_name(row)`` (``row`` 0-based), by default ``"row {row + 1}"`` (a loader names the
    file's own row or line: :func:`ltrsched.workloads.loaders.load_workload`). A count's error names its column by
    ``count_names`` (ours -> the file's own name, e.g. ``input_len``, as a ``.jsonl``'s names the line's key), else
    by ours."""
    count_error = _count_error(count_names or {})
    if df.height == 0:
        raise UserError(f"{name}: the workload is empty")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{name}: missing column(s) {', '.join(missing)}; have {', '.join(df.columns)}")
    at = lambda mask: _row(row_name, int(mask.arg_true()[0]))  # noqa: E731  (the first row a mask marks)
    df = df.with_columns(request_ids(df["request_id"], name, row_name))
    decimals = [c for c in (*REQUIRED_COLUMNS, *NUMERIC_OPTIONAL_COLUMNS)
                if c in df.columns and df.schema[c].is_decimal()]
    if decimals:  # (a parquet's Decimal counts cast to Int64 truncated: 3.50 tokens were 3, silently)
        df = df.with_columns(pl.col(decimals).cast(pl.Float64))
    for col in (*REQUIRED_COLUMNS, *NUMERIC_OPTIONAL_COLUMNS):  # a Boolean column would cast to 1/0
        dtype = df.schema.get(col)
        if dtype is not None and dtype != pl.Null and not dtype.is_numeric():
            row, first = first_non_numeric_row(df[col]), first_non_numeric(df[col])
            if col in COUNT_COLUMNS and dtype == pl.Boolean and first:  # (a value, as a .jsonl's true: one line)
                raise UserError(count_error(name, col, first[0], _row(row_name, row)))
            raise UserError(f"{name}: column {col} has non-numeric values ({dtype}"
                            + (f", first: {first[0]!r}) in {_row(row_name, row)}" if first else ")")
                            + "; it must hold numbers")
    text = df.schema.get("prompt")  # numbers would cast to text ("17") and be scored as prompts
    if text is not None and not isinstance(text, (pl.String, pl.Categorical, pl.Enum, pl.Binary, pl.Null)):
        first = df["prompt"].drop_nulls().head(1).to_list()
        row = int(df["prompt"].is_not_null().arg_max()) + 1
        raise UserError(f"{name}: column prompt holds {text}" + (f" values (first: {first[0]!r}, row {row})" if first
                                                                 else "") + ", not text; it must hold the prompt text")
    for col in INTEGER_COLUMNS:
        if col in df.columns and (df.schema[col].is_float() or df.schema[col].is_integer()):
            # (inf, 1e23 and 2**64 - 1 are "integral": the cast to Int64 below failed with polars' message,
            # "conversion from `f64` to `i64` failed in column 'prompt_tokens' for 1 out of 1 values: [inf]"; a
            # parquet's Int64 2**60 was read as a count, where a .csv's and a .jsonl's are refused)
            # (an integer compared as itself: as a float, 2**53 + 1 was 2**53, and read, where a .jsonl refuses it)
            exact = df[col].cast(pl.Int128) if df.schema[col].is_integer() else None  # (any width, unsigned too)
            inside = ((exact <= MAX_TOKENS) & (exact >= -MAX_TOKENS) if exact is not None
                      else df[col].cast(pl.Float64).abs() <= MAX_TOKENS)
            huge = (df[col].is_not_null() & ~inside).fill_null(True)
            if huge.any() and col in COUNT_COLUMNS:  # (the same line as every container's: count_error)
                raise UserError(count_error(name, col, df[col].filter(huge)[0], at(huge)))
            if huge.any():
                raise UserError(f"{name}: column {col} has {huge.sum()} value(s) that are not finite or beyond "
                                f"2**53 (first: {df[col].filter(huge)[0]}) in {at(huge)}; it must hold whole numbers")
        if col in df.columns and df.schema[col].is_float():
            bad = (df[col].is_not_null() & (df[col] != df[col].floor())).fill_null(False)
            if bad.any() and col in COUNT_COLUMNS:
                raise UserError(count_error(name, col, df[col].filter(bad)[0], at(bad)))
            if bad.any():
                raise UserError(f"{name}: column {col} has {bad.sum()} non-integer value(s) (first: "
                                f"{df[col].filter(bad)[0]}) in {at(bad)}")
    casts = []
    for col, dtype in {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}.items():
        if col in df.columns and df.schema[col] != dtype:
            casts.append(pl.col(col).cast(dtype, strict=True))
    if casts:
        try:
            df = df.with_columns(casts)
        except Exception as exc:
            raise UserError(f"{name}: a column has the wrong type: {exc}".splitlines()[0]) from None
    for col in REQUIRED_COLUMNS:
        if df[col].null_count() and col in COUNT_COLUMNS:  # (a .jsonl's null said "got None", a table's "missing")
            raise UserError(count_error(name, col, None, at(df[col].is_null())))
        if df[col].null_count():
            raise UserError(f"{name}: column {col} has {df[col].null_count()} missing value(s), the first in "
                            f"{at(df[col].is_null())}")
    for col in COUNT_COLUMNS:
        bad = df[col] < 1
        if bad.any():
            raise UserError(count_error(name, col, df[col].filter(bad)[0], at(bad)))
    bad = ~df["arrival_time"].is_finite() | (df["arrival_time"] < 0)
    if bad.any():
        raise UserError(f"{name}: {bad.sum()} request(s) with a negative or non-finite arrival_time (first: "
                        f"{df['arrival_time'].filter(bad)[0]}) in {at(bad)}")
    _check_predictor_columns(df, name, row_name)
    return df


def request_ids(ids: pl.Series, name: str, row_name: Callable[[int], str] | None = None) -> pl.Series:
    """``ids`` (a table's ``request_id`` column, as given: integers, integral floats or integer text, e.g. a CSV's)
    as Int64; one-line :class:`UserError` naming the first row whose id is missing, not a whole number, outside
    [0, MAX_REQUEST_ID), or an earlier row's (the one place workload ids are checked, for every file format).
    The error names ``name`` and ``row_name(row)`` (``row`` 0-based), by default ``"row {row + 1}"``."""
    row_name = row_name or (lambda row: f"row {row + 1}")
    dtype = ids.dtype
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        number = text_numbers(ids)[0]  # (by the rule every container's numbers as text are read by: "7.0" too)
        whole = (number.is_finite() & (number == number.floor())).fill_null(False) if number.dtype.is_float() \
            else number.is_not_null()
    elif dtype.is_integer():
        number, whole = ids, ids.is_not_null()
    elif dtype.is_float() or dtype.is_decimal():  # (a Decimal 1.00 was "not a whole number")
        ids = ids.cast(pl.Float64)
        whole = (ids.is_finite() & (ids == ids.floor())).fill_null(False)
        number = ids
    else:  # e.g. Boolean (True would cast to 1) or a list: no row holds an id (a list column's comparison with
        # 0 below was a NotImplementedError traceback)
        number, whole = pl.Series([None] * ids.len(), dtype=pl.Int64), pl.Series([False] * ids.len())
    missing = ids.is_null()
    inside = (whole & (number >= 0) & (number < MAX_REQUEST_ID)).fill_null(False)
    checked = pl.Series("request_id", number.filter(inside)).cast(pl.Int64)
    repeat = ~checked.is_first_distinct()
    problems = []  # (row, what is wrong there)
    if missing.any():
        problems.append((int(missing.arg_true()[0]), "no request_id"))
    if (~whole & ~missing).any():
        row = int((~whole & ~missing).arg_true()[0])
        value = ids[row]
        value = value.to_list() if isinstance(value, pl.Series) else value  # (a list's row: a Series, many lines)
        problems.append((row, f"request_id {value!r} is not a whole number"))
    if (whole & ~inside).any():  # -1 read another request's policy state; 10**15 was a MemoryError traceback
        row = int((whole & ~inside).arg_true()[0])
        problems.append((row, f"request_id {number[row]} is outside [0, {MAX_REQUEST_ID:,}): policies keep "
                              "per-request state in arrays indexed by the id; renumber the requests, or drop the "
                              "column to number them 0, 1, ..."))
    if repeat.any():
        rows = inside.arg_true()
        at = int(repeat.arg_true()[0])
        earlier = int(rows[int((checked == checked[at]).arg_true()[0])])
        problems.append((int(rows[at]), f"request_id {checked[at]} is {row_name(earlier)}'s too; request ids "
                                         "must be unique"))
    if problems:
        row, what = min(problems)
        raise UserError(f"{name}: {row_name(row)}: {what}")
    return checked


def _check_predictor_columns(df: pl.DataFrame, name: str, row_name: Callable[[int], str] | None = None) -> None:
    """Predictor columns may be missing (null/NaN: the policy fills them) but not infinite; the length
    estimates (``po_estimate``, ``predicted_length`` [tokens]) may not be negative. Errors name the first such row
    (:func:`_row`)."""
    for col in ("score", "po_estimate", "predicted_length"):
        if col not in df.columns:
            continue
        values = df[col]
        bad = (values.is_infinite() | ((values < 0) if col != "score" else False)).fill_null(False)
        if bad.any():
            what = "non-finite" if col == "score" else "negative or non-finite"
            raise UserError(f"{name}: column {col} has {bad.sum()} {what} value(s) (first: {values.filter(bad)[0]}) "
                            f"in {_row(row_name, int(bad.arg_true()[0]))}")
