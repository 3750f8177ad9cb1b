"""Where each request of a workload read from a file is in that file, for the messages that name a request.

A loader numbers a file's rows as it reads them (a ``.csv``'s record after the header, a parquet's row, a
``.jsonl``'s line, a conversations file's record), then checks, selects and samples them: the table's row numbers
then differ from the file's (``-n`` shuffles them; blank lines, failed requests and the paper's rules leave rows out).
The file's numbers travel in the workload's ``meta`` (:data:`FILE_ROWS`), keyed by request id, never as a column:
the results and their parquet files keep the columns they had.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Key of a workload's ``meta`` holding its :class:`FileRows` (a workload read from a file).
FILE_ROWS = "file_rows"
#: What a file's places are called: a ``.csv``'s or parquet's row, a ``.jsonl``'s line, a conversation record.
UNITS = ("row", "line", "record")


@dataclass(frozen=True)
class FileRows:
    """Each request's place in its file, by request id.

    Attributes:
        ids: the requests' ids, ascending (int64).
        places: ``ids[k]``'s place in the file, 1-based (int64).
        unit: what a place is called, one of :data:`UNITS`.
    """

    ids: np.ndarray
    places: np.ndarray
    unit: str

    @classmethod
    def of(cls, ids, places, unit: str) -> "FileRows":
        """The places ``places`` of the requests ``ids`` (two sequences of the same length, in any order)."""
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        ids, places = np.asarray(ids, dtype=np.int64), np.asarray(places, dtype=np.int64)
        if ids.shape != places.shape:
            raise ValueError(f"{len(ids)} ids but {len(places)} places")
        order = np.argsort(ids, kind="stable")
        return cls(ids[order], places[order], unit)

    def place(self, request_id: int) -> str | None:
        """Request ``request_id``'s place, e.g. ``"row 20"``, ``"line 3"``; None for an id it does not hold."""
        at = int(np.searchsorted(self.ids, request_id))
        if at < len(self.ids) and self.ids[at] == request_id:
            return f"{self.unit} {int(self.places[at])}"
        return None


def file_rows(meta) -> FileRows | None:
    """The :class:`FileRows` of a workload's ``meta`` (None where it holds none: a built-in, a frame made in Python)."""
    rows = meta.get(FILE_ROWS) if isinstance(meta, dict) else None
    return rows if isinstance(rows, FileRows) else None


def request_named(request_id: int, place: str | None = None, source: str | None = None) -> str:
    """A request as the messages that refuse one name it, in the simulator's, the engine's and the loaders' words
    alike: ``request 3 in row 20 of long.csv`` (its id, its ``place``, e.g. :meth:`FileRows.place`, and ``source``,
    the file or workload it is in, named only with a place); ``request 3`` where no place is known."""
    if not place:
        return f"request {request_id}"
    return f"request {request_id} in {place}" + (f" of {source}" if source else "")

