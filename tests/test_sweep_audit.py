"""Hostile sweep files and capacity options (helper auditsweep): each case was accepted, or failed late, before its
fix; each is now one line, exit code 2, before any run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

_LENGTHS = "prompt_tokens,output_tokens\n" + "".join(f"{10 + i},{20 + i}\n" for i in range(30))


@pytest.mark.parametrize("workloads, shown", [
    ('["w.csv", "./w.csv"]', "'w.csv' and './w.csv'"),
    ('["w.csv", "../sub/w.csv"]', "'w.csv' and '../sub/w.csv'"),
    ('["w.csv", "link.csv"]', "'w.csv' and 'link.csv'"),
])
def test_one_workload_file_named_twice_is_refused(tmp_path, capsys, workloads, shown):
    """The duplicate check compared the spellings: one run, listed twice in sweep.csv."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.csv").write_text(_LENGTHS)
    os.symlink("w.csv", tmp_path / "sub" / "link.csv")
    sweep = tmp_path / "sub" / "s.toml"
    sweep.write_text(f'policies = ["fcfs"]\nworkloads = {workloads}\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1"),
                          f"{sweep}: 'workloads' lists {shown}, the same file; give each once")
    assert not (tmp_path / "o").exists()


def test_one_profile_file_named_twice_is_refused(tmp_path, capsys):
    import ltrsched.sim.profiles as profiles

    (tmp_path / "p.json").write_bytes((Path(profiles.__file__).parent / "a100-llama3-8b.json").read_bytes())
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\nprofiles = ["p.json", "./p.json"]\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1"),
                          f"{sweep}: 'profiles' lists 'p.json' and './p.json', the same file; give each once")


def test_distinct_workload_files_and_a_builtin_are_all_kept(tmp_path):
    """The check is of files, not of contents or names: two files of the same bytes are two workloads."""
    from ltrsched.experiments.commands import _load_sweep

    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text(_LENGTHS)
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\nworkloads = ["a.csv", "b.csv", "lmsys-like"]\n')
    assert _load_sweep(sweep)["workloads"] == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "lmsys-like"]


@pytest.mark.parametrize("routers, shown", [
    ('["round-robin", "round-robin:"]', "'round-robin' and 'round-robin:' are the same router (round-robin)"),
    ('["random", "random:seed=0"]', "'random' and 'random:seed=0' are the same router (random:seed=0)"),
    ('["rank:tau=0.5", "rank:tau=5e-1"]', "'rank:tau=0.5' and 'rank:tau=5e-1' are the same router (rank:tau=0.5,seed=0)"),
])
def test_two_spellings_of_one_router_are_refused_in_a_sweep(tmp_path, capsys, routers, shown):
    """Each spelling keyed its own runs: the same simulations computed twice and listed twice."""
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'policies = ["fcfs"]\nworkloads = ["lmsys-like"]\nreplicas = [2]\nrouters = {routers}\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1"),
                          f"{sweep}: 'routers': {shown}; give each router once")


def test_two_spellings_of_one_router_are_refused_by_capacity(tmp_path, capsys):
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=1", "-p", "fcfs", "-n", "100", "--replicas", "2",
                     "--router", "random", "--router", "random:seed=0", "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(r, "--router: 'random' and 'random:seed=0' are the same router (random:seed=0)")
    assert not (tmp_path / "o").exists()


def test_an_integer_rate_beyond_64_bits_is_written_as_a_number(tmp_path, capsys):
    """rates = [10**42] (a rate far beyond capacity: every request at about t = 0) ran, then sweep.csv's table was an
    OverflowError traceback after the runs."""
    import polars as pl

    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\nworkloads = ["lmsys-like"]\nnum_requests = 5\narrival = "poisson"\n'
                     f"rates = [{10**42}]\n")
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert r.returncode == 0, r.stderr
    assert pl.read_csv(tmp_path / "o" / "sweep.csv")["rate"].to_list() == [1e42]
