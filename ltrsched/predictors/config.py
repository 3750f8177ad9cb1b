"""Training configuration and checkpoint layout of the length predictors."""

from __future__ import annotations

import json
import numbers
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ltrsched import atomic, strict_json
from ltrsched.errors import ArgumentTypeError, ArgumentValueError, PathNotFoundError, UserError, WriteFailedError
from ltrsched.inputs import check_not_special
from ltrsched.numbers import is_finite_number
from ltrsched.strict_json import shown

KINDS = ("rank", "class")
BACKBONES = ("ngram", "hf", "probe")
LOSSES = ("pairwise", "listmle", "ce")
#: The probe backbone's precisions (``--probe-precision``): the dtype its layers compute the features in.
PROBE_PRECISIONS = ("float32", "bf16")
CONFIG_FILE = "predictor.json"
WEIGHTS_FILE = "weights.pt"
#: predictor.json's record of the SHA-256 of the weights file saved with it (checkpoints written before it lack it).
WEIGHTS_DIGEST_KEY = "weights_sha256"
#: predictor.json's record of the prompts the predictor was trained on (:func:`prompt_hashes`), so that ``evaluate``
#: can say when prompts it scores are not held out (checkpoints written before it, or never trained, lack it).
TRAINING_PROMPTS_KEY = "training_prompts"
#: predictor.json's record of what its weights were trained with (:func:`trained_with`): the settings that decide a
#: prompt's inputs and what the outputs mean, as trained, and the SHA-256 of the inputs its backbone made of
#: :data:`~ltrsched.predictors.predictor.CANARY_PROMPTS` (the tokenizer's ids, the n-gram buckets). A settings field
#: edited afterwards (``ngrams``: the weights scored other n-grams' buckets) or another tokenizer at ``hf_path`` loaded
#: and scored every prompt by weights fitted to other inputs; checkpoints written before it lack it.
TRAINED_WITH_KEY = "trained_with"
#: predictor.json's record of how an HF backbone without a tokenizer folds Llama-3 token ids into its model's
#: vocabulary (one of :data:`TOKEN_FOLDS`, :func:`~ltrsched.predictors.backbones.fold_token_ids`), and so where a
#: decoder ranker is read, and which id an empty prompt reads as (with a tokenizer too). HF checkpoints written before it lack it: they fold as :data:`LEGACY_TOKEN_FOLD`, and load
#: and score as they did.
TOKEN_FOLD_KEY = "hf_token_fold"
#: The folds :data:`TOKEN_FOLD_KEY` names: "modulo" (id mod (vocab - 1): every (vocab - 1)-th id lands on the model's
#: pad id where that is below vocab - 1, e.g. OPT's 1; a decoder read where transformers pools, the rightmost id that
#: is not the pad id), "pad-free" (the same vocab - 1 slots, the pad id skipped; a decoder read at the last token
#: by the attention mask, :meth:`~ltrsched.predictors.backbones.HFBackbone._logits`), "pad-free-bos" (the same, and
#: without a tokenizer an empty prompt read as Llama-3's begin-of-text token folded, where the two older folds give it
#: id 0: a pad-0 model's pad id; :meth:`~ltrsched.predictors.backbones.HFBackbone.empty_ids`) and
#: "pad-free-bos-tokenizer" (the same, and with a tokenizer that gives an empty prompt no id, GPT-2's kind, that
#: tokenizer's begin-of-text id, never the pad id, where the older folds give it id 0). The fold is recorded with a
#: tokenizer too: it decides where a decoder is read, and an empty prompt's id.
TOKEN_FOLDS = ("modulo", "pad-free", "pad-free-bos", "pad-free-bos-tokenizer")
#: The fold of HF checkpoints without :data:`TOKEN_FOLD_KEY`.
LEGACY_TOKEN_FOLD = "modulo"
#: The fold a new HF backbone uses and saves.
TOKEN_FOLD = "pad-free-bos-tokenizer"
#: The settings :data:`TRAINED_WITH_KEY` may record (:meth:`PredictorConfig.scoring_settings`): those that turn a
#: prompt into the model's inputs or give its outputs their meaning (a class model's ``bucket``: its predicted lengths).
#: Not ``hf_path`` (a moved model is named anew), ``seed``, ``epochs``, ``lr`` and the like (training only).
#: The settings every ``predictor.json`` that any ltrsched version wrote names (the first version saved every field
#: of its config; fields added since, as ``ngrams`` or ``probe_layer``, may be absent and read as that version
#: scored). A file without one is damaged or edited: read with today's defaults (``{}``: a ranker of word and token
#: n-grams), the weights of another model scored every prompt as noise, with no error.
ALWAYS_SAVED = ("kind", "backbone", "loss", "label_bucket", "bucket", "num_classes", "dim", "hidden", "list_size",
                "epochs", "lr", "weight_decay", "seed", "hf_path", "max_prompt_tokens", "metrics")
