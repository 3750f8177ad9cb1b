"""Policy registry and spec strings (``name`` or ``name:key=value,key=value``).

Register a policy with the :func:`register` decorator. Constructor keyword arguments are the spec's
parameters; their annotations (int, float, bool, str) say how a value is parsed. Policies in other
files are found through the ``ltrsched.policies`` entry-point group, or by naming a module / ``.py``
file in the ``LTRSCHED_PLUGINS`` environment variable (``os.pathsep``-separated) or ``--plugin``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import typing
import weakref
from pathlib import Path
from typing import Callable

from ltrsched.arguments import check_argument
from ltrsched.errors import UserError
from ltrsched.numbers import plain_number_text
from ltrsched.plugin_scope import load_installed, on_exit
from ltrsched.policies.base import Policy


class PluginSources:
    """Where the code of registered classes (policies, routers) from outside this package came from, by
    registered name: the module and the SHA-256 of its file when the class registered. A result's key
    covers it (:func:`policy_source`), and plugin errors name its files (:mod:`ltrsched.plugin_errors`)."""

    #: Classes registered so far, in every registry (a plugin that registers nothing is told so).
    registrations = 0

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, str | None]] = {}
        self._modules: dict[str, str] = {}  # registered name -> the module defining the class (sys.modules' name)

    def record(self, cls: type, registry: dict[str, type]) -> None:
        """Register ``cls`` in ``registry`` as ``cls.name`` (replacing whatever had that name) and note its source.
        A plugin's class is registered until the command that loaded it ends (:mod:`ltrsched.plugin_scope`)."""
        PluginSources.registrations += 1
        name = cls.name
        before = registry.get(name), self._by_name.get(name), self._modules.get(name)
        registry[name] = cls
        self._by_name.pop(name, None)
        self._modules.pop(name, None)
        if not is_builtin(cls):  # a plugin: the code run is part of a result's key
            self._by_name[name] = _code_digest(cls.__module__)
            self._modules[name] = cls.__module__
            on_exit(lambda: self._put_back(registry, name, *before))

    def _put_back(self, registry: dict[str, type], name: str, cls: type | None, source: dict | None,
                  module: str | None) -> None:
        """``name`` registered as before :meth:`record` (``cls`` None: not at all)."""
        for table, value in ((registry, cls), (self._by_name, source), (self._modules, module)):
            if value is None:
                table.pop(name, None)
            else:
                table[name] = value

    def get(self, name: str) -> dict[str, str | None] | None:
        """The source of the plugin class registered as ``name``; None for this package's classes."""
        return self._by_name.get(name)

    def modules(self) -> set[str]:
        """The names of the modules that define the registered plugin classes."""
        return set(self._modules.values())


_REGISTRY: dict[str, type[Policy]] = {}
#: Where the code of policies outside this package came from (see :func:`policy_source`).
_SOURCES = PluginSources()
_BUILTINS_LOADED = False
#: Whether ``LTRSCHED_PLUGINS`` has been read (again by a command: :mod:`ltrsched.plugin_scope`).
_ENV_PLUGINS_LOADED = False
#: Plugins loaded, each once: a ``.py`` file's resolved path, or a module's name.
_PLUGINS_LOADED: set[str] = set()
#: Modules loaded from plugin files, by module name: the name a result's key gives them, ``ltrsched_plugin_<stem>``.
_FILE_MODULES: dict[str, str] = {}


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise TypeError("register() takes a Policy subclass")
    if not is_builtin(cls):  # the built-ins first, whenever a plugin loads, so that it cannot replace one
        importlib.import_module("ltrsched.policies.builtin")
    check_name(cls, "policy")
    check_methods(cls, Policy, "policy", POLICY_METHODS)
    check_not_shadowing(_REGISTRY.get(cls.name), cls, "policy")
    _SOURCES.record(cls, _REGISTRY)
    return cls


