"""Build-time derivation of the built-in profiles from vidur's A100 operator timings.

Run from the repository (needs the reference data in ``../shared/data``, or ``--data DIR``)::

    python -m ltrsched.sim.profiles.derive_a100            # rewrite the built-in profile JSON files
    python -m ltrsched.sim.profiles.derive_a100 --check    # exit 1 if the committed files differ

Method (constants and reasons in PROFILES.md):

* non-attention time per step, by tokens in the step: vidur's per-layer operator medians (ms, by
  num_tokens and TP) summed over the operators and multiplied by the layers, plus the embedding; with
  TP, 2 all-reduces per layer + 1 for the vocab-parallel embedding, of ``num_tokens * hidden * 2`` bytes,
  from vidur's DGX-A100 all-reduce medians. vidur measured on A100-**80GB** (HBM2e 2,039 GB/s); each
  operator is moved to the target GPU on a roofline: elementwise operators scale with HBM bandwidth,
  GEMMs take ``max(measured / gemm_speedup, memory time * bandwidth ratio)``, with the memory time
  grown from the 1-token (weight-streaming) measurement by the GEMM's bytes.
* sampling time, by sequences sampled: LM head (vidur's merged gate/up GEMM scaled to the vocabulary
  width, same retargeting), logits gather under TP, sampler passes over float32 logits.
* attention from first principles: decode reads KV bytes at a derated HBM bandwidth; prefill does
  ``4 * heads * head_dim`` FLOPs per query-key pair per layer at a derated tensor-core throughput.
* CPU overhead per step and per sequence: vLLM 0.4 eager, estimated (the base profiles), or the paper's
  vLLM 0.4.1 eager with the per-sequence time measured on the published code (``*-vllm041-eager``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import click
import numpy as np
import polars as pl

from ltrsched import atomic
from ltrsched.errors import UserError
from ltrsched.sim.kv_capacity import ModelShape, activation_reserve_bytes, kv_bytes_per_token
from ltrsched.sim.profiles import hardware as hw
from ltrsched.sim.profiles.fit import isotonic
from ltrsched.sim.profiles.interp import PiecewiseLinear
from ltrsched.sim.profiles.io import dumps_profile
from ltrsched.sim.profiles.model import StepTimeProfile
from ltrsched.models import LLAMA3_8B, LLAMA3_70B

PROFILE_DIR = Path(__file__).resolve().parent
MS = 1e-3
#: significant digits kept in the committed JSON (1e-6 relative: far below timing noise).
SIGNIFICANT_DIGITS = 6
#: the largest batch the sampling table covers directly [sequences] (beyond: last slope).
MAX_SAMPLING_SEQS = 1024

GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEMENTWISE_OPS = ("input_layernorm", "attn_rope", "post_attention_layernorm", "mlp_act", "add")
LAYER_OPS = GEMM_OPS + ELEMENTWISE_OPS


@dataclass(frozen=True)
class ProfileRecipe:
    """What to derive: a model on a GPU at a TP degree, from which vidur file, with which engine's CPU
    time per step (``engine``)."""

    name: str
    description: str
    model: str
    model_config: Mapping
    tensor_parallel: int
    gpu: hw.GpuSpec
    mlp_csv: str
    gemm_speedup: float = 1.0
    engine: hw.EngineCpu = hw.VLLM04_EAGER_ESTIMATE


RECIPES: tuple[ProfileRecipe, ...] = (
    ProfileRecipe(
        name="a100-llama3-8b",
        description="Llama-3-8B on 1x A100-40GB, vLLM 0.4 eager: vidur A100 operator timings "
                    "(HBM-corrected to 40GB) + first-principles attention and CPU overhead",
        model="meta-llama/Meta-Llama-3-8B-Instruct",
        model_config=LLAMA3_8B,
        tensor_parallel=1,
        gpu=hw.A100_SXM4_40GB,
        mlp_csv="llama3-8b-mlp.csv",
    ),
    ProfileRecipe(
        name="a100-llama3-70b-tp8",
        description="Llama-3-70B on 8x A100-40GB (TP8, NVLink), vLLM 0.4 eager: vidur A100 operator "
                    "and all-reduce timings + first-principles attention and CPU overhead",
        model="meta-llama/Meta-Llama-3-70B-Instruct",
        model_config=LLAMA3_70B,
        tensor_parallel=8,
        gpu=hw.A100_SXM4_40GB,
        mlp_csv="llama3-70b-mlp.csv",
    ),
    ProfileRecipe(
        name="h100-llama3-8b",
        description="PROVISIONAL (not measured): Llama-3-8B on 1x H100-80GB SXM, scaled from the A100 "
                    "timings by public H100/A100 ratios (HBM 3.35/1.555 TB/s, GEMM 2.5x)",
        model="meta-llama/Meta-Llama-3-8B-Instruct",
        model_config=LLAMA3_8B,
        tensor_parallel=1,
        gpu=hw.H100_SXM5_80GB,
        mlp_csv="llama3-8b-mlp.csv",
        gemm_speedup=hw.H100_OVER_A100_GEMM_SPEEDUP,
    ),
)


def _vllm041_eager(base: ProfileRecipe) -> ProfileRecipe:
    """``base`` with the CPU time of the paper's engine (vLLM 0.4.1 eager, measured) instead of the estimate."""
    return dataclasses.replace(
        base, name=f"{base.name}-vllm041-eager", engine=hw.VLLM041_EAGER_MEASURED,
        description=base.description.split(", vLLM 0.4 eager")[0]
        + ", vLLM 0.4.1 eager as in the paper: the base profile's GPU times + per-sequence CPU time from a "
          "measurement of the published vllm-ltr code (100 us/seq instead of the estimated 30)")


