"""The heartbeat line (``LABEL: N of TOTAL runs done, R running, S s``) that a sweep, reproduce or capacity prints off a
terminal while its runs are under way and none ends (before: nothing until a run ended, so one slow run, e.g. table3's
classifier training of ~90 s, left a piped log silent). The runs are stand-ins that end only once the heartbeat has
printed its lines (no sleep, a fake clock), on a thread pool for the process pool's loop, a fake Ray module for the
Ray backend's, and in this process for one job."""

from __future__ import annotations

import concurrent.futures as cf
import re
import threading
from types import SimpleNamespace

import pytest

from test_progress import FakeClock


@pytest.fixture
def bar():
    from ltrsched.progress import PlainProgress

    return PlainProgress(3, "sweep", "runs", "done", every_s=10.0, clock=FakeClock(6.0))


@pytest.fixture
def released(monkeypatch):
    """An event set once the heartbeat has printed two lines (the stand-in runs wait for it), the polls fast."""
    import ltrsched.progress as progress

    event, beats = threading.Event(), []
    real = progress.PlainProgress.beat

    def beat(self, running):
        real(self, running)
        beats.append(running)
        if len(beats) >= 4:  # (a line every other beat: the fake clock moves 6 s a read, a line is due each 10 s)
            event.set()

    monkeypatch.setattr(progress.PlainProgress, "beat", beat)
    monkeypatch.setattr(progress, "POLL_S", 0.001)
    return event


def _heartbeats(stderr: str) -> list[tuple[int, int, int, int]]:
    """The heartbeat lines as (done, total, running, seconds)."""
    return [tuple(int(g.replace(",", "")) for g in m.groups()) for m in
            re.finditer(r"^sweep: ([\d,]+) of ([\d,]+) runs done, ([\d,]+) running, (\d+) s$", stderr, re.M)]


def _spec(policy: str):
    from ltrsched.experiments.runspec import RunSpec

    return RunSpec(experiment="sweep", setting="s", label=policy, profile="a100-llama3-8b", workload="lmsys-like",
                   num_requests=10, policy=policy, seed=0)


def test_the_pool_loop_prints_a_heartbeat_while_runs_are_under_way(tmp_path, capsys, monkeypatch, bar, released):
    from ltrsched.experiments import runner

    def task(spec_dict, out, run_hash, wait):  # (a run that ends once the heartbeat has printed)
        assert released.wait(10)
        return run_hash, runner.RAN, []

    monkeypatch.setattr(runner, "_pool_task", task)
    pending = [(_spec(p), f"h{i}") for i, p in enumerate(["fcfs", "srtf", "ltr"])]
    stats = runner.RunStats()
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        runner._run_pool(pool, pending, tmp_path, stats, bar)
    beats = _heartbeats(capsys.readouterr().err)
    assert stats.total == 3 and bar.n == 3
    assert beats and all(d == 0 and t == 3 and r == 2 and s >= 10 for d, t, r, s in beats), beats


def test_one_job_prints_a_heartbeat_while_its_run_is_under_way(tmp_path, capsys, monkeypatch, bar, released):
    from ltrsched.experiments import runner

    monkeypatch.setattr(runner, "run_one", lambda s, out, h, wait: runner.RAN if released.wait(10) else "slept")
    stats = runner.RunStats()
    runner._run_here([(_spec("fcfs"), "h0")], tmp_path, stats, bar)
    beats = _heartbeats(capsys.readouterr().err)
    assert stats.total == 1 and bar.n == 1
    assert beats and all((d, t, r) == (0, 3, 1) and s >= 10 for d, t, r, s in beats), beats
    assert not any(t.name == "ltrsched-heartbeat" for t in threading.enumerate())  # (it ended with the run)


class _FakeRay:
    """What :meth:`RayBackend.run` reads of ``ray``: every task stays in flight until ``released`` is set."""

    class exceptions:
        WorkerCrashedError = NodeDiedError = OutOfMemoryError = LocalRayletDiedError = type("Died", (Exception,), {})
        RayTaskError = type("RayTaskError", (Exception,), {})

    def __init__(self, released):
        self.released, self.waits = released, []

    def put(self, value):
        return value

    def wait(self, refs, num_returns=1, timeout=None):
        self.waits.append(timeout)
        if timeout is None:
            assert self.released.wait(10)
        elif not self.released.wait(timeout):
            return [], refs
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref


def test_the_ray_loop_prints_a_heartbeat_while_runs_are_under_way(tmp_path, capsys, bar, released):
    from ltrsched.experiments import runner
    from ltrsched.experiments.ray_backend import RayBackend

    backend = RayBackend.__new__(RayBackend)
    backend._ray, backend._slots = _FakeRay(released), 2
    backend._remote = SimpleNamespace(remote=lambda spec, out, h, wait, context: (h, runner.RAN, ()))
    stats = runner.RunStats()
    backend.run([(_spec(p), f"h{i}") for i, p in enumerate(["fcfs", "srtf", "ltr"])], tmp_path, stats, bar)
    beats = _heartbeats(capsys.readouterr().err)
    assert stats.total == 3 and bar.n == 3
    assert beats and all((d, t, r) == (0, 3, 2) and s >= 10 for d, t, r, s in beats), beats


def test_no_heartbeat_on_a_terminal_or_with_the_lines_off(monkeypatch):
    """tqdm's bar (a terminal) and a plain one with no lines: the loops wait as before, with no timeout."""
    from tqdm import tqdm

    from ltrsched.progress import Heartbeat, PlainProgress, beat, poll_s

    assert poll_s(tqdm(total=3, disable=True)) is None
    assert poll_s(PlainProgress(3, "sweep", "runs", "done", every_s=0.0)) is None
    with Heartbeat(tqdm(total=3, disable=True)) as h:
        assert h._thread is None
    beat(tqdm(total=3, disable=True), 2)  # (nothing, no error)
