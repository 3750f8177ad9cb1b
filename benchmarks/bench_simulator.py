"""Simulator speed: wall time vs simulated time.

Target (issue 2): the paper's burst of 2,000 ShareGPT requests on the A100 Llama-3-8B profile simulates
>= 1000x faster than its simulated makespan on one core, with the policy re-ranking every live request
every step.

    python benchmarks/bench_simulator.py [--num-requests 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core

from ltrsched.policies import make_policy  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.workloads import apply_arrivals, load_workload  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="sharegpt")
    ap.add_argument("--num-requests", type=int, default=2000)
    ap.add_argument("--profile", default="a100-llama3-8b")
    ap.add_argument("--policies", default="fcfs,srtf")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    wl = apply_arrivals(load_workload(args.workload, num_requests=args.num_requests, seed=0), "burst")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f} (other processes slow the wall times)")
    print(f"workload {args.workload} n={len(wl)} burst, profile {args.profile}")
    print(f"{'policy':<10}{'makespan [s]':>14}{'wall [s]':>10}{'steps':>8}{'us/step':>9}{'speedup':>10}")
    for spec in args.policies.split(","):
        walls = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            r = simulate(wl, make_policy(spec), SimConfig(profile=args.profile))
            walls.append(time.perf_counter() - t0)
        wall = min(walls)  # the least disturbed run
        s = r.summary
        print(f"{spec:<10}{s['makespan']:>14.1f}{wall:>10.3f}{s['steps']:>8}{wall / s['steps'] * 1e6:>9.0f}"
              f"{s['makespan'] / wall:>9.0f}x")


if __name__ == "__main__":
    main()
