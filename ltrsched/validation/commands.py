"""``ltrsched replay`` (a workload on the engine), ``ltrsched profile`` (measure a step-time profile) and
``ltrsched validate`` (simulator vs engine)."""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path

import click

from ltrsched.errors import UserError
from ltrsched.policies.needs import check_needs
from ltrsched.sim.commands import build_workload, workload_options
from ltrsched.validation.engines import engine_options, start_engine


def _command_line() -> str:
    return "ltrsched " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@click.command()
@workload_options
@click.option("--policy", "-P", default="fcfs", show_default=True, help="Policy spec (see `ltrsched policies`).")
@engine_options
@click.option("--plugin", multiple=True, help="Module or .py file registering extra policies.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for requests.parquet, summary.json and steps.parquet (the engine's step log).")
def replay(workload, num_requests, arrival, rate, cv, duration, seed, policy, plugin, out, **engine):
    """Serve a workload on vLLM (GPU) with a policy, adding requests at their arrival times.

    Writes the simulator's files, so runs compare directly with `ltrsched simulate`.
    """
    from ltrsched.outputs import check_out_dir
    from ltrsched.policies import load_plugin, make_policy

    if out is not None:
        check_out_dir(out)
    for p in plugin:
        load_plugin(p)
    pol = make_policy(policy)
    wl = build_workload(workload, num_requests, arrival, rate, cv, duration, seed)
    check_needs(pol, wl.has_column, f"workload {wl.name!r}")  # before the engine starts (minutes on a GPU)
    eng = start_engine(**engine)
    result = eng.run(wl, pol, progress=sys.stderr.isatty())
    result.meta.update(arrival=arrival, rate=rate, seed=seed, command=_command_line())
    click.echo(result.table())
    s = result.summary
    click.echo(f"{s['steps']} steps, {s['num_preemptions']} preemptions, plug-in overhead "
               f"{s['plugin_overhead_mean_s'] * 1e3:.3f} ms/step (p99 {s['plugin_overhead_p99_s'] * 1e3:.3f}), "
               f"{s['mismatched_steps']} steps differing from the plan")
    if out is not None:
        result.save(out)
        click.echo(f"wrote {out}/requests.parquet, summary.json, steps.parquet")


