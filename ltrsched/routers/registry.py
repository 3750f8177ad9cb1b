"""Router registry and spec strings (``name`` or ``name:key=value,...``), the policies' mechanism.

Register a router with :func:`register`. Routers in other files are found like policies: the
``ltrsched.routers`` entry-point group, a module or ``.py`` file named in ``LTRSCHED_PLUGINS``, or
``--plugin`` (one plugin file may register policies and routers).
"""

from __future__ import annotations

import importlib
import inspect

from ltrsched.arguments import check_argument
from ltrsched.errors import UserError
from ltrsched.plugin_scope import load_installed
from ltrsched.policies.registry import (PluginSources, _converter, _parameters, check_kept, check_methods,
                                       check_name, check_not_shadowing, is_builtin, load_env_plugins, parse_spec)
from ltrsched.routers.base import Router

_REGISTRY: dict[str, type[Router]] = {}
#: Where the code of routers outside this package came from (see :func:`router_source`).
_SOURCES = PluginSources()
_BUILTINS_LOADED = False
#: What the cluster calls on a router, with the positional arguments it passes (after ``self``); ``route`` is required.
ROUTER_METHODS = {"route": ("request", "now", "replicas"), "prepare": ("requests", "num_replicas")}


def register(cls: type[Router]) -> type[Router]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Router)):
        raise TypeError("register() takes a Router subclass")
    if not is_builtin(cls):  # the built-ins first, so that a plugin cannot replace one
        importlib.import_module("ltrsched.routers.builtin")
    check_name(cls, "router")
    check_methods(cls, Router, "router", ROUTER_METHODS)
    check_not_shadowing(_REGISTRY.get(cls.name), cls, "router")
    _SOURCES.record(cls, _REGISTRY)
    return cls


def plugin_modules() -> set[str]:
    """The modules that define the plugin routers registered so far (loads nothing)."""
    return _SOURCES.modules()


def router_source(spec: str) -> dict[str, str | None] | None:
    """For a spec whose router comes from a plugin: its module and the SHA-256 of the module's file when it
    was loaded (a run's cache key covers it, as for policies); None for a built-in router."""
    name, _ = parse_spec(spec, kind="router")
    _load_builtins()
    return _SOURCES.get(name)


def _load_builtins() -> None:
    """The built-in routers and installed entry points' (once a process: they stay), then ``LTRSCHED_PLUGINS``'."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        load_installed("ltrsched.routers.builtin", "ltrsched.routers", "router")
    load_env_plugins()


def available() -> dict[str, type[Router]]:
    """Registered routers by name."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def signature_text(cls: type[Router]) -> str:
    """``name:key=default,...`` for help texts."""
    params = _parameters(cls)
    parts = [f"{n}={p.default}" if p.default is not inspect.Parameter.empty else f"{n}=?" for n, p in params.items()]
    return cls.name + (":" + ",".join(parts) if parts else "")


def make_router(spec: str) -> Router:
    """Build a router from a spec string; bad names or parameters raise :class:`UserError`, a ``spec`` that is no
    string a :class:`TypeError` naming it (None, a list: an AttributeError about ``strip``)."""
    check_argument(spec, str, "spec", "a router spec string, e.g. 'least-kv:by=tokens' (`ltrsched routers`)")
    name, raw = parse_spec(spec, kind="router")
    registry = available()
    if name not in registry:
        listing = ", ".join(signature_text(c) for c in registry.values())
        raise UserError(f"unknown router {name!r}; available: {listing}")
    cls = registry[name]
    params = _parameters(cls)
    kwargs: dict[str, object] = {}
    for key, text in raw.items():
        if key not in params:
            raise UserError(f"router {name!r} has no parameter {key!r}; usage: {signature_text(cls)}")
        try:
            kwargs[key] = _converter(cls, params[key])(text)
        except ValueError as exc:
            raise UserError(f"router {name!r}: bad value for {key}: {exc}") from None
    try:
        router = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"router {name!r}: {exc}") from None
    check_kept(router, kwargs, "router")
    return router


def check_distinct_routers(specs, option: str) -> None:
    """One-line :class:`UserError` if two of ``specs`` name the same router with the same parameters, however spelled
    (``random`` and ``random:seed=0``, ``round-robin`` and ``round-robin:``; compared by :meth:`Router.spec`): the same
    runs were computed twice, under two keys, and listed twice. ``option`` names where they were given."""
    first: dict[str, str] = {}
    for spec in specs:
        canonical = make_router(spec).spec()
        if canonical in first:
            same = first[canonical]
            what = (f"{spec!r} is given twice" if same == spec
                    else f"{same!r} and {spec!r} are the same router ({canonical})")
            raise UserError(f"{option}: {what}; give each router once")
        first[canonical] = spec
