"""``ltrsched reproduce`` (the paper's tables and figures in simulation) and ``ltrsched sweep``."""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import click

from ltrsched.errors import UserError

EXPERIMENT_NAMES = ("table1", "fig3", "fig4-5", "table2", "table3", "table4")


def _modules():
    from ltrsched.experiments import fig3, fig45, table1, table2, table3, table4

    return {"table1": table1, "fig3": fig3, "fig4-5": fig45, "table2": table2, "table3": table3, "table4": table4}


@click.command()
@click.argument("experiment", type=click.Choice([*EXPERIMENT_NAMES, "all"]))
@click.option("--quick", is_flag=True, help="A reduced but faithful version (about a minute on 2 cores).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Output directory (runs/, tables/, figures/, REPRODUCTION.md).")
@click.option("--jobs", "-j", type=int, default=None, help="Parallel runs (default: all cores).")
def reproduce(experiment, quick, out, jobs):
    """Run the paper's experiments in the simulator and compare with the paper's numbers.

    Finished runs are cached under OUT/runs and skipped on a rerun.
    """
    from ltrsched.experiments.report import write_report
    from ltrsched.experiments.runner import run_all
    from ltrsched.outputs import check_out_dir

    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    check_out_dir(out)
    modules = _modules()
    names = EXPERIMENT_NAMES if experiment == "all" else (experiment,)
    if quick and experiment == "all":
        names = ("table1", "fig3", "fig4-5")
    t0 = time.perf_counter()
    specs = [s for n in names for s in modules[n].specs(quick)]
    _prepare_predictors(specs)
    stats = run_all(specs, out, jobs=jobs, progress=sys.stderr.isatty(), desc=f"reproduce {experiment}")
    sections = [modules[n].build(out, quick) for n in names]
    elapsed = time.perf_counter() - t0
    cmd = "ltrsched reproduce " + experiment + (" --quick" if quick else "")
    report = write_report(sections, out, cmd, elapsed)
    for sec in sections:
        click.echo(f"\n{sec.title}")
        for caption, table in sec.tables[:1]:
            with __import__("polars").Config(tbl_rows=60, tbl_cols=12, tbl_width_chars=160, float_precision=3):
                click.echo(table)
        for c in sec.checks:
            click.echo(("  [ok]   " if c.passed else "  [MISS] ") + c.claim + (f" ({c.detail})" if c.detail else ""))
    click.echo(f"\n{len(stats.ran)} runs simulated, {len(stats.skipped)} reused; {elapsed:.1f} s. Report: {report}")


def _prepare_predictors(specs) -> None:
    """Train (or load) the trained predictors the runs use once, here, before the worker processes."""
    scorings = {s.scoring for s in specs}
    if any(sc.startswith("trained-") for sc in scorings):
        from ltrsched.predictors.pretrained import sharegpt_predictor

        if any(sc.startswith("trained-ltr") for sc in scorings):
            sharegpt_predictor("rank")
        for sc in sorted(s for s in scorings if s.startswith("trained-class")):
            _, _, bucket = sc.partition("bucket=")
            sharegpt_predictor("class", int(bucket) if bucket else 820)


#: Sweep keys holding a list, and the type of its items.
SWEEP_LISTS: dict[str, type | tuple[type, ...]] = {
    "workloads": str, "policies": str, "profiles": str, "rates": (int, float), "seeds": int,
    "replicas": int, "routers": str,
}
#: Sweep keys holding one value, and its type.
SWEEP_SCALARS: dict[str, type | tuple[type, ...]] = {
    "arrival": str, "num_requests": int, "duration": (int, float), "scoring": str,
    "max_num_batched_tokens": int, "max_num_seqs": int, "preemption": str,
}
SWEEP_KEYS = set(SWEEP_LISTS) | set(SWEEP_SCALARS)


def _load_sweep(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"sweep file not found: {path}")
    if path.suffix not in (".toml", ".json"):
        raise UserError(f"{path}: unknown sweep file format {path.suffix!r}; use .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:  # UnicodeDecodeError is a ValueError
        raise UserError(f"{path}: cannot parse ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a table of sweep settings")
    unknown = sorted(set(data) - SWEEP_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(SWEEP_KEYS))}")
    if not data.get("policies"):
        raise UserError(f"{path}: 'policies' must list at least one policy spec")
    _check_sweep_types(data, path)
    _check_sweep_values(data, path)
    return data


def _type_name(types) -> str:
    return {str: "text", int: "an integer"}.get(types, "a number")


