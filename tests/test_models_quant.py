"""Quantized and mixture-of-experts models as vLLM 0.32 sizes them before the engine starts: the KV dtype a ModelOpt
checkpoint's quantization config gives (also where only hf_quant_config.json gives it, and in a profile's model
config), the weights a quantization stores, and the experts of Qwen-MoE and DBRX layouts; each sized as vLLM sizes it
or refused in one line. Config dicts only: no weights, no engine start."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from ltrsched.errors import UserError
from ltrsched.models import LLAMA_TINY
from test_models_other import DSV2, DSV2_KV_PER_TOKEN  # (a DeepSeek-V2-Lite-like model: 3 layers, a 64 + 16 latent)

TINY = dict(LLAMA_TINY)  # 2 layers, 4 KV heads of 64, float32
#: TINY's KV bytes a token at 16 bits: 2 layers x keys and values x 4 heads x 64.
TINY_KV_16 = 2 * 2 * 4 * 64 * 2
NVFP4 = {"quant_method": "modelopt_fp4", "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "NVFP4"}}
#: The hf_quant_config.json ModelOpt 0.29 and before writes (no quant_method: vLLM derives it from quant_algo).
LEGACY_FP8 = {"producer": {"name": "modelopt", "version": "0.19.0"},
              "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="reads the installed vLLM")


def _model_dir(path, config, quant_file=None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    if quant_file is not None:
        (path / "hf_quant_config.json").write_text(json.dumps(quant_file))
    return path


def _cpu_config(path, **options):
    """The settings of the CPU engine for the model directory ``path`` (not checked: no vLLM or transformers import)."""
    from ltrsched.engine.config import EngineConfig

    return EngineConfig(**{"model": str(path), "platform": "cpu", "block_size": 128, **options})


# --- an NVFP4 KV cache stated only beside config.json, with --kv-cache-gib on a CPU ---------------------------------

@pytest.mark.parametrize("where", ["config.json", "hf_quant_config.json"])
def test_an_nvfp4_kv_cache_is_refused_where_kv_cache_gib_states_the_cache(tmp_path, where):
    """stated_kv_blocks caught every UserError of the block's size (meant for a config.json without its sizes), the
    NVFP4 refusal among them: with --kv-cache-gib the context check before the start passed, and vLLM started on a KV
    cache ltrsched had not sized."""
    from ltrsched.engine.config import stated_kv_blocks
    from ltrsched.validation.engines import expected_context

    path = (_model_dir(tmp_path / "m", {**TINY, "quantization_config": NVFP4}) if where == "config.json"
            else _model_dir(tmp_path / "m", TINY, quant_file=NVFP4))
    says = re.escape(f"{path / 'config.json'}: its quantization config makes vLLM keep the KV cache as nvfp4")
    engine = _cpu_config(path, kv_cache_gib=0.01)
    with pytest.raises(UserError, match=f"^{says}"):
        stated_kv_blocks(engine, str(path))
    with pytest.raises(UserError, match=f"^{says}"):
        expected_context(engine)  # (the check before the engine starts: replay, validate, label, profile)


def test_a_config_json_without_its_sizes_is_still_left_to_vllm(tmp_path):
    from ltrsched.engine.config import stated_kv_blocks

    path = _model_dir(tmp_path / "m", {k: v for k, v in TINY.items() if k != "num_attention_heads"})
    assert stated_kv_blocks(_cpu_config(path, kv_cache_gib=0.01), str(path)) is None


# --- an FP8 KV cache: one byte an element, in the engine's arithmetic and in a profile's model config ---------------

@pytest.mark.parametrize("quant, kv", [
    (LEGACY_FP8, "fp8_e4m3"),
    ({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "fp8_pb_wo", "kv_cache_quant_algo": "fp8"}},
     "fp8_e4m3"),
    ({"quantization": {"modelopt_quant_config": {}, "quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8"}}, "fp8_e4m3"),
    ({"quant_method": "ModelOpt", "kv_cache_quant_algo": "FP8"}, "fp8_e4m3"),
    ({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": None, "kv_cache_quant_algo": "FP8"}}, "auto"),
    ({"producer": {"name": "other"}, "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}, "auto"),
])
def test_a_modelopt_file_without_quant_method_is_read_as_vllm_reads_it(quant, kv):
    """The hf_quant_config.json (and config.json) that ModelOpt writes has no quant_method: vLLM derives "modelopt"
    from its producer and quant_algo, and lowercases any method, before resolving the KV dtype; ltrsched read no
    method and sized an FP8 KV cache at the model's 2 bytes."""
    from ltrsched.models import kv_cache_dtype

    assert kv_cache_dtype(quant, "config.json") == kv


