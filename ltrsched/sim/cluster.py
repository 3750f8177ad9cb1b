"""A cluster: N identical replicas behind a router, in one SimPy environment.

Each replica (same profile, configuration and policy spec; a policy object of its own) runs the lone
replica's loop (:class:`ltrsched.sim.replica.Replica`), fed through an :class:`Inbox`. An arrival
process walks the requests in arrival order; at each arrival time it asks the router for a replica,
given a :class:`ReplicaState` view of every replica at that instant, and queues the request there.

Consistent views: a replica runs a step without a SimPy event only while no other event is due before the
step ends, so no replica has started a step after a pending arrival when that arrival is routed. A replica
in the middle of a step shows the state the step started from (its batch formed, its KV allocated).
Arrivals are processed before any other event of the same instant (SimPy's URGENT priority), so a request
arriving at ``t`` is on its replica before that replica forms a batch at ``t``, as with a lone replica; a
step that ends exactly at ``t`` shows its state from before it ended. With one replica the result is
bit-identical to :func:`ltrsched.sim.simulate` (tested on the whole golden grid).
"""

from __future__ import annotations

import copy
import operator
import time
from typing import Any, Sequence

import numpy as np
import polars as pl
import simpy
from simpy.events import URGENT, Timeout

from ltrsched.errors import UserError
from ltrsched.metrics import summarize
from ltrsched.policies.base import Policy
from ltrsched.policies.needs import check_needs
from ltrsched.routers.base import ReplicaView, Router
from ltrsched.sim.config import SimConfig
from ltrsched.sim.inbox import Inbox
from ltrsched.sim.replica import Replica, StepTrace
from ltrsched.sim.request_table import RequestTable
from ltrsched.sim.simulate import (
    SimResult,
    check_finished,
    make_replica,
    replica_counters,
    request_frame,
    setup_run,
)
from ltrsched.workloads.schema import Workload

#: Most replicas in one simulated cluster (a typo guard; the simulator has no hard limit).
MAX_REPLICAS = 4096


class ReplicaState(ReplicaView):
    """A router's view of one simulated replica (read live from the replica, see :class:`ReplicaView`)."""

    __slots__ = ("index", "num_gpu_blocks", "_replica", "_inbox", "_table")

    def __init__(self, index: int, replica: Replica, inbox: Inbox, table: RequestTable):
        self.index = index
        self.num_gpu_blocks = replica.limits.num_gpu_blocks
        self._replica = replica
        self._inbox = inbox
        self._table = table

    @property
    def outstanding_requests(self) -> int:
        return self._inbox.count - self._replica.num_finished

    @property
    def kv_blocks_in_use(self) -> int:
        return self._replica.blocks_in_use

    @property
    def requests(self) -> np.ndarray:
        live = self._replica.live
        queued = self._inbox.rows[self._replica.num_admitted:self._inbox.count]  # routed, not yet admitted
        return np.concatenate((live, queued)) if len(queued) else live

    @property
    def generated_tokens(self) -> np.ndarray:
        return self._table.generated_tokens[self.requests]

    @property
    def context_tokens(self) -> int:
        rows = self.requests
        return int(self._table.prompt_tokens[rows].sum() + self._table.generated_tokens[rows].sum())


class _ArrivalTimeout(Timeout):
    """A Timeout processed before the other events of its instant (SimPy's URGENT priority)."""

    def __init__(self, env: simpy.Environment, delay: float):  # Timeout.__init__, but URGENT
        self.env = env
        self.callbacks = []
        self._value = None
        self._delay = delay
        self._ok = True
        env.schedule(self, URGENT, delay)


def _route_arrivals(env: simpy.Environment, table: RequestTable, router: Router, views: Sequence[ReplicaState],
                    inboxes: Sequence[Inbox], assigned: np.ndarray, stop_time: float | None):
    """SimPy process: route every request at its arrival time (same-instant arrivals in row order), then
    close the inboxes. Requests arriving at or after ``stop_time`` are not routed (no replica would admit
    them)."""
    order = np.argsort(table.arrival_time, kind="stable")
    rows = order.tolist()
    times = table.arrival_time[order].tolist()
    horizon = float("inf") if stop_time is None else stop_time
    n_replicas = len(views)
    for row, at in zip(rows, times):
        if at >= horizon:
            break
        if at > env.now:
            yield _ArrivalTimeout(env, at - env.now)
        choice = router.route(row, at, views)
        try:
            k = operator.index(choice)
        except TypeError:
            k = -1
        if not 0 <= k < n_replicas:
            raise UserError(f"router {router.spec()!r} returned {choice!r} for request {table.request_id[row]}; "
                            f"expected a replica index in 0..{n_replicas - 1}")
        assigned[row] = k
        inboxes[k].put(row, at)
    for inbox in inboxes:
        inbox.close()


