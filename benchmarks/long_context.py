"""Simulator time of long-context requests (reasoning models): prompts of 50-120k tokens, outputs of 8-32k.

A few such requests keep one to a few requests live for tens of thousands of decode steps each, so the simulator's
cost is its per-step cost times ~one step per output token. The workload is seeded: ``--requests`` requests with
prompts drawn uniformly from 50,000-120,000 tokens and outputs from 8,000-32,000, arriving as a Poisson process of
mean gap ``--gap`` seconds (the first at 0). The profile is ``a100-llama3-8b`` with ``--num-gpu-blocks`` blocks of
16 tokens (65,536: 1 M tokens, room for a dozen requests at once; 0: the profile's own, ~460k tokens on the A100's
80 GB, where later requests wait for KV) and ``max_model_len`` 152,000 (the longest request).

CPU time (``time.process_time``) of one ``simulate(...)``, the best of ``--repeat`` runs; steps and us/step.

    taskset -c 0 python benchmarks/long_context.py --requests 6 --policies fcfs
    taskset -c 0 python benchmarks/long_context.py --requests 29 --policies fcfs,srtf --repeat 3
    taskset -c 0 python benchmarks/long_context.py --requests 6 --profile 20
    taskset -c 0 python benchmarks/long_context.py --requests 29 --num-gpu-blocks 0    # the A100's own cache

``--profile K`` runs each policy once more under cProfile and prints the K functions with the most time of their
own and the most cumulative time, in microseconds per step. The load average is printed at the start and the end.
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

PROMPT_TOKENS = (50_000, 120_000)
OUTPUT_TOKENS = (8_000, 32_000)
MAX_MODEL_LEN = PROMPT_TOKENS[1] + OUTPUT_TOKENS[1]  # 152,000: what the A100 profile's own cache allows


def long_context(n: int, gap: float, seed: int) -> Workload:
    """``n`` requests (ids 0..n-1): prompts uniform in :data:`PROMPT_TOKENS`, outputs in :data:`OUTPUT_TOKENS`
    [tokens], Poisson arrivals of mean gap ``gap`` [s] from 0."""
    rng = np.random.default_rng(seed)
    prompts = rng.integers(PROMPT_TOKENS[0], PROMPT_TOKENS[1] + 1, n)
    outputs = rng.integers(OUTPUT_TOKENS[0], OUTPUT_TOKENS[1] + 1, n)
    arrivals = np.concatenate(([0.0], np.cumsum(rng.exponential(gap, n - 1)))) if gap > 0 else np.zeros(n)
    return Workload(pl.DataFrame({
        "request_id": np.arange(n, dtype=np.int64), "prompt_tokens": prompts.astype(np.int64),
        "output_tokens": outputs.astype(np.int64), "arrival_time": arrivals,
    }), f"long-context-{n}")


def config(num_gpu_blocks: int) -> SimConfig:
    """``a100-llama3-8b`` with ``num_gpu_blocks`` KV blocks (0: the profile's own, from the GPU's memory)."""
    return SimConfig(profile="a100-llama3-8b", num_gpu_blocks=num_gpu_blocks or None, max_model_len=MAX_MODEL_LEN)


def profiled(wl: Workload, spec: str, cfg: SimConfig, top: int) -> None:
    print_step_profile(lambda: simulate(wl, make_policy(spec), cfg).summary["steps"], spec, top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=6, help="requests in the workload (default 6)")
    ap.add_argument("--gap", type=float, default=60.0, help="mean gap between arrivals [s] (0: a burst; default 60)")
    ap.add_argument("--seed", type=int, default=0, help="the workload's seed (default 0)")
    ap.add_argument("--num-gpu-blocks", type=int, default=65_536,
                    help="KV blocks of 16 tokens (default 65,536; 0: the profile's own)")
    ap.add_argument("--policies", default="fcfs", help="comma-separated policy specs without commas of their own")
    ap.add_argument("--repeat", type=int, default=1, help="runs per policy; the best CPU time is shown")
    ap.add_argument("--profile", type=int, default=0, metavar="K", help="also profile each run: top K functions")
    args = ap.parse_args()
    specs = [s for s in args.policies.split(",") if s]
    if not specs or args.requests < 1 or args.repeat < 1 or args.profile < 0 or args.gap < 0 or args.num_gpu_blocks < 0:
        ap.error("need a policy, --requests >= 1, --repeat >= 1, --profile >= 0, --gap >= 0 and --num-gpu-blocks >= 0")
    wl = long_context(args.requests, args.gap, args.seed)
    cfg = config(args.num_gpu_blocks)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"numpy {np.__version__}, pinned to CPUs {sorted(os.sched_getaffinity(0))}, load average {load()} (1/5/15 min)")
    print(f"workload: {args.requests} requests, seed {args.seed}, gap {args.gap:g} s, "
          f"{int(wl.df['prompt_tokens'].sum()):,} prompt and {int(wl.df['output_tokens'].sum()):,} output tokens")
    print(f"{'policy':<12}{'steps':>9}{'CPU [s]':>10}{'wall [s]':>10}{'us/step':>10}{'makespan [s]':>14}")
    for spec in specs:
        best = None
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            r = simulate(wl, make_policy(spec), cfg)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            if best is None or cpu < best[0]:
                best = (cpu, wall, r.summary["steps"], r.summary["makespan"])
        cpu, wall, steps, makespan = best
        print(f"{spec:<12}{steps:>9}{cpu:>10.2f}{wall:>10.2f}{cpu / steps * 1e6:>10.1f}{makespan:>14.1f}", flush=True)
        if args.profile:
            profiled(wl, spec, cfg, args.profile)
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
