"""The preemption-thrash guard (``ltrsched.policies.batching.ThrashGuard``): a run whose requests keep being evicted
before they finish the prefill they restarted, with no output token sampled anywhere, stops with a one-line error
within the no-progress window instead of running on until 1,000 preemptions per request (minutes of wall time)."""

from __future__ import annotations

import re

import pytest

from cli_helpers import run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import Policy, batching
from ltrsched.policies.batching import (
    MAX_PREEMPTIONS_PER_REQUEST,
    NO_PROGRESS_MIN_RECOMPUTES,
    NO_PROGRESS_RECOMPUTES_PER_LIVE,
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
    """A burst of 20 long prompts, 30 KV blocks (one prompt fits, two do not), a 16-token budget, recompute and
    starve=1,quantum=1: every step promotes the requests idle one step ahead of the one prefilling, which is
    evicted before it finishes its prompt, for ever. It ran until 20,000 preemptions; now it stops after one
    window of recomputes (a smaller one here, for the test's time)."""
    monkeypatch.setattr(batching, "NO_PROGRESS_MIN_RECOMPUTES", 100)
    trace = tmp_path / "long.csv"
    trace.write_text("arrival_time,prompt_tokens,output_tokens\n" + "0,400,10\n" * 20)
    r = run_cli_fast(capsys, "simulate", "-w", trace, "--policy", "fcfs:starve=1,quantum=1", "--semantics", "vllm-v1",
                     "--max-num-batched-tokens", "16", "--num-gpu-blocks", "30", "--no-progress")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: preemption thrash: "), r.stderr
    assert re.search(r", the last [0-9,]+ recomputes of [0-9]+ live requests without a single output token; ", lines[0])
    # (the cause named, with its remedy, as the run-end warning names it: a run stopped here never prints that)
    assert "; its starvation prevention (starve=1,quantum=1) promotes every request idle 1 steps" in lines[0]
    assert "raise the threshold and the quantum (e.g. starve=1000,quantum=100)" in lines[0]


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
