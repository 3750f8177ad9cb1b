"""Simulation settings (the engine configuration being simulated)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PREEMPTION_MODES = ("swap", "recompute")
#: Batch-forming semantics: the paper's reference rules, or what the vLLM 0.26 adapter realises
#: (``ltrsched.engine``; rules 5 and 6 of ``ltrsched.policies.batching``, recompute preemption).
SEMANTICS = ("paper", "vllm-v1")


@dataclass(frozen=True)
class SimConfig:
    """One simulated replica's configuration.

    Attributes:
        profile: built-in profile name, a path to a profile JSON file, or a profile object.
        max_num_batched_tokens: token budget per step [tokens] (paper: 768 with chunked prefill).
        max_num_seqs: sequence cap per step [sequences] (paper: 256).
        block_size: tokens per KV block [tokens].
        num_gpu_blocks: KV capacity [blocks]; None derives it from the profile's GPU memory.
        gpu_memory_utilization: fraction of GPU memory vLLM may use (for the derived capacity).
        watermark: fraction of KV blocks kept free when admitting requests without KV on the GPU.
        preemption: "swap" (KV to host memory over the host link) or "recompute" (drop KV, prefill again).
        swap_space_gib: host memory for swapped KV per GPU [GiB]; when full, preemption falls back to
            recompute (as vLLM does).
        chunked_prefill: split prompts across steps to fill the token budget.
        max_model_len: longest prompt + output a request may have [tokens]; None: the profile's.
        record_steps: keep a per-step trace in the result.
        stop_time: end the run at this simulated time [s] (None: when every request has finished);
            unfinished requests keep null finish times and are left out of the latency summaries.
        max_resident_seqs: most requests holding KV on the GPU (running + paused) [sequences]; beyond it the
            lowest-ranked paused requests are preempted. None: no cap ("paper"), ``max_num_seqs``
            ("vllm-v1": vLLM's running-queue cap, unless the engine ran with a larger one).
        semantics: "paper" (all live requests compete; the chunk cut falls on the last-ranked member) or
            "vllm-v1" (exactly what the engine adapter makes vLLM 0.26 do: resident members get the token
            budget first, at most ``max_num_seqs`` requests hold KV, preemption by recompute).
    """

    profile: Any = "a100-llama3-8b"
    max_num_batched_tokens: int = 768
    max_num_seqs: int = 256
    block_size: int = 16
    num_gpu_blocks: int | None = None
    gpu_memory_utilization: float = 0.9
    watermark: float = 0.01
    preemption: str = "swap"
    swap_space_gib: float = 4.0
    chunked_prefill: bool = True
    max_model_len: int | None = None
    record_steps: bool = False
    stop_time: float | None = None
    semantics: str = "paper"
    max_resident_seqs: int | None = None

    def __post_init__(self) -> None:
        if self.preemption not in PREEMPTION_MODES:
            raise ValueError(f"preemption must be one of {PREEMPTION_MODES}, got {self.preemption!r}")
        for name in ("max_num_batched_tokens", "max_num_seqs", "block_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_model_len is not None and self.max_model_len <= 0:
            raise ValueError(f"max_model_len must be positive, got {self.max_model_len}")
        if self.num_gpu_blocks is not None and self.num_gpu_blocks <= 0:
            raise ValueError(f"num_gpu_blocks must be positive, got {self.num_gpu_blocks}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if not 0 <= self.watermark < 1:
            raise ValueError(f"watermark must be in [0, 1), got {self.watermark}")
        if self.stop_time is not None and not self.stop_time > 0:
            raise ValueError(f"stop_time must be positive, got {self.stop_time}")
        if self.semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, got {self.semantics!r}")
        if self.semantics == "vllm-v1" and self.preemption != "recompute":
            raise ValueError("semantics 'vllm-v1' models vLLM V1, which preempts by recompute: set preemption='recompute'")
        if self.max_resident_seqs is not None and self.max_resident_seqs < self.max_num_seqs:
            raise ValueError(f"max_resident_seqs ({self.max_resident_seqs}) must be >= max_num_seqs ({self.max_num_seqs})")
        if self.swap_space_gib < 0:
            raise ValueError(f"swap_space_gib must be >= 0, got {self.swap_space_gib}")

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        if not isinstance(self.profile, str):
            d["profile"] = getattr(self.profile, "name", type(self.profile).__name__)
        return d
