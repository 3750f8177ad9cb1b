"""More model configs as vLLM 0.32 reads them before the engine starts: sizes a config class of vLLM's choosing fills
in (Kimi-K2's latent, RefinedWeb's width), ``VLLM_MLA_DISABLE``, a KV cache the config quantizes, DeepSeek-V3.2's
indexer, and a profile's weight estimate of mixture-of-experts and latent-attention models; each sized as vLLM sizes
it or refused in one line. Config dicts only: no weights, no engine start."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from ltrsched.errors import UserError
from ltrsched.models import LLAMA_TINY
from test_models_other import DSV2  # (one DeepSeek-V2-Lite-like fixture for both files)

TINY = dict(LLAMA_TINY)  # 2 layers, 4 KV heads of 64, float32
DSV3 = {**DSV2, "model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"]}
KIMI_K2 = {**DSV3, "model_type": "kimi_k2"}  # (vLLM reads it through transformers' DeepseekV3Config)
#: A 2-layer Falcon-7B-like config under its original RefinedWeb names (vLLM's own RWConfig reads them).
REFINED_WEB = {"model_type": "RefinedWebModel", "architectures": ["RWForCausalLM"], "n_embed": 256, "n_head": 8,
               "n_layer": 2, "vocab_size": 1000, "multi_query": True, "parallel_attn": True, "torch_dtype": "bfloat16"}

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="reads the installed vLLM")


def _model_dir(path, config):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def _without(config, *keys):
    return {k: v for k, v in config.items() if k not in keys}


# --- sizes left to the default of the config class vLLM reads the type through (not transformers' own) -------------

@needs_vllm
@pytest.mark.parametrize("config, says", [
    (_without(KIMI_K2, "kv_lora_rank"), "has no 'kv_lora_rank': transformers' DeepseekV3Config (vLLM's config class "
                                        "for 'kimi_k2') (through which vLLM reads it) would take its default 512"),
    ({**_without(DSV3, "qk_rope_head_dim"), "model_type": "deepseek_v32"}, "has no 'qk_rope_head_dim': transformers' "
                                                                           "DeepseekV3Config"),
    (_without(REFINED_WEB, "n_embed"), "has no 'hidden_size': vLLM's own 'RefinedWebModel' config class RWConfig "
                                       "(through which vLLM reads it) would take its default 64"),
    ({**_without(REFINED_WEB, "vocab_size"), "model_type": "RefinedWeb"}, "has no 'vocab_size': vLLM's own "
                                                                           "'RefinedWeb' config class RWConfig"),
])
def test_a_size_left_to_the_class_vllm_reads_the_type_through_is_refused(config, says):
    """Kimi-K2 and DeepSeek-V3.2 are read through DeepseekV3Config (transformers has no class of their type), the
    old RefinedWeb Falcons through vLLM's own RWConfig: a size the file leaves out took that class's default in vLLM
    (a Kimi-K2 without kv_lora_rank ran with a 512-wide latent; a RefinedWeb without its width at 64) while the check
    looked for transformers' class of the type, found none and passed; the KV arithmetic then failed where the
    context bound is computed, and that bound was skipped without a word."""
    from ltrsched.engine.model_sizes import check_text_sizes

    with pytest.raises(UserError, match=f"^config.json {re.escape(says)}"):
        check_text_sizes(config, "config.json")


@pytest.mark.vllm
@needs_vllm
def test_vllm_takes_those_defaults(tmp_path):
    """What the refusals say: vLLM's own reading of such config.json files (its get_config, no engine)."""
    from vllm.transformers_utils.config import get_config

    kimi = get_config(str(_model_dir(tmp_path / "k", _without(KIMI_K2, "kv_lora_rank"))), trust_remote_code=False)
    assert kimi.kv_lora_rank == 512
    falcon = get_config(str(_model_dir(tmp_path / "f", _without(REFINED_WEB, "n_embed"))), trust_remote_code=False)
    assert falcon.hidden_size == 64 and type(falcon).__name__ == "RWConfig"


@needs_vllm
@pytest.mark.parametrize("config", [KIMI_K2, REFINED_WEB, {**REFINED_WEB, "model_type": "RefinedWeb"}])
def test_a_config_giving_those_sizes_passes(config):
    """RefinedWeb's width under ``n_embed`` (RWConfig takes it as its hidden_size) is its width."""
    from ltrsched.engine.model_sizes import check_text_sizes

    check_text_sizes(config, "config.json")


