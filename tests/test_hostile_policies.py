"""Hostile policies: a user policy's every misbehaviour is one line naming it and the step, or is harmless,
in the simulator and in the emulated engine adapter."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import LiveView, Policy, check_order, make_policy
from ltrsched.sim import SimConfig, simulate


def view_of(n: int, step: int = 7) -> LiveView:
    return LiveView({"request_id": np.arange(n), "arrival_time": np.zeros(n)}, None, 0.0, step, arrival_ordered=True)


class Scripted(Policy):
    """FCFS until step ``at``, then ``rank`` returns ``bad(view)``."""

    name = "scripted-test"

    def __init__(self, bad, at: int = 3):
        self.bad, self.at = bad, at

    def rank(self, view):
        return view.order_by() if view.step < self.at else self.bad(view)


def run_both(policy_factory, workload=None):
    """Run a fresh policy from ``policy_factory()`` in the simulator and in the emulated engine adapter;
    returns the UserError of each (None where the run ended)."""
    from ltrsched.engine.emulate import EngineConfig, emulate

    workload = workload or make_workload([20] * 12, [30] * 12)
    profile = LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=199)
    errors = []
    for run in (lambda p: simulate(workload, p, SimConfig(profile=profile, num_gpu_blocks=199)),
                lambda p: emulate(workload, p, profile.step_time, EngineConfig(num_gpu_blocks=200))):
        try:
            run(policy_factory())
            errors.append(None)
        except UserError as exc:
            errors.append(exc)
    return errors


@pytest.mark.parametrize("value, message", [
    (None, "a NoneType, not an array of positions"),
    ((i for i in range(3)), "a generator, not an array of positions"),
    (2, "a int, not an array of positions"),
])
def test_a_non_array_order_is_named(value, message):
    """rank() returning None (a forgotten return) was an AttributeError traceback from the order check."""
    with pytest.raises(UserError, match="policy 'fcfs' returned an invalid order at step 7: " + message):
        check_order(value, view_of(3), make_policy("fcfs"))


@pytest.mark.vllm
def test_rank_returning_none_is_one_line_in_both_hosts():
    errors = run_both(lambda: Scripted(lambda view: None))
    for exc in errors:
        assert exc is not None and "returned an invalid order at step 3: a NoneType" in str(exc)
        assert "\n" not in str(exc)


EXITING_PLUGIN = '''
import sys
from ltrsched.policies import Policy, register


class Stop(BaseException):
    pass


@register
class Exiting(Policy):
    name = "exiting"

    def __init__(self, how: str = "exit"):
        self.how = how

    def rank(self, view):
        if view.step >= 3:
            if self.how == "exit":
                sys.exit(0)
            raise Stop("its own base exception")
        return view.order_by()
'''


@pytest.mark.parametrize("how, message", [("exit", "plugin code raised SystemExit: 0 ("),
                                          ("base", "plugin code raised Stop: its own base exception (")])
def test_a_plugin_that_exits_mid_run_is_one_line(tmp_path, how, message):
    """sys.exit(0) in a plugin's rank ended simulate and sweep with exit code 0, no output and no message (a
    sweep without its sweep.csv); a BaseException subclass of its own was a traceback."""
    from test_cli_simulate import assert_one_line_error, run_cli

    plugin = tmp_path / "exiting.py"
    plugin.write_text(EXITING_PLUGIN)
    r = run_cli("simulate", "-w", "sharegpt", "-n", "30", "--plugin", str(plugin), "--policy", f"exiting:how={how}",
                "--out", str(tmp_path / "out"))
    assert_one_line_error(r, message + f"{plugin}:")
    (tmp_path / "sweep.toml").write_text(f'policies = ["fcfs", "exiting:how={how}"]\nnum_requests = 30\n')
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ltrsched.cli", "sweep", str(tmp_path / "sweep.toml"), "-o",
                        str(tmp_path / "sweep"), "-j", "2"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "LTRSCHED_PLUGINS": str(plugin)})
    assert_one_line_error(r, message + f"{plugin}:")


class WritesItsWorkload(Policy):
    """FCFS whose ``prepare`` shortens every request to one token (in the arrays it was given)."""

    name = "writes-workload-test"

    def prepare(self, requests):
        requests["output_tokens"][:] = 1

    def rank(self, view):
        return view.order_by()


@pytest.mark.vllm
def test_prepare_cannot_change_the_workload_it_is_given():
    """In the simulator, prepare() got the request table's own arrays: a policy writing into them changed the
    workload the run served (every request one token long, with exit 0). Both hosts give read-only arrays."""
    from ltrsched.engine.emulate import EngineConfig, emulate
    from ltrsched.sim.cluster import simulate_cluster

    workload = make_workload([20] * 12, [30] * 12)
    profile = LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=199)
    for run in (lambda p: simulate(workload, p, SimConfig(profile=profile, num_gpu_blocks=199)),
                lambda p: simulate_cluster(workload, p, SimConfig(profile=profile, num_gpu_blocks=199), replicas=2),
                lambda p: emulate(workload, p, profile.step_time, EngineConfig(num_gpu_blocks=200))):
        with pytest.raises(ValueError, match="read-only"):
            run(WritesItsWorkload())
    assert simulate(workload, make_policy("fcfs"), SimConfig(profile=profile, num_gpu_blocks=199)) \
        .requests["generated_tokens"].to_list() == [30] * 12


class ZeroesIdleSteps(Policy):
    """FCFS that writes 0 into the view's idle steps (e.g. an in-place ``-=`` on a column it read)."""

    name = "zeroes-idle-test"

    def rank(self, view):
        view.idle_steps[:] = 0
        return view.order_by()


