"""``ltrsched replay`` (a workload on the engine), ``ltrsched profile`` (measure a step-time profile) and
``ltrsched validate`` (simulator vs engine)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import click

from ltrsched import atomic
from ltrsched.engine.config import check_policy_stops_at_eos
from ltrsched.errors import UserError, first_repeat, list_items
from ltrsched.names import check_printable, one_line, shown_path
from ltrsched.policies.needs import check_needs
from ltrsched.notices import work_starts
from ltrsched.outputs import OutFile
from ltrsched.sim.commands import build_workload, duration_note, workload_options
from ltrsched.command_line import RecordedCommand, command_line
from ltrsched.validation.engines import (check_context_before_start, check_emulated_fits, check_workload_for_engine,
                                        emulated_config, engine_config, engine_options, start_engine)


@click.command(cls=RecordedCommand)
@workload_options
@click.option("--policy", "-P", default="fcfs", show_default=True, help="Policy spec (see `ltrsched policies`).")
@engine_options
@click.option("--plugin", multiple=True, help="Module or .py file registering extra policies.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for requests.parquet, summary.json and steps.parquet (the engine's step log).")
def replay(workload, num_requests, arrival, rate, cv, duration, seed, policy, plugin, out, **engine):
    """Serve a workload on vLLM (its CPU build, or a GPU) with a policy, adding requests at their arrival times.

    Writes the simulator's files, so runs compare directly with `ltrsched simulate`.
    """
    from ltrsched.output_owner import check_output_owner
    from ltrsched.outputs import check_inputs_kept, check_out_dir
    from ltrsched.policies import load_plugin, make_policy
    from ltrsched.validation.outdir import RUN_FILES

    if out is not None:  # a run file's name taken by a directory: refused now, not after the engine run
        check_out_dir(out, files=RUN_FILES)
        check_output_owner(out, "replay", accepts=("engine-run",))  # (its own earlier run: replaced)
        check_inputs_kept({"--workload": workload, "--emulate": engine["emulate_profile"]},
                          files=tuple(out / name for name in RUN_FILES))
    for p in plugin:
        load_plugin(p)
    pol = make_policy(policy)
    cuts: list[tuple[int, int]] = []
    wl = build_workload(workload, num_requests, arrival, rate, cv, duration, seed, cuts=cuts)
    check_needs(pol, wl.has_column, f"workload {wl.name!r}")  # before the engine starts (minutes on a GPU)
    check_workload_for_engine(wl, engine["prompts"])
    if engine["emulate_profile"] is None:  # (requests too long for the model: refused once the engine had started)
        config = engine_config(**engine)
        check_policy_stops_at_eos(config, pol)  # (a policy adding output tokens with --eos model: likewise)
        check_context_before_start(wl, config, pol.extra_output_tokens, f"policy {pol.name}")
        wall_time_note(wl)
    work_starts()
    from ltrsched.signal_stops import SignalStops

    # (SIGTERM, SIGHUP: stopped as Ctrl-C stops it, the engine shut down and the same lines; SIGTERM ended the process
    # at once, exit 143 with no word)
    with SignalStops(), stopped_saying(lambda: replay_stopped_note(out)), start_engine(**engine) as eng:
        result = eng.run(wl, pol, progress=True)  # (a bar on a terminal, else a line about every 10 s)
        described = eng.describe()
    result.meta.update(arrival=arrival, rate=rate, seed=seed, command=command_line())
    click.echo(f"engine: {described}")
    click.echo(result.table())
    s = result.summary
    click.echo(f"{s['steps']} steps, {s['num_preemptions']} preemptions, plug-in overhead "
               f"{s['plugin_overhead_mean_s'] * 1e3:.3f} ms/step (p99 {s['plugin_overhead_p99_s'] * 1e3:.3f}), "
               f"{s['mismatched_steps']} steps differing from the plan")
    if "output_cap" in s:
        click.echo(f"stopped at the model's EOS: {s['num_capped']} of {s['num_finished']} requests hit the "
                   f"{s['output_cap']}-token cap; {s['num_label_mismatches']} generated a length other than the "
                   "workload's")
    if out is not None:
        result.save(out)
        click.echo("wrote " + ", ".join(shown_path(out / name) for name in ("requests.parquet", "summary.json",
                                                                            "steps.parquet")))
    note = duration_note(cuts, duration)  # (once it has run, as simulate's: a note before an error made it two lines)
    if note:
        click.echo(note, err=True)


@contextlib.contextmanager
def stopped_saying(note: Callable[[], str]) -> Iterator[None]:
    """Inside: a command stopped by Ctrl-C, SIGTERM or SIGHUP (a ``KeyboardInterrupt``: :mod:`ltrsched.signal_stops`)
    prints the line ``note()`` on stderr, what it kept and where, ahead of the CLI's ``aborted``."""
    try:
        yield
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # (SIGHUP: a terminal that hung up fails the write, not the stop)
            click.echo(note(), err=True)
        raise


def replay_stopped_note(out: Path | None) -> str:
    """What a ``replay`` stopped before its end kept: nothing (it writes its files once the run has ended)."""
    where = (f"nothing was written to {shown_path(out)} (a replay writes its files once its run has ended)"
             if out is not None else "nothing was written (no --out)")
    return f"note: replay stopped before its run ended: {where}"


