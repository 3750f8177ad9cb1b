"""Predictor benchmark: held-out Kendall tau per epoch, training time, inference rate, overhead.

Targets (issue 4): tau >= 0.55 on held-out real ShareGPT with the default backbone; training on ~10k
prompts in <= 10 min on 2 cores; inference >= 2,000 prompts/s.

    python benchmarks/bench_predictors.py
"""

from __future__ import annotations

import os
import platform
import time

from ltrsched.predictors import PredictorConfig
from ltrsched.predictors.data import prompts_and_lengths
from ltrsched.predictors.overhead import measure_overhead
from ltrsched.predictors.predictor import Predictor


def main() -> None:
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}")
    train_p, train_l = prompts_and_lengths("sharegpt", "train")
    eval_p, eval_l = prompts_and_lengths("sharegpt", "eval")
    print(f"data: sharegpt train {len(train_p)} prompts, eval {len(eval_p)} (labels: ChatGPT response lengths)")
    for name, cfg in [
        ("rank ngram listmle (default)", PredictorConfig()),
        ("rank ngram pairwise", PredictorConfig(loss="pairwise")),
        ("class ngram bucket 820", PredictorConfig(kind="class", bucket=820, num_classes=10)),
        ("class ngram bucket 100", PredictorConfig(kind="class", bucket=100, num_classes=82)),
        ("class ngram bucket 10", PredictorConfig(kind="class", bucket=10, num_classes=820)),
        ("class ngram bucket 1", PredictorConfig(kind="class", bucket=1, num_classes=8192)),
    ]:
        pred = Predictor(cfg)
        t0 = time.perf_counter()
        metrics = pred.fit(train_p, train_l, eval_p, eval_l)
        train_s = time.perf_counter() - t0 - sum(0 for _ in metrics)
        per_epoch = ", ".join(f"{m['tau']:.3f}" for m in metrics)
        acc = f" acc {metrics[-1]['accuracy']:.3f}" if "accuracy" in metrics[-1] else ""
        print(f"{name:<30} tau per epoch [{per_epoch}]{acc}  train+eval {train_s:.1f} s")
        if name.endswith("(default)"):
            for bs in (1, 32, 1024):
                o = measure_overhead(pred, eval_p[:2000], batch_size=bs)
                print(f"  inference batch {bs:>4}: {o['prompts_per_s']:>9.0f} prompts/s, "
                      f"{o['per_request_s'] * 1e6:.1f} us/request, {o['per_batch_s'] * 1e3:.2f} ms/batch")


if __name__ == "__main__":
    main()
