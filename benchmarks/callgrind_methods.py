"""Instructions per method of a policy, counted by callgrind in one ``simulate()`` of a burst (by default the
2,000-request ShareGPT burst of issue 15's policy-cost target).

Callgrind counts C functions, not Python ones. Each method named here is therefore called through a C builtin of
its own (``map``, ``itertools.starmap``, ``functools.reduce``, ``sorted``'s key, ``operator.call``, ``filter``), so
that builtin's inclusive count is that method's calls, nested ones included, plus the wrapper (1-3 k instructions
per call). Other calls of the same builtin count too (MLFQ's ``_relevel_head`` sorts a short Python list where a
member fell several levels, inside the fourth method's ``list.sort`` count): name a method there whose builtin the
code does not use, or compare with an unwrapped run. The wrapper hands the method's return value back, so the run
is the same schedule; its total is higher than an unwrapped run's by the wrappers.

    PYTHONPATH=$PWD taskset -c 0 env PYTHONHASHSEED=0 POLARS_MAX_THREADS=1 valgrind --tool=callgrind \\
        --callgrind-out-file=/tmp/cgm.%p python benchmarks/callgrind_methods.py --policy mlfq \\
        --methods rank,_follow,_relevel_head,_assemble,_ran,on_step_ranks --callgrind /tmp/cgm

prints the instructions per step of the wrapped run, the calls of each method, and each method's inclusive
instructions per step and per call, read from the dump (``callgrind_annotate --inclusive=yes``, kept as
PREFIX.methods). Without ``--callgrind`` it runs the wrapped simulation once and prints the calls only.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import operator
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_simulator import callgrind_counter  # noqa: E402

from ltrsched.policies import make_policy  # noqa: E402
import ltrsched.sim.decode_run as decode_run  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.workloads import apply_arrivals, load_workload  # noqa: E402


def _via_map(f):
    return lambda *a: next(map(f, *[[x] for x in a]))


def _via_starmap(f):
    return lambda *a: next(itertools.starmap(f, [a]))


def _via_reduce(f):
    return lambda *a: functools.reduce(lambda _x, _y: f(*a), [0, 0])


def _via_sorted(f):
    def call(*a):
        out = []
        sorted([0, 1], key=lambda x: (out.append(f(*a)) if x else None, 0)[1])
        return out[0]
    return call


def _via_call(f):
    return lambda *a: operator.call(f, *a)


def _via_filter(f):
    def call(*a):
        out = []
        next(filter(lambda _: out.append(f(*a)) or True, [0]))
        return out[0]
    return call


#: (wrapper, the callgrind function whose inclusive count is the wrapped method's), in the order methods take them
BUILTINS = [
    (_via_map, "bltinmodule.c:map_next"),
    (_via_starmap, "itertoolsmodule.c:starmap_next"),
    (_via_reduce, "_functoolsmodule.c:functools_reduce"),
    (_via_sorted, "listobject.c:list_sort_impl"),
    (_via_call, "_operator.c:_operator_call"),
    (_via_filter, "bltinmodule.c:filter_next"),
]


def wrap_methods(policy, methods: list[str]) -> dict[str, list[int]]:
    """Route each of ``methods`` (names of ``policy``'s methods, at most ``len(BUILTINS)``) through its own C builtin,
    on the instance; returns the per-method call counters (a one-element list each)."""
    if len(methods) > len(BUILTINS):
        raise SystemExit(f"at most {len(BUILTINS)} methods, got {len(methods)}")
    calls: dict[str, list[int]] = {}
    for name, (via, _) in zip(methods, BUILTINS):
        bound = getattr(policy, name)
        wrapped = via(bound)
        count = calls[name] = [0]

        def counted(*a, _wrapped=wrapped, _count=count):
            _count[0] += 1
            return _wrapped(*a)

        setattr(policy, name, counted)  # (an instance attribute: the host still sees the class's hooks)
    return calls


def inclusive_counts(dump: str, methods: list[str]) -> dict[str, int]:
    """Each method's inclusive instructions in a callgrind dump (``callgrind_annotate --inclusive=yes``)."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", dump],
                          check=True, capture_output=True, text=True).stdout
    return parse_inclusive(text, methods)


def parse_inclusive(text: str, methods: list[str]) -> dict[str, int]:
    """Each method's count in ``callgrind_annotate`` output: that of the line naming its builtin's C function (the
    largest, where inlined parts are listed apart under a header's name), 0 if none."""
    counts = {}
    for name, (_, symbol) in zip(methods, BUILTINS):
        pattern = r"^\s*([\d,]+) \([^)]*\)\s+\S*?" + re.escape(symbol) + r"(?:\s|$)"
        found = [int(m.group(1).replace(",", "")) for m in re.finditer(pattern, text, re.M)]
        counts[name] = max(found, default=0)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="mlfq")
    ap.add_argument("--methods", default="rank,_follow,_relevel_head,_assemble,_ran,on_step_ranks",
                    help="comma-separated method names (at most 6)")
    ap.add_argument("--workload", default="sharegpt")
    ap.add_argument("--num-requests", type=int, default=2000)
    ap.add_argument("--profile", default="a100-llama3-8b")
    ap.add_argument("--callgrind", default=None, metavar="PREFIX",
                    help="count instructions (run under callgrind with --callgrind-out-file=PREFIX.%%p)")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    decode_run.ENABLED = False  # (the per-step path's methods are measured: decode runs skip rank and on_step)
    wl = apply_arrivals(load_workload(args.workload, num_requests=args.num_requests, seed=0), "burst")
    config = SimConfig(profile=args.profile)
    simulate(wl, make_policy(args.policy), config)  # warm-up (imports, memoised step times)
    policy = make_policy(args.policy)
    calls = wrap_methods(policy, methods)
    out = {}
    if args.callgrind is None:
        steps = simulate(wl, policy, config).summary["steps"]
        print(f"{args.policy}: {steps} steps; calls: " + ", ".join(f"{m} {c[0]}" for m, c in calls.items()))
        return
    counted = callgrind_counter(args.callgrind)
    total = counted(lambda: out.setdefault("r", simulate(wl, policy, config)), "methods")
    steps = out["r"].summary["steps"]
    counts = inclusive_counts(f"{args.callgrind}.methods", methods)
    print(f"{args.policy} on {args.workload} n={len(wl)} burst, {args.profile}: {steps} steps, "
          f"{total / steps / 1e3:.1f} k instructions per step with the wrappers")
    print(f"{'method':<20}{'calls':>8}{'k instr./step':>15}{'k instr./call':>15}")
    for name in methods:
        n_calls = calls[name][0]
        print(f"{name:<20}{n_calls:>8}{counts[name] / steps / 1e3:>15.1f}"
              f"{counts[name] / max(n_calls, 1) / 1e3:>15.1f}")


if __name__ == "__main__":
    main()
