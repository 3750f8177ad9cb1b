"""The predictor path on lengths other models give (otherlens): short answers, one-token outputs, equal lengths, two
values only, 2,000-32,000-token reasoning outputs, a Pareto tail to 10^6, whole-valued floats. Each test reproduces
what one of them did without a word: requests all in one classification bucket (first come first served), a
classifier that predicts one bucket for every prompt reported with a tau its policy never sees."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import run_cli_fast
from conftest import make_workload
from label_data import english_rows, write_label_jsonl


def _columns(lengths, predicted=None) -> dict:
    n = len(lengths)
    wl = make_workload([10] * n, lengths, **({} if predicted is None else {"predicted_length": predicted}))
    cols = {c: wl.df[c].to_numpy() for c in wl.df.columns}
    cols.setdefault("predicted_length", np.full(n, np.nan))
    return cols


def _prepared_stderr(capsys, spec: str, lengths, predicted=None) -> str:
    from ltrsched.policies import make_policy

    capsys.readouterr()
    make_policy(spec).prepare(_columns(lengths, predicted))
    return capsys.readouterr().err


SHORT = [1 + (5 * i) % 49 for i in range(70)]  # a short-answer model: 1-49 tokens


def test_a_short_answer_models_lengths_in_one_noise_bucket_are_warned_with_a_width_that_fits(capsys):
    """The noise model buckets in 820 tokens (ChatGPT's lengths): lengths all under 820 fell in one bucket and the
    policy ran first come first served without a word."""
    err = _prepared_stderr(capsys, "class", SHORT)
    assert "warning: class:tau=0.55: the noise model's lengths (of output lengths 1-49 tokens) put all 70 requests " \
           "in one bucket of 820 tokens, so it orders them by arrival, first come first served; give " \
           "class:bucket=4" in err, err
    assert _prepared_stderr(capsys, "class:bucket=4", SHORT) == ""  # (the width named orders them)
    assert "one bucket of 1,000 tokens" in _prepared_stderr(capsys, "class:bucket=1000", SHORT)


@pytest.mark.parametrize("lengths", [[300] * 20, [1] * 20, [2000 + 1500 * i for i in range(20)]],
                         ids=["equal", "ones", "reasoning"])
def test_no_one_bucket_warning_where_lengths_tie_or_spread_over_buckets(capsys, lengths):
    err = _prepared_stderr(capsys, "class", lengths)
    assert "one bucket" not in err, err


def test_a_classifier_that_predicts_one_bucket_for_every_prompt_is_warned(capsys):
    """A trained classifier's predicted_length column, one value for every request (a heavy tail's classes of 820
    tokens: 97% of the lengths in the first), ordered nothing and said nothing."""
    lengths = [30 + 40 * i for i in range(20)]
    err = _prepared_stderr(capsys, "class", lengths, predicted=[410.0] * 20)
    assert "warning: class: the predicted_length column gives all 20 requests one length (410 tokens): the " \
           "classifier predicts one bucket for every prompt, so it orders them by arrival" in err, err
    assert "one bucket of 100 tokens" in _prepared_stderr(capsys, "class:bucket=100", lengths, [410.0] * 19 + [450.0])
    assert _prepared_stderr(capsys, "class", lengths, predicted=[410.0] * 19 + [1230.0]) == ""


def _classifier(path, rows, bucket: int):
    """A length classifier (5 epochs, 4,096 buckets) trained on ``rows`` and saved at ``path``."""
    from ltrsched.predictors.config import PredictorConfig, class_count
    from ltrsched.predictors.predictor import Predictor

    lengths = np.array([n for _, n in rows])
    predictor = Predictor(PredictorConfig(kind="class", loss="ce", bucket=bucket, epochs=5, dim=4096,
                                          num_classes=class_count(bucket, int(lengths.max()))))
    predictor.fit([p for p, _ in rows], lengths)
    predictor.save(path)
    return predictor


def _pareto(rows, seed: int):
    """``rows`` with heavy-tailed lengths: Pareto (shape 1.1) from 10 tokens, every 20th at 10^6."""
    tail = np.ceil(10 * (1 + np.random.default_rng(seed).pareto(1.1, len(rows)))).astype(np.int64)
    return [(p, 10**6 if i % 20 == 0 else int(min(t, 10**6))) for i, ((p, _), t) in enumerate(zip(rows, tail))]


def test_a_classifier_predicting_one_bucket_for_every_prompt_is_warned_in_evaluate_and_predict(tmp_path, capsys):
    """Trained on a heavy tail (1,220 classes of 820 tokens, most lengths in the first), the classifier predicts
    class 0 for every prompt: evaluate printed a Kendall tau (that of its tie-break, the expected bucket) and predict
    wrote a predicted_length column a class policy runs first come first served, neither with a word about it."""
    _classifier(tmp_path / "c", _pareto(english_rows(60, 0), 0), 820)
    write_label_jsonl(tmp_path / "ev.jsonl", _pareto(english_rows(30, 1), 1))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "c", "--data", tmp_path / "ev.jsonl")
    assert r.returncode == 0, r.stderr
    tau = json.loads(r.stdout)["tau"]
    assert f"warning: the classifier predicts one bucket (0-819 tokens) for all 30 prompts: a class policy on its " \
           f"predicted_length ranks them by arrival, first come first served; its Kendall tau {tau:.3f} is that of " \
           "the tie-break within the bucket" in r.stderr, r.stderr
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "c", "-w", tmp_path / "ev.jsonl", "-o", tmp_path / "s.parquet")
    assert r.returncode == 0 and "predicts one bucket (0-819 tokens) for all 30 prompts" in r.stderr, r.stderr
    assert "tie-break" not in r.stderr  # (no tau in predict)


def test_train_warns_of_a_classifier_predicting_one_bucket_as_evaluate_does(tmp_path, capsys):
    """train evaluates on held-out prompts too: on a heavy tail it printed the classifier's tau (-0.33, that of its
    tie-break within the one bucket it predicts) without the warning evaluate and predict give. Its line is evaluate's
    of the checkpoint it wrote, on the same prompts."""
    for name, n, seed in (("tr", 60, 0), ("ev", 30, 1)):  # (most lengths in the first of 7 classes, some in the last)
        write_label_jsonl(tmp_path / f"{name}.jsonl", [(p, 5000 if i % 10 == 0 else k)
                                                       for i, (p, k) in enumerate(english_rows(n, seed))])
    r = run_cli_fast(capsys, "train", "--kind", "class", "--data", tmp_path / "tr.jsonl",
                     "--eval-data", tmp_path / "ev.jsonl", "-o", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stderr.splitlines() if "predicts one bucket" in x]
    assert len(line) == 1 and line[0].startswith("warning: the classifier predicts one bucket (0-819 tokens) for all "
                                                 "30 prompts") and "tie-break within the bucket" in line[0], r.stderr
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "c", "--data", tmp_path / "ev.jsonl")
    assert r.returncode == 0 and line[0] in r.stderr.splitlines(), r.stderr


def _two_kinds(rows):
    """``rows`` as two kinds of prompt: a yes/no question (20 tokens) and a long story (500 tokens)."""
    return [(("write a long story " if i % 2 else "answer yes or no ") + p, 500 if i % 2 else 20)
            for i, (p, _) in enumerate(rows)]


def test_a_classifier_predicting_several_buckets_is_not_warned(tmp_path, capsys):
    _classifier(tmp_path / "c", _two_kinds(english_rows(60, 0)), 100)
    write_label_jsonl(tmp_path / "ev.jsonl", _two_kinds(english_rows(30, 1)))
    for args in (("evaluate", "--data", tmp_path / "ev.jsonl"), ("predict", "-w", tmp_path / "ev.jsonl", "-o",
                                                                 tmp_path / "s.parquet")):
        r = run_cli_fast(capsys, *args, "-m", tmp_path / "c")
        assert r.returncode == 0 and "predicts one bucket" not in r.stderr, r.stderr


def _report(tie_ceiling: float):
    from ltrsched.predictors.label_report import LabelReport

    return LabelReport(model="m", num_train=300, num_eval=100, capped_share={"train": 0.0, "eval": 0.0},
                       served_ranker=0.687, chatgpt_ranker=None, chatgpt_ranker_on_chatgpt=None, ceiling=0.99,
                       num_ceiling=30, prompt_length=0.5, chatgpt_length=None, tie_ceiling=tie_ceiling)


def test_label_report_names_no_tie_ceiling_that_rounds_to_one():
    """A reasoning model's 2,000-32,000-token lengths tie in a few pairs (ceiling 0.9996): the report said that
    scores "reach at most 1.000". The sentence stays where the ceiling shows below 1."""
    assert "reach at most" not in _report(0.9995958779386394).markdown("l.parquet")
    assert "scores that never tie reach at most 0.998" in _report(0.998).markdown("l.parquet")


def test_held_out_lengths_past_a_classifiers_classes_are_noted(tmp_path, capsys):
    """A classifier trained on short lengths (82 classes of 100 tokens) evaluated on a reasoning model's 2,000-32,000
    tokens: the lengths past 8,200 counted as its open last class, in its accuracy too, without a word."""
    _classifier(tmp_path / "c", _two_kinds(english_rows(60, 0)), 100)
    long = [(p, 2000 + 1500 * i) for i, (p, _) in enumerate(_two_kinds(english_rows(20, 1)))]  # 2,000-30,500
    write_label_jsonl(tmp_path / "long.jsonl", long)
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "c", "--data", tmp_path / "long.jsonl")
    assert r.returncode == 0, r.stderr
    assert "note: 15 of the 20 evaluated lengths are 8,200 tokens or more (up to 30,500), past the classifier's 82 " \
           "classes of 100 tokens: they count as its last class (8100+ tokens), whose midpoint, 8150 tokens, is the " \
           "longest length it predicts" in r.stderr, r.stderr
    write_label_jsonl(tmp_path / "tr.jsonl", _two_kinds(english_rows(60, 0)))
    r = run_cli_fast(capsys, "train", "--kind", "class", "--bucket", 100, "--epochs", 1, "--data",
                     tmp_path / "tr.jsonl", "--eval-data", tmp_path / "long.jsonl", "-o", tmp_path / "d")
    assert r.returncode == 0 and "note: 15 of the 20 held-out lengths are 8,200 tokens or more" in r.stderr, r.stderr
    write_label_jsonl(tmp_path / "short.jsonl", _two_kinds(english_rows(20, 1)))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "c", "--data", tmp_path / "short.jsonl")
    assert r.returncode == 0 and "past the classifier's" not in r.stderr, r.stderr


@pytest.mark.parametrize("n", [2, 30, 90, 99])
def test_the_few_prompts_warning_never_prints_its_two_standard_errors_alike(n):
    """label-report on 99 held-out prompts (a prompts file's 100 with a duplicate left out) warned of "a standard error
    of 0.07; 100 or more bring it to 0.07"."""
    import re

    from ltrsched.predictors.tau_noise import few_prompts_warning

    here, there = re.findall(r"\d\.\d+", few_prompts_warning(n))
    assert here != there and float(here) > float(there)


def test_a_bucket_of_one_token_is_named_in_the_singular(tmp_path, capsys):
    """A short-answer model's lengths of 1 and 2 tokens, classes of 1 token: the warnings named the most common
    bucket, and the one predicted for every prompt, "(1 tokens)"."""
    for name, n, seed in (("tr", 40, 0), ("ev", 20, 1)):
        rows = [(p, 1 + i % 2) for i, (p, _) in enumerate(english_rows(n, seed))]
        write_label_jsonl(tmp_path / f"{name}.jsonl", rows)
    r = run_cli_fast(capsys, "train", "--kind", "class", "--bucket", 1, "--epochs", 1, "--data", tmp_path / "tr.jsonl",
                     "--eval-data", tmp_path / "ev.jsonl", "-o", tmp_path / "c")
    assert r.returncode == 0 and "the most common bucket (1 token)," in r.stderr, r.stderr
    assert "1 tokens" not in r.stderr, r.stderr


def test_training_lengths_past_the_class_cap_are_noted_with_a_bucket_that_reaches_them(tmp_path, capsys):
    """Classes of 1 token on a tail to 10^6 tokens: the classes stop at 65,536, so the longest training lengths trained
    as the last class without a word, and the held-out note blamed "a classifier trained on shorter lengths"."""
    write_label_jsonl(tmp_path / "tr.jsonl", _pareto(english_rows(40, 0), 0))  # (2 of 40 at 10^6)
    write_label_jsonl(tmp_path / "ev.jsonl", _pareto(english_rows(20, 1), 1))
    r = run_cli_fast(capsys, "train", "--kind", "class", "--bucket", 1, "--epochs", 1, "--data", tmp_path / "tr.jsonl",
                     "--eval-data", tmp_path / "ev.jsonl", "-o", tmp_path / "c")
    cap = ("past the classifier's 65,536 classes of 1 token: they count as its last class (65535+ tokens), whose "
           "midpoint, 65535.5 tokens, is the longest length it predicts (its classes stop at 65,536, the most a "
           "classifier has: --bucket 16 or wider has classes up to 1,000,000 tokens)")
    assert r.returncode == 0 and f"training lengths are 65,536 tokens or more (up to 1,000,000), {cap}" in r.stderr, \
        r.stderr
    assert "held-out lengths are 65,536 tokens or more (up to 1,000,000), " + cap in r.stderr, r.stderr
    assert "trained on shorter lengths" not in r.stderr, r.stderr
