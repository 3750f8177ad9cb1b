"""The run cache and the parallel runner.

Every :class:`RunSpec` has a result directory ``<out>/runs/<hash>/`` holding ``requests.parquet``,
``summary.json`` (+ ``steps.parquet``), written atomically by ``SimResult.save`` with ``summary.json``
last: a run whose ``summary.json`` exists is finished and a rerun skips it. Pending runs execute in a
``ProcessPoolExecutor`` (spawn context) over the local cores; each worker rebuilds workloads from the
spec and caches them per process. Results are written as each run finishes.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import polars as pl

from ltrsched.experiments.runspec import RunSpec
from ltrsched.workloads.schema import Workload

#: SDG (Table 2) thresholds: finished samples counted, and the time window [s].
SDG_SAMPLES = 1000
SDG_WINDOW_S = 300.0


def run_dir(out: str | Path, spec: RunSpec) -> Path:
    """Result directory of a run: ``<out>/runs/<hash>``."""
    return Path(out) / "runs" / spec.run_hash()


def is_done(out: str | Path, spec: RunSpec) -> bool:
    return (run_dir(out, spec) / "summary.json").is_file()


def load_summary(out: str | Path, spec: RunSpec) -> dict[str, Any]:
    """The run's summary dict (metrics, extra experiment metrics); raises FileNotFoundError if not run."""
    with open(run_dir(out, spec) / "summary.json") as fh:
        return json.load(fh)["summary"]


def load_requests(out: str | Path, spec: RunSpec) -> pl.DataFrame:
    return pl.read_parquet(run_dir(out, spec) / "requests.parquet")


@lru_cache(maxsize=16)
def _base_workload(name: str, num_requests: int | None, seed: int) -> Workload:
    from ltrsched.workloads import load_workload

    return load_workload(name, num_requests=num_requests, seed=seed)


@lru_cache(maxsize=32)
def build_workload(name: str, num_requests: int | None, seed: int, arrival: str, rate: float | None,
                   cv: float, duration: float | None) -> Workload:
    """The spec's workload with its arrival process applied (cached per process)."""
    from ltrsched.workloads import apply_arrivals

    return apply_arrivals(_base_workload(name, num_requests, seed), arrival, rate=rate, cv=cv, seed=seed,
                          duration=duration)


def experiment_metrics(requests: pl.DataFrame, steps: pl.DataFrame | None) -> dict[str, float]:
    """Metrics the paper's tables need beyond the simulator's summary.

    ``time_to_1000_finished`` [s]: when the 1,000th request finished, from the first arrival (NaN if
    fewer requests). ``finished_within_300s``: requests finished within 300 s of the first arrival.
    ``prefill_time_s`` [s] (with a step trace): each step's duration apportioned to its prefill tokens,
    summed (``duration * prefill_tokens / batched_tokens``).
    """
    start = float(requests["arrival_time"].min())
    finish = requests["finish_time"].to_numpy()
    finish = np.sort(finish[~np.isnan(finish)]) - start
    out = {
        "time_to_1000_finished": float(finish[SDG_SAMPLES - 1]) if len(finish) >= SDG_SAMPLES else float("nan"),
        "finished_within_300s": int(np.searchsorted(finish, SDG_WINDOW_S, side="right")),
    }
    if steps is not None and steps.height:
        tok = steps["num_batched_tokens"].to_numpy().astype(np.float64)
        pre = steps["num_prefill_tokens"].to_numpy().astype(np.float64)
        dur = steps["duration"].to_numpy()
        share = np.divide(pre, tok, out=np.zeros_like(pre), where=tok > 0)
        out["prefill_time_s"] = float((dur * share).sum())
        out["busy_time_s"] = float(dur.sum())
    return out


def execute_run(spec: RunSpec, out: str | Path) -> dict[str, Any]:
    """Build, score, simulate and save one run; returns its summary."""
    from ltrsched.experiments.scoring import attach_scores
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate

    policy = make_policy(spec.policy)
    wl = build_workload(spec.workload, spec.num_requests, spec.seed, spec.arrival, spec.rate, spec.cv,
                        spec.duration)
    wl, scoring_info = attach_scores(wl, spec.scoring, spec.seed)
    config = SimConfig(profile=spec.profile, max_num_batched_tokens=spec.max_num_batched_tokens,
                       max_num_seqs=spec.max_num_seqs, preemption=spec.preemption,
                       chunked_prefill=spec.chunked_prefill, record_steps=spec.record_steps,
                       stop_time=spec.stop_time)
    result = simulate(wl, policy, config)
    result.summary.update(experiment_metrics(result.requests, result.steps))
    for k, v in scoring_info.items():
        if k in ("kendall_tau", "accuracy"):
            result.summary[f"scoring_{k}"] = v
    result.summary["mean_output_tokens"] = float(result.requests["output_tokens"].mean())
    result.summary["mean_prompt_tokens"] = float(result.requests["prompt_tokens"].mean())
    result.meta.update(run_spec=spec.to_dict(), run_hash=spec.run_hash(), scoring_info=scoring_info)
    result.save(run_dir(out, spec))
    return result.summary


def _worker(spec_dict: dict[str, Any], out: str) -> tuple[str, dict[str, Any]]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    spec = RunSpec.from_dict(spec_dict)
    return spec.run_hash(), execute_run(spec, out)


@dataclass
class RunStats:
    """What a call to :func:`run_all` did."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.ran) + len(self.skipped)


def unique_specs(specs: Iterable[RunSpec]) -> list[RunSpec]:
    """Specs with duplicate hashes dropped (first kept)."""
    seen: dict[str, RunSpec] = {}
    for s in specs:
        seen.setdefault(s.run_hash(), s)
    return list(seen.values())


def run_all(specs: Iterable[RunSpec], out: str | Path, jobs: int | None = None, progress: bool = True,
            desc: str = "runs") -> RunStats:
    """Run every spec not already finished under ``out``; ``jobs`` worker processes (default: all cores).

    With one job (or one pending run) runs execute in this process. A failing run raises its error
    after the runs already under way have finished and been written.
    """
    from tqdm import tqdm

    out = Path(out)
    stats = RunStats()
    pending: list[RunSpec] = []
    for s in unique_specs(specs):
        if is_done(out, s):
            stats.skipped.append(s.run_hash())
        else:
            pending.append(s)
    # group runs sharing a workload so that each worker's workload cache hits
    pending.sort(key=lambda s: (s.workload, s.num_requests or 0, s.arrival, s.rate or 0.0, s.policy))
    jobs = max(1, jobs or os.cpu_count() or 1)
    bar = tqdm(total=len(pending), desc=desc, unit="run", disable=not progress or not pending)
    try:
        if jobs == 1 or len(pending) <= 1:
            for s in pending:
                execute_run(s, out)
                stats.ran.append(s.run_hash())
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=min(jobs, len(pending)), mp_context=ctx) as pool:
                futures = [pool.submit(_worker, s.to_dict(), str(out)) for s in pending]
                error: BaseException | None = None
                for fut in cf.as_completed(futures):
                    try:
                        run_hash, _ = fut.result()
                    except Exception as exc:  # re-raised below, after the others are written
                        if error is None:
                            error = exc
                            for f in futures:
                                f.cancel()
                        continue
                    stats.ran.append(run_hash)
                    bar.update(1)
                if error is not None:
                    raise error
    finally:
        bar.close()
    return stats
