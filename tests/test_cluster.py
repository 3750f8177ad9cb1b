"""Clusters: N replicas behind a router (ltrsched.sim.cluster).

One replica through the cluster path is bit-identical to the lone simulator; round-robin replicas equal
their request subsets simulated alone; every request finishes once, on one replica; a router sees each
replica's state as of the arrival instant.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.routers import Router, make_router
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster
from ltrsched.workloads import apply_arrivals, load_workload
from test_sim_invariants import RandomOrder, _check, workloads

WALL = ("wall_time_s", "speedup_vs_real_time")


def _same_run(lone, cluster):
    """Every request column, step-trace column and summary value (but wall-clock ones) is identical."""
    routed = cluster.requests["replica"].drop_nulls()
    assert routed.to_list() == [0] * len(routed)
    stop = lone.meta["config"]["stop_time"]  # arrivals from then on are not routed
    late = cluster.requests.filter(pl.col("arrival_time") >= (stop if stop is not None else float("inf"))).height
    assert cluster.requests["replica"].null_count() == late
    assert lone.requests.equals(cluster.requests.drop("replica"))
    if lone.steps is not None:
        assert lone.steps.equals(cluster.steps.drop("replica"))
    for key, value in lone.summary.items():
        if key not in WALL:
            assert cluster.summary[key] == value or (value != value and cluster.summary[key] != cluster.summary[key]), key


@pytest.fixture(scope="module")
def sharegpt_poisson():
    return apply_arrivals(load_workload("sharegpt", num_requests=240, seed=0), "poisson", rate=12.0, seed=0)


@pytest.mark.parametrize("policy", ["fcfs", "srtf", "ltr:tau=0.6,starve=200,quantum=10", "mlfq", "po"])
@pytest.mark.parametrize("config", [
    {},
    {"num_gpu_blocks": 300, "swap_space_gib": 0.25},
    {"num_gpu_blocks": 600, "semantics": "vllm-v1", "preemption": "recompute", "max_num_seqs": 32},
    {"stop_time": 9.0},
])
def test_one_replica_is_the_lone_simulator(sharegpt_poisson, policy, config):
    cfg = SimConfig(record_steps=True, **config)
    lone = simulate(sharegpt_poisson, make_policy(policy), cfg)
    cluster = simulate_cluster(sharegpt_poisson, make_policy(policy), cfg, replicas=1,
                               router=make_router("least-outstanding"))
    _same_run(lone, cluster)


@pytest.mark.parametrize("router", ["round-robin", "least-kv"])  # routed before the run / at each arrival
def test_one_replica_burst_and_gamma(router):
    base = load_workload("lmsys-like", num_requests=200, seed=0)
    for wl in (apply_arrivals(base, "burst"), apply_arrivals(base, "gamma", rate=8.0, cv=2.0, seed=0)):
        cfg = SimConfig(record_steps=True, num_gpu_blocks=400, preemption="recompute")
        _same_run(simulate(wl, make_policy("srtf"), cfg),
                  simulate_cluster(wl, make_policy("srtf"), cfg, replicas=1, router=make_router(router)))


class AllToFirst(Router):
    """Sends every request to replica 0; reads every replica's state first (and checks it adds up)."""

    name = "all-to-first-test"

    def __init__(self, reads_state: bool = True):
        self.reads_state = reads_state

    def prepare(self, requests, num_replicas):
        self.prompts = requests["prompt_tokens"]

    def route(self, request, now, replicas):
        if self.reads_state:
            for r in replicas:
                rows, gen = r.requests, r.generated_tokens
                assert len(gen) == len(rows) == r.outstanding_requests
                assert r.context_tokens == int(self.prompts[rows].sum() + gen.sum())
        return 0


