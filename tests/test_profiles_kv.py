"""KV capacity arithmetic against hand-computed numbers for the paper's models and GPUs."""

from __future__ import annotations

import pytest

from ltrsched.errors import UserError
from ltrsched.sim.kv_capacity import (
    activation_reserve_bytes,
    kv_blocks_from_config,
    kv_bytes_per_token,
    parameter_count,
    weight_bytes,
    weight_bytes_per_gpu,
)
from ltrsched.sim.profiles import load_profile
from ltrsched.models import LLAMA3_8B, LLAMA3_70B

GIB = 2**30
A100_40GB = 40_536 * 2**20  # bytes CUDA reports for an A100-SXM4-40GB


def test_parameter_counts_match_published():
    assert parameter_count(LLAMA3_8B) == 8_030_261_248
    assert parameter_count(LLAMA3_70B) == 70_553_706_496
    assert weight_bytes(LLAMA3_8B) == 2 * 8_030_261_248


def test_kv_bytes_per_token():
    # 2 (K and V) * layers * kv heads * head_dim 128 * 2 bytes
    assert kv_bytes_per_token(LLAMA3_8B) == 2 * 32 * 8 * 128 * 2 == 131_072
    assert kv_bytes_per_token(LLAMA3_70B) == 2 * 80 * 8 * 128 * 2
    assert kv_bytes_per_token(LLAMA3_70B, tp=8) == 2 * 80 * 1 * 128 * 2 == 40_960
    # more GPUs than KV heads: each GPU keeps one replicated head
    assert kv_bytes_per_token(LLAMA3_70B, tp=16) == kv_bytes_per_token(LLAMA3_70B, tp=8)


def test_weights_per_gpu_under_tp():
    assert weight_bytes_per_gpu(LLAMA3_8B, 1) == weight_bytes(LLAMA3_8B)
    per_gpu = weight_bytes_per_gpu(LLAMA3_70B, 8)
    assert per_gpu == pytest.approx(weight_bytes(LLAMA3_70B) / 8, rel=1e-3)  # only norms are replicated
    assert per_gpu > weight_bytes(LLAMA3_70B) / 8


