"""A command's plugins (``--plugin``, ``LTRSCHED_PLUGINS``) registered for that command only.

The registries of policies and routers live as long as the process. A plugin a command loaded stayed registered
after it: a second command in the same process (tests, a notebook calling the CLI through click's ``CliRunner`` or
:func:`ltrsched.cli.main`) with another plugin file defining the same name was refused ("registered twice"), and
one with no plugin still ran the first one's policy under its name. Inside :func:`command_plugins`, the registries
note how to undo what plugins change (:func:`on_exit`): the classes they register, the plugin files and modules
loaded, ``LTRSCHED_PLUGINS`` read. At its end that is undone, so the next command loads its own plugins (and its
own ``LTRSCHED_PLUGINS``) from their files as they are then. The built-ins and installed entry points' plugins
(:func:`installing`), and what was registered before the command, stay.

This module imports nothing: ``ltrsched --help`` opens a block without loading the registries (seconds of imports).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

#: How to undo what plugins changed in the open block (latest last); None outside one.
_undo: list[Callable[[], None]] | None = None
#: Open :func:`installing` blocks (what they register stays).
_installing = 0


def on_exit(undo: Callable[[], None]) -> None:
    """Call ``undo`` when the open :func:`command_plugins` block ends (before undoing the changes noted earlier);
    nothing outside one, or inside :func:`installing`."""
    if _undo is not None and not _installing:
        _undo.append(undo)


@contextlib.contextmanager
def installing() -> Iterator[None]:
    """What is registered in the body stays after the command: the built-ins and installed entry points' plugins,
    loaded once a process."""
    global _installing
    _installing += 1
    try:
        yield
    finally:
        _installing -= 1


def load_installed(builtin_module: str, group: str, kind: str) -> None:
    """Import ``builtin_module`` (the built-in policies or routers) and every installed entry point of ``group``, to
    stay loaded (:func:`installing`). A broken third-party plugin is a ``warning:`` naming it as a ``kind`` plugin,
    never a failed CLI. The registries call it once a process."""
    import importlib
    from importlib import metadata

    with installing():
        importlib.import_module(builtin_module)
        try:
            eps = metadata.entry_points(group=group)
        except Exception:  # pragma: no cover - broken metadata
            eps = ()
        for ep in eps:
            try:
                ep.load()
            except Exception as exc:  # a broken third-party plugin must not break the CLI
                print(f"warning: {kind} plugin {ep.name!r} failed to load: {exc}", file=sys.stderr)


@contextlib.contextmanager
def command_plugins() -> Iterator[None]:
    """Run the body (one command) with the plugins it loads registered until it ends, whatever way it ends; the
    registries, the modules plugins were loaded as and the ``LTRSCHED_PLUGINS`` read are as before afterwards. A
    block inside another (the command group's inside :func:`ltrsched.cli.main`'s) leaves the undoing to the outer
    one, where an error naming a plugin's file is written."""
    global _undo
    if _undo is not None:
        yield
        return
    registry = sys.modules.get("ltrsched.policies.registry")
    if registry is not None:  # (the command reads its own LTRSCHED_PLUGINS; those loaded already stay loaded)
        registry.read_env_plugins_again()
    _undo = []
    try:
        yield
    finally:
        undo, _undo = _undo, None
        for step in reversed(undo):
            step()
