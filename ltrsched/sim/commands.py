"""``ltrsched simulate``: one workload, one policy, one simulated replica or a cluster of them."""

from __future__ import annotations

import functools
import math
from contextlib import nullcontext
from pathlib import Path

import click

from ltrsched.errors import UserError
from ltrsched.names import one_line, shown_path
from ltrsched.numbers import grouped
from ltrsched.outputs import OutFile
from ltrsched.strict_json import fmt

ARRIVALS = ("burst", "poisson", "gamma", "replay")


def workload_options(fn):
    """Options that pick a workload and its arrival process (shared by simulate and sweep)."""
    options = [
        click.option("--workload", "-w", default="sharegpt", show_default=True,
                     help="Built-in name (see `ltrsched workloads`) or a file: .parquet, .jsonl "
                          "({prompt, generated} or {prompt, output_tokens}), ShareGPT .json, or a length-only .csv "
                          "trace."),
        click.option("--num-requests", "-n", type=int, default=None,
                     help="Requests to sample from the workload (seeded); default: all."),
        click.option("--arrival", type=click.Choice(ARRIVALS), default="burst", show_default=True,
                     help="burst: all at t=0 (takes no --rate or --duration); poisson/gamma: at --rate; "
                          "replay: the file's timestamps (scaled to --rate if given)."),
        click.option("--rate", type=float, default=None,
                     help="Mean arrival rate [req/s] of poisson/gamma arrivals, or of a replayed trace, from 1e-8 to "
                          "1e9; refused with burst arrivals (add --arrival poisson)."),
        click.option("--cv", type=float, default=1.0, show_default=True,
                     help="Coefficient of variation of gamma inter-arrival times (--arrival gamma only; "
                          "1 is Poisson)."),
        click.option("--duration", type=float, default=None,
                     help="Keep only requests arriving in the first DURATION seconds (not with burst arrivals)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampling and arrivals."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


def engine_options(fn):
    """Options of the simulated engine (shared by simulate and sweep)."""
    options = [
        click.option("--profile", "-p", default="a100-llama3-8b", show_default=True,
                     help="Step-time profile: built-in name (see `ltrsched profiles`) or a profile JSON file."),
        click.option("--max-num-batched-tokens", type=int, default=768, show_default=True,
                     help="Token budget per step [tokens]."),
        click.option("--max-num-seqs", type=int, default=256, show_default=True, help="Sequence cap per step."),
        click.option("--num-gpu-blocks", type=int, default=None,
                     help="KV-cache capacity [blocks of --block-size tokens]; default: derived from the profile."),
        click.option("--gpu-memory-utilization", type=float, default=0.9, show_default=True,
                     help="Share of the profile's GPU memory for weights and KV cache, in (0, 1]: the KV "
                          "capacity is what it leaves after the weights and an activation reserve (not with "
                          "--num-gpu-blocks)."),
        click.option("--max-model-len", type=int, default=None,
                     help="Longest prompt + output a request may have [tokens]; default: the profile's "
                          "(8,192 for the Llama-3 profiles), bounded by what the KV cache holds "
                          "(its blocks x --block-size), as vLLM bounds an engine's; one given beyond what it holds "
                          "is refused, as vLLM refuses it."),
        click.option("--semantics", type=click.Choice(["paper", "vllm-v1"]), default="paper", show_default=True,
                     help="Batch rules: the paper's, or exactly what the vLLM V1 adapter does (resident "
                          "requests get the budget first, max-num-seqs caps requests holding KV, recompute)."),
        click.option("--max-resident-seqs", type=int, default=None,
                     help="Cap on requests holding KV (running + paused) [default: none; max-num-seqs with "
                          "--semantics vllm-v1]."),
        click.option("--preemption", type=click.Choice(["swap", "recompute"]), default=None,
                     help="Preemption under KV pressure [default: swap; recompute with --semantics vllm-v1]."),
        click.option("--chunked-prefill/--no-chunked-prefill", default=True, show_default=True,
                     help="Split a prompt's prefill over steps under --max-num-batched-tokens (off: a prompt "
                          "longer than the budget is refused)."),
        click.option("--plugin", multiple=True, help="Module or .py file registering extra policies or routers."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


def build_workload(workload, num_requests, arrival, rate, cv, duration, seed, notes: list[str] | None = None,
                   cuts: list[tuple[int, int]] | None = None):
    """Load a workload and apply its arrival process, validating the numbers first. ``notes``: where to add a
    note for the user (:func:`own_arrivals_note`), printed by the command once it has run (a note printed before
    an error would make the error two lines). ``cuts``: where to add ``(kept, total)`` requests with a
    ``duration`` (for a command building several workloads that notes the cut once:
    :func:`duration_note`)."""
    from ltrsched.workloads import apply_arrivals, load_workload
    from ltrsched.workloads.arrivals import thinned_replay_note

    if num_requests is not None and num_requests <= 0:
        raise UserError(f"--num-requests must be positive, got {num_requests}")
    if rate is not None:
        from ltrsched.sim.rates import check_rate

        check_rate(rate, "--rate")
    if arrival in ("poisson", "gamma") and rate is None:
        raise UserError(f"--arrival {arrival} needs --rate")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise UserError(f"--duration must be positive, got {duration}")
    if not (math.isfinite(cv) and cv > 0):
        raise UserError(f"--cv must be positive, got {cv}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if seed >= 2**64:  # (polars and numpy take 64-bit seeds)
        raise UserError(f"--seed must be below 2**64, got {seed}")
    check_arrival_options(arrival, rate, cv, duration)
    wl = load_workload(workload, num_requests=num_requests, seed=seed)
    if arrival == "burst" and notes is not None:
        note = own_arrivals_note(wl)
        if note:
            notes.append(note)
    if arrival == "replay" and num_requests is not None and rate is None and notes is not None:
        note = thinned_replay_note(wl, load_workload(workload), f"--num-requests {num_requests:,}",
                                   "add --rate R to replay them at R req/s, or leave out --num-requests and replay "
                                   "the trace's first D seconds with --duration D")
        if note:
            notes.append(note)
    arrived = apply_arrivals(wl, arrival, rate=rate, cv=cv, seed=seed, duration=duration)
    if duration is not None and cuts is not None:
        cuts.append((len(arrived), len(wl)))
    if duration is not None and notes is not None:
        note = duration_note([(len(arrived), len(wl))], duration)
        if note:
            notes.append(note)
    return arrived


def duration_note(counts: list[tuple[int, int]], duration: float | None) -> str | None:
    """The note that ``--duration`` kept only the requests arriving in its first ``duration`` seconds (``counts``:
    each run's ``(kept, total)`` requests); None without a duration or when no run lost a request."""
    from ltrsched.workloads.arrivals import duration_cut_note

    if duration is None:
        return None
    return duration_cut_note(counts, duration, f"--duration {duration:g}",
                             "raise --duration or --rate to run more, or leave --duration out to run them all")


def own_arrivals_note(wl) -> str | None:
    """That burst arrivals (the default) set aside the arrival times ``wl`` carries (a trace's timestamps), so
    that a forgotten ``--arrival replay`` is not silent; None when it carries none."""
    if len(wl) < 2 or "arrival_time" not in wl.df.columns:
        return None
    times = wl.df["arrival_time"]
    span = times.max() - times.min()
    if span is None or not math.isfinite(span) or span <= 0:
        return None
    return (f"note: {wl.name} has arrival times of its own ({grouped(span)} s from first to last); --arrival burst "
            "(the default) served every request at t = 0: add --arrival replay to keep them")


def check_arrival_options(arrival, rate, cv, duration) -> None:
    """Refuse an arrival option that ``arrival`` would ignore, naming the fix (one line)."""
    from ltrsched.workloads.arrivals import ignored_parameters

    ignored = ignored_parameters(arrival, rate, cv, duration)
    if "rate" in ignored:
        raise UserError(f"--rate {rate:g} has no effect with --arrival {arrival} (every request arrives at t = 0); "
                        "add --arrival poisson (or gamma, or replay for a trace's own timestamps)")
    if "duration" in ignored:
        raise UserError(f"--duration {duration:g} has no effect with --arrival {arrival} (every request arrives at "
                        "t = 0); add --arrival poisson --rate R, or pick the size with --num-requests")
    if "cv" in ignored:
        raise UserError(f"--cv {cv:g} applies only to --arrival gamma, not --arrival {arrival}")


def block_size_note(profile, block_size: int | None, naming) -> str | None:
    """The note that a block size the user gave [tokens] differs from the KV block size the profile's engine used
    (``provenance.engine.block_size``: 128 for the cpu-* profiles), so the simulated KV cache is not the measured
    engine's; None without a given block size, for the engine's own, or for a profile whose engine's is not known.
    ``naming`` (a :class:`~ltrsched.sim.config.Naming`) names the setting as its user gave it: ``--block-size 16``
    for ``simulate``, ``block_size = 16`` in a sweep file (whose note said ``--block-size``, an option a sweep has
    not)."""
    from ltrsched.sim.profiles import engine_block_size

    if block_size is None:
        return None
    engine = engine_block_size(profile)
    if engine is None or engine == block_size:
        return None
    return (f"note: profile {profile} was measured on an engine with {engine}-token KV blocks; with "
            f"{naming.setting('block_size', block_size)} the simulation's KV cache differs from the engine's "
            f"(leave {naming.name('block_size')} out to use {engine})")


def build_config(profile, max_num_batched_tokens, max_num_seqs, num_gpu_blocks, gpu_memory_utilization,
                 max_model_len, semantics, max_resident_seqs, preemption, chunked_prefill, record_steps=False,
                 block_size=None):
    """The :class:`~ltrsched.sim.config.SimConfig` the options describe; one that it refuses is a
    :class:`UserError` naming the options given (``--max-num-seqs``, not ``max_num_seqs``)."""
    from ltrsched.sim.config import ConfigError, SimConfig, option_naming
    from ltrsched.sim.profiles import engine_block_size

    if block_size is None:
        block_size = engine_block_size(profile) or SimConfig.block_size
    if preemption is None:
        preemption = "recompute" if semantics == "vllm-v1" else "swap"
    try:
        return SimConfig(
            profile=profile, max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
            num_gpu_blocks=num_gpu_blocks, gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len, semantics=semantics,
            max_resident_seqs=max_resident_seqs,
            preemption=preemption, chunked_prefill=chunked_prefill, record_steps=record_steps, block_size=block_size,
        )
    except ConfigError as exc:
        raise UserError(exc.render(option_naming(simulate.params))) from None


@click.command()
@workload_options
@click.option("--policy", "-P", default="fcfs", show_default=True,
              help="Policy spec, e.g. fcfs, srtf, ltr, ltr:starve=200,quantum=10 (see `ltrsched policies`).")
@engine_options
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for requests.parquet and summary.json (+ steps.parquet).")
@click.option("--record-steps", is_flag=True, help="Also write a per-step trace.")
@click.option("--replicas", type=int, default=1, show_default=True,
              help="Identical replicas (same profile and options) behind a router.")
@click.option("--router", default=None,
              help="Router spec for --replicas, e.g. least-outstanding, least-kv:by=tokens, rank:tau=0.6 (see "
                   "`ltrsched routers`) [default: round-robin]; needs --replicas.")
@click.option("--trace", "trace_file", type=OutFile(), default=None,
              help="Write the run's steps as a Chrome trace-event JSON file (open it in Perfetto or "
                   "chrome://tracing); records steps.")
@click.option("--cdf", "cdf_file", type=OutFile(), default=None,
              help="Plot the CDFs of latency per token, TTFT and TPOT to this image (.png, .pdf or .svg).")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr: a bar on a terminal, else a line about every 10 s [default: on].")
@click.option("--block-size", type=int, default=None,
              help="Tokens per KV block [default: the block size a measured profile's engine used (128 for the "
                   "cpu-* profiles: vLLM's CPU attention takes multiples of 32), else 16].")
def simulate(workload, num_requests, arrival, rate, cv, duration, seed, policy, profile,
             max_num_batched_tokens, max_num_seqs, num_gpu_blocks, gpu_memory_utilization, max_model_len,
             semantics, max_resident_seqs, preemption, chunked_prefill, plugin, out, record_steps, replicas, router,
             trace_file, cdf_file, progress, block_size):
    """Simulate one policy serving one workload on one replica, or on --replicas behind a --router."""
    from ltrsched.outputs import check_inputs_kept, check_out_dir, check_out_file, check_outputs_distinct
    from ltrsched.plots.cdf import check_image_path
    from ltrsched.policies import load_plugin, make_policy
    from ltrsched.output_owner import check_output_owner
    from ltrsched.results import RUN_FILES

    if out is not None:
        check_out_dir(out, files=RUN_FILES)  # (a run's file name taken by a directory: found before the run)
        check_output_owner(out, "simulate", accepts=("simulated-run",))  # (an engine run there was replaced)
    if trace_file is not None:
        check_out_file(trace_file, "--trace", ".json")
    if cdf_file is not None:
        check_image_path(cdf_file, "--cdf")
    # (`-w RUN/requests.parquet -o RUN` wrote the run over the workload it simulated, `-p p.json --trace p.json`
    # the trace over the profile)
    check_inputs_kept({"--workload": workload, "--profile": profile},
                      files=(*(Path(out) / name for name in RUN_FILES if out is not None),
                             *(f for f in (trace_file, cdf_file) if f is not None)))
    check_outputs_distinct([*((f"--out {out}", Path(out) / name) for name in RUN_FILES if out is not None),
                            ("--trace", trace_file), ("--cdf", cdf_file)])
    if trace_file is not None:  # (a file that is no trace: found after the run, once --out was saved; now nothing runs)
        from ltrsched.plots.chrome_trace import check_trace_out

        check_trace_out(trace_file, "--trace")
    given = click.get_current_context().get_parameter_source("gpu_memory_utilization")
    if num_gpu_blocks is not None and given == click.core.ParameterSource.COMMANDLINE:
        raise UserError("--gpu-memory-utilization has no effect with --num-gpu-blocks (which sets the KV cache's "
                        "size itself); give one of them")
    if record_steps and out is None:  # nothing would be written: the option would be silently ignored
        raise UserError("--record-steps writes steps.parquet into the run directory; add --out DIR "
                        "(or --trace FILE for a Perfetto trace of the steps)")
    if replicas < 1:
        raise UserError(f"--replicas must be >= 1, got {replicas}")
    from ltrsched.sim.cluster import MAX_REPLICAS

    if replicas > MAX_REPLICAS:  # (the simulator's own message named no option)
        raise UserError(f"--replicas must be at most {MAX_REPLICAS:,}, got {replicas:,}")
    source = click.get_current_context().get_parameter_source("replicas")
    if router is not None and source == click.core.ParameterSource.DEFAULT:  # (it silently ran a 1-replica cluster;
        # sweep and capacity refuse a router without replicas too. `--replicas 1 --router R` asks for that cluster: the
        # cluster path on one replica, bit-identical to the lone replica's run)
        raise UserError(f"--router {router} has no effect without --replicas (a lone replica needs no router); add "
                        "e.g. --replicas 4")
    for p in plugin:
        load_plugin(p)
    pol = make_policy(policy)
    cluster = replicas > 1 or router is not None
    if cluster:
        from ltrsched.routers import make_router

        rtr = make_router("round-robin" if router is None else router)  # (an empty spec ran round-robin)
    config = build_config(profile, max_num_batched_tokens, max_num_seqs, num_gpu_blocks,
                          gpu_memory_utilization, max_model_len, semantics, max_resident_seqs, preemption,
                          chunked_prefill, record_steps or trace_file is not None, block_size)
    from ltrsched.sim.config import option_naming
    from ltrsched.sim.simulate import kv_capacity_blocks

    naming = option_naming(simulate.params)
    kv_capacity_blocks(config, fix="use a smaller --block-size or a larger --gpu-memory-utilization, or set "
                                   "--num-gpu-blocks", naming=naming)
    notes: list[str] = []
    blocks = block_size_note(profile, block_size, naming)
    if blocks is not None:
        notes.append(blocks)
    from ltrsched.workloads.load_progress import hidden

    with nullcontext() if progress is not False else hidden():  # (--no-progress: the load's bar too)
        wl = build_workload(workload, num_requests, arrival, rate, cv, duration, seed, notes)
    from ltrsched.sim.simulate import FitFixes, setup_run

    from ltrsched.sim.config import ConfigError

    # (a request the settings cannot run: the simulator's own error named SimConfig's fields, not these options; so did
    # a --max-model-len the KV cache the profile's GPU memory sizes does not hold)
    try:
        setup_run(wl, pol, config, FitFixes(
            context="raise --max-model-len if the model takes longer contexts, or leave them out",
            kv="raise --num-gpu-blocks (or leave it to the profile), or leave such requests out",
            budget="raise --max-num-batched-tokens, or drop --no-chunked-prefill", naming=naming))
    except ConfigError as exc:
        raise UserError(exc.render(naming)) from None
    if progress is None:  # (a bar on a terminal, else a line on stderr about every 10 s: ltrsched.progress)
        progress = True
    if cluster:
        from ltrsched.sim.cluster import simulate_cluster

        result = simulate_cluster(wl, pol, config, replicas, rtr, progress=progress)
    else:
        from ltrsched.sim.simulate import simulate as run

        result = run(wl, pol, config, progress=progress)
    result.meta.update(arrival=arrival, rate=rate, seed=seed)
    click.echo(result.table())
    click.echo(f"simulated {fmt(result.summary['makespan'], '.1f')} s in {result.summary['wall_time_s']:.2f} s wall "
               f"({result.summary['steps']} steps, {result.summary['num_preemptions']} preemptions)")
    if out is not None:
        result.save(out)
        files = ["requests.parquet", "summary.json"] + (["steps.parquet"] if result.steps is not None else [])
        click.echo("wrote " + ", ".join(shown_path(out / f) for f in files))
    if trace_file is not None:
        from ltrsched.plots.chrome_trace import write_chrome_trace

        write_chrome_trace(result, trace_file)
        click.echo(f"wrote {shown_path(trace_file)} (open in https://ui.perfetto.dev)")
    if cdf_file is not None:
        from ltrsched.plots.cdf import plot_cdfs
        from ltrsched.plots.runs import run_label

        plot_cdfs([(run_label(result.meta), result.requests)], cdf_file)
        click.echo(f"wrote {shown_path(cdf_file)}")
    for note in notes:  # (naming the workload's file: on one line, as paths are shown)
        click.echo(one_line(note), err=True)
    from ltrsched.policies.starvation_thrash import thrash_warning

    thrash = thrash_warning(pol, result.summary["num_preemptions"], result.summary["num_finished"], f"policy {policy}")
    if thrash is not None:
        click.echo(thrash, err=True)
