"""The default ShareGPT predictors, trained on first use and cached (no weights ship in the repo).

``sharegpt_predictor("rank")`` is the default ranker (hashed token and word n-grams, linear, pairwise
RankNet loss) trained on the ShareGPT train split; ``sharegpt_predictor("class", bucket=820)`` a
classifier of that bucket width. Training is deterministic (seeded) and takes well under a minute on 2
cores; the checkpoint is kept under the user cache directory (``$LTRSCHED_CACHE``,
``$XDG_CACHE_HOME/ltrsched`` or ``~/.cache/ltrsched``) keyed by what it was trained on and how
(:func:`cache_key`: the ShareGPT file's content hash, parser and tokenizer versions, split sizes and
seed; the model configuration, this package's and torch's versions), so later runs load it. The same
seed gives the same model on the same machine whatever torch's thread count (training runs on one thread:
:func:`~ltrsched.predictors.predictor.Predictor.fit`). On another CPU (other vector instructions: AVX2 vs
AVX-512) float sums differ in the last bits, and the classifiers with many buckets amplify that: the 1-token
one (8,192 classes) comes out another model (Table 3's time to 1,000 samples: 92.4 s on AVX-512, 82.4 s
on the same machine forced to AVX2 code, same data and seed).
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import shutil
from dataclasses import asdict

from ltrsched.atomic import fsync_dir
from ltrsched.errors import UserError
from ltrsched.arguments import shown
from ltrsched.predictors.config import KINDS, PredictorConfig, class_count

#: 2: trained on one torch thread (a checkpoint of version 1 was trained on however many the process had, and
#: the 1-token-bucket classifier's weights depended on that count).
CACHE_VERSION = 2


def default_config(kind: str = "rank", bucket: int = 820) -> PredictorConfig:
    """The default predictor's config: the ranker, or a classifier of ``bucket``-token classes [tokens] (``kind``
    "class"). Raise :class:`ValueError`/:class:`TypeError` naming the argument for another kind (any other text gave
    a classifier) or a bucket that is no whole number >= 1 (0 was a ZeroDivisionError)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {shown(kind)}")
    if isinstance(bucket, bool) or not isinstance(bucket, numbers.Integral):
        raise TypeError(f"bucket must be a whole number of tokens >= 1, got {shown(bucket)}")
    if bucket < 1:
        raise ValueError(f"bucket must be >= 1 token, got {bucket}")
    bucket = int(bucket)
    if kind == "rank":
        return PredictorConfig()
    return PredictorConfig(kind="class", loss="ce", bucket=bucket, num_classes=class_count(bucket))


def cache_key(kind: str = "rank", bucket: int = 820) -> str:
    """16 hex digits covering what the default predictor is trained on (the ShareGPT records' content key,
    split sizes and seed) and how (model configuration, training code = this package's version, torch's
    version)."""
    from ltrsched import __version__
    from ltrsched.fingerprint import dist_version
    from ltrsched.workloads import selection, sharegpt

    data = {"records": sharegpt.records_key(), "eval_size": selection.EVAL_SIZE, "split_seed": selection.SPLIT_SEED}
    how = {"config": asdict(default_config(kind, bucket)), "v": CACHE_VERSION, "ltrsched": __version__,
           "torch": dist_version("torch")}
    return hashlib.sha256(json.dumps({"data": data, "how": how}, sort_keys=True).encode()).hexdigest()[:16]


def sharegpt_predictor(kind: str = "rank", bucket: int = 820):
    """The cached default predictor trained on the ShareGPT train split (evaluated on the eval split)."""
    from ltrsched.predictors.data import prompts_and_lengths
    from ltrsched.predictors.predictor import Predictor
    from ltrsched.workloads.sharegpt import cache_dir

    config = default_config(kind, bucket)
    directory = cache_dir() / "predictors" / f"sharegpt-{kind}-{cache_key(kind, bucket)}"
    if (directory / "predictor.json").is_file():
        try:
            return Predictor.load(directory)
        except Exception:
            shutil.rmtree(directory, ignore_errors=True)  # a damaged cache is rebuilt
    train_p, train_l = prompts_and_lengths("sharegpt", "train")
    eval_p, eval_l = prompts_and_lengths("sharegpt", "eval")
    predictor = Predictor(config)
    predictor.fit(train_p, train_l, eval_p, eval_l)
    tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
    try:
        predictor.save(tmp)
        tmp.replace(directory)
        fsync_dir(directory.parent)
    except (UserError, OSError):  # cache not writable, or another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return predictor


def _check_workload(workload) -> None:
    """Raise :class:`TypeError` naming ``workload`` unless it is a :class:`~ltrsched.workloads.schema.Workload`."""
    from ltrsched.arguments import check_argument
    from ltrsched.workloads.schema import Workload

    check_argument(workload, Workload, "workload", "a Workload with prompt text (ltrsched.workloads.load_workload(...))")


def _check_name(name: str) -> None:
    if name not in ("", "sharegpt"):
        raise UserError(f"no trained predictor named {name!r}; the built-in one is 'sharegpt'")


def score_workload(workload, name: str = "sharegpt"):
    """``workload`` with a ``score`` column from the default ShareGPT ranker (needs prompt text)."""
    import polars as pl

    from ltrsched.predictors.data import texts_of

    _check_workload(workload)  # (before the ranker trains, on first use: it failed after, on "no attribute 'df'")
    _check_name(name)
    texts = texts_of(workload)  # (a workload without prompt text refused before the training too)
    scores = sharegpt_predictor("rank").scores(texts)
    return workload.with_df(workload.df.with_columns(score=pl.Series(scores, dtype=pl.Float64)), predictor="sharegpt-rank")


def classify_workload(workload, name: str = "sharegpt", bucket: int = 820):
    """``workload`` with a ``predicted_length`` column from the default ShareGPT classifier."""
    import polars as pl

    from ltrsched.predictors.data import texts_of

    _check_workload(workload)
    _check_name(name)
    default_config("class", bucket)  # (its bucket checked before the classifier trains)
    texts = texts_of(workload)
    predictor = sharegpt_predictor("class", bucket)
    lengths = predictor.predicted_lengths(texts)
    return workload.with_df(workload.df.with_columns(predicted_length=pl.Series(lengths, dtype=pl.Float64)),
                            predictor=f"sharegpt-class-{bucket}", bucket=bucket,
                            num_classes=predictor.config.num_classes)
