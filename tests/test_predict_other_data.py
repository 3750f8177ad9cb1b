"""The predictors on data unlike ShareGPT's: other models' lengths (all at a cap, heavy-tailed), other prompt sources,
checkpoints edited or read through another tokenizer, and training options at their limits. Each case ends in a
correct result or one line naming the problem and the fix (exit 2)."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from label_data import WORDS, FakeLabelDriver, english_rows, write_label_jsonl
from tiny_models import save_tiny_opt


def _ranker(path, rows, **config) -> None:
    """An n-gram ranker (one epoch) trained on ``rows``, saved at ``path``."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(epochs=1, **config))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(path)


def _edit(path, **changes) -> None:
    config = path / "predictor.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **changes}))


# ---------------------------------------------------------------- checkpoints read as other than trained
@pytest.mark.parametrize("field, value", [("ngrams", "tokens"), ("ngrams", "tokens+cjk-words")])
def test_a_feature_set_edited_after_training_is_refused_on_load(tmp_path, capsys, field, value):
    """predictor.json's n-gram set changed after training (the weights digest covers the weights only): evaluate
    loaded it and scored each prompt by the weights of other n-grams' buckets, held-out tau 0.29 -> -0.21, without a
    word."""
    _ranker(tmp_path / "ck", english_rows(120, 0))
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(40, 1))
    _edit(tmp_path / "ck", **{field: value})
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl")
    assert_one_line_error(r, f'predictor.json says {field} "{value}", but its weights were trained with {field} '
                       '"tokens+words"', 'set it back to "tokens+words", or train the predictor again')


def test_a_class_models_bucket_edited_after_training_is_refused(tmp_path):
    """A class model's bucket width gives its predicted lengths ((class + 0.5) x bucket): edited from 100 to 50 tokens,
    every predicted length halved without a word."""
    from ltrsched.errors import UserError
    from ltrsched.predictors.predictor import Predictor

    ck = tmp_path / "ck"
    _ranker(ck, english_rows(60, 0), kind="class", loss="ce", bucket=100, num_classes=82, hidden=8, dim=1 << 10)
    Predictor.load(ck)
    _edit(ck, bucket=50)
    with pytest.raises(UserError, match=r"says bucket 50, but its weights were trained with bucket 100"):
        Predictor.load(ck)


