"""Cluster simulation speed: simulated time vs wall time for N replicas behind a router.

Target (issue 15): a cluster of 8 replicas serving 16,000 Poisson ShareGPT requests at a rate near the
fleet's capacity simulates >= 500x faster than real time (simulated makespan / wall time, one core).

    python benchmarks/bench_cluster.py [--replicas 8] [--num-requests 16000] [--rate 144] [--repeat 3]

The built-in ShareGPT workload has 4,000 evaluation requests; more are made by repeating them (each
copy a new request id, arrivals drawn afresh by the Poisson process). For scale, the last line simulates
the round-robin cluster's N request subsets one after the other on the lone simulator (the same steps as
the round-robin cluster, without a cluster): "vs lone" is a cluster's cost over that.

Each case runs ``--repeat`` times, the cases interleaved; the best wall time and the best CPU time of this
process (``time.process_time``: on a shared machine, what the simulation itself cost one core) are kept.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="sharegpt")
    ap.add_argument("--num-requests", type=int, default=16000)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--rate", type=float, default=144.0, help="fleet arrival rate [req/s]")
    ap.add_argument("--profile", default="a100-llama3-8b")
    ap.add_argument("--policy", default="fcfs")
    ap.add_argument("--routers", default="round-robin,least-outstanding")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} (other processes slow the wall times)")
    wl = workload(args.workload, args.num_requests, args.rate)
    subsets = [wl.with_df(wl.df.filter(pl.int_range(pl.len()) % args.replicas == k)) for k in range(args.replicas)]
    config = SimConfig(profile=args.profile)
    print(f"workload {args.workload} n={len(wl)} poisson {args.rate} req/s, profile {args.profile}, "
          f"policy {args.policy}, {args.replicas} replicas; wall: best of {args.repeat}, cases interleaved")
    cases = {spec: (lambda spec=spec: simulate_cluster(wl, make_policy(args.policy), config, args.replicas,
                                                       make_router(spec))) for spec in args.routers.split(",")}
    lone = f"{args.replicas} lone replicas"
    cases[lone] = lambda: [simulate(sub, make_policy(args.policy), config) for sub in subsets]
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    results = {}
    for _ in range(args.repeat):
        for name, fn in cases.items():
            t0, c0 = time.perf_counter(), time.process_time()
            results[name] = fn()
            walls[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
    print(f"{'case':<22}{'makespan [s]':>13}{'steps':>8}{'ttft p90':>10}{'lat/tok':>9}"
          f"{'wall [s]':>10}{'speedup':>9}{'cpu [s]':>9}{'speedup':>9}{'us/step':>9}{'cpu vs lone':>13}")
    lone_cpu = min(cpus[lone])
    runs = results.pop(lone)  # the subsets' runs, summarised as one fleet
    every = pl.concat([r.requests for r in runs])
    results[lone] = runs[0].__class__(every, {
        "makespan": float(every["finish_time"].max() - every["arrival_time"].min()),
        "steps": sum(r.summary["steps"] for r in runs), "ttft_p90": float(every["ttft"].quantile(0.9, "linear")),
        "latency_per_token_mean": float(every["latency_per_token"].mean())})
    for name, r in results.items():
        s, wall, cpu = r.summary, min(walls[name]), min(cpus[name])
        vs = f"{cpu / lone_cpu:>12.2f}x" if name != lone else f"{'':>13}"
        print(f"{name:<22}{s['makespan']:>13.1f}{s['steps']:>8}{s['ttft_p90']:>10.3f}{s['latency_per_token_mean']:>9.4f}"
              f"{wall:>10.3f}{s['makespan'] / wall:>8.0f}x{cpu:>9.3f}{s['makespan'] / cpu:>8.0f}x"
              f"{cpu / s['steps'] * 1e6:>9.1f}{vs}")


if __name__ == "__main__":
    main()
