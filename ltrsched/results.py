"""The result of one serving run, shared by the simulator and the engine runner."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ltrsched import atomic, strict_json
from ltrsched.errors import UserError
from ltrsched.inputs import check_not_special
from ltrsched.metrics import format_replicas, format_summary, metric_counts

#: The files :meth:`RunResult.save` writes in a run directory.
RUN_FILES = ("requests.parquet", "steps.parquet", "summary.json")
#: The parquet files among :data:`RUN_FILES`: what ``plot cdf``, ``plot trace`` and :meth:`RunResult.load` read.
PARQUET_FILES = RUN_FILES[:2]
#: The key of a run's ``meta`` holding :func:`parquet_digests` of the parquet files :meth:`RunResult.save` wrote
#: (where it was asked to: ``save(..., digest_files=True)``, the run cache's runs).
FILES_DIGEST_KEY = "files_sha256"


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a regular file's bytes, read now (no cache: a file swapped since is seen). Raises OSError if
    it cannot be read, or is not a regular file (a pipe in its place would block the read for good)."""
    with open(path, "rb", opener=_regular_only) as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _regular_only(path: str, flags: int) -> int:
    fd = os.open(path, flags | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return fd


def parquet_digests(out_dir: str | Path) -> dict[str, str]:
    """File name -> :func:`file_sha256` of each of :data:`PARQUET_FILES` present in a run directory."""
    out = Path(out_dir)
    return {name: file_sha256(out / name) for name in PARQUET_FILES if (out / name).exists()}


@dataclass
class RunResult:
    """Outcome of one run, simulated (``ltrsched.sim``) or on the real engine (``ltrsched.engine``).

    Attributes:
        requests: one row per request (workload columns, timestamps [s], derived metrics; see
            :mod:`ltrsched.metrics`, plus ``max_idle_steps`` and ``num_preemptions``).
        summary: run-level summary (makespan, throughput, mean/P50/P90/P99 of each metric, steps...).
        steps: per-step trace, if recorded (start, duration [s], batch sizes, blocks).
        meta: workload name, policy spec and parameters, configuration, host.
        replicas: a cluster run's per-replica summaries (``ltrsched.sim.cluster``), else None.
    """

    requests: pl.DataFrame
    summary: dict[str, Any]
    steps: pl.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    replicas: list[dict[str, Any]] | None = None

    def table(self) -> str:
        from ltrsched.names import one_line

        # (a workload named by its file, "w\nx.parquet", split the title in two)
        # (an engine run has no profile: its title ended in an empty "| "; the engine is named on a line of its own)
        title = one_line(" | ".join(str(self.meta[k]) for k in ("workload", "policy", "profile") if self.meta.get(k)))
        # (a metric some finished requests lack, TPOT of one-token outputs, is noted under the table)
        counts = metric_counts(self.requests)
        if self.replicas is None:
            return format_summary(self.summary, title, counts)
        title += f" | {len(self.replicas)} replicas, router {self.meta.get('router', '')}"
        return format_summary(self.summary, title, counts) + "\n\n" + format_replicas(self.replicas)

    def save(self, out_dir: str | Path, digest_files: bool = False) -> Path:
        """Write ``requests.parquet`` (+ ``steps.parquet``, else remove an earlier run's), then ``summary.json``;
        each file appears whole and durable (:mod:`ltrsched.atomic`), ``summary.json`` last, so its presence
        marks a finished run. A failed write raises :class:`UserError` and leaves no temp file. ``digest_files``:
        record the parquet files' digests as written in ``meta`` (:data:`FILES_DIGEST_KEY`), for the run cache to
        tell a file edited or swapped since."""
        out = Path(out_dir)
        atomic.write_parquet(out / "requests.parquet", self.requests)
        # an earlier run's summary.json goes once its requests are replaced: a write that fails after this one (a full
        # disk at steps.parquet) left it beside this run's requests, and the directory loaded as one run of both
        (out / "summary.json").unlink(missing_ok=True)
        if self.steps is not None:
            atomic.write_parquet(out / "steps.parquet", self.steps)
        elif (out / "steps.parquet").is_file():  # an earlier run's steps there would be read as this run's
            (out / "steps.parquet").unlink()
        if digest_files:
            self.meta[FILES_DIGEST_KEY] = parquet_digests(out)
        record = {"summary": self.summary, "meta": self.meta}
        if self.replicas is not None:
            record["replicas"] = self.replicas
        text = strict_json.dumps(record, indent=2, default=str)  # undefined values are null (summarize)
        atomic.write_text(out / "summary.json", text)
        return out

    @classmethod
    def load(cls, out_dir: str | Path) -> "RunResult":
        """Read a directory written by :meth:`save`; a missing or damaged file raises :class:`UserError`."""
        out = Path(out_dir)
        for name in RUN_FILES:  # (a steps.parquet that is a pipe: `plot trace` waited on it for good)
            check_not_special(out / name, f"the run's {name}")
        try:
            data = read_summary_file(out / "summary.json")
            steps = pl.read_parquet(out / "steps.parquet") if (out / "steps.parquet").exists() else None
            requests = pl.read_parquet(out / "requests.parquet")
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            raise UserError(f"cannot read the run in {out}: {str(exc).splitlines()[0]}") from None
        return cls(requests, data["summary"], steps, data.get("meta", {}), data.get("replicas"))


def read_run_meta(out_dir: str | Path) -> Any:
    """The ``meta`` of the run :meth:`RunResult.save` wrote in ``out_dir`` (its ``summary.json``'s; ``{}`` if none),
    for a command that reads none of its tables (``plot trace`` reads its steps.parquet a batch at a time); a missing or
    damaged summary.json, or a run file that is a pipe or a device, raises :class:`UserError`, as :meth:`RunResult.load`
    does."""
    out = Path(out_dir)
    for name in RUN_FILES:
        check_not_special(out / name, f"the run's {name}")
    try:
        return read_summary_file(out / "summary.json").get("meta", {})
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the run in {out}: {str(exc).splitlines()[0]}") from None


def read_summary_file(path: str | Path) -> dict[str, Any]:
    """The ``{"summary": {...}, "meta": {...}}`` of a ``summary.json``; raises ValueError if it is empty,
    not JSON or not that shape (a damaged file), OSError if it cannot be read. An undefined value is None
    (``null``; the ``NaN`` an earlier version wrote too)."""
    with open(path, "rb") as fh:
        data = strict_json.loads(fh.read())  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
    if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
        raise ValueError(f"{path}: not a run summary")
    return data
