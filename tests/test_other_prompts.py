"""The predictors on prompt sets unlike ShareGPT's (code, other scripts, 1-character and very long prompts, duplicates,
a handful of prompts): a prompt's score is its own, whatever else is scored with it."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cli_helpers import run_cli_fast
from label_data import english_rows, write_label_jsonl
from tiny_models import save_tiny_opt

#: Prompts unlike the training prompts: code, Chinese, Arabic, emoji, combining marks, one character, JSON-like text.
OTHER = ["def f(x):\n    return {'a': [x, 1]}", "请用中文回答：秋天的诗", "مرحبا كيف حالك؟", "🙂🚀👨‍👩‍👧‍👦", "e\u0301\u0301a\u0308",
         "?", "x", '{"prompt": "x", "output_tokens": 5}', "tab\there\x07", "word " * 300]


def _fitted(**config):
    """An n-gram predictor (one epoch) trained on 40 English prompts."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rows = english_rows(40, 0)
    predictor = Predictor(PredictorConfig(epochs=1, **config))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    return predictor


@pytest.mark.parametrize("config", [{}, {"hidden": 16, "dim": 1 << 12},
                                    {"kind": "class", "loss": "ce", "bucket": 100, "num_classes": 82, "hidden": 8,
                                     "dim": 1 << 10}], ids=["linear-ranker", "hidden-ranker", "classifier"])
def test_a_prompts_score_is_the_same_alone_in_a_batch_or_among_others(config):
    """The head's matrix product gave a row another last bit depending on how many rows it multiplied: a prompt scored
    alone, or in a last batch of another size, scored 1 ulp apart from the same prompt in a full batch (a class model:
    94 of 300 prompts scored one at a time), so a prompt twice in a workload could get two scores."""
    predictor = _fitted(**config)
    prompts = [p for p, _ in english_rows(37, 1)] + OTHER
    whole = predictor._raw(prompts)
    alone = np.concatenate([predictor._raw([p]) for p in prompts])
    np.testing.assert_array_equal(alone, whole)
    for batch_size in (3, 7, 9):
        np.testing.assert_array_equal(predictor._raw(prompts, batch_size=batch_size), whole)
    order = np.random.default_rng(0).permutation(len(prompts))
    np.testing.assert_array_equal(predictor._raw([prompts[i] for i in order]), whole[order])


def test_predict_scores_a_prompt_alike_in_a_file_of_its_own_and_among_others(tmp_path, capsys):
    """``predict`` of a one-prompt file gave that prompt another score than the same prompt in a file of 12 (each
    file one batch of its own size; prompt 11 of these is one the default ranker's head scored 1 ulp apart)."""
    _fitted().save(tmp_path / "ck")
    rows = english_rows(12, 1)
    write_label_jsonl(tmp_path / "all.jsonl", rows)
    write_label_jsonl(tmp_path / "one.jsonl", rows[11:])
    for name in ("all", "one"):
        r = run_cli_fast(capsys, "predict", "-m", tmp_path / "ck", "-w", tmp_path / f"{name}.jsonl", "-o",
                         tmp_path / f"{name}.parquet")
        assert r.returncode == 0, r.stderr
    alone = pl.read_parquet(tmp_path / "one.parquet")["score"].to_list()
    assert alone == pl.read_parquet(tmp_path / "all.parquet")["score"].to_list()[11:]


def test_a_hugging_face_rankers_score_is_the_same_alone_or_in_a_padded_batch(tmp_path):
    """The HF backbone scored a batch padded to its longest prompt: the width, so the other prompts, changed the last
    bits of a prompt's score (a prompt alone and among 33 others: 1e-8 apart, 142 of 304 prompts). Scoring runs each
    prompt alone, as the probe does; a 135M model scored 32 ShareGPT prompts faster so (no padding)."""
    pytest.importorskip("transformers")
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    model = save_tiny_opt(tmp_path / "tiny-opt")
    rows = english_rows(24, 0)
    predictor = Predictor(PredictorConfig(backbone="hf", hf_path=str(model), epochs=1, lr=1e-3, list_size=8,
                                          max_prompt_tokens=32))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    prompts = [p for p, _ in english_rows(10, 1)] + OTHER
    whole = predictor.scores(prompts)
    np.testing.assert_array_equal(np.concatenate([predictor.scores([p]) for p in prompts]), whole)
    np.testing.assert_array_equal(predictor.scores(prompts, batch_size=3), whole)
    assert predictor.cut_last == 1  # ("word " * 300 is longer than the 32 tokens it reads)


