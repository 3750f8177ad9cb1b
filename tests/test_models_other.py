"""Model configs of other architectures than the built-in Llamas (Gemma-2/3, Mistral, Qwen2, Phi-3 style config.json
in a local model directory, composite models' ``text_config``) as the engine side and the simulator read them before
the engine starts: which layers slide and the context a stated KV cache bounds, the text model's sizes and RoPE
factor, and hostile values, each refused in one line before the start."""

from __future__ import annotations

import json
import re

import pytest

from conftest import make_workload, save_word_chat_tokenizer
from ltrsched.errors import UserError
from ltrsched.models import LLAMA_TINY

LLAVA_TYPE = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"]}
TINY = dict(LLAMA_TINY)  # 2 layers, 4 KV heads of 64, float32, max_position_embeddings 4096
#: Six layers of TINY's width, so that layer patterns show.
SIX = {**TINY, "num_hidden_layers": 6}
GEMMA2 = {**SIX, "model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], "head_dim": 64,
          "sliding_window": 256}
GEMMA3 = {**SIX, "model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"], "head_dim": 64,
          "sliding_window": 256}
MISTRAL = {**SIX, "model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 256}
QWEN2 = {**SIX, "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "use_sliding_window": True,
         "sliding_window": 256, "max_window_layers": 6}
PHI3 = {**SIX, "model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "sliding_window": 256}


def _model_dir(path, config):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def _replay_refusal(tmp_path, capsys, config):
    """``replay`` of a model directory of ``config`` (no engine starts where the check refuses it): asserts exit
    code 2 and one line on stderr; returns the directory and that line."""
    from cli_helpers import run_cli_fast

    path = _model_dir(tmp_path / "m", config)
    result = run_cli_fast(capsys, "replay", "-m", path, "-w", "lmsys-like", "-n", "2", "-o", tmp_path / "o")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return path, lines[0]


def _cpu_config(**options):
    from ltrsched.validation.engines import engine_config

    return engine_config(**{"model": "llama-tiny", "platform": "cpu", **options})


# --- which layers slide, as vLLM reads them (transformers' config class builds layer_types) -------------------------

@pytest.mark.parametrize("config, full, sliding, known, class_decides", [
    (TINY, 2, 0, True, False),
    (GEMMA2, 3, 3, True, True),                                    # (alternating: sliding first)
    (GEMMA3, 1, 5, True, True),                                    # (5 sliding : 1 full)
    (MISTRAL, 0, 6, True, False),                                  # (no layer_types: every layer slides)
    (PHI3, 0, 6, True, False),
    ({**QWEN2, "max_window_layers": 2}, 2, 4, True, True),        # (Qwen2 slides from max_window_layers on)
    (QWEN2, 6, 0, True, False),
    ({**QWEN2, "use_sliding_window": False}, 6, 0, True, False),   # (transformers drops the window)
    ({**MISTRAL, "layer_types": ["full_attention"] * 6}, 6, 0, True, False),
    ({**MISTRAL, "layer_types": ["sliding_attention", "full_attention"] * 3}, 3, 3, True, True),
    ({**MISTRAL, "layer_types": ["chunked_attention"] * 6}, 6, 0, False, False),  # (unknown kinds: both bounds)
    ({**MISTRAL, "layer_types": "sliding"}, 6, 0, False, False),
    ({**GEMMA2, "layer_types": None}, 3, 3, True, True),           # (null: the class builds them)
    ({**GEMMA2, "layer_types": ["sliding_attention"] * 5}, 6, 0, False, False),  # (fewer than the layers)
    ({**GEMMA2, "num_hidden_layers": 6, "rope_scaling": "x"}, 6, 0, False, False),  # (the class refuses its values)
    # a composite Gemma-3 whose text_config names no model_type: the text class its composite class builds (5 : 1);
    # read as the composite class, it has no layer_types, so every layer counted as sliding
    ({"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
      "text_config": {k: v for k, v in GEMMA3.items() if k not in ("model_type", "architectures")}}, 1, 5, True, True),
    ({**LLAVA_TYPE, "text_config": {k: v for k, v in MISTRAL.items() if k != "model_type"}}, 6, 0, False, False),
])
def test_which_layers_slide_is_read_as_vllm_reads_it(config, full, sliding, known, class_decides):
    """A sliding window applied to every layer in the bound (the old rule, whichever layers slide); now the layers
    transformers' config class marks sliding (vLLM's per-layer window), every layer where it marks none."""
    from ltrsched.engine.kv_layers import kv_layout

    layout = kv_layout(config)
    assert (layout.full, layout.sliding, layout.known, layout.class_decides) == (full, sliding, known, class_decides)


# --- the context a stated KV cache bounds, as vLLM 0.32 counts one request's blocks in its KV groups ---------------

@pytest.mark.parametrize("config, options, bound, says", [
    # Gemma-2 (3 full + 3 sliding layers: two groups of 3, a pool block holds 128 tokens of 3 layers): 10 blocks
    # hold c + (min(c, 8) + 1) <= 9 blocks of a request: 512 tokens. Every layer counted as sliding gave 1,024,
    # which vLLM refuses at its start.
    (GEMMA2, {"num_gpu_blocks": 10}, 512, "each holds one of vLLM's KV groups of 3 layers (3 attending to the whole "
                                          "context, 3 with the model's 256-token sliding window"),
    # the same bytes as --kv-cache-gib: 20 blocks of 3 layers (1,280 tokens), as vLLM's Gemma-2 model reads its
    # layer_types (it was the smaller bound of that and of 10 blocks of 6 layers, 1,152; before, 1,024)
    (GEMMA2, {"kv_cache_gib": 10 * 6 * 128 * 2 * 4 * 64 * 4 / 2**30}, 1280, "KV groups of 3 layers"),
    # a model whose vLLM module reads no layer_types (Mistral's takes its layers from Llama's): both bounds, the smaller
    ({**MISTRAL, "layer_types": ["sliding_attention", "full_attention"] * 3},
     {"kv_cache_gib": 10 * 6 * 128 * 2 * 4 * 64 * 4 / 2**30}, 1152, "the smaller bound of the two"),
    # every layer of a Mistral slides: the window (255 + a step's 768 tokens) takes 9 blocks whatever the context,
    # so 20 blocks hold the whole 4,096-token context, which vLLM accepts; it was bounded at 2,304
    (MISTRAL, {"num_gpu_blocks": 20}, 4096, "max_position_embeddings"),
    (MISTRAL, {"num_gpu_blocks": 9}, 7 * 128, "one more per request as vLLM counts a layer with the model's 256-token "
                                              "sliding window"),
    # Gemma-3 (5 sliding : 1 full): groups of 1 layer, a request takes 5 sliding groups' blocks besides its own
    (GEMMA3, {"num_gpu_blocks": 30}, 4 * 128, "KV groups of 1 layers"),
    # layer_types of kinds ltrsched does not know: the smaller of every layer sliding and every layer attending fully
    ({**MISTRAL, "layer_types": ["chunked_attention"] * 6}, {"num_gpu_blocks": 9}, 7 * 128,
     "its config does not tell which layers slide"),
    (TINY, {"num_gpu_blocks": 10}, 9 * 128, "(one of them vLLM's null block) x 128 tokens"),
])
def test_a_stated_kv_cache_bounds_the_context_as_vllm_counts_its_groups(tmp_path, config, options, bound, says):
    from ltrsched.engine.runner import engine_kwargs
    from ltrsched.validation.engines import check_context_before_start, expected_context

    engine = _cpu_config(model=str(_model_dir(tmp_path / "m", config)), **options)
    context, source = expected_context(engine)
    assert context == bound and says in source
    assert engine_kwargs(engine, "dummy").get("max_model_len", 4096) == bound
    check_context_before_start(make_workload([bound - 4], [4]), engine)
    if bound < 4096:
        with pytest.raises(UserError, match="give (more --num-gpu-blocks|a larger --kv-cache-gib)"):
            check_context_before_start(make_workload([bound - 3], [4]), engine)


#: The step's token budget of :func:`gemma2_vllm_config` [tokens].
VLLM_BUDGET = 256


@pytest.fixture(scope="module")
def gemma2_vllm_config(tmp_path_factory):
    """vLLM's own configuration of a Gemma-2 model directory as the CPU engine starts it (blocks of 32 tokens, a step
    of :data:`VLLM_BUDGET` tokens), without starting it: what its KV planner reads (built once, seconds)."""
    from vllm.engine.arg_utils import EngineArgs

    vllm_config = EngineArgs(model=str(_model_dir(tmp_path_factory.mktemp("gemma2"), GEMMA2)),
                             skip_tokenizer_init=True, max_num_batched_tokens=VLLM_BUDGET, block_size=32,
                             enable_prefix_caching=False, async_scheduling=False).create_engine_config()
    vllm_config.cache_config.kv_cache_layout = "LBHNC"  # (the CPU attention's; the engine core resolves it)
    return vllm_config


@pytest.mark.vllm
def test_the_bound_is_vllms_own_count_at_its_start(gemma2_vllm_config):
    """vLLM's own start-up planning (its KV groups of full-attention and sliding-window layer specs, and the check that
    one request of max_model_len fits the pool less its null block) admits each bound and refuses one token more,
    for the pool stated in blocks and in bytes."""
    import torch
    from vllm.v1.core.kv_cache_utils import get_kv_cache_configs
    from vllm.v1.kv_cache_interface import FullAttentionSpec, SlidingWindowSpec

    from ltrsched.engine import kv_layers

    block, budget, page = 32, VLLM_BUDGET, 32 * 2 * 2 * 64 * 4
    vllm_config = gemma2_vllm_config

    def admits(kinds, window, tokens, blocks=None, memory=10**12):
        shape = dict(block_size=block, num_kv_heads=2, head_size=64, dtype=torch.float32)
        specs = {f"model.layers.{i}.self_attn.attn": SlidingWindowSpec(sliding_window=window, **shape) if k == "s"
                 else FullAttentionSpec(**shape) for i, k in enumerate(kinds)}
        vllm_config.model_config.max_model_len = tokens
        vllm_config.cache_config.num_gpu_blocks_override = blocks
        try:
            get_kv_cache_configs(vllm_config, [specs], [memory])
        except ValueError as exc:
            assert "To serve at least one request" in str(exc)
            return False
        return True

    seen = set()  # (whether the whole context fitted: both cases met)
    for kinds in ("ffffff", "ssssss", "sfsfsf", "sssssf" * 2, "f" * 13 + "s" * 12, "fffssssssss"):
        for window in (40, 1000):
            layout = kv_layers.KVLayout(full=kinds.count("f"), sliding=kinds.count("s"),
                                        window=window if "s" in kinds else None)
            for blocks in (3, 12):  # (12: a sliding model holds its window, so the whole context)
                memory = blocks * block * page * len(kinds) // 2 + 12345  # (not a whole number of blocks)
                pool = kv_layers.pool_blocks(layout, block, page // block, memory)
                for stated in ({"blocks": blocks}, {"memory": memory}):
                    bound = kv_layers.bounded_context(layout, stated.get("blocks", pool), block, budget, 4096)
                    seen.add(bound is None)
                    if bound is None:
                        assert admits(kinds, window, 4096, **stated), (kinds, window, stated)
                        continue
                    assert bound == 0 or admits(kinds, window, bound, **stated), (kinds, window, stated, bound)
                    assert not admits(kinds, window, bound + 1, **stated), (kinds, window, stated, bound)
    assert seen == {True, False}


#: A composite Gemma-3 (its language model: vLLM's Gemma3ForCausalLM, which reads layer_types).
GEMMA3_MM = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
             "text_config": {k: v for k, v in GEMMA3.items() if k not in ("model_type", "architectures")}}


@pytest.mark.vllm
@pytest.mark.parametrize("config", [GEMMA2, GEMMA3, TINY, {**GEMMA2, "num_hidden_layers": 5}, GEMMA3_MM])
def test_the_kv_bytes_reserved_for_stated_blocks_are_what_vllm_allocates(tmp_path, gemma2_vllm_config, config):
    """--num-gpu-blocks N on the CPU engine reserved N blocks of every layer (vLLM's kv_cache_memory_bytes, checked
    against the RAM available), but vLLM 0.32 puts a model's full-attention and sliding-window layers in KV groups and
    a block of its pool holds one group's layers: for Gemma-2 (3 + 3 layers) twice the bytes vLLM allocates. Now
    exactly vLLM's: its planner, given the specs of the model's layers (the kinds transformers' config class builds,
    which vLLM's model reads) and the bytes reserved, allocates them all for N blocks."""
    import torch
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from vllm.v1.core.kv_cache_utils import get_kv_cache_configs
    from vllm.v1.kv_cache_interface import FullAttentionSpec, SlidingWindowSpec

    from ltrsched.engine.runner import engine_kwargs

    blocks, block = 20, 128  # (Gemma-3: a request of one block takes 11, one in each of 6 groups, 5 more)
    engine = _cpu_config(model=str(_model_dir(tmp_path / "m", config)), num_gpu_blocks=blocks, block_size=block)
    reserved = engine_kwargs(engine, "dummy")["kv_cache_memory_bytes"]
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    text = CONFIG_MAPPING[config["model_type"]](**fields).get_text_config()
    kinds = getattr(text, "layer_types", None) or ["full_attention"] * 2
    shape = dict(block_size=block, num_kv_heads=4, head_size=64, dtype=torch.float32)  # (float32: the CPU default)
    specs = {f"model.layers.{i}.self_attn.attn": SlidingWindowSpec(sliding_window=256, **shape)
             if kind == "sliding_attention" else FullAttentionSpec(**shape) for i, kind in enumerate(kinds)}
    gemma2_vllm_config.model_config.max_model_len = block  # (a request of one block: the pool admits it)
    gemma2_vllm_config.cache_config.num_gpu_blocks_override = blocks
    (planned,) = get_kv_cache_configs(gemma2_vllm_config, [specs], [reserved])
    assert planned.num_blocks == blocks
    assert {tensor.size for tensor in planned.kv_cache_tensors} == {reserved}  # (the groups alias one region)


def test_the_ram_check_of_stated_blocks_counts_vllms_kv_groups(tmp_path, monkeypatch):
    """--num-gpu-blocks 600 of a Gemma-2 (3 + 3 layers in two KV groups: a block holds 128 tokens of 3 layers, 0.75
    MiB) was refused on a machine with 0.5 GiB available, counted as 600 blocks of all 6 layers (0.88 GiB); vLLM
    allocates 0.44 GiB. Refused only beyond what vLLM allocates, naming the group's bytes."""
    import ltrsched.engine.platform as platform

    monkeypatch.setattr(platform, "available_memory_bytes", lambda: 2**29)
    monkeypatch.setattr(platform, "memory_gib", lambda: 8.0)
    path = str(_model_dir(tmp_path / "m", GEMMA2))
    assert _cpu_config(model=path, num_gpu_blocks=600).num_gpu_blocks == 600
    with pytest.raises(UserError, match=r"^--num-gpu-blocks 700 asks for a KV cache of 0\.5 GiB \(700 blocks x 128 "
                                        r"tokens x 6,144 bytes per token of .* in one of vLLM's KV groups\), more"):
        _cpu_config(model=path, num_gpu_blocks=700)


def test_the_kv_cache_gib_a_probe_refusal_names_holds_the_blocks_it_names(tmp_path):
    """profile's refusal of a --kv-cache-gib too small for its probes named the GiB of N blocks of every layer: for
    Gemma-2 twice the blocks wanted, as vLLM (and the check's own count) holds 3 of its 6 layers in a block."""
    from types import SimpleNamespace

    from ltrsched.engine.config import stated_kv_blocks
    from ltrsched.validation.probe_cache import _larger

    path = str(_model_dir(tmp_path / "m", GEMMA2))
    config = _cpu_config(model=path, kv_cache_gib=0.01)
    named = _larger(SimpleNamespace(config=config, emulated=False), 46)
    gib = float(named.split()[1])
    assert named.endswith("(46 blocks)")
    assert 46 <= stated_kv_blocks(_cpu_config(model=path, kv_cache_gib=gib), path) < 50


# --- a composite model's RoPE factor is its text model's ------------------------------------------------------------

LLAVA = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"]}


@pytest.mark.parametrize("factor", ["x", 0, [4.0]])
def test_a_bad_rope_factor_in_text_config_is_refused_at_the_options_check(tmp_path, factor):
    """The check before the start read the top level's RoPE factor only: a composite model's bad one (in text_config,
    where vLLM reads it) passed it; a bad one beside text_config, which vLLM does not read, was refused."""
    bad = _model_dir(tmp_path / "bad", {**LLAVA, "text_config": {**TINY, "rope_scaling": {"type": "linear",
                                                                                           "factor": factor}}})
    with pytest.raises(UserError) as caught:
        _cpu_config(model=str(bad))
    assert str(caught.value) == (f"{bad / 'config.json'}: the RoPE scaling factor (text_config.rope_scaling's factor) "
                                 f"must be a positive number, got {factor!r}")
    beside = _model_dir(tmp_path / "beside", {**LLAVA, "rope_scaling": {"type": "linear", "factor": factor},
                                              "text_config": dict(TINY)})
    _cpu_config(model=str(beside))


# --- a simulator profile's model_config: the text model's sizes, as the engine side reads them ----------------------

def _profile_file(tmp_path, model_config):
    from ltrsched.sim.profiles.io import load_profile, profile_to_dict

    data = profile_to_dict(load_profile("a100-llama3-8b"))
    data["model_config"] = model_config
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    return path


def _llama3_8b():
    from ltrsched.models import LLAMA3_8B

    return dict(LLAMA3_8B)


DECOYS = {"num_hidden_layers": 80, "num_attention_heads": 2, "num_key_value_heads": 1, "hidden_size": 8}


@pytest.mark.parametrize("model_config", [
    {**LLAVA, "torch_dtype": "bfloat16", "text_config": {**_llama3_8b(), "torch_dtype": None}},
    {**LLAVA, **DECOYS, "text_config": _llama3_8b()},             # (sizes beside text_config: not the text model's)
    {**LLAVA, "text_config": {k: v for k, v in _llama3_8b().items() if k != "model_type"}},
])
def test_a_profile_embedding_a_composite_models_config_is_sized_from_its_text_model(tmp_path, model_config):
    """A hand-written profile whose model_config is a composite model's config.json was refused for its top level's
    missing num_hidden_layers, or sized from the keys beside text_config: its KV blocks are now the text model's, as
    the engine side reads them (and as `profile` writes its own)."""
    from ltrsched.sim.kv_capacity import ModelShape
    from ltrsched.sim.profiles.io import load_profile

    loaded = load_profile(str(_profile_file(tmp_path, model_config)))
    reference = load_profile("a100-llama3-8b")
    assert loaded.num_gpu_blocks(16) == reference.num_gpu_blocks(16)
    assert ModelShape.from_config(model_config) == ModelShape.from_config(_llama3_8b())


@pytest.mark.parametrize("model_config, says", [
    ({**_llama3_8b(), **LLAVA, "text_config": {k: v for k, v in _llama3_8b().items() if k != "intermediate_size"}},
     "lacks key 'text_config.intermediate_size'"),
    ({**LLAVA, "text_config": {**_llama3_8b(), "hidden_size": "4096"}},
     "key 'text_config.hidden_size' must be a positive integer, got '4096'"),
    ({**LLAVA, "decoder": _llama3_8b()}, "its text config is 'decoder'"),
    ({**LLAVA, "text_config": _llama3_8b(), "decoder": _llama3_8b()}, "has 2 text configs"),
    ({**_llama3_8b(), "text_config": _llama3_8b()}, "model type 'llama' has no text config in transformers"),
    ({**LLAVA, "text_config": {**_llama3_8b(), "torch_dtype": None}}, "lacks key 'torch_dtype'"),
    ({**LLAVA, "text_config": {**_llama3_8b(), "num_attention_heads": 7}}, "text_config.hidden_size 4096 is not a "
                                                                           "multiple of text_config.num_attention_heads"),
])
def test_a_composite_profiles_bad_text_model_is_one_line(tmp_path, capsys, model_config, says):
    """simulate --profile on such a file: its one line, exit code 2."""
    from cli_helpers import run_cli_fast

    path = _profile_file(tmp_path, model_config)
    result = run_cli_fast(capsys, "simulate", "--profile", path, "-w", "lmsys-like", "-n", "5", "-o", tmp_path / "o")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr and str(path) in result.stderr


def test_a_config_without_num_key_value_heads_has_one_kv_head_per_query_head():
    """Multi-head attention (no num_key_value_heads: transformers, and vLLM, take one KV head per query head) was
    refused by the simulator's sizes, so `profile` failed after measuring such a model; the engine side sized it."""
    from ltrsched.models import kv_bytes_per_token as engine_kv_bytes
    from ltrsched.sim.kv_capacity import kv_bytes_per_token

    mha = {k: v for k, v in _llama3_8b().items() if k != "num_key_value_heads"}
    assert kv_bytes_per_token(mha) == 4 * kv_bytes_per_token(_llama3_8b()) == engine_kv_bytes(mha, 2)


# --- the dtype vLLM serves a model at with --dtype auto -------------------------------------------------------------

TINY_KV_PER_ELEMENT = 2 * 2 * 4 * 64  # keys and values x 2 layers x 4 KV heads x 64 [elements per token]


@pytest.mark.parametrize("config, dtype, element_bytes", [
    (TINY, "auto", 2),                                            # (float32: vLLM serves it at bfloat16)
    ({k: v for k, v in TINY.items() if k != "torch_dtype"}, "auto", 2),   # (none: read as float32, the same)
    ({k: v for k, v in TINY.items() if k != "torch_dtype"} | {"dtype": "float16"}, "auto", 2),  # (transformers 5)
    ({k: v for k, v in TINY.items() if k != "torch_dtype"} | {"dtype": "bfloat16"}, "float32", 4),
    (TINY, "float32", 4),
    ({**LLAVA, "text_config": {**TINY, "torch_dtype": "bfloat16"}}, "auto", 2),
])
def test_kv_bytes_are_at_the_dtype_vllm_serves(tmp_path, config, dtype, element_bytes):
    """--dtype auto sized a float32 model's KV cache at 4 bytes an element (its --kv-cache-gib held half the blocks
    vLLM made of it, and a profile said float32) where vLLM serves it at bfloat16; a config's ``dtype`` key
    (transformers 5's name) was not read."""
    from ltrsched.engine.config import model_kv_bytes_per_token

    path = _model_dir(tmp_path / "m", config)
    assert model_kv_bytes_per_token(str(path), dtype) == TINY_KV_PER_ELEMENT * element_bytes


@pytest.mark.vllm
def test_vllm_serves_a_float32_model_at_16_bits_with_dtype_auto(tmp_path):
    import torch
    from transformers import AutoConfig
    from vllm.config.model import _resolve_auto_dtype
    from vllm.transformers_utils.model_arch_config_convertor import ModelArchConfigConvertorBase

    from ltrsched.engine.config import served_dtype

    assert _resolve_auto_dtype("llama", torch.float32, is_pooling_model=False) == torch.bfloat16
    assert served_dtype(TINY, "auto") == "bfloat16"
    new_name = {k: v for k, v in TINY.items() if k != "torch_dtype"} | {"dtype": "float16"}
    hf = AutoConfig.from_pretrained(str(_model_dir(tmp_path / "m", new_name)))
    assert ModelArchConfigConvertorBase.get_torch_dtype(hf, str(tmp_path / "m"), None, "auto") == torch.float16
    assert served_dtype(new_name, "auto") == "float16"


# --- prompts through a tokenizer larger than the model's vocabulary --------------------------------------------------

def _chat_model(path, config):
    """``config`` with a word-level tokenizer of 8 words whose chat template wraps a prompt in 6 of them."""
    _model_dir(path, config)
    save_word_chat_tokenizer(path)
    return path


def _text_workload(*prompts):
    import polars as pl

    workload = make_workload([5] * len(prompts), [4] * len(prompts))
    return workload.with_df(workload.df.with_columns(prompt=pl.Series(list(prompts))))


@pytest.mark.parametrize("config, where", [
    ({**TINY, "vocab_size": 7}, "vocab_size"),
    ({**LLAVA, "vocab_size": 32000, "text_config": {**TINY, "vocab_size": 7}}, "text_config.vocab_size"),
])
def test_prompt_ids_beyond_the_models_vocabulary_are_refused_before_the_start(tmp_path, config, where):
    """A tokenizer larger than the model's vocabulary gave prompt ids past its embedding table: vLLM admits ids up to
    its tokenizer's largest, so the engine started, then indexed past the table. Refused before the start now."""
    from ltrsched.validation.engines import check_context_before_start

    engine = _cpu_config(model=str(_chat_model(tmp_path / "m", config)), prompts="text")
    check_context_before_start(_text_workload("hello", "[ hello ]"), engine)  # (ids up to 6: in the vocabulary)
    with pytest.raises(UserError) as caught:
        check_context_before_start(_text_workload("hello", "hello world"), engine)
    assert str(caught.value) == (
        f"request 1's prompt, through the model's tokenizer, has token id 7, beyond the model's vocabulary of 7 tokens "
        f"({where} in {tmp_path / 'm' / 'config.json'}): the tokenizer is not this model's; serve the model with its "
        "own tokenizer")


def test_replay_refuses_prompt_ids_beyond_the_vocabulary_in_one_line(tmp_path, capsys):
    from cli_helpers import run_cli_fast

    model = _chat_model(tmp_path / "m", {**TINY, "vocab_size": 7})
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hello world", "output_tokens": 3}) + "\n")
    result = run_cli_fast(capsys, "replay", "-m", model, "--prompts", "text", "-w", prompts, "-o", tmp_path / "o")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: request 0's prompt, through the model's tokenizer, has token id 7, beyond the model's vocabulary of "
        f"7 tokens (vocab_size in {model / 'config.json'}): the tokenizer is not this model's; serve the model with "
        "its own tokenizer"]


def test_label_refuses_prompt_ids_beyond_the_vocabulary_before_its_engine_starts(tmp_path, capsys):
    from cli_helpers import run_cli_fast

    model = _chat_model(tmp_path / "m", {**TINY, "vocab_size": 7})
    (model / "model.safetensors").write_bytes(b"")  # (label serves real weights: their check passes)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hello", "id": "a"}) + "\n" + json.dumps({"prompt": "world", "id": "b"}))
    result = run_cli_fast(capsys, "label", "-m", model, "--prompts", prompts, "--max-tokens", "8",
                          "-o", tmp_path / "l.parquet")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: prompt 'b', through the model's tokenizer, has token id 7, beyond the model's vocabulary of 7 tokens "
        f"(vocab_size in {model / 'config.json'}): the tokenizer is not this model's; serve the model with its own "
        "tokenizer"]


