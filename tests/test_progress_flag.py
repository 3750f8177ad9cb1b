"""``progress`` of the Python entry points is a bool: any truthy value ("no", "false", 0.5) showed a bar."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LinearProfile, make_workload

from ltrsched.engine.config import EngineConfig
from ltrsched.engine.emulate import emulate
from ltrsched.policies import make_policy
from ltrsched.sim.cluster import simulate_cluster
from ltrsched.sim.config import SimConfig
from ltrsched.sim.simulate import simulate

CONFIG = SimConfig(profile=LinearProfile(overhead=0.01, per_token=0.001, per_kv=1e-5, blocks=199), num_gpu_blocks=199)


@pytest.mark.parametrize("run", [
    lambda wl, progress: simulate(wl, make_policy("fcfs"), CONFIG, progress=progress),
    lambda wl, progress: simulate_cluster(wl, make_policy("fcfs"), CONFIG, replicas=2, progress=progress),
    lambda wl, progress: emulate(wl, make_policy("fcfs"), LinearProfile().step_time,
                                 EngineConfig(num_gpu_blocks=200), progress=progress),
], ids=["simulate", "simulate_cluster", "emulate"])
@pytest.mark.parametrize("progress", ["no", 1, None])
def test_progress_must_be_a_bool(run, progress, capsys):
    with pytest.raises(TypeError, match=f"^progress must be True or False, got .*{progress!r}"):
        run(make_workload([10] * 3, [5] * 3), progress)
    assert capsys.readouterr().err == ""  # (no bar drawn before the refusal)


@pytest.mark.parametrize("progress", [False, np.False_])
def test_a_bool_is_taken(progress, capsys):
    result = simulate(make_workload([10] * 3, [5] * 3), make_policy("fcfs"), CONFIG, progress=progress)
    assert result.requests.height == 3 and capsys.readouterr().err == ""
