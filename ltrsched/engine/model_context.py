"""The context [tokens] vLLM derives for a model from its config.json, read without starting (or importing) vLLM.

It follows vLLM 0.32's ``_get_and_verify_max_len`` (``vllm/config/model.py``) for a plain config (no nested
``text_config``, no sliding window, which it may derive otherwise; None there, and vLLM's own check remains):

1. the smallest of the context keys (:data:`CONTEXT_KEYS`) present; ``model_max_length``, where present, wins;
2. times the RoPE scaling ``factor`` (transformers reads ``rope_scaling``, else ``rope_parameters``; one nested by
   layer type is left to vLLM: transformers reads it by the model's class), except for the RoPE types whose
   ``max_position_embeddings`` is already scaled (:data:`PRESCALED_ROPE_TYPES`: llama3, YaRN, LongRoPE) and for
   Gemma 3 (its context is scaled already); a type left out is ``default``, which still applies a ``factor`` given
   beside it;
3. with LongRoPE the engine's default is ``original_max_position_embeddings`` (the unscaled context).
"""

from __future__ import annotations

import math
from pathlib import Path

#: config.json keys vLLM derives a model's context from, the smallest present (its ``derive_max_model_len_and_key``;
#: ``model_max_length``, where present, wins).
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")
#: RoPE types whose ``factor`` vLLM does not apply to the context (``max_position_embeddings`` is already scaled).
PRESCALED_ROPE_TYPES = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling",
                        "telechat3-yarn")
#: Legacy RoPE type names and the types vLLM reads them as (``patch_legacy_rope_type``).
LEGACY_ROPE_TYPES = {"su": "longrope", "mrope": "default", "telechat3-yarn": "yarn"}
#: Layer types that key a nested ``rope_parameters`` (vLLM's ``ALLOWED_LAYER_TYPES``, those of text models).
LAYER_TYPES = ("full_attention", "sliding_attention", "chunked_attention", "window_attention", "indexed_attention",
               "compressed_sparse_attention", "heavily_compressed_attention", "minimax_m3_sparse", "conv", "moe",
               "hybrid", "hybrid_sliding", "linear_attention", "sparse", "dense")


def _number(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value > 0


def rope_parameters(model: dict) -> list[dict] | None:
    """The RoPE parameter dicts of a config.json ([] without RoPE settings), or None where they are not one dict
    (nested by layer type, which the model's class decides how to read: left to vLLM)."""
    rope = model.get("rope_scaling") or model.get("rope_parameters")  # (transformers: rope_scaling wins)
    if not rope:
        return []
    if not isinstance(rope, dict):
        return None
    if set(rope) & set(LAYER_TYPES):  # (by layer type: transformers reads it by the model class, Llama's not at all)
        return None
    return [rope]


def rope_type(params: dict) -> str:
    """A RoPE parameter dict's type as vLLM reads it (``rope_type``, else the legacy ``type``, else default)."""
    kind = params.get("rope_type", params.get("type")) or "default"
    return LEGACY_ROPE_TYPES.get(kind, kind) if isinstance(kind, str) else "default"


def rope_factor(model: dict, where: str = "the model's config.json") -> float:
    """The RoPE scaling factor vLLM multiplies the context by (1.0 for none, for the types whose context is already
    scaled, and for a ``null`` factor, as vLLM falls back); one-line :class:`UserError` naming ``where`` for one
    that is no positive number: vLLM multiplied the context by it once started (``"factor": "x"`` a TypeError
    traceback)."""
    from ltrsched.errors import UserError

    if "gemma3" in str(model.get("model_type", "")):  # (vLLM applies none: its context is scaled already)
        return 1.0
    factor = 1.0
    for p in rope_parameters(model) or ():
        if rope_type(p) not in PRESCALED_ROPE_TYPES:
            factor = p.get("factor", factor)
    if factor is None:
        return 1.0
    if not _number(factor):
        key = "rope_scaling" if model.get("rope_scaling") else "rope_parameters"
        raise UserError(f"{where}: the RoPE scaling factor ({key}'s factor) must be a positive number, got "
                        f"{factor!r}")
    return float(factor)


def derived_context(model: dict) -> tuple[int, str] | None:
    """The ``max_model_len`` [tokens] vLLM takes by default for a model whose config.json is ``model`` (a generating
    model: vLLM bounds it by the tokenizer's ``model_max_length`` for pooling models only), and where it comes from
    (the key, in words); None where vLLM may derive another (a nested text config, a sliding window, no context
    key, RoPE settings it would read otherwise)."""
    if model.get("text_config") or model.get("sliding_window"):
        return None
    found = {k: model[k] for k in CONTEXT_KEYS if type(model.get(k)) is int and model[k] > 0}
    if not found:
        return None
    key = "model_max_length" if "model_max_length" in found else min(found, key=found.get)
    context, source = found[key], key
    params = rope_parameters(model)
    if params is None:
        return None
    if params:
        factor = rope_factor(model)
        if factor != 1.0:
            context, source = context * factor, f"{source} x the RoPE scaling factor {factor:g}"
        if any(rope_type(p) == "longrope" for p in params):
            original = model.get("original_max_position_embeddings")
            if original is not None and not _number(original):
                return None
            if original is not None:
                context, source = original, "original_max_position_embeddings (LongRoPE)"
    return int(context), source


def model_context(path: str | Path) -> tuple[int, str] | None:
    """:func:`derived_context` of the model directory ``path`` (its config.json)."""
    from ltrsched.models import read_model_config

    return derived_context(read_model_config(path))
