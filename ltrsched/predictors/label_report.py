"""How well a ranker learns a served model's lengths: the numbers of ``ltrsched label-report``.

On the held-out (eval) prompts of a labels file (``ltrsched label``), all Kendall's tau-b against the
served model's lengths (the ``main`` run's):

* ``served_ranker``: the default ranker trained on the served model's lengths of the train prompts;
* ``chatgpt_ranker``: the same ranker trained on ChatGPT's lengths of the same train prompts (the built-in
  data's labels), scored against the served model's lengths (and, for reference, against ChatGPT's); None
  for labels of a prompts file (``ltrsched label --prompts``), which have no ChatGPT lengths;
* ``ceiling``: the served model against itself with another seed: greedy lengths vs the sampled run's
  lengths of the same prompts (the paper's "another seed" bound, its 0.74);
* ``prompt_length``: the prompt's length alone as the predictor (tau of prompt tokens vs output tokens);
* ``chatgpt_length``: ChatGPT's true length of each prompt as the predictor;
* ``learning_curve``: the served-label ranker trained on the first n of a seeded shuffle of the train
  prompts (nested sets), for each n;
* ``probe_ranker`` (with ``probe``): a ranker on the served model's own hidden state (``--backbone probe``,
  layer ``probe_layer``) trained on the served model's lengths of the train prompts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import polars as pl

from ltrsched.errors import UserError, list_items
from ltrsched.numbers import plain_number_text
from ltrsched.predictors.predictor import kendall_tau
from ltrsched.predictors.tau_noise import few_prompts_warning
from ltrsched.workloads.labels import MAIN_RUN, SAMPLE_RUN, attach_prompts, check_labels
from ltrsched.workloads.ties import tau_ceiling

#: Training-set sizes of the learning curve by default ("all": every train prompt); those not below the labels'
#: train prompts are left out (:func:`default_sizes`), so a 400-prompt file's curve is 250, all.
DEFAULT_SIZES = (250, 500, 1000, 2000, "all")


def default_sizes(num_train: int) -> list[int | str]:
    """The learning curve's sizes when none are given: :data:`DEFAULT_SIZES` below ``num_train`` (prompts), then
    "all". (They were all kept, and every report on the committed 400-prompt labels warned that 500, 1000 and 2000
    are more than its train prompts, sizes nobody had asked for; explicit ``--sizes`` are still checked.)"""
    return [n for n in DEFAULT_SIZES if n != "all" and n < num_train] + ["all"]


@dataclass
class LabelReport:
    """The report's numbers (taus are Kendall's tau-b; None where the labels lack what a number needs, or where it
    is undefined: constant scores or lengths)."""

    model: str
    num_train: int
    num_eval: int
    capped_share: dict[str, float]
    served_ranker: float | None
    chatgpt_ranker: float | None
    chatgpt_ranker_on_chatgpt: float | None
    ceiling: float | None
    num_ceiling: int
    prompt_length: float | None
    chatgpt_length: float | None
    learning_curve: list[dict] = field(default_factory=list)
    probe_ranker: float | None = None
    probe_model: str | None = None
    probe_layer: int | None = None
    #: The highest tau-b that scores without ties reach on the held-out lengths (:func:`~ltrsched.workloads.ties.
    #: tau_ceiling`): below 1 where lengths tie, e.g. at the output cap; None: not computed
    tie_ceiling: float | None = None
    #: Why a number is None (n/a), by field name (``served_ranker``, ``ceiling``, ``learning_curve``, ...)
    na_reasons: dict[str, str] = field(default_factory=dict)
    #: How many held-out prompts are also train prompts (by text): their taus are not held-out
    held_out_in_train: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self, source: str) -> str:
        def f(x):
            return "n/a" if x is None else f"{x:.3f}"

        # labels of a prompts file (`ltrsched label --prompts`) have no ChatGPT lengths: their rows were three n/a
        # about ChatGPT's ShareGPT replies, which these prompts never had
        chatgpt = any(x is not None for x in (self.chatgpt_ranker, self.chatgpt_ranker_on_chatgpt, self.chatgpt_length))
        few = few_prompts_warning(self.num_eval)  # (tau -1.000 on 3 held-out prompts was printed without a word)
        lines = [
            f"# Ranking the served model's output lengths ({self.model})",
            "",
            f"Labels: `{source}`; {self.num_train} train and {self.num_eval} held-out (eval) prompts; responses at "
            f"the output cap: {self.capped_share.get('train', 0):.1%} of train, {self.capped_share.get('eval', 0):.1%} of eval.",
            "All numbers are Kendall's tau-b against the served model's lengths on the held-out prompts."
            + (f" Tau-b orders no pair of equal lengths: on these (tied at the cap, or elsewhere) scores that never "
               f"tie reach at most {self.tie_ceiling:.3f}, however right their order (scores tied exactly where the lengths tie are not so bounded)."
               if self.tie_ceiling is not None and round(self.tie_ceiling, 3) < 1 else ""),  # (a few ties among
            # a reasoning model's 2,000-32,000-token lengths, ceiling 0.9996: "reach at most 1.000")
            "",
            "| predictor | tau |",
            "|---|---:|",
            f"| ranker trained on the served model's lengths | {f(self.served_ranker)} |",
            *([f"| ranker on the served model's own hidden state (`--backbone probe --hf-model {self.probe_model}`, "
               f"layer {self.probe_layer}), trained on its lengths | {f(self.probe_ranker)} |"]
              if self.probe_model is not None else []),
            *([f"| ranker trained on ChatGPT's lengths (same prompts) | {f(self.chatgpt_ranker)} |"] if chatgpt else []),
            f"| the served model with another seed (ceiling, {self.num_ceiling} prompts) | {f(self.ceiling)} |",
            f"| prompt length alone | {f(self.prompt_length)} |",
            *([f"| ChatGPT's true length | {f(self.chatgpt_length)} |"] if chatgpt else []),
            "",
            *[f"n/a ({_ROW_NAMES[k]}): {why}." for k, why in self.na_reasons.items() if k != "learning_curve"],
            *([f"Warning: {self.held_out_in_train} of the {self.num_eval} held-out prompts are also train prompts (the "
               "same text): the rankers' taus on them are not held-out and overstate the rankers."]
              if self.held_out_in_train else []),
            *([f"Warning: {few[len('warning: '):]}."] if few else []),
            *([""] if few or self.held_out_in_train or len(self.na_reasons) > ("learning_curve" in self.na_reasons)
              else []),
            (f"The ChatGPT-label ranker against ChatGPT's own lengths on the same prompts: {f(self.chatgpt_ranker_on_chatgpt)}."
             if chatgpt else "These prompts (a prompts file's, not the built-in ShareGPT's) have no ChatGPT lengths to "
                             "compare with."),
            "Paper (Llama-3-8B on ShareGPT/LMSYS): 0.52-0.64 for its OPT-125M ranker, 0.74 for another seed.",
            "",
            "## Learning curve (ranker on the served model's lengths)",
            "",
            "| train prompts | tau |",
            "|---:|---:|",
            *[f"| {p['num_train']} | {f(p['tau'])} |" for p in self.learning_curve],
            *(["", f"n/a: {self.na_reasons['learning_curve']}."] if "learning_curve" in self.na_reasons else []),
            "",
        ]
        return "\n".join(lines)


#: The report's rows, by field name (what an n/a reason names).
_ROW_NAMES = {
    "served_ranker": "ranker trained on the served model's lengths",
    "probe_ranker": "ranker on the served model's own hidden state",
    "chatgpt_ranker": "ranker trained on ChatGPT's lengths",
    "chatgpt_ranker_on_chatgpt": "the ChatGPT-label ranker against ChatGPT's lengths",
    "ceiling": "the served model with another seed",
    "prompt_length": "prompt length alone",
    "chatgpt_length": "ChatGPT's true length",
}
_ALIKE = "the ranker scores every held-out prompt alike (it cannot tell them apart), so Kendall tau is undefined"


def parse_sizes(text: str) -> list[int | str]:
    """``250,500,all`` -> [250, 500, "all"], each size once, in the order given (``250,250`` -> [250]); one-line
    error for anything but integers >= 2 and ``all``."""
    sizes: list[int | str] = []
    for part in list_items(text, ",", "--sizes"):  # (an empty item: said so, not "takes training-set sizes")
        if part == "all":
            sizes.append("all")
            continue
        try:  # (not int("1_0") nor non-ASCII digits: numbers as the CLI's options and policy specs take them)
            n = int(plain_number_text(part))
        except ValueError:
            raise UserError(f"--sizes takes training-set sizes (integers >= 2) and 'all' separated by ',', got {text!r}") from None
        if n < 2:
            raise UserError(f"--sizes: a ranker needs at least 2 training prompts, got {n}")
        sizes.append(n)
    if not sizes:
        raise UserError("--sizes is empty")
    return list(dict.fromkeys(sizes))  # a size given twice is one point (it trained twice, the curve kept one)


def label_report(labels: pl.DataFrame, name: str, sizes=None, seed: int = 0, epochs: int | None = None,
                 on_progress: Callable[[str], None] | None = None, probe: str | None = None,
                 probe_layer: int | None = None, show_progress: bool = False) -> LabelReport:
    """The report's numbers for a labels table (see the module docstring); ``epochs`` overrides the default
    ranker's; ``on_progress(message)`` hears of each ranker trained; ``probe``: a causal LM (``--hf-model``
    spec, the served model) whose hidden state after ``probe_layer`` layers a probe ranker reads;
    ``show_progress``: each ranker's training and scoring show their progress on stderr (:func:`_fit_shown`)."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor, check_labelled

    labels = attach_prompts(check_labels(labels, name), name)
    main = labels.filter(pl.col("run") == MAIN_RUN)
    train = main.filter(pl.col("split") == "train")
    ev = main.filter(pl.col("split") == "eval")
    for split, rows in (("train", train), ("eval", ev)):
        if rows.height == 0:
            raise UserError(f"{name} has no {MAIN_RUN!r} labels of the {split} split: the report trains on the train "
                            "prompts and tests on the eval prompts; label both (`ltrsched label --splits train,eval`)")
    tp, tl, tc = train["prompt"].to_list(), train["output_tokens"].to_numpy(), train["chatgpt_output_tokens"].to_numpy()
    ep, el, ec = ev["prompt"].to_list(), ev["output_tokens"].to_numpy(), ev["chatgpt_output_tokens"].to_numpy()
    check_labelled(tp, tl, "training")
    check_labelled(ep, el, "held-out")
    note = on_progress or (lambda message: None)

    def ranker(prompts, lengths, what: str) -> Predictor:
        note(f"training the ranker on {what} ({len(prompts)} prompts)")
        config = PredictorConfig(seed=seed) if epochs is None else PredictorConfig(seed=seed, epochs=epochs)
        p = Predictor(config)
        _fit_shown(p, prompts, lengths, show_progress)
        return p

    if probe is not None:  # loaded first: a layer past its model's, or a model that cannot load, fails before training
        probe_config = PredictorConfig(backbone="probe", hf_path=probe, probe_layer=probe_layer, lr=1e-3, seed=seed,
                                       **({} if epochs is None else {"epochs": epochs}))
        probe_predictor = Predictor(probe_config)

    held_out: dict = {}  # features key -> the eval prompts' features: every n-gram ranker scores them, prepared once

    def held_out_scores(p: Predictor) -> np.ndarray:
        """``p``'s scores of the eval prompts (featurised once for the rankers of one n-gram set: each ranker
        tokenised and featurised them again, up to 7 times in a report)."""
        if p.features_key is None:
            return p.scores(ep)
        with p.sharing_features(held_out.setdefault(p.features_key, {})):
            return p.scores(ep)

    served = ranker(tp, tl, "the served model's lengths")
    served_scores = held_out_scores(served)
    has_chatgpt = not (train["chatgpt_output_tokens"].null_count() or ev["chatgpt_output_tokens"].null_count())
    if has_chatgpt:
        chatgpt_scores = held_out_scores(ranker(tp, tc, "ChatGPT's lengths"))

    if sizes is None:  # the defaults that fit these labels: no warning about sizes nobody asked for
        sizes = default_sizes(len(tp))
    curve = []
    past = sorted({n for n in sizes if n != "all" and n > len(tp)})
    if past:  # (their point is the whole train split, as 'all' is: said, not silently merged)
        import sys
        print(f"warning: --sizes {', '.join(map(str, past))} {'is' if len(past) == 1 else 'are'} more than the "
              f"{len(tp)} train prompts of the labels: the learning curve's last point uses all {len(tp)}",
              file=sys.stderr)
    order = np.random.default_rng(seed).permutation(len(tp))
    for n in sizes:
        if n == "all" or n >= len(tp):
            curve.append({"num_train": len(tp), "tau": kendall_tau(served_scores, el)})
            continue
        rows = order[:n]
        lengths = tl[rows]
        if (lengths == lengths[0]).all():
            curve.append({"num_train": int(n), "tau": None})
            continue
        p = ranker([tp[i] for i in rows], lengths, "the served model's lengths, learning curve")
        curve.append({"num_train": int(n), "tau": kendall_tau(held_out_scores(p), el)})
    curve = list({c["num_train"]: c for c in curve}.values())  # sizes past the train set collapse into "all"

    probe_tau = None
    if probe is not None:
        note(f"training the probe ranker on the served model's lengths ({len(tp)} prompts; one forward pass of "
             f"{probe} per prompt)")
        _fit_shown(probe_predictor, tp, tl, show_progress)
        probe_tau, probe_layer = kendall_tau(probe_predictor.scores(ep), el), probe_config.probe_layer

    ceiling, num_ceiling = _ceiling(labels)
    capped = {s: float((g["finish_reason"] == "length").mean()) for s, g in (("train", train), ("eval", ev))}
    seen = set(tp)
    shared = sum(p in seen for p in ep)
    if shared:  # (two labels files merged, or a prompt under two keys: said, as `train` says it)
        import sys
        print(f"warning: {shared} of the {len(ep)} held-out (eval) prompts of {name} are also train prompts (the same "
              "text): the report's taus on them are not held-out and overstate the rankers", file=sys.stderr)
    report = LabelReport(
        model=str(main["model"][0]), num_train=len(tp), num_eval=len(ep), capped_share=capped,
        served_ranker=kendall_tau(served_scores, el),
        chatgpt_ranker=kendall_tau(chatgpt_scores, el) if has_chatgpt else None,
        chatgpt_ranker_on_chatgpt=kendall_tau(chatgpt_scores, ec) if has_chatgpt else None,
        ceiling=ceiling, num_ceiling=num_ceiling,
        prompt_length=kendall_tau(-ev["prompt_tokens"].to_numpy().astype(np.float64), el),
        chatgpt_length=kendall_tau(-ec.astype(np.float64), el) if has_chatgpt else None, learning_curve=curve,
        probe_ranker=probe_tau, probe_model=probe, probe_layer=probe_layer if probe is not None else None,
        tie_ceiling=tau_ceiling(el), held_out_in_train=shared,
    )
    report.na_reasons = _na_reasons(report, has_chatgpt, ec)
    return report


