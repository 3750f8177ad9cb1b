"""Policies that keep state from step to step (LTR's kept order, starvation prevention's due steps, MLFQ's
kept order) rank exactly as their stateless references, which recount every live request from the view's
columns each step (tests/reference_policies.py): in the simulator under memory pressure, swap and recompute,
vLLM V1 semantics, and with a scripted host that lists requests in any order, skips hooks, ranks a step twice
or jumps steps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import LinearProfile, make_workload
from ltrsched.policies import LiveView, RequestState, make_policy
from ltrsched.sim import SimConfig, simulate
from ltrsched.workloads import apply_arrivals, load_workload
from reference_policies import Lockstep


@pytest.fixture(autouse=True, scope="module")
def _srtf_keeps_its_order_from_two_live_requests():
    """SRTF keeps its order only from ``remaining_order._KEEP_MIN`` (4,096) live requests; these workloads are
    smaller, so its cases here lower the threshold to 2 to check the kept order (module scope: hypothesis's tests)."""
    from ltrsched.policies import remaining_order

    kept = remaining_order._KEEP_MIN
    remaining_order._KEEP_MIN = 2
    yield
    remaining_order._KEEP_MIN = kept

STATEFUL = [
    "ltr:tau=0.5", "oracle:tau=0.8", "ltr:tau=0.5,starve=20,quantum=3", "ltr:tau=0.7,starve=1,quantum=1",
    "fcfs:starve=10,quantum=2", "srtf:starve=5,quantum=4", "class:bucket=100,starve=8,quantum=2",
    "mlfq", "mlfq:quantum=0.01,threshold=1.5", "mlfq:quantum=0.005,threshold=1", "mlfq:quantum=0.01,promote=6",
    "mlfq:quantum=0.02,threshold=3,promote=1", "mlfq:starve=15,starve_quantum=2",
    "mlfq:quantum=0.01,promote=9,starve=4,starve_quantum=3", "po:tokens=3", "srtf", "class:bucket=100", "class",
]


@pytest.mark.parametrize("spec", STATEFUL)
@pytest.mark.parametrize("config", [
    dict(), dict(num_gpu_blocks=700), dict(num_gpu_blocks=600, preemption="recompute"),
    dict(num_gpu_blocks=800, preemption="recompute", semantics="vllm-v1", max_num_seqs=24),
], ids=["roomy", "swap", "recompute", "vllm-v1"])
def test_same_order_as_the_stateless_reference_in_the_simulator(spec, config):
    wl = apply_arrivals(load_workload("sharegpt", num_requests=150, seed=0), "poisson", rate=40.0, seed=1)
    policy = Lockstep(make_policy(spec))
    simulate(wl, policy, SimConfig(stop_time=60.0, **config))
    assert policy.steps > 100


workloads = st.integers(min_value=1, max_value=30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 120), min_size=n, max_size=n),
        st.lists(st.integers(1, 60), min_size=n, max_size=n),
        st.lists(st.floats(0, 1.0, allow_nan=False).map(lambda t: round(t, 1)), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.1, 0.5, 0.5, 0.9, float("nan")]), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wl=workloads, spec=st.sampled_from(["ltr", "ltr:starve=3,quantum=2", "mlfq:quantum=0.02", "po:tokens=2", "srtf",
                                           "class:bucket=20",
                                           "mlfq:quantum=0.02,promote=4", "mlfq:quantum=0.01,starve=3,starve_quantum=1"]),
       seqs=st.integers(1, 8), blocks=st.integers(12, 60), preemption=st.sampled_from(["swap", "recompute"]),
       semantics=st.sampled_from(["paper", "vllm-v1"]), shuffle=st.booleans())
