"""The replica's live listing after finishes: dropped by position, the rest in order (ltrsched.sim.live_set)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_workload
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim import replica as replica_module
from ltrsched.sim.live_set import MIN_LIVE_TO_SORT, drop_positions


def _reference(live: np.ndarray, at: np.ndarray) -> np.ndarray:
    keep = np.ones(len(live), dtype=bool)
    keep[at] = False
    return live[keep]


@pytest.mark.parametrize("seed", range(40))
def test_drop_positions_keeps_the_rest_in_order(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200)) if seed % 3 else int(rng.integers(4096, 9000))  # (sorted from 4,096 live)
    live = rng.permutation(10 * n)[:n].astype(np.int64)
    live.flags.writeable = False
    shape = seed % 4  # scattered, a head run, a tail run, a head and a tail run with a few between
    # any count, many, or a few (each run between them copied, from 1,000 live)
    d = [int(rng.integers(1, n + 1)), min(n, 40 + int(rng.integers(0, 20))), min(n, 2 + seed % 4)][seed // 3 % 3]
    if shape == 0:
        at = rng.choice(n, d, replace=False)
    else:
        h = int(rng.integers(0, d + 1)) if shape != 2 else 0
        t = d - h if shape == 2 else int(rng.integers(0, d - h + 1))
        runs = np.concatenate((np.arange(h), np.arange(n - t, n)))
        between = np.setdiff1d(np.arange(n), runs)
        extra = rng.choice(between, min(d - h - t, len(between)), replace=False) if shape == 3 else []
        at = np.unique(np.concatenate((runs, extra)).astype(np.int64))
        rng.shuffle(at)
    out = drop_positions(live, at)
    assert out is not live
    assert out.tolist() == _reference(live, at).tolist()


def test_drop_positions_slices_a_head_or_tail_run_without_a_copy():
    live = np.arange(100, 100 + MIN_LIVE_TO_SORT, dtype=np.int64)
    n = len(live)
    for at in ([0], [n - 1], [2, 0, 1], [n - 2, n - 1]):
        out = drop_positions(live, np.array(at))
        assert np.shares_memory(out, live) and out is not live
        assert out.tolist() == _reference(live, np.array(at)).tolist()
    out = drop_positions(live, np.array([0, 4, n - 1]))  # one in the middle: a copy
    assert not np.shares_memory(out, live) and out.tolist() == live[1:-1][np.arange(n - 2) != 3].tolist()


def test_drop_positions_rejects_a_position_outside_the_listing():
    live = np.arange(MIN_LIVE_TO_SORT, dtype=np.int64)
    n = len(live)
    for at in ([n], [-1], [0, n], [-1, 2], [3, n + 2]):
        with pytest.raises(IndexError):
            drop_positions(live, np.array(at))


@pytest.mark.parametrize("spec, one_token", [("fcfs", True), ("fcfs", False), ("srtf", False), ("mlfq", False)])
def test_the_replica_drops_finishes_by_position_as_the_state_filter_would(monkeypatch, spec, one_token):
    """Every live listing the replica freezes after a finish is the one before it less its finished requests, in
    order; a FCFS burst's finishes (the head of the listing) leave a slice of it, not a copy: no pass over the
    live requests."""
    made = []
    real = replica_module.Replica._new_live

    def spy(self, live):
        made.append((live, self.t.state.copy()))
        return real(self, live)

    monkeypatch.setattr(replica_module.Replica, "_new_live", spy)
    n = 2 * MIN_LIVE_TO_SORT if one_token else MIN_LIVE_TO_SORT + 200  # (below it, the state filter)
    outputs = np.ones(n) if one_token else 1 + np.arange(n) % 3
    wl = make_workload(np.full(n, 8), outputs, np.zeros(n))
    simulate(wl, make_policy(spec), SimConfig(max_num_batched_tokens=2048, max_num_seqs=256) if one_token
             else SimConfig(max_num_batched_tokens=64, max_num_seqs=16, stop_time=5.0))
    finishes = slices = by_position = 0
    for (before, _), (after, state) in zip(made, made[1:]):
        if len(after) >= len(before):  # an admission
            continue
        finishes += 1
        alive = before[state[before] != replica_module.FINISHED]
        assert after.tolist() == alive.tolist()
        by_position += len(before) >= MIN_LIVE_TO_SORT
        slices += bool(np.shares_memory(after, before))
    assert by_position > 10
    if one_token:  # FCFS: each step's batch is the listing's head, and all of it finishes
        assert slices == by_position
    else:
        assert slices < by_position