#: What hosts call on a policy, with the positional arguments they pass (after ``self``); ``rank`` is required.
POLICY_METHODS = {"rank": ("view",), "prepare": ("requests",), "on_arrival": ("request_ids", "now"),
                  "on_step": ("view", "scheduled", "step_time"),
                  "on_step_ranks": ("view", "order", "ranks", "step_time"), "on_finish": ("request_ids", "now")}


def check_methods(cls: type, base: type, kind: str, methods: dict[str, tuple[str, ...]]) -> None:
    """Refuse a class that hosts could not call: it lacks the first of ``methods`` (the base class's raises
    NotImplementedError), or one of them takes other arguments than hosts pass (``def rank(self)``, ``def
    prepare(self, requests)`` on a router). Each was a traceback through the simulator or the engine at the run's
    first call, naming neither the plugin nor the method hosts call; now loading the plugin fails in one line. A
    method whose signature cannot be read (a C callable, a descriptor of another kind) is left to the call."""
    for i, (method, args) in enumerate(methods.items()):
        call = f"{method}({', '.join(('self',) + args)})"
        raw, inherited = inspect.getattr_static(cls, method, None), inspect.getattr_static(base, method, None)
        if i == 0 and raw is inherited:
            raise ValueError(f"{kind} class {cls.__qualname__} ({cls.name!r}) defines no {method}(); a {kind} must "
                             f"define {call}")
        if raw is inherited:
            continue
        if not isinstance(raw, (staticmethod, classmethod)) and not inspect.isfunction(raw):
            if not callable(raw) and not hasattr(type(raw), "__get__"):  # (None, a number; not a partialmethod)
                raise ValueError(f"{kind} class {cls.__qualname__} ({cls.name!r}) has {method} = {raw!r}, no "
                                 f"method; define {call}")
            continue
        try:
            signature = inspect.signature(getattr(cls, method))
        except (TypeError, ValueError):
            continue
        try:
            signature.bind(*([None] if inspect.isfunction(raw) else []), *args)
        except TypeError:
            raise ValueError(f"{kind} class {cls.__qualname__} ({cls.name!r}) defines {method}{signature}, which "
                             f"cannot be called as hosts call it: {call}") from None


def is_builtin(cls: type) -> bool:
    """True for a class of this package (not a plugin's)."""
    return cls.__module__.partition(".")[0] == "ltrsched"


def check_name(cls: type, kind: str) -> None:
    """Refuse a class whose ``name`` no spec string can name: not a string (``ltrsched policies`` failed sorting
    it, a traceback), empty, or holding ``:``, ``,``, ``=`` or surrounding spaces (a spec splits or strips there,
    so the class was listed but unreachable), or a line break or other control character (``name = "a\nb"`` was
    reachable only as ``-P 'a<newline>b'`` and split the run's printed header, sweep.csv rows and report tables)."""
    name = cls.name
    if (not isinstance(name, str) or not name.strip() or name != name.strip() or any(c in name for c in ":,=")
            or not name.isprintable()):
        raise ValueError(f"{kind} class {cls.__qualname__} has the name {name!r}; a {kind} name is a non-empty, "
                         "printable text (no line breaks or control characters) without ':', ',', '=' or "
                         "surrounding spaces (spec strings are name:key=value,...)")


def check_not_shadowing(existing: type | None, cls: type, kind: str) -> None:
    """Refuse a plugin class that would replace a built-in one of the same name (``--policy fcfs`` would then
    silently run the plugin's code), or another plugin class of that name (from another plugin file, or the
    same file: the last one registered ran, silently); a class of this package, or a module registering the
    same class again (reloaded), may."""
    if existing is None or existing is cls:
        return
    if cls.__module__ == existing.__module__ and (cls.__qualname__ == existing.__qualname__ or is_builtin(cls)):
        return
    if is_builtin(existing) and not is_builtin(cls):
        raise ValueError(f"{kind} name {cls.name!r} (class {cls.__qualname__}) is a built-in {kind}'s; "
                         "give the plugin's class another name")
    if not is_builtin(existing):
        raise ValueError(f"{kind} name {cls.name!r} is registered twice, by class {existing.__qualname__} "
                         f"({_defined_in(existing)}) and by class {cls.__qualname__} ({_defined_in(cls)}); "
                         "give one of them another name")


