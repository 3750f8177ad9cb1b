"""Predictors trained or evaluated on another model's lengths and prompts (predaudit2): which Kendall tau is reported,
class buckets that do not fit the data, prompts cut by the model, scores an LTR policy cannot order, checkpoints from
elsewhere, and the overhead measurement's batch sizes. Each case ends in a correct result or one line (exit 2)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.stats import kendalltau

from cli_helpers import assert_one_line_error, run_cli_fast
from label_data import english_rows, write_label_jsonl


def _ranker(path, rows, **config):
    """An n-gram ranker (one epoch, 4,096 buckets) trained on ``rows`` and saved at ``path``."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(epochs=1, dim=4096, **config))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(path)
    return predictor


def _capped(rows, cap: int = 512, share: float = 0.6):
    """``rows`` with the first ``share`` of every 10 at a served model's ``cap`` [tokens]."""
    return [(p, cap if i % 10 < share * 10 else n) for i, (p, n) in enumerate(rows)]


# ---------------------------------------------------------------- which tau
def test_evaluate_and_train_name_the_tau_variant_and_it_is_tau_b_on_capped_lengths(tmp_path, capsys):
    """60% of the held-out lengths at a 512-token cap: tau-a and tau-b differ by a third there, and the outputs said
    only "tau"."""
    rows = _capped(english_rows(40, 1))
    write_label_jsonl(tmp_path / "ev.jsonl", rows)
    write_label_jsonl(tmp_path / "tr.jsonl", english_rows(60, 0))
    predictor = _ranker(tmp_path / "ck", english_rows(60, 0))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["tau_variant"] == "tau-b"
    scores, lengths = predictor.scores([p for p, _ in rows]), np.array([n for _, n in rows])
    assert result["tau"] == pytest.approx(kendalltau(scores, -lengths, variant="b").statistic, abs=1e-12)
    assert result["tau"] != pytest.approx(kendalltau(scores, -lengths, variant="c").statistic, abs=1e-3)
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
                     "-o", tmp_path / "m", "--epochs", "1")
    assert r.returncode == 0 and "held-out (40) Kendall tau-b " in r.stdout, r


# ---------------------------------------------------------------- class buckets
@pytest.mark.parametrize("lengths, bucket, fitting", [
    (lambda i, n: 1 + n % 49, 820, 4),  # a short-answer model: every length under 50 tokens
    (lambda i, n: 512 if i % 10 < 6 else n, 820, 41),  # 60% at a 512-token cap, the rest 93-268
    (lambda i, n: 2000 + n, 1000, 17),  # 2,090-2,268 tokens: one bucket of a width given by hand
])
def test_class_lengths_in_one_default_bucket_name_a_bucket_from_the_data(tmp_path, capsys, lengths, bucket, fitting):
    """The class buckets are fixed widths (820 tokens: a tenth of ChatGPT's 8k span); another model's lengths all in
    one were refused with "use a smaller --bucket", no width named. The width named is a tenth of the training
    lengths' range, and it trains."""
    from ltrsched.predictors.config import PredictorConfig, class_count
    from ltrsched.predictors.predictor import bucket_labels

    train = [(p, lengths(i, n)) for i, (p, n) in enumerate(english_rows(60, 0))]
    write_label_jsonl(tmp_path / "tr.jsonl", train)
    write_label_jsonl(tmp_path / "ev.jsonl", [(p, lengths(i, n)) for i, (p, n) in enumerate(english_rows(20, 1))])
    args = ("train", "--kind", "class", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
            "--epochs", "1", "-o", tmp_path / "c")
    r = run_cli_fast(capsys, *args, "--bucket", bucket)
    assert_one_line_error(r, f"falls in one bucket of {bucket} tokens (--bucket {bucket}): nothing to learn; use --bucket "
                       f"{fitting} or less (about 10 classes over these lengths")
    assert ("the default 820 is a tenth of ChatGPT's 8,192-token span" in r.stderr) == (bucket == 820)
    values = np.array([n for _, n in train])
    config = PredictorConfig(kind="class", loss="ce", bucket=fitting, num_classes=class_count(fitting, values.max()))
    assert len(np.unique(bucket_labels(config, values))) >= 5  # (several classes, not two)
    r = run_cli_fast(capsys, *args, "--bucket", fitting)
    assert r.returncode == 0, r.stderr


