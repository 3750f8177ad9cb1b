"""``Predictor.save`` and ``Ensemble.save`` refuse a directory that already holds a checkpoint unless told to replace it
(``overwrite=True``): they replaced it without a word. Replacing one, a save that fails half-way leaves no checkpoint
there rather than one that loads as another model. ``ltrsched train`` and ``ensemble`` into their own ``--out`` still
replace it, as the other commands do with their output."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from cli_helpers import run_cli_fast  # noqa: E402
from label_data import english_rows, write_label_jsonl  # noqa: E402

from ltrsched.errors import UserError  # noqa: E402

_PROMPTS = [p for p, _ in english_rows(6, 3)]


def _ranker(seed: int):
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    return Predictor(PredictorConfig(dim=64, epochs=1, seed=seed))


def _files(directory) -> dict:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_saving_over_a_checkpoint_is_refused_unless_overwrite(tmp_path):
    from ltrsched.predictors.predictor import Predictor

    old, new = _ranker(0), _ranker(1)
    ck = old.save(tmp_path / "ck")
    before = _files(ck)
    with pytest.raises(ValueError, match=r"^directory '.*ck' already holds a checkpoint \(predictor\.json, "
                                         r"weights\.pt\): pass overwrite=True to replace it") as caught:
        new.save(ck)
    assert isinstance(caught.value, UserError) and _files(ck) == before  # (nothing replaced)
    with pytest.raises(TypeError, match=r"^overwrite must be True or False, got str 'yes'$"):
        new.save(ck, overwrite="yes")
    new.save(ck, overwrite=True)
    assert np.array_equal(Predictor.load(ck).scores(_PROMPTS), new.scores(_PROMPTS))
    assert not np.array_equal(new.scores(_PROMPTS), old.scores(_PROMPTS))
    (tmp_path / "empty").mkdir()
    new.save(tmp_path / "empty")  # (an existing directory without a checkpoint, and a new one: no refusal)
    new.save(tmp_path / "new" / "deeper")


def test_a_predictor_saved_over_an_ensemble_loads_as_that_predictor(tmp_path):
    """The ensemble's ensemble.json was left beside the new predictor.json, and a load gave the ensemble."""
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import Predictor

    a, b, new = _ranker(0), _ranker(1), _ranker(2)
    sources = [a.save(tmp_path / "a"), b.save(tmp_path / "b")]
    ens = Ensemble.calibrate([a, b], _PROMPTS).save(tmp_path / "ens", sources)
    with pytest.raises(ValueError, match=r"already holds a checkpoint \(ensemble\.json\)"):
        new.save(ens)
    new.save(ens, overwrite=True)
    loaded = Predictor.load(ens)
    assert isinstance(loaded, Predictor) and np.array_equal(loaded.scores(_PROMPTS), new.scores(_PROMPTS))


def test_saving_an_ensemble_over_a_checkpoint_is_refused_unless_overwrite(tmp_path):
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import Predictor

    a, b, c = _ranker(0), _ranker(1), _ranker(2)
    dirs = [a.save(tmp_path / "a"), b.save(tmp_path / "b"), c.save(tmp_path / "c")]
    first = Ensemble.calibrate([a, b], _PROMPTS)
    ens = first.save(tmp_path / "ens", dirs[:2])
    before = _files(ens)
    second = Ensemble.calibrate([a, c], _PROMPTS, [1.0, 2.0])
    with pytest.raises(ValueError, match=r"already holds a checkpoint \(ensemble\.json, member0, member1\)"):
        second.save(ens, [dirs[0], dirs[2]])
    assert _files(ens) == before
    (tmp_path / "half").mkdir()
    shutil.copytree(dirs[0], tmp_path / "half" / "member0")  # (a member directory it would replace, alone)
    with pytest.raises(ValueError, match=r"already holds a checkpoint \(member0\)"):
        second.save(tmp_path / "half", [dirs[0], dirs[2]])
    second.save(ens, [dirs[0], dirs[2]], overwrite=True)
    assert np.array_equal(Predictor.load(ens).scores(_PROMPTS), second.scores(_PROMPTS))
    with pytest.raises(ValueError, match=r"^sources\[1\] '.*member1' lies in directory '.*ens', which the save "
                                         r"replaces"):  # (it was removed before it was copied)
        first.save(ens, [dirs[0], ens / "member1"], overwrite=True)
    assert np.array_equal(Predictor.load(ens).scores(_PROMPTS), second.scores(_PROMPTS))


