"""Property tests of the simulator on random workloads (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import LinearProfile, make_workload
from ltrsched.policies import Policy, make_policy
from ltrsched.sim import SimConfig, simulate


class RandomOrder(Policy):
    """Adversarial policy: a random order of the live requests, redrawn every ``period`` steps (exercises
    pausing, preemption and swapping). Redrawn every step under recompute it can evict requests faster than
    they finish: a livelock the simulator stops with a "preemption thrash" error (tested below)."""

    name = "random-test"

    def __init__(self, seed: int = 0, period: int = 8):
        self.seed, self.period = seed, period

    def rank(self, view):
        if not len(view):
            return np.zeros(0, dtype=np.int64)
        keys = np.random.default_rng([self.seed, view.step // self.period]).random(int(view.request_id.max()) + 1)
        return view.order_by(keys[view.request_id])


workloads = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 120), min_size=n, max_size=n),
        st.lists(st.integers(1, 60), min_size=n, max_size=n),
        st.lists(st.floats(0, 2.0, allow_nan=False), min_size=n, max_size=n),
    )
)


def _check(result, workload, config, blocks):
    req = result.requests
    steps = result.steps
    # every request finishes exactly once, with exactly its output tokens
    for col in ("finish_time", "first_token_time", "first_scheduled_time"):  # polars orders NaN above numbers
        assert req[col].is_not_null().all() and not req[col].is_nan().any(), col
    assert (req["generated_tokens"] == req["served_output_tokens"]).all()
    assert int(steps["num_finished"].sum()) == req.height
    assert (req["finish_time"] >= req["first_token_time"]).all()
    assert (req["first_token_time"] > req["arrival_time"]).all()
    assert (req["first_scheduled_time"] >= req["arrival_time"]).all()
    # limits hold every step
    assert steps["num_batched_tokens"].max() <= config.max_num_batched_tokens
    assert steps["num_seqs"].max() <= config.max_num_seqs
    assert (steps["num_decode_seqs"] <= steps["num_seqs"]).all()
    assert steps["resident_blocks"].max() <= blocks
    assert (steps["resident_blocks"] == steps["blocks_in_use"]).all()
    assert steps["host_blocks_in_use"].max() <= result.summary["host_blocks"]
    # memory returns to zero
    assert steps["resident_blocks"][-1] == 0 and steps["host_blocks_in_use"][-1] == 0
    # time moves forward
    assert (steps["duration"] > 0).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    wl=workloads,
    policy=st.sampled_from(["fcfs", "srtf", "random"]),
    budget=st.integers(8, 200),
    seqs=st.integers(1, 16),
    blocks=st.integers(12, 60),
    preemption=st.sampled_from(["swap", "recompute"]),
    swap_gib=st.sampled_from([0.0, 1e-4, 1.0]),
    chunked=st.booleans(),
    semantics=st.sampled_from(["paper", "vllm-v1"]),
)
def test_invariants_random_workloads(wl, policy, budget, seqs, blocks, preemption, swap_gib, chunked, semantics):
    prompts, outputs, arrivals = wl
    if semantics == "vllm-v1":
        preemption = "recompute"
        budget = max(budget, seqs)  # (vLLM refuses a budget below its sequence cap, and so does SimConfig here)
    if not chunked:  # a step must take the largest recompute whole: prompt + output - 1 (the fit check's bound)
        budget = max(budget, max(p + o - 1 for p, o in zip(prompts, outputs)))
    workload = make_workload(prompts, outputs, arrivals)
    # the largest must fit: it holds KV for prompt + output - 1 tokens at most (BatchLimits.most_blocks_held), and
    # without a stated context the cache bounds it to blocks x block_size tokens of prompt + output, as vLLM does
    # (policies/kv_bound.py)
    blocks = max(blocks, -(-max(p + o for p, o in zip(prompts, outputs)) // 4))
    profile = LinearProfile(blocks=blocks, kv_bytes_per_token=64)
    config = SimConfig(profile=profile, max_num_batched_tokens=budget, max_num_seqs=seqs, block_size=4,
                       watermark=0.0, preemption=preemption, swap_space_gib=swap_gib,
                       chunked_prefill=chunked, record_steps=True, semantics=semantics)
    pol = RandomOrder(seed=len(prompts)) if policy == "random" else make_policy(policy)
    result = simulate(workload, pol, config)
    _check(result, workload, config, blocks)


@settings(max_examples=15, deadline=None)
@given(wl=workloads, policy=st.sampled_from(["fcfs", "srtf"]))
def test_same_seed_same_result(wl, policy):
    prompts, outputs, arrivals = wl
    workload = make_workload(prompts, outputs, arrivals)
    config = SimConfig(profile=LinearProfile(blocks=48), max_num_batched_tokens=64, max_num_seqs=8,
                       block_size=4, watermark=0.0)
    a = simulate(workload, make_policy(policy), config).requests
    b = simulate(workload, make_policy(policy), config).requests
    assert a.equals(b)


def test_preemption_thrash_stops_with_an_error():
    """A random order redrawn every step, recompute, little KV: requests are evicted faster than they finish.
    The run stops with a one-line error instead of computing for hours."""
    import pytest

    from ltrsched.errors import UserError

    rng = np.random.default_rng(1)
    n = 12
    prompts, outputs, arrivals = rng.integers(60, 120, n), rng.integers(40, 60, n), rng.uniform(0, 0.1, n)
    config = SimConfig(profile=LinearProfile(blocks=48, kv_bytes_per_token=64), max_num_batched_tokens=16,
                       max_num_seqs=12, block_size=4, watermark=0.0, preemption="recompute", semantics="vllm-v1")
    with pytest.raises(UserError, match=r"preemption thrash: [0-9,]+ preemptions of 12 requests"):
        simulate(make_workload(prompts, outputs, arrivals), RandomOrder(seed=n, period=1), config)
    # the same order redrawn every 8 steps finishes
    result = simulate(make_workload(prompts, outputs, arrivals), RandomOrder(seed=n, period=8), config)
    assert result.summary["num_finished"] == n
