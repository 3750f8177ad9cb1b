"""RoPE's base (``rope_theta``) in a model's config.json, checked before the engine starts as vLLM 0.32 will use it.

vLLM reads the text model's config through transformers' config class, moves ``rope_theta`` (or the older
``rotary_emb_base``) into ``rope_parameters`` (its ``patch_rope_parameters``: transformers'
``standardize_rope_params``), and its rotary embedding raises each base to a power. Neither transformers nor vLLM
checks the value: a list, a string or null was a TypeError traceback once the engine had loaded the model; zero, a
negative number or NaN gave infinite or NaN rotation frequencies (a model that computes NaN, silently). Each is one
line here instead; a positive number is accepted, as vLLM serves it.

Units: the base is a dimensionless number (the rotation's wavelength scale).
"""

from __future__ import annotations

import copy
import inspect

from ltrsched.engine.model_context import positive_number
from ltrsched.errors import UserError

#: The keys a config gives RoPE's base under, in the order vLLM looks (``rotary_emb_base``: older custom models).
BASE_KEYS = ("rope_theta", "rotary_emb_base")
#: Where a RoPE parameter dict may sit in a config.json (transformers reads ``rope_scaling``, else
#: ``rope_parameters``).
ROPE_DICTS = ("rope_scaling", "rope_parameters")


def _stated(text: dict, prefix: str) -> list[tuple[str, object]]:
    """Every base the file states, with its key's name: top-level keys, then those inside RoPE parameter dicts
    (one global dict, or one per layer type)."""
    found = [(prefix + key, text[key]) for key in BASE_KEYS if key in text]
    for name in ROPE_DICTS:
        rope = text.get(name)
        if not isinstance(rope, dict):
            continue
        if "rope_theta" in rope:
            found.append((f"{prefix}{name}'s rope_theta", rope["rope_theta"]))
        for layer, params in rope.items():
            if isinstance(params, dict) and "rope_theta" in params:
                found.append((f"{prefix}{name}.{layer}'s rope_theta", params["rope_theta"]))
    return found


def _vllm_model_reads_rope(text: dict) -> bool:
    """vLLM's model module for the text model's ``architectures`` builds a rotary embedding from ``rope_parameters``
    (where its ``patch_rope_parameters`` puts ``rope_theta`` or ``rotary_emb_base``), though transformers' config
    class declares none: GPT-J (``rotary_dim``), Cohere2-MoE. Read from vLLM's source, not imported."""
    from ltrsched.engine.architectures import model_source

    source = model_source(text.get("architectures"))
    return source is not None and "get_rope(" in source and "rope_parameters" in source


def _bases_vllm_uses(text: dict) -> list | None:
    """The bases vLLM's rotary embeddings will take (one per RoPE parameter dict), from transformers' config class of
    the text model's type as vLLM patches it; None where neither the class nor vLLM's model reads RoPE (GPT-2, OPT,
    ...: :func:`_vllm_model_reads_rope`), a Falcon runs
    ALiBi instead, or the class cannot be built (other checks and vLLM's own reading decide)."""
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        config_class = CONFIG_MAPPING[text.get("model_type")]
    except (ImportError, KeyError, TypeError):
        return None
    if ("rope_parameters" not in inspect.signature(config_class.__init__).parameters
            and not _vllm_model_reads_rope(text)):
        return None
    try:
        config = config_class.from_dict(copy.deepcopy(text))  # (the class fills in nested dicts in place)
        if getattr(config, "rotary", True) is False:  # (Falcon with alibi: no rotary embedding)
            return None
        theta = next((getattr(config, key) for key in BASE_KEYS if hasattr(config, key)), None)
        if theta is not None:  # (vLLM's patch_rope_parameters)
            config.rope_theta = theta
        if theta is None and not getattr(config, "rope_parameters", None):
            return None
        config.standardize_rope_params()
    except Exception:  # (a class that refuses hostile values: check_config_values or vLLM decide)
        return None
    rope = getattr(config, "rope_parameters", None)
    if not isinstance(rope, dict) or not rope:
        # (a false base, 0: standardize_rope_params drops it, and vLLM's rotary embedding takes its default base,
        # 10000, not the file's)
        return None if theta is None else [theta]
    nested = [p for p in rope.values() if isinstance(p, dict)]
    params = nested if nested and all(isinstance(p, dict) or p is None for p in rope.values()) else [rope]
    return [p.get("rope_theta", 10000) for p in params if p]


def check_rope_theta(model: dict, source: str) -> None:
    """One-line :class:`UserError` naming ``source`` (the config.json) and the key where the text model's RoPE base (a
    composite model's ``text_config``, where vLLM reads it) is anything but a positive number as vLLM will use it."""
    from ltrsched.models import text_model

    text, prefix = text_model(model, source)
    stated = _stated(text, prefix)
    if not stated:
        return  # (the class's own default base)
    bases = _bases_vllm_uses(text)
    if bases is None:
        return
    for base in bases:
        if positive_number(base):
            continue
        key, value = next(((k, v) for k, v in stated if v is base or repr(v) == repr(base)), (stated[0]))
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise UserError(f"{source}: {key!r} (RoPE's base, which vLLM's rotary embedding raises to a power) must be a "
                        f"positive number, got {shown}")