def test_class_buckets_of_8192_tokens_or_more_are_judged_by_the_training_lengths(tmp_path, capsys):
    """The classes were counted over ChatGPT's 8,192-token span before the data was read: --bucket 100000 was refused
    as "needs at least 2 classes ... use --bucket below 8192" for lengths up to 10^7 (101 classes). Now counted from
    the lengths; where all fall in one bucket, the width that fits them is named."""
    from ltrsched.predictors.config import PredictorConfig

    heavy = [(p, 10**7 if i % 2 else 3) for i, (p, _) in enumerate(english_rows(30, 0))]
    write_label_jsonl(tmp_path / "tr.jsonl", heavy)
    write_label_jsonl(tmp_path / "ev.jsonl", [(p, 10**7 if i % 2 else 3) for i, (p, _) in enumerate(english_rows(6, 1))])
    args = ("train", "--kind", "class", "--eval-data", tmp_path / "ev.jsonl", "--epochs", "1")
    r = run_cli_fast(capsys, *args, "--data", tmp_path / "tr.jsonl", "--bucket", 100_000, "-o", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert PredictorConfig.load(tmp_path / "c").num_classes == 101
    write_label_jsonl(tmp_path / "short.jsonl", english_rows(30, 0))  # (lengths under 300 tokens)
    r = run_cli_fast(capsys, *args, "--data", tmp_path / "short.jsonl", "--bucket", 8192, "-o", tmp_path / "d")
    assert_one_line_error(r, "falls in one bucket of 8192 tokens (--bucket 8192): nothing to learn; use --bucket ")


def test_rank_labels_in_one_bucket_name_label_bucket_1(tmp_path, capsys):
    write_label_jsonl(tmp_path / "tr.jsonl", [(p, 1 + n % 49) for p, n in english_rows(30, 0)])
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(10, 1))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl",
                     "--label-bucket", "100", "--epochs", "1", "-o", tmp_path / "r")
    assert_one_line_error(r, "(--label-bucket 100): nothing to learn; use --label-bucket 1 (the labels are then the lengths)")


# ---------------------------------------------------------------- prompts longer than the model reads
def test_prompts_cut_by_an_hf_model_are_noted_in_train_and_evaluate(tmp_path, capsys):
    """An encoder reads at most its positions (MiniLM: 512) and --max-prompt-tokens: longer prompts (another source's
    long documents) were scored by their first tokens without a word."""
    transformers = pytest.importorskip("transformers")
    transformers.BertConfig(vocab_size=512, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=64).save_pretrained(tmp_path / "bert")
    long_rows = [("word " * (5 + 25 * (i % 4)) + str(i), 10 + 50 * (i % 4)) for i in range(16)]  # 4 of 16 > 64 tokens
    write_label_jsonl(tmp_path / "tr.jsonl", long_rows)
    write_label_jsonl(tmp_path / "ev.jsonl", [("story " * (3 + 10 * (i % 3)) + str(i), 10 + 50 * (i % 3))
                                              for i in range(6)])  # 2 of 6 over 16 tokens, none over 64
    args = ("train", "--backbone", "hf", "--hf-model", tmp_path / "bert", "--data", tmp_path / "tr.jsonl",
            "--eval-data", tmp_path / "ev.jsonl", "--epochs", "1", "--list-size", "4")
    r = run_cli_fast(capsys, *args, "-o", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert (f"note: 4 of 16 training prompts are longer than the 64 tokens the predictor reads (the 64 positions of "
            f"its model {tmp_path / 'bert'}): it scores their first 64 tokens\n") in r.stderr, r.stderr
    r = run_cli_fast(capsys, *args, "-o", tmp_path / "b", "--max-prompt-tokens", "16")
    assert r.returncode == 0, r.stderr
    assert ("note: 12 of 16 training prompts and 2 of 6 held-out prompts are longer than the 16 tokens the "
            "predictor reads (--max-prompt-tokens 16): it scores their first 16 tokens\n") in r.stderr, r.stderr
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "b", "--data", tmp_path / "tr.jsonl")
    assert "note: 12 of 16 evaluated prompts are longer than the 16 tokens" in r.stderr, r.stderr
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "a", "--data", tmp_path / "ev.jsonl")
    assert r.returncode == 0 and "note:" not in r.stderr, r.stderr  # (none cut: nothing said)


