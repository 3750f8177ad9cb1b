"""Does a short calibration run right before an engine run tell that run's speed well enough for the simulator?

On the CPU engine the machine's speed moves by 10-20% within minutes (VALIDATION.md), and the simulator is within
about 2% of an engine run once it runs at that run's own speed. The speed of the run that started a minute before
missed by 5.3% in the median. This tries the nearest thing a validation could do: a fixed *canary* (a small
burst, about 2 s of engine time) on the same engine right before each run and right after it. Its step-time
ratio against the profile is the speed the simulator then runs that run at. Per run, it compares the values
(mean and P90 of E2E, TTFT and TPOT) with the simulator at four speeds:

* ``profile``: the profile's, as ``validate`` does;
* ``canary before``: the canary run just before;
* ``canary around``: the mean of the canaries just before and just after;
* ``own``: the run's own step-time ratio (an upper bound: taken from the run's own steps).

    python benchmarks/canary_speed.py --profile P.json --rates 2.56,5.12,7.68 --repeats 2 --out canary.csv
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import polars as pl

from ltrsched.policies import make_policy
from ltrsched.sim.commands import build_workload
from ltrsched.sim.profiles import load_profile
from ltrsched.validation.engine_passes import EngineFacts
from ltrsched.validation.engines import start_engine
from ltrsched.validation.own_speed import COLUMNS, own_speed_rows, simulate_at_speed
from ltrsched.validation.step_time_ratio import step_time_ratio
from ltrsched.workloads.schema import Workload


def canary_workload(requests: int, prompt_tokens: int, output_tokens: int) -> Workload:
    """The calibration burst: ``requests`` alike requests at time 0 [tokens each]."""
    return Workload(pl.DataFrame({"request_id": np.arange(requests, dtype=np.int64),
                                  "prompt_tokens": np.full(requests, prompt_tokens, dtype=np.int64),
                                  "output_tokens": np.full(requests, output_tokens, dtype=np.int64),
                                  "arrival_time": np.zeros(requests)}), "canary")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--model", default="llama-tiny")
    ap.add_argument("--max-num-seqs", type=int, default=32)
    ap.add_argument("-n", "--num-requests", type=int, default=100)
    ap.add_argument("--rates", default="2.56,5.12,7.68", help="Poisson cases besides the burst [req/s]")
    ap.add_argument("--policies", default="fcfs;ltr:tau=0.6")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--canary", default="32,128,96", help="requests,prompt tokens,output tokens")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--out", default=None, help="CSV of every value under each speed")
    args = ap.parse_args(argv)
    profile = load_profile(args.profile)
    specs = [s for s in args.policies.split(";") if s]
    cases = [("burst", None)] + [("poisson", float(r)) for r in args.rates.split(",") if r]
    workloads = [(f"{a}@{r:g}/s" if r else a, build_workload("sharegpt", args.num_requests, a, r, 1.0, None, 0))
                 for a, r in cases]
    canary = canary_workload(*(int(x) for x in args.canary.split(",")))
    eng = start_engine(model=args.model, max_num_seqs=args.max_num_seqs)
    facts = EngineFacts.of(eng)
    print(f"engine: {facts.host}", flush=True)
    config = facts.sim_config(profile, eng.config)

    def canary_ratio() -> float:
        return step_time_ratio(eng.run(canary, make_policy("fcfs")).steps, profile)

    runs = []
    before = canary_ratio()
    for k in range(args.repeats):
        for case, wl in workloads:
            for spec in specs:
                started = time.time()
                run = eng.run(wl, make_policy(spec))
                after = canary_ratio()
                runs.append({"case": case, "spec": spec, "repeat": k, "wl": wl, "run": run, "before": before,
                             "after": after, "own": step_time_ratio(run.steps, profile), "started": started})
                print(f"{case:>16} {spec:<14} canary before {before:.3f}, run {runs[-1]['own']:.3f}, "
                      f"canary after {after:.3f}", flush=True)
                before = after
    rows = []
    for r in runs:
        speeds = {"profile": 1.0, "canary before": r["before"], "canary around": (r["before"] + r["after"]) / 2,
                  "own": r["own"]}
        for label, f in speeds.items():
            if not math.isfinite(f):
                continue
            sim = simulate_at_speed(r["wl"], r["spec"], config, profile, f)
            if sim is None:  # (a speed that makes a step shorter than the simulator takes: nothing to compare)
                print(f"{r['case']} {r['spec']}: speed '{label}' x{f:.3g} is too fast to simulate; left out")
                continue
            rows += [(label, *row) for row in own_speed_rows(r["case"], r["spec"], r["repeat"], f, sim, r["run"])]
    table = pl.DataFrame(rows, schema=["speed", *COLUMNS], orient="row")
    if args.out:
        table.write_csv(args.out)
        pl.DataFrame([{k: r[k] for k in ("case", "spec", "repeat", "started", "before", "own", "after")}
                      for r in runs]).write_csv(args.out.replace(".csv", "-runs.csv"))
    tol = args.tolerance
    print(f"\n{len(runs)} runs; values within {tol:.0%} (mean and P90 of E2E, TTFT, TPOT per run):")
    print("| speed | within | median abs. error |")
    print("|---|---|---|")
    for (label,), g in table.group_by(["speed"], maintain_order=True):
        print(f"| {label} | {int((g['rel_error'].abs() <= tol).sum())} of {g.height} | "
              f"{float(np.median(np.abs(g['rel_error'].to_numpy()))):.1%} |")
    own = np.array([r["own"] for r in runs])
    for key in ("before", "after"):
        c = np.array([r[key] for r in runs])
        print(f"canary {key} / run's own ratio: median {np.median(c / own):.3f}, "
              f"abs. deviation median {np.median(np.abs(c / own - 1)):.1%}, max {np.max(np.abs(c / own - 1)):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
