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


def test_an_integer_rate_beyond_64_bits_is_refused_before_any_run(tmp_path, capsys):
    """rates = [10**42] (a rate far beyond capacity: every request at about t = 0) ran, then sweep.csv's table was an
    OverflowError traceback after the runs; it is above the highest rate, 1e9 req/s (:mod:`ltrsched.sim.rates`)."""
    sweep = tmp_path / "s.toml"
    (tmp_path / "w.csv").write_text(_LENGTHS)
    sweep.write_text(f'policies = ["fcfs"]\nworkloads = ["w.csv"]\narrival = "poisson"\nrates = [{10**42}]\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(r, "s.toml: 'rates' item 1 of 1: 1e+42 req/s is above 1e+09")
    assert not (tmp_path / "o").exists()


def _short_profile(path: Path) -> None:
    """The default profile with a context of 64 tokens (too short for some of :data:`_LENGTHS`'s requests)."""
    import json

    import ltrsched.sim.profiles as profiles

    short = json.loads((Path(profiles.__file__).parent / "a100-llama3-8b.json").read_text())
    short["max_model_len"] = 64
    path.write_text(json.dumps(short))


def _no_run_computed(out: Path) -> bool:
    return not list(out.rglob("summary.json"))


@pytest.mark.parametrize("content, message", [
    # the fcfs runs are sorted ahead of ltr's and were computed before its run said it lacks a score column
    ('policies = ["fcfs", "ltr"]\n', "policy 'ltr' needs a 'score' column, which workload 'w' lacks"),
    ('policies = ["fcfs", "srtf"]\nreplicas = [1, 2]\nrouters = ["rank"]\n',
     "router 'rank' needs a 'score' column, which workload '{d}/w.csv' lacks; add it with `ltrsched predict --model "
     'DIR --workload FILE --out FILE` or use approximate-oracle scores with a tau parameter, e.g. `routers = '
     '["rank:tau=0.62"]` in the sweep file'),
    # the run on the short profile, after the runs on the default one
    ('policies = ["fcfs"]\nprofiles = ["a100-llama3-8b", "short.json"]\n',
     "workload '{d}/w.csv' on profile '{d}/short.json': 12 request(s) exceed the profile's context limit of 64 "
     "tokens"),
])
def test_a_run_the_simulator_would_refuse_is_refused_before_any_run(tmp_path, capsys, content, message):
    _short_profile(tmp_path / "short.json")
    sweep = tmp_path / "s.toml"
    (tmp_path / "w.csv").write_text(_LENGTHS)
    sweep.write_text(content + 'workloads = ["w.csv"]\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1"),
                          message.format(d=tmp_path))
    assert _no_run_computed(tmp_path / "o")


def test_a_scoring_gives_the_column_a_policy_needs(tmp_path, capsys):
    """The check stands the scoring's column in for it: ltr without tau runs on approx-score's scores."""
    sweep = tmp_path / "s.toml"
    (tmp_path / "w.csv").write_text(_LENGTHS)
    sweep.write_text('policies = ["ltr"]\nscoring = "approx-score:tau=0.6"\nworkloads = ["w.csv"]\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert r.returncode == 0 and "1 runs simulated" in r.stdout, r.stderr


@pytest.mark.parametrize("args, message", [
    (["-p", "fcfs", "-p", "ltr"], "policy 'ltr' needs a 'score' column, which workload 'w' lacks"),
    (["-p", "fcfs", "--replicas", "1", "--replicas", "2", "--router", "least-work"],
     "router 'least-work' needs a 'predicted_length' column, which workload 'w' lacks; add it with "
     "`ltrsched predict` using a `ltrsched train --kind class` model, or use noisy true lengths with a tau parameter, "
     "e.g. `--router least-work:tau=0.62`"),
    (["-p", "fcfs", "--profile", "a100-llama3-8b", "--profile", "short.json"],
     "workload 'w.csv' on profile 'short.json': 5 request(s) exceed the profile's context limit of 64 tokens"),
])
def test_a_capacity_run_the_simulator_would_refuse_is_refused_before_any_run(tmp_path, capsys, args, message):
    _short_profile(tmp_path / "short.json")
    (tmp_path / "w.csv").write_text(_LENGTHS)
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=1", "-w", "w.csv", "-n", "20", "--seeds", "1", *args,
                     "--out", tmp_path / "o", "--jobs", "1", cwd=tmp_path)
    assert_one_line_error(r, message)
    assert _no_run_computed(tmp_path / "o")


@pytest.mark.parametrize("content, shown", [
    ('policies = ["fcfs\\n"]\n', "'policies' item 1 of 1 must be printable text, without line breaks or control "
                                 "characters, got 'fcfs\\n'"),
    ('policies = ["fcfs"]\nreplicas = [2]\nrouters = ["random", "round-robin\\t"]\n',
     "'routers' item 2 of 2 must be printable text, without line breaks or control characters, got 'round-robin\\t'"),
])
def test_a_policy_or_router_with_a_line_break_is_refused_in_a_sweep(tmp_path, capsys, content, shown):
    """"fcfs\\n" (a spec's surrounding whitespace is dropped) ran, and its line break split its row of sweep.csv and
    of the table printed."""
    sweep = tmp_path / "s.toml"
    sweep.write_text(content)
    assert_one_line_error(run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1"),
                          f"{sweep}: {shown}")


@pytest.mark.parametrize("args, message", [
    (["-p", "fcfs\n"], "--policy must be printable text, without line breaks or control characters, got 'fcfs\\n'"),
    (["--replicas", "2", "--router", "random\r"], "--router must be printable text, without line breaks or control "
                                                  "characters, got 'random\\r'"),
])
def test_a_policy_or_router_with_a_line_break_is_refused_by_capacity(tmp_path, capsys, args, message):
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=1", *args, "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(r, message)
