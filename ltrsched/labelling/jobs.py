"""Which prompts ``ltrsched label`` sends, in which run: the ShareGPT windows of the paper's selection, or a
user's prompts file (``--prompts``) split the same way.

The built-in prompts are the built-in ShareGPT workload's (:func:`ltrsched.workloads.selection.paper_selection`):
each split's window in its fixed shuffled order, the first ``limit`` of each (so a larger ``limit`` extends
a smaller one, and a resumed run reuses what was labelled). A prompts file
(:func:`ltrsched.workloads.prompts.load_prompts`) is shuffled with the same fixed seed; its eval window is the
first half (rounded up), at most the built-in's 4,000, and its train window the rest (so the packaged ShareGPT
file given as ``--prompts`` gets the built-in windows). The sampled run (the another-seed ceiling) takes the
first ``sample_subset`` prompts of the eval window, which the main run labels too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ltrsched.errors import UserError, list_items
from ltrsched.workloads.labels import MAIN_RUN, SAMPLE_RUN
from ltrsched.workloads.selection import EVAL_SIZE

LABEL_SPLITS = ("train", "eval")


@dataclass(frozen=True)
class LabelJob:
    """One prompt to serve in one run.

    Attributes:
        run: ``main`` (the labels) or ``sample`` (the sampled second run).
        split: the window, ``train`` or ``eval``.
        key: the prompt's key: its ShareGPT record id (``source_id``), or its key in a prompts file.
        prompt: the prompt text (the first user turn, after its system text and a blank line where it has one).
        system: the system text ``prompt`` begins with (a prompts file's: a conversation's system messages, a
            ``.jsonl`` line's ``system``), sent as the system turn where the chat template takes one; ``""``: none.
    """

    run: str
    split: str
    key: str
    prompt: str
    system: str = ""


def parse_splits(text: str) -> tuple[str, ...]:
    """``--splits train,eval`` -> the splits, in order, each once; one-line error for anything else."""
    splits = tuple(dict.fromkeys(list_items(text, ",", "--splits")))  # (an empty item is an error, not skipped)
    bad = [s for s in splits if s not in LABEL_SPLITS]
    if not splits or bad:
        raise UserError(f"--splits takes train and/or eval separated by ',', got {text!r}")
    return splits


def select_jobs(splits: tuple[str, ...], limit: int | None, sample_subset: int,
                prompts: Path | None = None) -> list[LabelJob]:
    """The main run's prompts (each split's window, the first ``limit``), then the sampled run's (the
    first ``sample_subset`` eval prompts); from the built-in ShareGPT, or the file ``prompts``."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1 prompt per split, got {limit}")
    if sample_subset < 0:
        raise UserError(f"--sample-subset must be >= 0, got {sample_subset}")
    if sample_subset and "eval" not in splits:
        raise UserError("--sample-subset samples eval prompts that the main run labels too: add eval to --splits")
    if sample_subset and limit is not None and sample_subset > limit:
        raise UserError(f"--sample-subset {sample_subset} exceeds --limit {limit}: the sampled prompts must have main labels")
    windows = _windows(splits, prompts)
    jobs: list[LabelJob] = []
    for split in splits:
        window = windows[split]
        if window.height == 0:  # (only a prompts file's train window can be: one prompt, all in eval)
            raise UserError(f"{prompts}: its {windows['eval'].height} prompt(s) leave the {split} split empty "
                            "(the eval window is the first half): label --splits eval only, or give more prompts")
        rows = window if limit is None else window.head(min(limit, window.height))  # (polars: an int64 count)
        jobs += [LabelJob(MAIN_RUN, split, *row) for row in rows.select("key", "prompt", "system").rows()]
    if sample_subset:
        window = windows["eval"]
        if sample_subset > window.height:
            raise UserError(f"--sample-subset {sample_subset} exceeds the {window.height} eval prompts")
        rows = window.head(sample_subset)
        jobs += [LabelJob(SAMPLE_RUN, "eval", *row) for row in rows.select("key", "prompt", "system").rows()]
    return jobs


def file_eval_size(num_prompts: int) -> int:
    """The eval window of a prompts file of ``num_prompts``: the first half (rounded up), at most the built-in's."""
    return min(EVAL_SIZE, -(-num_prompts // 2))


def _windows(splits: tuple[str, ...], prompts: Path | None) -> dict[str, pl.DataFrame]:
    """split -> its window (``key``, ``prompt``, ``system``: a prompts file's system text, else ``""``), for each
    split asked and eval."""
    from ltrsched.workloads.selection import paper_selection, split_window

    wanted = dict.fromkeys((*splits, "eval"))
    if prompts is None:
        from ltrsched.workloads.sharegpt import load_sharegpt_records

        records = load_sharegpt_records()
        return {s: paper_selection(records, split=s).select(pl.col("source_id").alias("key"), "prompt",
                                                            system=pl.lit("", dtype=pl.Utf8)) for s in wanted}
    from ltrsched.workloads.prompts import load_prompts

    pool = load_prompts(prompts, with_system=True)
    return {s: split_window(pool, s, file_eval_size(pool.height)) for s in wanted}
