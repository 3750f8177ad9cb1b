"""vLLM 0.34, PyPI's CUDA build (what a GPU host installs today; the CPU build installed here is 0.32). What differs in
vLLM 0.33's and 0.34's API where the adapter touches it, read from their wheels, is put on the installed 0.32 scheduler
here, one difference a test: each fails without its shim in ``ltrsched/engine/vllm_compat.py``. (The emulated-engine
tests themselves were run on a real 0.34 install: docs/real-model/engine.md.)"""

from __future__ import annotations

import dataclasses
import importlib
import sys

import numpy as np
import pytest

from conftest import LinearProfile, make_workload
from ltrsched.policies import make_policy

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]


def runner_output_as_in_034():
    """vLLM 0.34's ``ModelRunnerOutput``: 0.32's without the ``req_id_to_index`` argument (vllm/v1/outputs.py: 0.34
    reads the positions from ``req_ids``; here a property gives the installed 0.32 scheduler what it reads)."""
    from vllm.v1.outputs import ModelRunnerOutput

    fields = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory))
              for f in dataclasses.fields(ModelRunnerOutput) if f.name != "req_id_to_index"]
    fields[0] = fields[0][:2]  # (req_ids: no default)
    index = property(lambda self: {r: k for k, r in enumerate(self.req_ids)})
    return dataclasses.make_dataclass("ModelRunnerOutput", fields, namespace={"req_id_to_index": index})


def test_the_emulated_engine_answers_steps_with_034s_model_runner_output(monkeypatch):
    """vLLM 0.34's ``ModelRunnerOutput`` has no ``req_id_to_index``: the emulated engine built it with one, a
    TypeError at its first step. Built as the installed vLLM takes it, the run is the installed one's."""
    import vllm.v1.outputs

    from ltrsched.engine.emulate import EngineConfig, emulate

    config = EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=64, max_num_seqs=4)
    workload = make_workload([40, 70, 20, 90, 30], [5, 3, 8, 2, 6], arrivals=[0.0, 0.0, 0.05, 0.1, 0.3])
    installed = emulate(workload, make_policy("ltr:tau=0.6"), LinearProfile().step_time, config)
    as_034 = runner_output_as_in_034()
    with pytest.raises(TypeError):
        as_034(req_ids=[], req_id_to_index={})
    monkeypatch.setattr(vllm.v1.outputs, "ModelRunnerOutput", as_034)
    new = emulate(workload, make_policy("ltr:tau=0.6"), LinearProfile().step_time, config)
    assert new.requests.equals(installed.requests) and new.summary["num_finished"] == 5


def _failing_as_in_033(monkeypatch) -> dict:
    """The installed scheduler with vLLM 0.33's and 0.34's record of the requests its ``update_from_output`` fails: a
    dict of request id -> ``RequestError`` (0.32: a set of ids). Returns what each ``update_from_output`` found there.
    (0.32's own ``update_from_output`` reads the dict's keys and clears it, as 0.34's takes its errors and empties
    it.)"""
    from vllm.v1.core.sched.scheduler import Scheduler

    built, update = Scheduler.__init__, Scheduler.update_from_output
    seen: dict = {}

    def built_as_in_033(self, *args, **kwargs):
        built(self, *args, **kwargs)
        self.grammar_compile_error_reqs = {}

    def update_as_in_033(self, *args, **kwargs):
        seen.update(self.grammar_compile_error_reqs)
        return update(self, *args, **kwargs)

    monkeypatch.setattr(Scheduler, "__init__", built_as_in_033)
    monkeypatch.setattr(Scheduler, "update_from_output", update_as_in_033)
    return seen


def test_a_request_with_bad_arguments_is_failed_alone_on_033s_error_record(monkeypatch):
    """vLLM 0.33 on keep the requests to fail in a dict of id -> ``RequestError``: the adapter's ``.add`` of a request
    with bad ltrsched arguments raised AttributeError in ``add_request``, fatal to vLLM's engine core (every client's
    requests ended). It is failed alone again, the client told why (a validation error: HTTP 400 there)."""
    from vllm.outputs import RequestError
    from vllm.v1.engine import FinishReason

    from test_engine_serve import _bad_args_run

    plain, _, _ = _bad_args_run(None)
    seen = _failing_as_in_033(monkeypatch)
    run, scheduler, outputs = _bad_args_run({"ltrsched_score": "abc"})
    line = "ltrsched's PolicyScheduler refuses the request: ltrsched_score must be a number, got 'abc'"
    assert seen == {rid: RequestError(code="validation_error", message=line) for rid in "bc"}
    for rid in "bc":
        assert [(o.finish_reason, o.new_token_ids) for o in outputs.pop(rid)] == [(FinishReason.ERROR, [])]
    assert sorted(outputs) == ["0", "1", "2", "3"] and run.summary["mismatched_steps"] == 0
    np.testing.assert_array_equal(run.requests["finish_time"].to_numpy(), plain.requests["finish_time"].to_numpy())
    assert scheduler.grammar_compile_error_reqs == {}