def test_same_order_on_random_workloads(wl, spec, seqs, blocks, preemption, semantics, shuffle):
    """Ties in scores (and NaN scores), arrivals at equal times, rows out of arrival order (the simulator
    then does not vouch for its listing), tiny KV caches."""
    prompts, outputs, arrivals, scores = wl
    workload = make_workload(prompts, outputs, arrivals, score=scores)
    if shuffle:
        from ltrsched.workloads.schema import Workload

        workload = Workload(workload.df.reverse(), workload.name, workload.meta)
    inner = make_policy(spec)  # (po:tokens=2 serves 2 tokens more than each request's output: they hold KV too)
    longest = max(p + o for p, o in zip(prompts, outputs)) + inner.extra_output_tokens
    blocks = max(blocks, -(-longest // 4))
    config = SimConfig(profile=LinearProfile(blocks=blocks, kv_bytes_per_token=64), max_num_batched_tokens=64,
                       max_num_seqs=seqs, block_size=4, watermark=0.0, semantics=semantics,
                       preemption="recompute" if semantics == "vllm-v1" else preemption,
                       stop_time=15.0)  # (a policy may thrash a tiny cache for a long time)
    policy = Lockstep(inner)
    simulate(workload, policy, config)
    assert policy.steps > 0


class ScriptedHost:
    """A host driven by a random script: it lists live requests in arrival order or shuffled, forms batches
    that are a prefix of the order or not, and may skip ``on_step``, rank a step twice or number steps with
    gaps. Its columns follow their definitions (idle_steps counts the steps a request was left out)."""

    def __init__(self, rng: np.random.Generator, n: int, skip_steps: bool = True, ids_by_arrival: bool = False,
                 by_arrival: float = 0.7, first_id: int = 1):
        self.rng = rng
        self.skip_steps = skip_steps
        self.by_arrival = by_arrival  # the share of steps that list requests by arrival
        self.arrival = np.round(rng.uniform(0, 3, n), 1)
        self.rid = rng.permutation(n) * 3 + first_id  # ids neither dense nor in arrival order
        if ids_by_arrival:  # (still not dense) ascending in arrival order, as the simulator's usually are
            self.rid[np.argsort(self.arrival, kind="stable")] = np.arange(n) * 3 + first_id
        self.score = np.where(rng.random(n) < 0.2, np.nan, np.round(rng.random(n), 1))
        self.output = rng.integers(1, 40, n)
        self.generated = np.zeros(n, dtype=np.int64)
        self.run_time = np.zeros(n)
        self.idle = np.zeros(n, dtype=np.int64)  # steps left out since it last ran (or arrived)
        self.live: list[int] = []
        self.waiting = list(np.lexsort((self.rid, self.arrival)))  # not yet arrived, by arrival
        self.step = 0

    def columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "request_id": self.rid[rows], "arrival_time": self.arrival[rows], "prompt_tokens": np.full(len(rows), 8),
            "output_tokens": self.output[rows], "generated_tokens": self.generated[rows],
            "computed_tokens": self.generated[rows], "state": np.full(len(rows), int(RequestState.WAITING), np.int8),
            "idle_steps": self.idle[rows].copy(), "run_time": self.run_time[rows].copy(),
            "score": self.score[rows], "po_estimate": np.full(len(rows), np.nan),
            "predicted_length": np.full(len(rows), np.nan),
        }

    def run(self, policy, steps: int) -> None:
        rng = self.rng
        policy.prepare({"request_id": self.rid, "arrival_time": self.arrival, "prompt_tokens": np.full(len(self.rid), 8),
                        "output_tokens": self.output, "score": self.score,
                        "po_estimate": np.full(len(self.rid), np.nan), "predicted_length": np.full(len(self.rid), np.nan)})
        for _ in range(steps):
            k = int(rng.integers(0, 4)) if self.waiting else 0
            new, self.waiting = self.waiting[:k], self.waiting[k:]
            if new:
                self.idle[new] = 0
                self.live += new
                policy.on_arrival(self.rid[new], float(self.step))
            if not self.live:
                if not self.waiting:
                    return
                continue
            listed = rng.random() < self.by_arrival
            rows = np.array(sorted(self.live, key=lambda i: (self.arrival[i], self.rid[i])) if listed
                            else rng.permutation(self.live), dtype=np.int64)
            view = LiveView(self.columns(rows), None, now=float(self.step), step=self.step, arrival_ordered=listed)
            order = policy.rank(view)
            if rng.random() < 0.05:  # rank the same step again (no on_step in between)
                order = policy.rank(view)
            size = int(rng.integers(1, len(rows) + 1))
            if rng.random() < 0.8:
                chosen = order[:size]
            else:
                chosen = rng.choice(len(rows), size=size, replace=False)
            scheduled = np.zeros(len(rows), dtype=bool)
            scheduled[chosen] = True
            ran = rows[scheduled]
            dt = float(rng.choice([0.004, 0.01, 0.03]))
            self.run_time[ran] += dt
            self.generated[ran] += 1
            self.idle[rows[~scheduled]] += 1
            self.idle[ran] = 0
            if rng.random() < 0.95 or not self.skip_steps:  # (a host that skips on_step breaks the contract)
                policy.on_step(view, scheduled, dt)
            done = ran[self.generated[ran] >= self.output[ran]]
            if len(done):
                self.live = [i for i in self.live if i not in set(done.tolist())]
                policy.on_finish(self.rid[done], float(self.step))
            self.step += 1 if rng.random() < 0.97 else int(rng.integers(2, 5))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("spec", ["ltr", "ltr:starve=4,quantum=2", "srtf:starve=2,quantum=1", "srtf", "class:bucket=30",
                                  "mlfq:quantum=0.02",
                                  "mlfq:quantum=0.01,threshold=1.5,promote=5",
                                  "mlfq:quantum=0.02,starve=3,starve_quantum=2", "po:tokens=3",
                                  "po:tokens=1,tau=1"])
def test_same_order_under_a_scripted_host(spec, seed):
    policy = Lockstep(make_policy(spec))
    # skipping on_step tests MLFQ's fallback; starvation prevention counts quantum steps from idle_steps
    # instead (0 exactly when a request ran the step before), which a host that skips on_step still keeps
    ScriptedHost(np.random.default_rng(seed), 60, skip_steps="starve" not in spec).run(policy, 400)
    assert policy.steps > 50


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("spec", ["ltr:starve=4,quantum=2", "po:tokens=3"])
def test_same_order_under_a_scripted_host_with_ids_in_the_millions(spec, seed):
    """A long-lived server's ids: the id -> position table (``LiveIndex``) holds a window from the lowest id listed."""
    policy = Lockstep(make_policy(spec))
    ScriptedHost(np.random.default_rng(seed), 60, skip_steps=False, first_id=7_000_000).run(policy, 400)
    assert policy.steps > 50


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("by_arrival", [1.0, 0.97])
def test_same_order_under_a_scripted_host_listing_ids_by_arrival(seed, by_arrival):
    """Ids that ascend in arrival order let starvation prevention around LTR keep its promoted-first order itself
    (``FrontOrder``) while the host lists by arrival and nobody arrives: it must follow finishes (several at a
    step), steps ranked twice or skipped, batches that are no prefix of the order, and give up at a listing that
    is not by arrival or a newcomer."""
    policy = make_policy("ltr:starve=4,quantum=2")
    inner_ranks = _count_inner_ranks(policy)
    lockstep = Lockstep(policy)
    host = ScriptedHost(np.random.default_rng(seed), 60, skip_steps=False, ids_by_arrival=True, by_arrival=by_arrival)
    host.run(lockstep, 400)
    assert lockstep.steps > 50
    if by_arrival == 1.0:  # the kept order took over at some steps (from the first listing change on which
        # something is promoted: with few finishes that can be late in the run)
        assert len(inner_ranks) < lockstep.steps, (len(inner_ranks), lockstep.steps)


def _count_inner_ranks(policy) -> list:
    """The steps at which the policy a starvation wrapper wraps is ranked (filled as they happen)."""
    steps: list = []
    rank = policy.inner.rank
    policy.inner.rank = lambda view: steps.append(view.step) or rank(view)  # (an instance attribute)
    return steps


@pytest.mark.parametrize("config", [
    dict(max_num_seqs=32), dict(num_gpu_blocks=700), dict(num_gpu_blocks=600, preemption="recompute"),
    dict(num_gpu_blocks=800, preemption="recompute", semantics="vllm-v1", max_num_seqs=24),
], ids=["seqs", "swap", "recompute", "vllm-v1"])
def test_starvation_prevention_keeps_ltrs_promoted_first_order_in_a_burst(config):
    """With nobody arriving after the first step, starvation prevention around LTR keeps the promoted-first order
    itself and ranks LTR only while nothing is promoted (before: every step, then the order rebuilt from LTR's:
    two passes over the live requests on a step with a finish); orders still the stateless reference's."""
    wl = apply_arrivals(load_workload("sharegpt", num_requests=300, seed=0), "burst")
    policy = make_policy("ltr:tau=0.5,starve=8,quantum=3")
    inner_ranks = _count_inner_ranks(policy)
    lockstep = Lockstep(policy)
    simulate(wl, lockstep, SimConfig(**config))
    assert lockstep.steps > 300 and lockstep.vouched == lockstep.steps
    assert len(inner_ranks) < 0.5 * lockstep.steps, (len(inner_ranks), lockstep.steps)


@pytest.mark.parametrize("spec", ["ltr:tau=0.5,starve=100000,quantum=3", "ltr:tau=0.5,starve=40,quantum=3"])
def test_starvation_prevention_keeps_ltrs_order_while_nothing_is_promoted_in_a_burst(spec):
    """With nobody arriving after the first step, starvation prevention around LTR keeps LTR's order itself also
    while nothing is promoted (before: LTR was ranked on every such step, renumbering its own kept order after
    each finish), and compacts it as requests leave instead of starting again from LTR's; orders still the
    stateless reference's."""
    wl = apply_arrivals(load_workload("sharegpt", num_requests=300, seed=0), "burst")
    policy = make_policy(spec)
    inner_ranks = _count_inner_ranks(policy)
    lockstep = Lockstep(policy)
    simulate(wl, lockstep, SimConfig(max_num_seqs=32))
    assert lockstep.steps > 300 and lockstep.vouched == lockstep.steps
    # ranked at the first steps, and again only after a step with more finishes than the kept order follows
    assert len(inner_ranks) < 0.05 * lockstep.steps, (len(inner_ranks), lockstep.steps)


def _arrival_view(ids: np.ndarray, step: int) -> LiveView:
    """A view of live requests ``ids`` that arrived in id order (arrival time = id [s])."""
    return LiveView({"request_id": ids, "arrival_time": ids.astype(float)}, None, now=0.0, step=step,
                    arrival_ordered=True)


def _front_first(ids: np.ndarray, front_ids: np.ndarray, keys: np.ndarray) -> list[int]:
    """The positions among the live ``ids`` (ascending) of ``front_ids``, then of the others by ``keys`` (stable)."""
    rest = ids[np.isin(ids, front_ids, invert=True)]
    return np.concatenate((ids.searchsorted(front_ids), ids.searchsorted(rest[np.argsort(keys[rest], kind="stable")]))).tolist()


def test_front_order_compacts_its_base_listing_as_requests_leave():
    """Once a tenth of the base listing has left, the kept order makes the live requests its base listing (in the
    same order) instead of giving up (before: nothing kept, the wrapper started again from the inner order)."""
    from ltrsched.policies.fixed_order import FixedKeyOrder
    from ltrsched.policies.front_order import FrontOrder

    rng = np.random.default_rng(3)
    n = 40
    keys = rng.random(n)

    ids = np.arange(n)
    first = _arrival_view(ids, 0)
    order = FixedKeyOrder().order(first, lambda view: keys[view.request_id])
    front = FrontOrder()
    assert front.start(first, order, np.array([7, 2]))
    front_ids = ids[[7, 2]]
    for step, gone in enumerate(rng.permutation([i for i in range(n) if i not in (7, 2)])[:30], 1):
        front.departed(np.array([gone]))
        ids = ids[ids != gone]
        assert front.follow(_arrival_view(ids, step)), step
        assert front.order(front.positions(front_ids, True)).tolist() == _front_first(ids, front_ids, keys), step
    assert len(front._ids) < 0.8 * n  # (compacted)


def test_front_order_compacts_below_the_same_count_of_live_requests():
    """The kept order compacts below a count fixed when its base listing is made (its share's ceiling), the same
    live counts as comparing with the float share at every step."""
    from ltrsched.policies.front_order import _MIN_LIVE_SHARE, _compact_below

    for n in range(1, 3000):
        below = _compact_below(n)
        assert below - 1 < _MIN_LIVE_SHARE * n <= below, n


def test_front_order_follows_many_finishes_at_a_step():
    """Several finishes at a step (up to 64, in any order, a request at the front among them) are followed in scalars,
    one slice subtraction each (before: past 8 the kept order gave up and the wrapper started again from the inner
    order); a finish announced twice, or of a request that left before or was never listed, still gives up."""
    from ltrsched.policies.fixed_order import FixedKeyOrder
    from ltrsched.policies.front_order import FrontOrder

    rng = np.random.default_rng(5)
    n = 300
    keys = rng.random(n)

    ids = np.arange(n)
    first = _arrival_view(ids, 0)
    order = FixedKeyOrder().order(first, lambda view: keys[view.request_id])
    front = FrontOrder()
    front_ids = np.array([40, 7])
    assert front.start(first, order, front_ids)
    for step, d in enumerate((12, 1, 30, 5), 1):
        gone = rng.choice(ids, d, replace=False)
        front.departed(gone)
        ids = ids[np.isin(ids, gone, invert=True)]
        front_ids = front_ids[np.isin(front_ids, gone, invert=True)]
        assert front.follow(_arrival_view(ids, step)), step
        assert front.order(front.positions(front_ids, True)).tolist() == _front_first(ids, front_ids, keys), step
    left = np.setdiff1d(np.arange(n), ids)[0]
    for bad in ([ids[3], ids[3]], [ids[5], left], [ids[8], 10_000]):  # twice, left before, never listed
        view = _arrival_view(ids, 9)
        assert front.start(view, FixedKeyOrder().order(view, lambda view: keys[view.request_id]), front_ids[:0])
        front.departed(np.array(bad))
        assert not front.follow(_arrival_view(ids[2:], 10)) and not front.active


def test_live_view_at_reads_the_positions_only():
    full = np.arange(10.0) * 2
    index = np.array([7, 3, 5, 1])
    view = LiveView({"run_time": full, "idle_steps": lambda idx: idx + 100}, index, now=0.0, step=0)
    assert view.at("run_time", np.array([2, 0])).tolist() == [10.0, 14.0]
    assert view.at("idle_steps", np.array([1])).tolist() == [103]
    assert "run_time" not in view._cache  # nothing gathered for every live request
    view.column("run_time")
    assert view.at("run_time", np.array([3])).tolist() == [2.0]
    with pytest.raises(AttributeError):
        view.at("nope", np.array([0]))


@pytest.mark.parametrize("spec", ["ltr:tau=0.5,starve=6,quantum=2", "mlfq:quantum=0.01,promote=5", "ltr:tau=0.5", "srtf"])
@pytest.mark.parametrize("router", ["round-robin", "least-outstanding", "rank:tau=0.5"])
def test_same_order_as_the_stateless_reference_in_a_cluster(spec, router):
    """Each replica ranks with its own copy of the policy (its own arrivals, finishes and steps)."""
    from ltrsched.routers import make_router
    from ltrsched.sim.cluster import simulate_cluster

    wl = apply_arrivals(load_workload("sharegpt", num_requests=200, seed=0), "poisson", rate=60.0, seed=2)
    policy = Lockstep(make_policy(spec))
    result = simulate_cluster(wl, policy, SimConfig(num_gpu_blocks=500, stop_time=30.0), replicas=3,
                              router=make_router(router))
    assert result.summary["num_preemptions"] > 0  # (the case exercises preemption)
    # the copies ranked (the object passed in is replica 0's)
    assert policy.steps > 50


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
@pytest.mark.parametrize("spec", ["ltr:tau=0.5,starve=5,quantum=2", "mlfq:quantum=0.02", "mlfq:quantum=0.01,promote=4"])
def test_same_order_as_the_stateless_reference_in_the_engine(spec):
    """The engine adapter lists requests by slot without vouching for arrival order and announces one arrival at
    a time; aborts from outside remove requests that ran and requests that never did (on_finish without a
    step)."""
    from vllm.v1.request import RequestStatus

    from ltrsched.engine.emulate import EngineConfig, emulate, emulated_driver

    rng = np.random.default_rng(7)
    n = 40
    workload = make_workload(rng.integers(1, 90, n), rng.integers(1, 40, n), np.sort(rng.exponential(0.02, n).cumsum()))
    policy = Lockstep(make_policy(spec))
    result = emulate(workload, policy, LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=59).step_time,
                     EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=40, max_num_seqs=6, max_resident_seqs=24))
    assert policy.steps > 50 and result.summary["num_preemptions"] > 0

    # aborts mid-run: of requests that ran and of requests still waiting (on_finish without a step)
    from ltrsched.engine.replay import request_infos

    policy = Lockstep(make_policy(spec))
    profile = LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=59)
    driver = emulated_driver(EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=40, max_num_seqs=4),
                             profile.step_time)
    policy.prepare(workload.policy_columns(0))
    driver.begin(policy)
    for info in request_infos(workload, 0)[:20]:
        driver.add(info)
    driver.start()
    aborted = 0
    while driver.has_unfinished():
        driver.step()
        if policy.steps % 7 == 3:
            table = driver.scheduler.table
            live = table.request_id[table.live]
            if len(live) > 2:
                ran = table.generated_tokens[table.live] > 0
                pick = [str(live[ran][0])] if ran.any() else []
                pick += [str(live[~ran][-1])] if (~ran).any() else []
                driver.scheduler.finish_requests(pick, RequestStatus.FINISHED_ABORTED)
                aborted += len(pick)
    assert aborted >= 4 and policy.steps > 20