@pytest.mark.parametrize("reads_state", [True, False])  # routed at each arrival (one by one) / before the run
@pytest.mark.parametrize("arrivals,policy,config", [
    ("poisson", "mlfq", {}),
    ("poisson", "ltr:tau=0.6,starve=200,quantum=10", {"num_gpu_blocks": 300, "swap_space_gib": 0.25}),
    ("poisson", "srtf", {"num_gpu_blocks": 400, "preemption": "recompute", "max_num_seqs": 32}),
    ("burst", "srtf", {"num_gpu_blocks": 400, "preemption": "recompute"}),
    ("gamma", "fcfs", {"stop_time": 12.0}),
])
def test_one_replica_of_many_serving_everything_is_the_lone_simulator(monkeypatch, sharegpt_poisson, reads_state,
                                                                       arrivals, policy, config):
    """Its table starts small and grows as requests come (from 2 rows here: many times, between any two steps,
    with one request waiting or a burst's): bit for bit the lone simulator's run; the others stay idle."""
    from ltrsched.sim import inbox

    monkeypatch.setattr(inbox, "MIN_CAPACITY", 2)
    wl = sharegpt_poisson
    if arrivals != "poisson":
        params = {"rate": 8.0, "cv": 2.0, "seed": 0} if arrivals == "gamma" else {}
        wl = apply_arrivals(load_workload("lmsys-like", num_requests=200, seed=0), arrivals, **params)
    cfg = SimConfig(record_steps=True, **config)
    lone = simulate(wl, make_policy(policy), cfg)
    cluster = simulate_cluster(wl, make_policy(policy), cfg, replicas=4, router=AllToFirst(reads_state))
    assert [r["num_routed"] for r in cluster.replicas[1:]] == [0, 0, 0]
    assert [r["steps"] for r in cluster.replicas[1:]] == [0, 0, 0]
    cluster.steps = cluster.steps.filter(pl.col("replica") == 0)
    for key in ("steps", "busy_time", "num_preemptions", "swapped_blocks", "peak_blocks_in_use"):
        assert cluster.summary[key] == cluster.replicas[0][key]
    _same_run(lone, cluster)


@pytest.mark.parametrize("router", ["round-robin", "least-outstanding"])
def test_replica_tables_hold_only_their_requests(monkeypatch, router):
    """Memory O(requests routed to each replica), not replicas x workload: each replica's table (and row list)
    has room for at most twice the requests it got (or a small minimum), far below the workload's."""
    from ltrsched.sim import cluster as cluster_module
    from ltrsched.sim.inbox import MIN_CAPACITY, Inbox

    inboxes = []

    class Recorded(Inbox):
        def __init__(self, *args):
            super().__init__(*args)
            inboxes.append(self)

    monkeypatch.setattr(cluster_module, "Inbox", Recorded)
    n, replicas = 1200, 200
    rng = np.random.default_rng(5)
    wl = make_workload(rng.integers(5, 100, n), rng.integers(1, 60, n), np.cumsum(rng.exponential(0.002, n)))
    result = simulate_cluster(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile()), replicas=replicas,
                              router=make_router(router))
    assert len(inboxes) == replicas and result.summary["num_finished"] == n
    assert sum(inbox.count for inbox in inboxes) == n
    for inbox in inboxes:
        for column in (inbox.table.arrival_time, inbox.table.state, inbox.table.finish_time, inbox.rows):
            assert len(column) <= max(MIN_CAPACITY, 2 * inbox.count)
        assert inbox.filled == inbox.count
    assert max(len(inbox.table.request_id) for inbox in inboxes) <= n // 20