def profile_stopped_note(out: Path) -> str:
    """What a ``profile`` stopped while its probes ran kept: nothing (the profile and its steps are written once every
    probe has run and the fit is made)."""
    return (f"note: profile stopped before its probes had all run: nothing was written to {shown_path(out)} (the steps "
            "measured so far are not kept)")


def validate_stopped_note(out: Path, engine_dirs: list[Path]) -> str:
    """What a ``validate`` stopped before its report kept: its engine runs that finished (``engine_dirs``, those with
    a ``summary.json``: written last, :meth:`~ltrsched.results.RunResult.save`), in ``out``, which the same command
    resumes from (:func:`_take_over`)."""
    done = sum((d / "summary.json").is_file() for d in engine_dirs)
    total = len(engine_dirs)
    if not done:
        return (f"note: validate stopped before its report: none of its {total} engine run(s) had finished, so none "
                f"is kept in {shown_path(out)}")
    return (f"note: validate stopped before its report: {done} of its {total} engine run(s) finished and are kept in "
            f"{shown_path(out / 'runs')}; the same command resumes with the other {total - done}")


#: Least wall time of a real engine's arrivals [s] above which ``replay`` says so before the engine starts.
LONG_REPLAY_S = 300.0


def wall_time_note(wl) -> None:
    """A ``note:`` line before the real engine starts where the workload's arrivals alone take more than
    :data:`LONG_REPLAY_S` of wall time (it adds requests in real time: a trace over an hour ran for an hour unsaid)."""
    from ltrsched.engine.runner import MAX_IDLE_WAIT_S, least_wall_time

    times = wl.df["arrival_time"].to_numpy()
    least = least_wall_time(times)
    if least > LONG_REPLAY_S:
        click.echo(f"note: the real engine adds requests at their arrival times, in wall-clock time: the last of "
                   f"{len(times):,} arrives at {float(times.max()):,.0f} s, so this replay takes at least "
                   f"{least:,.0f} s (an idle gap over {MAX_IDLE_WAIT_S:.0f} s is cut to it); a higher --rate "
                   "compresses the arrivals, --emulate PROFILE runs in virtual time", err=True)


@click.command(cls=RecordedCommand)
@engine_options
@click.option("--name", default=None, help="Profile name (default: <device>-<model>, e.g. cpu-llama-100m).")
@click.option("--out", "-o", type=OutFile(), required=True,
              help="Profile JSON to write (a steps.parquet of the measurements is written beside it).")
@click.option("--quick", is_flag=True, help="Fewer probes (one repeat, smaller batches): a fast check.")
@click.option("--repeats", type=int, default=None,
              help="Times each probe runs (default: 3 on a CPU, 2 on a GPU, 1 with --quick); the fit "
                   "minimises relative error and drops the worst-fitting 2% of steps (pauses, other processes).")
@click.option("--runs", type=int, default=1, show_default=True,
              help="Engine starts to measure the probes on, one after another, each in a fresh process; one "
                   "profile is fitted to their pooled steps. Two starts of the CPU engine minutes apart timed the "
                   "same probes up to 11% apart (VALIDATION.md).")
def profile(name, out, quick, repeats, runs, **engine):
    """Measure step times on the engine and write a simulator profile (JSON).

    Runs decode probes (batch sizes x context lengths) and prefill probes (chunk sizes) with FCFS, logs
    every step's shape and cycle time, and fits the simulator's step-time model (see PROFILES.md).
    """
    from ltrsched.outputs import check_inputs_kept, check_out_file
    from ltrsched.validation.probe_runs import check_probe_arguments, measure_probe_runs, pooled_steps

    check_out_file(out, "--out", ".json")
    steps_out = out.with_suffix(".steps.parquet")
    if steps_out.is_dir():  # found now, not after the probes ran
        raise UserError(f"--out {out}: {steps_out}, where the probes' steps are written, is a directory")
    check_inputs_kept({"--emulate": engine["emulate_profile"]}, files=(out, steps_out))
    from ltrsched.output_owner import check_profile_out

    check_profile_out(out)  # (a run's summary.json, a validation's manifest: written over after the probes)
    check_probe_arguments(repeats, runs)  # (typed as from Python: measure_probe_runs checks them too)
    if name is not None and not name.strip():  # (it wrote a profile named "", which reports then name by nothing)
        raise UserError(f"--name must name the profile, got {name!r} (leave it out for <device>-<model>)")
    if name is not None:  # (a line break in it split the report's tables and lines)
        check_printable(name, "--name")
    if engine["prompts"] != "random" or engine["eos"] != "ignore" or engine["max_tokens"] is not None:
        raise UserError("profile probes serve exact lengths: --prompts, --eos and --max-tokens do not apply")
    from ltrsched.validation.probe_cache import check_probe_cache, engine_before_start

    planned = engine_before_start(engine)  # (bad engine options: one line now, not from the first run's process)
    if engine.get("emulate_profile") is None:  # (the profile's model sizes: refused after measuring, else)
        from ltrsched.sim.kv_capacity import ModelShape, weight_bytes_per_gpu
        from ltrsched.validation.engines import engine_config, served_model_config

        config = engine_config(**engine)
        weight_bytes_per_gpu(ModelShape.from_config(served_model_config(config), source=f"model {config.model} (its "
                                                    "profile)"), config.tensor_parallel_size)  # (and its weights)
    if planned is not None:  # a KV cache too small for the probes: said before the engine starts
        check_probe_cache(planned, quick, repeats)

    def done(i, run):
        if runs > 1:
            click.echo(f"run {i + 1} of {runs}: {run.steps.height:,} steps measured", err=True)

    from ltrsched.signal_stops import SignalStops

    # (tqdm's bar on a terminal, else a line about every 10 s: the probes run for minutes; SIGTERM, SIGHUP stop them as
    # Ctrl-C does, where SIGTERM ended the process with no word)
    with SignalStops(), stopped_saying(lambda: profile_stopped_note(out)):
        measured = measure_probe_runs(engine, quick, repeats, runs, progress=True, on_run=done)
    steps = measured[0].steps if runs == 1 else pooled_steps(measured)
    # the measurement first: a fit or a fitted profile refused (save_profile's checks of the file it would write)
    # lost the steps the probes had measured, minutes of an engine's time
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_parquet(steps_out, steps)
    try:
        _fit_and_save(steps, measured, name, out)
    except UserError as exc:
        raise UserError(f"{exc}; the {steps.height:,} measured steps are kept in {shown_path(steps_out)}") from None


