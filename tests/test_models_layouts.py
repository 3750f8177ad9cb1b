"""The weight estimate of other model types than a Llama's (OLMo, OLMo-2/3, Granite, Cohere, Phi, StarCoder-2, GPT-NeoX,
StableLM, Nemotron, Arcee, EXAONE-4): their biases, norms, ungated MLPs and LM-head biases as vLLM 0.32 builds them,
equal to transformers' parameter count of small configs (built on the meta device: no weights); a model type whose
layers are not read is refused in one line naming it. Config dicts only: no engine start."""

from __future__ import annotations

import re

import pytest

from ltrsched.errors import UserError

#: 2 layers, 4 query heads and 2 KV heads of 16, a vocabulary of 512: small enough to build in milliseconds.
SMALL = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
         "num_hidden_layers": 2, "vocab_size": 512, "torch_dtype": "bfloat16", "max_position_embeddings": 256,
         "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False}


def _typed(kind, **extra):
    return {**SMALL, "model_type": kind, **extra}


def transformers_count(config) -> int:
    """transformers' parameter count of ``config``'s model, built on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ltrsched.hf_quiet import transformers_quiet

    with transformers_quiet():
        hf = AutoConfig.for_model(**{k: v for k, v in config.items() if k not in ("architectures", "torch_dtype")})
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf)
    return sum(p.numel() for p in model.parameters())


LAYOUTS = [
    _typed("olmo"), _typed("olmo", attention_bias=True, tie_word_embeddings=True),
    _typed("olmo2"), _typed("olmo2", attention_bias=True), _typed("olmo3"),
    _typed("granite"), _typed("granite", attention_bias=True, mlp_bias=True),
    _typed("cohere", tie_word_embeddings=True), _typed("cohere", use_qk_norm=True, tie_word_embeddings=True),
    _typed("cohere2", tie_word_embeddings=True),  # (vLLM's Cohere has no LM head: test_the_lm_head_is_...)
    _typed("phi"), _typed("phi", qk_layernorm=True), _typed("phi", tie_word_embeddings=True),
    _typed("starcoder2"), _typed("starcoder2", use_bias=False),
    _typed("gpt_neox", num_key_value_heads=4), _typed("gpt_neox", num_key_value_heads=4, attention_bias=False),
    _typed("stablelm"), _typed("stablelm", use_qkv_bias=True),
    _typed("nemotron"), _typed("nemotron", attention_bias=True, mlp_bias=True),
    _typed("arcee"), _typed("arcee", attention_bias=True, mlp_bias=True),
    _typed("exaone4"),
    _typed("gemma2", head_dim=16, attention_bias=True, tie_word_embeddings=True),  # (vLLM's: no LM head of its own)
    _typed("gemma3_text", head_dim=16, attention_bias=True),
    _typed("mixtral", num_local_experts=4),
]


def _case(config) -> str:
    """A test id: the model type and the keys given beside SMALL's."""
    return "-".join([config["model_type"], *(k for k in config if k not in SMALL and k != "model_type")])


@pytest.mark.parametrize("config", LAYOUTS, ids=_case)
def test_the_parameter_count_of_other_layouts_is_the_models_own(config):
    """Each was counted as a Llama's layers (gated MLP, two RMSNorms, biases unread): a GPT-NeoX's ungated MLP and
    LayerNorm biases, Phi's LM-head bias, OLMo's norms without weights, Cohere's one norm a layer and q/k norms,
    Gemma-2/3's attention_bias were all miscounted. Now transformers' parameter count exactly."""
    from ltrsched.sim.kv_capacity import parameter_count

    assert parameter_count(config) == transformers_count(config)


def test_other_layouts_split_as_vllm_splits_them():
    """Under tensor parallelism an ungated MLP's up bias and the LM head's bias split, its down bias and the LayerNorms
    stay whole; Cohere's per-head q/k norm weights split with the heads."""
    from ltrsched.sim.kv_capacity import weight_bytes_per_gpu

    h, layers = 64, 2
    phi = _typed("phi")
    total = weight_bytes_per_gpu(phi, 1) // 2
    whole = layers * (h + h + 2 * h) + 2 * h  # (o and fc2 biases, one LayerNorm a layer; the final LayerNorm)
    assert weight_bytes_per_gpu(phi, 2) // 2 == whole + (total - whole) // 2
    assert total == transformers_count(phi)
    cohere, normed = _typed("cohere"), _typed("cohere", use_qk_norm=True)
    per_gpu = (4 * 16 + 2 * 16) // 2  # (each GPU: 2 query heads' and 1 KV head's norm weights)
    assert weight_bytes_per_gpu(normed, 2) - weight_bytes_per_gpu(cohere, 2) == layers * per_gpu * 2


