"""Served-model labels without an engine: the labels file as a workload (prompt text joined by key), training
and the label report on it, the prompts `ltrsched label` sends, its settings check and part files, bad input."""

from __future__ import annotations

import json
import re
import sys
import types
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from scipy.stats import kendalltau

from ltrsched.errors import UserError
from ltrsched.models import LLAMA_TINY
from ltrsched.workloads.labels import LABEL_COLUMNS, prompt_digest
from ltrsched.workloads import load_workload
from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error


def _window(split: str, n: int) -> pl.DataFrame:
    from ltrsched.workloads import load_workload

    return load_workload("sharegpt", split=split).df.head(n)


def synthetic_labels(path, num_train=120, num_eval=50, num_sample=20, seed=0, lengths=None,
                     max_tokens=400) -> pl.DataFrame:
    """A labels file on real ShareGPT keys (the first prompts of each window) with made-up lengths:
    ``lengths(split, chatgpt_lengths, rng)`` (default: ChatGPT's lengths plus noise), a sampled run on the first
    ``num_sample`` eval prompts, every length capped at ``max_tokens`` as a server caps it, and the capped
    ones marked ``length`` (a consistent file: the labels reader refuses one that is not)."""
    rng = np.random.default_rng(seed)
    frames = []
    for split, n in (("train", num_train), ("eval", num_eval)):
        w = _window(split, n)
        out = (lengths or (lambda s, c, r: np.maximum(1, c + r.integers(-40, 40, len(c)))))(split, w["output_tokens"].to_numpy(), rng)
        frames.append(pl.DataFrame({
            "key": w["source_id"], "split": split, "run": "main",
            "prompt_sha256": [prompt_digest(p) for p in w["prompt"].to_list()],
            "prompt_tokens": w["prompt_tokens"] + 30, "output_tokens": np.asarray(out, dtype=np.int64),
        }))
    main = pl.concat(frames)
    sample = main.filter(pl.col("split") == "eval").head(num_sample).with_columns(
        run=pl.lit("sample"), output_tokens=pl.Series(rng.integers(1, 600, num_sample), dtype=pl.Int64))
    df = pl.concat([main, sample]).with_columns(output_tokens=pl.min_horizontal("output_tokens", max_tokens)).with_columns(
        finish_reason=pl.when(pl.col("output_tokens") == max_tokens).then(pl.lit("length")).otherwise(pl.lit("stop")),
        model=pl.lit("synthetic"), model_sha256=pl.lit("0" * 64),
        temperature=pl.when(pl.col("run") == "main").then(0.0).otherwise(0.8), top_p=pl.lit(1.0),
        max_tokens=pl.lit(max_tokens, dtype=pl.Int64), seed=pl.when(pl.col("run") == "main").then(0).otherwise(1),
        repetition_penalty=pl.lit(1.0),
    ).select(list(LABEL_COLUMNS))
    df.write_parquet(path)
    return df


# ---------------------------------------------------------------- the labels file as a workload
def test_labels_file_loads_as_a_workload_with_text_joined_by_key(tmp_path):
    from ltrsched.workloads import load_workload

    labels = synthetic_labels(tmp_path / "l.parquet", num_train=30, num_eval=10, num_sample=4)
    ev = load_workload(str(tmp_path / "l.parquet"))  # default: the eval split of the main run
    assert ev.df.height == 10 and ev.has_text
    assert ev.df["key"].to_list() == _window("eval", 10)["source_id"].to_list()
    assert ev.df["prompt"].to_list() == _window("eval", 10)["prompt"].to_list()
    main_eval = labels.filter((pl.col("run") == "main") & (pl.col("split") == "eval"))
    assert ev.df["output_tokens"].to_list() == main_eval["output_tokens"].to_list()  # the served lengths, not the sample's
    assert ev.df["prompt_tokens"].to_list() == main_eval["prompt_tokens"].to_list()
    assert (ev.df["arrival_time"] == 0).all() and ev.df["request_id"].to_list() == list(range(10))
    train = load_workload(str(tmp_path / "l.parquet"), split="train")
    assert train.df["key"].to_list() == _window("train", 30)["source_id"].to_list()
    assert load_workload(str(tmp_path / "l.parquet"), split="all").df.height == 40
    assert load_workload(str(tmp_path / "l.parquet"), num_requests=5, seed=3).df.height == 5


@pytest.mark.parametrize("edit, message", [
    (lambda df: df.with_columns(key=pl.col("key") + "-gone"), "10 prompt key(s) are not in the installed ShareGPT package"),
    (lambda df: df.with_columns(prompt_sha256=pl.lit("0123456789abcdef")), "differs from what was labelled"),
    (lambda df: df.drop("finish_reason"), "missing column(s) finish_reason"),
    (lambda df: df.with_columns(run=pl.lit("other")), "column run has the value 'other'"),
    (lambda df: df.with_columns(output_tokens=pl.lit(0, dtype=pl.Int64)), "output_tokens < 1"),
    (lambda df: pl.concat([df, df.head(1)]), "a prompt key appears twice in one run"),
    # another tool's float lengths: 12.7 was truncated to 12 and trained on, silently
    (lambda df: df.with_columns(output_tokens=pl.col("output_tokens").cast(pl.Float64) + 0.5),
     "column output_tokens has 22 non-integer value(s)"),
    (lambda df: df.with_columns(prompt_tokens=pl.col("prompt_tokens").cast(pl.Float32) + 0.25),
     "column prompt_tokens has 22 non-integer value(s)"),
    # a bad value of a workload column names the row's key (its row in the split served is none of the file's)
    (lambda df: df.with_columns(score=pl.lit(float("inf"))),
     "column score has 10 non-finite value(s) (first: inf) in the row of key '"),
    # a Decimal column (a database export's) was cast to Int64 by truncation too: 12.50 served 12
    (lambda df: df.with_columns(output_tokens=(pl.col("output_tokens").cast(pl.Float64) + 0.5).cast(pl.Decimal(12, 2))),
     "column output_tokens has 22 non-integer value(s)"),
    # sampling settings no run can have had were read without a check
    (lambda df: df.with_columns(top_p=pl.lit(7.0)), "column top_p has 22 value(s) outside (0, 1] (first: 7.0"),
    (lambda df: df.with_columns(top_p=pl.lit(0.0)), "column top_p has 22 value(s) outside (0, 1]"),
    (lambda df: df.with_columns(temperature=pl.when(pl.col("run") == "sample").then(float("nan")).otherwise(0.0)),
     "column temperature has 2 value(s) outside [0, 100] (first: nan"),
    (lambda df: df.with_columns(temperature=pl.lit(-0.5)), "column temperature has 22 value(s) outside [0, 100]"),
    (lambda df: df.with_columns(temperature=pl.lit(float("inf"))), "column temperature has 22 value(s) outside"),
    (lambda df: df.with_columns(seed=pl.lit(-1, dtype=pl.Int64)), "column seed has 22 negative value(s)"),
])
def test_damaged_labels_file_is_one_line(tmp_path, capsys, edit, message):
    labels = synthetic_labels(tmp_path / "l.parquet", num_train=10, num_eval=10, num_sample=2)
    edit(labels).write_parquet(tmp_path / "bad.parquet")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "bad.parquet")), message)


