"""An ensemble of rank predictors: the weighted sum of each member's z-scored scores.

Measured on ShareGPT (BENCHMARKS.md): the default n-gram ranker (0.35) plus a fine-tuned MiniLM (0.36)
reach 0.39 with equal weights, at the slower member's speed. A checkpoint directory holds
``ensemble.json`` (weights and each member's score mean / standard deviation on the calibration
prompts) and the members' own checkpoint directories ``member0``, ``member1``, ...
"""

from __future__ import annotations

import json
import numbers
import os
import re
import shutil
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from ltrsched import atomic, strict_json
from ltrsched.errors import ArgumentValueError, PathNotFoundError, WriteFailedError
from ltrsched.arguments import shown
from ltrsched.numbers import is_finite_number
from ltrsched.predictors.arguments import (check_batch_size, check_directory, check_lengths, check_out_directory,
                                          check_overwrite, check_prompts, check_scored)
from ltrsched.predictors.config import PredictorConfig, retire_checkpoint

ENSEMBLE_FILE = "ensemble.json"
#: ensemble.json's record of each member's weights digest (``weights_sha256`` of its predictor.json) when calibrated.
MEMBER_DIGESTS_KEY = "member_weights_sha256"
#: The keys of ensemble.json (:meth:`Ensemble.save`); another is refused on load, as an unknown setting of
#: predictor.json is: a file written by another ltrsched version, whose key would change what its scores mean.
SPEC_KEYS = ("members", "weights", "means", "stds", MEMBER_DIGESTS_KEY)


def member_name(i: int) -> str:
    """The directory :meth:`Ensemble.save` copies member ``i`` (from 0) into, inside the ensemble's directory."""
    return f"member{i}"


def saved_member_dirs(directory: Path) -> list[Path]:
    """The member directories the ensemble checkpoint in ``directory`` wrote, which a save replacing it removes
    (:func:`~ltrsched.predictors.config.retire_checkpoint`): the names its ``ensemble.json`` lists that are
    :func:`member_name`'s (``member0``, ``member1``, ...) and are directories there (no link). Nothing else: not a
    name of another form (an ``ensemble.json`` edited to list ``../elsewhere``), not a ``memberN`` it does not list;
    [] where ``directory`` holds no readable ``ensemble.json``."""
    directory = Path(directory)
    path = directory / ENSEMBLE_FILE
    if not path.is_file():  # (none, or a pipe or device: read, it would block or never end)
        return []
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # (damaged: no member known to be its own)
        return []
    names = spec.get("members") if isinstance(spec, dict) else None
    if not isinstance(names, list):
        return []
    dirs = []
    for name in dict.fromkeys(n for n in names if isinstance(n, str) and re.fullmatch(r"member(0|[1-9][0-9]*)", n)):
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            dirs.append(path)
    return dirs