@pytest.mark.parametrize("config", [dict(), dict(num_gpu_blocks=200, preemption="recompute")],
                         ids=["roomy", "recompute"])
def test_po_keeps_its_orders_in_a_burst_instead_of_sorting_every_live_request_each_step(monkeypatch, config):
    """PO sorted every live request at every step (``view.order_by(~phase, estimate)``), ~16 steps per request: a
    run over a large live set was quadratic (100,000 one-token requests at once: 56.8 s; now 14.6 s). Its two keys
    are fixed per request, so it now keeps both orders and splits them by phase: a few sorts per run, the same order
    at every step as the old formula (``Lockstep`` against ``RefPO``)."""
    sorts = []
    order_by = LiveView.order_by
    monkeypatch.setattr(LiveView, "order_by", lambda view, *keys: sorts.append(len(view)) or order_by(view, *keys))
    policy = make_policy("po:tokens=3")
    wl = make_workload([8] * 600, list(np.random.default_rng(3).integers(1, 6, 600)))
    simulate(wl, policy, SimConfig(max_num_seqs=16, **config))
    assert len(sorts) <= 3, sorts[:20]
    monkeypatch.undo()
    lockstep = Lockstep(make_policy("po:tokens=3"))
    simulate(wl, lockstep, SimConfig(max_num_seqs=16, **config))
    assert lockstep.steps > 100 and lockstep.vouched == lockstep.steps


def test_live_index_trusts_the_ascending_ids_the_kept_order_proved(monkeypatch):
    """LTR's kept order proves that a listing which lost a request still lists ids in ascending order; the
    LiveIndex a starvation wrapper asks for positions in that view then binary-searches without a pass to check."""
    from ltrsched.policies import tracking
    from ltrsched.policies.fixed_order import FixedKeyOrder

    keys = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.5])

    def key(view: LiveView) -> np.ndarray:
        return keys[view.request_id]

    kept = FixedKeyOrder()
    kept.order(_arrival_view(np.arange(6), 0), key)
    kept.departed(np.array([2]))
    second = _arrival_view(np.array([0, 1, 3, 4, 5]), 1)
    assert kept.order(second, key).tolist() == [4, 1, 2, 3, 0]
    checked = []
    monkeypatch.setattr(tracking, "is_ascending", lambda ids: checked.append(ids) or True)
    index = tracking.LiveIndex.of(second, None)
    assert index.positions(np.array([3, 5])).tolist() == [2, 4]
    assert not checked


