"""An adversarial audit of the predictor side, round two: ``ensemble``, ``label-report``, ``predict``'s and
``evaluate``'s splits of a labels file, a learning rate that barely trains, and ``evaluate --plot``, on label files of
other models (other caps, one split only, no sampled run) and prompts unlike the training prompts."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from cli_helpers import run_cli_fast
from label_data import english_rows, write_label_jsonl

FOREIGN = ["مرحبا كيف حالك اليوم", "नमस्ते आप कैसे हैं", "ελληνικά κείμενο εδώ", "שלום עולם מה שלומך", "Привет как дела"]


def _labels(path, splits: dict[str, list[tuple[str, int]]], cap: int = 512, sample: list[tuple[str, int]] = ()) -> None:
    """A labels file of a prompts file (``ltrsched label --prompts``: it carries the text) at output cap ``cap``
    [tokens]: ``splits`` maps a split to its main run's (prompt, length) pairs, lengths cut at the cap; ``sample``:
    the sampled run's (prompt, length) of eval prompts."""
    from ltrsched.workloads.labels import prompt_digest

    rows = []
    for run, groups in (("main", splits), ("sample", {"eval": list(sample)})):
        for split, pairs in groups.items():
            for prompt, n in pairs:
                out = min(n, cap)
                rows.append({"key": f"k{prompt_digest(prompt)}", "split": split, "run": run,
                             "prompt_sha256": prompt_digest(prompt), "prompt_tokens": len(prompt.split()) + 3,
                             "output_tokens": out, "finish_reason": "length" if out == cap else "stop",
                             "model": "other-model", "model_sha256": "ab" * 32, "temperature": 0.0 if run == "main" else 0.8,
                             "top_p": 1.0, "max_tokens": cap, "seed": 0, "prompt": prompt})
    pl.DataFrame(rows).write_parquet(path)


def _ranker(path, rows, seed: int = 0) -> None:
    """An n-gram ranker (one epoch) trained on ``rows``, saved at ``path``."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(epochs=1, seed=seed))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(path)


# ---------------------------------------------------------------- ensemble
def test_ensemble_warns_where_held_out_prompts_are_unlike_a_members_training_prompts(tmp_path, capsys):
    """train, evaluate and predict warned of prompts that share no n-gram with an n-gram ranker's training prompts;
    ensemble printed each member's held-out tau on Arabic, Hindi, Greek, Hebrew and Russian prompts without a word."""
    train = english_rows(120, 0)
    _ranker(tmp_path / "a", train, seed=0)
    _ranker(tmp_path / "b", train, seed=1)
    write_label_jsonl(tmp_path / "train.jsonl", train)
    write_label_jsonl(tmp_path / "foreign.jsonl", [(p + " " + p[: i % 7], 10 + 7 * i) for i, p in enumerate(FOREIGN * 4)])
    write_label_jsonl(tmp_path / "eval.jsonl", english_rows(40, 1))
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "a", "-m", tmp_path / "b", "--data", tmp_path / "train.jsonl",
                     "--eval-data", tmp_path / "foreign.jsonl", "-o", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    found = [line for line in r.stderr.splitlines() if "share no word or token n-gram" in line]
    assert len(found) == 2 and all(line.startswith("warning: ") and " of 20 held-out prompts (member " in line
                                   for line in found), r.stderr
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "a", "-m", tmp_path / "b", "--data", tmp_path / "train.jsonl",
                     "--eval-data", tmp_path / "eval.jsonl", "-o", tmp_path / "e2")
    # (40 held-out prompts: only the warning that so few say little, test_tiny_samples)
    assert r.returncode == 0 and "share no" not in r.stderr and r.stderr.count("warning") == 1, r.stderr


