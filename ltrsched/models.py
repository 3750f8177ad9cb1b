"""Model configs the engine serves with random weights (``--model NAME``) and the simulator sizes KV from.

* ``llama-3-8b``, ``llama-3-70b``: the public Hugging Face ``config.json`` of the models the built-in GPU
  profiles serve (numbers copied by hand; sizes only, no weights needed).
* ``llama-tiny``, ``llama-100m``: Llama-architecture configs of our own for the CPU engine. ``llama-tiny``
  (18M parameters, 16M of them embeddings) starts in seconds and is what the tests serve; ``llama-100m``
  (99M parameters, 75M outside the embeddings) is large enough that the forward pass, not the engine's
  Python overhead, dominates a step on a CPU. Their 32,000-token vocabulary is Llama-2's size.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from ltrsched import atomic, strict_json

_LLAMA3_COMMON = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "max_position_embeddings": 8192,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}

#: meta-llama/Meta-Llama-3-8B(-Instruct): 8,030,261,248 parameters.
LLAMA3_8B = MappingProxyType({
    **_LLAMA3_COMMON,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
})

#: meta-llama/Meta-Llama-3-70B(-Instruct): 70,553,706,496 parameters.
LLAMA3_70B = MappingProxyType({
    **_LLAMA3_COMMON,
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
})


_CPU_COMMON = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "vocab_size": 32000,
}

#: A 2-layer Llama for tests on the CPU engine: 18,089,216 parameters (16,384,000 in the embedding and head).
LLAMA_TINY = MappingProxyType({
    **_CPU_COMMON,
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_hidden_layers": 2,
})

#: An 8-layer Llama whose forward pass dominates a CPU step: 99,496,704 parameters (GQA, 4 KV heads).
LLAMA_100M = MappingProxyType({
    **_CPU_COMMON,
    "hidden_size": 768,
    "intermediate_size": 2048,
    "num_attention_heads": 12,
    "num_key_value_heads": 4,
    "num_hidden_layers": 8,
})

#: Built-in model names -> config.
MODELS = MappingProxyType({"llama-3-8b": LLAMA3_8B, "llama-3-70b": LLAMA3_70B, "llama-tiny": LLAMA_TINY,
                           "llama-100m": LLAMA_100M})


def num_parameters(config) -> int:
    """Parameters of a Llama-style config (embedding, decoder layers with gated MLP, norms, LM head)."""
    h, layers = config["hidden_size"], config["num_hidden_layers"]
    head_dim = config.get("head_dim") or h // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head_dim
    per_layer = 2 * h * config["num_attention_heads"] * head_dim + 2 * h * kv + 3 * h * config["intermediate_size"] + 2 * h
    embeddings = config["vocab_size"] * h * (1 if config.get("tie_word_embeddings") else 2)
    return layers * per_layer + embeddings + h


def write_model_dir(name: str, directory: str | Path) -> Path:
    """Write ``config.json`` of the built-in model ``name`` into ``directory`` (a model vLLM can load with
    ``load_format="dummy"``: the architecture and sizes of the real one, random weights); returns it."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; built-in: {', '.join(MODELS)}")
    path = Path(directory)
    atomic.write_text(path / "config.json", strict_json.dumps(dict(MODELS[name]), indent=2))
    return path


#: Keys a Hugging Face ``config.json`` gives a decoder's layer count under: ``num_hidden_layers``, or the name an
#: architecture's config class stores it as (transformers' ``attribute_map``: GPT-2's ``n_layer``, ...).
LAYER_KEYS = ("num_hidden_layers", "num_layers", "n_layer", "n_layers", "decoder_layers", "layers",
              "decoder_num_hidden_layers")
#: Largest plausible size in a model config (layers, widths, heads) [elements], as :mod:`ltrsched.sim.kv_capacity`.
_MAX_SIZE = 1 << 31


def read_model_config(directory: str | Path) -> dict:
    """The ``config.json`` of a model directory as a dict; one-line :class:`UserError` if it is unreadable or no
    JSON object."""
    return read_json_object(Path(directory) / "config.json", "model config ")


def read_json_object(path: Path, what: str = "") -> dict:
    """The JSON object in the file ``path`` (a model directory's config.json, its hf_quant_config.json); one-line
    :class:`UserError` naming ``what`` (e.g. ``"model config "``) and the path if it is unreadable or no object."""
    from ltrsched.errors import UserError

    try:
        value = strict_json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {what}{path}: {exc}") from None
    if not isinstance(value, dict):
        raise UserError(f"{what}{path} must be a JSON object, got {type(value).__name__}")
    return value


