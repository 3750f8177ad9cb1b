"""A trained length predictor: train, save/load a checkpoint directory, score prompts."""

from __future__ import annotations

import hashlib
import io
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.stats import kendalltau

from ltrsched import atomic
from ltrsched.arguments import check_argument
from ltrsched.strict_json import defined
from ltrsched.errors import (ArgumentTypeError, ArgumentValueError, MissingDependencyError, PathNotFoundError,
                             UserError)
from ltrsched.inputs import check_not_special
from ltrsched.predictors.arguments import (check_batch_size, check_callback, check_directory, check_lengths,
                                          check_out_directory, check_overwrite, check_prompts, check_scored)
from ltrsched.predictors.backbones import make_backbone
from ltrsched.predictors.config import (CONFIG_FILE, KINDS, MAX_CLASS_LENGTH, MAX_CLASSES, WEIGHTS_FILE,
                                       PredictorConfig, check_trained_with, hash_prompts, prompt_hashes,
                                       retire_checkpoint, saved_token_fold, saved_training_prompts,
                                       saved_weights_digest)
from ltrsched.predictors.losses import LOSSES


def _advance(bar, done: int) -> None:
    """Move ``bar`` on to ``done`` items, if it is not there yet."""
    if done > bar.n:
        bar.update(done - bar.n)


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "predict") from None
    return torch


#: Batches of prompts whose features are prepared at once when scoring. ``predict`` of an n-gram ranker on 200,000
#: ShareGPT prompts (75M characters) peaked at 5.7 GB resident with all of them prepared together, 1.2 GB with 16
#: batches of 1,024 (same scores, bit for bit; ``/usr/bin/time -v``).
PREPARE_BATCHES = 16


def kendall_tau(scores: np.ndarray, lengths: np.ndarray) -> float | None:
    """Kendall's tau-b between predicted shortness (score) and true shortness (-length); None where it is
    undefined (constant scores or lengths, fewer than 2 prompts), as the JSON files hold it (``null``)."""
    return _tau_b(scores, -np.asarray(lengths, dtype=np.float64))


def _tau_b(x, y) -> float | None:
    """scipy's Kendall tau-b of ``x`` and ``y``, None where undefined; below 2 values None without calling scipy,
    which printed its ``SmallSampleWarning`` to the user's stderr."""
    if min(len(x), len(y)) < 2:
        return None
    return defined(float(kendalltau(x, y).statistic))


#: Prompts whose inputs (:meth:`Predictor.inputs_digest`) identify how a checkpoint turns text into model inputs:
#: English words and punctuation, Chinese, Japanese, emoji, right-to-left Arabic and Hebrew. (Where prompts are cut,
#: ``max_prompt_tokens``, is compared as a setting.)
CANARY_PROMPTS = ("Write a short story about a city, in 3 paragraphs!", "请用中文回答：秋天的诗。日本語で説明してください",
                  "🙂🚀 emoji ✓ “quotes”", "مرحبا كيف حالك؟ שלום עולם")


#: Warn where at least this share of the prompts scored have no n-gram in common with the training prompts.
UNSEEN_WARN_SHARE = 0.05


def unseen_warning(unseen: int | None, total: int, what: str) -> str | None:
    """A one-line warning where ``unseen`` of ``total`` prompts (``what``: "held-out prompts") share no n-gram with
    an n-gram ranker's training prompts (another language or script, code): it scores them by their length and by
    weights training never moved, so their order is mostly noise; None below :data:`UNSEEN_WARN_SHARE`."""
    if not unseen or not total or unseen < UNSEEN_WARN_SHARE * total:
        return None
    return (f"warning: {unseen} of {total} {what} share no word or token n-gram with the training prompts (another "
            "language, script or kind of text?): the ranker scores them by their length and its untrained "
            "weights' noise")


def cut_note(predictor, counts: list[tuple[int | None, int, str]]) -> str | None:
    """A one-line note where the HF or probe backbone of ``predictor`` reads only part of some prompts: ``counts``
    holds (prompts longer than it reads, prompts, what they are: "held-out prompts"), as
    :meth:`Predictor.prompts_cut` counts them; None where none is cut (or the backbone reads every token). The
    prompt's end beyond the cut changes no score: two prompts that differ only there score alike."""
    cut = [(n, total, what) for n, total, what in counts if n]
    if not cut:
        return None
    backbone, config = predictor.backbone, predictor.config
    limit = backbone.prompt_cut
    why = (f"--max-prompt-tokens {limit}" if limit == config.max_prompt_tokens
           else f"the {limit} positions of its model {config.hf_path}")
    told = " and ".join(f"{n} of {total} {what}" for n, total, what in cut)
    return (f"note: {told} are longer than the {limit} tokens the predictor reads ({why}): it scores "
            f"{backbone.cut_words()}")


#: Warn where a learning rate below the backbone's default leaves the held-out scores in the untrained model's order
#: to at least this Kendall tau-b: measured on ShareGPT (the default n-gram ranker, 5 epochs), 0.06 at the default
#: --lr 1e-2, 0.31 at 1e-4, 0.82 at 1e-5 (held-out tau 0.088), 0.981 at 1e-6 (0.020) and 0.998 at 1e-7 (0.013;
#: untrained: 0.012).
UNTRAINED_AGREEMENT_WARN = 0.9