# --- the text model's sizes, checked before the start as vLLM will read them ----------------------------------------

QWEN2_PLAIN = {k: v for k, v in QWEN2.items() if k not in ("use_sliding_window", "sliding_window", "max_window_layers")}


@pytest.mark.parametrize("config, says", [
    # left to transformers' class default: a model of other sizes served (Qwen2's 4096-wide: a traceback on the
    # CPU engine, "Unsupported CPU attention configuration: head_dim=1024"), or its KV sized from other numbers
    ({k: v for k, v in QWEN2_PLAIN.items() if k != "hidden_size"}, "has no 'hidden_size': transformers' 'qwen2' "
                                                                   "config class (through which vLLM reads it) would "
                                                                   "take its default 4096"),
    ({k: v for k, v in GEMMA2.items() if k != "head_dim"}, "has no 'head_dim'"),
    ({k: v for k, v in GEMMA2.items() if k != "num_key_value_heads"}, "has no 'num_key_value_heads'"),
    ({k: v for k, v in QWEN2_PLAIN.items() if k != "intermediate_size"}, "has no 'intermediate_size'"),
    ({k: v for k, v in QWEN2_PLAIN.items() if k != "vocab_size"}, "has no 'vocab_size'"),
    ({**LLAVA, "text_config": {k: v for k, v in TINY.items() if k != "hidden_size"}}, "has no 'text_config.hidden_size'"),
    # wrong types and sizes: tracebacks from the engine's start (a strict dataclass field of transformers 5)
    ({**QWEN2_PLAIN, "hidden_size": "128"}, "'hidden_size' must be a positive integer, got '128'"),
    ({**TINY, "num_attention_heads": True}, "'num_attention_heads' must be a positive integer"),
    ({**TINY, "vocab_size": 0}, "'vocab_size' must be a positive integer"),
    ({**TINY, "intermediate_size": 2.5}, "'intermediate_size' must be a positive integer"),
    ({**TINY, "head_dim": -64}, "'head_dim' must be a positive integer"),
    ({**TINY, "num_key_value_heads": 10**40}, "'num_key_value_heads' must be a positive integer"),
    ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": "64", "n_head": 4,
      "vocab_size": 100, "n_positions": 512}, "'n_embd' must be a positive integer"),
    ({**TINY, "num_key_value_heads": 3}, "num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
    ({**TINY, "num_attention_heads": 3, "num_key_value_heads": 1}, "hidden_size 256 is not a multiple of "
                                                                   "num_attention_heads 3, and no head_dim"),
])
def test_bad_or_missing_sizes_are_refused_before_the_start(tmp_path, capsys, config, says):
    path, line = _replay_refusal(tmp_path, capsys, config)
    assert says in line and str(path / "config.json") in line, line


