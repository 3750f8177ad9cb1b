"""Work done once per command on the same inputs (preddup): ``Predictor.load`` reads its weights file and its
``predictor.json`` once each (it read the weights twice, torch's load and the digest check, and predictor.json four
times); ``ensemble`` refuses one checkpoint given twice (``-m a -m ./a``: loaded twice, scored twice and averaged in
at twice the weight, without a word) before loading any; the prompts a model backbone cuts are counted from the
token ids it scores them by (each prompt was tokenised a second time to count them). Spies count the calls."""

from __future__ import annotations

import builtins
import io
from collections import Counter

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from label_data import english_rows, write_label_jsonl


@pytest.fixture
def opened(monkeypatch):
    """A Counter of the files opened (by name), through ``open`` and ``Path.open`` (``io.open``) alike."""
    counts: Counter = Counter()
    real = io.open

    def spy(file, *args, **kwargs):
        counts[str(file).rsplit("/", 1)[-1]] += 1
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    return counts


def _ranker(path, rows):
    """A one-epoch n-gram ranker of 4,096 buckets trained on ``rows`` (prompt, length) and saved at ``path``."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(epochs=1, dim=4096))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(path)
    return predictor


def test_load_reads_the_weights_and_the_config_once_each(tmp_path, opened):
    from ltrsched.predictors.predictor import Predictor

    trained = _ranker(tmp_path / "ck", english_rows(30, 0))
    opened.clear()
    loaded = Predictor.load(tmp_path / "ck")
    assert opened["weights.pt"] == 1 and opened["predictor.json"] == 1, opened
    prompts = [p for p, _ in english_rows(8, 1)]
    assert np.array_equal(loaded.scores(prompts), trained.scores(prompts))  # (the same weights, bit for bit)
    assert loaded.weights_digest is not None
    assert np.array_equal(loaded.training_prompts, trained.training_prompts)


# ---------------------------------------------------------------- ensemble: one checkpoint given twice
@pytest.mark.parametrize("spelling", ["dotdot", "link"])
def test_ensemble_refuses_one_checkpoint_given_twice_before_loading_any(tmp_path, capsys, monkeypatch, spelling):
    """``-m a -m b/../a`` (or a link to ``a``) loaded ``a`` twice, scored it twice and counted it twice over."""
    from ltrsched.predictors.predictor import Predictor

    rows = english_rows(30, 0)
    _ranker(tmp_path / "a", rows)
    _ranker(tmp_path / "b", rows[::-1])
    if spelling == "link":
        (tmp_path / "also-a").symlink_to(tmp_path / "a", target_is_directory=True)
    again = tmp_path / "also-a" if spelling == "link" else tmp_path / "b" / ".." / "a"
    loads = []
    real = Predictor.load.__func__
    monkeypatch.setattr(Predictor, "load", classmethod(lambda cls, d: (loads.append(d), real(cls, d))[1]))
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "a", "-m", tmp_path / "b", "-m", again,
                     "--data", tmp_path / "x.jsonl", "-o", tmp_path / "ens")
    assert_one_line_error(r, f"--model {again} is the checkpoint --model {tmp_path / 'a'} again: give each checkpoint "
                             "once (--weight sets how much one counts)")
    assert loads == [] and not (tmp_path / "ens").exists()


# ---------------------------------------------------------------- prompts cut: tokenised once
@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A 1-layer BERT of 64 positions, random weights, no tokenizer (the HF backbone folds Llama-3 ids into it)."""
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("bert")
    transformers.BertConfig(vocab_size=512, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=64).save_pretrained(path)
    return path


@pytest.fixture
def tokenised(monkeypatch):
    """A Counter of the prompts the HF backbone tokenises (the canary prompts of its inputs digest aside)."""
    from ltrsched.predictors.backbones import HFBackbone
    from ltrsched.predictors.predictor import CANARY_PROMPTS

    counts: Counter = Counter()
    real = HFBackbone._token_ids

    def spy(self, prompts):
        counts.update(p for p in prompts if p not in CANARY_PROMPTS)
        return real(self, prompts)

    monkeypatch.setattr(HFBackbone, "_token_ids", spy)
    return counts


def _long_rows(word: str, n: int) -> list[tuple[str, int]]:
    """``n`` prompts, a third of them over 16 tokens (none over 64), and their lengths."""
    return [((word + " ") * (3 + 10 * (i % 3)) + str(i), 10 + 50 * (i % 3)) for i in range(n)]


def test_train_and_evaluate_count_the_cut_prompts_from_one_tokenisation(tmp_path, capsys, bert, tokenised):
    write_label_jsonl(tmp_path / "tr.jsonl", _long_rows("word", 12))
    write_label_jsonl(tmp_path / "ev.jsonl", _long_rows("story", 6))
    r = run_cli_fast(capsys, "train", "--backbone", "hf", "--hf-model", bert, "--data", tmp_path / "tr.jsonl",
                     "--eval-data", tmp_path / "ev.jsonl", "--epochs", "1", "--list-size", "4",
                     "--max-prompt-tokens", "16", "-o", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    assert ("note: 4 of 12 training prompts and 2 of 6 held-out prompts are longer than the 16 tokens the predictor "
            "reads (--max-prompt-tokens 16): it scores their first 16 tokens\n") in r.stderr, r.stderr
    assert len(tokenised) == 18 and set(tokenised.values()) == {1}, tokenised  # (it was 2 each: scored, then counted)
    tokenised.clear()
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "m", "--data", tmp_path / "tr.jsonl")
    assert "note: 4 of 12 evaluated prompts are longer than the 16 tokens" in r.stderr, r.stderr
    assert len(tokenised) == 12 and set(tokenised.values()) == {1}, tokenised


