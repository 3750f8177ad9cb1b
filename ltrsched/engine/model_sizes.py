"""The text model's sizes in a model's config.json, checked before the engine starts as vLLM 0.32 will read them.

vLLM builds the config through transformers' config class of its ``model_type``: a size the file leaves out takes
that class's default (Qwen2's ``hidden_size`` 4096, Gemma-2's ``num_key_value_heads`` 4 and ``head_dim`` 256), so a
model of other sizes was served, or its KV cache sized by ltrsched from other numbers than vLLM's; a size of the
wrong type (``"hidden_size": "128"``) or that is no positive integer was a traceback from the engine's start. Each is
one line here instead. Real config files (transformers' ``save_pretrained``) give every size their class takes.

Units: elements (sizes), tokens (vocabulary).
"""

from __future__ import annotations

import copy

from ltrsched.config_classes import class_defaults, kv_layout_refusal, layers_refusal
from ltrsched.errors import UserError
from ltrsched.hf_quiet import transformers_quiet

#: The sizes checked, in the order named (vLLM's ``hf_text_config`` attributes; a class may store one under another
#: name: its ``attribute_map``, GPT-2's ``n_embd``).
SIZES = ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size")
#: The sizes of a multi-head latent attention's KV latent, checked too for the model types vLLM serves with it
#: (:data:`ltrsched.models.MLA_MODEL_TYPES`): they, not the heads, size its KV cache.
MLA_SIZES = ("kv_lora_rank", "qk_rope_head_dim")
#: Largest plausible size [elements], as :data:`ltrsched.sim.kv_capacity.MAX_CONFIG_SIZE`.
MAX_SIZE = 1 << 31


def _size(value) -> bool:
    return type(value) is int and 1 <= value <= MAX_SIZE


def check_text_sizes(model: dict, source: str) -> None:
    """One-line :class:`UserError` naming ``source`` (the config.json) and the key where the text model's sizes (a
    composite model's ``text_config``, :func:`ltrsched.models.text_model`) are not what the engine can serve: a
    size given as anything but a positive integer (at most 2^31), one left to transformers' class default, query
    heads that do not split evenly into KV heads (Falcon's: :func:`ltrsched.models.falcon_kv_heads`), or (without
    ``head_dim``) a width that does not split evenly into heads; for a model vLLM serves with multi-head latent
    attention, its latent's sizes too (:data:`MLA_SIZES`; a ``kv_lora_rank`` of null is its attention without a
    latent), and with ``VLLM_MLA_DISABLE`` set (a value vLLM cannot read is refused for any model) its per-head size
    ``qk_nope_head_dim``, or the model is refused where vLLM has no attention without the latent for it
    (:func:`ltrsched.models.mla_disabled_head`); a model with DeepSeek-V3.2's sparse-attention indexer is refused
    (:func:`ltrsched.models.check_no_indexer`), as is a hybrid or attention-free model (Jamba, Qwen3-Next, Mamba,
    ...: :data:`ltrsched.config_classes.HYBRID_MODEL_TYPES`), whose cache is no full-context KV of every layer, and a
    GPT-NeoX whose ``num_key_value_heads`` is not its head count (:func:`ltrsched.config_classes.ignored_kv_heads_refusal`)."""
    from ltrsched.models import (FALCON_MODEL_TYPES, LAYER_KEYS, MLA_MODEL_TYPES, check_no_indexer, falcon_kv_heads,
                                 falcon_names, layer_count, mla_disabled, mla_disabled_head, model_type, text_model)

    text, prefix = text_model(model, source)
    key = next((k for k in LAYER_KEYS if k in text), None)
    too_deep = layers_refusal(layer_count(model, source), source, prefix + key) if key else None
    if too_deep is not None:  # (transformers' config classes build a list of 2^31 layer kinds: minutes)
        raise UserError(too_deep)
    layout = kv_layout_refusal(model, text, source, prefix,
                               "ltrsched cannot check its KV cache or context before the engine starts")
    if layout is not None:
        raise UserError(layout)
    disabled = mla_disabled()  # (a value vLLM cannot read: a traceback at its start, whatever the model)
    if model_type(text) in FALCON_MODEL_TYPES:  # (RefinedWeb's n_embed, as vLLM's RWConfig reads it)
        text = falcon_names(text)
    sizes = SIZES + (MLA_SIZES + ("qk_nope_head_dim",) * disabled if model_type(text) in MLA_MODEL_TYPES else ())
    aliases, defaults, config_class = class_defaults(text.get("model_type"), sizes)
    given = {}
    for key in sizes:
        name = aliases.get(key, key)
        value = text.get(name, text.get(key))
        if value is None and key == "kv_lora_rank" and key in text:
            break  # (no latent: its rope size is not read)
        if value is None:
            if defaults.get(key) is not None:
                raise UserError(f"{source} has no '{prefix}{name}': {config_class} (through which vLLM reads it) "
                                f"would take its default {defaults[key]!r}, a size of another model: add the model's "
                                "own")
            if key in MLA_SIZES:  # (no default known: vLLM's class may run it with a latent or without)
                raise UserError(f"{source} has no '{prefix}{name}', a size of its latent attention's KV that "
                                f"{config_class or 'no config class'} gives no default for: add it (a "
                                f"'{prefix}kv_lora_rank' of null: attention without a latent)")
            continue
        if not _size(value):
            raise UserError(f"{source}: '{prefix}{name if name in text else key}' must be a positive integer, got "
                            f"{value!r}")
        given[key] = value
    check_no_indexer(text, source, prefix)  # (DeepSeek-V3.2's indexer: a second KV cache ltrsched does not size)
    mla_disabled_head(text, source, prefix)  # (VLLM_MLA_DISABLE on a model vLLM has no per-head attention for)
    if model_type(text) in FALCON_MODEL_TYPES:  # (its KV heads and flags, as vLLM's Falcon attention reads them)
        falcon_kv_heads(text, source, prefix)
    heads, kv_heads = given.get("num_attention_heads"), given.get("num_key_value_heads")
    if heads and kv_heads and heads % kv_heads:
        raise UserError(f"{source}: {prefix}num_attention_heads {heads} is not a multiple of "
                        f"{prefix}num_key_value_heads {kv_heads} (each KV head serves a whole group of query heads)")
    width = given.get("hidden_size")
    if heads and width and "head_dim" not in given and width % heads:
        raise UserError(f"{source}: {prefix}hidden_size {width} is not a multiple of {prefix}num_attention_heads "
                        f"{heads}, and no {prefix}head_dim says each head's size")


