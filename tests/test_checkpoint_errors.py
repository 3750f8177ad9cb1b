"""The predictors' Python API raises by Python's convention where a checkpoint cannot be used, a ranker is asked for
lengths, scores are not finite or a checkpoint cannot be written: ValueError (a damaged checkpoint file, no valid
score), FileNotFoundError (no such checkpoint directory, a moved model), OSError with its errno (a failed write). Each
was the project's UserError only (an Exception), which ``except ValueError`` / ``except OSError`` missed; each still is
a UserError, so the command line prints the same one line with exit code 2 (errors.ArgumentValueError,
PathNotFoundError, WriteFailedError)."""

from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from cli_helpers import assert_one_line_error, run_cli_fast  # noqa: E402
from label_data import english_rows, write_label_jsonl  # noqa: E402

from ltrsched.errors import UserError  # noqa: E402

_PROMPTS = [p for p, _ in english_rows(6, 3)]


def _ranker(seed: int = 0, **settings):
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    return Predictor(PredictorConfig(**{"dim": 64, "epochs": 1, "seed": seed, **settings}))


def _damage(ck, case: str, tmp_path):
    """Damage the n-gram checkpoint ``ck`` as ``case`` says; the directory to load."""
    config = ck / "predictor.json"
    if case == "no predictor.json":
        config.unlink()
    elif case == "predictor.json no JSON":
        config.write_text("{")
    elif case == "a setting of the wrong type":
        config.write_text(json.dumps({**json.loads(config.read_text()), "epochs": "5"}))
    elif case == "a scoring setting edited":
        config.write_text(json.dumps({**json.loads(config.read_text()), "ngrams": "tokens+cjk-words"}))
    elif case == "no weights.pt":
        (ck / "weights.pt").unlink()
    elif case == "weights.pt no torch file":
        (ck / "weights.pt").write_bytes(b"not a torch file")
    elif case == "weights of another shape":
        other = _ranker(0, dim=128).save(tmp_path / "other")
        shutil.copy(other / "weights.pt", ck / "weights.pt")
    elif case == "weights of another model":
        other = _ranker(1).save(tmp_path / "other")
        shutil.copy(other / "weights.pt", ck / "weights.pt")
    elif case == "a file given":
        return config
    return ck


@pytest.mark.parametrize("case, match", [
    ("no predictor.json", r"is not a predictor checkpoint \(no predictor\.json\)"),
    ("predictor.json no JSON", r"predictor\.json: not a valid predictor config"),
    ("a setting of the wrong type", r"predictor\.json: epochs must be an integer, got '5'$"),
    ("a scoring setting edited", r'predictor\.json says ngrams "tokens\+cjk-words", but its weights were trained '
                                 r'with ngrams "tokens\+words"'),
    ("no weights.pt", r": missing weights\.pt$"),
    ("weights.pt no torch file", r"weights\.pt: not a readable torch weights file"),
    ("weights of another shape", r": weights do not match its ngram config"),
    ("weights of another model", r"weights\.pt is not the weights file saved with predictor\.json"),
    ("a file given", r"is not a predictor checkpoint but a file of one"),
])
def test_a_damaged_predictor_checkpoint_is_a_value_error(tmp_path, case, match):
    from ltrsched.predictors.predictor import Predictor

    ck = _ranker().save(tmp_path / "ck")
    with pytest.raises(ValueError, match=match) as caught:
        Predictor.load(_damage(ck, case, tmp_path))
    assert isinstance(caught.value, UserError) and not isinstance(caught.value, (TypeError, OSError))


@pytest.mark.parametrize("change", ["another form", "another count", "not base64", "a list"])
def test_a_damaged_record_of_the_training_prompts_is_refused(tmp_path, capsys, change):
    """predictor.json's training_prompts record, damaged or of another form (a newer version's), read as no record:
    evaluate then said nothing of held-out prompts that are training prompts. Now a ValueError naming the record (one
    line on the command line); a checkpoint without the record (older, or never trained) loads as before."""
    from ltrsched.predictors.predictor import Predictor

    rows = english_rows(12, 0)
    ranker = _ranker()
    ranker.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    ck = ranker.save(tmp_path / "ck")
    config = json.loads((ck / "predictor.json").read_text())
    record = config["training_prompts"]
    assert record["num_prompts"] == 12 and Predictor.load(ck).training_overlap(_PROMPTS) == 0
    damaged = {"another form": {"num_prompts": 12, "blake2b_128": record["blake2b_64"]},
               "another count": {**record, "num_prompts": 13},
               "not base64": {**record, "blake2b_64": "%%%"},
               "a list": [record]}[change]
    (ck / "predictor.json").write_text(json.dumps({**config, "training_prompts": damaged}))
    with pytest.raises(ValueError, match=r"predictor\.json: training_prompts must be \{\"num_prompts\": N, "
                                         r"\"blake2b_64\": N 8-byte hashes in base64\}, got ") as caught:
        Predictor.load(ck)
    assert isinstance(caught.value, UserError)
    write_label_jsonl(tmp_path / "ev.jsonl", rows[:6])
    assert_one_line_error(run_cli_fast(capsys, "evaluate", "-m", ck, "--data", tmp_path / "ev.jsonl"),
                          "training_prompts must be")
    del config["training_prompts"]
    (ck / "predictor.json").write_text(json.dumps(config))
    assert Predictor.load(ck).training_overlap(_PROMPTS) is None


