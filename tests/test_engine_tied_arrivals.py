"""Requests that arrive at the same time go to the engine in request-id order, the simulator's tie-break of its
competition order (``LiveView.arrival_ordered``), whatever the order of their rows: a file whose tied rows were not in
id order was added in row order, so the adapter's live set was flagged out of order for the rest of the run and the
real engine drew each request's random prompt ids by row (sorting the file changed what a request's prompt held)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from conftest import LinearProfile
from ltrsched.workloads.schema import Workload

#: Rows of three arrival instants, each instant's ids out of order (and a later instant's row among them).
IDS = [5, 3, 4, 0, 2, 1, 8, 6, 7]
ARRIVALS = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5]


def _workload() -> Workload:
    n = len(IDS)
    return Workload(pl.DataFrame({"request_id": np.asarray(IDS, dtype=np.int64),
                                  "prompt_tokens": np.asarray([40 + 7 * i for i in IDS], dtype=np.int64),
                                  "output_tokens": np.asarray([3 + i for i in IDS], dtype=np.int64),
                                  "arrival_time": np.asarray(ARRIVALS, dtype=np.float64)}), f"ties{n}")


def test_tied_arrivals_are_listed_by_request_id():
    from ltrsched.engine.replay import request_infos

    infos = request_infos(_workload(), 0)
    assert [(r.arrival_time, r.request_id) for r in infos] == sorted(zip(ARRIVALS, IDS))


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_the_engine_is_given_tied_requests_in_id_order(monkeypatch):
    from ltrsched.engine.emulate import EmulatedDriver, EngineConfig, emulated_driver, emulate
    from ltrsched.policies import make_policy

    added: list[int] = []
    add = EmulatedDriver.add
    monkeypatch.setattr(EmulatedDriver, "add", lambda self, info: (added.append(info.request_id), add(self, info)))
    profile = LinearProfile(overhead=0.01, per_token=0.001, blocks=63)
    config = EngineConfig(num_gpu_blocks=64, max_num_batched_tokens=64, max_num_seqs=2)
    driver = emulated_driver(config, profile.step_time)
    result = emulate(_workload(), make_policy("fcfs"), profile.step_time, config, driver=driver)
    assert added == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert driver.scheduler.table.arrival_ordered  # (the live set listed as the simulator lists it)
    assert result.summary["num_finished"] == len(IDS) and result.summary["mismatched_steps"] == 0