def test_live_index_memory_stays_bounded_by_the_listing_under_ids_in_the_millions():
    """A long-lived server lists its requests by ids that grow for ever, in any order: the id -> position table
    grew to the largest id listed (8 bytes per request ever served: ~40 MB by id 5 million, ~24 MB for one listing
    of two requests 3 million ids apart). Now it holds a window of the listed ids (or, for sparse ids, their sorted
    copy), and every position is still right: against a dict, for listed ids, unlisted ones, and ids far outside."""
    import tracemalloc

    from ltrsched.policies.tracking import LiveIndex

    rng = np.random.default_rng(7)
    index = LiveIndex()
    tracemalloc.start()
    try:
        listings = [rng.permutation(np.arange(k * 50_000, k * 50_000 + 200)) for k in range(100)]  # up to id 5 million
        listings += [np.array([3_000_000, 0]), rng.permutation(np.arange(5, 900)), np.array([9, 2_000_000, 17])]
        for listing in listings:
            index._follow(listing)
            assert not index.ascending
            where = {int(i): k for k, i in enumerate(listing)}
            asked = np.concatenate((listing, rng.integers(0, 5_100_000, 50), [0, 1, 4_999_999, 10**12]))
            assert index.positions(asked).tolist() == [where.get(int(i), -1) for i in asked]
            if len(listing):
                assert index.positions(listing[::-1], listed=True).tolist() == list(range(len(listing)))[::-1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak


def test_front_order_follows_finishes_and_moves_and_gives_up_on_a_listing_it_cannot_explain():
    """The kept promoted-first order (``FrontOrder``): a finish renumbers the requests listed after it, moves to and
    from the front keep the others in the inner order, and a finish of a request it never listed (or a view of
    another size) leaves nothing kept: the wrapper then starts again from the inner order."""
    from ltrsched.policies.fixed_order import FixedKeyOrder
    from ltrsched.policies.front_order import FrontOrder

    keys = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.5])

    first = _arrival_view(np.arange(6), 0)
    order = FixedKeyOrder().order(first, lambda view: keys[view.request_id])
    assert order.tolist() == [5, 1, 3, 2, 4, 0]
    front = FrontOrder()
    assert front.start(first, order, np.array([4]))
    assert front.order(np.array([4])).tolist() == [4, 5, 1, 3, 2, 0]
    front.departed(np.array([2]))
    assert front.follow(_arrival_view(np.array([0, 1, 3, 4, 5]), 1))
    assert front.positions(np.array([4]), True).tolist() == [3]
    front.move(np.array([4]), False)
    front.move(np.array([0]), True)
    assert front.order(np.array([0])).tolist() == [0, 4, 1, 2, 3]
    # positions of requests that are not at the front read past the live ones: no order, nothing kept
    assert front.order(front.positions(np.array([1]), True)) is None and not front.active
    assert front.start(first, order, np.array([4]))
    front.departed(np.array([7]))
    assert not front.follow(_arrival_view(np.array([0, 1, 2, 3, 4]), 2)) and not front.active
    assert front.start(first, order, np.array([4]))
    assert not front.follow(_arrival_view(np.arange(5), 2)) and not front.active


def test_front_order_builds_a_step_of_moves_alone_without_reading_positions_again():
    """A step whose only change is a move to or from the front (a promotion, a return) builds the kept order from the
    positions now in base order gathered after the last finish, by the rest's flags (one compress): no gather over the
    base listing's positions now and no comparison of them (before: both at every changed order, and a move wrote
    the table). A finish renumbers the positions, and the next order gathers them again."""
    from ltrsched.policies.fixed_order import FixedKeyOrder
    from ltrsched.policies.front_order import FrontOrder

    class Untouchable(np.ndarray):
        def __getitem__(self, key):
            raise AssertionError("read the positions now again")

        def __setitem__(self, key, value):
            raise AssertionError("wrote the positions now")

    keys = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.5])
    first = _arrival_view(np.arange(6), 0)
    front = FrontOrder()
    assert front.start(first, FixedKeyOrder().order(first, lambda view: keys[view.request_id]), np.array([4]))
    front.departed(np.array([2]))
    assert front.follow(_arrival_view(np.array([0, 1, 3, 4, 5]), 1))
    assert front.order(np.array([3])).tolist() == [3, 4, 1, 2, 0]
    now = front._now
    front._now = now.view(Untouchable)
    front.move(np.array([4]), False)
    front.move(np.array([0]), True)
    assert front.follow(_arrival_view(np.array([0, 1, 3, 4, 5]), 2))
    assert front.order(np.array([0])).tolist() == [0, 4, 1, 2, 3]
    front.move(np.array([0]), False)
    assert front.order(np.array([], dtype=np.intp)).tolist() == [4, 1, 2, 3, 0]
    front._now = now
    front.departed(np.array([5]))
    assert front.follow(_arrival_view(np.array([0, 1, 3, 4]), 3))
    assert front.order(np.array([], dtype=np.intp)).tolist() == [1, 2, 3, 0]


def test_mlfq_ranks_a_lone_request_without_reading_its_columns():
    """One live request (a burst's tail runs alone for thousands of steps) leads whatever its level: MLFQ ranks it
    without reading a column (before: every live request's run time and level, a sort and a count per level), and
    the next step with company sorts again, as the stateless reference does."""
    from reference_policies import RefMLFQ

    def refuse(index):
        raise AssertionError("read a column for a lone request")

    policy, ref = make_policy("mlfq:quantum=0.01"), RefMLFQ(0.01)
    policy.prepare({}), ref.prepare({})
    run_time = np.array([0.0, 0.05, 0.0])
    for p in (policy, ref):
        p.on_arrival(np.array([0, 1, 2]), 0.0)
    lone = LiveView({"request_id": np.array([1]), "run_time": refuse, "idle_steps": refuse}, None, 0.0, 0, True)
    order = policy.rank(lone)
    assert order.tolist() == [0] and order is lone._ranked and not order.flags.writeable
    for p in (policy, ref):
        p.on_step(lone, np.array([True]), 0.01)
    # company again (the scripted host lists two requests): the order is the reference's
    for step, ids in ((1, [0, 1, 2]), (2, [1, 2]), (3, [2])):
        ids = np.array(ids)
        view = LiveView({"request_id": ids, "run_time": run_time[ids], "idle_steps": np.zeros(len(ids), np.int64),
                         "arrival_time": ids.astype(float)}, None, 0.0, step, True)
        got = policy.rank(view)
        assert got.tolist() == ref.rank(view).tolist()
        ran = np.zeros(len(ids), bool)
        ran[got[0]] = True
        for p in (policy, ref):
            p.on_step(view, ran, 0.01)
        run_time[ids[got[0]]] += 0.01


def test_mlfq_follows_a_listing_by_arrival_without_reading_every_request_id():
    """Listed by arrival, the hooks tell MLFQ who is listed where (hosts announce every arrival and finish): it
    follows a step where nothing changed, one with a finish and one with an arrival without reading the ids of every
    live request (before: the whole column gathered and compared with the last view's on every step, ~70 us of a
    step on the CPU engine's cold caches), and a view of another length with nothing announced still makes it sort.
    Orders are the stateless reference's."""
    from reference_policies import RefMLFQ

    rid = np.array([3, 5, 8, 9, 12, 14, 20])  # by arrival
    run_time = np.zeros(len(rid))
    reads = []  # the index of each read of the request_id column (None: the host's whole array)

    def ids_at(index):
        reads.append(index)
        return rid[index]

    def view_of(rows, step):
        rows = np.array(rows)
        return LiveView({"request_id": ids_at, "run_time": run_time, "idle_steps": lambda i: np.zeros(len(i), np.int64),
                         "arrival_time": lambda i: i.astype(float)}, rows, 0.0, step, True)

    policy, ref = make_policy("mlfq:quantum=0.01"), RefMLFQ(0.01)
    policy.prepare({}), ref.prepare({})
    for p in (policy, ref):
        p.on_arrival(rid[:6], 0.0)
    live, last_ran = list(range(6)), []
    # (step, what happens before it, whether the kept order is followed)
    script = [(0, None, False), (1, None, True), (2, None, True), (3, "finish", True), (4, "arrive", True),
              (5, "leave unannounced", False)]  # (another length with nothing announced: a sort)
    for step, event, followed in script:
        if event == "finish":  # a request that ran in the last step
            live.remove(last_ran[0])
            for p in (policy, ref):
                p.on_finish(rid[last_ran[:1]], 0.0)
        elif event == "arrive":
            live.append(6)
            for p in (policy, ref):
                p.on_arrival(rid[6:], 0.0)
        elif event:
            live.pop()
        reads.clear()
        view = view_of(live, step)
        got = policy.rank(view)
        ran = np.zeros(len(live), bool)
        ran[got[:3]] = True
        policy.on_step(view, ran, 0.006)
        whole = [i for i in reads if i is None or len(i) == len(live)]
        assert bool(whole) != followed, (step, reads)
        ref_view = view_of(live, step)
        assert got.tolist() == ref.rank(ref_view).tolist(), step
        ref.on_step(ref_view, ran, 0.006)
        last_ran = np.array(live)[ran].tolist()
        run_time[last_ran] += 0.006


@settings(max_examples=300, deadline=None)
@given(levels=st.lists(st.integers(0, 32), min_size=0, max_size=60), n=st.integers(1, 5000))
def test_mlfq_counts_levels_from_its_sorted_keys_as_a_bincount(levels, n):
    """MLFQ reads the batch's requests per level from its sorted (level, position) keys (first and last level,
    a binary search for each level's start beyond two) instead of a bincount: the same counts."""
    from ltrsched.policies.mlfq import _level_counts

    levels = np.array(levels, dtype=np.int64)
    shift = n.bit_length()
    positions = np.random.default_rng(len(levels)).permutation(max(n, len(levels)))[: len(levels)] % (1 << shift)
    packed = np.sort((levels << shift) | positions)
    want = np.bincount(levels).tolist() if len(levels) else []
    assert _level_counts(packed, shift) == want


