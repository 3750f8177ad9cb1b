"""The simulator at an engine run's own speed: what of a validation's error is the model, not the machine.

A validation's simulator runs at its profile's speed, and an engine run takes the machine's speed at the time: on
a shared or virtual machine that moves by 10-20% between engine starts and within minutes (VALIDATION.md). Each
engine run's step-time ratio (:mod:`~ltrsched.validation.step_time_ratio`: its measured step time over the
profile's for the same steps) is that speed. Simulating the run again with the profile's step times multiplied by
it (:meth:`~ltrsched.sim.profiles.model.StepTimeProfile.scaled`) and comparing run by run leaves the error of the
step-time model's shape and of the schedule. The factor comes from the run's own steps, so this is a diagnosis of
where an error comes from, not a prediction: a simulator error that vanishes here was the machine's speed.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import polars as pl

from ltrsched.validation.compare import GATED_METRICS, GATED_STATS

#: The per-run values compared (mean and P90 of E2E latency, TTFT, TPOT).
KEYS = tuple(f"{m}_{s}" for m in GATED_METRICS for s in GATED_STATS)
#: The columns of ``own_speed.csv``.
COLUMNS = ("case", "policy", "repeat", "speed_factor", "metric", "sim", "engine", "rel_error")


def lightest_step_s(profile) -> float:
    """The time [s] ``profile`` gives the lightest step with work (one prompt token of one sequence, no attention):
    no step with work takes less (every term grows with the work)."""
    from ltrsched.sim.step_shape import StepShape

    return profile.step_time(StepShape(num_prefill_tokens=1, num_prefill_seqs=1))


def too_fast_to_simulate(profile, factor: float) -> bool:
    """Whether ``profile``'s step times multiplied by ``factor`` would give a step under the simulator's shortest,
    :data:`~ltrsched.sim.profiles.model.MIN_STEP_S` (an engine run thousands of times faster than the profile: a
    profile of a larger model or a slower device)."""
    from ltrsched.sim.profiles.model import MIN_STEP_S

    return lightest_step_s(profile) * factor < MIN_STEP_S


def simulate_at_speed(workload, spec: str, config, profile, factor: float):
    """The simulator's run of ``workload`` under policy ``spec`` with ``config`` (a SimConfig) and ``profile``'s
    step times multiplied by ``factor``; None when the factor is unknown (NaN: the run logged no timed step) or
    when it would make a step shorter than the simulator takes (:func:`too_fast_to_simulate`: ``validate -p`` with a
    profile whose steps take 15,000 times the engine's ended, after every engine run, in a one-line error about
    a profile 'NAMEx6.71e-05' the user never named, and wrote no report)."""
    from ltrsched.policies import make_policy
    from ltrsched.sim import simulate

    if not (math.isfinite(factor) and factor > 0) or too_fast_to_simulate(profile, factor):
        return None
    return simulate(workload, make_policy(spec), replace(config, profile=profile.scaled(factor)))


def own_speed_rows(case: str, spec: str, repeat: int, factor: float, sim, engine) -> list[tuple]:
    """One row (``COLUMNS``) per compared value of one engine run against the simulator at its speed."""
    rows = []
    for key in KEYS:
        s, e = sim.summary.get(key), engine.summary.get(key)
        if s is not None and e is not None and e > 0:
            rows.append((case, spec, repeat, factor, key, float(s), float(e), float(s) / float(e) - 1))
    return rows


def own_speed_table(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=list(COLUMNS), orient="row")


def own_speed_lines(table: pl.DataFrame, tolerance: float) -> list[str]:
    """Markdown for a validation report: values within ``tolerance`` overall and per case."""
    if table.height == 0:
        return []
    within = int((table["rel_error"].abs() <= tolerance).sum())
    median_abs = float(np.median(np.abs(table["rel_error"].to_numpy())))
    lines = ["", "## The simulator at each engine run's own speed", "",
             "Each engine run against the simulator with the profile's step times multiplied by that run's step-time "
             "ratio (above): the machine's speed during the run taken out, the error of the step-time model's shape "
             "and of the schedule left. The factor comes from the run's own steps: a diagnosis of where the error "
             "above comes from, not a prediction.", "",
             f"**{within} of {table.height} values (mean and P90 of E2E latency, TTFT, TPOT, each run on its own) "
             f"within ±{tolerance:.0%}; median absolute error {median_abs:.1%}.**", "",
             "| case | within | median error | largest absolute error |", "|---|---|---|---|"]
    for (case,), group in table.group_by(["case"], maintain_order=True):
        err = group["rel_error"]
        lines.append(f"| {case} | {int((err.abs() <= tolerance).sum())} of {group.height} | {err.median():+.1%} | "
                     f"{err.abs().max():.1%} |")
    return lines
