"""The paper's prompt selection rules and disjoint train / eval splits.

Rules (paper, section 5): the first user turn of each conversation; keep prompts of 4..1024 Llama-3
tokens and outputs of >= 4 tokens; prompt + output is capped at 8,192 tokens (Llama-3's context, the
paper's generation limit): longer outputs are truncated, as the model would have stopped there.
Identical prompts are kept once, so a prompt can never be in both splits.

Splits: the eligible prompts are shuffled once with a fixed seed (0); the **eval** window is the first
``EVAL_SIZE`` (4,000) of that order and the **train** window is everything after it. The paper used
windows of 10,000 at offsets 0 and 20,000 of LMSYS / ShareGPT; the packaged ShareGPT has only 8,230
eligible first turns, so the windows are 4,000 / 4,230 here (as in the paper, about half each). A
``seed`` then samples ``n`` requests within a window.
"""

from __future__ import annotations

import polars as pl

from ltrsched.errors import UserError

MIN_PROMPT_TOKENS = 4
MAX_PROMPT_TOKENS = 1024
MIN_OUTPUT_TOKENS = 4
MAX_OUTPUT_TOKENS = 8192
EVAL_SIZE = 4000
SPLIT_SEED = 0
SPLITS = ("eval", "train", "all")
#: Largest sampling seed (polars samples with a 64-bit seed; a larger one was an OverflowError traceback).
MAX_SEED = 2**64 - 1
#: What a first turn whose prompt is blank (:mod:`ltrsched.workloads.blank_text`: its count is 0) is left out with.
EMPTY_PROMPT = "an empty prompt (nothing, or whitespace and invisible characters alone)"


def _uncapped(df: pl.DataFrame) -> pl.DataFrame:
    """The rows the length rules keep, each prompt once (its first occurrence), outputs as given."""
    out = df.filter(
        pl.col("prompt_tokens").is_between(MIN_PROMPT_TOKENS, MAX_PROMPT_TOKENS)
        & (pl.col("output_tokens") >= MIN_OUTPUT_TOKENS)
    )
    if "prompt" in out.columns:
        out = out.unique(subset="prompt", keep="first", maintain_order=True)
    return out


def left_out(df: pl.DataFrame) -> str | None:
    """What the length rules and the de-duplication (:func:`eligible`) leave out of the first turns ``df``, as the
    end of a note: ``"3 of the 10 first turns are left out by the paper's selection rules: 2 with a prompt of
    over 1,024 tokens, 1 with a reply of under 4 tokens"``; None if they keep every one. Each first turn is
    counted once, under the first rule it fails (prompt, then reply, then a repeated prompt). They were left out
    without a word: a file of another model's replies, many of them a token or two long, lost them all silently,
    and the requests served were not the file's. A prompt of 0 tokens is an empty one (the parse counts a blank
    prompt, whitespace or invisible characters alone, so): it was counted as "a prompt of under 4 tokens"."""
    prompts = pl.col("prompt_tokens")
    counts = df.select(
        empty=(prompts == 0).sum(), short=prompts.is_between(1, MIN_PROMPT_TOKENS - 1).sum(),
        long=(prompts > MAX_PROMPT_TOKENS).sum(),
        reply=(prompts.is_between(MIN_PROMPT_TOKENS, MAX_PROMPT_TOKENS)
               & (pl.col("output_tokens") < MIN_OUTPUT_TOKENS)).sum()).row(0, named=True)
    kept = _uncapped(df).height
    counts["repeated"] = df.height - kept - counts["empty"] - counts["short"] - counts["long"] - counts["reply"]
    if kept == df.height:
        return None
    reasons = {"empty": f"with {EMPTY_PROMPT}",
               "short": f"with a prompt of under {MIN_PROMPT_TOKENS} tokens",
               "long": f"with a prompt of over {MAX_PROMPT_TOKENS:,} tokens",
               "reply": f"with a reply of under {MIN_OUTPUT_TOKENS} tokens",
               "repeated": "repeating an earlier prompt (each prompt is kept once)"}
    parts = [f"{counts[k]:,} {why}" for k, why in reasons.items() if counts[k]]
    return (f"{df.height - kept:,} of the {df.height:,} first turns are left out by the paper's selection rules: "
            + ", ".join(parts))