@pytest.mark.parametrize("policy", ["fcfs", "srtf", "mlfq", "ltr", "ltr:starve=20,quantum=4"])
@pytest.mark.parametrize("spread", [False, True])
def test_round_robin_replicas_equal_their_subsets_alone(policy, spread):
    """Replica k of N round-robin replicas serves requests k, k+N, ...: exactly what a lone replica does
    with that subset (overlapping Poisson arrivals, or arrivals spread so each request runs alone)."""
    rng = np.random.default_rng(3)
    n, replicas = 90, 3
    prompts, outputs = rng.integers(5, 300, n), rng.integers(1, 200, n)
    arrivals = np.arange(n) * 20.0 if spread else np.cumsum(rng.exponential(0.05, n))
    wl = make_workload(prompts, outputs, arrivals, score=rng.normal(size=n))
    cfg = SimConfig(profile=LinearProfile(blocks=120), block_size=16, max_num_batched_tokens=256,
                    max_num_seqs=16, record_steps=True)
    cluster = simulate_cluster(wl, make_policy(policy), cfg, replicas=replicas, router=make_router("round-robin"))
    req = cluster.requests
    assert req["replica"].to_list() == [i % replicas for i in range(n)]
    for k in range(replicas):
        subset = wl.with_df(wl.df.filter(pl.int_range(pl.len()) % replicas == k))
        alone = simulate(subset, make_policy(policy), cfg)
        mine = req.filter(pl.col("replica") == k).drop("replica")
        assert alone.requests.equals(mine)
        assert alone.steps.equals(cluster.steps.filter(pl.col("replica") == k).drop("replica"))
        assert cluster.replicas[k]["steps"] == alone.summary["steps"]
        assert cluster.replicas[k]["latency_per_token_mean"] == alone.summary["latency_per_token_mean"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    wl=workloads,
    replicas=st.integers(1, 4),
    router=st.sampled_from(["round-robin", "random:seed=3", "least-outstanding", "least-kv", "least-kv:by=tokens",
                            "rank:tau=0.5", "least-work:tau=0.5"]),
    policy=st.sampled_from(["fcfs", "srtf", "random"]),
    blocks=st.integers(12, 60),
    preemption=st.sampled_from(["swap", "recompute"]),
)
def test_invariants_random_clusters(wl, replicas, router, policy, blocks, preemption):
    """Every request finishes exactly once, on one replica; each replica's steps keep every limit."""
    prompts, outputs, arrivals = wl
    workload = make_workload(prompts, outputs, arrivals)
    blocks = max(blocks, -(-max(p + o for p, o in zip(prompts, outputs)) // 4))
    config = SimConfig(profile=LinearProfile(blocks=blocks, kv_bytes_per_token=64), max_num_batched_tokens=64,
                       max_num_seqs=6, block_size=4, watermark=0.0, preemption=preemption, swap_space_gib=1e-4,
                       record_steps=True)
    pol = RandomOrder(seed=len(prompts)) if policy == "random" else make_policy(policy)
    result = simulate_cluster(workload, pol, config, replicas=replicas, router=make_router(router))
    req = result.requests
    assert req["replica"].null_count() == 0 and req["replica"].is_between(0, replicas - 1).all()
    assert sum(r["num_finished"] for r in result.replicas) == len(prompts) == result.summary["num_finished"]
    for k, rep in enumerate(result.replicas):
        mine = req.filter(pl.col("replica") == k)
        steps = result.steps.filter(pl.col("replica") == k)
        assert rep["num_routed"] == mine.height and rep["steps"] == steps.height
        assert int(steps["num_finished"].sum()) == mine.height
        if mine.height:
            # the lone simulator's invariants hold for each replica's own requests and steps
            sub = result.__class__(mine.drop("replica"), {"host_blocks": result.summary["host_blocks"]},
                                   steps.drop("replica"), {})
            _check(sub, workload, config, blocks)
            assert (steps["start"].diff().drop_nulls() > 0).all()  # a replica's steps never overlap
            assert (steps["start"].shift(-1) >= steps["start"] + steps["duration"]).drop_nulls().all()
    assert result.summary["steps"] == result.steps.height


class Recorder(Router):
    """Routes by least outstanding requests and records what each replica's view showed."""

    name = "recorder-test"

    def __init__(self):
        self.seen = []

    def prepare(self, requests, num_replicas):
        self.ids = requests["request_id"]
        self.seen = []

    def route(self, request, now, replicas):
        for r in replicas:
            rows = r.requests
            assert r.outstanding_requests == len(rows)
            assert 0 <= r.kv_blocks_in_use <= r.num_gpu_blocks
            gen = r.generated_tokens
            assert r.context_tokens >= int(gen.sum())
            self.seen.append((now, r.index, set(self.ids[rows].tolist()), dict(zip(self.ids[rows].tolist(), gen.tolist())),
                              r.kv_blocks_in_use))
        return min(replicas, key=lambda r: (r.outstanding_requests, r.index)).index


def test_router_sees_the_state_at_the_arrival_instant():
    """At each arrival, a replica's outstanding requests are exactly those routed to it before and not
    finished: finished after the instant, or at it (events of an instant come after its arrivals, so a
    step ending then shows the state it started from). Their token counts are below the final ones."""
    rng = np.random.default_rng(7)
    n = 160
    wl = make_workload(rng.integers(5, 200, n), rng.integers(1, 120, n), np.cumsum(rng.exponential(0.02, n)))
    cfg = SimConfig(profile=LinearProfile(blocks=90), block_size=16, max_num_batched_tokens=128, max_num_seqs=8,
                    preemption="recompute")
    rec = Recorder()
    result = simulate_cluster(wl, make_policy("srtf"), cfg, replicas=3, router=rec)
    req = result.requests
    ids = req["request_id"].to_list()
    arrival = dict(zip(ids, req["arrival_time"].to_list()))
    finish = dict(zip(ids, req["finish_time"].to_list()))
    replica = dict(zip(ids, req["replica"].to_list()))
    served = dict(zip(ids, req["served_output_tokens"].to_list()))
    nonempty = 0
    for now, k, seen, gen, blocks in rec.seen:
        mine = [i for i in ids if replica[i] == k and finish[i] >= now]
        before = {i for i in mine if arrival[i] < now}
        by_now = {i for i in mine if arrival[i] <= now}  # same-instant arrivals: those routed before this one
        assert before <= seen <= by_now
        assert all(0 <= gen[i] < served[i] for i in seen)
        nonempty += bool(seen)
        if not seen:
            assert blocks == 0
    assert nonempty > len(rec.seen) // 2  # the check had something to look at


def test_least_outstanding_spreads_a_burst():
    wl = make_workload([50] * 40, [30] * 40)
    result = simulate_cluster(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile()), replicas=4,
                              router=make_router("least-outstanding"))
    counts = result.requests["replica"].value_counts()["count"].to_list()
    assert sorted(counts) == [10, 10, 10, 10]


def test_random_router_is_seeded():
    wl = make_workload([20] * 50, [10] * 50, np.arange(50) * 0.01)
    cfg = SimConfig(profile=LinearProfile())

    def assignment(spec):
        return simulate_cluster(wl, make_policy("fcfs"), cfg, replicas=3, router=make_router(spec)).requests["replica"]

    assert assignment("random:seed=1").equals(assignment("random:seed=1"))
    assert not assignment("random:seed=1").equals(assignment("random:seed=2"))
    assert set(assignment("random:seed=1").to_list()) == {0, 1, 2}


@pytest.mark.parametrize("router", ["round-robin", "least-outstanding"])
def test_preemption_thrash_counts_the_workloads_requests(router):
    """One replica's thrash guard scales with the workload's requests (as the lone simulator's), not with the rows a
    replica's table happens to have room for (a fleet's replica: with those routed to it, tested below)."""
    rng = np.random.default_rng(1)
    n = 8
    wl = make_workload(rng.integers(60, 120, n), rng.integers(40, 60, n), rng.uniform(0, 0.1, n))
    cfg = SimConfig(profile=LinearProfile(blocks=11), max_num_batched_tokens=16, max_num_seqs=4, watermark=0.0,
                    preemption="recompute", semantics="vllm-v1")
    with pytest.raises(UserError, match=r"preemption thrash: 8,001 preemptions of 8 requests"):
        simulate_cluster(wl, RandomOrder(3, period=1), cfg, replicas=1, router=make_router(router))


def _creep_and_light(monkeypatch):
    """test_preemption_thrash_counts_the_workloads_requests's 8 thrashing requests (rows 0-7) and 8 of one token each
    arriving with them (rows 8-15: round-robin sends each replica one kind), the config, the guard's cap lowered to 2
    preemptions per request (for the test's time)."""
    from ltrsched.policies import batching

    monkeypatch.setattr(batching, "MAX_PREEMPTIONS_PER_REQUEST", 2)
    rng = np.random.default_rng(1)
    prompts, outputs, arrivals = rng.integers(60, 120, 8), rng.integers(40, 60, 8), rng.uniform(0, 0.1, 8)
    thrashing = make_workload(prompts, outputs, arrivals)
    both = make_workload(np.r_[prompts, [1] * 8], np.r_[outputs, [1] * 8], np.r_[arrivals, arrivals])
    cfg = SimConfig(profile=LinearProfile(blocks=11), max_num_batched_tokens=16, max_num_seqs=4, watermark=0.0,
                    preemption="recompute", semantics="vllm-v1")
    return thrashing, both, cfg


def test_a_thrashing_replica_in_a_fleet_stops_where_it_would_alone(monkeypatch):
    """Each replica's thrash guard scales by what the router sent it: replica 0 serves the lone run's 8 requests and
    stops with its error, word for word (it stopped at 33 preemptions 'of 16 requests', the fleet's: among N replicas a
    thrash ran about N times as long)."""
    thrashing, both, cfg = _creep_and_light(monkeypatch)
    with pytest.raises(UserError) as alone:
        simulate(thrashing, RandomOrder(3, period=1), cfg)
    assert str(alone.value).startswith("preemption thrash: 17 preemptions of 8 requests by step ")
    with pytest.raises(UserError) as fleet:
        simulate_cluster(both, RandomOrder(3, period=1), cfg, replicas=2, router=make_router("round-robin"))
    assert str(fleet.value) == str(alone.value)


def test_a_replica_routed_at_each_arrival_scales_its_thrash_guard_by_the_requests_sent_so_far(monkeypatch):
    """A router that reads the replicas' state routes at each arrival: the guard grows with each request sent."""
    import re

    _, both, cfg = _creep_and_light(monkeypatch)
    with pytest.raises(UserError) as fleet:
        simulate_cluster(both, RandomOrder(3, period=1), cfg, replicas=2, router=make_router("least-outstanding"))
    count, sent = map(int, re.match(r"preemption thrash: ([0-9]+) preemptions of ([0-9]+) requests", str(fleet.value))
                      .groups())
    assert count == 2 * sent + 1 and sent < 16  # (the whole workload's 16 before)


def test_a_thrash_guard_grown_request_by_request_is_the_guard_of_its_whole_workload(monkeypatch):
    """:meth:`ThrashGuard.add` (a cluster replica's guard): grown to 10 requests of 1,000 tokens, the waste rule looks
    and stops where the guard built for them does (the rule's first check is set from the tokens given at the start:
    none for a replica before the router sends it anything, and it never looked)."""
    from ltrsched.policies import batching
    from ltrsched.policies.batching import ThrashGuard

    monkeypatch.setattr(batching, "WASTE_MIN_TOKENS", 0)

    def stop(guard) -> tuple[int, str]:
        with pytest.raises(UserError) as err:
            for step in range(10_000):
                guard.preempted(1, 1, step, None, 10, lambda: 1, 100)
        return guard.num_preemptions, str(err.value)

    grown = ThrashGuard(0)
    for _ in range(10):
        grown.add(1, 100)
    assert stop(grown) == stop(ThrashGuard(10, 1_000)) and grown.num_preemptions == 10 * 1_000 // 100
    looked = ThrashGuard(1, 100)  # (after the rule's first look, each next check is one workload's tokens further)
    looked.preempted(1, 1, 0, None, 1, lambda: 10**9, 10 * 100)
    looked.add(9, 900)
    assert stop(looked)[0] == 2


def test_stop_time_leaves_late_requests_unrouted():
    wl = make_workload([20] * 30, [200] * 30, np.arange(30) * 0.5)
    result = simulate_cluster(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), stop_time=5.0),
                              replicas=2, router=make_router("round-robin"))
    req = result.requests
    assert req.filter(pl.col("arrival_time") >= 5.0)["replica"].null_count() == 20
    assert req.filter(pl.col("arrival_time") < 5.0)["replica"].null_count() == 0
    assert result.summary["num_finished"] < 30


