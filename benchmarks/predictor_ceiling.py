"""How predictable are ShareGPT's (ChatGPT) response lengths from the prompt? Evidence for BENCHMARKS.md.

1. Same prompt, two responses: ShareGPT holds a few prompts that several users sent verbatim. Kendall tau
   between the lengths of two of ChatGPT's responses to the same prompt is the agreement an oracle that
   knew the prompt's typical length could reach against one sampled response (cf. the paper's "another
   seed" oracle, 0.74 on ShareGPT with Llama-3-70B).
2. Learning curve: held-out tau of the default ranker trained on growing parts of the train split.

    python benchmarks/predictor_ceiling.py
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import kendalltau


def same_prompt_agreement() -> None:
    from ltrsched.workloads.selection import MAX_PROMPT_TOKENS, MIN_OUTPUT_TOKENS, MIN_PROMPT_TOKENS
    from ltrsched.workloads.sharegpt import load_sharegpt_records

    df = load_sharegpt_records().filter(
        pl.col("prompt_tokens").is_between(MIN_PROMPT_TOKENS, MAX_PROMPT_TOKENS)
        & (pl.col("output_tokens") >= MIN_OUTPUT_TOKENS))
    df = df.unique(subset=["prompt", "response"], keep="first", maintain_order=True)  # one share, counted once
    groups = (df.group_by("prompt", maintain_order=True).agg(pl.col("output_tokens"), pl.len().alias("n"))
              .filter(pl.col("n") >= 2))
    a = np.array([g[0] for g in groups["output_tokens"]])
    b = np.array([g[1] for g in groups["output_tokens"]])
    print(f"same prompt, two ChatGPT responses: {groups.height} prompts ({groups['n'].sum()} responses), "
          f"Kendall tau between the two lengths {kendalltau(a, b).statistic:.3f}")


def learning_curve() -> None:
    from ltrsched.predictors import PredictorConfig
    from ltrsched.predictors.data import prompts_and_lengths
    from ltrsched.predictors.predictor import Predictor

    tp, tl = prompts_and_lengths("sharegpt", "train")
    ep, el = prompts_and_lengths("sharegpt", "eval")
    for n in (500, 1000, 2000, len(tp)):
        tau = Predictor(PredictorConfig()).fit(tp[:n], tl[:n], ep, el)[-1]["tau"]
        print(f"default ranker trained on {n:>5} prompts: held-out tau {tau:.3f}", flush=True)


if __name__ == "__main__":
    same_prompt_agreement()
    learning_curve()
