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
def test_loading_a_damaged_run_is_a_user_error(tmp_path):
    from conftest import make_workload
    from ltrsched.policies import make_policy
    from ltrsched.sim import simulate

    result = simulate(make_workload([10, 20], [5, 5]), make_policy("fcfs"))
    result.save(tmp_path)
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(UserError, match="cannot read the run in"):
        type(result).load(tmp_path)


