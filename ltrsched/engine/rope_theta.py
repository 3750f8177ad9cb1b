"""RoPE's base (``rope_theta``) in a model's config.json, checked before the engine starts as vLLM 0.32 will use it.

vLLM reads the text model's config through transformers' config class, moves ``rope_theta`` (or the older
``rotary_emb_base``) into ``rope_parameters`` (its ``patch_rope_parameters``: transformers'
``standardize_rope_params``), and its rotary embedding raises each base to a power. Neither transformers nor vLLM
checks the value: a list, a string or null was a TypeError traceback once the engine had loaded the model; zero, a
negative number or NaN gave infinite or NaN rotation frequencies (a model that computes NaN, silently). Each is one
line here instead; a positive number is accepted, as vLLM serves it.

Some models keep the base elsewhere, where vLLM's model module reads it (:data:`NESTED_BASES`): DBRX under
``attn_config`` (its whole part: ``int(config.attn_config.rope_theta)``, and with none a traceback), ChatGLM as
``rope_ratio`` (the base is 10000 times it). A model type vLLM reads through a config class of its own (its
``_CONFIG_REGISTRY``: ``step3_text``, ``RefinedWeb``, ...; registered before transformers' own class) keeps the base
where the file states it, and its model takes it from the config's ``rope_parameters`` (vLLM's
``patch_rope_parameters``): each base stated is checked where that model reads them.

Units: the base is a dimensionless number (the rotation's wavelength scale).
"""

from __future__ import annotations

import copy
import inspect

from ltrsched.engine.model_context import positive_number
from ltrsched.errors import UserError
from ltrsched.hf_quiet import transformers_quiet

#: The keys a config gives RoPE's base under, in the order vLLM looks (``rotary_emb_base``: older custom models).
BASE_KEYS = ("rope_theta", "rotary_emb_base")
#: Where a RoPE parameter dict may sit in a config.json (transformers reads ``rope_scaling``, else
#: ``rope_parameters``).
ROPE_DICTS = ("rope_scaling", "rope_parameters")
#: Model type -> (the dict of the text config holding the base, or None for the config itself; its key; what it is,
#: in words; whether vLLM's model takes the base's whole part; whether it needs one: transformers' class gives no
#: default), as vLLM 0.32's model modules read them: ``dbrx.py`` ``int(config.attn_config.rope_theta)``,
#: ``chatglm.py`` ``10000 * getattr(config, "rope_ratio", 1.0)``.
NESTED_BASES = {"dbrx": ("attn_config", "rope_theta", "RoPE's base", True, True),
                "chatglm": (None, "rope_ratio", "RoPE's base over 10000", False, False)}
#: Marks a model type vLLM reads through a config class of its own (:func:`_config_class`).
OWN_CLASS = "vLLM's own"


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
    from ltrsched.architectures import model_source

    source = model_source(text.get("architectures"))
    return source is not None and "get_rope(" in source and "rope_parameters" in source


def _config_class(kind):
    """The config class vLLM reads model type ``kind`` through: the one its own registry names (it registers them
    with transformers before reading: :func:`ltrsched.config_classes.vllm_config_classes`), an upstream class
    looked up on transformers, or :data:`OWN_CLASS` for a class of vLLM's own (not imported: it imports vLLM);
    else transformers' class of the type; None where there is none (vLLM refuses the type)."""
    from ltrsched.config_classes import vllm_config_classes

    try:
        named = vllm_config_classes().get(kind)
        if named is not None:
            module, _, name = named.rpartition(".")
            if module != "transformers":
                return OWN_CLASS
            import transformers

            return getattr(transformers, name, None)
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        return CONFIG_MAPPING[kind]
    except (ImportError, KeyError, TypeError):
        return None


