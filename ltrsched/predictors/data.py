"""Training / evaluation data for the predictors: prompts and their output lengths."""

from __future__ import annotations

import numpy as np

from ltrsched.errors import UserError
from ltrsched.workloads import Workload, load_workload


def prompts_and_lengths(source: str, split: str, limit: int | None = None, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Prompt texts and output lengths [tokens] from a built-in name (``sharegpt``) or a workload file
    with prompt text. ``split`` selects the disjoint ShareGPT window (train / eval)."""
    wl = load_workload(source, num_requests=limit, seed=seed, split=split)
    return texts_of(wl), wl.df["output_tokens"].to_numpy()


def texts_of(wl: Workload) -> list[str]:
    if not wl.has_text:
        raise UserError(f"workload {wl.name!r} has no prompt text (a trace of lengths only); predictors need "
                        "prompts: a file with a 'prompt' key or column (.jsonl, .csv, .parquet), conversations (.json, "
                        "or .jsonl in OpenAI's chat format), or the built-in 'sharegpt'")
    if wl.df["prompt"].null_count():
        raise UserError(f"workload {wl.name!r}: {wl.df['prompt'].null_count()} request(s) without prompt text")
    return wl.df["prompt"].to_list()