def untrained_warning(agreement: float | None, lr: float, default_lr: float) -> str | None:
    """A one-line warning where training at learning rate ``lr``, below the backbone's ``default_lr``, left the
    held-out prompts nearly in the order its random initial weights gave them (``agreement``,
    :attr:`Predictor.untrained_agreement`); None otherwise. At the default rate a high agreement says too few steps
    (a probe's 2 epochs on 60 prompts: 0.94), not a rate to raise: no warning there."""
    if agreement is None or agreement < UNTRAINED_AGREEMENT_WARN or lr >= default_lr:
        return None
    return (f"warning: training at learning rate {lr:g} barely changed the untrained model's order of the held-out "
            f"prompts (Kendall tau {agreement:.3f} between their scores before and after training): the held-out tau "
            f"is mostly its random initial weights'; raise --lr (this backbone's default: {default_lr:g})")


def check_labelled(prompts: list[str], lengths: np.ndarray, what: str = "training") -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` (a ValueError; one line, exit 2 on the command line)
    unless there are >= 2 prompts, each with one positive output length [tokens], not all equal, and not all the same
    text (training needs ordered pairs; Kendall tau needs two different lengths and two different scores)."""
    if len(prompts) < 2:
        raise ArgumentValueError(f"need at least 2 {what} prompts, got {len(prompts)}: Kendall tau and the rank loss "
                                 "compare pairs of prompts; give more")
    lengths = np.asarray(lengths)
    if lengths.shape != (len(prompts),) or (lengths < 1).any():
        raise ArgumentValueError(f"{what} labels must be one positive output length per prompt")
    if (lengths == lengths[0]).all():
        raise ArgumentValueError(f"all {len(prompts)} {what} prompts have the same output length ({lengths[0]}): "
                                 "nothing to rank, Kendall tau is undefined; give prompts whose lengths differ "
                                 "(lengths that are all a model's output cap: label them again with a larger "
                                 "--max-tokens)")
    if all(p == prompts[0] for p in prompts):
        raise ArgumentValueError(f"all {len(prompts)} {what} prompts are the same text: a predictor scores them "
                                 "alike, nothing to rank, Kendall tau is undefined")


#: The most prompts a list of the pairwise loss may hold: it compares every pair of a list, ~17 bytes of tensors a
#: pair in its forward and backward pass (measured, ``/usr/bin/time``: 1.15 GB above the process for a list of 8,192,
#: 13.6 s on one loaded core). ``--list-size 100000`` on 100,000 labels was accepted: ~160 GiB a list at that rate.
MAX_PAIRWISE_LIST = 8192


def check_list_size(config: PredictorConfig, num_prompts: int) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` if a list of the pairwise loss (``list_size``, at most
    ``num_prompts``) is longer than :data:`MAX_PAIRWISE_LIST`: its memory grows with the square of the list."""
    n = min(config.list_size, num_prompts)
    if config.kind == "rank" and config.loss == "pairwise" and n > MAX_PAIRWISE_LIST:
        raise ArgumentValueError(f"--list-size {config.list_size}: the pairwise loss compares every pair of a list's "
                                 f"prompts, and lists of {n:,} prompts need ~{17 * n * n / 2**30:,.0f} GiB; use "
                                 f"--list-size {MAX_PAIRWISE_LIST} or less, or --loss listmle (its memory grows with "
                                 "the list, not its square)")


def bucket_labels(config: PredictorConfig, lengths: np.ndarray) -> np.ndarray:
    """Training labels of output ``lengths`` [tokens]: the class (length bucket, the last one open-ended) of a
    class model, else the length in ``label_bucket``-token steps."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if config.kind == "class":
        return length_classes(lengths, config.bucket, config.num_classes)
    return lengths // max(1, config.label_bucket)