def test_a_missing_checkpoint_directory_is_a_file_not_found_error(tmp_path):
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import Predictor

    for load in (Predictor.load, Ensemble.load):
        with pytest.raises(FileNotFoundError, match=r"is not a(n ensemble| predictor) checkpoint: no such directory"
                           ) as caught:
            load(tmp_path / "missing")
        assert isinstance(caught.value, UserError) and not isinstance(caught.value, ValueError)
    with pytest.raises(TypeError, match=r"^directory must be a checkpoint directory path"):
        Ensemble.load(None)  # (it said "expected str, bytes or os.PathLike object, not NoneType")


def _ensemble(tmp_path):
    from ltrsched.predictors.ensemble import Ensemble

    sources = [_ranker(seed).save(tmp_path / f"m{seed}") for seed in (0, 1)]
    from ltrsched.predictors.predictor import Predictor

    members = [Predictor.load(s) for s in sources]
    return Ensemble.calibrate(members, _PROMPTS).save(tmp_path / "ens", sources)


@pytest.mark.parametrize("case, match", [
    ("ensemble.json no JSON", r"ensemble\.json: not a valid ensemble \(Expecting"),
    ("a weight as text", r"ensemble\.json: not a valid ensemble \('weights' must hold finite numbers, got '1'\)"),
    ("an unknown key", r"ensemble\.json: unknown key 'combine': an ensemble written by another ltrsched version"),
    ("a member replaced", r"ensemble\.json: member 'member1' is not the checkpoint this ensemble was calibrated on"),
    ("a member gone", r"member1 is not a predictor checkpoint: no such directory"),
    ("no ensemble.json", r"is not an ensemble checkpoint \(no ensemble\.json\)"),
])
def test_a_damaged_ensemble_checkpoint_is_a_value_error(tmp_path, case, match):
    """(A member gone is a FileNotFoundError, of that member's directory.) An unknown key of ensemble.json was ignored:
    a file of another version, whose key would change what its scores mean, loaded as this one (predictor.json's
    unknown settings are refused so)."""
    from ltrsched.predictors.ensemble import Ensemble

    ck = _ensemble(tmp_path)
    spec = json.loads((ck / "ensemble.json").read_text())
    if case == "ensemble.json no JSON":
        (ck / "ensemble.json").write_text("{")
    elif case == "a weight as text":
        (ck / "ensemble.json").write_text(json.dumps({**spec, "weights": ["1", 1]}))
    elif case == "an unknown key":
        (ck / "ensemble.json").write_text(json.dumps({**spec, "combine": "rank-average"}))
    elif case == "a member replaced":
        shutil.rmtree(ck / "member1")
        _ranker(2).save(ck / "member1")
    elif case == "a member gone":
        shutil.rmtree(ck / "member1")
    elif case == "no ensemble.json":
        (ck / "ensemble.json").unlink()
    error = FileNotFoundError if case == "a member gone" else ValueError
    with pytest.raises(error, match=match) as caught:
        Ensemble.load(ck)
    assert isinstance(caught.value, UserError)


def test_lengths_of_a_ranker_and_scores_that_are_not_finite_are_value_errors():
    import torch

    ranker = _ranker()
    with pytest.raises(ValueError, match=r"^a ranking model predicts scores, not lengths") as caught:
        ranker.predicted_lengths(_PROMPTS)
    assert isinstance(caught.value, UserError)
    with torch.no_grad():
        next(ranker.backbone.model.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match=r"^the predictor scores 6 of 6 prompts NaN or infinite") as caught:
        ranker.scores(_PROMPTS)
    assert isinstance(caught.value, UserError)


