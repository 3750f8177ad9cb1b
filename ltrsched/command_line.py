"""The command line a ``replay``, ``profile``, ``validate`` or ``label`` records (in a run's ``summary.json``, a
profile's provenance, a validation's manifest and report, a labels file's description): one that reruns the same
thing.

It was read from ``sys.argv``, which is the command's own arguments only when ``ltrsched`` is the process: called
from Python (the API, a notebook, pytest: ``ltrsched.cli.main([...])``) it recorded the host program's arguments
(``ltrsched -q tests/test_x.py``), and a resumed validation named that as the command to rerun. Now the command
keeps the arguments click parsed for it (:class:`RecordedCommand`) and :func:`command_line` joins its command path
to them.
"""

from __future__ import annotations

import shlex

import click

#: Key of the command's own arguments in click's ``Context.meta``.
_ARGS = "ltrsched.command_args"


class RecordedCommand(click.Command):
    """A click command that keeps the arguments it was given (before parsing) in its context, for
    :func:`command_line`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGS] = list(args)
        return super().parse_args(ctx, args)


def command_line(ctx: click.Context | None = None) -> str:
    """``ltrsched <command> <its arguments as given>``, shell-quoted, for the running command (``ctx``: its click
    context, default the current one). The program is named ``ltrsched`` whatever the process is; a command invoked
    on its own (click's test runner, ``command.main([...])``) is named by its command name."""
    ctx = ctx or click.get_current_context()
    names = []
    c = ctx
    while c.parent is not None:
        names.append(c.info_name or c.command.name)
        c = c.parent
    names.reverse()
    if not names:  # the command is the root: invoked on its own
        names = [ctx.command.name]
    args = ctx.meta.get(_ARGS)
    if args is None:
        raise RuntimeError(f"command_line: {ctx.command.name!r} is no RecordedCommand")
    return " ".join(["ltrsched", *names, *map(shlex.quote, args)])
