"""Refused by the validation commands before any engine starts, in the words the engine's Python API uses:

* a policy that adds output tokens to every request (PO) with ``--eos model``: ``replay`` and ``validate`` started
  the real engine (minutes on a GPU) before ``run_on_vllm`` refused it;
* the profile's Python entry points (``measure_probes``, ``measure_probe_runs``): a bad ``repeats`` or ``runs`` was
  a plain UserError in ``ltrsched profile`` only, and from Python none at all (``runs=0`` measured nothing and
  returned []); now an ArgumentValueError / ArgumentTypeError, as the engine's (tests/test_engine_typed_errors.py),
  and the command line's one line, exit code 2, is the same line.

No engine starts and vLLM is not imported (tests/engine_stubs.py): each case takes milliseconds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cli_helpers import run_cli_fast
from conftest import make_workload
from engine_stubs import stub_no_engine_start
from ltrsched.engine.config import EngineConfig
from ltrsched.errors import ArgumentTypeError, ArgumentValueError
from ltrsched.policies import make_policy


@pytest.fixture
def no_engine(monkeypatch):
    stub_no_engine_start(monkeypatch)


@pytest.fixture
def real_model(tmp_path):
    """A llama-tiny model directory with (empty) real weights: --eos model refuses random ones, and smollm2 is
    converted from its GGUF file the first time (about 20 s)."""
    import json

    from ltrsched.models import LLAMA_TINY

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({**LLAMA_TINY, "max_position_embeddings": 8192}))
    (model / "model.safetensors").write_bytes(b"")
    return model


def _run_on_vllm_line(policy: str) -> str:
    """What ``run_on_vllm`` says of ``policy`` on an engine stopping at the model's EOS (its check comes first)."""
    from ltrsched.engine.runner import run_on_vllm

    with pytest.raises(ArgumentValueError) as caught:
        run_on_vllm(make_workload([10], [3]), make_policy(policy), SimpleNamespace(config=EngineConfig(eos="model")))
    return str(caught.value)


@pytest.mark.parametrize("command", [("replay", "--policy", "po"), ("validate", "--policies", "fcfs,po")],
                         ids=["replay", "validate"])
def test_a_policy_adding_output_tokens_with_eos_model_is_refused_before_the_engine_starts(command, capsys, no_engine,
                                                                                          real_model, tmp_path):
    wl = tmp_path / "wl.parquet"
    make_workload([10, 20], [5, 6]).save(wl)
    r = run_cli_fast(capsys, *command, "-w", wl, "--model", real_model, "--load-format", "auto", "--eos", "model",
                     "-o", tmp_path / "out")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"error: {_run_on_vllm_line('po')}\n")
    assert not (tmp_path / "out").exists()


def _probes(repeats=None):
    from ltrsched.validation.probe_runs import measure_probes

    return measure_probes({}, quick=True, repeats=repeats)


def _probe_runs(repeats=None, runs=1):
    from ltrsched.validation.probe_runs import measure_probe_runs

    return measure_probe_runs({}, quick=True, repeats=repeats, runs=runs)


#: (id, call, exception type, its message: the command line's line)
CASES = [
    ("measure_probes, repeats 0", lambda: _probes(repeats=0), ArgumentValueError,
     "--repeats must be in [1, 100], got 0"),
    ("measure_probes, repeats as text", lambda: _probes(repeats="3"), ArgumentTypeError,
     "--repeats must be an integer, got '3'"),
    ("measure_probe_runs, repeats 101", lambda: _probe_runs(repeats=101), ArgumentValueError,
     "--repeats must be in [1, 100], got 101"),
    ("measure_probe_runs, runs 0 (it returned [])", lambda: _probe_runs(runs=0), ArgumentValueError,
     "--runs must be in [1, 20] (engine starts), got 0"),
    ("measure_probe_runs, runs 21", lambda: _probe_runs(runs=21), ArgumentValueError,
     "--runs must be in [1, 20] (engine starts), got 21"),
    ("measure_probe_runs, runs a float", lambda: _probe_runs(runs=2.0), ArgumentTypeError,
     "--runs must be an integer, got 2.0"),
    ("measure_probe_runs, runs a bool", lambda: _probe_runs(runs=True), ArgumentTypeError,
     "--runs must be an integer, got True"),
]


@pytest.mark.parametrize("call, error, line", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_probe_argument_raises_its_python_type(call, error, line, no_engine):
    with pytest.raises(error) as caught:
        call()
    assert type(caught.value) is error and str(caught.value) == line


@pytest.mark.parametrize("option, value, call", [("--runs", "0", lambda: _probe_runs(runs=0)),
                                                 ("--repeats", "101", lambda: _probes(repeats=101))])
def test_profile_on_the_command_line_says_the_python_line(option, value, call, capsys, no_engine, tmp_path):
    with pytest.raises((ArgumentValueError, ArgumentTypeError)) as caught:
        call()
    r = run_cli_fast(capsys, "profile", option, value, "-o", tmp_path / "p.json")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"error: {caught.value}\n")