@pytest.mark.parametrize("kind", [["kimi_k2"], 7, None])
def test_a_model_type_that_is_no_name_finds_no_class_defaults(kind):
    from ltrsched.engine.model_sizes import check_text_sizes

    check_text_sizes({**TINY, "model_type": kind}, "config.json")  # (no TypeError: left to the model type's check)


@needs_vllm
def test_a_latent_size_no_class_default_tells_is_refused(monkeypatch):
    """An MLA model type whose config class gives no default for a latent size (vLLM may then run it without the
    latent): refused in one line rather than left to the KV arithmetic (which a context bound skipped)."""
    from ltrsched.engine import model_sizes

    monkeypatch.setattr(model_sizes, "class_defaults", lambda kind, sizes: ({}, {}, "no class"))
    with pytest.raises(UserError, match="^config.json has no 'kv_lora_rank', a size of its latent attention's KV"):
        model_sizes.check_text_sizes(_without(KIMI_K2, "kv_lora_rank"), "config.json")


@needs_vllm
def test_a_refined_web_without_its_width_is_refused_before_the_start(tmp_path, capsys):
    from cli_helpers import run_cli_fast

    path = _model_dir(tmp_path / "m", _without(REFINED_WEB, "n_embed"))
    result = run_cli_fast(capsys, "replay", "-m", path, "-w", "lmsys-like", "-n", "2", "-o", tmp_path / "o")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path / 'config.json'} has no 'hidden_size': vLLM's own 'RefinedWebModel' "
                               "config class RWConfig"), lines[0]


# --- VLLM_MLA_DISABLE=1: vLLM serves latent attention with per-head keys and values ---------------------------------

#: DSV2's KV bytes per token with VLLM_MLA_DISABLE=1: 3 layers x keys and values x 4 heads x (qk_nope 32 + qk_rope 16)
#: x 2 bytes (vLLM's DeepseekV2Attention: a KV head per query head, V padded to the query-key head size).
DSV2_PER_HEAD_KV = 3 * 2 * 4 * (32 + 16) * 2


@pytest.mark.parametrize("config", [DSV2, DSV3, KIMI_K2, {**DSV2, "model_type": "glm4_moe_lite",
                                                           "architectures": ["Glm4MoeLiteForCausalLM"]}])
def test_mla_disable_sizes_per_head_keys_and_values(tmp_path, monkeypatch, config):
    """With VLLM_MLA_DISABLE=1 in the environment vLLM builds DeepSeek-V2/V3's attention without the latent; the KV was
    still sized as one latent per layer (3 x 80 x 2 bytes a token here, vLLM's 2,304: 4.8 times fewer): the bytes
    reserved for --num-gpu-blocks, the blocks --kv-cache-gib holds, the context bound and a profile's KV capacity."""
    from ltrsched.engine.config import model_kv_bytes_per_token, pool_block_bytes
    from ltrsched.sim.kv_capacity import kv_bytes_per_token

    monkeypatch.setenv("VLLM_MLA_DISABLE", "1")
    path = str(_model_dir(tmp_path / "m", config))
    assert model_kv_bytes_per_token(path, "auto") == DSV2_PER_HEAD_KV
    assert pool_block_bytes(path, "auto", 32) == 32 * DSV2_PER_HEAD_KV
    assert kv_bytes_per_token(config) == DSV2_PER_HEAD_KV
    assert kv_bytes_per_token(config, 2) == DSV2_PER_HEAD_KV // 2  # (heads sharded, unlike the latent)
    monkeypatch.setenv("VLLM_MLA_DISABLE", "0")
    assert model_kv_bytes_per_token(path, "auto") == kv_bytes_per_token(config) == 3 * (64 + 16) * 2


def _vllm_reads_the_environment_now(request) -> None:
    """vLLM's ``envs`` caches every variable once an engine starts (``enable_envs_cache``): after an engine started
    in this test process (an in-process command of another test), it kept the VLLM_MLA_DISABLE of that time. Reset
    its cache for this test (its own function for isolating tests), and cache again afterwards if it did."""
    import vllm.envs as vllm_envs

    if getattr(vllm_envs, "_is_envs_cache_enabled", lambda: False)():
        vllm_envs.disable_envs_cache()
        request.addfinalizer(vllm_envs.enable_envs_cache)