def test_another_tokenizer_at_the_hf_model_path_is_refused(tmp_path, capsys):
    """An HF ranker trained on a model directory without a tokenizer (Llama-3 ids folded into its vocabulary): a
    tokenizer.json added there later gave other token ids, and evaluate scored them with the trained weights without a
    word."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    model = save_tiny_opt(tmp_path / "tiny-opt")
    rows = english_rows(40, 0)
    predictor = Predictor(PredictorConfig(backbone="hf", hf_path=str(model), epochs=1, lr=1e-3, list_size=16,
                                          max_prompt_tokens=32))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(tmp_path / "ck")
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(12, 1))
    assert run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl").returncode == 0
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[UNK]", *WORDS])}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(model / "tokenizer.json"))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl")
    assert_one_line_error(r, f"the tokenizer of its model {model} turns prompts into other token ids",
                    "train the predictor again here")


def test_a_checkpoint_saved_before_the_record_loads_and_scores_as_before(tmp_path):
    """Checkpoints written before predictor.json recorded what they were trained with load as they did."""
    from ltrsched.predictors.config import TRAINED_WITH_KEY
    from ltrsched.predictors.predictor import Predictor

    rows = english_rows(60, 0)
    _ranker(tmp_path / "ck", rows)
    prompts = [p for p, _ in rows]
    before = Predictor.load(tmp_path / "ck").scores(prompts)
    config = json.loads((tmp_path / "ck" / "predictor.json").read_text())
    assert set(config[TRAINED_WITH_KEY]) == {"settings", "inputs_sha256"}
    config.pop(TRAINED_WITH_KEY)
    (tmp_path / "ck" / "predictor.json").write_text(json.dumps(config))
    assert np.array_equal(Predictor.load(tmp_path / "ck").scores(prompts), before)


def test_a_foreign_pickle_as_weights_is_one_line(tmp_path, capsys):
    """A plain pickle (another tool's "weights") printed torch's two-line UserWarning about its pickle protocol
    before the error line."""
    _ranker(tmp_path / "ck", english_rows(60, 0))
    (tmp_path / "ck" / "weights.pt").write_bytes(pickle.dumps({"bag.weight": 3}, protocol=4))
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(12, 1))
    with warnings.catch_warnings(record=True) as caught:  # (pytest keeps warnings off stderr: a process prints them)
        warnings.simplefilter("always")
        r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl")
    assert_one_line_error(r, "weights.pt: not a readable torch weights file")
    assert not [w for w in caught if "pickle" in str(w.message)], [str(w.message) for w in caught]


# ---------------------------------------------------------------- training options at their limits
@pytest.mark.parametrize("args, message", [
    # (--max-prompt-tokens 1 was accepted and ignored: the n-gram ranker trained on every token of every prompt)
    (["--max-prompt-tokens", "1"], "--max-prompt-tokens needs --backbone hf or probe"),
    # (one message for three options, naming neither the option nor its value)
    (["--epochs", "0"], "--epochs must be in [1, 10000], got 0"),
    (["--epochs", "-3"], "--epochs must be in [1, 10000], got -3"),
    (["--epochs", "100000"], "--epochs must be in [1, 10000], got 100000"),
    (["--list-size", "0"], "--list-size must be >= 2 (the rank loss orders the prompts of a list), got 0"),
    (["--list-size", "1"], "--list-size must be >= 2"),
    (["--backbone", "hf", "--hf-model", "minilm", "--max-prompt-tokens", "0"],
     "--max-prompt-tokens must be in [1, 1048576], got 0"),
])
def test_training_options_out_of_range_name_the_option_and_value(tmp_path, capsys, args, message):
    write_label_jsonl(tmp_path / "tr.jsonl", english_rows(20, 0))
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(10, 1))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
                     "-o", tmp_path / "ck", *args)
    assert_one_line_error(r, message)
    assert not (tmp_path / "ck").exists()


def test_a_pairwise_list_whose_pairs_outgrow_memory_is_refused_before_training(tmp_path, capsys):
    """--list-size 100000 was accepted whatever the data: on 100,000 labels one list of the pairwise loss would take
    ~160 GiB (17 bytes a pair, measured on 8,192). Here 9,000 prompts (~1.3 GiB a list): refused before the model."""
    rows = [(f"prompt number {i} " + WORDS[i % len(WORDS)], 1 + i % 997) for i in range(9000)]
    write_label_jsonl(tmp_path / "tr.jsonl", rows)
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(10, 1))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
                     "-o", tmp_path / "ck", "--list-size", "100000")
    assert_one_line_error(r, "--list-size 100000: the pairwise loss compares every pair", "lists of 9,000 prompts need ~1 GiB",
                    "use --list-size 8192 or less, or --loss listmle")
    assert not (tmp_path / "ck").exists()


def test_the_list_size_bound_is_the_pairwise_losss_only():
    from ltrsched.errors import UserError
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import MAX_PAIRWISE_LIST, check_list_size

    check_list_size(PredictorConfig(list_size=100_000), MAX_PAIRWISE_LIST)  # (a list holds at most every prompt)
    check_list_size(PredictorConfig(list_size=100_000, loss="listmle"), 100_000)  # (linear in the list)
    check_list_size(PredictorConfig(list_size=100_000, kind="class", loss="ce"), 100_000)
    with pytest.raises(UserError, match="lists of 8,193 prompts need"):
        check_list_size(PredictorConfig(list_size=100_000), MAX_PAIRWISE_LIST + 1)


# ---------------------------------------------------------------- lengths of other models
def test_lengths_all_at_a_models_cap_name_the_fix(tmp_path, capsys):
    """Another model that stops at its 512-token cap on every prompt: the error said "nothing to rank" and stopped
    there; it now says what to do."""
    write_label_jsonl(tmp_path / "tr.jsonl", [(p, 512) for p, _ in english_rows(30, 0)])
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(10, 1))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
                     "-o", tmp_path / "ck", "--epochs", "1")
    assert_one_line_error(r, "all 30 training prompts have the same output length (512)",
                    "label them again with a larger --max-tokens")
    write_label_jsonl(tmp_path / "one.jsonl", english_rows(1, 2))
    write_label_jsonl(tmp_path / "tr.jsonl", english_rows(30, 0))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "one.jsonl",
                     "-o", tmp_path / "ck", "--epochs", "1")
    assert_one_line_error(r, "need at least 2 held-out prompts, got 1: Kendall tau and the rank loss compare pairs")


# ---------------------------------------------------------------- label: resumed after a kill mid-write
def test_a_resumed_label_run_keeps_its_labels_and_serves_each_prompt_once(tmp_path, monkeypatch):
    """A run killed while writing a part leaves its temp file (the rename never happened); a part damaged on disk
    (here cut to half its bytes) is unreadable. The rerun keeps the readable parts' labels, serves only the prompts
    no readable part holds, and writes each prompt once. Before: the rerun (in the same process within the same
    second, as here) named its parts like the first run's and replaced them, losing k0 and k1; and the killed write's
    temp file stayed in OUT.parts/ for good (now removed under the lock: no other process writes there)."""
    import ltrsched.engine.runner as runner
    import ltrsched.labelling.generate as generate
    from ltrsched import atomic
    from ltrsched.engine.config import EngineConfig
    from ltrsched.labelling.jobs import LabelJob
    from ltrsched.labelling.parts import open_parts, parts_dir
    from ltrsched.labelling.run import _final_labels, _serve, _Stats
    from ltrsched.labelling.settings import LabelSettings, Sampling

    served = []

    def serve(driver, requests, on_done, window):
        for i, r in enumerate(requests):
            served.append(r.prompt_ids[0])
            on_done(i, generate.Generated(prompt_tokens=len(r.prompt_ids), output_tokens=10 + r.prompt_ids[0],
                                          finish_reason="stop"))

    monkeypatch.setattr(runner, "VllmDriver", FakeLabelDriver)
    monkeypatch.setattr(generate, "serve_requests", serve)
    jobs = [LabelJob("main", "eval", f"k{i}", f"prompt {i} 你好 🙂") for i in range(6)]
    settings = LabelSettings("m", "0" * 64, 100, Sampling(0.0, 1.0, 0), Sampling(0.8, 1.0, 1), prompts_sha256="a" * 64)
    out = tmp_path / "labels.parquet"

    def run(todo_keys):
        stats = _Stats()
        stats.context = 1000
        with open_parts(out, settings) as store:
            held = set(store.labelled()["key"].to_list())
            todo = [j for j in jobs if j.key not in held and j.key in todo_keys]
            _serve(todo, [[int(j.key[1:]), 7] for j in todo], EngineConfig(platform="cpu"), settings, store, 2, stats)
            return store, _final_labels(store.labelled(), jobs, store.schema)

    run({"k0", "k1", "k2", "k3"})  # killed after two parts of two prompts
    parts = sorted(parts_dir(out).glob("part-*.parquet"))
    assert len(parts) == 2
    parts[1].write_bytes(parts[1].read_bytes()[: parts[1].stat().st_size // 2])  # k2, k3: damaged on disk
    atomic.temp_path(parts_dir(out) / "part-killed-00003.parquet").write_bytes(b"PAR1 half a part")
    served.clear()
    store, final = run({f"k{i}" for i in range(6)})
    assert sorted(served) == [2, 3, 4, 5]  # k0, k1 kept; k2, k3 relabelled; k4, k5 new
    assert store.damaged == [parts[1].name]
    assert final["key"].to_list() == [f"k{i}" for i in range(6)] and final["output_tokens"].to_list() == [10, 11, 12, 13, 14, 15]
    assert final["prompt"].to_list() == [j.prompt for j in jobs]
    assert not list(parts_dir(out).glob(".*.tmp*"))


# ---------------------------------------------------------------- ensembles
def test_an_ensemble_member_replaced_by_another_checkpoint_is_refused(tmp_path, capsys):
    """The ensemble z-scores each member by the mean and spread of its scores when it was made: a member directory
    replaced later by another checkpoint (here the same ranker trained with another seed) loaded, and its scores
    were scaled by the old member's statistics without a word."""
    import shutil

    rows = english_rows(80, 0)
    _ranker(tmp_path / "a", rows, seed=0)
    _ranker(tmp_path / "b", rows, seed=1)
    _ranker(tmp_path / "c", rows, seed=2)
    write_label_jsonl(tmp_path / "tr.jsonl", rows)
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(20, 1))
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "a", "-m", tmp_path / "b", "--data", tmp_path / "tr.jsonl",
                     "--eval-data", tmp_path / "ev.jsonl", "-o", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    evaluate = ("evaluate", "-m", tmp_path / "e", "--data", tmp_path / "ev.jsonl")
    assert run_cli_fast(capsys, *evaluate).returncode == 0
    shutil.rmtree(tmp_path / "e" / "member1")
    shutil.copytree(tmp_path / "c", tmp_path / "e" / "member1")
    assert_one_line_error(run_cli_fast(capsys, *evaluate), "member 'member1' is not the checkpoint this ensemble was "
                    "calibrated on", "make the ensemble again")
    spec = json.loads((tmp_path / "e" / "ensemble.json").read_text())
    del spec["member_weights_sha256"]  # an ensemble written before the record: loads unchecked, as before
    (tmp_path / "e" / "ensemble.json").write_text(json.dumps(spec))
    assert run_cli_fast(capsys, *evaluate).returncode == 0


