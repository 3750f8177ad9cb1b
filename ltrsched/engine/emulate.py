"""Drive the real vLLM scheduler with the adapter on a CPU, with a modelled GPU.

:func:`emulate` serves a workload through vLLM 0.26's own V1 ``Scheduler`` code (request objects, KV
block pool, queues, ``schedule()`` and ``update_from_output()``) with the :class:`PolicyScheduler`
plug-in, but instead of a model runner it answers each step with one sampled token per finished prompt
and advances a virtual clock by ``step_time(shape)``. Nothing runs on a GPU.

It checks the adapter where no GPU is available: with the same step-time profile, its results must equal
the simulator's under ``SimConfig(semantics="vllm-v1")`` (a test asserts this), so every difference a
real-engine validation finds is timing, not scheduling.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl

from ltrsched.engine.live_table import RequestInfo
from ltrsched.engine.results import engine_result
from ltrsched.engine.setup import EngineSetup, install, request_extra
from ltrsched.engine.vllm_compat import require_vllm
from ltrsched.policies.base import Policy
from ltrsched.policies.needs import check_needs
from ltrsched.policies.step_shape import StepShape
from ltrsched.results import RunResult
from ltrsched.workloads.schema import Workload


class VirtualClock:
    """A clock the caller moves [s]."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class EngineConfig:
    """The vLLM engine settings a run uses (what the simulator's ``SimConfig`` mirrors).

    Attributes:
        model: built-in model name (``ltrsched.models``) or a local model directory.
        num_gpu_blocks: KV blocks vLLM allocates (None: vLLM profiles the GPU); one is vLLM's null block.
        max_num_batched_tokens, max_num_seqs: the step's token budget and sequence cap.
        block_size: tokens per KV block.
        watermark: vLLM's watermark fraction (0 in vLLM 0.26 by default).
        max_model_len: longest prompt + output [tokens] (None: the model's).
        gpu_memory_utilization, tensor_parallel_size, enforce_eager: passed to vLLM (real engine only).
    """

    model: str = "llama-3-8b"
    num_gpu_blocks: int | None = None
    max_num_batched_tokens: int = 768
    max_num_seqs: int = 256
    block_size: int = 16
    watermark: float = 0.0
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    enforce_eager: bool = False


def model_dir(model: str, cache: str | None = None) -> str:
    """A directory vLLM can load ``model`` from: a local path as is, or a built-in name's config.json."""
    from pathlib import Path

    from ltrsched.models import MODELS, write_model_dir

    if model in MODELS:
        return str(write_model_dir(model, Path(cache or tempfile.mkdtemp(prefix="ltrsched-model-")) / model))
    if not (Path(model) / "config.json").is_file():
        from ltrsched.errors import UserError

        raise UserError(f"model {model!r} is neither a built-in name ({', '.join(MODELS)}) nor a directory with config.json")
    return model


def build_scheduler(config: EngineConfig, setup: EngineSetup):
    """A :class:`PolicyScheduler` built the way vLLM's engine core builds one, on the CPU."""
    require_vllm()
    import torch
    from vllm.config import CacheConfig, DeviceConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    from ltrsched.engine.scheduler import PolicyScheduler

    if config.num_gpu_blocks is None:
        raise ValueError("the emulated engine needs num_gpu_blocks")
    model = ModelConfig(model=model_dir(config.model), dtype="bfloat16", seed=0, skip_tokenizer_init=True,
                        max_model_len=config.max_model_len)
    sched = SchedulerConfig(max_num_seqs=config.max_num_seqs, max_num_batched_tokens=config.max_num_batched_tokens,
                            max_model_len=model.max_model_len, enable_chunked_prefill=True, async_scheduling=False,
                            is_encoder_decoder=False, watermark=config.watermark)
    cache = CacheConfig(block_size=config.block_size, enable_prefix_caching=False)
    cache.num_gpu_blocks = config.num_gpu_blocks
    vllm_config = VllmConfig(scheduler_config=sched, model_config=model, cache_config=cache,
                             device_config=DeviceConfig(device="cpu"))
    kv = KVCacheConfig(num_blocks=config.num_gpu_blocks, kv_cache_tensors=[], kv_cache_groups=[
        KVCacheGroupSpec(["layer"], FullAttentionSpec(block_size=config.block_size, num_kv_heads=1, head_size=1,
                                                      dtype=torch.float32))])
    install(setup)
    return PolicyScheduler(vllm_config=vllm_config, kv_cache_config=kv, block_size=config.block_size,
                           structured_output_manager=StructuredOutputManager(vllm_config), log_stats=False)


def request_infos(workload: Workload, extra_output_tokens: int) -> list[RequestInfo]:
    """One :class:`RequestInfo` per workload row (the engine serves ``output + extra`` tokens)."""
    cols = workload.policy_columns(extra_output_tokens)
    requested = workload.df["output_tokens"].to_numpy()
    return [
        RequestInfo(int(cols["request_id"][i]), float(cols["arrival_time"][i]), int(cols["prompt_tokens"][i]),
                    int(cols["output_tokens"][i]), int(requested[i]), float(cols["score"][i]),
                    float(cols["po_estimate"][i]), float(cols["predicted_length"][i]))
        for i in range(workload.df.height)
    ]


def emulate(workload: Workload, policy: Policy, step_time: Callable[[StepShape], float],
            config: EngineConfig) -> RunResult:
    """Serve ``workload`` through vLLM's scheduler + the adapter, timing steps with ``step_time`` [s]."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.outputs import ModelRunnerOutput
    from vllm.v1.request import Request

    check_needs(policy, workload.has_column, f"workload {workload.name!r}")
    clock = VirtualClock()
    policy.prepare(workload.policy_columns(policy.extra_output_tokens))
    scheduler = build_scheduler(config, EngineSetup(policy=policy, clock=clock, strict=True))
    infos = sorted(request_infos(workload, policy.extra_output_tokens), key=lambda r: r.arrival_time)
    wall = time.perf_counter()
    i = 0
    while True:
        while i < len(infos) and infos[i].arrival_time <= clock.now:
            info = infos[i]
            params = SamplingParams(max_tokens=info.output_tokens, ignore_eos=True, extra_args=request_extra(info))
            scheduler.add_request(Request(request_id=str(info.request_id), prompt_token_ids=[0] * info.prompt_tokens,
                                          sampling_params=params, pooling_params=None, arrival_time=info.arrival_time))
            i += 1
        if not scheduler.get_num_unfinished_requests():
            if i == len(infos):
                break
            clock.now = infos[i].arrival_time
            continue
        out = scheduler.schedule()
        clock.now += step_time(scheduler.planned_shape)
        ids = list(out.num_scheduled_tokens)
        sampled = [[] if scheduler.requests[r].is_prefill_chunk else [0] for r in ids]
        scheduler.update_from_output(out, ModelRunnerOutput(req_ids=ids, req_id_to_index={r: k for k, r in enumerate(ids)},
                                                            sampled_token_ids=sampled))
    wall = time.perf_counter() - wall
    return engine_result(workload, policy, scheduler, host="emulated vLLM scheduler (CPU, modelled step times)",
                         config=config, wall_time_s=wall)