@pytest.mark.vllm
@needs_vllm
def test_mla_disable_is_vllms_own_head_size(tmp_path, monkeypatch, request):
    """vLLM's own reading under the switch: its head size (ModelArchConfigConvertorBase.get_head_size) and the page of
    the per-head layers its DeepseekV2Attention registers (a FullAttentionSpec of a KV head per query head)."""
    import torch
    import vllm.config  # noqa: F401  (before the convertor: its module imports it back)
    from vllm.transformers_utils.config import get_config
    from vllm.transformers_utils.model_arch_config_convertor import ModelArchConfigConvertorBase
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    from ltrsched.engine.config import pool_block_bytes

    monkeypatch.setenv("VLLM_MLA_DISABLE", "1")
    _vllm_reads_the_environment_now(request)
    path = _model_dir(tmp_path / "m", DSV2)
    hf = get_config(str(path), trust_remote_code=False)
    head = ModelArchConfigConvertorBase(hf, hf).get_head_size()
    layer = FullAttentionSpec(block_size=32, num_kv_heads=hf.num_attention_heads, head_size=head,
                              dtype=torch.bfloat16)
    assert pool_block_bytes(str(path), "auto", 32) == 3 * layer.page_size_bytes


@pytest.mark.parametrize("config, value, says", [
    ({**DSV2, "model_type": "longcat_flash", "architectures": ["LongcatFlashForCausalLM"], "head_dim": 64}, "1",
     "VLLM_MLA_DISABLE is set, but vLLM has no attention without the latent for its 'longcat_flash' model"),
    ({**DSV3, "model_type": "deepseek_v32", "index_topk": 64, "index_head_dim": 32, "index_n_heads": 4}, "1",
     "its 'index_topk' makes vLLM keep the KV cache of DeepSeek-V3.2's sparse-attention indexer"),
    (TINY, "yes", "environment variable VLLM_MLA_DISABLE='yes' must be an integer"),
    (_without(DSV2, "qk_nope_head_dim"), "1", "has no 'qk_nope_head_dim': transformers' 'deepseek_v2' config class"),
])
def test_mla_disable_where_vllm_has_no_per_head_attention_is_one_line(monkeypatch, config, value, says):
    from ltrsched.engine.model_sizes import check_text_sizes

    monkeypatch.setenv("VLLM_MLA_DISABLE", value)
    with pytest.raises(UserError, match=re.escape(says)):
        check_text_sizes(config, "config.json")


# --- DeepSeek-V3.2's sparse-attention indexer: a second KV cache, refused -------------------------------------------

#: A DeepSeek-V3.2-like config (DSV3 with the indexer's sizes); vLLM reads it through DeepseekV3Config.
DSV32 = {**DSV3, "model_type": "deepseek_v32", "architectures": ["DeepseekV32ForCausalLM"], "index_topk": 64,
         "index_head_dim": 32, "index_n_heads": 4}
#: A GLM-MoE-DSA-like config without index_topk (its config class gives one).
GLM_DSA = {**DSV3, "model_type": "glm_moe_dsa", "architectures": ["GlmMoeDsaForCausalLM"], "head_dim": 64,
           "q_lora_rank": 64}


@pytest.mark.parametrize("config, key", [
    (DSV32, "'index_topk'"), ({**DSV32, "index_topk": None}, "'index_topk'"), (GLM_DSA, "'index_topk'"),
    ({**DSV32, "kv_lora_rank": None}, "'index_topk'"),
    ({"model_type": "kimi_vl", "architectures": ["KimiVLForConditionalGeneration"], "torch_dtype": "bfloat16",
      "text_config": _without({**DSV32, "model_type": "deepseek_v2"}, "architectures")}, "'text_config.index_topk'"),
])
def test_a_model_with_deepseek_v32s_indexer_is_refused_in_one_line(tmp_path, config, key):
    """vLLM keeps a second KV cache per layer for DeepSeek-V3.2's indexer (index_head_dim bytes and scales a token, in
    KV groups of their own) wherever the text model has index_topk (hasattr: null too; GLM-MoE-DSA's class always
    gives one), and on some GPUs stores the latent as fp8_ds_mla; ltrsched sized the latent alone. Now one line, in the
    check before the start, the engine's KV arithmetic and a profile's ModelShape."""
    from ltrsched.engine.config import model_kv_bytes_per_token
    from ltrsched.engine.model_sizes import check_text_sizes
    from ltrsched.sim.kv_capacity import ModelShape

    says = f"{key} makes vLLM keep the KV cache of DeepSeek-V3.2's sparse-attention indexer"
    with pytest.raises(UserError, match=re.escape(f"config.json: its {says}")):
        check_text_sizes(config, "config.json")
    path = _model_dir(tmp_path / "m", config)
    with pytest.raises(UserError, match=re.escape(says)):
        model_kv_bytes_per_token(str(path), "auto")
    with pytest.raises(UserError, match=re.escape(f"p.json: its {says}")):
        ModelShape.from_config(config, "p.json")


