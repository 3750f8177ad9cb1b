"""The engine adapter's per-request arrays (pure numpy: no vLLM needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ltrsched.engine.live_table import _COLUMNS, PAUSED, RUNNING, LiveTable, RequestInfo


def _info(rid: int, arrival: float, prompt: int = 10) -> RequestInfo:
    return RequestInfo(request_id=rid, arrival_time=arrival, prompt_tokens=prompt, output_tokens=5,
                       requested_output_tokens=5)


@pytest.mark.parametrize("arrivals,ids,ordered", [
    ([0.0, 0.0, 1.0], [0, 1, 2], True),      # ties by id
    ([0.0, 0.0, 1.0], [1, 0, 2], False),     # a tie out of id order
    ([0.0, 2.0, 1.0], [0, 1, 2], False),     # an earlier arrival added later
    ([0.0, np.nan, 1.0], [0, 1, 2], False),  # unknown arrival
])
def test_arrival_order_is_vouched_for_only_when_requests_came_in_it(arrivals, ids, ordered):
    t = LiveTable(capacity=2)
    for rid, arrival in zip(ids, arrivals):
        t.add(_info(rid, arrival), 0)
    assert t.arrival_ordered is ordered


def _thirty_scheduled() -> LiveTable:
    """30 requests of 4-token prompts, all scheduled at step 0: request 100 + s has computed s % 4 + 1 tokens."""
    t = LiveTable(capacity=4)
    for i in range(30):
        t.add(_info(100 + i, 0.0, prompt=4), 0)
    batch = np.arange(30)
    t.scheduled(batch, np.arange(30) % 4 + 1, t.computed_tokens[batch], np.zeros(0, dtype=np.int64), 0, 1.0,
                admitted=batch)
    return t


@pytest.mark.parametrize("num_finished", [2, 20])  # scalar writes, array writes
def test_finished_returns_the_ids_and_computed_tokens_it_read_in_its_pass(num_finished):
    """The host frees the finished requests' KV blocks and tells the policy their ids from what ``finished`` read in
    its pass over them (before: two more passes over the finished slots, one per column)."""
    t = _thirty_scheduled()
    gone = [7, 3, 29, 11, 0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18][:num_finished]
    ids, computed = t.finished(gone if num_finished < 16 else np.array(gone), 2.0)
    assert ids == [100 + s for s in gone] and computed == [s % 4 + 1 for s in gone]
    assert t.num_live == 30 - num_finished and t.finish_time[gone].tolist() == [2.0] * num_finished


@pytest.mark.parametrize("num_evicted", [2, 20])  # scalar writes, array writes
def test_preempted_counts_the_computed_tokens_it_throws_away(num_evicted):
    """The thrash guard's waste rule reads ``discarded_tokens`` (the engine replay): the evicted slots' computed
    tokens, summed over every preemption of the run, as the simulator counts them."""
    t = _thirty_scheduled()
    evicted = np.arange(num_evicted)
    t.preempted(evicted)
    t.preempted(np.array([29]))
    assert t.discarded_tokens == int((evicted % 4 + 1).sum()) + 29 % 4 + 1
    assert t.computed_tokens[evicted].tolist() == [0] * num_evicted


def test_a_rerun_writes_only_what_changes_and_keeps_the_invariants():
    t = LiveTable()
    for i in range(3):
        t.add(_info(i, 0.0, prompt=4), 0)
    batch, take = np.array([0, 1]), np.array([4, 4])
    computed, pending = t.computed_tokens[batch], t.pending_tokens[batch].copy()
    assert not t.scheduled(batch, take, computed, np.zeros(0, dtype=np.int64), 0, 1.0, admitted=batch)
    t.stepped(batch, take, pending, None, 2.0, 1.0)  # both prompts done: first tokens
    assert t.first_token_time[batch].tolist() == [2.0, 2.0] and t.pending_tokens[batch].tolist() == [1, 1]
    for step, now in ((1, 3.0), (2, 4.5)):  # the same two decode on
        one = np.ones(2, dtype=np.int64)
        rerun = t.scheduled(batch, one, t.computed_tokens[batch], batch, step, now)
        assert rerun
        t.stepped(batch, one, one, None, now + 0.5, 0.5, one_token_each=True)
    assert t.max_token_gap[batch].tolist() == [1.5, 1.5] and t.last_token_time[batch].tolist() == [5.0, 5.0]
    assert t.state[batch].tolist() == [RUNNING, RUNNING] and t.max_idle_steps[batch].tolist() == [0, 0]
    # request 2 joins, 1 pauses: not a rerun
    batch2 = np.array([0, 2])
    assert not t.scheduled(batch2, np.array([1, 4]), t.computed_tokens[batch2], batch, 3, 6.0, admitted=batch2[1:])
    assert t.state[1] == PAUSED and t.state[2] == RUNNING and t.max_idle_steps[2] == 3
    known = t.prompt_tokens[:3] + t.generated_tokens[:3]
    t.stepped(batch2, np.array([1, 4]), np.array([1, 4]), np.array([True, True]), 7.0, 1.0)
    known = t.prompt_tokens[:3] + t.generated_tokens[:3]
    assert (t.pending_tokens[:3] == known - t.computed_tokens[:3]).all()


def _per_step_reference(steps, size):
    """The result-only columns as the per-step updates made them before they were logged (the reference)."""
    first_sched = np.full(size, np.nan)
    first_tok, last_tok, gap = np.full(size, np.nan), np.full(size, np.nan), np.zeros(size)
    preempted = np.zeros(size, dtype=np.int64)
    for now, batch, sampled, admitted, evicted in steps:
        preempted[evicted] += 1
        first_sched[admitted] = np.fmin(first_sched[admitted], now)
        got = batch if sampled is None else batch[sampled.astype(bool)]
        first_tok[got] = np.fmin(first_tok[got], now)
        gap[got] = np.fmax(gap[got], now - last_tok[got])
        last_tok[got] = now
    return {"first_scheduled_time": first_sched, "first_token_time": first_tok, "last_token_time": last_tok,
            "max_token_gap": gap, "num_preemptions": preempted}


@pytest.mark.parametrize("flush_entries", [1, 7, 50, 1 << 14])
@pytest.mark.parametrize("num_slots", [40, 70_000])  # 16-bit slots, and beyond (two radix passes)
def test_logged_result_columns_equal_the_per_step_updates(monkeypatch, flush_entries, num_slots):
    """The token times, first scheduling and preemption counts logged per step and applied in bulk (every few
    entries, or only when read) are exactly the per-step updates' values."""
    from ltrsched.engine import result_events

    monkeypatch.setattr(result_events, "FLUSH_ENTRIES", flush_entries)
    rng = np.random.default_rng(flush_entries)
    cols = {name: np.full(num_slots, fill, dtype=dtype) for name, (dtype, fill) in _COLUMNS.items()}
    events = result_events.ResultEvents()
    steps, now = [], 0.0
    pool = rng.choice(num_slots, 30, replace=False)  # a few slots, so that each gets many tokens
    for k in range(200):
        now += float(rng.choice([0.5, 0.013, 1e-9, 3.0]))  # (gaps of very different sizes)
        batch = rng.permutation(pool)[: rng.integers(1, 30)]
        sampled = [None, rng.random(len(batch)) < 0.7, (rng.random(len(batch)) < 0.5).astype(np.int64)][k % 3]
        admitted = batch[: rng.integers(0, 3)]
        evicted = rng.choice(pool, rng.integers(0, 3), replace=False)
        steps.append((now, batch, sampled, admitted, evicted))
        events.preempted(evicted)
        events.first_scheduled(now, admitted)
        if events.tokens(now, batch, sampled):
            events.flush(cols)
    events.flush(cols)
    expected = _per_step_reference(steps, num_slots)
    for name, values in expected.items():
        np.testing.assert_array_equal(cols[name], values, err_msg=name)


