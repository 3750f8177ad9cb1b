"""Arrival rates outside 1e-8..1e9 req/s refused in one line by every command taking one (:mod:`ltrsched.sim.rates`):
``simulate --rate 1e308`` ran as a burst labelled 1e308 req/s (capacity refused above 1e9), ``--rate 1e-308`` was
refused for "arrival times up to inf s"."""

from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

ABOVE = "req/s is above 1e+09 (a request every nanosecond, a thousand in the shortest step a profile models)"
BELOW = "req/s is below 1e-08 (a request every 1e+08 s, about 3 years, the latest a run's arrivals may come)"


@pytest.mark.parametrize("args, message", [
    (["simulate", "--arrival", "poisson", "--rate", "1e308"],
     f"--rate 1e+308 {ABOVE}: arrivals that dense are a burst at any rate; give a lower rate, or --arrival burst for "
     "every request at t = 0"),
    (["simulate", "--arrival", "gamma", "--rate", "1000000001"], f"--rate 1000000001 {ABOVE}"),
    (["simulate", "--arrival", "replay", "--rate", "1e308"], f"--rate 1e+308 {ABOVE}"),
    (["simulate", "--arrival", "poisson", "--rate", "1e-308"], f"--rate 1e-308 {BELOW}; give a higher rate"),
    (["simulate", "--arrival", "poisson", "--rate", "5e-324"], f"--rate 4.940656458e-324 {BELOW}"),
    (["replay", "-n", "3", "--arrival", "poisson", "--rate", "1e308"], f"--rate 1e+308 {ABOVE}"),
    (["validate", "-n", "3", "--rates", "4,1e10"], f"--rates item 2 of 2: 1e+10 {ABOVE}"),
    (["capacity", "--slo", "ttft_p90=2", "--max-rate", "1e10"], f"--max-rate 1e+10 {ABOVE}: arrivals that dense are a burst at any rate; give a lower rate"),
])
def test_a_rate_out_of_range_is_one_line(capsys, tmp_path, args, message):
    r = run_cli_fast(capsys, *args, "-w", "lmsys-like", cwd=tmp_path)
    assert_one_line_error(r, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rate, message", [(1e308, f"1e+308 {ABOVE}"), (1e-300, f"1e-300 {BELOW}")])
def test_a_sweep_rate_out_of_range_is_one_line(capsys, tmp_path, rate, message):
    (tmp_path / "s.json").write_text(json.dumps({"policies": ["fcfs"], "arrival": "poisson", "rates": [4, rate]}))
    r = run_cli_fast(capsys, "sweep", "s.json", "-o", "out", cwd=tmp_path)
    assert_one_line_error(r, f"s.json: 'rates' item 2 of 2: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_the_range_ends_run(capsys, tmp_path):
    """1e9 req/s (a burst in effect) and 1e-8 req/s for a single request (at t = 0) are in range."""
    for rate in ("1e9", "1e-8"):
        n = "3" if rate == "1e9" else "1"
        r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", n, "--arrival", "poisson", "--rate", rate)
        assert r.returncode == 0, r.stderr