def config_size(config, key: str, source: str, prefix: str = "") -> int:
    """``config[key]``, a positive integer size; one-line :class:`UserError` naming ``source`` (the file) and the
    key (after ``prefix``: ``text_config.`` for a composite model's text model) if it is missing or anything else."""
    from ltrsched.errors import UserError

    if key not in config:
        raise UserError(f"{source} has no {prefix + key!r}")
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_SIZE:
        raise UserError(f"{source}: {prefix + key!r} must be a positive integer, got {value!r}")
    return value


#: What :func:`text_model`'s refusals say is read from the text model, and how they end.
_SIZES_READ = "layer count and KV sizes"
_SIZES_FIX = "ltrsched needs its layer count and KV sizes before the engine starts, so it cannot serve this model"


#: Keys under which transformers' ``get_text_config`` finds a composite model's text config (vLLM reads it there).
TEXT_CONFIG_KEYS = ("text_encoder", "decoder", "generator", "text_config")


#: Composite model types whose config class is vLLM 0.32's own (``vllm.transformers_utils.configs``; transformers has
#: none) -> the model type of the text config that class builds from a ``text_config`` dict without one (Kimi-VL's
#: ``DeepseekV2Config``, Step3-VL's ``Step3TextConfig``); vLLM reads the text model there (``get_text_config``).
VLLM_TEXT_CONFIG_TYPES = MappingProxyType({"kimi_vl": "deepseek_v2", "step3_vl": "step3_text"})


def text_config(model: dict, where: str, reads: str, fix: str) -> tuple[dict, str]:
    """The text model's config, where vLLM reads a model's context, layer count and KV sizes (its
    ``hf_text_config``), and its name in ``where`` (``text_config.`` or empty); a one-line :class:`UserError` where
    that config cannot be told from the file (naming what the caller ``reads`` from it, and ending in ``fix``), or
    vLLM refuses it."""
    from ltrsched.errors import UserError

    found = [k for k in TEXT_CONFIG_KEYS if model.get(k) is not None]
    kind = model.get("model_type")
    if len(found) > 1:
        raise UserError(f"{where} has {len(found)} text configs ({', '.join(found)}): transformers (and so vLLM) "
                        "refuses a model whose text config is ambiguous")
    if not found:
        return model, ""
    key = found[0]
    if key != "text_config" or not isinstance(model[key], dict):
        raise UserError(f"{where}: its text config is {key!r} (a {type(model[key]).__name__}), whose {reads} ltrsched "
                        f"cannot read before the engine starts; {fix}")
    if isinstance(kind, str) and kind in VLLM_TEXT_CONFIG_TYPES:  # (vLLM's own config class builds text_config)
        text = model["text_config"]
        return ({**text, "model_type": VLLM_TEXT_CONFIG_TYPES[kind]} if "model_type" not in text else text,
                "text_config.")
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        config_class = CONFIG_MAPPING[kind]
    except (ImportError, KeyError, TypeError):
        raise UserError(f"{where}: transformers has no config class for model type {kind!r}, which decides how its "
                        f"text_config is read; {fix}") from None
    if "text_config" not in (getattr(config_class, "sub_configs", None) or {}):
        raise UserError(f"{where}: model type {kind!r} has no text config in transformers, so vLLM refuses its "
                        "text_config once started (\"does not have `num_attention_heads`\"): remove text_config, "
                        "or fix model_type")
    text = model["text_config"]
    if "model_type" not in text and kind is not None:  # (its class's default text model: gemma3's is gemma3_text)
        text = {**text, "model_type": kind}
    return text, "text_config."


def text_model(config, source: str, fix: str = _SIZES_FIX) -> tuple[dict, str]:
    """The config holding the model's layer count and attention shape, and its name in ``source`` (``text_config.``
    or empty): a composite (multimodal) model's ``text_config``, as vLLM reads them (its ``hf_text_config``) and as
    :func:`text_config` finds it for the engine's context too; else ``config`` itself. One-line
    :class:`UserError` naming ``source`` where the text model cannot be told from the file (ending in ``fix``), or
    vLLM refuses it."""
    return text_config(config, source, reads=_SIZES_READ, fix=fix)


