"""Whether the installed vLLM serves a model directory's architecture, told before vLLM is imported.

vLLM refused an architecture it has no model class for only once imported (about 30 s on a CPU), in one line that
listed every supported architecture (hundreds of names). Here the names are read from the installed vLLM's own
registry source (``vllm/model_executor/models/registry.py``: the module-level dicts its ``_VLLM_MODELS`` merges,
parsed, never imported or copied), so the refusal comes before the import and names the closest supported ones.

The check refuses only what vLLM surely refuses; wherever vLLM could still serve the model it is left to vLLM:
a registered name, or one that becomes registered with another architecture suffix (vLLM converts
``FooForSequenceClassification`` from ``FooForCausalLM``), a first architecture that is a Transformers class (vLLM's
Transformers backend may serve it), custom code (``auto_map``), a model type vLLM reads with a config class of its
own (some set the architecture), vLLM plugins (they may register models), or a registry source not of the
expected shape (another vLLM release). Names that are no list of strings (one string, ``[7]``), or none where the
model type gives vLLM no class to take instead, are refused too, as vLLM refuses them once imported.

So is a ``model_type`` vLLM cannot read the config.json of (:func:`check_model_type`): one neither transformers nor
vLLM's own config registry knows, one only the model's own code reads (ltrsched never sets ``trust_remote_code``), or
none; a type vLLM reads with a config class of its own (``step3_text``, ``kimi_k2``) passes.

Shared by the engine's checks before a start and the simulator's sizing of a profile (pooling models,
:func:`check_generative`), as :mod:`ltrsched.config_classes` is: it reads vLLM's files, and neither side imports
the other. A pooling model is refused without vLLM too where the files tell: a sentence-transformers directory's
pooling module (:func:`sentence_transformers_pooling`), or an architecture's suffix (:data:`VLLM_RUNNERS`).
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from ltrsched.config_classes import (assignments, package_file, release_version, string_dict, vllm_distribution,
                                     vllm_file)
from ltrsched.errors import UserError

#: The command that lists every architecture the installed vLLM supports (it imports vLLM: seconds).
LIST_COMMAND = ("python -c \"from vllm import ModelRegistry; "
                "print(*sorted(ModelRegistry.get_supported_archs()), sep='\\n')\"")
#: Entry-point group of vLLM's general plugins, which may register model classes at its start.
PLUGIN_GROUP = "vllm.general_plugins"
#: How many close names a refusal suggests.
CLOSEST = 3


@dataclass(frozen=True)
class Registry:
    """The architecture names the installed vLLM's registry source gives.

    Attributes:
        supported: every registered architecture (``_VLLM_MODELS``' keys).
        previous: architectures vLLM dropped -> the last version that served them.
        plugins: architectures served out of tree -> the plugin's address.
        suffixes: the architecture suffixes vLLM converts between (``ForCausalLM``, ``ForSequenceClassification``..).
        runners: (suffix, runner) in vLLM's order: the runner (``generate`` or ``pooling``) it gives a name so ending.
        config_types: model types vLLM reads through config classes of its own.
        arch_types: architectures -> the model type vLLM reads a config.json naming none as
            (``_ARCHITECTURE_TO_MODEL_TYPE``: checkpoints whose config.json has only remote code).
    """

    supported: frozenset[str]
    previous: dict[str, str]
    plugins: dict[str, str]
    suffixes: tuple[str, ...]
    config_types: frozenset[str]
    arch_types: dict[str, str] = field(default_factory=dict)
    runners: tuple[tuple[str, str], ...] = ()


def _keys(node: ast.expr, names: dict[str, ast.expr], depth: int = 0) -> set[str]:
    """The string keys of a dict literal, ``**NAME`` merges of other module-level dicts followed; ValueError where
    a key is not a literal string or a merge is no such dict. A comprehension over another dict (``{k: v for k, v in
    NAME.items() if ...}``) counts as all of that dict's keys: more names than vLLM's, so that the check only
    leaves more to vLLM."""
    if depth > 8:
        raise ValueError("merges too deep")
    if isinstance(node, ast.DictComp) and len(node.generators) == 1:
        source = node.generators[0].iter
        if (isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute) and not source.args
                and source.func.attr in ("items", "keys")):
            source = source.func.value
        if isinstance(source, ast.Name) and source.id in names:
            return _keys(names[source.id], names, depth + 1)
    if not isinstance(node, ast.Dict):
        raise ValueError("not a dict literal")
    keys: set[str] = set()
    for key, value in zip(node.keys, node.values):
        if key is None:
            keys |= _keys(names[value.id] if isinstance(value, ast.Name) and value.id in names else value, names,
                          depth + 1)
        elif isinstance(key, ast.Constant) and isinstance(key.value, str):
            keys.add(key.value)
        else:
            raise ValueError("a key that is no literal string")
    return keys


@functools.lru_cache(maxsize=1)
def installed_registry() -> Registry | None:
    """The installed vLLM's architecture names (:class:`Registry`), read from its source without importing it;
    None where there is no vLLM, or its source is not of the shape this reads (vLLM's own check remains)."""
    registry, model, config = (vllm_file("model_executor/models/registry.py"), vllm_file("config/model.py"),
                               vllm_file("transformers_utils/config.py"))
    if registry is None or model is None or config is None:
        return None
    try:
        names = assignments(registry)
        supported = _keys(names["_VLLM_MODELS"], names)
        suffix_pairs = ast.literal_eval(assignments(model)["_SUFFIX_TO_DEFAULTS"])
        suffixes = tuple(pair[0] for pair in suffix_pairs)
        runners = tuple((pair[0], pair[1][0]) for pair in suffix_pairs)
        if not all(isinstance(s, str) and s and isinstance(r, str) for s, r in runners):
            return None
        config_names = assignments(config)
        types = config_names["_CONFIG_REGISTRY"]
        if isinstance(types, ast.Call) and not types.args:  # LazyConfigDict(model_type="ClassName", ...)
            config_types = set()
            for keyword in types.keywords:  # (name="Class", or **{"odd-name": "Class"})
                config_types |= {keyword.arg} if keyword.arg is not None else _keys(keyword.value, names)
        else:
            config_types = _keys(types, {})
    except (OSError, SyntaxError, KeyError, ValueError, TypeError, IndexError):
        return None
    if not supported or not suffixes:
        return None
    return Registry(frozenset(supported), string_dict(names.get("_PREVIOUSLY_SUPPORTED_MODELS")),
                    string_dict(names.get("_OOT_SUPPORTED_MODELS")), suffixes, frozenset(config_types),
                    string_dict(config_names.get("_ARCHITECTURE_TO_MODEL_TYPE")), runners)


@functools.lru_cache(maxsize=1)
def _model_modules() -> dict[str, str]:
    """Architecture -> the module of ``vllm/model_executor/models`` that serves it, from the installed vLLM's registry
    source (its literal ``"Arch": ("module", "Class")`` entries; empty where there is no vLLM or no such source)."""
    registry = vllm_file("model_executor/models/registry.py")
    if registry is None:
        return {}
    try:
        tree = ast.parse(registry.read_text(encoding="utf-8"), str(registry))
    except (OSError, SyntaxError, ValueError):
        return {}
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values):
            if (isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(value, ast.Tuple)
                    and len(value.elts) == 2 and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                                     for e in value.elts)):
                modules.setdefault(key.value, value.elts[0].value)
    return modules


