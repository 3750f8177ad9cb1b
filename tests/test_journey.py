"""A newcomer's journey (helper journey): what the README's commands printed or accepted with one's own workloads,
policies and routers, each checked here against what it did before its fix."""

from __future__ import annotations

from cli_helpers import run_cli_fast

_LENGTHS = "prompt_tokens,output_tokens\n" + "".join(f"{10 + i},{20 + i}\n" for i in range(12))


def test_sweep_table_tells_seeds_and_clusters_apart(tmp_path, capsys):
    """The printed table showed workload, policy, profile and rate only: two seeds' or a lone replica's and a
    cluster's rows looked alike (sweep.csv had the columns)."""
    (tmp_path / "w.csv").write_text(_LENGTHS)
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\nworkloads = ["w.csv"]\nseeds = [0, 1]\nreplicas = [1, 2]\n'
                     'routers = ["round-robin", "least-outstanding"]\n')
    result = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "workload" in line)
    assert [c.strip() for c in header.strip("│").split("┆")][:7] == [
        "workload", "policy", "profile", "rate", "seed", "replicas", "router"]
    rows = [line for line in result.stdout.splitlines() if "┆ fcfs " in line]
    assert len(rows) == 6 and len(set(rows)) == 6  # (2 seeds x 3 clusters, each row its own)


def test_sweep_table_of_one_seed_and_replica_shows_no_extra_columns(tmp_path, capsys):
    (tmp_path / "w.csv").write_text(_LENGTHS)
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs", "srtf"]\nworkloads = ["w.csv"]\n')
    result = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "workload" in line)
    assert "seed" not in header and "replicas" not in header and "latency_per_token_mean" in header