@pytest.mark.vllm
@needs_vllm
@pytest.mark.parametrize("quant", [
    LEGACY_FP8, NVFP4, {"quant_method": "ModelOpt", "kv_cache_quant_algo": "FP8"},
    {"producer": {"name": "modelopt"}, "quantization": {"quant_algo": None, "kv_cache_quant_algo": "FP8"}},
    {"quantization": {"modelopt_quant_config": {}, "quant_algo": "FP8", "kv_cache_quant_algo": "fp8"}},
])
def test_that_is_vllms_own_reading(quant):
    """vLLM's normalization of the config (its ModelConfig runs it before resolving --kv-cache-dtype auto), then its
    resolution."""
    import copy
    from types import SimpleNamespace

    import vllm.config  # noqa: F401  (its import order)
    from vllm.transformers_utils.model_arch_config_convertor import ModelArchConfigConvertorBase
    from vllm.utils.torch_utils import get_kv_cache_quant_algo_string

    from ltrsched.models import kv_cache_dtype

    theirs = copy.deepcopy(quant)
    ModelArchConfigConvertorBase._normalize_quantization_config(None, SimpleNamespace(quantization_config=theirs))
    assert kv_cache_dtype(quant, "config.json") == (get_kv_cache_quant_algo_string(theirs) or "auto")


@pytest.mark.parametrize("quant, says", [
    ({"producer": "modelopt"}, "quantization_config's 'producer' must be an object, got 'modelopt'"),
    ({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "W4A8_AWQ"}},
     "quantization_config's ModelOpt 'quant_algo' 'W4A8_AWQ' is none vLLM 0.32 knows"),
    ({"producer": {"name": "modelopt"}, "quantization": None},
     "quantization_config's 'quantization' must be an object"),
])
def test_a_modelopt_config_vllm_fails_reading_is_one_line(quant, says):
    from ltrsched.models import kv_cache_dtype

    with pytest.raises(UserError, match=f"^config.json: {re.escape(says)}"):
        kv_cache_dtype(quant, "config.json")


def test_the_engines_kv_bytes_read_a_legacy_hf_quant_config(tmp_path):
    from ltrsched.engine.config import model_kv_bytes_per_token

    path = _model_dir(tmp_path / "m", TINY, quant_file=LEGACY_FP8)
    assert model_kv_bytes_per_token(str(path), "bfloat16") == TINY_KV_16 // 2


