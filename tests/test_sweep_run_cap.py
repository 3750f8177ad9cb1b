"""A sweep file's lists multiply out to its runs: more than ``--max-runs`` (default 10,000) is refused up front with
one line giving the count, before any run is listed (a grid of 10**12 runs was expanded into memory first)."""

from __future__ import annotations

import pytest

from ltrsched.experiments.commands import sweep_run_count
from test_cli_simulate import run_cli_in_process


def toml_list(values) -> str:
    return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values) + "]"


def test_a_grid_of_10_to_the_12_runs_is_refused_at_once(tmp_path, capsys):
    """Six lists of 100 items: 10**12 runs, refused with the count before any item is looked at further."""
    sweep = tmp_path / "huge.toml"
    sweep.write_text("\n".join([
        f"workloads = {toml_list(f'w{i}.csv' for i in range(100))}",
        f"policies = {toml_list(f'fcfs:starve={i + 1}' for i in range(100))}",
        f"profiles = {toml_list(f'p{i}.json' for i in range(100))}",
        'arrival = "poisson"',
        f"rates = {toml_list(float(i + 1) for i in range(100))}",
        f"seeds = {toml_list(range(100))}",
        f"replicas = {toml_list(range(1, 101))}",
    ]) + "\n")
    code, out, err = run_cli_in_process(capsys, "sweep", str(sweep), "--out", str(tmp_path / "o"))
    assert code == 2, err
    assert err.strip().splitlines() == [
        f"error: {sweep}: the sweep multiplies out to 1,000,000,000,000 runs (100 workloads x 100 policies x 100 "
        "profiles x 100 rates x 100 seeds x 100 clusters (replicas x routers)), more than --max-runs 10,000; shorten "
        "its lists, or raise --max-runs if you mean it"]
    assert not (tmp_path / "o").exists()


def test_max_runs_is_the_cap_and_raising_it_runs_the_sweep(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "srtf"]\nseeds = [0, 1]\n'
                     "num_requests = 20\n")
    import ltrsched.experiments.runspec as runspec

    real = runspec.RunSpec
    monkeypatch.setattr(runspec, "RunSpec", None)  # refused before a single run is listed
    code, _, err = run_cli_in_process(capsys, "sweep", str(sweep), "--out", str(tmp_path / "o"), "--max-runs", "3")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "multiplies out to 4 runs (2 policies x 2 seeds), more than --max-runs 3" in err
    monkeypatch.setattr(runspec, "RunSpec", real)
    code, out, err = run_cli_in_process(capsys, "sweep", str(sweep), "--out", str(tmp_path / "o"), "--max-runs", "4",
                                        "--jobs", "1")
    assert code == 0, err
    assert "4 runs simulated, 0 reused" in out


def test_max_runs_below_1_is_one_line(tmp_path, capsys):
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\n')
    code, _, err = run_cli_in_process(capsys, "sweep", str(sweep), "--max-runs", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--max-runs" in err, err


@pytest.mark.parametrize("data, count, words", [
    ({"policies": ["fcfs"]}, 1, "1 run"),
    ({"policies": ["a", "b"], "replicas": [1, 2, 4], "routers": ["round-robin", "random"]}, 10,
     "2 policies x 5 clusters (replicas x routers)"),  # a lone replica has no router: 1 + 2 x 2 clusters
    ({"policies": ["a"], "workloads": ["x", "y"], "profiles": ["p", "q", "r"], "rates": [1.0, 2.0], "seeds": [0, 1]},
     24, "2 workloads x 3 profiles x 2 rates x 2 seeds"),
])
def test_the_count_is_the_product_of_the_lists(data, count, words):
    assert sweep_run_count(data) == (count, words)