class BadRouter(Router):
    name = "bad-test"

    def route(self, request, now, replicas):
        return len(replicas)


class Peeker(Router):
    """Declares that it reads no state, then reads it."""

    name = "peeker-test"
    reads_state = False

    def route(self, request, now, replicas):
        return min(replicas, key=lambda r: r.outstanding_requests).index


def test_stateless_routers_route_before_the_run():
    """round-robin and random never read the replicas' state: every request is routed before the run, and
    a router that says so but reads the state gets a one-line error."""
    assert not make_router("round-robin").reads_state and not make_router("random").reads_state
    assert make_router("least-outstanding").reads_state
    wl = make_workload([20] * 6, [10] * 6, np.arange(6) * 0.5)
    with pytest.raises(UserError, match="declares reads_state = False"):
        simulate_cluster(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile()), replicas=2, router=Peeker())


def test_bad_router_answer_and_missing_columns_are_user_errors():
    wl = make_workload([20] * 4, [10] * 4)
    cfg = SimConfig(profile=LinearProfile())
    with pytest.raises(UserError, match="expected a replica index in 0..1"):
        simulate_cluster(wl, make_policy("fcfs"), cfg, replicas=2, router=BadRouter())
    with pytest.raises(UserError, match="router 'rank' needs a 'score' column"):
        simulate_cluster(wl, make_policy("fcfs"), cfg, replicas=2, router=make_router("rank"))
    with pytest.raises(UserError, match="replicas must be an integer"):
        simulate_cluster(wl, make_policy("fcfs"), cfg, replicas=0)


