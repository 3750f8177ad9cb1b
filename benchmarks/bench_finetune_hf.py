"""Fine-tune an HF backbone (default: the packaged MiniLM) with ListMLE on the ShareGPT train split, as
measured in BENCHMARKS.md (Predictors): AdamW, linear warm-up (20 steps) and decay, lists of 32, prompts
truncated to --max-prompt-tokens. Prints held-out Kendall tau, training time and inference rate, and
the tau of the equal-weight ensemble with the default n-gram ranker (z-scored scores averaged).

    HF_HUB_OFFLINE=1 python benchmarks/bench_finetune_hf.py --model minilm --max-prompt-tokens 64 --epochs 1 --lr 8e-5
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    import torch

    from ltrsched.predictors import PredictorConfig
    from ltrsched.predictors.data import prompts_and_lengths
    from ltrsched.predictors.losses import listmle_loss
    from ltrsched.predictors.predictor import Predictor, kendall_tau

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--max-prompt-tokens", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--out", default=None, help="save the fine-tuned checkpoint here")
    args = ap.parse_args()
    tp, tl = prompts_and_lengths("sharegpt", "train")
    ep, el = prompts_and_lengths("sharegpt", "eval")
    pred = Predictor(PredictorConfig(backbone="hf", hf_path=args.model, loss="listmle", lr=args.lr, weight_decay=0.01,
                                     max_prompt_tokens=args.max_prompt_tokens, epochs=args.epochs))
    bb, model = pred.backbone, pred.backbone.model
    data = bb.prepare(tp)
    y = torch.as_tensor(np.asarray(tl), dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * -(-len(tp) // 32)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.0, 1 - s / steps))
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        perm = rng.permutation(len(tp))
        for i in range(0, len(perm), 32):
            rows = perm[i: i + 32]
            if len(rows) < 2:
                continue
            loss = listmle_loss(bb.forward(data, rows), y[torch.as_tensor(rows)])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    train_s = time.perf_counter() - t0
    if args.out:
        pred.save(args.out, overwrite=True)  # (a rerun into the same --out replaces it)
    t0 = time.perf_counter()
    scores = pred.scores(ep, batch_size=64)
    rate = len(ep) / (time.perf_counter() - t0)
    ngram = Predictor(PredictorConfig())
    ngram.fit(tp, tl)
    s_ng = ngram.scores(ep)
    z = lambda s: (s - s.mean()) / s.std()  # noqa: E731
    print(f"{args.model} ({args.max_prompt_tokens} tokens, {args.epochs} epoch(s)): held-out tau {kendall_tau(scores, el):.4f}, "
          f"train {train_s:.0f} s, inference {rate:.1f} prompts/s (batches of 64), threads {torch.get_num_threads()}")
    print(f"default n-gram ranker {kendall_tau(s_ng, el):.4f}; equal-weight ensemble {kendall_tau(z(scores) + z(s_ng), el):.4f}")


if __name__ == "__main__":
    main()