def test_a_predictor_save_that_fails_half_way_leaves_no_checkpoint(tmp_path, monkeypatch):
    """A checkpoint written before predictor.json named its weights (no weights_sha256) is replaced, and the save
    fails after the new weights are written: the old predictor.json beside them loaded as the old model's settings and
    metrics with the new model's scores. Now the old checkpoint's files go first: nothing there loads."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    old, new = _ranker(0), _ranker(1)
    ck = old.save(tmp_path / "ck")
    path = ck / "predictor.json"
    record = json.loads(path.read_text())
    del record["weights_sha256"], record["trained_with"]
    path.write_text(json.dumps(record))

    def fails(*args, **kwargs):
        raise UserError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(PredictorConfig, "save", fails)
    with pytest.raises(UserError, match="No space left"):
        new.save(ck, overwrite=True)
    with pytest.raises(UserError, match=r"is not a predictor checkpoint \(no predictor\.json\)"):
        Predictor.load(ck)


def test_an_ensemble_save_that_fails_half_way_leaves_no_checkpoint(tmp_path, monkeypatch):
    """An ensemble written before ensemble.json named its members' weights is replaced, and the save fails after its
    first member was copied: the old ensemble.json z-scored the new member by the old one's statistics."""
    from ltrsched.predictors import ensemble as ensemble_module
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import Predictor

    a, b, c = _ranker(0), _ranker(1), _ranker(2)
    dirs = [a.save(tmp_path / "a"), b.save(tmp_path / "b"), c.save(tmp_path / "c")]
    ens = Ensemble.calibrate([a, b], _PROMPTS).save(tmp_path / "ens", dirs[:2])
    spec = json.loads((ens / "ensemble.json").read_text())
    del spec["member_weights_sha256"]
    (ens / "ensemble.json").write_text(json.dumps(spec))
    copies = []
    copytree = shutil.copytree

    def fails_second(src, dst, *args, **kwargs):
        copies.append(dst)
        if len(copies) == 2:
            raise OSError(28, "No space left on device")
        return copytree(src, dst, *args, **kwargs)

    monkeypatch.setattr(ensemble_module.shutil, "copytree", fails_second)
    with pytest.raises(UserError, match="No space left"):
        Ensemble.calibrate([c, b], _PROMPTS).save(ens, [dirs[2], dirs[1]], overwrite=True)
    with pytest.raises(UserError, match=r"is not a predictor checkpoint \(no predictor\.json\)"):
        Predictor.load(ens)


def _three_member_ensemble(tmp_path):
    """An ensemble of 3 rankers saved in tmp_path / "ens", with files of the user's around it (not the ensemble's)."""
    from ltrsched.predictors.ensemble import Ensemble

    rankers = [_ranker(seed) for seed in (0, 1, 2)]
    sources = [r.save(tmp_path / f"src{i}") for i, r in enumerate(rankers)]
    ens = Ensemble.calibrate(rankers, _PROMPTS).save(tmp_path / "ens", sources)
    (ens / "notes.txt").write_text("mine")  # (a file, a memberN it does not list, and one it lists but never wrote)
    (ens / "member7").mkdir()
    (ens / "member7" / "keep.txt").write_text("mine")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("mine")
    spec = json.loads((ens / "ensemble.json").read_text())
    (ens / "ensemble.json").write_text(json.dumps({**spec, "members": spec["members"] + ["../outside"]}))
    return ens, rankers, sources


def _user_files_kept(tmp_path, ens) -> bool:
    return ((ens / "notes.txt").read_text() == (ens / "member7" / "keep.txt").read_text()
            == (tmp_path / "outside" / "keep.txt").read_text() == "mine")


def test_a_save_over_an_ensemble_removes_the_members_it_wrote_and_nothing_else(tmp_path):
    """Predictor.save over an ensemble left its member0, member1, ... beside the predictor; an ensemble of 2 over one
    of 3 left member2. Now the members the replaced ensemble.json lists (of the form memberN, directories) go; the
    user's files beside them, an unlisted memberN and a listed path outside stay."""
    from ltrsched.predictors.ensemble import Ensemble
    from ltrsched.predictors.predictor import Predictor

    ens, rankers, sources = _three_member_ensemble(tmp_path)
    two = Ensemble.calibrate(rankers[:2], _PROMPTS, [1.0, 3.0])
    two.save(ens, sources[:2], overwrite=True)
    assert sorted(p.name for p in ens.iterdir()) == ["ensemble.json", "member0", "member1", "member7", "notes.txt"]
    assert np.array_equal(Predictor.load(ens).scores(_PROMPTS), two.scores(_PROMPTS))
    ens, _, _ = _three_member_ensemble(tmp_path / "again")
    new = _ranker(5)
    new.save(ens, overwrite=True)
    assert sorted(p.name for p in ens.iterdir()) == ["member7", "notes.txt", "predictor.json", "weights.pt"]
    assert np.array_equal(Predictor.load(ens).scores(_PROMPTS), new.scores(_PROMPTS))
    assert _user_files_kept(tmp_path / "again", ens) and _user_files_kept(tmp_path, tmp_path / "ens")


