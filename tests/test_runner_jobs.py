"""``--jobs`` far above the CPUs this process may use: the process pool starts a worker per run to compute, up to
``--jobs``, and says once, in one line, that they share the CPUs (``reproduce table1 --quick -j 1000`` on 2 CPUs started
11 workers without a word). Ray's backend is not concerned."""

from __future__ import annotations

import os

import pytest

from ltrsched.experiments import runner
from ltrsched.experiments.runspec import RunSpec

SPEC = RunSpec(experiment="sweep", setting="", label="fcfs", workload="lmsys-like", policy="fcfs",
               profile="a100-llama3-8b", num_requests=20)


class _Bar:
    def __init__(self):
        self.lines = []

    def write(self, line, file=None):
        self.lines.append(line)


@pytest.mark.parametrize("jobs,pending,cpus,noted", [
    (1000, 11, 2, True), (1000, 3, 2, True), (5, 11, 2, True),
    (4, 11, 2, False),     # twice the CPUs: taken quietly
    (1000, 2, 2, False),   # two runs start two workers: no more than the CPUs
    (2, 4, 1, False),      # a test's -j 2 under taskset -c 0
])
def test_a_pool_far_above_the_cpus_says_so_once(monkeypatch, jobs, pending, cpus, noted):
    """The pool still gets the workers asked for (one per pending run at most); the note says how many share the CPUs,
    once per backend (reproduce all calls run_all once per experiment)."""
    calls = []
    monkeypatch.setattr(runner, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(runner, "_run_pool", lambda pool, pend, *a, **k: calls.append(len(pend)))
    monkeypatch.setattr(runner.ProcessBackend, "_executor", lambda self: None)
    backend, bar = runner.ProcessBackend(jobs), _Bar()
    work = [(SPEC, f"h{i}") for i in range(pending)]
    backend.run(work, None, None, bar)
    backend.run(work, None, None, bar)
    assert calls == [pending, pending] and backend.jobs == jobs
    if not noted:
        assert bar.lines == []
        return
    workers = min(jobs, pending)
    assert bar.lines == [f"note: --jobs {jobs:,} is far above the {cpus} CPU(s) this process may use: {workers:,} worker "
                         f"processes (one per run to compute) share them; --jobs {cpus} runs as many at once"]


def test_usable_cpus_follow_the_affinity():
    assert runner.usable_cpus() == len(os.sched_getaffinity(0))


def test_the_default_jobs_is_not_noted(monkeypatch):
    """Without --jobs the pool has the CPUs this process may use (it had the machine's cores, os.cpu_count, which a
    container's cpuset may cut to far fewer): the note named a --jobs the user never gave."""
    monkeypatch.setattr(runner, "_run_pool", lambda *a, **k: None)
    monkeypatch.setattr(runner.ProcessBackend, "_executor", lambda self: None)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(runner, "usable_cpus", lambda: 64)
    backend, bar = runner.ProcessBackend(None), _Bar()
    monkeypatch.setattr(runner, "usable_cpus", lambda: 1)  # (fewer by the time it runs: still not noted)
    backend.run([(SPEC, f"h{i}") for i in range(11)], None, None, bar)
    assert backend.jobs == 64 and bar.lines == []