def _fit_and_save(steps, measured, name: str | None, out: Path) -> None:
    """``profile``'s fit of the probes' ``steps`` (pooled from the ``measured`` runs), written to ``out`` as a profile
    named ``name`` (None: ``<device>-<model>``), and its lines; a :class:`UserError` where the fit or the file it
    would write is refused."""
    from ltrsched.sim.profiles.io import save_profile
    from ltrsched.validation.profiling import fit_steps, fitted_profile
    from ltrsched.validation.step_time_ratio import step_time_ratio

    first, runs = measured[0], len(measured)
    try:
        fit = fit_steps(steps, overhead_from_log=not first.emulated)
    except ValueError as exc:
        fix = ""
        if str(exc).startswith("too few usable steps"):  # (it named no cause: a KV cache too small for the probes)
            fix = (f": the engine's KV cache of {first.num_gpu_blocks} blocks x {first.config.block_size} tokens "
                   "holds too few probes; give a larger --kv-cache-gib or more --num-gpu-blocks")
        raise UserError(f"{exc}{fix}") from None
    config, device = first.config, first.device
    name = name or f"{device.short_name}-{Path(config.model).name}"
    provenance = {"command": command_line(), "host": first.host, "host_info": first.host_info,
                  "probe_requests": first.probe_requests, "repeats": first.plan_repeats, "engine": asdict(config)}
    prof = fitted_profile(
        fit, name=name, gpu=device.name, model=config.model, model_config=first.model_config,
        gpu_memory_bytes=device.memory_bytes, description=f"measured on {first.host} by `{command_line()}`",
        engine_num_gpu_blocks=first.num_gpu_blocks, gpu_memory_utilization=device.memory_utilization,
        tensor_parallel=config.tensor_parallel_size, host_link_bytes_per_s=device.host_link_bytes_per_s,
        block_size=config.block_size, max_model_len=first.max_model_len, provenance=provenance,
    )
    speeds = [step_time_ratio(run.steps, prof) for run in measured] if runs > 1 else []
    if runs > 1:  # each start's speed against the pooled fit: how far one start's profile would have been off
        prof.provenance["runs"] = [{"host": run.host, "steps": run.steps.height, "speed_vs_fit": speed}
                                   for run, speed in zip(measured, speeds)]
    save_profile(prof, out)
    f = fit.summary()
    click.echo(f"wrote {shown_path(out)} ({fit.num_samples} steps fitted: median error {f['median_rel_error']:.1%}, "
               f"P90 {f['p90_rel_error']:.1%}; CPU overhead {fit.overhead_s_per_step * 1e3:.2f} ms/step)")
    if runs > 1:
        click.echo(f"{runs} engine starts pooled; each one's measured time over the fit's: "
                   + ", ".join(f"{v:.3f}" for v in speeds))


@click.command(cls=RecordedCommand)
@workload_options
@click.option("--policies", default="fcfs,srtf,ltr:tau=0.6,ltr:tau=0.6,starve=200,quantum=10,mlfq",
              show_default=True, help="Policy specs separated by ';' (or ',' between specs without parameters).")
@click.option("--rates", default=None,
              help="Poisson rates [req/s] separated by ','; 'auto' = 50%, 100% and 150% of the capacity the "
                   "simulator predicts (its burst throughput). Each rate is a case besides the --arrival one.")
@click.option("--profile", "-p", "sim_profile", default=None,
              help="Simulator profile (default: the --emulate profile; on a CPU the built-in cpu-<model> "
                   "profile measured on our machine; on a GPU h100-llama3-8b).")
@engine_options
@click.option("--repeats", type=int, default=1, show_default=True,
              help="Engine runs per case and policy: with 2 or more, the report gives the engine's own "
                   "run-to-run noise beside each simulator error, and gates by max(tolerance, 2x noise).")
@click.option("--spread-repeats", is_flag=True,
              help="Run the repeats as passes over every case, each pass on an engine start of its own (a fresh "
                   "process), odd passes in reverse order: the repeat noise then includes the engine start's speed "
                   "and the machine's drift over the validation, not only two runs minutes apart.")
