"""``emulate()`` from Python refuses a request beyond its context in the command line's words, the settings in
Python's names (``limit_rules.field_name``): where its ``num_gpu_blocks`` bound the model's context, it named no cache
and said "raise --max-model-len", an option a Python caller has not, which does not raise that bound."""

from __future__ import annotations

import pytest

from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]


def _emulate(tokens: int, **config):
    from ltrsched.engine.emulate import EngineConfig, emulate
    from ltrsched.policies import make_policy

    return emulate(make_workload([tokens - 1], [1]), make_policy("fcfs"), LinearProfile().step_time,
                   EngineConfig(**config))


def test_a_context_its_cache_bounds_names_the_cache():
    # (3 blocks of 16 tokens, one of them vLLM's null block: llama-3-8b's 8,192 tokens bounded to 32)
    assert _emulate(32, num_gpu_blocks=3).requests["generated_tokens"].to_list() == [1]
    with pytest.raises(UserError) as caught:
        _emulate(33, num_gpu_blocks=3)
    assert str(caught.value) == ("1 request(s) exceed the engine's max_model_len 32 tokens (first: request 0, 33 "
                                 "tokens), its context from the KV cache of num_gpu_blocks 3 (one of them vLLM's null "
                                 "block) x 16 tokens: give more num_gpu_blocks, or leave them out")


def test_a_context_given_says_to_raise_it_in_pythons_name():
    with pytest.raises(UserError) as caught:
        _emulate(65, num_gpu_blocks=100, max_model_len=64)
    assert str(caught.value) == ("1 request(s) exceed the engine's max_model_len 64 tokens (first: request 0, 65 "
                                 "tokens): raise max_model_len if the model takes longer contexts, or leave them out")