def layer_count(config, source: str, keys: tuple[str, ...] = LAYER_KEYS) -> int:
    """The number of decoder layers a model config gives: its text model's (:func:`text_model`), under the first of
    ``keys`` it has. One-line :class:`UserError` naming ``source`` (the file) and ``num_hidden_layers`` if it gives
    none: transformers' config classes (which vLLM and the predictors load models through) then take their class
    default, 32 for Llama and many others, and a model of another depth was served or probed without a word (random
    layers added to its weights, or its KV sized for 32 layers)."""
    from ltrsched.errors import UserError

    text, prefix = text_model(config, source)
    key = next((k for k in keys if k in text), None)
    if key is None:
        raise UserError(f"{source} has no '{prefix}num_hidden_layers' (the model's number of decoder layers; "
                        "transformers would assume a default such as Llama's 32): add it")
    return config_size(text, key, source, prefix)


#: Model types vLLM 0.32 serves with multi-head latent attention (MLA) where the text model gives ``kv_lora_rank``
#: (its ``ModelArchConfigConvertorBase.is_deepseek_mla``: DeepSeek-V2/V3, Kimi-K2, GLM-4 MoE Lite, LongCat, ...).
MLA_MODEL_TYPES = frozenset({
    "axk1", "deepseek_v2", "deepseek_v3", "deepseek_v32", "deepseek_v41", "dots3_note", "deepseek_mtp",
    "k3_dspark", "glm5_next", "glm5_next_text", "glm_moe_dsa", "glm4_moe_lite", "glm4_moe_lite_mtp", "kimi_k2",
    "kimi_linear", "longcat_flash", "pangu_ultra_moe", "pangu_ultra_moe_mtp", "bailing_hybrid", "bailing_hybrid_mtp",
    "bailing_hybrid_v3_mtp", "hy_v4", "hy_v4_mtp",
})


def model_type(config: dict) -> str | None:
    """A config's ``model_type`` where it is a string, else None (a hostile list or object is no model type)."""
    kind = config.get("model_type")
    return kind if isinstance(kind, str) else None


#: Text model types whose KV heads a config gives under another key than ``num_key_value_heads`` (vLLM's own config
#: class reads it: Step3's ``num_attention_groups``, groups of query heads sharing keys and values).
KV_HEADS_KEYS = MappingProxyType({"step3_text": "num_attention_groups"})


#: Falcon's model types: transformers' ``FalconConfig`` (``falcon``) and vLLM's ``RWConfig`` for the original
#: RefinedWeb configs, which spell the heads ``n_head`` / ``n_head_kv`` and default ``n_head_kv`` to 1.
FALCON_MODEL_TYPES = frozenset({"falcon", "RefinedWeb", "RefinedWebModel"})


#: The names vLLM's ``RWConfig`` (and, for ``n_embed``, ``FalconConfig``) reads a Falcon size under -> its own name.
FALCON_ALIASES = MappingProxyType({"n_head": "num_attention_heads", "n_head_kv": "num_kv_heads",
                                   "n_embed": "hidden_size", "n_layer": "num_hidden_layers"})


def falcon_names(text: dict) -> dict:
    """A Falcon text model's config with each size also under the name vLLM reads it by (:data:`FALCON_ALIASES`;
    one the config gives under both names keeps its own)."""
    return {**{FALCON_ALIASES[k]: v for k, v in text.items() if k in FALCON_ALIASES}, **text}


def falcon_kv_heads(text: dict, source: str, prefix: str = "") -> int:
    """KV heads of a Falcon text model ``text`` (:data:`FALCON_MODEL_TYPES`), as vLLM 0.32's ``FalconAttention``
    derives them: under ``new_decoder_architecture`` its ``num_kv_heads`` (``n_head_kv`` in the old RefinedWeb
    configs; absent, the query heads for ``falcon``, 1 for RefinedWeb), else 1 under ``multi_query`` (its class's
    default: true), else one per query head. RefinedWeb's ``RWConfig`` takes a ``hidden_size`` of 8192 as the new
    architecture (Falcon-40B). A flag that is not true or false, a bad head count, or query heads that do not split
    evenly into KV heads is a one-line :class:`UserError` naming ``source`` and the key (after ``prefix``)."""
    from ltrsched.errors import UserError

    text = falcon_names(text)
    refined_web = model_type(text) != "falcon"
    heads = config_size(text, "num_attention_heads", source, prefix)
    flags = {}
    for key, default in (("new_decoder_architecture", False), ("multi_query", True)):
        value = text.get(key, default)
        if not isinstance(value, bool):  # (vLLM takes any truthy value: the string "false" would be true)
            raise UserError(f"{source}: model config key {prefix + key!r} must be true or false, got {value!r}")
        flags[key] = value
    if flags["new_decoder_architecture"] or refined_web and text.get("hidden_size") == 8192:
        if text.get("num_kv_heads") is None:
            return 1 if refined_web else heads
        kv_heads = config_size(text, "num_kv_heads", source, prefix)
        if heads % kv_heads:
            raise UserError(f"{source}: {prefix}num_attention_heads {heads} is not a multiple of {prefix}num_kv_heads "
                            f"{kv_heads} (each KV head serves a whole group of query heads)")
        return kv_heads
    return 1 if flags["multi_query"] else heads