def model_source(archs) -> str | None:
    """The source text of the installed vLLM's model module serving the first of ``archs`` (config.json's
    ``architectures``) it registers, read without importing vLLM; None where there is none (or no vLLM)."""
    if not isinstance(archs, list):
        return None
    for arch in archs:
        module = _model_modules().get(arch) if isinstance(arch, str) else None
        path = vllm_file(f"model_executor/models/{module}.py") if module and module.isidentifier() else None
        if path is not None:
            try:
                return path.read_text(encoding="utf-8")
            except (OSError, ValueError):
                return None
    return None


def _registered(arch: str, registry: Registry) -> bool:
    """``arch`` is registered, or becomes a registered name with another of vLLM's suffixes (its conversions)."""
    if arch in registry.supported:
        return True
    for suffix in registry.suffixes:
        if arch.endswith(suffix):
            stem = arch[: -len(suffix)]
            if any(stem + other in registry.supported for other in registry.suffixes):
                return True
    return False


#: vLLM 0.32's registry tables of pooling models (embeddings, late interaction, rewards, token and sequence
#: classification): an architecture it serves from one of these with no generative class has only its pooling runner.
POOLING_TABLES = frozenset({"_EMBEDDING_MODELS", "_LATE_INTERACTION_MODELS", "_REWARD_MODELS",
                            "_TOKEN_CLASSIFICATION_MODELS", "_SEQUENCE_CLASSIFICATION_MODELS"})