#: Keys a vLLM 0.32 model reads from the config with no default (neither in the file's nor in vLLM's config class),
#: by model type -> what to add, in words.
MODEL_KEYS = {
    "chatglm": {"original_rope": "add it (true: ChatGLM2/3's rotary embedding; false: the GPT-NeoX style, as "
                                 "CogAgent's)"},
}


def check_config_values(model: dict, source: str) -> None:
    """One-line :class:`UserError` naming ``source`` where transformers' config class of the model's type (through
    which vLLM reads a config.json) refuses a value's type (``"rms_norm_eps": "x"``: transformers 5 checks each
    field, a traceback from the engine's start). Other failures of the class are left to vLLM's own reading (it
    has config classes of its own for some model types). ``model`` is read, never changed. Also refused: a key
    vLLM's model reads with no default in any config class (:data:`MODEL_KEYS`: a ChatGLM without
    ``original_rope``, an AttributeError traceback at the start)."""
    kind = model.get("model_type")
    for key, words in (MODEL_KEYS.get(kind, {}) if isinstance(kind, str) else {}).items():
        if key not in model:
            raise UserError(f"{source} has no {key!r}, which vLLM's {model['model_type']} model reads at its start "
                            f"(an AttributeError traceback): {words}")
    try:
        from huggingface_hub.errors import StrictDataclassFieldValidationError
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        config_class = CONFIG_MAPPING[model.get("model_type")]
    except (ImportError, KeyError, TypeError):
        return
    try:
        with transformers_quiet():
            config_class.from_dict(copy.deepcopy(model))  # (it fills in nested dicts in place: rope_scaling's base)
    except StrictDataclassFieldValidationError as exc:
        raise UserError(f"{source}: transformers' {model.get('model_type')!r} config class (through which vLLM reads "
                        f"it) refuses it: {' '.join(str(exc).split())}") from None
    except Exception:  # (any other failure of a config class built from hostile values: vLLM's own reading decides)
        return


def _cpu_supports_fp8_kv() -> bool:
    """Whether this host has what vLLM 0.32's CPU attention needs for an FP8 KV cache: x86 with AVX-512 or AMX, as it
    asks torch (its ``_get_attn_isa``); True where torch cannot tell (vLLM's own check remains)."""
    try:
        import torch

        return bool(torch.cpu._is_avx512_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # (no torch, or a torch without these probes)
        return True


def check_cpu_kv_cache(path: str, source: str) -> None:
    """One-line :class:`UserError` naming ``source`` (the config.json of the model directory ``path``) where vLLM 0.32
    keeps the model's KV cache in FP8 (a compressed-tensors ``kv_cache_scheme`` or a ModelOpt FP8 KV config:
    :func:`ltrsched.models.kv_cache_dtype`) and its CPU attention refuses it once the model has loaded (a
    NotImplementedError traceback): on a host without AVX-512 or AMX ("FP8 KV cache on CPU requires x86 with AVX-512
    or AMX"), or for heads of a size divisible by 16 but not 32 ("FP8 KV cache requires head_size divisible by 32 on
    CPU"). For the CPU engine only: a GPU keeps it."""
    from ltrsched.engine.config import model_quantization_config
    from ltrsched.models import kv_cache_dtype, layers_quantization_config, read_model_config, text_model

    model = read_model_config(path)
    quant = model_quantization_config(path, model)
    kv_dtype = kv_cache_dtype(quant, source, layers_quantization_config(model, quant, source))
    if not kv_dtype.startswith("fp8"):
        return
    if not _cpu_supports_fp8_kv():
        raise UserError(f"{source}: its quantization config makes vLLM keep the KV cache in FP8 ({kv_dtype}), which "
                        "vLLM 0.32's CPU attention keeps only on x86 with AVX-512 or AMX, and this machine has neither "
                        "(a traceback once the model has loaded): serve it on a GPU, or a checkpoint without an FP8 "
                        "KV cache")
    text, prefix = text_model(model, source)
    head, heads, width = text.get("head_dim"), text.get("num_attention_heads"), text.get("hidden_size")
    if not _size(head) and _size(heads) and _size(width):
        head = width // heads
    if _size(head) and head % 32 and head % 16 == 0:
        raise UserError(f"{source}: its quantization config makes vLLM keep the KV cache in FP8 ({kv_dtype}), which "
                        f"vLLM 0.32's CPU attention keeps only for heads of a size divisible by 32, not {head} "
                        f"({prefix}{'head_dim' if _size(text.get('head_dim')) else 'hidden_size / num_attention_heads'}"
                        "; a traceback once the model has loaded): serve it on a GPU")
