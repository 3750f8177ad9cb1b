"""Routers on hand-made replica views (no simulator), the registry, and plugins."""

from __future__ import annotations

import numpy as np
import pytest

from ltrsched.errors import UserError
from ltrsched.routers import ReplicaSnapshot, available, make_router


def views(*outstanding, blocks=None, generated=None, prompts=None):
    """Replica snapshots: replica k has the outstanding request positions ``outstanding[k]``."""
    out = []
    for k, rows in enumerate(outstanding):
        rows = np.asarray(rows, dtype=np.int64)
        out.append(ReplicaSnapshot(
            index=k, num_gpu_blocks=100, outstanding=rows,
            generated=np.asarray(generated[k] if generated else np.zeros(len(rows)), dtype=np.int64),
            prompt_tokens=np.asarray(prompts[k] if prompts else np.zeros(len(rows)), dtype=np.int64),
            blocks_in_use=blocks[k] if blocks else 0))
    return out


def columns(n, **extra):
    cols = {"request_id": np.arange(n), "arrival_time": np.zeros(n), "prompt_tokens": np.full(n, 10),
            "output_tokens": np.arange(1, n + 1) * 10, "score": np.full(n, np.nan), "po_estimate": np.full(n, np.nan),
            "predicted_length": np.full(n, np.nan)}
    cols.update({k: np.asarray(v, dtype=np.float64) for k, v in extra.items()})
    return cols


def test_builtins_are_registered():
    assert {"round-robin", "random", "least-outstanding", "least-kv", "rank", "least-work"} <= set(available())


def test_round_robin_cycles_and_resets():
    r = make_router("round-robin")
    r.prepare(columns(10), 3)
    v = views([], [], [])
    assert [r.route(i, 0.0, v) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    r.prepare(columns(10), 3)
    assert r.route(0, 0.0, v) == 0


def test_least_outstanding_ties_by_index():
    r = make_router("least-outstanding")
    assert r.route(0, 0.0, views([1, 2], [3], [4])) == 1
    assert r.route(0, 0.0, views([1], [2], [])) == 2


def test_least_kv_by_blocks_and_by_tokens():
    v = views([1, 2], [3], [4, 5], blocks=[10, 30, 10], generated=[[5, 5], [0], [0, 0]], prompts=[[10, 10], [1], [100, 100]])
    assert make_router("least-kv").route(0, 0.0, v) == 0  # 10 blocks like replica 2, as many requests: index
    assert make_router("least-kv:by=tokens").route(0, 0.0, v) == 1  # 1 token vs 30 vs 200
    # ties on blocks go to the replica with fewer outstanding requests
    v = views([1, 2, 3], [4], blocks=[0, 0])
    assert make_router("least-kv").route(0, 0.0, v) == 1


def test_rank_counts_requests_ranked_ahead():
    r = make_router("rank")
    score = [0.0, 5.0, 4.0, 3.0, -1.0, -2.0, 2.0]  # position 6 (score 2) is the new request
    r.prepare(columns(7, score=score), 2)
    # replica 0: scores 5, 4, 3 all rank ahead; replica 1: -1, -2, 0 all behind, though it has as many
    assert r.route(6, 0.0, views([1, 2, 3], [4, 5, 0])) == 1
    # the new request ranks last everywhere: the tie goes to fewer outstanding requests
    assert r.route(5, 0.0, views([1, 2, 3], [0])) == 1


def test_rank_and_least_work_need_their_columns_unless_tau():
    assert make_router("rank").needs == ("score",)
    assert make_router("rank:tau=0.5").needs == ()
    assert make_router("least-work").needs == ("predicted_length",)
    assert make_router("least-work:tau=0.7").needs == ()


def test_least_work_sums_predicted_tokens_left():
    r = make_router("least-work")
    r.prepare(columns(5, predicted_length=[100, 400, 50, 50, 30]), 2)
    # replica 0: request 1 predicted 400, generated 390 -> 10 left; replica 1: two of 50, none generated -> 100
    assert r.route(4, 0.0, views([1], [2, 3], generated=[[390], [0, 0]])) == 0
    # a request beyond its prediction still counts one token
    assert r.work(views([1], generated=[[1000]])[0]) == 1.0


def test_random_is_seeded_per_request():
    a, b = make_router("random:seed=4"), make_router("random:seed=4")
    a.prepare(columns(200), 4)
    b.prepare(columns(200), 4)
    v = views([], [], [], [])
    picks = [a.route(i, 0.0, v) for i in range(200)]
    assert picks == [b.route(i, 0.0, v) for i in reversed(range(200))][::-1]  # same choice whatever the order
    assert set(picks) == {0, 1, 2, 3}


@pytest.mark.parametrize("spec, message", [
    ("nosuch", "unknown router 'nosuch'"),
    ("least-kv:by=bytes", "by must be one of blocks, tokens"),
    ("round-robin:x=1", "has no parameter 'x'"),
    ("rank:tau=2", "tau must be in (0, 1]"),
    ("random:seed=x", "bad value for seed"),
    ("random:seed=1_0", "bad value for seed: '1_0' is not a plain number"),  # int("1_0") is 10
    ("rank:tau=0_5", "bad value for tau: '0_5' is not a plain number"),
    ("least-kv:by", "bad router spec"),
])
def test_bad_specs_are_user_errors(spec, message):
    with pytest.raises(UserError) as err:
        make_router(spec)
    assert message in str(err.value)


def test_router_plugin_file(tmp_path):
    """A router in its own file, loaded like a policy plugin (examples/routers/ is the README's example)."""
    from pathlib import Path

    from ltrsched.policies import load_plugin

    example = Path(__file__).resolve().parents[1] / "examples" / "routers" / "power_of_two.py"
    load_plugin(str(example))
    r = make_router("power-of-two:seed=1")
    r.prepare(columns(50), 4)
    v = views([1, 2, 3], [4], [5, 6], [7, 8, 9, 10])
    picks = {r.route(i, 0.0, v) for i in range(50)}
    assert picks <= {0, 1, 2} and 1 in picks  # never the busiest replica; the idlest when sampled
    assert r.spec() == "power-of-two:seed=1"


def test_simulate_plugin_help_names_routers():
    """simulate --plugin loads router plugins too (the README's --router power-of-two example); its help says so."""
    from ltrsched.sim.commands import simulate

    (plugin,) = [p for p in simulate.params if p.name == "plugin"]
    assert "router" in plugin.help


def test_a_plugin_routers_code_is_part_of_a_cluster_runs_key():
    """As for plugin policies: editing a plugin router's file must not reuse cached cluster runs."""
    from pathlib import Path

    from ltrsched.experiments.runspec import RunSpec
    from ltrsched.policies import load_plugin
    from ltrsched.routers.registry import router_source

    load_plugin(str(Path(__file__).resolve().parents[1] / "examples" / "routers" / "power_of_two.py"))
    assert router_source("round-robin") is None
    source = router_source("power-of-two:seed=2")
    assert source is not None and len(source["sha256"]) == 64
    spec = RunSpec(experiment="sweep", setting="s", label="l", workload="sharegpt", policy="fcfs",
                   profile="a100-llama3-8b", replicas=2, router="power-of-two")
    assert spec.key()["inputs"]["router"] == source