@click.option("--tolerance", type=float, default=0.05, show_default=True, help="Gate for the report's count.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("validation"),
              show_default=True, help="Report directory (validation.md/.csv/.png, runs/, validate-manifest.json); "
                                      "an earlier validation there is replaced, or resumed (--resume).")
@click.option("--resume/--no-resume", default=None,
              help="--resume: keep the engine runs an earlier start of this same validation (every argument the "
                   "same) completed in --out, and run only the others; refused if --out holds another validation. "
                   "--no-resume: run everything again. [default: resume when --out holds this same validation "
                   "unfinished (killed, Ctrl-C, an error); refuse another unfinished one with completed engine "
                   "runs; else replace what is there]")
def validate(workload, num_requests, arrival, rate, cv, duration, seed, policies, rates, sim_profile, repeats,
             spread_repeats, tolerance, out, resume, **engine):
    """Run the same workload and policies on the engine and in the simulator; report the differences.

    The simulator models the engine exactly as the adapter drives it (--semantics vllm-v1, recompute,
    the engine's own KV block count and block size); the remaining difference is step timing (the profile).
    """

    from ltrsched.output_owner import check_output_owner
    from ltrsched.outputs import check_inputs_kept, check_out_dir
    from ltrsched.policies import make_policy
    from ltrsched.policies.registry import check_distinct_policies
    from ltrsched.sim import simulate
    from ltrsched.sim.profiles import load_profile
    from ltrsched.validation.compare import ValidationTally
    from ltrsched.validation.outdir import check_validation_dir, finish_validation
    from ltrsched.validation.own_speed import simulate_at_speed, too_fast_to_simulate
    from ltrsched.policies.batching import thrash_named
    from ltrsched.validation.engine_passes import describe_engine_run
    from ltrsched.validation.resume import arguments_digest, validation_arguments
    check_out_dir(out)
    from ltrsched.experiments.runlock import run_lock
    from ltrsched.validation.outdir import LOCK, MANIFEST, REPORT_FILES

    check_inputs_kept({"--workload": workload, "--profile": sim_profile, "--emulate": engine["emulate_profile"]},
                      files=tuple(out / name for name in (*REPORT_FILES, MANIFEST)), dirs=(out / "runs",))
    check_output_owner(out, "validate", accepts=("validation",))  # (a replay's, a sweep's: refused)
    previous = check_validation_dir(out)  # files of another validation there: refused before the engine starts
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise UserError(f"--tolerance must be a relative error >= 0, got {tolerance}")
    if not 1 <= repeats <= 100:
        raise UserError(f"--repeats must be in [1, 100], got {repeats}")
    specs = _split_policies(policies)
    if rates is not None and not rates:  # (it ran no rate at all, silently: `--rates "$RATES"` with RATES unset)
        raise UserError("--rates is empty: give rates [req/s] separated by ',' or 'auto', or leave the option out")
    rate_values = _parse_rates(rates) if rates and rates.strip() != "auto" else None
    if sim_profile is not None:  # ("" was the default profile, silently)
        load_profile(sim_profile)
    cuts: list[tuple[int, int]] = []  # (each case's kept and total requests, with --duration)
    first = build_workload(workload, num_requests, arrival, rate, cv, duration, seed, cuts=cuts)
    for s in specs:  # bad specs, and columns a policy needs, fail before the engine starts
        check_needs(make_policy(s), first.has_column, f"workload {first.name!r}")
    check_distinct_policies(specs, "--policies")  # (two spellings of one policy: its engine runs twice)
    check_workload_for_engine(first, engine["prompts"])
    config = engine_config(**engine)  # bad engine options and the platform, before anything runs
    for s in specs:  # (a policy adding output tokens with --eos model: refused once the real engine had started)
        check_policy_stops_at_eos(config, make_policy(s))
    sim_profile = _default_profile(config, engine["emulate_profile"]) if sim_profile is None else sim_profile
    cases = [(arrival, rate)]
    if rates:
        rate_values = rate_values or _auto_rates(workload, num_requests, seed, sim_profile, config,
                                                 engine["emulate_profile"])
        cases += [("poisson", r) for r in rate_values]
    names = [_case_label(arr, r) for arr, r in cases]
    twice = first_repeat(names)
    if twice is not None:  # its runs would overwrite each other's files and count twice in the report
        where = "--arrival/--rate and --rates" if names[0] == twice else "--rates"  # ('1,1' named --rate too)
        raise UserError(f"the case {twice} is given twice ({where}): give each rate once")
    # every case's workload before the engine starts: a rate the workload refuses fails now, not after the
    # earlier cases' engine runs
    workloads = [first] + [build_workload(workload, num_requests, arr, r, 1.0, duration, seed, cuts=cuts)
                           for arr, r in cases[1:]]
    # (requests too long for the model or its KV cache: refused once the engine had started, after the take-over of
    # --out below had removed an earlier validation there)
    # (the policy that needs most, named: of several, "the policy's extra output tokens" left the reader to guess)
    extra, most = max((make_policy(s).extra_output_tokens, s) for s in specs)
    for wl in workloads:
        if engine["emulate_profile"] is None:
            check_context_before_start(wl, config, extra, f"policy {most}")
        else:
            check_emulated_fits(wl, config, engine["emulate_profile"], extra, f"policy {most}")
    step_profile = load_profile(sim_profile)
    for mismatch in (sampling_mismatch(step_profile, config), model_mismatch(step_profile, config,
                                                                             engine["emulate_profile"])):
        if mismatch:  # (on one line: a profile file's name, model or path may hold a line break)
            click.echo(f"note: {one_line(mismatch)}", err=True)
    engine_dirs = [f"engine-{k}" for k in range(repeats)] if repeats > 1 else ["engine"]
    run_dirs = [_run_dir(out, case, spec) / d for case in names for spec in specs for d in (*engine_dirs, "sim")]
    options = {"--workload": workload, "-n": num_requests, "--arrival": arrival, "--rate": rate, "--cv": cv,
               "--duration": duration, "--seed": seed, "--policies": specs, "--rates": rates,
               "--profile": sim_profile, "--repeats": repeats, "--spread-repeats": spread_repeats,
               "--tolerance": tolerance}
    arguments = validation_arguments(options, engine, config, names, workloads,
                                     [d.relative_to(out).as_posix() for d in run_dirs])
    digest = arguments_digest(arguments)
    dirs = {(case, spec, k): _run_dir(out, case, spec) / d for case in names for spec in specs
            for k, d in enumerate(engine_dirs)}
    out.mkdir(parents=True, exist_ok=True)  # (this validation's, from here on: one validate at a time in --out)
    if not click.get_current_context().with_resource(run_lock(out / LOCK, wait=False)):
        raise UserError(f"--out {out} is in use by another `ltrsched validate`, still running: wait for it to end, "
                        "or give another --out")
    previous = check_validation_dir(out)  # (again, now that no other validate can change it)
    kept = _take_over(out, previous, resume, arguments, digest, dirs, run_dirs,
                      {case: wl.df["request_id"].to_list() for case, wl in zip(names, workloads)})
    work_starts()  # (the engine runs take minutes: the notes above are news now)
    from ltrsched.signal_stops import SignalStops

    # (SIGTERM, SIGHUP: stopped as Ctrl-C stops it, its finished engine runs kept for the same command to resume;
    # SIGTERM ended the process at once with no word)
    with SignalStops(), stopped_saying(lambda: validate_stopped_note(out, list(dirs.values()))):
        cases_run = list(zip(names, workloads))
        meta = {"validation": digest}
        if spread_repeats:
            facts, prepared, engine_runs = _engine_passes(engine, cases_run, specs, out, engine_dirs, meta, kept)
        else:
            facts, prepared, engine_runs = _engine_adjacent(engine, cases_run, specs, out, engine_dirs, repeats, meta,
                                                            kept)
        tally = ValidationTally()
        sim_config = facts.sim_config(sim_profile, config)
        too_fast: list[tuple[str, float]] = []  # (engine runs too fast for the simulator at their own speed, factors)
        for case, wl in zip(names, prepared):
            engs = engine_runs[case]
            sims = {}
            for spec in specs:
                for k, e in enumerate(engs[spec]):
                    factor = tally.add_engine_run(case, spec, k, e, step_profile)
                    with thrash_named("simulator run at the speed of engine run "
                                      f"{describe_engine_run(spec, case, k, dirs[case, spec, k])}"):
                        at_speed = simulate_at_speed(wl, spec, sim_config, step_profile, factor)
                    if at_speed is None and too_fast_to_simulate(step_profile, factor):
                        too_fast.append((describe_engine_run(spec, case, k, dirs[case, spec, k]), factor))
                    tally.add_own_speed(case, spec, k, factor, at_speed, e)
                sim_dir = _run_dir(out, case, spec) / "sim"
                with thrash_named(f"simulator run {describe_engine_run(spec, case, None, sim_dir)}"):
                    s = simulate(wl, make_policy(spec), sim_config)
                s.save(sim_dir)
                sims[spec] = s
                click.echo(tally.add_policy(case, spec, s, engs[spec]))
            tally.end_case(case, sims, engs)
        emulated = engine["emulate_profile"] is not None
        total = len(dirs)
        resumed = None
        if kept is not None:
            resumed = (f"resumed: {len(kept)} of {total} engine runs kept from an earlier start of this validation, "
                       f"{total - len(kept)} run now")
            click.echo(resumed)
        md = tally.write(out, f"Simulator ({sim_profile}) vs {'the emulated engine' if emulated else 'vLLM'}",
                         command_line(), tolerance, host=facts.host, repeats=repeats,
                         spread=spread_repeats and repeats > 1, note=resumed and resumed[0].upper() + resumed[1:] + ".")
        finish_validation(out)
    click.echo(f"report: {shown_path(md)}")
    if too_fast:
        click.echo(f"note: {too_fast_note(too_fast, sim_profile)}", err=True)
    # (once for the validation, each engine run counted: a case's policies and repeats share its workload)
    note = duration_note([cut for cut in cuts for _ in range(len(specs) * repeats)], duration)
    if note:
        click.echo(note, err=True)


