"""Policy decision cost per step: rank() + on_step() over N live requests.

Target (issue 3): <= 0.5 ms at 2,000 live requests (the engine adapter calls it every vLLM step).

    python benchmarks/bench_policy_rank.py [--sizes 2000,10000] [--steps 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ltrsched.policies import LiveView, make_policy  # noqa: E402

SPECS = ["fcfs", "srtf", "ltr", "ltr:starve=200,quantum=10", "oracle:tau=0.62", "mlfq:quantum=0.03,threshold=2",
         "po", "class:bucket=820"]


def columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = rng.integers(4, 2000, n)
    return {
        "request_id": np.arange(n), "arrival_time": np.sort(rng.uniform(0, 60, n)),
        "prompt_tokens": rng.integers(4, 1024, n), "output_tokens": out,
        "generated_tokens": rng.integers(0, 4, n) * (out // 4), "computed_tokens": rng.integers(0, 1000, n),
        "state": rng.integers(0, 4, n).astype(np.int8), "idle_steps": rng.integers(0, 400, n),
        "run_time": rng.exponential(0.5, n), "score": rng.normal(size=n),
        "po_estimate": rng.uniform(4, 2000, n), "predicted_length": rng.uniform(4, 2000, n),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2000,10000")
    ap.add_argument("--steps", type=int, default=500)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, one thread")
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'policy':<34}" + "".join(f"{f'{n} live [ms]':>16}" for n in sizes))
    for spec in SPECS:
        row = f"{spec:<34}"
        for n in sizes:
            cols = columns(n, rng)
            policy = make_policy(spec)
            policy.prepare(cols)
            policy.on_arrival(cols["request_id"], 0.0)  # (hosts announce every request before it is ranked)
            scheduled = np.zeros(n, dtype=bool)
            scheduled[:256] = True
            t0 = time.perf_counter()
            for step in range(args.steps):
                view = LiveView(cols, None, now=step * 0.03, step=step)
                order = policy.rank(view)
                policy.on_step(view, scheduled, 0.03)
            row += f"{(time.perf_counter() - t0) / args.steps * 1e3:>16.3f}"
            assert len(order) == n
        print(row)


if __name__ == "__main__":
    main()
