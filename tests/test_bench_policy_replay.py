"""benchmarks/bench_policy_replay.py replays a policy's hooks as the simulator calls them."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl

from bench_modules import load_benchmark
from ltrsched.policies.mlfq import MLFQ
from ltrsched.workloads import Workload, apply_arrivals


def _bench(monkeypatch):
    return load_benchmark("bench_policy_replay", monkeypatch)  # (it imports bench_simulator's spec splitter)


def test_mlfq_is_replayed_through_on_step_ranks_as_the_simulator_calls_it(monkeypatch):
    """The simulator tells MLFQ its batch through ``on_step_ranks``; the replay called ``on_step`` instead, so a
    replayed MLFQ never followed its kept order (it re-sorted every step) and its counts were another code path's."""
    bench = _bench(monkeypatch)
    rng = np.random.default_rng(3)
    n = 60
    wl = apply_arrivals(Workload(pl.DataFrame({"request_id": np.arange(n), "arrival_time": np.zeros(n), "prompt_tokens": rng.integers(20, 400, n),
                                               "output_tokens": rng.integers(1, 120, n)})), "burst")
    columns, calls = bench.record(wl, "mlfq", "a100-llama3-8b")
    assert any(c[0] == "step" and c[3] is not None for c in calls)
    seen = {"on_step": 0, "on_step_ranks": 0}
    for name in seen:
        real = getattr(MLFQ, name)

        def counted(self, *a, _real=real, _name=name):
            seen[_name] += 1
            return _real(self, *a)

        monkeypatch.setattr(MLFQ, name, counted)
    steps = sum(1 for c in calls if c[0] == "step")
    bench.replay("mlfq", columns, calls, "mlfq")
    assert seen["on_step_ranks"] == steps  # (it calls on_step itself for a batch that is not a prefix of its order)
    seen.update(on_step=0, on_step_ranks=0)
    bench.replay("mlfq", columns, calls, "fcfs")  # another run's ranks: read off its batch mask
    assert seen["on_step_ranks"] == steps
    sys.modules.pop("bench_simulator", None)
