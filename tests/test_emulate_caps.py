"""The emulated engine's cap on KV blocks, from Python as from the CLI (the cap lives on the engine side:
``ltrsched.engine`` imports no ``ltrsched.validation``)."""

from __future__ import annotations

import pytest
from conftest import LinearProfile, make_workload

from ltrsched.engine.config import MAX_EMULATED_BLOCKS, EngineConfig
from ltrsched.engine.emulate import emulate
from ltrsched.errors import UserError
from ltrsched.policies import make_policy


@pytest.mark.parametrize("blocks", [10**12, MAX_EMULATED_BLOCKS + 1])
def test_emulate_refuses_more_blocks_than_its_pool_can_build(blocks):
    """emulate() with num_gpu_blocks 10**12 built vLLM's block pool, an object per block, for good (or ran out of
    memory): the CLI's cap was checked by the CLI only."""
    with pytest.raises(UserError, match=f"num_gpu_blocks {blocks:,} is more than the emulated engine holds.*at most "
                                        f"{MAX_EMULATED_BLOCKS:,}"):
        emulate(make_workload([10], [5]), make_policy("fcfs"), LinearProfile().step_time,
                EngineConfig(num_gpu_blocks=blocks))


def test_the_cli_takes_the_engines_cap():
    from ltrsched.validation import engines

    assert engines.MAX_EMULATED_BLOCKS is MAX_EMULATED_BLOCKS
