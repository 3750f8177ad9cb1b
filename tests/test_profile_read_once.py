"""A sweep reads a profile file once for its own checks (helper sweepfollow): each run's hash, its config and the
sweep's checks each parsed the whole file again (17 reads in a 2-run sweep; a 63 MB profile, seconds each). What is
left is the simulator's own read in each run's setup (ltrsched.sim.simulate.setup_run)."""

from __future__ import annotations

import json
import os
import traceback

from cli_helpers import run_cli_fast
from ltrsched.experiments.runspec import RunSpec
from ltrsched.sim.profiles import io


def _profile(tmp_path, block_size=None):
    data = json.loads(io.dumps_profile(io.load_profile("a100-llama3-8b")))
    if block_size is not None:
        data["provenance"]["engine"] = {"block_size": block_size}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    return path


def _count_reads(monkeypatch) -> list[bool]:
    """Each read of a profile file: True where the simulator's setup of a run read it."""
    reads: list[bool] = []
    real = io.read_profile_file
    monkeypatch.setattr(io, "read_profile_file", lambda p: reads.append(
        any(f.name == "setup_run" for f in traceback.extract_stack())) or real(p))
    return reads


def test_a_sweep_reads_its_profile_file_once_outside_the_runs_setup(tmp_path, capsys, monkeypatch):
    profile = _profile(tmp_path)
    (tmp_path / "s.toml").write_text(f'workloads = ["lmsys-like"]\npolicies = ["fcfs", "srtf"]\n'
                                     f'profiles = ["{profile}"]\nseeds = [0, 1]\nnum_requests = 5\n')
    reads = _count_reads(monkeypatch)
    r = run_cli_fast(capsys, "sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "-j", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "4 runs simulated" in r.stdout
    assert reads.count(False) == 2  # (the sweep file's check, and the block size and max_model_len of every run)


def test_a_profile_file_changed_is_read_again(tmp_path):
    path = _profile(tmp_path)
    spec = RunSpec(experiment="sweep", setting="s", label="l", workload="lmsys-like", policy="fcfs",
                   profile=str(path), num_requests=5)
    assert spec.resolved_block_size() == 16
    before = os.stat(path)
    _profile(tmp_path, block_size=32)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert spec.resolved_block_size() == 32
