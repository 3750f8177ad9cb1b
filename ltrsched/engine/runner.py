"""Run a workload on real vLLM 0.26 (a GPU) with an ltrsched policy: :func:`run_on_vllm`.

The offline engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so the runner can hand
the scheduler a prepared policy and read its per-request arrays and step log. Requests are added when
their arrival time comes (burst, Poisson, replayed timestamps: whatever the workload's ``arrival_time``
says) and the engine is stepped in between. A model is a directory holding a ``config.json`` (a
built-in name writes Llama-3's): with ``load_format="dummy"`` the weights are random, which times the
real architecture; with real weights, pass ``load_format="auto"``. Prompts are random token ids of the
workload's prompt lengths (timing does not depend on the ids); outputs are exactly the workload's lengths.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ltrsched.engine.config import EngineConfig, model_dir
from ltrsched.engine.live_table import RequestInfo
from ltrsched.engine.replay import replay
from ltrsched.engine.setup import EngineSetup, MonotonicClock, install, request_extra
from ltrsched.engine.vllm_compat import require_gpu, require_vllm, require_vllm_installed
from ltrsched.policies.base import Policy
from ltrsched.results import RunResult
from ltrsched.workloads.schema import Workload

#: Token ids for random prompts stay below Llama-3's special tokens.
_VOCAB = 128_000


def engine_kwargs(config: EngineConfig, load_format: str) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for ``config`` with the adapter loaded."""
    from ltrsched.engine.scheduler import PolicyScheduler

    kwargs: dict[str, Any] = dict(
        model=model_dir(config.model),
        load_format=load_format,
        skip_tokenizer_init=True,
        scheduler_cls=PolicyScheduler,
        async_scheduling=False,
        enable_prefix_caching=False,
        enable_chunked_prefill=True,
        max_num_batched_tokens=config.max_num_batched_tokens,
        max_num_seqs=config.vllm_max_num_seqs,
        block_size=config.block_size,
        gpu_memory_utilization=config.gpu_memory_utilization,
        tensor_parallel_size=config.tensor_parallel_size,
        enforce_eager=config.enforce_eager,
        disable_log_stats=True,
        seed=0,
    )
    if config.num_gpu_blocks is not None:
        kwargs["num_gpu_blocks_override"] = config.num_gpu_blocks
    if config.max_model_len is not None:
        kwargs["max_model_len"] = config.max_model_len
    if config.watermark:
        kwargs["watermark"] = config.watermark
    return kwargs


class VllmDriver:
    """vLLM's ``LLMEngine`` in this process, with the adapter as its scheduler; the run's wall clock.

    One driver (one engine start: weights, CUDA graphs) serves several runs. With ``skip_idle`` the clock
    jumps over idle time instead of sleeping (profiling probes, where only step times matter)."""

    def __init__(self, config: EngineConfig, load_format: str = "dummy", seed: int = 0, skip_idle: bool = False):
        require_vllm_installed()  # cheap checks first: importing vLLM takes seconds
        require_gpu()
        require_vllm()
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the scheduler lives in this process
        from vllm import LLM

        from ltrsched.policies import make_policy

        self.config = config
        self.clock = MonotonicClock()
        self.skip_idle = skip_idle
        install(EngineSetup(policy=make_policy("fcfs"), clock=self.clock, max_batch_seqs=config.max_num_seqs))
        self.llm = LLM(**engine_kwargs(config, load_format))
        self.engine = self.llm.llm_engine
        self.scheduler = self.engine.engine_core.engine_core.scheduler
        self.rng = np.random.default_rng(seed)
        self.max_model_len = int(self.engine.model_config.max_model_len)

    def begin(self, policy: Policy) -> None:
        self.rng = np.random.default_rng(0)
        self.scheduler.begin_run(EngineSetup(policy=policy, clock=self.clock, strict=True,
                                             max_batch_seqs=self.config.max_num_seqs))

    def now(self) -> float:
        return self.clock()

    def start(self) -> None:
        self.clock.start()

    def add(self, info: RequestInfo) -> None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompt = TokensPrompt(prompt_token_ids=self.rng.integers(1, _VOCAB, info.prompt_tokens).tolist())
        params = SamplingParams(max_tokens=info.output_tokens, ignore_eos=True, detokenize=False,
                                extra_args=request_extra(info))
        self.engine.add_request(str(info.request_id), prompt, params)

    def has_unfinished(self) -> bool:
        return self.engine.has_unfinished_requests()

    def step(self) -> None:
        self.engine.step()

    def wait_until(self, t: float) -> None:
        import time

        delay = t - self.clock()
        if delay > 0:
            if self.skip_idle:
                self.clock.origin -= delay
            else:
                time.sleep(delay)

    def num_gpu_blocks(self) -> int:
        """KV blocks vLLM allocated (its null block included)."""
        return int(self.engine.vllm_config.cache_config.num_gpu_blocks)


def run_on_vllm(workload: Workload, policy: Policy, driver: VllmDriver, progress: bool = False) -> RunResult:
    """Serve ``workload`` under ``policy`` on real vLLM (``driver``); the result has the simulator's schema,
    plus ``engine_num_gpu_blocks`` (vLLM's KV blocks, its null block included) in the summary."""
    result = replay(workload, policy, driver, driver.config, host=gpu_name(), progress=progress)
    result.summary["engine_num_gpu_blocks"] = driver.num_gpu_blocks()
    return result


def gpu_name() -> str:
    import torch

    return f"vLLM {__import__('vllm').__version__} on {torch.cuda.get_device_name(0)}"
