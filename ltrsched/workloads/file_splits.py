"""A file's own train/eval split: a ``.csv``'s or flat parquet's ``split`` column (in any case, spaces around it) or
a ``.jsonl`` request line's ``split`` key, each row's or line's ``train`` or ``eval`` (in any case); and by the same
rule a conversation record's: a ``.json``'s or ``.jsonl``'s record's ``split`` key, a conversations parquet's column
(:data:`~ltrsched.workloads.sharegpt.FILE_SPLIT`; the parse dropped it, where a request file's was read).

It is read only where a split is asked for (``load_workload(split="train"|"eval")``: ``ltrsched train``'s training and
held-out prompts, ``evaluate --split``, ``predict --split``), as a labels file's and the built-in ShareGPT's splits are;
a load that asks for none (``simulate``, ``sweep``: ``split`` None) and ``split="all"`` read every row, the column
unread, as before. A value that is neither (``test``, ``validation``, ``0``, null) is refused then in one line naming
the file, the column (key) and its row (line): which split is it? (``ltrsched train`` refused such a file: "has no
train/eval split ... a 'split' column of another file is not read".) A conversations file's every record is checked
so (:func:`record_splits`), those the paper's rules leave out too (a later chunk, one opening with the assistant's
turn: theirs were never checked, where the same value on a record used was refused).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ltrsched.errors import UserError
from ltrsched.workloads.file_suffix import file_suffix

#: The column (key) a file gives its own split under (a column in any case).
SPLIT_NAME = "split"
#: The splits a file's rows may name (in any case, spaces around them).
FILE_SPLITS = ("train", "eval")


def split_columns(columns) -> list[str]:
    """A table's split columns among ``columns`` (``split`` in any case, spaces around it), in its order."""
    return [c for c in columns if isinstance(c, str) and c.strip().lower() == SPLIT_NAME]


def split_column(columns, where: str) -> str | None:
    """The name of a table's split column among ``columns`` (``split`` in any case, spaces around it), or None.
    One-line :class:`UserError` naming ``where`` (the file) for two (``split`` and ``Split``: which is it?)."""
    found = split_columns(columns)
    if len(found) > 1:
        raise UserError(f"{where}: columns {' and '.join(repr(c) for c in found)} both give the split; keep one")
    return found[0] if found else None


def record_splits(path, name: str | None) -> tuple[list, object] | None:
    """Every record's own split of the conversations file ``path`` (its records that give no first turn too, which
    the parse does not keep), in the file's order, and how an error names record ``i`` (0-based): a ``.json``'s or
    ``.jsonl``'s records' ``split`` key (None where an object record has none; records that are no objects are not
    counted), a conversations parquet's column ``name`` (``"row 3 (id 'c2')"``); None where no record gives one."""
    from pathlib import Path

    from ltrsched.workloads.sharegpt import conversation_records, may_give_split

    path = Path(path)
    if name is None or not may_give_split(path):  # (a file whose bytes never name the key: not read again)
        return None
    if file_suffix(path) == ".parquet":
        columns = [c for c in ("id", "conversation_id") if c in pl.read_parquet_schema(path)][:1]
        table = pl.read_parquet(path, columns=[name, *columns])
        values = table[name].to_list()
        ids = table[columns[0]].cast(pl.String).to_list() if columns else [None] * len(values)
        numbers = list(range(1, len(values) + 1))
    else:
        records, _ = conversation_records(path)
        numbered = [(n, r) for n, r in enumerate(records, 1) if isinstance(r, dict)]
        if not any(SPLIT_NAME in r for _, r in numbered):
            return None
        values = [r.get(SPLIT_NAME) for _, r in numbered]
        ids = [str(r.get("id", r.get("conversation_id", ""))) for _, r in numbered]
        numbers = [n for n, _ in numbered]
    kind = "row" if file_suffix(path) == ".parquet" else "record"
    return values, lambda at: f"{kind} {numbers[at]:,}" + (f" (id {ids[at]!r})" if ids[at] else "")


