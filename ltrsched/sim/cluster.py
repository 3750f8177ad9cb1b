"""A cluster: N identical replicas behind a router, in one SimPy environment.

Each replica (same profile, configuration and policy spec; a policy object of its own) runs the lone
replica's loop (:class:`ltrsched.sim.replica.Replica`) on a request table of its own, fed through an
:class:`Inbox`. An arrival
process walks the requests in arrival order; at each arrival time it asks the router for a replica,
given a :class:`ReplicaState` view of every replica at that instant, and queues the request there.

Consistent views: a replica runs its steps without SimPy events until the next arrival to be routed (the
shared :class:`Horizon`; other replicas' steps cannot affect it), and ends the step that spans it with a
SimPy Timeout, so no replica has started a step after an arrival when that arrival is routed. A replica in
the middle of a step shows the state the step started from (its batch formed, its KV allocated). Arrivals
are processed before any other event of the same instant (SimPy's URGENT priority), so a request arriving
at ``t`` is on its replica before that replica forms a batch at ``t``, as with a lone replica; a step that
ends exactly at ``t`` shows its state from before it ended. A router that never reads the state
(``Router.reads_state = False``: round-robin, random) routes every request before the run instead, and
each replica then runs without pausing. With one replica the result is bit-identical to
:func:`ltrsched.sim.simulate` (tested on the whole golden grid).

Each replica's preemption-thrash guard (:class:`~ltrsched.policies.batching.ThrashGuard`) scales by the requests and
tokens routed to it so far, as a lone replica's by its workload: a thrashing replica among N stops where it would
alone, not at N times its preemptions. (One replica keeps the lone simulator's scale.)
"""

from __future__ import annotations

import copy
import operator
import sys
import time
from typing import Any, Sequence

import numpy as np
import polars as pl
import simpy
from simpy.events import URGENT, Timeout

from ltrsched.arguments import check_argument, check_flag, shown
from ltrsched.errors import ArgumentValueError, UserError
from ltrsched.metrics import speedup_vs_real_time, summarize
from ltrsched.policies.base import Policy
from ltrsched.policies.batching import ThrashGuard
from ltrsched.policies.needs import check_needs
from ltrsched.policies.registry import plugin_modules
from ltrsched.plugin_watchdog import plugin_time_limit
from ltrsched.routers.base import ReplicaView, Router
from ltrsched.sim.config import SimConfig
from ltrsched.sim.inbox import Horizon, Inbox
from ltrsched.sim.process_failure import guarded, run_to_end
from ltrsched.sim.replica import Replica, StepTrace
from ltrsched.sim.request_table import RequestTable
from ltrsched.sim.simulate import (
    SimResult,
    as_value_error,
    check_finished,
    check_run_arguments,
    make_replica,
    python_setup_run,
    replica_counters,
    request_frame,
)
from ltrsched.workloads.schema import Workload

#: Most replicas in one simulated cluster (a typo guard; the simulator has no hard limit).
MAX_REPLICAS = 4096


class ReplicaState(ReplicaView):
    """A router's view of one simulated replica (read live from the replica, see :class:`ReplicaView`)."""

    __slots__ = ("index", "num_gpu_blocks", "max_model_len", "_replica", "_inbox")

    def __init__(self, index: int, replica: Replica, inbox: Inbox, max_model_len: int):
        self.index = index
        self.num_gpu_blocks = replica.limits.num_gpu_blocks
        self.max_model_len = max_model_len
        self._replica = replica
        self._inbox = inbox

    @property
    def outstanding_requests(self) -> int:
        return self._inbox.count - self._replica.num_finished

    @property
    def kv_blocks_in_use(self) -> int:
        return self._replica.blocks_in_use

    def _local(self) -> np.ndarray:
        """The outstanding requests' local rows: live, then routed and not yet admitted."""
        live, admitted, count = self._replica.live, self._replica.num_admitted, self._inbox.count
        return np.concatenate((live, np.arange(admitted, count))) if count > admitted else live

    @property
    def requests(self) -> np.ndarray:
        return self._inbox.rows[self._local()]

    # The replica's table holds the live requests; one routed but not yet admitted may not be in it yet (the
    # replica copies requests in between its steps, see Inbox.pull): its values come from the cluster's table
    # (it has generated nothing).

    @property
    def generated_tokens(self) -> np.ndarray:
        live, waiting = self._replica.live, self._inbox.count - self._replica.num_admitted
        generated = self._inbox.table.generated_tokens[live]
        return np.concatenate((generated, np.zeros(waiting, dtype=generated.dtype))) if waiting else generated

    @property
    def context_tokens(self) -> int:
        inbox, replica = self._inbox, self._replica
        table, live = inbox.table, replica.live
        waiting = inbox.rows[replica.num_admitted:inbox.count]
        return int(table.prompt_tokens[live].sum() + inbox.source.prompt_tokens[waiting].sum()
                   + table.generated_tokens[live].sum())


