"""Pick the engine a command runs on: real vLLM on a GPU, or vLLM's scheduler emulated on the CPU.

The emulated engine (``--emulate PROFILE``) runs the adapter inside vLLM's real scheduler and times each
step with a simulator profile: a dry run of ``replay``, ``profile`` and ``validate`` without a GPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import click

from ltrsched.engine.config import EngineConfig
from ltrsched.errors import UserError


def engine_options(fn):
    """Options of the engine under test (replay, profile, validate)."""
    options = [
        click.option("--model", "-m", default="llama-3-8b", show_default=True,
                     help="Built-in model (llama-3-8b, llama-3-70b: their config.json, random weights) or a "
                          "local model directory."),
        click.option("--load-format", default="dummy", show_default=True,
                     help="vLLM load format: dummy (random weights) or auto (the directory's weights)."),
        click.option("--max-num-batched-tokens", type=int, default=768, show_default=True),
        click.option("--max-num-seqs", type=int, default=256, show_default=True, help="Sequence cap of a step."),
        click.option("--max-resident-seqs", type=int, default=None,
                     help="vLLM's max_num_seqs: cap on requests holding KV, running or paused (default: "
                          "--max-num-seqs). Larger lets more requests pause instead of being preempted."),
        click.option("--num-gpu-blocks", type=int, default=None,
                     help="KV blocks for vLLM to allocate (default: what vLLM's memory profiling finds)."),
        click.option("--gpu-memory-utilization", type=float, default=0.9, show_default=True),
        click.option("--tensor-parallel-size", type=int, default=1, show_default=True),
        click.option("--enforce-eager", is_flag=True, help="Run vLLM without CUDA graphs."),
        click.option("--emulate", "emulate_profile", default=None, metavar="PROFILE",
                     help="No GPU: run vLLM's scheduler with the adapter on the CPU, steps timed by PROFILE."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


@dataclass
class Engine:
    """A started engine: its driver, settings and description."""

    driver: Any
    config: EngineConfig
    emulated_profile: Any = None

    @property
    def emulated(self) -> bool:
        return self.emulated_profile is not None

    def run(self, workload, policy, progress: bool = False):
        if self.emulated:
            from ltrsched.engine.emulate import emulate

            result = emulate(workload, policy, self.emulated_profile.step_time, self.config, driver=self.driver)
            result.summary["engine_num_gpu_blocks"] = self.config.num_gpu_blocks
            return result
        from ltrsched.engine.runner import run_on_vllm

        return run_on_vllm(workload, policy, self.driver, progress=progress)

    def num_gpu_blocks(self) -> int:
        """KV blocks of the engine, vLLM's null block included."""
        return int(self.config.num_gpu_blocks) if self.emulated else self.driver.num_gpu_blocks()


def start_engine(model, load_format, max_num_batched_tokens, max_num_seqs, max_resident_seqs, num_gpu_blocks,
                 gpu_memory_utilization, tensor_parallel_size, enforce_eager, emulate_profile,
                 skip_idle: bool = False) -> Engine:
    """Start the engine the options describe (validating them first)."""
    for name, value in (("--max-num-batched-tokens", max_num_batched_tokens), ("--max-num-seqs", max_num_seqs),
                        ("--tensor-parallel-size", tensor_parallel_size)):
        if value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    if max_resident_seqs is not None and max_resident_seqs < max_num_seqs:
        raise UserError(f"--max-resident-seqs ({max_resident_seqs}) must be >= --max-num-seqs ({max_num_seqs})")
    if num_gpu_blocks is not None and num_gpu_blocks < 2:
        raise UserError(f"--num-gpu-blocks must be >= 2 (one is vLLM's null block), got {num_gpu_blocks}")
    if not 0 < gpu_memory_utilization <= 1:
        raise UserError(f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization}")
    from ltrsched.engine.config import model_dir

    model_dir(model)  # a bad model fails before the engine starts
    config = EngineConfig(model=model, num_gpu_blocks=num_gpu_blocks, max_num_batched_tokens=max_num_batched_tokens,
                          max_num_seqs=max_num_seqs, max_resident_seqs=max_resident_seqs,
                          gpu_memory_utilization=gpu_memory_utilization,
                          tensor_parallel_size=tensor_parallel_size, enforce_eager=enforce_eager)
    if emulate_profile is not None:
        from dataclasses import replace

        from ltrsched.engine.emulate import emulated_driver
        from ltrsched.engine.vllm_compat import require_vllm
        from ltrsched.sim.profiles import load_profile

        profile = load_profile(emulate_profile)
        require_vllm(cpu_only=True)
        if num_gpu_blocks is None:
            config = replace(config, num_gpu_blocks=profile.num_gpu_blocks(gpu_memory_utilization=gpu_memory_utilization) + 1)
        return Engine(emulated_driver(config, profile.step_time), config, profile)
    from ltrsched.engine.runner import VllmDriver

    return Engine(VllmDriver(config, load_format=load_format, skip_idle=skip_idle), config)