#: The paper's setting: the A100 profiles with vLLM 0.4.1's measured CPU time (PROFILES.md).
RECIPES = RECIPES + tuple(_vllm041_eager(r) for r in RECIPES if r.name.startswith("a100-"))
ALL_REDUCE_CSV = "a100-dgx-all-reduce.csv"
SOURCE_GPU = hw.A100_SXM4_80GB


# ---------------------------------------------------------------------------- reading vidur data
def default_data_dir() -> Path:
    """``$LTRSCHED_SHARED_DATA/a100-profiles``, else ``<repo>/../shared/data/a100-profiles``."""
    env = os.environ.get("LTRSCHED_SHARED_DATA")
    base = Path(env) if env else PROFILE_DIR.parents[3] / "shared" / "data"
    return base / "a100-profiles"


def _read_csv(path: Path) -> pl.DataFrame:
    try:
        return pl.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"reference data not found: {path} (pass --data DIR)") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def read_layer_ops(path: Path, tp: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """vidur per-layer operator times at ``tp``: (num_tokens [tokens], op -> median time [s]).

    Rows measured more than once for the same num_tokens are combined by their median.
    """
    df = _read_csv(path)
    cols = {op: f"time_stats.{op}.median" for op in LAYER_OPS + ("emb",)}
    missing = [c for c in (*cols.values(), "num_tokens", "num_tensor_parallel_workers") if c not in df.columns]
    if missing:
        raise UserError(f"{path}: column {missing[0]!r} is missing")
    grouped = (df.filter(pl.col("num_tensor_parallel_workers") == tp)
               .group_by("num_tokens")
               .agg([pl.col(c).median().alias(op) for op, c in cols.items()])
               .sort("num_tokens"))
    if grouped.is_empty() or grouped["num_tokens"][0] != 1:
        raise UserError(f"{path}: no rows for tensor-parallel size {tp} starting at 1 token")
    return grouped["num_tokens"].to_numpy().astype(np.float64), {
        op: grouped[op].to_numpy() * MS for op in cols
    }


def read_all_reduce(path: Path, num_workers: int) -> PiecewiseLinear:
    """All-reduce time [s] by message size [bytes] among ``num_workers`` GPUs of one NVLink node."""
    df = _read_csv(path)
    grouped = (df.filter((pl.col("num_workers") == num_workers)
                         & (pl.col("devices_per_node") == num_workers)
                         & (pl.col("collective") == "all_reduce"))
               .group_by("size").agg(pl.col("time_stats.all_reduce.median").median().alias("ms"))
               .sort("size"))
    if grouped.is_empty():
        raise UserError(f"{path}: no all-reduce rows for {num_workers} workers on one node")
    return PiecewiseLinear(grouped["size"].to_numpy(), isotonic(grouped["ms"].to_numpy()) * MS)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- retargeting
def gemm_shapes(m: ModelShape, tp: int) -> dict[str, tuple[int, int]]:
    """Per-GPU (K, N) of each GEMM: input width, output width [elements]."""
    q = m.num_heads // tp * m.head_dim
    kv = m.kv_heads_per_gpu(tp) * m.head_dim
    return {
        "attn_pre_proj": (m.hidden_size, q + 2 * kv),          # fused q, k, v
        "attn_post_proj": (q, m.hidden_size),                 # o
        "mlp_up_proj": (m.hidden_size, 2 * m.intermediate_size // tp),  # fused gate, up
        "mlp_down_proj": (m.intermediate_size // tp, m.hidden_size),
        "lm_head": (m.hidden_size, -(-m.vocab_size // tp)),
    }


def retarget_gemm(num_tokens: np.ndarray, seconds: np.ndarray, k: int, n: int, dtype_bytes: int,
                  bandwidth_ratio: float, gemm_speedup: float) -> np.ndarray:
    """Move GEMM timings to another GPU on a roofline.

    The 1-token time is taken as weight streaming; the memory time at ``t`` tokens grows with the
    bytes moved, ``(k*n + t*(k+n)) * dtype_bytes``. Target time = max(measured / gemm_speedup,
    memory time * bandwidth_ratio), where bandwidth_ratio = source HBM / target HBM.
    """
    bytes_moved = (k * n + num_tokens * (k + n)) * dtype_bytes
    memory_time = seconds[0] * bytes_moved / bytes_moved[0]
    return np.maximum(seconds / gemm_speedup, memory_time * bandwidth_ratio)


def _round(values, digits: int = SIGNIFICANT_DIGITS):
    def one(v: float) -> float:
        return float(f"{v:.{digits}g}") if v else 0.0
    if isinstance(values, (float, int)):
        return one(float(values))
    return [one(float(v)) for v in values]


# ---------------------------------------------------------------------------- the derivation
def derive_profile(recipe: ProfileRecipe, data_dir: Path | None = None) -> StepTimeProfile:
    """Derive one profile from the vidur files in ``data_dir`` (default: :func:`default_data_dir`)."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    m = ModelShape.from_config(recipe.model_config)
    tp = recipe.tensor_parallel
    gpu = recipe.gpu
    bw_ratio = SOURCE_GPU.hbm_bytes_per_s / gpu.hbm_bytes_per_s
    shapes = gemm_shapes(m, tp)
    mlp_path = data_dir / recipe.mlp_csv
    tokens, ops = read_layer_ops(mlp_path, tp)

    # -- non-attention layers + embedding (+ all-reduces)
    layer = np.zeros_like(tokens)
    for op in GEMM_OPS:
        k, n = shapes[op]
        layer += retarget_gemm(tokens, ops[op], k, n, m.dtype_bytes, bw_ratio, recipe.gemm_speedup)
    for op in ELEMENTWISE_OPS:
        layer += ops[op] * bw_ratio
    non_attention = m.num_layers * layer + ops["emb"] * bw_ratio
    data_files = {recipe.mlp_csv: file_sha256(mlp_path)}
    all_reduce = None
    if tp > 1:
        ar_path = data_dir / ALL_REDUCE_CSV
        all_reduce = read_all_reduce(ar_path, tp)
        data_files[ALL_REDUCE_CSV] = file_sha256(ar_path)
        message = tokens * m.hidden_size * m.dtype_bytes
        non_attention = non_attention + (2 * m.num_layers + 1) * np.array([all_reduce(b) for b in message])

    # -- sampling: LM head + logits gather + sampler, by sequences sampled
    seqs_mask = tokens <= MAX_SAMPLING_SEQS
    seqs = tokens[seqs_mask]
    k, n = shapes["lm_head"]
    up_k, up_n = shapes["mlp_up_proj"]
    lm_head_source = ops["mlp_up_proj"][seqs_mask] * (n / up_n)
    lm_head = retarget_gemm(seqs, lm_head_source, k, n, m.dtype_bytes, bw_ratio, recipe.gemm_speedup)
    logits_bytes = seqs * m.vocab_size * 4
    sampler = hw.SAMPLER_FIXED_S + hw.SAMPLER_LOGIT_PASSES * logits_bytes / (
        gpu.hbm_bytes_per_s * gpu.sampler_hbm_efficiency)
    sampling = lm_head + sampler
    if all_reduce is not None:
        # gather of seqs*V*2 bytes to the driver ~ an all-reduce of half that message (a ring
        # all-reduce moves 2(p-1)/p of its message per GPU, a gather (p-1)/p of the total to the root)
        sampling = sampling + np.array([all_reduce(b) for b in seqs * m.vocab_size * m.dtype_bytes / 2])

    # -- attention coefficients
    kv_per_token = kv_bytes_per_token(m, tp)
    decode_s_per_kv_token = kv_per_token / (gpu.hbm_bytes_per_s * gpu.decode_attention_hbm_efficiency)
    flops_per_pair = m.num_layers * 4 * (m.num_heads // tp) * m.head_dim
    prefill_s_per_pair = flops_per_pair / (gpu.bf16_flops_per_s * gpu.prefill_attention_flops_efficiency)

    engine = recipe.engine
    overhead_step = engine.s_per_step + (engine.tp_broadcast_s_per_step if tp > 1 else 0.0)
    provenance = {
        "derived_by": "python -m ltrsched.sim.profiles.derive_a100",
        "source": "microsoft/vidur data/profiling (MIT): per-operator medians on A100-SXM4-80GB; "
                  "attention, sampler and CPU overhead from first principles (PROFILES.md)",
        "data_files_sha256": data_files,
        "source_gpu": SOURCE_GPU.name,
        "constants": {
            "source_hbm_bytes_per_s": SOURCE_GPU.hbm_bytes_per_s,
            "target_hbm_bytes_per_s": gpu.hbm_bytes_per_s,
            "target_bf16_flops_per_s": gpu.bf16_flops_per_s,
            "gemm_speedup_over_source": recipe.gemm_speedup,
            "decode_attention_hbm_efficiency": gpu.decode_attention_hbm_efficiency,
            "prefill_attention_flops_efficiency": gpu.prefill_attention_flops_efficiency,
            "sampler_hbm_efficiency": gpu.sampler_hbm_efficiency,
            "sampler_fixed_s": hw.SAMPLER_FIXED_S,
            "sampler_logit_passes": hw.SAMPLER_LOGIT_PASSES,
            "overhead_s_per_step": engine.s_per_step,
            "tp_broadcast_s_per_step": engine.tp_broadcast_s_per_step if tp > 1 else 0.0,
            "overhead_s_per_seq": engine.s_per_seq,
            "all_reduces_per_step": 2 * m.num_layers + 1 if tp > 1 else 0,
            "activation_reserve": "kv_capacity.activation_reserve_bytes(max_num_batched_tokens=8192, "
                                  "max_num_seqs=256)",
        },
    }
    if engine != hw.VLLM04_EAGER_ESTIMATE:  # the estimate's profiles predate this record; keep them as they were
        provenance["engine_cpu"] = {"name": engine.name, "source": engine.source}
    return StepTimeProfile(
        name=recipe.name,
        description=recipe.description,
        gpu=gpu.name,
        model=recipe.model,
        tensor_parallel=tp,
        max_model_len=int(recipe.model_config["max_position_embeddings"]),
        gpu_memory_bytes=gpu.memory_bytes,
        activation_reserve_bytes=activation_reserve_bytes(m, tp),
        host_link_bytes_per_s=gpu.host_link_bytes_per_s,
        non_attention_num_tokens=tuple(float(t) for t in tokens),
        non_attention_s=tuple(_round(isotonic(non_attention))),
        sampling_num_seqs=tuple(float(s) for s in seqs),
        sampling_s=tuple(_round(isotonic(sampling))),
        decode_attention_s_per_kv_token=_round(decode_s_per_kv_token),
        prefill_attention_s_per_pair=_round(prefill_s_per_pair),
        overhead_s_per_step=_round(overhead_step),
        overhead_s_per_seq=_round(engine.s_per_seq),
        model_config=dict(recipe.model_config),
        provenance=provenance,
    )


def derive_all(data_dir: Path | None = None) -> dict[str, StepTimeProfile]:
    """All built-in profiles, derived afresh."""
    return {r.name: derive_profile(r, data_dir) for r in RECIPES}


@click.command("derive-profiles")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Folder with vidur's A100 CSVs [default: ../shared/data/a100-profiles].")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=PROFILE_DIR, show_default=False,
              help="Where to write the profile JSON files [default: the built-in profile folder].")
@click.option("--check", is_flag=True, help="Compare with the files in --out instead of writing; exit 1 on a "
                                             "difference.")
def derive_profiles(data_dir: Path | None, out_dir: Path, check: bool) -> None:
    """Derive the built-in step-time profiles from the reference A100 data."""
    stale = []
    for name, profile in derive_all(data_dir).items():
        target = out_dir / f"{name}.json"
        text = dumps_profile(profile)
        if check:
            current = target.read_text(encoding="utf-8") if target.exists() else None
            if current != text:
                stale.append(name)
            click.echo(f"{name}: {'differs' if current != text else 'ok'}")
        else:
            if not out_dir.is_dir():
                raise UserError(f"output folder does not exist: {out_dir}")
            atomic.write_text(target, text)
            click.echo(f"wrote {target}")
    if stale:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    try:
        derive_profiles.main(args=argv, prog_name="derive_a100", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