class Ensemble:
    """``scores(prompts)``: sum_i w_i (s_i - mean_i) / std_i over rank members (higher = shorter).

    Only the weights' ratios matter: they are scaled so the largest is 1 before use (a weight of 1e308 would
    otherwise overflow the sum to inf - inf = NaN)."""

    def __init__(self, members: list, weights: list[float], means: list[float], stds: list[float]):
        """``members`` (rank :class:`~ltrsched.predictors.predictor.Predictor` s), their ``weights`` (>= 0, not all 0)
        and the mean and standard deviation of each member's scores on calibration prompts (:meth:`calibrate`)."""
        members, weights, means, stds = _check_members(members), list(weights), list(means), list(stds)
        for name, values in (("weights", weights), ("means", means), ("stds", stds)):
            for i, v in enumerate(values):  # (a bool counted as 1 or 0; text failed comparing '<=' with an int, or
                # subtracting it from the scores)
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                    raise TypeError(f"{name}[{i}] must be a number, got {shown(v)}")
        if len(members) < 2 or not (len(members) == len(weights) == len(means) == len(stds)):
            raise ArgumentValueError("an ensemble needs at least 2 members, with one weight each")
        odd = next((i for i, m in enumerate(means) if not is_finite_number(m)), None)
        if odd is not None:  # (a NaN mean scored every prompt NaN without a word; ensemble.json's are checked on load)
            raise ArgumentValueError(f"means[{odd}] must be a finite number (member {odd}'s mean score on the "
                                     f"calibration prompts), got {means[odd]!r}")
        if not all(0 <= w < np.inf for w in weights) or sum(weights) <= 0:
            raise ArgumentValueError(f"ensemble weights must be finite and >= 0, not all 0; got {list(weights)}")
        lost = [w for w in weights if w > 0 and w / max(weights) == 0]
        if lost:  # (scaled by the largest, it underflows to 0: that member was scored and silently counted for nothing)
            raise ArgumentValueError(f"ensemble weight {lost[0]!r} is too small beside the largest, {max(weights)!r}: "
                                     "their ratio is 0 in floating point, so its member would count for nothing; give "
                                     "weights of closer size, or 0 to leave the member out")
        if not all(0 < s < np.inf for s in stds):
            raise ArgumentValueError(_NO_SPREAD)
        self.members, self.weights, self.means, self.stds = members, list(weights), list(means), list(stds)
        self.config = PredictorConfig(kind="rank")  # what the commands read (kind); members keep their own

    @classmethod
    def calibrate(cls, members: list, prompts: list[str], weights: list[float] | None = None) -> "Ensemble":
        """Member score statistics from ``prompts`` (e.g. the training prompts: at least 2); equal weights by default
        (None; an empty list is refused, as any list of another length than ``members``)."""
        members, prompts = _check_members(members), check_prompts(prompts)
        if len(prompts) < 2:  # (before scoring: no prompt printed numpy's warnings of an empty mean first)
            raise ArgumentValueError(_NO_SPREAD)
        stats = member_scores(members, prompts)
        return cls(members, [1.0] * len(members) if weights is None else weights, [float(s.mean()) for s in stats],
                   [float(s.std()) for s in stats])

    def combine(self, member_scores: list[np.ndarray]) -> np.ndarray:
        """The ensemble score from each member's scores of the same prompts."""
        total = np.zeros(len(member_scores[0]))
        top = max(self.weights)
        for s, w, mu, sd in zip(member_scores, self.weights, self.means, self.stds):
            total += (w / top) * (np.asarray(s, dtype=np.float64) - mu) / sd
        return total

    def forget_features(self) -> None:
        """Each member drops what it memoizes per prompt."""
        for member in self.members:
            member.forget_features()

    def scores(self, prompts: list[str], batch_size: int = 1024) -> np.ndarray:
        prompts, batch_size = check_prompts(prompts), check_batch_size(batch_size)
        return self.combine(member_scores(self.members, prompts, batch_size, self.weights))

    def score(self, prompts: list[str], batch_size: int = 1024):
        """``prompts`` scored once (:class:`~ltrsched.predictors.predictor.Scored`; an ensemble of rankers predicts
        no lengths)."""
        from ltrsched.predictors.predictor import Scored

        return Scored(self.scores(prompts, batch_size))

    def evaluate(self, prompts: list[str], lengths: np.ndarray) -> dict:
        prompts = check_prompts(prompts)
        return self.measure(self.score(prompts), check_lengths(lengths, len(prompts)))

    def measure(self, scored, lengths: np.ndarray) -> dict:
        """Kendall tau of prompts already ``scored`` (:meth:`score`) against their output ``lengths`` [tokens]."""
        from ltrsched.predictors.predictor import kendall_tau

        check_scored(scored)
        return {"tau": kendall_tau(scored.scores, check_lengths(lengths, len(scored.scores)))}

    def predicted_lengths(self, prompts: list[str], batch_size: int = 1024):
        """An ensemble of rankers predicts no lengths: the ValueError of a ranker's
        :meth:`~ltrsched.predictors.predictor.Predictor.predicted_lengths` (it was an AttributeError, of a checkpoint
        ``Predictor.load`` gave)."""
        raise ArgumentValueError("a ranking model predicts scores, not lengths; train --kind class for lengths")

    def training_overlap(self, prompts: list[str]) -> int | None:
        """How many of ``prompts`` some member was trained on (by text); None if no member's checkpoint says what it
        was trained on."""
        from ltrsched.predictors.predictor import count_known

        prompts = check_prompts(prompts)  # (a str was counted one character a prompt)
        known = [m.training_prompts for m in self.members if getattr(m, "training_prompts", None) is not None]
        return count_known(np.unique(np.concatenate(known)), prompts) if known else None

    def save(self, directory: str | Path, sources: list[str | Path], overwrite: bool = False) -> Path:
        """Write the ensemble, copying each member's checkpoint directory (``sources``: one path per member, in
        order) inside it (``member0``, ``member1``, ...). A directory that already holds a checkpoint (an ensemble's
        or a predictor's files, or a ``memberN`` it would write) is refused with a ValueError unless ``overwrite`` is
        True. Replacing one, its ``ensemble.json`` (and a predictor's files) are removed first and the new
        ``ensemble.json`` is written last: a save that fails half-way leaves no checkpoint there, never the old
        ensemble's statistics over new members."""
        check_out_directory(directory)
        if isinstance(sources, (str, bytes, os.PathLike)):  # (a str was copied one character a member: "/" first)
            raise TypeError(f"sources must be a list of checkpoint directories, one per member, got {shown(sources)}")
        sources = list(sources)
        for i, src in enumerate(sources):
            check_directory(src, f"sources[{i}]")
        if len(sources) != len(self.members):  # (0 sources wrote an ensemble.json of no member, which no load takes)
            raise ValueError(f"sources holds {len(sources)} checkpoint directories for {len(self.members)} members: "
                             "give one per member, in order")
        directory = Path(directory)
        for i, src in enumerate(sources):  # (a member copied into itself: removed before it was copied)
            inside = Path(src).resolve()
            if inside == directory.resolve() or directory.resolve() in inside.parents:
                raise ArgumentValueError(f"sources[{i}] {str(src)!r} lies in directory {str(directory)!r}, which the "
                                         "save replaces: copy that member elsewhere first, or give another directory")
        names = [member_name(i) for i in range(len(sources))]
        check_overwrite(directory, overwrite, names=tuple(names))
        retire_checkpoint(directory)  # (the replaced ensemble's members too, those these do not reuse)
        for name, src in zip(names, sources):
            dst = directory / name
            try:
                if dst.exists():
                    shutil.rmtree(dst)
                shutil.copytree(src, dst)
            except OSError as exc:
                raise WriteFailedError(f"cannot write {dst}: {exc.strerror or str(exc).splitlines()[0]}",
                                       getattr(exc, "errno", None)) from None
        from ltrsched.predictors.config import saved_weights_digest

        # (the means and stds are those of these members' scores: a member directory replaced later by another
        # checkpoint, e.g. one trained again, was z-scored by the old member's statistics without a word)
        digests = [saved_weights_digest(directory / name) for name in names]
        atomic.write_bytes(directory / ENSEMBLE_FILE, strict_json.dumps(
            {"members": names, "weights": self.weights, "means": self.means, "stds": self.stds,
             MEMBER_DIGESTS_KEY: digests}, indent=2).encode("utf-8"))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Ensemble":
        """The ensemble checkpoint in ``directory`` (a str or path). A damaged ``ensemble.json`` or member, or a
        directory without an ``ensemble.json``, is an :class:`~ltrsched.errors.ArgumentValueError` (a ValueError); a
        missing ``directory`` a :class:`~ltrsched.errors.PathNotFoundError` (a FileNotFoundError)."""
        from ltrsched.predictors.predictor import Predictor

        check_directory(directory)  # (None was "expected str, bytes or os.PathLike object, not NoneType")
        directory = Path(directory)
        path = directory / ENSEMBLE_FILE
        if not path.is_file():  # (it was a bare FileNotFoundError or IsADirectoryError naming no checkpoint)
            if not directory.exists():
                raise PathNotFoundError(f"{directory} is not an ensemble checkpoint: no such directory; make one with "
                                        "`ltrsched ensemble --out DIR`")
            raise ArgumentValueError(
                f"{directory} is not an ensemble checkpoint: it is a file, and an ensemble is the directory `ltrsched "
                f"ensemble --out DIR` writes ({ENSEMBLE_FILE} and its members)" if not directory.is_dir() else
                f"{path} is not a file (a directory?); make the ensemble again" if path.exists() else
                f"{directory} is not an ensemble checkpoint (no {ENSEMBLE_FILE}); make one with `ltrsched ensemble`")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArgumentValueError(f"{path}: not a valid ensemble ({exc})") from None
        except RecursionError:  # e.g. 100,000 "[": json recurses once per level
            raise ArgumentValueError(f"{path}: not a valid ensemble (JSON nested too deeply)") from None
        except ValueError as exc:  # an integer of over 4,300 digits (Python's limit on reading one from text)
            raise ArgumentValueError(f"{path}: not a valid ensemble ({str(exc).split(';')[0]})") from None
        _check_spec(spec, path)
        for name in spec["members"]:  # ("." or a link to the directory: an ensemble of itself, endless recursion)
            if (directory / name / ENSEMBLE_FILE).is_file():
                raise ArgumentValueError(f"{path}: member {name!r} is an ensemble; ensemble members must be single "
                                         "predictors")
        members = [Predictor.load(directory / name) for name in spec["members"]]
        _check_member_digests(spec, [m.weights_digest for m in members], path)
        return cls(members, spec["weights"], spec["means"], spec["stds"])


