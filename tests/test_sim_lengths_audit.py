"""Other models' lengths in the simulator's results: one-token outputs (TPOT undefined) in the summary table and
summary.json, and the metrics of three requests computed by hand from a built-in profile's own numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.policies import make_policy
from ltrsched.results import RunResult
from ltrsched.routers import make_router
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster
from ltrsched.sim.profiles import load_profile


def _reject_constant(name):
    raise ValueError(f"summary.json holds {name}, which strict JSON has no number for")


def _row(table: str, metric: str) -> list[str]:
    return next(line for line in table.splitlines() if line.startswith(metric + " ")).split()[2:]


def test_tpot_of_one_token_outputs_is_a_row_of_n_a_that_says_why(tmp_path):
    # (the row was left out without a word: a reader could not tell an undefined TPOT from a table without it)
    r = simulate(make_workload([4, 5, 6], [1, 1, 1]), make_policy("fcfs"), SimConfig(profile=LinearProfile()))
    table = r.table()
    assert _row(table, "tpot") == ["n/a"] * 4
    assert "tpot: n/a, every request has 1 output token (no time between tokens)" in table
    assert _row(table, "ttft") != ["n/a"] * 4
    assert "nan" not in table.lower()
    # summary.json: strict JSON, no TPOT key (summarize: a metric no request has is absent); the table reads back
    r.save(tmp_path)
    record = json.loads((tmp_path / "summary.json").read_text(), parse_constant=_reject_constant)
    assert not any(key.startswith("tpot") for key in record["summary"])
    assert r.requests["tpot"].null_count() == 3
    assert RunResult.load(tmp_path).table() == table


def test_tpot_of_a_mix_with_one_token_outputs_says_how_many_requests_it_is_over():
    r = simulate(make_workload([4, 5, 6], [1, 3, 1]), make_policy("fcfs"), SimConfig(profile=LinearProfile()))
    table = r.table()
    assert "tpot: over 1 of the 3 requests; the other 2 have 1 output token (no time between tokens)" in table
    assert _row(table, "tpot")[0] == f"{r.requests['tpot'].drop_nulls()[0]:.4f}"
    one = simulate(make_workload([4, 5], [1, 3]), make_policy("fcfs"), SimConfig(profile=LinearProfile()))
    assert "the other 1 has 1 output token" in one.table()
    every = simulate(make_workload([4, 5], [2, 3]), make_policy("fcfs"), SimConfig(profile=LinearProfile()))
    assert "tpot: " not in every.table()


def test_a_cluster_run_notes_an_undefined_tpot_too():
    r = simulate_cluster(make_workload([4, 5, 6, 7], [1, 1, 1, 1]), make_policy("fcfs"),
                         SimConfig(profile=LinearProfile()), replicas=2, router=make_router("round-robin"))
    table = r.table()
    assert _row(table, "tpot") == ["n/a"] * 4
    assert "tpot: n/a, every request has 1 output token" in table


def test_simulate_prints_tpot_as_n_a_where_every_output_is_one_token(tmp_path, capsys):
    wl = tmp_path / "one.csv"
    wl.write_text("prompt_tokens,output_tokens\n3,1\n1,1\n7,1\n")
    got = run_cli_fast(capsys, "simulate", "-w", str(wl), "--no-progress", "--out", str(tmp_path / "run"))
    assert got.returncode == 0, got.stderr
    assert _row(got.stdout, "tpot") == ["n/a"] * 4
    assert "tpot: n/a, every request has 1 output token" in got.stdout


def test_three_requests_metrics_by_hand_from_the_profiles_numbers():
    """Prompts 10, 20, 5 and outputs 5, 1, 3 at t = 0 under FCFS on a100-llama3-8b (budget 768): step 1 prefills
    the three prompts (35 tokens, causal pairs 10*11/2 + 20*21/2 + 5*6/2 = 280) and each samples its first token
    (request 1 is done); steps 2-3 decode requests 0 and 2 over 10 + 5 computed tokens (+ 1 each read), then 11 + 6;
    request 2 is done; steps 4-5 decode request 0 alone over 12 and 13 computed tokens (+ 1)."""
    prof = load_profile("a100-llama3-8b")
    # the profile's terms, written out: tables linear between points, from its own lists
    na = lambda tokens: float(np.interp(tokens, prof.non_attention_num_tokens, prof.non_attention_s))  # noqa: E731
    sa = lambda seqs: float(np.interp(seqs, prof.sampling_num_seqs, prof.sampling_s))  # noqa: E731
    step, seq = prof.overhead_s_per_step, prof.overhead_s_per_seq
    kv, pair = prof.decode_attention_s_per_kv_token, prof.prefill_attention_s_per_pair
    dt = [na(35) + sa(3) + pair * 280 + step + 3 * seq,
          na(2) + sa(2) + kv * 17 + step + 2 * seq,
          na(2) + sa(2) + kv * 19 + step + 2 * seq,
          na(1) + sa(1) + kv * 13 + step + seq,
          na(1) + sa(1) + kv * 14 + step + seq]
    t = np.cumsum(dt)
    r = simulate(make_workload([10, 20, 5], [5, 1, 3]), make_policy("fcfs"), SimConfig(profile="a100-llama3-8b"))
    a, b, c = r.requests.sort("request_id").iter_rows(named=True)
    for req in (a, b, c):
        assert req["ttft"] == pytest.approx(t[0], rel=1e-12)
    assert a["e2e_latency"] == pytest.approx(t[4], rel=1e-12)
    assert a["tpot"] == pytest.approx((t[4] - t[0]) / 4, rel=1e-12)
    assert a["latency_per_token"] == pytest.approx(t[4] / 5, rel=1e-12)
    assert a["max_waiting_time"] == pytest.approx(max(t[0], *dt[1:]), rel=1e-12)
    assert b["e2e_latency"] == pytest.approx(t[0], rel=1e-12) and b["tpot"] is None
    assert b["latency_per_token"] == pytest.approx(t[0], rel=1e-12)
    assert c["e2e_latency"] == pytest.approx(t[2], rel=1e-12)
    assert c["tpot"] == pytest.approx((t[2] - t[0]) / 2, rel=1e-12)
    assert c["latency_per_token"] == pytest.approx(t[2] / 3, rel=1e-12)
    assert r.summary["steps"] == 5 and r.summary["makespan"] == pytest.approx(t[4], rel=1e-12)
    assert r.summary["tpot_mean"] == pytest.approx(((t[4] - t[0]) / 4 + (t[2] - t[0]) / 2) / 2, rel=1e-12)
    assert r.summary["latency_per_token_mean"] == pytest.approx((t[4] / 5 + t[0] + t[2] / 3) / 3, rel=1e-12)


@pytest.mark.parametrize("cfg", [
    dict(preemption="swap", swap_space_gib=2e-5),  # (the host holds a few blocks: swaps, then recomputes)
    dict(preemption="recompute"),
    dict(semantics="vllm-v1", preemption="recompute", max_num_seqs=3),
], ids=["swap", "recompute", "vllm-v1"])
@pytest.mark.parametrize("replicas", [1, 2])
def test_a_traced_steps_resident_blocks_are_every_residents(monkeypatch, cfg, replicas):
    """The step trace recounts the resident blocks from the states of the requests that can be resident (the last
    step's residents and this batch), not of every request (twice the cost of the steps in a 20,000-request burst):
    at every step that is the recount over every request, and the counts of every live request are consistent."""
    from ltrsched.sim.replica import PAUSED, RUNNING, Replica
    from ltrsched.sim.request_table import FINISHED

    record = Replica._record
    seen = []

    def checked(self, *args):
        record(self, *args)
        t = self.t
        res = (t.state == RUNNING) | (t.state == PAUSED)
        assert self.trace.resident_blocks[-1] == self.limits.blocks_total(t.computed_tokens[res])
        live = (t.state >= 0) & (t.state != FINISHED)
        assert (t.pending_tokens[live] == t.prompt_tokens[live] + t.generated_tokens[live]
                - t.computed_tokens[live]).all()
        seen.append(int(res.sum()))

    monkeypatch.setattr(Replica, "_record", checked)
    rng = np.random.default_rng(5)
    n = 60
    wl = make_workload(rng.integers(1, 30, n), rng.choice([1, 2, 40], n), arrivals=np.sort(rng.uniform(0, 0.3, n)))
    config = SimConfig(profile=LinearProfile(), block_size=4, num_gpu_blocks=24, max_num_batched_tokens=32,
                       record_steps=True, watermark=0, **cfg)
    policy = make_policy("mlfq:quantum=0.05")
    if replicas == 1:
        r = simulate(wl, policy, config)
    else:
        r = simulate_cluster(wl, policy, config, replicas=replicas, router=make_router("round-robin"))
    assert r.summary["num_preemptions"] > 0 and max(seen) > 1
    assert (r.steps["resident_blocks"] == r.steps["blocks_in_use"]).all()


class _Counting(np.ndarray):
    """A view of a table column that counts the values read from it (indexed, or through a ufunc such as ==)."""

    read = 0

    def __getitem__(self, index):
        out = np.ndarray.__getitem__(self.view(np.ndarray), index)
        _Counting.read += np.size(out)
        return out

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _Counting.read += sum(x.size for x in inputs if isinstance(x, _Counting))
        plain = tuple(x.view(np.ndarray) if isinstance(x, _Counting) else x for x in inputs)
        return getattr(ufunc, method)(*plain, **kwargs)


def test_a_traced_step_reads_its_batch_not_every_waiting_request(monkeypatch):
    """A burst of 400 requests on 8 blocks: a step runs a few of them and the rest wait. Tracing a step read every
    request's state and every live request's counts (2 x 400 + 4 x live values a step: 2.4x the CPU time of the steps
    themselves at 20,000 requests); it reads the rows the step changed and those that can be resident."""
    from types import SimpleNamespace

    from ltrsched.sim.replica import Replica

    record = Replica._record
    reads = []

    def counted(self, *args):
        table = self.t
        self.t = SimpleNamespace(**{name: getattr(table, name).view(_Counting) for name in (
            "state", "pending_tokens", "prompt_tokens", "generated_tokens", "computed_tokens")})
        _Counting.read = 0
        try:
            record(self, *args)
        finally:
            self.t = table
        reads.append(_Counting.read)

    monkeypatch.setattr(Replica, "_record", counted)
    n = 400
    wl = make_workload(np.full(n, 6), np.full(n, 3))
    config = SimConfig(profile=LinearProfile(), block_size=4, num_gpu_blocks=8, record_steps=True, watermark=0,
                       stop_time=0.5)
    r = simulate(wl, make_policy("fcfs"), config)
    assert len(reads) == r.summary["steps"] > 10 and r.steps["num_live"].min() > 300
    assert max(reads) <= 8 * r.steps["num_seqs"].max() + 8, max(reads)
