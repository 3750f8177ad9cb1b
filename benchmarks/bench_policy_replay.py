"""A policy's own per-step cost, without the simulator: its hooks replayed from a recorded run.

Records one simulator run of the 2,000-request ShareGPT burst under ``--record`` (every ``on_arrival``,
``on_finish``, ``rank`` and ``on_step`` call, with each step's ``idle_steps`` and ``run_time``; a policy the simulator
tells its batch through ``on_step_ranks``, e.g. MLFQ, has that call recorded instead), then replays
those calls into a fresh policy of each ``--policies`` spec in a tight loop: a ``LiveView`` per step, the
policy's ``rank`` and the host's order check, its hooks. The best of ``--repeat`` rounds is reported in CPU
time per step. Policies replayed on another policy's run see that run's views (a cost, not a schedule).

    python benchmarks/bench_policy_replay.py --record ltr:tau=0.5,starve=200,quantum=10 \\
        --policies fcfs,ltr:tau=0.5,ltr:tau=0.5,starve=200,quantum=10

Under callgrind, ``--callgrind PREFIX`` counts each replay's instructions instead (dump kept as PREFIX.I):

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cgp.%p \\
        python benchmarks/bench_policy_replay.py --record mlfq --policies mlfq --callgrind /tmp/cgp
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bench_simulator import split_specs  # noqa: E402
from ltrsched.policies import LiveView, Policy, make_policy  # noqa: E402
from ltrsched.policies.order_check import check_order  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.sim.request_table import LiveGather  # noqa: E402
from ltrsched.workloads import apply_arrivals, load_workload  # noqa: E402

_FIXED = ("request_id", "arrival_time", "prompt_tokens", "output_tokens", "score", "po_estimate", "predicted_length")


def record(wl, spec: str, profile: str) -> tuple[dict, list]:
    """The workload columns ``prepare`` got and every hook call of one run of ``spec``, in order."""
    policy = make_policy(spec)
    hooks = {name: getattr(policy, name) for name in ("prepare", "on_arrival", "on_finish", "rank", "on_step")}
    columns: dict = {}
    calls: list = []

    def prepare(requests):
        columns.update({k: np.array(v) for k, v in requests.items()})
        hooks["prepare"](requests)

    def on_arrival(ids, now):
        calls.append(("arrival", np.array(ids), now))
        hooks["on_arrival"](ids, now)

    def on_finish(ids, now):
        calls.append(("finish", np.array(ids), now))
        hooks["on_finish"](ids, now)

    def rank(view):
        rows = len(columns["request_id"])
        idle, run_time = np.zeros(rows, dtype=np.int64), np.zeros(rows)
        idle[view._index], run_time[view._index] = view.idle_steps, view.run_time
        calls.append(("rank", view._index, view.now, view.step, view.arrival_ordered, idle, run_time))
        return hooks["rank"](view)

    def on_step(view, scheduled, step_time):
        calls.append(("step", np.array(scheduled), step_time, None))
        hooks["on_step"](view, scheduled, step_time)

    def on_step_ranks(view, order, ranks, step_time):  # the simulator's call where the policy has it (MLFQ)
        scheduled = np.zeros(len(order), dtype=bool)
        scheduled[order[:ranks] if isinstance(ranks, (int, np.integer)) else order[ranks]] = True
        calls.append(("step", scheduled, step_time, ranks if isinstance(ranks, (int, np.integer)) else np.array(ranks)))
        hooks["on_step_ranks"](view, order, ranks, step_time)

    # instance attributes: the host still sees the policy's own class (and whether it has an on_step)
    policy.prepare, policy.on_arrival, policy.on_finish, policy.rank = prepare, on_arrival, on_finish, rank
    if getattr(type(policy), "on_step", Policy.on_step) is not Policy.on_step:
        policy.on_step = on_step
        if hasattr(policy, "on_step_ranks"):
            hooks["on_step_ranks"], policy.on_step_ranks = policy.on_step_ranks, on_step_ranks
    simulate(wl, policy, SimConfig(profile=profile))
    return columns, calls


def replay(spec: str, columns: dict, calls: list, recorded: str | None = None) -> float:
    """CPU seconds to replay ``calls`` into a fresh ``spec`` policy (views, ranks, order checks, hooks), as the
    simulator calls them: ``on_step_ranks`` where the policy has it (the batch's ranks in its order: the recorded
    ones when ``spec`` is the ``recorded`` run's, else read off the batch's mask), ``on_step`` otherwise."""
    policy = make_policy(spec)
    step_ranks = getattr(policy, "on_step_ranks", None)
    same_run = spec == recorded
    policy.prepare(columns)
    live_columns = {k: LiveGather(columns[k]) for k in _FIXED}
    now_idle: list = [None]
    live_columns["idle_steps"] = lambda index: now_idle[0][index]
    view = order = None
    t0 = time.process_time()
    for call in calls:
        kind = call[0]
        if kind == "rank":
            _, live, now, step, arrival_ordered, now_idle[0], live_columns["run_time"] = call
            view = LiveView(live_columns, live, now, step, arrival_ordered)
            order = policy.rank(view)
            check_order(order, view, policy)
        elif kind == "arrival":
            policy.on_arrival(call[1], call[2])
        elif kind == "finish":
            policy.on_finish(call[1], call[2])
        elif step_ranks is not None:
            ranks = call[3] if same_run and call[3] is not None else np.flatnonzero(call[1][order])
            step_ranks(view, order, ranks, call[2])
        else:
            policy.on_step(view, call[1], call[2])
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="sharegpt")
    ap.add_argument("--num-requests", type=int, default=2000)
    ap.add_argument("--profile", default="a100-llama3-8b")
    ap.add_argument("--record", default="ltr:tau=0.5,starve=200,quantum=10", help="the policy whose run is recorded")
    ap.add_argument("--policies", default=None, help="specs to replay (default: the recorded one)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--callgrind", default=None, metavar="PREFIX",
                    help="count instructions (run under callgrind with --callgrind-out-file=PREFIX.%%p)")
    args = ap.parse_args()
    wl = apply_arrivals(load_workload(args.workload, num_requests=args.num_requests, seed=0), "burst")
    specs = split_specs(args.policies or args.record)
    columns, calls = record(wl, args.record, args.profile)
    steps = sum(1 for call in calls if call[0] == "rank")
    print(f"run of {args.record} on {args.workload} n={len(wl)} burst, {steps} steps")
    if args.callgrind is not None:
        from bench_simulator import callgrind_counter

        counted = callgrind_counter(args.callgrind)
        for i, spec in enumerate(specs):
            replay(spec, columns, calls, args.record)  # warm-up
            n = counted(lambda: replay(spec, columns, calls, args.record), f"{i}")
            print(f"{spec:<36}{n / steps / 1e3:>8.1f} k instr./step")
        return
    for spec in specs:
        best = min(replay(spec, columns, calls, args.record) for _ in range(args.repeat))
        print(f"{spec:<36}{best / steps * 1e6:>8.1f} us/step")


if __name__ == "__main__":
    main()
