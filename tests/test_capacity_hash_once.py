"""A capacity search hashes each run once per round (helper sweepfollow), as ``sweep`` does: it let ``run_all`` hash
the round's runs and hashed them again for their points."""

from __future__ import annotations

import polars as pl

from cli_helpers import run_cli_fast
from ltrsched.experiments.runspec import RunSpec


def test_a_capacity_search_hashes_each_run_once(tmp_path, capsys, monkeypatch):
    calls = []
    real = RunSpec.run_hash
    monkeypatch.setattr(RunSpec, "run_hash", lambda self: calls.append(self) or real(self))
    args = ("capacity", "-w", "lmsys-like", "-n", "10", "--seeds", "1", "-p", "fcfs", "--slo", "ttft_p90=5",
            "--max-rate", "8", "--out", str(tmp_path / "cap"), "-j", "1")
    for computed_again in (2, 1):  # (a run computed is hashed once more: its inputs checked after it read them)
        calls.clear()
        r = run_cli_fast(capsys, *args)
        assert r.returncode == 0, r.stderr[-2000:]
        runs = pl.read_csv(tmp_path / "cap" / "capacity.csv")["runs"].sum()
        assert runs >= 2
        assert len(calls) == computed_again * runs, (len(calls), runs)
