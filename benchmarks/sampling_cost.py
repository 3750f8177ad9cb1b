"""What drawing one token costs on a CPU core: greedy (argmax) against temperature-1 sampling, per step of
B sequences over a V-token vocabulary. vLLM's random sampler takes the softmax of the logits, divides it by
exponential noise and takes the argmax (the "exponential race"); greedy takes the argmax of the logits. These
are the same torch operations, timed alone on one thread (not vLLM's code: its other per-token work is the
same for both and is left out).

    taskset -c 1 python benchmarks/sampling_cost.py [--vocab 32000,49152] [--batch 1,4,16]

Why it matters (issue 13): a profile measured with one sampling and runs that use the other differ by the
difference per sequence on every decode step (docs/real-model/engine.md).
"""

from __future__ import annotations

import argparse
import time

import torch


def _timed(fn, reps: int) -> float:
    """Best of 3 means of ``reps`` calls [s]."""
    for _ in range(5):
        fn()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default="32000,49152", help="vocabulary sizes (llama-tiny 32,000; SmolLM2 49,152)")
    ap.add_argument("--batch", default="1,4,16", help="sequences per step")
    ap.add_argument("--reps", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, 1 thread")
    print(f"{'vocab':>7} {'seqs':>5} {'greedy [ms]':>12} {'random [ms]':>12} {'difference per seq [ms]':>24}")
    for vocab in map(int, args.vocab.split(",")):
        for batch in map(int, args.batch.split(",")):
            logits = torch.randn(batch, vocab)

            def greedy():
                return logits.argmax(dim=-1)

            def random():
                probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
                return probs.div_(torch.empty_like(probs).exponential_()).argmax(dim=-1)

            g, r = _timed(greedy, args.reps), _timed(random, args.reps)
            print(f"{vocab:>7} {batch:>5} {g * 1e3:>12.3f} {r * 1e3:>12.3f} {(r - g) / batch * 1e3:>24.3f}")


if __name__ == "__main__":
    main()