def test_ensemble_warns_where_its_held_out_prompts_are_a_members_training_prompts(tmp_path, capsys):
    """A --data file without splits is its own "eval" split: ensemble reported a "held-out" tau of 0.68 on the
    members' training prompts without a word, where evaluate of the ensemble warns of it."""
    train = english_rows(120, 0)
    _ranker(tmp_path / "a", train, seed=0)
    _ranker(tmp_path / "b", train, seed=1)
    write_label_jsonl(tmp_path / "train.jsonl", train)
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "a", "-m", tmp_path / "b", "--data", tmp_path / "train.jsonl",
                     "-o", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    assert ("warning: 120 of the 120 held-out prompts are training prompts of a member: the held-out taus above are "
            "not held-out") in r.stderr, r.stderr


# ---------------------------------------------------------------- a labels file with one split
def test_predict_scores_a_labels_file_of_train_prompts_only_with_split(tmp_path, capsys):
    """predict scores a labels file's eval split: a file of train prompts only ended with "no 'main' labels in the
    eval split", and predict had no way to score it."""
    _ranker(tmp_path / "m", english_rows(60, 0))
    _labels(tmp_path / "train-only.parquet", {"train": english_rows(30, 2)}, cap=128)
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "train-only.parquet",
                     "-o", tmp_path / "o.parquet")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r
    assert ("holds labels of the train split only, none of the eval split; score those with --split 'train' or 'all'"
            in r.stderr), r.stderr
    for split in ("train", "all"):
        r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "train-only.parquet",
                         "-o", tmp_path / f"{split}.parquet", "--split", split)
        assert r.returncode == 0, r.stderr
        scored = pl.read_parquet(tmp_path / f"{split}.parquet")
        assert scored.height == 30 and scored["score"].is_finite().all()
    write_label_jsonl(tmp_path / "w.jsonl", english_rows(5, 3))  # (no splits: --split train would be all of it)
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "w.jsonl", "-o", tmp_path / "x.parquet",
                     "--split", "train")
    assert r.returncode == 2 and "has no train/eval split" in r.stderr and r.stderr.count("\n") == 1, r


@pytest.mark.parametrize("command", ["evaluate", "train", "ensemble"])
def test_a_labels_file_without_an_eval_split_says_what_to_do(tmp_path, capsys, command):
    _ranker(tmp_path / "m", english_rows(60, 0))
    _ranker(tmp_path / "m2", english_rows(60, 0), seed=1)
    _labels(tmp_path / "l.parquet", {"train": english_rows(30, 2)})
    args = {"evaluate": ["evaluate", "-m", tmp_path / "m", "--data", tmp_path / "l.parquet"],
            "train": ["train", "--data", tmp_path / "l.parquet", "-o", tmp_path / "t"],
            "ensemble": ["ensemble", "-m", tmp_path / "m", "-m", tmp_path / "m2", "--data", tmp_path / "l.parquet",
                         "-o", tmp_path / "e"]}[command]
    r = run_cli_fast(capsys, *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r
    hint = "--split 'train' or 'all'" if command == "evaluate" else "give held-out prompts with --eval-data FILE"
    assert "holds labels of the train split only, none of the eval split; " in r.stderr and hint in r.stderr, r.stderr


# ---------------------------------------------------------------- a learning rate that barely trains
def test_a_learning_rate_that_barely_trains_is_warned_and_the_default_is_not(tmp_path, capsys):
    """--lr 1e-7 moved the weights (so the first epoch's check passed) but kept the held-out prompts in the random
    initial weights' order (tau-b 1.000 between the scores before and after), and train said nothing. The default
    rate is not warned of, even where few steps leave the order near the untrained one."""
    from ltrsched.predictors.predictor import untrained_warning

    write_label_jsonl(tmp_path / "train.jsonl", english_rows(120, 0))
    write_label_jsonl(tmp_path / "eval.jsonl", english_rows(40, 1))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "train.jsonl", "--eval-data", tmp_path / "eval.jsonl",
                     "-o", tmp_path / "slow", "--lr", "1e-7")
    assert r.returncode == 0, r.stderr
    found = [line for line in r.stderr.splitlines() if "barely changed" in line]
    assert len(found) == 1 and found[0].startswith("warning: training at learning rate 1e-07 barely changed the "
                                                   "untrained model's order of the held-out prompts"), r.stderr
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "train.jsonl", "--eval-data", tmp_path / "eval.jsonl",
                     "-o", tmp_path / "default")
    assert r.returncode == 0 and "barely changed" not in r.stderr, r.stderr
    assert untrained_warning(None, 1e-7, 1e-2) is None and untrained_warning(0.5, 1e-4, 1e-2) is None
    assert untrained_warning(0.99, 1e-2, 1e-2) is None  # (the default rate: too few steps, not too small a rate)
    assert "raise --lr (this backbone's default: 0.01)" in untrained_warning(0.99, 1e-7, 1e-2)


