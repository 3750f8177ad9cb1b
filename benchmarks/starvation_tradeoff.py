"""What starvation prevention costs LTR when the engine caps the requests holding KV (simulated).

With vLLM V1's rules the sequence cap is also the cap on residents (requests holding KV), so a promoted
request can only enter by evicting a resident, whose KV is recomputed later. This study sweeps the
starvation threshold T [steps idle] and quantum Q [steps promoted] on 64-request bursts of SmolLM2's
greedy eval lengths (``data/smollm2-labels.parquet``), scored at Kendall tau ``--tau`` by the approximate
oracle (the probe ranker's held-out tau is 0.300), several seeded samples, timed by the ``cpu-smollm2``
profile with the engine's KV (181 blocks of 128 tokens). For each setting: LTR + starvation prevention's
mean latency per token over LTR's [%] and its max waiting time over LTR's (the largest over requests),
averaged over samples, with the range.

    python benchmarks/starvation_tradeoff.py [--residents 16] [--seeds 8] [--tau 0.3]
"""

import argparse
from pathlib import Path

import numpy as np
import polars as pl

from ltrsched.policies import make_policy
from ltrsched.policies.approx_oracle import approx_oracle_scores
from ltrsched.sim import SimConfig, simulate
from ltrsched.workloads.schema import Workload

LABELS = Path(__file__).resolve().parents[1] / "data" / "smollm2-labels.parquet"
SETTINGS = [(200, 10), (200, 100), (400, 10), (400, 50), (600, 50), (800, 50), (800, 200), (1000, 100),
            (1500, 100)]


def burst(seed: int, n: int, tau: float) -> Workload:
    """``n`` eval prompts sampled with ``seed``, all at t = 0, LTR scores at Kendall tau ``tau``."""
    df = pl.read_parquet(LABELS).filter((pl.col("split") == "eval") & (pl.col("run") == "main"))
    df = df.sample(n, seed=seed).select("prompt_tokens", "output_tokens")
    score = approx_oracle_scores(df["output_tokens"].to_numpy(), tau, seed=seed)
    return Workload(df.with_columns(request_id=pl.int_range(n, dtype=pl.Int64).cast(pl.Utf8),
                                    arrival_time=pl.lit(0.0), score=pl.Series(score)), f"burst-{seed}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--residents", type=int, default=16, help="sequence cap = resident cap [requests]")
    ap.add_argument("--seeds", type=int, default=8, help="seeded samples of the eval prompts")
    ap.add_argument("-n", type=int, default=64, help="requests per burst")
    ap.add_argument("--tau", type=float, default=0.3, help="Kendall tau of the LTR scores")
    args = ap.parse_args()
    if args.residents < 1 or args.seeds < 1 or not 2 <= args.n <= 400 or not 0 < args.tau <= 1:
        ap.error("need --residents >= 1, --seeds >= 1, -n in [2, 400] (the eval prompts) and --tau in (0, 1]")
    config = SimConfig(profile="cpu-smollm2", max_num_batched_tokens=768, max_num_seqs=args.residents,
                       block_size=128, num_gpu_blocks=181, max_resident_seqs=args.residents, watermark=0.0,
                       preemption="recompute", semantics="vllm-v1")
    workloads = [burst(s, args.n, args.tau) for s in range(args.seeds)]
    base = [simulate(w, make_policy("ltr"), config).summary for w in workloads]
    print(f"{args.residents} residents, {args.seeds} bursts of {args.n}, tau {args.tau}; "
          f"LTR: mean latency per token {np.mean([b['latency_per_token_mean'] for b in base]):.3f} s, "
          f"max wait {np.mean([b['max_waiting_time_p99'] for b in base]):.0f} s (p99 over requests)")
    print("| T [steps] | Q [steps] | mean latency per token vs LTR | max wait vs LTR | recompute evictions |")
    print("|---|---|---|---|---|")
    for t, q in SETTINGS:
        runs = [simulate(w, make_policy(f"ltr:starve={t},quantum={q}"), config).summary for w in workloads]
        cost = np.array([r["latency_per_token_mean"] / b["latency_per_token_mean"] - 1 for r, b in zip(runs, base)])
        wait = np.array([r["max_waiting_time_p99"] / b["max_waiting_time_p99"] for r, b in zip(runs, base)])
        print(f"| {t} | {q} | {100 * cost.mean():+.1f}% ({100 * cost.min():+.1f} to {100 * cost.max():+.1f}) "
              f"| {wait.mean():.2f} ({wait.min():.2f} to {wait.max():.2f}) "
              f"| {np.mean([r['num_preemptions'] for r in runs]):.0f} |")


if __name__ == "__main__":
    main()
