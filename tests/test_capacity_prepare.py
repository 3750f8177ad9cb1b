"""A capacity search loads a trained predictor only for the runs it computes, once (as ``reproduce`` does since the
reprocache merge): it loaded the predictors of every template before its first round, where every run was cached
too. ``_prepare_predictors`` stands for the load here (a trained predictor takes minutes to train in a test)."""

from __future__ import annotations

from cli_helpers import run_cli_fast
from ltrsched.experiments import commands


def test_a_cached_capacity_search_prepares_nothing_and_a_fresh_one_each_scoring_once(tmp_path, capsys, monkeypatch):
    calls: list[list] = []
    monkeypatch.setattr(commands, "_prepare_predictors", lambda specs: calls.append(list(specs)))
    args = ("capacity", "-w", "lmsys-like", "-n", "10", "--seeds", "1", "-p", "fcfs", "-p", "srtf",
            "--slo", "ttft_p90=5", "--max-rate", "8", "--out", str(tmp_path / "cap"), "-j", "1")
    r = run_cli_fast(capsys, *args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(calls) == 1 and {s.policy for s in calls[0]} == {"fcfs", "srtf"}  # the first round's runs, once
    calls.clear()
    r = run_cli_fast(capsys, *args)  # every run cached
    assert r.returncode == 0, r.stderr[-2000:]
    assert calls == []
