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


# ---------------------------------------------------------------- predicted work: bounded, scores only as ranks
def _mix(n=40, long=30_000, prompt=20):
    """A 1/30k-token mix: even positions 1 output token, odd ones ``long``; ``prompt`` tokens each."""
    outputs = np.where(np.arange(n) % 2 == 0, 1, long)
    return columns(n, prompt_tokens=np.full(n, prompt), output_tokens=outputs), outputs


def _route_burst(router, cols, replicas):
    """Route every request of ``cols`` at one instant (nothing generated yet), as the cluster does for a burst:
    each goes into the outstanding list of the replica chosen. Returns the replica of each request."""
    router.prepare(cols, replicas)
    rows = [[] for _ in range(replicas)]
    choice = []
    for i in range(len(cols["request_id"])):
        k = router.route(i, 0.0, views(*rows))
        rows[k].append(i)
        choice.append(k)
    return np.asarray(choice)


@pytest.mark.parametrize("seed", [0, 2, 4, 5])
def test_least_work_tau_spreads_a_1_to_30k_burst(seed):
    """40 requests of a 1/30k-token mix arriving at once on 4 replicas: the noise model's unbounded lengths (up to
    4.4e10 tokens for a 30k-token request at tau 0.6) sent 21, 20, 19 and 24 of them to one replica (seeds 0, 2, 4, 5);
    bounded by what a request can generate, 16 at most (tests/test_cluster.py runs the mix through the simulator)."""
    cols, outputs = _mix()
    choice = _route_burst(make_router(f"least-work:tau=0.6,seed={seed}"), cols, 4)
    assert np.bincount(choice, minlength=4).max() <= 16


def test_least_work_bounds_predictions_by_max_model_len_less_the_prompt():
    """A class model's bucket midpoints run past the context (bucket 8,191 of 820 tokens: 6.7M tokens); each request
    counts at most max_model_len - prompt tokens of work, at least 1."""
    cols = columns(4, prompt_tokens=[100, 1000, 10, 10], output_tokens=[50, 50, 50, 50],
                   predicted_length=[6.7e6, 6.7e6, 0.0, 3e3])
    r = make_router("least-work:max_model_len=8192")
    r.prepare(cols, 2)
    assert [r.work(views([i])[0]) for i in range(4)] == [8092.0, 7192.0, 1.0, 3000.0]
    r = make_router("least-work")  # the workload's longest request: 1,050 tokens
    r.prepare(cols, 2)
    assert [r.work(views([i])[0]) for i in range(4)] == [950.0, 50.0, 1.0, 1040.0]
    # replica 0 holds request 0 (6.7M predicted, 950 at most), replica 1 request 3 (1,040 at most): the next goes to 0
    assert r.route(2, 0.0, views([0], [3])) == 0


def test_least_work_bounds_predictions_by_the_replicas_context():
    """Without the parameter, the bound is the replicas' own context as the host gives it (the simulator's
    max_model_len), not the workload's longest request (1,050 tokens here: a hint of the true lengths)."""
    cols = columns(4, prompt_tokens=[100, 1000, 10, 10], output_tokens=[50, 50, 50, 50],
                   predicted_length=[6.7e6, 6.7e6, 0.0, 3e3])
    r = make_router("least-work")
    r.prepare(cols, 2)
    idle = [ReplicaSnapshot(index=0, max_model_len=4096), ReplicaSnapshot(index=1, max_model_len=4096)]
    assert r.route(0, 0.0, idle) == 0
    assert [r.work(views([i])[0]) for i in range(4)] == [3996.0, 3096.0, 1.0, 3000.0]


def test_the_cluster_gives_routers_its_context():
    """Every replica view names the run's context [tokens]: given, or the profile's bounded by the KV cache."""
    from ltrsched.routers import Router
    from ltrsched.sim import SimConfig
    from ltrsched.sim.cluster import simulate_cluster
    from ltrsched.policies import make_policy
    from ltrsched.workloads import load_workload

    seen = []

    class Spy(Router):
        name = "spy-context"

        def route(self, request, now, replicas):
            seen.append({r.max_model_len for r in replicas})
            return 0

    wl = load_workload("sharegpt", num_requests=4)
    simulate_cluster(wl, make_policy("fcfs"), SimConfig(max_model_len=4000), replicas=2, router=Spy())
    assert seen and all(s == {4000} for s in seen)


def test_least_work_refuses_a_max_model_len_below_the_workload():
    cols = columns(3, prompt_tokens=[100, 5000, 10], output_tokens=[50, 4000, 50], predicted_length=[1, 1, 1])
    with pytest.raises(UserError, match=r"^router 'least-work': max_model_len=8192 is below request 1's 5,000 prompt "
                                        r"\+ 4,000 output tokens, which the replicas serve;"):
        make_router("least-work:max_model_len=8192").prepare(cols, 2)


@pytest.mark.parametrize("spec, message", [
    ("least-work:max_model_len=1", "max_model_len must be in 2..16,777,216 tokens, got 1"),
    ("least-work:max_model_len=1.5", "bad value for max_model_len"),
])
def test_least_work_bad_max_model_len(spec, message):
    with pytest.raises(UserError, match=message):
        make_router(spec)


