"""Re-simulate a ``ltrsched validate`` directory with another step-time profile, keeping its engine runs.

The engine runs are the expensive half of a validation (an hour on the CPU engine); the simulator's half
takes seconds. When a profile improves (a refitted one, a profile measured in the same minutes), this copies
the validation to OUT, simulates each case and policy again with PROFILE on the same workload (each run's
requests: ids, prompt and output tokens, arrival times, scores, as the engine served them) and the same
configuration, and rewrites the report (``validation.md``/``.csv``/``.png``, ``step_time_ratio.csv`` against
PROFILE). The engine runs are copied unchanged; ``validate-manifest.json`` keeps the original command, and the
report names this one beside it.

    python benchmarks/resimulate_validation.py VALIDATION_DIR OUT --profile PROFILE
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import polars as pl

from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.results import RunResult
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.profiles import load_profile
from ltrsched.validation.compare import ValidationTally
from ltrsched.validation.outdir import check_validation_dir
from ltrsched.validation.own_speed import simulate_at_speed
from ltrsched.workloads.schema import Workload

#: The request columns a simulation reads back from a saved run [ids, tokens, seconds, scores].
WORKLOAD_COLUMNS = ("request_id", "prompt_tokens", "output_tokens", "arrival_time", "score")


def workload_of(run: RunResult) -> Workload:
    """The workload a saved simulator run served, in request-id order."""
    cols = [c for c in WORKLOAD_COLUMNS if c in run.requests.columns]
    return Workload(run.requests.select(cols).sort("request_id"), run.meta.get("workload", "resimulated"))


def policy_labels(src: Path) -> dict[str, str]:
    """The policy specs as the validation's command gave them, by run-directory name (validate names a policy's
    directory after its spec, ':' and ',' as '_'; its report and ``step_time_ratio.csv`` use the spec)."""
    path = src / "validation.csv"
    if not path.is_file():
        return {}
    return {p.replace(":", "_").replace(",", "_"): p for p in pl.read_csv(path)["policy"].unique().to_list()}


def resimulate(src: Path, out: Path, profile: str) -> Path:
    """Copy ``src`` to ``out`` and re-simulate its runs with ``profile``; returns the new report's path."""
    previous = check_validation_dir(src)
    if previous is None or not previous.runs:
        raise UserError(f"{src} holds no validation (validate-manifest.json with runs)")
    if out.exists():
        raise UserError(f"{out} exists: give a new directory")
    step_profile = load_profile(profile)
    labels = policy_labels(src)
    shutil.copytree(src, out)
    tally, host, repeats, spread = ValidationTally(), None, 1, False
    for case_dir in sorted((out / "runs").iterdir()):
        sims, engs, case = {}, {}, None
        for policy_dir in sorted(case_dir.iterdir()):
            old = RunResult.load(policy_dir / "sim")
            engines = [RunResult.load(d) for d in sorted(policy_dir.glob("engine*")) if (d / "summary.json").is_file()]
            spec = labels.get(policy_dir.name) or (engines[0].meta if engines else old.meta)["policy"]
            case = engines[0].meta.get("case", case_dir.name) if engines else case_dir.name
            host, repeats = engines[0].meta.get("host", host) if engines else host, max(len(engines), 1)
            spread = spread or len({e.meta.get("engine_start") for e in engines} - {None}) > 1  # (--spread-repeats)
            config = SimConfig(**{**old.meta["config"], "profile": profile})
            sim = simulate(workload_of(old), make_policy(spec), config)
            sim.save(policy_dir / "sim")
            sims[spec], engs[spec] = sim, engines
            for k, e in enumerate(engines):
                repeat = e.meta.get("repeat", k)
                factor = tally.add_engine_run(case, spec, repeat, e, step_profile)
                tally.add_own_speed(case, spec, repeat, factor,
                                    simulate_at_speed(workload_of(old), spec, config, step_profile, factor), e)
            print(tally.add_policy(case, spec, sim, engines))
        tally.end_case(case, sims, engs)
    command = f"{previous.command}  (simulator re-run: {' '.join(['python', *sys.argv])})"
    return tally.write(out, f"Simulator ({profile}) vs vLLM", command, 0.05, host=host, repeats=repeats,
                       spread=spread)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("validation", type=Path, help="a `ltrsched validate --out` directory")
    ap.add_argument("out", type=Path, help="new directory for the copy")
    ap.add_argument("--profile", "-p", required=True, help="built-in profile name or JSON file")
    args = ap.parse_args()
    try:
        print(f"report: {resimulate(args.validation, args.out, args.profile)}")
    except UserError as e:
        ap.error(str(e))  # one line, exit code 2


if __name__ == "__main__":
    main()