#: The label of ``label-report``'s progress lines (``label-report: K of N lists trained, S s``).
PROGRESS_LABEL = "label-report"


def _fit_shown(predictor, prompts: list[str], lengths: np.ndarray, show: bool) -> None:
    """Train ``predictor`` on ``prompts`` and their ``lengths`` [tokens]; with ``show``, as ``ltrsched train`` shows it
    (:mod:`ltrsched.progress`): its lists trained (tqdm's bar on a terminal, else a line about every 10 s), its
    prompts featurised off a terminal (a probe's pass per prompt), and afterwards its scoring of prompts. Without it
    (a library caller) nothing is shown: the report's rankers printed no progress off a terminal, minutes apart."""
    if not show:
        predictor.fit(prompts, lengths)
        return
    import sys

    from ltrsched.progress import is_terminal, progress_bar

    quiet_here = is_terminal(sys.stderr)  # (on a terminal the lists' bar alone, as `train`)
    predictor.progress = lambda total, noun, verb: progress_bar(total, PROGRESS_LABEL, noun, verb, enabled=not quiet_here)
    with progress_bar(predictor.batches(len(prompts)), PROGRESS_LABEL, "lists", "trained", unit="list") as bar:
        predictor.fit(prompts, lengths, on_batch=bar.update)
    predictor.progress = lambda total, noun, verb: progress_bar(total, PROGRESS_LABEL, noun, verb, unit="prompt")