def length_classes(lengths: np.ndarray, bucket: int, num_classes: int) -> np.ndarray:
    """A class model's class of each output length [tokens]: its ``bucket``-token bucket (class 0 holds lengths
    0..bucket-1), the last of ``num_classes`` open-ended."""
    return np.minimum(np.asarray(lengths, dtype=np.int64) // bucket, num_classes - 1)


def bucket_accuracy(predicted_lengths: np.ndarray, lengths: np.ndarray, bucket: int, num_classes: int) -> float:
    """Share of requests whose predicted length [tokens] (:meth:`Predictor.predicted_lengths`: a bucket's midpoint)
    lies in the class of their true output length [tokens] (:func:`length_classes`); NaN for no request."""
    predicted = np.floor(np.asarray(predicted_lengths, dtype=np.float64) / bucket)
    return float((predicted == length_classes(lengths, bucket, num_classes)).mean()) if len(predicted) else float("nan")


def majority_accuracy(config: PredictorConfig, lengths: np.ndarray) -> tuple[int, float]:
    """The most common class of output ``lengths`` [tokens] under a class model's ``config`` and its share of them:
    the accuracy of always predicting it, the baseline a class model's accuracy is to beat."""
    classes, counts = np.unique(bucket_labels(config, lengths), return_counts=True)
    top = int(np.argmax(counts))
    return int(classes[top]), float(counts[top] / counts.sum())


def check_buckets(config: PredictorConfig, lengths: np.ndarray) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` if the training labels (``lengths`` [tokens] bucketed by
    the config) are all one value: a model would learn nothing, e.g. a served model's lengths all below the 820-token
    class bucket; or if a class model's lengths reach past :data:`~ltrsched.predictors.config.MAX_CLASS_LENGTH`."""
    lengths = np.asarray(lengths, dtype=np.int64)
    longer = lengths > MAX_CLASS_LENGTH if config.kind == "class" else None
    if longer is not None and longer.any():
        raise ArgumentValueError(f"{int(longer.sum()):,} of {len(lengths):,} training output lengths are above "
                                 f"{MAX_CLASS_LENGTH:,} tokens, the longest context a profile or engine takes (the "
                                 f"longest: {int(lengths.max()):,}): no length classifier has classes for them; fix or "
                                 "leave out those prompts, or use --kind rank")
    labels = bucket_labels(config, lengths)
    option, width = ("--bucket", config.bucket) if config.kind == "class" else ("--label-bucket", config.label_bucket)
    if len(labels) and (labels == labels[0]).all():
        last = (config.num_classes - 1) * config.bucket  # [tokens]: where the open-ended last class starts
        if config.kind == "class" and lengths.min() >= last:  # (a smaller --bucket does not help: the classes end too)
            fit = fitting_bucket(lengths, config)
            wider = (-(-(int(lengths.max()) + 1) // fit) <= MAX_CLASSES
                     and lengths.min() // fit != lengths.max() // fit)  # (classes up to the longest tell them apart)
            raise ArgumentValueError(f"every training length ({lengths.min()}-{lengths.max()} tokens) falls in the "
                                     f"last class, which holds every length from {last} tokens on "
                                     f"({config.num_classes} classes of {config.bucket} tokens): a length classifier "
                                     "cannot tell these apart; use --kind rank"
                                     + (f", or --bucket {fit} (about 10 classes over these lengths)" if wider else ""))
        raise ArgumentValueError(f"every training length ({lengths.min()}-{lengths.max()} tokens) falls in one bucket "
                                 f"of {width} tokens ({option} {width}): nothing to learn; use {option} "
                                 f"{fitting_bucket(lengths, config)}"
                                 + (" or less (about 10 classes over these lengths"
                                    + ("; the default 820 is a tenth of ChatGPT's 8,192-token span" if width == 820
                                       else "") + ")" if config.kind == "class"
                                    else " (the labels are then the lengths)"))


def fitting_bucket(lengths: np.ndarray, config: PredictorConfig) -> int:
    """A bucket width [tokens] that tells the training ``lengths`` [tokens] apart, from the data: a class model's a
    tenth of their range (at least 1: about 10 classes between the shortest and the longest, the paper's 10-bucket
    baseline over these lengths rather than over ChatGPT's 8,192 tokens), a ranker's 1 (its labels are the lengths).
    Two lengths ``d`` >= 1 apart fall in different buckets of any width <= ``d``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if config.kind != "class":
        return 1
    return max(1, int(lengths.max() - lengths.min()) // 10)


def _check_converging(model, total_loss: float, epoch: int, lr: float) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` (of the learning rate) if an epoch's summed loss or any
    weight is no longer finite: the training diverged, and a checkpoint of it would score every prompt NaN (nothing is
    saved)."""
    torch = _torch()
    finite_weights = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    if np.isfinite(total_loss) and finite_weights:
        return
    what = "the loss" if not np.isfinite(total_loss) else "the weights"
    raise ArgumentValueError(f"training diverged in epoch {epoch}: {what} went to NaN or infinity at learning rate "
                             f"{lr:g}; lower it with --lr (nothing was saved)")


def _small_parameters(model) -> dict:
    """Copies of the model's small trainable tensors (heads, biases: up to 65,536 values each), to tell whether
    training moved any."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad and p.numel() <= 65536}


def _check_moved(model, initial: dict, lr: float, epoch: int = 1) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` (of the learning rate) if an epoch of training left every
    tensor of ``initial`` (:func:`_small_parameters`) as it was: a learning rate too small for float32 weights
    (--lr 1e-300) trained nothing, and the untrained model's held-out tau (its random initial weights') was reported
    and saved as the ranker's."""
    torch = _torch()
    now = dict(model.named_parameters())
    if initial and all(torch.equal(now[name].detach(), before) for name, before in initial.items()):
        when = "its first epoch" if epoch == 1 else f"epoch {epoch} (its first with a list of two different lengths)"
        raise ArgumentValueError(f"training moved no weight in {when} at learning rate {lr:g}: too small a step for "
                                 "float32 weights; raise --lr (nothing was saved)")


def _no_pairs(labels: np.ndarray, config: PredictorConfig) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError`: no list of the pairwise loss held two different ``labels``
    in any epoch, so training learned nothing (e.g. 2 of 3 lengths at a cap, the third in a list of its own, which is
    skipped; it said "raise --lr", at any rate)."""
    values, counts = np.unique(labels, return_counts=True)
    top = int(np.argmax(counts))
    raise ArgumentValueError(f"no list of --list-size {config.list_size} training prompts held two different lengths "
                             f"in {config.epochs} epoch(s): the pairwise loss learned nothing ({counts[top]} of "
                             f"{len(labels)} lengths tie at {int(values[top]) * config.label_bucket} tokens); raise "
                             "--list-size or --epochs (nothing was saved)")


def _state_mismatch(model, state) -> str | None:
    """The first way the tensors of ``state`` (a loaded weights file) differ from ``model``'s, in words (torch's own
    first line said only "Error(s) in loading state_dict for NgramModel:"); None if ``state`` is no dict of tensors."""
    torch = _torch()
    if not isinstance(state, dict):
        return None
    odd = next((k for k, t in state.items() if not isinstance(t, torch.Tensor)), None)
    if odd is not None:
        return f"{str(odd)[:80]} is {type(state[odd]).__name__}, not a tensor"
    own = model.state_dict()
    missing, extra = [k for k in own if k not in state], [k for k in state if k not in own]
    if missing:
        return f"no tensor {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
    if extra:
        return f"an unknown tensor {str(extra[0])[:80]}" + (f" and {len(extra) - 1} more" if len(extra) > 1 else "")
    for name, tensor in own.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            shape = "x".join(map(str, state[name].shape)) or "a scalar"
            return f"{name} is {shape} in the file, {'x'.join(map(str, tensor.shape))} for these settings"
    return None


def count_known(known: np.ndarray | None, prompts: list[str]) -> int | None:
    """How many of ``prompts`` have their hash in ``known`` (:func:`prompt_hashes`); None if ``known`` is None."""
    if known is None:
        return None
    return int(np.isin(hash_prompts(prompts), known).sum())


def _check_finite(bad: np.ndarray, prompts: list[str], within: tuple[int, int] | None = None) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` (a ValueError: no valid score could be computed, as
    ``math.log(0)``'s; one line on the command line) if a model output for ``prompts`` is NaN or infinite (``bad``: per
    prompt, whether one of its outputs is): such a score was written by ``predict`` without a word (and ordered anyhow
    by a scheduler), and ``evaluate`` called NaN scores "the same score" for every prompt. ``within``: where
    ``prompts`` start in a caller's whole list, and that list's length (an ensemble scores one chunk at a time:
    the error named the prompt's place in the chunk)."""
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        start, total = within or (0, len(bad))
        some = (f"{int(bad.sum())} of {total}" if (start, total) == (0, len(bad))
                else f"{int(bad.sum())} of prompts {start}..{start + len(bad) - 1} of {total}")
        raise ArgumentValueError(f"the predictor scores {some} prompts NaN or infinite (the first: "
                        f"prompt {start + first}, {len(prompts[first])} characters): its weights or its model's outputs "
                        "are not finite numbers; train it again")