@pytest.mark.parametrize("output, finish, why", [
    (401, "length", "more than its cap: the server stops at max_tokens"),
    (401, "stop", "more than its cap: the server stops at max_tokens"),
    (399, "length", "a length finish below the cap (`ltrsched label` serves only prompts with room for max_tokens)"),
])
def test_labels_inconsistent_with_their_cap_are_one_line(capsys, tmp_path, output, finish, why):
    """A label longer than its own max_tokens (impossible: the server stops there), or a 'length' finish short
    of it, was read as a served length; the error names the row, its key and the values."""
    from ltrsched.workloads import load_workload

    labels = synthetic_labels(tmp_path / "l.parquet", num_train=10, num_eval=10, num_sample=2)
    row = pl.int_range(pl.len()) == 12  # the third eval prompt's main label (rows: 10 train, 10 eval, 2 sample)
    edit = lambda out, fin: labels.with_columns(output_tokens=pl.when(row).then(out).otherwise("output_tokens"),  # noqa: E731
                                                finish_reason=pl.when(row).then(pl.lit(fin)).otherwise("finish_reason"))
    edit(output, finish).write_parquet(tmp_path / "bad.parquet")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "bad.parquet")),
                          f"bad: row 13 of 22 (key {labels['key'][12]!r}, run main) has output_tokens {output}, "
                          f"max_tokens 400, finish_reason {finish!r}: {why}; 1 row(s) so")
    # what a server does make: an EOS as the last allowed token is a stop at the cap
    edit(400, "stop").write_parquet(tmp_path / "eos-at-cap.parquet")
    assert load_workload(str(tmp_path / "eos-at-cap.parquet")).df["output_tokens"][2] == 400