def _take_over(out: Path, previous, resume: bool | None, arguments: dict, digest: str, dirs: dict,
               run_dirs: list[Path], request_ids: dict[str, list]):
    """Make ``out`` this validation's: resume ``previous`` (``--resume``, or by default when it is this same
    validation, unfinished) or replace it. Returns the kept engine runs ((case, spec, repeat) -> run) when
    resuming, else None; ``request_ids``: each case's workload's, which a kept run must have served. ``--resume``
    with another validation in ``out`` is a one-line error naming what differs. Before the engine starts."""
    from ltrsched.validation.outdir import replace_validation, resume_validation
    from ltrsched.validation.resume import first_difference, kept_runs

    command = command_line()
    recorded = previous is not None and bool(previous.runs)
    differs = None
    if recorded:
        differs = ("written by an earlier ltrsched, which did not record its arguments"
                   if previous.arguments is None else first_difference(previous.arguments, arguments))
    if resume and recorded and differs:
        raise UserError(f"--resume: --out {out} holds another validation ({differs}): give a new --out, or leave "
                        "out --resume to replace it")
    done = previous.engine_runs_done() if recorded and differs and resume is None and not previous.finished else 0
    if done:  # (a mistyped rerun of a killed validation would delete the hour of runs it came to resume)
        raise UserError(f"--out {out} holds an unfinished validation with {done} completed engine run(s) that differs "
                        f"from this one ({differs}): rerun its own command to resume it (`{previous.command}`), give "
                        "a new --out, or add --no-resume to replace it")
    if resume is False or not recorded or differs or (resume is None and previous.finished):
        if resume and not recorded:
            click.echo(f"note: --resume: {shown_path(out)} holds no earlier validation; every run starts now", err=True)
        replace_validation(out, previous, run_dirs, command, arguments)
        if recorded:
            why = (f"another validation: {differs}" if differs else
                   "this same validation, finished; --resume would have kept its engine runs" if resume is None else
                   "this same validation; --no-resume")
            click.echo(f"note: {shown_path(out)} held an earlier validation (`{previous.command}`: {why}); its runs and report "
                       "were removed for this one's", err=True)
        return None
    not_kept: list[str] = []
    kept = kept_runs(dirs, digest, request_ids, not_kept)
    if not_kept:  # (edited by hand: a traceback, or a report of numbers no engine measured)
        more = f" (and {len(not_kept) - 1} more)" if len(not_kept) > 1 else ""
        click.echo(f"note: {len(not_kept)} engine run(s) of this validation in {shown_path(out)} are not kept, and run "
                   f"again: {not_kept[0]}{more}", err=True)
    resume_validation(out, previous, [dirs[key] for key in kept], command)
    click.echo(f"note: resuming the {'finished' if previous.finished else 'unfinished'} validation in {shown_path(out)}: "
               f"{len(kept)} of {len(dirs)} engine runs kept{'' if resume else ' (--no-resume runs them all again)'}",
               err=True)
    return kept


