"""Replay a workload on an engine: add each request when its arrival time comes, step the engine.

One loop serves both drivers, so what the tests check with the emulated engine is what the real one runs:

* :class:`ltrsched.engine.emulate.EmulatedDriver`: vLLM's scheduler + the adapter, answered by a
  step-time model, on a virtual clock;
* :class:`ltrsched.engine.runner.VllmDriver`: vLLM's offline engine (``LLMEngine``) on a CPU or GPU, wall clock.

By default every request is served with ``ignore_eos`` and ``max_tokens`` = its output length (plus any
policy overhead tokens), so every policy serves identical work. A driver whose ``output_cap`` is set (the
real engine with ``eos="model"``) lets the model stop at its own EOS, at most ``output_cap`` tokens.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from ltrsched.arguments import check_workload_and_policy
from ltrsched.engine.live_table import RequestInfo
from ltrsched.engine.results import engine_result
from ltrsched.errors import ArgumentValueError, UserError
from ltrsched.policies import limit_rules
from ltrsched.policies.base import Policy
from ltrsched.policies.batching import MAX_STALLED_STEPS, ThrashGuard
from ltrsched.policies.needs import check_needs
from ltrsched.plugin_watchdog import plugin_time_limit
from ltrsched.results import RunResult
from ltrsched.workloads.file_rows import file_rows, request_named as request_in_file
from ltrsched.workloads.schema import Workload


class Driver(Protocol):
    """An engine the replay loop can feed and step. One driver serves several runs, one at a time."""

    scheduler: Any  # the PolicyScheduler inside the engine

    def begin(self, policy: Policy) -> None: ...  # a new run under ``policy`` (the engine is idle)

    def now(self) -> float: ...  # the run's clock [s]

    def start(self) -> None: ...  # t = 0 of the run (after the requests arriving at 0 were added)

    def add(self, info: RequestInfo) -> None: ...

    def has_unfinished(self) -> bool: ...

    def step(self) -> None: ...

    def wait_until(self, t: float) -> None: ...

    def abort(self, request_ids: list[int]) -> None: ...  # those still in the engine, their KV freed


def request_infos(workload: Workload, extra_output_tokens: int) -> list[RequestInfo]:
    """One :class:`RequestInfo` per workload row, by arrival, tied arrivals by request id (the engine serves ``output +
    extra`` tokens). The simulator's competition order breaks ties so (``LiveView.arrival_ordered``); by row order,
    a file whose tied rows were not in id order had the engine's live set flagged out of order, and the real engine
    drew each request's random prompt ids (:meth:`~ltrsched.engine.runner.VllmDriver.add`) by row: sorting the file
    changed what a request's prompt held, and so, with ``eos="model"``, how long it ran."""
    cols = workload.policy_columns(extra_output_tokens)
    requested = workload.df["output_tokens"].to_numpy()
    infos = [
        RequestInfo(int(cols["request_id"][i]), float(cols["arrival_time"][i]), int(cols["prompt_tokens"][i]),
                    int(cols["output_tokens"][i]), int(requested[i]), float(cols["score"][i]),
                    float(cols["po_estimate"][i]), float(cols["predicted_length"][i]))
        for i in range(workload.df.height)
    ]
    return sorted(infos, key=lambda r: (r.arrival_time, r.request_id))


