"""The run cache and the parallel runner.

Every :class:`RunSpec` has a result directory ``<out>/runs/<hash>/`` holding ``requests.parquet``
(+ ``steps.parquet``) and ``summary.json``, each written atomically and durably, ``summary.json`` last (its ``meta``
holding the parquet files' digests).
The hash covers the run's fields and the content of what it reads (:meth:`RunSpec.inputs`), so an
edited workload, profile or plugin file gives a new directory. A run is finished when its
``summary.json`` parses, is this run's (its ``run_hash``) and holds the results as written (their digest,
:func:`results_digest`), and its parquet files are those it wrote (their digests; :func:`is_done`); a missing, empty
or damaged file (a crash, a power loss) or a file edited or swapped since (a number changed, a metric removed, another
run's ``requests.parquet``) means it is computed again.

:func:`run_one` is the unit of work: it computes one run under the run's lock (:mod:`runlock`), unless
it is finished, so that two invocations on the same ``--out`` never compute a run twice or interleave
its files. :func:`run_all` hands the pending ones to a :class:`Backend`, which calls :func:`run_one` for
each: :class:`ProcessBackend` runs them in this process or in a ``ProcessPoolExecutor`` (spawn context)
over the local cores, whose workers end when the main process dies (:mod:`lifeline`);
:class:`~ltrsched.experiments.ray_backend.RayBackend` runs them as Ray tasks, on a local Ray instance or
a cluster. Workers rebuild workloads from the spec, cache them per process, and write results as each
run finishes, so the files are the same whichever backend ran them.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import multiprocessing
import os
import sys
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import polars as pl

from ltrsched import strict_json
from ltrsched.arguments import shown
from ltrsched.errors import RunFailedError, UserError
from ltrsched.experiments.runspec import RunSpec
from ltrsched.notices import Notices, work_starts
from ltrsched.results import FILES_DIGEST_KEY, PARQUET_FILES, file_sha256, read_summary_file
from ltrsched.workloads.schema import Workload

#: SDG (Table 2) thresholds: finished samples counted, and the time window [s].
SDG_SAMPLES = 1000
SDG_WINDOW_S = 300.0


def run_dir(out: str | Path, spec: RunSpec, run_hash: str | None = None) -> Path:
    """Result directory of a run: ``<out>/runs/<hash>``."""
    return Path(out) / "runs" / (run_hash or spec.run_hash())


#: The lock file inside a run's directory (:mod:`ltrsched.experiments.runlock`).
LOCK_FILE = ".lock"
#: Where a Ray task's worker leaves the line of a plugin call that ended it, inside the run's directory.
EXIT_LINE_FILE = ".plugin-exit"


#: The key of a run's ``meta`` (in its ``summary.json``) holding :func:`results_digest` of its results as written.
DIGEST_KEY = "results_sha256"


def results_digest(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of a ``summary.json`` record's results: its ``summary`` and a cluster's ``replicas``, as the file
    holds them (strict JSON, keys sorted; an undefined value null). A cached run whose summary was edited or damaged
    since it was written (a number changed, a metric removed, a ``NaN`` put in) no longer matches it."""
    body = {key: record.get(key) for key in ("summary", "replicas")}
    # (through the file's own round trip: a numpy integer is written as text, a tuple as a list, an int key as text)
    body = strict_json.loads(strict_json.dumps(body, default=str))
    text = strict_json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def is_done(out: str | Path, spec: RunSpec, run_hash: str | None = None) -> bool:
    """True if the run's results are complete and as written: ``summary.json`` parses, names this run's hash and
    matches its digest (:func:`results_digest`: one edited by hand, or written by a version that recorded none, is
    not taken), and the parquet files are those it wrote, byte for byte (:func:`why_not_done`)."""
    return why_not_done(out, spec, run_hash) is None


#: :func:`why_not_done` of a run with no ``summary.json``: never run, or stopped before its results were written.
NOT_RUN = "not run"


def why_not_done(out: str | Path, spec: RunSpec, run_hash: str | None = None) -> str | None:
    """None if the run's results under ``out`` are complete and as written (:func:`is_done`), else why not, in a few
    words: :data:`NOT_RUN` (no ``summary.json``), or what is wrong with the files there."""
    run_hash = run_hash or spec.run_hash()
    d = run_dir(out, spec, run_hash)
    try:
        data = read_summary_file(d / "summary.json")
    except (FileNotFoundError, NotADirectoryError):  # (a file where the run's directory goes: never run here, and
        return NOT_RUN  # the run itself says so in one line, :func:`run_one`, not a note that it is computed again)
    except OSError as exc:
        return f"its summary.json cannot be read ({exc.strerror or type(exc).__name__})"
    except ValueError:
        return "its summary.json is damaged"
    meta = data.get("meta")
    if not isinstance(meta, dict) or meta.get("run_hash") != run_hash:
        return "its summary.json is not this run's"
    if DIGEST_KEY not in meta:
        return "its summary.json has no digest of its results (an earlier version's)"
    if meta[DIGEST_KEY] != results_digest(data):
        return "its summary.json was edited or damaged since it was written"
    return _why_files_differ(d, meta.get(FILES_DIGEST_KEY), spec.record_steps)


