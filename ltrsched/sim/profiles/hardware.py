"""GPU facts and the first-principles constants the derived profiles use (all stated in PROFILES.md).

Units: bytes, bytes/s, FLOP/s, seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 2**20


@dataclass(frozen=True)
class GpuSpec:
    """Public specifications of one GPU, plus the efficiencies we assume on it.

    Attributes:
        name: product name as ``nvidia-smi`` prints it.
        memory_bytes: total memory as CUDA reports it (``torch.cuda.get_device_properties``) [bytes].
        hbm_bytes_per_s: peak HBM bandwidth [bytes/s].
        bf16_flops_per_s: peak dense bf16 tensor-core throughput [FLOP/s].
        host_link_bytes_per_s: achieved pinned-memory host<->GPU copy bandwidth [bytes/s].
        decode_attention_hbm_efficiency: fraction of peak HBM bandwidth paged decode attention reaches.
        prefill_attention_flops_efficiency: fraction of peak bf16 throughput prefill attention reaches.
        sampler_hbm_efficiency: fraction of peak HBM bandwidth the sampler's elementwise kernels reach.
    """

    name: str
    memory_bytes: int
    hbm_bytes_per_s: float
    bf16_flops_per_s: float
    host_link_bytes_per_s: float
    decode_attention_hbm_efficiency: float = 0.60
    prefill_attention_flops_efficiency: float = 0.40
    sampler_hbm_efficiency: float = 0.80


#: The GPU vidur's A100 profiling data was measured on (vidur's A100 SKU: 80 GB, HBM2e 2,039 GB/s).
A100_SXM4_80GB = GpuSpec(
    name="NVIDIA A100-SXM4-80GB",
    memory_bytes=81_251 * MIB,
    hbm_bytes_per_s=2.039e12,
    bf16_flops_per_s=312e12,
    host_link_bytes_per_s=25e9,
)

#: The paper's GPU.
A100_SXM4_40GB = GpuSpec(
    name="NVIDIA A100-SXM4-40GB",
    memory_bytes=40_536 * MIB,
    hbm_bytes_per_s=1.555e12,
    bf16_flops_per_s=312e12,
    host_link_bytes_per_s=25e9,
)

#: H100 SXM: FlashAttention-2 (vLLM 0.4's kernel) does not use Hopper's wgmma/TMA and reaches about a
#: quarter of the dense peak in prefill, i.e. ~2x the A100's effective attention throughput.
H100_SXM5_80GB = GpuSpec(
    name="NVIDIA H100 80GB HBM3",
    memory_bytes=81_559 * MIB,
    hbm_bytes_per_s=3.35e12,
    bf16_flops_per_s=989e12,
    host_link_bytes_per_s=50e9,
    prefill_attention_flops_efficiency=0.25,
)

#: dense GEMM speed-up of an H100 SXM over an A100 at equal shapes (peak 989/312 = 3.2x; cuBLAS
#: reaches ~600-700 vs ~250-280 TFLOP/s in practice): PROVISIONAL until measured.
H100_OVER_A100_GEMM_SPEEDUP = 2.5

# ---------------------------------------------------------------------------- CPU side (the engine)
@dataclass(frozen=True)
class EngineCpu:
    """CPU time of one engine step that the GPU waits for (vLLM 0.4 runs it between GPU steps, with no
    overlap): scheduling, building input tensors, the sampler's bookkeeping, output processing.

    Attributes:
        name: short label recorded in a profile's provenance.
        s_per_step: fixed CPU time per step [s].
        s_per_seq: CPU time per scheduled sequence [s/sequence].
        tp_broadcast_s_per_step: extra per step with tensor parallelism (the driver broadcasts the
            step's metadata to the workers) [s].
        source: where the numbers come from (PROFILES.md has the derivation).
    """

    name: str
    s_per_step: float
    s_per_seq: float
    tp_broadcast_s_per_step: float
    source: str


#: The built-in A100 profiles' CPU overhead: first-principles estimates for vLLM 0.4 in eager mode.
VLLM04_EAGER_ESTIMATE = EngineCpu(
    name="vllm-0.4-eager-estimate",
    s_per_step=2.0e-3,
    s_per_seq=30e-6,
    tp_broadcast_s_per_step=1.5e-3,
    source="estimate: block-table updates, input preparation, detokenising, stop checks (PROFILES.md)",
)

#: The paper's engine (vLLM 0.4.1, the published vllm-ltr fork, eager): the per-sequence CPU time of its
#: scheduler and output bookkeeping MEASURED on the published code (46 us/sequence, CPU time, at 256
#: sequences per step), plus ~54 us/sequence ESTIMATED for the parts that need a GPU or the Llama-3
#: tokenizer to run (input tensors, the sampler's Python, incremental detokenising). PROFILES.md,
#: "vLLM 0.4.1 eager CPU time (measured)".
VLLM041_EAGER_MEASURED = EngineCpu(
    name="vllm-0.4.1-eager-measured",
    s_per_step=2.0e-3,
    s_per_seq=100e-6,
    tp_broadcast_s_per_step=1.5e-3,
    source="hao-ai-lab/vllm-ltr@13bbf6f (vLLM 0.4.1 fork): scheduler + output bookkeeping measured "
           "46 us/sequence (CPU time, Python 3.11); input preparation, sampler bookkeeping and "
           "detokenising estimated 54 us/sequence (PROFILES.md)",
)

#: The estimate's constants under their historical names.
OVERHEAD_S_PER_STEP = VLLM04_EAGER_ESTIMATE.s_per_step
TP_BROADCAST_S_PER_STEP = VLLM04_EAGER_ESTIMATE.tp_broadcast_s_per_step
OVERHEAD_S_PER_SEQ = VLLM04_EAGER_ESTIMATE.s_per_seq

# ---------------------------------------------------------------------------- sampler (GPU)
#: fixed sampler time per step: ~20 small kernels (temperature, softmax, log-softmax, exponential race
#: sampling) plus the sync that copies sampled ids to the host [s].
SAMPLER_FIXED_S = 0.3e-3
#: passes over the float32 logits per sampled row (cast, temperature, softmax, log-softmax, sampling
#: race, argmax).
SAMPLER_LOGIT_PASSES = 6