def check_fits(workload: Workload, scheduler: Any, extra_output_tokens: int = 0, output_cap: int | None = None,
               fix: str = "", extra_from: str = "the policy") -> None:
    """Reject, before a run, requests longer than the engine's ``max_model_len`` or its KV cache (a one-line
    :class:`~ltrsched.errors.ArgumentValueError`: a ValueError to a Python caller of ``emulate``/``replay``). With
    ``output_cap`` (requests stop at the model's EOS) a request may generate up to that many tokens; the
    policy's ``extra_output_tokens`` (PO's estimate phase) count too: vLLM stops a request at
    ``max_model_len``, so one that does not fit would silently be served fewer tokens than planned. ``fix``: what
    to do about a request beyond the context, appended to its line. ``extra_from``: who adds the extra tokens, as the
    lines name it (``validate``, of several policies: the one that adds most)."""
    total = check_context(workload, scheduler.max_model_len, extra_output_tokens, output_cap, fix, extra_from)
    limits = scheduler.limits
    blocks, usable = limits.most_blocks_held(total), limits.blocks_alone  # (the simulator's rule: BatchLimits)
    too_big = np.flatnonzero(blocks > usable)
    if len(too_big):
        i = int(too_big[0])
        # (the tokens the blocks hold, where they are not the workload's own: a request of 161 tokens was said to
        # need 11 blocks of 16, PO's 15 estimate tokens or the output cap the reason, and neither named)
        counted = []
        if output_cap is not None:
            counted.append(f"its output counted at the cap of {output_cap} tokens")
        if extra_output_tokens:
            counted.append(limit_rules.extra_tokens_named(extra_output_tokens, extra_from))
        held = f" for {int(total[i])} tokens, " + " and ".join(counted) if counted else ""
        raise ArgumentValueError(f"{len(too_big)} request(s) can never fit the engine's KV cache of "
                                 f"{usable} usable blocks (first: {request_named(workload, i)} needs "
                                 f"{int(blocks[i])} blocks{held})")


def request_named(workload: Workload, i: int) -> str:
    """Request ``i`` (0-based row of ``workload``'s table) as a refusal names it: its id, and where the workload was
    read from a file its place there (``request 0 in row 1 of long.csv``, the simulator's words:
    :func:`~ltrsched.workloads.file_rows.request_named`). "request 0" alone named a number the loader gives a file
    without ids, and once ``-n`` sampled a file, none of its rows."""
    request_id = int(workload.df["request_id"][i])
    rows = file_rows(workload.meta)
    source = workload.meta.get("source")
    return request_in_file(request_id, rows.place(request_id) if rows is not None else None,
                           source if isinstance(source, str) else None)


def check_context(workload: Workload, max_model_len: int, extra_output_tokens: int = 0, output_cap: int | None = None,
                  fix: str = "", extra_from: str = "the policy") -> np.ndarray:
    """One-line :class:`~ltrsched.errors.ArgumentValueError` (a ValueError to a Python caller, a UserError to the
    CLI) for requests whose prompt + output (``output_cap`` if set, plus the policy's ``extra_output_tokens``: vLLM
    generates them in the same request and stops it at ``max_model_len``) exceed ``max_model_len`` [tokens] (the rule:
    :func:`ltrsched.policies.limit_rules.beyond_context`), ``fix`` appended; returns every request's total."""
    prompt = workload.df["prompt_tokens"].to_numpy()
    output = workload.df["output_tokens"].to_numpy() if output_cap is None else output_cap
    # (the policy's extra tokens count here and not in the simulator's check, ltrsched.sim.simulate._check_fits:
    # deliberate, vLLM stops a request at max_model_len, the extra tokens included; the simulator runs the paper's PO
    # experiments, whose workloads hold requests within 15 tokens of the profile's context: see the comment there)
    too_long = limit_rules.beyond_context(prompt, output, max_model_len, extra_output_tokens)
    if len(too_long):
        i = int(too_long[0])
        total = int(prompt[i]) + int(output if output_cap is not None else output[i]) + extra_output_tokens
        extra = (", " + limit_rules.extra_tokens_named(extra_output_tokens, extra_from)) if extra_output_tokens else ""
        raise ArgumentValueError(f"{len(too_long)} request(s) exceed the engine's max_model_len {max_model_len} "
                                 f"tokens (first: {request_named(workload, i)}, {total} tokens{extra})"
                                 f"{fix}")
    return prompt + output + extra_output_tokens  # (each at most max_model_len now: no wrap)


