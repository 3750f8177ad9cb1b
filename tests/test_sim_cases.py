"""Hand-computed simulator cases: step timing, TTFT/TPOT, pausing, swap and recompute preemption."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.policies.batching import BatchLimits
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.replica import Replica
from ltrsched.sim.request_table import RequestTable


def test_chunked_prefill_timing_and_ttft_tpot():
    # budget 16: step1 = A's 10 prompt tokens + 6 of B's (A samples its 1st token),
    # step2 = A decode + B's last 14 (B's 1st token), step3 = two decodes. 10 ms + 1 ms/token.
    wl = make_workload([10, 20], [3, 2])
    cfg = SimConfig(profile=LinearProfile(), max_num_batched_tokens=16, watermark=0, record_steps=True)
    r = simulate(wl, make_policy("fcfs"), cfg)
    assert r.steps["duration"].to_list() == pytest.approx([0.026, 0.025, 0.012])
    assert r.steps["num_decode_seqs"].to_list() == [0, 1, 2]  # step 3 is decode-only
    a, b = r.requests.sort("request_id").iter_rows(named=True)
    assert a["ttft"] == pytest.approx(0.026) and b["ttft"] == pytest.approx(0.051)
    assert a["finish_time"] == pytest.approx(0.063) and b["finish_time"] == pytest.approx(0.063)
    assert a["tpot"] == pytest.approx((0.063 - 0.026) / 2)  # 3 tokens: 2 gaps
    assert b["tpot"] == pytest.approx(0.063 - 0.051)
    assert a["latency_per_token"] == pytest.approx(0.063 / 3)
    assert a["max_waiting_time"] == pytest.approx(max(0.026, 0.025))


def test_pause_then_swap_then_swap_in():
    # 4 blocks of 4 tokens; swap 1 ms per block (4 tokens * 1000 B / 4e6 B/s).
    # A (prompt 8, out 6) runs alone; B (prompt 8, out 2) arrives, SRTF puts it first.
    # step2: B's prefill fits, A's next decode would need a 3rd block -> A pauses (keeps 2 blocks).
    # step3: B's decode needs 3 blocks -> A (2 blocks) is swapped out: +2 ms. B finishes.
    # step4: A swapped in (+2 ms) and decodes; then 4 plain decodes.
    wl = make_workload([8, 8], [6, 2], arrivals=[0.0, 0.015])
    prof = LinearProfile(blocks=4, kv_bytes_per_token=1000, host_link_bytes_per_s=4e6)
    cfg = SimConfig(profile=prof, block_size=4, watermark=0, record_steps=True, preemption="swap")
    r = simulate(wl, make_policy("srtf"), cfg)
    steps = r.steps
    assert steps["duration"].to_list() == pytest.approx([0.018, 0.018, 0.013, 0.013, 0.011, 0.011, 0.011, 0.011])
    assert steps["num_evicted"].to_list() == [0, 0, 1, 0, 0, 0, 0, 0]
    a, b = r.requests.sort("request_id").iter_rows(named=True)
    assert b["first_token_time"] == pytest.approx(0.036) and b["finish_time"] == pytest.approx(0.049)
    assert a["num_preemptions"] == 1 and b["num_preemptions"] == 0
    assert a["finish_time"] == pytest.approx(0.106)
    assert a["max_waiting_time"] == pytest.approx(0.062 - 0.018)  # the gap while paused and swapped
    assert a["max_idle_steps"] == 2


def test_recompute_preemption_redoes_the_prefill():
    # Same scenario with recompute: A loses its KV and must prefill prompt + 1 generated token again
    # (9 tokens), which samples its next token.
    wl = make_workload([8, 8], [6, 2], arrivals=[0.0, 0.015])
    prof = LinearProfile(blocks=4)
    cfg = SimConfig(profile=prof, block_size=4, watermark=0, record_steps=True, preemption="recompute")
    r = simulate(wl, make_policy("srtf"), cfg)
    assert r.steps["duration"].to_list() == pytest.approx([0.018, 0.018, 0.011, 0.019, 0.011, 0.011, 0.011, 0.011])
    assert r.steps["num_prefill_tokens"].to_list()[3] == 9


def test_idle_gap_waits_for_next_arrival():
    wl = make_workload([4, 4], [1, 1], arrivals=[0.0, 5.0])
    r = simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), watermark=0))
    a, b = r.requests.sort("request_id").iter_rows(named=True)
    assert a["finish_time"] == pytest.approx(0.014)
    assert b["first_scheduled_time"] == pytest.approx(5.0) and b["finish_time"] == pytest.approx(5.014)
    assert r.summary["makespan"] == pytest.approx(5.014)


def test_rejects_requests_that_can_never_fit():
    wl = make_workload([100, 4], [100, 4])
    # (a context of 200 tokens given on the 10 x 16 tokens of the cache: refused as vLLM refuses it at its start; with
    # the paper's watermark keeping 2 of the 10 blocks free, a request of 140 tokens, 9 blocks, can never fit)
    with pytest.raises(ValueError, match="max_model_len 200 needs 13 KV blocks .* holds 10, which vLLM refuses"):
        simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(blocks=10), watermark=0, max_model_len=200))
    with pytest.raises(UserError, match="never fit the KV cache of 8 usable blocks"):
        simulate(make_workload([100, 4], [40, 4]), make_policy("fcfs"),
                 SimConfig(profile=LinearProfile(blocks=10), watermark=0.2, max_model_len=160))
    # (without max_model_len the cache bounds the profile's context to its 10 x 16 tokens, as the engines bound theirs)
    with pytest.raises(UserError, match="exceed the context limit of 160 tokens .* bounded by the KV cache"):
        simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(blocks=10), watermark=0))
    with pytest.raises(UserError, match="max_model_len"):
        simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), max_model_len=150))


def test_save_writes_whole_files(tmp_path):
    wl = make_workload([10, 20], [3, 2])
    r = simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), record_steps=True))
    r.save(tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["requests.parquet", "steps.parquet", "summary.json"]


def test_stop_time_ends_the_run_early():
    wl = make_workload([4] * 6, [1, 1, 50, 50, 50, 50])
    r = simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), max_num_seqs=2, watermark=0,
                                                    stop_time=0.1))
    assert r.summary["num_finished"] == 2 and r.summary["num_requests"] == 2
    assert r.requests["finish_time"].is_nan().sum() == 4


def test_replica_shares_the_simpy_clock_with_other_processes():
    # The replica runs steps without SimPy events while nothing else is due; with another process
    # waking every 7 ms it must yield to it and still produce the same run, and each process must see
    # SimPy's clock at its own event times.
    wl = make_workload([30, 5, 12, 40], [20, 9, 15, 4], arrivals=[0.0, 0.01, 0.05, 0.3])
    profile = LinearProfile(blocks=16)
    alone = simulate(wl, make_policy("srtf"), SimConfig(profile=profile, block_size=4, watermark=0,
                                                        max_num_batched_tokens=16)).requests

    table = RequestTable.from_frame(wl.df)
    env = simpy.Environment()
    limits = BatchLimits(max_num_batched_tokens=16, num_gpu_blocks=16, block_size=4)
    policy = make_policy("srtf")
    policy.prepare(table.workload_columns())
    block_bytes = profile.kv_bytes_per_token * 4  # as simulate() derives the swap cost and host capacity
    replica = Replica(env, table, policy, limits, profile.step_time, block_bytes / profile.host_link_bytes_per_s,
                      int(4 * (1 << 30) // block_bytes))
    ticks = []

    def ticker():
        while True:
            yield env.timeout(0.007)
            ticks.append((env.now, replica.steps))

    env.process(ticker())
    env.run(until=env.process(replica.run()))
    assert np.array_equal(table.finish_time, alone["finish_time"].to_numpy())
    assert np.array_equal(table.first_token_time, alone["first_token_time"].to_numpy())
    assert env.now == pytest.approx(np.nanmax(table.finish_time))
    times = [t for t, _ in ticks]
    assert times == pytest.approx(np.arange(1, len(times) + 1) * 0.007)
    assert [s for _, s in ticks] == sorted(s for _, s in ticks) and ticks[-1][1] > ticks[0][1]


def test_a_run_that_cannot_progress_stops_with_an_error(monkeypatch):
    """Should a bug leave every live request out of the batch, the run ends with an error, not a spin."""
    import ltrsched.sim.replica as replica_mod
    from ltrsched.policies.batching import BatchPlan

    empty = np.zeros(0, dtype=np.int64)
    monkeypatch.setattr(replica_mod, "form_batch", lambda *a, **k: BatchPlan(empty, empty, empty, 0))
    monkeypatch.setattr(replica_mod, "MAX_STALLED_STEPS", 50)
    with pytest.raises(RuntimeError, match="no progress for 50 consecutive steps"):
        simulate(make_workload([10, 20], [3, 4]), make_policy("fcfs"), SimConfig(profile=LinearProfile()))
