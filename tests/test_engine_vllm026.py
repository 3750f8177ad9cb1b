"""The GPU path: vLLM 0.26 on CUDA (the CPU build installed here is 0.32, and no GPU is lent to CI). What differs in
vLLM 0.26's scheduler API from 0.32's, read from its wheel, is put on the installed scheduler here; the CUDA platform
is the platform probe's answer, monkeypatched, for the checks made before an engine starts."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("vllm_scheduler_code")]


def test_the_adapter_steps_a_scheduler_without_032s_encoder_cache_mismatch_set(monkeypatch):
    """vLLM 0.26's ``Scheduler`` keeps the requests its ``update_from_output`` fails in ``grammar_compile_error_reqs``
    only (0.32 added ``encoder_cache_mismatch_reqs``): the adapter read both after every step, an AttributeError at
    the first step on 0.26. A scheduler built without the 0.32 set now serves the run as the installed one does."""
    from vllm.v1.core.sched.scheduler import Scheduler

    from conftest import LinearProfile, make_workload
    from ltrsched.engine.emulate import EngineConfig, emulate, emulated_driver
    from ltrsched.policies import make_policy

    config = EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=64, max_num_seqs=4)
    workload = make_workload([40, 70, 20, 90, 30], [5, 3, 8, 2, 6], arrivals=[0.0, 0.0, 0.05, 0.1, 0.3])
    policy = "ltr:tau=0.5"
    installed = emulate(workload, make_policy(policy), LinearProfile().step_time, config)
    built, update = Scheduler.__init__, Scheduler.update_from_output

    def built_as_in_026(self, *args, **kwargs):
        built(self, *args, **kwargs)
        del self.encoder_cache_mismatch_reqs

    def update_as_in_026(self, *args, **kwargs):  # (0.32's own code reads the set: there only)
        self.encoder_cache_mismatch_reqs = set()
        try:
            return update(self, *args, **kwargs)
        finally:
            del self.encoder_cache_mismatch_reqs

    monkeypatch.setattr(Scheduler, "__init__", built_as_in_026)
    monkeypatch.setattr(Scheduler, "update_from_output", update_as_in_026)
    driver = emulated_driver(config, LinearProfile().step_time)
    assert not hasattr(driver.scheduler, "encoder_cache_mismatch_reqs")
    old = emulate(workload, make_policy(policy), LinearProfile().step_time, config, driver=driver)
    assert old.requests.equals(installed.requests)
    assert old.summary["num_finished"] == 5


def test_the_adapter_admits_from_026s_second_waiting_queue_only_what_the_plan_admits(monkeypatch):
    """vLLM 0.26 keeps the requests waiting on a structured-output grammar, streaming input or remote KV in a second
    queue, ``skipped_waiting``, and its ``schedule()`` serves that queue before ``waiting`` (once a grammar is ready
    the request is promoted and scheduled): the adapter left the queue to vLLM, which admitted its requests outside
    the plan (a mismatch at the first step). Here the installed scheduler is given 0.26's queue, which two of the
    requests enter (their grammars ready), and serves it first: the run is the installed one's."""
    from vllm.v1.core.sched.request_queue import SchedulingPolicy, create_request_queue
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.request import RequestStatus

    from conftest import LinearProfile, make_workload
    from ltrsched.engine.emulate import EngineConfig, emulate, emulated_driver
    from ltrsched.policies import make_policy

    config = EngineConfig(num_gpu_blocks=60, max_num_batched_tokens=64, max_num_seqs=4)
    workload = make_workload([40, 70, 20, 90, 30, 50], [5, 3, 8, 2, 6, 4], arrivals=[0.0, 0.0, 0.0, 0.0, 0.0, 0.1])
    installed = emulate(workload, make_policy("fcfs"), LinearProfile().step_time, config)
    built, added, schedule = Scheduler.__init__, Scheduler.add_request, Scheduler.schedule

    def built_as_in_026(self, *args, **kwargs):
        built(self, *args, **kwargs)
        self.skipped_waiting = create_request_queue(SchedulingPolicy.FCFS)

    def added_as_in_026(self, request):  # (vLLM 0.26's _enqueue_waiting_request, for a request with a grammar)
        added(self, request)
        if request.request_id in ("3", "4"):
            self.waiting.remove_request(request)
            self.skipped_waiting.add_request(request)

    def schedule_as_in_026(self, *args, **kwargs):  # (0.26 with FCFS: `self.skipped_waiting or self.waiting`)
        skipped = list(self.skipped_waiting)
        self.skipped_waiting.remove_requests(skipped)
        for r in reversed(skipped):
            self.waiting.prepend_request(r)
        try:
            return schedule(self, *args, **kwargs)
        finally:
            left = [r for r in skipped if r.status == RequestStatus.WAITING]
            self.waiting.remove_requests(left)
            for r in left:
                self.skipped_waiting.add_request(r)

    monkeypatch.setattr(Scheduler, "__init__", built_as_in_026)
    monkeypatch.setattr(Scheduler, "add_request", added_as_in_026)
    monkeypatch.setattr(Scheduler, "schedule", schedule_as_in_026)
    driver = emulated_driver(config, LinearProfile().step_time)
    old = emulate(workload, make_policy("fcfs"), LinearProfile().step_time, config, driver=driver)
    assert old.requests.equals(installed.requests)
    assert old.summary["num_finished"] == 6 and not len(driver.scheduler.skipped_waiting)


@pytest.mark.parametrize("command, out", [(["replay", "-n", "2", "-o"], "out"),
                                          (["validate", "-n", "2", "--policies", "fcfs", "--out"], "out"),
                                          (["profile", "-o"], "out.json"), (["label", "--limit", "2", "-o"], "out.parquet")])
def test_the_gpu_engine_refuses_a_block_size_its_attention_kernels_cannot_take_before_starting(capsys, tmp_path,
                                                                                               monkeypatch, command, out):
    """vLLM's CUDA attention backends take KV blocks of a multiple of 16 tokens: ``--block-size 8`` (or 7) stopped the
    GPU engine's start after it had loaded the weights ("No common block size for 8"), minutes in. It is refused in one
    line before the engine starts (an engine start here, with no GPU, would fail otherwise); the CPU engine's rule
    (multiples of 32) and the emulated engine (vLLM's scheduler only, which takes any size, as the simulator does)
    are unchanged."""
    from ltrsched.engine import platform

    monkeypatch.setattr(platform, "engine_platform", lambda: platform.CUDA)
    for size in (8, 7):
        r = run_cli_fast(capsys, *command, tmp_path / out, "--block-size", size, cwd=tmp_path)
        assert_one_line_error(r, f"--block-size must be a multiple of 16 on the GPU engine (vLLM's GPU attention "
                                 f"kernels), got {size}")
        assert not (tmp_path / out).exists()


def test_the_gpu_engines_block_sizes_are_the_multiples_of_16():
    from ltrsched.engine.platform import CUDA
    from ltrsched.errors import UserError
    from ltrsched.validation.engines import engine_config

    assert engine_config(block_size=48, platform=CUDA).block_size == 48
    assert engine_config(platform=CUDA).block_size == 16  # (vLLM's GPU default)
    with pytest.raises(UserError, match="multiple of 16 on the GPU engine"):
        engine_config(block_size=24, platform=CUDA)
    assert engine_config(block_size=24, emulate_profile="h100-llama3-8b").block_size == 24