def _engine_adjacent(engine: dict, cases: list, specs: list[str], out: Path, engine_dirs: list[str], repeats: int,
                     meta: dict, kept: dict | None):
    """Every engine run on one engine started here, case by case, a case's repeats one after another (they
    interleave the policies, so drift on the machine hits each alike); each run saved with ``meta``. ``kept``: a
    resumed validation's complete runs ((case, spec, repeat) -> run), not run again (no engine starts when
    every run is kept). Returns the engine's facts, each case's workload as the engine served it, and the runs by
    case and policy."""
    kept = kept or {}
    todo = len(cases) * len(specs) * repeats - len(kept)
    eng = start_engine(**engine) if todo else None
    try:
        return _runs_on(eng, engine, cases, specs, out, engine_dirs, repeats, meta, kept)
    finally:
        if eng is not None:
            eng.close()


def _runs_on(eng, engine: dict, cases: list, specs: list[str], out: Path, engine_dirs: list[str], repeats: int,
             meta: dict, kept: dict):
    """:func:`_engine_adjacent`'s runs on ``eng``, the engine it started (None: every run kept)."""
    from ltrsched.validation.engine_passes import EngineFacts, run_one, runs_progress
    from ltrsched.validation.resume import KeptEngine, engine_facts, served_workload

    if eng is not None:
        facts = EngineFacts.of(eng)
        click.echo(f"engine: {facts.host}")
    else:
        facts = engine_facts(next(iter(kept.values())))
        click.echo(f"engine: not started, every engine run kept (they ran on {facts.host})")
    prepared, runs = [], {}
    for case, wl in cases:
        if eng is not None:
            wl = eng.prepare(wl)  # --prompts text: the served model's prompt lengths, for the simulator too
        else:
            wl = served_workload(wl, next(r for (c, _, _), r in kept.items() if c == case), engine["prompts"])
        prepared.append(wl)
        runs[case] = {spec: [] for spec in specs}
    if eng is not None and kept:  # another engine than the kept runs' refused before a run starts
        KeptEngine.of(kept).check(facts, {case: wl for (case, _), wl in zip(cases, prepared)}, "the engine started now")
    todo = len(cases) * len(specs) * repeats - len(kept)
    with runs_progress(todo, "validate") as bar:  # (and each run's requests: a terminal's bar, else a line per ~10 s)
        for (case, _), wl in zip(cases, prepared):
            engs = runs[case]
            for k in range(repeats):
                for spec in specs:
                    run = kept.get((case, spec, k))
                    if run is None:
                        run = run_one(eng, wl, spec, _run_dir(out, case, spec) / engine_dirs[k], True, case=case,
                                      repeat=k, command=command_line(), engine_facts=asdict(facts), **meta)
                        bar.update(1)
                    engs[spec].append(run)
    return facts, prepared, runs


