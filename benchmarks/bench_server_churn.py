"""A server's churn of short requests through one policy, with no simulator around it: memory held and CPU time.

``--per-step`` requests arrive each step (ids by arrival, listed by arrival), each done after 1-3 tokens; the batch
is the first ``--batch`` of the policy's order. Measures what the policy keeps per request as requests come and go
(MLFQ with ``promote=P`` filed a request as due every step it ran or arrived and kept the entries P steps, whatever
the count live; BENCHMARKS.md, "Policy cost per step"): one run reading, after every step, the entries its due
steps hold (MLFQ's ``_due``, if any) and the widest of its id arrays; then ``--repeat`` runs without those reads,
timed (``time.process_time``, the best shown). The host's own work here is a few numpy passes over the live requests.

    python benchmarks/bench_server_churn.py --policy mlfq:quantum=0.02,promote=256 --requests 200000 --per-step 1000 \\
        --batch 4000
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ltrsched.policies import LiveView, RequestState, make_policy  # noqa: E402
from ltrsched.policies.id_array import IdArray  # noqa: E402


def held(policy) -> tuple[int, int]:
    """Entries filed as due (MLFQ's ``_due``; 0 without) and the widest id array [entries] of ``policy``."""
    due = getattr(policy, "_due", None)
    entries = sum(len(ids) for ids in due.held()) if due is not None else 0
    widest = max((len(v.data) for v in vars(policy).values() if isinstance(v, IdArray)), default=0)
    return entries, widest


def churn_outputs(n: int, seed: int = 3) -> np.ndarray:
    """Output lengths of ``n`` short requests: 1-3 tokens each [tokens]."""
    return np.random.default_rng(seed).integers(1, 4, n)


def serve(policy, output: np.ndarray, per_step: int, batch: int,
          on_step: Callable[[object, int, int], None] | None = None, score: np.ndarray | None = None,
          first_id: int = 0, stays: int = 0) -> tuple[int, int, np.ndarray]:
    """Serve requests of ``output`` tokens each (ids ``first_id`` on, by arrival), ``per_step`` arriving a step, the
    batch the first ``batch`` of the policy's order, until at most ``stays`` are live; ``score``: their LTR scores
    (0 if None). Returns (steps, most live, tokens generated per request). ``on_step(policy, live, step)`` is called
    after every step (what the policy holds is read there), with the count live at that step's rank."""
    n = len(output)
    rid = np.arange(n, dtype=np.int64) + first_id
    score = np.zeros(n) if score is None else score
    generated = np.zeros(n, dtype=np.int64)
    run_time = np.zeros(n)
    idle = np.zeros(n, dtype=np.int64)
    live = np.zeros(0, dtype=np.int64)
    nxt = step = most_live = 0
    while nxt < n or len(live) > stays:
        new = np.arange(nxt, min(nxt + per_step, n))
        nxt += len(new)
        if len(new):
            live = np.concatenate((live, new))
            policy.on_arrival(rid[new], float(step))
        k = len(live)
        cols = {"request_id": rid[live], "arrival_time": live.astype(float), "prompt_tokens": np.full(k, 8),
                "output_tokens": output[live], "generated_tokens": generated[live], "computed_tokens": generated[live],
                "state": np.full(k, int(RequestState.WAITING), np.int8), "idle_steps": idle[live],
                "run_time": run_time[live], "score": score[live], "po_estimate": np.full(k, np.nan),
                "predicted_length": np.full(k, np.nan)}
        view = LiveView(cols, None, now=float(step), step=step, arrival_ordered=True)
        scheduled = np.zeros(k, dtype=bool)
        scheduled[policy.rank(view)[:batch]] = True
        ran = live[scheduled]
        generated[ran] += 1
        run_time[ran] += 0.01
        idle[live] += 1
        idle[ran] = 0
        policy.on_step(view, scheduled, 0.01)
        done = ran[generated[ran] >= output[ran]]
        if len(done):
            live = live[~np.isin(live, done)]
            policy.on_finish(rid[done], float(step))
        most_live = max(most_live, k)
        if on_step is not None:
            on_step(policy, k, step)
        step += 1
    return step, most_live, generated


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="mlfq:quantum=0.02,promote=256")
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--per-step", type=int, default=1000, help="arrivals per step")
    ap.add_argument("--batch", type=int, default=4000, help="most requests run per step")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs (the best is shown)")
    args = ap.parse_args()
    if min(args.requests, args.per_step, args.batch, args.repeat) < 1:
        ap.error("--requests, --per-step, --batch and --repeat must be >= 1")
    try:
        make_policy(args.policy)
    except Exception as exc:  # (the registry's errors: unknown name, bad parameter)
        ap.error(f"policy {args.policy!r}: {exc}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, pinned to CPUs {sorted(os.sched_getaffinity(0))}, load average "
          f"{os.getloadavg()[0]:.2f}")
    most = [0, 0]  # entries filed as due, widest id array

    def watch(policy, live: int, step: int) -> None:
        entries, wide = held(policy)
        most[:] = max(most[0], entries), max(most[1], wide)

    steps, most_live, _ = serve(make_policy(args.policy), churn_outputs(args.requests), args.per_step, args.batch,
                                watch)
    most_due, widest = most
    print(f"{args.policy}: {args.requests} requests, {args.per_step} a step, batch <= {args.batch}: {steps} steps, "
          f"at most {most_live} live, {most_due} entries filed as due, id arrays {widest} wide")
    cpu = []
    for _ in range(args.repeat):
        c0 = time.process_time()
        serve(make_policy(args.policy), churn_outputs(args.requests), args.per_step, args.batch)
        cpu.append(time.process_time() - c0)
    print(f"CPU [s], best of {args.repeat}: {min(cpu):.3f} (all: {', '.join(f'{c:.3f}' for c in cpu)}); "
          f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
