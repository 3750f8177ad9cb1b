"""The CLI's check of options given twice (:func:`ltrsched.cli.refuse_repeated_options`) reads click 8's parser
(``Command.make_parser(ctx).parse_args``). On a click without it the check is left out and the command runs as
that click parses it: a missing ``make_parser`` made every command "unavailable", a parser without ``parse_args``
a traceback."""

from __future__ import annotations

import click
import pytest

from cli_helpers import run_cli_fast
from ltrsched.cli import refuse_repeated_options
from test_cli_simulate import assert_one_line_error


def _toy():
    seen = {}

    @click.command()
    @click.option("-n", type=int)
    @click.option("--fast/--slow", default=False)
    def toy(n, fast):
        seen.update(n=n, fast=fast)

    return toy, seen


@pytest.mark.parametrize("args, message", [(["-n", "1", "-n", "2"], "-n is given twice; give it once"),
                                           (["--fast", "--slow"], "--fast / --slow is given twice; give it once "
                                                                  "(one of them)")])
def test_an_option_given_twice_is_refused(args, message):
    toy, seen = _toy()
    with pytest.raises(click.UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        refuse_repeated_options(toy).main(args, standalone_mode=False)
    assert seen == {}


def test_a_command_without_make_parser_is_left_unchecked(monkeypatch):
    toy, _ = _toy()
    monkeypatch.delattr(click.Command, "make_parser")
    assert refuse_repeated_options(toy) is toy and not getattr(toy, "_repeats_checked", False)


class _OtherParser:
    """A parser of another click: no parse_args (its own way of parsing)."""


def test_a_parser_without_parse_args_is_used_unchecked(monkeypatch):
    toy, _ = _toy()
    other = _OtherParser()
    monkeypatch.setattr(click.Command, "make_parser", lambda self, ctx: other)
    refuse_repeated_options(toy)
    assert toy.make_parser(click.Context(toy)) is other  # (as made: no AttributeError while wrapping it)


def test_a_mistyped_option_is_one_line_with_the_suggestion(capsys):
    """(click 8.2-8.3 word it "No such option: --polcy (Possible options: --policy, ...)", 8.4 on "No such option
    '--polcy'. (Did you mean one of: '--policy', ...)": both are one line naming the option meant)"""
    r = run_cli_fast(capsys, "simulate", "--polcy", "fcfs")
    assert_one_line_error(r, "No such option")
    assert "--polcy" in r.stderr and "--policy" in r.stderr
