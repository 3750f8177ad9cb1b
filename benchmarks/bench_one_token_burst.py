"""Simulator time of one-token bursts: N requests of an 8-token prompt and 1 output token, all arriving at 0.

Every step then holds (nearly) every request still waiting, so the per-step cost shows what scales with the live
count: a policy's rank and hooks (PO's estimate phase makes each request 15 tokens longer: ~16 times the steps),
and the host's own work on the live requests. CPU time (``time.process_time``) of one
``simulate(workload, make_policy(spec), SimConfig())``, the best of ``--repeat`` runs; the workload is built once.

    python benchmarks/bench_one_token_burst.py --policies po --sizes 10000,20000,100000
    python benchmarks/bench_one_token_burst.py --policies fcfs --sizes 100000 --profile 25

``--profile K`` runs each (policy, size) once more under cProfile and prints the K functions with the most time of
their own (``tottime``), with their calls and microseconds per step, then those with the most cumulative time.
Pin it to one core (``taskset -c 0``) on a shared machine; the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from ltrsched.policies import make_policy  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.workloads.schema import Workload  # noqa: E402
from host_facts import cpu_model, load  # noqa: E402
from step_profile import print_step_profile  # noqa: E402


def one_token_burst(n: int) -> Workload:
    """``n`` requests (ids 0..n-1) of an 8-token prompt and 1 output token, all arriving at time 0."""
    return Workload(pl.DataFrame({
        "request_id": np.arange(n, dtype=np.int64), "prompt_tokens": np.full(n, 8, dtype=np.int64),
        "output_tokens": np.ones(n, dtype=np.int64), "arrival_time": np.zeros(n),
    }), f"one-token-burst-{n}")


def profiled(wl: Workload, spec: str, top: int) -> None:
    print_step_profile(lambda: simulate(wl, make_policy(spec), SimConfig()).summary["steps"], f"{spec} n={len(wl)}", top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", default="po", help="comma-separated policy specs without commas of their own "
                    "(e.g. po,fcfs,mlfq)")
    ap.add_argument("--sizes", default="10000,20000,100000", help="comma-separated burst sizes [requests]")
    ap.add_argument("--repeat", type=int, default=1, help="runs per (policy, size); the best CPU time is shown")
    ap.add_argument("--profile", type=int, default=0, metavar="K", help="also profile each run: top K functions")
    args = ap.parse_args()
    specs = [s for s in args.policies.split(",") if s]
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        ap.error(f"--sizes takes comma-separated integers, got {args.sizes!r}")
    if not specs or not sizes or min(sizes) < 1 or args.repeat < 1 or args.profile < 0:
        ap.error("need at least one policy, sizes >= 1, --repeat >= 1 and --profile >= 0")
    for spec in specs:
        try:
            make_policy(spec)  # (a bad spec fails before any run)
        except Exception as exc:  # (the registry's errors: unknown name, bad parameter)
            ap.error(f"policy {spec!r}: {exc}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}, numpy {np.__version__}, "
          f"pinned to CPUs {sorted(os.sched_getaffinity(0))}, load average {load()} (1/5/15 min)")
    print(f"{'policy':<12}{'requests':>10}{'steps':>8}{'CPU [s]':>10}{'wall [s]':>10}{'us/step':>10}")
    for n in sizes:
        wl = one_token_burst(n)
        for spec in specs:
            best = None
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                r = simulate(wl, make_policy(spec), SimConfig())
                cpu, wall = time.process_time() - c0, time.perf_counter() - t0
                if best is None or cpu < best[0]:
                    best = (cpu, wall, r.summary["steps"])
            cpu, wall, steps = best
            print(f"{spec:<12}{n:>10}{steps:>8}{cpu:>10.2f}{wall:>10.2f}{cpu / steps * 1e6:>10.1f}", flush=True)
            if args.profile:
                profiled(wl, spec, args.profile)
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