@pytest.mark.parametrize("config", [
    TINY, GEMMA2, GEMMA3, MISTRAL, QWEN2, PHI3, {**TINY, "num_attention_heads": 3, "num_key_value_heads": 1,
                                                 "head_dim": 64},
    {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 64, "n_head": 4,
     "vocab_size": 100, "n_positions": 512},                        # (sizes under the class's own names)
])
def test_the_sizes_of_other_architectures_pass(config):
    from ltrsched.engine.model_sizes import check_text_sizes

    check_text_sizes(config, "config.json")


@pytest.mark.parametrize("config, refused", [
    ({**QWEN2, "max_window_layers": 2}, True),   # (layers 2-5 slide: an AssertionError traceback once started)
    ({**QWEN2, "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "head_dim": 64, "max_window_layers": 3},
     True),
    ({**QWEN2_PLAIN, "layer_types": ["full_attention"] * 5 + ["sliding_attention"]}, True),
    (QWEN2, False),                              # (max_window_layers = the layer count: none slides)
    ({**QWEN2, "max_window_layers": 2, "use_sliding_window": False}, False),
    ({**GEMMA2}, False),                         # (Gemma-2's model slides its sliding layers)
])
def test_a_qwen2_whose_window_covers_some_layers_is_refused_before_the_start(tmp_path, capsys, config, refused):
    from ltrsched.engine.kv_layers import check_layer_types

    if not refused:
        check_layer_types(config, "config.json")
        return
    _, line = _replay_refusal(tmp_path, capsys, config)
    assert ("its layers mix full_attention and sliding_attention" in line
            and "\"Sliding window for some but all layers is not supported\"" in line), line


def test_profile_refuses_a_model_its_simulator_profile_cannot_size_before_measuring(tmp_path, capsys):
    """A Falcon-style config (no intermediate_size: its MLP is 4 x hidden_size) passes the engine's checks, but the
    simulator's Llama-style sizes need the MLP width: `profile` measured it (a minute on a CPU, more on a GPU), then
    failed to write its profile. Now it says so before the engine starts."""
    from cli_helpers import run_cli_fast

    falcon = {"model_type": "falcon", "architectures": ["FalconForCausalLM"], "hidden_size": 256,
              "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 1000, "max_position_embeddings": 2048,
              "torch_dtype": "float32", "new_decoder_architecture": False, "multi_query": True}
    path = _model_dir(tmp_path / "m", falcon)
    result = run_cli_fast(capsys, "profile", "-m", path, "--quick", "-o", tmp_path / "p.json")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: model {path} (its profile): model config lacks key 'intermediate_size'"]


FALCON = {"model_type": "falcon", "architectures": ["FalconForCausalLM"], "hidden_size": 256, "num_attention_heads": 8,
          "num_hidden_layers": 2, "vocab_size": 1000, "intermediate_size": 1024, "torch_dtype": "bfloat16"}
FALCON_HEAD = 256 // 8  # [elements]


@pytest.mark.parametrize("config, kv_heads", [
    (FALCON, 1),                                                            # (multi_query: its class's default)
    ({**FALCON, "multi_query": True}, 1),
    ({**FALCON, "multi_query": False}, 8),
    ({**FALCON, "multi_query": False, "num_kv_heads": 2}, 8),              # (ignored outside the new architecture)
    ({**FALCON, "new_decoder_architecture": True, "num_kv_heads": 2}, 2),  # (multi_query ignored, Falcon-40B)
    ({**FALCON, "new_decoder_architecture": True}, 8),                     # (FalconConfig: one per query head)
    ({**{k: v for k, v in FALCON.items() if k not in ("num_attention_heads", "num_hidden_layers")},
      "model_type": "RefinedWeb", "n_head": 8, "n_layer": 2, "new_decoder_architecture": True, "n_head_kv": 4}, 4),
    ({**{k: v for k, v in FALCON.items() if k != "num_attention_heads"}, "model_type": "RefinedWebModel",
      "n_head": 8, "new_decoder_architecture": True}, 1),                  # (RWConfig: n_head_kv defaults to 1)
])
def test_falcon_kv_heads_are_those_vllm_derives(tmp_path, config, kv_heads):
    """Falcon's KV heads (``num_kv_heads``, RefinedWeb's ``n_head_kv``, under ``new_decoder_architecture``; one under
    ``multi_query``) were not read: a Falcon-7B-style multi-query config was sized with a KV head per query head (8x
    vLLM's KV cache per token here), a Falcon-40B-style one likewise. Now as vLLM 0.32's FalconAttention."""
    from ltrsched.engine.config import model_kv_bytes_per_token
    from ltrsched.engine.model_sizes import check_text_sizes
    from ltrsched.sim.kv_capacity import kv_bytes_per_token

    path = _model_dir(tmp_path / "m", config)
    check_text_sizes(config, "config.json")
    expected = 2 * 2 * kv_heads * FALCON_HEAD * 2  # keys and values x 2 layers x heads x head size x bfloat16 [bytes]
    assert model_kv_bytes_per_token(str(path), "auto") == expected
    assert kv_bytes_per_token(config) == expected


@pytest.mark.parametrize("config, says", [
    ({**FALCON, "multi_query": "false"}, "model config key 'multi_query' must be true or false, got 'false'"),
    ({**FALCON, "new_decoder_architecture": 1}, "model config key 'new_decoder_architecture' must be true or false"),
    ({**FALCON, "new_decoder_architecture": True, "num_kv_heads": 3},
     "num_attention_heads 8 is not a multiple of num_kv_heads 3"),
    ({**FALCON, "new_decoder_architecture": True, "num_kv_heads": "2"}, "'num_kv_heads' must be a positive integer"),
])
def test_a_bad_falcon_kv_head_setting_is_one_line(config, says):
    """A flag vLLM reads by truthiness (the string "false" is multi-query) or KV heads that do not split the query
    heads: one line before the engine starts (the size check), and from the KV sizing itself."""
    from ltrsched.engine.model_sizes import check_text_sizes
    from ltrsched.models import layer_kv_size

    for check in (check_text_sizes, layer_kv_size):
        with pytest.raises(UserError) as err:
            check(config, "m/config.json")
        assert str(err.value).startswith("m/config.json: ") and says in str(err.value), str(err.value)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("dtype", ["float64x", 16, ["bfloat16"], "Tensor"])
def test_a_config_dtype_that_is_no_torch_dtype_is_refused_before_the_start(tmp_path, capsys, dtype):
    """`"torch_dtype": "float64x"` was an AttributeError traceback from the engine's start (transformers looks it up on
    torch whatever --dtype says)."""
    path, line = _replay_refusal(tmp_path, capsys, {**TINY, "torch_dtype": dtype})
    assert [line] == [
        f"error: {path / 'config.json'}: its torch_dtype must name a torch dtype (float32, bfloat16, float16, ...), "
        f"got {dtype!r}"]


@pytest.mark.parametrize("config, says", [
    ({**QWEN2_PLAIN, "rms_norm_eps": "x"}, "Validation error for field 'rms_norm_eps': TypeError: Field 'rms_norm_eps' "
                                           "expected float, got str (value: 'x')"),
    ({**LLAVA, "text_config": {**TINY, "rms_norm_eps": "x"}}, "'rms_norm_eps'"),
])
def test_a_value_transformers_config_class_refuses_is_one_line_before_the_start(tmp_path, capsys, config, says):
    """transformers 5 checks each field's type as vLLM reads the config: a traceback from the engine's start."""
    _, line = _replay_refusal(tmp_path, capsys, config)
    assert "config class (through which vLLM reads it) refuses it: " in line and says in line, line


# --- an architecture the installed vLLM does not serve: refused before its import, in a short line ------------------

def _has_vllm():
    from ltrsched.engine.vllm_compat import vllm_distribution

    return vllm_distribution() is not None


needs_vllm_source = pytest.mark.skipif(not _has_vllm(), reason="reads the installed vLLM's registry source")


@needs_vllm_source
@pytest.mark.parametrize("archs, says", [
    (["LlamaForCausalLMM"], "does not support architecture 'LlamaForCausalLMM'; closest supported: LlamaForCausalLM"),
    (["Qwen9ForCausalLM"], "does not support architecture 'Qwen9ForCausalLM'; closest supported: "),
    (["MPTForCausalLM"], "architecture 'MPTForCausalLM' was served by vLLM until v"),   # (dropped by vLLM)
])
def test_an_architecture_vllm_does_not_serve_is_refused_before_its_import(tmp_path, capsys, archs, says):
    """vLLM refused it only once imported (about 30 s), its one line listing every architecture it supports (hundreds
    of names)."""
    import sys

    imported = "vllm" in sys.modules
    path, line = _replay_refusal(tmp_path, capsys, {**TINY, "architectures": archs})
    assert line.startswith(f"error: {path / 'config.json'}: ") and says in line, line
    assert len(line) < 400 and "Qwen2VLForConditionalGeneration" not in line, line
    assert imported or "vllm" not in sys.modules  # (refused before vLLM's import)


@needs_vllm_source
@pytest.mark.parametrize("extra", [
    {"architectures": ["LlamaForCausalLM"]},
    {"architectures": ["LlamaModel"]},                      # (vLLM serves it with LlamaForCausalLM)
    {"architectures": ["BertForQuestionAnswering"]},        # (a Transformers class: vLLM's backend may serve it)
    {"architectures": ["MyForCausalLM"], "auto_map": {"AutoModelForCausalLM": "my.MyForCausalLM"}},  # (custom code)
    {"architectures": []}, {}, {"architectures": None},    # (vLLM takes transformers' LlamaModel: it serves them)
])
def test_architectures_vllm_may_serve_are_left_to_it(extra):
    from ltrsched.architectures import check_architecture

    check_architecture({**{k: v for k, v in TINY.items() if k != "architectures"}, **extra}, "config.json")


@needs_vllm_source
@pytest.mark.parametrize("arch", [
    "LlamaForSequenceClassification",  # (vLLM converts it from LlamaForCausalLM: a classifier)
    "MistralForTokenClassification",
    "Qwen2ForRewardModel",             # (registered: a reward model)
    "BertModel",                       # (registered: an embedding model)
    "BertForMaskedLM",                 # (registered: vLLM 0.32's has a pooling head over every token)
])
def test_a_pooling_architecture_is_refused_before_the_start_and_in_a_profile(tmp_path, capsys, arch):
    """vLLM serves these as pooling models (its pooling runner: embeddings, scores), not for generation; they passed
    the architecture check and were sized with an LM head. Now one line naming the architecture, before the engine
    starts and where a profile's model config is sized."""
    from ltrsched.sim.kv_capacity import ModelShape

    config = {**TINY, "architectures": [arch]}
    says = (f"architecture {arch!r} is served by vLLM as a pooling model (embeddings, classification or rewards), "
            "not for generation: ltrsched serves only generative models (*ForCausalLM / *ForConditionalGeneration)")
    path, line = _replay_refusal(tmp_path, capsys, config)
    assert line == f"error: {path / 'config.json'}: {says}", line
    with pytest.raises(UserError, match=f"^p.json: {re.escape(says)}$"):
        ModelShape.from_config(config, "p.json")


@needs_vllm_source
def test_a_generative_architecture_vllm_also_lists_among_pooling_models_is_sized():
    """vLLM's embedding table names LlamaModel, Qwen2ForCausalLM, ... with their generative classes: not refused."""
    from ltrsched.sim.kv_capacity import ModelShape

    for archs in (["LlamaModel"], ["Qwen2ForCausalLM"], ["LlamaForCausalLM", "LlamaForSequenceClassification"]):
        assert ModelShape.from_config({**TINY, "architectures": archs}, "p.json").num_layers == TINY["num_hidden_layers"]


def test_a_vllm_registry_source_of_another_shape_refuses_nothing(tmp_path, monkeypatch):
    """Another vLLM release may keep its names otherwise: then the check leaves every architecture to vLLM."""
    from ltrsched import architectures

    (tmp_path / "registry.py").write_text("_VLLM_MODELS = {**_A}\n_A = dict(LlamaForCausalLM=1)\n")
    monkeypatch.setattr(architectures, "vllm_file", lambda relative: tmp_path / "registry.py")
    architectures.installed_registry.cache_clear()
    try:
        assert architectures.installed_registry() is None
        architectures.check_architecture({"architectures": ["NoSuchForCausalLM"]}, "config.json")
    finally:
        architectures.installed_registry.cache_clear()


def test_vllms_own_refusal_of_an_architecture_drops_its_list_of_every_name():
    """Where the check before the start leaves it to vLLM (a plugin installed, say), vLLM's line listed every
    supported architecture; the refusal keeps the closest ones."""
    from ltrsched.engine.runner import config_error_line

    names = {f"Model{i}ForCausalLM": None for i in range(300)} | {"LlamaForCausalLM": None}
    message = (f"Model architectures {['LlamaForCausalLMM']} are not supported for now. Supported architectures: "
               f"{names.keys()}")
    for exc in (ValueError(message), ValueError(f"Value error, {message}")):
        line = config_error_line(exc)
        assert line.startswith("the installed vLLM does not support architecture 'LlamaForCausalLMM'; closest "
                               "supported: LlamaForCausalLM"), line
        assert "Model299ForCausalLM" not in line and len(line) < 400, line
    assert config_error_line(ValueError("max_model_len is too long")) == "max_model_len is too long"


# --- RoPE's base (rope_theta) as vLLM's rotary embedding takes it ---------------------------------------------------

@pytest.mark.parametrize("config, key, value", [
    ({**TINY, "rope_theta": [10000.0]}, "rope_theta", "[10000.0]"),
    ({**TINY, "rope_theta": "10000"}, "rope_theta", "'10000'"),
    ({**TINY, "rope_theta": None}, "rope_theta", "None"),
    ({**TINY, "rope_theta": 0}, "rope_theta", "0"),                  # (infinite frequencies: NaN, silently)
    ({**TINY, "rope_theta": -1.0}, "rope_theta", "-1.0"),
    ({**{k: v for k, v in TINY.items() if k != "rope_theta"}, "rope_parameters": {"rope_type": "default",
                                                                                    "rope_theta": [1]}},
     "rope_parameters's rope_theta", "[1]"),
    ({**LLAVA, "text_config": {**TINY, "rope_theta": [1]}}, "text_config.rope_theta", "[1]"),
])
def test_a_rope_theta_vllm_cannot_raise_to_a_power_is_refused_before_the_start(tmp_path, capsys, config, key, value):
    """transformers and vLLM take any rope_theta into rope_parameters; vLLM's rotary embedding then raised a TypeError
    traceback once the model was loaded (a list, a string, null) or computed NaN (zero, a negative base)."""
    path, line = _replay_refusal(tmp_path, capsys, config)
    assert [line] == [
        f"error: {path / 'config.json'}: {key!r} (RoPE's base, which vLLM's rotary embedding raises to a power) must "
        f"be a positive number, got {value}"]


@pytest.mark.parametrize("config", [
    {**TINY, "rope_theta": 500000},
    {**TINY, "rope_theta": 0.5},
    {**LLAVA, "rope_theta": [1], "text_config": dict(TINY)},          # (beside text_config: vLLM does not read it)
    {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 128, "n_head": 4, "n_layer": 2,
     "vocab_size": 1000, "rope_theta": [1]},                          # (no RoPE: vLLM ignores it)
    {"model_type": "falcon", "architectures": ["FalconForCausalLM"], "alibi": True, "rope_theta": [1]},  # (ALiBi)
])
def test_a_rope_theta_vllm_serves_or_ignores_passes(config):
    from ltrsched.engine.rope_theta import check_rope_theta

    before = json.dumps(config)
    check_rope_theta(config, "config.json")
    assert json.dumps(config) == before  # (the config is read, not filled in)


# --- architectures that are no list of names: vLLM refused them once imported -----------------------------------------

@needs_vllm_source
@pytest.mark.parametrize("config, says", [
    ({**TINY, "architectures": [7]}, "'architectures' must be a list of model class names (vLLM refuses anything "
                                     "else), e.g. [\"LlamaForCausalLM\"], got [7]"),
    ({**TINY, "architectures": "LlamaForCausalLM"}, "'architectures' must be a list of model class names (vLLM "
                                                    "refuses anything else), e.g. [\"LlamaForCausalLM\"], got "
                                                    "'LlamaForCausalLM'"),
    ({**TINY, "architectures": ["LlamaForCausalLM", ""]}, "got ['LlamaForCausalLM', '']"),
    ({k: v for k, v in TINY.items() if k not in ("architectures", "model_type")},
     "names neither a 'model_type' nor 'architectures'"),
    ({**TINY, "model_type": ["llama"]}, "'model_type' must be a string naming the model's type (e.g. \"llama\"), got "
                                        "['llama']"),         # (a TypeError traceback from vLLM's reading)
    ({**TINY, "model_type": 7}, "'model_type' must be a string"),
])
def test_architectures_that_are_no_list_of_names_are_refused_before_vllms_import(tmp_path, capsys, config, says):
    """vLLM 0.32 refused `[7]` ("architectures.0: Input should be a valid string") and a single string ("Input should
    be a valid list") only once imported; a config with neither names nor a model type ("Unrecognized model")."""
    import sys

    imported = "vllm" in sys.modules
    path, line = _replay_refusal(tmp_path, capsys, config)
    assert line.startswith(f"error: {path / 'config.json'}") and says in line, line
    assert imported or "vllm" not in sys.modules


@needs_vllm_source
@pytest.mark.parametrize("config, says", [
    ({**TINY, "model_type": "no_such_type"}, ": model_type 'no_such_type' is known neither to transformers nor to "
                                             "vLLM's own config classes"),
    ({**TINY, "model_type": "lama"}, "(closest known: llama"),
    ({k: v for k, v in TINY.items() if k != "model_type"}, " names no 'model_type', from which vLLM (through "
                                                           "transformers' AutoConfig) reads it"),
    ({**TINY, "model_type": "my_llama", "auto_map": {"AutoConfig": "configuration_my.MyConfig"}},
     ": model_type 'my_llama' is read by the model's own code (auto_map's AutoConfig), which vLLM runs only with "
     "trust_remote_code, which ltrsched does not set"),
])
def test_a_model_type_vllm_cannot_read_is_refused_before_its_import(tmp_path, capsys, config, says):
    """A config.json whose model type neither transformers nor vLLM's own config registry knows (or that names none,
    or that only its own code reads: ltrsched never sets trust_remote_code) passed every check and was refused by vLLM
    only once imported, about 30 s on a CPU ("Transformers does not recognize this architecture", "Unrecognized
    model", "contains custom code which must be executed"). Now one line first, vLLM not imported."""
    import sys

    imported = "vllm" in sys.modules
    path, line = _replay_refusal(tmp_path, capsys, config)
    assert line.startswith(f"error: {path / 'config.json'}") and says in line, line
    assert imported or "vllm" not in sys.modules


@needs_vllm_source
@pytest.mark.parametrize("config", [
    {**TINY, "model_type": "step3_text", "architectures": ["Step3TextForCausalLM"]},  # (vLLM's own class)
    {**TINY, "model_type": "kimi_k2", "architectures": ["DeepseekV3ForCausalLM"]},  # (transformers' DeepseekV3Config)
    {**TINY, "model_type": "llama", "auto_map": {"AutoConfig": "configuration_my.MyConfig"}},  # (transformers' own)
    {k: v for k, v in TINY.items() if k != "model_type"} | {"architectures": ["LongcatFlashForCausalLM"]},
    {k: v for k, v in TINY.items() if k != "model_type"} | {"speculators_config": {}},
])
def test_a_model_type_vllm_reads_with_its_own_config_class_is_left_to_it(config):
    """Types transformers does not know but vLLM registers a config class for (its _CONFIG_REGISTRY), and a config.json
    without model_type that vLLM maps from its architecture or its speculators_config, are read by vLLM: not refused."""
    from ltrsched.architectures import check_model_type, installed_registry

    check_model_type(config, "config.json", installed_registry())


@needs_vllm_source
def test_no_architectures_where_the_model_type_has_no_base_class_is_refused(monkeypatch):
    """Without names vLLM takes transformers' base class of the model type (MODEL_MAPPING_NAMES); a type without one
    had "No model architectures are specified" once vLLM was imported."""
    from ltrsched import architectures
    from ltrsched.architectures import check_architecture

    names = {k: v for k, v in architectures._base_model_classes().items() if k != "llama"}  # (read from its source)
    monkeypatch.setattr(architectures, "_base_model_classes", lambda: names)
    with pytest.raises(UserError, match="names no 'architectures', and transformers has no base model class of "
                                        "model type 'llama'"):
        check_architecture({k: v for k, v in TINY.items() if k != "architectures"}, "config.json")


# --- RoPE's base of a model whose transformers class declares no rope_parameters (vLLM's model reads them) -----------

GPTJ = {"model_type": "gptj", "architectures": ["GPTJForCausalLM"], "n_embd": 256, "n_head": 4, "n_layer": 2,
        "rotary_dim": 32, "vocab_size": 1000, "n_positions": 2048, "n_inner": 1024, "torch_dtype": "float32",
        "bos_token_id": 0, "eos_token_id": 0}


@needs_vllm_source
@pytest.mark.parametrize("config, key, value", [
    ({**GPTJ, "rope_theta": [10000.0]}, "rope_theta", "[10000.0]"),
    ({**GPTJ, "rotary_emb_base": "x"}, "rotary_emb_base", "'x'"),
    ({**GPTJ, "rotary_emb_base": -1}, "rotary_emb_base", "-1"),
    ({**GPTJ, "rope_theta": 0}, "rope_theta", "0"),                 # (dropped: vLLM ran at base 10000, silently)
])
def test_a_gptj_rope_base_is_checked_as_vllms_model_reads_it(tmp_path, capsys, config, key, value):
    """transformers' GPTJConfig declares no rope_parameters, so the check skipped GPT-J; vLLM's GPT-J builds its rotary
    embedding from the rope_parameters its patch_rope_parameters fills from rope_theta or rotary_emb_base (a list or a
    string: a TypeError traceback once the model had loaded)."""
    path, line = _replay_refusal(tmp_path, capsys, config)
    assert [line] == [
        f"error: {path / 'config.json'}: {key!r} (RoPE's base, which vLLM's rotary embedding raises to a power) must "
        f"be a positive number, got {value}"]


@needs_vllm_source
@pytest.mark.parametrize("config", [
    GPTJ, {**GPTJ, "rope_theta": 10000}, {**GPTJ, "rotary_emb_base": 500000.0},
    {**GPTJ, "architectures": ["NoSuchForCausalLM"], "rope_theta": [1]},   # (no vLLM model to read it: vLLM decides)
    {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 128, "n_head": 4, "n_layer": 2,
     "vocab_size": 1000, "rotary_emb_base": "x"},                     # (vLLM's GPT-2 has no rotary embedding)
])
def test_a_rope_base_vllms_gptj_serves_or_a_model_without_rope_ignores_passes(config):
    from ltrsched.engine.rope_theta import check_rope_theta

    check_rope_theta(config, "config.json")


# --- RoPE's base where DBRX and ChatGLM keep it, and of model types vLLM reads through config classes of its own ------

DBRX = {"model_type": "dbrx", "architectures": ["DbrxForCausalLM"], "d_model": 256, "n_heads": 4, "n_layers": 2,
        "max_seq_len": 4096, "vocab_size": 1000, "torch_dtype": "float32",
        "attn_config": {"kv_n_heads": 4, "rope_theta": 500000},
        "ffn_config": {"ffn_hidden_size": 512, "moe_num_experts": 4, "moe_top_k": 1}}
#: Types transformers does not know, vLLM reads with its own class (Step3TextConfig, ChatGLMConfig), and one it
#: reads with transformers' class of another type (kimi_k2: DeepseekV3Config).
STEP3 = {**TINY, "model_type": "step3_text", "architectures": ["Step3TextForCausalLM"], "head_dim": 64}
CHATGLM = {**TINY, "model_type": "chatglm", "architectures": ["ChatGLMModel"], "original_rope": True}
KIMI_K2 = {**TINY, "model_type": "kimi_k2", "architectures": ["DeepseekV3ForCausalLM"], "kv_lora_rank": 64,
           "qk_rope_head_dim": 16}  # (its latent's sizes: DeepseekV3Config's defaults are refused)


@needs_vllm_source
@pytest.mark.parametrize("config, says", [
    ({**DBRX, "attn_config": {"kv_n_heads": 4, "rope_theta": "x"}},
     ": 'attn_config.rope_theta' (RoPE's base, which vLLM's rotary embedding raises to a power) must be a positive "
     "number, at least 1 (vLLM's model takes its whole part), got 'x'"),
    ({**DBRX, "attn_config": {"kv_n_heads": 4, "rope_theta": 0.5}}, "at least 1 (vLLM's model takes its whole part), "
                                                                     "got 0.5"),      # (int(0.5): base 0, NaN)
    ({**DBRX, "attn_config": {"kv_n_heads": 4}}, " has no 'attn_config.rope_theta' (RoPE's base, which vLLM's dbrx "
                                                 "model reads there; transformers' config class gives none)"),
    ({**STEP3, "rope_theta": "x"}, ": 'rope_theta' (RoPE's base, which vLLM's rotary embedding raises to a power) "
                                   "must be a positive number, got 'x'"),
    ({**STEP3, "rope_scaling": {"rope_type": "default", "rope_theta": 0}}, "\"rope_scaling's rope_theta\" (RoPE's "
                                                                           "base"),
    ({**CHATGLM, "rope_ratio": 0}, ": 'rope_ratio' (RoPE's base over 10000, which vLLM's rotary embedding raises to a "
                                   "power) must be a positive number, got 0"),
    ({**CHATGLM, "rope_ratio": None}, "'rope_ratio' (RoPE's base over 10000"),
    ({**KIMI_K2, "rope_theta": -1}, ": 'rope_theta' (RoPE's base, which vLLM's rotary embedding raises to a power) "
                                    "must be a positive number, got -1"),
])
def test_a_rope_base_kept_elsewhere_or_read_by_vllms_own_config_class_is_checked(tmp_path, capsys, config, says):
    """DBRX keeps its base under attn_config (vLLM's model: int(config.attn_config.rope_theta)), ChatGLM as rope_ratio
    (10000 x it), and a type vLLM reads with a config class of its own (or transformers' class of another type) was
    not checked at all (no transformers class of its type): a string, null, zero or a negative base was a traceback
    once the model had loaded, or NaN. Now one line before the start, naming the key and the file."""
    path, line = _replay_refusal(tmp_path, capsys, config)
    assert line.startswith(f"error: {path / 'config.json'}") and says in line, line


@needs_vllm_source
@pytest.mark.parametrize("config", [
    DBRX, {**DBRX, "attn_config": {"kv_n_heads": 4, "rope_theta": 1}}, STEP3, {**STEP3, "rope_theta": 5e6}, CHATGLM,
    {**CHATGLM, "rope_ratio": 500}, KIMI_K2,
    {**CHATGLM, "rope_theta": "x"},                                   # (vLLM's ChatGLM reads rope_ratio only)
    {**TINY, "model_type": "RefinedWeb", "architectures": ["FalconForCausalLM"], "alibi": True, "rope_theta": [1]},
])
def test_a_rope_base_vllm_serves_or_ignores_where_it_is_kept_elsewhere_passes(config):
    from ltrsched.engine.rope_theta import check_rope_theta

    check_rope_theta(config, "config.json")


@pytest.mark.parametrize("config", [
    {**TINY, "rope_scaling": {"rope_type": "linear", "factor": 2.0}},   # (transformers added its rope_theta)
    {**LLAVA, "text_config": {**TINY, "rope_scaling": {"rope_type": "linear", "factor": 2.0}}},
])
def test_checking_a_configs_values_leaves_the_callers_config_as_it_was(config):
    """check_config_values built transformers' class from a shallow copy, whose nested dicts the class fills in."""
    from ltrsched.engine.model_sizes import check_config_values

    before = json.dumps(config)
    check_config_values(config, "config.json")
    assert json.dumps(config) == before


# --- multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): one latent per layer, not per-head keys and values ----

#: A 3-layer DeepSeek-V2-Lite-like model (no query LoRA, MoE after the first layer), bfloat16.
DSV2 = {"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "hidden_size": 256,
        "intermediate_size": 512, "moe_intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 4, "kv_lora_rank": 64, "q_lora_rank": None, "qk_rope_head_dim": 16,
        "qk_nope_head_dim": 32, "v_head_dim": 32, "n_routed_experts": 4, "n_shared_experts": 1,
        "num_experts_per_tok": 2, "first_k_dense_replace": 1, "moe_layer_freq": 1, "n_group": 1, "topk_group": 1,
        "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "torch_dtype": "bfloat16", "tie_word_embeddings": False}
#: DSV2's KV bytes per token: 3 layers x one latent of kv_lora_rank + qk_rope_head_dim (64 + 16) x 2 bytes.
DSV2_KV_PER_TOKEN = 3 * (64 + 16) * 2
DSV3 = {**DSV2, "model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"]}
KIMI_K2_MLA = {**DSV3, "model_type": "kimi_k2"}  # (vLLM reads it through DeepseekV3Config; transformers has no class)
GLM4_LITE = {**DSV2, "model_type": "glm4_moe_lite", "architectures": ["Glm4MoeLiteForCausalLM"]}


@pytest.mark.parametrize("config", [DSV2, DSV3, KIMI_K2_MLA, GLM4_LITE, {**LLAVA, "text_config": DSV3}])
def test_a_latent_attentions_kv_is_one_latent_per_layer(tmp_path, config):
    """A model with multi-head latent attention had its KV sized as heads x head size, keys and values (3 x 2 x 4 x 64
    x 2 bytes a token here, 6.4 times vLLM's): the bytes reserved for --num-gpu-blocks, the blocks --kv-cache-gib
    holds, the context bound, and a profile's KV capacity. vLLM 0.32 keeps one latent of kv_lora_rank +
    qk_rope_head_dim per layer (MLAAttentionSpec: one KV head, no V), the same on every GPU under tensor parallelism."""
    from ltrsched.engine.config import kv_bounded_context, model_kv_bytes_per_token, pool_block_bytes, stated_kv_blocks
    from ltrsched.sim.kv_capacity import kv_bytes_per_token

    path = str(_model_dir(tmp_path / "m", config))
    assert model_kv_bytes_per_token(path, "auto") == DSV2_KV_PER_TOKEN
    assert pool_block_bytes(path, "auto", 32) == 32 * DSV2_KV_PER_TOKEN
    assert kv_bytes_per_token(config, 1) == kv_bytes_per_token(config, 2) == DSV2_KV_PER_TOKEN
    gib = _cpu_config(model=path, kv_cache_gib=0.001, block_size=32, dtype="auto")
    assert stated_kv_blocks(gib, path) == int(0.001 * 2**30) // (32 * DSV2_KV_PER_TOKEN)  # (69 blocks)
    assert kv_bounded_context(gib, path, 4096).context == (stated_kv_blocks(gib, path) - 1) * 32


@pytest.mark.parametrize("config", [
    {**DSV2, "kv_lora_rank": None},                     # (no latent: vLLM's is_deepseek_mla is false)
    {**DSV2, "is_causal": False},                       # (a bidirectional DeepSeek: vLLM's non-MLA path)
    {**TINY, "num_hidden_layers": 3, "kv_lora_rank": 64, "qk_rope_head_dim": 16},  # (a Llama: no MLA model type)
])
def test_attention_without_a_latent_keeps_per_head_keys_and_values(config):
    from ltrsched.models import kv_bytes_per_token as engine_kv_bytes
    from ltrsched.sim.kv_capacity import kv_bytes_per_token

    heads = 3 * 2 * 4 * 64  # (layers x keys and values x KV heads x head size)
    assert engine_kv_bytes(config, 2) == heads * 2
    assert kv_bytes_per_token({**config, "torch_dtype": "bfloat16"}) == heads * 2


@pytest.mark.parametrize("config, says", [
    ({k: v for k, v in DSV2.items() if k != "qk_rope_head_dim"}, "has no 'qk_rope_head_dim': transformers' "
                                                                  "'deepseek_v2' config class"),
    ({k: v for k, v in DSV3.items() if k != "kv_lora_rank"}, "has no 'kv_lora_rank'"),
    ({**DSV2, "kv_lora_rank": "64"}, "'kv_lora_rank' must be a positive integer, got '64'"),
])
def test_a_latent_attentions_missing_or_bad_sizes_are_refused(config, says):
    from ltrsched.engine.model_sizes import check_text_sizes

    with pytest.raises(UserError, match=says):
        check_text_sizes(config, "config.json")


def test_a_latent_attention_without_its_sizes_is_refused_by_the_kv_arithmetic(tmp_path):
    """Kimi-K2 (vLLM's own config class, none in transformers: no class default is known) without kv_lora_rank."""
    from ltrsched.engine.config import model_kv_bytes_per_token
    from ltrsched.sim.kv_capacity import ModelShape

    config = {k: v for k, v in KIMI_K2_MLA.items() if k != "kv_lora_rank"}
    path = _model_dir(tmp_path / "m", config)
    with pytest.raises(UserError, match=f"^{path / 'config.json'} has no 'kv_lora_rank'$"):
        model_kv_bytes_per_token(str(path), "auto")
    with pytest.raises(UserError, match="^p.json has no 'kv_lora_rank'$"):
        ModelShape.from_config(config, "p.json")


@pytest.mark.vllm
@pytest.mark.parametrize("config", [DSV2, KIMI_K2_MLA])
def test_a_latent_attentions_block_is_vllms_own(tmp_path, gemma2_vllm_config, config):
    """vLLM's own reading of the config (its config classes and MLA head size) and its KV planner: the bytes the CPU
    engine reserves for --num-gpu-blocks N are N blocks of its MLAAttentionSpec layers, every byte allocated."""
    import torch
    from vllm.transformers_utils.config import get_config
    from vllm.transformers_utils.model_arch_config_convertor import ModelArchConfigConvertorBase
    from vllm.v1.core.kv_cache_utils import get_kv_cache_configs
    from vllm.v1.kv_cache_interface import MLAAttentionSpec

    from ltrsched.engine.config import pool_block_bytes
    from ltrsched.engine.runner import engine_kwargs

    path = _model_dir(tmp_path / "m", config)
    hf = get_config(str(path), trust_remote_code=False)
    arch = ModelArchConfigConvertorBase(hf, hf)
    assert arch.is_deepseek_mla()
    blocks, block = 20, 32
    engine = _cpu_config(model=str(path), num_gpu_blocks=blocks, block_size=block, dtype="bfloat16")
    layer = MLAAttentionSpec(block_size=block, num_kv_heads=1, max_tp_shards=1, head_size=arch.get_head_size(),
                             dtype=torch.bfloat16)
    assert pool_block_bytes(str(path), "bfloat16", block) == 3 * layer.page_size_bytes
    reserved = engine_kwargs(engine, "dummy")["kv_cache_memory_bytes"]
    specs = {f"model.layers.{i}.self_attn.attn": layer for i in range(3)}
    gemma2_vllm_config.model_config.max_model_len = block  # (a request of one block: the pool admits it)
    gemma2_vllm_config.cache_config.num_gpu_blocks_override = blocks
    (planned,) = get_kv_cache_configs(gemma2_vllm_config, [specs], [reserved])
    assert planned.num_blocks == blocks
    assert sum(tensor.size for tensor in planned.kv_cache_tensors) == reserved


# --- ChatGLM: its KV heads and the key vLLM's model reads with no default --------------------------------------------

#: A 2-layer ChatGLM3-like model: multi-query attention, 2 KV groups of 64 (vLLM's own ChatGLMConfig reads it).
CHATGLM3 = {"architectures": ["ChatGLMModel"], "model_type": "chatglm", "num_layers": 2, "hidden_size": 256,
           "num_attention_heads": 4, "multi_query_attention": True, "multi_query_group_num": 2, "kv_channels": 64,
           "ffn_hidden_size": 512, "padded_vocab_size": 32000, "seq_length": 4096, "original_rope": True,
           "add_qkv_bias": True, "torch_dtype": "bfloat16"}


@pytest.mark.parametrize("config, kv_heads", [
    (CHATGLM3, 2),                                       # (vLLM's ChatGLM attention: multi_query_group_num KV heads)
    ({**CHATGLM3, "multi_query_attention": False}, 4),   # (one per query head, whatever the group number)
])
def test_a_chatglms_kv_heads_are_its_query_groups(config, kv_heads):
    """ChatGLM2/3 give no num_key_value_heads: their KV was sized with a KV head per query head (2x here, 16x for
    ChatGLM3-6B's 32 heads in 2 groups); vLLM's ChatGLM attention keeps multi_query_group_num under multi-query."""
    from ltrsched.models import kv_bytes_per_token

    assert kv_bytes_per_token(config, 2) == 2 * 2 * kv_heads * 64 * 2  # (layers x K and V x heads x 64 x 2 bytes)


def test_a_chatglm_without_original_rope_is_refused_before_the_start(tmp_path, capsys):
    """vLLM's ChatGLM model reads config.original_rope, which neither the file nor vLLM's ChatGLMConfig gave: an
    AttributeError traceback once the engine started. Now one line naming the key and the file."""
    from ltrsched.engine.model_sizes import check_config_values

    check_config_values(CHATGLM3, "config.json")
    path, line = _replay_refusal(tmp_path, capsys, {k: v for k, v in CHATGLM3.items() if k != "original_rope"})
    assert line.startswith(f"error: {path / 'config.json'} has no 'original_rope', which vLLM's chatglm model reads "
                           "at its start"), line


# --- composite models whose config class is vLLM's own (Kimi-VL, Step3-VL) -------------------------------------------

#: Step3-VL's text model: 2 layers, 4 query heads of 64 in one KV group (vLLM's Step3TextAttention takes only one).
STEP3_TEXT = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4, "num_attention_groups": 1,
              "head_dim": 64, "num_hidden_layers": 2, "vocab_size": 32000, "max_seq_len": 4096,
              "max_position_embedding": 4096}
