"""The predictors' Python API raises TypeError for an argument of the wrong type and ValueError for a wrong value, as
predictors/arguments.py does: ``PredictorConfig(...)``, ``Predictor.fit`` and ``Ensemble(...)`` raised the project's
``UserError`` (an Exception only), which ``except ValueError`` missed. The errors are both (errors.ArgumentTypeError,
ArgumentValueError): the command line still prints them as one line with exit code 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from cli_helpers import assert_one_line_error, run_cli_fast  # noqa: E402
from label_data import english_rows, write_label_jsonl  # noqa: E402

from ltrsched.errors import UserError  # noqa: E402


@pytest.mark.parametrize("settings, error, match", [
    ({"epochs": "5"}, TypeError, r"^epochs must be an integer, got '5'$"),
    ({"seed": 1.5}, TypeError, r"^seed must be an integer, got 1\.5$"),
    ({"list_size": True}, TypeError, r"^list_size must be an integer, got True$"),
    ({"lr": "0.1"}, TypeError, r"^lr must be a finite number, got '0\.1'$"),
    ({"weight_decay": None}, TypeError, r"^weight_decay must be a finite number, got None$"),
    ({"kind": 3}, TypeError, r"^kind must be text, got 3$"),
    ({"hf_path": 7}, TypeError, r"^hf_path must be text or null, got 7$"),
    ({"backbone": "probe", "probe_layer": 2.0}, TypeError, r"^probe_layer must be an integer in \[1, 4096\]"),
    ({"metrics": None}, TypeError, r"^metrics must be a list, got NoneType$"),
    ({"lr": float("nan")}, ValueError, r"^lr must be a finite number, got nan$"),
    ({"lr": 10 ** 400}, ValueError, r"^lr must be a finite number, got an integer of 401 digits$"),
    ({"backbone": "probe", "probe_layer": 0}, ValueError, r"^probe_layer must be an integer in \[1, 4096\]"),
    ({"kind": "banana"}, ValueError, r"^unknown predictor kind 'banana'; use rank or class$"),
    ({"backbone": "bert"}, ValueError, r"^unknown backbone 'bert'"),
    ({"loss": "hinge"}, ValueError, r"^unknown loss 'hinge'"),
    ({"ngrams": "chars"}, ValueError, r"^unknown n-gram set 'chars'"),
    ({"probe_layer": 3}, ValueError, r"^probe_layer 3 is set, but the backbone is 'ngram'"),
    ({"probe_precision": "fp8"}, ValueError, r"^unknown probe_precision 'fp8'"),
    ({"probe_precision": "bf16"}, ValueError, r"^probe_precision bf16 is set, but the backbone is 'ngram'"),
    ({"bucket": 0}, ValueError, r"^bucket widths must be >= 1 token$"),
    ({"epochs": 0}, ValueError, r"^epochs must be in \[1, 10000\], got 0$"),
    ({"lr": -1.0}, ValueError, r"^lr must be > 0 and weight_decay >= 0"),
    ({"lr": 5.0}, ValueError, r"^lr must be in \[1e-08, 1\]"),
    ({"kind": "class", "num_classes": 1}, ValueError, r"^a length classifier needs at least 2 classes, got 1"),
    ({"dim": 1 << 24, "hidden": 32}, ValueError, r"^dim x width = 16777216 x 32 n-gram weights exceed"),
])
def test_a_bad_config_is_a_type_or_value_error(settings, error, match):
    from ltrsched.predictors.config import PredictorConfig

    with pytest.raises(error, match=match) as caught:
        PredictorConfig(**settings)
    assert isinstance(caught.value, UserError)  # (the command line's one line, exit code 2)
    other = ValueError if error is TypeError else TypeError
    assert not isinstance(caught.value, other)


def _rows(n: int, seed: int = 0):
    rows = english_rows(n, seed)
    return [p for p, _ in rows], np.array([length for _, length in rows])


@pytest.mark.parametrize("case, match", [
    ("one prompt", r"^need at least 2 training prompts, got 1"),
    ("a zero length", r"^training labels must be one positive output length per prompt$"),
    ("equal lengths", r"^all 12 training prompts have the same output length \(50\)"),
    ("one text", r"^all 12 training prompts are the same text"),
    ("one class bucket", r"^every training length \(\d+-\d+ tokens\) falls in one bucket of 8000 tokens"),
    ("a list too long", r"^--list-size 9000: the pairwise loss compares every pair"),
])
def test_fit_refuses_unusable_training_data_with_a_value_error(case, match):
    """Checked before any featurising: each of these failed after nothing was trained, as a UserError."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    prompts, lengths = _rows(12)
    config = PredictorConfig(dim=64, epochs=1)
    if case == "one prompt":
        prompts, lengths = prompts[:1], lengths[:1]
    elif case == "a zero length":
        lengths[3] = 0
    elif case == "equal lengths":
        lengths[:] = 50
    elif case == "one text":
        prompts = [prompts[0]] * len(prompts)
    elif case == "one class bucket":
        config = PredictorConfig(kind="class", loss="ce", bucket=8000, num_classes=2, dim=64, epochs=1)
    else:
        prompts = [f"prompt {i}" for i in range(9000)]
        lengths = np.arange(1, 9001)
        config = PredictorConfig(dim=64, epochs=1, list_size=9000)
    with pytest.raises(ValueError, match=match) as caught:
        Predictor(config).fit(prompts, lengths)
    assert isinstance(caught.value, UserError)


