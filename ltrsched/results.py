"""The result of one serving run, shared by the simulator and the engine runner."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ltrsched.metrics import format_summary


@dataclass
class RunResult:
    """Outcome of one run, simulated (``ltrsched.sim``) or on the real engine (``ltrsched.engine``).

    Attributes:
        requests: one row per request (workload columns, timestamps [s], derived metrics; see
            :mod:`ltrsched.metrics`, plus ``max_idle_steps`` and ``num_preemptions``).
        summary: run-level summary (makespan, throughput, mean/P50/P90/P99 of each metric, steps...).
        steps: per-step trace, if recorded (start, duration [s], batch sizes, blocks).
        meta: workload name, policy spec and parameters, configuration, host.
    """

    requests: pl.DataFrame
    summary: dict[str, Any]
    steps: pl.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        title = f"{self.meta.get('workload', '')} | {self.meta.get('policy', '')} | {self.meta.get('profile', '')}"
        return format_summary(self.summary, title)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``requests.parquet``, ``summary.json`` (+ ``steps.parquet``); each file appears whole."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files: list[tuple[Path, Path]] = []

        def stage(name: str) -> Path:
            tmp = out / f".{name}.tmp{os.getpid()}"
            files.append((tmp, out / name))
            return tmp

        self.requests.write_parquet(stage("requests.parquet"))
        if self.steps is not None:
            self.steps.write_parquet(stage("steps.parquet"))
        with open(stage("summary.json"), "w") as fh:
            json.dump({"summary": self.summary, "meta": self.meta}, fh, indent=2, default=str)
        for tmp, final in files:
            tmp.replace(final)
        return out

    @classmethod
    def load(cls, out_dir: str | Path) -> "RunResult":
        """Read a directory written by :meth:`save`."""
        out = Path(out_dir)
        with open(out / "summary.json") as fh:
            data = json.load(fh)
        steps = pl.read_parquet(out / "steps.parquet") if (out / "steps.parquet").exists() else None
        return cls(pl.read_parquet(out / "requests.parquet"), data["summary"], steps, data.get("meta", {}))