#: DBRX's sizes, which its config.json gives under its own names (transformers' ``DbrxConfig``: ``d_model``,
#: ``n_heads``, ``n_layers``; its ``attn_config`` and ``ffn_config`` objects), as vLLM 0.32's DBRX model reads them ->
#: the name ltrsched reads the size by: (object or None, key).
DBRX_SIZES = MappingProxyType({"hidden_size": (None, "d_model"), "num_attention_heads": (None, "n_heads"),
                               "num_hidden_layers": (None, "n_layers"),
                               "num_key_value_heads": ("attn_config", "kv_n_heads"),
                               "intermediate_size": ("ffn_config", "ffn_hidden_size"),
                               "moe_num_experts": ("ffn_config", "moe_num_experts")})


def dbrx_names(text: dict, source: str, prefix: str = "") -> dict:
    """A DBRX text model's config (``model_type`` ``dbrx``) with each size of :data:`DBRX_SIZES` also under the name
    ltrsched reads it by (its ``attn_config.kv_n_heads`` as ``num_key_value_heads``: vLLM's KV heads, each of
    ``d_model / n_heads``; its experts' width ``ffn_config.ffn_hidden_size`` as ``intermediate_size``), checked. A size
    the file leaves out (vLLM would take ``DbrxConfig``'s default: one KV head, four experts), an ``attn_config`` or
    ``ffn_config`` that is no object, or a size that is no positive integer is a one-line :class:`UserError` naming
    ``source`` and the key (after ``prefix``)."""
    from ltrsched.errors import UserError

    named = dict(text)
    for name, (inner, key) in DBRX_SIZES.items():
        where = text if inner is None else text.get(inner)
        if not isinstance(where, dict):
            raise UserError(f"{source}: DBRX's {prefix + inner!r} must be an object giving {key!r}, got {where!r}")
        named[name] = config_size(where, key, source, prefix + (f"{inner}." if inner else ""))
    return named


#: The environment variable that makes vLLM 0.32 serve latent-attention models without their latent (its
#: ``ModelConfig.use_mla`` is then false), read as vLLM reads it: ``bool(int(value))``.
MLA_DISABLE = "VLLM_MLA_DISABLE"

#: MLA model types whose vLLM 0.32 model, with :data:`MLA_DISABLE` set, keeps per-head keys and values instead of the
#: latent (``DeepseekV2Attention``, and its copies in ``glm4_moe_lite`` and ``AXK1``: one KV head per query head of
#: ``qk_nope_head_dim + qk_rope_head_dim``, V padded to it). The others build latent attention regardless, or fail.
MLA_PER_HEAD_MODEL_TYPES = frozenset({"deepseek_v2", "deepseek_v3", "kimi_k2", "glm4_moe_lite", "axk1"})


def mla_disabled() -> bool:
    """Whether :data:`MLA_DISABLE` is set in the environment as vLLM reads it (``bool(int(value))``; absent: false).
    A value that is no integer (vLLM's ``int()`` raised a ValueError traceback at its start) is a one-line
    :class:`UserError`."""
    import os

    from ltrsched.errors import UserError

    value = os.environ.get(MLA_DISABLE, "0")
    try:
        return bool(int(value))
    except ValueError:
        raise UserError(f"environment variable {MLA_DISABLE}={value!r} must be an integer (1: vLLM serves latent "
                        "attention with per-head keys and values; 0 or unset: with its latent)") from None


def latent_attention(text: dict) -> bool:
    """Whether vLLM 0.32 builds the text model ``text`` with multi-head latent attention where :data:`MLA_DISABLE` is
    not set (its ``is_deepseek_mla``, and ``use_mla``'s causal check)."""
    if model_type(text) not in MLA_MODEL_TYPES or text.get("compress_ratios") is not None:
        return False  # (DeepSeek-V4's compressed caches: sized by head_dim, not a latent)
    # (vLLM's bidirectional DeepSeek and an explicit null rank: its non-MLA path)
    return not (text.get("is_causal", True) is False or "kv_lora_rank" in text and text["kv_lora_rank"] is None)


