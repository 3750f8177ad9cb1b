"""A second input audit of the CLI: a score column replaced by ``predict``, requests dropped by ``--duration``,
``train --kind class`` on absurd output lengths, and a long run's progress on a pipe. Each ends in a correct result
with what it did said on stderr, or one line naming the problem (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from cli_helpers import run_cli_fast


def _jsonl(path, rows, **extra) -> None:
    """A workload of ``(prompt, output_tokens)`` rows, each with the columns ``extra`` maps to per-row lists."""
    with open(path, "w") as f:
        for i, (prompt, out) in enumerate(rows):
            f.write(json.dumps({"prompt": prompt, "prompt_tokens": 5, "output_tokens": out,
                                **{k: v[i] for k, v in extra.items()}}) + "\n")


def _rows(n: int) -> list[tuple[str, int]]:
    return [(f"write {'a long ' * i}story number {i}", 10 + 7 * i) for i in range(n)]


# ---------------------------------------------------------------- predict over a score column the input has
def test_predict_over_an_existing_score_column_says_it_replaced_it(tmp_path, capsys):
    """``predict`` wrote its scores over a workload's own ``score`` column (another model's) without a word."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rows = _rows(12)
    predictor = Predictor(PredictorConfig(epochs=1))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(tmp_path / "m")
    _jsonl(tmp_path / "w.jsonl", rows, score=[1000.0 + i for i in range(12)])
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "w.jsonl", "-o", tmp_path / "o.parquet")
    assert r.returncode == 0, r
    notes = [line for line in r.stderr.splitlines() if "already has" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "w.jsonl already has the column 'score'" in notes[0]
    assert "--column" in notes[0], notes
    assert pl.read_parquet(tmp_path / "o.parquet")["score"].max() < 1000  # (replaced, as said)
    r = run_cli_fast(capsys, "predict", "-m", tmp_path / "m", "-w", tmp_path / "w.jsonl", "-o", tmp_path / "o2.parquet",
                     "--column", "score_new")
    assert r.returncode == 0 and "already has" not in r.stderr, r
    out = pl.read_parquet(tmp_path / "o2.parquet")
    assert out["score"].to_list() == [1000.0 + i for i in range(12)] and "score_new" in out.columns