def test_train_and_evaluate_on_a_labels_file_without_prompt_text(capsys, tmp_path):
    """`train --data LABELS` trains on the train split's served lengths and reports tau on the eval split's."""
    labels = synthetic_labels(tmp_path / "l.parquet", num_train=60, num_eval=25)
    assert "prompt" not in labels.columns
    r = run_cli_fast(capsys, "train", "--data", str(tmp_path / "l.parquet"), "--epochs", "1", "--out", str(tmp_path / "ck"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "trained on 60 prompts; held-out (25) Kendall tau" in r.stdout
    r = run_cli_fast(capsys, "evaluate", "-m", str(tmp_path / "ck"), "--data", str(tmp_path / "l.parquet"))
    assert r.returncode == 0 and json.loads(r.stdout)["num_prompts"] == 25


@pytest.mark.parametrize("column", ["split", "key"])
def test_predict_column_must_not_clobber_a_labels_column(capsys, tmp_path, column):
    """predict --column split on a labels file wrote scores over the split column (exit 0), and the file it wrote
    no longer loaded ("column split has the value '0.123...'")."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    synthetic_labels(tmp_path / "l.parquet", num_train=10, num_eval=10, num_sample=0)
    Predictor(PredictorConfig(dim=64, epochs=1)).save(tmp_path / "ck")
    r = run_cli_fast(capsys, "predict", "-m", str(tmp_path / "ck"), "-w", str(tmp_path / "l.parquet"),
                     "-o", str(tmp_path / "o.parquet"), "--column", column)
    assert_one_line_error(r, f"--column {column!r} is a column of the labels file {tmp_path / 'l.parquet'}")
    assert not (tmp_path / "o.parquet").exists()


def test_train_and_evaluate_refuse_labels_of_two_models_or_caps(capsys, tmp_path):
    """`train --data` trained on a file mixing two models' labels (or two caps'), e.g. one model's train split and
    another's eval split: a ranker fitted to one model and its held-out tau measured on the other's lengths.
    label-report refused such a file; train and evaluate now share its check."""
    one = synthetic_labels(tmp_path / "one.parquet", num_train=30, num_eval=15, num_sample=0)
    higher = synthetic_labels(tmp_path / "higher.parquet", num_train=30, num_eval=15, num_sample=0, max_tokens=512)
    train, ev = pl.col("split") == "train", pl.col("split") == "eval"
    other_model = one.filter(ev).with_columns(model=pl.lit("other"), model_sha256=pl.lit("1" * 64))
    mixes = {"models": (pl.concat([one.filter(train), other_model]), "mixes the labels of 2 models (" + "0" * 64),
             "caps": (pl.concat([one.filter(train), higher.filter(ev)]), "mixes the labels of 2 output caps (max_tokens) (400, 512)")}
    r = run_cli_fast(capsys, "train", "--data", str(tmp_path / "one.parquet"), "--epochs", "1", "--out", str(tmp_path / "ck"))
    assert r.returncode == 0, r.stderr[-2000:]
    for what, (df, message) in mixes.items():
        df.write_parquet(tmp_path / f"{what}.parquet")
        message = f"{what} {message}"  # (named by the file's stem, as every labels error)
        assert_one_line_error(run_cli_fast(capsys, "train", "--data", str(tmp_path / f"{what}.parquet"), "--epochs", "1",
                                           "--out", str(tmp_path / f"ck-{what}")), message)
        assert not (tmp_path / f"ck-{what}").exists()
        assert_one_line_error(run_cli_fast(capsys, "evaluate", "-m", str(tmp_path / "ck"),
                                           "--data", str(tmp_path / f"{what}.parquet"), "--split", "eval"), message)


# ---------------------------------------------------------------- the report
def test_label_report_numbers_on_synthetic_labels(tmp_path, capsys):
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.label_report import label_report
    from ltrsched.predictors.predictor import Predictor, kendall_tau

    labels = synthetic_labels(tmp_path / "l.parquet", num_train=80, num_eval=40, num_sample=15)
    report = label_report(labels, "l.parquet", sizes=[20, 50, 1000, "all"], seed=0, epochs=1)
    main = labels.filter(pl.col("run") == "main")
    ev = main.filter(pl.col("split") == "eval")
    chatgpt_eval = _window("eval", 40)["output_tokens"].to_numpy()
    assert (report.num_train, report.num_eval, report.num_ceiling) == (80, 40, 15)
    # the numbers that need no training, computed here independently (scipy's tau-b)
    sample = labels.filter(pl.col("run") == "sample")
    assert report.ceiling == pytest.approx(kendalltau(ev.head(15)["output_tokens"], sample["output_tokens"]).statistic)
    assert report.prompt_length == pytest.approx(kendalltau(ev["prompt_tokens"], ev["output_tokens"]).statistic)
    assert report.chatgpt_length == pytest.approx(kendalltau(chatgpt_eval, ev["output_tokens"]).statistic)
    assert report.capped_share["eval"] == pytest.approx(float((ev["output_tokens"] >= 400).mean()))
    # the rankers: trained on the train split's served lengths, and on ChatGPT's lengths of the same prompts
    train_prompts = _window("train", 80)["prompt"].to_list()
    served = Predictor(PredictorConfig(seed=0, epochs=1))
    served.fit(train_prompts, main.filter(pl.col("split") == "train")["output_tokens"].to_numpy())
    eval_prompts = _window("eval", 40)["prompt"].to_list()
    assert report.served_ranker == pytest.approx(kendall_tau(served.scores(eval_prompts), ev["output_tokens"].to_numpy()))
    chatgpt = Predictor(PredictorConfig(seed=0, epochs=1))
    chatgpt.fit(train_prompts, _window("train", 80)["output_tokens"].to_numpy())
    assert report.chatgpt_ranker == pytest.approx(kendall_tau(chatgpt.scores(eval_prompts), ev["output_tokens"].to_numpy()))
    assert report.chatgpt_ranker_on_chatgpt == pytest.approx(kendall_tau(chatgpt.scores(eval_prompts), chatgpt_eval))
    # the curve: one point per size, sizes past the train set collapse into "all", which is the served ranker
    assert [p["num_train"] for p in report.learning_curve] == [20, 50, 80]
    assert ("warning: --sizes 1000 is more than the 80 train prompts of the labels: the learning curve's last point "
            "uses all 80") in capsys.readouterr().err
    assert report.learning_curve[-1]["tau"] == report.served_ranker
    assert all(-1 <= p["tau"] <= 1 for p in report.learning_curve)


def test_label_report_command_writes_its_files(capsys, tmp_path):
    synthetic_labels(tmp_path / "l.parquet", num_train=40, num_eval=20, num_sample=0)
    r = run_cli_fast(capsys, "label-report", str(tmp_path / "l.parquet"), "--out", str(tmp_path / "rep"), "--sizes", "10,all",
                     "--epochs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["ceiling"] is None and data["num_ceiling"] == 0  # no sampled run: no ceiling, said so
    assert "| ranker trained on the served model's lengths |" in (tmp_path / "rep" / "report.md").read_text()
    curve = pl.read_csv(tmp_path / "rep" / "learning_curve.csv")
    assert curve["num_train"].to_list() == [10, 40]
    # (it said `wrote DIR/report.md, report.json, learning_curve.csv`: the last two as if in the current directory)
    rep = tmp_path / "rep"
    assert r.stdout.strip().splitlines()[-1] == f"wrote {rep}/report.md, {rep}/report.json, {rep}/learning_curve.csv"


@pytest.mark.parametrize("args, message", [
    (["--sizes", "10,x"], "--sizes takes training-set sizes"),
    (["--sizes", "1"], "at least 2 training prompts"),
    (["--sizes", "1_0"], "--sizes takes training-set sizes"),  # int("1_0") was 10
    (["--epochs", "0"], "--epochs must be >= 1"),
])
def test_label_report_bad_options_are_one_line(capsys, tmp_path, args, message):
    synthetic_labels(tmp_path / "l.parquet", num_train=10, num_eval=10, num_sample=0)
    assert_one_line_error(run_cli_fast(capsys, "label-report", str(tmp_path / "l.parquet"), "--out", str(tmp_path / "r"),
                                       *args), message)


def test_label_report_refuses_mixed_models_or_caps_and_a_missing_split(tmp_path):
    """Labels of two models (or two caps) in one file made a report on the mix, named after the first row's
    model; a file without train (or eval) labels said only "need at least 2 training prompts, got 0"."""
    from ltrsched.predictors.label_report import label_report

    labels = synthetic_labels(tmp_path / "l.parquet", num_train=10, num_eval=10, num_sample=0)
    other = pl.when(pl.col("split") == "train")
    mixed = labels.with_columns(model=other.then(pl.lit("other")).otherwise("model"),
                                model_sha256=other.then(pl.lit("1" * 64)).otherwise("model_sha256"))
    with pytest.raises(UserError, match="l.parquet mixes the labels of 2 models .*; models other, synthetic"):
        label_report(mixed, "l.parquet", sizes=["all"], epochs=1)
    capped_higher = synthetic_labels(tmp_path / "m.parquet", num_train=10, num_eval=10, num_sample=0, max_tokens=512)
    two_caps = pl.concat([labels.filter(pl.col("split") == "train"), capped_higher.filter(pl.col("split") == "eval")])
    with pytest.raises(UserError, match=r"mixes the labels of 2 output caps \(max_tokens\) \(400, 512\)"):
        label_report(two_caps, "l.parquet", sizes=["all"], epochs=1)
    for split in ("train", "eval"):
        with pytest.raises(UserError, match=f"has no 'main' labels of the {split} split: .* --splits train,eval"):
            label_report(labels.filter(pl.col("split") != split), "l.parquet", sizes=["all"], epochs=1)


def test_label_report_refuses_a_plain_workload(capsys, tmp_path):
    from conftest import make_workload

    make_workload([10, 20], [5, 6]).save(tmp_path / "wl.parquet")
    assert_one_line_error(run_cli_fast(capsys, "label-report", str(tmp_path / "wl.parquet"), "--out", str(tmp_path / "r")),
                          "is not a labels file")


@pytest.mark.parametrize("name, content", [("x.csv", "key,output_tokens\n1,2\n"), ("x.parquet", "garbage")])
def test_label_report_says_it_reads_the_parquet_labels_file(capsys, tmp_path, name, content):
    """`label-report x.csv` said "cannot read x.csv: ComputeError: parquet: File out of specification", not what
    it expects."""
    (tmp_path / name).write_text(content)
    assert_one_line_error(run_cli_fast(capsys, "label-report", str(tmp_path / name), "--out", str(tmp_path / "r")),
                          "as Parquet: label-report reads the .parquet labels file that `ltrsched label --out "
                          "FILE.parquet` writes")


# ---------------------------------------------------------------- what `ltrsched label` sends
def test_label_jobs_are_the_selection_windows_nested_by_limit():
    from ltrsched.labelling.jobs import parse_splits, select_jobs

    assert parse_splits("train, eval,train") == ("train", "eval")
    jobs = select_jobs(("train", "eval"), 5, 3)
    assert [(j.run, j.split) for j in jobs] == [("main", "train")] * 5 + [("main", "eval")] * 5 + [("sample", "eval")] * 3
    assert [j.key for j in jobs[:5]] == _window("train", 5)["source_id"].to_list()
    assert [j.key for j in jobs[10:]] == [j.key for j in jobs[5:8]]  # the sampled prompts have main labels too
    more = select_jobs(("eval",), 8, 0)
    assert [j.key for j in more[:5]] == [j.key for j in jobs[5:10]]  # a larger limit extends a smaller one


@pytest.mark.parametrize("args, message", [
    (["--splits", "test"], "--splits takes train and/or eval"),
    (["--limit", "0"], "--limit must be >= 1"),
    (["--chunk", "0"], "--chunk must be >= 1"),
    (["--max-tokens", "0"], "--max-tokens must be >= 1"),
    (["--temperature", "-1"], "--temperature must be in [0, 100]"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--sample-subset", "2", "--sample-temperature", "0"], "--sample-temperature 0 is greedy"),
    (["--sample-subset", "5", "--splits", "train"], "add eval to --splits"),
    # sampled-run settings without a sampled run changed nothing (they were accepted silently)
    (["--sample-temperature", "0.5"], "--sample-temperature set the sampled run, which only --sample-subset K"),
    (["--sample-top-p", "0.9", "--sample-seed", "3"], "--sample-top-p, --sample-seed set the sampled run"),
    (["--sample-subset", "5", "--limit", "2"], "--sample-subset 5 exceeds --limit 2"),
    (["--model", "/no/such/dir"], "is neither a built-in name"),
    (["--repetition-penalty", "0"], "--repetition-penalty must be in (0, 100], got 0.0"),
    (["--repetition-penalty", "nan"], "--repetition-penalty must be in (0, 100], got nan"),
    (["--repetition-penalty", "inf"], "--repetition-penalty must be in (0, 100], got inf"),
    (["--sample-subset", "2", "--sample-repetition-penalty", "-1.1"], "--sample-repetition-penalty must be in (0, 100]"),
    (["--sample-repetition-penalty", "1.2"], "--sample-repetition-penalty set the sampled run, which only --sample-subset"),
])
def test_label_bad_input_is_one_line_before_any_engine(tmp_path, capsys, args, message):
    r = run_cli_fast(capsys, "label", "--out", str(tmp_path / "l.parquet"), *args)
    assert_one_line_error(r, message)
    assert not (tmp_path / "l.parquet").exists() and not (tmp_path / "l.parquet.parts").exists()


def _tiny_chat_model(directory, context: int):
    """A model directory `label` accepts without starting an engine: config.json, a (empty) weights file and a
    word-level tokenizer with a chat template (one token per word)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    fast.save_pretrained(directory)
    from ltrsched.models import LLAMA_TINY  # (its sizes: one left out is transformers' default, refused before the start)

    (directory / "config.json").write_text(json.dumps({**LLAMA_TINY, "max_position_embeddings": context}))
    (directory / "model.safetensors").write_bytes(b"")
    return directory


def test_label_with_no_prompt_that_fits_writes_nothing(capsys, tmp_path):
    """Every prompt skipped as too long wrote a 0-row labels file ("nothing to serve: every requested prompt is
    already labelled"); and the part directory that run left refused the lower --max-tokens the fix needs."""
    pytest.importorskip("transformers")
    model = _tiny_chat_model(tmp_path / "m", context=64)
    out = tmp_path / "l.parquet"
    r = run_cli_fast(capsys, "label", "--model", str(model), "--splits", "eval", "--limit", "3", "--max-tokens", "62",
                     "--out", str(out))
    assert_one_line_error(r, "none of the 3 prompt(s) fits the 64-token context with --max-tokens 62 (prompts of at "
                             "most 2 tokens): nothing labelled")
    assert not out.exists() and not out.with_suffix(".json").exists()
    from ltrsched.labelling.parts import open_parts

    with open_parts(out, _settings(max_tokens=9)) as store:  # no parts yet: other settings are taken, not refused
        assert store.labelled().height == 0


def test_label_out_must_be_parquet(capsys, tmp_path):
    assert_one_line_error(run_cli_fast(capsys, "label", "--out", str(tmp_path / "l.csv")), "--out must be a .parquet file")


# ---------------------------------------------------------------- settings and part files
def _settings(**changes):
    """The settings ``synthetic_labels`` rows record (a part's rows must be labels of its directory's settings)."""
    from ltrsched.labelling.settings import LabelSettings, Sampling

    base = dict(model="synthetic", model_sha256="0" * 64, max_tokens=400, main=Sampling(0.0, 1.0, 0), sample=Sampling(0.8, 1.0, 1))
    return LabelSettings(**{**base, **changes})


def test_parts_resume_with_the_same_settings_and_refuse_others(tmp_path):
    from ltrsched.labelling.parts import open_parts, parts_dir
    from ltrsched.labelling.settings import Sampling

    out = tmp_path / "l.parquet"
    rows = synthetic_labels(tmp_path / "src.parquet", num_train=3, num_eval=3, num_sample=0)
    with open_parts(out, _settings()) as store:
        assert store.labelled().height == 0
        store.write(rows.head(2).to_dicts())
        store.write(rows.slice(2, 3).to_dicts())
    with open_parts(out, _settings()) as store:  # resumed: both parts' rows
        assert store.labelled()["key"].to_list() == rows.head(5)["key"].to_list()
    assert len(list(parts_dir(out).glob("part-*.parquet"))) == 2
    with pytest.raises(UserError, match=r"other settings \(max_tokens 400 there, 9 here\)"):
        with open_parts(out, _settings(max_tokens=9)):
            pass
    with pytest.raises(UserError, match=r"sample.seed 1 there, 2 here"):
        with open_parts(out, _settings(sample=Sampling(0.8, 1.0, 2))):
            pass


def test_parts_are_locked_against_a_second_labeller(tmp_path):
    from ltrsched.labelling.parts import open_parts

    with open_parts(tmp_path / "l.parquet", _settings()):
        with pytest.raises(UserError, match="another `ltrsched label` is writing"):
            with open_parts(tmp_path / "l.parquet", _settings()):
                pass


def test_an_unreadable_part_is_dropped_and_its_prompts_relabelled(tmp_path):
    from ltrsched.labelling.parts import open_parts, parts_dir

    rows = synthetic_labels(tmp_path / "src.parquet", num_train=2, num_eval=2, num_sample=0)
    with open_parts(tmp_path / "l.parquet", _settings()) as store:
        store.write(rows.to_dicts())
    (parts_dir(tmp_path / "l.parquet") / "part-x-00001.parquet").write_bytes(b"PAR1 truncated")
    with open_parts(tmp_path / "l.parquet", _settings()) as store:
        assert store.labelled().height == 4 and store.damaged == ["part-x-00001.parquet"]
    assert not (parts_dir(tmp_path / "l.parquet") / "part-x-00001.parquet").exists()


def test_sampled_requests_get_a_seed_per_prompt_and_greedy_none():
    from ltrsched.labelling.settings import Sampling

    s = Sampling(0.8, 1.0, 1)
    assert s.request_seed("a") == s.request_seed("a") != s.request_seed("b")
    assert s.request_seed("a") != Sampling(0.8, 1.0, 2).request_seed("a")
    assert Sampling(0.0, 1.0, 1).request_seed("a") is None


# ---------------------------------------------------------------- engine options of real stopping
@pytest.mark.parametrize("options, message", [
    (dict(max_tokens=8), "--max-tokens caps requests that stop at the model's EOS: add --eos model"),
    (dict(eos="model"), "--eos model needs real weights"),
    (dict(eos="model", load_format="dummy", model="smollm2"), "--eos model needs real weights"),
    (dict(prompts="text", emulate_profile="a100-llama3-8b"), "the emulated engine (--emulate) runs no model"),
    (dict(eos="model", load_format="auto", max_tokens=0), "--max-tokens must be >= 1"),
])
def test_real_stopping_options_are_checked(options, message):
    from ltrsched.validation.engines import engine_config

    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        engine_config(**options)


def test_engine_settings_vllm_would_refuse_are_checked_first(capsys, tmp_path):
    """An unknown --dtype was vLLM's "2 validation errors for ModelConfig" (what to fix cut off); weights read
    from a model without any (a built-in config, a directory of config.json alone) were a traceback from vLLM's
    loader after the engine started."""
    from ltrsched.validation.engines import engine_config

    with pytest.raises(UserError, match="--dtype must be one of auto, half, float16, bfloat16, float, float32, got 'fp8'"):
        engine_config(model="llama-tiny", dtype="fp8", platform="cpu")
    with pytest.raises(UserError, match="built-in model 'llama-tiny' is a config.json without weights"):
        engine_config(model="llama-tiny", load_format="auto", platform="cpu")
    (tmp_path / "config.json").write_text(json.dumps(dict(LLAMA_TINY)))  # (a whole config: the checks before these pass)
    with pytest.raises(UserError, match="has no weights"):
        engine_config(model=str(tmp_path), load_format="auto", eos="model", platform="cpu")
    assert engine_config(model=str(tmp_path), platform="cpu").model == str(tmp_path)  # random weights: fine
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert engine_config(model=str(tmp_path), load_format="auto", platform="cpu").dtype == "float32"
    r = run_cli_fast(capsys, "replay", "-n", "2", "--model", "llama-tiny", "--load-format", "auto")
    assert_one_line_error(r, "is a config.json without weights")


def test_a_model_directory_without_a_layer_count_is_refused_before_the_engine_starts(capsys, tmp_path):
    """vLLM reads a model's config.json through transformers, whose config classes default the layer count (32 for
    Llama): a directory whose config.json lacks num_hidden_layers was served as a 32-layer model without a word (its
    KV sized for 32 layers too), or, on a CPU with --num-gpu-blocks, was a KeyError traceback."""
    from ltrsched.engine.runner import _kv_bytes_per_token
    from ltrsched.validation.engines import engine_config

    shape = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128, "vocab_size": 1000}  # (the other sizes: their class defaults are refused too)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(shape))
    for call in (lambda: engine_config(model=str(tmp_path), platform="cpu"),
                 lambda: _kv_bytes_per_token(str(tmp_path), "auto")):
        with pytest.raises(UserError, match=f"^{re.escape(str(config))} has no 'num_hidden_layers' \\(the model's "
                                            "number of decoder layers; transformers would assume a default"):
            call()
    for bad in (0, -2, 2.5, "2", True, None):
        config.write_text(json.dumps({**shape, "num_hidden_layers": bad}))
        with pytest.raises(UserError, match=f"^{re.escape(str(config))}: 'num_hidden_layers' must be a positive "
                                            f"integer, got {re.escape(repr(bad))}$"):
            engine_config(model=str(tmp_path), platform="cpu")
    config.write_text(json.dumps({**shape, "n_layer": 3}))  # an architecture's own name for it (GPT-2's)
    assert engine_config(model=str(tmp_path), platform="cpu").model == str(tmp_path)
    assert _kv_bytes_per_token(str(tmp_path), "float32") == 2 * 3 * 2 * 16 * 4
    config.write_text(json.dumps(shape))
    assert_one_line_error(run_cli_fast(capsys, "replay", "-n", "2", "--model", str(tmp_path)), f"{config} has no 'num_hidden_layers'")


