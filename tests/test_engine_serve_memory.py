"""A server's scheduler drops its finished requests' rows (``EngineSetup.compact_rows``) and serves exactly as before.

Run as a script it measures the adapter's memory per served request with and without the compaction (tracemalloc):
``PYTHONPATH=$PWD:tests python tests/test_engine_serve_memory.py 20000 [POLICY]`` (by default ``ltr``).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from ltrsched.policies import make_policy

#: Requests each test run serves.
_N = 1500


def _requests(n: int, seed: int = 7) -> list[tuple[int, int, int, float, int]]:
    """``n`` requests, each ``(arrival step, prompt tokens, max tokens, score, abort after this many steps or 0)``,
    arriving in bursts over the steps (the live count swings between a few and ~80), every 97th aborted a few steps
    after it arrives."""
    rng = np.random.default_rng(seed)
    out, step = [], 0
    while len(out) < n:
        burst = int(rng.choice([1, 1, 2, 30]))  # (a burst now and then: the live rows outnumber the finished)
        for _ in range(min(burst, n - len(out))):
            abort = int(rng.integers(1, 6)) if len(out) % 97 == 96 else 0
            out.append((step, int(rng.integers(8, 60)), int(rng.integers(1, 10)), float(rng.random()), abort))
        step += int(rng.integers(2, 9))
    return out


def serve(spec: str, compact_rows: int | None, requests: list, log_steps: int = 0, each_step=None) -> dict:
    """Serve ``requests`` under ``spec`` on the emulated engine built as a server's scheduler (strict: a step that
    differs from its plan raises), the HTTP client's score as ``vllm_xargs`` carries it (no ltrsched request id: the
    scheduler numbers the requests). Returns each step's plan (the tokens vLLM scheduled per request, in its order,
    and the preemptions) with the table's live requests after it (ids, states, computed tokens, in the view's
    order), each request's output tokens and finish reason, and the largest table size and live count seen.
    ``log_steps``: the steps the step log keeps (0: a server's, :data:`~ltrsched.engine.setup.SERVE_LOG_STEPS`);
    ``each_step``: called with the scheduler after each step."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request, RequestStatus

    from ltrsched.engine.config import EngineConfig
    from ltrsched.engine.emulate import VirtualClock, build_scheduler
    from ltrsched.engine.setup import SERVE_LOG_STEPS, EngineSetup
    from ltrsched.engine.vllm_compat import model_runner_output

    clock = VirtualClock()
    scheduler = build_scheduler(
        EngineConfig(num_gpu_blocks=100, max_num_batched_tokens=256, max_num_seqs=32),
        EngineSetup(make_policy(spec), clock, strict=True, max_log_steps=log_steps or SERVE_LOG_STEPS,
                   compact_rows=compact_rows))
    plans, tokens, reasons, aborts = [], {}, {}, {}
    biggest, peak, k, step = 0, 0, 0, 0
    while k < len(requests) or scheduler.get_num_unfinished_requests():
        while k < len(requests) and requests[k][0] <= step:
            _, prompt, max_tokens, score, abort = requests[k]
            rid = f"r{k}"
            scheduler.add_request(Request(request_id=rid, prompt_token_ids=[0] * prompt, pooling_params=None,
                                          sampling_params=SamplingParams(max_tokens=max_tokens, ignore_eos=True,
                                                                         extra_args={"ltrsched_score": score}),
                                          arrival_time=clock.now))
            if abort:
                aborts.setdefault(step + abort, []).append(rid)
            k += 1
        for rid in aborts.pop(step, []):
            scheduler.finish_requests([rid], RequestStatus.FINISHED_ABORTED)
        biggest, peak = max(biggest, scheduler.table.size), max(peak, scheduler.table.num_live)
        out = scheduler.schedule()
        t = scheduler.table
        live = t.live  # (the request id -> slot map holds the live slots, and only them)
        assert sorted(scheduler._slot.values()) == live.tolist()
        ids = list(out.num_scheduled_tokens)
        plans.append((list(out.num_scheduled_tokens.items()), sorted(out.preempted_req_ids),
                      t.request_id[live].tolist(), t.state[live].tolist(), t.computed_tokens[live].tolist()))
        clock.now += 0.01 + 1e-4 * sum(out.num_scheduled_tokens.values())
        sampled = [[] if scheduler.requests[r].is_prefill_chunk else [0] for r in ids]
        got = scheduler.update_from_output(out, model_runner_output(ids, sampled))
        for engine_outputs in got.values():
            for o in engine_outputs.outputs:
                tokens[o.request_id] = tokens.get(o.request_id, 0) + len(o.new_token_ids)
                if o.finish_reason is not None:
                    reasons[o.request_id] = o.finish_reason
        if each_step is not None:
            each_step(scheduler)
        step += 1
    return {"plans": plans, "tokens": tokens, "reasons": reasons, "biggest": biggest, "peak": peak,
            "mismatches": sum(scheduler.log.columns["mismatches"]), "scheduler": scheduler}


@pytest.fixture(scope="module")
def requests():
    return _requests(_N)


@pytest.mark.parametrize("spec", ["ltr:starve=20,quantum=3", "mlfq"])
@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_a_servers_table_stays_bounded_and_serves_as_before(requests, spec):
    """A server's scheduler kept a row for every request it served (348 bytes each: ~1.7 GB after ~5 million
    requests, docs/serving.md). Now it drops the finished rows once they are the majority of at least
    ``compact_rows``: the table stays bounded, and the steps (what vLLM scheduled per request, in order, and the
    preemptions, and the live requests' ids, states and computed tokens after each) and every request's tokens are
    those of the run that keeps every row."""
    from vllm.v1.engine import FinishReason

    kept = serve(spec, None, requests)
    small = serve(spec, 64, requests)
    assert kept["biggest"] == _N  # (a row per request served)
    # (at most twice the floor or the live rows, and the burst that arrived since the last step)
    assert small["biggest"] <= 2 * max(64, small["peak"]) + 30 and small["biggest"] < _N // 5, (
        small["biggest"], small["peak"])
    assert small["plans"] == kept["plans"] and small["tokens"] == kept["tokens"]
    assert small["reasons"] == kept["reasons"] and small["mismatches"] == kept["mismatches"] == 0
    aborted = {f"r{k}" for k, r in enumerate(requests) if r[4]}
    assert len(aborted) == _N // 97
    for k, (_, _, max_tokens, _, _) in enumerate(requests):
        rid = f"r{k}"
        if rid not in aborted:  # (an aborted request's output, if any, is cut short)
            assert small["tokens"][rid] == max_tokens and small["reasons"][rid] == FinishReason.LENGTH, rid


