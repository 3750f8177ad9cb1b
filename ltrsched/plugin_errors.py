"""One line for an exception raised inside plugin code (a policy's or router's ``rank``, ``route``, hooks).

A plugin (``--plugin``, ``LTRSCHED_PLUGINS``, an entry point) is user input: when its code raises, the command
ends with one line naming the exception and where in the plugin it was raised, exit code 2, as for other bad
input, instead of a traceback through the simulator. ``LTRSCHED_TRACEBACK=1`` shows the traceback instead.
Errors of ltrsched's own code keep their traceback (they are bugs to report).

Exceptions from pool workers carry the worker's traceback as text (``concurrent.futures``' remote traceback),
Ray's as the text of the task error; both are searched as well as the exception's own frames.
"""

from __future__ import annotations

import os
import re
import sys
import traceback

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def plugin_files() -> set[str]:
    """Real paths of the files that define the registered plugin policies and routers."""
    from ltrsched.policies.registry import plugin_modules as policy_modules
    from ltrsched.routers.registry import plugin_modules as router_modules

    files = set()
    for module in policy_modules() | router_modules():
        file = getattr(sys.modules.get(module), "__file__", None)
        if file:
            files.add(os.path.realpath(file))
    return files


def plugin_frame(exc: BaseException) -> tuple[str, int, str] | None:
    """(file, line, function) of the innermost plugin frame the exception passed through, or None."""
    site = _plugin_site(exc)
    return None if site is None else site[:3]


def _plugin_site(exc: BaseException) -> tuple[str, int, str, str | None] | None:
    """:func:`plugin_frame`'s answer and, where the frame was found in a worker's traceback text, the exception line
    that ends that traceback there (``LockError: with a lock``): the exception the plugin raised, which the one in
    this process need not be (a pool worker that cannot pickle the plugin's exception sends the pickling error,
    ``TypeError: cannot pickle '_thread.lock' object``, with the plugin's traceback as its context)."""
    files = plugin_files()
    if not files:
        return None
    found = None
    for e in _chain(exc):
        for fs in traceback.extract_tb(e.__traceback__):
            if os.path.realpath(fs.filename) in files:
                found = (fs.filename, fs.lineno or 0, fs.name, None)
        for text in (getattr(e, "tb", None), str(e)):  # a worker's traceback as text
            if isinstance(text, str):
                for m in _FRAME.finditer(text):
                    if os.path.realpath(m[1]) in files:
                        found = (m[1], int(m[2]), m[3], _raised_after(text, m.end()))
    return found


#: The line that ends a traceback in text: the exception's (qualified) class name, then ``: message`` if it has one.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::[ ]?(.*))?$")


def _raised_after(text: str, at: int) -> str | None:
    """``Name: message`` of the exception line that ends the traceback holding ``text[at]`` (the first line there that
    is not indented: frames and their source lines are), its class named without its module; None if none is."""
    for line in text[at:].splitlines()[1:]:
        if line and not line[0].isspace():
            m = _EXCEPTION_LINE.match(line.rstrip())
            if m is None:
                return None
            name = m[1].rpartition(".")[2]
            return f"{name}: {m[2]}" if m[2] else name
    return None


def plugin_error_line(exc: BaseException) -> str | None:
    """The one-line message for ``exc`` if it was raised in plugin code (and no traceback was asked for)."""
    if os.environ.get("LTRSCHED_TRACEBACK"):
        return None
    site = _plugin_site(exc)
    if site is None:
        return None
    file, line, func, raised = site
    what = (str(exc).strip().splitlines() or [""])[0]
    raised = raised or f"{type(exc).__name__}{': ' + what if what else ''}"
    return (f"plugin code raised {raised} ({file}:{line}, in {func}); "
            "fix the plugin (LTRSCHED_TRACEBACK=1 shows the traceback)")


def _chain(exc: BaseException):
    """``exc`` and the exceptions it was raised from or during, each once."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
