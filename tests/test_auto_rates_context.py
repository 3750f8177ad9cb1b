"""`validate --rates auto` on a GPU engine whose cache is unstated: the simulator sizes it from the profile's memory,
and a --max-model-len beyond it was a ConfigError traceback; it is the command's one line, in its option names."""

import pytest

from ltrsched.engine.config import EngineConfig
from ltrsched.errors import UserError
from ltrsched.sim.profiles import load_profile
from ltrsched.validation.commands import _auto_rates


def test_a_context_beyond_the_profiles_cache_is_one_line_naming_the_options():
    config = EngineConfig(model="llama-3-8b", platform="cuda", max_model_len=200_000)
    assert config.num_gpu_blocks is None and config.kv_cache_gib is None
    with pytest.raises(UserError, match=r"^--rates auto: --max-model-len 200000 needs 12500 KV blocks .* "
                                        r"--max-model-len 152976 or less$"):
        _auto_rates("sharegpt", 20, 0, load_profile("a100-llama3-8b"), config)


def test_a_context_the_profiles_cache_holds_gives_three_rates():
    config = EngineConfig(model="llama-3-8b", platform="cuda", max_model_len=8192)
    rates = _auto_rates("sharegpt", 20, 0, load_profile("a100-llama3-8b"), config)
    assert len(rates) == 3 and rates[0] < rates[1] < rates[2]
