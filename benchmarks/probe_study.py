"""What the probe ranker (``--backbone probe``) costs, and what cheaper variants would give up (issue 14).

Reads SmolLM2-135M-Instruct's hidden states of the labelled ShareGPT prompts (``data/smollm2-labels.parquet``)
after several layers, at the last templated token and pooled over the prompt, and reports:

* ``variants``: held-out Kendall tau of a ridge proxy for the trained head (standardised features, a rank target,
  the best of four regularisations) per layer and pooling;
* ``curve``: the same proxy on the default features (layer 15, last token) trained on random subsets of the
  labelled prompts (mean of ``--subsets``);
* ``timing``: seconds (wall and this thread's CPU) to compute the default features of a seeded sample of eval
  prompts, one thread, in the same process, alternating per round: float32 with every token run (the pass before
  the shared prefix was reused), float32 with the shared template prefix reused (the default), and
  ``--probe-precision bf16`` (a second backbone); then once int8 dynamic quantization of the float32 layers'
  linear layers (``torch.ao.quantization.quantize_dynamic``, not adopted: its features are ~45% off).

    python benchmarks/probe_study.py                     # all three, ~5 min on one core
    taskset -c 0 env OMP_NUM_THREADS=1 python benchmarks/probe_study.py --only timing
"""

from __future__ import annotations

import argparse
import time

import numpy as np

LAYERS = (2, 4, 6, 8, 10, 12, 15)
LAMBDAS = (10, 100, 1000, 10000)


def features(backbone, prompts: list[str]) -> dict[str, np.ndarray]:
    """{last<L>, mean<L>} -> [prompts, hidden]: the state after layer L at the last token / averaged over tokens."""
    layers = probed_layers(backbone)
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


def probed_layers(backbone):
    """The model's list of decoder layers that holds the probed one (the probed layer and those before it)."""
    import torch

    return next(m for m in backbone.lm.modules()
                if isinstance(m, torch.nn.ModuleList) and any(x is backbone.layer for x in m))


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


def _timed(fn):
    """(result, wall seconds, this thread's CPU seconds) of ``fn()``: the CPU time is the one to compare where
    other processes share the core."""
    wall, cpu = time.perf_counter(), time.thread_time()
    out = fn()
    return out, time.perf_counter() - wall, time.thread_time() - cpu


def _off(feats, ref) -> str:
    rel = (feats - ref).norm(dim=1) / ref.norm(dim=1)
    return f"{float(rel.median()):.2%} median, {float(rel.max()):.2%} max"


def timing(backbone, bf16, prompts: list[str], rounds: int) -> None:
    """``backbone``: the float32 probe; ``bf16``: the same model's with ``probe_precision="bf16"``."""
    import copy
    import warnings

    import torch

    ids = [backbone._ids(p) for p in prompts]
    print(f"timing: {len(ids)} eval prompts, {sum(map(len, ids)):,} templated tokens, shared prefix "
          f"{len(backbone._prefix)} tokens (bf16: {len(bf16._prefix)}); seconds per round, wall (CPU)")
    runs = {"every token": lambda: torch.stack([backbone._states(i)[-1] for i in ids]),
            "float32": lambda: torch.stack([backbone._last_state(i) for i in ids]),
            "bf16": lambda: torch.stack([bf16._last_state(i) for i in ids])}
    feats, best = {}, {}
    for r in range(rounds):
        times = {}
        for name, fn in runs.items():
            out, wall, cpu = _timed(fn)
            if name in feats and not torch.equal(out, feats[name]):
                raise SystemExit(f"{name}: a prompt's features changed from one round to the next")
            feats[name], times[name] = out, (wall, cpu)
            best[name] = min(best.get(name, (1e9, 1e9)), (wall, cpu))
        w32, c32 = times["float32"]
        print(f"  round {r + 1}: " + ", ".join(f"{k} {w:.2f} ({c:.2f}) s" for k, (w, c) in times.items())
              + f"; bf16 {w32 / times['bf16'][0]:.2f}x ({c32 / times['bf16'][1]:.2f}x CPU) the float32 round's speed")
    print(f"  best of {rounds}: bf16 {best['float32'][0] / best['bf16'][0]:.2f}x "
          f"({best['float32'][1] / best['bf16'][1]:.2f}x CPU) float32's speed; every token -> shared prefix "
          f"{best['every token'][0] / best['float32'][0]:.2f}x")
    print(f"  features off float32's: shared prefix {_off(feats['float32'], feats['every token'])}, "
          f"bf16 {_off(feats['bf16'], feats['float32'])}")
    with warnings.catch_warnings():  # (torch.ao.quantization's deprecation notes)
        warnings.simplefilter("ignore")
        int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(backbone.lm), {torch.nn.Linear}, dtype=torch.qint8)
        lm, layer, prefix = backbone.lm, backbone.layer, backbone._prefix
        backbone.lm, backbone.layer, backbone._prefix = int8, int8.layers[backbone.config.probe_layer - 1], []
        try:
            out, wall, cpu = _timed(lambda: torch.stack([backbone._states(i)[-1] for i in ids]))
        finally:
            backbone.lm, backbone.layer, backbone._prefix = lm, layer, prefix
    w, c = best["every token"]
    print(f"  int8 dynamic quantization, every token: {wall:.2f} ({cpu:.2f}) s, {w / wall:.2f}x ({c / cpu:.2f}x CPU) "
          f"float32's every-token speed; features {_off(out, feats['every token'])} off")


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
        bf16 = ProbeBackbone(PredictorConfig(backbone="probe", hf_path="smollm2", probe_precision="bf16"), 1)
        timing(backbone, bf16, [eval_p[i] for i in sample], args.rounds)
        del bf16
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
