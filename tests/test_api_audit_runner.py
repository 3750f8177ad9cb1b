"""The run runner's Python entry (``run_all``, ``open_backend``) given values ``ltrsched sweep``'s options never pass:
one TypeError naming the argument, before any run, in place of a traceback from inside the runner."""

from __future__ import annotations

import numpy as np
import pytest

from ltrsched.errors import UserError
from ltrsched.experiments.runner import open_backend, run_all
from ltrsched.experiments.runspec import RunSpec

SPEC = RunSpec("x", "s", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b", num_requests=30,
               arrival="poisson", rate=4.0)


@pytest.mark.parametrize("jobs", ["2", 2.5, True, [2]])
def test_jobs_that_is_no_integer_is_a_type_error_naming_it(tmp_path, jobs):
    for call in (lambda: open_backend("process", jobs).__enter__(), lambda: run_all([SPEC], tmp_path, jobs=jobs)):
        with pytest.raises(TypeError, match=r"^jobs must be an integer in 1\.\.4,096 \(parallel runs\) or None, got "):
            call()
    assert not any(tmp_path.iterdir())


def test_a_numpy_jobs_count_is_taken():
    with open_backend("process", np.int64(3)) as backend:
        assert backend.jobs == 3


@pytest.mark.parametrize("jobs", [0, -1])
def test_run_all_refuses_a_jobs_count_out_of_range_even_with_nothing_to_run(tmp_path, jobs):
    """jobs=0 was taken while every run was cached (nothing to run) and refused once one was not."""
    with pytest.raises(UserError, match="must be in 1..4,096"):
        run_all([], tmp_path, jobs=jobs, progress=False)


@pytest.mark.parametrize("specs, message", [
    (SPEC, "specs must be a list of RunSpec objects, got RunSpec"),  # was "'RunSpec' object is not iterable"
    ("fcfs", "specs must be a list of RunSpec objects, got str 'fcfs'"),  # was an AttributeError about run_hash
    ([SPEC, "fcfs"], "specs must hold RunSpec objects, got str 'fcfs'"),
    ([{"policy": "fcfs"}], "specs must hold RunSpec objects, got dict"),
    (None, "specs must be a list of RunSpec objects, got None"),
])
def test_specs_that_are_not_run_specs_are_a_type_error_naming_them(tmp_path, specs, message):
    with pytest.raises(TypeError) as info:
        run_all(specs, tmp_path, jobs=1, progress=False)
    assert str(info.value).startswith(message)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("address", [6379, b"127.0.0.1:6379", ("127.0.0.1", 6379)])
def test_an_address_that_is_no_string_is_a_type_error_naming_it(address):
    """An int was an AttributeError traceback ('int' object has no attribute 'removeprefix'), once Ray was imported."""
    with pytest.raises(TypeError, match=r"^address must be a string \(host:port, ray://host:port or auto\) or None"):
        open_backend("ray", None, address).__enter__()
