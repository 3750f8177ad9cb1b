"""The adapter as ``vllm serve`` runs it: a request's ltrsched arguments as an HTTP client sends them (the OpenAI API's
``vllm_xargs``, flat), and one client's bad arguments failing that request alone, not the engine core.

Fast: the emulated engine's scheduler (no model); the end-to-end run under a real ``vllm serve`` is
``tests/test_engine_serve_e2e.py`` (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import make_workload
from ltrsched.engine.setup import BadRequestArgs, request_fields, request_info
from ltrsched.policies import make_policy


def test_a_flat_score_as_vllm_xargs_carries_it_reaches_the_request():
    """vLLM 0.32's ``vllm_xargs`` takes strings, numbers and lists only (an object, as ``{"ltrsched": {"score": 1}}``,
    is refused with HTTP 400), so under ``vllm serve`` no score reached the scheduler: every request ranked as
    unscored. ``ltrsched_score`` (and ``ltrsched_po_estimate``, ``ltrsched_predicted_length``) now do."""
    info = request_info({"ltrsched_score": 2.5, "ltrsched_predicted_length": 40}, 30, 99, now=3.0, fallback_id=4)
    assert (info.score, info.predicted_length, info.request_id, info.output_tokens) == (2.5, 40.0, 4, 99)
    assert math.isnan(info.po_estimate)
    assert request_fields({"ltrsched_score": 10**30})["score"] == 1e30
    assert math.isnan(request_info({"ltrsched_score": float("nan")}, 30, 99, 3.0, 4).score)  # NaN: no score
    assert request_fields({"other_extension": "x"}) == {}


@pytest.mark.parametrize("extra,line", [
    ({"ltrsched_score": "abc"}, "ltrsched_score must be a number, got 'abc'"),
    ({"ltrsched_score": "0.5"}, "ltrsched_score must be a number, got '0.5'"),
    ({"ltrsched_score": [1, 2]}, "ltrsched_score must be a number, got [1, 2]"),
    ({"ltrsched_score": True}, "ltrsched_score must be a number, got True"),
    ({"ltrsched_score": float("inf")}, "ltrsched_score must be a finite number (or NaN: none), got inf"),
    ({"ltrsched_score": 10**400}, "ltrsched_score must be a finite number (or NaN: none), got 1000000000000000000000000000000000000..."),
    ({"ltrsched": "x"}, "extra_args['ltrsched'] must be an object of fields (id, arrival, output_tokens, "
                        "requested_output_tokens, score, po_estimate, predicted_length), got 'x'"),
    ({"ltrsched": {"scor": 1.0}}, "extra_args['ltrsched'] has an unknown field 'scor' (known: id, arrival, "
                                  "output_tokens, requested_output_tokens, score, po_estimate, predicted_length)"),
    ({"ltrsched": {"id": -1}}, "extra_args['ltrsched']['id'] must be an integer in [0, 2**62), got -1"),
    ({"ltrsched": {"output_tokens": 2.5}}, "extra_args['ltrsched']['output_tokens'] must be an integer in [0, 2**62), got 2.5"),
    ({"ltrsched": {"arrival": float("nan")}}, "extra_args['ltrsched']['arrival'] must be a finite number, got nan"),
    ({"ltrsched": {"score": 1.0}, "ltrsched_score": 2.0}, "score given twice: as ltrsched_score and in extra_args['ltrsched']"),
])
def test_bad_ltrsched_arguments_are_one_line(extra, line):
    """Each was a ValueError, TypeError or AttributeError traceback from add_request (``"x"``: 'str' object has no
    attribute 'get'), or passed unread (a string, True, inf); now one line naming the argument."""
    with pytest.raises(BadRequestArgs) as err:
        request_info(extra, 30, 99, now=3.0, fallback_id=0)
    assert str(err.value) == line



def _bad_args_run(bad_extra: dict | None):
    """Four requests under LTR on the emulated engine (strict: a step that differs from its plan raises), each with
    its score as ``vllm_xargs`` carries it; with ``bad_extra``, a request "b" with those extra arguments and one "c"
    (n=2's second child, say) with the same arrive at step 1. Returns the run, the scheduler and the outputs by id."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    from test_engine_emulated import run_with_arrivals

    def arrive(scheduler):
        if bad_extra is not None and scheduler.num_steps == 1:
            for rid in "bc":
                scheduler.add_request(Request(request_id=rid, prompt_token_ids=[0] * 30, pooling_params=None,
                                              sampling_params=SamplingParams(max_tokens=4, extra_args=bad_extra),
                                              arrival_time=0.0))

    return run_with_arrivals(make_workload([40, 70, 20, 30], [5, 3, 8, 6], score=[0.1, 0.9, 0.5, 0.3]), "ltr", arrive)


@pytest.mark.parametrize("bad_extra", [{"ltrsched_score": "abc"}, {"ltrsched": "x"}, {"ltrsched_score": [1, 2]}])
@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_a_request_with_bad_arguments_is_failed_alone_and_the_others_run_as_planned(caplog, bad_extra):
    """Under `vllm serve` (measured: docs/serving.md) ``vllm_xargs={"ltrsched": "x"}`` from one HTTP client raised
    AttributeError in the scheduler's add_request, which vLLM's engine core takes as fatal: the server shut down and
    every client's request got HTTP 500. Now that request alone is failed (FINISHED_ERROR at the next step, an output
    without tokens: vLLM answers its client 500 "Internal server error"), with one warning line per request; the
    others run exactly as in a run without it (strict: no step differs from its plan)."""
    from vllm.v1.engine import FinishReason

    plain, _, _ = _bad_args_run(None)
    with caplog.at_level("WARNING", logger="ltrsched.engine.scheduler"):
        run, scheduler, outputs = _bad_args_run(bad_extra)
    for rid in "bc":
        assert [(o.finish_reason, o.new_token_ids) for o in outputs.pop(rid)] == [(FinishReason.ERROR, [])]
    assert sorted(outputs) == ["0", "1", "2", "3"] and run.summary["num_finished"] == 4
    assert run.summary["mismatched_steps"] == 0 and sum(scheduler.log.columns["mismatches"]) == 0
    for col in ("first_scheduled_time", "first_token_time", "finish_time", "num_preemptions", "generated_tokens"):
        np.testing.assert_array_equal(run.requests[col].to_numpy(), plain.requests[col].to_numpy(), err_msg=col)
    assert scheduler.table.size == 4 and not scheduler.get_num_unfinished_requests()
    assert not scheduler.waiting and not scheduler.grammar_compile_error_reqs
    lines = [r.getMessage() for r in caplog.records if r.name == "ltrsched.engine.scheduler"]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert lines[0].startswith("ltrsched's PolicyScheduler refuses request 'b': ") and lines[0].endswith(
        "; it is failed (FINISHED_ERROR), the other requests run on")


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_flat_scores_rank_requests_under_ltr_in_the_scheduler():
    """The scores an HTTP client sends (``vllm_xargs={"ltrsched_score": ...}``) are the ones LTR ranks by: the
    best-scored request is scheduled first where only one fits the step's budget; an unscored one ranks last."""
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    from ltrsched.engine.emulate import EngineConfig, VirtualClock, build_scheduler
    from ltrsched.engine.setup import EngineSetup

    scheduler = build_scheduler(EngineConfig(num_gpu_blocks=100, max_num_batched_tokens=32, max_num_seqs=4),
                                EngineSetup(make_policy("ltr"), VirtualClock()))
    for rid, extra in [("a", {"ltrsched_score": 0.1}), ("b", None), ("c", {"ltrsched_score": 5.0})]:
        scheduler.add_request(Request(request_id=rid, prompt_token_ids=[0] * 32, pooling_params=None,
                                      sampling_params=SamplingParams(max_tokens=5, extra_args=extra)))
    np.testing.assert_array_equal(scheduler.table.score[:3], [0.1, np.nan, 5.0])
    assert list(scheduler.schedule().num_scheduled_tokens) == ["c"]


@pytest.mark.parametrize("config,line", [
    ({"ltrsched": "ltr"}, "additional_config['ltrsched'] must be an object, e.g. {\"policy\": \"ltr\"}, got 'ltr'"),
    ({"ltrsched": {"policy": "ltr", "strict": "no"}},
     "additional_config['ltrsched']['strict'] must be true or false, got 'no'"),
    ({"ltrsched": {"policy": "ltr", "max_batch_seqs": "8"}},
     "additional_config['ltrsched']['max_batch_seqs'] must be a positive integer, got '8'"),
    ({"ltrsched": {"policy": "ltr", "max_batch_seqs": 0}},
     "additional_config['ltrsched']['max_batch_seqs'] must be a positive integer, got 0"),
    ({"ltrsched": {"policy": 3}}, "additional_config['ltrsched']['policy'] must be a policy spec, e.g. "
                                  "\"ltr:starve=200,quantum=10\", got 3"),
    ({"ltrsched": {"policy": "ltr", "polcy": "x"}},
     "additional_config['ltrsched'] has an unknown key 'polcy' (known: policy, strict, max_batch_seqs)"),
])
def test_a_bad_additional_config_is_one_line(config, line):
    """`vllm serve --additional-config` as the scheduler reads it at the engine core's start: ``"strict": "no"`` ran
    strict (any string is true), ``"max_batch_seqs": "8"`` was a TypeError and ``"ltrsched": "ltr"`` an
    AttributeError; each is now one line (vLLM logs it under "EngineCore failed to start" and the server exits)."""
    from ltrsched.engine.setup import take_setup

    with pytest.raises(ValueError) as err:
        take_setup(config)
    assert str(err.value) == line


def test_a_good_additional_config_sets_the_scheduler_up():
    from ltrsched.engine.setup import take_setup

    setup = take_setup({"ltrsched": {"policy": "mlfq", "strict": True, "max_batch_seqs": 8}})
    assert (setup.policy.name, setup.strict, setup.max_batch_seqs, setup.watch_plugins) == ("mlfq", True, 8, True)
    assert setup.max_log_steps == 100_000  # (a server's step log keeps its last 100,000 steps)
    assert take_setup({"ltrsched": {"policy": "fcfs"}}).strict is False


def front_end_validators(check: list[str]) -> dict:
    """vLLM's front-end checks of ``check``'s logits processors, by model runner, those this vLLM has: the V1 runner's
    (vLLM 0.26 to 0.33) and Model Runner V2's (0.32 on; the only one in 0.34)."""
    validators = {}
    try:
        from vllm.v1.sample.logits_processor import validate_logits_processors_parameters
    except ImportError:
        pass
    else:
        validators["v1"] = lambda params: validate_logits_processors_parameters(check, params)
    from vllm.v1.worker.gpu.sample.logits_processor import build_custom_logits_processors_params_validator

    validators["v2"] = build_custom_logits_processors_params_validator(check)
    return validators


@pytest.mark.vllm
@pytest.mark.usefixtures("vllm_scheduler_code")
def test_the_front_end_check_refuses_what_the_scheduler_refuses_through_vllms_validator():
    """``--logits-processors ltrsched.engine.serve_check:ArgsCheck``: vLLM's front end runs its ``validate_params`` on
    each request and turns the error into HTTP 400 (its ``VLLMValidationError``) with the scheduler's line; a good
    request passes, and the logits are left alone. Under each model runner this vLLM has: Model Runner V2's front end
    (vLLM 0.32 on a CUDA host, 0.34 everywhere) refused to load the check, a subclass of the V1 runner's base only."""
    from vllm.exceptions import VLLMValidationError
    from vllm.sampling_params import SamplingParams

    validators = front_end_validators(["ltrsched.engine.serve_check:ArgsCheck"])
    assert "v2" in validators
    for validate in validators.values():
        validate(SamplingParams(extra_args={"ltrsched_score": 0.5}))
        validate(SamplingParams())
        with pytest.raises(VLLMValidationError, match=r"ltrsched_score must be a number, got 'abc'"):
            validate(SamplingParams(extra_args={"ltrsched_score": "abc"}))
    from ltrsched.engine.serve_check import ArgsCheck

    logits = np.ones((2, 3))
    processor = ArgsCheck(None, None, False)  # (the V1 runner's arguments; V2's are two)
    assert processor.apply(logits) is logits and processor.is_argmax_invariant()
    processor = ArgsCheck(None, None)
    assert processor.apply(logits, None) is logits and processor.add_request(0, SamplingParams()) is False


def test_a_step_log_with_a_bound_keeps_the_last_steps():
    """A server's scheduler logs every step of one endless run: unbounded (as before), ~360 bytes a step grew without
    end. Bounded, it keeps at least the last ``max_steps`` and at most twice as many."""
    from ltrsched.engine.step_log import StepLog
    from ltrsched.policies.step_shape import StepShape

    log, everything = StepLog(max_steps=10), StepLog()
    for k in range(45):
        for each in (log, everything):
            each.record(StepShape(num_decode_seqs=1, decode_context_tokens=k), k, k + 1, 1.0, 1, 0, 0, 1, 0, 0.0, 0.0)
        assert min(k + 1, 10) <= len(log) < 20
    assert log.columns["start"] == list(range(45 - len(log), 45)) and log.last("decode_context_tokens") == 44
    assert len(everything) == 45
