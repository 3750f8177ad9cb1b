"""``--sampling``: how forced-length runs draw their tokens (a share of a CPU engine's step time), and the note
validate gives when its profile was measured with other sampling than its runs use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ltrsched.engine.config import EngineConfig
from ltrsched.engine.live_table import RequestInfo
from ltrsched.errors import UserError
from ltrsched.validation.commands import sampling_mismatch
from ltrsched.validation.engines import engine_config


def test_forced_lengths_sample_at_random_unless_told_greedy():
    assert engine_config(model="llama-tiny", platform="cpu").sampling == "random"  # vLLM's default, as before
    assert engine_config(model="llama-tiny", platform="cpu", sampling="greedy").sampling == "greedy"
    assert engine_config(model="llama-3-8b", emulate_profile="a100-llama3-8b").sampling == "random"  # (not given)


@pytest.mark.parametrize("options, message", [
    (dict(eos="model", load_format="auto", sampling="random"), "--eos model decodes greedily"),
    (dict(sampling="top-k"), "--sampling must be random or greedy, got 'top-k'"),
    (dict(sampling="greedy", emulate_profile="a100-llama3-8b"), "--sampling sets how a model runs, and the emulated engine"),
])
def test_sampling_options_are_checked(options, message):
    with pytest.raises(UserError, match=message):
        engine_config(model="llama-tiny", platform="cpu", **options)


@pytest.mark.parametrize("sampling, temperature", [("greedy", 0.0), ("random", 1.0)])
def test_forced_length_requests_carry_the_sampling(sampling, temperature):
    pytest.importorskip("vllm")
    from ltrsched.engine.runner import sampling_params

    info = RequestInfo(request_id=3, arrival_time=0.0, prompt_tokens=5, output_tokens=7, requested_output_tokens=7)
    params = sampling_params(EngineConfig(platform="cpu", sampling=sampling), info)
    assert params.temperature == temperature and params.max_tokens == 7 and params.ignore_eos
    real = sampling_params(EngineConfig(platform="cpu", eos="model", max_tokens=9, sampling="greedy"), info)
    assert real.temperature == 0.0 and not real.ignore_eos and real.max_tokens == 9


def _profile(engine):
    return SimpleNamespace(name="cpu-x", provenance={} if engine is None else {"engine": engine})


@pytest.mark.parametrize("engine, run, noted", [
    ({"sampling": "random"}, "greedy", True),
    ({}, "greedy", True),  # measured before the setting existed: forced lengths drew at random
    ({}, "random", False),
    ({"sampling": "greedy"}, "greedy", False),
    (None, "greedy", False),  # a table of GPU timings records no engine: not judged
])
def test_validate_notes_a_profile_of_other_sampling(engine, run, noted):
    note = sampling_mismatch(_profile(engine), EngineConfig(platform="cpu", sampling=run))
    assert (note is not None) == noted
    if noted:
        assert note.startswith("the profile cpu-x was measured with random sampling and these runs decode greedy")
        assert "ltrsched profile --sampling greedy" in note
