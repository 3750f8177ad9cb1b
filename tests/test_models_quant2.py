"""A model's quantization config where vLLM 0.32 reads it besides config.json's top-level ``quantization_config`` (an
older compressed-tensors checkpoint's ``compression_config``, a composite model's ``text_config``), a compressed-tensors
``kv_cache_scheme`` (an FP8 KV cache), and the weights of a Llama's biases and OLMoE's experts; each sized as vLLM sizes
it or refused in one line. Config dicts only: no weights, no engine start."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from ltrsched.errors import UserError
from ltrsched.models import LLAMA_TINY

TINY_16 = {**dict(LLAMA_TINY), "torch_dtype": "bfloat16"}  # 2 layers, 4 KV heads of 64
#: TINY's KV bytes a token at 16 bits: 2 layers x keys and values x 4 heads x 64 x 2 bytes.
TINY_KV_16 = 2 * 2 * 4 * 64 * 2
LLAVA = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"]}
CT_W4A16 = {"quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                "num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True}}}}
GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}
#: The KV cache scheme llm-compressor writes for an FP8 KV cache.
FP8_KV = {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False, "symmetric": True}

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="reads the installed vLLM")


def _model_dir(path, config):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


# --- the quantization config under compression_config or inside text_config -----------------------------------------

@pytest.mark.parametrize("config, quant", [
    ({**TINY_16, "compression_config": CT_W4A16}, CT_W4A16),
    ({**LLAVA, "text_config": {**TINY_16, "quantization_config": GPTQ}}, GPTQ),
    ({**LLAVA, "compression_config": CT_W4A16, "text_config": TINY_16}, CT_W4A16),
])
def test_a_quantization_config_beside_the_top_level_one_is_weighed(config, quant):
    """vLLM builds the layers from config.json's compression_config (older compressed-tensors checkpoints) or a
    composite model's text_config.quantization_config where there is no top-level quantization_config; the weight
    estimate read the top level only and counted a 4-bit model's linear weights at 16 bits (3.6x)."""
    from ltrsched.sim.kv_capacity import weight_bytes

    assert weight_bytes(config) == weight_bytes({**TINY_16, "quantization_config": quant}) < weight_bytes(TINY_16)


@pytest.mark.parametrize("config", [
    {**TINY_16, "compression_config": CT_W4A16},
    {**LLAVA, "text_config": {**TINY_16, "quantization_config": GPTQ}},
])
def test_a_profiles_model_config_keeps_it(tmp_path, config):
    """The profile's model config (what a profile file keeps and its KV capacity is sized from) left it out."""
    from ltrsched.engine.config import EngineConfig
    from ltrsched.sim.kv_capacity import weight_bytes
    from ltrsched.validation.engines import served_model_config

    path = _model_dir(tmp_path / "m", config)
    sized = served_model_config(EngineConfig(model=str(path), platform="cpu", dtype="auto", block_size=128,
                                             kv_cache_gib=0.01))  # (the config's 16 bits: a CPU's default is float32)
    quant = config.get("compression_config") or config["text_config"]["quantization_config"]
    assert weight_bytes(json.loads(json.dumps(sized))) == weight_bytes({**TINY_16, "quantization_config": quant})


@pytest.mark.parametrize("config, says", [
    ({**LLAVA, "compression_config": CT_W4A16, "text_config": {**TINY_16, "quantization_config": GPTQ}},
     "vLLM 0.32 reads its quantization method from 'compression_config' and builds its layers from "
     "'text_config.quantization_config': give one of them"),
    ({**LLAVA, "text_config": {**TINY_16, "compression_config": CT_W4A16}},
     "vLLM 0.32 reads its quantization method from 'text_config.compression_config' but builds no layer from it"),
])
def test_quantization_configs_vllm_reads_apart_are_one_line(tmp_path, config, says):
    """Where vLLM takes the method from one config and the layers' settings from another (or none), refused before
    the start and where weights are estimated."""
    from ltrsched.engine.config import check_config_dtype
    from ltrsched.sim.kv_capacity import ModelShape

    with pytest.raises(UserError, match=f"^p.json: {re.escape(says)}"):
        ModelShape.from_config(config, "p.json")
    with pytest.raises(UserError, match=f"^p.json: {re.escape(says)}"):
        check_config_dtype(config, "p.json")


