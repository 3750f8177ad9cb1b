"""A command's plugins are registered for that command only (:mod:`ltrsched.plugin_scope`): calling the CLI twice in
one process (click's CliRunner, :func:`ltrsched.cli.main`) with two plugin files defining the same name refused the
second ("registered twice"), and a call without the plugin still ran the first one's policy under its name."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

POLICY = '''from ltrsched.policies import Policy, register
@register
class Mine(Policy):
    """Plugin {which}."""
    name = "mine"
    def rank(self, view):
        {rank}
'''
ROUTER = '''from ltrsched.routers import Router, register
@register
class Mine(Router):
    """Router {which}."""
    name = "mine-router"
    def route(self, request, now, replicas):
        return 0
'''


def _write(folder, text="return view.order_by()", which="A", template=POLICY):
    folder.mkdir(exist_ok=True)
    (folder / "mine.py").write_text(template.format(which=which, rank=text))
    return str(folder / "mine.py")


def _listed(stdout: str, name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in stdout.splitlines() if line.startswith(f"{name}:") or
            line.startswith(f"{name} ")]


@pytest.mark.parametrize("kind, name, template", [("policies", "mine", POLICY), ("routers", "mine-router", ROUTER)])
def test_each_call_sees_its_own_plugin_and_none_after(capsys, tmp_path, kind, name, template):
    a = _write(tmp_path / "a", template=template, which="A")
    b = _write(tmp_path / "b", template=template, which="B")
    for plugin, which in ((a, "A"), (b, "B"), (a, "A")):
        r = run_cli_fast(capsys, kind, "--plugin", plugin)
        assert r.returncode == 0, r.stderr
        assert _listed(r.stdout, name) == [f"{'Router' if kind == 'routers' else 'Plugin'} {which}."], r.stdout
    r = run_cli_fast(capsys, kind)
    assert r.returncode == 0 and _listed(r.stdout, name) == []


def test_a_policy_of_an_earlier_call_is_unknown_without_its_plugin(capsys, tmp_path):
    plugin = _write(tmp_path / "a")
    run = ("simulate", "-w", "lmsys-like", "-n", "3", "-P", "mine")
    assert run_cli_fast(capsys, *run, "--plugin", plugin).returncode == 0
    assert_one_line_error(run_cli_fast(capsys, *run), "unknown policy 'mine'")


def test_an_edited_plugin_module_is_imported_again(capsys, tmp_path, monkeypatch):
    """(a module named with --plugin stayed in sys.modules: the next call registered nothing, or the old code)"""
    folder = tmp_path / "mods"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    for which in ("A", "B"):
        (folder / "ltrsched_scope_mod.py").write_text(POLICY.format(which=which, rank="return view.order_by()"))
        r = run_cli_fast(capsys, "policies", "--plugin", "ltrsched_scope_mod")
        assert r.returncode == 0 and _listed(r.stdout, "mine") == [f"Plugin {which}."], r.stderr


def test_a_plugin_error_still_names_its_file_and_the_plugin_is_gone_after(capsys, tmp_path):
    plugin = _write(tmp_path / "a", text="raise KeyError('boom')")
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "3", "-P", "mine", "--plugin", plugin)
    assert_one_line_error(r, f"plugin code raised KeyError: 'boom' ({plugin}:")
    from ltrsched.plugin_errors import plugin_files
    from ltrsched.policies.registry import available

    assert "mine" not in available() and os.path.realpath(plugin) not in plugin_files()


def test_the_environments_plugins_are_each_calls_own(capsys, tmp_path):
    a, b = _write(tmp_path / "a", which="A"), _write(tmp_path / "b", which="B")
    for plugin, which in ((a, "A"), (b, "B")):
        r = run_cli_fast(capsys, "policies", env={**os.environ, "LTRSCHED_PLUGINS": plugin})
        assert r.returncode == 0 and _listed(r.stdout, "mine") == [f"Plugin {which}."], r.stderr


def test_click_cli_runner_calls_restore_the_registry(tmp_path):
    from ltrsched.cli import cli

    a, b = _write(tmp_path / "a", which="A"), _write(tmp_path / "b", which="B")
    runner = CliRunner()
    for plugin, which in ((a, "A"), (b, "B")):
        r = runner.invoke(cli, ["policies", "--plugin", plugin])
        assert r.exit_code == 0 and _listed(r.output, "mine") == [f"Plugin {which}."], r.output
    assert _listed(runner.invoke(cli, ["policies"]).output, "mine") == []
