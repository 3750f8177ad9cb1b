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
SLICE = [263, 291, 335, 337, 351, 353, 354, 356, 358, 370, 378, 379, 388, 389, 391, 397, 426, 477, 505, 512, 513, 514,
         525, 542]


@pytest.mark.parametrize("seed", SLICE)
def test_a_seeded_fuzz_case_runs_alike_on_the_simulator_and_the_emulated_engine(seed):
    agree(fuzz.draw_case(seed, unbounded_share=0, beyond_share=0))  # (as drawn when they were picked)


#: Seeds whose cases give neither side a context, on a small cache that bounds it (each well under a second): requests
#: of the bound served (25, 63, 75; 63 with the simulator's blocks sized by its profile) and one a token beyond it
#: refused alike (46, 89). The simulator took the profile's whole context and served those requests of bound + 1
#: tokens: "refused differently"/"one side failed" before it bounded its context as the engines do.
BOUNDED_SLICE = [25, 46, 63, 75, 89]


@pytest.mark.parametrize("seed", BOUNDED_SLICE)
def test_a_context_bounded_by_the_cache_is_the_same_on_both_sides(seed):
    case = fuzz.draw_case(seed)
    assert case.max_model_len is None
    agree(case)


def test_the_fuzz_profiles_context_is_the_emulated_engines_models():
    """Where a case gives no context, the simulator's profile takes :data:`fuzz.MODEL_CONTEXT` and the emulated engine
    its model's, each bounded by its cache: the two must be one context."""
    from ltrsched.engine.config import model_dir, with_platform
    from ltrsched.engine.model_context import model_context
    from ltrsched.engine.platform import CUDA

    config = with_platform(fuzz.engine_config(fuzz.draw_case(46)), CUDA)  # (the emulated engine's: the GPU it models)
    assert config.max_model_len is None
    assert model_context(model_dir(config.model))[0] == fuzz.MODEL_CONTEXT


def test_mlfq_reads_a_steps_duration_as_the_engines_clock_measured_it():
    """The simulator added each step's time (0.003 s) to its members' run times and passed it to the policy's on_step;
    the engine adds its clock's end - start (0.017 + 0.003 - 0.017 = 0.0029999999999999996). Five such steps at a
    quantum of 0.005 s (MLFQ's second level ends at 0.015 s of run time) demoted requests 2 and 3 one step apart on
    the two sides: at step 6 the simulator evicted them for requests 0 and 1, the engine a step later, and every
    finish time differed (fuzz seed 168: a thrash both sides stopped with different counts). The simulator now takes
    the step's duration as end - start, the engine's arithmetic."""
    agree(Case(seed=168, spec="mlfq:quantum=0.005,threshold=2,promote=20", prompts=(3, 1, 1, 1),
               outputs=(20, 11, 20, 20), arrivals=(0.0, 0.0, 0.0, 0.0), blocks=2, block_size=64, budget=19, seqs=16,
               resident=None, max_model_len=128, profile=(0.001, 0.001, 0.0, 0.0)))


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
    e = UserError("2 request(s) can never fit the engine's KV cache of 9 usable blocks (first: request 4 needs 11 "
                  "blocks)")
    s = UserError("2 request(s) can never fit the KV cache of 9 usable blocks (first: request 4 needs 11 blocks of 16 "
                  "tokens); raise num_gpu_blocks (None: the profile's), or leave such requests out")
    assert fuzz.compare(e, s).refused is not None
    other = UserError(str(s).replace("request 4", "request 5"))
    assert fuzz.compare(e, other).problem.startswith("refused differently")
    assert fuzz.compare(e, sim).problem.startswith("one side failed")
    # (a context shorter than a request: each side's words, the same requests and lengths)
    e = UserError("2 request(s) exceed the engine's max_model_len 128 tokens (first: request 0, 161 tokens): raise "
                  "--max-model-len if the model takes longer contexts, or leave them out")
    s = UserError("2 request(s) exceed the context limit of 128 tokens set by max_model_len (first: request 0, prompt "
                  "112 + output 49); raise max_model_len if the model takes longer contexts, or leave them out")
    assert fuzz.compare(e, s).refused is not None
    for other in (str(s).replace("output 49", "output 48"), str(s).replace("request 0", "request 1"),
                  str(s).replace("2 request(s)", "3 request(s)")):
        assert fuzz.compare(e, UserError(other)).problem.startswith("refused differently")
    po = UserError(str(e).replace("161 tokens)", "176 tokens, 15 of them the policy's extra output tokens)"))
    assert fuzz.compare(po, s).problem.startswith("refused differently")
    # (no context given: the simulator's line names the cache that bounds it)
    bounded = UserError("2 request(s) exceed the context limit of 128 tokens (first: request 0, prompt 112 + output "
                        "49), the profile's 8192 tokens bounded by the KV cache of num_gpu_blocks=8 (vLLM's null "
                        "block not among them) x 16 tokens, as vLLM bounds its context; raise num_gpu_blocks (None: "
                        "the profile's), or leave such requests out")
    assert fuzz.compare(e, bounded).refused is not None
    assert fuzz.compare(e, UserError(str(bounded).replace("output 49", "output 48"))).problem.startswith(
        "refused differently")