class _CountingBounds(np.ndarray):
    """MLFQ's level bounds, counting the run times binary-searched among them (``searched[0]``)."""

    searched = [0]

    def searchsorted(self, v, side="left", sorter=None):
        self.searched[0] += np.size(v)
        return np.asarray(self).searchsorted(v, side=side, sorter=sorter)


@pytest.mark.parametrize("spec,max_share", [
    ("mlfq", 0.1), ("mlfq:quantum=0.01,threshold=1.5", 0.1),
    ("mlfq:quantum=0.002,threshold=1", None),  # several levels down at each step
    ("mlfq:quantum=0.01,promote=40", None),
])
@pytest.mark.parametrize("config", [dict(), dict(num_gpu_blocks=700), dict(max_num_seqs=32)],
                         ids=["roomy", "swap", "seqs"])
def test_mlfq_relevels_its_batch_by_one_comparison_per_level_in_a_burst(spec, max_share, config):
    """In a burst (demotions at most steps, the batch the head of the kept order) MLFQ compares the batch's run
    times with its levels' bounds and binary-searches only those of the members that moved down (before: every
    member's, every step); it lists a level's members by position with a sort only where the kept order did not,
    and keeps the same order while nothing moved. Orders are still the stateless reference's."""
    wl = apply_arrivals(load_workload("sharegpt", num_requests=300, seed=0), "burst")
    policy = make_policy(spec)
    policy._bounds = policy._bounds.view(_CountingBounds)
    _CountingBounds.searched[0] = 0
    members = [0]
    on_step = policy.on_step
    policy.on_step = lambda view, scheduled, dt: members.__setitem__(0, members[0] + int(scheduled.sum())) or on_step(
        view, scheduled, dt)  # (an instance attribute: the host still sees the class's on_step)
    lockstep = Lockstep(policy)
    simulate(wl, lockstep, SimConfig(**config))
    assert lockstep.steps > 300
    if max_share is not None:
        assert _CountingBounds.searched[0] < max_share * members[0], (_CountingBounds.searched[0], members[0])


class LockstepRanks(Lockstep):
    """:class:`Lockstep` for a host that names the batch by its ranks in the order (``on_step_ranks``, which the
    simulator's replica calls when the policy has it): the policy is told the ranks, the reference the mask."""

    def on_step_ranks(self, view: LiveView, order: np.ndarray, ranks, step_time: float) -> None:
        self.ranked_steps = getattr(self, "ranked_steps", 0) + 1
        self.policy.on_step_ranks(view, order, ranks, step_time)
        scheduled = np.zeros(len(order), dtype=bool)
        scheduled[order[:ranks] if type(ranks) is int else order[ranks]] = True
        self.ref.on_step(view, scheduled, step_time)


@pytest.mark.parametrize("spec", ["mlfq", "mlfq:quantum=0.01,threshold=1.5", "mlfq:quantum=0.005,threshold=1",
                                  "srtf", "srtf:starve=5,quantum=4",
                                  "mlfq:quantum=0.01,promote=6", "mlfq:quantum=0.02,threshold=3,promote=1",
                                  "mlfq:starve=15,starve_quantum=2", "mlfq:quantum=0.01,promote=9,starve=4,starve_quantum=3"])
@pytest.mark.parametrize("config", [
    dict(), dict(num_gpu_blocks=700), dict(num_gpu_blocks=600, preemption="recompute"),
    dict(num_gpu_blocks=800, preemption="recompute", semantics="vllm-v1", max_num_seqs=24),
], ids=["roomy", "swap", "recompute", "vllm-v1"])
def test_mlfq_told_its_batch_by_ranks_orders_as_the_stateless_reference(spec, config):
    """The replica tells MLFQ its batch as ranks in the order (no scheduled mask over every live request): the
    orders are still the stateless reference's, told the mask, in the simulator (vLLM V1 semantics drop members
    from the prefix: ranks then are an array); under starvation prevention too, told the ranks in the wrapper's
    order (promoted first), which it passes on."""
    wl = apply_arrivals(load_workload("sharegpt", num_requests=150, seed=0), "poisson", rate=40.0, seed=1)
    policy = LockstepRanks(make_policy(spec))
    simulate(wl, policy, SimConfig(stop_time=60.0, **config))
    assert policy.steps > 100 and policy.ranked_steps > 100


@pytest.mark.parametrize("spec", ["srtf", "class:bucket=100"])
@pytest.mark.parametrize("config", [dict(), dict(num_gpu_blocks=30, preemption="recompute"),
                                    dict(num_gpu_blocks=40, preemption="recompute", semantics="vllm-v1")],
                         ids=["roomy", "recompute", "vllm-v1"])
def test_srtf_and_class_keep_their_orders_in_a_burst_instead_of_sorting_every_live_request_each_step(
        monkeypatch, spec, config):
    """SRTF and the classification baseline sorted every live request at every step (``view.order_by``): at 20,000
    waiting requests 3.3x and 21x FCFS's step, at 200,000 20x (SRTF; BENCHMARKS.md, "Big queues"). Class's key is fixed
    per request and SRTF's changes only for the batch, so both keep their orders: a sort on the first step only, the
    same order as the old formula at every step (``Lockstep``; SRTF told the batch by ranks as the replica tells it)."""
    sorts = []
    order_by = LiveView.order_by
    monkeypatch.setattr(LiveView, "order_by", lambda view, *keys: sorts.append(len(view)) or order_by(view, *keys))
    rng = np.random.default_rng(5)
    wl = make_workload(list(rng.integers(4, 60, 200)), list(rng.integers(1, 40, 200)))
    result = simulate(wl, make_policy(spec), SimConfig(max_num_seqs=16, **config))
    assert len(sorts) <= 2, sorts[:20]
    assert (result.summary["num_preemptions"] > 0) == bool(config)  # (the small caches preempt)
    monkeypatch.undo()
    policy = make_policy(spec)
    lone = []

    class Counting(LockstepRanks if hasattr(policy, "on_step_ranks") else Lockstep):
        def rank(self, view):
            lone.append(len(view) < 2)
            return super().rank(view)

    lockstep = Counting(policy)
    simulate(wl, lockstep, SimConfig(max_num_seqs=16, **config))
    assert lockstep.steps > 100 and lockstep.vouched >= lockstep.steps - sum(lone)  # (SRTF does not vouch a lone one)


def test_the_replica_tells_mlfq_its_batch_by_ranks_without_a_mask():
    """MLFQ has ``on_step_ranks``: in a burst the replica calls it with the batch's length (the batch is a prefix of
    the order) and never builds a scheduled mask, and MLFQ makes none (before: a mask over every live request each
    step, made by the host and searched by the policy; then one for each step MLFQ did not follow)."""
    from ltrsched.policies.mlfq import MLFQ

    calls = {"ranks": 0, "prefix": 0, "mask": 0}

    class Counting(MLFQ):
        def on_step_ranks(self, view, order, ranks, step_time):
            calls["ranks"] += 1
            calls["prefix"] += type(ranks) is int
            super().on_step_ranks(view, order, ranks, step_time)

        def on_step(self, view, scheduled, step_time):
            calls["mask"] += 1
            super().on_step(view, scheduled, step_time)

    wl = apply_arrivals(load_workload("sharegpt", num_requests=300, seed=0), "burst")
    lockstep = Lockstep(Counting(), ref=make_policy("mlfq"))  # (the same orders as MLFQ told a mask)
    lockstep.on_step_ranks = lambda view, order, ranks, dt: (lockstep.policy.on_step_ranks(view, order, ranks, dt),
                                                              lockstep.ref.on_step(view, _mask(order, ranks), dt))
    simulate(wl, lockstep, SimConfig())
    assert calls["ranks"] > 300 and calls["prefix"] == calls["ranks"]
    # not even where MLFQ had no kept order to follow (the first step, a lone request's steps: who ran is recorded)
    assert calls["mask"] == 0, calls


def _mask(order: np.ndarray, ranks) -> np.ndarray:
    scheduled = np.zeros(len(order), dtype=bool)
    scheduled[order[:ranks] if type(ranks) is int else order[ranks]] = True
    return scheduled


