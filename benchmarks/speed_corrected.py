"""How much of a validation's error is the machine's speed: each engine run against the simulator at that run's
speed, and at the speed of the engine run just before it.

A validation's simulator runs at the profile's speed. On a 2-core VM the engine's speed moves between engine
starts and within minutes (VALIDATION.md), so the simulator's error mixes two things: the step-time model and the
scheduling (what the simulator is for), and the machine's speed at the time (what no model can know). This splits
them. Each engine run of a ``ltrsched validate`` directory is compared, on its own (not as a mean of repeats),
with three simulations of its workload and policy, the profile's step times multiplied by:

* 1 (``profile``): what ``validate`` reports, one run at a time;
* the step-time ratio of the engine run that *started just before it* (``previous run``): a speed measured
  minutes earlier on the same machine and never from this run's own steps, what a calibration run before each
  engine run (a canary) would give;
* the run's own step-time ratio (``own``): the speed this run had, taken from its own steps (an upper bound on
  what any speed estimate gives; the remaining error is the model's). ``validate`` reports this one too
  (:mod:`ltrsched.validation.own_speed`).

The step-time ratio is :func:`~ltrsched.validation.step_time_ratio.step_time_ratio`: measured time of a run's
back-to-back steps over the profile's time for them. Runs are ordered by ``started_unix_s`` (recorded since
``validate`` writes it; a validation without it is refused); the first run of each engine start (``engine_pid``)
has no previous run on that engine and takes the run before it on any engine, if any.

    python benchmarks/speed_corrected.py VALIDATION_DIR --profile PROFILE [--tolerance 0.05] [--out CSV]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

from ltrsched.errors import UserError
from ltrsched.results import RunResult
from ltrsched.sim import SimConfig
from ltrsched.sim.profiles import load_profile
from ltrsched.validation.own_speed import COLUMNS, own_speed_rows, simulate_at_speed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resimulate_validation import policy_labels, workload_of  # noqa: E402

def engine_runs(src: Path) -> list[dict]:
    """Every engine run of a validation with its case, policy spec, start time and simulator config, by start."""
    labels = policy_labels(src)
    runs = []
    for d in sorted((src / "runs").glob("*/*/engine*")):
        if not (d / "summary.json").is_file():
            continue
        run = RunResult.load(d)
        if "started_unix_s" not in run.meta:
            raise UserError(f"{d} has no started_unix_s (a validation from before it was recorded)")
        sim = RunResult.load(d.parent / "sim")
        runs.append({"dir": d, "run": run, "case": run.meta["case"], "repeat": run.meta.get("repeat", 0),
                     "spec": labels.get(d.parent.name, run.meta["policy"]), "started": run.meta["started_unix_s"],
                     "pid": run.meta.get("engine_pid"), "workload": workload_of(sim), "config": sim.meta["config"]})
    return sorted(runs, key=lambda r: r["started"])


def main(argv=None) -> int:
    from ltrsched.validation.step_time_ratio import step_time_ratio

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("validation", type=Path)
    ap.add_argument("--profile", required=True, help="the profile the validation's simulator used")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=None, help="CSV of every run's errors under each speed")
    args = ap.parse_args(argv)
    try:
        profile = load_profile(args.profile)
        runs = engine_runs(args.validation)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: {args.validation} holds no engine runs", file=sys.stderr)
        return 2
    for r in runs:
        r["ratio"] = step_time_ratio(r["run"].steps, profile)
    rows = []
    for i, r in enumerate(runs):
        before = [q for q in runs[:i] if q["pid"] == r["pid"]] or runs[:i]
        factors = {"profile": 1.0, "previous run": before[-1]["ratio"] if before else None, "own": r["ratio"]}
        for label, f in factors.items():
            if f is None:
                continue
            sim = simulate_at_speed(r["workload"], r["spec"], SimConfig(**r["config"]), profile, f)
            if sim is not None:
                rows += [(label, *row) for row in own_speed_rows(r["case"], r["spec"], r["repeat"], f, sim, r["run"])]
    table = pl.DataFrame(rows, schema=["speed", *COLUMNS], orient="row")
    if args.out is not None:
        table.write_csv(args.out)
    tol = args.tolerance
    print(f"{len(runs)} engine runs, each against the simulator at three speeds; values within {tol:.0%} "
          "(mean and P90 of E2E, TTFT, TPOT per run):")
    summary = (table.group_by("case", "speed", maintain_order=True)
               .agg(within=(pl.col("rel_error").abs() <= tol).sum(), values=pl.len(),
                    median_abs=pl.col("rel_error").abs().median(), median=pl.col("rel_error").median()))
    print("| case | speed | within | median error | median abs. error |")
    print("|---|---|---|---|---|")
    for row in summary.iter_rows(named=True):
        print(f"| {row['case']} | {row['speed']} | {row['within']} of {row['values']} | {row['median']:+.1%} | "
              f"{row['median_abs']:.1%} |")
    for label, g in table.group_by("speed", maintain_order=True):
        n = int((g["rel_error"].abs() <= tol).sum())
        print(f"all, {label[0]}: {n} of {g.height} within {tol:.0%}, median abs. error "
              f"{g['rel_error'].abs().median():.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