def test_replay_with_prompt_text_needs_text_before_the_engine_starts(capsys, tmp_path):
    from conftest import make_workload

    make_workload([10, 20], [5, 6]).save(tmp_path / "wl.parquet")
    r = run_cli_fast(capsys, "replay", "-w", str(tmp_path / "wl.parquet"), "--prompts", "text")
    assert_one_line_error(r, "--prompts text needs the prompt text of every request")


def test_prompt_text_needs_a_tokenizer_before_the_engine_starts(capsys, tmp_path):
    """`replay --prompts text` on a built-in random-weights model got as far as loading vLLM, then failed with
    "vLLM refused the engine settings: Couldn't instantiate the backend tokenizer from one of:" (cut off)."""
    from ltrsched.validation.engines import engine_config

    with pytest.raises(UserError, match="built-in model 'llama-tiny' is a config.json without one"):
        engine_config(model="llama-tiny", prompts="text", platform="cpu")
    (tmp_path / "config.json").write_text(json.dumps(dict(LLAMA_TINY)))  # (a whole config: the checks before these pass)
    with pytest.raises(UserError, match=f"model directory {tmp_path} has none"):
        engine_config(model=str(tmp_path), prompts="text", platform="cpu")
    (tmp_path / "tokenizer.json").write_text("{}")
    assert engine_config(model=str(tmp_path), prompts="text", platform="cpu").prompts == "text"
    r = run_cli_fast(capsys, "replay", "-n", "2", "--prompts", "text")
    assert_one_line_error(r, "needs the model's tokenizer; built-in model 'llama-tiny'")