@functools.lru_cache(maxsize=1)
def _served_classes() -> dict[str, tuple[str, str]]:
    """Architecture -> (the table of the installed vLLM's registry source, the class) it serves it with: the last of
    ``_VLLM_MODELS``' merged tables naming it, as the merge keeps; empty where there is no such source."""
    registry = vllm_file("model_executor/models/registry.py")
    try:
        names = assignments(registry) if registry is not None else {}
    except (OSError, SyntaxError, ValueError):
        return {}
    merged, served = names.get("_VLLM_MODELS"), {}
    for key, value in zip(getattr(merged, "keys", ()), getattr(merged, "values", ())):
        table = names.get(value.id) if key is None and isinstance(value, ast.Name) else None
        for arch, entry in zip(getattr(table, "keys", ()), getattr(table, "values", ())):
            if (isinstance(arch, ast.Constant) and isinstance(arch.value, str) and isinstance(entry, ast.Tuple)
                    and len(entry.elts) == 2 and isinstance(entry.elts[1], ast.Constant)
                    and isinstance(entry.elts[1].value, str)):
                served[arch.value] = (value.id, entry.elts[1].value)
    return served


def _runner(name: str, registry: Registry) -> str | None:
    """The runner vLLM gives a name by its suffix (the first of :attr:`Registry.runners` it ends with), or None."""
    return next((runner for suffix, runner in registry.runners if name.endswith(suffix)), None)


def pooling_architecture(archs: list[str], registry: Registry) -> str | None:
    """The architecture of ``archs`` for which vLLM 0.32 picks its pooling runner (embeddings, classification,
    rewards: no generation), or None where it picks generation or this cannot tell.

    As vLLM decides, the first architecture that tells: a registered one by the table and class it is served from
    (one of :data:`POOLING_TABLES` with no generative class: ``Qwen2ForRewardModel``, ``BertModel``; not ``LlamaModel``,
    served by ``LlamaForCausalLM``), one it converts by its own suffix (``LlamaForSequenceClassification``)."""
    served = _served_classes()
    for arch in archs:
        if arch in registry.supported:
            table, cls = served.get(arch, (None, ""))
            return arch if table in POOLING_TABLES and _runner(cls, registry) != "generate" else None
        runner = _runner(arch, registry)
        if runner is not None:
            return arch if runner == "pooling" else None
    return None


#: vLLM 0.32's runners by architecture suffix (its ``_SUFFIX_TO_DEFAULTS``, in its order), for where the installed
#: vLLM's source cannot be read (no vLLM: the simulator's profiles): (suffix, the runner it gives a name so ending).
VLLM_RUNNERS = (("ForCausalLM", "generate"), ("ForConditionalGeneration", "generate"), ("ChatModel", "generate"),
                ("LMHeadModel", "generate"), ("ForTextEncoding", "pooling"), ("EmbeddingModel", "pooling"),
                ("ForSequenceClassification", "pooling"), ("ForTokenClassification", "pooling"),
                ("ForAudioClassification", "pooling"), ("ForImageClassification", "pooling"),
                ("ForVideoClassification", "pooling"), ("ClassificationModel", "pooling"),
                ("ForRewardModeling", "pooling"), ("RewardModel", "pooling"), ("Model", "pooling"))