class _ArrivalTimeout(Timeout):
    """A Timeout processed before the other events of its instant (SimPy's URGENT priority)."""

    def __init__(self, env: simpy.Environment, delay: float):  # Timeout.__init__, but URGENT
        self.env = env
        self.callbacks = []
        self._value = None
        self._delay = delay
        self._ok = True
        env.schedule(self, URGENT, delay)


class _BlindView(ReplicaView):
    """What a router that declares ``reads_state = False`` gets: the replica's index, no state."""

    __slots__ = ("index", "num_gpu_blocks", "max_model_len", "_router")

    def __init__(self, index: int, num_gpu_blocks: int, max_model_len: int, router: Router):
        self.index, self.num_gpu_blocks, self.max_model_len, self._router = index, num_gpu_blocks, max_model_len, router

    def __getattribute__(self, name: str):
        if name in ("outstanding_requests", "kv_blocks_in_use", "requests", "generated_tokens", "context_tokens",
                    "kv_utilization"):
            router = object.__getattribute__(self, "_router")
            raise UserError(f"router {router.spec()!r} read the replicas' state ({name}) but declares "
                            "reads_state = False; remove that declaration")
        return object.__getattribute__(self, name)


def _arrivals(table: RequestTable, stop_time: float | None) -> tuple[list[int], list[float]]:
    """Rows and arrival times [s] in arrival order, ties by request id, those arriving at or after ``stop_time``
    left out (no replica would admit them). (Ties were by row: a workload's rows in another order, same ids and
    arrivals, routed same-instant arrivals in another order, round-robin's too; rows in id order route as before.)"""
    order = np.lexsort((table.request_id, table.arrival_time))
    times = table.arrival_time[order]
    if stop_time is not None:
        order = order[times < stop_time]
        times = times[: len(order)]
    return order.tolist(), times.tolist()


