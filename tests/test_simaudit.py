"""The simulator on workloads and settings a user brings from elsewhere (``simaudit``): extreme lengths, tiny and
odd KV caches, arrival extremes, every policy and preemption mode. Each case finishes with every request's tokens
served, or is one clear error; none hangs, drops a request or reports a non-finite metric."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.config import ConfigError
from ltrsched.sim.simulate import MAX_HOST_BLOCKS

from conftest import LinearProfile, make_workload


def assert_served(result, workload) -> None:
    """Every request finished with its tokens, and no summary number is NaN or infinite."""
    req = result.requests
    assert req.height == len(workload)
    assert (req["generated_tokens"] == req["served_output_tokens"]).all()
    assert req["finish_time"].is_not_nan().all() and req["finish_time"].is_not_null().all()
    assert result.summary["num_finished"] == len(workload)
    bad = {k: v for k, v in result.summary.items() if isinstance(v, float) and not math.isfinite(v)}
    assert not bad, bad


# ---------------------------------------------------------------------------- host swap space
@pytest.mark.parametrize("gib", [float("inf"), 1e300])
def test_swap_space_without_limit_or_past_float_range_runs(gib):
    """An infinite swap_space_gib (no limit) or one whose bytes overflow float64 ended in int(NaN): 'ValueError:
    cannot convert float NaN to integer'. Now the host holds MAX_HOST_BLOCKS, and a run that swaps keeps every
    request's KV there (none recomputed)."""
    wl = make_workload([200] * 6, [150] * 6, score=[0.1, 0.9, 0.3, 0.7, 0.5, 0.2])
    r = simulate(wl, make_policy("ltr"), SimConfig(profile=LinearProfile(), num_gpu_blocks=60, watermark=0.0,
                                                   swap_space_gib=gib))
    assert_served(r, wl)
    assert r.summary["host_blocks"] == MAX_HOST_BLOCKS
    assert r.summary["num_preemptions"] > 0 and r.summary["swapped_blocks"] > 0


def test_swap_space_of_nan_is_refused():
    with pytest.raises(ConfigError, match="swap_space_gib must be >= 0, got nan"):
        SimConfig(swap_space_gib=float("nan"))