#: Why an ensemble cannot be calibrated on these prompts (fewer than 2, or a member scoring them all alike).
_NO_SPREAD = ("member scores must vary on the calibration prompts (--data): give more than one prompt, not all the same "
              "text")


def _check_members(members) -> list:
    """``members`` as a list of rank predictors: :class:`TypeError` naming the first that is no
    :class:`~ltrsched.predictors.predictor.Predictor` (a path, a spec string: "'str' object has no attribute
    'config'", in :meth:`Ensemble.calibrate` after scoring "'str' object has no attribute 'features_key'"),
    :class:`~ltrsched.errors.ArgumentValueError` for a class model."""
    from ltrsched.predictors.predictor import Predictor

    if isinstance(members, (str, bytes, os.PathLike)):
        raise TypeError(f"members must be a list of Predictors (Predictor.load(directory) for a checkpoint), got "
                        f"{shown(members)}")
    members = list(members)
    for i, m in enumerate(members):
        if not isinstance(m, Predictor):
            raise TypeError(f"members[{i}] must be a Predictor (Predictor.load(directory) for a checkpoint), got "
                            f"{shown(m)}")
    if any(m.config.kind != "rank" for m in members):
        raise ArgumentValueError("ensemble members must be rank predictors (--kind rank)")
    return members