@dataclass
class SplitCheck:
    """Every record's own split of a ``.json``'s or ``.jsonl``'s conversations, checked in the parse's one pass over
    them (:func:`~ltrsched.workloads.sharegpt.parse_sharegpt` calls :meth:`see` on each record, those it leaves out
    too) and kept beside its cache: where a split is asked for, the file is not read again (:func:`record_splits`
    read it again, 2.13 -> 2.78 s a load of 20,000 records). ``known``: whether it was filled (a parse cached before
    it was kept: :func:`record_splits` then reads the file)."""

    known: bool = False
    keyed: bool = False  #: whether a record gives the ``split`` key
    #: the first record (an object) whose split is no split, or gives none: (its value as an error shows it,
    #: :func:`shown_split`; its number, 1-based; its id, as :func:`record_splits` shows it)
    off: tuple | None = None

    def see(self, number: int, record) -> None:
        """Check record ``number`` (1-based; one that is no object is not counted, as :func:`record_splits`)."""
        if not isinstance(record, dict):
            return
        self.keyed = self.keyed or SPLIT_NAME in record
        value = record.get(SPLIT_NAME)
        if self.off is None and not (isinstance(value, str) and value.strip().lower() in FILE_SPLITS):
            self.off = (shown_split(value), number, str(record.get("id", record.get("conversation_id", ""))))

    def refuse_off(self, where: str) -> None:
        """:func:`split_mask`'s one-line :class:`UserError` (``where``: the file) for the first record whose split is
        no split, where a record gives one; nothing otherwise."""
        if self.keyed and self.off is not None:
            shown, number, rid = self.off
            raise off_split_error(where, "key", SPLIT_NAME, f"record {number:,}" + (f" (id {rid!r})" if rid else ""),
                                  shown)

    def to_json(self) -> dict:
        return {"keyed": self.keyed, "off": None if self.off is None else list(self.off)}

    @classmethod
    def from_json(cls, kept) -> SplitCheck:
        """A check kept by :meth:`to_json`; ValueError for anything else."""
        if not (isinstance(kept, dict) and set(kept) == {"keyed", "off"} and isinstance(kept["keyed"], bool) and (
                kept["off"] is None or isinstance(kept["off"], list) and len(kept["off"]) == 3
                and isinstance(kept["off"][0], str) and isinstance(kept["off"][1], int)
                and isinstance(kept["off"][2], str))):
            raise ValueError("not a kept split check")
        return cls(True, kept["keyed"], None if kept["off"] is None else tuple(kept["off"]))


def shown_split(value) -> str:
    """A split value as an error shows it: ``'test'``, ``0``, ``missing (null)``."""
    return "missing (null)" if value is None else repr(value)


def off_split_error(where: str, what: str, name: str, place: str, shown: str) -> UserError:
    """The one-line error for a value that is no split (``shown``: :func:`shown_split`) under the column or key
    (``what``) ``name`` of the file ``where``, in its row ``place`` (``"row 3"``, ``"record 2 (id 'c1')"``)."""
    rows = place.split()[0]
    return UserError(f"{where}: {what} {name!r} in {place} is {shown}, not a split: give "
                     f"{' or '.join(repr(s) for s in FILE_SPLITS)} on every {rows} (held-out ones are 'eval'), or "
                     f"drop the {what} to read every {rows} in both splits")


def split_mask(values: list, name: str, split: str, where: str, place, what: str = "column",
               any_in_split: bool = True) -> pl.Series:
    """Which rows of a file are in ``split`` (``train`` or ``eval``), by its split ``values`` (a value per row, as the
    file gives it, under the column or key ``name``). ``where`` is the file, ``place(i)`` the words for row ``i``
    (0-based): ``"row 3"``, ``"line 3"``. One-line :class:`UserError` for a value that is neither split (naming it
    and its row), or (``any_in_split``) for a ``split`` no row is in."""
    names = [v.strip().lower() if isinstance(v, str) else None for v in values]
    at = next((i for i, v in enumerate(names) if v not in FILE_SPLITS), None)
    if at is not None:
        raise off_split_error(where, what, name, place(at), shown_split(values[at]))
    mask = pl.Series(name, [v == split for v in names], dtype=pl.Boolean)
    if any_in_split and not mask.any():
        raise UserError(f"{where}: no {place(0).split()[0]}'s {what} {name!r} is {split!r} (every one is "
                        f"{names[0]!r}): give the {split} ones too")
    return mask
