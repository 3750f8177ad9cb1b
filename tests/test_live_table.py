"""The engine adapter's per-request arrays (pure numpy: no vLLM needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ltrsched.engine.live_table import PAUSED, RUNNING, LiveTable, RequestInfo


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


def test_a_rerun_writes_only_what_changes_and_keeps_the_invariants():
    t = LiveTable()
    for i in range(3):
        t.add(_info(i, 0.0, prompt=4), 0)
    batch, take = np.array([0, 1]), np.array([4, 4])
    computed, pending, gen = t.computed_tokens[batch], t.pending_tokens[batch].copy(), t.generated_tokens[batch]
    assert not t.scheduled(batch, take, computed, np.zeros(0, dtype=np.int64), 0, 1.0, admits=True)
    t.stepped(batch, take, pending, gen, None, 2.0, 1.0)  # both prompts done: first tokens
    assert t.first_token_time[batch].tolist() == [2.0, 2.0] and t.pending_tokens[batch].tolist() == [1, 1]
    for step, now in ((1, 3.0), (2, 4.5)):  # the same two decode on
        one = np.ones(2, dtype=np.int64)
        rerun = t.scheduled(batch, one, t.computed_tokens[batch], batch, step, now, admits=False)
        assert rerun
        t.stepped(batch, one, one, t.generated_tokens[batch], None, now + 0.5, 0.5, one_token_each=True,
                  last_token_at=2.0 if step == 1 else 3.5)
    assert t.max_token_gap[batch].tolist() == [1.5, 1.5] and t.last_token_time[batch].tolist() == [5.0, 5.0]
    assert t.state[batch].tolist() == [RUNNING, RUNNING] and t.max_idle_steps[batch].tolist() == [0, 0]
    # request 2 joins, 1 pauses: not a rerun
    batch2 = np.array([0, 2])
    assert not t.scheduled(batch2, np.array([1, 4]), t.computed_tokens[batch2], batch, 3, 6.0, admits=True)
    assert t.state[1] == PAUSED and t.state[2] == RUNNING and t.max_idle_steps[2] == 3
    known = t.prompt_tokens[:3] + t.generated_tokens[:3]
    t.stepped(batch2, np.array([1, 4]), np.array([1, 4]), t.generated_tokens[batch2], np.array([True, True]),
              7.0, 1.0)
    known = t.prompt_tokens[:3] + t.generated_tokens[:3]
    assert (t.pending_tokens[:3] == known - t.computed_tokens[:3]).all()