def test_an_ensemble_of_a_classifier_names_it(tmp_path, capsys):
    """It said "ensemble members must be rank predictors (--kind rank)", not which of the --model checkpoints is not."""
    rows = english_rows(60, 0)
    _ranker(tmp_path / "a", rows)
    _ranker(tmp_path / "c", rows, kind="class", loss="ce", bucket=100, num_classes=82, hidden=8, dim=1 << 10)
    write_label_jsonl(tmp_path / "tr.jsonl", rows)
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "a", "-m", tmp_path / "c", "--data", tmp_path / "tr.jsonl",
                     "-o", tmp_path / "e")
    assert_one_line_error(r, f"--model {tmp_path / 'c'} is a length classifier (--kind class)")
    assert not (tmp_path / "e").exists()


# ---------------------------------------------------------------- lengths tied at a cap
def test_an_epoch_whose_lists_hold_only_tied_lengths_is_not_blamed_on_the_learning_rate():
    """Two of three lengths at the 512-token cap, --list-size 2: where the shuffle put the short one in the list of
    one (skipped), the pairwise loss saw no pair of different lengths and moved no weight, and training stopped with
    "too small a step for float32 weights; raise --lr" at the default rate. Now a later epoch's lists train it; with
    no such epoch, the error says why."""
    from ltrsched.errors import UserError
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    prompts, lengths = [p for p, _ in english_rows(3, 7)], np.array([512, 512, 20])
    with pytest.raises(UserError, match=r"no list of --list-size 2 training prompts held two different lengths in 1 "
                                        r"epoch\(s\): the pairwise loss learned nothing \(2 of 3 lengths tie at 512 "
                                        r"tokens\); raise --list-size or --epochs"):
        Predictor(PredictorConfig(epochs=1, list_size=2, seed=1, dim=1 << 10)).fit(prompts, lengths)
    predictor = Predictor(PredictorConfig(epochs=3, list_size=2, seed=1, dim=1 << 10))
    predictor.fit(prompts, lengths)
    assert predictor.scores(prompts)[2] > predictor.scores(prompts)[:2].max()  # (the short one ranked first)


