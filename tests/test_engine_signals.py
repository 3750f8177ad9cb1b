"""``replay``, ``validate`` and ``profile`` stopped by SIGTERM (``kill``, a batch system's time limit) as by Ctrl-C: one
``note:`` line saying what was kept and where, then ``aborted``, exit 128 + the signal, no traceback, the engine shut
down. A real-engine ``replay`` died at SIGTERM with no word (exit 143 from the signal's default action). Each test
sets its own SIGTERM handler, standing in for the default action, which would end pytest: without the fix the signal
lands there and the command runs to its end. The emulated engine runs the commands' own code paths (the same
``with`` blocks as the real engine's); a subprocess test checks the real process, marked slow."""

from __future__ import annotations

import os
import signal

import pytest

from cli_helpers import run_cli_fast

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]


@pytest.fixture
def sigterm_caught():
    """The SIGTERMs that reached the test's own handler (the one in place before the command)."""
    caught: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    before_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a background suite ignores SIGINT)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, before_int)


def _kill_at_step(monkeypatch, step: int, sig=signal.SIGTERM) -> list[int]:
    """The emulated engine's steps as before, ``sig`` to this process at its ``step``-th step (counted over every
    run); the steps run."""
    from ltrsched.engine.emulate import EmulatedDriver

    real, steps = EmulatedDriver.step, []

    def step_then_kill(self):
        steps.append(1)
        if len(steps) == step:
            os.kill(os.getpid(), sig)
        real(self)

    monkeypatch.setattr(EmulatedDriver, "step", step_then_kill)
    return steps


def _trace(tmp_path, n: int = 12) -> str:
    path = tmp_path / "w.csv"
    path.write_text("arrival_time,prompt_tokens,output_tokens\n" + "".join(f"{i * 0.01},{40 + i},{8 + i}\n"
                                                                          for i in range(n)))
    return str(path)


def _stopped(r, code: int = 143) -> list[str]:
    """The stderr lines of a command stopped by a signal (exit ``code``): ``aborted`` last, no traceback."""
    assert r.returncode == code and "Traceback" not in r.stderr, (r.returncode, r.stderr[-3000:])
    lines = r.stderr.rstrip().splitlines()
    assert lines[-1] == "aborted", lines
    return lines


def test_sigterm_stops_a_replay_as_ctrl_c_does_saying_nothing_was_written(capsys, tmp_path, monkeypatch,
                                                                         sigterm_caught):
    _kill_at_step(monkeypatch, 5)
    r = run_cli_fast(capsys, "replay", "--emulate", "cpu-llama-tiny", "-w", _trace(tmp_path), "-o", "run",
                     cwd=tmp_path)
    assert sigterm_caught == []
    lines = _stopped(r)
    assert lines[-2] == ("note: replay stopped before its run ended: nothing was written to run (a replay writes its "
                         "files once its run has ended)"), lines
    assert not (tmp_path / "run").exists()
    os.kill(os.getpid(), signal.SIGTERM)  # (the handler before is back)
    assert sigterm_caught == [signal.SIGTERM]


def test_ctrl_c_stops_a_replay_with_the_same_line(capsys, tmp_path, monkeypatch, sigterm_caught):
    _kill_at_step(monkeypatch, 5, signal.SIGINT)
    r = run_cli_fast(capsys, "replay", "--emulate", "cpu-llama-tiny", "-w", _trace(tmp_path), cwd=tmp_path)
    lines = _stopped(r, 130)
    assert lines[-2] == "note: replay stopped before its run ended: nothing was written (no --out)", lines
