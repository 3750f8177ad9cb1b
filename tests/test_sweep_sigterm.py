"""``sweep`` and ``capacity`` stopped by SIGTERM (``kill``, a batch system's time limit) as by Ctrl-C: "aborted", exit
143 (128 + SIGTERM), the finished runs kept and the handler before put back; they died at once, with no word. (Each
test sets its own SIGTERM handler, standing in for the default action, which would end pytest: without the fix the
signal lands there and the command runs to the end.)"""

from __future__ import annotations

import os
import signal

import pytest

from cli_helpers import run_cli_fast


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


def _kill_after(monkeypatch, done: int) -> list[str]:
    """Each run as before, SIGTERM to this process once ``done`` runs have finished; the hashes of the runs done."""
    import ltrsched.experiments.runner as runner

    real, finished = runner.run_one, []

    def run_one(spec, out, run_hash, wait=False):
        status = real(spec, out, run_hash, wait=wait)
        finished.append(run_hash)
        if len(finished) == done:
            os.kill(os.getpid(), signal.SIGTERM)
        return status

    monkeypatch.setattr(runner, "run_one", run_one)
    return finished


def test_sigterm_stops_a_sweep_as_ctrl_c_does_keeping_the_finished_runs(capsys, tmp_path, monkeypatch, sigterm_caught):
    (tmp_path / "w.csv").write_text("arrival_time,prompt_tokens,output_tokens\n"
                                    + "".join(f"{i * 0.1},{50 + i},{20 + i}\n" for i in range(20)))
    (tmp_path / "s.toml").write_text('workloads = ["w.csv"]\npolicies = ["fcfs", "srtf", "ltr:tau=0.5"]\n')
    finished = _kill_after(monkeypatch, 1)
    r = run_cli_fast(capsys, "sweep", "s.toml", "--out", "o", "--jobs", "1", cwd=tmp_path)
    assert sigterm_caught == [] and r.returncode == 143, (sigterm_caught, r.returncode, r.stderr[-2000:])
    assert r.stderr.rstrip().splitlines()[-1] == "aborted" and "Traceback" not in r.stderr
    assert len(finished) == 1 and not (tmp_path / "o" / "sweep.csv").exists()
    assert [p.parent.name for p in (tmp_path / "o" / "runs").glob("*/summary.json")] == finished  # (kept)
    os.kill(os.getpid(), signal.SIGTERM)  # (the handler before is back)
    assert sigterm_caught == [signal.SIGTERM]


def test_sigterm_stops_a_capacity_search_as_ctrl_c_does(capsys, tmp_path, monkeypatch, sigterm_caught):
    finished = _kill_after(monkeypatch, 1)
    r = run_cli_fast(capsys, "capacity", "-w", "lmsys-like", "-n", "60", "--seeds", "1", "-p", "fcfs", "-p", "srtf",
                     "--slo", "ttft_p90=0.5", "--jobs", "1", "--out", str(tmp_path / "cap"))
    assert sigterm_caught == [] and r.returncode == 143, (sigterm_caught, r.returncode, r.stderr[-2000:])
    assert r.stderr.rstrip().splitlines()[-1] == "aborted" and "Traceback" not in r.stderr
    assert len(finished) == 1 and not (tmp_path / "cap" / "capacity.csv").exists()
    assert [p.parent.name for p in (tmp_path / "cap" / "runs").glob("*/summary.json")] == finished
    os.kill(os.getpid(), signal.SIGTERM)
    assert sigterm_caught == [signal.SIGTERM]


@pytest.mark.parametrize("stop, terminated", [(KeyboardInterrupt("SIGTERM"), True), (KeyboardInterrupt(), False)])
def test_a_pool_stopped_by_sigterm_ends_its_workers(monkeypatch, tmp_path, stop, terminated):
    """SIGTERM reaches the main process alone (Ctrl-C's SIGINT reaches the workers too): the pool's close waited for
    each worker's run under way to finish, past a batch system's grace period. Its workers are now ended."""
    import ltrsched.experiments.runner as runner

    class Worker:
        ended = False

        def terminate(self):
            self.ended = True

    class Pool:
        _processes = {1: Worker(), 2: Worker()}

    def interrupted(*args, **kwargs):
        raise stop

    backend = runner.ProcessBackend(2)
    backend._pool = Pool()
    monkeypatch.setattr(runner, "_run_pool", interrupted)
    monkeypatch.setattr(backend, "_note_oversubscribed", lambda *args: None)
    with pytest.raises(KeyboardInterrupt):
        backend.run([("a", "h1"), ("b", "h2")], tmp_path, runner.RunStats(), bar=None)
    assert [w.ended for w in Pool._processes.values()] == [terminated, terminated]
