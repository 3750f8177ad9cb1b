"""Resumable labelling: each chunk's labels go to a part file in a directory beside ``--out``.

``OUT.parquet`` gets the part directory ``OUT.parquet.parts/``: a ``settings.json``
(:class:`~ltrsched.labelling.settings.LabelSettings`) and ``part-*.parquet`` files, each written
atomically (:mod:`ltrsched.atomic`) as soon as its chunk of prompts is labelled. A run that is killed keeps
every finished chunk (one stopped by Ctrl-C, SIGTERM, SIGHUP or an error writes its other finished prompts as a last
part); a rerun with the same settings labels only the prompts no part holds, and the final
file is the concatenation. An exclusive lock (``.lock``) keeps two ``ltrsched label`` processes out of
one part directory. A part directory without part files (a run that labelled nothing) takes the new settings.
Each part's rows record the settings they were made with too (:meth:`LabelSettings.differences_in`): a part of other
settings (moved in from another run, or under a deleted settings.json) is refused, as is any other readable file named
like a part; only a file that is not parquet (damaged) is removed, its prompts labelled again.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Iterator

import polars as pl

from ltrsched import atomic, strict_json
from ltrsched.errors import UserError
from ltrsched.labelling.settings import LabelSettings
from ltrsched.workloads.labels import TEXT_COLUMN, check_labels, label_schema

SETTINGS_FILE = "settings.json"


def parts_dir(out: str | os.PathLike) -> Path:
    """The part directory of the labels file ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


class PartStore:
    """The part files of one labels file, opened with :func:`open_parts`."""

    def __init__(self, directory: Path, settings: LabelSettings):
        self.directory = directory
        self.settings = settings
        # (time and pid alone named a second run in one process within the same second like the first: its parts
        # replaced the first run's, whose labels were lost; the random token keeps every run's names its own)
        self._prefix = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(4)}"
        self._count = 0
        self.damaged: list[str] = []  # unreadable part files found (and removed: their prompts are labelled again)
        self.schema = label_schema(settings.keeps_text)

    def labelled(self) -> pl.DataFrame:
        """Every row the parts hold (one per run, key and prompt text, the first part's if two hold it). A part that
        is not a parquet file (damaged) is removed and listed in :attr:`damaged`; one-line :class:`UserError` for a
        part that cannot be read (an I/O error) or holds rows other than labels of these settings (kept as it is)."""
        frames = []
        for path in sorted(self.directory.glob("part-*.parquet")):
            try:
                table = pl.read_parquet(path)
            except pl.exceptions.PolarsError:  # damaged (cannot happen with atomic writes, but a disk can lose it)
                self.damaged.append(path.name)
                path.unlink(missing_ok=True)
                continue
            except OSError as exc:  # (a permission or I/O error is no damage: such a part was removed, its labels lost)
                raise UserError(f"cannot read the part file {path}: {exc.strerror or exc}") from None
            frames.append(self._checked(table, path))
        if not frames:
            return pl.DataFrame(schema=self.schema)
        return pl.concat(frames).unique(subset=["run", "key", "prompt_sha256"], keep="first", maintain_order=True)

    def _checked(self, table: pl.DataFrame, path: Path) -> pl.DataFrame:
        """``table``, the part file ``path``'s rows, in :attr:`schema`; one-line :class:`UserError` if they are not
        labels made with :attr:`settings`: a part of another run moved in, or one left under a deleted settings.json
        (such labels went into the labels file beside these settings'), or any other parquet file named like a part
        (it was removed as damaged, as was a part of the built-in prompts, without text, under a --prompts run)."""
        keep = f"move {path.name} out of {self.directory} to resume, or use another --out"
        try:
            rows = check_labels(table, str(path))
        except UserError as exc:
            raise UserError(f"{exc}: not a part file of these labels; {keep}") from None
        if self.settings.keeps_text and TEXT_COLUMN not in rows.columns:
            raise UserError(f"{path} holds labels of the built-in ShareGPT prompts (no prompt text), not of --prompts "
                            f"FILE's: {keep}")
        diff = self.settings.differences_in(rows)
        if diff:
            raise UserError(f"{path} holds labels made with other settings ({'; '.join(diff)}): {keep}")
        return rows.select(list(self.schema))

    def write(self, rows: list[dict]) -> Path:
        """Write one chunk's rows as a new part file (atomic, durable)."""
        self._count += 1
        path = self.directory / f"{self._prefix}-{self._count:05d}.parquet"
        return atomic.write_parquet(path, pl.DataFrame(rows, schema=self.schema))


@contextlib.contextmanager
def open_parts(out: str | os.PathLike, settings: LabelSettings) -> Iterator[PartStore]:
    """The part directory of ``out``, locked for this process, checked to hold labels of ``settings`` (a
    new one records them). One-line :class:`UserError` if another process holds it or its settings differ."""
    from ltrsched.experiments.runlock import run_lock

    directory = parts_dir(out)
    with run_lock(directory / ".lock", wait=False) as held:
        if not held:
            raise UserError(f"another `ltrsched label` is writing {directory}; wait for it or use another --out")
        for stale in directory.glob(".part-*.parquet.tmp*"):  # (a killed run's half-written part: never read, kept
            stale.unlink(missing_ok=True)                     # forever; no other process writes here under the lock)
        recorded = directory / SETTINGS_FILE
        store = PartStore(directory, settings)
        has_parts = next(directory.glob("part-*.parquet"), None) is not None
        if recorded.is_file() and has_parts:
            try:
                theirs = LabelSettings.from_dict(json.loads(recorded.read_text()))
            except (ValueError, KeyError, TypeError):
                raise UserError(f"{recorded} is not a labels settings file: delete it to resume (the part files' rows "
                                f"are checked against the settings), or delete {directory} to start over") from None
            diff = settings.differences(theirs)
            if diff:
                raise UserError(f"{directory} holds labels made with other settings ({'; '.join(diff)}): use the same "
                                f"settings to resume, or another --out (or delete {directory}) to start over")
        else:
            if has_parts:  # (settings.json deleted: the parts' rows tell what they were made with; checked first, as
                store.labelled()  # a settings.json of other settings would then refuse a resume with theirs)
            atomic.write_text(recorded, strict_json.dumps(settings.to_dict(), indent=2) + "\n")
        yield store