def test_the_drawn_engine_configs_are_ones_vllm_starts():
    """A drawn case's context is at most what its cache holds (vLLM's engine refuses to start otherwise, and so does
    the emulated one since it applies that check from Python): ``max_model_len`` had 2,000 tokens of slack over the
    longest request whatever the cache, and 14 of seeds 3..62 were refused before a step. (Save the cases drawn to be
    refused so: :func:`test_a_context_beyond_the_cache_is_refused_alike`.)"""
    from ltrsched.engine.config import emulated_kv_short

    for seed in range(3, 203):
        case = fuzz.draw_case(seed, beyond_share=0)
        assert emulated_kv_short(fuzz.engine_config(case)) is None, case.short()


#: Seeds whose case gives a context beyond its cache (``fuzz.BEYOND_SHARE``): the simulator's blocks given (0) and
#: sized by its profile (23). The simulator ran them ("one side failed: engine UserError: max_model_len ... which
#: vLLM refuses once started ... | simulator ran") before it refused such a context as vLLM does.
BEYOND_SLICE = [0, 23]


@pytest.mark.parametrize("seed", BEYOND_SLICE)
def test_a_context_beyond_the_cache_is_refused_alike(seed):
    case = fuzz.draw_case(seed)
    assert case.max_model_len > case.blocks * case.block_size
    outcome = fuzz.run_case(case)
    assert outcome.problem is None and "which vLLM refuses once started" in outcome.refused, outcome.problem


def test_vllm_v1_semantics_keep_no_watermark_by_default_as_the_engine():
    """``SimConfig(semantics="vllm-v1")`` and ``simulate --semantics vllm-v1`` kept the paper's 1% of the KV blocks free
    when admitting a request; the engine they model (``replay --emulate``, ``EngineConfig.watermark``) keeps none. With
    100 blocks, request 8 (373 + 25 tokens: 25 blocks) waited a step longer in the simulator (first scheduled at
    1.991 s, on the engine at 1.975 s); `ltrsched simulate -n 200 --semantics vllm-v1 --num-gpu-blocks 300` ran 3,706
    steps with 381 preemptions where `ltrsched replay -n 200 --emulate a100-llama3-8b --num-gpu-blocks 301` ran 3,712
    with 472. The watermark's default is now each semantics' own: 0.01 for the paper's, 0 for vLLM V1's."""
    from ltrsched.sim import SimConfig
    from ltrsched.sim.commands import build_config

    assert SimConfig(semantics="vllm-v1", preemption="recompute").watermark == 0.0 and SimConfig().watermark == 0.01
    assert SimConfig(semantics="vllm-v1", preemption="recompute", watermark=0.05).watermark == 0.05
    for semantics, watermark in (("vllm-v1", 0.0), ("paper", 0.01)):
        config = build_config("a100-llama3-8b", 768, 256, None, 0.9, None, semantics, None, None, True)
        assert config.watermark == watermark and config.describe()["watermark"] == watermark
    agree(Case(seed=0, spec="fcfs", prompts=(291, 180, 192, 112, 104, 152, 294, 373, 251),
               outputs=(22, 16, 17, 28, 24, 20, 12, 25, 17),
               arrivals=(0.006, 0.035, 0.06, 0.077, 0.108, 0.123, 0.134, 0.137, 0.173), blocks=100, block_size=16,
               budget=512, seqs=8, resident=None, max_model_len=500, profile=(0.01, 0.001, 0.0, 0.0)))


def test_vllm_v1_semantics_count_the_null_block_in_the_watermark_as_the_engine():
    """vLLM keeps ``int(watermark x num_blocks)`` free, its null block among the blocks; the simulator's
    ``num_gpu_blocks`` leaves that block out (the engine has one more), so under "vllm-v1" it keeps
    ``int(watermark x (num_gpu_blocks + 1))`` (4 blocks at 0.2: 1, not int(0.8) = 0), under "paper" its own count."""
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig
    from ltrsched.sim.simulate import setup_run
    from conftest import LinearProfile, make_workload

    wl = make_workload([10] * 3, [5] * 3)
    for semantics, blocks, watermark, kept, when_running in (("vllm-v1", 4, 0.2, 1, True), ("paper", 4, 0.2, 0, False),
                                                             ("vllm-v1", 14, 0.2, 3, True), ("paper", 14, 0.2, 2, False)):
        config = SimConfig(profile=LinearProfile(), semantics=semantics, preemption="recompute", num_gpu_blocks=blocks,
                           watermark=watermark, block_size=16)
        limits = setup_run(wl, make_policy("fcfs"), config).limits
        assert (limits.watermark_blocks, limits.watermark_when_running) == (kept, when_running), semantics


