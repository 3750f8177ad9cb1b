"""How fast the engine ran each validate run's steps, relative to the profile the simulator used (the
report's "engine step times vs the simulator's profile", split further).

For every engine run of a ``ltrsched validate`` directory, the sum of the steps' measured cycles (back-to-back
steps only) over the sum of the profile's step times for the same shapes: 1.0 means the engine ran those steps
exactly as fast as the profile says; below 1 faster. Split into decode-only steps and steps with prompt
tokens, with the plug-in's and vLLM's scheduling time per step [ms]. ``--tenths`` adds the ratio over each
tenth of a run's steps (drift within a run); ``--by-tokens`` the ratio by tokens per step over all runs
(which stretch of the non-attention table is off, as against the machine's speed, which moves every stretch
alike). Two runs of one policy on one case execute identical steps (the
adapter follows the plan), so their ratios differ only by the machine's speed at the time.

    python benchmarks/step_time_drift.py PROFILE VALIDATION_DIR [--tenths] [--by-tokens]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from ltrsched.errors import UserError
from ltrsched.sim.profiles.io import load_profile
from ltrsched.validation.step_time_ratio import back_to_back, predicted_step_times


def with_prediction(steps: pl.DataFrame, profile) -> pl.DataFrame:
    """The back-to-back steps with the profile's step time for each shape (column ``pred``) [s]."""
    steps = back_to_back(steps)
    return steps.with_columns(pred=pl.Series(predicted_step_times(steps, profile)))


def ratio(steps: pl.DataFrame) -> float:
    return steps["cycle"].sum() / steps["pred"].sum() if len(steps) else float("nan")


#: Upper ends of the tokens-per-step bins of ``--by-tokens`` [tokens].
TOKEN_BINS = (1, 8, 16, 32, 64, 128, 192, 256, 384, 512, 768, 1024)


def by_tokens(steps: pl.DataFrame) -> pl.DataFrame:
    """Steps, summed cycle [s], summed prediction [s], their ratio and the share of all cycles, per bin of tokens
    per step (prompt tokens + decodes)."""
    tokens = pl.col("num_prefill_tokens") + pl.col("num_decode_seqs")
    label = pl.lit(f">{TOKEN_BINS[-1]}")
    for lo, hi in reversed(list(zip((0, *TOKEN_BINS), TOKEN_BINS))):
        label = pl.when(tokens <= hi).then(pl.lit(f"{lo + 1}-{hi}")).otherwise(label)
    return (steps.with_columns(tokens=label, upper=tokens).group_by("tokens")
            .agg(pl.len().alias("steps"), pl.col("upper").max(), pl.col("cycle").sum().alias("measured_s"),
                 pl.col("pred").sum().alias("predicted_s"))
            .with_columns(ratio=pl.col("measured_s") / pl.col("predicted_s"),
                          share=pl.col("measured_s") / pl.col("measured_s").sum())
            .sort("upper").drop("upper"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", help="the profile the simulator used (built-in name or JSON)")
    ap.add_argument("validation", type=Path, help="a `ltrsched validate --out` directory")
    ap.add_argument("--tenths", action="store_true", help="also the ratio over each tenth of a run's steps")
    ap.add_argument("--by-tokens", action="store_true", help="also the ratio by tokens per step over all runs")
    args = ap.parse_args()
    try:
        profile = load_profile(args.profile)
    except UserError as e:
        ap.error(str(e))  # one line, exit code 2
    runs = sorted(args.validation.glob("runs/*/*/engine*/steps.parquet"))
    if not runs:
        ap.error(f"no engine step logs under {args.validation}/runs")
    print(f"{'engine run':58s} {'steps':>6s} {'eng/pred':>8s} {'decode':>7s} {'prefill':>7s} {'plug-in':>7s} {'vLLM':>6s}")
    ratios, pooled = [], []
    for path in runs:
        d = with_prediction(pl.read_parquet(path), profile)
        pooled.append(d.select("num_prefill_tokens", "num_decode_seqs", "cycle", "pred"))
        name = str(path.parent.relative_to(args.validation / "runs"))
        ratios.append(ratio(d))
        print(f"{name:58s} {len(d):6d} {ratios[-1]:8.3f} {ratio(d.filter(pl.col('num_prefill_tokens') == 0)):7.3f} "
              f"{ratio(d.filter(pl.col('num_prefill_tokens') > 0)):7.3f} {1e3 * d['plugin_s'].mean():7.3f} "
              f"{1e3 * d['vllm_schedule_s'].mean():6.3f}")
        if args.tenths and len(d) >= 10:
            d = d.with_columns(tenth=pl.int_range(pl.len()) * 10 // pl.len())
            by = d.group_by("tenth").agg(r=pl.col("cycle").sum() / pl.col("pred").sum()).sort("tenth")
            print(f"{'':58s} tenths: " + " ".join(f"{r:.2f}" for r in by["r"]))
    s = sorted(ratios)
    print(f"{len(s)} runs: eng/pred min {s[0]:.3f}, median {s[len(s) // 2]:.3f}, max {s[-1]:.3f}")
    if args.by_tokens:
        with pl.Config(tbl_rows=-1, float_precision=3, tbl_hide_dataframe_shape=True):
            print(by_tokens(pl.concat(pooled)))


if __name__ == "__main__":
    main()
