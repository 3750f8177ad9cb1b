"""Work the predictor commands did twice on the same inputs, measured with and without its fix in one run
(BENCHMARKS.md, Predictors: "Work done once"). Three parts; the last two time the old path and the new alternating,
best of ``--repeat``:

- ``Predictor.load`` of a ranker trained on 20,000 synthetic prompts (a 4.2 MB weights file, a predictor.json of
  214 kB with their hashes): the opens of each file (at 96b7d1b, before dd74f3c: the weights twice, predictor.json 4
  times);
- ``Ensemble.scores`` of two default n-gram rankers (seeds 0 and 1, 1 epoch on 1,000 ShareGPT train prompts) on the
  ShareGPT eval split (4,000 prompts): the members' features shared vs each member's own (the old path);
- ``label_report`` on data/smollm2-labels.parquet (400 train / 400 eval prompts, --sizes 100,200,all, 5 epochs): the
  eval prompts' features shared between its rankers vs each ranker's own.

Run: ``PYTHONPATH=$PWD taskset -c 0 python benchmarks/bench_predictor_work_once.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import io
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np


def _opens(fn) -> Counter:
    """The files ``fn()`` opens, by name."""
    counts: Counter = Counter()
    real = io.open

    def spy(file, *args, **kwargs):
        counts[str(file).rsplit("/", 1)[-1]] += 1
        return real(file, *args, **kwargs)

    builtins.open = io.open = spy
    try:
        fn()
    finally:
        builtins.open = io.open = real
    return counts


def load_part() -> None:
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    words = "please explain the story of a word list write answer today city code python summer river lamp".split()
    rng = np.random.default_rng(0)
    n = 20_000
    prompts = [" ".join(words[j] for j in rng.integers(0, len(words), 5 + i % 40)) + f" {i}" for i in range(n)]
    p = Predictor(PredictorConfig(epochs=1, list_size=256))
    p.fit(prompts, 10 + (np.arange(n) * 37) % 500)
    with tempfile.TemporaryDirectory() as tmp:
        p.save(tmp)
        sizes = {f.name: f.stat().st_size for f in Path(tmp).iterdir()}
        Predictor.load(tmp)
        print(f"load: opens {dict(_opens(lambda: Predictor.load(tmp)))} (files: {sizes} bytes)")


def ensemble_part(repeat: int) -> None:
    import ltrsched.predictors.ensemble as ensemble
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.data import prompts_and_lengths
    from ltrsched.predictors.predictor import Predictor

    tp, tl = prompts_and_lengths("sharegpt", "train", limit=1000)
    ep, _ = prompts_and_lengths("sharegpt", "eval")
    members = []
    for seed in (0, 1):
        member = Predictor(PredictorConfig(epochs=1, seed=seed))
        member.fit(tp, tl)
        members.append(member)
    ens = ensemble.Ensemble.calibrate(members, tp)
    real = ensemble.shared_features
    best, out = {}, {}
    try:
        for _ in range(repeat):
            for how in ("shared", "own"):
                ensemble.shared_features = real if how == "shared" else (lambda members: contextlib.nullcontext())
                t = time.perf_counter()
                out[how] = ens.scores(ep)
                best[how] = min(best.get(how, np.inf), time.perf_counter() - t)
    finally:
        ensemble.shared_features = real
    print(f"ensemble scores of {len(ep)} prompts: shared {best['shared']:.3f} s, own {best['own']:.3f} s, ratio "
          f"{best['shared'] / best['own']:.2f}; identical {np.array_equal(out['shared'], out['own'])}")


def label_report_part(repeat: int) -> None:
    import polars as pl

    import ltrsched.predictors.backbones as backbones
    from ltrsched.predictors.label_report import label_report
    from ltrsched.predictors.predictor import Predictor

    df = pl.read_parquet(Path(__file__).parents[1] / "data" / "smollm2-labels.parquet")
    real_share, real_bags = Predictor.sharing_features, backbones.ngram_bags
    calls: Counter = Counter()
    backbones.ngram_bags = lambda texts, *a, **k: (calls.update([len(texts)]), real_bags(texts, *a, **k))[1]
    best, out, made = {}, {}, {}
    try:
        for _ in range(repeat):
            for how in ("shared", "own"):
                Predictor.sharing_features = real_share if how == "shared" else (
                    lambda self, shared: contextlib.nullcontext())
                calls.clear()
                t = time.perf_counter()
                out[how] = label_report(df, "smollm2-labels.parquet", sizes=[100, 200, "all"])
                best[how] = min(best.get(how, np.inf), time.perf_counter() - t)
                made[how] = calls[400]
    finally:
        Predictor.sharing_features, backbones.ngram_bags = real_share, real_bags
    print(f"label_report: shared {best['shared']:.2f} s ({made['shared']} featurisings of 400 prompts), own "
          f"{best['own']:.2f} s ({made['own']}), ratio {best['shared'] / best['own']:.3f}; identical "
          f"{out['shared'].to_dict() == out['own'].to_dict()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load_part()
    ensemble_part(args.repeat)
    label_report_part(max(1, args.repeat - 1))


if __name__ == "__main__":
    main()
