"""The engine's refusals of a request beyond its context name the request's place in the workload's file, as the
simulator's do: "request 24" alone named an id the loader numbered, no row of the file once ``-n`` sampled it."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]


def _trace(path, long_row: int, rows: int = 30):
    """A length-only .csv of ``rows`` requests, the one in (1-based) row ``long_row`` 30,000 output tokens long."""
    with open(path, "w") as f:
        f.write("Request tokens,Response tokens\n")
        for i in range(1, rows + 1):
            f.write(f"100,{30000 if i == long_row else 10}\n")
    return path


def test_context_refusal_names_the_row_of_a_sampled_file(tmp_path, capsys):
    w = _trace(tmp_path / "other.csv", long_row=21)
    r = run_cli_fast(capsys, "replay", "--emulate", "cpu-llama-tiny", "-w", w, "-n", "25", "--seed", "1")
    assert r.returncode == 2, r
    assert r.stderr == (f"error: 1 request(s) exceed the engine's max_model_len 4096 tokens (first: request 24 in row 21 "
                        f"of {w}, 30100 tokens): raise --max-model-len if the model takes longer contexts, or leave "
                        "them out\n"), r.stderr

