"""``simulate_cluster`` and routers driven from Python with hostile values: a numpy replica count, a replica count of
the wrong kind, a user's Router subclass answering with something that is no replica index."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.routers import Router
from ltrsched.sim import SimConfig
from ltrsched.sim.cluster import simulate_cluster


@pytest.fixture(scope="module")
def workload():
    return make_workload([20] * 6, [10] * 6, np.arange(6) * 0.5)


CONFIG = SimConfig(profile=LinearProfile())


@pytest.mark.parametrize("replicas", [np.int64(2), np.int32(2), np.uint8(2)])
def test_a_numpy_replica_count_is_saved_as_a_number(tmp_path, workload, replicas):
    """summary.json held "replicas": "2" and "num_replicas": "2", strings (a numpy integer is no JSON number: the
    writer's default=str), so a reader comparing the count with 2 found a mismatch."""
    result = simulate_cluster(workload, make_policy("fcfs"), CONFIG, replicas=replicas)
    result.save(tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["meta"]["replicas"] == 2 and saved["summary"]["num_replicas"] == 2
    assert type(result.meta["replicas"]) is int and type(result.summary["num_replicas"]) is int


@pytest.mark.parametrize("replicas", [2.0, "2", None, True, np.float64(2)])
def test_a_replica_count_of_the_wrong_kind_is_a_type_error_naming_it(workload, replicas):
    with pytest.raises(TypeError, match=r"^replicas must be an integer in 1\.\.4096, got "):
        simulate_cluster(workload, make_policy("fcfs"), CONFIG, replicas=replicas)


@pytest.mark.parametrize("replicas", [0, -1, 4097, np.int64(0)])
def test_a_replica_count_out_of_range_is_one_line(workload, replicas):
    with pytest.raises(UserError, match=r"^replicas must be an integer in 1\.\.4096, got "):
        simulate_cluster(workload, make_policy("fcfs"), CONFIG, replicas=replicas)


class Answer(Router):
    """Answers every request with ``value``; ``reads_state`` as given."""

    name = "answer"

    def __init__(self, value=None, reads: bool = True):
        self.value, self.reads_state = value, reads

    def route(self, request, now, replicas):
        return self.value


@pytest.mark.parametrize("reads", [True, False])
@pytest.mark.parametrize("value", [2, -1, 1.0, None, True, np.True_, "1", np.float64(1), np.array([1]), float("nan")])
def test_a_router_answer_that_is_no_replica_index_is_one_line_naming_it(workload, value, reads):
    with pytest.raises(UserError, match=r"returned .* for request 0; expected a replica index in 0\.\.1$"):
        simulate_cluster(workload, make_policy("fcfs"), CONFIG, replicas=2, router=Answer(value, reads))


@pytest.mark.parametrize("value", [np.int64(1), np.uint16(1), np.array(1)])
def test_a_numpy_integer_answer_routes_there(workload, value):
    result = simulate_cluster(workload, make_policy("fcfs"), CONFIG, replicas=2, router=Answer(value))
    assert result.requests["replica"].to_list() == [1] * 6


class Draining(Router):
    """Least outstanding, leaving replica 0 out while it is busy by removing it from the list it was given."""

    name = "draining"

    def route(self, request, now, replicas):
        if replicas[0].outstanding_requests > 0:
            replicas.remove(replicas[0])
        return min(replicas, key=lambda r: (r.outstanding_requests, r.index)).index


class Emptying(Router):
    """Answers replica 1, after emptying the list it was given."""

    name = "emptying"
    reads_state = False

    def route(self, request, now, replicas):
        replicas.clear()
        return 1


def test_a_router_that_changes_its_list_of_replicas_changes_no_later_arrivals_list(workload):
    """The host passed its own list: a router that removed a replica from it took that replica out of every later
    arrival's list, and then had a valid answer refused ("returned 2 for request 2; expected a replica index in
    0..0")."""
    burst = make_workload([20] * 12, [10] * 12, np.arange(12) * 0.001)
    routed = simulate_cluster(burst, make_policy("fcfs"), CONFIG, replicas=3, router=Draining()).requests["replica"]
    assert routed.to_list() == [0, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1]
    routed = simulate_cluster(workload, make_policy("fcfs"), CONFIG, replicas=2, router=Emptying()).requests["replica"]
    assert routed.to_list() == [1] * 6


class Sleepy(Router):
    """Round-robin, 0.05 s of wall time per request (a class of this test file: no plugin)."""

    name = "api-audit-sleepy"

    def route(self, request, now, replicas):
        import time

        time.sleep(0.05)
        return request % len(replicas)


SCRIPT = '''
def run(simulate):  # a user's script (a plugin file: it registers its own router) that runs a simulation
    return simulate()
'''


def test_a_plugin_files_frame_that_called_the_run_is_no_plugin_call_under_way(monkeypatch, tmp_path, workload):
    """A script that registered its own router, then called simulate_cluster, had every run longer than
    LTRSCHED_PLUGIN_TIMEOUT (60 s by default) stopped: the watchdog took the script's frame, under way for the whole
    run, for a plugin call ("its <module>() call before the first step ran longer than the plugin time limit")."""
    import importlib.util

    from ltrsched.policies import make_policy

    path = tmp_path / "my_script.py"
    path.write_text(SCRIPT)
    spec = importlib.util.spec_from_file_location("api_audit_my_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr("ltrsched.plugin_errors.plugin_files", lambda: {str(path.resolve())})
    monkeypatch.setenv("LTRSCHED_PLUGIN_TIMEOUT", "0.1")
    result = script.run(lambda: simulate_cluster(workload, make_policy("fcfs"), CONFIG, replicas=2, router=Sleepy()))
    assert result.summary["num_finished"] == 6  # (6 x 0.05 s in the router: 3 times the limit)