def member_scores(members: list, prompts: list[str], batch_size: int = 1024,
                  weights: list[float] | None = None) -> list[np.ndarray]:
    """Each member's scores of ``prompts`` (zeros, unscored, for a member of weight 0 in ``weights``), members of one
    :attr:`~ltrsched.predictors.predictor.Predictor.features_key` preparing each prompt's features once between them
    (:func:`shared_features`). Where the prompts are more than one
    :data:`~ltrsched.predictors.predictor.PREPARE_BATCHES` chunk, each chunk is scored by every member in turn, so
    that they share its features too, in memory bounded by one chunk's: member by member, each member tokenised and
    featurised the whole workload again (an ensemble of 3 n-gram rankers scoring 100,000 prompts: 3 times a member's
    featurising, BENCHMARKS.md "Predictors at scale"). The scores are the same, bit for bit: a prompt's features are its
    own, and each member scores a chunk in the batches it scores the whole in. Each member's progress bar (its
    ``progress``) runs over all the prompts, and its counts of unseen and cut prompts (``unseen_last``,
    ``cut_last``) are of all of them."""
    from ltrsched.predictors.predictor import PREPARE_BATCHES

    weights = [1.0] * len(members) if weights is None else weights
    scoring = [m for m, w in zip(members, weights) if w]
    chunk = batch_size * PREPARE_BATCHES
    if len(prompts) <= chunk:
        with shared_features(scoring):
            done = {id(m): m.scores(prompts, batch_size) for m in scoring}
    else:
        done = _scores_by_chunk(scoring, prompts, batch_size, chunk)
    return [done[id(m)] if w else np.zeros(len(prompts)) for m, w in zip(members, weights)]


class _ChunkBar:
    """What a member's scoring of one chunk takes for its progress bar: its moves go to ``outer``, the member's bar
    over all the prompts."""

    def __init__(self, outer) -> None:
        self.outer, self.n = outer, 0

    def update(self, count: int = 1) -> None:
        self.n += count
        self.outer.update(count)

    def __enter__(self) -> "_ChunkBar":
        return self

    def __exit__(self, *exc) -> None:
        return None


