"""One-line :class:`TypeError` / :class:`ValueError` naming the argument, for the predictors' Python entry points
(:meth:`~ltrsched.predictors.predictor.Predictor.fit`, ``score``, ``scores``, ``evaluate``, the ensemble's) given
prompts, output lengths [tokens] or a batch size they cannot use. Without these checks a string was scored one
character per prompt, a batch size of -1 scored nothing and returned no score, NaN lengths trained as -2**63 tokens
and a None prompt failed deep inside the n-gram featuriser with an ``IndexError``. The command line reads its prompts
and lengths from workload files, which are checked where they are read; these checks are for callers in Python."""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np

from ltrsched.arguments import check_flag, shown
from ltrsched.errors import ArgumentValueError

#: [tokens] The largest output length taken: int64's largest (training labels are int64).
MAX_LENGTH = (1 << 63) - 1


def check_prompts(prompts, argument: str = "prompts") -> list[str]:
    """``prompts`` as a list of str: any iterable of str (a list, a tuple, a numpy array, a polars Series, a
    generator) but one str or bytes itself (it was scored one prompt per character or byte). Raise
    :class:`TypeError` naming ``argument`` (and the first bad item's index) otherwise."""
    if prompts is None or isinstance(prompts, (str, bytes, bytearray)):
        raise TypeError(f"{argument} must be a list of prompt strings (a single prompt: [prompt]), got "
                        f"{shown(prompts)}")
    try:
        items = list(prompts)
    except TypeError:
        raise TypeError(f"{argument} must be a list of prompt strings, got {shown(prompts)}") from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{argument}[{i}] must be a prompt string, got {shown(item)}"
                            + (" (decode bytes first, e.g. .decode('utf-8'))" if isinstance(item, bytes) else ""))
    return items


def check_lengths(lengths, count: int, argument: str = "lengths") -> np.ndarray:
    """``lengths`` as int64 output lengths [tokens], one per prompt (``count`` of them): whole numbers >= 0 (floats
    with whole values too), at most :data:`MAX_LENGTH`. Raise :class:`TypeError` for what is no sequence of numbers
    (None, text, bools) and :class:`ValueError` for another count, NaN, infinity, a fraction or a negative value,
    each naming ``argument`` and the first bad item."""
    if lengths is None or isinstance(lengths, (str, bytes, bytearray)):
        raise TypeError(f"{argument} must be a sequence of output lengths [tokens], one per prompt, got "
                        f"{shown(lengths)}")
    try:
        values = np.asarray(lengths)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{argument} must be a sequence of output lengths [tokens], got {shown(lengths)}") from None
    if values.ndim != 1:
        raise ValueError(f"{argument} must be one output length per prompt (a flat sequence), got an array of shape "
                         f"{values.shape}")
    if len(values) != count:
        raise ValueError(f"{argument} holds {len(values)} output length(s) for {count} prompt(s): give one per prompt")
    if values.dtype == object:  # (Python ints beyond int64, or mixed objects)
        for i, v in enumerate(values):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise TypeError(f"{argument}[{i}] must be a number of tokens, got {shown(v)}")
            if isinstance(v, numbers.Integral) and not 0 <= v <= MAX_LENGTH:
                raise ValueError(f"{argument}[{i}] must be in [0, {MAX_LENGTH}] tokens, got {v}")
        values = values.astype(np.float64) if any(not isinstance(v, numbers.Integral) for v in values) else \
            values.astype(np.int64)
    if values.dtype.kind not in "iuf":
        first = values[0] if len(values) else None
        raise TypeError(f"{argument} must be numbers of tokens, got {values.dtype} values"
                        + (f" (the first: {shown(first.item() if hasattr(first, 'item') else first)})"
                           if first is not None else ""))
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.floor(values)) | (values < 0) | (values >= 2.0 ** 63)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{argument}[{i}] must be a whole number of tokens >= 0, got {float(values[i])!r} "
                             f"({int(bad.sum())} of {len(values)} such)")
        return values.astype(np.int64)
    if values.dtype.kind == "u" and len(values) and values.max() > MAX_LENGTH:
        i = int(np.argmax(values > MAX_LENGTH))
        raise ValueError(f"{argument}[{i}] must be in [0, {MAX_LENGTH}] tokens, got {values[i]}")
    if values.dtype.kind == "i" and (values < 0).any():
        i = int(np.flatnonzero(values < 0)[0])
        raise ValueError(f"{argument}[{i}] must be a number of tokens >= 0, got {values[i]}")
    return values.astype(np.int64)