def test_counts_added_when_read_equal_the_per_step_updates(monkeypatch):
    """Generated counts and run times are logged per step and added when read (a policy's view, a preemption,
    the results) or every few steps; pending counts change only for the few prompt chunks. Whatever the
    reads, each equals the per-step update: generated + tokens made, run_time + the step's duration."""
    from ltrsched.engine import live_table

    monkeypatch.setattr(live_table, "_RUN_TIMES_KEPT", 5)
    rng = np.random.default_rng(7)
    t = LiveTable(capacity=4)
    n = 12
    for i in range(n):
        t.add(_info(i, 0.0, prompt=1), 0)
    gen, run, pend = np.zeros(n, dtype=np.int64), np.zeros(n), np.ones(n, dtype=np.int64)
    now = 0.0
    for step in range(40):
        batch = rng.permutation(n)[: rng.integers(1, n)]
        take = np.ones(len(batch), dtype=np.int64)
        pending = pend[batch].copy()
        dt = float(rng.choice([0.01, 0.3, 1e-7]))
        now += dt
        for j in range(len(batch)):  # new prompt chunks (as after a preemption) beside those left from before
            if pending[j] == 1 and rng.random() < 0.3:
                pending[j] = int(rng.integers(2, 9))
        pos = [j for j in range(len(batch)) if pending[j] != 1]  # the chunks: some finish, some not
        for j in pos:
            take[j] = int(rng.integers(1, pending[j] + 1))
        chunks = (pos, [int(take[j]) for j in pos], [int(pending[j]) for j in pos], [int(batch[j]) for j in pos])
        made = take == pending
        t.pending_tokens[batch] = pending  # (the chunks' pending counts, as a preemption or an arrival sets them)
        t.stepped(batch, take, pending, None if made.all() else live_table.AS_PLANNED, now, dt,
                  chunks=chunks if pos else None, one_token_each=not pos)
        gen[batch] += made
        run[batch] += dt
        pend[batch] = pending - take + made
        if step % 7 == 3:  # a read through the view's columns, at some steps
            cols = t.live_columns(step)
            assert cols["generated_tokens"](t.live).tolist() == gen[t.live].tolist()
            assert cols["run_time"](None)[:n].tolist() == run.tolist()
        assert t.pending_tokens[:n].tolist() == pend.tolist()  # (never deferred)
    assert t.generated_tokens[:n].tolist() == gen.tolist() and t.run_time[:n].tolist() == run.tolist()
    assert t.results()["generated_tokens"].tolist() == gen.tolist()