def test_measuring_the_untrained_order_leaves_training_as_it_was(tmp_path):
    """The held-out prompts scored before training: the same weights, bit for bit, as without held-out prompts."""
    import torch

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    train, held = english_rows(60, 0), english_rows(20, 1)
    prompts, lengths = [p for p, _ in train], np.array([n for _, n in train])
    a, b = Predictor(PredictorConfig(dim=4096, epochs=2)), Predictor(PredictorConfig(dim=4096, epochs=2))
    a.fit(prompts, lengths, [p for p, _ in held], np.array([n for _, n in held]))
    b.fit(prompts, lengths)
    assert a.untrained_agreement is not None and b.untrained_agreement is None
    for (name, x), y in zip(a.backbone.model.state_dict().items(), b.backbone.model.state_dict().values()):
        assert torch.equal(x, y), name


# ---------------------------------------------------------------- evaluate --plot
def test_a_plot_format_this_machine_cannot_write_is_refused_before_evaluating(tmp_path, capsys):
    """--plot x.pgf needs a TeX system: without one evaluate printed its results, then a RuntimeError traceback."""
    import os

    _ranker(tmp_path / "m", english_rows(60, 0))
    write_label_jsonl(tmp_path / "eval.jsonl", english_rows(20, 1))
    (tmp_path / "bin").mkdir()  # (a PATH without TeX)
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "m", "--data", tmp_path / "eval.jsonl", "--plot",
                     tmp_path / "c.pgf", env={**os.environ, "PATH": str(tmp_path / "bin")})
    assert r.returncode == 2 and r.stderr.startswith("error: --plot ") and r.stderr.count("\n") == 1, r
    assert "cannot write pgf images on this machine" in r.stderr and r.stdout == ""
    assert not (tmp_path / "c.pgf").exists()
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "m", "--data", tmp_path / "eval.jsonl", "--plot",
                     tmp_path / "c.svg")
    assert r.returncode == 0 and (tmp_path / "c.svg").stat().st_size > 0, r
    # a name without a suffix was written as a PNG over whatever it named (plot cdf and simulate --cdf refuse it)
    (tmp_path / "NOTES").write_text("mine\n")
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "m", "--data", tmp_path / "eval.jsonl", "--plot",
                     tmp_path / "NOTES")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "NOTES.png" in r.stderr, r
    assert (tmp_path / "NOTES").read_text() == "mine\n"
    # the success line shows a name with a line break on one line
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "m", "--data", tmp_path / "eval.jsonl", "--plot",
                     tmp_path / "c\nd.svg")
    assert r.returncode == 0 and (tmp_path / "c\nd.svg").is_file(), r
    assert [line for line in r.stdout.splitlines() if line.startswith("wrote")] == [
        f"wrote {tmp_path}/c\\nd.svg"], r.stdout


