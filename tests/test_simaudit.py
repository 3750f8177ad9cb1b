"""The simulator on workloads and settings a user brings from elsewhere (``simaudit``): extreme lengths, tiny and
odd KV caches, arrival extremes, every policy and preemption mode. Each case finishes with every request's tokens
served, or is one clear error; none hangs, drops a request or reports a non-finite metric."""

from __future__ import annotations

import math

import pytest

from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.config import ConfigError
from ltrsched.sim.simulate import MAX_HOST_BLOCKS, setup_run
from cli_helpers import assert_one_line_error, run_cli_fast

from conftest import LinearProfile, make_workload


def saved(tmp_path, workload) -> str:
    """``workload`` as a parquet file in ``tmp_path`` (a command's ``-w``; a built-in one takes seconds to make)."""
    return str(workload.save(tmp_path / "w.parquet"))


def assert_served(result, workload) -> None:
    """Every request finished with its tokens, and no summary number is NaN or infinite."""
    req = result.requests
    assert req.height == len(workload)
    assert (req["generated_tokens"] == req["served_output_tokens"]).all()
    assert req["finish_time"].is_not_nan().all() and req["finish_time"].is_not_null().all()
    assert result.summary["num_finished"] == len(workload)
    bad = {k: v for k, v in result.summary.items() if isinstance(v, float) and not math.isfinite(v)}
    assert not bad, bad


# ---------------------------------------------------------------------------- host swap space
@pytest.mark.parametrize("gib", [float("inf"), 1e300])
def test_swap_space_without_limit_or_past_float_range_runs(gib):
    """An infinite swap_space_gib (no limit) or one whose bytes overflow float64 ended in int(NaN): 'ValueError:
    cannot convert float NaN to integer'. Now the host holds MAX_HOST_BLOCKS, and a run that swaps keeps every
    request's KV there (none recomputed)."""
    wl = make_workload([200] * 6, [150] * 6, score=[0.1, 0.9, 0.3, 0.7, 0.5, 0.2])
    r = simulate(wl, make_policy("ltr"), SimConfig(profile=LinearProfile(), num_gpu_blocks=60, watermark=0.0,
                                                   swap_space_gib=gib))
    assert_served(r, wl)
    assert r.summary["host_blocks"] == MAX_HOST_BLOCKS
    assert r.summary["num_preemptions"] > 0 and r.summary["swapped_blocks"] > 0


def test_swap_space_of_nan_is_refused():
    with pytest.raises(ConfigError, match="swap_space_gib must be >= 0, got nan"):
        SimConfig(swap_space_gib=float("nan"))


# ---------------------------------------------------------------------------- int64 token counts
def test_a_request_whose_token_sum_wraps_int64_is_refused_as_too_long():
    """prompt + output of 2**63 - 1 each wrapped to -2 tokens: the request passed the context and KV checks and the
    run chunked its prompt for ever. A Workload now holds no count beyond 2**53 (refused where it is built, as a
    file's are), and the context check compares without the sum (test_limit_rules); the largest counts a Workload
    holds are refused as too long."""
    with pytest.raises(UserError, match=r"not a token count \(a whole number in 1\.\.2\*\*53\)"):
        make_workload([2**63 - 1, 10], [2**63 - 1, 5])
    wl = make_workload([2**53, 10], [2**53, 5])
    with pytest.raises(UserError, match="1 request.s. exceed the profile's context limit of 100000 tokens"):
        setup_run(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile()))


@pytest.mark.parametrize("kw, message", [
    (dict(block_size=2**63 - 1, num_gpu_blocks=5), "block_size must be at most 2[*][*]60 tokens, got 9,223,"),
    (dict(max_model_len=2**64), "max_model_len must be at most 2[*][*]60 tokens, got 18,446,"),
])
def test_block_size_or_context_past_int64_room_is_refused(kw, message):
    """A block of 2**63 - 1 tokens wrapped every block count (computed + block_size - 1) to <= 0: a run counted no
    request as holding KV (peak_blocks_in_use 0 of 5 blocks); a block of 2**63 was an OverflowError traceback."""
    with pytest.raises(UserError, match=message):
        setup_run(make_workload([10] * 3, [5] * 3), make_policy("fcfs"), SimConfig(profile=LinearProfile(), **kw))
    assert setup_run(make_workload([10] * 3, [5] * 3), make_policy("fcfs"), SimConfig(
        profile=LinearProfile(), block_size=2**60, num_gpu_blocks=5, max_model_len=2**60)).limits.block_size == 2**60