def _defined_in(cls: type) -> str:
    """The file (else the module) that defines ``cls``, for error messages."""
    return getattr(sys.modules.get(cls.__module__), "__file__", None) or cls.__module__


def plugin_modules() -> set[str]:
    """The modules that define the plugin policies registered so far (loads nothing)."""
    return _SOURCES.modules()


def _code_digest(module_name: str) -> dict[str, str | None]:
    """The module's name (for a plugin file, its name without the folder's hash: :data:`_FILE_MODULES`, so that a
    result's key does not change with the folder) and the SHA-256 of its file as it is when the class registers (the
    code that runs)."""
    from ltrsched.fingerprint import file_digest

    file = getattr(sys.modules.get(module_name), "__file__", None)
    try:
        digest = file_digest(file) if file and os.path.isfile(file) else None
    except UserError:
        digest = None
    return {"module": _FILE_MODULES.get(module_name, module_name), "sha256": digest}


def plugin_file_module(path: Path) -> str:
    """The module name a plugin file is loaded as: ``ltrsched_plugin_<stem>_<hash>``, the hash (12 hex digits)
    of its resolved path, so that files of the same name in two folders are two modules (with the stem alone the
    second replaced the first in ``sys.modules``: its classes were found in the other file, and a class of the same
    name registered under the same policy name silently replaced the first file's as if reloaded)."""
    resolved = str(path.resolve())
    return f"ltrsched_plugin_{path.stem}_{hashlib.sha256(os.fsencode(resolved)).hexdigest()[:12]}"


def policy_source(spec: str) -> dict[str, str | None] | None:
    """For a spec whose policy comes from a plugin (``--plugin``, ``LTRSCHED_PLUGINS``, an entry point):
    its module and the SHA-256 of the module's file when it was loaded; None for a built-in policy (this
    package's version covers it) or an unknown name. Only the file that defines the class is covered, not
    other modules it imports."""
    name, _ = parse_spec(spec)
    _load_builtins()
    return _SOURCES.get(name)