@pytest.mark.parametrize("where", ["config.json", "hf_quant_config.json", "composite"])
def test_a_profiles_model_config_keeps_the_fp8_kv_cache(tmp_path, where):
    """The profile command's model config (what a profile file keeps, and its KV capacity is sized from) was the text
    model's config with the served dtype: a quantization config in hf_quant_config.json, or beside a composite
    model's text_config, was left out, and the profile sized an FP8 KV cache at 2 bytes an element."""
    from ltrsched.sim.kv_capacity import ModelShape, kv_bytes_per_token
    from ltrsched.validation.engines import served_model_config

    quant = {"quant_method": "modelopt", "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}
    if where == "config.json":
        path = _model_dir(tmp_path / "m", {**TINY, "quantization_config": quant})
    elif where == "hf_quant_config.json":
        path = _model_dir(tmp_path / "m", TINY, quant_file=LEGACY_FP8)
    else:
        text = {k: v for k, v in DSV2.items() if k not in ("architectures", "model_type")}  # (vLLM's own class)
        path = _model_dir(tmp_path / "m", {"model_type": "kimi_vl", "architectures": ["KimiVLForConditionalGeneration"],
                                           "text_config": text, "quantization_config": quant})
    config = served_model_config(_cpu_config(path, kv_cache_gib=0.01, dtype="bfloat16"))
    per_token = DSV2_KV_PER_TOKEN if where == "composite" else TINY_KV_16
    assert kv_bytes_per_token(config) == per_token // 2
    assert ModelShape.from_config(json.loads(json.dumps(config))).kv_dtype_bytes == 1  # (as a profile file keeps it)


# --- a profile's weight estimate of Qwen2/3-MoE and DBRX experts (they were refused) ---------------------------------

QWEN2_MOE = {**TINY, "model_type": "qwen2_moe", "architectures": ["Qwen2MoeForCausalLM"], "num_hidden_layers": 4,
             "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128,
             "shared_expert_intermediate_size": 192, "decoder_sparse_step": 2, "mlp_only_layers": [3],
             "torch_dtype": "bfloat16"}
QWEN3_MOE = {**TINY, "model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "num_experts": 4,
             "num_experts_per_tok": 2, "moe_intermediate_size": 128, "head_dim": 32, "torch_dtype": "bfloat16"}
DBRX = {"model_type": "dbrx", "architectures": ["DbrxForCausalLM"], "d_model": 256, "n_heads": 8, "n_layers": 2,
        "max_seq_len": 4096, "vocab_size": 1000, "torch_dtype": "bfloat16",
        "attn_config": {"kv_n_heads": 2, "clip_qkv": 8, "rope_theta": 500000},
        "ffn_config": {"ffn_hidden_size": 512, "moe_num_experts": 4, "moe_top_k": 2}}


@pytest.mark.parametrize("config", [
    QWEN2_MOE, {**QWEN2_MOE, "decoder_sparse_step": 1, "mlp_only_layers": []}, QWEN3_MOE,
    {**QWEN3_MOE, "decoder_sparse_step": 2, "mlp_only_layers": [0]}, DBRX,
    {**TINY, "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]},
    {**TINY, "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "head_dim": 32},
])
def test_the_parameter_count_of_qwen_moe_and_dbrx_is_the_models_own(config):
    """Qwen2-MoE's, Qwen3-MoE's and DBRX's experts were refused by the weight estimate (a layout not read); now their
    routed experts, Qwen2-MoE's shared expert and its one-output gate, placed every decoder_sparse_step-th layer but
    mlp_only_layers as vLLM's models place them, and the attention's own parameters (Qwen2's q/k/v biases, Qwen3's
    head norms): transformers' parameter count of the config exactly (built on the meta device: no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ltrsched.sim.kv_capacity import parameter_count

    hf = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf)
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_experts_of_qwen_moe_are_placed_and_split_as_vllm_places_and_splits_them():
    """Layer i has experts where i is not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0 (vLLM's
    Qwen2MoeDecoderLayer): layer 1 of 4 here (3 is dense by mlp_only_layers). Under tensor parallelism experts,
    shared expert, heads and biases split; the router, the shared expert's gate and the norms stay whole."""
    from ltrsched.sim.kv_capacity import ModelShape, parameter_count, weight_bytes_per_gpu

    h = 256
    assert ModelShape.from_config(QWEN2_MOE).moe_layers == 1
    assert ModelShape.from_config({**QWEN2_MOE, "mlp_only_layers": []}).moe_layers == 2
    assert ModelShape.from_config({**QWEN3_MOE, "decoder_sparse_step": 2, "mlp_only_layers": [0]}).moe_layers == 1
    whole = 4 * 2 * h + (h * 4 + h) + h  # (two norms a layer; the MoE layer's router and shared gate; the final norm)
    total = parameter_count(QWEN2_MOE)
    assert weight_bytes_per_gpu(QWEN2_MOE, 2) == (whole + (total - whole) // 2) * 2


def test_a_dbrx_configs_kv_is_sized_from_its_own_names(tmp_path):
    """DBRX gives its sizes as d_model, n_heads, n_layers and attn_config.kv_n_heads (vLLM's DbrxAttention): the
    engine's KV arithmetic refused it ("has no 'num_attention_heads'"), a profile ("lacks key 'num_hidden_layers'").
    2 layers x keys and values x 2 KV heads x 256 / 8 x 2 bytes."""
    from ltrsched.engine.config import model_kv_bytes_per_token
    from ltrsched.sim.kv_capacity import kv_bytes_per_token

    path = _model_dir(tmp_path / "m", DBRX)
    assert model_kv_bytes_per_token(str(path), "auto") == kv_bytes_per_token(DBRX) == 2 * 2 * 2 * 32 * 2


@pytest.mark.parametrize("config, says", [
    ({**DBRX, "attn_config": {"clip_qkv": 8}}, "p.json has no 'attn_config.kv_n_heads'"),
    ({**DBRX, "ffn_config": None}, "p.json: DBRX's 'ffn_config' must be an object giving 'ffn_hidden_size', got None"),
    ({**DBRX, "ffn_config": {**DBRX["ffn_config"], "moe_num_experts": "4"}},
     "p.json: 'ffn_config.moe_num_experts' must be a positive integer, got '4'"),
    ({k: v for k, v in QWEN2_MOE.items() if k != "shared_expert_intermediate_size"},
     "p.json: model config lacks key 'shared_expert_intermediate_size'"),  # (its class default 5632)
    ({**QWEN2_MOE, "mlp_only_layers": "3"}, "p.json: model config key 'mlp_only_layers' must be a list of layer "
                                            "numbers, got '3'"),
    ({**QWEN2_MOE, "decoder_sparse_step": 0}, "p.json: 'decoder_sparse_step' must be a positive integer, got 0"),
])
def test_bad_expert_sizes_of_qwen_moe_and_dbrx_are_one_line(config, says):
    from ltrsched.sim.kv_capacity import ModelShape

    with pytest.raises(UserError, match=f"^{re.escape(says)}$"):
        ModelShape.from_config(config, "p.json")


def test_num_experts_of_another_model_type_is_still_refused():
    """FlexOlmo's num_experts (each expert a domain's, no shared ones; Jamba's, beside Mamba layers, is refused as a
    hybrid model, test_models_layouts.py): not Qwen-MoE's layout."""
    from ltrsched.sim.kv_capacity import weight_bytes_per_gpu

    with pytest.raises(UserError, match="^the weight estimate of a model config with 'num_experts'"):
        weight_bytes_per_gpu({**TINY, "model_type": "flex_olmo", "num_experts": 4})


# --- a quantized checkpoint's weights at their stored width (they were counted at torch_dtype) -----------------------

TINY_16 = {**TINY, "torch_dtype": "bfloat16"}
#: TINY's decoder linear weights, (inputs, outputs) a layer: q, k, v, o (4 heads of 64), gate, up (768), down.
TINY_LINEARS = [(256, 256)] * 4 + [(256, 768)] * 2 + [(768, 256)]
TINY_LINEAR = 2 * sum(i * o for i, o in TINY_LINEARS)  # (2 layers: 1,703,936 elements)


def _packed_int4_bytes(group, zeros=True):
    """vLLM's AutoGPTQ / AutoAWQ create_weights for TINY's layers, shape by shape: int32 words of 8 packed 4-bit
    weights, and per group of ``group`` inputs and output a bfloat16 scale and (packed) 4-bit zero point."""
    return 2 * sum(i * o // 8 * 4 + (i // group) * o * 2 + ((i // group) * o // 8 * 4 if zeros else 0)
                   for i, o in TINY_LINEARS)


GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True, "version": "gemm"}
CT_W4A16 = {"quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                "num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True}}}}


