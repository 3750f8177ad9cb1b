"""Every option of every command says what it sets in ``--help`` (a newcomer found ten that said nothing:
``--tensor-parallel-size``, label's ``--sample-temperature``, simulate's ``--chunked-prefill``, sweep's ``-o``, ...),
and no default shown in ``--help`` is this checkout's own absolute path (``real-model-results -o`` showed one)."""

from __future__ import annotations

from pathlib import Path

import click

from ltrsched import cli


def _commands():
    ctx = click.Context(cli.cli)

    def walk(group, prefix):
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                yield from walk(command, (*prefix, name))
            else:
                yield " ".join((*prefix, name)), command

    return list(walk(cli.cli, ()))


def test_every_option_has_a_help_text():
    silent = [f"{name} {'/'.join(p.opts)}" for name, command in _commands() for p in command.params
              if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert silent == []


def test_no_shown_default_is_this_checkouts_path():
    root = str(Path(cli.__file__).resolve().parent.parent)
    shown = [f"{name} {'/'.join(p.opts)}" for name, command in _commands() for p in command.params
             if isinstance(p, click.Option) and p.show_default and root in str(p.default)]
    assert shown == []
