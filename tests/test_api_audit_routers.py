"""Router specs and plugin routers given hostile values from Python and the CLI: a spec that is no string, a plugin
router that keeps a parameter under another attribute name."""

from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from conftest import make_workload
from ltrsched.errors import UserError
from ltrsched.routers import Router, make_router
from ltrsched.routers import registry
from ltrsched.routers.registry import check_distinct_routers


@pytest.mark.parametrize("spec", [None, 3, b"random", ["random"]])
def test_a_spec_that_is_no_string_is_a_type_error_naming_it(spec):
    """Each was an AttributeError ('NoneType' object has no attribute 'strip') or a TypeError about bytes."""
    with pytest.raises(TypeError, match=r"^spec must be a router spec string, e\.g\. 'least-kv:by=tokens'"):
        make_router(spec)


class Hidden(Router):
    """Keeps its parameter as ``self._k``: its spec cannot show it."""

    name = "api-audit-hidden"

    def __init__(self, k: int = 1):
        self._k = k

    def route(self, request, now, replicas):
        return self._k % len(replicas)


class Kept(Hidden):
    name = "api-audit-kept"

    def __init__(self, k: int = 1):
        super().__init__(k)
        self.k = k


@pytest.fixture
def hidden(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, Hidden.name, Hidden)
    monkeypatch.setitem(registry._REGISTRY, Kept.name, Kept)


MESSAGE = ("router 'api-audit-hidden' keeps no attribute 'k' for its parameter k, so its spec 'api-audit-hidden' "
           "leaves it out; store each constructor parameter as an attribute of the same name (self.k = k)")


def test_a_router_that_keeps_a_given_parameter_under_another_name_is_refused(hidden):
    """Its spec, 'api-audit-hidden' for k=1 and k=2 alike, was the run's meta and the tables' label, and a sweep of
    both was refused as 'the same router (api-audit-hidden)'."""
    with pytest.raises(UserError) as info:
        check_distinct_routers([f"{Hidden.name}:k=1", f"{Hidden.name}:k=2"], "--router")
    assert str(info.value) == MESSAGE
    assert make_router(Hidden.name).spec() == Hidden.name  # (the default, given by no one, is not checked)
    check_distinct_routers([f"{Kept.name}:k=1", f"{Kept.name}:k=2"], "--router")
    assert make_router(f"{Kept.name}:k=2").spec() == f"{Kept.name}:k=2"


def test_simulate_refuses_it_in_one_line(hidden, capsys, tmp_path):
    path = tmp_path / "wl.parquet"
    make_workload([20] * 4, [10] * 4).save(path)
    r = run_cli_fast(capsys, "simulate", "-w", path, "--replicas", "2", "--router", f"{Hidden.name}:k=1",
                     "--no-progress")
    assert_one_line_error(r, MESSAGE)


@pytest.mark.parametrize("scores, warning", [
    ([1, np.nan, 2, np.nan, 3, 4], "warning: router 'rank': 2 of 6 request(s) have no score (first: request 1); each "
                                   "is routed as by least-outstanding, and counts ahead of no scored request"),
    ([1.5] * 6, "warning: router 'rank': all 6 scored request(s) have the same score (1.5); routed by it, the router "
                "is least-outstanding"),
])
def test_the_rank_router_warns_of_scores_that_cannot_rank(capsys, scores, warning):
    """The LTR policy warned of the same column; the router routed by it without a word."""
    from conftest import LinearProfile
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig
    from ltrsched.sim.cluster import simulate_cluster

    wl = make_workload([20] * 6, [10] * 6, np.arange(6) * 0.001, score=scores)
    capsys.readouterr()
    simulate_cluster(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile()), replicas=2,
                     router=make_router("rank"))
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(warning)
    simulate_cluster(make_workload([20] * 6, [10] * 6, score=np.arange(6.0)), make_policy("fcfs"),
                     SimConfig(profile=LinearProfile()), replicas=2, router=make_router("rank"))
    assert capsys.readouterr().err == ""


def test_a_replica_snapshot_takes_lists_and_fills_what_is_left_out():
    """A router tested on hand-made snapshots: lists were kept as lists (context_tokens: an AttributeError about
    'sum'), and generated/prompt_tokens left out were empty beside two outstanding requests."""
    from ltrsched.routers import ReplicaSnapshot

    snap = ReplicaSnapshot(index=0, num_gpu_blocks=10, outstanding=[4, 7], generated=[3, 4], prompt_tokens=[5, 6])
    assert snap.context_tokens == 18 and snap.requests.dtype == np.int64
    bare = ReplicaSnapshot(outstanding=[4, 7])
    assert bare.generated_tokens.tolist() == [0, 0] and bare.context_tokens == 0
    router = make_router("least-kv:by=tokens")  # (a router runs on them: 18 tokens against 100)
    assert router.route(0, 0.0, [snap, ReplicaSnapshot(index=1, outstanding=[1], prompt_tokens=[100])]) == 0


@pytest.mark.parametrize("fields, message", [
    ({"num_gpu_blocks": 0}, "num_gpu_blocks must be a whole number of blocks >= 1, got 0"),  # was ZeroDivisionError
    ({"num_gpu_blocks": 2.5}, "num_gpu_blocks must be a whole number of blocks >= 1, got 2.5"),
    ({"outstanding": [1.5]}, "outstanding must be a list or 1-d array of whole numbers"),
    ({"outstanding": [[1]]}, "outstanding must be a list or 1-d array of whole numbers"),
    ({"outstanding": [1, 2], "generated": [0]}, "generated must have one value per outstanding request (2), got 1"),
])
def test_a_replica_snapshot_that_is_no_replica_state_is_a_value_error_naming_the_field(fields, message):
    from ltrsched.routers import ReplicaSnapshot

    with pytest.raises(ValueError) as info:
        ReplicaSnapshot(**fields)
    assert str(info.value).startswith(message)