def test_reading_a_few_positions_leaves_the_live_sets_gather_cached():
    """``view.at`` on a column gathered once per live set (the simulator's ``LiveGather``) reads the values
    without replacing that gather: the next view of the same live set gets the same array, not a new gather."""
    from ltrsched.sim.request_table import LiveGather

    column = LiveGather(np.arange(10.0))
    live = np.array([1, 3, 5, 7])
    first = LiveView({"x": column}, live, 0.0, 0).column("x")
    view = LiveView({"x": column}, live, 0.1, 1)
    assert view.at("x", np.array([0, 2])).tolist() == [1.0, 5.0]
    assert view.column("x") is first


def _id_arrays(policy) -> dict[str, object]:
    """Every :class:`~ltrsched.policies.id_array.IdArray` of ``policy`` (and of the policy it wraps, and of its kept
    order's), by attribute name."""
    from ltrsched.policies.id_array import IdArray

    out = {}
    for name, value in vars(policy).items():
        if isinstance(value, IdArray):
            out[f"{type(policy).__name__}.{name}"] = value
        elif name in ("inner", "_front", "policy") and value is not None:
            out.update(_id_arrays(value))
    return out


def _churn():
    """benchmarks/bench_server_churn.py: a server's churn of short requests through one policy."""
    from bench_modules import load_benchmark

    return load_benchmark("bench_server_churn")


def _serve_with_one_stuck(policy, others: int, per_step: int = 50, first_id: int = 7_000_000) -> dict[str, int]:
    """A server's ids (from ``first_id``, by arrival): the first request stays live (a generation that never ends)
    while ``others`` come, ``per_step`` a step, and go after 1-3 tokens; the batch is the head of the order (at most
    ``4 * per_step``). The widest each id array of ``policy`` got [entries, ``len(data)``], and the most ids each held
    apart, by name."""
    rng = np.random.default_rng(5)
    n = others + 1
    output = rng.integers(1, 4, n)
    output[0] = 10**9
    score = rng.random(n)
    score[0] = 2.0  # (ranked last: it runs when starvation prevention promotes it)
    widest, apart = {}, {}

    def watch(policy, live: int, step: int) -> None:
        if step % 50 == 0:
            for name, arr in _id_arrays(policy).items():
                widest[name] = max(widest.get(name, 0), len(arr.data))
                apart[name] = max(apart.get(name, 0), getattr(arr, "k", 0))

    _, _, generated = _churn().serve(policy, output, per_step, 4 * per_step, watch, score=score, first_id=first_id,
                                     stays=1)
    assert generated[0] > 0  # (the first request ran, and is still live)
    return widest, apart


@pytest.mark.parametrize("spec", ["ltr:starve=200,quantum=10", "mlfq"])
def test_id_arrays_stay_bounded_by_the_ids_held_while_one_old_request_stays_live(spec, monkeypatch):
    """A server whose first request stays live (a very long or stuck generation) while 200,000 others come and go
    (250 a step): the id arrays held a window from that request's id to the newest, 8-16 bytes per request served
    while it lived (each reached 256,000 entries here). Now the old id is held apart and the window follows the count
    of ids held (16,000 entries at most here under MLFQ, 2,005 under LTR with starvation prevention)."""
    from ltrsched.policies import id_array

    monkeypatch.setattr(id_array, "MIN_WINDOW", 64)  # (small windows: what is held shows)
    monkeypatch.setattr(id_array, "MIN_SPARSE", 1024, raising=False)
    widest, apart = _serve_with_one_stuck(make_policy(spec), 200_000, per_step=250)
    assert widest and max(widest.values()) <= 20_000, widest
    assert max(apart.values()) >= 1, apart  # (the old id, and any others held far below the rest)


@pytest.mark.parametrize("spec", ["ltr:starve=20,quantum=3", "mlfq:quantum=0.02"])
def test_same_order_as_the_stateless_reference_while_one_old_request_stays_live(spec, monkeypatch):
    """The old id held apart (and read, written, promoted, finished through it) ranks as the stateless reference."""
    from ltrsched.policies import id_array

    monkeypatch.setattr(id_array, "MIN_WINDOW", 16)
    monkeypatch.setattr(id_array, "MIN_SPARSE", 64, raising=False)
    policy = Lockstep(make_policy(spec))
    widest, apart = _serve_with_one_stuck(policy, 3_000, per_step=5)
    assert policy.steps > 500 and max(widest.values()) < 1_000 and max(apart.values()) >= 1, (widest, apart)


def _serve_short(policy, n: int, per_step: int, batch: int) -> tuple[int, int, dict[str, int]]:
    """A burst of ``n`` requests (ids by arrival), ``per_step`` arriving a step, each done after 1-3 tokens; the batch
    is the head of the order (at most ``batch``): benchmarks/bench_server_churn.py's server. The most entries MLFQ's
    due steps held, the most requests live, and the widest each id array got [entries], by name."""
    bench = _churn()
    most_due = 0
    widest: dict[str, int] = {}

    def watch(policy, live: int, step: int) -> None:
        nonlocal most_due
        most_due = max(most_due, policy._due.size)
        for name, arr in _id_arrays(policy).items():
            widest[name] = max(widest.get(name, 0), len(arr.data))

    _, most_live, _ = bench.serve(policy, bench.churn_outputs(n), per_step, batch, watch)
    return most_due, most_live, widest


@pytest.mark.parametrize("promote", [64, 2**63 - 1])
def test_mlfq_with_promotion_holds_due_entries_and_ids_bounded_by_the_live_requests(promote, monkeypatch):
    """MLFQ with ``promote=P`` files a request as due every step it runs or arrives and checked only when that step
    came: 100 arrivals a step of 1-3 tokens each (at most 219 live) with P=64 held 19,466 entries (every request
    served or run over the last 64 steps) and kept the id arrays 16,384 entries wide. Now the entries no longer due
    are dropped once they outnumber the live requests: 1,632 entries at most, id arrays 2,400 wide. The largest P the
    spec takes files under steps past 64 bits (a first version of the cut failed converting them): never due."""
    from ltrsched.policies import id_array, mlfq

    monkeypatch.setattr(id_array, "MIN_WINDOW", 64)  # (small windows: what is held shows)
    policy = make_policy(f"mlfq:quantum=0.02,promote={promote}")
    most_due, most_live, widest = _serve_short(policy, 20_000, per_step=100, batch=400)
    assert most_live < 500, most_live
    assert most_due <= 4 * most_live + mlfq.MIN_DUE, (most_due, most_live)
    assert max(widest.values()) <= 16 * most_live, (widest, most_live)


def _cut_every_step(monkeypatch) -> list[int]:
    """MLFQ's due entries cut at every step (no slack); the sizes they were cut at, appended as it happens."""
    from ltrsched.policies import mlfq

    monkeypatch.setattr(mlfq, "DUE_SLACK", 0)
    monkeypatch.setattr(mlfq, "MIN_DUE", 0)
    cuts: list[int] = []
    keep = mlfq.DueSteps.keep
    monkeypatch.setattr(mlfq.DueSteps, "keep", lambda self, still_due: (cuts.append(self.size), keep(self, still_due)))
    return cuts


@pytest.mark.parametrize("spec", ["mlfq:quantum=0.01,promote=6", "mlfq:quantum=0.01,promote=6,starve=4,starve_quantum=3"])
def test_mlfq_drops_only_due_entries_no_longer_due_in_the_simulator(spec, monkeypatch):
    """The entries filed as due cut at every step: MLFQ with promotion (and starvation prevention) orders as the
    stateless reference, under memory pressure (a cut that kept the entries of one step earlier failed at step 80)."""
    cuts = _cut_every_step(monkeypatch)
    wl = apply_arrivals(load_workload("sharegpt", num_requests=60, seed=0), "poisson", rate=40.0, seed=1)
    policy = Lockstep(make_policy(spec))
    simulate(wl, policy, SimConfig(stop_time=60.0, num_gpu_blocks=300))
    assert policy.steps > 100 and len(cuts) > 50, (policy.steps, len(cuts))


def test_mlfq_drops_only_due_entries_no_longer_due_under_a_scripted_host(monkeypatch):
    """...and under a host that skips ``on_step``, ranks a step twice, numbers steps with gaps, lists requests out of
    arrival order and forms batches that are no prefix of the order."""
    cuts = _cut_every_step(monkeypatch)
    policy = Lockstep(make_policy("mlfq:quantum=0.01,threshold=1.5,promote=3"))
    ScriptedHost(np.random.default_rng(4), 60).run(policy, 300)
    assert policy.steps > 50 and len(cuts) > 20, (policy.steps, len(cuts))


