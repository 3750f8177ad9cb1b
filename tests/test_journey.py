"""A newcomer's journey (helper journey): what the README's commands printed or accepted with one's own workloads,
policies and routers, each checked here against what it did before its fix."""

from __future__ import annotations

import pytest

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


_HINT = "loads plugins from LTRSCHED_PLUGINS (e.g. LTRSCHED_PLUGINS=my_policy.py ltrsched ...), not --plugin"


def test_sweep_names_how_it_loads_a_plugin_policy_or_router(tmp_path, capsys):
    """`sweep` takes no --plugin; an unknown policy or router listed the built-ins alone, and a user coming from
    `simulate --plugin` had no way to learn that the sweep's workers read LTRSCHED_PLUGINS."""
    from test_cli_simulate import assert_one_line_error

    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["my-policy"]\nworkloads = ["lmsys-like"]\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o"),
                          "unknown policy 'my-policy'; available: ")
    assert_one_line_error(run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o"), f"; a sweep {_HINT}")
    sweep.write_text('policies = ["fcfs"]\nworkloads = ["lmsys-like"]\nreplicas = [2]\nrouters = ["my-router"]\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o"), f"; a sweep {_HINT}")
    assert not (tmp_path / "o").exists()


def test_capacity_names_how_it_loads_a_plugin_policy_or_router(tmp_path, capsys):
    from test_cli_simulate import assert_one_line_error

    out = tmp_path / "o"
    assert_one_line_error(run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-p", "mine", "--out", out),
                          "unknown policy 'mine'; available: ")
    assert_one_line_error(run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-p", "mine", "--out", out),
                          f"; capacity {_HINT}")
    assert_one_line_error(run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "--replicas", "2", "--router",
                                       "mine", "--out", out), "unknown router 'mine'; available: ")
    assert_one_line_error(run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "--replicas", "2", "--router",
                                       "mine", "--out", out), f"; capacity {_HINT}")
    assert not out.exists()


def _write(path, columns: dict):
    import polars as pl

    table = pl.DataFrame({"prompt_tokens": [10, 11, 12], "output_tokens": [5, 6, 7], **columns})
    if path.suffix == ".csv":
        table.write_csv(path)
    elif path.suffix == ".parquet":
        table.write_parquet(path)
    else:
        table.write_ndjson(path)
    return path


@pytest.mark.parametrize("name, words, base", [
    ("arrival_time_us", "microseconds", "arrival_time"),
    ("Timestamp_NS", "nanoseconds", "timestamp"),
    ("arrived_at_min", "minutes", "arrived_at"),
    ("timestamp_sec", "seconds", "timestamp"),
])
@pytest.mark.parametrize("suffix, where", [(".csv", ""), (".parquet", ""), (".jsonl", ":1")])
def test_arrival_times_in_a_unit_no_format_reads_are_refused(tmp_path, capsys, name, words, base, suffix, where):
    """Such a column was not read at all: every request at t = 0 (the trace's times silently dropped), and
    `--arrival replay` said the file had no arrival times."""
    from test_cli_simulate import assert_one_line_error

    path = _write(tmp_path / f"w{suffix}", {name: [0, 1_000, 2_000]})
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", path, "--no-progress"),
                          f"{path}{where}: {name!r} gives arrival times in {words}, a unit ltrsched does not read; "
                          f"convert them to seconds ({base} or {base}_s) or milliseconds ({base}_ms), or drop the "
                          "column")


@pytest.mark.parametrize("columns", [
    {"timestamp_utc": [0, 1, 2]},  # (no unit: another column, left alone)
    {"arrival_time": [0.0, 0.5, 1.0], "arrival_time_us": [0, 500_000, 1_000_000]},  # (the times read: seconds)
    {"arrival_time_s": [0.0, 0.5, 1.0]},
])
def test_columns_beside_or_without_a_unit_are_read_as_before(tmp_path, capsys, columns):
    path = _write(tmp_path / "w.csv", columns)
    result = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress")
    assert result.returncode == 0, result.stderr


