"""The adapter on real vLLM with a GPU (marked gpu: not in CI; run on the lent H100).

    python -m pytest -q -m gpu tests/test_engine_gpu.py
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_workload

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def engine():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from ltrsched.validation.engines import start_engine

    return start_engine(model="llama-3-8b", load_format="dummy", max_num_batched_tokens=768, max_num_seqs=64,
                        max_resident_seqs=256, num_gpu_blocks=None, gpu_memory_utilization=0.85,
                        tensor_parallel_size=1, enforce_eager=False, emulate_profile=None)


@pytest.mark.parametrize("spec", ["fcfs", "ltr:tau=0.6,starve=50,quantum=5", "mlfq"])
def test_real_engine_serves_exactly_the_plan(engine, spec):
    from ltrsched.policies import make_policy

    rng = np.random.default_rng(0)
    n = 200
    wl = make_workload(rng.integers(4, 1024, n), rng.integers(1, 300, n), np.sort(rng.uniform(0, 2.0, n)))
    result = engine.run(wl, make_policy(spec))
    req = result.requests
    assert result.summary["num_finished"] == n and result.summary["mismatched_steps"] == 0
    assert (req["generated_tokens"] == req["served_output_tokens"]).all()
    assert (req["first_token_time"] >= req["arrival_time"]).all() and (req["finish_time"] >= req["first_token_time"]).all()
    assert result.summary["plugin_overhead_mean_s"] < 2e-3