def test_due_steps_pop_what_keep_kept_and_what_was_filed_since():
    """``DueSteps``: entries kept by ``keep`` (held sorted by step) and entries filed since pop together by step, in
    any order of steps popped; ``size`` and ``held`` follow."""
    from ltrsched.policies.tracking import DueSteps

    due = DueSteps()
    for step, ids in [(5, [1, 2]), (3, [3]), (5, [4]), (7, [5, 6]), (4, [7])]:
        due.add(step, np.array(ids, dtype=np.int64))
    assert due.size == 7
    due.keep(lambda ids, steps: (ids % 2 == 1) | (steps == 4))  # drops 2, 4 and 6
    assert due.size == 4 and sorted(np.concatenate(due.held()).tolist()) == [1, 3, 5, 7]
    due.add(5, np.array([8], dtype=np.int64))
    assert due.pop(4).tolist() == [7]  # (a run in the middle of the kept steps)
    assert sorted(due.pop(5).tolist()) == [1, 8] and due.pop(6) is None
    assert due.size == 2 and due.pop(3).tolist() == [3] and due.pop(7).tolist() == [5] and due.size == 0
    due.keep(lambda ids, steps: ids > 0)  # (nothing filed: nothing to do)
    assert due.held() == [] and due.pop(7) is None


@pytest.mark.parametrize("config", [dict(), dict(num_gpu_blocks=200, preemption="recompute")],
                         ids=["roomy", "recompute"])
def test_po_splits_by_phase_from_the_batch_while_the_live_set_stays(monkeypatch, config):
    """PO read every live request's generated tokens and split its estimate order by phase at every step (a burst
    of 100,000: ~1.2 ms a step). While the live set stays, only the batch can leave the phase: it reads the batch's
    tokens only (``PhaseSplit``), and the whole column only after arrivals or finishes. Same orders as ``RefPO``,
    told the batch by ranks (the simulator's replica) or by a mask (``Lockstep``). (It keeps the split from 4,096 live
    requests; here from 2.)"""
    import ltrsched.policies.fixed_order as fixed_order
    import ltrsched.policies.po as po

    monkeypatch.setattr(po, "_SPLIT_MIN", 2)
    reads, ranked = [], []
    column = LiveView.column
    monkeypatch.setattr(LiveView, "column", lambda view, name: (
        reads.append(len(view)) if name == "generated_tokens" else None) or column(view, name))
    policy = make_policy("po:tokens=3")
    rank = policy.rank
    monkeypatch.setattr(policy, "rank", lambda view: ranked.append(len(view)) or rank(view))
    wl = make_workload([8] * 600, list(np.random.default_rng(3).integers(1, 6, 600)))
    steps = simulate(wl, policy, SimConfig(max_num_seqs=16, **config)).summary["steps"]
    # all 600 live until the first finish (each request's phase comes first): one read of the column then, at step 0
    assert ranked.count(600) > 100 and reads.count(600) == 1, (ranked.count(600), reads.count(600))
    monkeypatch.undo()
    monkeypatch.setattr(po, "_SPLIT_MIN", 2)
    monkeypatch.setattr(fixed_order, "_TABLE_MIN", 2)  # (the kept order renumbered by its table after finishes too)
    for lockstep in (LockstepRanks(make_policy("po:tokens=3")), Lockstep(make_policy("po:tokens=3"))):
        simulate(wl, lockstep, SimConfig(max_num_seqs=16, **config))
        assert lockstep.steps > 200 and lockstep.vouched == lockstep.steps
    assert lockstep.steps == steps and not hasattr(lockstep, "ranked_steps")


def test_po_splits_afresh_when_a_request_that_ran_is_back_in_its_phase(monkeypatch):
    """A host whose request that ran, past the phase, has fewer generated tokens after the step (its output dropped):
    the kept split would leave it among the requests past the phase; PO splits afresh instead (as ``RefPO``)."""
    import ltrsched.policies.po as po

    monkeypatch.setattr(po, "_SPLIT_MIN", 2)  # (it keeps the split from 4,096 live requests)
    n, tokens = 12, 3
    rng = np.random.default_rng(5)
    cols = {"request_id": np.arange(n, dtype=np.int64), "arrival_time": np.arange(n, dtype=np.float64),
            "prompt_tokens": np.full(n, 8, dtype=np.int64), "output_tokens": rng.integers(1, 9, n),
            "po_estimate": rng.integers(1, 50, n).astype(np.float64)}
    generated = np.zeros(n, dtype=np.int64)
    policy = make_policy(f"po:tokens={tokens}")
    lockstep = LockstepRanks(policy)
    lockstep.prepare(cols)
    lockstep.on_arrival(cols["request_id"], 0.0)
    dropped = 0
    for step in range(12):
        view = LiveView({**cols, "generated_tokens": generated.copy()}, None, float(step), step, arrival_ordered=True)
        order = lockstep.rank(view)
        batch = order[:4]
        lockstep.on_step_ranks(view, order, 4, 0.01)
        generated[batch] += 1
        back = batch[generated[batch] > tokens]
        if len(back) and not dropped:  # one that ran, past the phase already, drops back into it
            generated[back[-1]] = 0  # (the last of the batch: not first in the order anyway)
            dropped = step
    assert dropped and lockstep.steps == 12 and lockstep.vouched == 12