def _own_class_bases(text: dict, stated: list[tuple[str, object]]) -> list | None:
    """The bases a model type read through a config class of vLLM's own uses: each one the file states, where
    vLLM's model module for its ``architectures`` takes its RoPE from the config's ``rope_parameters`` (where
    ``patch_rope_parameters`` puts them) and it does not run ALiBi instead (Falcon's ``alibi``); else None."""
    from ltrsched.architectures import model_source

    source = model_source(text.get("architectures"))
    if source is None or "config.rope_parameters" not in source or text.get("alibi") is True:
        return None
    return [value for _, value in stated]


def _bases_vllm_uses(text: dict, stated: list[tuple[str, object]]) -> list | None:
    """The bases vLLM's rotary embeddings will take (one per RoPE parameter dict), from the config class vLLM reads
    the text model's type through (:func:`_config_class`) as vLLM patches it; None where neither the class nor vLLM's
    model reads RoPE (GPT-2, OPT, ...: :func:`_vllm_model_reads_rope`), a Falcon runs ALiBi instead, or the class
    cannot be built (other checks and vLLM's own reading decide). ``stated``: the bases the file states
    (:func:`_stated`), those a class of vLLM's own keeps (:func:`_own_class_bases`)."""
    config_class = _config_class(text.get("model_type"))
    if config_class is None:
        return None
    if config_class is OWN_CLASS:
        return _own_class_bases(text, stated)
    if ("rope_parameters" not in inspect.signature(config_class.__init__).parameters
            and not _vllm_model_reads_rope(text)):
        return None
    try:
        with transformers_quiet():
            config = config_class.from_dict(copy.deepcopy(text))  # (the class fills in nested dicts in place)
        if getattr(config, "rotary", True) is False:  # (Falcon with alibi: no rotary embedding)
            return None
        theta = next((getattr(config, key) for key in BASE_KEYS if hasattr(config, key)), None)
        if theta is not None:  # (vLLM's patch_rope_parameters)
            config.rope_theta = theta
        if theta is None and not getattr(config, "rope_parameters", None):
            return None
        with transformers_quiet():  # ("no RoPE parameters were found" for a false base: its own note, not the user's)
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
    _check_nested_base(text, prefix, source)
    stated = _stated(text, prefix)
    if not stated:
        return  # (the class's own default base)
    bases = _bases_vllm_uses(text, stated)
    if bases is None:
        return
    for base in bases:
        if positive_number(base):
            continue
        key, value = next(((k, v) for k, v in stated if v is base or repr(v) == repr(base)), (stated[0]))
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise UserError(f"{source}: {key!r} (RoPE's base, which vLLM's rotary embedding raises to a power) must be a "
                        f"positive number, got {shown}")


def _check_nested_base(text: dict, prefix: str, source: str) -> None:
    """One-line :class:`UserError` naming ``source`` and the key where a model type that keeps RoPE's base elsewhere
    (:data:`NESTED_BASES`) gives one vLLM's model cannot use: no positive number (DBRX: at least 1, as its whole part is
    taken), or none where vLLM's model needs it (DBRX's ``attn_config.rope_theta``: an AttributeError traceback)."""
    where = NESTED_BASES.get(text.get("model_type"))
    if where is None:
        return
    holder_key, key, what, whole, needed = where
    holder = text if holder_key is None else text.get(holder_key)
    name = f"{prefix}{holder_key + '.' if holder_key else ''}{key}"
    if not isinstance(holder, dict) or key not in holder:
        if needed:
            raise UserError(f"{source} has no {name!r} ({what}, which vLLM's {text['model_type']} model reads "
                            "there; transformers' config class gives none): add it, e.g. 500000")
        return
    value = holder[key]  # (a null too: the class keeps it, and vLLM's model multiplies it)
    if positive_number(value) and (not whole or value >= 1):
        return
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    at_least = ", at least 1 (vLLM's model takes its whole part)" if whole else ""
    raise UserError(f"{source}: {name!r} ({what}, which vLLM's rotary embedding "
                    f"raises to a power) must be a positive number{at_least}, got {shown}")