def test_8b_blocks_on_a100_40gb_hand_computed():
    # reserve: 768 MiB non-torch + 8192 tokens * (3*14336 + (32+2*8)*128 + 4*4096) * 2 bytes
    #          + 256 rows * 128256 vocab * 4 bytes * 2 (logits + probs)
    reserve = 768 * 2**20 + 8192 * (43008 + 6144 + 16384) * 2 + 256 * 128256 * 8
    assert reserve == 2_141_716_480 == activation_reserve_bytes(LLAMA3_8B)
    free = A100_40GB * 0.9 - 16_060_522_496 - reserve       # 20.05e9 bytes
    expected = int(free // (131_072 * 16))
    assert expected == 9561
    assert kv_blocks_from_config(LLAMA3_8B, A100_40GB, tp=1, util=0.9, block_size=16) == expected
    assert load_profile("a100-llama3-8b").num_gpu_blocks(16, 0.9) == expected
    kv_gib = expected * 16 * 131_072 / GIB
    assert 15 <= kv_gib <= 20  # issue 2: ~15-20 GB of KV cache


def test_70b_tp8_blocks():
    p = load_profile("a100-llama3-70b-tp8")
    free = A100_40GB * 0.9 - weight_bytes_per_gpu(LLAMA3_70B, 8) - p.activation_reserve_bytes
    assert p.num_gpu_blocks() == int(free // (40_960 * 16))
    tokens = p.num_gpu_blocks() * 16
    assert 300_000 < tokens < 600_000  # ~16-18 GiB per GPU at 40 KiB/token


def test_reserve_and_utilisation_change_blocks():
    base = kv_blocks_from_config(LLAMA3_8B, A100_40GB)
    assert kv_blocks_from_config(LLAMA3_8B, A100_40GB, reserve_bytes=0) > base
    assert kv_blocks_from_config(LLAMA3_8B, A100_40GB, util=0.5) < base
    assert kv_blocks_from_config(LLAMA3_8B, 16 * GIB, util=0.9) == 0  # weights alone do not fit
    assert kv_blocks_from_config(LLAMA3_8B, A100_40GB, block_size=32) == pytest.approx(base / 2, abs=1)


def test_head_dim_key_is_honoured():
    config = dict(LLAMA3_8B, head_dim=256)
    assert kv_bytes_per_token(config) == 2 * kv_bytes_per_token(LLAMA3_8B)


@pytest.mark.parametrize("mutate,needle", [
    (lambda c: c.pop("num_attention_heads"), "num_attention_heads"),
    (lambda c: c.__setitem__("hidden_size", "4096"), "hidden_size"),
    (lambda c: c.__setitem__("torch_dtype", "float64"), "torch_dtype"),
    (lambda c: c.__setitem__("num_key_value_heads", 7), "num_key_value_heads"),
    (lambda c: c.__setitem__("torch_dtype", ["bfloat16"]), "torch_dtype"),  # a TypeError (unhashable)
    (lambda c: c.__setitem__("tie_word_embeddings", "false"), "tie_word_embeddings"),  # was read as true
])
def test_bad_configs(mutate, needle):
    config = dict(LLAMA3_8B)
    mutate(config)
    with pytest.raises(UserError, match=needle):
        kv_bytes_per_token(config)


@pytest.mark.parametrize("kwargs,needle", [
    ({"tp": 3}, "tensor-parallel"),
    ({"tp": 0}, "tensor-parallel"),
    ({"util": 0}, "gpu_memory_utilization"),
    ({"util": 1.5}, "gpu_memory_utilization"),
    ({"block_size": 0}, "block_size"),
])
def test_bad_arguments(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        kv_blocks_from_config(LLAMA3_8B, A100_40GB, **kwargs)


def test_sizes_beyond_a_float_leave_no_blocks():
    """`profiles --block-size` of 10**400 was an OverflowError traceback (int too large to convert to float)."""
    assert kv_blocks_from_config(LLAMA3_8B, A100_40GB, block_size=10**400) == 0
    assert kv_blocks_from_config({**LLAMA3_8B, "hidden_size": 1 << 31, "intermediate_size": 1 << 31}, A100_40GB) == 0
    # (2^31 layers: refused, more than any model has, test_models_layouts.py)


def test_block_count_unchanged_by_the_exact_comparisons():
    free = 0.9 * A100_40GB - weight_bytes_per_gpu(LLAMA3_8B) - activation_reserve_bytes(LLAMA3_8B)
    for block_size in (1, 16, 4096):
        expected = int(free // (kv_bytes_per_token(LLAMA3_8B) * block_size))
        assert kv_blocks_from_config(LLAMA3_8B, A100_40GB, block_size=block_size) == expected


def test_a_llama_config_is_read_for_its_sliding_window_without_transformers_classes(monkeypatch, capsys):
    """Reading a Llama model config for the sliding-window note imported transformers' config classes (6.5 s of every
    `ltrsched simulate` on a built-in profile, the suite 1.8x slower): Llama's configuration file names no window, so
    its class is not read; Mistral's, which defaults one, still is, and gets the note."""
    from ltrsched import config_classes
    from ltrsched.sim import kv_capacity

    read = []
    real = config_classes.class_defaults
    monkeypatch.setattr(config_classes, "class_defaults", lambda kind, sizes: read.append(kind) or real(kind, sizes))
    kv_capacity._note_sliding_window({"model_type": "llama"}, "config.json", "")
    assert read == [] and "sliding window" not in capsys.readouterr().err
    kv_capacity._note_sliding_window({"model_type": "mistral"}, "config.json", "")
    assert read == ["mistral"] and "4,096-token sliding window" in capsys.readouterr().err
