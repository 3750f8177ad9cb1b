"""Which prompts ``ltrsched label`` sends, in which run: the ShareGPT windows of the paper's selection.

The prompts are the built-in ShareGPT workload's (:func:`ltrsched.workloads.selection.paper_selection`):
each split's window in its fixed shuffled order, the first ``limit`` of each (so a larger ``limit`` extends
a smaller one, and a resumed run reuses what was labelled). The sampled run (the another-seed ceiling)
takes the first ``sample_subset`` prompts of the eval window, which the main run labels too.
"""

from __future__ import annotations

from dataclasses import dataclass

from ltrsched.errors import UserError
from ltrsched.workloads.labels import MAIN_RUN, SAMPLE_RUN

LABEL_SPLITS = ("train", "eval")


@dataclass(frozen=True)
class LabelJob:
    """One prompt to serve in one run.

    Attributes:
        run: ``main`` (the labels) or ``sample`` (the sampled second run).
        split: the ShareGPT window, ``train`` or ``eval``.
        key: the ShareGPT record id (``source_id``).
        prompt: the prompt text (the first user turn).
    """

    run: str
    split: str
    key: str
    prompt: str


def parse_splits(text: str) -> tuple[str, ...]:
    """``--splits train,eval`` -> the splits, in order, each once; one-line error for anything else."""
    splits = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in splits if s not in LABEL_SPLITS]
    if not splits or bad:
        raise UserError(f"--splits takes train and/or eval separated by ',', got {text!r}")
    return splits


def select_jobs(splits: tuple[str, ...], limit: int | None, sample_subset: int) -> list[LabelJob]:
    """The main run's prompts (each split's window, the first ``limit``), then the sampled run's (the
    first ``sample_subset`` eval prompts)."""
    from ltrsched.workloads.selection import paper_selection
    from ltrsched.workloads.sharegpt import load_sharegpt_records

    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1 prompt per split, got {limit}")
    if sample_subset < 0:
        raise UserError(f"--sample-subset must be >= 0, got {sample_subset}")
    if sample_subset and "eval" not in splits:
        raise UserError("--sample-subset samples eval prompts that the main run labels too: add eval to --splits")
    if sample_subset and limit is not None and sample_subset > limit:
        raise UserError(f"--sample-subset {sample_subset} exceeds --limit {limit}: the sampled prompts must have main labels")
    records = load_sharegpt_records()
    jobs: list[LabelJob] = []
    windows = {}
    for split in splits:
        window = paper_selection(records, split=split)
        windows[split] = window
        rows = window if limit is None else window.head(limit)
        jobs += [LabelJob(MAIN_RUN, split, k, p) for k, p in zip(rows["source_id"].to_list(), rows["prompt"].to_list())]
    if sample_subset:
        window = windows["eval"]
        if sample_subset > window.height:
            raise UserError(f"--sample-subset {sample_subset} exceeds the {window.height} eval prompts")
        rows = window.head(sample_subset)
        jobs += [LabelJob(SAMPLE_RUN, "eval", k, p) for k, p in zip(rows["source_id"].to_list(), rows["prompt"].to_list())]
    return jobs
