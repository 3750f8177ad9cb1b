"""Audit of the engine commands (replay, profile, validate) on the emulated engine: the command line they record,
hostile option values, a served scheduler after its plugin watchdog fired, and process state an aborted run
leaves behind."""

from __future__ import annotations

import json
import shlex
import sys

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]

EMU = ("--emulate", "h100-llama3-8b")


# ---------------------------------------------------------------------------------------------- recorded command


def test_replay_and_validate_record_their_own_command_not_the_host_programs_argv(capsys, tmp_path, monkeypatch):
    """Called from Python (pytest, a notebook, the API: ``ltrsched.cli.main([...])``) replay and validate recorded
    ``sys.argv``, the host program's arguments (``ltrsched -q tests/x.py``), as the command that reruns the run."""
    monkeypatch.setattr(sys, "argv", ["pytest", "-q", "tests/x.py"])
    replay = ["replay", *EMU, "-n", "2", "--policy", "ltr:tau=0.5", "-o", "run dir"]
    r = run_cli_fast(capsys, *replay, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recorded = json.loads((tmp_path / "run dir" / "summary.json").read_text())["meta"]["command"]
    assert recorded == "ltrsched " + shlex.join(replay)
    assert shlex.split(recorded)[1:] == replay  # (the record reruns the same command)

    validate = ["validate", *EMU, "-n", "2", "--policies", "fcfs", "--out", "v"]
    r = run_cli_fast(capsys, *validate, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "v" / "validate-manifest.json").read_text())
    assert manifest["command"] == "ltrsched " + shlex.join(validate)
    engine_run = json.loads((tmp_path / "v" / "runs" / "burst" / "fcfs" / "engine" / "summary.json").read_text())
    assert engine_run["meta"]["command"] == manifest["command"]
    assert f"`{manifest['command']}`" in (tmp_path / "v" / "validation.md").read_text()