# ---------------------------------------------------------------- commands
from cli_helpers import run_cli_fast  # noqa: E402
from test_cli_simulate import assert_one_line_error  # noqa: E402


@pytest.fixture
def workload_file(tmp_path):
    path = tmp_path / "wl.parquet"
    rng = np.random.default_rng(2)
    make_workload(rng.integers(5, 100, 30), rng.integers(1, 50, 30), np.sort(rng.uniform(0, 2, 30))).save(path)
    return path


def test_simulate_command_cluster(capsys, workload_file, tmp_path):
    out = tmp_path / "run"
    r = run_cli_fast(capsys, "simulate", "-w", str(workload_file), "--arrival", "replay", "--replicas", "2", "--router",
                             "least-outstanding", "--out", str(out), "--trace", str(tmp_path / "t.json"), "--cdf",
                             str(tmp_path / "cdf.png"))
    assert r.returncode == 0, r.stderr
    assert "2 replicas, router least-outstanding" in r.stdout
    req = pl.read_parquet(out / "requests.parquet")
    assert set(req["replica"].to_list()) == {0, 1}
    saved = __import__("json").loads((out / "summary.json").read_text())
    assert [s["replica"] for s in saved["replicas"]] == [0, 1]
    assert sum(s["num_finished"] for s in saved["replicas"]) == 30 == saved["summary"]["num_finished"]
    assert saved["meta"]["router"] == "least-outstanding" and saved["meta"]["replicas"] == 2
    assert (tmp_path / "t.json").is_file() and (tmp_path / "cdf.png").is_file() and (out / "steps.parquet").is_file()