# ---------------------------------------------------------------- label-report
def test_sizes_given_twice_train_once(tmp_path):
    """--sizes 20,20 trained the 20-prompt ranker twice (the curve kept one of the two points)."""
    from ltrsched.predictors.label_report import label_report, parse_sizes

    assert parse_sizes("20,20,all,10,all") == [20, "all", 10]
    _labels(tmp_path / "l.parquet", {"train": english_rows(40, 0), "eval": english_rows(30, 1)})
    df = pl.read_parquet(tmp_path / "l.parquet")
    heard = []
    report = label_report(df, "l.parquet", parse_sizes("20,20,all"), epochs=1, on_progress=heard.append)
    assert sum("learning curve (20 prompts)" in m for m in heard) == 1, heard
    assert [p["num_train"] for p in report.learning_curve] == [20, 40]


def test_label_report_says_why_a_row_is_n_a(tmp_path, capsys):
    """Labels without a sampled run, or whose sampled lengths are all at the cap, printed the ceiling's row as "n/a"
    and nothing more."""
    train = [(p, 600) for p, _ in english_rows(30, 0)] + english_rows(10, 5)  # (most at the 128-token cap)
    held = english_rows(30, 1)
    _labels(tmp_path / "none.parquet", {"train": train, "eval": held}, cap=128)
    _labels(tmp_path / "capped.parquet", {"train": train, "eval": held}, cap=128, sample=[(p, 999) for p, _ in held[:10]])
    r = run_cli_fast(capsys, "label-report", tmp_path / "none.parquet", "-o", tmp_path / "r1", "--sizes", "2,all",
                     "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert ("n/a (the served model with another seed): the labels hold a sampled run ('sample') of 0 of these "
            "prompts; it needs 2 or more") in r.stdout, r.stdout
    r = run_cli_fast(capsys, "label-report", tmp_path / "capped.parquet", "-o", tmp_path / "r2", "--sizes", "all",
                     "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert "n/a (the served model with another seed): on the 10 prompts of the sampled run" in r.stdout, r.stdout
    doc = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert doc["ceiling"] is None and "all equal" in doc["na_reasons"]["ceiling"]


def test_label_report_on_a_curve_subset_of_equal_lengths_explains_its_n_a():
    from ltrsched.predictors.label_report import LabelReport, _na_reasons

    report = LabelReport(model="m", num_train=4, num_eval=4, capped_share={}, served_ranker=0.2, chatgpt_ranker=None,
                         chatgpt_ranker_on_chatgpt=None, ceiling=0.3, num_ceiling=4, prompt_length=None,
                         chatgpt_length=None, learning_curve=[{"num_train": 2, "tau": None}, {"num_train": 4, "tau": 0.2}])
    report.na_reasons = _na_reasons(report, False, np.array([]))
    assert set(report.na_reasons) == {"learning_curve", "prompt_length"}
    md = report.markdown("x.parquet")
    assert "n/a (prompt length alone): every held-out prompt has the same length in tokens." in md
    assert "n/a: where a subset's served lengths are all equal" in md


def test_label_report_warns_where_held_out_prompts_are_train_prompts(tmp_path, capsys):
    """Two labels files merged (or a prompt under two keys) put train prompts among the held-out ones: the report's
    taus were measured partly on training prompts, without a word (train warns of the same)."""
    train, held = english_rows(40, 0), english_rows(30, 1)
    _labels(tmp_path / "l.parquet", {"train": train, "eval": held + [(p + "", n) for p, n in train[:5]]})
    df = pl.read_parquet(tmp_path / "l.parquet")  # (the same text under another key)
    df = df.with_columns(key=pl.when(pl.col("split") == "eval").then(pl.col("key") + "-eval").otherwise(pl.col("key")))
    df.write_parquet(tmp_path / "l.parquet")
    r = run_cli_fast(capsys, "label-report", tmp_path / "l.parquet", "-o", tmp_path / "r", "--sizes", "all",
                     "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert "warning: 5 of the 35 held-out (eval) prompts of l.parquet are also train prompts" in r.stderr, r.stderr
    assert "Warning: 5 of the 35 held-out prompts are also train prompts" in r.stdout
    assert json.loads((tmp_path / "r" / "report.json").read_text())["held_out_in_train"] == 5