@pytest.mark.vllm
def test_a_policy_cannot_write_into_the_view():
    """A view's columns are shared by the policies that rank it: a policy wrapped in starvation prevention
    that wrote 0 into ``idle_steps`` silently turned the wrapper off (a simulated burst's mean queueing delay
    27.0 s instead of 0.41 s with starve=3, exit 0). Columns are read-only in both hosts."""
    from ltrsched.policies.starvation import StarvationPrevention

    for run in (run_sim_raw, run_engine_raw):
        with pytest.raises(ValueError, match="read-only"):
            run(lambda: StarvationPrevention(ZeroesIdleSteps(), 2, 1))
    view = LiveView({"request_id": np.arange(3), "score": np.zeros(3)}, None, 0.0, 0)
    with pytest.raises(ValueError, match="read-only"):
        view.score[0] = 1  # (a column without an index: a read-only view of the host's array...)
    view2 = LiveView({"request_id": np.arange(3), "score": np.zeros(3)}, np.array([0, 2]), 0.0, 0)
    with pytest.raises(ValueError, match="read-only"):
        view2.score[0] = 1


def _workload_and_profile():
    return make_workload([20] * 12, [30] * 12), LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=199)


def run_sim_raw(policy_factory):
    workload, profile = _workload_and_profile()
    return simulate(workload, policy_factory(), SimConfig(profile=profile, num_gpu_blocks=199, max_num_seqs=2))


def run_engine_raw(policy_factory):
    from ltrsched.engine.emulate import EngineConfig, emulate

    workload, profile = _workload_and_profile()
    return emulate(workload, policy_factory(), profile.step_time, EngineConfig(num_gpu_blocks=200, max_num_seqs=2))


