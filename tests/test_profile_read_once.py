"""A command reads a profile file once (helpers sweepfollow, profreads): each run's hash, its config and the sweep's
checks each parsed the whole file again (17 reads in a 2-run sweep; a 63 MB profile, seconds each); then `simulate`
still read it 4 times (its block size, its KV capacity, setup_run's check and the run's setup), a 2-run sweep 8 and a
2-run capacity search 9 (its SLO bound and memory check besides). Now a file is parsed once per version and process
(ltrsched.sim.profiles.io.load_profile), and one changed between two runs is read again."""

from __future__ import annotations

import json
import os
import traceback

from cli_helpers import run_cli_fast
from conftest import make_workload
from ltrsched.experiments.runspec import RunSpec
from ltrsched.policies import make_policy
from ltrsched.sim.config import SimConfig
from ltrsched.sim.profiles import io
from ltrsched.sim.simulate import simulate


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
    assert reads == [False]  # (the sweep file's check; the runs' hashes, checks and setups take the same profile)


def test_simulate_reads_its_profile_file_once(tmp_path, capsys, monkeypatch):
    profile = _profile(tmp_path)
    reads = _count_reads(monkeypatch)
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", "-p", str(profile), "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(reads) == 1  # (was 4: the block size, the KV capacity, setup_run's check, the run's setup)


def test_a_capacity_search_reads_its_profile_file_once(tmp_path, capsys, monkeypatch):
    profile = _profile(tmp_path)
    reads = _count_reads(monkeypatch)
    r = run_cli_fast(capsys, "capacity", "-w", "lmsys-like", "-n", "10", "--seeds", "1", "-p", "fcfs", "--profile",
                     str(profile), "--slo", "ttft_p90=5", "--max-rate", "8", "--out", str(tmp_path / "cap"), "-j", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 runs simulated" in r.stdout
    assert len(reads) == 1  # (was 9: the SLO bound and the memory check besides each run's setups)


def test_a_profile_file_rewritten_between_two_runs_is_read_again(tmp_path, monkeypatch):
    path = _profile(tmp_path)
    reads = _count_reads(monkeypatch)
    wl, config = make_workload([100, 200], [10, 20]), SimConfig(profile=str(path))
    first = simulate(wl, make_policy("fcfs"), config).summary["makespan"]
    assert simulate(wl, make_policy("fcfs"), config).summary["makespan"] == first
    assert len(reads) == 1
    data = json.loads(path.read_text())
    data["overhead_s_per_step"] = 10 * data["overhead_s_per_step"]
    path.write_text(json.dumps(data))  # (in place: the same inode)
    assert simulate(wl, make_policy("fcfs"), config).summary["makespan"] > first  # (not the stale profile's)
    assert len(reads) == 2


def test_a_profile_file_changed_is_read_again(tmp_path):
    path = _profile(tmp_path)
    spec = RunSpec(experiment="sweep", setting="s", label="l", workload="lmsys-like", policy="fcfs",
                   profile=str(path), num_requests=5)
    assert spec.resolved_block_size() == 16
    before = os.stat(path)
    _profile(tmp_path, block_size=32)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert spec.resolved_block_size() == 32