def _load_builtins() -> None:
    """The built-in policies and installed entry points' (once a process: they stay), then ``LTRSCHED_PLUGINS``'."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        load_installed("ltrsched.policies.builtin", "ltrsched.policies", "policy")
    load_env_plugins()


def load_env_plugins() -> None:
    """Load every module or ``.py`` file named in ``LTRSCHED_PLUGINS`` (policies and routers alike), once (a
    command reads it again: :mod:`ltrsched.plugin_scope`)."""
    global _ENV_PLUGINS_LOADED
    if _ENV_PLUGINS_LOADED:
        return
    _ENV_PLUGINS_LOADED = True
    on_exit(read_env_plugins_again)
    for item in filter(None, os.environ.get("LTRSCHED_PLUGINS", "").split(os.pathsep)):
        try:
            load_plugin(item)
        except UserError as exc:  # say where the name came from: the user may not remember setting it
            raise UserError(f"{exc} (named in the environment variable LTRSCHED_PLUGINS; fix or unset it)") from None


def read_env_plugins_again() -> None:
    """Read ``LTRSCHED_PLUGINS`` again when policies are next looked up (a command's own value; plugins loaded
    already are not loaded twice)."""
    global _ENV_PLUGINS_LOADED
    _ENV_PLUGINS_LOADED = False


def load_plugin(module_or_path: str) -> None:
    """Import a module name or a ``.py`` file so that its ``@register`` policies appear."""
    if not module_or_path.strip():  # (it said "cannot load plugin : ValueError: Empty module name")
        raise UserError(f"--plugin {module_or_path!r} is empty: give a module name or a .py file")
    path = Path(module_or_path)
    is_file = module_or_path.endswith(".py")
    loaded_as = str(path.resolve()) if is_file else module_or_path  # a file once, however its path is spelled
    if loaded_as in _PLUGINS_LOADED:
        return
    imported_before = module_or_path in sys.modules  # importing it again registers nothing new
    registrations = PluginSources.registrations
    try:
        if is_file:
            if not path.is_file():
                raise UserError(f"plugin file not found: {module_or_path}")
            spec = importlib.util.spec_from_file_location(plugin_file_module(path), path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            _FILE_MODULES[spec.name] = f"ltrsched_plugin_{path.stem}"
            on_exit(lambda: (sys.modules.pop(spec.name, None), _FILE_MODULES.pop(spec.name, None)))
            spec.loader.exec_module(module)
        elif "/" in module_or_path or os.sep in module_or_path or path.is_file():
            raise UserError(f"plugin {module_or_path} is neither a module name nor a .py file")
        else:
            if not imported_before:  # (imported again by the next command: its classes registered again)
                on_exit(lambda: sys.modules.pop(module_or_path, None))
            importlib.import_module(module_or_path)
    except UserError:
        raise
    except ModuleNotFoundError as exc:
        if not is_file and (module_or_path == exc.name or module_or_path.startswith(f"{exc.name}.")):
            # the name itself (not a module the plugin imports): `--plugin policies.csv` said only "No module
            # named 'policies'"
            raise UserError(f"cannot load plugin {module_or_path}: no module {exc.name!r} is importable here; give "
                            "a .py file's path, or the name of a module on the Python path") from None
        raise UserError(f"cannot load plugin {module_or_path}: {type(exc).__name__}: {exc}") from None
    except (Exception, SystemExit) as exc:  # a plugin that calls sys.exit() is a broken plugin too
        raise UserError(f"cannot load plugin {module_or_path}: {type(exc).__name__}: {exc}") from None
    if PluginSources.registrations == registrations and not imported_before:
        raise UserError(f"plugin {module_or_path} registers no policy or router: decorate its Policy (or Router) "
                        "subclass with @register (from ltrsched.policies, or ltrsched.routers)")
    _PLUGINS_LOADED.add(loaded_as)
    on_exit(lambda: _PLUGINS_LOADED.discard(loaded_as))


def available() -> dict[str, type[Policy]]:
    """Registered policies by name."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The spec parameters of ``cls``: its constructor's keyword-capable parameters after ``self``, by name (a copy;
    read from the class once per ``__init__``: :func:`_class_info`)."""
    return dict(_class_info(cls)[0])


#: What depends only on a class's ``__init__`` (its spec parameters, its type hints), by class, with the ``__init__``
#: it was read from: ``inspect.signature`` and ``typing.get_type_hints`` took 1-2 s of a 10,000-policy sweep's checks.
#: Weak keys: a plugin class unregistered when its command ends is not kept; a class registered under a name again
#: (a reloaded plugin) is another class, and a class whose ``__init__`` was replaced is read again.
_CLASS_INFO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _class_info(cls: type) -> tuple[dict[str, inspect.Parameter], dict[str, object]]:
    """``cls``'s spec parameters (:func:`_parameters`) and its ``__init__``'s type hints ({} where they cannot be
    resolved), read once per class and ``__init__``."""
    init = cls.__init__
    cached = _CLASS_INFO.get(cls)
    if cached is not None and cached[0] is init:
        return cached[1]
    sig = inspect.signature(init)
    params = {n: p for n, p in list(sig.parameters.items())[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # (a name not defined yet, perhaps: read again next time, as before)
        return params, {}
    info = (params, hints)
    _CLASS_INFO[cls] = (init, info)
    return info


def _converter(cls: type, param: inspect.Parameter) -> Callable[[str], object]:
    hints = _class_info(cls)[1]
    hint = hints.get(param.name, type(param.default) if param.default is not inspect.Parameter.empty else str)
    args = () if typing.get_origin(hint) is typing.Literal else typing.get_args(hint)
    if args:  # Optional[X] / X | None
        hint = next((a for a in args if a is not type(None)), str)
    if typing.get_origin(hint) is typing.Literal:
        return _one_of(typing.get_args(hint))
    if hint is bool:
        def to_bool(text: str) -> bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {text!r}")
        return to_bool
    if hint is int:
        return to_int
    if hint is float:
        return to_float
    return str


def _one_of(choices: tuple) -> Callable[[str], object]:
    """The converter of a ``Literal[...]`` parameter: the choice the text spells (``mode=other`` for ``mode:
    Literal["short", "long"]`` was passed on as the text "other", which no branch of the class expected, and its run
    went on as whatever its ``else`` did)."""
    def choose(text: str) -> object:
        for choice in choices:
            if isinstance(choice, bool):
                if text.lower() == str(choice).lower():
                    return choice
            elif isinstance(choice, int):
                try:
                    if to_int(text) == choice:
                        return choice
                except ValueError:
                    pass
            elif str(choice) == text:
                return choice
        raise ValueError(f"{text!r} is not one of {', '.join(str(c) for c in choices)}")
    return choose


def to_float(text: str) -> float:
    """A real spec value (Python's float syntax, without underscore digit separators)."""
    try:
        return float(plain_number_text(text))
    except ValueError as exc:  # (float's own words: "could not convert string to float: '0.6;srtf'")
        raise ValueError(str(exc) if "plain number" in str(exc) else f"{text!r} is not a number (e.g. 0.5)") from None


def to_int(text: str) -> int:
    """An integer spec value; at most 64 bits, as the policies and the simulator store them in numpy int64
    arrays (larger ones ended in an OverflowError deep in a run). No underscore digit separators."""
    try:
        value = int(plain_number_text(text))
    except ValueError as exc:  # (int's own words: "invalid literal for int() with base 10: 'nan'")
        raise ValueError(str(exc) if "plain number" in str(exc) else
                         f"{text!r} is not a whole number (e.g. 10)") from None
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{text} is out of range for a 64-bit integer")
    return value


def signature_text(cls: type[Policy]) -> str:
    """``name:key=default,...`` for help texts."""
    params = _parameters(cls)
    parts = [f"{n}={p.default}" if p.default is not inspect.Parameter.empty else f"{n}=?" for n, p in params.items()]
    parts.append("starve=T," + ("starve_quantum=Q" if "quantum" in params else "quantum=Q"))
    return f"{cls.name}:" + ",".join(parts)


def parse_spec(spec: str, kind: str = "policy") -> tuple[str, dict[str, str]]:
    """Split ``name:key=value,...`` into the name and raw parameter strings (``kind`` names the thing
    specified in error messages: "policy", "router")."""
    spec = spec.strip()
    name, _, rest = spec.partition(":")
    name = name.strip()
    params: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise UserError(f"bad {kind} spec {spec!r}: expected name:key=value,... (got {item!r})")
            if key.strip() in params:
                raise UserError(f"bad {kind} spec {spec!r}: {key.strip()} is given twice")
            params[key.strip()] = value.strip()
    return name, params


#: Spec parameters that wrap any policy in starvation prevention (``quantum`` only where the policy has none).
STARVATION_PARAMS = ("starve", "starve_quantum", "quantum")


def make_policy(spec: str) -> Policy:
    """Build a policy from a spec string; bad names or parameters raise :class:`UserError`, a ``spec`` that is no
    string a :class:`TypeError` naming it (None, a number, a list: an AttributeError about ``strip``), as
    :func:`ltrsched.routers.make_router` does.

    Any policy takes ``starve=T`` (and ``quantum=Q``, or ``starve_quantum=Q`` for policies with their own
    ``quantum``) to add starvation prevention, e.g. ``ltr:starve=200,quantum=10``.
    """
    check_argument(spec, str, "spec", "a policy spec string, e.g. 'ltr:tau=0.62' (`ltrsched policies`)")
    name, raw = parse_spec(spec)
    registry = available()
    if name not in registry:
        listing = ", ".join(signature_text(c) for c in registry.values())
        raise UserError(f"unknown policy {name!r}; available: {listing}")
    cls = registry[name]
    params = _parameters(cls)
    starve = _pop_starvation(raw, params, name)
    kwargs: dict[str, object] = {}
    for key, text in raw.items():
        if key not in params:
            raise UserError(f"policy {name!r} has no parameter {key!r}; usage: {signature_text(cls)}")
        try:
            kwargs[key] = _converter(cls, params[key])(text)
        except ValueError as exc:
            raise UserError(f"policy {name!r}: bad value for {key}: {exc}") from None
    try:
        policy = cls(**kwargs)
        check_kept(policy, kwargs, "policy")
        if starve is not None:
            from ltrsched.policies.starvation import StarvationPrevention

            policy = StarvationPrevention(policy, *starve)
        return policy
    except (TypeError, ValueError) as exc:
        raise UserError(f"policy {name!r}: {exc}") from None


def check_kept(obj, given: dict[str, object], kind: str) -> None:
    """One-line :class:`UserError` if ``obj`` (a policy or router just built) keeps a parameter it was given under no
    attribute of its name: its ``spec()`` (a run's meta, the printed header, the tables' labels, the same-policy check)
    reads the parameters there, so ``p:k=1`` and ``p:k=2`` of a class storing ``self._k`` were both ``p``, refused in a
    sweep as the same one (and ``simulate`` printed and saved ``p`` for ``p:k=2``)."""
    kept = obj.parameters()
    lost = [key for key in given if key not in kept]
    if lost:
        raise UserError(f"{kind} {obj.name!r} keeps no attribute {lost[0]!r} for its parameter {lost[0]}, so its "
                        f"spec {obj.spec()!r} leaves it out; store each constructor parameter as an attribute of "
                        f"the same name (self.{lost[0]} = {lost[0]})")


def _pop_starvation(raw: dict[str, str], params: dict, name: str) -> tuple[int, int] | None:
    """Take the starvation-prevention parameters out of ``raw``: (threshold, quantum) or None."""
    keys = ["starve_quantum"] if "quantum" in params else ["starve_quantum", "quantum"]
    if "starve" not in raw:
        given = next((k for k in keys if k in raw), None)
        if given is not None:
            raise UserError(f"policy {name!r}: {given} needs starve=T")
        return None
    try:
        threshold = to_int(raw.pop("starve"))
        quantum = next((to_int(raw.pop(k)) for k in keys if k in raw), 10)
    except ValueError as exc:
        raise UserError(f"policy {name!r}: starve/{keys[-1]} must be integers (steps): {exc}") from None
    return threshold, quantum


def check_distinct_policies(specs, option: str) -> None:
    """One-line :class:`UserError` if two of ``specs`` name the same policy with the same parameters, however
    spelled (``fcfs`` and ``fcfs:``, ``ltr:tau=0.5`` and ``ltr:tau=0.50``; compared by :meth:`Policy.spec`):
    the same runs would be computed and listed twice. ``option`` names where they were given."""
    first: dict[str, str] = {}
    for spec in specs:
        canonical = make_policy(spec).spec()
        if canonical in first:
            same = first[canonical]
            what = f"{spec!r} is given twice" if same == spec else f"{same!r} and {spec!r} are the same policy ({canonical})"
            raise UserError(f"{option}: {what}; give each policy once")
        first[canonical] = spec