def simulate_cluster(workload: Workload, policy: Policy, config: SimConfig | None = None, replicas: int = 1,
                     router: Router | None = None, progress: bool = False) -> SimResult:
    """Simulate ``replicas`` identical replicas behind ``router`` serving ``workload``.

    Every replica has ``config`` and a copy of ``policy`` (prepared once on the whole workload). The
    result's ``requests`` has a ``replica`` column (null for a request never routed: one arriving after
    ``config.stop_time``); ``summary`` is the fleet's (metrics over all requests; steps, busy time,
    preemptions and swapped blocks summed over replicas, peak KV blocks the largest replica's);
    ``replicas`` holds one summary per replica; ``steps`` (with ``config.record_steps``) has a
    ``replica`` column.
    """
    from ltrsched.routers import make_router

    config = config or SimConfig()
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) or not 1 <= replicas <= MAX_REPLICAS:
        raise UserError(f"replicas must be an integer in 1..{MAX_REPLICAS}, got {replicas!r}")
    router = router or make_router("round-robin")
    setup = setup_run(workload, policy, config)
    check_needs(router, workload.has_column, f"workload {workload.name!r}", kind="router")
    table = setup.table
    n = len(workload)
    columns = table.workload_columns()
    policy.prepare(columns)
    policies = [policy] + [copy.deepcopy(policy) for _ in range(replicas - 1)]  # prepared state included
    router.prepare(columns, replicas)

    env = simpy.Environment()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="req", desc=f"simulate {policy.name} x{replicas}", leave=False)
    inboxes = [Inbox(env, n) for _ in range(replicas)]
    traces = [StepTrace() if config.record_steps else None for _ in range(replicas)]
    fleet = [make_replica(env, setup, policies[k], config, trace=traces[k], inbox=inboxes[k],
                          on_progress=bar.update if bar else None) for k in range(replicas)]
    views = [ReplicaState(k, fleet[k], inboxes[k], table) for k in range(replicas)]
    assigned = np.full(n, -1, dtype=np.int64)
    wall = time.perf_counter()
    env.process(_route_arrivals(env, table, router, views, inboxes, assigned, config.stop_time))  # first: t=0
    for replica in fleet:
        env.process(replica.run())
    env.run()
    wall = time.perf_counter() - wall
    if bar is not None:
        bar.close()
    finished = check_finished(table, config)

    replica_col = pl.Series("replica", assigned, dtype=pl.Int64)
    requests = request_frame(workload, table, replica=pl.when(replica_col >= 0).then(replica_col).otherwise(None))
    done = requests.filter(pl.col("finish_time").is_not_nan())
    summary = summarize(done)
    summary["num_finished"] = int(finished.sum())
    counters = [replica_counters(r) for r in fleet]
    summary.update(
        steps=sum(c["steps"] for c in counters),
        busy_time=sum(c["busy_time"] for c in counters),
        num_preemptions=sum(c["num_preemptions"] for c in counters),
        swapped_blocks=sum(c["swapped_blocks"] for c in counters),
        peak_blocks_in_use=max(c["peak_blocks_in_use"] for c in counters),
        num_gpu_blocks=setup.limits.num_gpu_blocks,
        host_blocks=setup.host_blocks,
        num_replicas=replicas,
        wall_time_s=wall,
        speedup_vs_real_time=summary["makespan"] / wall if wall > 0 else float("inf"),
    )
    per_replica = []
    for k in range(replicas):
        mine = done.filter(pl.col("replica") == k)
        entry: dict[str, Any] = {"replica": k, **summarize(mine)}
        entry.update(num_routed=inboxes[k].count, num_finished=fleet[k].num_finished, **counters[k])
        per_replica.append(entry)
    meta = {
        "workload": workload.name,
        "policy": policy.spec(),
        "policy_params": policy.describe(),
        "profile": getattr(setup.profile, "name", str(config.profile)),
        "config": config.describe(),
        "replicas": replicas,
        "router": router.spec(),
        "router_params": router.describe(),
    }
    steps = None
    if config.record_steps:
        steps = pl.concat([pl.DataFrame(tr.as_dict()).with_columns(replica=pl.lit(k, dtype=pl.Int64))
                           for k, tr in enumerate(traces)], how="vertical_relaxed")
    return SimResult(requests, summary, steps, meta, replicas=per_replica)