@pytest.mark.vllm
@needs_vllm
@pytest.mark.parametrize("config", [
    {**TINY_16, "compression_config": CT_W4A16},
    {**TINY_16, "quantization_config": GPTQ, "compression_config": CT_W4A16},
    {**LLAVA, "text_config": {**TINY_16, "quantization_config": GPTQ}},
    {**LLAVA, "quantization_config": CT_W4A16, "text_config": {**TINY_16, "quantization_config": GPTQ}},
    {**LLAVA, "compression_config": CT_W4A16, "text_config": dict(TINY_16)},
    dict(TINY_16),
])
def test_that_is_the_config_vllm_reads(tmp_path, config):
    """vLLM's own choice of the quantization config it checks the method of (its ModelArchConfigConvertor's, on the
    config transformers reads from the file)."""
    import vllm.config  # noqa: F401  (its import order)
    from transformers import AutoConfig
    from vllm.transformers_utils.config import get_hf_text_config
    from vllm.transformers_utils.model_arch_config_convertor import ModelArchConfigConvertorBase

    from ltrsched.models import layers_quantization_config

    hf = AutoConfig.from_pretrained(str(_model_dir(tmp_path / "m", config)))
    theirs = ModelArchConfigConvertorBase(hf, get_hf_text_config(hf)).get_quantization_config()
    ours = layers_quantization_config(config, config.get("quantization_config"), "p.json")
    assert (ours and {**ours, "quant_method": ours["quant_method"].lower()}) == (theirs and dict(theirs))


# --- a compressed-tensors kv_cache_scheme: vLLM keeps the KV cache in FP8 -------------------------------------------

@pytest.mark.parametrize("where", ["quantization_config", "compression_config"])
def test_a_compressed_tensors_kv_cache_scheme_is_an_fp8_kv_cache(tmp_path, where):
    """vLLM's Attention sets the cache dtype to fp8 where a compressed-tensors config has a kv_cache_scheme and
    --kv-cache-dtype is auto (ltrsched passes no other): ltrsched sized it at the model's 2 bytes an element, in the
    engine's KV arithmetic and in a profile's."""
    from ltrsched.engine.config import model_kv_bytes_per_token
    from ltrsched.sim.kv_capacity import kv_bytes_per_token

    config = {**TINY_16, where: {**CT_W4A16, "kv_cache_scheme": FP8_KV}}
    assert model_kv_bytes_per_token(str(_model_dir(tmp_path / "m", config)), "auto") == TINY_KV_16 // 2
    assert kv_bytes_per_token(config) == TINY_KV_16 // 2
    assert kv_bytes_per_token({**TINY_16, where: {**CT_W4A16, "kv_cache_scheme": None}}) == TINY_KV_16


@pytest.mark.parametrize("scheme", [{**FP8_KV, "type": "int"}, {**FP8_KV, "symmetric": False},
                                    {**FP8_KV, "strategy": "channel"}, "fp8"])
def test_a_kv_cache_scheme_vllm_refuses_is_one_line(tmp_path, scheme):
    """vLLM's validate_kv_cache_scheme refuses these at its start (a NotImplementedError traceback)."""
    from ltrsched.engine.config import check_config_dtype

    with pytest.raises(UserError, match="^p.json: its compressed-tensors 'kv_cache_scheme' must be a symmetric 8-bit "
                                        "float scheme per tensor or attention head"):
        check_config_dtype({**TINY_16, "quantization_config": {**CT_W4A16, "kv_cache_scheme": scheme}}, "p.json")


# --- a Llama's attention and MLP biases, OLMoE's experts --------------------------------------------------------------

