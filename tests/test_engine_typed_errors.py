"""The engine's Python entry points (``EngineConfig``, ``emulate``, ``engine_kwargs``, ``VllmDriver``,
``VllmDriver.prepare``, ``run_on_vllm``) raise an :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) or
:class:`~ltrsched.errors.ArgumentTypeError` (a TypeError) for bad arguments, each a UserError too: the command line's
one line, exit code 2, is unchanged. An unknown model was a plain UserError (``except ValueError`` did not catch it),
and typing it a ValueError alone would have had the real engine's start rewrap it as "vLLM refused the engine
settings: ..."; so were too many threads for this host's CPUs, ``prompts="text"`` on a workload without text and a
policy that adds output tokens to requests that stop at the model's EOS. ``EngineConfig``'s refusals were plain
ValueErrors (a traceback, should a command line reach one), the emulated engine's ``step_time`` that is no function a
plain TypeError. No engine starts and vLLM is not imported (tests/engine_stubs.py): each case takes milliseconds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cli_helpers import run_cli_fast
from conftest import LinearProfile, make_workload
from engine_stubs import stub_no_engine_start
from ltrsched.engine.config import EngineConfig
from ltrsched.errors import ArgumentTypeError, ArgumentValueError
from ltrsched.policies import make_policy

MISSING = "/nonexistent/ltrsched-model"
#: The line an unknown model gets, from Python and on the command line (the built-in names listed between).
MODEL_LINE = (f"^model '{MISSING}' is neither a built-in name \\(llama-3-8b, .*smollm2\\) nor a directory with "
              "config.json$")


@pytest.fixture
def no_engine(monkeypatch):
    stub_no_engine_start(monkeypatch)


def _emulate(config: EngineConfig, step_time=LinearProfile().step_time):
    from ltrsched.engine.emulate import emulate

    return emulate(make_workload([10], [3]), make_policy("fcfs"), step_time, config)


def _driver(config: EngineConfig):
    from ltrsched.engine.runner import VllmDriver

    return VllmDriver(config)


def _engine_kwargs(config: EngineConfig):
    from ltrsched.engine.runner import engine_kwargs

    return engine_kwargs(config, "dummy")


def _prepare_text(workload):
    from ltrsched.engine.runner import VllmDriver

    return VllmDriver.prepare(SimpleNamespace(config=EngineConfig(prompts="text")), workload)


def _run_stopping_at_eos(policy: str):
    from ltrsched.engine.runner import run_on_vllm

    return run_on_vllm(make_workload([10], [3]), make_policy(policy), SimpleNamespace(config=EngineConfig(eos="model")))


#: (id, call, exception type, its message as a regular expression: the command line's line, where one reaches it)
CASES = [
    ("emulate, unknown model", lambda: _emulate(EngineConfig(model=MISSING, num_gpu_blocks=1000)),
     ArgumentValueError, MODEL_LINE),
    ("engine_kwargs, unknown model", lambda: _engine_kwargs(EngineConfig(model=MISSING, platform="cuda")),
     ArgumentValueError, MODEL_LINE),
    ("VllmDriver, unknown model (not rewrapped as vLLM's refusal)",
     lambda: _driver(EngineConfig(model=MISSING, platform="cuda")), ArgumentValueError, MODEL_LINE),
    ("VllmDriver, more threads than CPUs", lambda: _driver(EngineConfig(platform="cpu", threads=2)),
     ArgumentValueError, r"^--threads 2 exceeds the 1 CPU this process may use$"),
    ("prepare, prompts='text' without text", lambda: _prepare_text(make_workload([10], [3])), ArgumentValueError,
     r"^--prompts text needs the prompt text of every request; workload 'test' has none \(use the built-in "
     r"sharegpt, a \.jsonl/\.json trace, or a labels file from `ltrsched label`\)$"),
    ("run_on_vllm, extra output tokens with eos='model'", lambda: _run_stopping_at_eos("po"), ArgumentValueError,
     r"^policy 'po:tau=0\.51,seed=0,tokens=15' adds 15 output tokens to every request, which a model that stops at "
     r"its own EOS cannot serve: use --eos ignore$"),
    ("emulate, step_time no function", lambda: _emulate(EngineConfig(num_gpu_blocks=1000), step_time=LinearProfile()),
     ArgumentTypeError, r"^step_time must be a function of a StepShape giving seconds \(a profile's \.step_time\), "
                        r"got LinearProfile"),
    ("EngineConfig, a count given as text", lambda: EngineConfig(max_num_seqs="8"), ArgumentValueError,
     r"^max_num_seqs must be an integer, got '8'$"),
    ("EngineConfig, a count of 0", lambda: EngineConfig(max_num_seqs=0), ArgumentValueError,
     r"^max_num_seqs must be positive, got 0$"),
    ("EngineConfig, an unknown dtype", lambda: EngineConfig(dtype="fp7"), ArgumentValueError,
     r"^dtype must be one of auto, half, float16, bfloat16, float, float32, got 'fp7'$"),
]


@pytest.mark.parametrize("call, error, line", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_argument_raises_its_python_type_with_the_command_lines_line(call, error, line, monkeypatch, no_engine):
    with pytest.raises(error, match=line) as caught:
        call()
    assert type(caught.value) is error  # (a UserError too, so the command line prints the one line)


def _python_line(call) -> str:
    with pytest.raises((ArgumentValueError, ArgumentTypeError)) as caught:
        call()
    return str(caught.value)


def test_the_command_line_says_the_same_line_with_exit_code_2(capsys, monkeypatch, no_engine, tmp_path):
    """One command per changed line the command line reaches (a policy adding tokens with ``--eos model`` is refused
    only once the engine has started: not here): an unknown model (``replay --emulate``: before any engine), more
    threads than CPUs (``replay`` on the CPU engine, before it starts), ``--prompts text`` on a workload without
    text (the command line's own check, in the same words)."""
    from ltrsched.workloads import load_workload

    wl = tmp_path / "wl.parquet"
    make_workload([10, 20], [5, 6]).save(wl)
    for args, python in [
        (("replay", "-n", "2", "--model", MISSING, "--emulate", "a100-llama3-8b", "-o", tmp_path / "a"),
         lambda: _emulate(EngineConfig(model=MISSING, num_gpu_blocks=1000))),
        (("replay", "-n", "2", "--threads", "2", "-o", tmp_path / "b"),
         lambda: _driver(EngineConfig(platform="cpu", threads=2))),
        (("replay", "-w", wl, "--prompts", "text", "-o", tmp_path / "c"), lambda: _prepare_text(load_workload(str(wl)))),
    ]:
        r = run_cli_fast(capsys, *args)
        assert (r.returncode, r.stdout, r.stderr) == (2, "", f"error: {_python_line(python)}\n"), args
