"""The real CPU engine and a ShareGPT burst for it, as the engine benchmarks start them
(``bench_engine_cpu.py``, ``profile_policy_steps.py``): one place for the engine options and the workload."""

from __future__ import annotations

from typing import Any


def sharegpt_burst(num_requests: int, max_output: int | None = None, seed: int = 0):
    """``num_requests`` ShareGPT requests arriving at once, outputs capped at ``max_output`` tokens (None: not
    capped) so that a run stays short."""
    import polars as pl

    from ltrsched.workloads import load_workload

    wl = load_workload("sharegpt", num_requests=num_requests, seed=seed)
    if max_output:
        wl = type(wl)(wl.df.with_columns(pl.col("output_tokens").clip(upper_bound=max_output)), wl.name)
    return wl


def cpu_engine_and_burst(num_requests: int, max_output: int | None = None, seed: int = 0, **engine_options: Any):
    """Start the engine ``engine_options`` describe (those of ``ltrsched.validation.engines.start_engine``:
    model, max_num_seqs, ...) and load its burst; returns ``(engine, workload)``. The engine starts first:
    a bad option fails before the workload loads."""
    from ltrsched.validation.engines import start_engine

    engine = start_engine(**engine_options)
    return engine, sharegpt_burst(num_requests, max_output, seed)
