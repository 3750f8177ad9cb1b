"""An exception raised in a SimPy process's body, raised by ``env.run()``'s caller as it was raised.

SimPy ends a failed process with a copy of its exception, ``type(e)(*e.args)``, before ``env.run()`` raises it.
An exception whose ``__init__`` takes other arguments than it passes up as ``args`` (a plugin's
``TwoArgError(a, b)`` calling ``super().__init__(f"{a}/{b}")``) cannot be copied so: ``env.run()`` raised SimPy's
``TypeError: TwoArgError.__init__() missing 1 required positional argument`` instead, a traceback through the
simulator, where the emulated engine ends with one line naming the plugin's exception and line.

:func:`guarded` ends a process whose body raised with :class:`ProcessFailed`, which SimPy copies intact (its one
argument is the exception itself), and :func:`run_to_end` raises that exception (where it cannot be copied: as SimPy
raised the others), its traceback (the plugin's frames) included.
"""

from __future__ import annotations

from typing import Any, Generator

import simpy


class ProcessFailed(Exception):
    """A :func:`guarded` process's body raised ``args[0]`` (what :func:`run_to_end` raises)."""


def guarded(body: Generator) -> Generator:
    """``body`` as a SimPy process that ends in :class:`ProcessFailed` where ``body`` raised."""
    try:
        return (yield from body)
    except GeneratorExit:  # closed unfinished (another process failed and the run was dropped): no failure of its own
        raise
    except BaseException as exc:  # (a PluginInterrupt or KeyboardInterrupt too: raised as such by run_to_end)
        failure = exc
    raise ProcessFailed(failure)  # (outside the except clause: the failure is not this one's context)


def run_to_end(env: simpy.Environment) -> Any:
    """``env.run()``; the exception that ended a :func:`guarded` process raised as its body raised it: as SimPy
    raised it where it can be copied so (a copy raised from it), else itself.

    (The copy keeps the original, and the plugin's frames, in its chain where a pool worker clears the traceback of
    the exception it sends: the one line of a sweep worker's plugin exception that cannot be pickled names the plugin's
    line from there, ``tests/test_plugin_errors.py``.)"""
    try:
        return env.run()
    except ProcessFailed as failed:
        failure = failed.args[0]
    try:
        copied = type(failure)(*failure.args)
    except Exception:  # (its __init__ takes other arguments: TwoArgError(a, b))
        copied = None
    if copied is None:
        raise failure  # (outside the except clauses: no context of ours)
    raise copied from failure