@pytest.mark.parametrize("config, kind", [
    (_typed("gptj"), "gptj"), (_typed("falcon"), "falcon"), (_typed("granitemoe", num_local_experts=4), "granitemoe"),
    (_typed("phimoe", num_local_experts=4), "phimoe"), (_typed("persimmon"), "persimmon"),
    ({"model_type": "llava", "text_config": _typed("bloom")}, "bloom"),
])
def test_a_model_type_whose_layers_are_not_read_is_one_line(config, kind):
    """They were counted as a Llama's layers (GPT-J's LM-head bias and ungated MLP, PhiMoE's LayerNorms: silently
    another number); its KV cache is still sized, the weight estimate refuses it naming the type."""
    from ltrsched.sim.kv_capacity import ModelShape, parameter_count, weight_bytes_per_gpu

    says = f"p.json: ltrsched's weight estimate does not read the layers of model type {kind!r} (it reads arcee, "
    shape = ModelShape.from_config(config, "p.json")
    for estimate in (parameter_count, weight_bytes_per_gpu):
        with pytest.raises(UserError, match=f"^{re.escape(says)}.*so the simulator cannot size this model's memory$"):
            estimate(shape)


@pytest.mark.parametrize("config, says", [
    (_typed("stablelm", qk_layernorm=True), "p.json: model config key 'qk_layernorm' is true, which vLLM 0.32's "
                                            "StableLM model does not build"),
    (_typed("stablelm", use_parallel_residual=True), "p.json: model config key 'use_parallel_residual' is true"),
    (_typed("starcoder2", use_bias="no"), "p.json: model config key 'use_bias' must be true or false, got 'no'"),
    (_typed("cohere", use_qk_norm=1), "p.json: model config key 'use_qk_norm' must be true or false, got 1"),
    (_typed("mixtral"), "p.json has no 'num_local_experts'"),  # (class default 8: was counted as a dense model)
])
def test_layouts_vllm_does_not_build_or_bad_flags_are_one_line(config, says):
    from ltrsched.sim.kv_capacity import ModelShape

    with pytest.raises(UserError, match=f"^{re.escape(says)}"):
        ModelShape.from_config(config, "p.json")


def test_a_composite_text_config_without_its_type_is_read_as_the_type_its_class_builds():
    """Gemma-3's composite config builds a gemma3_text model from a text_config naming no type (and Llava's a Llama):
    its layers are that type's (four norms, q/k head norms), not refused as a 'gemma3' nor counted as a Llama's."""
    from ltrsched.sim.kv_capacity import ModelShape

    text = {k: v for k, v in _typed("gemma3_text", head_dim=16).items() if k != "model_type"}
    composite = ModelShape.from_config({"model_type": "gemma3", "torch_dtype": "bfloat16", "text_config": text})
    assert composite.layout == ModelShape.from_config(_typed("gemma3_text", head_dim=16)).layout
    assert composite.layout.layer_norms == 4 and composite.layout_refused is None


