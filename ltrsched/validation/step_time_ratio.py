"""The time an engine run took for its steps over the time the simulator's profile gives for the same steps.

A simulator error has two sources: the schedule (which the adapter makes identical: the engine follows the
plan at every step) and the step times. This module measures the second one directly from an engine run's
step log: the measured cycles of its back-to-back steps over the profile's step times for the same step
shapes. 1.0 means the engine ran those steps exactly as fast as the profile says; 1.10 means 10% slower.
Two repeats of one case and policy execute identical steps, so their ratios differ only by the machine's
speed at the time (its drift), which no step-time model can follow.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from ltrsched.engine.step_log import SHAPE_FIELDS
from ltrsched.policies.step_shape import StepShape


def back_to_back(steps: pl.DataFrame) -> pl.DataFrame:
    """The steps with a measured cycle (the engine ran them back to back: ``cycle`` is finite)."""
    return steps.filter(pl.col("cycle").is_not_null() & pl.col("cycle").is_finite())


def predicted_step_times(steps: pl.DataFrame, profile) -> np.ndarray:
    """The profile's time for each step's shape [s], aligned with ``steps``."""
    rows = steps.select(SHAPE_FIELDS).iter_rows()
    return np.fromiter((profile.step_time(StepShape(*row)) for row in rows), dtype=np.float64, count=steps.height)


def step_time_ratio(steps: pl.DataFrame | None, profile) -> float:
    """Measured time of a run's back-to-back steps over the profile's time for them [ratio]; NaN when the run
    logged no such step (or no step log)."""
    if steps is None or "cycle" not in steps.columns or any(c not in steps.columns for c in SHAPE_FIELDS):
        return math.nan
    steps = back_to_back(steps)
    if steps.height == 0:
        return math.nan
    predicted = float(predicted_step_times(steps, profile).sum())
    return float(steps["cycle"].sum()) / predicted if predicted > 0 else math.nan


def ratio_lines(ratios: pl.DataFrame) -> list[str]:
    """Markdown for a report: one row per case and policy with each repeat's :func:`step_time_ratio`, and the
    range over all runs. ``ratios`` has columns case, policy, repeat, step_time_ratio."""
    finite = ratios.filter(pl.col("step_time_ratio").is_not_nan())
    if finite.height == 0:
        return []
    s = finite["step_time_ratio"]
    lines = ["", "## Engine step times vs the simulator's profile", "",
             "Measured time of each engine run's back-to-back steps over the profile's time for the same steps "
             "(1.00: as profiled; the simulator's step-time error). Repeats of a case and policy run identical "
             "steps, so their spread is the machine's own drift.", "",
             f"**The engine took {s.min():.2f}-{s.max():.2f}x the profile's time for its steps (median "
             f"{s.median():.2f}) over {finite.height} run(s).**", "",
             "| case | policy | engine / profile step time, each run |", "|---|---|---|"]
    for (case, policy), group in ratios.group_by(["case", "policy"], maintain_order=True):
        each = ", ".join("n/a" if math.isnan(v) else f"{v:.3f}" for v in group.sort("repeat")["step_time_ratio"])
        lines.append(f"| {case} | {policy} | {each} |")
    return lines
