"""The step trace's memory (``simulate --record-steps``, ``--trace``): typed columns of 8 bytes a value, not Python lists
of boxed numbers (about 180 bytes a step on this run, 310 in the RSS of a long one), and the steps frame it becomes."""

from __future__ import annotations

import gc
import importlib
import tracemalloc

import numpy as np
import polars as pl

from conftest import make_workload
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.replica import StepTrace
from ltrsched.workloads.schema import Workload

#: 13 columns of 8 bytes (104 bytes a step) and array.array's over-allocation on growth (at most 1/8 more)
MAX_BYTES_PER_STEP = 130


def _burst(n: int) -> Workload:
    """``n`` requests at t = 0, prompts and outputs of 10-200 tokens (seeded), as bench_record_steps.py's."""
    rng = np.random.default_rng(2)
    return make_workload(rng.integers(10, 201, n), rng.integers(10, 201, n))


def test_a_recorded_step_holds_at_most_130_bytes(monkeypatch):
    # (a step took ~180 bytes of Python objects: list slots and boxed floats and ints)
    traces: list[StepTrace] = []

    def keep(*args, **kwargs):
        traces.append(StepTrace(*args, **kwargs))
        return traces[-1]

    monkeypatch.setattr(importlib.import_module("ltrsched.sim.simulate"), "StepTrace", keep)
    tracemalloc.start()
    try:
        result = simulate(_burst(100), make_policy("fcfs"), SimConfig(num_gpu_blocks=32, record_steps=True,
                                                                      stop_time=8.0))
        steps = result.steps.height
        del result  # (its frame may share the trace's memory)
        gc.collect()
        with_trace = tracemalloc.get_traced_memory()[0]
        traces.clear()  # the trace and the numbers only it held
        gc.collect()
        held = with_trace - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert steps > 300
    assert held / steps <= MAX_BYTES_PER_STEP, f"{held / steps:.0f} bytes a step ({held:,} for {steps:,} steps)"


def test_the_steps_frame_has_float_seconds_and_integer_counts():
    result = simulate(_burst(20), make_policy("fcfs"), SimConfig(num_gpu_blocks=32, record_steps=True))
    schema = result.steps.schema
    assert schema["start"] == schema["duration"] == pl.Float64
    assert all(dtype == pl.Int64 for name, dtype in schema.items() if name not in ("start", "duration"))
    assert result.steps.height == result.summary["steps"]
    assert (result.steps["start"].diff().drop_nulls() > 0).all()