SCORING_FIELDS = ("kind", "backbone", "ngrams", "dim", "hidden", "num_classes", "bucket", "max_prompt_tokens",
                  "probe_layer", "probe_precision")

#: Size limits, checked before any tensor is allocated: a damaged predictor.json (``dim: 2**36``) fails with
#: one line instead of an allocation of terabytes. The defaults are 2^20 buckets (linear) and 2^17 x 32.
MAX_DIM = 1 << 24  # n-gram hash buckets
MAX_HIDDEN = 4096  # hidden width
MAX_CLASSES = 1 << 16  # length classes
#: [tokens] The longest training length a class model takes: the longest context a profile or engine takes
#: (``--max-model-len``, 16.8M). Lengths of 2**53 (a file's largest) got 65,536 classes of 820 tokens, the last from
#: 53,738,700 tokens on, and a 25 MB weights file, for a few buckets' worth of data.
MAX_CLASS_LENGTH = 1 << 24
#: [tokens] Class models' classes cover lengths up to at least this (the paper's 8k context): longer lengths fall in
#: the open-ended last class unless the training data has them (:func:`class_count`).
CLASS_SPAN = 8192


def class_count(bucket: int, longest: int = 0) -> int:
    """Classes of ``bucket`` tokens for a class model whose longest training length is ``longest`` [tokens]: up to
    :data:`CLASS_SPAN`, or past ``longest`` (another model's 8k-32k outputs got one open class for every length
    above ``CLASS_SPAN``), at most :data:`MAX_CLASSES`."""
    return min(MAX_CLASSES, -(-max(CLASS_SPAN, longest + 1) // bucket))
MAX_EMBEDDING_PARAMS = 1 << 28  # dim x (hidden, or outputs when linear): 1 GiB of float32
MAX_PROMPT_TOKENS = 1 << 20
MAX_EPOCHS = 10_000
#: The learning rates ``train --lr`` takes (Adam's step per weight per step). Measured on the tiny n-gram models the
#: tests train (60 prompts, 5 epochs, 40 held-out): a ranker's held-out tau-b is the untrained order's (-0.50) at
#: 1e-10 to 1e-6, -0.49 at 1e-4, 0.43 at 1e-2, 0.52 at 0.1, 0.44 at 1; at 1e-12 no float32 weight moves. A length
#: classifier's is 0.39 at 1e-2, 0.07 at 0.1 and undefined at 1 and above (every prompt one class). Above 1 a ranker
#: only scales its scores with the rate (1e23: scores of 1e24); Adam's step overflows float32 at 1e38. The floor is
#: left low for fine-tuning a pretrained model (hf: 2e-5 by default).
MIN_LR, MAX_LR = 1e-8, 1.0


def lr_range_error(lr: float, name: str = "lr") -> str | None:
    """The one-line refusal of the learning rate ``lr`` (a positive finite number) outside [:data:`MIN_LR`,
    :data:`MAX_LR`], naming it ``name`` (``--lr`` on the command line); None where it is in range. The config and
    ``train --lr`` both check it here (a rate built in code was taken at any size)."""
    if MIN_LR <= lr <= MAX_LR:
        return None
    return (f"{name} must be in [{MIN_LR:g}, {MAX_LR:g}] (Adam's step per weight: below, training moves no prompt's "
            f"rank; above, it collapses or only scales the scores), got {lr:g}")
_INTS = ("label_bucket", "bucket", "num_classes", "dim", "hidden", "list_size", "epochs", "seed", "max_prompt_tokens")


@dataclass
class PredictorConfig:
    """What a checkpoint directory holds besides its weights.

    Attributes:
        kind: "rank" (a score, higher = shorter) or "class" (a length bucket).
        backbone: "ngram" (hashed token n-grams, the fast CPU default), "hf" (a Hugging Face
            sequence-classification model, ``hf_path``) or "probe" (a linear head on the frozen hidden state of
            the causal LM ``hf_path`` after ``probe_layer`` layers; None: half its layers).
        loss: "pairwise" (RankNet; the default: the best held-out tau on ShareGPT, BENCHMARKS.md) or
            "listmle" (the paper's) for rank models; "ce" for class models.
        label_bucket: rank labels are ``output_tokens // label_bucket`` (paper: 10; 1 = raw lengths).
        bucket: class bucket width [tokens] (820 = the 10-bucket baseline, 100, 10, 1).
        num_classes: class count (lengths above the last bucket fall into it).
        ngrams: the n-gram backbone's features, "tokens+words" (Llama-3 token and word uni/bigrams),
            "tokens+cjk-words" (the same, each CJK character a word: :mod:`~ltrsched.predictors.features`) or
            "tokens" (token uni/bigrams only; checkpoints written before this field existed).
        dim, hidden: n-gram hash buckets (0: 2^20 for a linear ranker, 2^17 with a hidden layer) and hidden width (0 = linear; class models need a hidden layer,
            so that 8,192 one-token buckets stay small).
        list_size: prompts per ListMLE list (paper: 32).
        epochs, lr, weight_decay, seed: optimisation.
        max_prompt_tokens: prompts are truncated to this many tokens for the HF and probe backbones (paper: 2048).
        probe_layer: the probe backbone's layer (1 = after the first decoder layer).
        probe_precision: the probe backbone's features computed in "float32" or "bf16" (bfloat16: ~2.2x faster on
            CPUs with native bfloat16 products, features ~1% off; checkpoints written before this field: float32).
    """

    kind: str = "rank"
    backbone: str = "ngram"
    loss: str = "pairwise"
    label_bucket: int = 1
    bucket: int = 820
    num_classes: int = 10
    ngrams: str = "tokens+words"
    dim: int = 0
    hidden: int = 0
    list_size: int = 32
    epochs: int = 5
    lr: float = 1e-2
    weight_decay: float = 0.0
    seed: int = 0
    hf_path: str | None = None
    max_prompt_tokens: int = 2048
    probe_layer: int | None = None
    probe_precision: str = "float32"
    metrics: list = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in (*_INTS, "lr", "weight_decay"):  # numpy numbers (np.int64(5), np.float32(0.01)) as Python's
            value = getattr(self, name)
            if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
                setattr(self, name, int(value))
            elif name in ("lr", "weight_decay") and isinstance(value, numbers.Real) and not isinstance(value, (int, float)):
                setattr(self, name, float(value))
        for name in _INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ArgumentTypeError(f"{name} must be an integer, got {value!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ArgumentTypeError(f"{name} must be a finite number, got {value!r}")
            if not is_finite_number(value):  # (NaN, infinity, an integer beyond float's range)
                got = f"an integer of {len(str(value))} digits" if isinstance(value, int) else repr(value)
                raise ArgumentValueError(f"{name} must be a finite number, got {got}")
        for name in ("kind", "backbone", "loss", "ngrams", "probe_precision"):
            if not isinstance(getattr(self, name), str):
                raise ArgumentTypeError(f"{name} must be text, got {getattr(self, name)!r}")
        if self.hf_path is not None and not isinstance(self.hf_path, str):
            raise ArgumentTypeError(f"hf_path must be text or null, got {self.hf_path!r}")
        if self.probe_layer is not None:
            wrong = f"probe_layer must be an integer in [1, 4096] or null, got {self.probe_layer!r}"
            if isinstance(self.probe_layer, bool) or not isinstance(self.probe_layer, int):
                raise ArgumentTypeError(wrong)
            if not 1 <= self.probe_layer <= 4096:
                raise ArgumentValueError(wrong)
        if not isinstance(self.metrics, list):
            raise ArgumentTypeError(f"metrics must be a list, got {type(self.metrics).__name__}")
        if self.kind not in KINDS:
            raise ArgumentValueError(f"unknown predictor kind {self.kind!r}; use rank or class")
        if self.backbone not in BACKBONES:
            raise ArgumentValueError(f"unknown backbone {self.backbone!r}; use {' or '.join(BACKBONES)}")
        if self.probe_layer is not None and self.backbone != "probe":  # (read by nothing else: silently ignored)
            raise ArgumentValueError(f"probe_layer {self.probe_layer} is set, but the backbone is {self.backbone!r}: "
                                     "only the probe backbone reads a layer; remove it, or use backbone 'probe'")
        if self.probe_precision not in PROBE_PRECISIONS:
            raise ArgumentValueError(f"unknown probe_precision {self.probe_precision!r}; use "
                                     f"{' or '.join(PROBE_PRECISIONS)}")
        if self.probe_precision != "float32" and self.backbone != "probe":
            raise ArgumentValueError(f"probe_precision {self.probe_precision} is set, but the backbone is "
                                     f"{self.backbone!r}: only the probe backbone reads it; remove it, or use "
                                     "backbone 'probe'")
        if self.loss not in LOSSES:
            raise ArgumentValueError(f"unknown loss {self.loss!r}; use one of {', '.join(LOSSES)}")
        if self.bucket < 1 or self.label_bucket < 1:
            raise ArgumentValueError("bucket widths must be >= 1 token")
        for name, low, high in (("num_classes", 1, MAX_CLASSES), ("dim", 0, MAX_DIM), ("hidden", 0, MAX_HIDDEN),
                                ("list_size", 2, 1 << 20), ("epochs", 1, MAX_EPOCHS), ("seed", 0, (1 << 63) - 1),
                                ("max_prompt_tokens", 1, MAX_PROMPT_TOKENS),
                                # (lengths are int64: a wider label bucket was an OverflowError traceback)
                                ("label_bucket", 1, (1 << 63) - 1), ("bucket", 1, (1 << 63) - 1)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ArgumentValueError(f"{name} must be in [{low}, {high}], got {value}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ArgumentValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        if lr_range_error(self.lr) is not None:
            raise ArgumentValueError(lr_range_error(self.lr))
        if self.kind == "class" and self.num_classes < 2:
            raise ArgumentValueError(f"a length classifier needs at least 2 classes, got {self.num_classes} "
                                     f"(a class bucket of {self.bucket} tokens: use --bucket below 8192)")
        from ltrsched.predictors.features import NGRAM_SETS

        if self.ngrams not in NGRAM_SETS:
            raise ArgumentValueError(f"unknown n-gram set {self.ngrams!r}; use one of {', '.join(NGRAM_SETS)}")
        if self.kind == "class" and self.hidden == 0:
            self.hidden = 32
        if self.dim <= 0:  # linear rankers: 2^20 buckets (fewer word collisions); hidden layers: 2^17 x hidden
            self.dim = 1 << 20 if self.hidden == 0 else 1 << 17
        width = self.hidden or (1 if self.kind == "rank" else self.num_classes)
        if self.dim * width > MAX_EMBEDDING_PARAMS:
            raise ArgumentValueError(f"dim x width = {self.dim} x {width} n-gram weights exceed "
                                     f"{MAX_EMBEDDING_PARAMS:,} (1 GiB); lower dim or hidden")

    def scoring_settings(self) -> dict:
        """The :data:`SCORING_FIELDS` this predictor's scores depend on, by name: its backbone's (the n-gram set and
        sizes; the prompt cut of a model's; the probe's layer and precision) and a class model's buckets."""
        names = ["kind", "backbone"]
        names += ["ngrams", "dim", "hidden"] if self.backbone == "ngram" else ["max_prompt_tokens"]
        names += ["probe_layer", "probe_precision"] if self.backbone == "probe" else []
        names += ["num_classes", "bucket"] if self.kind == "class" else []
        return {name: getattr(self, name) for name in names}

    def save(self, directory: Path, weights_sha256: str | None = None, training_prompts=None,
             inputs_sha256: str | None = None, token_fold: str | None = None) -> None:
        """Write ``predictor.json``; ``weights_sha256`` (hex) names the weights file it was saved with,
        ``training_prompts`` (:func:`prompt_hashes`) the prompts it was trained on, ``inputs_sha256`` (hex) the
        inputs its backbone made of the canary prompts (:data:`TRAINED_WITH_KEY`; None: a backbone without them),
        ``token_fold`` an HF backbone's fold of token ids (:data:`TOKEN_FOLD_KEY`; None: another backbone).
        :class:`~ltrsched.errors.WriteFailedError` (an OSError) where the file cannot be written."""
        data = {**asdict(self), "hf_path": model_reference(self.hf_path)}
        if weights_sha256 is not None:  # (saved with its weights: what they were trained with too)
            data[WEIGHTS_DIGEST_KEY] = weights_sha256
            data[TRAINED_WITH_KEY] = {"settings": self.scoring_settings(),
                                      "inputs_sha256": inputs_sha256}
        if token_fold is not None:
            data[TOKEN_FOLD_KEY] = token_fold
        if training_prompts is not None:
            data[TRAINING_PROMPTS_KEY] = encode_prompt_hashes(training_prompts)
        atomic.write_bytes(Path(directory) / CONFIG_FILE, strict_json.dumps(data, indent=2).encode("utf-8"))

    @classmethod
    def load(cls, directory: Path) -> "PredictorConfig":
        return cls.load_record(directory)[0]

    @classmethod
    def load_record(cls, directory: Path) -> tuple["PredictorConfig", dict]:
        """The config in ``directory`` and its ``predictor.json`` as read (a JSON object), read once: what
        :func:`saved_weights_digest`, :func:`trained_with` and :func:`saved_training_prompts` take as ``record``
        (each read and parsed the file again: 4 reads a load). A damaged or missing ``predictor.json`` is a
        :class:`~ltrsched.errors.ArgumentValueError` (a ValueError), a missing ``directory`` a
        :class:`~ltrsched.errors.PathNotFoundError` (a FileNotFoundError): one line on the command line."""
        path = Path(directory) / CONFIG_FILE
        try:
            check_not_special(path, "predictor config")  # (a pipe, /dev/zero: "no predictor.json", of one that is there)
        except UserError as exc:
            raise ArgumentValueError(str(exc)) from None
        if not path.is_file():
            raise not_a_checkpoint_error(Path(directory))
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict):
                raise TypeError(f"expected a JSON object, got {type(record).__name__}")
            return cls._from_record(dict(record)), record
        except UserError as exc:  # (first: a setting's ArgumentValueError is a ValueError too, ArgumentTypeError a
            # TypeError; the branches below would cut its line at ";" or call it no valid config)
            # (a ValueError however the setting was wrong: the file's data is damaged, not the caller's argument)
            raise ArgumentValueError(f"{path}: {exc}") from None
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
            raise ArgumentValueError(f"{path}: not a valid predictor config ({exc})") from None
        except RecursionError:  # e.g. 100,000 "[": json recurses once per level
            raise ArgumentValueError(f"{path}: not a valid predictor config (JSON nested too deeply)") from None
        except ValueError as exc:  # an integer of over 4,300 digits (Python's limit on reading one from text)
            raise ArgumentValueError(f"{path}: not a valid predictor config ({str(exc).split(';')[0]})") from None

    @classmethod
    def _from_record(cls, data: dict) -> "PredictorConfig":
        """The config of ``data`` (a copy of ``predictor.json``'s object: its other records are popped)."""
        data.setdefault("ngrams", "tokens")  # written before word n-grams existed
        digest = data.pop(WEIGHTS_DIGEST_KEY, None)  # read by saved_weights_digest
        if digest is not None and not (isinstance(digest, str) and len(digest) == 64
                                       and all(c in "0123456789abcdef" for c in digest)):
            raise UserError(f"{WEIGHTS_DIGEST_KEY} must be the weights file's SHA-256 as 64 hex digits, got "
                            f"{str(digest)[:80]!r} (a damaged or hand-edited file; train the predictor again)")
        prompts = data.pop(TRAINING_PROMPTS_KEY, None)  # read by saved_training_prompts
        if prompts is not None and decode_prompt_hashes(prompts) is None:  # (it read as "no record": no warning that
            # the prompts evaluated are training prompts, of a file of another version or a damaged one)
            raise UserError(f"{TRAINING_PROMPTS_KEY} must be {{\"num_prompts\": N, \"blake2b_64\": N 8-byte hashes in "
                            f"base64}}, got {shown(prompts, 80)} (a checkpoint written by another ltrsched version, "
                            "or a damaged or hand-edited file; train the predictor again with this one)")
        fold = data.pop(TOKEN_FOLD_KEY, None)  # read by saved_token_fold
        if fold is not None and fold not in TOKEN_FOLDS:
            raise UserError(f"{TOKEN_FOLD_KEY} must be one of {', '.join(TOKEN_FOLDS)}, got {shown(fold, 80)} (a "
                            "checkpoint written by another ltrsched version, or edited by hand; train the predictor "
                            "again with this one)")
        _check_trained_with(data.pop(TRAINED_WITH_KEY, None))  # compared by check_trained_with
        unknown = [str(k) for k in data if k not in {f.name for f in fields(cls)}]
        if unknown:  # (it said "PredictorConfig.__init__() got an unexpected keyword argument", no fix)
            raise UserError(f"unknown setting {shown(unknown[0][:80])}"
                            + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else "")
                            + ": a checkpoint written by another ltrsched version, or edited by hand; train the "
                              "predictor again with this one")
        missing = [name for name in ALWAYS_SAVED if name not in data]
        if missing:
            raise UserError(f"no setting {shown(missing[0])}" + (f" and {len(missing) - 1} more" if len(missing) > 1
                                                                else "")
                            + ": every checkpoint ltrsched writes names it (a damaged or hand-edited file); train the "
                              "predictor again")
        lr = data.get("lr")
        if (isinstance(lr, (int, float)) and not isinstance(lr, bool) and is_finite_number(lr) and lr > 0
                and lr_range_error(lr) is not None):
            # a rate saved from code before the range bounded it: only training reads it, so the checkpoint still
            # scores (it failed to load); the config keeps the rate it was trained with
            config = cls(**{**data, "lr": min(max(lr, MIN_LR), MAX_LR)})
            config.lr = lr
            return config
        return cls(**data)


def not_a_checkpoint_error(directory: Path) -> UserError:
    """The error for ``directory``, which holds no ``predictor.json`` (:func:`_not_a_checkpoint`'s line): a
    :class:`~ltrsched.errors.PathNotFoundError` (a FileNotFoundError) where nothing is at that path, else an
    :class:`~ltrsched.errors.ArgumentValueError` (a ValueError: a file, or a directory that is no checkpoint)."""
    why = _not_a_checkpoint(directory)
    return PathNotFoundError(why) if not directory.exists() else ArgumentValueError(why)


def _not_a_checkpoint(directory: Path) -> str:
    """Why ``directory``, which holds no ``predictor.json``, is not a predictor checkpoint, in words: missing, a
    file (one of a checkpoint's own: its directory is meant), or a directory without one."""
    from ltrsched.predictors.ensemble import ENSEMBLE_FILE

    if directory.is_file() and directory.name in (CONFIG_FILE, WEIGHTS_FILE, ENSEMBLE_FILE):
        return (f"{directory} is not a predictor checkpoint but a file of one: give its directory, "
                f"{directory.parent}")
    if directory.exists() and not directory.is_dir():
        return (f"{directory} is not a predictor checkpoint: it is a file, and a checkpoint is the directory "
                f"`ltrsched train --out DIR` writes ({CONFIG_FILE} and {WEIGHTS_FILE})")
    if not directory.exists():
        return f"{directory} is not a predictor checkpoint: no such directory; train one with `ltrsched train --out DIR`"
    if (directory / CONFIG_FILE).exists():
        return f"{directory / CONFIG_FILE} is not a file (a directory?); train the predictor again"
    return f"{directory} is not a predictor checkpoint (no {CONFIG_FILE}); train one with `ltrsched train`"


def checkpoint_entries(directory: Path, names: tuple[str, ...] = ()) -> list[str]:
    """The names of the checkpoint files in ``directory`` (a predictor's :data:`CONFIG_FILE` and :data:`WEIGHTS_FILE`,
    an ensemble's ``ensemble.json``) and of ``names`` (an ensemble's member directories) that are there now: what a
    save into ``directory`` would replace."""
    from ltrsched.predictors.ensemble import ENSEMBLE_FILE

    directory = Path(directory)
    return [name for name in (CONFIG_FILE, WEIGHTS_FILE, ENSEMBLE_FILE, *names) if os.path.lexists(directory / name)]


def retire_checkpoint(directory: Path) -> None:
    """Remove what makes ``directory`` a checkpoint: the member directories an ensemble checkpoint there wrote
    (:func:`~ltrsched.predictors.ensemble.saved_member_dirs`: ``member0``, ``member1``, ... as its ``ensemble.json``
    lists them; never another file or directory), then its ``ensemble.json`` and :data:`CONFIG_FILE` (what a load
    reads first), then :data:`WEIGHTS_FILE`, each step made durable. The first step of a save that replaces a
    checkpoint, whose own :data:`CONFIG_FILE` (or ``ensemble.json``) is written last: a save that fails between
    leaves a directory that loads as no checkpoint ("no predictor.json"), never the old config with the new weights (a
    checkpoint written before :data:`WEIGHTS_DIGEST_KEY` loaded so, as a model it is not) or an old ensemble over new
    members. The members go before ``ensemble.json``, which names them: a save stopped among them leaves an ensemble
    that fails to load (a member gone) or loads whole as it was, and the next save with ``overwrite=True`` still finds
    the rest (removed after ``ensemble.json``, they would be left behind, known to nothing as the ensemble's).
    :class:`~ltrsched.errors.WriteFailedError` (an OSError) naming what cannot be removed."""
    from ltrsched.predictors.ensemble import ENSEMBLE_FILE, saved_member_dirs

    directory = Path(directory)
    members = saved_member_dirs(directory)
    for member in members:
        try:
            shutil.rmtree(member)
        except OSError as exc:  # (no permission)
            raise WriteFailedError(f"cannot replace the checkpoint in {directory}: cannot remove {member} "
                                   f"({exc.strerror or exc})", exc.errno) from None
    if members:
        atomic.fsync_dir(directory)
    for name in (ENSEMBLE_FILE, CONFIG_FILE, WEIGHTS_FILE):
        path = directory / name
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # (no permission; a directory of that name)
            raise WriteFailedError(f"cannot replace the checkpoint in {directory}: cannot remove {path} "
                                   f"({exc.strerror or exc})", exc.errno) from None
    atomic.fsync_dir(directory)


def _check_trained_with(record) -> None:
    """Raise :class:`UserError` unless ``record`` (predictor.json's :data:`TRAINED_WITH_KEY`, None if absent) has
    the form :meth:`PredictorConfig.save` writes."""
    if record is None:
        return
    settings = record.get("settings") if isinstance(record, dict) else None
    digest = record.get("inputs_sha256") if isinstance(record, dict) else None
    if not (isinstance(settings, dict) and set(settings) <= set(SCORING_FIELDS)
            and (digest is None or (isinstance(digest, str) and len(digest) == 64
                                    and all(c in "0123456789abcdef" for c in digest)))):
        raise UserError(f"{TRAINED_WITH_KEY} must be {{\"settings\": {{...}}, \"inputs_sha256\": 64 hex digits or null}}, "
                        f"got {shown(record, 80)} (a damaged or hand-edited file; train the predictor again)")


def _saved(directory: Path, record: dict | None) -> dict:
    """``predictor.json`` in ``directory`` as read: ``record`` (:meth:`PredictorConfig.load_record`'s), else read."""
    return record if record is not None else json.loads((Path(directory) / CONFIG_FILE).read_text())


def trained_with(directory: Path, record: dict | None = None) -> tuple[dict, str | None] | None:
    """The settings and inputs digest ``predictor.json`` in ``directory`` (``record``: the file as read, None: read
    it) records its weights were trained with (:data:`TRAINED_WITH_KEY`), or None (older checkpoints; read after
    :meth:`PredictorConfig.load` accepted the file)."""
    record = _saved(directory, record).get(TRAINED_WITH_KEY)
    if not isinstance(record, dict):
        return None
    return record["settings"], record.get("inputs_sha256")


def check_trained_with(config: PredictorConfig, directory: Path, inputs_sha256=None, record: dict | None = None) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` if ``config`` (read from ``directory``) is not what its
    weights were trained with (:func:`trained_with`): a scoring setting edited since, named with its trained value; or,
    where the settings are those, if ``inputs_sha256()`` (the inputs the backbone makes of the canary prompts now,
    None: not known) differs from the recorded one: the tokenizer changed. ``record``: ``predictor.json`` as read
    (None: read it)."""
    record = trained_with(directory, record)
    if record is None:
        return
    settings, digest = record
    changed = [name for name, value in settings.items() if getattr(config, name) != value]
    if changed:
        name = changed[0]
        raise ArgumentValueError(f"{directory}: {CONFIG_FILE} says {name} {shown(getattr(config, name))}, but its "
                                 f"weights were trained with {name} {shown(settings[name])}"
                                 + (f" ({len(changed) - 1} more setting(s) changed too)" if len(changed) > 1 else "")
                                 + ": its scores would not be the trained model's; set it back to "
                                   f"{shown(settings[name])}, or train the predictor again")
    now = inputs_sha256() if digest is not None else None
    if now is not None and now != digest:
        where = ("the Llama-3 tokenizer that makes its n-grams" if config.backbone == "ngram"
                 else f"the tokenizer of its model {config.hf_path}")
        raise ArgumentValueError(f"{directory}: {where} turns prompts into other token ids than those its weights were "
                                 "trained on (another tokenizer or version): its scores would be noise; train the "
                                 "predictor again here")


def model_reference(hf_path: str | None) -> str | None:
    """What a checkpoint records of its model (``--hf-model``): a packaged model's name as it is, a path made
    absolute (a relative one was read against the directory of whichever command loaded the checkpoint later:
    ``predict`` run elsewhere found no model, or another one)."""
    from ltrsched.packaged_models import PACKAGED

    if hf_path is None or hf_path in PACKAGED:
        return hf_path
    return os.path.abspath(os.path.expanduser(hf_path))


def saved_weights_digest(directory: Path, record: dict | None = None) -> str | None:
    """The weights digest ``predictor.json`` in ``directory`` (``record``: the file as read, None: read it) records,
    or None (older checkpoints; read after :meth:`PredictorConfig.load` accepted the file)."""
    digest = _saved(directory, record).get(WEIGHTS_DIGEST_KEY)
    return digest if isinstance(digest, str) else None


def saved_token_fold(directory: Path, record: dict | None = None) -> str:
    """How the HF backbone of the checkpoint in ``directory`` (``record``: its ``predictor.json`` as read, None: read
    it) folds token ids (:data:`TOKEN_FOLD_KEY`): :data:`LEGACY_TOKEN_FOLD` where it does not say (written before
    the record; read after :meth:`PredictorConfig.load` accepted the file)."""
    fold = _saved(directory, record).get(TOKEN_FOLD_KEY)
    return fold if fold in TOKEN_FOLDS else LEGACY_TOKEN_FOLD


def hash_prompts(prompts) -> "np.ndarray":
    """The 64-bit BLAKE2b hash of each prompt's text (UTF-8), in order (uint64; two prompts share one with a
    probability of about 2**-64 a pair)."""
    import hashlib

    import numpy as np

    digests = b"".join(hashlib.blake2b(p.encode("utf-8", "surrogatepass"), digest_size=8).digest() for p in prompts)
    return np.frombuffer(digests, dtype="<u8")


def prompt_hashes(prompts) -> "np.ndarray":
    """The distinct :func:`hash_prompts` of ``prompts``, sorted: what a checkpoint keeps of its training prompts,
    8 bytes each."""
    import numpy as np

    return np.unique(hash_prompts(prompts))


def encode_prompt_hashes(hashes) -> dict:
    """``predictor.json``'s form of :func:`prompt_hashes`: their count and their little-endian bytes in base64."""
    import base64

    import numpy as np

    data = np.asarray(hashes, dtype="<u8")
    return {"num_prompts": int(data.size), "blake2b_64": base64.b64encode(data.tobytes()).decode("ascii")}


def saved_training_prompts(directory: Path, record: dict | None = None) -> "np.ndarray | None":
    """The training prompts' hashes ``predictor.json`` in ``directory`` (``record``: the file as read, None: read it)
    records (:func:`prompt_hashes`), or None where it records none (older checkpoints, or never trained; read after
    :meth:`PredictorConfig.load` accepted the file, which refuses a damaged record)."""
    record = _saved(directory, record).get(TRAINING_PROMPTS_KEY)
    return None if record is None else decode_prompt_hashes(record)


def decode_prompt_hashes(record) -> "np.ndarray | None":
    """The hashes :func:`encode_prompt_hashes` wrote as ``record``, sorted and distinct; None unless ``record`` has
    its form: a ``blake2b_64`` of base64 text holding whole 8-byte hashes, as many as its ``num_prompts`` says."""
    import base64
    import binascii

    import numpy as np

    text = record.get("blake2b_64") if isinstance(record, dict) else None
    count = record.get("num_prompts") if isinstance(record, dict) else None
    if not isinstance(text, str) or isinstance(count, bool) or not isinstance(count, int):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) % 8 or len(raw) // 8 != count:
        return None
    return np.unique(np.frombuffer(raw, dtype="<u8"))