#: Latent-attention model types whose config class always gives ``index_topk`` (transformers' ``GlmMoeDsaConfig``,
#: ``Glm5NextTextConfig``): vLLM 0.32 builds DeepSeek-V3.2's sparse-attention indexer wherever the text model has the
#: attribute (its ``hasattr(config, "index_topk")``), so for these types whatever the file says.
INDEXER_MODEL_TYPES = frozenset({"glm_moe_dsa", "glm5_next_text"})


def check_no_indexer(text: dict, source: str, prefix: str = "") -> None:
    """One-line :class:`UserError` naming ``source`` for a latent-attention text model ``text`` with DeepSeek-V3.2's
    sparse-attention indexer (``index_topk`` given, even null, or a type of :data:`INDEXER_MODEL_TYPES`): vLLM 0.32
    then keeps a second KV cache per layer, the indexer's keys (``index_head_dim`` bytes and their scales a token, in
    a group of its own), and on some GPUs stores the latent in its packed ``fp8_ds_mla`` layout (656 bytes a token
    and layer), which ltrsched does not size: its KV bytes and the context a stated cache bounds would be wrong."""
    from ltrsched.errors import UserError

    kind = model_type(text)
    if kind not in MLA_MODEL_TYPES or "index_topk" not in text and kind not in INDEXER_MODEL_TYPES:
        return
    raise UserError(f"{source}: its '{prefix}index_topk' makes vLLM keep the KV cache of DeepSeek-V3.2's sparse-"
                    "attention indexer beside the latent's (and on some GPUs the latent in its packed fp8_ds_mla "
                    "layout), which ltrsched does not size: it cannot serve or profile this model")


def mla_latent_size(text: dict, source: str, prefix: str = "") -> int | None:
    """Elements one token's KV takes in one layer of a model with multi-head latent attention, as vLLM 0.32 sizes its
    ``MLAAttentionSpec``: one latent of ``kv_lora_rank + qk_rope_head_dim`` shared by every head (no per-head keys
    and values, no separate V; replicated, not sharded, under tensor parallelism). None for a text model ``text``
    vLLM does not serve with MLA (another model type, no ``kv_lora_rank``, ``is_causal`` false, or :data:`MLA_DISABLE`
    set: :func:`mla_disabled_head`). A bad or missing ``qk_rope_head_dim`` or ``kv_lora_rank`` is a one-line
    :class:`UserError` naming ``source`` and the key (after ``prefix``), as is a model with DeepSeek-V3.2's indexer
    (:func:`check_no_indexer`)."""
    check_no_indexer(text, source, prefix)
    if not latent_attention(text) or mla_disabled():
        return None
    return config_size(text, "kv_lora_rank", source, prefix) + config_size(text, "qk_rope_head_dim", source, prefix)


def mla_disabled_head(text: dict, source: str, prefix: str = "") -> int | None:
    """The head size of the per-head attention vLLM 0.32 serves a latent-attention text model ``text`` with where
    :data:`MLA_DISABLE` is set: ``qk_nope_head_dim + qk_rope_head_dim``, keys and values for each of its
    ``num_attention_heads`` (sharded under tensor parallelism, as any KV head); None where ``text`` has no latent
    attention or the switch is off. A one-line :class:`UserError` naming ``source`` where vLLM's model has no such
    attention (:data:`MLA_PER_HEAD_MODEL_TYPES`; one with DeepSeek-V3.2's indexer asserts: :func:`check_no_indexer`),
    or a size is missing or bad."""
    from ltrsched.errors import UserError

    if not latent_attention(text) or not mla_disabled():
        return None
    kind = model_type(text)
    check_no_indexer(text, source, prefix)  # (vLLM's DeepseekV2Attention asserts it has no indexer)
    if kind not in MLA_PER_HEAD_MODEL_TYPES:
        raise UserError(f"{source}: {MLA_DISABLE} is set, but vLLM has no attention without the latent for its "
                        f"{kind!r} model, so ltrsched cannot size its KV cache: unset {MLA_DISABLE}")
    return config_size(text, "qk_nope_head_dim", source, prefix) + config_size(text, "qk_rope_head_dim", source,
                                                                               prefix)