def test_label_report_lines_count_capped_and_skipped_prompts(tmp_path):
    """The summary `ltrsched label` prints: per run and split, labels and how many hit the cap; the prompts
    skipped as too long for the context, counted."""
    from ltrsched.labelling.jobs import LabelJob
    from ltrsched.labelling.run import _report, _Stats

    labels = synthetic_labels(tmp_path / "l.parquet", num_train=10, num_eval=6, num_sample=3)
    stats = _Stats()
    stats.labelled, stats.output_tokens, stats.seconds, stats.context = 5, 1000, 2.0, 600
    stats.host = {"cpu_model": "test cpu"}
    stats.skipped = [LabelJob("main", "eval", "k1", "p"), LabelJob("sample", "eval", "k1", "p")]
    lines = _report(labels, stats, [], 400, tmp_path / "l.parquet")
    for run, split in (("main", "train"), ("main", "eval"), ("sample", "eval")):
        g = labels.filter((pl.col("run") == run) & (pl.col("split") == split))
        capped = int((g["finish_reason"] == "length").sum())
        assert f"{run} {split}: {g.height} labels, {capped} hit the 400-token cap ({capped / g.height:.1%})" in lines
    assert "labelled 5 prompt(s) in 2.0 s (1000 output tokens, 500 tok/s) on test cpu" in lines
    assert ("skipped 1 prompt(s) longer than the context allows (600 - 400 = 200 tokens), 2 labels missing with the "
            "sampled run's; first: k1") in lines  # (one prompt, in both runs)