def suffix_pooling_architecture(archs: list[str]) -> str | None:
    """The first of ``archs`` where its suffix alone surely makes it a pooling model in vLLM 0.32
    (:data:`VLLM_RUNNERS`: ``FooForSequenceClassification``, ``Qwen2ForRewardModel``), told without its registry; None
    elsewhere. Only the first name tells (vLLM decides by the first it registers or whose suffix it knows), and a
    plain ``*Model`` does not: vLLM registers some as generative (``LlamaModel``: ``LlamaForCausalLM``). No name vLLM
    0.32 registers with such a suffix is served for generation."""
    if not archs or not isinstance(archs[0], str):
        return None
    suffix, runner = next(((s, r) for s, r in VLLM_RUNNERS if archs[0].endswith(s)), (None, None))
    return archs[0] if runner == "pooling" and suffix != "Model" else None


#: The file of a sentence-transformers model directory that lists its modules, and the module types vLLM 0.32 reads
#: a pooling configuration from (its ``_ST_POOLING_MODULE_TYPES``): where one is listed, vLLM picks its pooling runner
#: whatever the architectures (``_get_default_runner_type``: "Some Sentence Transformers models use *ForCausalLM").
ST_MODULES_FILE = "modules.json"
ST_POOLING_TYPES = frozenset({"sentence_transformers.models.Pooling",
                              "sentence_transformers.sentence_transformer.modules.pooling.Pooling"})