@pytest.mark.parametrize("args, message", [
    (["--replicas", "0"], "--replicas must be >= 1"),
    (["--replicas", "4097"], "--replicas must be at most 4,096, got 4,097"),  # the simulator's message named no option
    (["--replicas", "2", "--router", "nosuch"], "unknown router 'nosuch'"),
    (["--replicas", "2", "--router", "rank"], "router 'rank' needs a 'score' column"),
    (["--replicas", "2", "--router", "least-work:tau=0.6,max_model_len=100"],
     "router 'least-work': max_model_len=100 is below request "),
    (["--replicas", "2", "--router", "least-work:tau=0.6,max_model_len=1"],
     "router 'least-work': max_model_len must be in 2..16,777,216 tokens, got 1"),
    (["--trace", "trace.txt"], "--trace must be a .json file"),
    (["--cdf", "cdf.txt"], "--cdf must end in .png"),
])
def test_simulate_command_cluster_errors(workload_file, tmp_path, capsys, args, message):
    r = run_cli_fast(capsys, "simulate", "-w", str(workload_file), *args, cwd=tmp_path)
    assert_one_line_error(r, message)
    assert not (tmp_path / "trace.txt").exists()


def test_sweep_over_replicas_and_routers(capsys, workload_file, tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'workloads = ["{workload_file}"]\npolicies = ["fcfs"]\narrival = "replay"\nrates = [20.0]\n'
                     'replicas = [1, 2]\nrouters = ["round-robin", "least-kv:by=tokens"]\n')
    r = run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out"), "--jobs", "1")
    assert r.returncode == 0, r.stderr
    table = pl.read_csv(tmp_path / "out" / "sweep.csv")
    assert table.select("replicas", "router").rows() == [(1, None), (2, "round-robin"), (2, "least-kv:by=tokens")]
    assert table["num_finished"].to_list() == [30, 30, 30]
    bad = tmp_path / "bad.toml"
    bad.write_text('policies = ["fcfs"]\nreplicas = [0]\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(bad), "--out",
                                       str(tmp_path / "o2")), "'replicas' must be >= 1")
    bad.write_text('policies = ["fcfs"]\nreplicas = [2]\nrouters = ["nosuch"]\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(bad), "--out",
                                       str(tmp_path / "o2")), "unknown router 'nosuch'")


