"""Held-out copies of one prompt with different lengths (a model sampled several times per prompt): a predictor scores
them alike, so tau-b is capped below 1 whatever it does; train and evaluate printed such a tau without a word."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cli_helpers import run_cli_fast
from label_data import english_rows, write_label_jsonl

from ltrsched.predictors.copies import copies_ceiling, copies_warning


def _best_tau(prompts, lengths) -> float | None:
    """The highest Kendall tau-b of any scores that tie copies of one prompt (every weak order of the texts)."""
    from ltrsched.predictors.predictor import kendall_tau

    texts = sorted(set(prompts))
    taus = [kendall_tau(np.array([-levels[texts.index(p)] for p in prompts], float), np.asarray(lengths))
            for levels in itertools.product(range(len(texts)), repeat=len(texts))]
    return max((t for t in taus if t is not None), default=None)


def test_the_ceiling_bounds_every_score_and_is_reached_where_the_copies_do_not_overlap():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(3, 8))
        prompts = [f"p{int(rng.integers(0, 3))}" for _ in range(n)]
        lengths = rng.integers(1, 6, n)
        found, best = copies_ceiling(prompts, lengths), _best_tau(prompts, lengths)
        if found is not None and best is not None:
            assert best <= found[0] + 1e-12, (prompts, lengths)
    prompts, lengths = ["a"] * 3 + ["b"] * 3, [1, 2, 3, 4, 5, 6]  # (a's lengths all below b's: ordered a, b)
    assert copies_ceiling(prompts, lengths) == (pytest.approx(math.sqrt(9 / 15)), 6, 2)
    assert _best_tau(prompts, lengths) == pytest.approx(math.sqrt(9 / 15))


def test_no_ceiling_without_copies_of_different_lengths():
    assert copies_ceiling(["a", "b", "c"], [1, 2, 3]) is None
    assert copies_ceiling(["a", "a", "b"], [1, 1, 2]) is None  # (copies of one length: tie-able exactly)
    assert copies_ceiling(["a", "a"], [5, 5]) is None  # (no tau at all)


def test_five_prompts_sampled_twenty_times_are_warned_and_twenty_copies_of_two_hundred_are_not():
    prompts = [f"p{i // 20}" for i in range(100)]
    line = copies_warning(prompts, list(range(100)))
    assert line == ("warning: 100 of the 100 held-out prompts are copies of 5 prompts given with different lengths (a "
                    "model sampled more than once): a predictor reads the text alone and scores copies alike, so its "
                    f"Kendall tau-b reaches at most {math.sqrt(1 - 950 / 4950):.3f} here, however it ranks")
    assert copies_warning([f"p{i // 20}" for i in range(4000)], list(range(4000))) is None  # (ceiling 0.998)


def test_train_and_evaluate_warn_of_held_out_copies_with_different_lengths(tmp_path, capsys):
    rows = english_rows(40, 0)
    write_label_jsonl(tmp_path / "tr.jsonl", rows)
    texts = [p for p, _ in english_rows(4, 1)]
    write_label_jsonl(tmp_path / "ev.jsonl", [(texts[i % 4], 20 + 7 * i) for i in range(40)])  # (4 prompts x 10)
    r = run_cli_fast(capsys, "train", "--epochs", 1, "--data", tmp_path / "tr.jsonl", "--eval-data",
                     tmp_path / "ev.jsonl", "-o", tmp_path / "ck")
    assert r.returncode == 0 and "warning: 40 of the 40 held-out prompts are copies of 4 prompts given with " \
                                 "different lengths" in r.stderr, r.stderr
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "ev.jsonl")
    assert r.returncode == 0 and "warning: 40 of the 40 evaluated prompts are copies of 4 prompts" in r.stderr, r.stderr
    write_label_jsonl(tmp_path / "distinct.jsonl", english_rows(40, 1))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "ck", "--data", tmp_path / "distinct.jsonl")
    assert r.returncode == 0 and "copies" not in r.stderr, r.stderr
