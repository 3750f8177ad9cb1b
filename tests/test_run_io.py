"""Writes and crashes (issue 12, section 6): output checks that really write, one-line errors on failed
writes with no temp file left, durable results (a damaged cached run is recomputed), sweep workers that
die with their parent, and one computation per run when two invocations share an output directory."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psutil
import pytest

from cli_helpers import run_cli_fast
from ltrsched.errors import UserError


def run_cli(*args, cwd=None, env=None, prefix=(), timeout=300):
    return subprocess.run([*prefix, sys.executable, "-m", "ltrsched.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def assert_one_line_error(r, message):
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr[-2000:]


def counts(stdout: str) -> tuple[int, int]:
    m = re.search(r"(\d+) runs simulated, (\d+) reused", stdout)
    assert m, stdout[-2000:]
    return int(m.group(1)), int(m.group(2))


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp" in p.name]


# ------------------------------------------------------------------------------------------ output checks
@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux sysfs")
def test_output_check_creates_a_file_instead_of_trusting_os_access(tmp_path):
    """os.access says yes to root for /sys/kernel, where every write fails: the check must try one."""
    from ltrsched.outputs import check_out_dir, check_out_file

    with pytest.raises(UserError, match="/sys/kernel is not writable"):
        check_out_dir("/sys/kernel/x")
    with pytest.raises(UserError, match="not writable"):
        check_out_file("/sys/kernel/x.json", suffix=".json")
    assert check_out_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    assert list(tmp_path.iterdir()) == []  # the probe file is gone, nothing created
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "20", "--policy", "fcfs", "--out", "/sys/kernel/x")
    assert_one_line_error(r, "--out /sys/kernel/x: /sys/kernel is not writable")


@pytest.mark.parametrize("target", ["self", "missing"])
def test_output_directory_through_a_broken_link_is_refused_first(tmp_path, target):
    """--out naming a symbolic link to itself (or to nothing) passed the check: `label-report` trained its rankers,
    `train` its model, and only then failed with "cannot write .../report.md: File exists"."""
    from ltrsched.outputs import check_out_dir

    link = tmp_path / "out"
    link.symlink_to(link if target == "self" else tmp_path / "gone")
    for out in (link, link / "sub"):
        with pytest.raises(UserError, match=f"--out {out}: {link} is a symbolic link to nothing"):
            check_out_dir(out)


@pytest.mark.parametrize("command,blocker", [
    ("sweep", "sweep.csv"), ("capacity", "capacity-rates.csv"), ("capacity", "figures"),
    ("reproduce", "REPRODUCTION.md"), ("reproduce", "runs"), ("simulate", "summary.json"), ("train", "weights.pt"),
])
def test_an_output_the_command_cannot_write_is_refused_before_its_runs(tmp_path, capsys, command, blocker):
    """OUT/sweep.csv being a directory (or OUT/figures a file) was found only after every run was simulated:
    "cannot write .../sweep.csv: Is a directory" at the end."""
    out = tmp_path / "out"
    if blocker in ("figures", "runs"):
        out.mkdir()
        (out / blocker).write_text("a file")
    else:
        (out / blocker).mkdir(parents=True)
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text('policies = ["fcfs"]\nnum_requests = 40\n')
    args = {"sweep": ("sweep", str(sweep_file)),
            "capacity": ("capacity", "-p", "fcfs", "--slo", "ttft_p90=1", "--quick"),
            "reproduce": ("reproduce", "table1", "--quick"), "simulate": ("simulate", "-n", "40"),
            "train": ("train", "--epochs", "1")}[command]
    env = {**os.environ, "LTRSCHED_CACHE": str(tmp_path / "cache")}
    r = run_cli_fast(capsys, *args, "-o", str(out), env=env)
    assert_one_line_error(r, f"--out {out}: {out / blocker} is a ")
    assert not (out / "runs").is_dir() or not any((out / "runs").iterdir())


def test_saving_a_run_without_steps_over_one_with_them_removes_the_old_steps(tmp_path):
    """Every command that saves a run (simulate, replay, validate, sweeps) goes through ``RunResult.save``: a
    steps.parquet left by an earlier run in the same directory would be read back as this run's."""
    from ltrsched.results import RunResult

    requests = pl.DataFrame({"request_id": [0, 1]})
    RunResult(requests, {"makespan": 1.0}, pl.DataFrame({"step": [0, 1, 2]})).save(tmp_path)
    assert RunResult.load(tmp_path).steps is not None
    RunResult(requests, {"makespan": 2.0}, None).save(tmp_path)
    again = RunResult.load(tmp_path)
    assert again.steps is None and again.summary["makespan"] == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests.parquet", "summary.json"]


