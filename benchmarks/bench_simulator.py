"""Simulator speed: wall time vs simulated time, and each policy's per-step cost relative to FCFS.

Target (issue 2): the paper's burst of 2,000 ShareGPT requests on the A100 Llama-3-8B profile simulates
>= 1000x faster than its simulated makespan on one core, with the policy re-ranking every live request
every step.

Target (issue 15): the paper's own policies (LTR with starvation prevention, MLFQ) cost <= 1.3x FCFS per
step on that burst. Runs are interleaved (round r runs every policy once), so a change in the machine's
load hits every policy alike; "x fcfs" is the policy's us/step over FCFS's, both the best of the rounds.
Per-step costs are CPU time (``time.process_time``: a shared machine's other jobs stretch wall time far more
than they stretch the process's own CPU time); the wall column is for the speedup over real time.

    python benchmarks/bench_simulator.py [--num-requests 2000] [--repeat 3]
    python benchmarks/bench_simulator.py --policies fcfs,srtf,ltr:tau=0.5,ltr:tau=0.5,starve=200,quantum=10,mlfq

``--policies`` is a comma-separated list of policy specs; an item ``key=value`` without a ``:`` continues
the spec before it (so ``ltr:tau=0.5,starve=200,quantum=10`` is one spec).

``--replay`` splits each policy's cost: its recorded orders are served again by a policy that only hands them
back (accepted without the order check, as ``order_by``'s are), so that run is the host's cost of the policy's
schedule (batches, preemptions, finishes), and the difference is the policy's own decisions (rank, hooks and
the check of its orders).

On a loaded machine count instructions instead (load does not change them): run it under callgrind with
``--callgrind PREFIX`` (the same as valgrind's out-file prefix): after a warm-up run of every policy, each
policy's ``simulate()`` is bracketed by ``callgrind_control`` (zero the counters, dump them), and the
instructions between are read back from the dump (less those of an empty bracket). The dumps stay, as
PREFIX.I (the I-th policy) and PREFIX.I-replay, for ``callgrind_annotate --inclusive=no``:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \
        python benchmarks/bench_simulator.py --policies fcfs,mlfq --replay --callgrind /tmp/cg
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core

import numpy as np  # noqa: E402

from ltrsched.policies import LiveView, Policy, make_policy  # noqa: E402
from ltrsched.policies.order_check import vouched_again  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.workloads import apply_arrivals, load_workload  # noqa: E402


def split_specs(text: str) -> list[str]:
    """``"fcfs,ltr:tau=0.5,starve=200,mlfq"`` -> ``["fcfs", "ltr:tau=0.5,starve=200", "mlfq"]``."""
    specs: list[str] = []
    for item in text.split(","):
        if specs and "=" in item and ":" not in item:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return specs


class Replay(Policy):
    """Hands back recorded orders, one per step (the host's cost of a schedule, with no decisions to make)."""

    name = "replay"

    def __init__(self, orders: list):
        self._orders = orders
        self._step = 0

    def rank(self, view: LiveView) -> np.ndarray:
        order = self._orders[self._step]
        self._step += 1
        # (read-only, vouched for: accepted like a library policy's order, without the order check; a plugin's own
        # orders are checked value by value since the hosts trust read-only only where the library made the order)
        return vouched_again(view, order)


def recorded_orders(wl, spec: str, profile: str) -> list:
    """The orders ``spec`` returns, step by step, on ``wl`` (read-only copies)."""
    policy = make_policy(spec)
    rank, orders = policy.rank, []

    def recording(view):
        order = rank(view)
        kept = np.array(order)
        kept.flags.writeable = False
        orders.append(kept)
        return order

    policy.rank = recording  # (an instance attribute: the host sees the policy's own class and hooks)
    simulate(wl, policy, SimConfig(profile=profile))
    return orders


def callgrind_counter(prefix: str):
    """``counted(run, name=None)``: the instructions ``run()`` takes, counted by the callgrind this process runs
    under (``--callgrind-out-file=PREFIX.%p``), less those of an empty bracket; the dump is kept as PREFIX.NAME
    (for callgrind_annotate) if named."""
    import glob
    import subprocess

    pid = os.getpid()

    def bracketed(run, name):
        subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
        run()
        before = set(glob.glob(f"{prefix}.{pid}.*"))
        subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
        (dump,) = set(glob.glob(f"{prefix}.{pid}.*")) - before
        with open(dump) as f:
            total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
        if name is None:
            os.remove(dump)
        else:
            os.replace(dump, f"{prefix}.{name}")
        return total

    bracket = bracketed(lambda: None, None)

    def counted(run, name: str | None = None) -> int:
        return bracketed(run, name) - bracket

    counted.bracket = bracket
    return counted


def count_instructions(wl, specs: list[str], profile: str, prefix: str, replay: bool) -> None:
    """Instructions of one ``simulate()`` per policy (and of its replay), counted by the callgrind this process
    runs under."""
    orders = {spec: recorded_orders(wl, spec, profile) for spec in specs} if replay else {}
    for spec in specs:  # warm-up (imports, memoised step times)
        simulate(wl, make_policy(spec), SimConfig(profile=profile))
    counted = callgrind_counter(prefix)
    bracket = counted.bracket
    rows = []
    for i, spec in enumerate(specs):
        policy = make_policy(spec)
        out = {}
        n = counted(lambda: out.setdefault("r", simulate(wl, policy, SimConfig(profile=profile))), f"{i}")
        host = None
        if replay:
            host = counted(lambda: simulate(wl, Replay(orders[spec]), SimConfig(profile=profile)), f"{i}-replay")
        rows.append((spec, n, out["r"].summary["steps"], host))
    base = rows[0][1] / rows[0][2]
    print(f"workload {wl.name} n={len(wl)} burst, profile {profile}; instructions of one simulate() (callgrind, "
          f"less {bracket:,} for the bracket)")
    print(f"{'policy':<36}{'M instr.':>10}{'steps':>7}{'k instr./step':>15}{'x ' + specs[0]:>9}"
          + (f"{'host k/step':>13}{'x ' + specs[0]:>9}{'policy k/step':>15}" if replay else ""))
    for spec, n, steps, host in rows:
        print(f"{spec:<36}{n / 1e6:>10.1f}{steps:>7}{n / steps / 1e3:>15.1f}{n / steps / base:>9.2f}"
              + (f"{host / steps / 1e3:>13.1f}{host / steps / base:>9.2f}{(n - host) / steps / 1e3:>15.1f}"
                 if replay else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="sharegpt")
    ap.add_argument("--num-requests", type=int, default=2000)
    ap.add_argument("--profile", default="a100-llama3-8b")
    ap.add_argument("--policies", default="fcfs,srtf")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each runs every policy once")
    ap.add_argument("--replay", action="store_true", help="also serve each policy's recorded orders again: "
                    "the host's share of its per-step cost")
    ap.add_argument("--callgrind", default=None, metavar="PREFIX",
                    help="count instructions (run under callgrind with --callgrind-out-file=PREFIX.%%p)")
    args = ap.parse_args()
    specs = split_specs(args.policies)

    wl = apply_arrivals(load_workload(args.workload, num_requests=args.num_requests, seed=0), "burst")
    if args.callgrind is not None:
        count_instructions(wl, specs, args.profile, args.callgrind, args.replay)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f} (other processes slow the wall times)")
    print(f"workload {args.workload} n={len(wl)} burst, profile {args.profile}, {args.repeat} interleaved rounds")
    orders = {spec: recorded_orders(wl, spec, args.profile) for spec in specs} if args.replay else {}
    walls: dict[str, list[float]] = {spec: [] for spec in specs}
    cpus: dict[str, list[float]] = {spec: [] for spec in specs}
    hosts: dict[str, list[float]] = {spec: [] for spec in specs}
    summaries = {}
    for _ in range(args.repeat):
        for spec in specs:
            policy = make_policy(spec)
            t0, c0 = time.perf_counter(), time.process_time()
            r = simulate(wl, policy, SimConfig(profile=args.profile))
            cpus[spec].append(time.process_time() - c0)
            walls[spec].append(time.perf_counter() - t0)
            summaries[spec] = r.summary
            if args.replay:
                c0 = time.process_time()
                again = simulate(wl, Replay(orders[spec]), SimConfig(profile=args.profile))
                hosts[spec].append(time.process_time() - c0)
                assert again.summary["steps"] == r.summary["steps"]  # (the same schedule)
    base = specs[0]
    base_us = min(cpus[base]) / summaries[base]["steps"] * 1e6
    print(f"{'policy':<36}{'makespan [s]':>13}{'wall [s]':>10}{'steps':>7}{'us/step':>9}{'median':>8}"
          f"{'x ' + base:>9}{'speedup':>9}" + (f"{'host us/step':>14}{'x ' + base:>9}" if args.replay else ""))
    for spec in specs:
        s = summaries[spec]
        wall = min(walls[spec])  # the least disturbed run
        us = min(cpus[spec]) / s["steps"] * 1e6
        med = statistics.median(cpus[spec]) / s["steps"] * 1e6
        host = min(hosts[spec]) / s["steps"] * 1e6 if args.replay else 0.0
        print(f"{spec:<36}{s['makespan']:>13.1f}{wall:>10.3f}{s['steps']:>7}{us:>9.1f}{med:>8.1f}"
              f"{us / base_us:>9.2f}{s['makespan'] / wall:>8.0f}x"
              + (f"{host:>14.1f}{host / base_us:>9.2f}" if args.replay else ""))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