@pytest.mark.vllm
@needs_vllm
def test_the_indexer_types_are_those_whose_class_gives_index_topk(tmp_path):
    """INDEXER_MODEL_TYPES: the latent-attention types whose config class (as vLLM reads the type) has index_topk
    without the file giving it; vLLM's own reading of a GLM-MoE-DSA config.json without the key has the attribute."""
    import inspect

    from ltrsched.config_classes import vllm_config_classes
    from ltrsched.models import INDEXER_MODEL_TYPES, MLA_MODEL_TYPES
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    found = set()
    for kind in MLA_MODEL_TYPES:
        if kind in vllm_config_classes() or kind not in CONFIG_MAPPING:
            continue
        if "index_topk" in inspect.signature(CONFIG_MAPPING[kind].__init__).parameters:
            found.add(kind)
    assert found == INDEXER_MODEL_TYPES
    from vllm.transformers_utils.config import get_config

    assert hasattr(get_config(str(_model_dir(tmp_path / "g", GLM_DSA)), trust_remote_code=False), "index_topk")


def test_the_indexer_refusal_comes_before_the_engine_starts(tmp_path, capsys):
    from cli_helpers import run_cli_fast

    path = _model_dir(tmp_path / "m", DSV32)
    result = run_cli_fast(capsys, "replay", "-m", path, "-w", "lmsys-like", "-n", "2", "-o", tmp_path / "o")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path / 'config.json'}: its 'index_topk' makes vLLM keep"), lines[0]


# --- a KV cache the model's quantization config makes FP8 (vLLM resolves --kv-cache-dtype auto from it) -------------