def _engine_passes(engine: dict, cases: list, specs: list[str], out: Path, engine_dirs: list[str], meta: dict,
                   kept: dict | None):
    """``--spread-repeats``: repeat k of every case in pass k, each on an engine start of its own
    (:mod:`~ltrsched.validation.engine_passes`), the runs in ``kept`` not run again (a pass with none left starts
    no engine); same returns as :func:`_engine_adjacent`, the runs read back from their directories."""
    from ltrsched.results import RunResult
    from ltrsched.validation.engine_passes import run_passes
    from ltrsched.validation.resume import engine_facts, served_workload

    kept = kept or {}

    def started(k, done):
        click.echo(f"engine start {k + 1} of {len(engine_dirs)} " +
                   ("not needed: its runs are kept" if done is None else f"done: {done.facts.host}"))

    passes = run_passes(engine, cases, specs, lambda case, spec, k: _run_dir(out, case, spec) / engine_dirs[k],
                        len(engine_dirs), command_line(), progress=True, on_pass=started, meta=meta,
                        kept=kept)
    runs = {case: {spec: [kept.get((case, spec, k)) or RunResult.load(_run_dir(out, case, spec) / d)
                          for k, d in enumerate(engine_dirs)] for spec in specs}
            for case, _ in cases}
    ran = next((p for p in passes if p is not None), None)
    if ran is not None:
        return ran.facts, ran.workloads, runs
    first = next(iter(kept.values()))
    return engine_facts(first), [served_workload(wl, next(r for (c, _, _), r in kept.items() if c == case),
                                                 engine["prompts"]) for case, wl in cases], runs


def _case_label(arrival: str, rate: float | None) -> str:
    """A case's name in the report and its run directory: ``burst``, ``poisson@0.4/s``."""
    return arrival if rate is None else f"{arrival}@{rate:g}/s"


def _run_dir(out: Path, case: str, spec: str) -> Path:
    return out / "runs" / case.replace("/", "_") / spec.replace(":", "_").replace(",", "_")


def too_fast_note(runs: list[tuple[str, float]], profile: str) -> str:
    """The note that the report leaves out the simulator at the own speed of ``runs`` (each engine run named, with
    its step-time ratio to ``profile``'s step times): at that speed a step would take less than the simulator's
    shortest."""
    from ltrsched.sim.profiles.model import MIN_STEP_S

    (first, ratio), more = runs[0], len(runs) - 1
    return one_line(f"engine run {first}{f' (and {more} more)' if more else ''} took {ratio:.3g} times the step "
                    f"times of profile {profile}; the report leaves out the simulator at that speed, where a step "
                    f"would take less than the simulator's shortest ({MIN_STEP_S:g} s): is the profile one of this "
                    "model on this device?")


#: The sizes of a model (:class:`~ltrsched.sim.kv_capacity.ModelShape`'s) that tell two models apart.
MODEL_SIZES = ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "intermediate_size", "vocab_size")


def model_mismatch(profile, config, emulate_profile: str | None) -> str | None:
    """Why ``profile`` (the simulator's) times another model than the engine of ``config`` serves (the model of the
    ``emulate_profile`` where one is emulated), by the first of :data:`MODEL_SIZES` that differs; None where they
    agree or the served model's sizes cannot be read (the engine's start says why). ``validate -p`` with a profile
    of a 70B model beside an engine serving a tiny one compared their runs without a word."""
    from ltrsched.sim.kv_capacity import ModelShape
    from ltrsched.sim.profiles import load_profile
    from ltrsched.validation.engines import served_model_config

    try:
        if emulate_profile is not None:
            served = load_profile(emulate_profile)
            shape, model = served.model_shape, f"{served.model} (profile {emulate_profile})"
        else:
            shape, model = ModelShape.from_config(served_model_config(config), source=config.model), config.model
    except (UserError, OSError, ValueError):  # (a note only: the engine's start refuses such a model in its words)
        return None
    ours = profile.model_shape
    differs = next((size for size in MODEL_SIZES if getattr(ours, size) != getattr(shape, size)), None)
    if differs is None:
        return None
    return one_line(f"the profile {profile.name} times a model of other sizes ({profile.model}: {differs} "
                    f"{getattr(ours, differs)}) than the engine serves ({model}: {getattr(shape, differs)}), so the "
                    "simulator's step times are another model's: give --profile a profile of this model "
                    "(`ltrsched profile`)")


def sampling_mismatch(profile, config) -> str | None:
    """Why ``profile`` times other sampling than the runs of ``config`` draw (drawing tokens at temperature 1 costs a
    CPU engine ~1 ms per sequence more than greedy decoding), or None. A measured profile's probes drew tokens as
    its recorded engine settings say (``random`` for those measured before the setting existed); profiles that
    record no engine (the GPU tables) are not judged."""
    from ltrsched.engine.platform import CPU

    engine = (getattr(profile, "provenance", None) or {}).get("engine")
    if not isinstance(engine, dict) or config.platform != CPU:
        return None
    measured = engine.get("sampling") or "random"
    if measured == config.sampling:
        return None
    return (f"the profile {profile.name} was measured with {measured} sampling and these runs decode "
            f"{config.sampling}: the simulator's decode steps will be off by the difference "
            f"(measure one with `ltrsched profile --sampling {config.sampling}`)")


