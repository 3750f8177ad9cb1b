"""The preemption-thrash guard (``ltrsched.policies.batching.ThrashGuard``): a run whose requests keep being evicted
before they finish the prefill they restarted, with no output token sampled anywhere, stops with a one-line error
within the no-progress window instead of running on until 1,000 preemptions per request (minutes of wall time); a
run that creeps (it samples a token now and then) stops once the KV its recomputes threw away passes the waste
rule's bounds."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cli_helpers import run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import Policy, batching
from ltrsched.policies.batching import (
    MAX_PREEMPTIONS_PER_REQUEST,
    NO_PROGRESS_MIN_RECOMPUTES,
    NO_PROGRESS_RECOMPUTES_PER_LIVE,
    WASTE_MIN_TOKENS,
    WASTE_MIN_WORKLOADS,
    WASTE_PER_OUTPUT_TOKEN,
    ThrashGuard,
)
from ltrsched.sim import SimConfig, simulate

NO_PROGRESS = r"preemption thrash: [0-9,]+ preemptions of {n} requests by step [0-9,]+, the last [0-9,]+ recomputes of"


def _window(num_live: int) -> int:
    return NO_PROGRESS_MIN_RECOMPUTES + NO_PROGRESS_RECOMPUTES_PER_LIVE * num_live


def _feed(guard: ThrashGuard, recomputes: int, sampled, num_live: int = 10, swaps: int = 0) -> None:
    """``recomputes`` single recompute preemptions (and ``swaps`` swaps before each), the sampled total ``sampled()``."""
    for step in range(recomputes):
        if swaps:
            guard.preempted(swaps, 0, step, None, num_live, _never_read)
        guard.preempted(1, 1, step, None, num_live, sampled)


def _never_read() -> int:
    raise AssertionError("the sampled tokens were read for a preemption that recomputed nothing")


def test_no_token_over_the_window_of_recomputes_stops_the_run():
    guard = ThrashGuard(num_requests=10**6)
    _feed(guard, 1 + _window(10) - 1, lambda: 7)  # the window starts at the first recompute: one short of its end
    with pytest.raises(UserError, match=NO_PROGRESS.format(n="1,000,000")) as err:
        _feed(guard, 1, lambda: 7)
    assert f"the last {_window(10):,} recomputes of 10 live requests without a single output token" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_token_in_each_window_keeps_the_run_going():
    guard, sampled = ThrashGuard(num_requests=10**6), iter(range(10**6))
    _feed(guard, 5 * _window(10), lambda: next(sampled))
    assert guard.num_recomputes == guard.num_preemptions == 5 * _window(10)


def test_the_window_grows_with_the_live_requests():
    guard = ThrashGuard(num_requests=10**6)
    _feed(guard, _window(1000), lambda: 0, num_live=1000)  # (the first read starts the window)
    with pytest.raises(UserError, match="of 1,000 live requests"):
        _feed(guard, 1, lambda: 0, num_live=1000)


def test_swaps_keep_the_work_and_never_count_toward_the_window():
    guard = ThrashGuard(num_requests=10**6)
    _feed(guard, _window(10), lambda: 0, swaps=3)  # 3 swaps per recompute: the window is counted in recomputes
    assert guard.num_preemptions == 4 * _window(10)
    with pytest.raises(UserError, match="without a single output token"):
        _feed(guard, 1, lambda: 0)


def test_past_the_preemptions_per_request_the_run_stops_even_while_it_samples():
    guard, sampled = ThrashGuard(num_requests=2), iter(range(10**6))
    with pytest.raises(UserError, match=r"^preemption thrash: 2,001 preemptions of 2 requests by step 2,000; ") as err:
        _feed(guard, 2 * MAX_PREEMPTIONS_PER_REQUEST + 1, lambda: next(sampled))
    assert "without" not in str(err.value)


def _long_prompts(n: int):
    """``n`` requests of 400 prompt tokens (25 KV blocks of 16), 10 output tokens, all at t=0."""
    return make_workload([400] * n, [10] * n, [0.0] * n)


def test_starvation_prevention_with_quantum_1_livelocks_and_stops_in_the_window(tmp_path, capsys, monkeypatch):
    """A burst of 20 long prompts, 30 KV blocks (one prompt fits, two do not), a 20-token budget, recompute and
    starve=1,quantum=1: every step promotes the requests idle one step ahead of the one prefilling, which is
    evicted before it finishes its prompt, for ever. It ran until 20,000 preemptions; now it stops after one
    window of recomputes (a smaller one here, for the test's time)."""
    monkeypatch.setattr(batching, "NO_PROGRESS_MIN_RECOMPUTES", 100)
    trace = tmp_path / "long.csv"
    trace.write_text("arrival_time,prompt_tokens,output_tokens\n" + "0,400,10\n" * 20)
    # (--max-num-seqs 20, a budget of 20: vLLM refuses a budget below its sequence cap, and so does the simulator under
    # vllm-v1; with a cap of 16 and a budget of 16 it thrashed alike, but 4 of its evictions were the cap's)
    r = run_cli_fast(capsys, "simulate", "-w", trace, "--policy", "fcfs:starve=1,quantum=1", "--semantics", "vllm-v1",
                     "--max-num-batched-tokens", "20", "--max-num-seqs", "20", "--num-gpu-blocks", "30", "--no-progress")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: preemption thrash: "), r.stderr
    assert re.search(r", the last [0-9,]+ recomputes of [0-9]+ live requests without a single output token; ", lines[0])
    # (the cause named, with its remedy, as the run-end warning names it: a run stopped here never prints that)
    assert "; its starvation prevention (starve=1,quantum=1) promotes every request idle 1 step ahead" in lines[0]
    assert "raise the threshold and the quantum (e.g. starve=1000,quantum=100)" in lines[0]
    # (the evictions are KV memory's, no resident-slot cap binds: more KV is the remedy, the cap goes unnamed)
    assert lines[0].endswith(", or lower the load, or give the run more KV blocks or swap space"), lines[0]
    assert "cap on requests holding KV" not in lines[0]


def _cap_thrash(tmp_path, *options):
    """12 prompts of 200 tokens in a burst, a 12-token budget, starve=1,quantum=1 under vllm-v1 with a KV cache that
    holds them all (100,000 blocks): at most 8 requests may hold KV (--max-num-seqs 8), so each step's promotions
    evict residents for the slot cap alone, before they finish their prompt. (The budget was 8, which vLLM refuses,
    as the simulator now does, beside --max-num-seqs 12; with 8 or 12 the cap's thrash is the same, 10,121
    preemptions by step 27,838.)"""
    trace = tmp_path / "one.csv"
    trace.write_text("arrival_time,prompt_tokens,output_tokens\n" + "".join(f"0,200,{11 + i}\n" for i in range(12)))
    return ("simulate", "-w", trace, "--policy", "ltr:tau=0.6,starve=1,quantum=1", "--semantics", "vllm-v1",
            "--max-num-batched-tokens", "12", "--num-gpu-blocks", "100000", "--no-progress", *options)


def test_a_thrash_the_resident_cap_forces_names_the_cap_not_the_kv(tmp_path, capsys, monkeypatch):
    """The error advised more KV blocks or swap space, which changed nothing here (it thrashed the same with 100,000
    blocks): every eviction was the resident-slot cap's (rule 6). It now counts them and names the cap's options."""
    monkeypatch.setattr(batching, "NO_PROGRESS_MIN_RECOMPUTES", 100)
    r = run_cli_fast(capsys, *_cap_thrash(tmp_path, "--max-num-seqs", "8"))
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    count = re.match(r"error: preemption thrash: ([0-9,]+) preemptions of 12 requests by step ", line).group(1)
    assert f"; all {count} preemptions forced by the cap on requests holding KV, none by KV memory; its starvation" in line
    assert line.endswith(f"or lower the load, or {batching.RAISE_RESIDENT_CAP}: more KV blocks or swap space would "
                         "not help"), line
    assert "--max-resident-seqs" in line and "--max-num-seqs" in line


def test_the_remedy_the_cap_message_gives_works(tmp_path, capsys):
    """The same run with the cap raised to the 12 requests finishes without a preemption."""
    r = run_cli_fast(capsys, *_cap_thrash(tmp_path, "--max-num-seqs", "12"))
    assert r.returncode == 0, r.stderr
    assert re.search(r"\([0-9,]+ steps, 0 preemptions\)", r.stderr + r.stdout), r.stderr


def test_a_mixed_thrash_counts_both_causes_and_gives_the_larger_ones_remedy_first():
    from ltrsched.policies.fcfs import FCFS

    more_kv = "give the run more KV blocks or swap space"
    cap = batching.thrash_message(10, 2, 5, FCFS(), for_cap=7)
    assert "by step 5; 7 preemptions forced by the cap on requests holding KV, 3 by KV memory; the policy FCFS" in cap
    assert cap.endswith(f"(rank the requests holding KV more stably, or {batching.RAISE_RESIDENT_CAP}, or {more_kv})")
    kv = batching.thrash_message(10, 2, 5, FCFS(), for_cap=3)
    assert "; 3 preemptions forced by the cap on requests holding KV, 7 by KV memory; " in kv
    assert kv.endswith(f"(rank the requests holding KV more stably, or {more_kv}, or {batching.RAISE_RESIDENT_CAP})")


def test_the_guard_sums_the_cap_forced_preemptions_into_its_message():
    guard = ThrashGuard(num_requests=1)
    guard.preempted(600, 0, 0, None, 1, _never_read, for_cap=600)
    with pytest.raises(UserError, match=r"^preemption thrash: 1,001 preemptions of 1 requests by step 1; 1,000 "
                                        r"preemptions forced by the cap on requests holding KV, 1 by KV memory; "):
        guard.preempted(401, 0, 1, None, 1, _never_read, for_cap=400)


def test_the_plan_counts_the_evictions_the_resident_cap_forced_beyond_the_kv():
    """Rule 6 beside rule 3: four residents of 2 blocks each outside a 1-token batch; the cap on residents and the
    KV blocks each ask for some evictions: ``evict_for_cap`` is how many more than the blocks needed the cap took."""
    from ltrsched.policies.batching import BatchLimits, form_batch

    computed = np.array([0, 32, 32, 32, 32])  # request 0 waits (admitted now); 1-4 hold 2 blocks of 16 each
    pending = np.array([1, 1, 1, 1, 1])
    resident = np.array([False, True, True, True, True])
    order = np.arange(5)

    def plan(blocks: int, cap: int | None):
        limits = BatchLimits(max_num_batched_tokens=1, max_num_seqs=1, num_gpu_blocks=blocks, block_size=16,
                             watermark_blocks=0, max_resident_seqs=cap)
        p = form_batch(order, pending, computed, resident, limits)
        return list(p.evict), p.evict_for_cap

    assert plan(100, 2) == ([4, 3, 2], 3)  # room for all: the cap (2) alone evicts 3
    assert plan(7, None) == ([4], 0)  # 8 held + 1 new > 7: the blocks alone
    assert plan(7, 3) == ([4, 3], 1)  # the blocks need 1, the cap 2: one more for the cap
    assert plan(5, 3) == ([4, 3], 0)  # the blocks need 2 (>= the cap's 2): none for the cap alone


def test_a_thrash_of_a_policy_without_starvation_prevention_names_the_policy():
    from ltrsched.policies.fcfs import FCFS

    message = batching.thrash_message(10, 2, 5, FCFS())
    assert message.endswith("; the policy FCFS keeps evicting requests before they finish (rank the requests holding "
                            "KV more stably, or give the run more KV blocks or swap space)")


class Flip(Policy):
    """A plugin's policy that reverses its order every step: it evicts what it ran the step before."""

    name = "flip-test"

    def rank(self, view):
        order = view.order_by(view.arrival_time)
        return order[::-1].copy() if view.step % 2 else order


def test_a_policy_that_keeps_evicting_stops_in_the_window(monkeypatch):
    """10 prompts of 60 tokens, 6 KV blocks of 16 (one prompt and a chunk), recompute: each step's order undoes
    the last one's, and no prompt is ever finished. It ran until 10,000 preemptions (a smaller window here)."""
    monkeypatch.setattr(batching, "NO_PROGRESS_MIN_RECOMPUTES", 100)
    config = SimConfig(profile=LinearProfile(blocks=6), max_num_batched_tokens=16, max_num_seqs=8, watermark=0.0,
                       preemption="recompute", block_size=16)
    with pytest.raises(UserError, match=NO_PROGRESS.format(n=10)):
        simulate(make_workload([60] * 10, [10] * 10, [0.0] * 10), Flip(), config)


def test_swap_preemption_never_livelocks():
    """The same policy with swap to a host memory that holds every request: evictions keep the work, and it finishes."""
    config = SimConfig(profile=LinearProfile(blocks=6), max_num_batched_tokens=16, max_num_seqs=8, watermark=0.0,
                       preemption="swap", block_size=16)
    result = simulate(make_workload([60] * 10, [10] * 10, [0.0] * 10), Flip(), config)
    assert result.summary["num_finished"] == 10 and result.summary["num_preemptions"] > 0


WASTE = (r"preemption thrash: [0-9,]+ preemptions of {n} requests by step [0-9,]+, [0-9,]+ computed tokens thrown away "
         r"to recompute \([0-9,]+x the workload's [0-9,]+ prompt and output tokens, [0-9,]+ for each of the [0-9,]+ "
         r"output tokens sampled\); ")


def test_a_thrash_that_creeps_stops_once_its_waste_passes_the_bounds():
    """Each recompute throws 100,000 computed tokens away and one output token is sampled meanwhile, so the
    no-progress window never ends: it stopped only at 1,000 preemptions per request (10,001 here). Now at the
    first bound (:data:`WASTE_MIN_TOKENS` thrown away), where the waste per output token is far past its bound."""
    guard, calls = ThrashGuard(num_requests=10, num_tokens=1_000), WASTE_MIN_TOKENS // 100_000
    for step in range(calls - 1):
        guard.preempted(1, 1, step, None, 10, lambda: step, 100_000)
    with pytest.raises(UserError, match=WASTE.format(n=10)) as err:
        guard.preempted(1, 1, calls - 1, None, 10, lambda: calls, 100_000)
    assert str(err.value).startswith(f"preemption thrash: {calls:,} preemptions of 10 requests by step {calls - 1:,}, "
                                     f"{WASTE_MIN_TOKENS:,} computed tokens thrown away to recompute "
                                     f"({WASTE_MIN_TOKENS // 1_000:,}x the workload's 1,000 prompt and output tokens, ")
    assert "\n" not in str(err.value)


def test_the_waste_rule_needs_every_bound(monkeypatch):
    """Past the bound in tokens and in workloads, a run that samples more than one output token per
    :data:`WASTE_PER_OUTPUT_TOKEN` tokens thrown away goes on (the sampled total read once per further workload of
    waste); it stops once the waste per output token passes the bound."""
    monkeypatch.setattr(batching, "WASTE_MIN_TOKENS", 0)
    guard, reads = ThrashGuard(num_requests=10**6, num_tokens=1_000), []

    def sampled() -> int:
        reads.append(guard.discarded_tokens)
        return guard.discarded_tokens // WASTE_PER_OUTPUT_TOKEN  # exactly at the bound: not past it
    for step in range(3 * WASTE_MIN_WORKLOADS * 1_000 // 100):
        guard.preempted(1, 1, step, None, 10, sampled, 100)
    reads = reads[1:]  # (the first: where the no-progress window starts, at the first recompute)
    assert reads[0] == WASTE_MIN_WORKLOADS * 1_000 and all(b - a >= 1_000 for a, b in zip(reads, reads[1:]))
    with pytest.raises(UserError, match=WASTE.format(n="1,000,000")):
        for step in range(1_000 // 100 + 1):
            guard.preempted(1, 1, step, None, 10, lambda: guard.discarded_tokens // WASTE_PER_OUTPUT_TOKEN - 1, 100)


def test_the_waste_rule_counts_recomputes_only_and_is_off_without_the_workloads_tokens(monkeypatch):
    monkeypatch.setattr(batching, "WASTE_MIN_TOKENS", 0)
    guard = ThrashGuard(num_requests=10**6, num_tokens=1_000)
    for step in range(100):
        guard.preempted(5, 0, step, None, 10, _never_read)  # swaps keep the work
    assert guard.discarded_tokens == 0
    off = ThrashGuard(num_requests=10**6)  # (num_tokens 0: the other rules alone)
    off.preempted(1, 1, 0, None, 10, lambda: 0, 10**12)
    assert off.discarded_tokens == 10**12


def _creep_workload():
    """8 requests of 60-120 prompt and 40-60 output tokens arriving in the first 0.1 s (test_cluster's thrash)."""
    rng = np.random.default_rng(1)
    return make_workload(rng.integers(60, 120, 8), rng.integers(40, 60, 8), rng.uniform(0, 0.1, 8))


def test_a_run_that_creeps_to_the_cap_stops_at_the_waste_bound(monkeypatch):
    """The cluster test's creep: a random order redrawn every step, recompute, 11 KV blocks. It sampled tokens all
    along and ran to the cap, 8,001 preemptions of 8 requests; with the bound in tokens lowered to this run's
    size it stops at the bound in workloads, after a few hundred (the other bounds as shipped)."""
    monkeypatch.setattr(batching, "WASTE_MIN_TOKENS", 0)
    from test_sim_invariants import RandomOrder

    config = SimConfig(profile=LinearProfile(blocks=11), max_num_batched_tokens=16, max_num_seqs=4, watermark=0.0,
                       preemption="recompute", semantics="vllm-v1")
    with pytest.raises(UserError, match=WASTE.format(n=8)) as err:
        simulate(_creep_workload(), RandomOrder(3, period=1), config)
    count = int(re.match(r"preemption thrash: ([0-9,]+) ", str(err.value)).group(1).replace(",", ""))
    assert count < MAX_PREEMPTIONS_PER_REQUEST * 8 // 10


def test_a_sweep_names_the_run_a_thrash_stopped(tmp_path, capsys, monkeypatch):
    """A sweep's run stopped by the guard: the one line names the run (policy, workload, rate, seed, its folder) before
    the guard's words, as the sweep's other refusals name what they refuse; the line alone named no run among the
    sweep's. (Any preemption stops a run here: 24 requests of 7,000 tokens overflow the profile's KV cache.)"""
    monkeypatch.setattr(batching, "MAX_PREEMPTIONS_PER_REQUEST", 0)
    (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n" + "4000,3000\n" * 24)
    sweep = tmp_path / "s.toml"
    sweep.write_text('workloads = ["w.csv"]\npolicies = ["fcfs:starve=200,quantum=10"]\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert re.match(r"error: run fcfs:starve=200,quantum=10 on .*w\.csv seed 0 \(runs/[0-9a-f]+\): "
                    r"preemption thrash: 1 preemptions of 24 requests by step [0-9,]+; its starvation prevention "
                    r"\(starve=200,quantum=10\)", lines[0]), lines[0]


def test_a_thrash_error_crosses_a_process_boundary_as_itself():
    """A sweep's pool worker or Ray task hands the error back pickled: it must stay a ThrashError (the main process
    names the run before it) and a UserError (exit code 2), with its one line."""
    import pickle

    err = pickle.loads(pickle.dumps(batching.ThrashError("preemption thrash: 3 preemptions of 1 requests by step 2")))
    assert type(err) is batching.ThrashError and isinstance(err, UserError)
    assert str(err) == "preemption thrash: 3 preemptions of 1 requests by step 2"