FP8_NAME = {"quant_method": "modelopt", "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}
FP8_SCHEME = {"quant_method": "modelopt", "kv_cache_scheme": {"dynamic": False, "num_bits": 8, "type": "float"}}
NVFP4 = {"quant_method": "modelopt_fp4", "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "NVFP4"}}
#: Quantization configs vLLM resolves to the model's dtype (a KV method it does not know, another method, none).
AUTO = [{"quant_method": "modelopt", "quantization": {"kv_cache_quant_algo": "int8"}},
        {"quant_method": "modelopt", "kv_cache_scheme": {"dynamic": True, "num_bits": 8, "type": "float"}},
        {"quant_method": "fp8", "kv_cache_scheme": {"dynamic": False, "num_bits": 8, "type": "float"}},
        {"quant_method": "modelopt", "quantization": {"quant_algo": "FP8"}}, {}]


@pytest.mark.vllm
@needs_vllm
@pytest.mark.parametrize("quant", [FP8_NAME, FP8_SCHEME, NVFP4, *AUTO])
def test_the_kv_dtype_is_the_one_vllm_resolves_from_the_quantization_config(quant):
    from vllm.utils.torch_utils import get_kv_cache_quant_algo_string

    from ltrsched.models import kv_cache_dtype

    assert kv_cache_dtype(quant, "config.json") == (get_kv_cache_quant_algo_string(quant) or "auto")


@pytest.mark.parametrize("where", ["config.json", "hf_quant_config.json"])
@pytest.mark.parametrize("quant", [FP8_NAME, FP8_SCHEME])
def test_an_fp8_kv_cache_is_one_byte_an_element(tmp_path, where, quant):
    """A ModelOpt checkpoint whose quantization config names an FP8 KV cache: vLLM keeps it at one byte an element
    (float8_e4m3fn) though ltrsched never passes --kv-cache-dtype; it was sized at the model's 2 bytes (half the
    blocks --kv-cache-gib holds, twice the bytes reserved for --num-gpu-blocks, a profile's KV capacity halved)."""
    from ltrsched.engine.config import model_kv_bytes_per_token
    from ltrsched.sim.kv_capacity import kv_bytes_per_token

    path = tmp_path / "m"
    if where == "config.json":
        _model_dir(path, {**DSV2, "quantization_config": quant})
        assert kv_bytes_per_token({**DSV2, "quantization_config": quant}) == 3 * (64 + 16) * 1
    else:
        _model_dir(path, DSV2)
        (path / where).write_text(json.dumps(quant))
    assert model_kv_bytes_per_token(str(path), "auto") == 3 * (64 + 16) * 1
    (path / "config.json").write_text(json.dumps({**TINY, "quantization_config": quant}))
    assert model_kv_bytes_per_token(str(path), "bfloat16") == 2 * 2 * 4 * 64 * 1


@pytest.mark.vllm
@needs_vllm
def test_an_fp8_kv_block_is_vllms_own_page(tmp_path):
    """vLLM's KV specs of the layers at the KV dtype it resolves (kv_cache_dtype_str_to_dtype: float8_e4m3fn, quantized
    per tensor, no per-token scales in the page): the latent's and the per-head layers' pages."""
    import vllm.config  # noqa: F401  (its import order)
    from vllm.utils.torch_utils import STR_DTYPE_TO_TORCH_DTYPE
    from vllm.v1.kv_cache_interface import FullAttentionSpec, MLAAttentionSpec, get_kv_quant_mode

    from ltrsched.engine.config import pool_block_bytes
    from ltrsched.models import kv_cache_dtype

    name = kv_cache_dtype(FP8_NAME, "config.json")
    common = dict(block_size=32, dtype=STR_DTYPE_TO_TORCH_DTYPE[name], kv_quant_mode=get_kv_quant_mode(name))
    latent = MLAAttentionSpec(num_kv_heads=1, max_tp_shards=1, head_size=64 + 16, cache_dtype_str=name, **common)
    heads = FullAttentionSpec(num_kv_heads=4, head_size=64, **common)
    path = _model_dir(tmp_path / "m", {**DSV2, "quantization_config": FP8_NAME})
    assert pool_block_bytes(str(path), "auto", 32) == 3 * latent.page_size_bytes
    _model_dir(path, {**TINY, "quantization_config": FP8_NAME})
    assert pool_block_bytes(str(path), "bfloat16", 32) == 2 * heads.page_size_bytes


@pytest.mark.parametrize("quant", AUTO)
def test_a_kv_cache_vllm_keeps_at_the_models_dtype_is_sized_at_it(tmp_path, quant):
    from ltrsched.engine.config import model_kv_bytes_per_token

    path = _model_dir(tmp_path / "m", {**DSV2, "quantization_config": quant})
    assert model_kv_bytes_per_token(str(path), "auto") == 3 * (64 + 16) * 2


def test_an_nvfp4_kv_cache_is_refused_where_it_is_sized(tmp_path):
    from ltrsched.engine.config import model_kv_bytes_per_token
    from ltrsched.sim.kv_capacity import ModelShape

    path = _model_dir(tmp_path / "m", {**DSV2, "quantization_config": NVFP4})
    says = "its quantization config makes vLLM keep the KV cache as nvfp4"
    with pytest.raises(UserError, match=re.escape(f"{path / 'config.json'}: {says}")):
        model_kv_bytes_per_token(str(path), "auto")
    with pytest.raises(UserError, match=re.escape(f"p.json: {says}")):
        ModelShape.from_config({**DSV2, "quantization_config": NVFP4}, "p.json")


@pytest.mark.parametrize("quant, says", [
    ([1], "its quantization config must be an object, got [1]"),
    ({"quant_method": 7}, "quantization_config's 'quant_method' must be a string, got 7"),
    ({"quant_method": "modelopt", "quantization": None}, "quantization_config's 'quantization' must be an object, "
                                                          "got None"),
])
def test_a_quantization_config_vllm_cannot_read_is_one_line_before_the_start(tmp_path, capsys, quant, says):
    from cli_helpers import run_cli_fast

    path = _model_dir(tmp_path / "m", {**TINY, "quantization_config": quant})
    result = run_cli_fast(capsys, "replay", "-m", path, "-w", "lmsys-like", "-n", "2", "-o", tmp_path / "o")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0] == f"error: {path / 'config.json'}: {says}", lines[0]


# --- a profile's weight estimate: latent-attention projections and experts, not a Llama layout ----------------------

MIXTRAL = {**TINY, "model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "num_local_experts": 4,
           "num_experts_per_tok": 2, "torch_dtype": "bfloat16"}


@pytest.mark.parametrize("config", [TINY, DSV2, {**DSV2, "q_lora_rank": 32}, DSV3, {**DSV3, "n_shared_experts": 2},
                                    MIXTRAL])
def test_the_parameter_count_is_the_models_own(config):
    """ModelShape counted every model as a Llama (per-head q, k, v, o projections; one gated MLP of
    intermediate_size a layer): a DeepSeek-V2-like model's experts and latent projections, or Mixtral's experts, were
    left out (the weights a profile's KV capacity is what remains beside), e.g. Mixtral's 4 experts counted as one.
    Now the parameters of transformers' own model of the config (built on the meta device: no weights) exactly."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ltrsched.sim.kv_capacity import parameter_count

    hf = AutoConfig.for_model(**_without(config, "architectures"))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf)
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_experts_are_placed_and_split_as_vllm_places_and_splits_them():
    """vLLM's DeepSeek-V2 model makes layer i an MoE layer where i >= first_k_dense_replace and i % moe_layer_freq ==
    0 (transformers' model ignores moe_layer_freq); under tensor parallelism experts, heads and the vocabulary split,
    the latent's compressions, the routers and norms stay whole."""
    from ltrsched.sim.kv_capacity import ModelShape, parameter_count, weight_bytes_per_gpu

    h, dense, expert = 256, 3 * 256 * 512, 3 * 256 * 128
    config = {**DSV3, "first_k_dense_replace": 0, "moe_layer_freq": 2}  # (layers 0 and 2 of 3: experts)
    shape = ModelShape.from_config(config)
    assert shape.moe_layers == 2 and ModelShape.from_config(DSV3).moe_layers == 2  # (first_k_dense_replace 1)
    moe = (4 + 1) * expert + h * 4  # (4 routed and 1 shared expert of 128, the router)
    assert parameter_count(config) - parameter_count({**config, "moe_layer_freq": 1}) == dense - moe
    # kept whole on each GPU: per layer kv_a (h x (kv_lora_rank + qk_rope_head_dim)), its norm and two norms; the two
    # MoE layers' routers; the final norm. The rest (query, kv_b, o, experts, dense MLP, embeddings) halves.
    whole = 3 * (h * (64 + 16) + 64 + 2 * h) + 2 * h * 4 + h
    total = parameter_count(config)
    assert weight_bytes_per_gpu(config, 1) == total * 2
    assert weight_bytes_per_gpu(config, 2) == (whole + (total - whole) // 2) * 2


@pytest.mark.parametrize("config, says", [
    ({**DSV2, "moe_layer_freq": 0}, "p.json: 'moe_layer_freq' must be a positive integer, got 0"),  # (vLLM: i % 0)
    ({**DSV2, "n_routed_experts": "4"}, "p.json: model config key 'n_routed_experts' must be a non-negative integer, "
                                        "got '4'"),
    (_without(DSV2, "moe_intermediate_size"), "p.json: model config lacks key 'moe_intermediate_size'"),
])
def test_bad_expert_sizes_are_one_line(config, says):
    from ltrsched.sim.kv_capacity import ModelShape

    with pytest.raises(UserError, match=f"^{re.escape(says)}$"):
        ModelShape.from_config(config, "p.json")


@pytest.mark.parametrize("config, key", [
    ({**TINY, "model_type": "flex_olmo", "num_experts": 4}, "num_experts"),  # (Qwen2/3-MoE, OLMoE: test_models_quant*)
    ({**TINY, "moe_num_experts": 4}, "moe_num_experts"),
])
def test_a_layout_of_experts_not_read_is_refused_where_weights_are_estimated(config, key):
    from ltrsched.sim.kv_capacity import kv_blocks_from_config, kv_bytes_per_token, weight_bytes_per_gpu

    kv_bytes_per_token(config)  # (its KV cache does not depend on its experts)
    for estimate in (lambda: weight_bytes_per_gpu(config), lambda: kv_blocks_from_config(config, 80 * 2**30,
                                                                                           reserve_bytes=0)):
        with pytest.raises(UserError, match=re.escape(f"the weight estimate of a model config with {key!r} (a "
                                                      "layout of experts ltrsched does not read")):
            estimate()


@pytest.mark.parametrize("config", [DSV2, MIXTRAL])
def test_the_llama_activation_estimate_refuses_latent_attention_and_experts(config):
    from ltrsched.sim.kv_capacity import activation_reserve_bytes

    with pytest.raises(UserError, match="^the activation estimate assumes a dense Llama-style layer"):
        activation_reserve_bytes(config)
