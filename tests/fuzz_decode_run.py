"""Fuzz decode runs (``ltrsched.sim.decode_run``): random workloads and configurations simulated with runs on and
off must give equal results (every request's metrics, the request table, the step trace, the counters).

    PYTHONPATH=$PWD:$PWD/tests python tests/fuzz_decode_run.py --cases 100 --seed 1

Not collected by pytest (no ``test_`` prefix): ``tests/test_sim_decode_run.py`` pins the cases that matter; this
draws many more (policies, block counts forcing preemption, batch caps, chunked prefill off, vLLM V1 rules, stop
times, clusters) and prints the first case that differs, with what to rerun it."""

from __future__ import annotations

import argparse
import sys
import traceback

import numpy as np
import pytest

from test_sim_decode_run import _assert_same, _workload
import ltrsched.sim.decode_run as decode_run
from ltrsched.sim import SimConfig

POLICIES = ("fcfs", "srtf", "ltr", "po", "ltr:tau=0.5", "oracle:tau=0.8", "class:tau=0.5", "mlfq",
            "ltr:starve=50,quantum=10", "ltr:starve=15,quantum=3", "fcfs:starve=30,quantum=6",
            "srtf:starve=40,quantum=8", "mlfq:starve=50,starve_quantum=5")


def draw(rng: np.random.Generator):
    n = int(rng.integers(1, 12))
    prompt_hi = int(rng.choice([50, 400, 3_000]))
    out_hi = int(rng.choice([20, 300, 2_000]))
    gap = float(rng.choice([0.0, 0.5, 4.0, 20.0]))
    wl = _workload(n, (1, prompt_hi), (1, out_hi), gap, int(rng.integers(1 << 30)))
    need = int((wl.df["prompt_tokens"] + wl.df["output_tokens"]).max()) // 16 + 2
    config = dict(record_steps=bool(rng.random() < 0.7))
    if rng.random() < 0.5:
        config["num_gpu_blocks"] = int(need + rng.integers(0, 3 * need))
        config["preemption"] = str(rng.choice(["swap", "recompute"]))
    if rng.random() < 0.3:
        config["max_num_seqs"] = int(rng.integers(1, 6))
    if rng.random() < 0.2:
        config["max_num_batched_tokens"] = int(rng.choice([64, 4_096]))
    if rng.random() < 0.2:
        config["semantics"] = "vllm-v1"
    if rng.random() < 0.15:
        config["chunked_prefill"] = False
        config["max_num_batched_tokens"] = max(config.get("max_num_batched_tokens", 768), prompt_hi + 1)
    if rng.random() < 0.2:
        config["stop_time"] = float(rng.uniform(1, 60))
    replicas = int(rng.choice([1, 1, 1, 2, 3]))
    return wl, str(rng.choice(POLICIES)), config, replicas


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    failed = refused = with_runs = 0
    real = decode_run.take_decode_run
    for case in range(args.seed, args.seed + args.cases):
        wl, spec, config, replicas = draw(np.random.default_rng(case))
        mp = pytest.MonkeyPatch()
        taken = []

        def counting(*a):
            run = real(*a)
            taken.append(run.steps)
            return run

        mp.setattr(decode_run, "take_decode_run", counting)  # (_run wraps this one: runs taken with runs on)
        try:
            _assert_same(wl, spec, SimConfig(**config), mp, replicas=replicas, runs_expected=None)
        except AssertionError:
            failed += 1
            print(f"case {case}: {spec} {config} replicas={replicas} n={len(wl.df)}: DIFFERS", file=sys.stderr)
            traceback.print_exc()
        except (ValueError, RuntimeError) as exc:  # refused alike (both runs raise before comparing)
            refused += 1
            print(f"case {case}: refused: {str(exc)[:160]}")
        finally:
            mp.undo()
        with_runs += any(taken)
    print(f"{args.cases} cases (seeds {args.seed}..{args.seed + args.cases - 1}): {failed} differ, {refused} refused, "
          f"{with_runs} took decode runs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