def test_run_keys_of_lone_replicas_are_unchanged():
    """Runs cached before clusters existed keep their hashes: a lone replica's key has no cluster fields."""
    from ltrsched.experiments.runspec import RunSpec

    lone = RunSpec(experiment="sweep", setting="s", label="l", workload="sharegpt", policy="fcfs", profile="a100-llama3-8b")
    assert "replicas" not in lone.key() and "router" not in lone.key()
    two = RunSpec(experiment="sweep", setting="s", label="l", workload="sharegpt", policy="fcfs", profile="a100-llama3-8b",
                  replicas=2, router="round-robin")
    assert two.key()["replicas"] == 2 and two.run_hash() != lone.run_hash()


_GIVEN_IDS = [10, 5, 1000, 7, 64, 3]


@pytest.fixture
def csv_with_ids(tmp_path):
    """A length-only CSV trace whose ids are neither contiguous nor sorted."""
    path = tmp_path / "ids.csv"
    path.write_text("request_id,arrival_time,prompt_tokens,output_tokens\n" + "".join(
        f"{rid},{0.05 * i},{20 + 7 * i},{30 - 4 * i}\n" for i, rid in enumerate(_GIVEN_IDS)))
    return path


@pytest.mark.parametrize("args", [["-P", "ltr:tau=0.6"], ["-P", "mlfq", "--replicas", "2", "--router", "rank:tau=0.6"],
                                  ["--replicas", "3", "--router", "least-kv:by=tokens"]])
