"""Length distributions unlike ShareGPT's, through the pictures of a run: one-token outputs (every token from the
prefill), a lone request, every request of equal length (latencies within a few percent of each other). Each test
reproduces a fault one of them exposed in the Chrome trace or the CDF plot."""

from __future__ import annotations

import numpy as np

from conftest import LinearProfile, make_workload
from ltrsched.plots.chrome_trace import chrome_trace
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate


def _step_slices(prompts, outputs, arrivals) -> list[dict]:
    wl = make_workload(prompts, outputs, arrivals)
    result = simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(), max_num_batched_tokens=64,
                                                         record_steps=True))
    return [e for e in chrome_trace(result.steps, result.meta)["traceEvents"] if e["ph"] == "X"]


def test_trace_steps_of_one_token_outputs_are_prefills():
    """Every step with prompt tokens was named ``prefill+decode``: a trace of one-token outputs (each token comes
    from the prefill; no step decodes) showed decode work in every step. A step is named by what it computed."""
    slices = _step_slices([100, 30, 70], [1, 1, 1], [0.0, 0.0, 0.0])
    assert {e["name"] for e in slices} == {"prefill"}
    # longer outputs: decode-only steps, and a step with both where a prompt arrives while another decodes
    slices = _step_slices([20, 20], [5, 5], [0.0, 0.05])
    names = {e["name"] for e in slices}
    assert names == {"prefill", "decode", "prefill+decode"}, names
    both = [e for e in slices if e["name"] == "prefill+decode"]
    assert all(e["args"]["prefill_tokens"] > 0 and e["args"]["seqs"] > 1 for e in both)
