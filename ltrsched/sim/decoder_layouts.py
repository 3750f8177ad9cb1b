"""What a decoder layer of each model type is made of besides its attention projections and MLP, as vLLM 0.32 builds
it (its own model class, or transformers' through its Transformers backend): biases, norms, the MLP's gate, the LM
head's bias, read from the flags of the text model's config. Used by the weight estimate beside a profile's KV
capacity (:mod:`ltrsched.sim.kv_capacity`); a model type not listed here is refused there in one line rather than
counted as a Llama (a GPT-NeoX's ungated MLP and biased LayerNorms: another number of weights).

Units: counts (norms a layer, parameter vectors a norm), flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ltrsched.errors import UserError

#: Per-head query and key norms: one weight of ``head_dim`` each, shared by every head (Qwen3's, Gemma-3's), kept whole.
QK_HEAD = "head"
#: Query and key norms over the whole projections (``num_heads x head_dim``, ``num_kv_heads x head_dim``: OLMoE's,
#: OLMo-2's), kept whole under tensor parallelism.
QK_WHOLE = "whole"
#: A weight of ``head_dim`` for each query and key head (Cohere's ``use_qk_norm``), split with the heads.
QK_PER_HEAD = "per_head"


@dataclass(frozen=True)
class DecoderLayout:
    """The parts of a decoder that the weight estimate counts besides the per-head query, key, value and output
    projections, the MLP of ``intermediate_size``, the embedding and the LM head.

    Attributes:
        qkv_bias: the query, key and value projections have biases (split with the heads).
        o_bias: the output projection has a bias of ``hidden_size`` (whole on each GPU, as vLLM's row-parallel layers
            keep it).
        mlp_bias: the dense MLP's projections have biases (gate and up split, down whole).
        gated_mlp: the dense MLP is gate, up and down projections (a Llama's); False: up and down only (GPT-NeoX's,
            Phi's, StarCoder-2's, Nemotron's, Arcee's).
        layer_norms: norms of ``hidden_size`` a layer has (two; Cohere's and Phi's one, before attention and MLP run
            side by side; Gemma-2/3's four), replicated.
        norm_params: parameter vectors of ``hidden_size`` each of those norms and the final norm has: 1 (RMSNorm, a
            LayerNorm without bias), 2 (a LayerNorm's weight and bias), 0 (OLMo's LayerNorm without parameters).
        qk_norm: the layers' query and key norms: None, :data:`QK_HEAD`, :data:`QK_WHOLE` or :data:`QK_PER_HEAD`.
        qk_norm_params: parameter vectors each query and key norm has (2: Phi's LayerNorms with biases).
        lm_head_bias: the LM head has a bias of the vocabulary's size (Phi's), split with it.
        tied: whether vLLM's model takes its logits from the embedding whatever ``tie_word_embeddings`` says: True
            (Gemma-2's and Cohere's models have no LM head), False (OLMoE's and DeepSeek-V2/V3's build one and never
            tie it); None: as ``tie_word_embeddings`` (or the config class's default) says.
    """

    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    gated_mlp: bool = True
    layer_norms: int = 2
    norm_params: int = 1
    qk_norm: str | None = None
    qk_norm_params: int = 1
    lm_head_bias: bool = False
    tied: bool | None = None


def flag(text: Mapping[str, Any], key: str, source: str, prefix: str, default: bool = False) -> bool:
    """``text[key]`` (absent: ``default``, the config class's; null: false), true or false; a one-line UserError for
    another value (vLLM takes any truthy one: the string "false" would be true)."""
    if key not in text:
        return default
    value = text[key]
    if value is not None and not isinstance(value, bool):
        raise UserError(f"{source}: model config key {prefix + key!r} must be true or false, got {value!r}")
    return bool(value)


Reader = Callable[[Mapping[str, Any], str, str], DecoderLayout]


def _llama(text, source, prefix, **parts) -> DecoderLayout:
    """vLLM's ``LlamaDecoderLayer`` and the models written after it (Granite, Nemotron, EXAONE-4, Apertus): its
    ``attention_bias`` (or ``bias``, Smaug's) the q/k/v and output biases, ``qkv_bias`` (InternLM3's) the q/k/v
    biases apart from them, ``mlp_bias`` the MLP's."""
    attention = flag(text, "attention_bias", source, prefix) or flag(text, "bias", source, prefix)
    qkv = flag(text, "qkv_bias", source, prefix) if "qkv_bias" in text else attention
    return DecoderLayout(qkv_bias=qkv, o_bias=attention, mlp_bias=flag(text, "mlp_bias", source, prefix), **parts)


def _llama_without_qkv_flag(text, source, prefix, **parts) -> DecoderLayout:
    """Granite's, Nemotron's and EXAONE-4's vLLM models: a Llama's ``attention_bias`` / ``bias`` and ``mlp_bias``, no
    ``qkv_bias`` of their own."""
    return _llama({k: v for k, v in text.items() if k != "qkv_bias"}, source, prefix, **parts)


def _attention_bias(text, source, prefix, **parts) -> DecoderLayout:
    """A transformers model whose ``attention_bias`` gives its q, k, v and output projections biases (OLMo's, Arcee's,
    Gemma-2/3's in vLLM's models), and its ``mlp_bias`` (where its class reads one) the MLP's."""
    bias = flag(text, "attention_bias", source, prefix)
    mlp = flag(text, "mlp_bias", source, prefix) if parts.pop("reads_mlp_bias", False) else False
    return DecoderLayout(qkv_bias=bias, o_bias=bias, mlp_bias=mlp, **parts)


def _qwen3(text, source, prefix) -> DecoderLayout:
    """Qwen3's and Qwen3-MoE's vLLM models: ``attention_bias`` the q/k/v biases alone; each head's q/k norms."""
    return DecoderLayout(qkv_bias=flag(text, "attention_bias", source, prefix), qk_norm=QK_HEAD)


def _cohere(text, source, prefix) -> DecoderLayout:
    """vLLM's Cohere (Command-R) model, also Cohere-2's: no biases (it does not read ``attention_bias``), one LayerNorm
    without bias a layer (attention and MLP side by side), with ``use_qk_norm`` a norm weight per query and key head,
    split with the heads, and no LM head (its logits come from the embedding, whatever ``tie_word_embeddings``
    says)."""
    qk = flag(text, "use_qk_norm", source, prefix)
    return DecoderLayout(layer_norms=1, qk_norm=QK_PER_HEAD if qk else None, tied=True)


def _phi(text, source, prefix) -> DecoderLayout:
    """transformers' Phi (served by vLLM's Transformers backend): biases on every projection and the LM head, one
    LayerNorm with bias a layer, an ungated MLP, and with ``qk_layernorm`` a LayerNorm with bias of ``head_dim`` for
    the queries and one for the keys."""
    qk = flag(text, "qk_layernorm", source, prefix)
    return DecoderLayout(qkv_bias=True, o_bias=True, mlp_bias=True, gated_mlp=False, layer_norms=1, norm_params=2,
                         qk_norm=QK_HEAD if qk else None, qk_norm_params=2, lm_head_bias=True)


def _starcoder2(text, source, prefix) -> DecoderLayout:
    """transformers' StarCoder-2 (vLLM's Transformers backend): ``use_bias`` (class default true) on every projection,
    an ungated MLP, LayerNorms with biases."""
    bias = flag(text, "use_bias", source, prefix, default=True)
    return DecoderLayout(qkv_bias=bias, o_bias=bias, mlp_bias=bias, gated_mlp=False, norm_params=2)


def _gpt_neox(text, source, prefix) -> DecoderLayout:
    """transformers' GPT-NeoX (vLLM's Transformers backend): ``attention_bias`` (class default true) on the fused
    q/k/v and the output projections, biases on its ungated MLP always, LayerNorms with biases."""
    bias = flag(text, "attention_bias", source, prefix, default=True)
    return DecoderLayout(qkv_bias=bias, o_bias=bias, mlp_bias=True, gated_mlp=False, norm_params=2)


def _stablelm(text, source, prefix) -> DecoderLayout:
    """vLLM's StableLM model: ``use_qkv_bias`` the q/k/v biases, two LayerNorms with biases a layer. It builds neither
    per-head q/k norms nor a parallel residual, so a config asking for them is refused rather than counted as
    another model than vLLM's."""
    for key in ("qk_layernorm", "use_parallel_residual"):
        if flag(text, key, source, prefix):
            raise UserError(f"{source}: model config key {prefix + key!r} is true, which vLLM 0.32's StableLM model "
                            "does not build (its layers have neither per-head q/k norms nor a parallel residual), so "
                            "the simulator cannot size this model's memory")
    return DecoderLayout(qkv_bias=flag(text, "use_qkv_bias", source, prefix), norm_params=2)


def _dbrx(text, source, prefix) -> DecoderLayout:
    """vLLM's DBRX model: its layers are counted from its own keys; a tied LM head it refuses at its start."""
    if flag(text, "tie_word_embeddings", source, prefix):
        raise UserError(f"{source}: model config key {prefix + 'tie_word_embeddings'!r} is true, which vLLM 0.32's "
                        "DBRX model refuses at its start (\"tie_word_embeddings is not supported for Dbrx models\")")
    return DecoderLayout()


#: How each model type's layers are read (:func:`decoder_layout`): vLLM 0.32's model of the type, or, for those it
#: serves through its Transformers backend (OLMo, OLMo-2/3, Phi, StarCoder-2, GPT-NeoX, Arcee), transformers' own.
#: Each equals transformers' parameter count of small configs (tests/test_models_layouts.py). A config without a
#: ``model_type`` is read as a Llama, as before.
READERS: dict[str | None, Reader] = {
    None: _llama,
    "llama": _llama,
    "mistral": _llama,
    "phi3": _llama,  # (vLLM's Phi3ForCausalLM is its LlamaForCausalLM)
    "granite": _llama_without_qkv_flag,
    "nemotron": lambda t, s, p: _llama_without_qkv_flag(t, s, p, gated_mlp=False, norm_params=2),
    "exaone4": lambda t, s, p: _llama_without_qkv_flag(t, s, p, qk_norm=QK_HEAD),
    "qwen2": lambda t, s, p: DecoderLayout(qkv_bias=True),
    "qwen2_moe": lambda t, s, p: DecoderLayout(qkv_bias=True),
    "qwen3": _qwen3,
    "qwen3_moe": _qwen3,
    "gemma": lambda t, s, p: DecoderLayout(),  # (vLLM's Gemma builds no biases)
    "gemma2": lambda t, s, p: _attention_bias(t, s, p, layer_norms=4, tied=True),
    "gemma3_text": lambda t, s, p: _attention_bias(t, s, p, layer_norms=4, qk_norm=QK_HEAD),
    "olmo": lambda t, s, p: _attention_bias(t, s, p, norm_params=0),
    "olmo2": lambda t, s, p: _attention_bias(t, s, p, qk_norm=QK_WHOLE),
    "olmo3": lambda t, s, p: _attention_bias(t, s, p, qk_norm=QK_WHOLE),
    "olmoe": lambda t, s, p: DecoderLayout(qk_norm=QK_WHOLE, tied=False),  # (vLLM's OLMoE reads no tie)
    "arcee": lambda t, s, p: _attention_bias(t, s, p, reads_mlp_bias=True, gated_mlp=False),
    "cohere": _cohere,
    "cohere2": _cohere,
    "phi": _phi,
    "starcoder2": _starcoder2,
    "gpt_neox": _gpt_neox,
    "stablelm": _stablelm,
    # (layouts of experts and latent attention, counted by kv_capacity from their own keys)
    "mixtral": lambda t, s, p: DecoderLayout(),
    "dbrx": lambda t, s, p: _dbrx(t, s, p),
    # (vLLM's DeepSeek-V2 model, also V3's and Kimi-K2's, builds its own LM head and reads no tie)
    "deepseek_v2": lambda t, s, p: DecoderLayout(tied=False),
    "deepseek_v3": lambda t, s, p: DecoderLayout(tied=False),
    "kimi_k2": lambda t, s, p: DecoderLayout(tied=False),
}


def _built_text_type(kind: str | None, text: Mapping[str, Any]) -> str | None:
    """The model type of the text model that transformers' composite config class of ``kind`` builds from ``text`` (a
    ``text_config`` without a ``model_type`` of its own, given the composite's: Llava's builds a Llama's); ``kind``
    where it is no such class or cannot be built from these values."""
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        from ltrsched.hf_quiet import transformers_quiet

        config_class = CONFIG_MAPPING[kind]
        if "text_config" not in (getattr(config_class, "sub_configs", None) or {}):
            return kind
        with transformers_quiet():
            built = config_class(text_config={k: v for k, v in text.items() if k != "model_type"})
        found = getattr(getattr(built, "text_config", None), "model_type", None)
    except Exception:  # (no transformers, no such class, or a class refusing hostile values: the type stays unread)
        return kind
    return found if isinstance(found, str) else kind


def decoder_layout(text: Mapping[str, Any], kind: str | None, source: str, prefix: str) -> DecoderLayout | str:
    """The :class:`DecoderLayout` vLLM 0.32 builds for the text model ``text`` of model type ``kind`` (a composite
    model's text_config without a type of its own: the type its class builds, :func:`_built_text_type`), or, for a
    type whose layers are not read here, the one-line refusal of its weight estimate naming the type (a string, raised
    only where weights are estimated: its KV cache is still sized). A flag that is no boolean is a one-line
    UserError."""
    stated = text.get("model_type")
    if stated is not None and not isinstance(stated, str):  # (vLLM refuses it; read as no type, it was a Llama's)
        shown = repr(stated) if len(repr(stated)) <= 60 else repr(stated)[:57] + "..."
        return (f"{source}: {prefix}model_type must be a string naming the model's type, got {shown}, so the "
                "simulator cannot tell its layers to size its memory")
    if kind not in READERS:
        kind = _built_text_type(kind, text)
    reader = READERS.get(kind)
    if reader is None:
        known = ", ".join(sorted(k for k in READERS if k))
        return (f"{source}: ltrsched's weight estimate does not read the layers of model type {kind!r} (it reads "
                f"{known}): counted as a Llama's they would be another model's, so the simulator cannot size this "
                "model's memory")
    return reader(text, source, prefix)