@pytest.mark.parametrize("config", [
    _typed("cohere"), _typed("cohere2"),  # (no LM head: logits from the embedding)
    _typed("olmoe", num_experts=4, tie_word_embeddings=True),  # (an LM head of its own, never tied)
    _typed("deepseek_v3", n_routed_experts=4, moe_intermediate_size=32, kv_lora_rank=32, q_lora_rank=None,
           qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, first_k_dense_replace=1, n_shared_experts=1,
           tie_word_embeddings=True),
])
def test_the_lm_head_is_the_one_vllms_model_builds_whatever_tie_word_embeddings_says(config):
    """vLLM's Cohere model has no LM head (its logits come from the embedding), its OLMoE and DeepSeek-V2/V3 models
    always build one: the weight estimate followed tie_word_embeddings (an LM head counted for a Cohere model saying
    false: its vocabulary x width, 4.2 GB for Command-R's 256,000 x 8,192 at bf16; none for a tied OLMoE)."""
    from ltrsched.sim.kv_capacity import ModelShape, parameter_count

    flipped = {**config, "tie_word_embeddings": not config["tie_word_embeddings"]}
    vllm_ties = config["model_type"].startswith("cohere")
    assert ModelShape.from_config(config).tie_word_embeddings is ModelShape.from_config(flipped).tie_word_embeddings
    assert ModelShape.from_config(config).tie_word_embeddings is vllm_ties
    assert parameter_count(config) == transformers_count({**config, "tie_word_embeddings": vllm_ties})


def test_a_tied_dbrx_is_one_line():
    """vLLM's DBRX raises "tie_word_embeddings is not supported for Dbrx models" at its start."""
    from ltrsched.sim.kv_capacity import ModelShape

    dbrx = {"model_type": "dbrx", "d_model": 64, "n_heads": 4, "n_layers": 2, "vocab_size": 512, "max_seq_len": 256,
            "torch_dtype": "bfloat16", "attn_config": {"kv_n_heads": 2, "rope_theta": 10000},
            "ffn_config": {"ffn_hidden_size": 128, "moe_num_experts": 4, "moe_top_k": 2}}
    assert ModelShape.from_config(dbrx).num_experts == 4
    with pytest.raises(UserError, match="^p.json: model config key 'tie_word_embeddings' is true, which vLLM 0.32's "
                                        "DBRX model refuses at its start"):
        ModelShape.from_config({**dbrx, "tie_word_embeddings": True}, "p.json")


# --- hybrid and attention-free models: no full-context KV cache in every layer ----------------------------------------

HYBRIDS = [
    _typed("jamba", attn_layer_period=8, attn_layer_offset=4),  # (one attention layer in 8, the rest Mamba)
    _typed("qwen3_next", head_dim=16, full_attention_interval=4),  # (3 of 4 layers linear attention)
    _typed("falcon_h1"),
    {k: v for k, v in _typed("mamba").items() if k not in ("num_attention_heads", "num_key_value_heads")},
    {"model_type": "qwen3_5", "torch_dtype": "bfloat16", "text_config": _typed("qwen3_5_text", head_dim=16)},
]


@pytest.mark.parametrize("config", HYBRIDS, ids=lambda c: c["model_type"])
def test_a_hybrid_models_kv_cache_is_refused_where_it_is_sized(tmp_path, capsys, config):
    """Jamba's KV was sized for every layer (8x its attention layers'), Qwen3-Next's likewise (4x), a Mamba's refused
    for a missing num_attention_heads: vLLM keeps a fixed state a request for their Mamba or linear-attention layers.
    Now one line naming the type, in the simulator's sizing and in the checks before the engine starts."""
    import json

    from cli_helpers import run_cli_fast

    from ltrsched.engine.model_sizes import check_text_sizes
    from ltrsched.sim.kv_capacity import ModelShape
    from ltrsched.sim.profiles.io import load_profile, profile_to_dict

    kind = config["text_config"]["model_type"] if "text_config" in config else config["model_type"]
    kind = "qwen3_5" if kind == "qwen3_5_text" else kind  # (the composite's type, named first)
    says = f"p.json: model type {kind!r} has state-space or linear-attention layers, which vLLM 0.32 serves as a hybrid"
    with pytest.raises(UserError, match=f"^{re.escape(says)}.*the simulator cannot size its KV cache$"):
        ModelShape.from_config(config, "p.json")
    with pytest.raises(UserError, match=f"^{re.escape(says)}.*ltrsched cannot check its KV cache or context before"):
        check_text_sizes(config, "p.json")
    data = profile_to_dict(load_profile("a100-llama3-8b"))
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**data, "model_config": config}))
    result = run_cli_fast(capsys, "simulate", "--profile", path, "-w", "lmsys-like", "-n", "5", "-o", tmp_path / "o")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"model type {kind!r} has state-space" in result.stderr


