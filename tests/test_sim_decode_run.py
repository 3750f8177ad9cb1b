"""Decode runs (``ltrsched.sim.decode_run``) change no result: each workload below is simulated with runs on and off
and every request's metrics, the step trace and the run's counters must be equal (``==``, NaN where both are NaN).

The workloads make runs start and end in every way: long decodes alone and together, cut by an arrival, by a finish,
by a block boundary of a nearly full cache (then preemption, swap and recompute), by ``stop_time``; a cluster of two
replicas (the inbox horizon); policies that take runs (FCFS, SRTF, LTR, PO, starvation prevention around FCFS and
LTR, cut at its thresholds and quanta; MLFQ alone) and some that keep the per-step path (MLFQ's promotions, starvation
prevention around MLFQ)."""

from __future__ import annotations

import importlib

import numpy as np
import polars as pl
import pytest

import ltrsched.sim.cluster as cluster
import ltrsched.sim.decode_run as decode_run
from ltrsched.policies import make_policy
from ltrsched.routers import make_router
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster
from ltrsched.sim.request_table import DYNAMIC
from ltrsched.workloads.schema import Workload

simulate_module = importlib.import_module("ltrsched.sim.simulate")  # (the package's ``simulate`` is the function)
_TIMING = ("wall_time_s", "speedup_vs_real_time")  # (the host's clock, not the simulation's)


def _workload(n: int, prompts: tuple[int, int], outputs: tuple[int, int], gap: float, seed: int) -> Workload:
    rng = np.random.default_rng(seed)
    arrivals = np.concatenate(([0.0], np.cumsum(rng.exponential(gap, n - 1)))) if gap else np.zeros(n)
    return Workload(pl.DataFrame({
        "request_id": np.arange(n, dtype=np.int64),
        "prompt_tokens": rng.integers(prompts[0], prompts[1] + 1, n).astype(np.int64),
        "output_tokens": rng.integers(outputs[0], outputs[1] + 1, n).astype(np.int64),
        "arrival_time": arrivals,
        "score": rng.random(n),  # (LTR's predictor score)
        "po_estimate": rng.integers(100, 2_000, n).astype(np.float64),  # (PO's: no noise model drawn)
    }), f"decode-run-{n}-{seed}")


def _run(wl: Workload, spec: str, config: SimConfig, replicas: int, enabled: bool, monkeypatch):
    monkeypatch.setattr(decode_run, "ENABLED", enabled)
    taken = []
    real = decode_run.take_decode_run

    def counting(*args):
        run = real(*args)
        if run.steps:
            taken.append(run.steps)
        return run

    monkeypatch.setattr("ltrsched.sim.replica.take_decode_run", counting)
    tables = []  # the run's request table at its end (every request's state, the unfinished ones' too)
    real_check = simulate_module.check_finished

    def keep_table(table, cfg):
        tables.append({name: getattr(table, name).copy() for name in DYNAMIC})
        return real_check(table, cfg)

    monkeypatch.setattr(simulate_module, "check_finished", keep_table)
    monkeypatch.setattr(cluster, "check_finished", keep_table)
    if replicas == 1:
        result = simulate(wl, make_policy(spec), config)
    else:
        result = simulate_cluster(wl, make_policy(spec), config, replicas=replicas, router=make_router("round-robin"))
    assert len(tables) == 1
    return result, taken, tables[0]


def _same_frame(a: pl.DataFrame, b: pl.DataFrame, what: str) -> None:
    assert a.columns == b.columns, what
    for name in a.columns:
        x, y = a[name].to_numpy(), b[name].to_numpy()
        if x.dtype.kind == "f":
            same = (x == y) | (np.isnan(x) & np.isnan(y))
        else:
            same = x == y
        assert same.all(), f"{what}: column {name} differs at rows {np.flatnonzero(~same)[:5].tolist()}"


