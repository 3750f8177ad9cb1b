"""Per-step simulator cost with a long waiting queue: N requests arriving together (a burst).

The workload is the brief's length-only trace: prompts uniform in 4-1024 tokens, outputs uniform in 4-1000 tokens
(``numpy.random.default_rng(0)``), every request arriving at 0, plus a ``score`` column (minus the output length plus
noise, for ``ltr`` on a score column), a ``po_estimate`` and a ``predicted_length`` (noisy lengths, for ``po`` and
``class``). Each run is one ``simulate(workload, make_policy(spec), SimConfig(stop_time=T))`` on the default
``a100-llama3-8b`` profile: ``--stop-time`` [simulated s] cuts a big run after its first steps (the waiting queue
barely shrinks over them, so every step sees ~N live requests). Printed per (policy, N): steps, CPU time
(``time.process_time``, best of ``--repeat``), us per step and the ratio to FCFS's us per step at the same N (FCFS is
always run first).

    taskset -c 0 python benchmarks/bench_big_queue.py --sizes 2000,20000,200000 --stop-time 60
    taskset -c 0 python benchmarks/bench_big_queue.py --sizes 20000 --policies srtf --profile 20
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from ltrsched.policies import make_policy  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.workloads.schema import Workload  # noqa: E402

POLICIES = ("fcfs,srtf,ltr:tau=0.6,ltr,ltr:tau=0.6,starve=200,quantum=10,mlfq,po,class")


def big_burst(n: int, seed: int = 0) -> Workload:
    """``n`` requests at time 0: prompt 4-1024 and output 4-1000 tokens (uniform, ``default_rng(seed)``), and a
    score, PO estimate and predicted length, each the output length with noise."""
    rng = np.random.default_rng(seed)
    prompt = rng.integers(4, 1025, n)
    output = rng.integers(4, 1001, n)
    noise = rng.normal(0.0, 200.0, (3, n))
    return Workload(pl.DataFrame({
        "request_id": np.arange(n, dtype=np.int64), "prompt_tokens": prompt.astype(np.int64),
        "output_tokens": output.astype(np.int64), "arrival_time": np.zeros(n),
        "score": -(output + noise[0]) / 1000.0,
        "po_estimate": np.maximum(1.0, np.round(output + noise[1])),
        "predicted_length": np.maximum(1.0, np.round(output + noise[2])),
    }), f"big-burst-{n}")


def split_policies(text: str) -> list[str]:
    """Policy specs separated by commas, a spec's own ``key=value`` pairs kept with it."""
    out: list[str] = []
    for part in text.split(","):
        if "=" in part and out and ":" in out[-1] and ":" not in part:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def run(wl: Workload, spec: str, stop_time: float | None):
    t0 = time.process_time()
    res = simulate(wl, make_policy(spec), SimConfig(stop_time=stop_time))
    return time.process_time() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--policies", default=POLICIES, help="comma-separated specs (fcfs is added first)")
    ap.add_argument("--stop-time", type=float, default=None, help="[simulated s] end each run there (None: to the end)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--profile", type=int, default=0, help="print the top K functions of one cProfile'd run")
    args = ap.parse_args()
    specs = [s for s in split_policies(args.policies) if s != "fcfs"]
    print(f"load {os.getloadavg()[0]:.2f}; stop_time {args.stop_time}")
    print("| n | policy | steps | finished | CPU [s] | us/step | x fcfs |")
    print("|---|---|---|---|---|---|---|")
    run(big_burst(500), "fcfs", None)  # (warm-up: imports, first calls)
    for n in [int(s) for s in args.sizes.split(",")]:
        wl = big_burst(n)
        base = None
        for spec in ["fcfs", *specs]:
            best, res = None, None
            for _ in range(args.repeat):
                cpu, res = run(wl, spec, args.stop_time)
                best = cpu if best is None else min(best, cpu)
            steps = int(res.summary["steps"]) if "steps" in res.summary else len(res.steps)
            finished = int(res.summary["num_finished"])
            per = 1e6 * best / max(steps, 1)
            if spec == "fcfs":
                base = per
            print(f"| {n:,} | {spec} | {steps:,} | {finished:,} | {best:.2f} | {per:.0f} | {per / base:.2f} |",
                  flush=True)
            if args.profile and spec != "fcfs":
                prof = cProfile.Profile()
                prof.enable()
                simulate(wl, make_policy(spec), SimConfig(stop_time=args.stop_time))
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
