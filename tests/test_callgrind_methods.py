"""benchmarks/callgrind_methods.py routes a policy's methods through C builtins without changing what they do."""

from __future__ import annotations

import numpy as np
import polars as pl

from bench_modules import load_benchmark
from ltrsched.policies import make_policy
import ltrsched.sim.decode_run as decode_run
from ltrsched.sim import SimConfig, simulate
from ltrsched.workloads import Workload, apply_arrivals


def _bench(monkeypatch):
    return load_benchmark("callgrind_methods", monkeypatch)  # (it imports bench_simulator's callgrind bracket)


def test_wrapped_methods_give_the_same_run_and_are_each_called(monkeypatch):
    """Each wrapper hands its method's return value back (a wrapper that returned its builtin's own value, such as
    ``sorted``'s list, changed the order MLFQ handed the host): the same finish times as the unwrapped policy."""
    bench = _bench(monkeypatch)
    monkeypatch.setattr(decode_run, "ENABLED", False)  # (decode runs skip rank and on_step_ranks: counted a step each)
    rng = np.random.default_rng(5)
    n = 60
    wl = apply_arrivals(Workload(pl.DataFrame({"request_id": np.arange(n), "arrival_time": np.zeros(n),
                                               "prompt_tokens": rng.integers(20, 400, n),
                                               "output_tokens": rng.integers(1, 120, n)})), "burst")
    config = SimConfig(profile="a100-llama3-8b")
    plain = simulate(wl, make_policy("mlfq:quantum=0.01"), config)
    policy = make_policy("mlfq:quantum=0.01")
    methods = ["rank", "_follow", "_relevel_head", "_assemble", "_ran", "on_step_ranks"]
    calls = bench.wrap_methods(policy, methods)
    wrapped = simulate(wl, policy, config)
    assert wrapped.summary["steps"] == plain.summary["steps"]
    assert np.array_equal(wrapped.requests["finish_time"].to_numpy(), plain.requests["finish_time"].to_numpy())
    assert all(calls[m][0] > 0 for m in methods), calls
    assert calls["rank"][0] == calls["on_step_ranks"][0] == wrapped.summary["steps"]


def test_counts_are_read_from_each_builtins_own_line(monkeypatch):
    """A method's count is its builtin's C function's line, not one of a header that names the same function
    (``pycore_call.h:map_next``) nor one whose name only starts the same way."""
    bench = _bench(monkeypatch)
    text = "\n".join([
        "  406,571,156 (24.67%)  /tmp/Python-3.11.7/Python/bltinmodule.c:map_next [/lib/libpython3.11.so.1.0]",
        "  406,262,491 (24.65%)  /tmp/Python-3.11.7/./Include/internal/pycore_call.h:map_next",
        "  999,999,999 (50.00%)  /tmp/Python-3.11.7/Python/bltinmodule.c:map_next_other [/lib/libpython3.11.so.1.0]",
        "   83,154,027 ( 5.05%)  /tmp/Python-3.11.7/Python/bltinmodule.c:filter_next [/lib/libpython3.11.so.1.0]",
        "  364,060,574 (22.09%)  /tmp/Python-3.11.7/./Modules/itertoolsmodule.c:starmap_next",
    ])
    methods = ["rank", "_follow", "_relevel_head", "_assemble", "_ran", "on_step_ranks"]
    counts = bench.parse_inclusive(text, methods)
    assert counts == {"rank": 406_571_156, "_follow": 364_060_574, "_relevel_head": 0, "_assemble": 0, "_ran": 0,
                      "on_step_ranks": 83_154_027}
