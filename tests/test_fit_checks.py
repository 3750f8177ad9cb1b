"""The fit checks before a run refuse exactly the requests the replica or engine can never serve: the simulator's
(``ltrsched.sim.simulate._check_fits``, through :func:`simulate`) and the engine replay's
(:func:`ltrsched.engine.replay.check_fits`), at the KV boundaries. (The emulated engine serving these same boundary
requests alike with the simulator: ``tests/test_fuzz_sim_engine.py``.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from conftest import LinearProfile, make_workload
from ltrsched.engine.replay import check_fits
from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.policies.batching import BatchLimits
from ltrsched.sim import SimConfig, simulate


@dataclass(frozen=True)
class _Scheduler:
    """What check_fits reads of an engine's scheduler."""

    limits: Any
    max_model_len: int = 100_000


def _sim(prompts, outputs, blocks, semantics="vllm-v1", watermark=None, policy="fcfs"):
    # (the context its blocks hold, blocks x 16 tokens: a longer one given is refused as vLLM refuses it at its start
    # (ltrsched.sim.config.cache_short), and without one the cache bounds the profile's to it, as the engines bound
    # theirs. A lone request then holds at most blocks x 16 - 1 tokens of KV: only a policy's extra output tokens, which
    # the context does not count, or the paper's watermark make one that can never fit)
    config = SimConfig(profile=LinearProfile(), semantics=semantics, preemption="recompute", num_gpu_blocks=blocks,
                       block_size=16, max_model_len=blocks * 16,
                       **({} if watermark is None else {"watermark": watermark}))
    return simulate(make_workload(prompts, outputs), make_policy(policy), config)


#: PO with 1 (2) estimate tokens served beside each request's output (no column needed at tau 1).
PO1, PO2 = "po:tokens=1,tau=1,seed=0", "po:tokens=2,tau=1,seed=0"


@pytest.mark.parametrize("semantics", ["vllm-v1", "paper"])
def test_a_request_holding_one_block_of_kv_fits_one_block(semantics):
    """A request served prompt 15 + output 2 tokens (1 of them PO's estimate token, not counted in the 16-token
    context) holds the KV of 16 tokens at most (its last sampled token is never computed): one block of 16. Both checks
    counted 17 tokens, 2 blocks, and refused it. One token more (PO's 2 estimate tokens) still needs 2 blocks and is
    refused. (Before the
    simulator refused a context its cache does not hold, as vLLM does, this was 15 + 2 tokens of FCFS on a context
    of 100,000 tokens.)"""
    result = _sim([15], [1], blocks=1, semantics=semantics, watermark=0.0, policy=PO1)
    assert result.requests["generated_tokens"].to_list() == [2]
    with pytest.raises(UserError, match=r"^1 request\(s\) can never fit the KV cache of 1 usable blocks \(first: "
                                        r"request 0 in row 1 of workload 'test' needs 2 blocks of 16 tokens for 18 "
                                        r"tokens, 2 of them policy po's "
                                        r"extra output tokens\)"):
        _sim([15], [1], blocks=1, semantics=semantics, watermark=0.0, policy=PO2)


def test_the_engine_check_counts_the_kv_a_request_holds():
    """The engine's check: prompt 15 + output 2 fits one block; 16 + 2, or 15 + 2 with a policy's extra output token,
    or with --max-tokens' cap of 3 (eos="model"), needs two."""
    one = _Scheduler(BatchLimits(num_gpu_blocks=1, block_size=16, watermark_when_running=True))
    check_fits(make_workload([15], [2]), one)
    for workload, extra, cap, held in (
            (make_workload([16], [2]), 0, None, ""),
            (make_workload([15], [2]), 1, None, " for 18 tokens, 1 of them the policy's extra output tokens"),
            (make_workload([15], [2]), 0, 3, " for 18 tokens, its output counted at the cap of 3 tokens")):
        with pytest.raises(UserError, match=r"^1 request\(s\) can never fit the engine's KV cache of 1 usable blocks "
                                            r"\(first: request 0 needs 2 blocks" + held + r"\)$"):
            check_fits(workload, one, extra, cap)


def test_vllm_v1_serves_a_request_alone_in_the_blocks_its_watermark_keeps_free():
    """With 14 blocks and watermark 0.2, vllm-v1 keeps int(0.2 x 15) = 3 blocks free only for an admission beside
    another request on the GPU (vLLM 0.32's allocate_slots(has_scheduled_reqs=...)): a request of 14 blocks runs alone,
    as on vLLM. Both checks refused it ("11 usable blocks"). One of 15 blocks (225 tokens: PO's 2 estimate tokens
    beside 200 + 24, the context holding 224) is refused at the 14 usable. The paper's semantics keep int(0.2 x 14) = 2
    free for every admission: 12 usable, as before."""
    result = _sim([200, 200], [24, 24], blocks=14, watermark=0.2)  # (223 tokens of KV: 14 blocks each, one at a time)
    assert result.requests["generated_tokens"].to_list() == [24, 24]
    assert result.requests["num_preemptions"].to_list() == [0, 0]
    with pytest.raises(UserError, match=r"^1 request\(s\) can never fit the KV cache of 14 usable blocks \(first: "
                                        r"request 0 in row 1 of workload 'test' needs 15 blocks of 16 tokens for 226 "
                                        r"tokens"):
        _sim([200], [24], blocks=14, watermark=0.2, policy=PO2)
    with pytest.raises(UserError, match=r"^1 request\(s\) can never fit the KV cache of 12 usable blocks \(first: "
                                        r"request 0 in row 1 of workload 'test' needs 14 blocks of 16 tokens\)"):
        _sim([200], [24], blocks=14, semantics="paper", watermark=0.2)
    assert _sim([176], [17], blocks=14, semantics="paper", watermark=0.2).requests["generated_tokens"].to_list() == [17]


def test_the_engine_check_leaves_a_lone_request_the_blocks_of_vllm_v1s_watermark():
    """The engine's check: the adapter's limits (watermark_when_running, as vLLM V1) leave all 14 blocks to a request
    admitted alone; limits keeping the watermark for every admission leave 11."""
    v1 = _Scheduler(BatchLimits(num_gpu_blocks=14, block_size=16, watermark_blocks=3, watermark_when_running=True))
    check_fits(make_workload([200], [24]), v1)
    with pytest.raises(UserError, match=r"^1 request\(s\) can never fit the engine's KV cache of 14 usable blocks "
                                        r"\(first: request 0 needs 15 blocks\)$"):
        check_fits(make_workload([200], [26]), v1)
    every = _Scheduler(BatchLimits(num_gpu_blocks=14, block_size=16, watermark_blocks=3))
    check_fits(make_workload([160], [17]), every)
    with pytest.raises(UserError, match=r"KV cache of 11 usable blocks \(first: request 0 needs 12 blocks\)$"):
        check_fits(make_workload([160], [18]), every)
