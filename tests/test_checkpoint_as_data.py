"""A predictor checkpoint given where prompts are expected (``-w``, ``--data``, ``--eval-data``) is named as one: the
loader said only "workload 'm' is a directory, not a file"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import run_cli_fast
from label_data import english_rows


@pytest.mark.parametrize("command", ["predict", "evaluate", "train"])
def test_a_checkpoint_given_as_prompts_is_named_as_one(tmp_path, capsys, command):
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    rows = english_rows(20, 0)
    predictor = Predictor(PredictorConfig(epochs=1, seed=0))
    predictor.fit([p for p, _ in rows], np.array([n for _, n in rows]))
    predictor.save(tmp_path / "m")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"prompt": p, "output_tokens": n}) + "\n" for p, n in rows))
    args = {"predict": ["predict", "-m", tmp_path / "m", "-w", tmp_path / "m", "-o", tmp_path / "s.parquet"],
            "evaluate": ["evaluate", "-m", tmp_path / "m", "--data", tmp_path / "m"],
            "train": ["train", "--data", tmp_path / "t.jsonl", "--eval-data", tmp_path / "m", "-o", tmp_path / "o"]}
    r = run_cli_fast(capsys, *args[command])
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and " is a predictor checkpoint " in lines[0] \
        and "--model/-m" in lines[0], r.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.parquet").exists()
