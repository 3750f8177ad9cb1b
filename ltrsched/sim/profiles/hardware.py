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

# ---------------------------------------------------------------------------- CPU side (vLLM 0.4, eager)
#: CPU time per step not hidden behind GPU work: scheduling, building input tensors, the device->host
#: sync for sampled tokens, output processing [s].
OVERHEAD_S_PER_STEP = 2.0e-3
#: extra per step with tensor parallelism: the driver broadcasts the step's metadata to the workers [s].
TP_BROADCAST_S_PER_STEP = 1.5e-3
#: CPU time per scheduled sequence: block-table updates, input preparation, detokenising, stop
#: checks [s/sequence].
OVERHEAD_S_PER_SEQ = 30e-6

# ---------------------------------------------------------------------------- sampler (GPU)
#: fixed sampler time per step: ~20 small kernels (temperature, softmax, log-softmax, exponential race
#: sampling) plus the sync that copies sampled ids to the host [s].
SAMPLER_FIXED_S = 0.3e-3
#: passes over the float32 logits per sampled row (cast, temperature, softmax, log-softmax, sampling
#: race, argmax).
SAMPLER_LOGIT_PASSES = 6