def test_an_ensemble_notes_its_members_cut_prompts_once(tmp_path, capsys):
    """An ensemble of HF members said nothing of the prompts their backbones cut (train, evaluate and predict of one
    predictor note them): ``ensemble`` and ``evaluate`` of an ensemble now name the members, one note for members
    that cut alike; the n-gram member reads every token and is not named."""
    transformers = pytest.importorskip("transformers")
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    transformers.BertConfig(vocab_size=512, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=64).save_pretrained(tmp_path / "bert")
    rows = [("word " * (3 + 10 * (i % 3)) + str(i), 10 + 50 * (i % 3)) for i in range(12)]  # 4 of 12 over 16 tokens
    write_label_jsonl(tmp_path / "tr.jsonl", rows)
    write_label_jsonl(tmp_path / "ev.jsonl", [("story " * (3 + 10 * (i % 3)) + str(i), 10 + 50 * (i % 3))
                                              for i in range(6)])  # 2 of 6 over 16 tokens
    hf = Predictor(PredictorConfig(backbone="hf", hf_path=str(tmp_path / "bert"), epochs=1, list_size=4,
                                   max_prompt_tokens=16))
    hf.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    hf.save(tmp_path / "hf")
    shutil.copytree(tmp_path / "hf", tmp_path / "hf2")  # (one checkpoint given twice is refused: test_predictor_work_once)
    _ranker(tmp_path / "ng", rows)
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "hf", "-m", tmp_path / "ng", "-m", tmp_path / "hf2",
                     "--data", tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl", "-o", tmp_path / "ens")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"note: ensemble members {tmp_path / 'hf'} and {tmp_path / 'hf2'}: 4 of 12 calibration prompts and "
                     "2 of 6 held-out prompts are longer than the 16 tokens the predictor reads (--max-prompt-tokens "
                     "16): it scores their first 16 tokens"], r.stderr
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ens", "--data", tmp_path / "ev.jsonl")
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("note:")] == [
        "note: ensemble members member0 and member2: 2 of 6 evaluated prompts are longer than the 16 tokens the "
        "predictor reads (--max-prompt-tokens 16): it scores their first 16 tokens"], r.stderr


def test_the_probe_counts_prompts_cut_through_its_chat_template(tmp_path):
    pytest.importorskip("transformers")
    from test_probe import make_lm

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor, cut_note

    make_lm(tmp_path / "lm")
    predictor = Predictor(PredictorConfig(backbone="probe", hf_path=str(tmp_path / "lm"), max_prompt_tokens=12))
    prompts = ["please explain", "write a long story " * 3, "yes"]  # "[ ... ] answer": 5, 15 and 4 tokens
    assert predictor.prompts_cut(prompts) == 1
    assert len(predictor.backbone._ids(prompts[1])) == 12  # (what it reads: 4 of the head, the last 8)
    assert cut_note(predictor, [(1, 3, "prompts")]) == (
        "note: 1 of 3 prompts are longer than the 12 tokens the predictor reads (--max-prompt-tokens 12): it scores "
        "their first 4 and last 8 tokens (the end of the chat template)")
    assert cut_note(predictor, [(0, 3, "prompts")]) is None
    assert Predictor(PredictorConfig(dim=64)).prompts_cut(prompts) is None  # (the n-gram ranker reads every token)


# ---------------------------------------------------------------- scores an LTR policy cannot order
def test_predict_warns_where_every_prompt_gets_the_same_score(tmp_path, capsys):
    """A predictor that reads every prompt alike (one its training never moved, or a tokenizer that makes unknown
    words of another language) wrote one score for all: `ltr` then ran first come first served without a word."""
    import torch

    rows = english_rows(30, 0)
    predictor = _ranker(tmp_path / "ok", rows)
    with torch.no_grad():
        for weights in predictor.backbone.model.parameters():
            weights.zero_()  # (every score: 0)
    predictor.save(tmp_path / "flat")
    write_label_jsonl(tmp_path / "w.jsonl", english_rows(12, 1))
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "flat", "-w", tmp_path / "w.jsonl", "-o", tmp_path / "s.parquet")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ("warning: the predictor gives all 12 prompts the same score (0): an LTR policy on column "
                        "'score' ranks them by arrival, first come first served (it cannot tell them apart: text its "
                        "model reads alike)\n")
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "ok", "-w", tmp_path / "w.jsonl", "-o", tmp_path / "t.parquet")
    assert r.returncode == 0 and r.stderr == "", r.stderr