class _FullDisk:
    """``os`` as ltrsched.atomic sees it, on a full disk: every write fails with ENOSPC."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def write(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_is_an_os_error_with_its_errno(tmp_path, monkeypatch):
    from ltrsched import atomic
    from ltrsched.predictors.ensemble import Ensemble, shutil as ensemble_shutil

    ranker = _ranker()
    with monkeypatch.context() as patch:
        patch.setattr(atomic, "os", _FullDisk())
        with pytest.raises(OSError, match=r"^cannot write .*weights\.pt: No space left on device$") as caught:
            ranker.save(tmp_path / "full")
    assert isinstance(caught.value, UserError) and caught.value.errno == errno.ENOSPC
    ck = ranker.save(tmp_path / "ck")
    (ck / "weights.pt").unlink()
    (ck / "weights.pt").mkdir()
    with pytest.raises(OSError, match=r"^cannot replace the checkpoint in .*ck: cannot remove .*weights\.pt "
                                      r"\(Is a directory\)$") as caught:
        ranker.save(ck, overwrite=True)
    assert isinstance(caught.value, UserError) and caught.value.errno == errno.EISDIR

    def full(src, dst, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    sources = [_ranker(seed).save(tmp_path / f"m{seed}") for seed in (0, 1)]
    from ltrsched.predictors.predictor import Predictor

    ensemble = Ensemble.calibrate([Predictor.load(s) for s in sources], _PROMPTS)
    monkeypatch.setattr(ensemble_shutil, "copytree", full)
    with pytest.raises(OSError, match=r"^cannot write .*member0: No space left on device$") as caught:
        ensemble.save(tmp_path / "ens", sources)
    assert isinstance(caught.value, UserError) and caught.value.errno == errno.ENOSPC


def test_a_moved_model_and_a_model_path_that_is_none_are_file_not_found_and_value_errors(tmp_path):
    """An HF checkpoint whose model directory is gone: FileNotFoundError (it was a UserError only), still naming the
    checkpoint; a model path that is there but no model: ValueError; a tokenizer giving ids past the model's
    embeddings: ValueError."""
    pytest.importorskip("transformers")
    from tiny_models import save_tiny_opt

    from ltrsched.predictors.backbones import check_token_ids, resolve_hf_model
    from ltrsched.predictors.predictor import Predictor

    ck = _ranker(backbone="hf", hf_path=str(save_tiny_opt(tmp_path / "opt")), max_prompt_tokens=16).save(tmp_path / "ck")
    shutil.move(tmp_path / "opt", tmp_path / "moved")
    with pytest.raises(FileNotFoundError, match=r"^cannot load the predictor .*ck: --hf-model '.*opt' is not a local "
                                                r"Hugging Face model directory") as caught:
        Predictor.load(ck)
    assert isinstance(caught.value, UserError)
    with pytest.raises(FileNotFoundError, match=r"no such GGUF file"):
        resolve_hf_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"is not a local Hugging Face model directory \(no config\.json\)") as caught:
        resolve_hf_model(str(tmp_path / "empty"))
    assert isinstance(caught.value, UserError) and not isinstance(caught.value, OSError)
    with pytest.raises(ValueError, match=r"gives prompt 0 \(2 characters\) token id 9, outside the model's 4 input") \
            as caught:
        check_token_ids([[1, 9]], 4, "m", ["ab"])
    assert isinstance(caught.value, UserError)


def test_a_probe_given_prompts_that_read_alike_or_another_model_is_a_value_error(tmp_path):
    pytest.importorskip("transformers")
    from test_probe import make_lm

    from ltrsched.predictors.predictor import Predictor

    model = make_lm(tmp_path / "lm")
    rows = english_rows(12, 0)
    prompts, lengths = [p for p, _ in rows], np.array([n for _, n in rows])
    probe = _ranker(backbone="probe", hf_path=str(model), max_prompt_tokens=2)
    with pytest.raises(ValueError, match=r"^all 12 training prompts give the probe the same state") as caught:
        probe.fit(prompts, lengths)
    assert isinstance(caught.value, UserError)
    probe = _ranker(backbone="probe", hf_path=str(model))
    probe.fit(prompts, lengths)
    ck = probe.save(tmp_path / "ck")
    spec = json.loads((ck / "predictor.json").read_text())
    (ck / "predictor.json").write_text(json.dumps({**spec, "probe_layer": 9}))
    with pytest.raises(ValueError, match=r"--probe-layer must be in \[1, 4\] for this 4-layer model, got 9") as caught:
        Predictor.load(ck)  # (the kind of the backbone's error kept through "cannot load the predictor")
    assert isinstance(caught.value, UserError)
    (ck / "predictor.json").write_text(json.dumps(spec))
    make_lm(tmp_path / "other", seed=1)
    shutil.copy(tmp_path / "other" / "model.safetensors", model / "model.safetensors")
    with pytest.raises(ValueError, match=r"is not the one this probe was trained on") as caught:
        Predictor.load(ck)
    assert isinstance(caught.value, UserError)


def test_the_command_line_prints_each_as_before(tmp_path, capsys):
    """One line, exit code 2, the same text: a missing checkpoint (now a FileNotFoundError), damaged weights (now a
    ValueError)."""
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(6, 1))
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "missing", "--data", tmp_path / "ev.jsonl")
    assert_one_line_error(r, f"{tmp_path / 'missing'} is not a predictor checkpoint: no such directory; train one "
                             "with `ltrsched train --out DIR`")
    ck = _ranker().save(tmp_path / "ck")
    (ck / "weights.pt").write_bytes(b"")
    r = run_cli_fast(capsys, "evaluate", "-m", ck, "--data", tmp_path / "ev.jsonl")
    assert_one_line_error(r, f"{ck / 'weights.pt'}: not a readable torch weights file (")


def test_ensemble_entry_points_refuse_what_they_took_silently(recwarn):
    """Ensemble(...) took a NaN mean (every prompt then scored NaN) and text as a mean (numpy's UFuncTypeError at the
    first score); calibrate of a path as a member scored the others first and failed on "'str' object has no
    attribute 'features_key'", of no prompt printed numpy's empty-mean warnings before its error; training_overlap of
    a str counted one character a prompt; predicted_lengths of an ensemble was an AttributeError."""
    from ltrsched.predictors.ensemble import Ensemble

    a, b = _ranker(0), _ranker(1)
    with pytest.raises(ValueError, match=r"^means\[0\] must be a finite number \(member 0's mean score on the "
                                         r"calibration prompts\), got nan$"):
        Ensemble([a, b], [1, 1], [float("nan"), 0.0], [1.0, 1.0])
    with pytest.raises(TypeError, match=r"^means\[1\] must be a number, got str '0'$"):
        Ensemble([a, b], [1, 1], [0.0, "0"], [1.0, 1.0])
    with pytest.raises(TypeError, match=r"^stds\[0\] must be a number, got None$"):
        Ensemble([a, b], [1, 1], [0.0, 0.0], [None, 1.0])
    with pytest.raises(TypeError, match=r"^members\[0\] must be a Predictor \(Predictor\.load\(directory\) for a "
                                        r"checkpoint\), got str '/some/checkpoint'$"):
        Ensemble.calibrate(["/some/checkpoint", b], _PROMPTS)
    with pytest.raises(TypeError, match=r"^members must be a list of Predictors"):
        Ensemble.calibrate("/some/checkpoint", _PROMPTS)
    with pytest.raises(ValueError, match=r"^member scores must vary on the calibration prompts \(--data\): give more "
                                         r"than one prompt"):
        Ensemble.calibrate([a, b], [])
    assert not [w for w in recwarn.list if issubclass(w.category, RuntimeWarning)]
    ensemble = Ensemble.calibrate([a, b], _PROMPTS)
    with pytest.raises(TypeError, match=r"^prompts must be a list of prompt strings \(a single prompt: \[prompt\]\)"):
        ensemble.training_overlap("abc")
    with pytest.raises(ValueError, match=r"^a ranking model predicts scores, not lengths") as caught:
        ensemble.predicted_lengths(_PROMPTS)
    assert isinstance(caught.value, UserError)


@pytest.mark.parametrize("kept", [(), ("backbone", "dim", "hidden", "weights_sha256")])
def test_a_predictor_json_without_the_settings_every_version_saved_is_refused(tmp_path, capsys, kept):
    """A predictor.json of ``{}`` beside a default ranker's weights loaded with today's defaults and its legacy
    n-grams ("tokens", not the "tokens+words" it was trained on): evaluate printed exit 0 and a tau of noise, with only
    a warning that every prompt was unlike the training prompts. Every version saved kind, loss, dim, ... ."""
    rows = english_rows(40, 0)
    predictor = _ranker(dim=0)  # (today's default: 2^20 buckets of word and token n-grams)
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    ck = predictor.save(tmp_path / "ck")
    config = json.loads((ck / "predictor.json").read_text())
    (ck / "predictor.json").write_text(json.dumps({k: config[k] for k in kept}))
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(8, 1))
    assert_one_line_error(run_cli_fast(capsys, "evaluate", "-m", ck, "--data", tmp_path / "ev.jsonl"),
                          'predictor.json: no setting "kind" and ', "every checkpoint ltrsched writes names it")