def test_a_save_that_fails_among_the_old_members_leaves_no_checkpoint_and_a_retry_removes_the_rest(tmp_path,
                                                                                                  monkeypatch):
    """The members go before the ensemble.json that lists them: stopped after the first, the directory loads as no
    checkpoint (a member gone), and the next save with overwrite=True still finds the others to remove."""
    from ltrsched.predictors import config as config_module
    from ltrsched.predictors.predictor import Predictor

    ens, _, _ = _three_member_ensemble(tmp_path)
    removed = []
    rmtree = shutil.rmtree

    def fails_second(path, *args, **kwargs):
        removed.append(path)
        if len(removed) == 2:
            raise OSError(28, "No space left on device")
        return rmtree(path, *args, **kwargs)

    new = _ranker(5)
    with monkeypatch.context() as patch:
        patch.setattr(config_module.shutil, "rmtree", fails_second)
        with pytest.raises(OSError, match=r"cannot remove .*member1 \(No space left on device\)"):
            new.save(ens, overwrite=True)
    with pytest.raises(FileNotFoundError, match=r"member0 is not a predictor checkpoint: no such directory"):
        Predictor.load(ens)
    new.save(ens, overwrite=True)
    assert sorted(p.name for p in ens.iterdir()) == ["member7", "notes.txt", "predictor.json", "weights.pt"]
    assert np.array_equal(Predictor.load(ens).scores(_PROMPTS), new.scores(_PROMPTS))


def test_train_and_ensemble_into_their_own_out_still_replace_it(tmp_path, capsys):
    """The command line is unchanged: `train` and `ensemble` into an --out holding their own kind of checkpoint
    replace it (as simulate, replay and validate replace their own output)."""
    from ltrsched.predictors.predictor import Predictor

    train, held_out = tmp_path / "tr.jsonl", tmp_path / "ev.jsonl"
    write_label_jsonl(train, english_rows(20, 0))
    write_label_jsonl(held_out, english_rows(6, 1))
    ck = _ranker(0).save(tmp_path / "ck")
    r = run_cli_fast(capsys, "train", "--data", train, "--eval-data", held_out, "--epochs", "1", "--seed", "7",
                     "--out", ck)
    assert r.returncode == 0, r.stderr
    assert Predictor.load(ck).config.seed == 7
    from ltrsched.predictors.ensemble import Ensemble

    a, b = _ranker(1), _ranker(2)
    members = [a.save(tmp_path / "m1"), b.save(tmp_path / "m2")]
    Ensemble.calibrate([a, b], _PROMPTS).save(tmp_path / "ens", members)
    r = run_cli_fast(capsys, "ensemble", "-m", members[0], "-m", members[1], "-w", "1", "-w", "3", "--data", train,
                     "--eval-data", held_out, "-o", tmp_path / "ens")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "ens" / "ensemble.json").read_text())["weights"] == [1.0, 3.0]


def test_a_pipe_named_ensemble_json_is_replaced_without_reading_it(tmp_path):
    """Finding the members to remove read ensemble.json: a pipe of that name blocked the save for good. Now only a
    regular file is read (a pipe: no member known); the save replaces it. (Run in a thread: without the fix the pipe is
    opened for writing after 10 s to unblock the reader, and the test fails instead of hanging.)"""
    import os
    import threading

    from ltrsched.predictors.predictor import Predictor

    os.mkfifo(tmp_path / "ensemble.json")
    new = _ranker(5)
    done = []
    saving = threading.Thread(target=lambda: done.append(new.save(tmp_path, overwrite=True)), daemon=True)
    saving.start()
    saving.join(10)
    blocked = saving.is_alive()
    if blocked:
        with open(tmp_path / "ensemble.json", "w"):
            pass
        saving.join(10)
    assert not blocked and done, "the save blocked reading the pipe"
    assert np.array_equal(Predictor.load(tmp_path).scores(_PROMPTS), new.scores(_PROMPTS))
