"""A long run's progress when stderr is not a terminal (a pipe, a CI log, nohup): a plain line on stderr about every
10 s of wall time for ``simulate``, ``sweep`` and ``replay``, none for a shorter run or with progress off, and stdout
as without it. tqdm's bar showed only on a terminal, so such a run printed nothing until it was done. The clock is a
fake one: no test sleeps."""

from __future__ import annotations

import json
import re

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast


@pytest.fixture(autouse=True)
def every_10_s(monkeypatch):
    """The lines every 10 s, as outside the test suite (its conftest turns them off)."""
    monkeypatch.delenv("LTRSCHED_PROGRESS_EVERY_S", raising=False)


class FakeClock:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float):
        self.t, self.step = 1000.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def _workload(path, n: int = 30):
    """A JSONL workload of ``n`` short requests."""
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"story {i}", "prompt_tokens": 5 + i, "output_tokens": 3 + 2 * i}) + "\n")
    return path


def _lines(stderr: str, label: str) -> list[tuple[int, int, int]]:
    """The progress lines of ``label`` in ``stderr`` as (done, total, seconds); every other line is left out."""
    found = []
    for line in stderr.splitlines():
        m = re.fullmatch(rf"{re.escape(label)}: ([\d,]+) of ([\d,]+) (?:requests finished|runs done), (\d+) s", line)
        if m:
            found.append(tuple(int(g.replace(",", "")) for g in m.groups()))
    return found


def test_the_interval_comes_from_the_environment(monkeypatch, capsys, tmp_path):
    from ltrsched.progress import EVERY_S, PlainProgress, every_s

    assert every_s() == EVERY_S == 10.0
    monkeypatch.setenv("LTRSCHED_PROGRESS_EVERY_S", "0")  # (none: the suite's own setting)
    bar = PlainProgress(10, "sweep", "runs", "done", clock=FakeClock(100.0))
    bar.update(5)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("LTRSCHED_PROGRESS_EVERY_S", "-1")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", _workload(tmp_path / "w.jsonl", 3)),
                          "LTRSCHED_PROGRESS_EVERY_S must be a finite number of seconds >= 0 (0: no progress lines), got '-1'")


def test_plain_lines_come_every_10_s_and_not_before(capsys):
    from ltrsched.progress import PlainProgress

    bar = PlainProgress(4000, "simulate fcfs", "requests", clock=FakeClock(4.0))
    for _ in range(7):
        bar.update(300)  # at 4, 8, 12, 16, 20, 24, 28 s from the start
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == ["simulate fcfs: 900 of 4,000 requests finished, 12 s",
                                    "simulate fcfs: 1,800 of 4,000 requests finished, 24 s"]


def test_a_short_run_prints_no_line(capsys):
    from ltrsched.progress import PlainProgress

    bar = PlainProgress(10, "sweep", "runs", "done", clock=FakeClock(0.5))
    for _ in range(10):
        bar.update()
    bar.close()
    assert capsys.readouterr().err == ""


def test_simulate_on_a_pipe_prints_progress_lines_on_stderr_only(tmp_path, capsys, monkeypatch):
    w = _workload(tmp_path / "w.jsonl")
    args = ("simulate", "-w", w, "--policy", "fcfs", "--arrival", "poisson", "--rate", "50")
    quiet = run_cli_fast(capsys, *args, "--no-progress")
    short = run_cli_fast(capsys, *args)  # (the real clock: a run of well under 10 s)
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(3.0))
    long = run_cli_fast(capsys, *args)
    assert quiet.returncode == short.returncode == long.returncode == 0, long
    lines = _lines(long.stderr, "simulate fcfs")
    assert lines and all(total == 30 and 0 < done <= 30 and s >= 10 for done, total, s in lines), long.stderr
    assert [d for d, _, _ in lines] == sorted(d for d, _, _ in lines)
    assert not _lines(short.stderr, "simulate fcfs") and "simulate fcfs:" not in quiet.stderr
    drop = re.compile(r"simulated .* s wall")  # (the wall time differs from run to run)
    assert [x for x in long.stdout.splitlines() if not drop.search(x)] == \
           [x for x in quiet.stdout.splitlines() if not drop.search(x)]
    assert "of 30 requests" not in long.stdout
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(3.0))
    off = run_cli_fast(capsys, *args, "--no-progress")
    assert off.returncode == 0 and "simulate fcfs:" not in off.stderr, off.stderr


def test_a_cluster_simulation_prints_the_same_lines(tmp_path, capsys, monkeypatch):
    w = _workload(tmp_path / "w.jsonl")
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(3.0))
    r = run_cli_fast(capsys, "simulate", "-w", w, "--replicas", "2")
    assert r.returncode == 0, r
    assert _lines(r.stderr, "simulate fcfs x2"), r.stderr


def test_sweep_on_a_pipe_prints_runs_done(tmp_path, capsys, monkeypatch):
    _workload(tmp_path / "w.jsonl", 8)
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["w.jsonl"]\npolicies = ["fcfs", "srtf"]\narrival = "poisson"\n'
                     'rates = [1.0, 2.0, 4.0]\n')
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(6.0))
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert r.returncode == 0, r
    lines = _lines(r.stderr, "sweep")
    assert lines and all(total == 6 and 0 < done <= 6 for done, total, _ in lines), r.stderr
    assert "runs done" not in r.stdout


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_replay_on_a_pipe_prints_requests_finished(capsys, monkeypatch):
    from conftest import LinearProfile, make_workload
    from ltrsched.engine.emulate import EngineConfig, emulated_driver
    from ltrsched.engine.replay import replay
    from ltrsched.policies import make_policy

    workload = make_workload([5 + i for i in range(20)], [3 + i for i in range(20)], [0.1 * i for i in range(20)])
    config = EngineConfig(num_gpu_blocks=200)
    profile = LinearProfile(overhead=0.01)
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(2.0))
    replay(workload, make_policy("fcfs"), emulated_driver(config, profile.step_time), config, host="test",
           progress=True)
    out = capsys.readouterr()
    lines = _lines(out.err, "engine fcfs")
    assert lines and all(total == 20 for _, total, _ in lines), out.err
    assert out.out == ""
