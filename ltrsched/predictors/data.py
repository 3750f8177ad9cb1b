"""Training / evaluation data for the predictors: prompts and their output lengths."""

from __future__ import annotations

import numpy as np

from ltrsched.errors import UserError
from ltrsched.workloads import Workload, load_workload


def prompts_and_lengths(source: str, split: str, limit: int | None = None, seed: int = 0,
                        hint: str | None = None) -> tuple[list[str], np.ndarray]:
    """Prompt texts and output lengths [tokens] from a built-in name (``sharegpt``) or a workload file
    with prompt text. ``split`` selects the disjoint ShareGPT window (train / eval); ``hint``: what to do where
    ``source`` is a labels file without that split (:func:`load_split`)."""
    wl = load_split(source, split, hint, num_requests=limit, seed=seed)
    return texts_of(wl), wl.df["output_tokens"].to_numpy()


def load_split(source: str, split: str, hint: str | None, **kwargs) -> Workload:
    """:func:`~ltrsched.workloads.load_workload` of ``split``; where ``source`` is a labels file (``ltrsched label``)
    with no main-run rows in ``split``, a :class:`UserError` naming the splits it has and ``hint`` (what to do:
    "give --split train") instead of the loader's "no 'main' labels in the eval split"."""
    _check_not_checkpoint(source)
    try:
        return load_workload(source, split=split, **kwargs)
    except UserError:
        have = labels_splits(source)
        if hint is None or have is None or split in have or split == "all":
            raise
        held = f"labels of the {' and '.join(have)} split only" if have else "no 'main' run labels"
        raise UserError(f"{source} holds {held}, none of the {split} split; {hint}") from None


def _check_not_checkpoint(source: str) -> None:
    """Raise :class:`UserError` where ``source``, given as prompts, is a predictor checkpoint directory (the loader
    said only "workload 'm1' is a directory, not a file")."""
    from pathlib import Path

    path = Path(source)
    if path.is_dir() and (path / "predictor.json").is_file():
        raise UserError(f"{source} is a predictor checkpoint (the directory `ltrsched train` writes), not prompts: "
                        "give it with --model/-m, and as the data a prompts file (.jsonl, .csv, .parquet, .json) or "
                        "'sharegpt'")


def labels_splits(source: str) -> list[str] | None:
    """The splits (``train``, ``eval``) of the main run's rows of the labels file ``source``; None if it is not a
    readable labels file."""
    from pathlib import Path

    import polars as pl

    from ltrsched.workloads.labels import MAIN_RUN, is_labels

    path = Path(source)
    if path.suffix.lower() != ".parquet" or not path.is_file():
        return None
    try:
        df = pl.read_parquet(path, columns=["key", "run", "model_sha256", "prompt_sha256", "split"])
    except Exception:  # (not parquet, or without these columns: the loader's own error stands)
        return None
    if not is_labels(df):
        return None
    found = df.filter(pl.col("run") == MAIN_RUN)["split"].unique().to_list()
    return [s for s in ("train", "eval") if s in found]


def texts_of(wl: Workload) -> list[str]:
    if not wl.has_text:
        raise UserError(f"workload {wl.name!r} has no prompt text (a trace of lengths only); predictors need "
                        "prompts: a file with a 'prompt' key or column (.jsonl, .csv, .parquet), conversations (.json, "
                        "or .jsonl in OpenAI's chat format), or the built-in 'sharegpt'")
    if wl.df["prompt"].null_count():
        raise UserError(f"workload {wl.name!r}: {wl.df['prompt'].null_count()} request(s) without prompt text")
    return wl.df["prompt"].to_list()
