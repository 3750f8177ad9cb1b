"""A seeded slice of the differential fuzz of the simulator against the emulated engine (:mod:`fuzz_sim_engine`), and
the divergences it found, minimised: each runs both sides and compares them request by request."""

from __future__ import annotations

import numpy as np
import pytest

import fuzz_sim_engine as fuzz
from fuzz_sim_engine import Case

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code", "warm_engine")]


@pytest.fixture(scope="module")
def warm_engine():
    """vLLM's imports and first engine build, outside the cases' time limits."""
    fuzz.warm()


def agree(case: Case) -> None:
    outcome = fuzz.run_case(case, limit=60)
    assert outcome.problem is None, f"{outcome.problem}; {outcome.detail}; {case.literal()}"


#: Seeds of the fuzz whose cases run in well under a second each, one or more of every policy kind (fcfs, srtf, ltr on
#: a score column and at a tau, with starvation prevention, mlfq, po, class, oracle, a random order, the plugin
#: example) and of every arrival shape, KV pressure included.
SLICE = [0]


@pytest.mark.parametrize("seed", SLICE)
def test_a_seeded_fuzz_case_runs_alike_on_the_simulator_and_the_emulated_engine(seed):
    agree(fuzz.draw_case(seed))


def test_mlfq_reads_a_steps_duration_as_the_engines_clock_measured_it():
    """The simulator added each step's time (0.003 s) to its members' run times and passed it to the policy's on_step;
    the engine adds its clock's end - start (0.017 + 0.003 - 0.017 = 0.0029999999999999996). Five such steps at a
    quantum of 0.005 s (MLFQ's second level ends at 0.015 s of run time) demoted requests 2 and 3 one step apart on
    the two sides: at step 6 the simulator evicted them for requests 0 and 1, the engine a step later, and every
    finish time differed (fuzz seed 168: a thrash both sides stopped with different counts). The simulator now takes
    the step's duration as end - start, the engine's arithmetic."""
    agree(Case(seed=168, spec="mlfq:quantum=0.005,threshold=2,promote=20", prompts=(3, 1, 1, 1),
               outputs=(20, 11, 20, 20), arrivals=(0.0, 0.0, 0.0, 0.0), blocks=2, block_size=64, budget=19, seqs=16,
               resident=None, max_model_len=2025, profile=(0.001, 0.001, 0.0, 0.0)))


def test_the_comparison_finds_a_differing_request_and_a_differing_refusal():
    """The fuzz's comparison is no rubber stamp: one request's finish time moved by 1e-6 s, or one side's refusal
    worded otherwise, is a divergence naming it; a KV-fit refusal each side words its own way is the same refusal."""
    from ltrsched.errors import UserError

    case = Case(seed=0, spec="fcfs", prompts=(5, 40, 7), outputs=(3, 2, 9), arrivals=(0.0, 0.0, 0.01), blocks=20,
                block_size=16, budget=32, seqs=2, resident=None, max_model_len=100, profile=(0.01, 0.001, 0.0, 0.0))
    engine, sim = fuzz.run_both(case)
    assert fuzz.compare(engine, sim).problem is None
    moved = sim.requests.with_columns(finish_time=sim.requests["finish_time"] + np.array([0.0, 1e-6, 0.0]))
    sim.requests = moved
    outcome = fuzz.compare(engine, sim)
    assert outcome.problem.startswith("finish_time differs for 1 request(s), first request 1: ")
    e = UserError("2 request(s) can never fit the engine's KV cache of 9 usable blocks (first: request 4 needs 11 blocks)")
    s = UserError("2 request(s) can never fit the KV cache of 9 usable blocks (first: request 4 needs 11 blocks of 16 "
                  "tokens); raise num_gpu_blocks (None: the profile's), or leave such requests out")
    assert fuzz.compare(e, s).refused is not None
    assert fuzz.compare(e, UserError(str(s).replace("request 4", "request 5"))).problem.startswith("refused differently")
    assert fuzz.compare(e, sim).problem.startswith("one side failed")
