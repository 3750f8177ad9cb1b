"""One or several measurements of the profile's probes, each on an engine of its own.

On the CPU engine two ``ltrsched profile`` runs three minutes apart timed the same decode probes 8-11% apart
(VALIDATION.md, "Two profile runs minutes apart"): an engine start's speed is one sample, and a profile fitted to
one run carries that run's speed into every simulation. ``ltrsched profile --runs K`` measures the probes K
times, each in a fresh process (a new engine, its memory laid out anew), and fits one profile to the pooled
steps; it reports each run's speed against that fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from ltrsched.errors import ArgumentTypeError, ArgumentValueError
from ltrsched.validation.fresh_process import FreshProcesses

#: Most engine starts ``--runs`` may ask for (each runs every probe: minutes on the CPU engine).
MAX_RUNS = 20
#: Most times ``--repeats`` may run each probe.
MAX_REPEATS = 100


def _count(value, option: str, most: int, unit: str = "") -> None:
    """``value`` an int (not a bool) in [1, most]: else an :class:`~ltrsched.errors.ArgumentTypeError` (a TypeError)
    or :class:`~ltrsched.errors.ArgumentValueError` (a ValueError), each the command line's one line too."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(f"{option} must be an integer, got {value!r}")
    if not 1 <= value <= most:
        raise ArgumentValueError(f"{option} must be in [1, {most}]{unit}, got {value}")


def check_probe_arguments(repeats: int | None, runs: int = 1) -> None:
    """Check ``repeats`` (times each probe runs; None: the default) and ``runs`` (engine starts) before any engine
    starts: typed errors from Python (:func:`measure_probes`, :func:`measure_probe_runs`), the same one line with
    exit code 2 from ``ltrsched profile``. From Python a bad count was a plain UserError (``except ValueError`` did
    not catch it), or no error: ``runs=0`` measured nothing and returned [], ``repeats=0`` ran no probe."""
    if repeats is not None:
        _count(repeats, "--repeats", MAX_REPEATS)
    _count(runs, "--runs", MAX_RUNS, " (engine starts)")


@dataclass
class ProbeRun:
    """The probes measured on one engine: its step log and what the profile needs to know of the engine.

    Attributes:
        steps: the engine's step log (``StepLog`` columns; times in seconds).
        plan_repeats: times each probe ran; probe_requests: requests in the probe workload.
        config: the engine's :class:`~ltrsched.engine.config.EngineConfig`.
        emulated: the engine was vLLM's scheduler with step times of a profile (no model).
        host, host_info: the run's host description and facts (CPU, threads, load).
        device: the :class:`~ltrsched.validation.engines.DeviceInfo` the engine computed on.
        model_config: the served model's config.json; num_gpu_blocks: KV blocks, vLLM's null block included.
        max_model_len: longest prompt + output the engine takes [tokens].
    """

    steps: pl.DataFrame
    plan_repeats: int
    probe_requests: int
    config: Any
    emulated: bool
    host: str
    host_info: dict | None
    device: Any
    model_config: dict
    num_gpu_blocks: int
    max_model_len: int


def measure_probes(engine: dict, quick: bool, repeats: int | None, progress: bool = False) -> ProbeRun:
    """Start the engine ``engine`` (``start_engine``'s options) in this process and run the probes on it.
    ``repeats``: as :func:`check_probe_arguments`."""
    from ltrsched.validation.engines import start_engine

    check_probe_arguments(repeats)

    with start_engine(skip_idle=True, **engine) as eng:
        return _probes_on(eng, quick, repeats, progress)


def _probes_on(eng, quick: bool, repeats: int | None, progress: bool) -> ProbeRun:
    """:func:`measure_probes` on the engine it started."""
    from ltrsched.policies import make_policy
    from ltrsched.validation.probe_cache import check_probe_cache
    from ltrsched.validation.profiling import probe_plan, probe_workload

    check_probe_cache(eng, quick, repeats)  # (a cache too small for the probes: said now, in the user's terms)
    config = eng.config
    plan = probe_plan(config, eng.num_gpu_blocks() - 1, eng.max_model_len(), quick=quick, repeats=repeats)
    probes = probe_workload(plan, config.max_num_seqs, config.max_num_batched_tokens)
    result = eng.run(probes, make_policy("fcfs"), progress=progress, progress_label="profile probes")
    return ProbeRun(steps=result.steps, plan_repeats=plan.repeats, probe_requests=probes.df.height, config=config,
                    emulated=eng.emulated, host=result.meta["host"], host_info=result.meta.get("host_info"),
                    device=eng.device(), model_config=eng.model_config(), num_gpu_blocks=eng.num_gpu_blocks(),
                    max_model_len=eng.max_model_len())


def measure_probe_runs(engine: dict, quick: bool, repeats: int | None, runs: int, progress: bool = False,
                       on_run=None) -> list[ProbeRun]:
    """The probes measured ``runs`` times. One run is measured in this process (as ``ltrsched profile`` always
    did); several run one after another, each in a fresh process (``spawn``: a new interpreter and engine),
    never two at once (they would time each other). ``on_run(i, run)`` is called after each. ``repeats``, ``runs``:
    as :func:`check_probe_arguments`."""
    check_probe_arguments(repeats, runs)
    if runs == 1:
        out = [measure_probes(engine, quick, repeats, progress)]
        if on_run is not None:
            on_run(0, out[0])
        return out
    out = []
    with FreshProcesses() as processes:
        for i in range(runs):
            run = processes.run(f"profile run {i + 1} of {runs}", measure_probes, engine, quick, repeats, progress)
            out.append(run)
            if on_run is not None:
                on_run(i, run)
    return out


def pooled_steps(runs: list[ProbeRun]) -> pl.DataFrame:
    """Every run's steps, with a ``run`` column (0, 1, ...)."""
    return pl.concat([r.steps.with_columns(run=pl.lit(i, dtype=pl.Int32)) for i, r in enumerate(runs)],
                     how="diagonal_relaxed")