def test_a_thrash_stops_at_the_same_step_as_on_the_engine_when_a_request_finishes_where_a_window_starts(monkeypatch):
    """The simulator told its thrash guard of a step's preemptions before the step ran: with the live requests at its
    start and the tokens sampled before it. The engine's replay tells it after the step: its finished requests gone, its
    tokens counted. At step 22 here one request finishes while another is evicted: the no-progress window started
    there was 1,000 + 10 x 2 recomputes on the engine and 1,000 + 10 x 3 in the simulator, and the token step 22
    sampled fell inside the simulator's window only: the engine stopped at step 1,179 ("1,021 preemptions ... the last
    1,020 recomputes of 36 live requests without a single output token"), the simulator ran on to step 2,666 (fuzz seed
    764; both saw the same requests at every step until the engine stopped). The simulator now tells the guard at the
    end of the step, as the engine does (the guards' bounds lowered as the fuzz lowers them)."""
    from ltrsched.policies import batching

    for name, value in fuzz.QUICK_GUARDS.items():
        monkeypatch.setattr(batching, name, value)
    arrivals = (0.003734,) * 2 + (0.105973,) * 4 + (0.119607,) * 4 + (0.122793,) * 4 + (0.199704,) * 5 + \
        (0.219171,) * 5 + (0.30165,) * 8 + (0.312231,) * 8
    case = Case(seed=764, spec="fuzz-random:seed=91", prompts=(153,) * 40, outputs=(1,) * 40, arrivals=arrivals,
                blocks=3, block_size=128, budget=31, seqs=2, resident=8, max_model_len=384,
                profile=(0.001, 0.0, 1e-06, 1e-08))
    outcome = fuzz.run_case(case, limit=60)
    assert outcome.problem is None, outcome.problem
    assert outcome.refused.startswith("preemption thrash: 1,021 preemptions of 40 requests by step 1,179, the last "
                                      "1,020 recomputes of 36 live requests without a single output token; ")


@pytest.mark.parametrize("case", [
    # 14 usable blocks of 8 tokens, watermark 0.2: the simulator kept int(0.2 x 14) = 2 free and admitted all three
    # prompts (4 blocks each) at step 0; vLLM keeps int(0.2 x 15) = 3 and admits two (59 prompt tokens)
    Case(seed=777, spec="ltr:starve=38,quantum=2", prompts=(26, 31, 28), outputs=(11, 4, 18), arrivals=(0.0, 0.0, 0.0),
         blocks=14, block_size=8, budget=2048, seqs=16, resident=None, max_model_len=51,
         profile=(0.02, 0.001, 0.0, 1e-08), score=(-1.596, -0.765, 0.797), watermark=0.2),
    # 4 usable blocks of 64 tokens, watermark 0.2: the simulator kept int(0.8) = 0 free, vLLM int(1.0) = 1
    Case(seed=749, spec="fuzz-random:seed=818", prompts=(7, 3, 5, 7), outputs=(9, 9, 9, 9), arrivals=(1.351659,) * 4,
         blocks=4, block_size=64, budget=64, seqs=64, resident=None, max_model_len=256,
         profile=(0.01, 0.001, 1e-06, 0.0), watermark=0.2),
], ids=["seed777", "seed749"])
def test_a_watermark_given_to_both_sides(case):
    """A watermark given to both sides (strict xfails before): the simulator's vllm-v1 semantics kept
    ``int(watermark x blocks)`` free, vLLM 0.32 keeps ``int(watermark x (blocks + 1))``, its null block counted
    (``KVCacheManager.watermark_blocks``); and it now keeps them only for an admission beside another request on the
    GPU, as vLLM's ``allocate_slots(has_scheduled_reqs=bool(self.running))``."""
    agree(case)


@pytest.mark.parametrize("case", [
    # prompt 15 + output 2 holds the KV of 16 tokens at most (the last sampled token is never computed): vLLM serves it
    # in one block of 16, both at once in its two usable blocks; both fit checks counted 17 tokens (2 blocks). (It was
    # one request in one usable block under a context of 100 tokens, which vLLM refuses to start on: the context the
    # cache holds is 16, shorter than the request.)
    Case(seed=0, spec="fcfs", prompts=(15, 15), outputs=(2, 2), arrivals=(0.0, 0.0), blocks=2, block_size=16,
         budget=32, seqs=4, resident=None, max_model_len=32, profile=(0.01, 0.001, 0.0, 0.0)),
    # 14 usable blocks, watermark 0.2 (int(0.2 x 15) = 3 kept free): vLLM 0.32 keeps them free only for an admission
    # while another request runs, so each request of 14 blocks (200 + 24 tokens) runs alone; both checks refused them
    # at "11 usable blocks"
    Case(seed=0, spec="fcfs", prompts=(200, 200), outputs=(24, 24), arrivals=(0.0, 0.0), blocks=14, block_size=16,
         budget=256, seqs=4, resident=None, max_model_len=224, profile=(0.01, 0.001, 0.0, 0.0), watermark=0.2),
], ids=["last-token", "lone-watermark"])
def test_a_request_at_the_kv_boundary_runs_alike_where_both_sides_refused_it(case):
    """Requests the fit checks refused alike that vLLM serves now run, and alike on both sides."""
    outcome = fuzz.run_case(case, limit=60)
    assert outcome.problem is None and outcome.refused is None, (outcome.problem, outcome.refused)
    assert outcome.steps > 0