def _vllm_models_dir():
    from ltrsched.config_classes import vllm_file

    registry = vllm_file("model_executor/models/registry.py")
    return None if registry is None else registry.parent


def hybrid_of(name: str, bases: dict[str, set[str]], seen: tuple = ()) -> bool:
    """Class ``name`` is IsHybrid or IsAttentionFree through ``bases`` (class -> its base classes' names)."""
    return name in ("IsHybrid", "IsAttentionFree") or name not in seen and any(
        hybrid_of(b, bases, seen + (name,)) for b in bases.get(name, ()))


@pytest.mark.skipif(_vllm_models_dir() is None, reason="reads the installed vLLM's source")
def test_the_hybrid_types_cover_every_hybrid_class_vllm_registers():
    """Every architecture the installed vLLM registers whose class is (through its bases) IsHybrid or IsAttentionFree,
    read from its source, has each model type transformers gives that architecture in HYBRID_MODEL_TYPES."""
    import ast

    from transformers.models.auto import modeling_auto

    from ltrsched.config_classes import HYBRID_MODEL_TYPES

    root = _vllm_models_dir()
    texts = {path: path.read_text(encoding="utf-8") for path in root.rglob("*.py")}
    bases: dict[str, set[str]] = {}
    named, parsed = {"IsHybrid", "IsAttentionFree"}, set()
    while True:  # (parse the files naming a hybrid class, until no new subclass is found: not all 300)
        todo = [path for path, text in texts.items() if path not in parsed and any(n in text for n in named)]
        if not todo:
            break
        for path in todo:
            parsed.add(path)
            for node in ast.walk(ast.parse(texts[path])):
                if isinstance(node, ast.ClassDef):
                    bases.setdefault(node.name, set()).update(
                        b.id if isinstance(b, ast.Name) else b.attr for b in node.bases
                        if isinstance(b, (ast.Name, ast.Attribute)))
        named |= {name for name in bases if hybrid_of(name, bases)}

    registry = ast.parse((root / "registry.py").read_text(encoding="utf-8"))
    archs = {key.value for node in ast.walk(registry) if isinstance(node, ast.Dict)
             for key, value in zip(node.keys, node.values)
             if isinstance(key, ast.Constant) and isinstance(value, ast.Tuple) and len(value.elts) == 2
             and isinstance(value.elts[1], ast.Constant) and hybrid_of(value.elts[1].value, bases)}
    assert "JambaForCausalLM" in archs and "Qwen3NextForCausalLM" in archs
    types = set()
    for mapping in (modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, modeling_auto.MODEL_MAPPING_NAMES,
                    modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES):
        types |= {kind for kind, names in mapping.items()
                  if set([names] if isinstance(names, str) else names) & archs}
    assert types and types <= HYBRID_MODEL_TYPES, sorted(types - HYBRID_MODEL_TYPES)


# --- a sliding window or chunked attention the file leaves to its config class ----------------------------------------

@pytest.mark.parametrize("config, says", [
    (_typed("mistral"), "note: a mistral model's 4,096-token sliding window is not simulated"),  # (MistralConfig's)
    (_typed("gemma3_text", head_dim=16), "note: a gemma3_text model's 4,096-token sliding window is not simulated"),
    (_typed("cohere2"), "note: a cohere2 model's 4,096-token sliding window is not simulated"),
    (_typed("qwen2", sliding_window=1024), None),  # (Qwen2Config's use_sliding_window: false)
    (_typed("qwen2", sliding_window=1024, use_sliding_window=True), "note: a qwen2 model's 1,024-token sliding"),
    (_typed("llama4_text", head_dim=16, attention_chunk_size=8192),
     "note: a llama4_text model's 8,192-token chunked local attention is not simulated: every layer keeps KV for a "
     "request's whole context"),
    (_typed("llama", attention_chunk_size=8192), None),  # (vLLM's Llama builds no chunked attention)
])
def test_a_window_vllm_takes_from_the_config_class_is_noted(capsys, config, says):
    """A config.json without sliding_window has its class's (Mistral's, Gemma-3's and Cohere-2's 4096), which vLLM
    slides with: nothing was said, as for Llama-4's chunked local attention (only the current chunk kept)."""
    from ltrsched.sim.kv_capacity import ModelShape

    capsys.readouterr()
    ModelShape.from_config(config)
    err = capsys.readouterr().err
    assert err.startswith(says) if says else not err, err


