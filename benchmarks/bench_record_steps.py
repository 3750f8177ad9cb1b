"""The cost of a step trace (``simulate --record-steps``, ``--trace``) where many requests wait: a burst of N requests
(prompts and outputs of 10-200 tokens, seeded) on a KV cache of 32 blocks, FCFS, the first ``--stop`` simulated
seconds, with and without the trace. Runs are interleaved and each is timed by ``time.process_time`` (a shared
machine's other jobs stretch wall time more); the best of ``--repeat`` rounds is printed.

    python benchmarks/bench_record_steps.py [--num-requests 20000] [--stop 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from ltrsched.policies import make_policy  # noqa: E402
from ltrsched.sim import SimConfig, simulate  # noqa: E402
from ltrsched.workloads.schema import Workload  # noqa: E402


def burst(n: int) -> Workload:
    rng = np.random.default_rng(2)
    return Workload(pl.DataFrame({
        "request_id": np.arange(n, dtype=np.int64),
        "prompt_tokens": rng.integers(10, 201, n),
        "output_tokens": rng.integers(10, 201, n),
        "arrival_time": np.zeros(n),
    }), f"burst-{n}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-requests", type=int, default=20_000)
    ap.add_argument("--stop", type=float, default=300.0, help="simulated seconds run [s]")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    wl = burst(args.num_requests)
    best: dict[bool, float] = {}
    steps = 0
    for _ in range(args.repeat):
        for record in (False, True):
            config = SimConfig(num_gpu_blocks=32, record_steps=record, stop_time=args.stop)
            t = time.process_time()
            r = simulate(wl, make_policy("fcfs"), config)
            took = time.process_time() - t
            best[record] = min(best.get(record, took), took)
            steps = r.summary["steps"]
    plain, traced = best[False], best[True]
    print(f"{args.num_requests} requests, {steps} steps: without trace {plain:.2f} s, with {traced:.2f} s "
          f"({traced / plain:.2f}x; the trace {1e6 * (traced - plain) / steps:.0f} us/step)")


if __name__ == "__main__":
    main()