def _why_files_differ(d: Path, written: Any, record_steps: bool) -> str | None:
    """None if the parquet files in the run directory ``d`` are those its ``summary.json`` recorded as written
    (``written``: its :data:`~ltrsched.results.FILES_DIGEST_KEY`, name -> SHA-256), else why not: one edited, swapped
    for another run's, removed, damaged, or one there that the run did not write (a ``steps.parquet`` that ``plot
    trace`` would read as its own); what its readers (``plot cdf``, ``plot trace``, the tables) read is what was
    written. A summary without the digests (an earlier version's) is not taken either."""
    if not isinstance(written, dict):
        return "its summary.json has no digest of its parquet files (an earlier version's)"
    for name in PARQUET_FILES:
        expected = written.get(name)
        required = name == "requests.parquet" or record_steps
        if expected is None and required:
            return f"its summary.json has no digest of its {name}"
        try:
            digest = file_sha256(d / name)
        except FileNotFoundError:
            if expected is None:
                continue
            return f"its {name} is missing"
        except OSError as exc:
            return f"its {name} cannot be read ({exc.strerror or type(exc).__name__})"
        if expected is None:
            return f"its {name} was not written by this run"
        if digest != expected:
            return f"its {name} was edited or replaced since it was written"
    return None


def _note_damaged(damaged: dict[str, str], out: Path) -> None:
    """A ``note:`` line on stderr naming the cached runs (hash -> :func:`why_not_done`) computed again because their
    files are damaged or were edited: the counts said "simulated" of runs the user expected reused, without why."""
    if not damaged:
        return
    from ltrsched.names import shown_path

    shown_runs = "; ".join(f"runs/{h}: {why}" for h, why in list(damaged.items())[:3])
    more = f"; and {len(damaged) - 3:,} more" if len(damaged) > 3 else ""
    sys.stderr.write(f"note: {len(damaged):,} cached run(s) under {shown_path(out / 'runs')} are computed again, their files "
                     f"not taken as they are ({shown_runs}{more})\n")


def load_summary(out: str | Path, spec: RunSpec, run_hash: str | None = None) -> dict[str, Any]:
    """The run's summary dict (metrics, extra experiment metrics); raises FileNotFoundError if not run.
    ``run_hash``: the spec's :meth:`RunSpec.run_hash` where the caller has it (computing it again hashes the run's
    input files' digests and its key: 1.7 ms a run)."""
    return read_summary_file(run_dir(out, spec, run_hash) / "summary.json")["summary"]


def load_requests(out: str | Path, spec: RunSpec, run_hash: str | None = None) -> pl.DataFrame:
    """The run's ``requests.parquet``; ``run_hash`` as :func:`load_summary`'s."""
    return pl.read_parquet(run_dir(out, spec, run_hash) / "requests.parquet")


@lru_cache(maxsize=16)
def _base_workload(name: str, fingerprint: str, num_requests: int | None, seed: int) -> Workload:
    from ltrsched.workloads import load_workload

    return load_workload(name, num_requests=num_requests, seed=seed)


@lru_cache(maxsize=32)
def _arrived_workload(name: str, fingerprint: str, num_requests: int | None, seed: int, arrival: str,
                      rate: float | None, cv: float, duration: float | None) -> Workload:
    from ltrsched.workloads import apply_arrivals

    return apply_arrivals(_base_workload(name, fingerprint, num_requests, seed), arrival, rate=rate, cv=cv,
                          seed=seed, duration=duration)


def base_workload(spec: RunSpec) -> Workload:
    """The spec's workload before its arrival process (and ``duration``) is applied; cached as
    :func:`build_workload`."""
    from ltrsched.workloads.loaders import workload_fingerprint

    fingerprint = json.dumps(workload_fingerprint(spec.workload), sort_keys=True)
    return _base_workload(spec.workload, fingerprint, spec.num_requests, spec.seed)


def build_workload(spec: RunSpec) -> Workload:
    """The spec's workload with its arrival process applied (cached per process by the workload's
    content fingerprint, so an edited file is read again)."""
    from ltrsched.workloads.loaders import workload_fingerprint

    fingerprint = json.dumps(workload_fingerprint(spec.workload), sort_keys=True)
    return _arrived_workload(spec.workload, fingerprint, spec.num_requests, spec.seed, spec.arrival, spec.rate,
                             spec.cv, spec.duration)


def workload_key(spec: RunSpec) -> tuple:
    """What a run's workload is built from (:func:`build_workload`): the runs with one key share one workload."""
    return (spec.workload, spec.num_requests, spec.seed, spec.arrival, spec.rate, spec.cv, spec.duration)


def workload_order(spec: RunSpec) -> tuple:
    """A sort key that puts runs sharing a workload (:func:`workload_key`) next to each other, and those sharing its
    base workload (before arrivals: :func:`base_workload`) too, so that the per-process caches of both hit. Sorted
    without the seed, a sweep of more seeds than :func:`_base_workload` keeps (16) met each seed's workload once per
    rate and policy and built it again each time: a 1,000-run sweep of 100 seeds built 1,000 workloads, not 100."""
    return tuple((value is None, value if value is not None else 0) for value in workload_key(spec))


