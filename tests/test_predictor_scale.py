"""The predictor commands as a user with a large workload runs them (BENCHMARKS.md, "Predictors at scale"): stopped
by ``kill`` (SIGTERM) or a closed terminal (SIGHUP) as by Ctrl-C, and an ensemble's members sharing the featurising
of a workload of more than one chunk. Small n-gram models; each signal is sent by the process to itself at the moment
named, in-process."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from cli_helpers import run_cli_fast

WORDS = "please explain the story of a word list write answer today city code python".split()


class _Killed(Exception):
    """What the test's own handler raises: a command that does not handle the signal lets it out (in a real
    process the signal's default action would have ended it without a word)."""


@pytest.fixture
def own_handlers():
    """SIGTERM and SIGHUP raise :class:`_Killed` in this process (not end it) unless the command handles them."""
    def killed(signum, frame):
        raise _Killed(signal.Signals(signum).name)

    before = {sig: signal.signal(sig, killed) for sig in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


def _write(path, n: int, name: str = "p") -> None:
    path.write_text("".join(
        json.dumps({"prompt": " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3 + i % 5)) + f" {name}{i}",
                    "output_tokens": 10 + 7 * (i % 11)}) + "\n" for i in range(n)))


@pytest.fixture(scope="module")
def ranker(tmp_path_factory):
    from ltrsched.predictors import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rng = np.random.default_rng(0)
    prompts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(64)]
    predictor = Predictor(PredictorConfig(dim=1 << 10, epochs=1, list_size=8))
    predictor.fit(prompts, np.array([len(p) for p in prompts]))
    return predictor.save(tmp_path_factory.mktemp("ranker") / "m")


def _kill_at(monkeypatch, module, name: str, sig: int) -> None:
    """``module.name`` sends ``sig`` to this process before it runs."""
    real = getattr(module, name)

    def killing(*args, **kwargs):
        os.kill(os.getpid(), sig)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, killing)


def test_predict_killed_while_writing_says_aborted_and_leaves_no_temp_file(tmp_path, capsys, monkeypatch, ranker,
                                                                          own_handlers):
    import ltrsched.atomic as atomic

    _write(tmp_path / "w.jsonl", 40)
    (tmp_path / "out").mkdir()
    _kill_at(monkeypatch, atomic.os, "fsync", signal.SIGTERM)  # (the output's temp file is open, half written)
    r = run_cli_fast(capsys, "predict", "-m", ranker, "-w", tmp_path / "w.jsonl", "-o", tmp_path / "out" / "s.parquet")
    assert r.returncode == 143 and r.stderr.strip().splitlines()[-1] == "aborted", (r.returncode, r.stderr)
    assert os.listdir(tmp_path / "out") == []  # (before: .s.parquet.tmpPID, left by the signal's default action)


@pytest.mark.parametrize("command, sig, code", [("train", signal.SIGHUP, 129), ("evaluate", signal.SIGTERM, 143)])
def test_train_and_evaluate_stopped_by_a_signal_say_aborted(tmp_path, capsys, monkeypatch, ranker, own_handlers,
                                                          command, sig, code):
    import ltrsched.predictors.predictor as predictor

    _write(tmp_path / "w.jsonl", 40)
    _write(tmp_path / "e.jsonl", 20, "e")
    _kill_at(monkeypatch, predictor.Predictor, "fit" if command == "train" else "score", sig)
    args = (["train", "--data", tmp_path / "w.jsonl", "--eval-data", tmp_path / "e.jsonl", "-o", tmp_path / "m"]
            if command == "train" else ["evaluate", "-m", ranker, "--data", tmp_path / "w.jsonl"])
    r = run_cli_fast(capsys, *args)
    assert r.returncode == code and r.stderr.strip().splitlines()[-1] == "aborted", (r.returncode, r.stderr)
    assert not (tmp_path / "m" / "predictor.json").exists()


def _rankers(count: int) -> list:
    """``count`` small n-gram rankers of one n-gram set and size (one features key), trained with other seeds."""
    from ltrsched.predictors import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rng = np.random.default_rng(1)
    prompts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(48)]
    members = []
    for seed in range(count):
        member = Predictor(PredictorConfig(dim=1 << 16, epochs=1, list_size=8, seed=seed))
        member.fit(prompts, np.array([len(p) for p in prompts]))
        members.append(member)
    return members