# ---------------------------------------------------------------- a prompts file of one's own (`label --prompts`)
def _words(i: int, rng) -> str:
    vocab = "cache batch token rank queue model prompt answer latency budget request decode".split()
    return " ".join(rng.choice(vocab, 4 + i % 17)) + f" (case {i})"


def test_prompts_files_of_every_format(tmp_path):
    """A labelling run needs prompts only: .jsonl objects with a prompt (an id keys it, else its line), a parquet
    prompt column (a key/id column keys it, else its row), ShareGPT first turns by record id; a repeated prompt
    is kept once, by its first key."""
    from ltrsched.workloads.prompts import load_prompts

    lines = [json.dumps({"prompt": "What is a KV cache?", "id": "kv"}), "",
             json.dumps({"prompt": "Explain batching.", "generated": "ignored", "lang": "en"}),
             json.dumps({"prompt": "What is a KV cache?", "id": "kv-again"}),  # the same prompt again: kept once
             json.dumps({"prompt": "Why rank requests?", "id": 7})]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    df = load_prompts(tmp_path / "p.jsonl")
    assert df.rows() == [("kv", "What is a KV cache?"), ("line-3", "Explain batching."), ("7", "Why rank requests?")]

    pl.DataFrame({"prompt": ["a b c", "d e f", "a b c"]}).write_parquet(tmp_path / "rows.parquet")
    assert load_prompts(tmp_path / "rows.parquet").rows() == [("row-1", "a b c"), ("row-2", "d e f")]
    pl.DataFrame({"id": [10, 11], "prompt": ["x y", "z w"], "other": [1.0, 2.0]}).write_parquet(tmp_path / "ids.parquet")
    assert load_prompts(tmp_path / "ids.parquet").rows() == [("10", "x y"), ("11", "z w")]

    conv = lambda p, r: [{"from": "human", "value": p}, {"from": "gpt", "value": r}]  # noqa: E731
    (tmp_path / "sg.json").write_text(json.dumps([
        {"id": "a", "conversations": conv("Tell me a story about a fox please", "Once upon a time there was a fox.")},
        {"id": "b_2", "conversations": conv("continue the story now", "And then the fox slept soundly.")},  # mid-conversation
        {"id": "c", "conversations": conv("hi", "Hello there, how are you today?")}]))  # prompt under 4 tokens
    assert load_prompts(tmp_path / "sg.json").rows() == [("a", "Tell me a story about a fox please")]
    pl.DataFrame([{"conversation_id": "c1", "conversation": conv("Tell me a story about a fox please", "Once upon a time, a fox.")}]
                 ).write_parquet(tmp_path / "lmsys.parquet")  # LMSYS-Chat-1M's parquet (role/content messages)
    assert load_prompts(tmp_path / "lmsys.parquet").rows() == [("c1", "Tell me a story about a fox please")]


@pytest.mark.parametrize("name, content, message", [
    ("p.csv", "prompt_tokens,output_tokens\n3,4\n", "no text column 'prompt' (have prompt_tokens, output_tokens); "
                                                     "a .csv trace of lengths holds no prompts"),
    ("p.md", "hello\n", "prompts come from a .json, .jsonl, .parquet, .csv, .txt file"),
    ("p.txt", "\n  \r\n\n", "p.txt: no prompts (no line with text)"),
    ("p.jsonl", '{"text": "hello"}\n', "p.jsonl:1: expected an object with a string field 'prompt'"),
    ("p.jsonl", '{"prompt": "ok"}\n{"prompt": "   "}\n', "p.jsonl:2: the prompt is empty"),
    ("p.jsonl", '{"prompt": "ok", "id": [1]}\n', "p.jsonl:1: 'id' must be a string or an integer"),
    ("p.jsonl", '{"prompt": "one", "id": "k"}\n{"prompt": "two", "id": "k"}\n', "the key 'k' names 2 prompts"),
    ("p.jsonl", '{"prompt": "cut \\ud83d emoji"}\n', "p.jsonl:1: the prompt holds a lone UTF-16 surrogate (\\ud83d at character 5)"),
    ("p.jsonl", "\n\n", "no prompts (empty file)"),
    ("p.jsonl", "{oops\n", "p.jsonl:1: not valid JSON"),
])
def test_bad_prompts_files_are_one_line(tmp_path, capsys, name, content, message):
    (tmp_path / name).write_text(content)
    r = run_cli_fast(capsys, "label", "--prompts", str(tmp_path / name), "--out", str(tmp_path / "l.parquet"))
    assert_one_line_error(r, message)
    assert not (tmp_path / "l.parquet.parts").exists()


