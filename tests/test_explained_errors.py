"""The warnings that explain a load's error (``notices.explain_error``) go with that error, not with the next error
line.

Held by the CLI's stderr (``Notices``) until the next ``error:`` line, they printed ahead of a later, unrelated error
when code handled the load's error and went on. Now they ride on the exception: printed ahead of its line, or of an
error raised while it was handled, and dropped with it where it is handled.
"""

from __future__ import annotations

import click
import pytest

from cli_helpers import run_cli_fast
from ltrsched.errors import UserError

BURST_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


@pytest.fixture
def burst(tmp_path) -> str:
    """A BurstGPT trace of 3 requests, 2 of them failed (left out with a warning): a load of 3 requests fails with
    "has only 1", explained by that warning."""
    path = tmp_path / "b.csv"
    rows = [f"{i},ChatGPT,5,{0 if i < 2 else 7},12,Conversation log\n" for i in range(3)]
    path.write_text(BURST_HEADER + "".join(rows))
    return str(path)


def _command(monkeypatch, burst: str, then: str) -> None:
    """A command ``ltrsched try-load`` that loads 3 requests of ``burst`` and handles the error: ``then`` is
    "goes on" (and fails later for another reason), "ends" (fine), or "names it" (raises an error naming it)."""
    from ltrsched.cli import cli

    @click.command("try-load")
    def try_load() -> None:
        from ltrsched.workloads import load_workload

        try:
            load_workload(burst, num_requests=3)
        except UserError as exc:
            if then == "names it":
                raise UserError(f"sweep.toml: {exc}") from None
        if then == "goes on":
            raise UserError("an unrelated mistake, found later")

    monkeypatch.setitem(cli.commands, "try-load", try_load)


def test_an_error_handled_takes_its_explanation_with_it(burst, monkeypatch, capsys):
    _command(monkeypatch, burst, "goes on")
    r = run_cli_fast(capsys, "try-load")
    assert r.returncode == 2 and r.stderr == "error: an unrelated mistake, found later\n", r.stderr
    _command(monkeypatch, burst, "ends")
    r = run_cli_fast(capsys, "try-load")
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_an_error_raised_while_handling_it_gets_its_explanation(burst, monkeypatch, capsys):
    _command(monkeypatch, burst, "names it")
    r = run_cli_fast(capsys, "try-load")
    assert r.returncode == 2, r.stderr
    warning, error = r.stderr.splitlines()
    assert warning.startswith(f"warning: {burst}: 2 of its 3 requests have 'Response tokens' 0"), r.stderr
    assert error == f"error: sweep.toml: asked for 3 requests but {burst} has only 1", r.stderr
