"""A Python profile object whose ``step_time`` goes wrong partway through a run: one typed line naming the profile,
the step and the value (a raw TypeError, "simulation ended with unfinished requests", or its own exception
unwrapped before)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.errors import ArgumentTypeError, ArgumentValueError
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster


class _TurnsAt(LinearProfile):
    """A profile object whose steps take the linear time until ``calls`` calls, then ``value`` (or raise it)."""

    def __init__(self, value, calls=5):
        super().__init__()
        self.value, self.calls, self.seen = value, calls, 0

    def step_time(self, shape):
        self.seen += 1
        if self.seen <= self.calls:  # (the one-token check before the run included)
            return super().step_time(shape)
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


@pytest.fixture(scope="module")
def workload():
    return make_workload([30, 10, 50, 20, 40, 10], [8, 5, 12, 6, 9, 4])


def _run(workload, profile, replicas):
    config = SimConfig(profile=profile, block_size=16)
    if replicas == 1:
        return simulate(workload, make_policy("fcfs"), config)
    return simulate_cluster(workload, make_policy("fcfs"), config, replicas=replicas)


@pytest.mark.parametrize("replicas", [1, 2])
@pytest.mark.parametrize("value, shown", [("0.01", "str '0.01'"), (None, "NoneType None"),
                                          (np.array([0.01, 0.02]), r"ndarray array\(\[0.01, 0.02\]\)"),
                                          (Decimal("0.01"), r"Decimal Decimal\('0.01'\)")])
def test_a_step_time_that_is_not_a_number_partway_is_one_typed_line(workload, replicas, value, shown):
    with pytest.raises(ArgumentTypeError, match=rf"^profile 'linear-test': step_time gave {shown} at step \d+, of \d+ "
                                                r"prefill tokens and \d+ decodes over \d+ context tokens; it must give "
                                                r"a time in seconds \(a number\)$"):
        _run(workload, _TurnsAt(value), replicas)


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_step_beyond_the_horizon_partway_is_one_line(workload, replicas):
    with pytest.raises(ArgumentValueError, match=r"^profile 'linear-test': step \d+, of .* takes 1e\+308 s \(swaps "
                                                 r"included\); a step must take a finite time of at least 1e-06 s and "
                                                 r"below 1e\+08 s \(the simulator's time horizon\)$"):
        _run(workload, _TurnsAt(1e308), replicas)


@pytest.mark.parametrize("replicas", [1, 2])
def test_an_exception_inside_step_time_is_one_line_naming_its_line(workload, replicas):
    with pytest.raises(ArgumentValueError, match=r"^profile 'linear-test': step_time raised ZeroDivisionError: "
                                                 r"no time \(.*test_sim_profile_object.py:\d+, in step_time\) at step "
                                                 r"\d+, of .*; fix the profile object$") as info:
        _run(workload, _TurnsAt(ZeroDivisionError("no time")), replicas)
    causes, exc = [], info.value
    while exc is not None:  # (the profile's exception kept in the chain: LTRSCHED_TRACEBACK-style debugging)
        causes.append(type(exc).__name__)
        exc = exc.__cause__
    assert "ZeroDivisionError" in causes


def test_numpy_and_plain_numbers_still_run(workload):
    plain = simulate(workload, make_policy("fcfs"), SimConfig(profile=LinearProfile(), block_size=16))

    class Numpy(LinearProfile):
        def step_time(self, shape):
            return np.float64(super().step_time(shape))

    as_numpy = simulate(workload, make_policy("fcfs"), SimConfig(profile=Numpy(), block_size=16))
    assert plain.requests.equals(as_numpy.requests)