def test_label_counts_a_prompt_too_long_for_the_context_once_though_both_runs_skip_it(tmp_path):
    """An eval prompt too long for the context is skipped by the main run and by the sampled run: the report said
    "skipped 3 prompt(s)" of 2 prompts (the .json's skipped_too_long listed 2 keys)."""
    from ltrsched.labelling.jobs import LabelJob
    from ltrsched.labelling.run import _report, _Stats
    labels = pl.DataFrame({"run": ["main"] * 4 + ["sample"], "split": ["train", "train", "eval", "eval", "eval"],
                           "finish_reason": ["stop"] * 5})  # (what the report reads of the labels)
    stats = _Stats()
    stats.context = 64
    stats.skipped = [LabelJob("main", "train", "t1", "p"), LabelJob("main", "eval", "e2", "q"),
                     LabelJob("sample", "eval", "e2", "q")]
    lines = _report(labels, stats, [], 10, tmp_path / "l.parquet")
    assert ("skipped 2 prompt(s) longer than the context allows (64 - 10 = 54 tokens), 3 labels missing with the "
            "sampled run's; first: t1") in lines, lines
    stats.skipped = stats.skipped[:2]  # (none sampled: prompts and labels alike)
    assert ("skipped 2 prompt(s) longer than the context allows (64 - 10 = 54 tokens); first: t1"
            in _report(labels, stats, [], 10, tmp_path / "l.parquet"))


def test_first_turns_the_rules_leave_out_are_counted_where_only_requests_remain(tmp_path, capsys):
    """A conversations file whose answered first turns the paper's rules all leave out (replies of under 4 tokens),
    beside a request without a reply: the request was labelled alone, and the first turns left out without a word."""
    import json

    from ltrsched.workloads.prompts import load_prompts

    def turn(key, *values):
        return {"id": key, "conversations": [{"from": f, "value": v} for f, v in zip(("human", "gpt"), values)]}

    (tmp_path / "c.json").write_text(json.dumps([turn("a", "please explain the story of a city", "ok"),
                                                 turn("b", "write a short poem about the sea", "no"),
                                                 turn("g", "summarise the history of the python language")]))
    capsys.readouterr()
    assert load_prompts(tmp_path / "c.json")["key"].to_list() == ["g"]
    err = capsys.readouterr().err
    assert "c.json: 2 of the 2 first turns are left out by the paper's selection rules: 2 with a reply of under 4 " \
           "tokens" in err, err
    assert "its 1 request without the assistant's reply is a prompt too" in err


def test_a_prompts_file_whose_first_prompt_starts_with_a_nul_character_is_utf8(tmp_path):
    """A NUL inside a prompt is text (control characters are); a .txt whose first prompt began with one was refused as
    "UTF-16 text (NUL bytes beside its characters)". UTF-16 text without a byte-order mark is still named."""
    from ltrsched.errors import UserError
    from ltrsched.workloads.prompts import load_prompts

    (tmp_path / "p.txt").write_bytes(b"\x00first prompt\nsecond prompt\n")
    assert load_prompts(tmp_path / "p.txt")["prompt"].to_list() == ["\x00first prompt", "second prompt"]
    for encoding in ("utf-16-le", "utf-16-be"):
        (tmp_path / "u.txt").write_bytes("first prompt\nsecond prompt\n".encode(encoding))
        with pytest.raises(UserError, match=r"the file is UTF-16 text \(NUL bytes beside its characters\)"):
            load_prompts(tmp_path / "u.txt")