# ---------------------------------------------------------------- checkpoints from elsewhere
@pytest.mark.parametrize("given, message", [
    ("ck/predictor.json", "ck/predictor.json is not a predictor checkpoint but a file of one: give its directory, {tmp}/ck"),
    ("ck/weights.pt", "ck/weights.pt is not a predictor checkpoint but a file of one: give its directory, {tmp}/ck"),
    ("empty", "empty is not a predictor checkpoint: it is a file, and a checkpoint is the directory `ltrsched train "
              "--out DIR` writes (predictor.json and weights.pt)"),
    ("missing", "missing is not a predictor checkpoint: no such directory; train one with `ltrsched train --out DIR`"),
    ("dirs/predictor.json", "dirs/predictor.json is not a file (a directory?); train the predictor again"),
    ("dirs2/weights.pt", "dirs2/weights.pt is not a file (a directory?); train the predictor again"),
    ("newer", 'newer/predictor.json: unknown setting "prompt_template" and 1 more: a checkpoint written by another '
              "ltrsched version, or edited by hand; train the predictor again with this one"),
])
def test_a_checkpoint_path_that_is_no_checkpoint_says_what_it_is(tmp_path, capsys, given, message):
    """A checkpoint's own file, an empty file, a missing path and a directory in place of predictor.json all said
    "(no predictor.json)", one in place of weights.pt "missing weights.pt"; settings of another version said
    "PredictorConfig.__init__() got an unexpected keyword argument"."""
    import shutil

    _ranker(tmp_path / "ck", english_rows(20, 0))
    (tmp_path / "empty").write_bytes(b"")
    shutil.copytree(tmp_path / "ck", tmp_path / "newer")
    config = tmp_path / "newer" / "predictor.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "prompt_template": "chat", "version": 2}))
    for name, damaged in (("dirs", "predictor.json"), ("dirs2", "weights.pt")):  # (a directory where the file was)
        shutil.copytree(tmp_path / "ck", tmp_path / name)
        (tmp_path / name / damaged).unlink()
        (tmp_path / name / damaged).mkdir()
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(10, 1))
    model = tmp_path / (given.split("/")[0] if given.startswith("dirs") else given)  # (dirs*: the checkpoint)
    r = run_cli_fast(capsys, "evaluate", "-m", model, "--data", tmp_path / "ev.jsonl")
    assert_one_line_error(r, f"error: {tmp_path}/" + message.format(tmp=tmp_path))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl")
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- overhead (Table 4)
def test_overhead_timing_at_batch_sizes_0_1_and_beyond_the_prompts():
    """A batch size of 0 was a ValueError from range(), no prompts a ZeroDivisionError, and -1 timed nothing and
    reported ~1e8 prompts/s; a batch size beyond the prompts was reported as given (per_batch_s of 50 prompts as a
    batch of 10^9). Each timing records torch's thread count, which its time depends on."""
    import torch

    from ltrsched.errors import UserError
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.overhead import measure_overhead
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(dim=64))
    prompts = [p for p, _ in english_rows(20, 0)]
    one = measure_overhead(predictor, prompts, batch_size=1, repeat=1)
    assert one["batch_size"] == 1 and one["per_batch_s"] == pytest.approx(one["per_request_s"])
    assert one["threads"] == torch.get_num_threads()
    huge = measure_overhead(predictor, prompts, batch_size=10**9, repeat=1)
    assert huge["batch_size"] == 20 and huge["per_batch_s"] == pytest.approx(huge["total_s"])
    for args, message in [((prompts, 0), "batch size of a predictor timing must be a whole number >= 1, got 0"),
                          ((prompts, -1), "got -1"), (([], 32), "no prompts to time the predictor on"),
                          ((prompts, 32, 0), "repeat count of a predictor timing must be a whole number >= 1, got 0")]:
        with pytest.raises(UserError, match=message):
            measure_overhead(predictor, *args)