def replay(workload: Workload, policy: Policy, driver: Driver, config: Any, host: str,
           progress: bool = False, progress_label: str | None = None) -> RunResult:
    """Serve ``workload`` under ``policy`` on ``driver``; the result has the simulator's schema
    (``ltrsched.results.RunResult``) and the adapter's step log. ``progress``: show requests finished
    (:func:`ltrsched.progress.progress_bar`), labelled ``progress_label`` (default ``engine POLICY``). A one-line
    :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) for arguments that cannot run together: a policy
    that needs a column the workload lacks, requests beyond the engine's context or KV cache (:func:`check_fits`)."""
    check_workload_and_policy(workload, policy)
    try:
        check_needs(policy, workload.has_column, f"workload {workload.name!r}")
    except UserError as exc:  # (policies' check, shared with the CLI: a ValueError to a Python caller, the same line)
        raise ArgumentValueError(str(exc)) from None
    output_cap = getattr(driver, "output_cap", None)
    # (the extra tokens named by their policy: "the policy's extra output tokens" left PO unnamed)
    check_fits(workload, driver.scheduler, policy.extra_output_tokens, output_cap, getattr(driver, "context_fix", ""),
               f"policy {policy.name}")
    infos: list[RequestInfo] = []
    i = 0  # requests added to the engine so far
    bar = None
    try:
        with plugin_time_limit():  # a plugin call that never returns stops the run with one line
            policy.prepare(workload.policy_columns(policy.extra_output_tokens))
            infos = request_infos(workload, policy.extra_output_tokens)
            driver.begin(policy)
            if progress:
                from ltrsched.progress import progress_bar

                bar = progress_bar(len(infos), progress_label or f"engine {policy.name}", "requests", leave=False)
            wall = time.perf_counter()
            while i < len(infos) and infos[i].arrival_time <= 0:  # a burst is in the queue before the clock starts
                driver.add(infos[i])
                i += 1
            driver.start()
            finished = 0
            stalled = 0  # consecutive engine steps that computed no token
            # (vLLM V1 preempts by recompute only)
            guard = ThrashGuard(len(infos), sum(r.prompt_tokens + r.output_tokens for r in infos))
            discarded = 0  # the table's discarded tokens at the last preemption
            for_cap = 0  # the scheduler's preemptions forced by the resident-slot cap, at the last preemption
            while True:
                now = driver.now()
                while i < len(infos) and infos[i].arrival_time <= now:
                    driver.add(infos[i])
                    i += 1
                if not driver.has_unfinished():
                    if i == len(infos):
                        break
                    driver.wait_until(infos[i].arrival_time)
                    continue
                log = driver.scheduler.log
                logged = len(log)
                driver.step()
                computed = 0  # tokens the step computed (0 when it logged no step)
                if len(log) > logged:
                    computed = int(log.last("num_prefill_tokens")) + int(log.last("num_decode_seqs"))
                    evicted = int(log.last("num_evicted"))
                    if evicted:
                        scheduler = driver.scheduler
                        table = scheduler.table
                        # (the step's index: the simulator's numbering, so that both stop a run with the same line)
                        guard.preempted(evicted, evicted, scheduler.num_steps - 1, policy, table.num_live,
                                        lambda: int(table.generated_tokens.sum()), table.discarded_tokens - discarded,
                                        scheduler.num_evicted_for_cap - for_cap)
                        discarded, for_cap = table.discarded_tokens, scheduler.num_evicted_for_cap
                stalled = 0 if computed else stalled + 1
                if stalled >= MAX_STALLED_STEPS:
                    raise RuntimeError(
                        f"the engine made no progress for {stalled} consecutive steps at t={driver.now():.3f} s with "
                        f"{driver.scheduler.table.num_live} live requests (a bug in the adapter or the policy "
                        f"{type(policy).__name__}; please report it with the workload and configuration)")
                if bar is not None:
                    done = len(infos) - driver.scheduler.table.num_live - (len(infos) - i)
                    bar.update(done - finished)
                    finished = done
            wall = time.perf_counter() - wall
    except BaseException:  # (an error, Ctrl-C): the requests added leave the engine, which is idle for the next run
        _abandon(driver, infos[:i])
        raise
    finally:
        if bar is not None:
            bar.close()
    return engine_result(workload, policy, driver.scheduler, host=host, config=config, wall_time_s=wall,
                         output_cap=output_cap)


def _abandon(driver: Driver, added: list[RequestInfo]) -> None:
    """Abort the requests a failed run added (``added``) and end its run on ``driver``'s scheduler: they stayed in the
    engine, so the next run on it (one engine serves several) failed with "begin_run needs an idle engine", and their KV
    stayed allocated. An engine that cannot abort them (its core died with the error) is left as it is: the run's own
    error is the one to report."""
    if not added:
        return
    try:
        driver.scheduler.abandon_run()
        driver.abort([info.request_id for info in added])
    except Exception:
        pass