OLMOE = {**TINY_16, "model_type": "olmoe", "architectures": ["OlmoeForCausalLM"], "num_experts": 4,
         "num_experts_per_tok": 2, "intermediate_size": 128, "num_key_value_heads": 2}


@pytest.mark.parametrize("config", [
    {**TINY_16, "attention_bias": True}, {**TINY_16, "mlp_bias": True},
    {**TINY_16, "attention_bias": True, "mlp_bias": True, "num_key_value_heads": 2},
    OLMOE,  # (tied: vLLM's OLMoE builds its LM head anyway, test_models_layouts.py)
])
def test_the_parameter_count_of_llama_biases_and_olmoe_is_the_models_own(config):
    """A Llama's attention_bias (q, k, v and o biases) and mlp_bias (gate, up, down) were not counted; OLMoE's
    num_experts was refused as a layout of experts not read. Now transformers' parameter count of the config exactly
    (built on the meta device: no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ltrsched.sim.kv_capacity import parameter_count

    hf = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf)
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_biases_and_olmoes_norms_split_as_vllm_splits_them():
    """Under tensor parallelism q/k/v and gate/up biases split; a row-parallel layer's bias (o, down) and OLMoE's
    whole-projection q/k norms and router stay whole on each GPU. A Llama's qkv_bias (InternLM3's) sets the q/k/v
    biases apart from attention_bias, as vLLM's LlamaDecoderLayer reads them (also Mistral's)."""
    from ltrsched.sim.kv_capacity import parameter_count, weight_bytes_per_gpu

    h, inter = 256, 768
    biased = {**TINY_16, "attention_bias": True, "mlp_bias": True}
    split = 3 * 256 + 2 * inter  # (per layer: q, k, v biases; gate and up biases)
    assert (weight_bytes_per_gpu(biased, 2) - weight_bytes_per_gpu(TINY_16, 2)) == 2 * 2 * (split // 2 + 2 * h)
    only_o = parameter_count({**TINY_16, "attention_bias": True, "qkv_bias": False}) - parameter_count(TINY_16)
    assert only_o == 2 * h
    mistral = {**TINY_16, "model_type": "mistral", "attention_bias": True}  # (vLLM's Mistral: Llama's layers)
    assert parameter_count(mistral) == parameter_count({**TINY_16, "attention_bias": True})
    whole = 2 * ((4 + 2) * 64 + 2 * h + 4 * h) + h  # (q/k norms, two norms and the router a layer; the final norm)
    total = parameter_count(OLMOE)
    assert weight_bytes_per_gpu(OLMOE, 2) == (whole + (total - whole) // 2) * 2


@pytest.mark.parametrize("config, says", [
    ({**TINY_16, "mlp_bias": "false"}, "p.json: model config key 'mlp_bias' must be true or false, got 'false'"),
    ({**TINY_16, "bias": 1}, "p.json: model config key 'bias' must be true or false, got 1"),
    ({k: v for k, v in OLMOE.items() if k != "num_experts"}, "p.json has no 'num_experts'"),  # (class default 64)
    ({**OLMOE, "num_experts": 0}, "p.json: 'num_experts' must be a positive integer, got 0"),
])
def test_bad_bias_flags_and_olmoe_experts_are_one_line(config, says):
    from ltrsched.sim.kv_capacity import ModelShape

    with pytest.raises(UserError, match=f"^{re.escape(says)}$"):
        ModelShape.from_config(config, "p.json")


# --- config variants: sizes a file leaves out or null, the tied LM head, the padded vocabulary -----------------------

GEMMA = {**TINY_16, "model_type": "gemma", "architectures": ["GemmaForCausalLM"], "head_dim": 32,
         "hidden_act": "gelu_pytorch_tanh"}  # (4 heads of 32: not hidden_size / heads)
MISTRAL = {**TINY_16, "model_type": "mistral", "architectures": ["MistralForCausalLM"]}


@pytest.mark.parametrize("config", [
    {**MISTRAL, "head_dim": None, "sliding_window": None},  # (what MistralConfig's save_pretrained writes)
    {k: v for k, v in TINY_16.items() if k != "num_key_value_heads"},  # (LlamaConfig: a KV head per query head)
    GEMMA, {**TINY_16, "model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "partial_rotary_factor": 0.5},
])
def test_head_sizes_are_vllms(config):
    """The KV heads and head size ltrsched sizes a profile's KV cache by are vLLM's own (its ModelArchConfigConvertor,
    on the config transformers reads). A null head_dim (Mistral's configs) was refused ("must be a positive integer,
    got None"): vLLM takes hidden_size / heads."""
    from ltrsched.sim.kv_capacity import ModelShape

    shape = ModelShape.from_config(config, "p.json")
    if importlib.util.find_spec("vllm") is None:
        return
    import vllm.config  # noqa: F401  (its import order)
    from transformers import AutoConfig
    from vllm.transformers_utils.model_arch_config_convertor import ModelArchConfigConvertorBase

    hf = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})
    arch = ModelArchConfigConvertorBase(hf, hf)
    assert (shape.num_kv_heads, shape.head_dim) == (arch.get_total_num_kv_heads(), arch.get_head_size())


