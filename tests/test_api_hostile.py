"""The Python API (a notebook's ``simulate``, ``simulate_cluster``, ``emulate``, ``SimConfig``, ``EngineConfig``)
given the wrong kind of value: one clear exception naming the argument, before the run, never an AttributeError from
inside it, a vLLM assertion or a hang."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.policies.step_shape import StepShape
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster


@pytest.fixture(scope="module")
def workload():
    return make_workload([10, 20], [5, 5])


@pytest.mark.parametrize("argument, message", [
    ("workload", r"workload must be a Workload \(ltrsched.workloads.schema.Workload\(df\) for a frame\), got DataFrame"),
    ("policy", r"policy must be a Policy object \(ltrsched.policies.make_policy\('fcfs'\) for a spec\), got str 'fcfs'"),
    ("config", r"config must be a SimConfig, or None for the defaults, got dict \{'max_num_seqs': 4\}"),
])
@pytest.mark.parametrize("run", [simulate, lambda w, p, c: simulate_cluster(w, p, c, replicas=2)])
def test_simulate_names_an_argument_of_the_wrong_kind(workload, argument, message, run):
    """A frame for the workload, a spec string for the policy, a dict for the config: each was an AttributeError
    from inside the run ("'str' object has no attribute 'needs'", "'dict' object has no attribute 'profile'")."""
    given = {"workload": workload, "policy": make_policy("fcfs"), "config": None}
    given[argument] = {"workload": workload.df, "policy": "fcfs", "config": {"max_num_seqs": 4}}[argument]
    with pytest.raises(TypeError, match=f"^{message}$"):
        run(given["workload"], given["policy"], given["config"])


def test_simulate_cluster_names_a_router_spec_given_for_the_router(workload):
    with pytest.raises(TypeError, match=r"^router must be a Router object \(ltrsched.routers.make_router\("
                                        r"'round-robin'\) for a spec\), or None for round-robin, got str 'least-kv'$"):
        simulate_cluster(workload, make_policy("fcfs"), replicas=2, router="least-kv")


@pytest.mark.parametrize("profile, shown", [(None, "None"), (123, "int 123")])
def test_sim_config_refuses_a_profile_that_is_not_one(profile, shown):
    """``SimConfig(profile=None)`` was taken, and the run failed with "'NoneType' object has no attribute
    'num_gpu_blocks'"."""
    with pytest.raises(ValueError, match=r"^profile must be a built-in profile name, a path to a profile JSON file or "
                                         rf"a profile object \(with step_time\), got {shown}$"):
        SimConfig(profile=profile)


