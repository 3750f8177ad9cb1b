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
