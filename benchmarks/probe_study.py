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

* ``layers`` (issue 14, not in the default run): every layer's state of every labelled prompt (last token; mean of
  the last 4 / 8 / 16 tokens; mean of the prompt's own tokens after the template's shared prefix), one full forward
  pass per prompt, cached as .npy in ``--cache``; configurations (single layers, pairs of last-token layers, pairs
  and triples of the best ten singles) selected by 5-fold cross-validation of the ridge proxy on the TRAIN prompts
  only; held-out tau of the ten best, of the trained head's emulation for ``--heads``, and a learning curve.

    python benchmarks/probe_study.py                     # the first three, ~5 min on one core
    python benchmarks/probe_study.py --only layers --data LABELS --cache DIR --heads last@15 last@15+last@22
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


POOLS = {"last": 1, "m4": 4, "m8": 8, "m16": 16, "all": 0}
#: The layers study's ridge regularisations (per 576 features: scaled with the features' count).
CV_LAMBDAS = (1e1, 1e2, 1e3, 1e4, 1e5)


def all_layers(backbone, prompts: list[str]) -> dict[str, np.ndarray]:
    """{pool -> [prompts, layers, hidden]}: every decoder layer's state of each prompt, pooled (:data:`POOLS`: the
    mean of the last k tokens, 0: of every token after the template's shared prefix); ``backbone`` probes the last
    layer. The prefix's keys and values are cached (:meth:`ProbeBackbone._last_state`)."""
    import copy

    layers = probed_layers(backbone)
    n, hidden = len(backbone._prefix), backbone.model.mean.shape[0]
    out = {p: np.zeros((len(prompts), len(layers), hidden), np.float32) for p in POOLS}
    for i, prompt in enumerate(prompts):
        captured = {}
        hooks = [layer.register_forward_hook(lambda m, a, o, k=k: captured.__setitem__(
            k, (o[0] if isinstance(o, (tuple, list)) else o).reshape(-1, hidden))) for k, layer in enumerate(layers)]
        try:
            ids = backbone._ids(prompt)
            if backbone._prefix_cache is not None and len(ids) > n and ids[:n] == backbone._prefix:
                backbone._states(ids[n:], cache=copy.deepcopy(backbone._prefix_cache), start=n)
            else:
                backbone._states(ids)
        finally:
            for h in hooks:
                h.remove()
        for k in range(len(layers)):
            h = captured[k].float()
            for p, w in POOLS.items():
                out[p][i, k] = (h[-w:] if w else h).mean(0).numpy()
    return out


def _standardised(a, b):
    """``a`` (training features) and ``b`` standardised by ``a``'s statistics (the probe head's rule, STD_FLOOR)."""
    mu, sd = a.mean(0), a.std(0)
    rms = np.sqrt((a ** 2).mean(0))
    sd = np.maximum(sd, 1e-3 * np.maximum(rms, np.median(rms)))
    return (a - mu) / sd, (b - mu) / sd


def ridge_scores(xa, ya, xb) -> list[np.ndarray]:
    """Scores of ``xb`` per :data:`CV_LAMBDAS` of ridge regression (dual form) on standardised features to the
    centred ranks of ``ya``."""
    from scipy.stats import rankdata

    xa, xb = _standardised(xa, xb)
    t = rankdata(ya) / len(ya)
    t -= t.mean()
    w, v = np.linalg.eigh(xa @ xa.T)
    vt, kb = v.T @ t, xb @ xa.T
    return [kb @ (v @ (vt / (w + lam * xa.shape[1] / 576))) for lam in CV_LAMBDAS]