def _na_reasons(report: LabelReport, has_chatgpt: bool, chatgpt_lengths: np.ndarray) -> dict[str, str]:
    """Why each of ``report``'s numbers that is None is (its row prints n/a); the ChatGPT rows only where the labels
    have ChatGPT lengths (else the report leaves those rows out and says so)."""
    reasons = {}
    for key in ("served_ranker", "probe_ranker", "chatgpt_ranker"):
        if getattr(report, key) is None and (key != "probe_ranker" or report.probe_model is not None) \
                and (key != "chatgpt_ranker" or has_chatgpt):
            reasons[key] = _ALIKE
    if has_chatgpt and report.chatgpt_ranker is not None and report.chatgpt_ranker_on_chatgpt is None:
        reasons["chatgpt_ranker_on_chatgpt"] = "ChatGPT's lengths of the held-out prompts are all equal"
    if report.ceiling is None:
        reasons["ceiling"] = (f"the labels hold a sampled run ('sample') of {report.num_ceiling} of these prompts; it "
                              "needs 2 or more (`ltrsched label --sample-subset N`)" if report.num_ceiling < 2 else
                              f"on the {report.num_ceiling} prompts of the sampled run, the greedy or the sampled "
                              "lengths are all equal (e.g. all at the cap), so Kendall tau is undefined")
    if report.prompt_length is None:
        reasons["prompt_length"] = "every held-out prompt has the same length in tokens"
    if has_chatgpt and report.chatgpt_length is None and len(np.unique(chatgpt_lengths)) < 2:
        reasons["chatgpt_length"] = "ChatGPT's lengths of the held-out prompts are all equal"
    if any(p["tau"] is None for p in report.learning_curve):
        reasons["learning_curve"] = ("where a subset's served lengths are all equal (e.g. all at the cap) no ranker "
                                     "trains on it; elsewhere the ranker scored every held-out prompt alike")
    return reasons


def _ceiling(labels: pl.DataFrame) -> tuple[float | None, int]:
    """Tau between the main run's and the sampled run's lengths of the prompts both served (None if < 2)."""
    main = labels.filter(pl.col("run") == MAIN_RUN).select("key", pl.col("output_tokens").alias("main"))
    sample = labels.filter(pl.col("run") == SAMPLE_RUN).select("key", pl.col("output_tokens").alias("sample"))
    both = main.join(sample, on="key", how="inner")
    if both.height < 2:
        return None, both.height
    return kendall_tau(-both["main"].to_numpy().astype(np.float64), both["sample"].to_numpy()), both.height