def _windows(policy) -> dict[str, int]:
    """The length of each :class:`~ltrsched.policies.id_array.IdArray` of ``policy`` (and of the policy it wraps, and
    of its kept order's), by attribute name."""
    from ltrsched.policies.id_array import IdArray

    out = {}
    for name, value in vars(policy).items():
        if isinstance(value, IdArray):
            out[f"{type(policy).__name__}.{name}"] = len(value.data)
        elif name in ("inner", "_front") and value is not None:
            out.update(_windows(value))
    return out


@pytest.mark.parametrize("spec", ["ltr:starve=20,quantum=3", "mlfq:promote=5,starve=30", "class"])
@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_a_servers_policies_hold_only_the_ids_still_asked_for(requests, spec, monkeypatch):
    """A server numbers its requests by arrival for ever, and the policies' memory by request id (``IdArray``) held
    every id up to the latest: 8-16 bytes per request served (docs/serving.md). Now each holds a window from about the
    lowest id it may still ask for (the live requests', and those its own state names): with windows of at least 64
    ids, serving 1,500 requests (58-147 live at the peak) they stay within a few hundred ids (else each reaches 1,500)."""
    from ltrsched.policies import id_array

    monkeypatch.setattr(id_array, "MIN_WINDOW", 64)
    widest: dict[str, int] = {}

    def measure(scheduler) -> None:
        for name, n in _windows(scheduler.ranking_policy).items():
            widest[name] = max(widest.get(name, 0), n)

    got = serve(spec, 64, requests, each_step=measure)
    assert got["mismatches"] == 0 and len(got["tokens"]) > _N - _N // 97
    assert widest, spec
    assert max(widest.values()) < _N // 2, (widest, got["peak"])  # (544 ids at most, at a peak of 147 live)


def test_a_servers_setup_compacts_and_a_runs_does_not():
    from ltrsched.engine.setup import SERVE_COMPACT_ROWS, EngineSetup, take_setup

    assert take_setup({"ltrsched": {"policy": "fcfs"}}).compact_rows == SERVE_COMPACT_ROWS == 4096
    assert EngineSetup(make_policy("fcfs")).compact_rows is None


def _measure(n: int, spec: str = "ltr") -> None:
    """Print the adapter's memory per served request (tracemalloc: what the scheduler holds after serving ``n``
    requests less what it holds after ``n // 4``, over the difference), with and without the compaction, under the
    policy ``spec`` (its own memory included: ``ltr:starve=200,quantum=10`` keeps some by request id). The step log
    keeps its last 1,000 steps here, so that only the per-request memory grows."""
    import tracemalloc

    from ltrsched.engine.setup import SERVE_COMPACT_ROWS

    reqs = _requests(n)
    serve(spec, None, reqs[:200])  # (vLLM's and numpy's one-time allocations)
    for rows in (None, SERVE_COMPACT_ROWS):
        held = []
        for m in (n // 4, n):
            tracemalloc.start()
            scheduler = serve(spec, rows, reqs[:m], log_steps=1000)["scheduler"]  # (the test's records freed)
            held.append(tracemalloc.get_traced_memory()[0])
            del scheduler
            tracemalloc.stop()
        print(f"compact_rows={rows}: {(held[1] - held[0]) / (n - n // 4):.1f} bytes per served request "
              f"({held[0]:,} bytes held after {n // 4:,} requests, {held[1]:,} after {n:,})")


if __name__ == "__main__":
    _measure(int(sys.argv[1]) if len(sys.argv) > 1 else 20000, *sys.argv[2:3])