# --- hostile sizes ----------------------------------------------------------------------------------------------------

DEEP = _typed("qwen3", head_dim=16, num_hidden_layers=10**6)  # (2^31 was accepted: minutes in the checks)


def test_a_layer_count_no_model_has_is_one_line_before_any_class_is_built(tmp_path, capsys):
    """Any layer count up to 2^31 passed: transformers' Qwen3 config class (read before the engine starts) builds a
    list of every layer's kind, and the weight estimate walked every layer (a million layers: seconds; 2^31: a hang).
    Now one line naming the key, in a profile's sizing and before the engine starts."""
    import json

    from cli_helpers import run_cli_fast

    from ltrsched.sim.kv_capacity import ModelShape

    says = "'num_hidden_layers' gives 1,000,000 decoder layers, more than the largest plausible count 4,096"
    with pytest.raises(UserError, match=f"^p.json: {re.escape(says)}"):
        ModelShape.from_config({**DEEP, "model_type": "qwen3_moe", "num_experts": 4, "moe_intermediate_size": 32},
                               "p.json")
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({**DEEP, "architectures": ["Qwen3ForCausalLM"]}))
    result = run_cli_fast(capsys, "replay", "-m", model, "-w", "lmsys-like", "-n", "2", "-o", tmp_path / "o")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{model / 'config.json'}: {says}" in result.stderr


@pytest.mark.parametrize("key, value", [("sliding_window", "4096"), ("sliding_window", float("nan")),
                                        ("sliding_window", -1), ("attention_chunk_size", 8192.5)])
def test_a_window_that_is_no_number_of_tokens_is_one_line(key, value):
    """The simulator took a window of "4096" or NaN as none (transformers' config class, and so vLLM, refuses it)."""
    from ltrsched.sim.kv_capacity import ModelShape

    with pytest.raises(UserError, match=f"^p.json: model config key {key!r} must be a whole number of tokens or null, "
                                        f"got {re.escape(repr(value))}$"):
        ModelShape.from_config(_typed("mistral", **{key: value}), "p.json")


# --- an FP8 KV cache on the CPU engine --------------------------------------------------------------------------------

CT_FP8_KV = {"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
             "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                 "num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True}}},
             "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False,
                                 "symmetric": True}}
#: A Llama with heads of 64 (LLAMA_TINY's sizes) whose compressed-tensors config keeps its KV cache in FP8.
FP8_KV_LLAMA = {**_typed("llama", hidden_size=256, num_attention_heads=4, num_key_value_heads=4, intermediate_size=512),
                "architectures": ["LlamaForCausalLM"], "quantization_config": CT_FP8_KV}


def _cpu_engine(tmp_path, config):
    from ltrsched.validation.engines import engine_config

    path = _model_dir_of(tmp_path, config)
    return lambda: engine_config(model=str(path), platform="cpu", num_gpu_blocks=4)


@pytest.mark.parametrize("config, supported, says", [
    (FP8_KV_LLAMA, False, "its quantization config makes vLLM keep the KV cache in FP8 (fp8), which vLLM 0.32's CPU "
                          "attention keeps only on x86 with AVX-512 or AMX, and this machine has neither"),
    ({**FP8_KV_LLAMA, "hidden_size": 320}, True, "which vLLM 0.32's CPU attention keeps only for heads of a size "
                                                 "divisible by 32, not 80 (hidden_size / num_attention_heads"),
    ({**FP8_KV_LLAMA, "head_dim": 48}, True, "keeps only for heads of a size divisible by 32, not 48 (head_dim"),
])
def test_an_fp8_kv_cache_the_cpu_attention_refuses_is_one_line_before_the_start(tmp_path, monkeypatch, config,
                                                                                 supported, says):
    """vLLM's CPU attention refuses an FP8 KV cache (a compressed-tensors kv_cache_scheme: vLLM sets fp8 under
    --kv-cache-dtype auto) on a host without AVX-512 or AMX, and for heads divisible by 16 but not 32, with a
    NotImplementedError traceback once the model has loaded; the CPU engine's checks sized it at one byte an element
    and let it start."""
    from ltrsched.engine import model_sizes

    monkeypatch.setattr(model_sizes, "_cpu_supports_fp8_kv", lambda: supported)
    with pytest.raises(UserError, match=f"config.json: .*{re.escape(says)}"):
        _cpu_engine(tmp_path, config)()