def _assert_same(wl: Workload, spec: str, config: SimConfig, monkeypatch, replicas: int = 1,
                 runs_expected: bool | None = True):
    """Simulate with runs off and on; assert the results equal. Returns the run without. ``runs_expected``: whether
    a run must be taken (None: either; tests/fuzz_decode_run.py's)."""
    off, none_taken, off_table = _run(wl, spec, config, replicas, False, monkeypatch)
    on, taken, on_table = _run(wl, spec, config, replicas, True, monkeypatch)
    for name, values in off_table.items():
        assert np.array_equal(values, on_table[name], equal_nan=values.dtype.kind == "f"), f"table column {name}"
    assert not none_taken
    if runs_expected is None:
        pass
    elif runs_expected:
        assert taken, "no decode run was taken: the case tests nothing"
    else:
        assert not taken
    _same_frame(off.requests, on.requests, "requests")
    if config.record_steps:
        _same_frame(off.steps, on.steps, "steps")
    for key, value in off.summary.items():
        if key in _TIMING:
            continue
        other = on.summary[key]
        assert value == other or (value != value and other != other), f"summary {key}: {value!r} != {other!r}"
    return off


LONG = _workload(5, (1_000, 4_000), (300, 1_200), 4.0, 1)  # 1-3 live, arrivals cut runs
BURST = _workload(6, (100, 400), (300, 1_500), 0.0, 2)  # all at once: runs end at finishes


@pytest.mark.parametrize("spec", ["fcfs", "srtf", "ltr", "po", "mlfq"])
def test_long_decodes_same_with_runs(spec, monkeypatch):
    _assert_same(LONG, spec, SimConfig(record_steps=True), monkeypatch)


@pytest.mark.parametrize("spec", ["mlfq:promote=100", "mlfq:starve=50,starve_quantum=5"])
def test_per_step_policies_take_no_run(spec, monkeypatch):
    """MLFQ with promotions (its idle counters) must see each step, and so must starvation prevention around MLFQ (the
    wrapper passes on_step on): no run, the same results."""
    _assert_same(LONG, spec, SimConfig(record_steps=True), monkeypatch, runs_expected=False)


def test_mlfq_runs_without_waiting_requests(monkeypatch):
    """MLFQ takes runs while every live request decodes in the batch (it records the run's last step as theirs; the
    next rank sorts): with one sequence slot, only alone; on a small cache, beside swapped-out requests, none."""
    wl = Workload(pl.DataFrame({"request_id": [0, 1, 2], "prompt_tokens": [16, 16, 16],
                                "output_tokens": [400, 900, 300], "arrival_time": [0.0, 1.0, 1.0]}), "mlfq-alone")
    _assert_same(wl, "mlfq:quantum=0.5", SimConfig(max_num_seqs=1, record_steps=True), monkeypatch)
    _assert_same(LONG, "mlfq", SimConfig(num_gpu_blocks=300, preemption="swap", record_steps=True), monkeypatch)


@pytest.mark.parametrize("spec", ["ltr:starve=50,quantum=5", "ltr:starve=20,quantum=3", "fcfs:starve=30,quantum=4"])
def test_starvation_prevention_takes_runs(spec, monkeypatch):
    """Starvation prevention (the paper's LTR with it too) takes runs between its events: long decodes beside requests
    waiting for KV, whose threshold falls inside what would be a run (promoted, they evict a member), and promoted
    members whose quantum ends inside one. The same results as step by step, and requests were promoted."""
    wl = _workload(6, (800, 2_500), (300, 900), 0.5, 6)
    config = SimConfig(num_gpu_blocks=300, preemption="recompute", record_steps=True)
    off = _assert_same(wl, spec, config, monkeypatch)
    assert off.summary["num_preemptions"] > 0  # (a promotion evicted a member: the threshold cut a run)


def test_starvation_runs_cut_before_each_threshold(monkeypatch):
    """Two long decodes, one sequence slot: each in turn waits ``starve`` steps, is promoted for ``quantum`` steps and
    returns. Runs fit between those events (a lone member's quantum ends inside what would be a run)."""
    wl = Workload(pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [16, 16], "output_tokens": [900, 900],
                                "arrival_time": [0.0, 0.0], "score": [0.9, 0.1]}), "starve-turns")
    config = SimConfig(max_num_seqs=1, record_steps=True)
    for spec in ("ltr:starve=40,quantum=30", "ltr:starve=30,quantum=12"):
        off = _assert_same(wl, spec, config, monkeypatch)
        assert (off.requests["max_idle_steps"] > 0).all()  # (both waited: promotions took turns)