KIMI_VL = {"model_type": "kimi_vl", "architectures": ["KimiVLForConditionalGeneration"], "torch_dtype": "bfloat16",
           "text_config": {k: v for k, v in DSV2.items() if k not in ("model_type", "architectures")}}
STEP3_VL = {"model_type": "step3_vl", "architectures": ["Step3VLForConditionalGeneration"], "torch_dtype": "bfloat16",
            "text_config": STEP3_TEXT}


@pytest.mark.parametrize("config, per_token", [
    (KIMI_VL, DSV2_KV_PER_TOKEN),                      # (DeepseekV2Config: one MLA latent per layer)
    ({**KIMI_VL, "text_config": {**KIMI_VL["text_config"], "model_type": "deepseek_v3"}}, DSV2_KV_PER_TOKEN),
    (STEP3_VL, 2 * 2 * 1 * 64 * 2),                    # (layers x K and V x one KV group x 64 x 2 bytes)
])
def test_a_composite_model_vllms_own_config_class_reads_is_sized_from_its_text_model(tmp_path, config, per_token):
    """Kimi-VL and Step3-VL (config classes only vLLM has) were refused by the text model's lookup ("transformers has
    no config class for model type 'kimi_vl'") though vLLM serves them: now their text_config is read as vLLM's class
    builds it, and sized as vLLM sizes its layers."""
    from ltrsched.engine.config import model_kv_bytes_per_token
    from ltrsched.engine.model_sizes import check_text_sizes
    from ltrsched.models import layer_count

    path = _model_dir(tmp_path / "m", config)
    check_text_sizes(config, "config.json")
    assert layer_count(config, "config.json") == config["text_config"]["num_hidden_layers"]
    assert model_kv_bytes_per_token(str(path), "auto") == per_token