def test_cli_block_size_past_int64_is_one_line(capsys, tmp_path):
    r = run_cli_fast(capsys, "simulate", "-w", saved(tmp_path, make_workload([10] * 3, [5] * 3)), "--block-size",
                     str(2**63), "--num-gpu-blocks", "5")
    assert_one_line_error(r, "--block-size must be at most 2**60 tokens")


# ---------------------------------------------------------------------------- odd KV geometries, every policy
POLICIES = ["fcfs", "srtf", "ltr", "ltr:starve=20,quantum=2", "mlfq", "po:tokens=3", "class"]
MODES = [dict(preemption="swap"), dict(preemption="swap", swap_space_gib=0.0), dict(preemption="recompute"),
         dict(preemption="recompute", semantics="vllm-v1")]


@pytest.mark.parametrize("geometry", [
    dict(block_size=1, num_gpu_blocks=20, max_num_batched_tokens=5),  # a block per token, a cache of 20 tokens
    dict(block_size=256, num_gpu_blocks=2, max_num_batched_tokens=7),  # a step's budget far below one block
    dict(block_size=256, num_gpu_blocks=1, max_num_batched_tokens=300, max_num_seqs=1),  # one block, one sequence
], ids=["block-1", "budget-below-block", "one-block"])
def test_tiny_caches_serve_every_token_under_every_policy_and_preemption(geometry):
    """Block sizes of 1 and 256 on caches of a few blocks, budgets below a block: every policy, each preemption mode
    (swap, swap with no host memory, recompute, vLLM V1's rules) serves each request its tokens within the limits,
    holds no KV at the end and counts the KV blocks it holds as the requests' states do, every step."""
    from test_sim_invariants import _check

    prompts, outputs = [9, 3, 12, 1, 7, 5], [6, 11, 2, 1, 8, 4]
    wl = make_workload(prompts, outputs, [0.0, 0.0, 0.01, 0.01, 0.5, 0.5],
                       score=[0.3, 0.9, 0.1, 0.5, 0.7, 0.2], predicted_length=[6, 10, 2, 1, 9, 3])
    for spec in POLICIES:
        for mode in MODES:
            shape = geometry
            if mode.get("semantics") == "vllm-v1":  # (vLLM, and so vllm-v1, refuses a budget below the sequence cap)
                shape = {**geometry, "max_num_seqs": min(geometry.get("max_num_seqs", 256),
                                                         geometry["max_num_batched_tokens"])}
            config = SimConfig(profile=LinearProfile(), watermark=0.0, record_steps=True, **shape, **mode)
            result = simulate(wl, make_policy(spec), config)
            assert_served(result, wl)
            _check(result, wl, config, geometry["num_gpu_blocks"])


# ---------------------------------------------------------------------------- a profile object's step times
class _HeavyStepsFail(LinearProfile):
    """Right for light steps (the one-token decode checked before a run), ``value`` [s] for a step of over 50 tokens."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def step_time(self, s):
        return self.value if s.num_tokens > 50 else super().step_time(s)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0])
def test_a_profile_object_timing_a_heavier_step_out_of_range_is_one_line(value):
    """NaN or infinite times left every request unfinished, a RuntimeError blaming the simulator ('simulation ended
    with unfinished requests'); negative or zero ones ran on (finish times of -0.952 s)."""
    with pytest.raises(UserError, match=r"profile 'linear-test': step 0, of 110 prefill tokens and 0 decodes over 0 "
                                        r"context tokens, takes .* s \(swaps included\); a step must take a finite"):
        simulate(make_workload([100, 10], [5, 5]), make_policy("fcfs"), SimConfig(profile=_HeavyStepsFail(value)))


# ---------------------------------------------------------------------------- a replica's request counts
def test_a_replica_holds_no_whole_workload_request_count():
    """``Replica.num_requests`` was the whole workload's size on every replica of a cluster (its own count is what the
    router sends it), read by nothing once the cluster's guards were scaled by what each replica is sent: gone. The
    lone replica's thrash guard keeps the workload's scale."""
    import simpy

    from ltrsched.sim.simulate import make_replica

    wl, policy, config = make_workload([10] * 3, [5] * 3), make_policy("fcfs"), SimConfig(profile=LinearProfile())
    replica = make_replica(simpy.Environment(), setup_run(wl, policy, config), policy, config)
    assert not hasattr(replica, "num_requests")
    assert (replica.thrash_guard.num_requests, replica.thrash_guard.num_tokens) == (3, 45)
