"""What the probe ranker (``--backbone probe``) costs, and what cheaper variants would give up (issue 14).

Reads SmolLM2-135M-Instruct's hidden states of the labelled ShareGPT prompts (``data/smollm2-labels.parquet``)
after several layers, at the last templated token and pooled over the prompt, and reports:

* ``variants``: held-out Kendall tau of a ridge proxy for the trained head (standardised features, a rank target,
  the best of four regularisations) per layer and pooling;
* ``curve``: the same proxy on the default features (layer 15, last token) trained on random subsets of the
  labelled prompts (mean of ``--subsets``);
* ``timing``: seconds to compute the default features of a seeded sample of eval prompts, one thread: every
  token run (the pass before the shared prefix was reused), the shared template prefix reused (the
  default), and the model in bfloat16 (not adopted: host-dependent).

    python benchmarks/probe_study.py                     # all three, ~5 min on one core
    python benchmarks/probe_study.py --only timing
"""

from __future__ import annotations

import argparse
import time

import numpy as np

LAYERS = (2, 4, 6, 8, 10, 12, 15)
LAMBDAS = (10, 100, 1000, 10000)


def features(backbone, prompts: list[str]) -> dict[str, np.ndarray]:
    """{last<L>, mean<L>} -> [prompts, hidden]: the state after layer L at the last token / averaged over tokens."""
    from ltrsched.predictors.probe import _decoder_layers

    layers = _decoder_layers(backbone.lm, int(backbone.lm.config.num_hidden_layers))
    out: dict[str, list] = {}
    for prompt in prompts:
        captured = {}
        hooks = [layers[k - 1].register_forward_hook(
            lambda m, a, o, k=k: captured.__setitem__(k, (o[0] if isinstance(o, (tuple, list)) else o)[0]))
            for k in LAYERS if k <= backbone.config.probe_layer]
        try:
            backbone._states(backbone._ids(prompt))
        finally:
            for h in hooks:
                h.remove()
        for k, h in captured.items():
            out.setdefault(f"last{k}", []).append(h[-1].numpy())
            out.setdefault(f"mean{k}", []).append(h.mean(0).numpy())
    return {k: np.array(v) for k, v in out.items()}


def ridge_tau(x_train, y_train, x_eval, y_eval) -> list[float]:
    """Held-out tau of ridge regression on standardised features to the training lengths' ranks, per lambda."""
    from scipy.stats import kendalltau, rankdata

    mu = x_train.mean(0)
    sd = x_train.std(0) + 1e-3 * np.abs(x_train).mean()
    a, b = (x_train - mu) / sd, (x_eval - mu) / sd
    target = rankdata(y_train) / len(y_train)
    target -= target.mean()
    return [float(kendalltau(b @ np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ target), y_eval)[0])
            for lam in LAMBDAS]


def timing(backbone, prompts: list[str], rounds: int) -> None:
    import torch

    ids = [backbone._ids(p) for p in prompts]
    print(f"timing: {len(ids)} eval prompts, {sum(map(len, ids)):,} templated tokens, shared prefix "
          f"{len(backbone._prefix)} tokens; seconds per round")
    for r in range(rounds):
        t = time.perf_counter()
        full = torch.stack([backbone._states(i)[-1] for i in ids])
        t_full = time.perf_counter() - t
        t = time.perf_counter()
        shared = torch.stack([backbone._last_state(i) for i in ids])
        t_shared = time.perf_counter() - t
        diff = float(((shared - full).norm(dim=1) / full.norm(dim=1)).max())
        print(f"  round {r + 1}: every token {t_full:.2f} s, shared prefix {t_shared:.2f} s "
              f"({t_full / t_shared:.2f}x; features differ by at most {diff:.1e}, relative)")
    backbone.lm.to(torch.bfloat16)
    backbone._states(ids[0])  # (warm-up)
    t = time.perf_counter()
    half = torch.stack([backbone._states(i)[-1] for i in ids]).float()
    t_half = time.perf_counter() - t
    rel = float(((half - full).norm(dim=1) / full.norm(dim=1)).median())
    print(f"  bfloat16, every token: {t_half:.2f} s ({t_full / t_half:.2f}x the last float32 round); features "
          f"{rel:.1%} off (median, relative)")
    backbone.lm.to(torch.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/smollm2-labels.parquet")
    ap.add_argument("--only", choices=("variants", "curve", "timing"))
    ap.add_argument("--prompts", type=int, default=64, help="eval prompts timed (seeded sample)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subsets", type=int, default=10)
    args = ap.parse_args()

    import torch

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.data import prompts_and_lengths
    from ltrsched.predictors.probe import ProbeBackbone

    torch.set_num_threads(1)
    backbone = ProbeBackbone(PredictorConfig(backbone="probe", hf_path="smollm2"), 1)
    train_p, train_y = prompts_and_lengths(args.data, "train")
    eval_p, eval_y = prompts_and_lengths(args.data, "eval")
    if args.only in (None, "timing"):
        sample = np.random.default_rng(0).choice(len(eval_p), min(args.prompts, len(eval_p)), replace=False)
        timing(backbone, [eval_p[i] for i in sample], args.rounds)
    if args.only == "timing":
        return
    f_train, f_eval = features(backbone, train_p), features(backbone, eval_p)
    if args.only in (None, "variants"):
        print(f"variants: held-out tau of the ridge proxy, lambda {LAMBDAS}")
        for key in sorted(f_train, key=lambda k: (k[:4], int(k[4:]))):
            print(f"  {key:7s} " + " ".join(f"{t:.3f}" for t in ridge_tau(f_train[key], train_y, f_eval[key], eval_y)))
    if args.only in (None, "curve"):
        key = f"last{backbone.config.probe_layer}"
        rng = np.random.default_rng(0)
        print(f"curve: {key}, the best lambda's held-out tau, mean of {args.subsets} random subsets")
        for n in (50, 100, 200, 300, len(train_p)):
            reps = args.subsets if n < len(train_p) else 1
            taus = np.mean([ridge_tau(f_train[key][idx], train_y[idx], f_eval[key], eval_y)
                            for idx in (rng.choice(len(train_p), n, replace=False) for _ in range(reps))], axis=0)
            print(f"  {n:4d} labelled prompts: {taus.max():.3f}")


if __name__ == "__main__":
    main()