def layer_kv_size(config, source: str = "model config") -> int:
    """Elements one token's KV takes in one decoder layer on one device, from the text model's sizes
    (:func:`text_model`, where vLLM reads them): a latent attention's latent (:func:`mla_latent_size`; with
    ``VLLM_MLA_DISABLE`` set, keys and values of a head per query head, :func:`mla_disabled_head`), else the keys
    and values of its KV heads, ``2 x num_key_value_heads x head_dim`` (``num_key_value_heads`` defaulting to
    ``num_attention_heads``, multi-head attention as in transformers; ChatGLM's ``multi_query_group_num`` where its
    ``multi_query_attention`` is set, :data:`KV_HEADS_KEYS`, Falcon's :func:`falcon_kv_heads`, DBRX's
    ``attn_config.kv_n_heads``: :func:`dbrx_names`; ``head_dim`` to ``hidden_size`` / heads, always for Falcon). A
    missing or bad size is a one-line :class:`UserError` naming ``source`` and the key."""
    text, prefix = text_model(config, source)
    latent = mla_latent_size(text, source, prefix)
    if latent is not None:
        return latent
    disabled_head = mla_disabled_head(text, source, prefix)
    if disabled_head is not None:  # (VLLM_MLA_DISABLE: a KV head per query head)
        return 2 * config_size(text, "num_attention_heads", source, prefix) * disabled_head
    if model_type(text) in FALCON_MODEL_TYPES:  # (RefinedWeb's names, as vLLM's RWConfig reads them)
        text = falcon_names(text)
    if model_type(text) == "dbrx":  # (its own names: d_model, n_heads, attn_config.kv_n_heads)
        text = dbrx_names(text, source, prefix)
    heads = config_size(text, "num_attention_heads", source, prefix)
    head_dim = (config_size(text, "head_dim", source, prefix) if text.get("head_dim") is not None
                else config_size(text, "hidden_size", source, prefix) // heads)
    if model_type(text) in FALCON_MODEL_TYPES:  # (vLLM's Falcon attention: its head size is always width / heads)
        kv_heads = falcon_kv_heads(text, source, prefix)
        head_dim = config_size(text, "hidden_size", source, prefix) // heads
    elif model_type(text) == "chatglm":  # (vLLM's ChatGLM attention: its KV groups only under multi-query)
        kv_heads = (config_size(text, "multi_query_group_num", source, prefix) if text.get("multi_query_attention")
                    else heads)
    elif model_type(text) in KV_HEADS_KEYS:
        kv_heads = config_size(text, KV_HEADS_KEYS[text["model_type"]], source, prefix)
        head_dim = config_size(text, "head_dim", source, prefix)  # (its class's default is no hidden_size / heads)
    elif text.get("num_key_value_heads") is not None:
        kv_heads = config_size(text, "num_key_value_heads", source, prefix)
    else:
        kv_heads = heads
    return 2 * kv_heads * head_dim


def kv_bytes_per_token(config, dtype_bytes: int, source: str = "model config") -> int:
    """KV-cache bytes one token takes on one device (every layer's :func:`layer_kv_size`), at ``dtype_bytes``
    bytes per element; a missing or bad size is a one-line :class:`UserError` naming ``source`` and the key."""
    per_layer = layer_kv_size(config, source)
    return layer_count(config, source) * per_layer * dtype_bytes


#: What vLLM 0.32 names the KV dtype a ModelOpt checkpoint's ``kv_cache_quant_algo`` gives (lowercased) -> its name.
MODELOPT_KV_DTYPES = MappingProxyType({"fp8": "fp8_e4m3", "nvfp4": "nvfp4"})


#: ModelOpt ``quant_algo`` names (upper-cased) vLLM 0.32 gives a ModelOpt checkpoint's quantization config the
#: ``quant_method`` of (its ``_normalize_quantization_config``); any other algorithm it refuses at its start.
MODELOPT_QUANT_METHODS = MappingProxyType({"FP8": "modelopt", "FP8_PER_CHANNEL_PER_TOKEN": "modelopt",
                                           "FP8_PB_WO": "modelopt", "NVFP4": "modelopt_fp4"})


def quant_method(quant, source: str) -> str | None:
    """The ``quant_method`` vLLM 0.32 reads from a model's quantization config ``quant`` (config.json's
    ``quantization_config``, else its directory's ``hf_quant_config.json``; None: none, and None is returned), as its
    ``_normalize_quantization_config`` rewrites it before anything reads it: a ModelOpt checkpoint's (``producer``'s
    ``name`` ``modelopt``, or a ``quantization`` dict with ``modelopt_quant_config``: the files ModelOpt writes carry no
    ``quant_method``) from its ``quantization``'s ``quant_algo`` (:data:`MODELOPT_QUANT_METHODS`; none given: the
    file's own), then lowercased, ``compressed_tensors`` spelled ``compressed-tensors``; "" where none is given.
    A config vLLM fails reading (no object, a ``producer`` or ModelOpt ``quantization`` that is no object, a
    ``quant_method`` that is no string, a ModelOpt ``quant_algo`` it does not know: a traceback at its start) is a
    one-line :class:`UserError` naming ``source``."""
    from ltrsched.errors import UserError

    if quant is None:
        return None
    if not isinstance(quant, dict):  # (vLLM reads it with .get: an AttributeError traceback)
        raise UserError(f"{source}: its quantization config must be an object, got {quant!r}")
    producer = quant.get("producer", {})
    if not isinstance(producer, dict):
        raise UserError(f"{source}: quantization_config's 'producer' must be an object, got {producer!r}")
    inner = quant.get("quantization", {})
    method = quant.get("quant_method", "")
    if producer.get("name") == "modelopt" or isinstance(inner, dict) and "modelopt_quant_config" in inner:
        if not isinstance(inner, dict):
            raise UserError(f"{source}: quantization_config's 'quantization' must be an object, got {inner!r}")
        algo = inner.get("quant_algo")
        if algo is not None:
            if str(algo).upper() not in MODELOPT_QUANT_METHODS:
                raise UserError(f"{source}: quantization_config's ModelOpt 'quant_algo' {algo!r} is none vLLM 0.32 "
                                f"knows ({', '.join(MODELOPT_QUANT_METHODS)}): it refuses the model at its start")
            method = MODELOPT_QUANT_METHODS[str(algo).upper()]
    if not isinstance(method, str):
        raise UserError(f"{source}: quantization_config's 'quant_method' must be a string, got {method!r}")
    return method.lower().replace("compressed_tensors", "compressed-tensors")


#: Where a model's config.json may give the quantization config vLLM 0.32 builds its layers with, besides its
#: top-level ``quantization_config``: older compressed-tensors checkpoints' ``compression_config``.
COMPRESSION_CONFIG = "compression_config"


def layers_quantization_config(model: dict, top, source: str):
    """The quantization config vLLM 0.32 builds the model's layers with (its ``get_quant_config``; the method it checks
    them by, its ``get_quantization_config``, agrees), for config.json ``model`` whose top-level one is ``top``
    (``quantization_config``, else the directory's hf_quant_config.json; None: none): ``top``, else a composite model's
    ``text_config.quantization_config``, else ``model``'s :data:`COMPRESSION_CONFIG` (older compressed-tensors
    checkpoints); None where none is given. A one-line :class:`UserError` naming ``source`` where vLLM takes the method
    from one config and the layers' settings from another or none (a ``compression_config`` beside a
    ``text_config.quantization_config``; a ``text_config.compression_config`` alone)."""
    from ltrsched.errors import UserError

    if top is not None:
        return top
    text = model.get("text_config") if isinstance(model.get("text_config"), dict) else {}
    inner, compressed = text.get("quantization_config"), model.get(COMPRESSION_CONFIG)
    if inner is not None and compressed is not None:
        raise UserError(f"{source}: vLLM 0.32 reads its quantization method from '{COMPRESSION_CONFIG}' and builds "
                        "its layers from 'text_config.quantization_config': give one of them")
    if inner is None and compressed is None and text.get(COMPRESSION_CONFIG) is not None:
        raise UserError(f"{source}: vLLM 0.32 reads its quantization method from 'text_config.{COMPRESSION_CONFIG}' "
                        "but builds no layer from it (it fails at its start): give it as the top-level "
                        f"'{COMPRESSION_CONFIG}' or 'quantization_config'")
    return inner if inner is not None else compressed


def compressed_tensors_kv_cache(layers, source: str) -> bool:
    """Whether vLLM 0.32 keeps the KV cache in FP8 (one byte an element) for the layers' quantization config
    ``layers`` (:func:`layers_quantization_config`) where ``--kv-cache-dtype`` is ``auto``: a compressed-tensors
    config's ``kv_cache_scheme`` (not null; its ``Attention`` then sets the cache dtype to ``fp8``). A scheme vLLM
    refuses at its start (not 8-bit float, not symmetric, a strategy other than ``tensor`` or ``attn_head``: its
    ``validate_kv_cache_scheme``) is a one-line :class:`UserError` naming ``source``."""
    from ltrsched.errors import UserError

    if quant_method(layers, source) != "compressed-tensors" or layers.get("kv_cache_scheme") is None:
        return False
    scheme = layers["kv_cache_scheme"]
    if not (isinstance(scheme, dict) and scheme.get("type") == "float" and scheme.get("num_bits") == 8
            and scheme.get("strategy") in ("tensor", "attn_head") and scheme.get("symmetric")):
        raise UserError(f"{source}: its compressed-tensors 'kv_cache_scheme' must be a symmetric 8-bit float scheme "
                        f"per tensor or attention head, as vLLM 0.32 serves (it refuses others at its start), got "
                        f"{scheme!r}")
    return True


def kv_cache_dtype(quant, source: str, layers=...) -> str:
    """The KV-cache dtype vLLM 0.32 resolves ``--kv-cache-dtype auto`` to (ltrsched never passes another) for a model
    whose quantization config is ``quant`` (config.json's ``quantization_config``, else its directory's
    ``hf_quant_config.json``; None: none): a ModelOpt checkpoint's (its :func:`quant_method` starting ``modelopt``:
    given, or as vLLM derives it for the files ModelOpt writes without one) ``kv_cache_scheme`` or
    ``kv_cache_quant_algo``, under its ``quantization`` dict or beside it, as a name (:data:`MODELOPT_KV_DTYPES`) or a
    scheme dict (static 8-bit float: ``fp8_e4m3``; 4-bit float: ``nvfp4``); else ``auto`` (the model's dtype), as
    vLLM falls back for a name it does not know (its ``resolve_kv_cache_dtype_string``).
    A config vLLM cannot read (:func:`quant_method`), or a ``quantization`` of another type than it reads (a traceback
    at its start), is a one-line :class:`UserError` naming ``source``. Where ``quant`` names no ModelOpt KV dtype, the
    layers' quantization config ``layers`` (:func:`layers_quantization_config`; by default ``quant``) makes the cache
    ``fp8`` where it is compressed-tensors' with a ``kv_cache_scheme`` (:func:`compressed_tensors_kv_cache`)."""
    from ltrsched.errors import UserError

    method = quant_method(quant, source)
    layers = quant if layers is ... else layers
    if method is None or not method.startswith("modelopt"):
        return "fp8" if layers is not None and compressed_tensors_kv_cache(layers, source) else "auto"
    inner = quant.get("quantization", quant)
    if not isinstance(inner, dict):
        raise UserError(f"{source}: quantization_config's 'quantization' must be an object, got {inner!r}")
    algo = next((value for value in (inner.get("kv_cache_scheme"), quant.get("kv_cache_scheme"),
                                     inner.get("kv_cache_quant_algo"), quant.get("kv_cache_quant_algo")) if value),
                None)
    if isinstance(algo, dict):
        if algo.get("dynamic") is False and algo.get("num_bits") == 8 and algo.get("type") == "float":
            return MODELOPT_KV_DTYPES["fp8"]
        return MODELOPT_KV_DTYPES["nvfp4"] if algo.get("num_bits") == 4 and algo.get("type") == "float" else "auto"
    return MODELOPT_KV_DTYPES.get(algo.lower(), "auto") if isinstance(algo, str) else "auto"


def kv_element_bytes(kv_dtype: str, dtype_bytes: int, source: str) -> int:
    """Bytes one KV element takes in a cache of vLLM's ``kv_dtype`` (:func:`kv_cache_dtype`), ``dtype_bytes`` for
    ``auto`` (the served dtype's); one for an 8-bit float. NVFP4 (packed 4-bit values with scales per group, sized by
    vLLM's own layout) is a one-line :class:`UserError` naming ``source``: ltrsched does not size it."""
    from ltrsched.errors import UserError

    if kv_dtype == "auto":
        return dtype_bytes
    if kv_dtype.startswith("fp8"):
        return 1
    raise UserError(f"{source}: its quantization config makes vLLM keep the KV cache as {kv_dtype} (packed 4-bit "
                    "values and their scales), which ltrsched does not size: it cannot serve or profile this model")


def _own_dtype(config: dict):
    """A config's dtype: ``torch_dtype``, or ``dtype`` (the name transformers 5 writes, and vLLM reads either)."""
    return config.get("torch_dtype") or config.get("dtype")


def config_dtype(config) -> str | None:
    """The dtype a model config gives (``torch_dtype``, or transformers 5's ``dtype``): the config's own, else (a
    composite model) its text model's, as vLLM falls back; None if neither gives one. vLLM's ``dtype="auto"``
    serves a float32 one at 16 bits (:func:`ltrsched.engine.config.served_dtype`)."""
    text = config.get("text_config")
    return _own_dtype(config) or (_own_dtype(text) if isinstance(text, dict) else None)