def _check_sweep_types(data: dict, path: Path) -> None:
    """Raise :class:`UserError` for a key whose value has the wrong type (e.g. a string where a list goes)."""
    for key, value in data.items():
        if key in SWEEP_LISTS:
            types = SWEEP_LISTS[key]
            if not isinstance(value, list) or not value or any(isinstance(v, bool) or not isinstance(v, types) for v in value):
                raise UserError(f"{path}: {key!r} must be a non-empty list, each item {_type_name(types)}; got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, SWEEP_SCALARS[key]):
            raise UserError(f"{path}: {key!r} must be {_type_name(SWEEP_SCALARS[key])}, got {value!r}")


def _check_sweep_values(data: dict, path: Path) -> None:
    """Raise :class:`UserError` for names and numbers the runs would reject (rates [req/s], duration [s])."""
    import math

    from ltrsched.experiments.scoring import check_scoring
    from ltrsched.sim.commands import ARRIVALS
    from ltrsched.workloads.builtin import BUILTIN

    arrival = data.get("arrival", "burst")
    if arrival not in ARRIVALS:
        raise UserError(f"{path}: 'arrival' must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
    if arrival in ("poisson", "gamma") and "rates" not in data:
        raise UserError(f"{path}: arrival {arrival!r} needs 'rates' [req/s]")
    for key in ("rates", "duration"):  # nothing is silently ignored
        if arrival == "burst" and key in data:
            raise UserError(f"{path}: {key!r} = {data[key]!r} has no effect with arrival \"burst\""
                            f"{'' if 'arrival' in data else ' (the default)'}, where every request arrives at "
                            "t = 0; add arrival = \"poisson\" (or \"gamma\", or \"replay\" for a trace)")
    for key in ("rates", "duration"):
        values = data.get(key, [])
        if not all(math.isfinite(v) and v > 0 for v in (values if isinstance(values, list) else [values])):
            raise UserError(f"{path}: {key!r} must be positive, got {values!r}")
    for key in ("num_requests", "max_num_batched_tokens", "max_num_seqs"):
        if data.get(key, 1) < 1:
            raise UserError(f"{path}: {key!r} must be >= 1, got {data[key]}")
    if any(r < 1 for r in data.get("replicas", [])):
        raise UserError(f"{path}: 'replicas' must be >= 1, got {data['replicas']}")
    if any(s < 0 for s in data.get("seeds", [])):
        raise UserError(f"{path}: 'seeds' must be >= 0, got {data['seeds']}")
    if data.get("preemption", "swap") not in ("swap", "recompute"):
        raise UserError(f"{path}: 'preemption' must be swap or recompute, got {data['preemption']!r}")
    for w in data.get("workloads", []):
        if w not in BUILTIN and not Path(w).is_file():
            raise UserError(f"{path}: workload {w!r} is neither a file nor a built-in ({', '.join(BUILTIN)})")
    check_scoring(data.get("scoring", "none"))


def _clusters(data: dict) -> list[tuple[int, str | None]]:
    """(replicas, router) pairs of a sweep: a lone replica has no router; routers are checked here."""
    from ltrsched.routers import make_router

    routers = data.get("routers", ["round-robin"])
    for spec in routers:
        make_router(spec)  # fail early on a bad spec
    pairs = []
    for n in data.get("replicas", [1]):
        pairs.extend([(n, None)] if n == 1 else [(n, r) for r in routers])
    return list(dict.fromkeys(pairs))


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("sweep"), show_default=True)
@click.option("--jobs", "-j", type=int, default=None, help="Parallel runs (default: all cores).")
def sweep(sweep_file, out, jobs):
    """Run policies x workloads x rates x profiles from a TOML/JSON file; write OUT/sweep.csv.

    Keys: policies (list, required), workloads, profiles, arrival, rates, num_requests, duration, seeds,
    scoring (e.g. "approx-score:tau=0.6" for LTR), max_num_batched_tokens, max_num_seqs, preemption,
    replicas (e.g. [1, 8]) and routers (e.g. ["round-robin", "least-outstanding"]; used where replicas > 1).
    rates and duration need arrival = "poisson", "gamma" or "replay" (burst, the default, puts every
    request at t = 0; a sweep that sets them with burst is refused).
    """
    import polars as pl

    from ltrsched import atomic
    from ltrsched.experiments.runner import load_summary, run_all
    from ltrsched.experiments.runspec import RunSpec
    from ltrsched.outputs import check_out_dir
    from ltrsched.policies import make_policy
    from ltrsched.sim.profiles import load_profile

    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    check_out_dir(out)
    data = _load_sweep(sweep_file)
    for spec in data["policies"]:
        make_policy(spec)  # fail early on a bad spec
    for prof in data.get("profiles", []):
        load_profile(prof)
    clusters = _clusters(data)
    arrival = data.get("arrival", "burst")
    rates = data.get("rates", [None])  # (none with burst arrivals: refused above)
    specs = [
        RunSpec(experiment="sweep", setting=f"{w} @ {r}", label=p, workload=w, policy=p, profile=prof,
                num_requests=data.get("num_requests"), arrival=arrival, rate=r, duration=data.get("duration"),
                scoring=data.get("scoring", "none"), seed=seed,
                max_num_batched_tokens=data.get("max_num_batched_tokens", 768), max_num_seqs=data.get("max_num_seqs", 256),
                preemption=data.get("preemption", "swap"), replicas=n, router=router)
        for w, p, prof, r, seed, (n, router) in itertools.product(
            data.get("workloads", ["sharegpt"]), data["policies"], data.get("profiles", ["a100-llama3-8b"]), rates,
            data.get("seeds", [0]), clusters)
    ]
    stats = run_all(specs, out, jobs=jobs, progress=sys.stderr.isatty(), desc="sweep")
    rows = []
    for s in specs:
        summ = load_summary(out, s)
        cluster = {"replicas": s.replicas, "router": s.router} if clusters != [(1, None)] else {}
        rows.append({"workload": s.workload, "policy": s.policy, "profile": s.profile, "arrival": s.arrival,
                     "rate": s.rate, "seed": s.seed, **cluster,
                     **{k: v for k, v in summ.items() if isinstance(v, (int, float)) and k != "num_replicas"}})
    table = pl.DataFrame(rows)
    atomic.write_csv(out / "sweep.csv", table)
    with pl.Config(tbl_rows=100, tbl_width_chars=160, float_precision=3):
        click.echo(table.select("workload", "policy", "profile", "rate", "latency_per_token_mean",
                                "latency_per_token_p90", "ttft_mean", "throughput_rps"))
    click.echo(f"{len(stats.ran)} runs simulated, {len(stats.skipped)} reused; wrote {out / 'sweep.csv'}")