def test_workloads_prints_the_statistics_of_a_file(tmp_path, capsys):
    """`ltrsched workloads` said files "work too" but took none: a newcomer's own trace had no way to its length
    statistics short of a simulation (`workloads FILE` was "Got unexpected extra argument")."""
    path = _write(tmp_path / "w.csv", {"arrival_time": [0.0, 0.5, 2.0]})
    result = run_cli_fast(capsys, "workloads", path, "lmsys-like")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [str(path), "file"]
    assert lines[1].split() == "n=3 prompt mean 11 max 12 output mean 6 p90 7 max 7 arrivals over 2 s".split()
    assert lines[2].startswith("lmsys-like ") and lines[3].split()[0] == "n=10000" and len(lines) == 4


def test_workloads_refuses_a_missing_file_in_one_line(tmp_path, capsys):
    from test_cli_simulate import assert_one_line_error

    assert_one_line_error(run_cli_fast(capsys, "workloads", tmp_path / "none.csv"), "workload not found")
    assert_one_line_error(run_cli_fast(capsys, "workloads", "lmsys-like", "lmsys-like"),
                          "workload lmsys-like is given twice")


def test_simulate_help_says_what_the_memory_share_and_the_semantics_are(capsys):
    """--gpu-memory-utilization had no help text at all, and --semantics named the vLLM 0.26 adapter alone (it is
    the one V1 adapter of every supported line)."""
    result = run_cli_fast(capsys, "simulate", "--help")
    text = " ".join(result.stdout.split())
    assert ("--gpu-memory-utilization FLOAT Share of the profile's GPU memory for weights and KV cache, in (0, 1]"
            in text)
    assert "0.26" not in text and "exactly what the vLLM V1 adapter does" in text


def test_sweep_table_shows_long_policy_specs_whole(tmp_path, capsys):
    """polars cut strings at 32 characters: `ltr:tau=0.62,starve=200,quantu…` (the README's own sweep), which could
    be quantum=10 or quantum=100."""
    (tmp_path / "w.csv").write_text(_LENGTHS)
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["ltr:tau=0.62,starve=200,quantum=10", "ltr:tau=0.62,starve=200,quantum=100"]\n'
                     'workloads = ["w.csv"]\n')
    result = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert "┆ ltr:tau=0.62,starve=200,quantum=10 " in result.stdout
    assert "┆ ltr:tau=0.62,starve=200,quantum=100 " in result.stdout


def test_capacity_table_shows_long_policy_specs_whole(capsys):
    """Capacity's table cut strings at 40 characters and wrapped rows past 160: two MLFQ specs differing in
    starve_quantum printed alike. (Its table is printed by the sweep's printer, checked through the command above.)"""
    import polars as pl

    from ltrsched.experiments.commands import echo_table

    specs = ["mlfq:quantum=0.03,threshold=2,starve=200,starve_quantum=10",
             "mlfq:quantum=0.03,threshold=2,starve=200,starve_quantum=100"]
    table = pl.DataFrame({"policy": specs, "profile": ["a100-llama3-8b"] * 2, "capacity_rps": [19.03, 19.87],
                          **{f"column_{i}": ["some text"] * 2 for i in range(9)}})
    capsys.readouterr()
    echo_table(table, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True)
    out = capsys.readouterr().out
    assert all(f"│ {spec} " in out for spec in specs) and "column_8" in out and len(out.splitlines()) == 6, out


@pytest.mark.parametrize("extra, shown", [
    ('"Score": 0.3', "the key 'Score' is not read (keys match as written): write 'score'"),
    ('"Request_ID": 7, "PO_Estimate": 9', "the keys 'Request_ID', 'PO_Estimate' are not read (keys match as written): "
                                          "write 'request_id', 'po_estimate'"),
    ('"Output_Tokens": 9', "the key 'Output_Tokens' is not read"),  # (beside the reply's text: counted from it)
])
def test_a_jsonl_key_in_another_case_beside_a_request_is_refused(tmp_path, capsys, extra, shown):
    """A .jsonl's keys match as written, and a line that is no request said so; but a `Score` (or `Request_ID`, ...)
    beside a request's keys was dropped silently: `ltr` then said the file had no score, `fcfs` ran without it."""
    from test_cli_simulate import assert_one_line_error

    path = tmp_path / "w.jsonl"
    path.write_text('{"prompt": "hello there", "generated": "hi"}\n'
                    f'{{"prompt": "hi you", "generated": "hello", {extra}}}\n')
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", path, "--no-progress"), f"{path}:2: {shown}")