# ---------------------------------------------------------------- lengths far from ChatGPT's
@pytest.mark.parametrize("loss", ["pairwise", "listmle"])
def test_a_ranker_orders_lengths_in_the_millions_as_it_orders_their_differences(loss):
    """Rank labels were float32: lengths 10**12 + 69..268 tokens all became one value (the pairwise loss: "no list
    held two different lengths"; ListMLE trained on a tie-broken shuffle, held-out tau -0.09), and lengths above
    2**24 that differ by 1 tied. A ranker only compares lengths: shifted by any amount, the same model."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rows = english_rows(40, 0)
    prompts, lengths = [p for p, _ in rows], np.array([n for _, n in rows])
    scores = []
    for shift in (0, 2**24, 10**12):
        predictor = Predictor(PredictorConfig(epochs=1, dim=4096, loss=loss, list_size=8))
        predictor.fit(prompts, lengths + shift)
        scores.append(predictor.scores(prompts))
    assert np.array_equal(scores[0], scores[1]) and np.array_equal(scores[0], scores[2])


def test_class_lengths_past_the_last_class_name_a_wider_bucket_where_one_fits():
    """Lengths of 7M-16M tokens at --bucket 100 need more than the 65,536 classes allowed: all in the last class.
    The refusal said only "use --kind rank"; a bucket of a tenth of their range gives 18 classes, and is named.
    (Lengths past 2**24 tokens, the longest context, are refused before: see test_hostile2_inputs.)"""
    from ltrsched.errors import UserError
    from ltrsched.predictors.config import PredictorConfig, class_count
    from ltrsched.predictors.predictor import check_buckets

    lengths = np.array([7, 9, 12, 16]) * 10**6
    with pytest.raises(UserError, match=r"falls in the last class, .*; use --kind rank, or --bucket 900000 \(about "
                                        r"10 classes over these lengths\)$"):
        check_buckets(PredictorConfig(kind="class", bucket=100, num_classes=class_count(100, int(lengths.max()))),
                      lengths)
    check_buckets(PredictorConfig(kind="class", bucket=900000, num_classes=class_count(900000, int(lengths.max()))),
                  lengths)  # (accepted)
    near = 16 * 10**6 + np.array([69, 120, 268])  # a range of 199 tokens at 16M: no bucket fits 65,536 classes
    with pytest.raises(UserError, match=r"falls in the last class, .*; use --kind rank$"):
        check_buckets(PredictorConfig(kind="class", bucket=100, num_classes=class_count(100, int(near.max()))), near)


def test_a_tokenizer_with_a_length_limit_adds_no_warning_of_indexing_errors(tmp_path, capsys):
    """A model directory whose tokenizer states its limit (MiniLM's 512) printed transformers' "Token indices sequence
    length is longer than the specified maximum sequence length for this model (81 > 64). Running this sequence
    through the model will result in indexing errors" under train: none follows, the backbone cuts the prompt first
    (and its note says so)."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1, "word": 2, "story": 3}
    words = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    transformers.PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]",
                                         model_max_length=64).save_pretrained(tmp_path / "bert")
    transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=64).save_pretrained(tmp_path / "bert")
    write_label_jsonl(tmp_path / "tr.jsonl", [("word " * (5 + 25 * (i % 4)) + "x", 10 + 50 * (i % 4) + i)
                                              for i in range(16)])  # 4 of 16: 81 tokens
    write_label_jsonl(tmp_path / "ev.jsonl", [("story " * (3 + i), 10 + i) for i in range(6)])
    r = run_cli_fast(capsys, "train", "--backbone", "hf", "--hf-model", tmp_path / "bert", "--data",
                     tmp_path / "tr.jsonl", "--eval-data", tmp_path / "ev.jsonl", "--epochs", "1", "--list-size", "4",
                     "-o", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert "Token indices" not in r.stderr and "indexing errors" not in r.stderr, r.stderr
    assert r.stderr.startswith("note: 4 of 16 training prompts are longer than the 64 tokens"), r.stderr