def test_the_probe_counts_its_cut_prompts_from_the_ids_it_runs(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from test_probe import make_lm

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor
    from ltrsched.predictors.probe import ProbeBackbone

    make_lm(tmp_path / "lm")
    predictor = Predictor(PredictorConfig(backbone="probe", hf_path=str(tmp_path / "lm"), max_prompt_tokens=12))
    prompts = ["please explain", "write a long story " * 3, "yes", "write a long story " * 3]  # 5, 15, 4, 15 tokens
    calls: Counter = Counter()
    real = ProbeBackbone._templated_ids
    monkeypatch.setattr(ProbeBackbone, "_templated_ids", lambda self, p: (calls.update([p]), real(self, p))[1])
    predictor.scores(prompts)
    assert predictor.cut_last == 2 and calls == Counter(set(prompts)), calls  # (each distinct prompt once)
    with predictor.backbone.fitting():  # (remembered states: their cut still counted, nothing tokenised again)
        predictor.scores(prompts[:2])
        calls.clear()
        predictor.scores(prompts[:3])
        assert predictor.cut_last == 1 and calls == Counter(["yes"]), calls


# ---------------------------------------------------------------- ensemble members of one n-gram set: featurised once
@pytest.fixture
def featurised(monkeypatch):
    """A Counter of the prompts the n-gram backbones featurise (the canary prompts of their inputs digest aside)."""
    import ltrsched.predictors.backbones as backbones
    from ltrsched.predictors.predictor import CANARY_PROMPTS

    counts: Counter = Counter()
    real = backbones.ngram_bags

    def spy(texts, *args, **kwargs):
        counts.update(t for t in texts if t not in CANARY_PROMPTS)
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(backbones, "ngram_bags", spy)
    return counts


def test_an_ensembles_ngram_members_featurise_each_prompt_once_between_them(tmp_path, featurised):
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import Predictor

    rows = english_rows(30, 0)
    members = []
    for seed, ngrams in ((0, "tokens+words"), (1, "tokens+words"), (2, "tokens")):  # (the third: other features)
        m = Predictor(PredictorConfig(epochs=1, dim=4096, seed=seed, ngrams=ngrams))
        m.fit([p for p, _ in rows], np.array([n for _, n in rows]))
        members.append(m)
    prompts = [p for p, _ in english_rows(12, 1)]
    alone = [m.scores(prompts) for m in members]  # (each member's own features: the old path)
    ens = Ensemble.calibrate(members, [p for p, _ in rows], [1.0, 2.0, 0.5])
    featurised.clear()
    scores = ens.scores(prompts)
    assert featurised == Counter({p: 2 for p in prompts}), featurised  # (it was 3: once for each member)
    assert np.array_equal(scores, ens.combine(alone))
    assert all(m._kept is None for m in members)  # (nothing kept after it)


def test_the_ensemble_command_featurises_each_prompt_once_for_ngram_members_alike(tmp_path, capsys, featurised):
    rows = english_rows(30, 0)
    write_label_jsonl(tmp_path / "tr.jsonl", rows)
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(10, 1))
    _ranker(tmp_path / "a", rows)
    _ranker(tmp_path / "b", rows[::-1])
    featurised.clear()
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "a", "-m", tmp_path / "b", "--data", tmp_path / "tr.jsonl",
                     "--eval-data", tmp_path / "ev.jsonl", "-o", tmp_path / "ens")
    assert r.returncode == 0, r.stderr
    assert len(featurised) == 40 and set(featurised.values()) == {1}, featurised  # (it was 2 each)


def test_label_report_featurises_the_eval_prompts_once_for_all_its_rankers(featurised):
    """The served-lengths ranker, the ChatGPT-lengths one and each learning-curve ranker scored the eval prompts,
    each featurising them again (the same n-gram set and size)."""
    from pathlib import Path

    import polars as pl

    from ltrsched.predictors.label_report import label_report
    from ltrsched.workloads.labels import attach_prompts

    labels = pl.read_parquet(Path(__file__).parents[1] / "data" / "smollm2-labels.parquet")
    main = labels.filter(pl.col("run") == "main")
    small = pl.concat([main.filter(pl.col("split") == s).head(40) for s in ("train", "eval")])
    report = label_report(small, "small.parquet", sizes=[10, 20, "all"], epochs=1)
    assert report.chatgpt_ranker is not None and len(report.learning_curve) == 3
    held_out = attach_prompts(small.filter(pl.col("split") == "eval"), "small.parquet")["prompt"].to_list()
    assert Counter(featurised[p] for p in held_out) == Counter({1: 40}), featurised  # (it was 4 each: 2 rankers of all the train prompts and 2 of the curve)
