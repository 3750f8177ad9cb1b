"""Predictor overhead of trained rankers, alternating in one process: best-of-3 time to score a validated
workload's prompts (lists of 32, as ``ltrsched real-model-results`` times them) against a serving makespan.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/probe_share.py probe ckpt-bf16 -w scored.parquet -n 64 \
        --serving-s 242.3 [--rounds 2]
"""

import argparse

import torch

from ltrsched.predictors.data import texts_of
from ltrsched.predictors.overhead import measure_overhead
from ltrsched.predictors.predictor import Predictor
from ltrsched.workloads import load_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rankers", nargs="+", help="trained ranker directories (ltrsched train --out)")
    ap.add_argument("-w", "--workload", required=True, help="the validated workload (its prompts are scored)")
    ap.add_argument("-n", "--num-requests", type=int, default=None, help="as given to validate")
    ap.add_argument("--seed", type=int, default=0, help="as given to validate")
    ap.add_argument("--serving-s", type=float, required=True, help="the LTR engine run's makespan [s]")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if not (args.serving_s > 0 and args.rounds >= 1):
        ap.error("need --serving-s > 0 [s] and --rounds >= 1")
    torch.set_num_threads(1)
    prompts = texts_of(load_workload(args.workload, num_requests=args.num_requests, seed=args.seed))
    rankers = {path: Predictor.load(path) for path in args.rankers}
    for r in range(args.rounds):
        for path, ranker in rankers.items():
            m = measure_overhead(ranker, prompts, batch_size=32)
            print(f"round {r} {path}: {m['total_s']:.2f} s for {m['num_prompts']} prompts, "
                  f"{100 * m['total_s'] / args.serving_s:.2f}% of {args.serving_s:.1f} s", flush=True)


if __name__ == "__main__":
    main()
