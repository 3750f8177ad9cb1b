"""``emulate()`` and ``replay()`` from Python raise a ValueError (TypeError) for bad arguments, as the rest of the
Python API does (:class:`~ltrsched.errors.ArgumentValueError`, a UserError too: the command line's one line is the
same): a request beyond the engine's context was a plain UserError, which ``except ValueError`` did not catch, as were
a request beyond its KV cache, a policy that needs a column the workload lacks, a cache that holds no request of
``max_model_len`` tokens, more blocks than the emulated engine holds, and a step_time that gives no time. Stand-in
drivers (no vLLM scheduler built): each case takes milliseconds."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.engine.config import EngineConfig
from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.policies.batching import BatchLimits
from ltrsched.policies.step_shape import StepShape

BEYOND = ("1 request(s) exceed the engine's max_model_len 64 tokens (first: request 1, 66 tokens): raise max_model_len "
          "if the model takes longer contexts, or leave them out")


def _driver(max_model_len: int = 64, blocks: int = 1000):
    """A stand-in for the emulated engine's driver: its scheduler's context and KV cache (blocks of 16 tokens), its
    line's fix in Python's names."""
    from ltrsched.engine.emulate import EmulatedDriver

    scheduler = SimpleNamespace(max_model_len=max_model_len, limits=BatchLimits(num_gpu_blocks=blocks))
    return SimpleNamespace(scheduler=scheduler, context_fix=EmulatedDriver.context_fix.replace(
        "--max-model-len", "max_model_len"))


def _raises_value_error(call, line: str) -> None:
    """``call()`` raises a ValueError that is a UserError too (the CLI's one line), its message ``line``."""
    with pytest.raises(ValueError) as caught:
        call()
    assert isinstance(caught.value, UserError) and str(caught.value) == line


def test_a_request_beyond_the_context_is_a_value_error_from_emulate_and_replay():
    from ltrsched.engine.emulate import emulate
    from ltrsched.engine.replay import replay

    workload = make_workload([10, 60], [3, 6])
    for call in (lambda: emulate(workload, make_policy("fcfs"), LinearProfile().step_time,
                                 EngineConfig(num_gpu_blocks=1000), driver=_driver()),
                 lambda: replay(workload, make_policy("fcfs"), _driver(), EngineConfig(), host="stand-in")):
        _raises_value_error(call, BEYOND)


def test_a_request_beyond_the_kv_cache_is_a_value_error():
    from ltrsched.engine.replay import replay

    _raises_value_error(lambda: replay(make_workload([10, 60], [3, 6]), make_policy("fcfs"), _driver(128, blocks=4),
                                       EngineConfig(), host="stand-in"),
                        "1 request(s) can never fit the engine's KV cache of 4 usable blocks (first: request 1 needs "
                        "5 blocks)")


def test_a_policy_needing_a_column_the_workload_lacks_is_a_value_error():
    from ltrsched.engine.replay import replay

    line = r"^policy 'ltr' needs a 'score' column, which workload 'test' lacks"
    with pytest.raises(ValueError, match=line) as caught:
        replay(make_workload([10], [3]), make_policy("ltr"), _driver(), EngineConfig(), host="stand-in")
    assert isinstance(caught.value, UserError)


def test_a_cache_holding_no_request_of_the_context_is_a_value_error():
    """(Refused before vLLM is loaded, as ``replay --emulate`` refuses it: tests/test_engine_precheck.py.)"""
    from ltrsched.engine.emulate import emulate

    with pytest.raises(ValueError, match=r"^max_model_len 4096 needs 257 KV blocks of 16 tokens") as caught:
        emulate(make_workload([10], [3]), make_policy("fcfs"), LinearProfile().step_time,
                EngineConfig(num_gpu_blocks=200, max_model_len=4096))
    assert isinstance(caught.value, UserError)


def test_more_blocks_than_the_emulated_engine_holds_is_a_value_error():
    from ltrsched.engine.config import MAX_EMULATED_BLOCKS
    from ltrsched.engine.emulate import build_scheduler

    with pytest.raises(ValueError, match=r"^num_gpu_blocks 10,000,001 is more than the emulated engine holds: vLLM's "
                                         r"block pool makes an object per block") as caught:
        build_scheduler(EngineConfig(num_gpu_blocks=MAX_EMULATED_BLOCKS + 1), None)
    assert isinstance(caught.value, UserError)


@pytest.mark.parametrize("value, error", [(math.nan, ValueError), (0.0, ValueError), ("0.01", TypeError),
                                          (None, TypeError)])
def test_a_step_time_that_is_no_time_is_a_value_or_type_error(value, error):
    from ltrsched.engine.emulate import checked_step_time

    with pytest.raises(error, match=r"^step_time: a step of 5 prefill tokens and 2 decodes takes") as caught:
        checked_step_time(lambda shape: value, StepShape(num_prefill_tokens=5, num_decode_seqs=2))
    assert isinstance(caught.value, UserError)


def test_the_command_lines_lines_are_unchanged(capsys, tmp_path):
    """The command line refuses each in the same one line, exit code 2: a request beyond the context (``validate
    --emulate``, before any engine) and a cache that holds no request of the context (``replay --emulate``)."""
    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n10,3\n9000,4\n")
    r = run_cli_fast(capsys, "validate", "--emulate", "a100-llama3-8b", "-w", workload, "--policies", "fcfs",
                     "--out", tmp_path / "v")
    assert r.returncode == 2 and r.stderr == (
        "error: 1 request(s) exceed the engine's max_model_len 8192 tokens (first: request 1 in row 2 of "
        f"{workload}, 9004 tokens): raise "
        "--max-model-len if the model takes longer contexts, or leave them out\n"), r.stderr
    r = run_cli_fast(capsys, "replay", "--emulate", "a100-llama3-8b", "-n", "2", "--max-model-len", "4096",
                     "--num-gpu-blocks", "200", "-o", tmp_path / "out")
    assert_one_line_error(r, "--max-model-len 4096 needs 257 KV blocks of 16 tokens")