class _Returns(LinearProfile):
    """A profile object whose every step takes ``value``."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def step_time(self, shape):
        return self.value


@pytest.mark.parametrize("value", [None, "0.01"])
def test_simulate_refuses_a_step_time_that_is_not_a_number(workload, value):
    """A profile object whose step_time gave None was a TypeError from math.isfinite."""
    with pytest.raises(UserError, match=rf"^profile 'linear-test': step_time gave {value!r} for a one-token decode "
                                        r"step; it must give a time in seconds \(a number\)$"):
        simulate(workload, make_policy("fcfs"), SimConfig(profile=_Returns(value)))


@pytest.mark.parametrize("field, value, message", [
    ("num_gpu_blocks", "200", "num_gpu_blocks must be an integer, got '200'"),  # (vLLM: a TypeError)
    ("num_gpu_blocks", 1, r"num_gpu_blocks must be >= 2 \(one is vLLM's null block\), got 1"),  # (an AssertionError)
    ("num_gpu_blocks", 2.5, "num_gpu_blocks must be an integer, got 2.5"),
    ("max_num_seqs", True, "max_num_seqs must be an integer, got True"),  # (ran with 1 sequence a step, silently)
    ("max_num_seqs", 0, "max_num_seqs must be positive, got 0"),  # (a pydantic report of four lines)
    ("block_size", -16, "block_size must be positive, got -16"),
    ("watermark", math.nan, r"watermark must be in \[0, 1\), got nan"),
    ("watermark", "0.1", "watermark must be a number, got '0.1'"),
    ("gpu_memory_utilization", 1.5, r"gpu_memory_utilization must be in \(0, 1\], got 1.5"),
    ("kv_cache_gib", math.inf, "kv_cache_gib must be a positive size in GiB, got inf"),
    ("max_num_batched_tokens", 4, r"max_num_batched_tokens \(4\) must be >= max_num_seqs \(256\), as vLLM requires"),
    ("max_resident_seqs", 8, r"max_resident_seqs \(8\) must be >= max_num_seqs \(256\)"),
    ("platform", "tpu", "platform must be one of cpu, cuda, got 'tpu'"),
    ("eos", None, "eos must be one of ignore, model, got None"),
    ("enforce_eager", "no", "enforce_eager must be true or false, got 'no'"),
])
def test_engine_config_refuses_a_bad_setting_in_one_line(field, value, message):
    from ltrsched.engine.config import EngineConfig

    with pytest.raises(ValueError, match=f"^{message}$"):
        EngineConfig(**{field: value})


def test_engine_config_takes_numpy_numbers_as_pythons():
    """vLLM's config refused ``max_model_len=np.int64(2048)`` ("must be a positive integer, got int64"), and its
    block pool asserted on ``num_gpu_blocks=np.int64(200)``."""
    from ltrsched.engine.config import EngineConfig

    config = EngineConfig(num_gpu_blocks=np.int64(200), max_model_len=np.int32(2048), watermark=np.float32(0.5))
    assert (config.num_gpu_blocks, config.max_model_len, config.watermark) == (200, 2048, 0.5)
    assert (type(config.num_gpu_blocks), type(config.max_model_len), type(config.watermark)) == (int, int, float)


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.01, 0.0, None, "0.01", np.array([0.01])])
def test_the_emulated_engine_refuses_a_step_time_that_is_not_a_time(value):
    """A NaN step time stopped the emulated engine's virtual clock: the replay waited for the next arrival for
    good (a hang); None or a string was a TypeError from inside the step."""
    from ltrsched.engine.emulate import checked_step_time

    shape = StepShape(num_prefill_tokens=5, num_decode_seqs=2)
    with pytest.raises(UserError, match=r"^profile 'linear-test': a step of 5 prefill tokens and 2 decodes takes .* s; "
                                        r"a step must take a finite time of at least 1e-06 s$"):
        checked_step_time(_Returns(value).step_time, shape)
    with pytest.raises(UserError, match=r"^step_time: a step of 5 prefill tokens and 2 decodes takes nan s"):
        checked_step_time(lambda shape: math.nan, shape)  # (a plain function: no profile to name)
    assert checked_step_time(LinearProfile().step_time, shape) == LinearProfile().step_time(shape)


def test_the_emulated_engines_shortest_step_is_the_simulators():
    from ltrsched.engine.emulate import MIN_STEP_S
    from ltrsched.sim.profiles.model import MIN_STEP_S as SIM_MIN_STEP_S

    assert MIN_STEP_S == SIM_MIN_STEP_S


@pytest.mark.parametrize("argument, message", [
    ("workload", r"workload must be a Workload .*, got DataFrame"),
    ("policy", r"policy must be a Policy object .*, got str 'fcfs'"),
    ("config", r"config must be an EngineConfig, got SimConfig"),
    ("step_time", r"step_time must be a function of a StepShape giving seconds \(a profile's .step_time\), got "
                  r"LinearProfile"),
])
def test_emulate_names_an_argument_of_the_wrong_kind_before_building_the_engine(workload, argument, message):
    from ltrsched.engine.emulate import EngineConfig, emulate

    given = {"workload": workload, "policy": make_policy("fcfs"), "step_time": LinearProfile().step_time,
             "config": EngineConfig(num_gpu_blocks=100)}
    given[argument] = {"workload": workload.df, "policy": "fcfs", "config": SimConfig(),
                       "step_time": LinearProfile()}[argument]
    with pytest.raises(TypeError, match=f"^{message}$"):
        emulate(given["workload"], given["policy"], given["step_time"], given["config"])


def test_the_emulated_driver_stops_at_a_nan_step_time_not_a_hang():
    """The driver's step checks the time it adds to its virtual clock: a NaN stopped the clock, and the replay waited
    for the next arrival for good. (A stand-in scheduler: building vLLM's takes half a minute in a fresh process.)"""
    from types import SimpleNamespace

    from ltrsched.engine.emulate import EmulatedDriver, VirtualClock

    scheduler = SimpleNamespace(schedule=lambda: None, planned_shape=StepShape(num_prefill_tokens=30))
    driver = EmulatedDriver(scheduler, VirtualClock(), _Returns(math.nan).step_time)
    with pytest.raises(UserError, match=r"^profile 'linear-test': a step of 30 prefill tokens and 0 decodes takes "
                                        r"nan s; a step must take a finite time of at least 1e-06 s$"):
        driver.step()
    assert driver.now() == 0.0


def test_a_profile_object_that_cannot_be_copied_runs(workload):
    """``SimConfig.describe()`` deep-copied the profile object (dataclasses.asdict): one holding a lock failed the
    run at its end with "cannot pickle '_thread.lock' object"."""
    import threading

    class Locked:  # (not a dataclass: asdict recursed into a dataclass's fields, and copied the rest whole)
        name = "locked"

        def __init__(self):
            self.lock = threading.Lock()
            self.inner = LinearProfile()

        def __getattr__(self, name):  # (step_time, num_gpu_blocks, max_model_len, ...: the linear profile's)
            return getattr(self.__dict__["inner"], name)

    result = simulate(workload, make_policy("fcfs"), SimConfig(profile=Locked()))
    assert result.meta["config"]["profile"] == "locked"
    assert result.summary["num_finished"] == 2


def test_a_request_a_stop_time_left_unserved_has_no_waiting_time():
    """A request that got no token before ``stop_time`` had ``max_waiting_time`` 0.0 (polars' max_horizontal skipped
    its NaN time to first token), and the docstring said unfinished requests keep *null* finish times: they are NaN."""
    workload = make_workload([10, 20, 30], [50, 5, 5], [0, 0, 5])
    result = simulate(workload, make_policy("fcfs"), SimConfig(profile=LinearProfile(), stop_time=0.1))
    requests = result.requests.sort("request_id")
    assert requests["finish_time"].is_nan().to_list() == [True, False, True]
    assert requests["finish_time"].null_count() == 0
    waited = requests["max_waiting_time"].to_list()
    assert waited[:2] == pytest.approx([0.04, 0.04]) and math.isnan(waited[2])
    assert result.summary["num_finished"] == 1 and result.summary["max_waiting_time_mean"] == pytest.approx(0.04)