@pytest.mark.parametrize("config, says", [
    ({k: v for k, v in MISTRAL.items() if k != "num_key_value_heads"},
     "p.json: model config lacks key 'num_key_value_heads': transformers' 'mistral' config class (through which vLLM "
     "reads it) would take its default 8"),
    ({k: v for k, v in GEMMA.items() if k != "head_dim"},
     "p.json: model config lacks key 'head_dim': transformers' 'gemma' config class (through which vLLM reads it) "
     "would take its default 256"),
    ({**GEMMA, "head_dim": None}, "p.json: model config lacks key 'head_dim': transformers' 'gemma' config class"),
])
def test_a_size_left_to_another_class_default_is_one_line(config, says):
    """The profile's sizes took a KV head per query head and hidden_size / heads where the file gives none; vLLM
    reads the model through its type's config class, whose default is another (8 KV heads: 2x the KV bytes here)."""
    from ltrsched.sim.kv_capacity import ModelShape

    with pytest.raises(UserError, match=f"^{re.escape(says)}"):
        ModelShape.from_config(config, "p.json")


@pytest.mark.parametrize("config", [{k: v for k, v in GEMMA.items() if k != "tie_word_embeddings"},
                                    {**GEMMA, "tie_word_embeddings": False}, {**TINY_16, "vocab_size": 32001}])