def experiment_metrics(requests: pl.DataFrame, steps: pl.DataFrame | None) -> dict[str, float]:
    """Metrics the paper's tables need beyond the simulator's summary.

    ``time_to_1000_finished`` [s]: when the 1,000th request finished, from the first arrival (None if
    fewer requests finished: undefined). ``finished_within_300s``: requests finished within 300 s of the first arrival.
    ``prefill_time_s`` [s] (with a step trace): each step's duration apportioned to its prefill tokens,
    summed (``duration * prefill_tokens / batched_tokens``).
    """
    start = float(requests["arrival_time"].min())
    finish = requests["finish_time"].to_numpy()
    finish = np.sort(finish[~np.isnan(finish)]) - start
    out = {
        "time_to_1000_finished": float(finish[SDG_SAMPLES - 1]) if len(finish) >= SDG_SAMPLES else None,
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


#: What a too-long request's error tells the user to change, by :attr:`RunSpec.experiment`: a sweep file's key,
#: capacity's option, else (the paper's experiments, which set neither) the profile.
CONTEXT_FIXES = {
    "sweep": "if the model takes longer contexts, set max_model_len (tokens) in the sweep file, or leave them out",
    "capacity": "if the model takes longer contexts, raise --max-model-len (tokens), or leave them out",
    "": "use a profile whose max_model_len covers them (a copy of its JSON file with max_model_len raised, if the "
        "model takes longer contexts), or leave them out",
}


def _fit_naming(experiment: str):
    """How a run's user names the simulator's settings in its errors: a sweep file's quoted ``max_model_len``,
    capacity's ``--max-model-len``; nothing else (neither sets the GPU memory utilization, the paper's
    experiments not even the context limit: theirs is the profile's)."""
    from ltrsched.sim.config import Naming, key_naming

    if experiment == "sweep":
        return key_naming(("max_model_len",))
    options = {"max_model_len": "--max-model-len"} if experiment == "capacity" else {}
    return Naming(options, lambda name, value: f"{name} {value}")


def _sim_config(spec: RunSpec):
    """The simulator's settings of a run."""
    from ltrsched.sim import SimConfig

    return SimConfig(profile=spec.profile, max_num_batched_tokens=spec.max_num_batched_tokens,
                     max_num_seqs=spec.max_num_seqs, preemption=spec.preemption,
                     chunked_prefill=spec.chunked_prefill, record_steps=spec.record_steps,
                     stop_time=spec.stop_time, block_size=spec.resolved_block_size(),
                     max_model_len=spec.max_model_len)


def _check_setup(spec: RunSpec, wl: Workload, policy, config):
    """What a run checks before it simulates (the simulator's :func:`setup_run`: the policy's columns, requests that
    fit the context and the KV cache, ...), its errors naming what the run's user can change; returns the run's
    :class:`~ltrsched.sim.simulate.RunSetup` (its request table)."""
    from ltrsched.sim.config import ConfigError
    from ltrsched.sim.simulate import FitFixes, setup_run

    # (a request too long for the profile: the simulator's own error named simulate's options, which a sweep or
    # capacity run has not, and no workload among a sweep's; a max_model_len the profile's KV cache does not hold too)
    naming = _fit_naming(spec.experiment)
    try:
        return setup_run(wl, policy, config, FitFixes(
            context=CONTEXT_FIXES.get(spec.experiment, CONTEXT_FIXES[""]),
            kv="use a profile with more GPU memory, or leave such requests out",
            where=f"workload {spec.workload!r} on profile {spec.profile!r}: ", naming=naming))
    except ConfigError as exc:
        raise UserError(exc.render(naming)) from None


def _check_sweep_router(spec: RunSpec, router, wl: Workload) -> None:
    """A sweep's router's columns (the simulator's hint named the CLI's --router, which a sweep file has not)."""
    from ltrsched.policies.needs import check_needs

    check_needs(router, wl.has_column, f"workload {spec.workload!r}", kind="router",
                router_example='`routers = ["{name}:tau=0.62"]` in the sweep file')


def _check_router_prepare(router, setup, replicas: int) -> None:
    """Prepare a built-in router on the run's request table (the columns the cluster simulator gives it) and let
    the :class:`UserError` it raises out: a parameter it checks only against the workload (``least-work``'s
    ``max_model_len`` below the longest request) failed a sweep's run after the runs sorted ahead of it. Its
    ``warning:`` lines are not printed (the run prints them; a stand-in scoring column's zeros would warn here);
    its other errors are left to the run, as is a plugin router's ``prepare`` (it may be costly, or read the
    stand-in columns' values)."""
    import io

    if not type(router).__module__.startswith("ltrsched.routers."):
        return
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            router.prepare(setup.table.workload_columns(), replicas)
    except UserError:
        raise
    except Exception:  # (the run reports it, as it does)
        pass


def run_hashes(specs: Iterable[RunSpec]) -> dict[RunSpec, str]:
    """Each distinct spec's :meth:`RunSpec.run_hash`, computed once: a caller that checks, runs and tabulates many runs
    passes this to :func:`check_runs` and :func:`run_all` and reads it for its table, where each hashed every run
    again (a 10,000-run sweep hashed each run 3 times before its first run, and once more for ``sweep.csv``)."""
    hashes: dict[RunSpec, str] = {}
    for s in specs:
        if s not in hashes:
            hashes[s] = s.run_hash()
    return hashes


def _hash_of(spec: RunSpec, hashes: dict[RunSpec, str] | None) -> str:
    """``spec``'s run hash: from ``hashes`` (:func:`run_hashes`) where it is there, else computed."""
    found = hashes.get(spec) if hashes is not None else None
    return found if found is not None else spec.run_hash()


def listed_runs(out: str | Path) -> set[str] | None:
    """The names under ``<out>/runs`` (the run directories there), listed once: a run whose hash is not among them is
    not finished (:data:`NOT_RUN`) without a look at its files (a fresh 10,000-run sweep looked for each run's
    ``summary.json`` twice); an empty set where there is no ``runs/``; None where it cannot be listed (each run is then
    looked at, as :func:`why_not_done` does)."""
    try:
        return set(os.listdir(Path(out) / "runs"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError):
        return None


def _policy_check_key(policy) -> tuple:
    """What :func:`_check_setup` reads of a policy (the simulator's ``setup_run``: its class, name, ``needs`` and
    ``extra_output_tokens``; its spec only in an error): two policies with the same key pass or fail its checks
    alike, so :func:`check_runs` checks a setup once per key, not once per policy (10,000 ``ltr:tau=...`` policies:
    one check, not 10,000)."""
    return (type(policy), repr(policy.name), repr(policy.needs), repr(getattr(policy, "extra_output_tokens", 0)))


def check_runs(specs: Iterable[RunSpec], out: str | Path | None = None,
               hashes: dict[RunSpec, str] | None = None) -> None:
    """Make the checks each run makes before it simulates (:func:`_check_setup`, and the columns a cluster's router
    needs) for every distinct setup among ``specs``, before any run: a sweep or capacity search whose policy lacks a
    column, or whose profile is too short for a workload's requests, failed only at that run, after the runs sorted
    ahead of it had been computed. Each workload (with its arrivals) is built once; the column a run's scoring attaches
    stands in as zeros (no predictor runs here: the columns are there, whatever their values).

    ``out``: the runs already finished there (:func:`is_done`) are not checked again: they passed these checks when
    they ran, and their hash covers every input the checks read. A rerun of a 1,000-run sweep, every run reused,
    spent 18.6 of its 20 s building the workloads of runs it would not compute (2.4 s of CPU now). ``hashes``: the
    specs' hashes (:func:`run_hashes`) where the caller has them (else each is computed here).

    Runs that differ only in their policy are checked once per :func:`_policy_check_key` (a policy is still built
    once per spec string); a failing check raises for the first run, in the order checked, that fails it."""
    if out is not None:
        listed = listed_runs(out)

        def finished(s: RunSpec) -> bool:
            h = _hash_of(s, hashes)
            return (listed is None or h in listed) and is_done(out, s, h)

        specs = [s for s in specs if not finished(s)]
    import dataclasses

    from ltrsched.experiments.scoring import scoring_column
    from ltrsched.policies import make_policy
    from ltrsched.policies.needs import check_needs
    from ltrsched.routers import make_router

    groups: dict[tuple, list[RunSpec]] = {}
    for s in sorted(specs, key=workload_order):  # (a seed's workloads in a row: its base workload is built once)
        groups.setdefault(workload_key(s), []).append(s)
    policies: dict[str, Any] = {}
    for group in groups.values():
        wl = build_workload(group[0])
        scored: dict[str, Workload] = {}
        seen = set()
        for s in group:
            if s.policy not in policies:
                policies[s.policy] = make_policy(s.policy)
            # (the group's seed, arrivals; the policy as far as the checks read it)
            setup = (dataclasses.replace(s, setting="", label="", note="", policy=""),
                     _policy_check_key(policies[s.policy]))
            if setup in seen:
                continue
            seen.add(setup)
            if s.scoring not in scored:
                column = scoring_column(s.scoring)
                scored[s.scoring] = wl if column is None else wl.with_df(wl.df.with_columns(
                    pl.lit(0.0, dtype=pl.Float64).alias(column)))
            swl = scored[s.scoring]
            setup = _check_setup(s, swl, policies[s.policy], _sim_config(s))
            if s.replicas > 1 or s.router is not None:
                router = make_router(s.router or "round-robin")
                if s.experiment == "sweep":
                    _check_sweep_router(s, router, swl)
                else:  # (as the cluster simulator checks it)
                    check_needs(router, swl.has_column, f"workload {swl.name!r}", kind="router")
                _check_router_prepare(router, setup, s.replicas)


def execute_run(spec: RunSpec, out: str | Path, run_hash: str | None = None) -> dict[str, Any]:
    """Build, score, simulate and save one run (no cache check, no lock: see :func:`run_one`); returns its
    summary. ``run_hash``: the hash the caller expects; an input file that changed since (or while the
    run read it) raises :class:`UserError` instead of filing new results under the old hash."""
    from ltrsched.experiments.scoring import attach_scores
    from ltrsched.policies import make_policy
    from ltrsched.policies.batching import thrash_named
    from ltrsched.sim import simulate

    run_hash = run_hash or spec.run_hash()
    policy = make_policy(spec.policy)
    wl = build_workload(spec)
    wl, scoring_info = attach_scores(wl, spec.scoring, spec.seed)
    config = _sim_config(spec)
    _check_setup(spec, wl, policy, config)
    with thrash_named(f"run {describe_run(spec, run_hash)}"):  # (among a sweep's runs, which one)
        if spec.replicas > 1 or spec.router is not None:
            from ltrsched.routers import make_router
            from ltrsched.sim.cluster import simulate_cluster

            router = make_router(spec.router or "round-robin")
            if spec.experiment == "sweep":
                _check_sweep_router(spec, router, wl)
            result = simulate_cluster(wl, policy, config, spec.replicas, router)
        else:
            result = simulate(wl, policy, config)
    if spec.run_hash() != run_hash:  # every input has been read by now: it must still be what was hashed
        raise UserError(f"an input of run {run_hash} ({spec.workload}, {spec.profile}, {spec.policy}) changed "
                        "while the runs were under way; run the command again")
    result.summary.update(experiment_metrics(result.requests, result.steps))
    for k, v in scoring_info.items():
        if k in ("kendall_tau", "accuracy"):
            result.summary[f"scoring_{k}"] = v
    result.summary["mean_output_tokens"] = float(result.requests["output_tokens"].mean())
    result.summary["mean_prompt_tokens"] = float(result.requests["prompt_tokens"].mean())
    result.meta.update(run_spec=spec.to_dict(), run_hash=run_hash, scoring_info=scoring_info)
    result.meta[DIGEST_KEY] = results_digest({"summary": result.summary, "replicas": result.replicas})
    result.save(run_dir(out, spec, run_hash), digest_files=True)
    return result.summary


#: What :func:`run_one` did: computed the run, found it finished (by another process meanwhile), or
#: found it locked by another process (only with ``wait=False``).
RAN, REUSED, BUSY = "ran", "reused", "busy"
#: A run a preemption thrash stopped, where the caller lets the others go on (``run_all(thrash_ok=True)``).
STOPPED = "stopped"


def run_one(spec: RunSpec, out: str | Path, run_hash: str | None = None, wait: bool = True) -> str:
    """Compute one run unless it is finished, under its lock; returns :data:`RAN`, :data:`REUSED` or
    :data:`BUSY`. Another process computing the same run is waited for (``wait``) and its result reused,
    or, with ``wait=False``, left to it (:data:`BUSY`). Safe to call from any process on this machine."""
    run_hash = run_hash or spec.run_hash()
    from ltrsched.experiments.runlock import run_lock

    where = run_dir(out, spec, run_hash)
    if where.exists() and not where.is_dir():  # (it said "cannot create the run lock .../.lock: File exists")
        raise UserError(f"{where} is not a run directory but a file in its place, where this run's results go; remove "
                        "it (the run is then computed again)")
    with run_lock(where / LOCK_FILE, wait=wait) as held:
        if not held:
            return BUSY
        if is_done(out, spec, run_hash):
            return REUSED
        execute_run(spec, out, run_hash)
        return RAN


def _init_worker(parent_pid: int, digests: dict[tuple, str], exit_lines: str) -> None:
    """Pool worker setup: end with the parent, reuse the parent's file digests, leave the line of a plugin call
    that ends the worker in ``exit_lines/<pid>`` (for the parent to print), one OpenMP thread."""
    from ltrsched.experiments.lifeline import bind_to_parent
    from ltrsched.fingerprint import remember_digests
    from ltrsched.plugin_watchdog import leave_exit_line_in

    bind_to_parent(parent_pid)
    remember_digests(digests)
    leave_exit_line_in(os.path.join(exit_lines, str(os.getpid())))
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_one_noting(spec: RunSpec, out: str | Path, run_hash: str, wait: bool) -> tuple[str, list[str]]:
    """:func:`run_one` in a worker process: its status, and the warning and note lines it printed (a workload's
    rows left out, arrival times that look like milliseconds), held (:class:`ltrsched.notices.Notices`) for the main
    process to print (:func:`report_notices`): each worker loads a workload once and printed its warnings itself,
    so that a 2-worker sweep printed each twice, and more with more workers."""

    notices = Notices(sys.stderr)
    sys.stderr = notices
    try:
        status = run_one(spec, out, run_hash, wait)
    finally:
        sys.stderr = notices.stream
    return status, notices.held


def report_notices(lines: Iterable[str], seen: set[str], bar) -> None:
    """Print the notice ``lines`` that a worker returned (:func:`run_one_noting`), each not in ``seen`` (those
    printed before: by another worker, or by the checks here that loaded the workload first) once, above ``bar``."""
    for line in lines:
        if line not in seen:
            seen.add(line)
            bar.write(line.rstrip("\n"), file=sys.stderr)


def _pool_task(spec_dict: dict[str, Any], out: str, run_hash: str, wait: bool) -> tuple[str, str, list[str]]:
    return run_hash, *run_one_noting(RunSpec.from_dict(spec_dict), out, run_hash, wait)


@dataclass
class RunStats:
    """What a call to :func:`run_all` did: hashes of the runs computed here, of those found finished
    (before, or meanwhile by another process sharing the output directory), of those whose worker died
    once and were run again (:attr:`retried`, with why), and of those whose worker died twice
    (:attr:`failed`, with why), and, where :func:`run_all` was given ``thrash_ok``, of those a preemption thrash stopped
    (:attr:`stopped`, with the run's one-line ``preemption thrash`` error; no result is saved for them)."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    retried: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.ran) + len(self.skipped)

    def count(self, run_hash: str, status: str) -> None:
        (self.ran if status == RAN else self.skipped).append(run_hash)

    def merge(self, other: "RunStats") -> None:
        """Add what another call did (e.g. the next round of a capacity search)."""
        self.ran += other.ran
        self.skipped += other.skipped
        self.retried.update(other.retried)
        self.failed.update(other.failed)
        self.stopped.update(other.stopped)

    def line(self) -> str:
        """``"N runs simulated, M reused"`` (+ how many were retried after their worker died)."""
        text = f"{len(self.ran)} runs simulated, {len(self.skipped)} reused"
        if self.retried:
            text += f", {len(self.retried)} retried after their worker died"
        if self.stopped:
            text += f", {len(self.stopped)} stopped for preemption thrash"
        return text


def describe_run(spec: RunSpec, run_hash: str) -> str:
    """A run in one short phrase, e.g. ``fcfs on sharegpt @ 4.0 req/s seed 0 (runs/1a2b...)``."""
    rate = f" @ {spec.rate:g} req/s" if spec.rate is not None else ""
    return f"{spec.policy} on {spec.workload}{rate} seed {spec.seed} (runs/{run_hash})"


def unique_specs(specs: Iterable[RunSpec], hashes: dict[RunSpec, str] | None = None) -> list[RunSpec]:
    """Specs with duplicate hashes dropped (first kept); ``hashes``: their hashes where known (:func:`run_hashes`)."""
    seen: dict[str, RunSpec] = {}
    for s in specs:
        seen.setdefault(_hash_of(s, hashes), s)
    return list(seen.values())


#: Where runs execute: a local process pool (the default) or Ray (``ltrsched[ray]``).
BACKENDS = ("process", "ray")

#: A run waiting to execute: its spec and its hash.
Pending = tuple[RunSpec, str]


class Backend:
    """Executes pending runs, each through :func:`run_one` (the one unit of work every backend calls),
    and records what happened in a :class:`RunStats`. Open one with :func:`open_backend`; it may be used
    for several :func:`run_all` calls (e.g. the rounds of a capacity search) and starts its workers on
    the first run it has to compute, so a fully cached invocation starts none."""

    name = "base"

    def run(self, pending: list[Pending], out: Path, stats: RunStats, bar, thrash_ok: bool = False) -> None:
        """Execute ``pending``. ``thrash_ok``: a run stopped by a preemption thrash (its
        :class:`~ltrsched.policies.batching.ThrashError`) goes into ``stats.stopped`` and the others go on; without
        it, that error stops the rest as any other run's error does. (A subclass whose ``run`` takes no ``thrash_ok``,
        written before it existed, is still called, without it: :func:`_backend_run`.)"""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers (idempotent)."""


class ProcessBackend(Backend):
    """Runs in this process (one job, or one pending run) or in a ``ProcessPoolExecutor`` of ``jobs``
    spawned workers (default: the CPUs this process may use, :func:`usable_cpus`) that end when this process dies
    (:mod:`lifeline`)."""

    name = "process"

    def __init__(self, jobs: int | None = None):
        self.jobs = max(1, jobs or usable_cpus())  # (os.cpu_count(): 2 workers under `taskset -c 0` on 2 cores)
        self._asked = jobs is not None  # (the default is never noted)
        self._pool: cf.ProcessPoolExecutor | None = None
        self._exit_lines: str | None = None  # a temporary folder: the lines of workers a stuck plugin call ended

    def run(self, pending: list[Pending], out: Path, stats: RunStats, bar, thrash_ok: bool = False) -> None:
        if self.jobs == 1 or len(pending) <= 1:
            _run_here(pending, out, stats, bar, thrash_ok)
        else:
            self._note_oversubscribed(min(self.jobs, len(pending)), bar)
            try:
                _run_pool(self._executor(), pending, out, stats, bar, self._exit_lines, thrash_ok)
            except KeyboardInterrupt as exc:
                if exc.args and exc.args[0] != "SIGINT":
                    self._stop_workers()
                raise

    def _stop_workers(self) -> None:
        """End the pool's workers (SIGTERM) and its queued runs: a signal that reached this process alone (``kill``'s
        SIGTERM, a batch system's time limit, :mod:`ltrsched.signal_stops`) stopped it, where Ctrl-C's SIGINT
        reaches the workers too; :meth:`close` then waited for each worker's run under way to finish. Finished runs
        are on disk (each written atomically); those under way are lost, as with Ctrl-C."""
        pool = self._pool
        if pool is None:
            return
        for process in list((getattr(pool, "_processes", None) or {}).values()):  # (no public way to end them)
            with contextlib.suppress(OSError, ValueError):
                process.terminate()

    _noted = False

    def _note_oversubscribed(self, workers: int, bar) -> None:
        """One ``note:`` line, once per backend, where ``--jobs`` is far above the CPUs this process may use (more
        than :data:`OVERSUBSCRIBE` times them) and the runs to compute start that many workers: the pool starts a
        worker per pending run up to ``--jobs`` (never more), each importing and building its workloads, so on 2
        CPUs ``-j 1000`` ran the 11 runs of ``reproduce table1 --quick`` on 11 workers sharing them, no faster than
        ``-j 2`` and slower than ``-j 1``, without a word. The runs still use the workers asked for."""
        cpus = usable_cpus()
        if self._noted or not self._asked or self.jobs <= OVERSUBSCRIBE * cpus or workers <= cpus:
            return
        self._noted = True
        bar.write(f"note: --jobs {self.jobs:,} is far above the {cpus} CPU(s) this process may use: {workers:,} "
                  f"worker processes (one per run to compute) share them; --jobs {cpus} runs as many at once",
                  file=sys.stderr)

    def _executor(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            import tempfile

            from ltrsched.fingerprint import known_digests

            self._exit_lines = tempfile.mkdtemp(prefix="ltrsched-workers-")
            # spawn starts workers as tasks arrive, never more than there are runs to compute
            self._pool = cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_init_worker,
                                                initargs=(os.getpid(), known_digests(), self._exit_lines))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._exit_lines is not None:
            import shutil

            shutil.rmtree(self._exit_lines, ignore_errors=True)
            self._exit_lines = None


#: ``--jobs`` up to this many times the usable CPUs is taken without a note (:meth:`ProcessBackend._note_oversubscribed`):
#: a worker waiting on its imports or file writes leaves its CPU to another (``reproduce table1 --quick`` on 2 CPUs:
#: -j 4 15.0 s, -j 2 18.6 s), and a test's ``-j 2`` pool on one CPU (``taskset -c 0``) says nothing.
OVERSUBSCRIBE = 2


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: ``taskset``, a container's cpuset), else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: Most parallel runs ``--jobs`` may ask for: far above any machine's cores (a process pool of 2**63 workers was an
#: OverflowError traceback from its semaphore; a Ray cluster larger than this is used whole without --jobs).
MAX_JOBS = 4096


def check_jobs(jobs: int | None) -> None:
    """One-line :class:`UserError` unless ``jobs`` (``--jobs``; None: the default) is in 1..:data:`MAX_JOBS`; a
    :class:`TypeError` naming it for a Python caller's value that is no integer (``"2"`` was a TypeError about ``<=``,
    ``2.5`` and ``True`` were taken)."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer))):
        raise TypeError(f"jobs must be an integer in 1..{MAX_JOBS:,} (parallel runs) or None, got {shown(jobs)}")
    if jobs is not None and not 1 <= jobs <= MAX_JOBS:
        raise UserError(f"--jobs must be in 1..{MAX_JOBS:,} (parallel runs), got {jobs:,}")


@contextlib.contextmanager
def open_backend(name: str = "process", jobs: int | None = None, address: str | None = None) -> Iterator[Backend]:
    """A :class:`Backend` for the ``with`` block, closed after it.

    ``name``: ``process`` (local pool of ``jobs`` processes) or ``ray`` (a local Ray instance with
    ``jobs`` CPUs, or the Ray cluster at ``address``; needs ``ltrsched[ray]``).
    """
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    check_jobs(jobs)
    if address is not None and not isinstance(address, str):  # (an int was an AttributeError traceback)
        raise TypeError(f"address must be a string (host:port, ray://host:port or auto) or None, got {shown(address)}")
    if address is not None and name != "ray":
        raise UserError("--address needs --backend ray")
    if name == "ray":
        from ltrsched.experiments.ray_backend import RayBackend

        backend: Backend = RayBackend(jobs, address)
    else:
        backend = ProcessBackend(jobs)
    try:
        yield backend
    finally:
        backend.close()


def run_all(specs: Iterable[RunSpec], out: str | Path, jobs: int | None = None, progress: bool = True,
            desc: str = "runs", backend: Backend | None = None, bar=None, thrash_ok: bool = False,
            hashes: dict[RunSpec, str] | None = None,
            prepare: Callable[[list[RunSpec]], None] | None = None) -> RunStats:
    """Run every spec not already finished under ``out``, on ``backend`` (default: a process pool of
    ``jobs`` workers, the CPUs this process may use by default, opened and closed here).

    A run another process is computing is put last, then waited for and reused. A failing run raises its
    error after the runs already under way have finished and been written. A run whose worker died twice
    (Ray backend) raises :class:`RunFailedError` after every other run has been written. ``bar``: a tqdm
    bar to advance instead of one made here. ``thrash_ok``: a run that a preemption thrash stopped is recorded in
    :attr:`RunStats.stopped` (its error line) and the others go on, as a capacity search far above capacity needs; it
    saves no result, so a later call runs it again (and it stops again: the same outcome). ``hashes``: the specs'
    run hashes (:func:`run_hashes`) where the caller has them; each run's is computed here otherwise. ``prepare``:
    called once, before the first run and its progress bar, with the specs to compute (an empty list where every run
    is finished), e.g. to load or train the predictors those runs score with once, here, not in each worker.
    """
    from ltrsched.progress import progress_bar

    check_jobs(jobs)  # (jobs=0 was taken while every run was cached, refused once one was not)
    specs = _spec_list(specs)
    out = Path(out)
    stats = RunStats()
    pending: list[Pending] = []
    damaged: dict[str, str] = {}
    if hashes is None:
        hashes = run_hashes(specs)
    listed = listed_runs(out)
    for s in unique_specs(specs, hashes):
        h = _hash_of(s, hashes)
        why = NOT_RUN if listed is not None and h not in listed else why_not_done(out, s, h)
        if why is None:
            stats.skipped.append(h)
        else:
            pending.append((s, h))
            if why != NOT_RUN:
                damaged[h] = why
    _note_damaged(damaged, out)
    if prepare is not None:
        prepare([s for s, _ in pending])
    # group runs sharing a workload so that each worker's workload cache hits
    pending.sort(key=lambda p: (workload_order(p[0]), p[0].policy))
    own_bar = bar is None
    if own_bar:
        bar = progress_bar(len(pending), desc, "runs", "done", unit="run", enabled=progress and bool(pending))
    else:
        bar.total = (bar.total or 0) + len(pending)
        bar.refresh()
    if pending:
        work_starts()  # (a worker's warnings, a retried run's, print as they come)
    try:
        if pending:
            if backend is None:
                with open_backend("process", jobs) as local:
                    local.run(pending, out, stats, bar, thrash_ok=thrash_ok)
            else:
                _backend_run(backend, pending, out, stats, bar, thrash_ok)
    finally:
        if own_bar:
            bar.close()
    if stats.failed:
        specs_by_hash = dict((h, s) for s, h in pending)
        runs = "; ".join(f"{describe_run(specs_by_hash[h], h)}: {why}" for h, why in stats.failed.items())
        raise RunFailedError(f"{len(stats.failed)} run(s) failed, their worker died twice: {runs}. The other "
                             f"{stats.total} runs are saved under {out / 'runs'}; run the command again to retry")
    return stats


def _spec_list(specs) -> list[RunSpec]:
    """``specs`` as a list; one-line :class:`TypeError` naming the argument unless it is an iterable of
    :class:`RunSpec` (one RunSpec, or a spec string, was an AttributeError or "not iterable" traceback)."""
    if isinstance(specs, (str, RunSpec)) or not isinstance(specs, Iterable):
        raise TypeError(f"specs must be a list of RunSpec objects, got {shown(specs)}")
    specs = list(specs)
    for spec in specs:
        if not isinstance(spec, RunSpec):
            raise TypeError(f"specs must hold RunSpec objects, got {shown(spec)}")
    return specs


def takes_thrash_ok(backend: Backend) -> bool:
    """Whether ``backend.run`` takes the ``thrash_ok`` keyword (or any keyword); one whose signature cannot be read is
    taken to (it is called as :class:`Backend` documents)."""
    import inspect

    try:
        params = inspect.signature(backend.run).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or (p.name == "thrash_ok" and p.kind is not p.POSITIONAL_ONLY) for p in params)


def _backend_run(backend: Backend, pending: list[Pending], out: Path, stats: RunStats, bar, thrash_ok: bool) -> None:
    """``backend.run``, with ``thrash_ok`` where it asks for it. A :class:`Backend` subclass written before
    ``thrash_ok`` existed (its ``run`` takes ``pending, out, stats, bar`` only: passing the keyword was a TypeError
    traceback) is called as it was then, so a preemption thrash stops the rest as before; where ``thrash_ok`` was
    asked for, the thrash's one line then says what to add to the backend to let the others go on."""
    if takes_thrash_ok(backend):
        backend.run(pending, out, stats, bar, thrash_ok=thrash_ok)
        return
    if not thrash_ok:
        backend.run(pending, out, stats, bar)
        return
    from ltrsched.policies.batching import ThrashError

    try:
        backend.run(pending, out, stats, bar)
    except ThrashError as exc:
        cls = type(backend)
        raise ThrashError(f"{exc} (backend {cls.__module__}.{cls.__qualname__} ran it without thrash_ok: its run takes "
                          "no such keyword, so the thrash stops every run; add a `thrash_ok: bool = False` parameter "
                          "to its run and record such runs in stats.stopped to let the others go on)") from None


def _run_here(pending: list[Pending], out: Path, stats: RunStats, bar, thrash_ok: bool = False) -> None:
    from ltrsched.policies.batching import ThrashError

    def one(s: RunSpec, h: str, wait: bool) -> str:
        try:
            return run_one(s, out, h, wait=wait)
        except ThrashError as exc:
            if not thrash_ok:
                raise
            stats.stopped[h] = str(exc)
            return STOPPED

    from ltrsched.progress import Heartbeat

    busy = []
    for s, h in pending:
        with Heartbeat(bar):  # (a run of minutes here shows a line about every 10 s off a terminal)
            status = one(s, h, False)
        if status == BUSY:
            busy.append((s, h))
            continue
        if status != STOPPED:
            stats.count(h, status)
        bar.update(1)
    for s, h in busy:  # computed by another process: wait for it (or compute it if that process failed)
        with Heartbeat(bar):
            status = one(s, h, True)
        if status != STOPPED:
            stats.count(h, status)
        bar.update(1)


def _raise_exit_line(exit_lines: str | None) -> None:
    """Raise :class:`PluginTimeoutError` with the line a pool worker left in the folder ``exit_lines`` before a stuck
    plugin call ended it (:func:`_init_worker`): the line a lone process prints, with its exit code 2. Nothing if no
    worker left one (it was killed, ran out of memory, crashed)."""
    from ltrsched.plugin_watchdog import PluginTimeoutError, exit_line_left_in

    names = sorted(os.listdir(exit_lines)) if exit_lines and os.path.isdir(exit_lines) else []
    lines = [line for line in (exit_line_left_in(os.path.join(exit_lines, n)) for n in names) if line]
    if lines:
        raise PluginTimeoutError(lines[0])


def _running(pool: cf.Executor, futures: Iterable[cf.Future]) -> int:
    """Runs under way on ``pool``: its futures running, at most its workers (a process pool marks one more than its
    workers running: the one queued for the next free worker)."""
    running = sum(1 for f in futures if f.running())
    workers = getattr(pool, "_max_workers", None)
    return min(running, workers) if isinstance(workers, int) else running


def _run_pool(pool: cf.ProcessPoolExecutor, pending: list[Pending], out: Path, stats: RunStats, bar,
              exit_lines: str | None = None, thrash_ok: bool = False) -> None:
    """Run ``pending`` on ``pool``; ``exit_lines``: the folder where its workers leave the line of a plugin call
    that ended them (:func:`_raise_exit_line`); ``thrash_ok``: as :meth:`Backend.run`."""
    from ltrsched.policies.batching import ThrashError

    from ltrsched.progress import beat, poll_s

    specs = dict((h, s) for s, h in pending)
    hashes: dict[cf.Future, str] = {pool.submit(_pool_task, s.to_dict(), str(out), h, False): h for s, h in pending}
    futures = set(hashes)
    error: BaseException | None = None
    seen: set[str] = set()
    wait_s = poll_s(bar)  # (off a terminal: wake to print a heartbeat while slow runs are under way)
    while futures:
        done, futures = cf.wait(futures, timeout=wait_s, return_when=cf.FIRST_COMPLETED)
        if not done:
            beat(bar, _running(pool, futures))
        for fut in done:
            if fut.cancelled():
                continue
            try:
                run_hash, status, notices = fut.result()
                report_notices(notices, seen, bar)
            except Exception as exc:  # re-raised below, after the others are written
                if thrash_ok and isinstance(exc, ThrashError):  # (this run only: the others go on)
                    stats.stopped[hashes[fut]] = str(exc)
                    bar.update(1)
                    continue
                if error is None:
                    error = exc
                    for f in futures:
                        f.cancel()
                continue
            if status == BUSY:  # another process is computing it: wait for it, last
                if error is None:
                    again = pool.submit(_pool_task, specs[run_hash].to_dict(), str(out), run_hash, True)
                    hashes[again] = run_hash
                    futures.add(again)
                continue
            stats.count(run_hash, status)
            bar.update(1)
    if isinstance(error, BrokenProcessPool):  # a worker was killed: every run under way is lost
        _raise_exit_line(exit_lines)
        raise RunFailedError(f"a worker process died (killed, out of memory or a crash) with runs under way; "
                             f"the {stats.total} finished runs are saved under {out / 'runs'}: run the command "
                             "again to resume (--backend ray runs a run whose worker died once more)")
    if error is not None:
        raise error
