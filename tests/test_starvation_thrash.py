"""A starvation-prevention run that preempts more than 5 times per finished request ends with a warning naming the
cause (the promotion rule under overload) and the remedy (a larger starve threshold and quantum), in ``simulate``
and ``sweep``; other runs, and the same runs without starvation prevention, do not warn (BENCHMARKS.md measured
20-26 preemptions per request at starve=200,quantum=10 and 4x overload, with no warning)."""

from __future__ import annotations

import importlib.resources
import json

import pytest

from ltrsched.policies import make_policy
from ltrsched.policies.starvation_thrash import THRASH_PREEMPTIONS_PER_REQUEST, starvation_settings, thrash_warning
from test_cli_simulate import run_cli_in_process

#: 30 requests on a KV cache of 120 blocks, preempted by recompute: starve=20,quantum=5 preempts 902 times (30.1 per
#: request); FCFS alone 58 times, starve=1000,quantum=100 59 times.
TIGHT = ("-w", "lmsys-like", "-n", "30", "--num-gpu-blocks", "120", "--preemption", "recompute")


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: ")]


def test_simulate_warns_when_starvation_prevention_thrashes(capsys):
    code, out, err = run_cli_in_process(capsys, "simulate", *TIGHT, "--policy", "fcfs:starve=20,quantum=5")
    assert code == 0, err
    assert "902 preemptions" in out
    assert warnings_in(err) == [
        "warning: policy fcfs:starve=20,quantum=5: 30.1 preemptions per finished request (902 for 30), more than 5: "
        "starvation prevention (starve=20,quantum=5) promotes every request idle 20 steps ahead of those running, and "
        "under sustained overload evicts them over and over to recompute (a thrash, BENCHMARKS.md); raise the "
        "threshold and the quantum (e.g. starve=1000,quantum=100), or lower the load"]


@pytest.mark.parametrize("policy", ["fcfs", "fcfs:starve=1000,quantum=100"])
def test_the_same_load_without_the_thrash_does_not_warn(capsys, policy):
    code, out, err = run_cli_in_process(capsys, "simulate", *TIGHT, "--policy", policy)
    assert code == 0, err
    assert " preemptions)" in out and warnings_in(err) == []


def small_profile(path) -> str:
    """The a100-llama3-8b profile with GPU memory for ~120 KV blocks of 16 tokens."""
    from ltrsched.sim import SimConfig
    from ltrsched.sim.simulate import kv_capacity_blocks

    data = json.loads((importlib.resources.files("ltrsched.sim.profiles") / "a100-llama3-8b.json").read_text())
    blocks = kv_capacity_blocks(SimConfig(profile="a100-llama3-8b"))
    data["gpu_memory_bytes"] -= int((blocks - 120) * 16 * 131072 / 0.9)  # (131,072 KV bytes per token)
    path.write_text(json.dumps(data))
    return str(path)


def test_a_sweep_warns_once_per_thrashing_policy_also_from_cached_runs(tmp_path, capsys):
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'workloads = ["lmsys-like"]\npolicies = ["fcfs:starve=20,quantum=5"]\nseeds = [0, 1]\n'
                     f'profiles = ["{small_profile(tmp_path / "small.json")}"]\npreemption = "recompute"\n'
                     "num_requests = 30\n")
    for _ in range(2):  # computed, then reused: the warning comes from the runs' summaries
        code, out, err = run_cli_in_process(capsys, "sweep", str(sweep), "--out", str(tmp_path / "o"), "--jobs", "1")
        assert code == 0, err
        [line] = warnings_in(err)
        assert line.startswith("warning: run fcfs:starve=20,quantum=5 on lmsys-like seed ")
        assert "(and 1 more of this policy's runs): " in line and "preemptions per finished request" in line
        assert "raise the threshold and the quantum (e.g. starve=1000,quantum=100)" in line


def test_the_threshold_is_more_than_5_per_finished_request():
    policy = make_policy("ltr:tau=0.62,starve=200,quantum=10")
    assert starvation_settings(policy) == (200, 10) and starvation_settings(make_policy("ltr:tau=0.62")) is None
    assert THRASH_PREEMPTIONS_PER_REQUEST == 5
    assert thrash_warning(policy, 500, 100, "x") is None  # 5 per request: not more
    assert thrash_warning(policy, 501, 100, "x").startswith("warning: x: 5.0 preemptions per finished request (501 for")
    assert thrash_warning(policy, 10, 0, "x") is None  # nothing finished (a stop time): no rate to judge
    assert thrash_warning(make_policy("fcfs"), 10**6, 1, "x") is None  # no starvation prevention: not its thrash