def test_ensemble_members_share_the_features_of_a_workload_of_many_chunks(monkeypatch):
    """Scoring more prompts than one chunk (:data:`PREPARE_BATCHES` batches), each member tokenised and featurised every
    prompt again: 3 members, 3 times. Now the members score it chunk by chunk, each chunk prepared once between them;
    the same scores bit for bit, and each member's counts and progress are of all the prompts."""
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import PREPARE_BATCHES

    members = _rankers(3)
    batch = 2  # (a chunk of PREPARE_BATCHES * 2 prompts: 32)
    prompts = [f"{WORDS[i % len(WORDS)]} {WORDS[(3 * i) % len(WORDS)]} {i}" if i % 4 else "ЖЖЖ ЩЩЩ"
               for i in range(5 * batch * PREPARE_BATCHES + 3)]
    alone = [m.scores(prompts, batch) for m in members]  # (each member by itself)
    unseen = [m.unseen_last for m in members]
    assert sum(unseen) > 0  # (the Cyrillic ones: n-grams none of them was trained on)
    ens = Ensemble(members, [1.0, 2.0, 0.5], [0.1, -0.2, 0.3], [1.0, 2.0, 0.5])
    prepared = []
    for m in members:
        real = m.backbone.prepare
        monkeypatch.setattr(m.backbone, "prepare", lambda part, real=real: prepared.append(len(part)) or real(part))
    moved = {i: 0 for i in range(3)}

    class Bar:
        def __init__(self, i, total):
            self.i, self.n, self.total = i, 0, total

        def update(self, count=1):
            self.n += count
            moved[self.i] += count

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    for i, m in enumerate(members):
        m.progress = lambda total, noun, verb, i=i: Bar(i, total)
    scores = ens.scores(prompts, batch)
    assert sum(prepared) == len(prompts), prepared  # (before: 3 x 163)
    assert np.array_equal(scores, ens.combine(alone))  # bit for bit
    assert [m.unseen_last for m in members] == unseen
    assert moved == {i: len(prompts) for i in range(3)}
    assert all(m.progress is not None for m in members)  # (each member's own bar put back)


def test_class_model_reduces_its_logits_a_batch_at_a_time(monkeypatch):
    """A class model's scoring held every prompt's logits, ``classes`` numbers each (8,192 one-token classes: 32 kB a
    prompt, 3.3 GB for 100,000), and its softmax made three more arrays of that size, to keep two numbers a prompt.
    Now each batch's logits are reduced to the score and the predicted length as they come: the same values."""
    from ltrsched.predictors import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rng = np.random.default_rng(2)
    prompts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(40)]
    model = Predictor(PredictorConfig(kind="class", bucket=10, num_classes=64, dim=1 << 10, epochs=1, list_size=8))
    model.fit(prompts, 10 * np.array([len(p) % 60 for p in prompts]))
    logits = model._raw(prompts, 8)  # (all at once, as before)
    rows = []
    real = Predictor._expected_bucket
    monkeypatch.setattr(Predictor, "_expected_bucket", staticmethod(lambda x: rows.append(len(x)) or real(x)))
    scored = model.score(prompts, batch_size=8)
    assert max(rows) <= 8 and sum(rows) == 40, rows  # (before: [40])
    assert np.array_equal(scored.scores, -real(logits))
    assert np.array_equal(scored.predicted_lengths, (logits.argmax(axis=1) + 0.5) * 10)
    assert np.array_equal(model.predicted_lengths(prompts, 8), scored.predicted_lengths)


def test_an_ensembles_refusal_of_a_non_finite_score_names_the_prompts_place_in_the_workload():
    """Scoring chunk by chunk, a member's NaN/inf refusal named the prompt's place in its chunk (prompt 5 of 32) and
    counted that chunk's prompts alone; it names the place in the whole list, and which prompts were checked."""
    import torch

    from ltrsched.errors import UserError
    from ltrsched.predictors import PredictorConfig
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import PREPARE_BATCHES, Predictor

    members = []
    for _ in range(2):
        member = Predictor(PredictorConfig(dim=4096))
        with torch.no_grad():
            for p in member.backbone.model.parameters():
                p.fill_(1e38)  # (one word sums to a finite score, two words overflow float32)
        members.append(member)
    batch = 2
    chunk = batch * PREPARE_BATCHES
    prompts = ["a"] * (3 * chunk)
    prompts[2 * chunk + 5] = "hello world"
    ens = Ensemble(members, [1.0, 1.0], [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(UserError, match=rf"scores 1 of prompts {2 * chunk}\.\.{3 * chunk - 1} of {3 * chunk} prompts "
                                        rf"NaN or infinite \(the first: prompt {2 * chunk + 5}, 11 characters\)"):
        ens.scores(prompts, batch)
    assert all(m._scoring_within is None for m in members)