def sentence_transformers_pooling(directory) -> str | None:
    """The one-line refusal of the model directory ``directory`` where its :data:`ST_MODULES_FILE` lists a
    sentence-transformers pooling module (:data:`ST_POOLING_TYPES`), which vLLM serves as a pooling model whatever its
    config.json's architectures (``BertModel``, ``Qwen2ForCausalLM``), or where vLLM cannot read that file as JSON
    (its start fails); None where there is no such file, or it lists no pooling module."""
    path = Path(directory) / ST_MODULES_FILE
    if not path.is_file():
        return None
    try:
        modules = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (f"{path}: not readable JSON ({reason}); vLLM reads it for a sentence-transformers pooling module and "
                "fails to start: fix it, or remove it from a generative model's directory")
    listed = [m.get("type") for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []
    pooling = next((t for t in listed if isinstance(t, str) and t in ST_POOLING_TYPES), None)
    if pooling is None:
        return None
    return (f"{path}: lists the sentence-transformers pooling module {pooling!r}, so vLLM serves the model as a "
            "pooling model (embeddings), not for generation, whatever its architectures: ltrsched serves only "
            "generative models (*ForCausalLM / *ForConditionalGeneration)")


def _pooling_only(arch: str, registry: Registry) -> bool:
    """``arch`` is a pooling architecture of the installed vLLM (:func:`pooling_architecture`) whose model module
    serves no architecture for generation (``BertModel``; not ``Gemma3TextModel``, whose module serves
    ``Gemma3ForCausalLM``)."""
    module = _model_modules().get(arch)
    if module is None or pooling_architecture([arch], registry) is None:
        return False
    return not any(_model_modules().get(other) == module and pooling_architecture([other], registry) is None
                   for other in registry.supported)


def pooling_line(arch: str, source: str) -> str:
    """The one-line refusal of ``source`` (a config.json) whose architecture ``arch`` vLLM serves as a pooling model."""
    return (f"{source}: architecture {arch!r} is served by vLLM as a pooling model (embeddings, classification or "
            "rewards), not for generation: ltrsched serves only generative models (*ForCausalLM / "
            "*ForConditionalGeneration)")


def check_generative(model, source: str) -> None:
    """One-line :class:`UserError` naming ``source`` where vLLM would serve the config.json ``model`` as a pooling
    model (:func:`pooling_architecture`; where vLLM's source cannot be read, by suffix alone:
    :func:`suffix_pooling_architecture`). A config naming no architectures is taken as vLLM takes it, by
    transformers' base model class of its type (``bert``: ``BertModel``), refused only where vLLM registers that class
    as a pooling one and serves nothing of its module for generation (:func:`_pooling_only`): a profile's model config
    may be a composite model's text config, whose base class vLLM never reads (``gemma3_text``'s ``Gemma3TextModel``,
    an embedding model, where the model is a generative Gemma-3). Nothing is refused where the architectures are no
    list of names, or custom code (``auto_map``) or a model type vLLM reads with a config class of its own decides."""
    if not isinstance(model, dict) or model.get("auto_map"):
        return
    registry = installed_registry()
    archs, kind = model.get("architectures"), model.get("model_type")
    if registry is not None and isinstance(kind, str) and kind in registry.config_types:
        return  # (a model_type that is no name, unhashable, is refused where it is read)
    if not archs and isinstance(kind, str):  # (vLLM's get_config: transformers' base class of the type)
        base = _base_model_class(kind)
        archs = [base] if registry is not None and base is not None and _pooling_only(base, registry) else None
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        return
    pooled = suffix_pooling_architecture(archs) if registry is None else pooling_architecture(archs, registry)
    if pooled is not None:
        raise UserError(pooling_line(pooled, source))


def _transformers_class(arch: str) -> bool:
    """transformers has a class of that name (vLLM's Transformers backend may serve it), found without importing
    the modelling code."""
    try:
        import transformers
    except ImportError:
        return False
    return arch in dir(transformers)


def _plugins_installed() -> bool:
    """Some package other than vLLM installs a vLLM general plugin (vLLM ships its own: LoRA resolvers)."""
    try:
        points = importlib.metadata.entry_points(group=PLUGIN_GROUP)
        return any(point.value.split(":")[0].split(".")[0] != "vllm" for point in points)
    except Exception:  # (broken metadata: assume there may be plugins)
        return True


def unsupported_line(archs: list[str], supported, version: str | None = None) -> str:
    """The refusal of architectures ``archs``, none of which vLLM serves: what it is, the closest supported names,
    and how to list them all (one line; ``supported``: vLLM's names; ``version``: vLLM's, if known)."""
    vllm = f"vLLM {version}" if version else "the installed vLLM"
    named = ", ".join(repr(a) for a in archs)
    close = []
    for arch in archs:
        close += [n for n in difflib.get_close_matches(arch, sorted(supported), n=CLOSEST, cutoff=0.6)
                  if n not in close]
    closest = f"closest supported: {', '.join(close[:CLOSEST])}; " if close else ""
    return (f"{vllm} does not support architecture{'s' if len(archs) > 1 else ''} {named}; {closest}list those "
            f"it supports with: {LIST_COMMAND}")


@functools.lru_cache(maxsize=1)
def _base_model_classes() -> dict | None:
    """transformers' ``MODEL_MAPPING_NAMES`` (model type -> base model class), read from its source without importing
    it (the import takes seconds and loads torch); None where that source is not of the expected shape."""
    path = package_file("transformers", "models/auto/modeling_auto.py")
    try:
        value = assignments(path)["MODEL_MAPPING_NAMES"] if path is not None else None
        if not (isinstance(value, ast.Call) and len(value.args) == 1 and not value.keywords):
            return None  # (OrderedDict([...]))
        return {k: v for k, v in ast.literal_eval(value.args[0]) if isinstance(k, str) and isinstance(v, str)}
    except (OSError, SyntaxError, KeyError, ValueError, TypeError):
        return None


def _base_model_class(model_type) -> str | None:
    """transformers' base model class of ``model_type`` (``LlamaModel``): the architecture vLLM gives a config.json
    that names none; None where transformers has none (or is not installed)."""
    if not isinstance(model_type, str):
        return None
    names = _base_model_classes()
    if names is None:  # (another transformers' source: its table, imported)
        try:
            from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES as names
        except ImportError:
            return None
    name = names.get(model_type)
    return name if isinstance(name, str) else None


def _names(model: dict, source: str, registry: Registry | None) -> list[str] | None:
    """The architecture names vLLM 0.32 will resolve for ``model``, or None where its own reading decides (a model
    type it reads through a config class of its own; custom code); one-line :class:`UserError` where vLLM surely
    refuses them before serving.

    vLLM takes ``architectures`` as a list of strings (its ``ModelArchitectureConfig``, a pydantic dataclass): a single
    string or a name that is not one (``[7]``) was refused only once vLLM was imported ("architectures: Input should
    be a valid list"), as was a model type that is no string (``[1]``: a TypeError traceback). None, ``[]`` or no
    key (anything false) takes transformers' base class of the model type (``LlamaModel``, which vLLM serves as
    ``LlamaForCausalLM``); a type without one had "No model architectures are specified"."""
    kind = model.get("model_type")
    if kind is not None and not isinstance(kind, str):  # (vLLM's reading: a TypeError traceback, or a refusal)
        shown = repr(kind) if len(repr(kind)) <= 60 else repr(kind)[:57] + "..."
        raise UserError(f"{source}: 'model_type' must be a string naming the model's type (e.g. \"llama\"), got "
                        f"{shown}")
    if model.get("auto_map") or (registry is not None and kind in registry.config_types):
        return None
    archs = model.get("architectures")
    if not archs:  # (vLLM's get_config: `if not config.architectures`)
        if not kind:  # (vLLM's reading had "Unrecognized model ... Should have a `model_type` key")
            raise UserError(f"{source} names neither a 'model_type' nor 'architectures', from which vLLM picks the "
                            "model's class: add them, e.g. \"model_type\": \"llama\", \"architectures\": "
                            "[\"LlamaForCausalLM\"]")
        base = _base_model_class(kind)
        if base is None and registry is not None:
            raise UserError(f"{source} names no 'architectures', and transformers has no base model class of model "
                            f"type {kind!r} for vLLM to take instead: add the model's "
                            "architectures, e.g. \"architectures\": [\"LlamaForCausalLM\"]")
        return None if base is None else [base]
    if not isinstance(archs, list) or not all(isinstance(a, str) and a for a in archs):
        shown = repr(archs) if len(repr(archs)) <= 60 else repr(archs)[:57] + "..."
        raise UserError(f"{source}: 'architectures' must be a list of model class names (vLLM refuses anything else), "
                        f"e.g. [\"LlamaForCausalLM\"], got {shown}")
    return archs


def _transformers_types():
    """transformers' config classes by model type (its ``CONFIG_MAPPING``); None where it is not installed."""
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    except ImportError:
        return None
    return CONFIG_MAPPING


def check_model_type(model: dict, source: str, registry: Registry | None) -> None:
    """One-line :class:`UserError` naming ``source`` and ``model_type`` where vLLM 0.32 cannot read the config.json
    ``model`` at all, which it said only once imported (about 30 s on a CPU; its ``HFConfigParser``, then transformers'
    ``AutoConfig`` without ``trust_remote_code``, which ltrsched never sets): a model type neither transformers nor
    vLLM's own config registry knows ("Transformers does not recognize this architecture"), one only the model's own
    code (``auto_map``'s ``AutoConfig``) reads, or none, where neither ``speculators_config`` nor an architecture
    vLLM maps to a type gives it ("Unrecognized model"). A type vLLM reads with a config class of its own passes
    (``step3_text``, ``kimi_k2``, ...). Nothing is refused where vLLM's registry source or transformers cannot be
    read (``registry`` None)."""
    known = _transformers_types()
    if registry is None or known is None:
        return
    kind, archs = model.get("model_type"), model.get("architectures")
    if kind is None and model.get("speculators_config") is not None:
        kind = "speculators"
    if kind is None and isinstance(archs, list) and archs and isinstance(archs[0], str):
        kind = registry.arch_types.get(archs[0])
    if kind in registry.config_types or kind in known:
        return  # (vLLM's own class, or transformers')
    auto_map = model.get("auto_map")
    if isinstance(auto_map, dict) and "AutoConfig" in auto_map:
        raise UserError(f"{source}: model_type {kind!r} is read by the model's own code (auto_map's AutoConfig), "
                        "which vLLM runs only with trust_remote_code, which ltrsched does not set (vLLM refuses it "
                        "once imported): use a model_type that transformers or vLLM reads, e.g. \"llama\"")
    if kind is None:
        raise UserError(f"{source} names no 'model_type', from which vLLM (through transformers' AutoConfig) reads it "
                        "(\"Unrecognized model\" once imported): add it, e.g. \"model_type\": \"llama\"")
    close = difflib.get_close_matches(str(kind), sorted({*known.keys(), *registry.config_types}), n=CLOSEST)
    closest = f" (closest known: {', '.join(close)})" if close else ""
    raise UserError(f"{source}: model_type {kind!r} is known neither to transformers nor to vLLM's own config "
                    f"classes{closest}, so vLLM cannot read the config (\"Transformers does not recognize this "
                    "architecture\" once imported): fix model_type, or upgrade transformers")


def check_architecture(model: dict, source: str, directory=None) -> None:
    """One-line :class:`UserError` naming ``source`` (the config.json) where the installed vLLM surely has no model
    class for the model's ``architectures``, or cannot read its ``model_type`` (:func:`check_model_type`; see the
    module's docstring for what is left to vLLM), or would serve it as a pooling model: by a sentence-transformers
    pooling module in the model directory ``directory`` (:func:`sentence_transformers_pooling`), by its architecture
    (where vLLM's source cannot be read, by its suffix alone: :func:`suffix_pooling_architecture`)."""
    registry = installed_registry()
    archs = _names(model, source, registry)
    check_model_type(model, source, registry)
    line = sentence_transformers_pooling(directory) if directory is not None else None
    if line is not None:
        raise UserError(line)
    pooled = suffix_pooling_architecture(archs) if archs is not None and registry is None else None
    if pooled is not None:
        raise UserError(pooling_line(pooled, source))
    if archs is None or registry is None:
        return
    if any(_registered(a, registry) for a in archs):
        pooled = pooling_architecture(archs, registry)
        if pooled is not None:  # (vLLM picks its pooling runner: no generation to schedule)
            raise UserError(pooling_line(pooled, source))
        return
    if (model.get("auto_map") or model.get("model_type") in registry.config_types or _transformers_class(archs[0])
            or _plugins_installed()):
        return
    version = release_version(vllm_distribution())
    for arch in archs:  # vLLM's own wording for a dropped one, or one served by a plugin
        if arch in registry.previous:
            raise UserError(f"{source}: architecture {arch!r} was served by vLLM until v{registry.previous[arch]} and "
                            f"is not by vLLM {version}: serve it with an older vLLM, or another model")
        if arch in registry.plugins:
            raise UserError(f"{source}: architecture {arch!r} is not in vLLM {version} itself: install its plugin, "
                            f"{registry.plugins[arch]}")
    raise UserError(f"{source}: {unsupported_line(archs, registry.supported, version)}")


#: What vLLM's refusal of an unknown architecture says before its list of every supported one.
_VLLM_LIST = "Supported architectures: "


def _literal_names(text: str):
    """The names in a printed list or ``dict_keys([...])``; None if it is neither."""
    text = text.strip().rstrip(".")
    if text.startswith("dict_keys(") and text.endswith(")"):
        text = text[len("dict_keys("):-1]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    ok = isinstance(value, (list, tuple, set)) and all(isinstance(n, str) for n in value)
    return list(value) if ok else None


def shorten_vllm_refusal(line: str) -> str:
    """vLLM's refusal of unsupported architectures without its list of hundreds of names (the closest ones and how
    to list them all instead); any other line as it is."""
    head, sep, names = line.partition(_VLLM_LIST)
    if not sep or "are not supported for now" not in head:
        return line
    supported = _literal_names(names)
    archs = _literal_names(head[head.find("["): head.rfind("]") + 1]) if "[" in head else None
    if not supported or not archs:
        return f"{head.strip()} List the supported ones with: {LIST_COMMAND}"
    return unsupported_line(archs, supported)
