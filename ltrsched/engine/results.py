"""Turn the adapter's per-request arrays and step log into a :class:`RunResult` (the simulator's schema)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np
import polars as pl

from ltrsched.engine.live_table import RESULT_COLUMNS
from ltrsched.metrics import request_metrics, summarize
from ltrsched.policies.base import Policy
from ltrsched.results import RunResult
from ltrsched.workloads.schema import Workload


def engine_result(workload: Workload, policy: Policy, scheduler: Any, host: str, config: Any,
                  wall_time_s: float, output_cap: int | None = None, **meta: Any) -> RunResult:
    """The run's :class:`RunResult`: one row per workload request (in workload order), as the simulator
    writes it, plus the adapter's step log as ``steps``.

    With ``output_cap`` the model stopped at its own EOS (at most ``output_cap`` tokens): ``output_tokens``
    (and ``served_output_tokens``) are then what the engine generated, the workload's lengths are kept as
    ``label_output_tokens``, and the summary counts ``num_capped`` (requests that generated ``output_cap``
    tokens) and ``num_label_mismatches`` (finished requests whose length differs from the label)."""
    cols = scheduler.table.results()
    got = pl.DataFrame({"request_id": cols["request_id"], "served_output_tokens": cols["served_output_tokens"],
                        **{c: cols[c] for c in RESULT_COLUMNS}})
    # a workload that already has the run's columns (an earlier run's requests.parquet replayed) gets this run's
    # values, as in the simulator (the join kept the earlier run's and failed with a DuplicateError traceback)
    base = workload.df.drop([c for c in ("prompt", *got.columns) if c in workload.df.columns and c != "request_id"])
    df = base.join(got, on="request_id", how="left")
    df = df.select(base.columns + ["served_output_tokens", "generated_tokens", "first_scheduled_time", "first_token_time",
                                   "finish_time", "max_token_gap", "max_idle_steps", "num_preemptions", "run_time"])
    if output_cap is not None:
        df = df.with_columns(label_output_tokens=pl.col("output_tokens"),
                             output_tokens=pl.col("generated_tokens"), served_output_tokens=pl.col("generated_tokens"))
    requests = request_metrics(df)
    finished = requests.filter(pl.col("finish_time").is_not_null() & pl.col("finish_time").is_not_nan())
    summary: dict[str, Any] = summarize(finished)
    steps = scheduler.log.frame()
    plugin = steps["plugin_s"].to_numpy() if steps.height else np.zeros(1)
    summary.update(
        num_finished=finished.height,
        steps=steps.height,
        busy_time=float(steps["duration"].sum()) if steps.height else 0.0,
        num_preemptions=int(requests["num_preemptions"].fill_null(0).sum()),
        peak_blocks_in_use=int(steps["blocks_in_use"].max()) if steps.height else 0,
        num_gpu_blocks=scheduler.limits.num_gpu_blocks,
        mismatched_steps=int((steps["mismatches"] > 0).sum()) if steps.height else 0,
        plugin_overhead_mean_s=float(plugin.mean()),
        plugin_overhead_p99_s=float(np.quantile(plugin, 0.99)),
        wall_time_s=wall_time_s,
    )
    if output_cap is not None:
        summary.update(
            output_cap=output_cap,
            num_capped=int((finished["output_tokens"] >= output_cap).sum()),
            num_label_mismatches=int((finished["output_tokens"] != finished["label_output_tokens"]).sum()),
        )
    meta_out = {
        "workload": workload.name,
        "policy": policy.spec(),
        "policy_params": policy.describe(),
        "host": host,
        "config": asdict(config) if is_dataclass(config) else config,
        **meta,
    }
    return RunResult(requests, summary, steps, meta_out)