@pytest.mark.parametrize("quant, linear_bytes", [
    (GPTQ, _packed_int4_bytes(128)),
    (AWQ, _packed_int4_bytes(64)),
    ({"quant_method": "gptq", "bits": 8, "group_size": -1, "sym": True}, TINY_LINEAR),  # (per-channel scales)
    ({"quant_method": "fp8", "activation_scheme": "dynamic"}, TINY_LINEAR),
    ({"quant_method": "fp8", "weight_block_size": [128, 128], "ignored_layers": ["lm_head"]}, TINY_LINEAR),
    ({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8",
                                                         "exclude_modules": ["lm_head"]}}, TINY_LINEAR),
    ({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4", "group_size": 16}},
     TINY_LINEAR // 2 + TINY_LINEAR // 16),  # (two weights a byte, an FP8 scale per 16)
    (CT_W4A16, _packed_int4_bytes(128, zeros=False)),
    ({**CT_W4A16, "config_groups": {"g": {"targets": ["Linear"], "weights": {
        "num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": False}}}},
     _packed_int4_bytes(128)),
    ({**CT_W4A16, "format": "float-quantized", "config_groups": {"g": {"targets": ["Linear"], "weights": {
        "num_bits": 8, "type": "float", "strategy": "channel"}}}}, TINY_LINEAR),
    ({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": None, "kv_cache_quant_algo": "FP8"}},
     TINY_LINEAR * 2),  # (an FP8 KV cache alone: vLLM reads no method, the weights at the model's dtype)
])
def test_quantized_weights_are_counted_at_their_stored_width(quant, linear_bytes):
    """The weight estimate beside a profile's KV capacity counted a GPTQ/AWQ/FP8/ModelOpt/compressed-tensors model's
    weights at its torch_dtype (2 bytes an element here: a 4-bit model's 3.6x, its KV capacity that much too small).
    Now the decoder's linear layers as vLLM stores them; the embedding, LM head and norms at the dtype."""
    from ltrsched.sim.kv_capacity import parameter_count, weight_bytes, weight_bytes_per_gpu

    config = {**TINY_16, "quantization_config": quant}
    other = (parameter_count(TINY_16) - TINY_LINEAR) * 2
    assert weight_bytes(config) == weight_bytes_per_gpu(config, 1) == other + linear_bytes
    assert weight_bytes(TINY_16) == other + TINY_LINEAR * 2


def test_a_quantized_models_layers_split_under_tensor_parallelism():
    from ltrsched.sim.kv_capacity import weight_bytes_per_gpu

    from ltrsched.sim.kv_capacity import parameter_count

    config = {**TINY_16, "quantization_config": GPTQ}
    whole = (2 * 2 * 256 + 256) * 2  # (norms, final norm: kept whole)
    split = (parameter_count(TINY_16) - TINY_LINEAR) * 2 - whole + _packed_int4_bytes(128)  # (embeddings, layers)
    assert weight_bytes_per_gpu(config, 2) == whole + split // 2


@pytest.mark.parametrize("quant, why", [
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "vLLM 0.32 has no bitsandbytes quantization"),
    ({**GPTQ, "bits": 3}, "bits 3: vLLM 0.32 serves 4 or 8-bit symmetric weights only"),
    ({**GPTQ, "sym": False}, "bits 4: vLLM 0.32 serves 4 or 8-bit symmetric weights only"),
    ({**GPTQ, "lm_head": True}, "a quantized LM head or per-module 'dynamic' settings"),
    ({**GPTQ, "dynamic": {"-:.*mlp.*": {}}}, "a quantized LM head or per-module 'dynamic' settings"),
    ({"quant_method": "modelopt", "quantization": {"quant_algo": "W4A8_AWQ"}}, "quant_algo 'W4A8_AWQ', neither FP8 "
                                                                              "nor NVFP4"),
    ({**AWQ, "modules_to_not_convert": ["model.layers.0.self_attn"]}, "its 'modules_to_not_convert' keeps decoder "
                                                                      "layers unquantized"),
    ({**CT_W4A16, "config_groups": {"a": CT_W4A16["config_groups"]["group_0"], "b": {
        "targets": ["re:.*down_proj"], "weights": {"num_bits": 8, "type": "int", "strategy": "channel"}}}},
     "not one weight scheme for every Linear layer"),
    ({"quant_method": "mxfp4"}, "a method whose stored weights ltrsched does not count"),
])
def test_a_quantization_whose_weights_are_not_counted_is_refused_where_weights_are_estimated(quant, why):
    """Refused in one line by the weight estimate only: the KV cache and the parameter count do not depend on it."""
    from ltrsched.sim.kv_capacity import kv_bytes_per_token, parameter_count, weight_bytes_per_gpu

    config = {**TINY_16, "quantization_config": quant}
    assert kv_bytes_per_token(config) == TINY_KV_16 and parameter_count(config) == parameter_count(TINY_16)
    with pytest.raises(UserError, match=f"^p.json: the weight estimate of a model quantized by '[a-z0-9-]+' "
                                        f"\\({re.escape(why)}"):
        from ltrsched.sim.kv_capacity import ModelShape

        weight_bytes_per_gpu(ModelShape.from_config(config, "p.json"))


def test_profile_refuses_a_quantization_it_cannot_weigh_before_measuring(tmp_path, capsys):
    """The profile command checked its model's sizes before the engine started, not its weight estimate: a model
    whose weights are not counted was measured (a minute on a CPU), then refused."""
    from cli_helpers import run_cli_fast

    path = _model_dir(tmp_path / "m", {**TINY, "quantization_config": {"quant_method": "mxfp4"}})
    result = run_cli_fast(capsys, "profile", "-m", path, "--quick", "-o", tmp_path / "p.json")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: model {path} (its profile): the weight estimate of a model quantized by "
                               "'mxfp4'"), lines[0]


