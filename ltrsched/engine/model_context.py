"""The context [tokens] vLLM derives for a model from its config.json, read without starting (or importing) vLLM.

It follows vLLM 0.32's ``_get_and_verify_max_len`` (``vllm/config/model.py``), as ltrsched's engine starts it (no
``disable_sliding_window``, no tokenizer bound: a generating model):

1. the config it reads is the text model's: a composite (multimodal) model's ``text_config`` (transformers'
   ``get_text_config``), else the config itself; keys beside ``text_config`` do not count;
2. the smallest of the context keys (:data:`CONTEXT_KEYS`) present there; ``model_max_length``, where present,
   wins;
3. times the RoPE scaling ``factor`` (transformers reads ``rope_scaling``, else ``rope_parameters``), except for
   the RoPE types whose ``max_position_embeddings`` is already scaled (:data:`PRESCALED_ROPE_TYPES`: llama3,
   YaRN, LongRoPE) and for Gemma 3 (its context is scaled already); a type left out is ``default``, which still
   applies a ``factor`` given beside it;
4. with LongRoPE the engine's default is ``original_max_position_embeddings`` (the unscaled context).

A sliding window (``sliding_window``, ``use_sliding_window``, ``max_window_layers``) does not change it: vLLM caps
the context at the window only with ``disable_sliding_window``, which ltrsched never sets (a window of 0 it reads
as none).

Where the context depends on something a config.json alone does not say, :func:`derived_context` refuses in one
line, naming ``--max-model-len`` (vLLM then checks that value against the model once started), rather than guess:
a context filled in by transformers' config class (no context key), RoPE parameters set per layer type with a
scaling factor (transformers keeps them per layer, and vLLM applies the factor, only for the model classes that
take layer types), a text config under another key, or a model type whose text config transformers does not
know; and where vLLM refuses the config once started (two text configs, a ``text_config`` the model's class
keeps as a plain dict, a context key that is no positive number of tokens) it refuses first.
"""

from __future__ import annotations

import math
from pathlib import Path

from ltrsched import models
from ltrsched.errors import UserError

#: config.json keys vLLM derives a model's context from, the smallest present (its ``derive_max_model_len_and_key``;
#: ``model_max_length``, where present, wins).
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")
#: Model types whose context vLLM derives elsewhere (their own ``derive_max_model_len_and_key`` in vLLM 0.32).
OWN_CONTEXT_MODEL_TYPES = ("moss_audio",)
#: RoPE types whose ``factor`` vLLM does not apply to the context (``max_position_embeddings`` is already scaled).
PRESCALED_ROPE_TYPES = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling",
                        "telechat3-yarn")
#: Legacy RoPE type names and the types vLLM reads them as (``patch_legacy_rope_type``).
LEGACY_ROPE_TYPES = {"su": "longrope", "mrope": "default", "telechat3-yarn": "yarn"}
#: Layer types that key a nested ``rope_parameters`` (vLLM's ``ALLOWED_LAYER_TYPES``, those of text models).
LAYER_TYPES = ("full_attention", "sliding_attention", "chunked_attention", "window_attention", "indexed_attention",
               "compressed_sparse_attention", "heavily_compressed_attention", "minimax_m3_sparse", "conv", "moe",
               "hybrid", "hybrid_sliding", "linear_attention", "sparse", "dense")
#: The end of each refusal that cannot be predicted: how to run anyway.
GIVE_MAX_MODEL_LEN = ("give --max-model-len (the context to serve, at most the model's: vLLM checks it once "
                      "started)")


def positive_number(value) -> bool:
    """Whether a config.json value is a finite number > 0 (not a bool, nor an integer beyond a float's range)."""
    if type(value) not in (int, float):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # (an integer beyond a float)
        return False


def _rope_dict(model: dict):
    """The RoPE settings transformers reads (``rope_scaling`` wins over ``rope_parameters``), or None."""
    return model.get("rope_scaling") or model.get("rope_parameters")


def _by_layer(rope) -> bool:
    """Whether RoPE settings are nested by layer type."""
    return isinstance(rope, dict) and bool(set(rope) & set(LAYER_TYPES))


def rope_parameters(model: dict) -> list[dict]:
    """The RoPE parameter dicts of a (text) config.json: one, one per layer type where nested (vLLM's
    ``iter_rope_parameters``), or none."""
    rope = _rope_dict(model)
    if not isinstance(rope, dict) or not rope:
        return []
    if _by_layer(rope):
        return [p for p in rope.values() if isinstance(p, dict) and p]
    return [rope]


def rope_type(params: dict) -> str:
    """A RoPE parameter dict's type as vLLM reads it (``rope_type``, else the legacy ``type``, else default)."""
    kind = params.get("rope_type", params.get("type")) or "default"
    return LEGACY_ROPE_TYPES.get(kind, kind) if isinstance(kind, str) else "default"


def _scaling(model: dict, params: list[dict]):
    """The factor vLLM's loop over ``params`` ends with (the last one given, of a type it applies), unchecked."""
    if "gemma3" in str(model.get("model_type", "")):  # (vLLM applies none: its context is scaled already)
        return 1.0
    factor = 1.0
    for p in params:
        if rope_type(p) not in PRESCALED_ROPE_TYPES:
            factor = p.get("factor", factor)
    return 1.0 if factor is None else factor  # (a null factor: vLLM falls back to 1.0)