def test_starvation_run_beside_a_promoted_request_waiting(monkeypatch):
    """Three long decodes, one sequence slot: two are promoted at the same step, and the second waits (promoted, out
    of the batch) while the first runs its quantum in runs: each skipped step moves the waiting one's quantum end a
    step later, as its rank would have."""
    wl = Workload(pl.DataFrame({"request_id": [0, 1, 2], "prompt_tokens": [16, 16, 16], "output_tokens": [700] * 3,
                                "arrival_time": [0.0] * 3, "score": [0.9, 0.5, 0.1]}), "starve-queue")
    off = _assert_same(wl, "ltr:starve=20,quantum=40", SimConfig(max_num_seqs=1, record_steps=True), monkeypatch)
    assert (off.requests["max_idle_steps"] > 0).all()


def test_burst_runs_end_at_finishes(monkeypatch):
    _assert_same(BURST, "fcfs", SimConfig(record_steps=True), monkeypatch)


@pytest.mark.parametrize("preemption", ["swap", "recompute"])
def test_runs_end_at_a_full_cache(preemption, monkeypatch):
    """A cache that the burst's decodes fill: runs end at the block boundary where form_batch would preempt."""
    wl = _workload(4, (200, 300), (400, 700), 0.0, 3)
    config = SimConfig(num_gpu_blocks=120, block_size=16, preemption=preemption, record_steps=True)
    off = _assert_same(wl, "fcfs", config, monkeypatch)
    assert off.summary["num_preemptions"] > 0  # (the case reaches the boundary)


def test_runs_end_at_stop_time(monkeypatch):
    _assert_same(LONG, "fcfs", SimConfig(record_steps=True, stop_time=30.0), monkeypatch)


def test_cluster_of_two_replicas(monkeypatch):
    wl = _workload(8, (1_000, 4_000), (400, 1_500), 3.0, 4)
    _assert_same(wl, "fcfs", SimConfig(record_steps=True), monkeypatch, replicas=2)
    _assert_same(wl, "srtf", SimConfig(), monkeypatch, replicas=2)


def test_no_trace_same_counters(monkeypatch):
    _assert_same(LONG, "srtf", SimConfig(), monkeypatch)


def test_run_cut_by_eviction_of_the_other_member(monkeypatch):
    """Two decodes fill the cache; the second is evicted and the first goes on alone in faster steps: its largest
    token gap is a step inside the last run (the gaps within a run count)."""
    wl = Workload(pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [16, 16], "output_tokens": [600, 600],
                                "arrival_time": [0.0, 0.0]}), "evict")
    _assert_same(wl, "fcfs", SimConfig(num_gpu_blocks=60, preemption="recompute", record_steps=True), monkeypatch)


def test_run_starts_with_a_paused_member(monkeypatch):
    """SRTF with two sequence slots: a short arrival displaces one of two long decodes (paused, KV kept); once it
    finishes the paused one runs again in a run's first step (its idle run ends there)."""
    wl = Workload(pl.DataFrame({"request_id": [0, 1, 2], "prompt_tokens": [16, 16, 16],
                                "output_tokens": [1500, 1500, 100], "arrival_time": [0.0, 0.0, 5.0]}), "paused")
    _assert_same(wl, "srtf", SimConfig(max_num_seqs=2, record_steps=True), monkeypatch)


def test_run_cut_by_an_arrival(monkeypatch):
    """A lone decode's run ends before a request arrives mid-decode (admitted at the same step as step by step)."""
    wl = Workload(pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [16, 900], "output_tokens": [2_000, 60],
                                "arrival_time": [0.0, 5.0]}), "arrival")
    _assert_same(wl, "fcfs", SimConfig(record_steps=True), monkeypatch)


@pytest.mark.parametrize("watermark", [None, 0.05])
def test_vllm_v1_semantics(watermark, monkeypatch):
    """vLLM V1's rules (residents first, the resident-slot cap, the watermark kept only beside residents) on a cache
    the decodes fill: the same results with runs."""
    wl = _workload(5, (200, 600), (300, 900), 2.0, 5)
    config = SimConfig(semantics="vllm-v1", num_gpu_blocks=150, watermark=watermark, max_num_seqs=3,
                       record_steps=True)
    _assert_same(wl, "fcfs", config, monkeypatch)


