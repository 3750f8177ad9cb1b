"""``predict`` of a file with its own split (a 'split' key or column, or a labels file) scores one split by default:
it says so, where the output would otherwise hold fewer rows than the file without a word."""

from __future__ import annotations

import json

import numpy as np

from cli_helpers import run_cli_fast
from label_data import english_rows


def _ranker(path, rows) -> None:
    """An n-gram ranker (one epoch) trained on ``rows``, saved at ``path``."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    predictor = Predictor(PredictorConfig(epochs=1, seed=0))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(path)


def test_predict_says_it_scored_one_split_of_a_file_with_splits(tmp_path, capsys):
    """30 rows, 10 of them "train": predict wrote 20 rows and said only `wrote ... (20 requests, ...)`."""
    _ranker(tmp_path / "m", english_rows(40, 0))
    rows = english_rows(30, 1)
    (tmp_path / "mix.jsonl").write_text("".join(
        json.dumps({"prompt": p, "output_tokens": n, "split": "train" if i % 3 == 0 else "eval"}) + "\n"
        for i, (p, n) in enumerate(rows)))
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "mix.jsonl", "-o", tmp_path / "s.parquet")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: scored the 20 eval-split requests of ")]
    assert len(notes) == 1 and notes[0].endswith("--split all scores every row"), r.stderr
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "mix.jsonl", "-o", tmp_path / "a.parquet",
                     "--split", "all")
    assert r.returncode == 0 and "note: scored" not in r.stderr and "(30 requests" in r.stdout, r.stderr


def test_predict_of_a_file_without_splits_gives_no_split_note(tmp_path, capsys):
    _ranker(tmp_path / "m", english_rows(40, 0))
    (tmp_path / "w.jsonl").write_text("".join(json.dumps({"prompt": p, "output_tokens": n}) + "\n"
                                              for p, n in english_rows(12, 1)))
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "w.jsonl", "-o", tmp_path / "s.parquet")
    assert r.returncode == 0 and "note: scored" not in r.stderr and "(12 requests" in r.stdout, r.stderr