def _default_profile(config, emulate_profile: str | None) -> str:
    """The simulator profile that models the engine: the emulated one, a built-in profile measured for the
    CPU model served, or the H100 profile on a GPU."""
    from pathlib import Path as _Path

    from ltrsched.engine.platform import CPU
    from ltrsched.sim.profiles import builtin_profiles

    if emulate_profile:
        return emulate_profile
    if config.platform == CPU:
        name = f"cpu-{_Path(config.model).name}"
        if name in builtin_profiles():
            return name
        raise UserError(f"no built-in profile for model {config.model!r} on a CPU: measure one with "
                        f"`ltrsched profile --model {config.model} --out cpu.json` and pass --profile cpu.json")
    return "h100-llama3-8b"


def _split_policies(text: str) -> list[str]:
    """``a;b:x=1,y=2`` -> [a, b:x=1,y=2]; without ';', commas split specs that have no parameters."""
    if ";" in text:
        specs = list_items(text, ";", "--policies")  # (an empty item is an error: it was skipped silently)
        if not specs:
            raise UserError("--policies is empty")
        return _once(specs)
    specs: list[str] = []
    for part in list_items(text, ",", "--policies"):
        if specs and ("=" in part and ":" not in part):
            specs[-1] += "," + part  # a parameter of the previous spec
        else:
            specs.append(part)
    if not specs:
        raise UserError("--policies is empty")
    return _once(specs)


def _once(specs: list[str]) -> list[str]:
    """``specs``, or a one-line error naming one given twice (its runs would pool as repeats of one policy)."""
    twice = first_repeat(specs)
    if twice is not None:
        raise UserError(f"--policies names {twice!r} twice; give each policy once (--repeats runs each again)")
    return specs


def _auto_rates(workload, num_requests, seed, sim_profile, config,
                emulate_profile: str | None = None) -> list[float]:
    """--rates auto: 50%, 100% and 150% of the burst throughput the simulator predicts for the engine's
    settings (``config``, an EngineConfig), its context ``--max-model-len`` where given (else the profile's): a
    workload of reasoning-length outputs under --max-model-len 16500 was refused at the profile's 8,192 tokens.
    ``emulate_profile``: the emulated engine's, whose KV blocks and context are sized as it sizes them; the real
    engine's blocks are those its options state (the CPU's --kv-cache-gib). Either engine's --kv-cache-gib was left
    out: the capacity of the profile's whole memory."""
    from dataclasses import replace

    from ltrsched.engine.config import model_dir, stated_kv_blocks
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate
    from ltrsched.sim.config import ConfigError, option_naming

    if emulate_profile is not None:
        config = emulated_config(config, emulate_profile)[0]
    elif config.num_gpu_blocks is None:  # (None: a GPU's, which vLLM sizes as it starts)
        config = replace(config, num_gpu_blocks=stated_kv_blocks(config, model_dir(config.model)))

    wl = build_workload(workload, num_requests, "burst", None, 1.0, None, seed)
    try:  # (a GPU's cache, unstated, is the profile's memory's: a --max-model-len beyond it is refused in one line)
        burst = simulate(wl, make_policy("fcfs"), SimConfig(
            profile=sim_profile, semantics="vllm-v1", preemption="recompute", max_num_seqs=config.max_num_seqs,
            max_num_batched_tokens=config.max_num_batched_tokens, max_resident_seqs=config.max_resident_seqs,
            block_size=config.block_size, num_gpu_blocks=config.num_gpu_blocks and config.num_gpu_blocks - 1,
            max_model_len=config.max_model_len))
    except ConfigError as exc:
        raise UserError(f"--rates auto: {exc.render(option_naming(validate.params))}") from None
    capacity = burst.summary["throughput_rps"]
    return [_rounded_rate(f * capacity) for f in (0.5, 1.0, 1.5)]


def _rounded_rate(rate: float) -> float:
    """``rate`` [req/s] to 2 decimals, or 2 significant digits below 0.1 req/s (2 decimals made a slow
    engine's 0.004 req/s a rate of 0 and its 50% and 100% rates one case)."""
    return round(rate, max(2, 1 - math.floor(math.log10(rate))))


def _parse_rates(text: str) -> list[float]:
    """The Poisson rates of --rates [req/s]."""
    from ltrsched.numbers import plain_number_text

    try:  # (not float("0_5"), 5.0, for a typo of 0.5, nor non-ASCII digits: as policy specs' numbers)
        values = [float(plain_number_text(x)) for x in list_items(text, ",", "--rates")]
    except ValueError:
        raise UserError(f"--rates must be numbers separated by ',' or 'auto', got {text!r}") from None
    if not values:  # (only commas or spaces: no rate at all, not a rate that is not positive)
        raise UserError(f"--rates must be numbers separated by ',' or 'auto', got {text!r}")
    if any(not (math.isfinite(v) and v > 0) for v in values):
        raise UserError(f"--rates must be positive, got {text!r}")
    from ltrsched.sim.rates import check_rate

    for i, v in enumerate(values):  # (a rate out of range was named as --rate's)
        check_rate(v, f"--rates item {i + 1} of {len(values)}:")
    return values