def check_batch_size(batch_size, argument: str = "batch_size") -> int:
    """``batch_size`` (prompts a forward pass scores at once) as an int >= 1: a numpy integer too, not a bool. Raise
    :class:`TypeError` or :class:`ValueError` naming ``argument`` otherwise (-1 scored no prompt and returned an
    empty array; 0 failed inside ``range``)."""
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"{argument} must be a whole number of prompts >= 1, got {shown(batch_size)}")
    if batch_size < 1:
        raise ValueError(f"{argument} must be >= 1 prompt, got {batch_size}")
    return int(batch_size)


def check_callback(callback, argument: str) -> None:
    """Raise :class:`TypeError` naming ``argument`` unless ``callback`` is None or callable (``fit``'s ``on_epoch``
    and ``on_batch``): a string failed with "'str' object is not callable" once the first epoch (or list) was
    trained."""
    if callback is not None and not callable(callback):
        raise TypeError(f"{argument} must be a function or None, got {shown(callback)}")


def check_scored(scored, argument: str = "scored") -> None:
    """Raise :class:`TypeError` naming ``argument`` unless ``scored`` is a
    :class:`~ltrsched.predictors.predictor.Scored` (what ``score(prompts)`` returns): a list of scores failed with
    "'list' object has no attribute 'scores'"."""
    from ltrsched.predictors.predictor import Scored

    if not isinstance(scored, Scored):
        raise TypeError(f"{argument} must be prompts scored by score(prompts) (a Scored), got {shown(scored)}")


def check_directory(directory, argument: str = "directory") -> None:
    """Raise :class:`TypeError` naming ``argument`` unless ``directory`` is a path (str or :class:`os.PathLike`):
    None said only "expected str, bytes or os.PathLike object, not NoneType"."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a checkpoint directory path (str or pathlib.Path), got {shown(directory)}")


def check_out_directory(directory, argument: str = "directory") -> None:
    """:func:`check_directory`, and raise :class:`ValueError` naming ``argument`` where ``directory`` is a file (or
    below one) rather than a directory to write a checkpoint into: it said "cannot write DIR/weights.pt: File exists",
    of a weights file that was not there."""
    check_directory(directory, argument)
    path = Path(directory)
    file = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if file is not None:
        raise ValueError(f"{argument} {str(path)!r} is " + ("a file" if file == path else f"below the file {str(file)!r}")
                         + ", not a directory: a checkpoint is a directory of files; give a directory path")


def check_overwrite(directory, overwrite, argument: str = "directory", names: tuple[str, ...] = ()) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) naming ``argument`` where ``directory``
    already holds a checkpoint (a predictor's or an ensemble's files, or one of ``names``: an ensemble's member
    directories) and ``overwrite`` is False: a save replaced it without a word. :class:`TypeError` unless
    ``overwrite`` is a bool."""
    from ltrsched.predictors.config import checkpoint_entries

    check_flag(overwrite, "overwrite")
    if overwrite:
        return
    found = checkpoint_entries(Path(directory), names)
    if found:
        raise ArgumentValueError(f"{argument} {str(directory)!r} already holds a checkpoint ({', '.join(found)}): "
                                 "pass overwrite=True to replace it, or give another directory")