def test_training_that_cannot_learn_is_a_value_error():
    """A learning rate that diverges or moves no weight, and lists without two different lengths: the settings'
    values (lr, list_size, epochs) cannot train these data."""
    import torch

    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import _check_converging, _check_moved, _no_pairs, _small_parameters

    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r"^training diverged in epoch 1: the loss went to NaN"):
        _check_converging(model, float("nan"), 1, 0.5)
    with pytest.raises(ValueError, match=r"^training moved no weight in its first epoch"):
        _check_moved(model, _small_parameters(model), 1e-8)
    with pytest.raises(ValueError, match=r"^no list of --list-size 32 training prompts held two different lengths"):
        _no_pairs(np.array([5, 5, 9]), PredictorConfig(dim=64))


def test_an_ensemble_of_unusable_members_or_weights_is_a_value_error():
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import Predictor

    ranker = Predictor(PredictorConfig(dim=64, epochs=1))
    classifier = Predictor(PredictorConfig(kind="class", loss="ce", dim=64, epochs=1))
    for args, match in [(([ranker], [1.0], [0.0], [1.0]), r"^an ensemble needs at least 2 members"),
                        (([ranker, classifier], [1, 1], [0, 0], [1, 1]), r"^ensemble members must be rank predictors"),
                        (([ranker, ranker], [0, 0], [0, 0], [1, 1]), r"^ensemble weights must be finite and >= 0"),
                        (([ranker, ranker], [1e-320, 1e300], [0, 0], [1, 1]), r"^ensemble weight 1e-320 is too small"),
                        (([ranker, ranker], [1, 1], [0, 0], [1, 0]), r"^member scores must vary")]:
        with pytest.raises(ValueError, match=match) as caught:
            Ensemble(*args)
        assert isinstance(caught.value, UserError)


def test_the_command_line_still_prints_these_as_one_line(tmp_path, capsys):
    """The same checks reached from the CLI: one line, exit code 2, the message as before (a config's error inside
    predictor.json names the file; the argument errors, ValueErrors and TypeErrors now, were caught by load's
    branches for JSON that is no config and cut at ';')."""
    train, held_out, same = tmp_path / "tr.jsonl", tmp_path / "ev.jsonl", tmp_path / "same.jsonl"
    write_label_jsonl(train, english_rows(30, 0))
    write_label_jsonl(held_out, english_rows(8, 1))
    write_label_jsonl(same, [(p, 50) for p, _ in english_rows(8, 2)])
    r = run_cli_fast(capsys, "train", "--data", train, "--eval-data", same, "--out", tmp_path / "x")
    assert_one_line_error(r, "all 8 held-out prompts have the same output length (50)")
    r = run_cli_fast(capsys, "train", "--data", train, "--eval-data", held_out, "--kind", "class", "--bucket", "8000",
                     "--out", tmp_path / "x")
    assert_one_line_error(r, "falls in one bucket of 8000 tokens (--bucket 8000): nothing to learn")
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    Predictor(PredictorConfig(dim=64, epochs=1)).save(tmp_path / "ck")
    for key, value, says in [("kind", "banana", "unknown predictor kind 'banana'; use rank or class"),
                             ("epochs", "5", "epochs must be an integer, got '5'"),
                             ("probe_layer", 3, "probe_layer 3 is set, but the backbone is 'ngram'")]:
        shutil.rmtree(tmp_path / "bad", ignore_errors=True)
        shutil.copytree(tmp_path / "ck", tmp_path / "bad")
        path = tmp_path / "bad" / "predictor.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
        r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "bad", "--data", held_out)
        assert_one_line_error(r, f"error: {path}: {says}")


def test_callbacks_and_scored_prompts_of_the_wrong_kind_are_type_errors():
    """fit(on_epoch="x") trained an epoch, then failed on "'str' object is not callable" (on_batch=3: after the
    featurising); measure of a list of scores failed on "'list' object has no attribute 'scores'". Now a TypeError
    naming the argument before any work."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import Predictor

    prompts, lengths = _rows(12)
    predictor = Predictor(PredictorConfig(dim=64, epochs=1))
    epochs = []
    with pytest.raises(TypeError, match=r"^on_epoch must be a function or None, got str 'x'$"):
        predictor.fit(prompts, lengths, on_epoch="x", on_batch=lambda: epochs.append(1))
    assert epochs == []  # (nothing trained)
    with pytest.raises(TypeError, match=r"^on_batch must be a function or None, got int 3$"):
        predictor.fit(prompts, lengths, on_batch=3)
    ensemble = Ensemble.calibrate([predictor, Predictor(PredictorConfig(dim=64, epochs=1, seed=1))], prompts)
    for model in (predictor, ensemble):
        with pytest.raises(TypeError, match=r"^scored must be prompts scored by score\(prompts\) \(a Scored\), got "
                                            r"list \[0\.1, 0\.2\]$"):
            model.measure([0.1, 0.2], [1, 2])
        assert model.measure(model.score(prompts), lengths)["tau"] is not None