def test_rank_routes_a_trained_predictors_scores_by_their_order_alone():
    """ListMLE/pairwise scores are unitless and a class model's are minus bucket indices: the rank router reads
    none as a length. Any increasing transform of the column (a ranker's scale and offset, exp) routes every request
    alike, and either column spreads a 1/30k-token burst over 4 replicas, 8-12 requests each (a class model's: bucket 0
    or 36 of 820 tokens, its expected-bucket tie-break in [0, 1))."""
    cols, outputs = _mix()
    rng = np.random.default_rng(3)
    listmle = -np.log(outputs) * 7.3 + rng.normal(0, 4.0, len(outputs)) + 120.0  # unitless, noisy
    by = {}
    for name, score in {"raw": listmle, "scaled": 1e3 * listmle - 5e4, "exp": np.exp(listmle / 20)}.items():
        by[name] = _route_burst(make_router("rank"), {**cols, "score": score}, 4)
    assert (by["raw"] == by["scaled"]).all() and (by["raw"] == by["exp"]).all()
    class_scores = -(np.floor(outputs / 820) + rng.uniform(0, 1, len(outputs)))
    for score in (listmle, class_scores):
        counts = np.bincount(_route_burst(make_router("rank"), {**cols, "score": score}, 4), minlength=4)
        assert counts.min() >= 8 and counts.max() <= 12, counts


@pytest.mark.parametrize("spec", ["least-outstanding", "least-kv", "least-kv:by=tokens", "rank", "least-work"])
def test_ties_go_to_fewer_outstanding_then_the_lowest_index(spec):
    """Every state-reading router breaks a tie on its measure by outstanding requests, then by the lowest index: the
    same run routes alike (1,000 idle replicas: replica 0)."""
    r = make_router(spec)
    r.prepare(columns(8, score=np.zeros(8), predicted_length=np.full(8, 50)), 3)
    assert r.route(7, 0.0, views(*[[] for _ in range(1000)])) == 0
    if spec == "least-kv":  # no blocks held anywhere: fewer outstanding requests win
        assert r.route(7, 0.0, views([0, 1], [2], [3, 4])) == 1
    # the measure tied on replicas 1 and 2 (no blocks; 100 tokens; 50 predicted; one ahead), 1 request each
    assert r.route(7, 0.0, views([0, 1, 2], [3], [4], blocks=[10, 0, 0],
                                 prompts=[[100, 100, 100], [100], [100]])) == 1


@pytest.mark.parametrize("spec", ["rank", "least-work", "least-kv:by=tokens"])
def test_an_idle_replica_is_chosen_without_reading_the_others_requests(spec):
    """An idle replica (no outstanding request) has no request ranked ahead, no work and no tokens: the least of each
    measure, so the lowest-indexed one is the answer. It is found from the counts alone: each arrival read every
    replica's requests (1,000 replicas, 1,000 ShareGPT requests at 200/s: 1.9 s of rank's, 4.5 s of least-work's and
    4.7 s of least-kv:by=tokens' routing CPU -> 0.09-0.13 s each, the same assignment); with no replica idle, every
    measure is read as before."""
    from ltrsched.routers import ReplicaSnapshot

    reads = []

    class Watched(ReplicaSnapshot):
        @property
        def requests(self):
            reads.append(self.index)
            return self.outstanding

        @property
        def context_tokens(self):
            reads.append(self.index)
            return len(self.outstanding)

    def watched(*outstanding):
        return [Watched(index=k, num_gpu_blocks=100, outstanding=rows) for k, rows in enumerate(outstanding)]

    r = make_router(spec)
    r.prepare(columns(8, score=np.arange(8.0), predicted_length=np.full(8, 50)), 4)
    replicas = watched([0], [], [1, 2], [])
    assert r.route(7, 0.0, replicas[::-1]) == 1 and reads == []  # (listed in any order: the lowest index)
    assert r.route(7, 0.0, watched([0], [1, 2], [3], [4, 5])) == 0 and sorted(reads) == [0, 1, 2, 3]


@pytest.mark.slow  # (~10 s in a fresh process: the n-gram tokenizer's and torch's first use; each fit is ~0.1 s)
def test_a_trained_predictors_columns_route_a_1_to_30k_burst_sensibly():
    """`ltrsched predict`'s columns from real (tiny) trained models: a ListMLE or pairwise ranker's unitless scores,
    a class model's scores (minus bucket indices) and predicted_length (bucket midpoints [tokens]). 80 prompts, half
    asking for one token and half for 30,000, arriving at once on 4 replicas: rank gives each replica 15-25 of them
    (it balances requests ranked ahead, not work); least-work on the class model's lengths 15-25, and 8-12 of the
    40 long ones (measured: 21/22/18/19 and 10 each; rank 19/21/21/19, 20/18/20/22, 23/19/21/17)."""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    topics = ["rivers", "cats", "history", "math", "music", "ships", "trees", "stars", "bread", "trains"] * 4
    short = [f"answer yes or no: do {t} exist {i}" for i, t in enumerate(topics)]
    long = [f"write a very long detailed essay with many chapters about {t} {i}" for i, t in enumerate(topics)]
    prompts = [p for pair in zip(short, long) for p in pair]
    lengths = np.array([1, 30_000] * 40)
    cols = columns(80, prompt_tokens=np.full(80, 20), output_tokens=lengths)
    for kind, loss in (("rank", "listmle"), ("rank", "pairwise"), ("class", "ce")):
        predictor = Predictor(PredictorConfig(kind=kind, loss=loss, epochs=3, dim=1024, bucket=820, num_classes=40))
        predictor.fit(prompts, lengths)
        scored = predictor.score(prompts)
        cols["score"] = scored.scores
        counts = np.bincount(_route_burst(make_router("rank"), cols, 4), minlength=4)
        assert counts.min() >= 15 and counts.max() <= 25, (kind, loss, counts)
        if kind == "class":
            cols["predicted_length"] = scored.predicted_lengths
            choice = _route_burst(make_router("least-work"), cols, 4)
            counts, longs = np.bincount(choice, minlength=4), np.bincount(choice[lengths > 1], minlength=4)
            assert counts.min() >= 15 and counts.max() <= 25 and longs.min() >= 8 and longs.max() <= 12, (counts, longs)
