"""KV-cache capacity from a Hugging Face style model config (``config.json`` as a dict).

The arithmetic vLLM 0.4 does at start-up, written out so the simulator can derive the number of KV
blocks for a model, a GPU and a tensor-parallel degree:

    blocks = floor((gpu_memory * utilization - weights_per_gpu - activation_reserve)
                   / (kv_bytes_per_token_per_gpu * block_size))

Units: bytes, tokens, blocks (of ``block_size`` tokens). Tensor parallelism shards attention heads,
MLP columns/rows and the (vocab-parallel) embedding and LM head across GPUs; RMSNorm weights are
replicated; KV heads are sharded while ``num_key_value_heads >= tp`` and replicated (one per GPU)
beyond that, as in vLLM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ltrsched.config_classes import kv_layout_refusal, layers_refusal
from ltrsched.errors import UserError
from ltrsched.policies.limit_rules import memory_fraction
from ltrsched.sim.decoder_layouts import QK_HEAD, QK_PER_HEAD, QK_WHOLE, DecoderLayout, decoder_layout
from ltrsched.sim.weight_storage import WeightStorage, weight_storage

#: bytes per element of the ``torch_dtype`` names found in HF configs.
DTYPE_BYTES: dict[str, int] = {
    "float32": 4,
    "float": 4,
    "bfloat16": 2,
    "float16": 2,
    "half": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "int8": 1,
}

#: memory a GPU process holds outside PyTorch tensors (CUDA context, cuBLAS workspace) [bytes].
NON_TORCH_BYTES = 768 * 2**20
#: extra non-torch memory with tensor parallelism (NCCL buffers, custom all-reduce buffers) [bytes].
NON_TORCH_BYTES_TP = 512 * 2**20

#: Largest size a model config may give (layers, widths, heads, vocabulary) [elements]: real models stay below
#: 2^20; a JSON integer has no limit, and one beyond a float's range (10**400) broke the swap-space arithmetic.
MAX_CONFIG_SIZE = 1 << 31

REQUIRED_KEYS = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "intermediate_size",
    "torch_dtype",
)
#: How a profile's refusal of a model config whose text model cannot be told ends.
PROFILE_FIX = "the simulator sizes a profile's KV cache from the text model's sizes: give them at the config's top level"


@dataclass(frozen=True)
class LatentProjections:
    """The projections of a multi-head latent attention layer (DeepSeek-V2/V3's, as vLLM 0.32 builds them) [elements].

    Attributes:
        q_lora_rank: width of the query's low-rank compression (0: none, the query projected from the hidden state).
        kv_lora_rank: width of the keys' and values' shared latent.
        qk_nope_head_dim, qk_rope_head_dim: each query and key head's parts without and with RoPE.
        v_head_dim: each value head's width.
    """

    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a Llama-style decoder that memory arithmetic needs.

    Attributes:
        num_layers: decoder layers.
        hidden_size: model width [elements].
        num_heads: query heads.
        num_kv_heads: key/value heads (grouped-query attention when < num_heads).
        head_dim: elements per head.
        vocab_size: tokens in the vocabulary.
        intermediate_size: MLP width [elements] (gated MLP: gate, up and down projections).
        dtype_bytes: bytes per weight, and per KV element unless ``kv_dtype_bytes`` says otherwise.
        tie_word_embeddings: the LM head shares the embedding matrix.
        kv_latent: elements one token's KV takes per layer under multi-head latent attention (DeepSeek-V2/V3's
            ``kv_lora_rank + qk_rope_head_dim``, :func:`ltrsched.models.mla_latent_size`: one latent for every head,
            replicated under tensor parallelism, as vLLM sizes it); None where each KV head keeps its keys and values
            (also for such a model where ``VLLM_MLA_DISABLE`` is set, as vLLM then serves it: a KV head per query head
            of ``qk_nope_head_dim + qk_rope_head_dim``, :func:`ltrsched.models.mla_disabled_head`).
        kv_dtype_bytes: bytes per KV element where vLLM keeps the KV cache in another dtype than the weights (a
            ModelOpt checkpoint's FP8 KV cache, resolved from its ``quantization_config`` as vLLM resolves
            ``--kv-cache-dtype auto``: :func:`ltrsched.models.kv_cache_dtype`); None: ``dtype_bytes``.
        latent: the attention's projections where it is a multi-head latent attention (DeepSeek-V2/V3: query and
            key-value compressions, per-head up-projections), which its weights are made of instead of per-head
            query, key, value and output projections; None for those.
        moe_layers: layers whose MLP is a mixture of experts (DeepSeek's from ``first_k_dense_replace`` on, every
            ``moe_layer_freq``-th; Qwen2/3-MoE's every ``decoder_sparse_step``-th but ``mlp_only_layers``; Mixtral's,
            DBRX's and OLMoE's every layer); the others keep the gated MLP of ``intermediate_size``.
        num_experts: routed experts of each such layer (``n_routed_experts``, Qwen-MoE's and OLMoE's ``num_experts``,
            Mixtral's ``num_local_experts``, DBRX's ``ffn_config.moe_num_experts``), each a gated MLP of
            ``expert_intermediate_size`` (``moe_intermediate_size``; Mixtral's and OLMoE's ``intermediate_size``,
            DBRX's ``ffn_config.ffn_hidden_size``), beside a router of one weight per expert and hidden element.
        shared_intermediate_size: the width of the experts every token passes through in such a layer (DeepSeek's
            ``n_shared_experts`` x ``moe_intermediate_size``, Qwen-MoE's ``shared_expert_intermediate_size``)
            [elements].
        shared_expert_gate: a replicated gate of one weight per hidden element beside the shared experts of each
            such layer (Qwen2-MoE's always, Qwen3-MoE's where it has shared experts).
        layout: what the layers are made of besides the attention projections and the MLP (biases, norms, the MLP's
            gate, the LM head's bias), as vLLM builds the model type
            (:func:`~ltrsched.sim.decoder_layouts.decoder_layout`).
        weight_storage: how the decoder's linear weights are stored where its quantization config quantizes them
            (:func:`~ltrsched.sim.weight_storage.weight_storage`); None: at ``dtype_bytes``.
        weights_refused: where the quantization's stored weights are not counted here, the weight estimate's one-line
            refusal.
        weights_unknown: where the config's layout of experts is not one read here (``num_experts`` of another model
            type than Qwen2/3-MoE, ``block_configs``), the key saying so: the weight and activation estimates refuse it.
        layout_refused: where the model type's layers are not read here (:data:`~ltrsched.sim.decoder_layouts.READERS`),
            the weight and activation estimates' one-line refusal naming it.
    """

    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    dtype_bytes: int
    tie_word_embeddings: bool = False
    kv_latent: int | None = None
    kv_dtype_bytes: int | None = None
    latent: LatentProjections | None = None
    moe_layers: int = 0
    num_experts: int = 0
    expert_intermediate_size: int = 0
    shared_intermediate_size: int = 0
    shared_expert_gate: bool = False
    layout: DecoderLayout = DecoderLayout()
    weight_storage: WeightStorage | None = None
    weights_refused: str | None = None
    weights_unknown: str | None = None
    layout_refused: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str = "model config") -> "ModelShape":
        """Read and check the sizes of an HF-style config; a missing or bad key raises a one-line UserError.

        The sizes are the text model's, where vLLM reads them (its ``hf_text_config``): a composite (multimodal)
        model's ``text_config``, found as the engine side finds it (:func:`ltrsched.models.text_model`), else the
        config itself; the dtype is the config's own ``torch_dtype``, else its text model's, as vLLM falls back
        (:func:`ltrsched.models.config_dtype`). A hybrid or attention-free model (Jamba, Qwen3-Next, Mamba, ...:
        :data:`ltrsched.config_classes.HYBRID_MODEL_TYPES`), whose cache vLLM sizes otherwise, is refused, as is a GPT-NeoX
        whose ``num_key_value_heads`` is not its head count (:func:`ltrsched.config_classes.ignored_kv_heads_refusal`),
        and one whose architecture the installed vLLM serves as a pooling model, not for generation, or whose type's
        base class it pools where the config names no architectures (:func:`ltrsched.architectures.check_generative`;
        where vLLM is not installed, only what the architecture's suffix tells)."""
        from ltrsched.models import (FALCON_MODEL_TYPES, KV_HEADS_KEYS, config_dtype, dbrx_names, falcon_kv_heads,
                                     falcon_names, kv_cache_dtype, kv_element_bytes, layers_quantization_config,
                                     mla_disabled_head, mla_latent_size, model_type, text_model)

        if not isinstance(config, Mapping):
            raise UserError(f"{source}: model config must be a JSON object, got {type(config).__name__}")
        from ltrsched.architectures import check_generative

        check_generative(dict(config), source)  # (a pooling model: vLLM serves it with no KV cache to schedule)
        text, prefix = text_model(dict(config), source, fix=PROFILE_FIX)
        layout = kv_layout_refusal(dict(config), text, source, prefix, "the simulator cannot size its KV cache")
        if layout is not None:
            raise UserError(layout)
        if model_type(text) in KV_HEADS_KEYS and KV_HEADS_KEYS[model_type(text)] in text:
            text = {**text, "num_key_value_heads": text[KV_HEADS_KEYS[text["model_type"]]]}  # (its KV heads' key)
        disabled_head = mla_disabled_head(text, source, prefix)
        if disabled_head is not None:  # (VLLM_MLA_DISABLE: latent attention served with a KV head per query head)
            text = {**text, "num_key_value_heads": text["num_attention_heads"], "head_dim": disabled_head}
        if model_type(text) in FALCON_MODEL_TYPES:  # (its KV heads as vLLM's Falcon attention derives them)
            text = {**falcon_names(text), "num_key_value_heads": falcon_kv_heads(text, source, prefix)}
        if model_type(text) == "dbrx":  # (its own names: d_model, n_heads, attn_config.kv_n_heads, ffn_config)
            text = dbrx_names(text, source, prefix)
        if text.get("head_dim") is None:  # (null: vLLM's width / heads, as absent)
            text = {k: v for k, v in text.items() if k != "head_dim"}
        class_tied = _check_class_defaults(text, source, prefix)
        if text.get("num_key_value_heads") is None and isinstance(text.get("num_attention_heads"), int):
            # (multi-head attention: LlamaConfig, and vLLM, take a KV head per query head)
            text = {**text, "num_key_value_heads": text["num_attention_heads"]}
        for key in REQUIRED_KEYS[:-1]:
            if key not in text:
                raise UserError(f"{source}: model config lacks key {prefix + key!r}")
        ints = {}
        for key in REQUIRED_KEYS[:-1] + ("head_dim",):
            if key not in text:
                continue
            value = text[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(f"{source}: model config key {prefix + key!r} must be a positive integer, got "
                                f"{value!r}")
            if value > MAX_CONFIG_SIZE:
                raise UserError(f"{source}: model config key {prefix + key!r} is more than the largest plausible "
                                f"size {MAX_CONFIG_SIZE:,}")
            ints[key] = value
        too_deep = layers_refusal(ints["num_hidden_layers"], source, prefix + "num_hidden_layers")
        if too_deep is not None:
            raise UserError(too_deep)
        dtype = config_dtype(config)
        if dtype is None:
            raise UserError(f"{source}: model config lacks key 'torch_dtype'")
        if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:  # (a list or object is unhashable)
            raise UserError(f"{source}: model config key 'torch_dtype' must be one of {sorted(DTYPE_BYTES)}, "
                            f"got {dtype!r}")
        heads = ints["num_attention_heads"]
        head_dim = ints.get("head_dim")
        if head_dim is None:
            if ints["hidden_size"] % heads:
                raise UserError(f"{source}: {prefix}hidden_size {ints['hidden_size']} is not a multiple of "
                                f"{prefix}num_attention_heads {heads}; give {prefix}head_dim")
            head_dim = ints["hidden_size"] // heads
        if heads % ints["num_key_value_heads"]:
            raise UserError(f"{source}: {prefix}num_attention_heads {heads} is not a multiple of "
                            f"{prefix}num_key_value_heads {ints['num_key_value_heads']}")
        tied = text.get("tie_word_embeddings", config.get("tie_word_embeddings", class_tied))
        if not isinstance(tied, bool):  # bool("false") is True
            raise UserError(f"{source}: model config key 'tie_word_embeddings' must be true or false, got {tied!r}")
        kind = model_type(text)
        layout = decoder_layout(text, kind, source, prefix)
        if isinstance(layout, DecoderLayout) and layout.tied is not None:  # (vLLM's model ties, or never does)
            tied = layout.tied
        experts = _experts(text, ints["num_hidden_layers"], ints["intermediate_size"], source, prefix)
        _note_sliding_window(text, source, prefix)
        quant = config.get("quantization_config")  # (where vLLM reads a ModelOpt KV dtype)
        layers = layers_quantization_config(dict(config), quant, source)  # (or text_config's, compression_config)
        storage = weight_storage(layers, DTYPE_BYTES[dtype], source)
        return cls(
            num_layers=ints["num_hidden_layers"],
            hidden_size=ints["hidden_size"],
            num_heads=heads,
            num_kv_heads=ints["num_key_value_heads"],
            head_dim=head_dim,
            vocab_size=ints["vocab_size"],
            intermediate_size=ints["intermediate_size"],
            dtype_bytes=DTYPE_BYTES[dtype],
            tie_word_embeddings=tied,
            kv_latent=mla_latent_size(text, source, prefix),
            kv_dtype_bytes=kv_element_bytes(kv_cache_dtype(quant, source, layers),
                                            DTYPE_BYTES[dtype], source),
            latent=_latent_projections(text, source, prefix),
            layout=layout if isinstance(layout, DecoderLayout) else DecoderLayout(),
            layout_refused=layout if isinstance(layout, str) else None,
            weight_storage=storage if isinstance(storage, WeightStorage) else None,
            weights_refused=storage if isinstance(storage, str) else None,
            **experts,
        )

    def check_tp(self, tp: int) -> None:
        """Raise UserError unless ``tp`` GPUs can shard this model evenly."""
        if isinstance(tp, bool) or not isinstance(tp, int) or tp <= 0:
            raise UserError(f"tensor-parallel size must be a positive integer, got {tp!r}")
        if self.num_heads % tp or self.intermediate_size % tp:
            raise UserError(f"tensor-parallel size {tp} does not divide num_attention_heads {self.num_heads} "
                            f"and intermediate_size {self.intermediate_size}")

    def kv_heads_per_gpu(self, tp: int) -> int:
        """KV heads each GPU stores: sharded, or replicated once there are more GPUs than KV heads."""
        return max(1, self.num_kv_heads // tp)


#: Model types whose transformers config class takes the defaults assumed here for a size the file leaves out (a KV
#: head per query head, ``hidden_size / num_attention_heads`` a head, an LM head of its own): LlamaConfig's.
_LLAMA_DEFAULTS_MODEL_TYPES = frozenset({"llama"})


def _check_class_defaults(text: Mapping[str, Any], source: str, prefix: str) -> bool:
    """The ``tie_word_embeddings`` the config class vLLM reads the text model ``text``'s type through takes where the
    file leaves it out (:func:`ltrsched.config_classes.class_defaults`; false where it is not known); a one-line
    UserError where the file leaves out ``num_key_value_heads`` or ``head_dim`` (null: left out) and that class would
    take a default of its own rather than one KV head per query head or ``hidden_size / num_attention_heads``
    (Mistral's 8 KV heads, Gemma's heads of 256): a model of other sizes than the file's. A model type without
    ``model_type``, or a Llama's, takes LlamaConfig's defaults, assumed here without reading its class."""
    from ltrsched.config_classes import class_defaults
    from ltrsched.models import MLA_MODEL_TYPES, model_type

    kind = model_type(dict(text))
    absent = [key for key in ("num_key_value_heads", "head_dim", "tie_word_embeddings") if text.get(key) is None]
    if kind is None or kind in _LLAMA_DEFAULTS_MODEL_TYPES or not absent:
        return False
    aliases, defaults, config_class = class_defaults(kind, tuple(absent))
    for key in absent:
        if key == "tie_word_embeddings" or key == "head_dim" and kind in MLA_MODEL_TYPES:
            continue  # (a default read, not refused; a latent attention's heads are not sized by head_dim)
        if defaults.get(key) is not None:
            raise UserError(f"{source}: model config lacks key {prefix + aliases.get(key, key)!r}: {config_class} "
                            f"(through which vLLM reads it) would take its default {defaults[key]!r}, a size of "
                            "another model: add the model's own")
    return defaults.get("tie_word_embeddings") is True


#: Model types whose vLLM 0.32 model builds chunked local attention where ``attention_chunk_size`` is set (Llama-4's).
CHUNKED_ATTENTION_MODEL_TYPES = frozenset({"llama4", "llama4_text"})


def _note_sliding_window(text: Mapping[str, Any], source: str, prefix: str) -> None:
    """A ``note:`` line on stderr (once a command: :class:`ltrsched.notices.Notices`) where the text model ``text`` has
    sliding-window layers (a positive ``sliding_window``, not switched off by ``use_sliding_window``, either the config
    class's default where the file leaves it out, as vLLM reads them: Mistral's every layer, Gemma-2/3's and Qwen2's
    some) or chunked local attention (Llama-4's ``attention_chunk_size``): the simulator keeps every layer's KV for a
    request's whole context, which is vLLM 0.32's count for requests within the window (its KV groups of equal size:
    a padded group aside), not beyond it, where vLLM keeps only the window in those layers and holds more long requests
    than simulated. A window or chunk that is no whole number of tokens (``"4096"``, NaN) is a one-line UserError
    naming ``source``."""
    import sys

    from ltrsched.config_classes import class_defaults, class_names_none_of

    kind = text.get("model_type") if isinstance(text.get("model_type"), str) else None
    absent = tuple(key for key in ("sliding_window", "use_sliding_window") if key not in text)
    if kind and absent and class_names_none_of(kind, absent):  # (Llama's: no import of transformers, seconds)
        absent = ()
    given = {**(class_defaults(kind, absent)[1] if kind and absent else {}), **text}  # (the class's where left out)
    window, chunk = given.get("sliding_window"), text.get("attention_chunk_size")
    for key, value in (("sliding_window", window), ("attention_chunk_size", chunk)):
        if value is not None and (type(value) is not int or value < 0):  # (transformers' classes refuse it)
            raise UserError(f"{source}: model config key {prefix + key!r} must be a whole number of tokens or null, "
                            f"got {value!r}")
    named = kind or "profile's"
    # (no source named: the same model read as a file's model_config and as a profile is one note)
    if given.get("use_sliding_window") is not False and type(window) is int and window > 0:
        print(f"note: a {named} model's {window:,}-token sliding window is not simulated: every layer keeps KV for a "
              "request's whole context (vLLM's count for requests within the window; beyond it vLLM keeps only the "
              "window in sliding layers, and holds more long requests than simulated)", file=sys.stderr)
    if kind in CHUNKED_ATTENTION_MODEL_TYPES and type(chunk) is int and chunk > 0:
        print(f"note: a {named} model's {chunk:,}-token chunked local attention is not simulated: every layer keeps KV "
              "for a request's whole context (vLLM's count for requests within one chunk; beyond it vLLM keeps only "
              "the current chunk in those layers, and holds more long requests than simulated)", file=sys.stderr)


def _optional_size(text: Mapping[str, Any], key: str, source: str, prefix: str, default: int | None = None) -> int:
    """``text[key]``, a non-negative integer (null: 0); ``default`` where absent (None: a one-line UserError)."""
    if key not in text and default is not None:
        return default
    if key not in text:
        raise UserError(f"{source}: model config lacks key {prefix + key!r}")
    value = text[key] if text[key] is not None else 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CONFIG_SIZE:
        raise UserError(f"{source}: model config key {prefix + key!r} must be a non-negative integer, got {value!r}")
    return value


def _latent_projections(text: Mapping[str, Any], source: str, prefix: str) -> LatentProjections | None:
    """The latent attention's projections of a text model vLLM builds with one
    (:func:`ltrsched.models.latent_attention`: the same weights with ``VLLM_MLA_DISABLE`` set); None for any other."""
    from ltrsched.models import config_size, latent_attention

    if not latent_attention(dict(text)):
        return None
    return LatentProjections(q_lora_rank=_optional_size(text, "q_lora_rank", source, prefix),
                             **{key: config_size(text, key, source, prefix)
                                for key in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")})


#: Keys of other layouts of experts than those read here (vLLM's ``get_num_experts`` reads them too): ``num_experts``
#: of another model type than :data:`QWEN_MOE_MODEL_TYPES` and OLMoE (Jamba's, Qwen3-Next's: other layers around them).
OTHER_EXPERT_KEYS = ("num_experts", "moe_num_experts", "block_configs")
#: Model types whose experts are Qwen-MoE's (``num_experts`` of ``moe_intermediate_size``, shared ones of
#: ``shared_expert_intermediate_size`` behind a one-output gate), placed as vLLM 0.32's ``qwen2_moe`` / ``qwen3_moe``.
QWEN_MOE_MODEL_TYPES = frozenset({"qwen2_moe", "qwen3_moe"})


def _qwen_moe_layers(text: Mapping[str, Any], layers: int, source: str, prefix: str) -> int:
    """Layers vLLM 0.32's Qwen2/3-MoE model gives experts: layer i unless in ``mlp_only_layers`` (class default: none),
    where ``(i + 1) % decoder_sparse_step == 0`` (class default 1)."""
    from ltrsched.models import config_size

    step = config_size(text, "decoder_sparse_step", source, prefix) if "decoder_sparse_step" in text else 1
    dense = text.get("mlp_only_layers") or []
    if not isinstance(dense, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in dense):
        raise UserError(f"{source}: model config key {prefix + 'mlp_only_layers'!r} must be a list of layer numbers, "
                        f"got {text.get('mlp_only_layers')!r}")
    return sum(1 for i in range(layers) if i not in dense and (i + 1) % step == 0)


def _experts(text: Mapping[str, Any], layers: int, intermediate: int, source: str, prefix: str) -> dict[str, Any]:
    """:class:`ModelShape`'s mixture-of-experts fields of a text model: DeepSeek's (``n_routed_experts`` of
    ``moe_intermediate_size`` from layer ``first_k_dense_replace`` on, every ``moe_layer_freq``-th, with
    ``n_shared_experts`` shared ones, as vLLM's DeepSeek-V2 model places them), Qwen2/3-MoE's (``num_experts`` of
    ``moe_intermediate_size``, shared ones of ``shared_expert_intermediate_size``, :func:`_qwen_moe_layers`), OLMoE's
    (``num_experts`` of ``intermediate_size`` in every layer), Mixtral's (``num_local_experts`` of
    ``intermediate_size`` in every layer), DBRX's (``ffn_config``'s ``moe_num_experts`` of ``ffn_hidden_size`` in every
    layer, read by :func:`ltrsched.models.dbrx_names`), or, for another layout, only the key that names it
    (``weights_unknown``)."""
    from ltrsched.models import config_size, model_type

    kind = model_type(dict(text))
    if text.get("n_routed_experts") is not None:
        width = _optional_size(text, "moe_intermediate_size", source, prefix)
        first = _optional_size(text, "first_k_dense_replace", source, prefix)
        every = config_size(text, "moe_layer_freq", source, prefix) if "moe_layer_freq" in text else 1
        return {"moe_layers": sum(1 for i in range(layers) if i >= first and i % every == 0),
                "num_experts": _optional_size(text, "n_routed_experts", source, prefix),
                "expert_intermediate_size": width,
                "shared_intermediate_size": _optional_size(text, "n_shared_experts", source, prefix) * width}
    if kind in QWEN_MOE_MODEL_TYPES:
        experts = _optional_size(text, "num_experts", source, prefix)
        # (Qwen2-MoE's class default is 5632: a file without it is refused; Qwen3-MoE's model reads none as 0)
        shared = _optional_size(text, "shared_expert_intermediate_size", source, prefix,
                                default=0 if kind == "qwen3_moe" else None)
        return {"moe_layers": _qwen_moe_layers(text, layers, source, prefix) if experts else 0, "num_experts": experts,
                "expert_intermediate_size": _optional_size(text, "moe_intermediate_size", source, prefix),
                "shared_intermediate_size": shared, "shared_expert_gate": kind == "qwen2_moe" or shared > 0}
    if kind == "dbrx":  # (names given by dbrx_names; its experts in every layer)
        return {"moe_layers": layers, "num_experts": text["moe_num_experts"], "expert_intermediate_size": intermediate}
    if kind == "olmoe":  # (OLMoE: num_experts of intermediate_size in every layer, no shared experts)
        return {"moe_layers": layers, "num_experts": config_size(text, "num_experts", source, prefix),
                "expert_intermediate_size": intermediate}
    if text.get("num_local_experts") or kind == "mixtral":  # (Mixtral's class default: 8 experts, another model's)
        return {"moe_layers": layers, "num_experts": config_size(text, "num_local_experts", source, prefix),
                "expert_intermediate_size": intermediate}
    unknown = next((key for key in OTHER_EXPERT_KEYS if text.get(key)), None)
    return {"weights_unknown": prefix + unknown} if unknown else {}


def _shape(config: Mapping[str, Any] | ModelShape) -> ModelShape:
    return config if isinstance(config, ModelShape) else ModelShape.from_config(config)


def _check_estimable(m: ModelShape, what: str) -> None:
    """One-line UserError where ``what`` (an estimate) would take the model for a dense one."""
    if m.weights_unknown is not None:
        raise UserError(f"the {what} of a model config with {m.weights_unknown!r} (a layout of experts ltrsched does "
                        "not read: it reads DeepSeek's n_routed_experts, Qwen2/3-MoE's and OLMoE's num_experts, "
                        "Mixtral's num_local_experts and DBRX's ffn_config) would be a dense model's, so the simulator "
                        "cannot size this model's memory")
    if m.layout_refused is not None:
        raise UserError(m.layout_refused)


#: vLLM 0.32 pads a vocabulary to a multiple of this many tokens in its embedding and LM head (its
#: ``DEFAULT_VOCAB_PADDING_SIZE``), before splitting it under tensor parallelism.
VOCAB_PADDING = 64


def _parameters_per_gpu(m: ModelShape, tp: int, padded: bool = False) -> tuple[int, int]:
    """Parameters one GPU holds under ``tp``-way tensor parallelism, as vLLM shards them (attention heads, MLP and
    expert widths and the vocabulary split; norms, a latent attention's compressions and the routers replicated), and
    how many of them are the decoder's linear weights a quantization stores (:class:`~ltrsched.sim.weight_storage.WeightStorage`: attention
    projections, MLPs and experts; not the embedding, LM head, norms, biases, routers or gates). ``padded``: the
    embedding and LM head as vLLM allocates them, their vocabulary padded to :data:`VOCAB_PADDING` tokens (the model's
    own parameters without). A one-line UserError where the model's experts are not read here."""
    _check_estimable(m, "weight estimate")
    h, lay = m.hidden_size, m.layout
    if m.latent is not None:  # (q_a, kv_a and their norms replicated; q_b / q, kv_b and o split by heads)
        lat = m.latent
        heads = m.num_heads // tp
        qk = lat.qk_nope_head_dim + lat.qk_rope_head_dim
        query = h * lat.q_lora_rank + lat.q_lora_rank * heads * qk if lat.q_lora_rank else h * heads * qk
        attention = (query + h * (lat.kv_lora_rank + lat.qk_rope_head_dim)
                     + lat.kv_lora_rank * heads * (lat.qk_nope_head_dim + lat.v_head_dim) + heads * lat.v_head_dim * h)
        attention_other = lat.q_lora_rank + lat.kv_lora_rank  # (the compressions' norms)
    else:
        q = m.num_heads * m.head_dim // tp
        kv = m.kv_heads_per_gpu(tp) * m.head_dim
        attention = 2 * h * q + 2 * h * kv  # (q, o; k, v)
        attention_other = ((q + 2 * kv if lay.qkv_bias else 0)
                           + (h if lay.o_bias else 0)  # (a row-parallel layer's bias: whole on each GPU)
                           + lay.qk_norm_params * {QK_HEAD: 2 * m.head_dim, QK_PER_HEAD: q + kv,  # (split with heads)
                                                   QK_WHOLE: (m.num_heads + m.num_kv_heads) * m.head_dim,
                                                   None: 0}[lay.qk_norm])
    projections = 3 if lay.gated_mlp else 2  # (gate, up, down; or up, down)
    dense = projections * h * m.intermediate_size // tp
    # (gate and up biases split, down's whole)
    dense_other = (projections - 1) * m.intermediate_size // tp + h if lay.mlp_bias else 0
    # (experts split by width; the router and shared expert's gate replicated)
    moe = 3 * h * (m.num_experts * m.expert_intermediate_size + m.shared_intermediate_size) // tp
    moe_other = h * m.num_experts + (h if m.shared_expert_gate else 0)
    linear = m.num_layers * attention + (m.num_layers - m.moe_layers) * dense + m.moe_layers * moe
    norm = lay.norm_params * h  # (one norm of the hidden state: weight, and a LayerNorm's bias)
    other = (m.num_layers * (attention_other + lay.layer_norms * norm) + m.moe_layers * moe_other
             + (m.num_layers - m.moe_layers) * dense_other)
    vocab = -(-m.vocab_size // VOCAB_PADDING) * VOCAB_PADDING if padded else m.vocab_size
    vocab_shard = -(-vocab // tp)
    embeddings = vocab_shard * h * (1 if m.tie_word_embeddings else 2) + (vocab_shard if lay.lm_head_bias else 0)
    return embeddings + linear + other + norm, linear  # (and the final norm)


def parameter_count(config: Mapping[str, Any] | ModelShape) -> int:
    """Parameters of the decoder (embedding, layers, final norm, LM head) [parameters]: a Llama-style layer's
    attention (with Qwen's biases and head norms) and gated MLP, or a latent attention's projections
    (:class:`LatentProjections`) and the experts of DeepSeek, Qwen2/3-MoE, Mixtral or DBRX where the model has them; a
    one-line UserError for a layout of experts not read here."""
    return _parameters_per_gpu(_shape(config), 1)[0]


def _weight_bytes_per_gpu(m: ModelShape, tp: int) -> int:
    """Bytes of :func:`_parameters_per_gpu`'s parameters as vLLM allocates them (the vocabulary padded): the decoder's
    linear weights as its quantization stores them (:attr:`ModelShape.weight_storage`), the rest at the model's dtype;
    its one-line refusal where they are not counted (:attr:`ModelShape.weights_refused`)."""
    if m.weights_refused is not None:
        raise UserError(m.weights_refused)
    total, linear = _parameters_per_gpu(m, tp, padded=True)
    if m.weight_storage is None:
        return total * m.dtype_bytes
    return (total - linear) * m.dtype_bytes + m.weight_storage.bytes_of(linear)


def weight_bytes(config: Mapping[str, Any] | ModelShape) -> int:
    """All weights of the model [bytes]: at its dtype, a quantized checkpoint's linear weights at their stored width
    (:func:`~ltrsched.sim.weight_storage.weight_storage`; a one-line UserError for a quantization not counted)."""
    return _weight_bytes_per_gpu(_shape(config), 1)


def weight_bytes_per_gpu(config: Mapping[str, Any] | ModelShape, tp: int = 1) -> int:
    """Weights one GPU holds under ``tp``-way tensor parallelism [bytes] (:func:`parameter_count`'s layers, split
    as vLLM shards them; a quantized checkpoint's linear weights at their stored width, :func:`~ltrsched.sim.weight_storage.weight_storage`)."""
    m = _shape(config)
    m.check_tp(tp)
    return _weight_bytes_per_gpu(m, tp)


def kv_bytes_per_token(config: Mapping[str, Any] | ModelShape, tp: int = 1) -> int:
    """Key + value cache of one token on one GPU, all layers [bytes/token]: a latent attention's latent per layer
    (:attr:`ModelShape.kv_latent`, the same on every GPU), else the keys and values of its KV heads on that GPU, each
    element of :attr:`ModelShape.kv_dtype_bytes` (an FP8 KV cache: one byte)."""
    m = _shape(config)
    m.check_tp(tp)
    element = m.kv_dtype_bytes or m.dtype_bytes
    if m.kv_latent is not None:
        return m.num_layers * m.kv_latent * element
    return 2 * m.num_layers * m.kv_heads_per_gpu(tp) * m.head_dim * element


def activation_reserve_bytes(config: Mapping[str, Any] | ModelShape, tp: int = 1,
                             max_num_batched_tokens: int = 8192, max_num_seqs: int = 256) -> int:
    """Memory vLLM's start-up profiling pass finds in use besides weights, per GPU [bytes].

    vLLM 0.4 runs a dummy batch of ``max_num_batched_tokens`` tokens over ``max_num_seqs`` sequences
    and subtracts the peak. Estimate: non-torch memory (CUDA context, cuBLAS workspace; NCCL buffers
    under TP) + per-token activations at the MLP peak (gate/up output 2·I/tp, activation output I/tp,
    q/k/v output, and ~4 hidden-size buffers: residual, normed input, attention output, MLP output)
    + float32 logits and probabilities of ``max_num_seqs`` sampled rows over the full vocabulary. Llama-style
    layers only: a model with latent attention or experts (or a layout of experts not read) is a one-line UserError.
    """
    m = _shape(config)
    m.check_tp(tp)
    _check_estimable(m, "activation estimate")
    if m.latent is not None or m.moe_layers:
        raise UserError("the activation estimate assumes a dense Llama-style layer, not a model with latent attention "
                        "or experts: give the profile's activation_reserve_bytes from a measured engine instead")
    per_token = ((3 if m.layout.gated_mlp else 2) * m.intermediate_size // tp  # (gate/up, or up, and activation)
                 + (m.num_heads // tp + 2 * m.kv_heads_per_gpu(tp)) * m.head_dim
                 + 4 * m.hidden_size) * m.dtype_bytes
    logits = max_num_seqs * m.vocab_size * 4 * 2
    non_torch = NON_TORCH_BYTES + (NON_TORCH_BYTES_TP if tp > 1 else 0)
    return non_torch + max_num_batched_tokens * per_token + logits


def kv_blocks_from_config(config: Mapping[str, Any] | ModelShape, gpu_memory_bytes: int, tp: int = 1,
                          util: float = 0.9, block_size: int = 16,
                          reserve_bytes: int | None = None) -> int:
    """KV blocks per GPU (each holding ``block_size`` tokens) that fit beside weights and activations.

    Args:
        config: HF-style model config dict (or a ModelShape).
        gpu_memory_bytes: total memory of one GPU [bytes].
        tp: tensor-parallel size (GPUs sharing the model).
        util: fraction of GPU memory the engine may use (vLLM's ``gpu_memory_utilization``).
        block_size: tokens per KV block.
        reserve_bytes: activation + non-torch reserve [bytes]; None estimates it with
            :func:`activation_reserve_bytes`.

    Returns:
        the number of blocks, 0 when nothing is left for the KV cache.
    """
    m = _shape(config)
    if not (isinstance(gpu_memory_bytes, (int, float)) and gpu_memory_bytes > 0):
        raise UserError(f"gpu_memory_bytes must be positive, got {gpu_memory_bytes!r}")
    if not isinstance(util, (int, float)):
        raise UserError(f"gpu_memory_utilization must be a number, got {util!r}")
    if reason := memory_fraction(util):
        raise UserError(reason)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size <= 0:
        raise UserError(f"block_size must be a positive integer, got {block_size!r}")
    if reserve_bytes is None:
        reserve_bytes = activation_reserve_bytes(m, tp)
    budget = gpu_memory_bytes * util
    used = weight_bytes_per_gpu(m, tp) + reserve_bytes
    per_block = kv_bytes_per_token(m, tp) * block_size
    # compared before any subtraction or division: a Python int beyond a float's range (a config's 10**400
    # layers, a block of 10**400 tokens) compares exactly, but converting it to a float raises OverflowError
    if used >= budget or per_block > budget:
        return 0
    return int(math.floor((budget - used) / per_block))