def rope_factor(model: dict, where: str = "the model's config.json", prefix: str = "") -> float:
    """The RoPE scaling factor vLLM multiplies the context by (1.0 for none, for the types whose context is already
    scaled, and for a ``null`` factor, as vLLM falls back); one-line :class:`UserError` naming ``where`` for one
    that is no positive number: vLLM multiplied the context by it once started (``"factor": "x"`` a TypeError
    traceback). ``model``: the text model's config (:func:`text_config`), named ``prefix`` (``text_config.``) in
    ``where``."""
    factor = _scaling(model, rope_parameters(model))
    if not positive_number(factor):
        key = "rope_scaling" if model.get("rope_scaling") else "rope_parameters"
        raise UserError(f"{where}: the RoPE scaling factor ({prefix}{key}'s factor) must be a positive number, got "
                        f"{factor!r}")
    return float(factor)


def text_config(model: dict, where: str = "the model's config.json", reads: str = "context",
                fix: str = GIVE_MAX_MODEL_LEN) -> tuple[dict, str]:
    """:func:`ltrsched.models.text_config` (the text model's config, where vLLM reads a model's context, layer count
    and KV sizes), its refusals ending in how to give the context (``--max-model-len``) by default."""
    return models.text_config(model, where, reads, fix)


def sliding_window(model: dict) -> int | None:
    """The sliding window [tokens] of the text model (:func:`text_config`) as vLLM reads it (its
    ``hf_text_config.sliding_window``; transformers' Qwen2 config drops it where ``use_sliding_window`` is false),
    or None: none, 0, or no positive whole number. Which layers it applies to is the model class's to decide."""
    try:
        text, _ = text_config(model)
    except UserError:
        return None
    window = text.get("sliding_window")
    if text.get("use_sliding_window") is False or type(window) is not int or window <= 0:
        return None
    return window


def derived_context(model: dict, where: str = "the model's config.json") -> tuple[int, str]:
    """The ``max_model_len`` [tokens] vLLM takes by default for a generating model whose config.json is ``model``
    (vLLM bounds it by the tokenizer's ``model_max_length`` for pooling models only), and where it comes from
    (the key, in words); a one-line :class:`UserError` naming ``where`` where it cannot be told before the start
    or vLLM refuses the config (see the module's docstring)."""
    kind = model.get("model_type")
    if kind in OWN_CONTEXT_MODEL_TYPES:
        raise UserError(f"{where}: vLLM derives the context of a {kind!r} model its own way, which ltrsched does not "
                        f"follow; {GIVE_MAX_MODEL_LEN}")
    text, prefix = text_config(model, where)
    given = {k: text[k] for k in CONTEXT_KEYS if text.get(k) is not None}
    for key, value in given.items():
        if not (positive_number(value) and value == int(value)):
            raise UserError(f"{where}: {prefix}{key} must be a positive whole number of tokens, got {value!r}")
    if not given:
        raise UserError(f"{where} gives none of the keys vLLM reads a model's context from ({prefix}"
                        f"max_position_embeddings, ...): transformers' config class fills one in; {GIVE_MAX_MODEL_LEN}")
    key = "model_max_length" if "model_max_length" in given else min(given, key=given.get)
    context, source = int(given[key]), prefix + key
    rope = _rope_dict(text)
    params = rope_parameters(text)
    if _by_layer(rope):
        factor = _scaling(text, params)
        if factor != 1.0 or any(rope_type(p) == "longrope" for p in params):
            what = f"scaling factor {factor!r}" if factor != 1.0 else "LongRoPE"
            raise UserError(f"{where}: its {prefix}{'rope_scaling' if text.get('rope_scaling') else 'rope_parameters'} "
                            f"are set per layer type, with a RoPE {what}: vLLM applies it to the context only for "
                            "the model classes whose transformers config takes layer types, which ltrsched cannot "
                            f"tell before the engine starts; {GIVE_MAX_MODEL_LEN}")
        return context, source
    factor = rope_factor(text, where, prefix)
    if factor != 1.0:
        context, source = int(context * factor), f"{source} x the RoPE scaling factor {factor:g}"
    legacy = next((p for p in params if p.get("rope_type", p.get("type")) == "su"), None)
    if legacy is not None and legacy.get("original_max_position_embeddings") is None:
        raise UserError(f"{where}: its RoPE type 'su' (LongRoPE's old name) gives no original_max_position_embeddings "
                        f"inside {prefix}{'rope_scaling' if text.get('rope_scaling') else 'rope_parameters'}, which "
                        "transformers then requires as it reads the config (a KeyError traceback at vLLM's start): "
                        "move it there, or name the type 'longrope'")
    if any(rope_type(p) == "longrope" for p in params):
        original = text.get("original_max_position_embeddings")
        if original is not None and not positive_number(original):
            raise UserError(f"{where}: {prefix}original_max_position_embeddings (LongRoPE's default context) must be "
                            f"a positive number of tokens, got {original!r}")
        if original is not None:
            context, source = int(original), f"{prefix}original_max_position_embeddings (LongRoPE)"
    return context, source


def model_context(path: str | Path) -> tuple[int, str]:
    """:func:`derived_context` of the model directory ``path`` (its config.json)."""
    from ltrsched.models import read_model_config

    return derived_context(read_model_config(path), str(Path(path) / "config.json"))