@pytest.mark.vllm
@pytest.mark.parametrize("config", [KIMI_VL, STEP3_VL])
def test_vllms_own_composite_classes_build_the_text_model_we_read(tmp_path, config):
    """The text model vLLM reads (its config class, then get_hf_text_config) is of the model type ours names, with
    the sizes of the file's text_config."""
    from vllm.transformers_utils.config import get_config, get_hf_text_config

    from ltrsched.models import VLLM_TEXT_CONFIG_TYPES, text_model

    hf = get_config(str(_model_dir(tmp_path / "m", config)), trust_remote_code=False)
    text = get_hf_text_config(hf)
    ours, prefix = text_model(config, "config.json")
    assert prefix == "text_config."
    assert text.model_type == ours["model_type"] == VLLM_TEXT_CONFIG_TYPES[config["model_type"]]
    assert (text.num_hidden_layers, text.num_attention_heads) == (ours["num_hidden_layers"],
                                                                   ours["num_attention_heads"])


def test_a_step3_profile_takes_its_kv_groups_and_a_hostile_model_type_is_no_mla():
    from ltrsched.models import kv_bytes_per_token as engine_kv_bytes
    from ltrsched.sim.kv_capacity import ModelShape, kv_bytes_per_token

    assert ModelShape.from_config(STEP3_VL).num_kv_heads == 1
    assert kv_bytes_per_token(STEP3_VL) == engine_kv_bytes(STEP3_VL, 2) == 2 * 2 * 1 * 64 * 2
    assert engine_kv_bytes({**TINY, "model_type": ["deepseek_v2"]}, 2) == 2 * 2 * 4 * 64 * 2  # (no TypeError)
