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
from test_sweep_sigterm import sigterm_caught  # noqa: F401  (the fixture: the test's own SIGTERM handler)

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]


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


def test_sigterm_stops_a_validate_keeping_its_finished_engine_runs_for_the_same_command(capsys, tmp_path, monkeypatch,
                                                                                      sigterm_caught):
    args = ("validate", "--emulate", "cpu-llama-tiny", "-w", _trace(tmp_path), "--policies", "fcfs,srtf,mlfq",
            "-o", "v")
    from ltrsched.engine.emulate import EmulatedDriver

    begin, runs = EmulatedDriver.begin, []

    def begin_then_kill(self, policy):  # (SIGTERM as the second engine run begins)
        runs.append(policy.name)
        if len(runs) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        begin(self, policy)

    monkeypatch.setattr(EmulatedDriver, "begin", begin_then_kill)
    r = run_cli_fast(capsys, *args, cwd=tmp_path)
    assert sigterm_caught == []
    lines = _stopped(r)
    assert lines[-2] == ("note: validate stopped before its report: 1 of its 3 engine run(s) finished and are kept in "
                         "v/runs; the same command resumes with the other 2"), lines
    assert not (tmp_path / "v" / "validation.md").exists()
    monkeypatch.undo()
    r = run_cli_fast(capsys, *args, cwd=tmp_path)
    assert r.returncode == 0 and "1 of 3 engine runs kept" in r.stderr, r.stderr[-2000:]


def test_a_validate_stopped_before_any_engine_run_finished_says_none_is_kept(capsys, tmp_path, monkeypatch,
                                                                              sigterm_caught):
    _kill_at_step(monkeypatch, 3, signal.SIGINT)
    r = run_cli_fast(capsys, "validate", "--emulate", "cpu-llama-tiny", "-w", _trace(tmp_path), "--policies", "fcfs",
                     "-o", "v", cwd=tmp_path)
    lines = _stopped(r, 130)
    assert lines[-2] == "note: validate stopped before its report: none of its 1 engine run(s) had finished, so none " \
                        "is kept in v", lines


def test_a_fresh_process_ends_when_its_parent_is_stopped_by_sigterm(tmp_path):
    """``profile --runs``, ``validate --spread-repeats``: SIGTERM reaches ``ltrsched`` alone, and its stop waited for
    the engine process running a pass to finish it (minutes), then exited; the process is now ended at once."""
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    (tmp_path / "long_run.py").write_text(  # (a module: a spawned process imports what it runs)
        "import os, time\n"
        "def run(path):\n"
        "    open(path, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n")
    script = ("import sys; sys.path.insert(0, sys.argv[2]); import long_run\n"
              "from ltrsched.signal_stops import SignalStops\n"
              "from ltrsched.validation.fresh_process import FreshProcesses\n"
              "try:\n"
              "    with SignalStops(), FreshProcesses() as p:\n"
              "        p.run('a long run', long_run.run, sys.argv[1])\n"
              "except KeyboardInterrupt as exc:\n"
              "    print('stopped', exc.args[0], flush=True)\n")
    parent = subprocess.Popen([sys.executable, "-c", script, str(pid_file), str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(pid_file.read_text())
        parent.send_signal(signal.SIGTERM)
        out, _ = parent.communicate(timeout=30)  # (it waited the child's 120 s)
        assert parent.returncode == 0 and out == "stopped SIGTERM\n", (parent.returncode, out)
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    finally:
        parent.kill()
        parent.wait()


def test_sigterm_stops_a_profile_as_ctrl_c_does_saying_nothing_was_written(capsys, tmp_path, monkeypatch,
                                                                          sigterm_caught):
    _kill_at_step(monkeypatch, 5)
    r = run_cli_fast(capsys, "profile", "--emulate", "cpu-llama-tiny", "--quick", "-o", "p.json", cwd=tmp_path)
    assert sigterm_caught == []
    lines = _stopped(r)
    assert lines[-2] == ("note: profile stopped before its probes had all run: nothing was written to p.json (the "
                         "steps measured so far are not kept)"), lines
    assert list(tmp_path.iterdir()) == []


def test_a_replay_whose_save_fails_leaves_no_earlier_runs_summary_beside_its_files(capsys, tmp_path, monkeypatch):
    """A full disk at steps.parquet (requests.parquet written): the earlier replay's summary.json in --out stayed, and
    the directory read as a whole run, this run's requests with the earlier run's summary and steps."""
    import errno

    from ltrsched import atomic
    from ltrsched.errors import UserError, WriteFailedError
    from ltrsched.results import RunResult

    args = ("replay", "--emulate", "cpu-llama-tiny", "-w", _trace(tmp_path), "-o", "run")
    assert run_cli_fast(capsys, *args, "-n", "4", cwd=tmp_path).returncode == 0
    real = atomic.write_parquet

    def full_at_steps(path, df):
        if str(path).endswith("steps.parquet"):
            raise WriteFailedError(f"cannot write {path}: No space left on device", errno.ENOSPC)
        return real(path, df)

    monkeypatch.setattr(atomic, "write_parquet", full_at_steps)
    r = run_cli_fast(capsys, *args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == "error: cannot write run/steps.parquet: No space left on device\n", r
    with pytest.raises(UserError, match="cannot read the run in"):
        RunResult.load(tmp_path / "run")


@pytest.mark.slow
def test_sigterm_after_the_first_progress_line_of_a_replay_process(tmp_path):
    """The process itself (the signal's default action, not a test's handler): ``ltrsched replay`` in a subprocess,
    SIGTERM after its first progress line. Slow: a fresh interpreter imports vLLM's scheduler (20-40 s under load)."""
    import subprocess
    import sys

    env = dict(os.environ, LTRSCHED_PROGRESS_EVERY_S="0.2")
    proc = subprocess.Popen([sys.executable, "-m", "ltrsched.cli", "replay", "--emulate", "a100-llama3-8b", "-w",
                             "lmsys-like", "-n", "2000", "-o", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "requests finished" in line:
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, (proc.returncode, "".join(lines)[-2000:], rest[-2000:])
    assert "Traceback" not in rest and rest.rstrip().splitlines()[-2:] == [
        "note: replay stopped before its run ended: nothing was written to run (a replay writes its files once its run "
        "has ended)", "aborted"], rest[-2000:]
    assert not (tmp_path / "run").exists()