@click.command()
@engine_options
@click.option("--name", default=None, help="Profile name (default: <gpu>-<model>).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Profile JSON to write (a steps.parquet of the measurements is written beside it).")
@click.option("--quick", is_flag=True, help="Fewer probes (one repeat, smaller batches): a fast check.")
def profile(name, out, quick, **engine):
    """Measure step times on the engine and write a simulator profile (JSON).

    Runs decode probes (batch sizes x context lengths) and prefill probes (chunk sizes) with FCFS, logs
    every step's shape and cycle time, and fits the simulator's step-time model (see PROFILES.md).
    """
    from ltrsched.models import MODELS
    from ltrsched.outputs import check_out_file
    from ltrsched.policies import make_policy
    from ltrsched.sim.profiles.io import save_profile
    from ltrsched.validation.profiling import ProbePlan, fit_steps, fitted_profile, probe_workload

    check_out_file(out, "--out", ".json")
    plan = ProbePlan(decode_batches=(1, 4, 16, 64, 256), decode_prompts=(128, 2048), repeats=1,
                     prefill_prompts=(16, 64, 256, 512, 768, 2048)) if quick else ProbePlan()
    eng = start_engine(skip_idle=True, **engine)
    probes = probe_workload(plan, eng.config.max_num_seqs, eng.config.max_num_batched_tokens)
    result = eng.run(probes, make_policy("fcfs"), progress=sys.stderr.isatty())
    steps = result.steps
    try:
        fit = fit_steps(steps, overhead_from_log=not eng.emulated)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    model = engine["model"]
    model_config = dict(MODELS[model]) if model in MODELS else json.loads((Path(model) / "config.json").read_text())
    if eng.emulated:
        p = eng.emulated_profile
        gpu, memory, host_link = f"emulated ({p.name})", p.gpu_memory_bytes, p.host_link_bytes_per_s
    else:
        import torch

        gpu, memory, host_link = torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory, 50e9
    name = name or f"{gpu.split()[-1].lower()}-{model}"
    prof = fitted_profile(
        fit, name=name, gpu=gpu, model=model, model_config=model_config, gpu_memory_bytes=memory,
        description=f"measured on {result.meta['host']} by `{_command_line()}`",
        engine_num_gpu_blocks=eng.num_gpu_blocks(), gpu_memory_utilization=engine["gpu_memory_utilization"],
        tensor_parallel=engine["tensor_parallel_size"], host_link_bytes_per_s=host_link,
        max_model_len=int(model_config.get("max_position_embeddings", 8192)),
        provenance={"command": _command_line(), "host": result.meta["host"], "probe_requests": len(probes),
                    "enforce_eager": engine["enforce_eager"], "max_num_batched_tokens": engine["max_num_batched_tokens"]},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    save_profile(prof, out)
    steps.write_parquet(out.with_suffix(".steps.parquet"))
    f = fit.summary()
    click.echo(f"wrote {out} ({fit.num_samples} steps fitted: median error {f['median_rel_error']:.1%}, "
               f"P90 {f['p90_rel_error']:.1%}; CPU overhead {fit.overhead_s_per_step * 1e3:.2f} ms/step)")


@click.command()
@workload_options
@click.option("--policies", default="fcfs,srtf,ltr:tau=0.6,ltr:tau=0.6,starve=200,quantum=10,mlfq",
              show_default=True, help="Policy specs separated by ';' (or ',' between specs without parameters).")
@click.option("--rates", default=None,
              help="Poisson rates [req/s] separated by ','; 'auto' = 50% and 100% of the simulated capacity. "
                   "Each rate is a case besides the --arrival one.")
@click.option("--profile", "-p", "sim_profile", default=None,
              help="Simulator profile (default: the --emulate profile, else h100-llama3-8b).")
@engine_options
@click.option("--tolerance", type=float, default=0.05, show_default=True, help="Gate for the report's count.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("validation"),
              show_default=True, help="Report directory (validation.md/.csv/.png, runs/).")
def validate(workload, num_requests, arrival, rate, cv, duration, seed, policies, rates, sim_profile, tolerance,
             out, **engine):
    """Run the same workload and policies on the engine and in the simulator; report the differences.

    The simulator models the engine exactly as the adapter drives it (--semantics vllm-v1, recompute,
    the engine's own KV block count); the remaining difference is step timing (the profile).
    """
    import polars as pl

    from ltrsched.outputs import check_out_dir
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate
    from ltrsched.sim.profiles import load_profile
    from ltrsched.validation.compare import compare_runs, policy_ranking, write_report

    check_out_dir(out)
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise UserError(f"--tolerance must be a relative error >= 0, got {tolerance}")
    specs = _split_policies(policies)
    sim_profile = sim_profile or engine["emulate_profile"] or "h100-llama3-8b"
    load_profile(sim_profile)
    first = build_workload(workload, num_requests, arrival, rate, cv, duration, seed)
    for s in specs:  # bad specs, and columns a policy needs, fail before the engine starts
        check_needs(make_policy(s), first.has_column, f"workload {first.name!r}")
    cases = [(arrival, rate)]
    if rates:
        cases += [("poisson", r) for r in _rates(rates, workload, num_requests, seed, sim_profile, engine)]
    eng = start_engine(**engine)
    rows, rankings = [], []
    for i, (arr, r) in enumerate(cases):
        case = arr if r is None else f"{arr}@{r:g}/s"
        wl = first if i == 0 else build_workload(workload, num_requests, arr, r, 1.0, duration, seed)  # Poisson
        sims, engs = {}, {}
        for spec in specs:
            e = eng.run(wl, make_policy(spec), progress=sys.stderr.isatty())
            config = SimConfig(profile=sim_profile, max_num_batched_tokens=engine["max_num_batched_tokens"],
                               max_num_seqs=engine["max_num_seqs"], num_gpu_blocks=eng.num_gpu_blocks() - 1,
                               max_resident_seqs=eng.config.vllm_max_num_seqs,
                               watermark=0.0, preemption="recompute", semantics="vllm-v1")
            s = simulate(wl, make_policy(spec), config)
            run_dir = out / "runs" / case.replace("/", "_") / spec.replace(":", "_").replace(",", "_")
            e.save(run_dir / "engine")
            s.save(run_dir / "sim")
            rows.append(compare_runs(s, e).with_columns(case=pl.lit(case), policy=pl.lit(spec)))
            sims[spec], engs[spec] = s, e
            click.echo(f"{case:>16}  {spec:<40} sim/engine mean E2E {s.summary['e2e_latency_mean']:.3f} / "
                       f"{e.summary['e2e_latency_mean']:.3f} s")
        rankings.append({"case": case, "sim": policy_ranking(sims), "engine": policy_ranking(engs)})
    table = pl.concat(rows).select("case", "policy", "metric", "stat", "sim", "engine", "rel_error")
    host = "emulated engine (CPU)" if eng.emulated else "vLLM on GPU"
    md = write_report(table, rankings, out, f"Simulator ({sim_profile}) vs {host}", _command_line(), tolerance)
    click.echo(f"report: {md}")


def _split_policies(text: str) -> list[str]:
    """``a;b:x=1,y=2`` -> [a, b:x=1,y=2]; without ';', commas split specs that have no parameters."""
    if ";" in text:
        specs = [s.strip() for s in text.split(";") if s.strip()]
        if not specs:
            raise UserError("--policies is empty")
        return specs
    specs: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if specs and ("=" in part and ":" not in part):
            specs[-1] += "," + part  # a parameter of the previous spec
        elif part:
            specs.append(part)
    if not specs:
        raise UserError("--policies is empty")
    return specs


def _rates(text: str, workload, num_requests, seed, sim_profile, engine) -> list[float]:
    """The Poisson rates of --rates; 'auto': 50% and 100% of the burst throughput the simulator predicts."""
    if text.strip() == "auto":
        from ltrsched.policies import make_policy
        from ltrsched.sim import SimConfig, simulate

        wl = build_workload(workload, num_requests, "burst", None, 1.0, None, seed)
        burst = simulate(wl, make_policy("fcfs"), SimConfig(
            profile=sim_profile, semantics="vllm-v1", preemption="recompute", max_num_seqs=engine["max_num_seqs"],
            max_num_batched_tokens=engine["max_num_batched_tokens"], max_resident_seqs=engine["max_resident_seqs"]))
        capacity = burst.summary["throughput_rps"]
        return [round(0.5 * capacity, 2), round(capacity, 2)]
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--rates must be numbers separated by ',' or 'auto', got {text!r}") from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise UserError(f"--rates must be positive, got {text!r}")
    return values