def test_a_settled_step_writes_what_the_general_update_writes():
    """``scheduled(settled=True)`` (the batch's residents are the last batch's members left) touches only the
    admitted members; the table ends as the general update leaves it."""
    tables = [LiveTable(), LiveTable()]
    for t in tables:
        for i in range(6):
            t.add(_info(i, 0.0, prompt=3), 0)
    prev = np.zeros(0, dtype=np.int64)
    steps = [  # (batch, admitted, finished after the step)
        (np.array([0, 1, 2]), np.array([0, 1, 2]), [1]),
        (np.array([0, 2, 3]), np.array([3]), []),     # 1 finished, 3 admitted (idle since step 0)
        (np.array([0, 2, 3]), None, [0]),             # a rerun
        (np.array([2, 3, 4, 5]), np.array([4, 5]), []),
    ]
    for step, (batch, admitted, finished) in enumerate(steps):
        for t, settled in zip(tables, (True, False)):
            gone = np.array(finished_before, dtype=np.int64) if step and finished_before else None
            t.scheduled(batch, np.ones(len(batch), dtype=np.int64), t.computed_tokens[batch], prev, step + 2,
                        float(step), admitted, gone, settled)
            if finished:
                t.finished(np.array(finished), float(step) + 0.5)
        prev, finished_before = batch, finished
    for name in ("state", "resident", "last_run_step", "max_idle_steps", "computed_tokens", "first_scheduled_time"):
        np.testing.assert_array_equal(getattr(tables[0], name), getattr(tables[1], name), err_msg=name)
    assert tables[0].live.tolist() == tables[1].live.tolist() == [2, 3, 4, 5] and tables[0].num_live == 4