def _read_only(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Read-only views of the request table's columns, for the router: they are the arrays the replicas serve
    from (a router that normalised ``score`` or ``output_tokens`` in place changed the run silently)."""
    views = {}
    for name, values in columns.items():
        view = values.view()
        view.flags.writeable = False
        views[name] = view
    return views


def _route_one(router: Router, row: int, at: float, views, table: RequestTable) -> int:
    """The replica ``router`` sends request ``row`` to, arriving at ``at`` [s]; one-line :class:`UserError` for an
    answer that is no replica index. The router gets a list of its own (copied per call: a router that removed a
    replica from it, or emptied it, took that replica out of every later arrival's list, and then had valid answers
    refused as out of range)."""
    choice = router.route(row, at, list(views))
    try:
        k = -1 if isinstance(choice, bool) else operator.index(choice)  # (True is no replica index, though int)
    except TypeError:
        k = -1
    if not 0 <= k < len(views):
        if isinstance(choice, ReplicaView):  # (its repr, "<ltrsched.sim.cluster.ReplicaState object at 0x...>", said
            # neither what it was nor what to return)
            raise UserError(f"router {router.spec()!r} returned a replica view (replica {choice.index}) for request "
                            f"{table.request_id[row]}, not its index; return the view's .index, a replica index in "
                            f"0..{len(views) - 1}")
        raise UserError(f"router {router.spec()!r} returned {choice!r} for request {table.request_id[row]}; "
                        f"expected a replica index in 0..{len(views) - 1}")
    return k


def _defined_in(policy: Policy) -> str:
    """Where ``policy``'s class is defined, for an error line: ``plugin <file>`` for a plugin's (as the plugin time
    limit's line names it), else ``class <name> of module <module>`` (the Python API's own classes)."""
    module = type(policy).__module__
    file = getattr(sys.modules.get(module), "__file__", None)
    if file and module in plugin_modules():
        return f"plugin {file}"
    return f"class {type(policy).__qualname__} of module {module}"


def _uncopyable_part(policy: Policy) -> str:
    """`` (its attribute 'x', a T)`` for the first attribute of ``policy`` that no deep copy takes, else ``""``."""
    for name, value in list(getattr(policy, "__dict__", {}).items()):
        try:
            copy.deepcopy(value)
        except Exception:  # (whatever the whole copy raised: this part is what raised it)
            kind = type(value)
            named = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
            return f" (its attribute {name!r}, a {named})"
    return ""


def _replica_policies(policy: Policy, replicas: int) -> list[Policy]:
    """``policy`` (prepared) for replica 0 and a deep copy of it for each other replica, so that no two replicas share
    a policy's state. A policy holding something no deep copy takes (a ``threading.Lock``, a generator, an open file)
    is a one-line :class:`UserError` naming it, its file and the attribute; ``copy.deepcopy``'s TypeError was a
    traceback through the cluster, in ``simulate --replicas N`` and sweeps."""
    policies = [policy]
    for _ in range(replicas - 1):
        try:
            policies.append(copy.deepcopy(policy))
        except (TypeError, copy.Error) as exc:
            what = (str(exc).strip().splitlines() or [""])[0]
            raise UserError(
                f"policy {policy.spec()!r} ({_defined_in(policy)}) cannot be copied for each of the {replicas} "
                f"replicas{_uncopyable_part(policy)}: {type(exc).__name__}: {what}; each replica runs a deep copy of "
                "the prepared policy: make such state on first use in rank() (or give the class a __deepcopy__), or "
                "run one replica") from None
    return policies


def _request_tokens(table: RequestTable) -> np.ndarray:
    """Each request's prompt + output tokens [tokens]: what a replica's thrash guard scales by (:func:`_fresh_guards`)."""
    return table.prompt_tokens.astype(np.int64) + table.output_tokens.astype(np.int64)


def _fresh_guards(fleet: Sequence[Replica]) -> list[ThrashGuard] | None:
    """Thrash guards scaled by what each replica is sent (none yet: the router adds each request as it routes it,
    :meth:`ThrashGuard.add`), in place of the whole workload's scale the replica was built with; with it, a thrashing
    replica among N stopped at about N times the preemptions and wasted tokens of the same replica alone. None for
    one replica: it keeps the lone simulator's scale (every request, those arriving after the stop time too), so that
    it stays the lone simulator, thrash stops included."""
    if len(fleet) == 1:
        return None
    for replica in fleet:
        replica.thrash_guard = ThrashGuard(0)
    return [replica.thrash_guard for replica in fleet]


def _route_arrivals(env: simpy.Environment, table: RequestTable, router: Router, views: Sequence[ReplicaState],
                    inboxes: Sequence[Inbox], horizon: Horizon, assigned: np.ndarray, stop_time: float | None,
                    guards: Sequence[ThrashGuard] | None = None):
    """SimPy process: route every request at its arrival time (same-instant arrivals by request id), then
    close the inboxes. ``horizon`` always holds the next arrival still to be routed. ``guards``: each replica's thrash
    guard, given each request routed there as it is (the share grows during the run)."""
    rows, times = _arrivals(table, stop_time)
    tokens = _request_tokens(table).tolist() if guards is not None else None
    horizon.time = times[0] if times else float("inf")
    for j, (row, at) in enumerate(zip(rows, times)):
        if at > env.now:
            yield _ArrivalTimeout(env, at - env.now)
        k = _route_one(router, row, at, views, table)
        assigned[row] = k
        inboxes[k].put(row)
        if guards is not None:
            guards[k].add(1, tokens[row])
        horizon.time = times[j + 1] if j + 1 < len(times) else float("inf")
    for inbox in inboxes:
        inbox.close()


def _route_up_front(table: RequestTable, router: Router, inboxes: Sequence[Inbox], num_gpu_blocks: int,
                    max_model_len: int, assigned: np.ndarray, stop_time: float | None,
                    guards: Sequence[ThrashGuard] | None = None) -> None:
    """Route every request before the run (a router that never reads the replicas' state), so that the
    replicas need not pause at each other's arrivals. ``guards``: each replica's thrash guard, given the requests
    routed there."""
    views = [_BlindView(k, num_gpu_blocks, max_model_len, router) for k in range(len(inboxes))]
    rows, times = _arrivals(table, stop_time)
    for row, at in zip(rows, times):
        assigned[row] = _route_one(router, row, at, views, table)
    rows = np.asarray(rows, dtype=np.int64)
    tokens = _request_tokens(table) if guards is not None else None
    for k, inbox in enumerate(inboxes):
        mine = rows[assigned[rows] == k]
        inbox.put_many(mine)  # (still in arrival order)
        inbox.close()
        if guards is not None:
            guards[k].add(len(mine), int(tokens[mine].sum()))


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

    check_run_arguments(workload, policy, config)
    check_flag(progress, "progress")
    check_argument(router, (Router, type(None)), "router",
                   "a Router object (ltrsched.routers.make_router('round-robin') for a spec), or None for round-robin")
    config = config or SimConfig()
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)):
        raise TypeError(f"replicas must be an integer in 1..{MAX_REPLICAS}, got {shown(replicas)}")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ArgumentValueError(f"replicas must be an integer in 1..{MAX_REPLICAS}, got {replicas!r}")
    replicas = int(replicas)  # (a numpy integer went into the summary and meta as is: summary.json had "2", a string)
    router = router or make_router("round-robin")
    setup = python_setup_run(workload, policy, config)
    as_value_error(check_needs, router, workload.has_column, f"workload {workload.name!r}", kind="router")
    table = setup.table
    n = len(workload)
    columns = table.workload_columns()
    with plugin_time_limit():  # a plugin call that never returns stops the run with one line
        policy.prepare(columns)
        policies = _replica_policies(policy, replicas)  # prepared state included
        router.prepare(_read_only(columns), replicas)

        env = simpy.Environment()
        bar = None
        if progress:
            from ltrsched.progress import progress_bar

            bar = progress_bar(n, f"simulate {policy.name} x{replicas}", "requests", leave=False)
        horizon, ordered = Horizon(), True  # (routed by arrival, ties by id: :func:`_arrivals`; so is every inbox)
        inboxes = [Inbox(env, table, ordered, horizon) for _ in range(replicas)]
        traces = [StepTrace() if config.record_steps else None for _ in range(replicas)]
        fleet = [make_replica(env, setup, policies[k], config, table=inboxes[k].table, trace=traces[k],
                              inbox=inboxes[k], on_progress=bar.update if bar else None) for k in range(replicas)]
        views = [ReplicaState(k, fleet[k], inboxes[k], setup.max_model_len) for k in range(replicas)]
        guards = _fresh_guards(fleet)
        assigned = np.full(n, -1, dtype=np.int64)
        wall = time.perf_counter()
        if router.reads_state:
            env.process(guarded(_route_arrivals(env, table, router, views, inboxes, horizon, assigned,  # first
                                                config.stop_time, guards)))
        else:
            _route_up_front(table, router, inboxes, setup.limits.num_gpu_blocks, setup.max_model_len, assigned,
                            config.stop_time, guards)
        for replica in fleet:
            env.process(replica.run())
        run_to_end(env)  # (env.run(), a plugin's exception raised as raised)
        wall = time.perf_counter() - wall
    if bar is not None:
        bar.close()
    for inbox in inboxes:
        inbox.scatter()
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
        speedup_vs_real_time=speedup_vs_real_time(summary["makespan"], wall),
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