def head_scores(xa, ya, xb, epochs: int = 5, lr: float = 1e-3, hidden: int = 0, seed: int = 0) -> np.ndarray:
    """Scores of ``xb`` (higher: shorter) of ``ltrsched train``'s probe head, emulated: standardised features, a linear
    layer (``hidden``: an MLP), Adam, lists of 32 prompts, the pairwise loss, ``epochs`` passes."""
    import torch
    from scipy.stats import rankdata

    from ltrsched.predictors.losses import pairwise_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xa, xb = (torch.tensor(x, dtype=torch.float32) for x in _standardised(xa, xb))
    y = torch.tensor(rankdata(ya, method="dense"), dtype=torch.long)
    d = xa.shape[1]
    model = torch.nn.Linear(d, 1) if not hidden else torch.nn.Sequential(
        torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        perm = rng.permutation(len(ya))
        for i in range(0, len(perm), 32):
            rows = torch.as_tensor(perm[i:i + 32])
            if len(rows) > 1:
                loss = pairwise_loss(model(xa[rows])[:, 0], y[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
    with torch.no_grad():
        return model(xb)[:, 0].numpy()


def head_config(text: str, count: int) -> tuple[tuple[str, int], ...]:
    """``--heads`` text (POOL@LAYER joined by +, e.g. last@15+m4@24) as ((pool, layer), ...); ValueError naming what
    is wrong (``count``: the model's layers)."""
    cfg = []
    for part in text.split("+"):
        pool, _, layer = part.partition("@")
        if pool not in POOLS or not layer.isdigit() or not 1 <= int(layer) <= count:
            raise ValueError(f"--heads {text!r}: {part!r} is not POOL@LAYER with POOL one of {', '.join(POOLS)} and "
                             f"LAYER in [1, {count}]")
        cfg.append((pool, int(layer)))
    return tuple(cfg)


def layers_study(feats: dict, heads: list, subsets: int) -> None:
    """Select probe features by 5-fold cross-validation on the training prompts (``feats``: {(split, pool) ->
    [prompts, layers, hidden]}, {(split, "y") -> lengths}); print held-out tau of the selected ones and, for each
    of ``heads`` (:func:`head_config`), of the trained head's emulation and a learning curve."""
    import itertools

    from scipy.stats import kendalltau

    ytr, yev = feats[("train", "y")], feats[("eval", "y")]
    count = feats[("train", "last")].shape[1]
    folds = np.array_split(np.random.default_rng(0).permutation(len(ytr)), 5)
    tau = lambda s, y: float(kendalltau(s, y).statistic)  # noqa: E731
    name = lambda cfg: "+".join(f"{p}@{k}" for p, k in cfg)  # noqa: E731

    def block(split, cfg):
        return np.concatenate([feats[(split, p)][:, k - 1] for p, k in cfg], 1).astype(np.float64)

    def cv(cfg, scores=lambda xa, ya, xb: ridge_scores(xa, ya, xb)):
        """(mean fold tau of the best lambda, its index, its standard error)"""
        x = block("train", cfg)
        res = []
        for te in folds:
            tr = np.setdiff1d(np.arange(len(ytr)), te)
            res.append([tau(s, ytr[te]) for s in scores(x[tr], ytr[tr], x[te])])
        res = np.array(res)
        j = int(res.mean(0).argmax())
        return float(res[:, j].mean()), j, float(res[:, j].std() / np.sqrt(len(folds)))

    def held_out(cfg, j):
        return tau(ridge_scores(block("train", cfg), ytr, block("eval", cfg))[j], yev)

    def show(results, top, width):
        for cfg in sorted(results, key=lambda c: -results[c][0])[:top]:
            m, j, se = results[cfg]
            print(f"  {name(cfg):{width}s} CV {m:.3f} +-{se:.3f} lambda {CV_LAMBDAS[j]:g}, "
                  f"held out {held_out(cfg, j):.3f}", flush=True)

    print(f"layers: {len(ytr)} train prompts (5-fold CV), {len(yev)} held out; ridge CV tau per layer 1..{count}")
    single = {((p, k),): cv(((p, k),)) for p in POOLS for k in range(1, count + 1)}
    for p in POOLS:
        print(f"  {p:4s} " + " ".join(f"{single[((p, k),)][0]:.3f}" for k in range(1, count + 1)), flush=True)
    show(single, 8, 10)
    combos = {(a, b): cv((a, b)) for a, b in itertools.combinations([("last", k) for k in range(1, count + 1)], 2)}
    best = [c[0] for c in sorted(single, key=lambda c: -single[c][0])[:10]]
    for n in (2, 3):
        for cfg in itertools.combinations(best, n):
            if cfg not in combos:
                combos[cfg] = cv(cfg)
    print(f"combinations: {len(combos)} tried, the ten best by CV:")
    show(combos, 10, 24)
    for cfg in heads:
        for kw in ({"epochs": 5}, {"epochs": 10}, {"epochs": 20}, {"epochs": 5, "lr": 3e-3},
                   {"epochs": 20, "hidden": 64}):
            m, _, se = cv(cfg, lambda xa, ya, xb: [-head_scores(xa, ya, xb, **kw)])
            ev = tau(-head_scores(block("train", cfg), ytr, block("eval", cfg), **kw), yev)
            print(f"  head {name(cfg)} {kw}: CV {m:.3f} +-{se:.3f}, held out {ev:.3f}", flush=True)
        m, j, _ = cv(cfg)
        rng = np.random.default_rng(0)
        x, xe = block("train", cfg), block("eval", cfg)
        sizes = [n for n in (100, 200, 300, 400, 500, 600, 800) if n < len(ytr)] + [len(ytr)]

        def draws(n):
            return (rng.choice(len(ytr), n, replace=False) for _ in range(subsets if n < len(ytr) else 1))

        curve = [np.mean([tau(ridge_scores(x[i], ytr[i], xe)[j], yev) for i in draws(n)]) for n in sizes]
        print(f"  curve {name(cfg)} (ridge, held out, mean of {subsets} subsets): "
              + ", ".join(f"{n}: {t:.3f}" for n, t in zip(sizes, curve)), flush=True)


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
    ap.add_argument("--only", choices=("variants", "curve", "timing", "layers"))
    ap.add_argument("--cache", help="layers: a directory for the features (.npy; read if there)")
    ap.add_argument("--heads", nargs="*", default=[], help="layers: configurations whose trained head is emulated, "
                    "e.g. last@15+m8@22 (POOL@LAYER joined by +)")
    ap.add_argument("--prompts", type=int, default=64, help="eval prompts timed (seeded sample)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subsets", type=int, default=10)
    args = ap.parse_args()

    import torch

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.data import prompts_and_lengths
    from ltrsched.predictors.probe import ProbeBackbone

    torch.set_num_threads(1)
    if args.only == "layers":
        from pathlib import Path

        try:
            heads = [head_config(text, 30) for text in args.heads]  # (SmolLM2-135M: 30 layers)
        except ValueError as exc:
            ap.error(str(exc))

        cache = Path(args.cache or "probe-layers-cache")
        if not (cache / "train-y.npy").is_file():
            cache.mkdir(parents=True, exist_ok=True)
            full = ProbeBackbone(PredictorConfig(backbone="probe", hf_path="smollm2", probe_layer=30), 1)
            for split in ("eval", "train"):
                prompts, lengths = prompts_and_lengths(args.data, split)
                for pool, a in all_layers(full, prompts).items():
                    np.save(cache / f"{split}-{pool}.npy", a)
                np.save(cache / f"{split}-y.npy", np.asarray(lengths))
            del full
        missing = [name for name in (f"{s}-{p}.npy" for s in ("train", "eval") for p in (*POOLS, "y"))
                   if not (cache / name).is_file()]
        if missing:
            ap.error(f"--cache {cache} lacks {missing[0]}: remove the directory to compute the features again")
        feats = {(s, p): np.load(cache / f"{s}-{p}.npy", mmap_mode="r") for s in ("train", "eval") for p in POOLS}
        feats.update({(s, "y"): np.load(cache / f"{s}-y.npy") for s in ("train", "eval")})
        layers_study(feats, heads, args.subsets)
        return
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
