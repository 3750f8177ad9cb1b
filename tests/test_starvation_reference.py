"""Starvation prevention (``X:starve=T,quantum=Q``) checked against a brute-force reference of its semantics, step by
step, around PO, LTR and FCFS.

The semantics (the paper's, ../shared/reference/paper-results.md, and ``ltrsched.policies.starvation``): a request left
out of the batch for T consecutive steps (its ``idle_steps`` >= T at a rank) is promoted ahead of every request not
promoted; it stays promoted until it has run in Q steps (the steps of its batches, whatever it generated in them: PO's
estimate tokens count as any others), then returns to its rank; it leaves the promoted requests at once when it
finishes. Promoted requests keep FIFO order among themselves: by the step of their promotion, then arrival time, then
request id. The others follow in the inner policy's order.

:class:`BruteStarvation` is that, written out plainly: a dict per promoted request, the inner order a ``sorted`` of
the live requests by the inner policy's key (``BRUTE_KEYS``), everything recounted at every rank, the quanta counted
from the batches the host reports (the wrapper counts them from ``idle_steps``, 0 exactly when a request ran the step
before). The wrapper keeps state from step to step and has three paths to the promoted-first order: the generic
one (``_promoted_first``: PO, FCFS, and LTR while requests arrive or the host does not list them by arrival), the
promoted-first order kept in ``FrontOrder`` (LTR, ids ascending by arrival, nobody arriving), and PO's phase split
kept from 4,096 live requests (``PhaseSplit``). Each run compares the orders and the promoted requests with the
quantum steps each has left at every rank.

Audited 2026-12-07: no difference (these tests, plus 900 more random scripted runs and 120 random simulations with
swap and recompute preemption). The tests fail on a wrapper broken on purpose: the promoted requests reversed in
``_promoted_first``, a quantum one step longer, promotion at > T instead of >= T, missed steps not delaying a
quantum's end, the last order reused after promotions changed, PO told its batch's ranks in another order than the
wrapper's (the 4,096-live test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.policies import LiveView, Policy, RequestState, make_policy
from ltrsched.policies.order_check import _is_permutation
from ltrsched.policies.starvation import StarvationPrevention
from ltrsched.sim import SimConfig, simulate


def _fcfs_key(cols: dict, tokens: int):
    arrival, rid = cols["arrival_time"], cols["request_id"]
    return lambda p: (arrival[p], rid[p])


def _ltr_key(cols: dict, tokens: int):
    # higher score first; NaN scores last (numpy sorts the NaN of -score last); ties by arrival, then id
    arrival, rid, score = cols["arrival_time"], cols["request_id"], cols["score"]
    return lambda p: (math.isnan(score[p]), 0.0 if math.isnan(score[p]) else -score[p], arrival[p], rid[p])


def _po_key(cols: dict, tokens: int):
    # the estimate phase (fewer than ``tokens`` generated) first by arrival, then the others by (estimate, arrival)
    arrival, rid, gen, est = cols["arrival_time"], cols["request_id"], cols["generated_tokens"], cols["po_estimate"]
    return lambda p: (gen[p] >= tokens, est[p] if gen[p] >= tokens else 0.0, arrival[p], rid[p])


BRUTE_KEYS = {"fcfs": _fcfs_key, "ltr": _ltr_key, "po": _po_key}


class BruteStarvation(Policy):
    """Starvation prevention around the inner policy ``kind`` (a key of ``BRUTE_KEYS``), recounted at every rank in
    plain Python. ``promoted``: request id -> [promotion step, arrival time, quantum steps left]."""

    def __init__(self, kind: str, threshold: int, quantum: int, tokens: int = 0):
        self.kind, self.threshold, self.quantum, self.tokens = kind, threshold, quantum, tokens
        self.promoted: dict[int, list] = {}

    def prepare(self, requests) -> None:
        self.promoted = {}

    def on_finish(self, request_ids, now) -> None:
        for rid in np.asarray(request_ids).tolist():
            self.promoted.pop(rid, None)

    def rank(self, view: LiveView) -> np.ndarray:
        names = ["request_id", "arrival_time", "idle_steps"] + {"fcfs": [], "ltr": ["score"],
                                                                "po": ["generated_tokens", "po_estimate"]}[self.kind]
        cols = {name: view.column(name).tolist() for name in names}
        ids, arrival, idle = cols["request_id"], cols["arrival_time"], cols["idle_steps"]
        for p, rid in enumerate(ids):
            if rid not in self.promoted and idle[p] >= self.threshold:
                self.promoted[rid] = [view.step, arrival[p], self.quantum]
        head = sorted((p for p, rid in enumerate(ids) if rid in self.promoted),
                      key=lambda p: (self.promoted[ids[p]][0], arrival[p], ids[p]))
        inner = sorted(range(len(ids)), key=BRUTE_KEYS[self.kind](cols, self.tokens))
        return np.array(head + [p for p in inner if ids[p] not in self.promoted], dtype=np.intp)

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        ids = view.request_id.tolist()
        for p in np.flatnonzero(scheduled).tolist():
            entry = self.promoted.get(ids[p])
            if entry is not None:
                entry[2] -= 1
                if not entry[2]:  # ran in Q steps: back to its rank
                    del self.promoted[ids[p]]

    def promoted_state(self) -> list[tuple[int, int]]:
        """(request id, quantum steps left) of the promoted requests, in their order."""
        return [(rid, e[2]) for rid, e in sorted(self.promoted.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0]))]


def wrapper_state(policy: StarvationPrevention) -> list[tuple[int, int]]:
    """The same, read from the wrapper's buffers (white box): its promoted ids in order, and the steps each has left,
    its spent tick less the ticks so far (the spent tick moves one later for each tick it did not run)."""
    s, e = policy._s, policy._e
    return list(zip(policy._pid[s:e].tolist(), (policy._end[s:e] - policy._tick).tolist()))


class Compare(Policy):
    """The wrapper and the brute-force reference side by side (the host follows the wrapper's order); fails at the
    first rank whose order or promoted requests (with quantum steps left) differ. Told the batch by its ranks in the
    order (``on_step_ranks``, as the simulator's replica tells a policy that has it), it passes the ranks to a
    wrapper that takes them (around PO) and the mask to the reference."""

    def __init__(self, policy: StarvationPrevention, ref: BruteStarvation):
        self.policy, self.ref = policy, ref
        self.steps = self.promotions = self.vouched = 0
        self.most_live = 0

    @property
    def extra_output_tokens(self) -> int:  # type: ignore[override]
        return self.policy.extra_output_tokens

    def prepare(self, requests) -> None:
        self.policy.prepare(requests)
        self.ref.prepare(requests)

    def on_arrival(self, request_ids, now) -> None:
        self.policy.on_arrival(request_ids, now)
        self.ref.on_arrival(request_ids, now)

    def on_finish(self, request_ids, now) -> None:
        self.policy.on_finish(request_ids, now)
        self.ref.on_finish(request_ids, now)

    def rank(self, view: LiveView) -> np.ndarray:
        before = set(self.ref.promoted)
        got = self.policy.rank(view)
        want = self.ref.rank(view)
        n = len(view)
        assert len(got) == n and _is_permutation(np.asarray(got), n), f"step {view.step}: not a permutation"
        assert np.array_equal(got, want), (
            f"step {view.step} ({n} live): orders differ first at rank "
            f"{int(np.flatnonzero(np.asarray(got) != want)[0])}")
        assert wrapper_state(self.policy) == self.ref.promoted_state(), f"step {view.step}: promoted requests differ"
        self.promotions += len(set(self.ref.promoted) - before)
        self.vouched += got is view._ranked
        self.steps += 1
        self.most_live = max(self.most_live, n)
        return got

    def on_step(self, view: LiveView, scheduled: np.ndarray, step_time: float) -> None:
        self.policy.on_step(view, scheduled, step_time)
        self.ref.on_step(view, scheduled, step_time)

    def on_step_ranks(self, view: LiveView, order: np.ndarray, ranks, step_time: float) -> None:
        scheduled = np.zeros(len(order), dtype=bool)
        scheduled[order[:ranks] if type(ranks) is int else order[ranks]] = True
        if hasattr(self.policy, "on_step_ranks"):  # (the wrapper has it around an inner policy with an on_step: PO)
            self.policy.on_step_ranks(view, order, ranks, step_time)
        else:
            self.policy.on_step(view, scheduled, step_time)
        self.ref.on_step(view, scheduled, step_time)


def compare(spec: str) -> Compare:
    policy = make_policy(spec)
    assert isinstance(policy, StarvationPrevention)
    kind = policy.inner.name
    return Compare(policy, BruteStarvation(kind, policy.threshold, policy.quantum,
                                           getattr(policy.inner, "tokens", 0)))


class Host:
    """A scripted host over random step sequences: arrivals (a few a step, or all at step 0), listings by arrival or
    shuffled, batches that are the head of the order, the head less some members (preempted: left out), or any subset
    (now and then a member's output is dropped as it runs, as a host that restarts a request); finishes; a step
    ranked twice now and then, step numbers with gaps. ``idle_steps`` follows its definition: consecutive steps left
    out of the batch, 0 for a newcomer."""

    def __init__(self, rng: np.random.Generator, n: int, extra: int, burst: bool = False, by_arrival: float = 0.8,
                 ids_by_arrival: bool = False, batch: int | None = None, first_id: int = 5):
        self.rng, self.burst, self.by_arrival, self.batch = rng, burst, by_arrival, batch
        self.arrival = np.zeros(n) if burst else np.round(rng.uniform(0, 3, n), 1)
        self.rid = rng.permutation(n).astype(np.int64) * 3 + first_id  # not dense, not in arrival order
        if ids_by_arrival:
            self.rid[np.argsort(self.arrival, kind="stable")] = np.arange(n) * 3 + first_id
        self.score = np.where(rng.random(n) < 0.1, np.nan, np.round(rng.random(n), 1))  # ties and NaN
        self.estimate = rng.integers(1, 20, n).astype(np.float64)  # ties
        self.output = rng.integers(1, 12, n) + extra  # (PO's estimate tokens served too)
        self.generated = np.zeros(n, dtype=np.int64)
        self.idle = np.zeros(n, dtype=np.int64)
        self.live: list[int] = []
        self.waiting = list(np.lexsort((self.rid, self.arrival)))
        self.step = 0

    def columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        k = len(rows)
        return {"request_id": self.rid[rows], "arrival_time": self.arrival[rows], "prompt_tokens": np.full(k, 8),
                "output_tokens": self.output[rows], "generated_tokens": self.generated[rows].copy(),
                "computed_tokens": self.generated[rows] + 8, "state": np.full(k, int(RequestState.WAITING), np.int8),
                "idle_steps": self.idle[rows].copy(), "run_time": np.zeros(k), "score": self.score[rows],
                "po_estimate": self.estimate[rows], "predicted_length": np.full(k, np.nan)}

    def run(self, policy: Compare, steps: int) -> None:
        rng = self.rng
        n = len(self.rid)
        policy.prepare({"request_id": self.rid, "arrival_time": self.arrival, "prompt_tokens": np.full(n, 8),
                        "output_tokens": self.output, "score": self.score, "po_estimate": self.estimate,
                        "predicted_length": np.full(n, np.nan)})
        for _ in range(steps):
            k = len(self.waiting) if self.burst else int(rng.integers(0, 4)) if self.waiting else 0
            new, self.waiting = self.waiting[:k], self.waiting[k:]
            if new:
                self.idle[new] = 0
                self.live += new
                policy.on_arrival(self.rid[new], float(self.step))
            if not self.live:
                if not self.waiting:
                    return
                self.step += 1
                continue
            listed = rng.random() < self.by_arrival
            rows = np.array(sorted(self.live, key=lambda i: (self.arrival[i], self.rid[i])) if listed
                            else rng.permutation(self.live), dtype=np.int64)
            view = LiveView(self.columns(rows), None, now=float(self.step), step=self.step, arrival_ordered=listed)
            order = policy.rank(view)
            if rng.random() < 0.05:  # the same step ranked again
                order = policy.rank(view)
            size = int(rng.integers(1, len(rows) // 2 + 2)) if self.batch is None else min(self.batch, len(rows))
            how = rng.random()
            ranks = None
            if how < 0.6:  # the head of the order
                chosen, ranks = order[:size], size
            elif how < 0.85:  # the head less some members (preempted)
                ranks = np.sort(rng.choice(size, size=max(1, size - int(rng.integers(1, 4))), replace=False))
                chosen = order[ranks]
            else:
                chosen = rng.choice(len(rows), size=size, replace=False)
            scheduled = np.zeros(len(rows), dtype=bool)
            scheduled[chosen] = True
            ran, left_out = rows[scheduled], rows[~scheduled]
            self.generated[ran] += 1
            self.idle[left_out] += 1
            self.idle[ran] = 0
            if ranks is not None and rng.random() < 0.7:
                policy.on_step_ranks(view, order, ranks, 0.01)
            else:
                policy.on_step(view, scheduled, 0.01)
            dropped = ran[rng.random(len(ran)) < 0.01]
            self.generated[dropped] = 0  # (its output dropped as it ran: PO's request back in its phase)
            done = ran[self.generated[ran] >= self.output[ran]]
            if len(done):
                gone = set(done.tolist())
                self.live = [i for i in self.live if i not in gone]
                policy.on_finish(self.rid[done], float(self.step))
            self.step += 1 if rng.random() < 0.97 else int(rng.integers(2, 5))


INNER = ["po:tokens=3", "ltr", "fcfs"]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("inner", INNER)
@pytest.mark.parametrize("tq", [(3, 2), (1, 1), (5, 4)], ids=["T3Q2", "T1Q1", "T5Q4"])
def test_same_orders_and_quanta_as_the_brute_force_reference_under_a_scripted_host(inner, tq, seed):
    """Random step sequences; ``po:tokens=3`` promotes, spends quanta and returns requests as LTR and FCFS do."""
    threshold, quantum = tq
    policy = compare(f"{inner},starve={threshold},quantum={quantum}" if ":" in inner
                     else f"{inner}:starve={threshold},quantum={quantum}")
    Host(np.random.default_rng(seed), 80, policy.extra_output_tokens).run(policy, 250)
    assert policy.steps > 60 and policy.promotions > 5, (policy.steps, policy.promotions)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("inner", INNER)
def test_same_orders_and_quanta_as_the_brute_force_reference_with_ids_in_the_millions(inner, seed):
    """A long-lived server's ids (the wrapper's id tables hold a window from the lowest id it still asks for)."""
    policy = compare(f"{inner},starve=3,quantum=2" if ":" in inner else f"{inner}:starve=3,quantum=2")
    Host(np.random.default_rng(seed), 80, policy.extra_output_tokens, first_id=7_000_000).run(policy, 250)
    assert policy.steps > 60 and policy.promotions > 5, (policy.steps, policy.promotions)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("inner", INNER)
def test_same_orders_and_quanta_as_the_brute_force_reference_in_a_burst_listed_by_arrival(inner, seed):
    """All at step 0, ids ascending by arrival, listed by arrival (LTR: the kept promoted-first order, FrontOrder)."""
    policy = compare(f"{inner},starve=4,quantum=2" if ":" in inner else f"{inner}:starve=4,quantum=2")
    Host(np.random.default_rng(seed), 60, policy.extra_output_tokens, burst=True, by_arrival=1.0,
         ids_by_arrival=True, batch=8).run(policy, 200)
    assert policy.steps > 40 and policy.promotions > 5, (policy.steps, policy.promotions)


@pytest.mark.parametrize("inner", INNER)
def test_same_orders_and_quanta_as_the_brute_force_reference_at_4096_live_and_more(inner, monkeypatch):
    """A burst of 4,400 listed by arrival, batches of up to 1,024: PO keeps its phase split (from 4,096 live) from the
    batch the wrapper tells it by ranks in the wrapper's order, LTR's promoted-first order is kept (``FrontOrder``);
    every order and quantum as the reference's. (T=8: promoted requests past PO's phase go ahead of requests still in
    it, so the wrapper's order is no prefix of the listing: PO told its batch's ranks in another order fails here.)"""
    from ltrsched.policies.front_order import FrontOrder
    from ltrsched.policies.phase_split import PhaseSplit

    kept = {"split": 0, "front": 0}
    follow, order = PhaseSplit._follow, FrontOrder.order
    monkeypatch.setattr(PhaseSplit, "_follow", lambda self, *a: kept.__setitem__("split", kept["split"] + 1)
                        or follow(self, *a))
    monkeypatch.setattr(FrontOrder, "order", lambda self, *a: kept.__setitem__("front", kept["front"] + 1)
                        or order(self, *a))
    policy = compare(f"{inner},starve=8,quantum=2" if ":" in inner else f"{inner}:starve=8,quantum=2")
    Host(np.random.default_rng(11), 4400, policy.extra_output_tokens, burst=True, by_arrival=1.0,
         ids_by_arrival=True, batch=1024).run(policy, 40)
    assert policy.most_live >= 4096 and policy.steps >= 40 and policy.promotions > 1000, (
        policy.most_live, policy.promotions)
    path = {"po:tokens=3": "split", "ltr": "front"}.get(inner)  # the kept path this inner policy takes (FCFS: none)
    assert all(count == 0 for name, count in kept.items() if name != path), kept
    assert path is None or kept[path] > 10, kept


def _sim_workload(n: int, seed: int):
    rng = np.random.default_rng(seed)
    arrivals = np.round(np.sort(rng.uniform(0, 2.0, n)), 2)
    return make_workload(list(rng.integers(4, 60, n)), list(rng.integers(1, 40, n)), arrivals,
                         score=np.round(rng.random(n), 1), po_estimate=rng.integers(1, 30, n))


@pytest.mark.parametrize("inner", INNER)
@pytest.mark.parametrize("config", [
    dict(max_num_seqs=6), dict(num_gpu_blocks=60, max_num_seqs=12),
    dict(num_gpu_blocks=60, max_num_seqs=12, preemption="recompute"),
    dict(num_gpu_blocks=80, preemption="recompute", semantics="vllm-v1", max_num_seqs=8),
], ids=["seqs", "swap", "recompute", "vllm-v1"])
def test_same_orders_and_quanta_as_the_brute_force_reference_in_the_simulator(inner, config):
    """The simulator: arrivals, finishes, preemption by swap and by recompute, the paper's and vLLM V1's batches."""
    policy = compare(f"{inner},starve=6,quantum=3" if ":" in inner else f"{inner}:starve=6,quantum=3")
    simulate(_sim_workload(120, 1), policy, SimConfig(profile=LinearProfile(blocks=10_000), block_size=16, **config))
    assert policy.steps > 200 and policy.promotions > 20, (policy.steps, policy.promotions)


@pytest.mark.parametrize("inner", ["po", "ltr", "fcfs"])
def test_the_papers_settings_promote_po_as_ltr_and_fcfs(inner):
    """``starve=200,quantum=10`` (the paper's T and Q; PO with its 15 estimate tokens) on a burst that leaves requests
    idle for hundreds of steps."""
    policy = compare(f"{inner}:starve=200,quantum=10")
    rng = np.random.default_rng(2)
    wl = make_workload(list(rng.integers(4, 60, 150)), list(rng.integers(1, 30, 150)),
                       score=np.round(rng.random(150), 1), po_estimate=rng.integers(1, 30, 150))
    simulate(wl, policy, SimConfig(profile=LinearProfile(blocks=10_000), max_num_seqs=4))
    assert policy.steps > 500 and policy.promotions > 20, (policy.steps, policy.promotions)
