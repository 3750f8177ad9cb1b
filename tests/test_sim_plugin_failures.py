"""Plugin code misbehaving inside the simulator's SimPy processes, or refusing to be copied per replica, ends the run
with one line naming the plugin (found by the plugin audit: tests/test_hostile_policies.py, test_plugin_errors.py)."""

from __future__ import annotations

import threading

import pytest
import simpy

from cli_helpers import assert_one_line_error, run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import Policy, make_policy
from ltrsched.routers import Router
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster
from ltrsched.sim.process_failure import guarded, run_to_end


class TwoArgError(Exception):
    """An exception SimPy cannot copy as ``type(e)(*e.args)``: its ``__init__`` takes two arguments, passes one up."""

    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")


TWO_ARG_PLUGIN = '''
from ltrsched.policies import Policy, register
from ltrsched.routers import Router, register as register_router


class TwoArgError(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")


@register
class Exc(Policy):
    name = "exc"

    def __init__(self, how: str = "two"):
        self.how = how

    def rank(self, view):
        if view.step >= 3:
            raise TwoArgError("left", "right")  # line 20
        return view.order_by()


@register_router
class ExRouter(Router):
    name = "ex-router"

    def route(self, request, now, replicas):
        if request >= 5:
            raise TwoArgError("up", "down")  # line 30
        return min(replicas, key=lambda r: r.outstanding_requests).index
'''


def _cfg() -> SimConfig:
    return SimConfig(profile=LinearProfile(), num_gpu_blocks=199)


@pytest.mark.parametrize("args, line", [
    (["--policy", "exc:how=two"], "left/right ({plugin}:20, in rank)"),
    (["--policy", "exc:how=two", "--replicas", "3"], "left/right ({plugin}:20, in rank)"),
    (["--replicas", "2", "--router", "ex-router"], "up/down ({plugin}:30, in route)"),
])
def test_a_plugin_exception_simpy_cannot_copy_is_the_plugins_one_line(capsys, tmp_path, monkeypatch, args, line):
    """SimPy rebuilds a failed process's exception as type(e)(*e.args): TwoArgError(a, b) became SimPy's "TypeError:
    TwoArgError.__init__() missing 1 required positional argument: 'b'", a traceback (replay --emulate gave the
    plugin's line, the one now given)."""
    monkeypatch.delenv("LTRSCHED_TRACEBACK", raising=False)
    plugin = tmp_path / "exc.py"
    plugin.write_text(TWO_ARG_PLUGIN)
    r = run_cli_fast(capsys, "simulate", "-n", "30", "--no-progress", "--plugin", str(plugin), *args)
    assert_one_line_error(r, "plugin code raised TwoArgError: " + line.format(plugin=plugin) + "; fix the plugin")


class TwoArgRank(Policy):
    name = "two-arg-rank"

    def rank(self, view):
        if view.step >= 3:
            raise TwoArgError("left", "right")
        return view.order_by()


class TwoArgRoute(Router):
    name = "two-arg-route"

    def route(self, request, now, replicas):
        if request >= 2:
            raise TwoArgError("up", "down")
        return 0


@pytest.mark.parametrize("run", [
    lambda wl: simulate(wl, TwoArgRank(), _cfg()),
    lambda wl: simulate_cluster(wl, TwoArgRank(), _cfg(), replicas=2),
    lambda wl: simulate_cluster(wl, make_policy("fcfs"), _cfg(), replicas=2, router=TwoArgRoute()),
])
def test_the_python_api_raises_the_exception_the_plugin_raised(run):
    with pytest.raises(TwoArgError, match="^(left/right|up/down)$") as caught:
        run(make_workload([20] * 6, [10] * 6))
    assert caught.type is TwoArgError  # (not SimPy's TypeError from copying it)


def test_run_to_end_raises_the_very_exception_a_process_raised():
    env = simpy.Environment()
    raised = TwoArgError("a", "b")

    def body():
        yield env.timeout(1.0)
        raise raised

    def other():
        while True:
            yield env.timeout(0.5)

    env.process(guarded(other()))
    env.process(guarded(body()))
    with pytest.raises(TwoArgError) as caught:
        run_to_end(env)
    assert caught.value is raised and env.now == 1.0
    assert caught.value.__context__ is None and caught.value.__cause__ is None


