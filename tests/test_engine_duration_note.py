"""``replay`` and ``validate`` with ``--duration`` say once how many requests it kept, as ``simulate`` and ``sweep``
do (they dropped the later arrivals without a word)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import run_cli_fast

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]

EMU = ("--emulate", "h100-llama3-8b")


def _workload(path, n: int = 12):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"story {i}", "prompt_tokens": 5, "output_tokens": 4 + i}) + "\n")
    return path


def test_replay_says_once_how_many_requests_duration_kept(tmp_path, capsys):
    w = _workload(tmp_path / "w.jsonl")
    r = run_cli_fast(capsys, "replay", *EMU, "-w", w, "--arrival", "poisson", "--rate", "1", "--duration", "5",
                     "-o", tmp_path / "run")
    assert r.returncode == 0, r
    ran = pl.read_parquet(tmp_path / "run" / "requests.parquet").height
    assert 0 < ran < 12
    notes = [line for line in r.stderr.splitlines() if "--duration" in line]
    assert notes == [f"note: --duration 5 kept {ran} of 12 requests: those arriving in the first 5 s (the rest arrive "
                     "later and were not run); raise --duration or --rate to run more, or leave --duration out to run "
                     "them all"], r.stderr
    assert "note" not in r.stdout


def test_validate_says_once_how_many_requests_duration_kept(tmp_path, capsys):
    from ltrsched.workloads import apply_arrivals, load_workload

    w = _workload(tmp_path / "w.jsonl")
    r = run_cli_fast(capsys, "validate", *EMU, "-w", w, "--arrival", "poisson", "--rate", "1", "--rates", "2",
                     "--duration", "5", "--policies", "fcfs,srtf", "--repeats", "2", "-o", tmp_path / "val")
    assert r.returncode == 0, r
    kept = [len(apply_arrivals(load_workload(str(w)), "poisson", rate=rate, seed=0, duration=5)) for rate in (1, 2)]
    notes = [line for line in r.stderr.splitlines() if "kept" in line]
    span = f"{min(kept)}" if min(kept) == max(kept) else f"{min(kept)} to {max(kept)}"
    assert len(notes) == 1, r.stderr  # (once, not per case, policy or repeat)
    assert notes[0].startswith(f"note: --duration 5 kept {span} of 12 requests in 8 of 8 runs: those arriving in the "
                               "first 5 s"), notes