@pytest.mark.parametrize("spec,preemption", [("fcfs", "swap"), ("srtf", "recompute"), ("ltr", "swap"),
                                             ("po", "recompute")])
def test_runs_beside_requests_waiting_for_kv(spec, preemption, monkeypatch):
    """A cache that holds two or three of the prompts: the others wait (or wait swapped out) while the batch decodes,
    and a run leaves them out as form_batch does at each step (PO only runs once nobody waits)."""
    wl = _workload(5, (800, 2_500), (200, 700), 1.0, 6)
    config = SimConfig(num_gpu_blocks=300, preemption=preemption, record_steps=True)
    off = _assert_same(wl, spec, config, monkeypatch)
    steps = off.steps.filter(pl.col("num_prefill_tokens") == 0)
    assert (steps["num_live"] > steps["num_seqs"]).any()  # (requests waited beside a decode-only batch)


def test_po_takes_no_run_beside_a_waiting_request(monkeypatch):
    """PO's estimate phase: A decodes while B (a short estimate) waits for KV; once A leaves the phase, B, still in
    it, ranks first and takes the step (A is evicted). A run over A's decodes beside B would have kept A running past
    that step; runs come once A runs alone again."""
    wl = Workload(pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [2_000, 2_000], "output_tokens": [200, 100],
                                "arrival_time": [0.0, 0.001], "po_estimate": [5_000.0, 10.0]}), "po-phase")
    config = SimConfig(num_gpu_blocks=140, preemption="recompute", record_steps=True)
    off = _assert_same(wl, "po", config, monkeypatch)
    assert (off.steps["num_live"] > off.steps["num_seqs"]).any()


def test_mlfq_state_after_a_run(monkeypatch):
    """What MLFQ keeps after a run (alone, and of two) is what the per-step path leaves: the step each member last ran
    in, the run's last (their recency, which the next sort reads; the step after the run overwrites it, so the
    results cannot tell)."""
    wl = Workload(pl.DataFrame({"request_id": [0, 1, 2], "prompt_tokens": [16, 16, 16],
                                "output_tokens": [500, 300, 900], "arrival_time": [0.0, 30.0, 30.0]}), "mlfq-state")
    policy = make_policy("mlfq")
    real, seen = decode_run.take_decode_run, []

    def checked(rep, live, members, *args):
        run = real(rep, live, members, *args)
        if run.steps:
            seen.append((policy._last_run[rep.t.request_id[members]].tolist(), [rep.steps - 1] * len(members)))
        return run

    monkeypatch.setattr("ltrsched.sim.replica.take_decode_run", checked)
    simulate(wl, policy, SimConfig())
    assert any(len(got) == 2 for got, _ in seen)  # (a run of two)
    assert all(got == want for got, want in seen), seen


def test_a_member_of_the_last_step_left_out_of_a_run_pauses_as_on_the_per_step_path(monkeypatch):
    """``tests/fuzz_decode_run.py`` seed 2056: a request that ran in the step before a run and was left out of the
    run's batch stayed RUNNING (the per-step path pauses the last step's batch at the next step's start), so at
    ``stop_time`` its state differed (RUNNING for PAUSED); every other column was equal."""
    wl = Workload(pl.DataFrame({
        "request_id": np.arange(6, dtype=np.int64),
        "prompt_tokens": np.array([2596, 2822, 2618, 592, 2483, 1700], dtype=np.int64),
        "output_tokens": np.array([1921, 265, 1893, 1667, 1333, 1262], dtype=np.int64),
        "arrival_time": [0.0, 0.688837, 0.703617, 1.500255, 1.506492, 1.663833],
        "score": [0.794026, 0.254151, 0.318269, 0.453259, 0.958176, 0.668714],
        "po_estimate": [159.0, 888.0, 1016.0, 612.0, 1518.0, 771.0],
    }), "decode-run-left-out")
    config = SimConfig(num_gpu_blocks=295, preemption="recompute", stop_time=19.636359686172327, record_steps=True)
    _assert_same(wl, "class:tau=0.5", config, monkeypatch)