def test_kept_order_renumbers_positions_as_a_binary_search_of_the_departed_would():
    """``FixedKeyOrder`` renumbers the kept order after finishes from a table of the departed positions' counts (a
    few passes), not a binary search per position; the same positions as that search, for departures anywhere."""
    from ltrsched.policies.fixed_order import _renumber

    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 257, 5000):
        for gone in {2, min(n, 3), max(2, n // 2), n}:
            order = rng.permutation(n)
            at = np.sort(rng.choice(n if rng.random() < 0.5 else min(n, max(gone, 40)), gone, replace=False))
            want = order[~np.isin(order, at)]
            want = want - at.searchsorted(want)
            got = _renumber(order, at, n)
            assert got.dtype == np.intp and np.array_equal(got, want), (n, gone)


def test_fcfs_orders_a_listing_by_arrival_from_one_shared_range():
    """FCFS wrote ``np.arange(n)`` for every step (~20-30 us at 50,000-100,000 live); listed by arrival, its order is
    now a read-only view of one shared range grown by doubling, vouched for; still ``order_by()``, and the same in a
    simulation as its reference."""
    policy = make_policy("fcfs")
    orders = []
    for n in (3, 700, 5000, 40):
        ids = np.arange(10, 10 + n, dtype=np.int64)
        view = LiveView({"request_id": ids, "arrival_time": np.zeros(n)}, None, 0.0, n, arrival_ordered=True)
        order = policy.rank(view)
        assert order is view._ranked and not order.flags.writeable and np.array_equal(order, np.arange(n))
        orders.append(order)
    assert np.shares_memory(orders[0], orders[1]) and np.shares_memory(orders[2], orders[3])
    shuffled = LiveView({"request_id": np.array([5, 3, 4]), "arrival_time": np.array([2.0, 1.0, 1.0])}, None, 0.0, 0)
    assert policy.rank(shuffled).tolist() == [1, 2, 0]
    lockstep = Lockstep(make_policy("fcfs"))
    simulate(make_workload([8] * 300, [1] * 300), lockstep, SimConfig(max_num_seqs=16))
    assert lockstep.steps > 10 and lockstep.vouched == lockstep.steps


@pytest.mark.parametrize("config", [dict(), dict(num_gpu_blocks=300, preemption="recompute")],
                         ids=["roomy", "recompute"])
def test_po_under_starvation_prevention_told_its_batch_by_ranks_at_4096_live(config):
    """The starvation wrapper around PO passes ``on_step_ranks`` on: the replica names the batch by its ranks in the
    *wrapper's* order (promoted first) and builds no mask; PO keeps its phase split (from 4,096 live) from those
    positions. Same orders as the stateless references, told the mask, with requests promoted (before: the wrapper
    had no ``on_step_ranks``, and the replica built a mask over every live request each step)."""
    from ltrsched.policies.po import PO

    calls = {"ranks": 0, "mask": 0}

    class Counting(PO):
        def on_step_ranks(self, view, order, ranks, step_time):
            calls["ranks"] += 1
            super().on_step_ranks(view, order, ranks, step_time)

        def on_step(self, view, scheduled, step_time):
            calls["mask"] += 1
            super().on_step(view, scheduled, step_time)

    Counting.__module__ = PO.__module__  # (a library policy's twin: told the ranks)
    rng = np.random.default_rng(7)
    wl = make_workload([8] * 4200, list(rng.integers(1, 4, 4200)), po_estimate=rng.integers(1, 60, 4200))
    policy = make_policy("po:tokens=3,starve=6,quantum=2")
    policy.inner.__class__ = Counting
    lockstep = LockstepRanks(policy)
    simulate(wl, lockstep, SimConfig(max_num_seqs=256, **config))
    assert calls["ranks"] == lockstep.ranked_steps > 30 and calls["mask"] == 0, calls
    assert lockstep.vouched == lockstep.steps


def test_starvation_prevention_tells_a_plugins_step_hook_the_mask_not_the_wrappers_ranks():
    """A plugin's ``on_step_ranks`` may take the ranks as ranks in its own order; the wrapper's order is another
    (promoted first): the wrapper tells it the batch as the scheduled mask (``on_step``), the same positions."""
    from ltrsched.policies.base import LiveView as View
    from ltrsched.policies.starvation import StarvationPrevention

    told = []

    class Plugin(make_policy("fcfs").__class__):
        def on_step(self, view, scheduled, step_time):
            told.append(("mask", scheduled.nonzero()[0].tolist()))

        def on_step_ranks(self, view, order, ranks, step_time):
            told.append(("ranks", ranks))

    policy = StarvationPrevention(Plugin(), threshold=2, quantum=1)
    n = 6
    cols = {"request_id": np.arange(n, dtype=np.int64), "arrival_time": np.arange(n, dtype=np.float64)}
    policy.prepare(cols)
    policy.on_arrival(cols["request_id"], 0.0)
    view = View({**cols, "idle_steps": np.array([0, 0, 0, 0, 5, 0])}, None, 0.0, 0, arrival_ordered=True)
    order = policy.rank(view)
    assert order[0] == 4  # (promoted first)
    policy.on_step_ranks(view, order, 2, 0.01)
    assert told == [("mask", sorted(order[:2].tolist()))]


@pytest.mark.parametrize("d", [1, 2, 5, 64, 65, 300])
def test_remaining_orders_positions_now_move_up_by_the_departed_before_them(d):
    """SRTF's kept order moves the positions now after departed base positions up by their count: one slice per
    departed request up to 64, a cumulative count past it; both as a count of the departed below each position."""
    from ltrsched.policies.remaining_order import move_up_after

    rng = np.random.default_rng(d)
    nbase = 1000
    now = np.sort(rng.choice(5000, nbase, replace=False))
    left = np.sort(rng.choice(nbase, d, replace=False))
    want = now - np.searchsorted(left, np.arange(nbase))  # (for a departed one: the count of those before it)
    got = np.concatenate((now, [-7, -7]))  # (past nbase: untouched)
    move_up_after(got, nbase, left)
    keep = np.ones(nbase, dtype=bool)
    keep[left] = False
    assert np.array_equal(got[:nbase][keep], want[keep]) and list(got[nbase:]) == [-7, -7]


@pytest.mark.parametrize("spec", ["ltr:tau=0.5", "oracle:tau=0.8", "po:tokens=3", "class:bucket=100",
                                  "ltr:tau=0.5,starve=20,quantum=3"])
@pytest.mark.parametrize("config", [dict(), dict(num_gpu_blocks=600, preemption="recompute")], ids=["roomy", "recompute"])
def test_fixed_key_orders_kept_over_a_base_listing_match_the_stateless_reference(monkeypatch, spec, config):
    """From ``_BASE_MIN`` live requests a step with finishes alone takes ``BaseListingOrder`` (lowered to 2 here, so
    this small run takes it): the same order as the reference's sort at every step, and taken at most such steps."""
    from ltrsched.policies import fixed_order

    monkeypatch.setattr(fixed_order, "_BASE_MIN", 2)
    taken = _count_base_leaves(monkeypatch)
    wl = apply_arrivals(load_workload("sharegpt", num_requests=150, seed=0), "poisson", rate=40.0, seed=1)
    policy = Lockstep(make_policy(spec))
    simulate(wl, policy, SimConfig(stop_time=60.0, **config))
    # (starvation prevention ranks LTR only while its own kept order does not hold)
    assert policy.steps > 100 and sum(taken) > (2 if "starve" in spec else 10) and all(taken), (sum(taken), taken)


@pytest.mark.parametrize("seed", range(4))
def test_fixed_key_order_over_a_base_listing_under_a_scripted_host(monkeypatch, seed):
    """The scripted host (ids by arrival, steps ranked twice or skipped, several finishes at a step) with the base
    listing taken from 2 live requests on: LTR and PO rank as their references."""
    from ltrsched.policies import fixed_order

    monkeypatch.setattr(fixed_order, "_BASE_MIN", 2)
    taken = _count_base_leaves(monkeypatch)
    for spec in ("ltr", "po:tokens=3"):
        policy = Lockstep(make_policy(spec))
        ScriptedHost(np.random.default_rng(seed), 200, skip_steps=False, ids_by_arrival=True, by_arrival=1.0).run(
            policy, 600)
        assert policy.steps > 50
    assert sum(taken) > 5, taken


def _count_base_leaves(monkeypatch) -> list:
    """Whether each ``BaseListingOrder.leave`` call made an order (filled as they happen)."""
    from ltrsched.policies import base_listing

    taken: list = []
    leave = base_listing.BaseListingOrder.leave

    def counted(self, gone, n):
        order = leave(self, gone, n)
        taken.append(order is not None)
        return order

    monkeypatch.setattr(base_listing.BaseListingOrder, "leave", counted)
    return taken


def test_base_listing_order_drops_the_departed_and_refuses_what_it_cannot_explain():
    """``BaseListingOrder.leave``: the kept order without the departed, each position moved up by the departed listed
    before it (as a binary search of them would), over several steps; None for a request not live in the listing
    (never listed, or left before) or a listing of another size."""
    from ltrsched.policies.base_listing import BaseListingOrder

    rng = np.random.default_rng(5)
    n = 3000
    ids = np.sort(rng.choice(10 * n, n, replace=False))
    order = rng.permutation(n)
    kept = BaseListingOrder()
    kept.start(ids, order)
    live_ids, want = ids.copy(), order.copy()
    for d in (1, 2, 7, 64, 65, 300, 1):
        at = np.sort(rng.choice(len(live_ids), d, replace=False))
        gone = live_ids[at]
        want = want[~np.isin(want, at)]
        want = want - at.searchsorted(want)
        live_ids = np.delete(live_ids, at)
        got = kept.leave(gone, len(live_ids))
        assert got is not None and np.array_equal(got, want) and not got.flags.writeable, d
    left = np.setdiff1d(ids, live_ids)[:1]
    for gone, size in ((left, len(live_ids) - 1), (np.array([10 * n + 1]), len(live_ids) - 1),
                       (live_ids[:1], len(live_ids))):
        kept.start(live_ids, want) if kept.order is None else None
        assert kept.leave(gone, size) is None and kept.order is None


def test_srtf_sorts_below_the_kept_orders_threshold_and_keeps_its_order_from_it(monkeypatch):
    """At 2,000 live requests keeping SRTF's order cost about what its sort did (the engine adapter: +9% per step;
    BENCHMARKS.md, "Big queues"), so below ``_KEEP_MIN`` live requests SRTF sorts every step, as it did before the
    kept order, and keeps the order from there on (the threshold 150 here, a burst of 200 draining below it): the old
    sort's order at every step, no order followed below the threshold, a sort at every step there."""
    from ltrsched.policies import remaining_order

    monkeypatch.setattr(remaining_order, "_KEEP_MIN", 150)
    followed, sorts = [], []
    follow = remaining_order.RemainingOrder._follow
    monkeypatch.setattr(remaining_order.RemainingOrder, "_follow",
                        lambda self, view, n: followed.append(n) or follow(self, view, n))
    order_by = LiveView.order_by
    monkeypatch.setattr(LiveView, "order_by", lambda view, *keys: sorts.append(len(view)) or order_by(view, *keys))
    rng = np.random.default_rng(5)
    wl = make_workload(list(rng.integers(4, 60, 200)), list(rng.integers(1, 40, 200)))
    lockstep = LockstepRanks(make_policy("srtf"))
    sizes = []
    rank = lockstep.rank
    lockstep.rank = lambda view: sizes.append(len(view)) or rank(view)
    simulate(wl, lockstep, SimConfig(max_num_seqs=16))
    small = [n for n in sizes if 2 <= n < 150]
    assert len(followed) > 20 and min(followed) >= 150
    assert len(small) > 20 and sorted(n for n in sorts if n < 150) == sorted(small * 2)  # (and the reference's)
