"""No arrival option is silently ignored (issue 12, item 5): a rate or a duration with burst arrivals, a
coefficient of variation without gamma, in simulate, sweep and the shared workload builder of replay and
validate, are refused with one line naming the fix."""

from __future__ import annotations

import pytest

from ltrsched.errors import UserError
from ltrsched.sim.commands import build_workload
from ltrsched.workloads import apply_arrivals
from test_cli_simulate import assert_one_line_error, run_cli

from conftest import make_workload


@pytest.mark.parametrize("args, message", [
    (["--rate", "5"], "--rate 5 has no effect with --arrival burst (every request arrives at t = 0); add --arrival poisson"),
    (["--arrival", "burst", "--rate", "5"], "add --arrival poisson"),
    (["--duration", "60"], "--duration 60 has no effect with --arrival burst"),
    (["--arrival", "poisson", "--rate", "4", "--cv", "2"], "--cv 2 applies only to --arrival gamma, not --arrival poisson"),
    (["--cv", "3"], "--cv 3 applies only to --arrival gamma"),
])
def test_simulate_refuses_ignored_arrival_options(args, message):
    assert_one_line_error(run_cli("simulate", "-n", "20", *args), message)


@pytest.mark.parametrize("args", [
    ["--arrival", "poisson", "--rate", "5"],
    ["--arrival", "poisson", "--rate", "5", "--cv", "1"],  # Poisson's own CV
    ["--arrival", "gamma", "--rate", "5", "--cv", "2"],
    ["--arrival", "poisson", "--rate", "5", "--duration", "2"],
])
def test_simulate_accepts_options_that_apply(args):
    r = run_cli("simulate", "-n", "40", *args)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("arrival, rate, cv, duration, message", [
    ("burst", 5.0, 1.0, None, "--rate 5 has no effect"),
    ("burst", None, 1.0, 30.0, "--duration 30 has no effect"),
    ("replay", None, 2.0, None, "--cv 2 applies only to --arrival gamma"),
])
def test_the_builder_replay_and_validate_share_refuses_them(arrival, rate, cv, duration, message):
    """``replay`` and ``validate`` take the same workload options through ``build_workload``."""
    with pytest.raises(UserError, match=message):
        build_workload("sharegpt", 10, arrival, rate, cv, duration, 0)


def test_apply_arrivals_refuses_them_too():
    wl = make_workload([10] * 3, [5] * 3)
    with pytest.raises(UserError, match=r"burst arrivals take no rate \(given: rate=5"):
        apply_arrivals(wl, "burst", rate=5.0)
    with pytest.raises(UserError, match="poisson arrivals take no cv"):
        apply_arrivals(wl, "poisson", rate=5.0, cv=2.0)
    assert len(apply_arrivals(wl, "gamma", rate=5.0, cv=2.0)) == 3


_SWEEP = 'workloads = ["sharegpt-like"]\npolicies = ["fcfs"]\nnum_requests = 20\n'


@pytest.mark.parametrize("extra, message", [
    ("rates = [4, 64]\n", "'rates' = [4, 64] has no effect with arrival \"burst\" (the default), where every "
                          "request arrives at t = 0; add arrival = \"poisson\""),
    ('arrival = "burst"\nrates = [4.0]\n', "'rates' = [4.0] has no effect with arrival \"burst\", where"),
    ("duration = 30\n", "'duration' = 30 has no effect with arrival \"burst\" (the default)"),
])
def test_sweep_refuses_rates_without_an_arrival_process(tmp_path, extra, message):
    path = tmp_path / "s.toml"
    path.write_text(_SWEEP + extra)
    out = tmp_path / "out"
    assert_one_line_error(run_cli("sweep", str(path), "--out", str(out)), message)
    assert not (out / "runs").exists()