def test_a_save_that_fails_at_its_steps_leaves_no_run_of_two_runs_files(tmp_path, monkeypatch):
    """A save over an earlier run that failed after its requests.parquet (a full disk at steps.parquet) left the
    earlier run's summary.json and steps beside the new requests, and the directory loaded as one run of both (the
    engine helper's find in ``replay -o``, fixed there alone; ``simulate -o`` and sweeps save alike)."""
    from ltrsched import atomic
    from ltrsched.results import RunResult

    RunResult(pl.DataFrame({"request_id": [0, 1]}), {"makespan": 1.0}, pl.DataFrame({"step": [0]})).save(tmp_path)
    real = atomic.write_parquet

    def full_at_steps(path, df, *args, **kwargs):
        if Path(path).name == "steps.parquet":
            raise UserError(f"cannot write {path}: No space left on device")
        return real(path, df, *args, **kwargs)

    monkeypatch.setattr(atomic, "write_parquet", full_at_steps)
    with pytest.raises(UserError, match="No space left"):
        RunResult(pl.DataFrame({"request_id": [0, 1, 2]}), {"makespan": 2.0}, pl.DataFrame({"step": [0]})).save(tmp_path)
    with pytest.raises(UserError, match="cannot read the run"):
        RunResult.load(tmp_path)  # (unfinished: no summary.json; it loaded 3 requests with the 1-request run's summary)