def _scores_by_chunk(members: list, prompts: list[str], batch_size: int, chunk: int) -> dict[int, np.ndarray]:
    """:func:`member_scores` of more than one ``chunk`` of ``prompts``: id(member) -> its scores."""
    parts: dict[int, list[np.ndarray]] = {id(m): [] for m in members}
    counts: dict[int, dict[str, int | None]] = {id(m): {"unseen_last": None, "cut_last": None} for m in members}
    progress = {id(m): m.progress for m in members}
    with ExitStack() as stack:
        bars = {id(m): stack.enter_context(m._bar(len(prompts), m._scoring_noun, "scored")) for m in members}
        try:
            for first in range(0, len(prompts), chunk):
                part = prompts[first: first + chunk]
                with shared_features(members):  # (a dict of this chunk's features alone: freed after it)
                    for m in members:
                        m.progress = lambda total, noun, verb, outer=bars[id(m)]: _ChunkBar(outer)
                        m._scoring_within = (first, len(prompts))
                        parts[id(m)].append(m.scores(part, batch_size))
                        for name, total in counts[id(m)].items():
                            count = getattr(m, name)
                            if count is not None:
                                counts[id(m)][name] = (total or 0) + count
        finally:
            for m in members:
                m.progress = progress[id(m)]
                m._scoring_within = None
    for m in members:
        for name, total in counts[id(m)].items():
            setattr(m, name, total)
    return {key: np.concatenate(scores) for key, scores in parts.items()}


@contextmanager
def shared_features(members: list):
    """While the block runs, ``members`` whose backbones make the same features of a prompt (n-gram ones of one n-gram
    set and size: :attr:`~ltrsched.predictors.predictor.Predictor.features_key`) prepare the features of a list of
    prompts scored by each once between them (each member tokenised and featurised the same prompts again); a list of
    more than one :data:`~ltrsched.predictors.predictor.PREPARE_BATCHES` chunk is prepared by each, in memory bounded
    by a chunk's features: :func:`member_scores` scores such a list chunk by chunk, each inside this block."""
    keys = Counter(m.features_key for m in members if m.features_key is not None)
    shared: dict = {}
    with ExitStack() as stack:
        for m in members:
            if m.features_key is not None and keys[m.features_key] > 1:
                stack.enter_context(m.sharing_features(shared.setdefault(m.features_key, {})))
        yield


def _check_member_digests(spec: dict, saved: list[str | None], path: Path) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` if a member's weights (``saved``: the digest each member's
    ``predictor.json`` records, :attr:`~ltrsched.predictors.predictor.Predictor.weights_digest`) are not those the
    ensemble was calibrated on (``spec``'s :data:`MEMBER_DIGESTS_KEY`, absent in ensembles written before it: not
    checked)."""
    recorded = spec.get(MEMBER_DIGESTS_KEY)
    if recorded is None:
        return
    if not (isinstance(recorded, list) and len(recorded) == len(spec["members"])
            and all(d is None or isinstance(d, str) for d in recorded)):
        raise ArgumentValueError(f"{path}: not a valid ensemble ({MEMBER_DIGESTS_KEY!r} must hold one weights digest "
                                 "or null per member)")
    for name, digest, now in zip(spec["members"], recorded, saved):
        if digest is not None and now != digest:
            raise ArgumentValueError(f"{path}: member {name!r} is not the checkpoint this ensemble was calibrated on "
                                     "(its weights changed: its scores would be z-scored by another model's mean and "
                                     "spread); make the ensemble again (`ltrsched ensemble`)")


def _check_spec(spec, path: Path) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` unless ``spec`` (``ensemble.json``) holds its keys only
    (:data:`SPEC_KEYS`), names its members by text and holds finite numbers for their weights, means and standard
    deviations (a NaN mean scored every prompt NaN, text one failed at the first prompt scored)."""
    if not isinstance(spec, dict):
        raise ArgumentValueError(f"{path}: not a valid ensemble (expected a JSON object, got {type(spec).__name__})")
    unknown = [str(k) for k in spec if k not in SPEC_KEYS]
    if unknown:  # (ignored: a newer file's key, e.g. another way to combine the members, loaded as this one)
        raise ArgumentValueError(f"{path}: unknown key {unknown[0][:80]!r}"
                                 + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else "")
                                 + ": an ensemble written by another ltrsched version, or edited by hand; make the "
                                   "ensemble again with this one (`ltrsched ensemble`)")
    for key in ("members", "weights", "means", "stds"):
        values = spec.get(key)
        if not isinstance(values, list):
            raise ArgumentValueError(f"{path}: not a valid ensemble ({key!r} must be a list, got "
                                     f"{type(values).__name__})")
        for v in values:
            ok = isinstance(v, str) if key == "members" else (
                isinstance(v, (int, float)) and not isinstance(v, bool) and is_finite_number(v))
            if not ok:
                what = "member directory names" if key == "members" else "finite numbers"
                got = f"an integer of {len(str(v))} digits" if isinstance(v, int) and not is_finite_number(v) else repr(v)
                raise ArgumentValueError(f"{path}: not a valid ensemble ({key!r} must hold {what}, got {got})")