# --- a simulated model with sliding-window layers says what the simulator assumes -------------------------------------

@pytest.mark.parametrize("config, noted", [
    ({**TINY, "model_type": "mistral", "sliding_window": 1024}, True),
    ({**TINY, "model_type": "qwen2", "use_sliding_window": False, "sliding_window": 1024}, False),
    ({**TINY, "sliding_window": None}, False),
    (TINY, False),
])
def test_a_sliding_window_the_simulator_does_not_model_is_noted(capsys, config, noted):
    """The simulator's KV capacity counts every layer's KV for a request's whole context; vLLM keeps only the window
    in a sliding layer once a request is longer. A model with a sliding window was simulated so without a word."""
    from ltrsched.sim.kv_capacity import ModelShape

    capsys.readouterr()
    ModelShape.from_config(config)
    err = capsys.readouterr().err
    assert err.startswith("note: a mistral model's 1,024-token sliding window is not simulated") if noted else not err


def test_a_simulation_of_such_a_profile_notes_it_once(tmp_path, capsys):
    from importlib.resources import files

    from cli_helpers import run_cli_fast

    profile = json.loads((files("ltrsched.sim.profiles") / "cpu-llama-tiny.json").read_text())
    profile["model_config"] = {**profile["model_config"], "model_type": "mistral", "sliding_window": 1024}
    (tmp_path / "p.json").write_text(json.dumps(profile))
    result = run_cli_fast(capsys, "simulate", "-p", tmp_path / "p.json", "-w", "lmsys-like", "-n", "20", "-P", "fcfs",
                          "-o", tmp_path / "o")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "sliding window" in line]
    assert notes == ["note: a mistral model's 1,024-token sliding window is not simulated: every layer keeps KV for a "
                     "request's whole context (vLLM's count for requests within the window; beyond it vLLM keeps only "
                     "the window in sliding layers, and holds more long requests than simulated)"]


def test_qwen3s_attention_bias_is_its_qkv_bias_as_vllm_builds_it():
    """vLLM's Qwen3 attention: q, k and v biases under attention_bias (its output projection without); a value that
    is no bool is one line (bool("false") is true)."""
    from ltrsched.sim.kv_capacity import ModelShape, parameter_count

    qwen3 = {**TINY, "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "head_dim": 32}
    assert parameter_count({**qwen3, "attention_bias": True}) - parameter_count(qwen3) == 2 * (4 + 2 * 4) * 32
    with pytest.raises(UserError, match="^p.json: model config key 'attention_bias' must be true or false, got 'no'$"):
        ModelShape.from_config({**qwen3, "attention_bias": "no"}, "p.json")
    ModelShape.from_config({**TINY, "model_type": "gemma", "head_dim": 64, "attention_bias": "no"}, "p.json")  # (not read)