@contextmanager
def _one_thread():
    """Run torch on one thread inside the block (the caller's count restored after it). An n-gram model trains
    on one thread so that its weights are a function of the seed and the data alone: torch splits a long
    reduction across its threads (a classifier head's backward over 8,192 classes sums 8,192 products), and
    the sum's order, so its last bits, changed with the thread count (2 on 2 cores; 1 under ``taskset`` or
    ``OMP_NUM_THREADS=1``). Measured: a 1-token-bucket ShareGPT classifier trained on 2 threads moved Table 3's
    time to 1,000 samples from 92.42 to 92.56 s. The HF and probe backbones keep torch's threads (their model's
    forward passes are the cost; their results still depend on the count).

    The count is set through ``torch._C.set_num_threads``, torch's own setter: vLLM's CPU worker replaces
    ``torch.set_num_threads`` with a no-op (it has bound its threads to CPUs) in any process that started the CPU
    engine, and there a model trained on the engine's thread count (``--threads 2``: 2) without a word. Back to
    the caller's count afterwards the engine's bound threads are the ones it gets again: one thread runs no
    parallel region, so the thread pool is left as it was."""
    torch = _torch()
    set_threads = torch._C.set_num_threads
    before = torch.get_num_threads()
    set_threads(1)
    try:
        yield
    finally:
        set_threads(before)


@dataclass(frozen=True)
class Scored:
    """Prompts scored by a predictor in one pass (:meth:`Predictor.score`)."""

    scores: np.ndarray  #: one per prompt, higher = shorter
    #: [tokens] a class model's predicted length of each prompt (its most likely bucket's midpoint); None: a ranker
    predicted_lengths: np.ndarray | None = None