# ---------------------------------------------------------------- a model directory whose tokenizer is not its model's
@pytest.mark.parametrize("backbone", ["hf", "probe"])
def test_a_tokenizer_with_more_tokens_than_the_model_is_one_line(tmp_path, capsys, backbone):
    """A model directory whose tokenizer gives ids past its config.json's vocab_size (another model's tokenizer beside
    these weights): training was an IndexError traceback from the embedding ("index out of range in self")."""
    pytest.importorskip("transformers")
    import torch
    from test_probe import make_lm
    from transformers import LlamaConfig, LlamaForCausalLM

    model = make_lm(tmp_path / "lm")  # (a word-level tokenizer of ~30 tokens and a chat template)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=4, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                 pad_token_id=0)).save_pretrained(model)
    write_label_jsonl(tmp_path / "tr.jsonl", english_rows(20, 0))
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(10, 1))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
                     "-o", tmp_path / "ck", "--backbone", backbone, "--hf-model", model, "--epochs", "1")
    assert_one_line_error(r, f"the tokenizer of {model} gives ", "outside the model's 4 input embeddings",
                    "that tokenizer is not this model's")


@pytest.mark.parametrize("change, message", [
    ({"dim": 1024}, "bag.weight is 1048576x1 in the file, 1024x1 for these settings"),
    ({"kind": "class"}, "no tensor head.0.weight and 3 more"),
])
def test_weights_of_other_settings_say_how_they_differ(tmp_path, capsys, change, message):
    """predictor.json's sizes edited (or another checkpoint's weights.pt beside it): the error said only "weights do
    not match its ngram config (Error(s) in loading state_dict for NgramModel:)", torch's first line."""
    _ranker(tmp_path / "ck", english_rows(40, 0))
    _edit(tmp_path / "ck", **change)
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(10, 1))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl")
    assert_one_line_error(r, f"weights do not match its ngram config ({message}): the weights of another model or settings")