def test_the_tied_lm_head_is_the_config_classs_and_the_count_the_models_own(config):
    """Gemma's config class ties the LM head to the embedding (vLLM's model reads its tie_word_embeddings): a file
    without the key was counted with an LM head of its own (2 x vocabulary x width, 1.5 GB for Gemma-7B)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ltrsched.sim.kv_capacity import parameter_count

    hf = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf)
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_gemma2_has_no_lm_head_of_its_own():
    """vLLM's Gemma-2 computes its logits with the embedding, whatever tie_word_embeddings says."""
    from ltrsched.sim.kv_capacity import ModelShape

    gemma2 = {**GEMMA, "model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], "tie_word_embeddings": False}
    assert ModelShape.from_config(gemma2).tie_word_embeddings


@pytest.mark.parametrize("vocab, tp", [(32001, 1), (32001, 2), (50257, 4), (32000, 2)])
def test_the_vocabulary_is_padded_as_vllm_allocates_it(vocab, tp):
    """vLLM pads the embedding's and LM head's vocabulary to a multiple of 64 before splitting it (its
    VocabParallelEmbedding): the weight estimate took the vocabulary as given (GPT-2's 50,257: 47 rows short)."""
    from ltrsched.sim.kv_capacity import weight_bytes_per_gpu

    padded = -(-vocab // 64) * 64
    if importlib.util.find_spec("vllm") is not None:
        from vllm.model_executor.layers.vocab_parallel_embedding import pad_vocab_size

        assert pad_vocab_size(vocab) == padded
    extra = weight_bytes_per_gpu({**TINY_16, "vocab_size": vocab}, tp) - weight_bytes_per_gpu(TINY_16, tp)
    assert extra == 2 * (padded // tp - 32000 // tp) * 256 * 2  # (embedding and LM head, 256 wide, 2 bytes)


@pytest.mark.vllm
@needs_vllm
@pytest.mark.parametrize("rope, context", [
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}}, 4096),
    ({"rope_scaling": {"type": "dynamic", "factor": 2.0}}, 8192),
    ({"rope_parameters": {"rope_type": "dynamic", "factor": 4.0, "rope_theta": 10000.0}}, 16384),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 1024}}, 4096),
    ({"model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "partial_rotary_factor": 0.5,
      "original_max_position_embeddings": 1024,
      "rope_scaling": {"type": "longrope", "long_factor": [1.0] * 16, "short_factor": [1.0] * 16}}, 1024),
    ({"model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": None, "head_dim": None},
     4096),
])
def test_the_context_of_these_rope_types_is_vllms(tmp_path, rope, context):
    """The context the check before the start bounds a request by, for YaRN, dynamic NTK, Llama-3 and LongRoPE
    scaling and a null sliding window: vLLM's own derivation (its config reading and _get_and_verify_max_len)."""
    from transformers import AutoConfig
    from vllm.config.model import _get_and_verify_max_len
    from vllm.transformers_utils.config import get_hf_text_config, patch_rope_parameters
    from vllm.transformers_utils.model_arch_config_convertor import ModelArchConfigConvertorBase

    from ltrsched.engine.model_context import model_context

    path = _model_dir(tmp_path / "m", {**TINY_16, **rope})
    hf = AutoConfig.from_pretrained(str(path))
    patch_rope_parameters(hf)
    text = get_hf_text_config(hf)
    derived = type("Arch", (), {"derived_max_model_len_and_key":
                                ModelArchConfigConvertorBase(hf, text).derive_max_model_len_and_key()})()
    assert model_context(path)[0] == context == _get_and_verify_max_len(text, derived, None, None, False, None)


@pytest.mark.parametrize("where", ["top", None])
def test_longropes_old_name_without_its_context_inside_is_one_line(tmp_path, where):
    """Phi-3's first configs named LongRoPE 'su': transformers reads that type only with
    original_max_position_embeddings inside the RoPE settings (a KeyError traceback at vLLM's start, where the check
    before it derived a context)."""
    from transformers import AutoConfig

    from ltrsched.engine.model_context import model_context

    config = {**TINY_16, "model_type": "phi3", "architectures": ["Phi3ForCausalLM"],
              "rope_scaling": {"type": "su", "long_factor": [1.0] * 32, "short_factor": [1.0] * 32},
              **({"original_max_position_embeddings": 1024} if where else {})}
    path = _model_dir(tmp_path / "m", config)
    with pytest.raises(KeyError):
        AutoConfig.from_pretrained(str(path))
    with pytest.raises(UserError, match=f"^{re.escape(str(path / 'config.json'))}: its RoPE type 'su' .* gives no "
                                        "original_max_position_embeddings inside rope_scaling"):
        model_context(path)
    inside = {**{k: v for k, v in config.items() if k != "original_max_position_embeddings"},
              "rope_scaling": {**config["rope_scaling"], "original_max_position_embeddings": 1024}}
    AutoConfig.from_pretrained(str(_model_dir(tmp_path / "ok", inside)))
    assert model_context(tmp_path / "ok")[0] == 4096  # (vLLM's own, as it derives it for Phi-3's LongRoPE)


@pytest.mark.parametrize("config", [
    {**GEMMA, "model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], "tie_word_embeddings": True},
    {**GEMMA, "model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"], "tie_word_embeddings": True},
])
def test_gemma2_and_gemma3_norms_are_counted(config):
    """Gemma-2's and Gemma-3's four norms a layer (before and after attention and MLP), and Gemma-3's q/k head norms,
    were counted as a Llama's two: transformers' parameter count now, exactly."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ltrsched.sim.kv_capacity import parameter_count

    hf = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf)
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())