def test_a_streaming_session_is_failed_alone_on_033s_error_record(monkeypatch):
    from vllm.v1.engine import FinishReason

    from test_engine_emulated import _session_run

    seen = _failing_as_in_033(monkeypatch)
    run, _, outputs = _session_run(True)
    assert [(o.finish_reason, o.new_token_ids) for o in outputs.pop("s")] == [(FinishReason.ERROR, [])] * 2
    assert sorted(outputs) == ["0", "1", "2", "3"] and run.summary["mismatched_steps"] == 0
    assert list(seen) == ["s"] and seen["s"].message.startswith(
        "ltrsched's PolicyScheduler cannot serve streaming-input sessions")


def test_a_request_whose_grammar_fails_is_failed_on_033s_error_record(monkeypatch):
    from test_engine_emulated import _grammar_run

    seen = _failing_as_in_033(monkeypatch)
    run, scheduler = _grammar_run("error", at_step=2)
    assert run.summary["num_finished"] == 2 and sum(scheduler.log.columns["mismatches"]) == 0
    assert list(seen) == ["1"] and seen["1"].message == "Invalid structured outputs: bad"  # (as vLLM 0.34 words it)
    assert "1" not in scheduler.requests and not scheduler.grammar_compile_error_reqs


def test_034s_prefill_cadence_on_one_engine_is_refused_when_the_scheduler_is_built(monkeypatch):
    """vLLM 0.33 on apply ``--prefill-schedule-interval N`` on one engine too (0.32: under data parallelism only,
    refused): its ``schedule()`` then defers every prefill, admitted or running, on N-1 of N steps, which the plan does
    not model (a mismatch at the first deferred step). Refused at construction, in one line; 1 (the default) runs."""
    from vllm.v1.core.sched.scheduler import Scheduler

    from ltrsched.engine.emulate import EngineConfig, build_scheduler
    from ltrsched.engine.setup import EngineSetup

    built = Scheduler.__init__
    interval = {"n": 3}

    def built_as_in_034(self, *args, **kwargs):  # (vllm/v1/core/sched/scheduler.py, 0.34: local_prefill_interval)
        built(self, *args, **kwargs)
        self.local_prefill_interval = interval["n"] if self.parallel_config.data_parallel_size == 1 else 1

    monkeypatch.setattr(Scheduler, "__init__", built_as_in_034)
    with pytest.raises(ValueError) as err:
        build_scheduler(EngineConfig(num_gpu_blocks=100), EngineSetup(make_policy("fcfs")))
    assert str(err.value) == ("ltrsched's PolicyScheduler cannot run with: prefill_schedule_interval=3 (prefill "
                              "admitted only every 3 steps; leave it at 1)")
    interval["n"] = 1
    scheduler = build_scheduler(EngineConfig(num_gpu_blocks=100), EngineSetup(make_policy("fcfs")))
    assert scheduler.local_prefill_interval == 1


def test_the_front_end_check_loads_without_the_v1_model_runners_interface(monkeypatch):
    """vLLM 0.34 has no ``vllm.v1.sample.logits_processor`` (the V1 model runner's; Model Runner V2's base is
    ``vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor``): ``ltrsched.engine.serve_check`` did not import
    (``--logits-processors ltrsched.engine.serve_check:ArgsCheck`` stopped ``vllm serve``'s start). It imports, and
    vLLM's V2 front end takes it and refuses a bad argument with the scheduler's line."""
    from vllm.exceptions import VLLMValidationError
    from vllm.sampling_params import SamplingParams
    from vllm.v1.worker.gpu.sample.logits_processor import (LogitsProcessor,
                                                           build_custom_logits_processors_params_validator)

    import ltrsched.engine

    installed = importlib.import_module("ltrsched.engine.serve_check")  # (put back after the test, for later tests)
    monkeypatch.setattr(ltrsched.engine, "serve_check", installed)
    monkeypatch.delitem(sys.modules, "ltrsched.engine.serve_check")
    monkeypatch.setitem(sys.modules, "vllm.v1.sample.logits_processor", None)  # (an import of it: ImportError)
    check = importlib.import_module("ltrsched.engine.serve_check").ArgsCheck
    assert check.__bases__ == (LogitsProcessor,)
    validate = build_custom_logits_processors_params_validator([check])
    validate(SamplingParams(extra_args={"ltrsched_score": 0.5}))
    with pytest.raises(VLLMValidationError, match=r"ltrsched_score must be a number, got 'abc'"):
        validate(SamplingParams(extra_args={"ltrsched_score": "abc"}))
    monkeypatch.undo()
    assert importlib.import_module("ltrsched.engine.serve_check") is installed


@pytest.mark.parametrize("found", [("vllm", "0.34.0"), ("vllm", "0.34.2+cu130")])
def test_034_passes_the_version_check(monkeypatch, found):
    """A GPU host that installs vLLM today gets 0.34 (PyPI's CUDA build): the adapter refused it ("supports vLLM
    0.26.x, 0.32.x")."""
    from ltrsched.engine import vllm_compat

    monkeypatch.setattr(vllm_compat, "vllm_distribution", lambda: found)
    assert vllm_compat.require_vllm_installed() == found[1].split("+")[0]