@pytest.mark.parametrize("age", ["nan", "inf", "-1"])
def test_the_example_plugin_refuses_an_age_that_is_no_finite_number(age):
    """The README's example policy took age=nan and age=inf: every key NaN at a burst (inf * 0 s waited), so it
    ran as FCFS, exit 0."""
    from test_cli_simulate import assert_one_line_error, run_cli

    r = run_cli("simulate", "-w", "sharegpt", "-n", "20", "--plugin", "examples/policies/short_prompt_aging.py",
                "--policy", f"short-prompt:age={age}", cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert_one_line_error(r, "policy 'short-prompt': age must be a finite number >= 0")


@pytest.mark.parametrize("kind, name", [("policy", "5"), ("policy", "None"), ("policy", "'a:b'"), ("policy", "''"),
                                        ("policy", "'x,y'"), ("policy", "' spaced'"), ("router", "'a=b'"),
                                        ("router", "7")])
def test_a_plugin_class_whose_name_no_spec_can_name_is_refused(tmp_path, kind, name):
    """A name that is not a string made `ltrsched policies` a TypeError traceback (sorting the names); one
    holding ':' ',' '=' or surrounding spaces was listed yet no spec string reached it."""
    from test_cli_simulate import assert_one_line_error, run_cli

    base, module, method = (("Policy", "policies", "rank(self, view):\n        return view.order_by()")
                            if kind == "policy" else
                            ("Router", "routers", "route(self, request, now, replicas):\n        return 0"))
    plugin = tmp_path / "named.py"
    plugin.write_text(f"from ltrsched.{module} import {base}, register\n\n\n@register\nclass Named({base}):\n"
                      f"    name = {name}\n\n    def {method}\n")
    assert_one_line_error(run_cli(module, "--plugin", str(plugin)),
                          f"cannot load plugin {plugin}: ValueError: {kind} class Named has the name")


@pytest.mark.parametrize("kind, methods, message", [
    ("policy", "", "policy class Broken ('broken') defines no rank(); a policy must define rank(self, view)"),
    ("policy", "rank = None", "policy class Broken ('broken') has rank = None, no method; define rank(self, view)"),
    ("policy", "def rank(self):\n        return None",
     "policy class Broken ('broken') defines rank(self), which cannot be called as hosts call it: rank(self, view)"),
    ("policy", "def rank(self, view):\n        return view.order_by()\n\n    def prepare(self):\n        pass",
     "defines prepare(self), which cannot be called as hosts call it: prepare(self, requests)"),
    ("policy", "def rank(self, view):\n        return view.order_by()\n\n    def on_step(self, view):\n        pass",
     "defines on_step(self, view), which cannot be called as hosts call it: on_step(self, view, scheduled, step_time)"),
    ("policy", "def rank(self, view):\n        return view.order_by()\n\n    def on_finish(self, ids):\n        pass",
     "defines on_finish(self, ids), which cannot be called as hosts call it: on_finish(self, request_ids, now)"),
    ("policy", "def rank(self, view):\n        return view.order_by()\n\n    def on_arrival(self, ids):\n        pass",
     "defines on_arrival(self, ids), which cannot be called as hosts call it: on_arrival(self, request_ids, now)"),
    ("router", "", "router class Broken ('broken') defines no route(); a router must define route(self, request, now, "
                   "replicas)"),
    ("router", "def route(self, request, replicas):\n        return 0",
     "defines route(self, request, replicas), which cannot be called as hosts call it: route(self, request, now, "
     "replicas)"),
    ("router", "def route(self, request, now, replicas):\n        return 0\n\n    def prepare(self, requests):\n"
               "        pass",
     "defines prepare(self, requests), which cannot be called as hosts call it: prepare(self, requests, "
     "num_replicas)"),
])
def test_a_plugin_class_that_hosts_cannot_call_is_refused_when_it_loads(capsys, tmp_path, kind, methods, message):
    """A policy without ``rank`` (or a router without ``route``), or a method taking other arguments than hosts pass
    (``def rank(self)``), ran until the first call: a NotImplementedError or TypeError traceback through the
    simulator or the engine, naming neither the plugin nor what hosts call."""
    from cli_helpers import assert_one_line_error, run_cli_fast

    base, module = ("Policy", "policies") if kind == "policy" else ("Router", "routers")
    plugin = tmp_path / "broken.py"
    plugin.write_text(f"from ltrsched.{module} import {base}, register\n\n\n@register\nclass Broken({base}):\n"
                      f"    name = 'broken'\n    {methods or 'pass'}\n")
    choice = ["--policy", "broken"] if kind == "policy" else ["--replicas", "2", "--router", "broken"]
    r = run_cli_fast(capsys, "simulate", "-n", "10", "--no-progress", "--plugin", str(plugin), *choice)
    assert_one_line_error(r, f"cannot load plugin {plugin}: ValueError: ", message)


@pytest.mark.parametrize("methods", [
    "def rank(self, view, *extra, key=None):\n        return view.order_by()",
    "@staticmethod\n    def rank(view):\n        return view.order_by()",
    "@classmethod\n    def rank(cls, view):\n        return view.order_by()",
    "rank = functools.partialmethod(lambda self, how, view: view.order_by(), 'any')",
])
def test_a_plugin_class_whose_methods_hosts_can_call_runs(capsys, tmp_path, methods):
    """Other ways to define a method that takes what hosts pass are taken."""
    from cli_helpers import run_cli_fast

    plugin = tmp_path / "fine.py"
    plugin.write_text("import functools\n\nfrom ltrsched.policies import Policy, register\n\n\n@register\n"
                      f"class Fine(Policy):\n    name = 'fine'\n    {methods}\n")
    r = run_cli_fast(capsys, "simulate", "-n", "10", "--no-progress", "--plugin", str(plugin), "--policy", "fine")
    assert r.returncode == 0, r.stderr


def test_a_policy_that_keeps_a_given_parameter_under_another_name_is_refused(capsys, tmp_path):
    """Its spec, read from its attributes, left the parameter out: ``simulate`` printed and saved ``hidden`` for
    ``hidden:k=-1``, and a sweep of ``hidden:k=1`` and ``hidden:k=-1`` was refused as "the same policy (hidden)".
    Routers were refused so already."""
    from cli_helpers import assert_one_line_error, run_cli_fast

    plugin = tmp_path / "hidden.py"
    plugin.write_text("from ltrsched.policies import Policy, register\n\n\n@register\nclass Hidden(Policy):\n"
                      "    name = 'hidden'\n\n    def __init__(self, k: int = 1):\n        self._k = k\n\n"
                      "    def rank(self, view):\n        return view.order_by(view.prompt_tokens * self._k)\n")
    r = run_cli_fast(capsys, "simulate", "-n", "10", "--no-progress", "--plugin", str(plugin), "--policy",
                     "hidden:k=-1")
    assert_one_line_error(r, "policy 'hidden' keeps no attribute 'k' for its parameter k, so its spec 'hidden' leaves "
                             "it out; store each constructor parameter as an attribute of the same name (self.k = k)")
    r = run_cli_fast(capsys, "simulate", "-n", "10", "--no-progress", "--plugin", str(plugin), "--policy", "hidden")
    assert r.returncode == 0, r.stderr  # (the default, given by no spec: nothing left out)


LITERAL_PLUGIN = '''
from typing import Literal, Optional

from ltrsched.policies import Policy, register


@register
class Picky(Policy):
    name = "picky"

    def __init__(self, mode: Literal["short", "long"] = "short", level: Optional[Literal[1, 2]] = None,
                 flag: Literal[True] = True):
        self.mode, self.level, self.flag = mode, level, flag

    def rank(self, view):
        return view.order_by(view.prompt_tokens if self.mode == "short" else -view.prompt_tokens)
'''


@pytest.mark.parametrize("spec, message", [
    ("picky:mode=other", "policy 'picky': bad value for mode: 'other' is not one of short, long"),
    ("picky:level=3", "policy 'picky': bad value for level: '3' is not one of 1, 2"),
    ("picky:flag=false", "policy 'picky': bad value for flag: 'false' is not one of True"),
    ("picky:mode=long,level=2,flag=true", None),
])
def test_a_literal_parameter_takes_only_its_choices(capsys, tmp_path, spec, message):
    """``mode: Literal["short", "long"]`` took ``mode=other`` as the text "other": the class's ``else`` branch ran it
    as "long", without a word (a Literal was read as its first choice's type)."""
    from cli_helpers import assert_one_line_error, run_cli_fast

    plugin = tmp_path / "picky.py"
    plugin.write_text(LITERAL_PLUGIN)
    r = run_cli_fast(capsys, "simulate", "-n", "10", "--no-progress", "--plugin", str(plugin), "--policy", spec)
    if message is None:
        assert r.returncode == 0 and "picky:mode=long,level=2,flag=True" in r.stdout, (r.stdout, r.stderr)
    else:
        assert_one_line_error(r, message)