def test_simulate_results_carry_a_csv_traces_own_ids(capsys, csv_with_ids, tmp_path, args):
    """A CSV's request_id column was dropped: requests.parquet named the requests 0..5, not the user's ids."""
    r = run_cli_fast(capsys, "simulate", "-w", str(csv_with_ids), "--arrival", "replay", "-o", str(tmp_path / "run"),
                     *args)
    assert r.returncode == 0, r.stderr[-2000:]
    done = pl.read_parquet(tmp_path / "run" / "requests.parquet")
    assert sorted(done["request_id"].to_list()) == sorted(_GIVEN_IDS)
    assert dict(zip(done["request_id"], done["prompt_tokens"])) == {rid: 20 + 7 * i for i, rid in enumerate(_GIVEN_IDS)}
    assert done["finish_time"].is_not_nan().all()


def test_sweep_results_carry_a_csv_traces_own_ids(capsys, csv_with_ids, tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'workloads = ["{csv_with_ids}"]\npolicies = ["srtf"]\narrival = "poisson"\nrates = [8.0]\n'
                     'num_requests = 4\nreplicas = [1, 2]\nrouters = ["least-outstanding"]\n')
    r = run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out"), "--jobs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    runs = sorted((tmp_path / "out" / "runs").glob("*/requests.parquet"))
    assert len(runs) == 2
    for run in runs:
        ids = pl.read_parquet(run)["request_id"].to_list()
        assert len(ids) == 4 and set(ids) <= set(_GIVEN_IDS)


@pytest.mark.parametrize("seed", [0, 2])
def test_least_work_tau_balances_a_1_to_long_mix(seed):
    """least-work:tau=0.6 on 40 requests of 1 or 3,000 output tokens, one every 50 ms, 2 replicas: the noise model's
    unbounded lengths (a 3,000-token request predicted up to 2.2e8 tokens at seed 0) sent 34 (seed 0) and 32
    (seed 2) to one replica; bounded by what each request can generate, 20 each, 10 long ones each."""
    n = 40
    outputs = np.where(np.arange(n) % 2 == 0, 1, 3_000)
    wl = make_workload(np.full(n, 20), outputs, np.arange(n) * 0.05)
    result = simulate_cluster(wl, make_policy("ltr:tau=0.6"), SimConfig(profile=LinearProfile()), replicas=2,
                              router=make_router(f"least-work:tau=0.6,seed={seed}"))
    replica = result.requests["replica"].to_numpy()
    assert np.bincount(replica, minlength=2).min() >= 16
    assert np.bincount(replica[outputs > 1], minlength=2).min() >= 8


@pytest.mark.parametrize("router, counts", [("least-kv", [1, 1, 18]), ("least-kv:by=tokens", [7, 7, 6])])
def test_least_kv_by_blocks_does_not_see_a_queue_of_long_prompts(router, counts):
    """20 requests of 30,000-token prompts, 0.1 s apart, 3 replicas (the numbers the least-kv docstring and README
    give): by blocks, the replica whose prefill started last shows the fewest blocks and collects the queue (queued
    requests hold none); by tokens, the queued prompts count."""
    n = 20
    wl = make_workload(np.full(n, 30_000), 5 + np.arange(n), np.arange(n) * 0.1)
    result = simulate_cluster(wl, make_policy("fcfs"), SimConfig(max_model_len=32_768), replicas=3,
                              router=make_router(router))
    assert np.bincount(result.requests["replica"].to_numpy(), minlength=3).tolist() == counts


@pytest.mark.parametrize("router", ["rank:tau=0.6", "least-work:tau=0.6", "least-work:tau=0.6,max_model_len=8192"])
def test_one_replica_behind_a_predicting_router_is_the_lone_simulator(router):
    """--replicas 1 with a router that predicts: the lone simulator's run, bit for bit (the router always answers 0)."""
    rng = np.random.default_rng(4)
    n = 60
    wl = make_workload(rng.integers(5, 300, n), rng.integers(1, 80, n), np.cumsum(rng.exponential(0.02, n)))
    cfg = SimConfig(profile=LinearProfile(blocks=600), record_steps=True, max_model_len=8192)
    policy = "ltr:tau=0.6"
    _same_run(simulate(wl, make_policy(policy), cfg),
              simulate_cluster(wl, make_policy(policy), cfg, replicas=1, router=make_router(router)))
