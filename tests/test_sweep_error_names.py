"""Sweep errors raised outside the sweep file's own checks (an unknown scoring or profile, too many requests for a
workload) named neither the sweep file nor its key, unlike every other sweep error; now each starts with the file."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error


@pytest.mark.parametrize("setting, shown", [
    ('scoring = "bogus"', "'scoring': unknown scoring 'bogus'"),
    ('profiles = ["no-such-profile"]', "'profiles': unknown profile 'no-such-profile'"),
    ('workloads = ["w.csv"]\nnum_requests = 31', "asked for 31 requests but "),
])
def test_a_sweep_error_names_the_sweep_file(tmp_path, capsys, setting, shown):
    (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n" + "".join(f"{10 + i},{20 + i}\n" for i in range(30)))
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'policies = ["fcfs"]\n{setting}\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(r, f"error: {sweep}: {shown}")
    assert not (tmp_path / "o" / "runs").exists()


@pytest.mark.parametrize("setting, shown", [
    ('policies = ["nope"]', "'policies': unknown policy 'nope'; available: "),
    ('policies = ["fcfs:x=1"]', "'policies': policy 'fcfs' has no parameter 'x'"),
    ('policies = ["fcfs"]\nreplicas = [2]\nrouters = ["nope"]', "'routers': unknown router 'nope'; available: "),
    ('policies = ["fcfs"]\nreplicas = [2]\nrouters = ["least-kv:by=x"]', "'routers': router 'least-kv': by must be "),
    # (named the file and key already: named once)
    ('policies = ["fcfs"]\nreplicas = [2]\nrouters = ["random", "random:"]', "'routers': 'random' and 'random:' are "),
])
def test_a_bad_policy_or_router_spec_names_the_sweep_file_and_key(tmp_path, capsys, setting, shown):
    """An unknown router (or policy, or a bad parameter of one) in a sweep file named neither the file nor the key,
    though two spellings of one router did."""
    sweep = tmp_path / "s.toml"
    sweep.write_text(f"{setting}\n")
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(r, f"error: {sweep}: {shown}")
    assert r.stderr.count(str(sweep)) == 1
    if "unknown" in shown:  # (the plugin hint is kept)
        assert r.stderr.rstrip().endswith("a sweep loads plugins from LTRSCHED_PLUGINS (e.g. "
                                          "LTRSCHED_PLUGINS=my_policy.py ltrsched ...), not --plugin")
    assert not (tmp_path / "o" / "runs").exists()
