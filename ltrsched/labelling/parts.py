"""Resumable labelling: each chunk's labels go to a part file in a directory beside ``--out``.

``OUT.parquet`` gets the part directory ``OUT.parquet.parts/``: a ``settings.json``
(:class:`~ltrsched.labelling.settings.LabelSettings`) and ``part-*.parquet`` files, each written
atomically (:mod:`ltrsched.atomic`) as soon as its chunk of prompts is labelled. A run that is killed keeps
every finished chunk (one stopped by Ctrl-C or an error writes its other finished prompts as a last part); a rerun with the same settings labels only the prompts no part holds, and the final
file is the concatenation. An exclusive lock (``.lock``) keeps two ``ltrsched label`` processes out of
one part directory. A part directory without part files (a run that labelled nothing) takes the new settings.
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
from ltrsched.workloads.labels import check_labels, label_schema

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
        """Every row the parts hold (one per run, key and prompt text, the first part's if two hold it)."""
        frames = []
        for path in sorted(self.directory.glob("part-*.parquet")):
            try:
                frames.append(check_labels(pl.read_parquet(path), str(path)).select(list(self.schema)))
            except Exception:  # damaged (cannot happen with atomic writes, but a disk can lose it)
                self.damaged.append(path.name)
                path.unlink(missing_ok=True)
        if not frames:
            return pl.DataFrame(schema=self.schema)
        return pl.concat(frames).unique(subset=["run", "key", "prompt_sha256"], keep="first", maintain_order=True)

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
        if recorded.is_file() and next(directory.glob("part-*.parquet"), None) is not None:
            try:
                theirs = LabelSettings.from_dict(json.loads(recorded.read_text()))
            except (ValueError, KeyError, TypeError):
                raise UserError(f"{recorded} is not a labels settings file; delete {directory} to start over") from None
            diff = settings.differences(theirs)
            if diff:
                raise UserError(f"{directory} holds labels made with other settings ({'; '.join(diff)}): use the same "
                                f"settings to resume, or another --out (or delete {directory}) to start over")
        else:
            atomic.write_text(recorded, strict_json.dumps(settings.to_dict(), indent=2) + "\n")
        yield PartStore(directory, settings)