def eligible(df: pl.DataFrame) -> pl.DataFrame:
    """Apply the length rules, cap outputs, and keep the first occurrence of each prompt."""
    return _uncapped(df).with_columns(
        pl.min_horizontal("output_tokens", MAX_OUTPUT_TOKENS - pl.col("prompt_tokens")).alias("output_tokens"))


def paper_selection(df: pl.DataFrame, split: str = "eval", n: int | None = None, seed: int = 0,
                    source: str | None = None) -> pl.DataFrame:
    """The paper's selection: eligible first turns, split window, then a seeded sample of ``n``.

    Args:
        df: first turns with ``prompt_tokens``, ``output_tokens`` (and ``prompt`` for de-duplication).
        split: "eval", "train" (disjoint windows) or "all".
        n: requests to sample from the window (None: the whole window, in window order).
        seed: sampling seed.
        source: the file the first turns are from, for the errors (a sweep of several files named none).
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    where = f"{source}: " if source else ""
    pool = eligible(df)
    if pool.height == 0:
        raise UserError(f"{where}no eligible requests in the {split} split: none of the {df.height} first turn(s) has a "
                        f"prompt of {MIN_PROMPT_TOKENS}..{MAX_PROMPT_TOKENS} tokens and an output of >= "
                        f"{MIN_OUTPUT_TOKENS} tokens (the paper's rules)")
    num_eligible = pool.height
    pool = split_window(pool, split, EVAL_SIZE)
    if pool.height == 0:
        raise UserError(f"{where}no eligible requests in the {split} split: all {num_eligible} eligible first turn(s) are in "
                        f"the eval window (the first {EVAL_SIZE:,} of them)")
    return sample_rows(pool, n, seed, f"{source} (its eligible first turns)" if source else f"the {split} split")


def split_window(pool: pl.DataFrame, split: str, eval_size: int) -> pl.DataFrame:
    """The ``split`` window of ``pool``: its rows shuffled once with :data:`SPLIT_SEED`, then the first
    ``eval_size`` (``eval``), the rest (``train``) or all of them (``all``), in that shuffled order."""
    pool = pool.sample(fraction=1.0, shuffle=True, seed=SPLIT_SEED) if pool.height else pool
    if split == "eval":
        return pool.head(eval_size)
    if split == "train":
        return pool.slice(eval_size)
    return pool


class TooFewRequests(UserError):
    """More requests asked for than ``source`` has: the message names no option, as every command that samples
    (``-n``, a sweep's ``num_requests``, ``train --limit``) reaches it; a command names its own from ``asked`` and
    ``available``."""

    def __init__(self, asked: int, available: int, source: str):
        super().__init__(f"asked for {asked} requests but {source} has only {available}")
        self.asked, self.available, self.source = asked, available, source

    def __reduce__(self):  # picklable, so that a sweep worker can report it to the main process
        return type(self), (self.asked, self.available, self.source)


def sample_rows(df: pl.DataFrame, n: int | None, seed: int, source: str) -> pl.DataFrame:
    """A seeded sample of ``n`` rows without replacement (all rows, in order, if ``n`` is None); more rows than
    ``df`` has: :class:`TooFewRequests`."""
    if n is None:
        return df
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"the sampling seed must be in 0..2**64-1, got {seed}")
    if n <= 0:
        raise UserError(f"the number of requests must be positive, got {n}")
    if n > df.height:
        raise TooFewRequests(n, df.height, source)
    return df.sample(n=n, shuffle=True, seed=seed)