def test_bad_prompt_tables_are_one_line(tmp_path):
    from ltrsched.workloads.prompts import load_prompts

    cases = {"no-text": (pl.DataFrame({"prompt_tokens": [3]}), "no text column 'prompt' (have prompt_tokens)"),
             "null": (pl.DataFrame({"prompt": ["a", None]}), "row 2 has no prompt"),
             "null-key": (pl.DataFrame({"key": ["a", None], "prompt": ["x", "y"]}), "row 2 has no key (column 'key')")}
    for name, (df, message) in cases.items():
        df.write_parquet(tmp_path / f"{name}.parquet")
        with pytest.raises(UserError, match=re.escape(message)):
            load_prompts(tmp_path / f"{name}.parquet")
    synthetic_labels(tmp_path / "labels.parquet", num_train=2, num_eval=2, num_sample=0)
    with pytest.raises(UserError, match="is a labels file"):
        load_prompts(tmp_path / "labels.parquet")
    with pytest.raises(UserError, match="prompts file not found"):
        load_prompts(tmp_path / "missing.jsonl")


def test_label_jobs_from_a_prompts_file(tmp_path):
    """A prompts file is split like the built-in prompts (one seeded shuffle), its eval window the first half; the
    packaged ShareGPT file given as a prompts file gets exactly the built-in windows."""
    from ltrsched.labelling.jobs import select_jobs
    from ltrsched.workloads.sharegpt import _package_file

    rng = np.random.default_rng(0)
    prompts = [_words(i, rng) for i in range(7)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    jobs = select_jobs(("train", "eval"), None, 2, tmp_path / "p.jsonl")
    assert [(j.run, j.split) for j in jobs] == [("main", "train")] * 3 + [("main", "eval")] * 4 + [("sample", "eval")] * 2
    assert sorted(j.prompt for j in jobs[:7]) == sorted(prompts)  # every prompt once, in one split
    assert all(j.key == f"line-{prompts.index(j.prompt) + 1}" for j in jobs)
    assert [j.key for j in jobs[7:]] == [j.key for j in jobs[3:5]]
    assert [j.key for j in select_jobs(("eval",), 2, 0, tmp_path / "p.jsonl")] == [j.key for j in jobs[3:5]]
    assert select_jobs(("train", "eval"), 30, 4, _package_file()) == select_jobs(("train", "eval"), 30, 4)
    (tmp_path / "one.jsonl").write_text(json.dumps({"prompt": prompts[0]}) + "\n")
    with pytest.raises(UserError, match="leave the train split empty"):
        select_jobs(("train", "eval"), None, 0, tmp_path / "one.jsonl")


def _labels_with_text(path, num_train=40, num_eval=20, num_sample=0, seed=0) -> pl.DataFrame:
    """What `label --prompts` writes: labels of made-up prompts (no ShareGPT key), their text in a prompt column."""
    rng = np.random.default_rng(seed)
    n = num_train + num_eval
    prompts = [_words(i, rng) for i in range(n)]
    out = np.minimum(400, np.array([20 * len(p.split()) for p in prompts]) + rng.integers(0, 30, n))
    main = pl.DataFrame({"key": [f"line-{i + 1}" for i in range(n)], "split": ["train"] * num_train + ["eval"] * num_eval,
                         "run": "main", "prompt": prompts, "output_tokens": out.astype(np.int64)})
    sample = main.filter(pl.col("split") == "eval").head(num_sample).with_columns(run=pl.lit("sample"))
    df = pl.concat([main, sample]).with_columns(
        prompt_sha256=pl.col("prompt").map_elements(prompt_digest, return_dtype=pl.Utf8),
        prompt_tokens=pl.col("prompt").str.len_chars().cast(pl.Int64), finish_reason=pl.lit("stop"),
        model=pl.lit("synthetic"), model_sha256=pl.lit("0" * 64), temperature=pl.lit(0.0), top_p=pl.lit(1.0),
        max_tokens=pl.lit(400, dtype=pl.Int64), seed=pl.lit(0, dtype=pl.Int64), repetition_penalty=pl.lit(1.0),
    ).select([*LABEL_COLUMNS, "prompt"])
    df.write_parquet(path)
    return df


def test_labels_with_their_text_need_no_sharegpt(tmp_path):
    """Labels of a prompts file carry the text: they load as a workload, train a ranker and make a report (its
    ChatGPT rows n/a: these prompts have no ChatGPT lengths) without the ShareGPT package; edited text is refused."""
    from ltrsched.predictors.label_report import label_report
    from ltrsched.workloads import load_workload

    labels = _labels_with_text(tmp_path / "l.parquet", num_sample=8)
    ev = load_workload(str(tmp_path / "l.parquet"))
    main_eval = labels.filter((pl.col("run") == "main") & (pl.col("split") == "eval"))
    assert ev.df["prompt"].to_list() == main_eval["prompt"].to_list() and ev.has_text
    assert ev.df["chatgpt_output_tokens"].null_count() == 20
    train = load_workload(str(tmp_path / "l.parquet"), split="train")  # what `train --data` trains on
    assert train.df["prompt"].to_list() == labels.filter(pl.col("split") == "train")["prompt"].to_list()
    report = label_report(labels, "l.parquet", sizes=["all"], epochs=1)  # (trains the ranker)
    assert report.served_ranker is not None and report.num_ceiling == 8 and report.ceiling is not None
    assert (report.chatgpt_ranker, report.chatgpt_ranker_on_chatgpt, report.chatgpt_length) == (None, None, None)
    labels.with_columns(prompt=pl.col("prompt") + " edited").write_parquet(tmp_path / "edited.parquet")
    with pytest.raises(UserError, match=re.escape("the text of 20 prompt(s) differs from what was labelled (first: key "
                                                  "'line-41'); the file was edited after labelling")):
        load_workload(str(tmp_path / "edited.parquet"))


def test_parts_of_a_prompts_file_keep_the_text_and_its_digest(tmp_path):
    from ltrsched.labelling.parts import open_parts

    rows = _labels_with_text(tmp_path / "src.parquet", num_train=3, num_eval=2)
    out = tmp_path / "l.parquet"
    with open_parts(out, _settings(prompts_sha256="b" * 64)) as store:
        store.write(rows.to_dicts())
    with open_parts(out, _settings(prompts_sha256="b" * 64)) as store:
        assert store.labelled()["prompt"].to_list() == rows["prompt"].to_list()
    with pytest.raises(UserError, match="prompts_sha256 \"b{64}\" there, \"c{64}\" here"):
        with open_parts(out, _settings(prompts_sha256="c" * 64)):
            pass
    with pytest.raises(UserError, match="prompts_sha256 \"b{64}\" there, \"\" here"):  # the built-in prompts
        with open_parts(out, _settings()):
            pass


def test_the_report_of_a_prompts_files_labels_has_no_chatgpt_rows(tmp_path):
    """Labels of a prompts file (not ShareGPT's) have no ChatGPT lengths: their report.md showed three n/a rows
    about ChatGPT's replies; it says once that there are none. Labels of the built-in prompts keep the rows."""
    from ltrsched.predictors.label_report import label_report

    labels = _labels_with_text(tmp_path / "l.parquet", num_sample=8)
    md = label_report(labels, "l.parquet", sizes=["all"], epochs=1).markdown("l.parquet")
    assert "ChatGPT's lengths (same prompts)" not in md and "ChatGPT's true length" not in md and "n/a" not in md
    assert "These prompts (a prompts file's, not the built-in ShareGPT's) have no ChatGPT lengths" in md
    builtin = synthetic_labels(tmp_path / "b.parquet", num_train=20, num_eval=10, num_sample=0)
    md = label_report(builtin, "b.parquet", sizes=["all"], epochs=1).markdown("b.parquet")
    assert "| ranker trained on ChatGPT's lengths (same prompts) |" in md and "| ChatGPT's true length |" in md


# ---------------------------------------------------------------- the repetition penalty (label --repetition-penalty)
def _penalty_settings(main_penalty=1.0, sample_penalty=1.0):
    from ltrsched.labelling.settings import LabelSettings, Sampling

    return LabelSettings(model="synthetic", model_sha256="0" * 64, max_tokens=400, main=Sampling(0.0, 1.0, 0, main_penalty),
                         sample=Sampling(0.8, 1.0, 1, sample_penalty))


def test_a_resumed_run_with_another_penalty_is_refused_and_old_parts_resume_at_one(tmp_path):
    """The penalty is part of the resume key: labels of two penalties are two models' lengths. Parts made before
    the option (their settings.json has no penalty) were made without one: a run at 1 resumes them."""
    from ltrsched.labelling.parts import SETTINGS_FILE, open_parts, parts_dir

    out = tmp_path / "l.parquet"
    rows = synthetic_labels(tmp_path / "src.parquet", num_train=2, num_eval=2, num_sample=0)
    with open_parts(out, _penalty_settings()) as store:
        store.write(rows.to_dicts())
    for settings, diff in ((_penalty_settings(1.2), "main.repetition_penalty 1.0 there, 1.2 here"),
                           (_penalty_settings(1.0, 1.3), "sample.repetition_penalty 1.0 there, 1.3 here")):
        with pytest.raises(UserError, match=diff):
            with open_parts(out, settings):
                pass
    recorded = parts_dir(out) / SETTINGS_FILE
    old = json.loads(recorded.read_text())
    for run in ("main", "sample"):
        del old[run]["repetition_penalty"]
    recorded.write_text(json.dumps(old))
    with open_parts(out, _penalty_settings()) as store:
        assert store.labelled().height == 4
    with pytest.raises(UserError, match="main.repetition_penalty 1.0 there, 1.1 here"):
        with open_parts(out, _penalty_settings(1.1)):
            pass


def _labels(path, penalties=None):
    df = synthetic_labels(path, num_train=3, num_eval=3, num_sample=0)
    if penalties is None:
        df = df.drop("repetition_penalty")
    else:
        df = df.with_columns(repetition_penalty=pl.Series(penalties, dtype=pl.Float64))
    df.write_parquet(path)
    return df


def test_labels_made_before_the_penalty_load_at_one_and_a_bad_or_mixed_penalty_is_one_line(tmp_path, capsys):
    from ltrsched.engine.runner import workload_penalty

    _labels(tmp_path / "old.parquet")
    old = load_workload(str(tmp_path / "old.parquet"))
    # (its requests' table as before the option: a validation's kept runs of it stay its own)
    assert workload_penalty(old) == 1.0 and "repetition_penalty" not in old.df.columns
    _labels(tmp_path / "new.parquet", [1.2] * 6)
    new = load_workload(str(tmp_path / "new.parquet"), split="train")
    assert workload_penalty(new) == 1.2 and new.df["repetition_penalty"].to_list() == [1.2] * 3
    _labels(tmp_path / "mixed.parquet", [1.2, 1.2, 1.2, 1.2, 1.1, 1.2])
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "mixed.parquet")),
                          "the 'main' labels mix 2 repetition penalties (1.2, 1.1)")
    _labels(tmp_path / "bad.parquet", [1.2, 1.2, 1.2, 0.0, 1.2, 1.2])
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "bad.parquet")),
                          "column repetition_penalty has 1 value(s) outside (0, 100]")