class Predictor:
    """A length predictor: ``scores(prompts)`` (higher = shorter); class models also give
    ``predicted_lengths(prompts)`` [tokens] (the predicted bucket's midpoint)."""

    #: While an ensemble scores a chunk of a longer list: where the chunk starts in it, and its length (errors name a
    #: prompt's place in the whole list); None otherwise
    _scoring_within: tuple[int, int] | None = None

    def __init__(self, config: PredictorConfig):
        # (a dict or None was "'dict' object has no attribute 'kind'")
        check_argument(config, PredictorConfig, "config", "a PredictorConfig (e.g. PredictorConfig(kind='rank'); "
                       "PredictorConfig(**settings) for a dict)")
        if config.kind not in KINDS:
            raise ArgumentValueError(f"unknown predictor kind {config.kind!r}; use rank or class")
        torch = _torch()
        self.config = config
        self.outputs = 1 if config.kind == "rank" else config.num_classes
        torch.manual_seed(config.seed)  # the initial weights too: one seed, one model
        self.backbone = make_backbone(config, self.outputs)
        #: :func:`~ltrsched.predictors.config.prompt_hashes` of the prompts it was trained on (None: not known)
        self.training_prompts: np.ndarray | None = None
        #: The weights digest its checkpoint's ``predictor.json`` records (:meth:`load`; None: not loaded, or none)
        self.weights_digest: str | None = None
        #: Of the prompts last scored, how many share no n-gram with the training prompts (None: not known)
        self.unseen_last: int | None = None
        #: Of the prompts last scored, how many are longer than its HF or probe backbone reads (None: a backbone that
        #: reads every token), counted from the token ids it scored them by (:func:`cut_note`)
        self.cut_last: int | None = None
        #: The same count of the prompts :meth:`fit` trained on
        self.cut_training: int | None = None
        #: After :meth:`fit` with held-out prompts: Kendall tau-b between their scores before and after training
        #: (None: not measured, or undefined); near 1, training barely changed the untrained model's order
        self.untrained_agreement: float | None = None
        #: The prompts :meth:`measure` (and :meth:`evaluate`, :meth:`fit`'s held-out scoring) measured last, as scored:
        #: a class model's predicted lengths [tokens] too (None: none measured yet). After :meth:`fit`, the held-out
        #: prompts' of the last epoch, which ``train`` warns of as ``evaluate`` does of its own (one bucket for all)
        self.measured_last: Scored | None = None
        #: Where scoring, and a training's featurising of its prompts, show their progress: a function of (total,
        #: noun, verb) that returns a bar (:func:`ltrsched.progress.progress_bar`'s), e.g. ``lambda total, noun,
        #: verb: progress_bar(total, "predict", noun, verb)``; None: nowhere (a sweep's runs, a library caller)
        self.progress: Callable[[int, str, str], object] | None = None
        self._scoring_noun = "prompts"  # (what the prompts scored are, in a progress line: held-out ones in fit)
        #: While training (:meth:`fit`) or sharing features (:meth:`sharing_features`): prompts scored -> their
        #: prepared features and cut count, for a list of at most one :data:`PREPARE_BATCHES` chunk (the held-out
        #: prompts, scored before training and after each epoch, were tokenised and featurised anew each time: 6 times
        #: in a default training); None: nothing kept
        self._kept: dict | None = None

    # ------------------------------------------------------------------ inference
    def _bar(self, total: int, noun: str, verb: str):
        """A progress bar over ``total`` prompts from :attr:`progress` (a disabled one where that is None)."""
        from ltrsched.progress import progress_bar

        if self.progress is None or not total:
            return progress_bar(total, "", noun, verb, enabled=False)
        return self.progress(total, noun, verb)

    @contextmanager
    def _featurising(self, bar):
        """While the block runs, a backbone that computes each prompt's features one by one (the probe: a forward
        pass of its language model per prompt, minutes for thousands) advances ``bar`` per prompt."""
        if not hasattr(self.backbone, "on_featurised"):
            yield
            return
        self.backbone.on_featurised = bar.update
        try:
            yield
        finally:
            self.backbone.on_featurised = None

    def _raw(self, prompts: list[str], batch_size: int = 1024, reduce: Callable | None = None):
        """The model's outputs for ``prompts``, their features prepared :data:`PREPARE_BATCHES` batches at a time
        (each prompt's features are its own: the same outputs as all at once, in bounded memory). With ``reduce``,
        a function of one batch's outputs that returns a tuple of arrays with a row per prompt, those arrays for all
        the prompts instead: a class model's logits are ``classes`` numbers a prompt (8,192 one-token classes: 32 kB),
        which :meth:`score` reduces to two, so they are reduced a batch at a time and never all held."""
        torch = _torch()
        prompts = list(prompts)
        model = self.backbone.model
        model.eval()
        outs, bad = [], []
        chunk = batch_size * PREPARE_BATCHES
        unseen = getattr(self.backbone, "unseen", lambda data: None)
        self.unseen_last = self.cut_last = None
        kept = self._kept if self._kept is not None and len(prompts) <= chunk else None
        with (torch.inference_mode(), self._bar(len(prompts), self._scoring_noun, "scored") as bar,
              self._featurising(bar)):
            for first in range(0, len(prompts), chunk):
                part = prompts[first: first + chunk]
                data, cut = kept.get(tuple(part), (None, None)) if kept is not None else (None, None)
                if data is None:
                    data = self.backbone.prepare(part)
                    cut = getattr(self.backbone, "last_cut", None)  # (of the prompts it prepared last: these)
                    if kept is not None:
                        kept[tuple(part)] = data, cut
                if cut is not None:
                    self.cut_last = (self.cut_last or 0) + cut
                count = unseen(data)
                if count is not None:
                    self.unseen_last = (self.unseen_last or 0) + count
                for start in range(0, len(part), batch_size):
                    rows = np.arange(start, min(start + batch_size, len(part)))
                    out = self.backbone.forward(data, rows).float().numpy()
                    bad.append(~np.isfinite(out.reshape(len(out), -1)).all(axis=1))
                    outs.append(out if reduce is None or bad[-1].any() else reduce(out))  # (refused below)
                    _advance(bar, first + rows[-1] + 1)  # (a probe's prompts counted as featurised: no more here)
                del data
        if not outs:
            empty = np.zeros((0,) if self.outputs == 1 else (0, self.outputs))
            return empty if reduce is None else reduce(empty)
        _check_finite(np.concatenate(bad), prompts, self._scoring_within)
        if reduce is None:
            return np.concatenate(outs)
        return tuple(np.concatenate(parts) for parts in zip(*outs))

    @property
    def features_key(self) -> tuple | None:
        """What its backbone's features of a prompt depend on: predictors of one key prepare the same features of the
        same prompts (an n-gram backbone's n-gram set and size); None: a backbone whose features are its own."""
        return getattr(self.backbone, "features_key", None)

    @contextmanager
    def sharing_features(self, shared: dict):
        """While the block runs, the features it prepares of a list of prompts of at most one :data:`PREPARE_BATCHES`
        chunk are kept in ``shared`` and taken from there: predictors of one :attr:`features_key` given one dict
        prepare each such list once between them (:func:`~ltrsched.predictors.ensemble.shared_features`)."""
        before, self._kept = self._kept, shared
        try:
            yield
        finally:
            self._kept = before

    def forget_features(self) -> None:
        """Drop what the backbone memoizes per prompt (the probe's hidden states), so the next scores compute
        every prompt's features again."""
        forget = getattr(self.backbone, "forget_features", None)
        if forget is not None:
            forget()

    def scores(self, prompts: list[str], batch_size: int = 1024) -> np.ndarray:
        return self.score(prompts, batch_size).scores

    def score(self, prompts: list[str], batch_size: int = 1024) -> Scored:
        """``prompts`` scored once: their scores and, of a class model, their predicted lengths, from one pass of
        the model (``predict`` and ``evaluate`` of a class model scored every prompt twice, once for each: twice the
        minutes of a model backbone). ``prompts``: an iterable of str (:func:`~ltrsched.predictors.arguments.
        check_prompts`); ``batch_size``: prompts a forward pass scores at once, >= 1."""
        prompts, batch_size = check_prompts(prompts), check_batch_size(batch_size)
        if self.outputs == 1:
            return Scored(self._raw(prompts, batch_size).astype(np.float64))
        scores, midpoints = self._raw(prompts, batch_size,
                                      lambda logits: (-self._expected_bucket(logits), self._bucket_midpoints(logits)))
        return Scored(scores, midpoints)

    def predicted_lengths(self, prompts: list[str], batch_size: int = 1024) -> np.ndarray:
        """Predicted output length [tokens]: the midpoint of the most likely bucket (class models). A ranker has none:
        :class:`~ltrsched.errors.ArgumentValueError` (a ValueError, as ``io``'s unsupported operations are)."""
        if self.outputs == 1:
            raise ArgumentValueError("a ranking model predicts scores, not lengths; train --kind class for lengths")
        return self._raw(check_prompts(prompts), check_batch_size(batch_size),
                         lambda logits: (self._bucket_midpoints(logits),))[0]

    def _bucket_midpoints(self, logits: np.ndarray) -> np.ndarray:
        """[tokens] The midpoint of each prompt's most likely bucket, from a class model's ``logits``."""
        return (logits.argmax(axis=1) + 0.5) * self.config.bucket

    @staticmethod
    def _expected_bucket(logits: np.ndarray) -> np.ndarray:
        """The argmax bucket plus the expected bucket over the class count (in [0, 1)): ordered by the argmax
        bucket, ties broken by the expected bucket (keeps tau informative). The tie-break was 1e-3 x the expected
        bucket, up to 8.2 buckets over 8,192 one-token classes: it overturned the argmax order of prompts whose
        argmax buckets differ by less (the same order as now up to 1,000 classes). Classes the training lengths never
        fall in do not decide it: on a heavy tail (~1,200 classes of 820 tokens, a dozen trained) it orders prompts as
        the expectation over the trained classes alone does, by length (tests/test_class_tie_break.py). It follows
        the model's confidence in its argmax, which an n-gram model's grows with the prompt's n-grams where most
        lengths lie in one class: prompts longer in words then score shorter."""
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        classes = logits.shape[1]
        return logits.argmax(axis=1) + (p * np.arange(classes)).sum(axis=1) / classes

    def labels(self, lengths: np.ndarray) -> np.ndarray:
        return bucket_labels(self.config, lengths)

    # ------------------------------------------------------------------ training
    def fit(self, prompts: list[str], lengths: np.ndarray, eval_prompts: list[str] | None = None,
            eval_lengths: np.ndarray | None = None, on_epoch: Callable[[dict], None] | None = None,
            on_batch: Callable[[], None] | None = None) -> list[dict]:
        """Train; after each epoch record loss, eval Kendall tau (and accuracy) into ``config.metrics`` and call
        ``on_epoch(record)``; ``on_batch()`` after each list (minibatch) of an epoch, :meth:`batches` of them in
        all. An n-gram model trains on one torch thread (:func:`_one_thread`): the same seed and data give the same
        weights."""
        import contextlib

        prompts = check_prompts(prompts)
        lengths = check_lengths(lengths, len(prompts))
        check_callback(on_epoch, "on_epoch")
        check_callback(on_batch, "on_batch")
        if eval_prompts is not None or eval_lengths is not None:
            if eval_prompts is None:
                raise ValueError("eval_lengths is given without eval_prompts: give both, or neither")
            eval_prompts = check_prompts(eval_prompts, "eval_prompts")
            eval_lengths = check_lengths(eval_lengths, len(eval_prompts), "eval_lengths")
        threads = _one_thread() if self.config.backbone == "ngram" else contextlib.nullcontext()
        self._scoring_noun = "held-out prompts"  # (the prompts it scores while training)
        self._kept = {}  # (their features, prepared once: the model changes between scorings, its inputs do not)
        try:
            with threads, getattr(self.backbone, "fitting", contextlib.nullcontext)():  # (the probe remembers prompts meanwhile)
                return self._fit(prompts, lengths, eval_prompts, eval_lengths, on_epoch, on_batch)
        finally:
            self._scoring_noun = "prompts"
            self._kept = None

    def batches(self, num_prompts: int) -> int:
        """The lists (minibatches) :meth:`fit` trains on ``num_prompts`` prompts in, over every epoch."""
        return self.config.epochs * -(-num_prompts // self.config.list_size)

    def _fit(self, prompts, lengths, eval_prompts, eval_lengths, on_epoch, on_batch=None) -> list[dict]:
        torch = _torch()
        cfg = self.config
        check_labelled(prompts, lengths)
        check_buckets(cfg, lengths)
        check_list_size(cfg, len(prompts))
        lengths = np.asarray(lengths)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        with self._bar(len(prompts), "prompts", "featurised") as bar, self._featurising(bar):
            data = self.backbone.prepare(list(prompts))  # (the probe's: its model's states, a pass per prompt)
        self.cut_training = getattr(self.backbone, "last_cut", None)
        if hasattr(self.backbone, "note_training"):
            self.backbone.note_training(data)
        # (rank labels only compare: int64, exact at any length; float32 ones tied every length within 2**-24 of
        # another, e.g. all of 10**12 + 69..268 tokens: "no list held two different lengths")
        y = torch.as_tensor(self.labels(lengths), dtype=torch.long)
        model = self.backbone.model
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.kind == "rank":
            if cfg.loss not in LOSSES:
                raise ArgumentValueError(f"unknown loss {cfg.loss!r}; use {', '.join(LOSSES)}")
            loss_fn = LOSSES[cfg.loss]
        else:
            ce = torch.nn.CrossEntropyLoss()
        cfg.metrics = []
        initial = _small_parameters(model)
        pairwise, moved_checked = cfg.kind == "rank" and cfg.loss == "pairwise", False
        measured = eval_prompts is not None and len(eval_prompts) > 1
        if measured:  # (after prepare: the probe sets its scale from the training prompts; the seeded draws kept)
            rng_state = torch.get_rng_state()
            untrained = self.scores(eval_prompts)
            torch.set_rng_state(rng_state)
        self.untrained_agreement = None
        self.training_prompts = prompt_hashes(prompts)
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            perm = rng.permutation(len(prompts))
            total = 0.0
            lists = [perm[i: i + cfg.list_size] for i in range(0, len(perm), cfg.list_size)]
            informative = False  # (some list gave the loss a gradient: the pairwise loss needs two different labels)
            for rows in lists:
                if on_batch is not None:  # (before the list: a one-prompt list, skipped, counts too)
                    on_batch()
                if len(rows) < 2:
                    continue
                out = self.backbone.forward(data, rows)
                target = y[torch.as_tensor(rows)]
                informative = informative or not pairwise or bool((target != target[0]).any())
                loss = loss_fn(out, target) if cfg.kind == "rank" else ce(out, target)
                opt.zero_grad()
                loss.backward()
                try:
                    opt.step()
                except RuntimeError as exc:  # Adam's step size lr / (1 - beta1 ** t) beyond float32's range
                    if "overflow" not in str(exc):
                        raise
                    raise ArgumentValueError(f"training diverged in epoch {epoch}: the learning rate {cfg.lr:g} "
                                             "overflows the optimizer's float32 step; lower it with --lr (nothing was "
                                             "saved)") from None
                total += float(loss.detach()) * len(rows)
            _check_converging(model, total, epoch, cfg.lr)
            if informative and not moved_checked:  # (an epoch of tied lists only moves nothing at any rate)
                _check_moved(model, initial, cfg.lr, epoch)
                moved_checked = True
            record = {"epoch": epoch, "loss": defined(total / len(prompts)), "seconds": time.perf_counter() - t0}
            if measured:
                record.update(self.evaluate(eval_prompts, eval_lengths))
            cfg.metrics.append(record)
            if on_epoch is not None:
                on_epoch(record)
        if not moved_checked:
            _no_pairs(self.labels(lengths), cfg)
        if measured:
            self.untrained_agreement = _tau_b(untrained, self.measured_last.scores)
        return cfg.metrics

    def evaluate(self, prompts: list[str], lengths: np.ndarray) -> dict:
        """Kendall tau (and, for class models, bucket accuracy) on held-out prompts, each scored once, against their
        output ``lengths`` [tokens] (one per prompt, :func:`~ltrsched.predictors.arguments.check_lengths`)."""
        prompts = check_prompts(prompts)
        return self.measure(self.score(prompts), check_lengths(lengths, len(prompts)))

    def measure(self, scored: Scored, lengths: np.ndarray) -> dict:
        """Kendall tau (and, for class models, bucket accuracy) of prompts already ``scored`` (:meth:`score`) against
        their output ``lengths`` [tokens]."""
        check_scored(scored)
        lengths = check_lengths(lengths, len(scored.scores))
        self.measured_last = scored
        out = {"tau": kendall_tau(scored.scores, lengths)}
        if self.config.kind == "class":
            out["accuracy"] = bucket_accuracy(scored.predicted_lengths, lengths, self.config.bucket,
                                              self.config.num_classes)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the checkpoint directory ``directory`` (a str or path: created if missing). A directory that already
        holds a checkpoint (a predictor's or an ensemble's files) is refused with a ValueError unless ``overwrite``
        is True: it was replaced without a word. Replacing one, the old checkpoint's files (an ensemble's member
        directories too) are removed first and the new ``predictor.json`` is written last
        (:func:`~ltrsched.predictors.config.retire_checkpoint`): a save that fails half-way leaves no checkpoint there,
        never one that loads as another model."""
        check_out_directory(directory)
        check_overwrite(directory, overwrite)
        torch = _torch()
        directory = Path(directory)
        buf = io.BytesIO()
        torch.save(self.backbone.model.state_dict(), buf)
        inputs = self.inputs_digest()  # (before any file is touched: tokenising can fail too)
        retire_checkpoint(directory)
        atomic.write_bytes(directory / WEIGHTS_FILE, buf.getvalue())
        # the config names the weights it goes with: a save interrupted between the two files (or one file
        # replaced by hand) is refused on load instead of scoring with weights of another model of the same shape
        self.config.save(directory, hashlib.sha256(buf.getvalue()).hexdigest(), self.training_prompts, inputs,
                         getattr(self.backbone, "fold", None))
        return directory

    def inputs_digest(self) -> str | None:
        """SHA-256 (hex) of the inputs the backbone makes of :data:`CANARY_PROMPTS` (the tokenizer's ids, the
        n-gram buckets): another tokenizer or n-gram set gives another; None for a backbone without such inputs
        (the probe: its features of a reference prompt identify its model, ``check_loaded``)."""
        digest = getattr(self.backbone, "inputs_digest", None)
        return None if digest is None else digest(list(CANARY_PROMPTS))

    def prompts_cut(self, prompts: list[str]) -> int | None:
        """How many of ``prompts`` are longer than the backbone reads (:func:`cut_note`); None for a backbone that
        reads every token (the n-gram ranker). It tokenises them: of prompts just scored, :attr:`cut_last` says."""
        prompts = check_prompts(prompts)
        count = getattr(self.backbone, "count_cut", None)
        return None if count is None else count(prompts)

    def training_overlap(self, prompts: list[str]) -> int | None:
        """How many of ``prompts`` are prompts it was trained on (by text); None if its checkpoint does not say
        what it was trained on (written before it recorded that, or never trained)."""
        return count_known(self.training_prompts, check_prompts(prompts))

    @classmethod
    def load(cls, directory: str | Path) -> "Predictor":
        """A checkpoint directory: one predictor, or an ensemble (``ltrsched ensemble``)."""
        check_directory(directory)
        torch = _torch()
        directory = Path(directory)
        from ltrsched.predictors.ensemble import ENSEMBLE_FILE, Ensemble

        if (directory / ENSEMBLE_FILE).is_file():
            return Ensemble.load(directory)
        config, record = PredictorConfig.load_record(directory)  # (predictor.json read once)
        try:
            pred = cls(config)
        except UserError as exc:  # e.g. its model (hf_path, named as --hf-model) moved: say which checkpoint needs it
            kind = next((k for k in (PathNotFoundError, ArgumentValueError, ArgumentTypeError) if isinstance(exc, k)),
                        UserError)  # (the same kind of error: a moved model is a FileNotFoundError still)
            raise kind(f"cannot load the predictor {directory}: {exc}") from None
        if hasattr(pred.backbone, "fold"):  # (an HF backbone folds token ids as it was trained: older ones "modulo")
            pred.backbone.fold = saved_token_fold(directory, record)
        weights = directory / WEIGHTS_FILE
        try:
            check_not_special(weights, "predictor weights")  # (it said "missing weights.pt")
        except UserError as exc:
            raise ArgumentValueError(str(exc)) from None
        if not weights.is_file():  # (a damaged checkpoint: a ValueError, as every file of it that cannot be used)
            raise ArgumentValueError(f"{directory}: missing {WEIGHTS_FILE}" if not weights.exists() else
                                     f"{weights} is not a file (a directory?); train the predictor again")
        raw = weights.read_bytes()  # (read once: torch loads these bytes, and their digest is checked below)
        try:
            import warnings

            with warnings.catch_warnings():  # (a foreign pickle: torch's protocol warning made the error 3 lines)
                warnings.simplefilter("ignore")
                state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as exc:  # empty, truncated or not a torch file (EOFError, UnpicklingError, KeyError...)
            raise ArgumentValueError(f"{weights}: not a readable torch weights file ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else 'no details'})") from None
        if isinstance(state, dict) and hasattr(pred.backbone, "note_loaded"):
            pred.backbone.note_loaded(state)  # (before the weights replace the initial ones)
        try:
            pred.backbone.model.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:  # other tensors, or not a state dict at all
            raise ArgumentValueError(f"{directory}: weights do not match its {config.backbone} config ("
                                     f"{_state_mismatch(pred.backbone.model, state) or str(exc).splitlines()[0]}): the "
                                     "weights of another model or settings; train the predictor again") from None
        bad = [name for name, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:  # (training refuses to save such weights: damaged, or edited by hand)
            raise ArgumentValueError(f"{weights}: the weights hold NaN or infinite values ({bad[0]}); train the "
                                     "predictor again")
        digest = saved_weights_digest(directory, record)
        if digest is not None and digest != hashlib.sha256(raw).hexdigest():
            raise ArgumentValueError(f"{directory}: {WEIGHTS_FILE} is not the weights file saved with {CONFIG_FILE} "
                                     "(a save was interrupted, or one of the two was replaced); train the predictor "
                                     "again")
        check_trained_with(config, directory, pred.inputs_digest, record)
        pred.training_prompts = saved_training_prompts(directory, record)
        pred.weights_digest = digest
        check = getattr(pred.backbone, "check_loaded", None)  # (the probe: is its model the one it was trained on?)
        if check is not None:
            check(directory)
        return pred

    def describe(self) -> dict:
        return asdict(self.config)