@pytest.mark.parametrize("config, supported", [
    (FP8_KV_LLAMA, True), ({**FP8_KV_LLAMA, "hidden_size": 384}, True),  # (heads of 96: a multiple of 32)
    ({k: v for k, v in FP8_KV_LLAMA.items() if k != "quantization_config"}, False),  # (no FP8 KV cache)
])
def test_an_fp8_kv_cache_the_cpu_attention_keeps_passes(tmp_path, monkeypatch, config, supported):
    from ltrsched.engine import model_sizes

    monkeypatch.setattr(model_sizes, "_cpu_supports_fp8_kv", lambda: supported)
    model_sizes.check_cpu_kv_cache(str(_model_dir_of(tmp_path, config)), "p.json")


def _model_dir_of(tmp_path, config):
    import json

    path = tmp_path / "m"
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.mark.slow  # (imports vLLM: about 25 s under load)
@pytest.mark.vllm
@pytest.mark.skipif(_vllm_models_dir() is None, reason="reads the installed vLLM")
@pytest.mark.parametrize("head", [64, 80])
def test_the_cpu_fp8_condition_is_vllms_own(tmp_path, head):
    """vLLM's CPU attention's own choice of kernel (its _get_attn_isa) refuses an FP8 KV cache on this host exactly
    where check_cpu_kv_cache does."""
    import torch
    from vllm.v1.attention.backends.cpu_attn import _get_attn_isa

    from ltrsched.engine.model_sizes import check_cpu_kv_cache

    path = _model_dir_of(tmp_path, {**FP8_KV_LLAMA, "head_dim": head})
    try:
        _get_attn_isa(torch.bfloat16, 128, head, "fp8")
        theirs = None
    except NotImplementedError as exc:
        theirs = str(exc)
    try:
        check_cpu_kv_cache(str(path), "p.json")
        ours = None
    except UserError as exc:
        ours = str(exc)
    assert (ours is None) == (theirs is None), (ours, theirs)


def test_a_model_type_that_is_no_name_has_no_weight_estimate():
    """A list model_type was read as no type, and its weights counted as a Llama's (vLLM refuses the config)."""
    from ltrsched.sim.kv_capacity import ModelShape, parameter_count

    shape = ModelShape.from_config(_typed(["olmo"]), "p.json")  # (its KV cache: a head's keys and values a layer)
    with pytest.raises(UserError, match=re.escape("p.json: model_type must be a string naming the model's type, got "
                                                  "['olmo']")):
        parameter_count(shape)


# --- GPT-NeoX: transformers ignores num_key_value_heads, vLLM 0.32 sizes its KV cache by it ---------------------------

NEOX = {"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
        "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 100, "torch_dtype": "float16"}


def test_a_gpt_neox_whose_kv_heads_are_not_its_heads_is_one_line_where_it_is_sized():
    """transformers' GPT-NeoX projects a KV head per query head whatever the key says; the simulator sized 2 heads
    (half the cache) and the engine's checks passed it, while vLLM builds an attention of 2 KV heads for weights of 4."""
    from ltrsched.engine.model_sizes import check_text_sizes
    from ltrsched.sim.kv_capacity import ModelShape

    says = re.escape("p.json: num_key_value_heads 2 is not num_attention_heads 4, and model type 'gpt_neox' has a KV "
                     "head per query head")
    for check in (ModelShape.from_config, check_text_sizes):
        with pytest.raises(UserError, match=f"^{says}.*remove the key \\(or set it to 4\\)$"):
            check({**NEOX, "num_key_value_heads": 2}, "p.json")
    for given in ({}, {"num_key_value_heads": 4}, {"num_key_value_heads": None}):  # (a head per query head)
        assert ModelShape.from_config({**NEOX, **given}, "p.json").num_kv_heads == 4
        check_text_sizes({**NEOX, **given}, "p.json")