# ------------------------------------------------------------------------------------------ failed writes
def _limited(tmp_path):
    """Run under a 2 KiB file-size limit (``ulimit -f 2``): the result files cannot be written."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return dict(prefix=("bash", "-c", 'ulimit -f 2 && exec "$@"', "bash"), env=env, cwd=tmp_path)


def test_a_failed_result_write_is_one_line_and_leaves_no_temp_file(tmp_path):
    out = tmp_path / "sim"
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "300", "--policy", "fcfs", "--out", str(out), **_limited(tmp_path))
    assert_one_line_error(r, f"cannot write {out / 'requests.parquet'}: File too large")
    assert temp_files(tmp_path) == []


def test_a_failed_write_in_a_sweep_worker_is_one_line_and_leaves_no_temp_file(tmp_path):
    (tmp_path / "s.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "srtf"]\nnum_requests = 300\n')
    r = run_cli("sweep", "s.toml", "--out", "out", "--jobs", "2", **_limited(tmp_path))
    assert_one_line_error(r, "File too large")
    assert temp_files(tmp_path) == []
    assert not list((tmp_path / "out").rglob("summary.json"))


def test_an_atomic_write_that_fails_keeps_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    from ltrsched import atomic

    target = tmp_path / "summary.json"
    atomic.write_text(target, "old")
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, bytes(data[:3]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(UserError, match=f"cannot write {re.escape(str(target))}: No space left on device"):
        atomic.write_text(target, "new content")
    monkeypatch.undo()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


# ------------------------------------------------------------------------------------------ damaged results
SWEEP = 'workloads = ["lmsys-like"]\npolicies = ["fcfs"]\nnum_requests = 50\n'


@pytest.mark.parametrize("damage", ["empty summary", "truncated summary", "no requests", "empty requests"])
def test_a_damaged_cached_run_is_recomputed(tmp_path, damage):
    """A power loss can leave an empty or partial file: that run is not finished, never a JSONDecodeError."""
    (tmp_path / "s.toml").write_text(SWEEP)
    args = ("sweep", "s.toml", "--out", "out", "--jobs", "1")
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0 and counts(first.stdout) == (1, 0), first.stderr[-2000:]
    fresh = pl.read_csv(tmp_path / "out" / "sweep.csv")
    (run,) = (tmp_path / "out" / "runs").iterdir()
    summary, requests = run / "summary.json", run / "requests.parquet"
    if damage == "empty summary":
        summary.write_bytes(b"")
    elif damage == "truncated summary":
        summary.write_bytes(summary.read_bytes()[:100])
    elif damage == "no requests":
        requests.unlink()
    else:
        requests.write_bytes(b"")
    second = run_cli(*args, cwd=tmp_path)
    assert second.returncode == 0 and counts(second.stdout) == (1, 0), second.stderr[-2000:]
    third = run_cli(*args, cwd=tmp_path)
    assert counts(third.stdout) == (0, 1)
    timing = ["wall_time_s", "speedup_vs_real_time"]
    assert pl.read_csv(tmp_path / "out" / "sweep.csv").drop(timing).equals(fresh.drop(timing))


def test_loading_a_damaged_run_is_a_user_error(tmp_path):
    from conftest import make_workload
    from ltrsched.policies import make_policy
    from ltrsched.sim import simulate

    result = simulate(make_workload([10, 20], [5, 5]), make_policy("fcfs"))
    result.save(tmp_path)
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(UserError, match="cannot read the run in"):
        type(result).load(tmp_path)


# ------------------------------------------------------------------------------------------ killed parent
def _workers(parent: psutil.Process) -> list[psutil.Process]:
    return [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sweep_workers_end_when_the_main_process_is_killed(tmp_path):
    """Runs of ~30 s each: without a lifeline, the workers would compute on for half a minute."""
    (tmp_path / "s.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "srtf"]\n'
                                     "num_requests = 100000\n")
    proc = subprocess.Popen([sys.executable, "-m", "ltrsched.cli", "sweep", "s.toml", "--out", "out", "--jobs", "2"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[psutil.Process] = []
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until both workers are computing
            workers = _workers(parent)
            if len(workers) == 2 and all(w.cpu_times().user > 1.0 for w in workers):
                break
            assert proc.poll() is None, "the sweep ended before its workers started"
            time.sleep(0.2)
        assert len(workers) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone_by = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < gone_by:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "sweep workers outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:  # only the workers this test started
            try:
                w.kill()
            except psutil.NoSuchProcess:
                pass


# ------------------------------------------------------------------------------------------ shared --out
def test_two_sweeps_on_one_out_dir_compute_each_run_once(tmp_path):
    (tmp_path / "s.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "srtf", "ltr:tau=0.5", "mlfq"]\n'
                                     "num_requests = 3000\n")
    results = {}

    def go(name, jobs):
        results[name] = run_cli("sweep", "s.toml", "--out", "out", "--jobs", str(jobs), cwd=tmp_path)

    threads = [threading.Thread(target=go, args=("a", 1)), threading.Thread(target=go, args=("b", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results.values():
        assert r.returncode == 0, r.stderr[-2000:]
    (ran_a, reused_a), (ran_b, reused_b) = counts(results["a"].stdout), counts(results["b"].stdout)
    assert ran_a + ran_b == 4 and ran_a + reused_a == ran_b + reused_b == 4
    runs = [d for d in (tmp_path / "out" / "runs").iterdir() if d.is_dir()]
    assert len(runs) == 4 and temp_files(tmp_path) == []
    from ltrsched.results import RunResult

    for d in runs:
        assert RunResult.load(d).requests.height == 3000
    assert pl.read_csv(tmp_path / "out" / "sweep.csv").height == 4


def test_errors_raised_in_a_pool_worker_reach_the_main_process():
    """Workers send their exception back pickled: a UserError that cannot be unpickled would break the
    pool instead of printing its one line."""
    import pickle

    from ltrsched.errors import MissingDependencyError

    err = pickle.loads(pickle.dumps(MissingDependencyError("torch", "predict")))
    assert isinstance(err, UserError) and "pip install 'ltrsched[predict]'" in str(err) and err.extra == "predict"
    assert str(pickle.loads(pickle.dumps(UserError("bad input")))) == "bad input"


def test_run_one_leaves_or_waits_for_a_run_another_process_holds(tmp_path):
    from ltrsched.experiments import runner
    from ltrsched.experiments.runlock import run_lock
    from ltrsched.experiments.runspec import RunSpec

    spec = RunSpec("sweep", "s", "l", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b", num_requests=30)
    lock = runner.run_dir(tmp_path, spec) / runner.LOCK_FILE
    with run_lock(lock) as held:
        assert held
        assert runner.run_one(spec, tmp_path, wait=False) == runner.BUSY
        assert not runner.is_done(tmp_path, spec)
        waiter = threading.Thread(target=lambda: results.append(runner.run_one(spec, tmp_path, wait=True)))
        results: list[str] = []
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and results == []  # waits while the lock is held
    waiter.join(60)
    assert results == [runner.RAN] and runner.is_done(tmp_path, spec)
    assert runner.run_one(spec, tmp_path, wait=False) == runner.REUSED


def test_a_write_under_a_file_is_a_user_error_not_a_crash_while_cleaning_up(tmp_path):
    """Removing the temp file of a write that failed under a file (not a directory) raised NotADirectoryError
    from the clean-up, a traceback instead of the one-line error."""
    from ltrsched import atomic

    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"cannot write .*file/sub/x\.parquet: "):
        atomic.write_bytes(tmp_path / "file" / "sub" / "x.parquet", b"data")
    with pytest.raises(UserError, match=r"cannot write .*file/x\.json: "):
        atomic.write_text(tmp_path / "file" / "x.json", "{}")


def test_a_cache_directory_that_is_a_file_does_not_stop_a_command(tmp_path):
    """LTRSCHED_CACHE naming a file: the ShareGPT parse is not cached (caching is an optimisation), the
    command still runs."""
    (tmp_path / "not-a-dir").write_text("x")
    r = run_cli("simulate", "-n", "20", env={**os.environ, "LTRSCHED_CACHE": str(tmp_path / "not-a-dir")})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "simulated" in r.stdout


def test_an_output_file_suffix_is_read_in_any_case(tmp_path):
    """`--trace T.JSON` and `predict -o P.PARQUET` were told they "must be a .json / .parquet file", where
    `-w W.PARQUET` and `--cdf X.PNG` are read in any case; another suffix is still refused."""
    from ltrsched.outputs import check_out_file

    assert check_out_file(tmp_path / "T.JSON", "--trace", ".json") == tmp_path / "T.JSON"
    assert check_out_file(tmp_path / "P.Parquet", "--out", ".parquet") == tmp_path / "P.Parquet"
    with pytest.raises(UserError, match="--trace must be a .json file, got .*t.txt"):
        check_out_file(tmp_path / "t.txt", "--trace", ".json")
