"""The engine settings of a run on vLLM (what the simulator's ``SimConfig`` mirrors)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltrsched.errors import UserError


@dataclass(frozen=True)
class EngineConfig:
    """The vLLM engine settings a run uses (what the simulator's ``SimConfig`` mirrors).

    Attributes:
        model: built-in model name (``ltrsched.models``) or a local model directory.
        num_gpu_blocks: KV blocks vLLM allocates (None: vLLM profiles the GPU); one is vLLM's null block.
        max_num_batched_tokens, max_num_seqs: the step's token budget and sequence cap (the batch).
        max_resident_seqs: vLLM's own ``max_num_seqs``: its cap on requests holding KV (running +
            paused) and its model runner's request slots (None: ``max_num_seqs``, vLLM's usual setting).
            Raising it lets more requests pause with their KV kept instead of being preempted.
        block_size: tokens per KV block.
        watermark: vLLM's watermark fraction (0 in vLLM 0.26 by default).
        max_model_len: longest prompt + output [tokens] (None: the model's).
        gpu_memory_utilization, tensor_parallel_size, enforce_eager: passed to vLLM (real engine only).
    """

    model: str = "llama-3-8b"
    num_gpu_blocks: int | None = None
    max_num_batched_tokens: int = 768
    max_num_seqs: int = 256
    max_resident_seqs: int | None = None
    block_size: int = 16
    watermark: float = 0.0
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    enforce_eager: bool = False


    @property
    def vllm_max_num_seqs(self) -> int:
        """What vLLM is configured with as ``max_num_seqs`` (the resident cap)."""
        return self.max_resident_seqs or self.max_num_seqs


def model_dir(model: str) -> str:
    """A directory vLLM can load ``model`` from: a local path as is, or a built-in name's config.json
    (written to the user cache, ``ltrsched.workloads.sharegpt.cache_dir()``)."""
    from ltrsched.models import MODELS, write_model_dir
    from ltrsched.workloads.sharegpt import cache_dir

    if model in MODELS:
        return str(write_model_dir(model, cache_dir() / "models" / model))
    if not (Path(model) / "config.json").is_file():
        raise UserError(f"model {model!r} is neither a built-in name ({', '.join(MODELS)}) nor a directory with config.json")
    return model
