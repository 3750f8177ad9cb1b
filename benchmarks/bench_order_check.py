"""What the check of every policy order costs the simulator (issue 12, item 3; target < 3%).

Runs ``simulate()`` on the 8B ShareGPT burst (bench_simulator.py's case) in one process, interleaving three
variants so that machine load hits them alike, and reports the best wall time of each:

- ``shipped``: ``check_order`` as the replica calls it (``LiveView.order_by``'s read-only result is accepted
  by identity; anything else is checked value by value);
- ``no check``: the replica's call replaced by one that returns the order (the code before the check, but
  for one Python call per step and ``order_by`` marking its result read-only);
- ``full check``: every order checked value by value (what a policy that builds its own order pays).

    python benchmarks/bench_order_check.py [--num-requests 2000] [--rounds 15]

Compare with ``bench_simulator.py`` on the commit before the check (BENCHMARKS.md) for the whole change.
On a loaded machine count instructions instead (load does not change them): ``--simulate-only K`` runs a
warm-up and then K plain ``simulate()`` calls of the first policy, so that

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python benchmarks/bench_order_check.py --policies fcfs --simulate-only 1    # minus ... 0

is one ``simulate()``'s count (run it in each tree to compare).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from ltrsched.policies import make_policy  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.workloads import apply_arrivals, load_workload  # noqa: E402


def _variants() -> dict:
    """name -> the function the replica calls on each order (imported here: --simulate-only also runs on
    trees from before the check)."""
    from ltrsched.policies.order_check import check_order

    def no_check(order, view, policy):
        return order

    def full_check(order, view, policy):
        view._ranked = None  # no certificate: the value-by-value path
        return check_order(order, view, policy)

    return {"shipped": check_order, "no check": no_check, "full check": full_check}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="sharegpt")
    ap.add_argument("--num-requests", type=int, default=2000)
    ap.add_argument("--policies", default="fcfs,srtf")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--simulate-only", type=int, default=None, metavar="K",
                    help="a warm-up and K simulate() calls of the first policy, as shipped; nothing printed")
    args = ap.parse_args()

    wl = apply_arrivals(load_workload(args.workload, num_requests=args.num_requests, seed=0), "burst")
    if args.simulate_only is not None:
        spec = args.policies.split(",")[0]
        for _ in range(1 + args.simulate_only):
            simulate(wl, make_policy(spec), SimConfig())
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    print(f"workload {args.workload} n={len(wl)} burst; best of {args.rounds} interleaved rounds")
    import ltrsched.sim.replica as replica

    variants = _variants()
    for spec in args.policies.split(","):
        best = {name: float("inf") for name in variants}
        for _ in range(args.rounds):
            for name, fn in variants.items():
                replica.check_order = fn
                t0 = time.perf_counter()
                simulate(wl, make_policy(spec), SimConfig())
                best[name] = min(best[name], time.perf_counter() - t0)
        replica.check_order = variants["shipped"]
        base = best["no check"]
        print(f"{spec:<6} " + "  ".join(f"{name} {wall * 1e3:6.1f} ms ({wall / base - 1:+.1%})"
                                         for name, wall in best.items()))


if __name__ == "__main__":
    main()
