"""Cluster simulation speed: simulated time vs wall time for N replicas behind a router.

Target (issue 15): a cluster of 8 replicas serving 16,000 Poisson ShareGPT requests at a rate near the
fleet's capacity simulates >= 500x faster than real time (simulated makespan / wall time, one core).

    python benchmarks/bench_cluster.py [--replicas 8] [--num-requests 16000] [--rate 144] [--repeat 3]

The built-in ShareGPT workload has 4,000 evaluation requests; more are made by repeating them (each
copy a new request id, arrivals drawn afresh by the Poisson process). Also prints, for scale, one replica
serving 1/N of the requests at 1/N of the rate (the lone simulator: the cost of a replica-second).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core

import polars as pl  # noqa: E402

from ltrsched.policies import make_policy  # noqa: E402
from ltrsched.routers import make_router  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.sim.cluster import simulate_cluster  # noqa: E402
from ltrsched.workloads import apply_arrivals, load_workload  # noqa: E402


def workload(name: str, n: int, rate: float, seed: int = 0):
    """``n`` requests of ``name`` (the whole built-in repeated when it has fewer), Poisson at ``rate``."""
    try:
        wl = load_workload(name, num_requests=n, seed=seed)
    except Exception:  # fewer requests than asked: repeat all of them
        base = load_workload(name, seed=seed)
        copies = -(-n // len(base))
        df = pl.concat([base.df] * copies).head(n).with_columns(request_id=pl.int_range(n, dtype=pl.Int64))
        wl = base.with_df(df)
    return apply_arrivals(wl, "poisson", rate=rate, seed=seed)


def best_of(repeat: int, fn):
    walls, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - t0)
    return min(walls), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="sharegpt")
    ap.add_argument("--num-requests", type=int, default=16000)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--rate", type=float, default=144.0, help="fleet arrival rate [req/s]")
    ap.add_argument("--profile", default="a100-llama3-8b")
    ap.add_argument("--policy", default="fcfs")
    ap.add_argument("--routers", default="least-outstanding,round-robin")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} (other processes slow the wall times)")
    wl = workload(args.workload, args.num_requests, args.rate)
    config = SimConfig(profile=args.profile)
    print(f"workload {args.workload} n={len(wl)} poisson {args.rate} req/s, profile {args.profile}, "
          f"policy {args.policy}, {args.replicas} replicas")
    print(f"{'router':<22}{'makespan [s]':>13}{'wall [s]':>10}{'speedup':>9}{'steps':>8}{'us/step':>9}"
          f"{'ttft p90':>10}{'lat/tok':>9}")
    for spec in args.routers.split(","):
        wall, r = best_of(args.repeat, lambda: simulate_cluster(wl, make_policy(args.policy), config, args.replicas,
                                                                 make_router(spec)))
        s = r.summary
        print(f"{spec:<22}{s['makespan']:>13.1f}{wall:>10.3f}{s['makespan'] / wall:>8.0f}x{s['steps']:>8}"
              f"{wall / s['steps'] * 1e6:>9.1f}{s['ttft_p90']:>10.3f}{s['latency_per_token_mean']:>9.4f}")
    # for scale: one replica's share, on the lone simulator
    share = workload(args.workload, args.num_requests // args.replicas, args.rate / args.replicas)
    wall, r = best_of(args.repeat, lambda: simulate(share, make_policy(args.policy), config))
    s = r.summary
    print(f"{'lone replica, 1/N':<22}{s['makespan']:>13.1f}{wall:>10.3f}{s['makespan'] / wall:>8.0f}x{s['steps']:>8}"
          f"{wall / s['steps'] * 1e6:>9.1f}{s['ttft_p90']:>10.3f}{s['latency_per_token_mean']:>9.4f}")


if __name__ == "__main__":
    main()
