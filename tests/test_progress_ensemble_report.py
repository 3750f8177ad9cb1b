"""The plain progress lines of ``ensemble`` (each member's scoring of the calibration and the held-out prompts:
``ensemble member 1 of 2: K of N prompts scored, S s``) and ``label-report`` (each ranker's training and scoring:
``label-report: K of N lists trained, S s``, ``... prompts scored``) on a stderr that is not a terminal: before,
nothing until done (a model member's scoring, a probe ranker's training: minutes). n-gram models, a fake clock."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from label_data import english_rows, write_label_jsonl
from test_audit_pred2 import _labels, _ranker
from test_progress import FakeClock
from test_progress_commands import _counting, _lines


@pytest.fixture(autouse=True)
def every_10_s(monkeypatch):
    """The lines every 10 s, as outside the test suite (its conftest turns them off)."""
    monkeypatch.delenv("LTRSCHED_PROGRESS_EVERY_S", raising=False)


def test_ensemble_prints_each_members_prompts_scored(tmp_path, capsys, monkeypatch):
    train = english_rows(60, 0)
    _ranker(tmp_path / "a", train, seed=0)
    _ranker(tmp_path / "b", train, seed=1)
    write_label_jsonl(tmp_path / "train.jsonl", train)
    write_label_jsonl(tmp_path / "eval.jsonl", english_rows(30, 1))
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(11.0))
    r = run_cli_fast(capsys, "ensemble", "-m", tmp_path / "a", "-m", tmp_path / "b", "--data", tmp_path / "train.jsonl",
                     "--eval-data", tmp_path / "eval.jsonl", "-o", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    for member in (1, 2):
        lines = _lines(r.stderr, f"ensemble member {member} of 2", "prompts scored")
        # (the calibration prompts, then the held-out ones: each member scores each set once)
        assert [t for _, t, _ in lines] == [60, 30], r.stderr
        assert _counting(lines[:1], 60) and _counting(lines[1:], 30), r.stderr
    assert "scored" not in r.stdout and r.stdout.startswith("member "), r.stdout


def test_label_report_prints_its_rankers_lists_trained_and_prompts_scored(tmp_path, capsys, monkeypatch):
    _labels(tmp_path / "l.parquet", {"train": english_rows(40, 0), "eval": english_rows(30, 1)})
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(11.0))
    r = run_cli_fast(capsys, "label-report", tmp_path / "l.parquet", "-o", tmp_path / "r", "--sizes", "20,all",
                     "--epochs", "1")
    assert r.returncode == 0, r.stderr
    trained = _lines(r.stderr, "label-report", "lists trained")  # (40 prompts: 2 lists of 32; 20: 1 list)
    assert [t for _, t, _ in trained] == [2, 2, 1] and _counting(trained[:2], 2) and _counting(trained[2:], 1), r.stderr
    scored = _lines(r.stderr, "label-report", "prompts scored")  # (the held-out prompts, by each ranker)
    assert len(scored) == 2 and _counting(scored, 30), r.stderr
    assert "lists trained" not in r.stdout and "scored" not in r.stdout


def test_label_report_as_a_library_call_prints_no_progress(tmp_path, capsys, monkeypatch):
    """Without ``show_progress`` (a library caller, the report's tests) the rankers show nothing."""
    import polars as pl

    from ltrsched.predictors.label_report import label_report

    _labels(tmp_path / "l.parquet", {"train": english_rows(40, 0), "eval": english_rows(30, 1)})
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(11.0))
    label_report(pl.read_parquet(tmp_path / "l.parquet"), "l.parquet", ["all"], epochs=1)
    captured = capsys.readouterr()
    assert "label-report:" not in captured.err and not captured.out