def _fake_vllm(monkeypatch):
    """Stand-ins for the vLLM names the driver's requests are built with (vLLM takes seconds to import)."""
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)


def test_an_engine_replaying_labels_with_the_models_eos_decodes_with_their_penalty(tmp_path, monkeypatch):
    """A replay of penalised labels with `--eos model` decoded greedily without the penalty: the engine generated
    other lengths than the labels it was checked against. The driver takes the workload's penalty."""
    import ltrsched.engine.runner as runner
    from ltrsched.engine.live_table import RequestInfo
    from ltrsched.policies import make_policy

    _fake_vllm(monkeypatch)
    _labels(tmp_path / "l.parquet", [1.2] * 6)
    workload = load_workload(str(tmp_path / "l.parquet"))
    added = []
    driver = SimpleNamespace(
        config=SimpleNamespace(eos="model", max_tokens=20, prompts="random", sampling="random"),
        prepare=lambda w: w, host=SimpleNamespace(describe=lambda: "host", to_dict=lambda: {}),
        num_gpu_blocks=lambda: 10, rng=np.random.default_rng(0), vocab_size=1000,
        engine=SimpleNamespace(add_request=lambda rid, prompt, params: added.append(params)))

    def replay(wl, policy, drv, config, host, progress, progress_label=None):  # the engine's requests, as VllmDriver.add sends them
        for rid in range(2):
            runner.VllmDriver.add(drv, RequestInfo(request_id=rid, arrival_time=0.0, prompt_tokens=3,
                                                   output_tokens=5, requested_output_tokens=5))
        return SimpleNamespace(summary={}, meta={})

    monkeypatch.setattr(runner, "replay", replay)
    result = runner.run_on_vllm(workload, make_policy("fcfs"), driver)
    assert [(p.repetition_penalty, p.temperature, p.ignore_eos) for p in added] == [(1.2, 0.0, False)] * 2
    assert result.meta["repetition_penalty"] == 1.2
    added.clear()  # a workload that is not labels: no penalty
    runner.run_on_vllm(load_workload("sharegpt", num_requests=2), make_policy("fcfs"), driver)
    assert [p.repetition_penalty for p in added] == [1.0] * 2