def test_run_to_end_raises_an_exception_simpy_can_copy_as_simpy_did():
    """A copy raised from the original (which a sweep worker's line needs: test_plugin_errors.py)."""
    env = simpy.Environment()
    raised = KeyError("x")

    def body():
        yield env.timeout(1.0)
        raise raised

    env.process(guarded(body()))
    with pytest.raises(KeyError) as caught:
        run_to_end(env)
    assert caught.value is not raised and caught.value.args == ("x",) and caught.value.__cause__ is raised


class Locky(Policy):
    """Prepares state no deep copy takes (a lock or a generator)."""

    name = "locky"

    def __init__(self, how: str = "lock"):
        self.how = how

    def prepare(self, requests):
        self.state = threading.Lock() if self.how == "lock" else (i for i in range(3))

    def rank(self, view):
        return view.order_by()


@pytest.mark.parametrize("how, named", [("lock", "(its attribute 'state', a _thread.lock): TypeError: cannot pickle "
                                                 "'_thread.lock' object"),
                                        ("gen", "(its attribute 'state', a generator): TypeError: cannot pickle "
                                                "'generator' object")])
def test_a_policy_no_deep_copy_takes_is_one_line_naming_it(how, named):
    """copy.deepcopy's TypeError was a traceback through sim/cluster.py (simulate --replicas N, sweeps)."""
    wl = make_workload([20] * 4, [10] * 4)
    with pytest.raises(UserError) as caught:
        simulate_cluster(wl, Locky(how), _cfg(), replicas=2)
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"policy 'locky:how={how}' (class Locky of module {__name__}) cannot be copied for each of the 2 replicas "
                           + named)
    assert line.endswith("make such state on first use in rank() (or give the class a __deepcopy__), or run one "
                         "replica")
    simulate_cluster(wl, Locky(how), _cfg(), replicas=1)  # (one replica copies nothing)


LOCKY_PLUGIN = '''
import threading

from ltrsched.policies import Policy, register


@register
class Locky(Policy):
    name = "locky"

    def prepare(self, requests):
        self.lock = threading.Lock()

    def rank(self, view):
        return view.order_by()
'''


def test_a_plugin_policy_no_deep_copy_takes_is_one_line_in_simulate_and_sweep(capsys, tmp_path):
    plugin = tmp_path / "locky.py"
    plugin.write_text(LOCKY_PLUGIN)
    line = (f"policy 'locky' (plugin {plugin}) cannot be copied for each of the 2 replicas (its attribute 'lock', a "
            "_thread.lock): TypeError: cannot pickle '_thread.lock' object; each replica runs a deep copy")
    r = run_cli_fast(capsys, "simulate", "-n", "20", "--no-progress", "--replicas", "2", "--plugin", str(plugin),
                     "--policy", "locky")
    assert_one_line_error(r, line)
    (tmp_path / "sweep.toml").write_text('policies = ["locky"]\nnum_requests = 20\nreplicas = [2]\n')
    r = run_cli_fast(capsys, "sweep", str(tmp_path / "sweep.toml"), "-o", str(tmp_path / "sweep"), "-j", "1",
                     env={**__import__("os").environ, "LTRSCHED_PLUGINS": str(plugin)})
    assert_one_line_error(r, line)


class ViewRouter(Router):
    """Returns the replica view itself, not its index."""

    name = "view-router"

    def __init__(self, reads: bool = True):
        self.reads = reads

    @property
    def reads_state(self) -> bool:
        return self.reads

    def route(self, request, now, replicas):
        return replicas[1]


@pytest.mark.parametrize("reads", [True, False])
def test_a_router_returning_a_replica_view_is_told_to_return_its_index(reads):
    """The line showed the view's repr: "returned <ltrsched.sim.cluster.ReplicaState object at 0x...>"."""
    wl = make_workload([20] * 4, [10] * 4)
    with pytest.raises(UserError) as caught:
        simulate_cluster(wl, make_policy("fcfs"), _cfg(), replicas=2, router=ViewRouter(reads))
    assert str(caught.value).startswith("router 'view-router:reads=") and str(caught.value).endswith(
        "returned a replica view (replica 1) for request 0, not its index; return the view's .index, a replica index "
        "in 0..1")
    assert "object at 0x" not in str(caught.value)
