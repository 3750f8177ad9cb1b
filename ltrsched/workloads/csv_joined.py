"""A ``.csv`` made of two files joined (``cat a.csv b.csv``): the header line repeats among the records. Its names
were read as values, and the error was the first column's "non-numeric 'arrival_time' in row N"."""

from __future__ import annotations

import polars as pl


def repeated_header_row(raw: pl.DataFrame) -> int | None:
    """The 0-based index of the first row of ``raw`` (a CSV read with its first line as the header) whose every field
    is its column's name (spaces around either ignored); None if no row repeats the header. A column read as numbers
    holds no name (the check costs nothing for a trace of numbers), and a header of one column is left to the
    separator's hint (:mod:`ltrsched.workloads.csv_separator`)."""
    if raw.height == 0 or raw.width < 2 or any(dtype != pl.String for dtype in raw.dtypes):
        return None
    same = pl.all_horizontal(
        pl.col(name).cast(pl.String).str.strip_chars().eq(name.strip()).fill_null(False) for name in raw.columns)
    hits = raw.select(same).to_series()
    return int(hits.arg_max()) if hits.any() else None


def joined_files_error(path, row: int) -> str:
    """The one-line error for ``path``'s header repeated at ``row`` (its 1-based record number after the header)."""
    return (f"{path}: the header line repeats at row {row} (the files were joined, header and all?); remove the "
            "repeated header line (join them with `tail -n +2` for every file after the first)")
