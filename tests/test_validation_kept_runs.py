"""A resumed validation keeps an engine run only if it holds what a run of this validation holds: a run edited by hand
(its engine facts, its summary's values, its requests or step log) is measured again, with a note, instead of a
TypeError traceback or a report of numbers no engine measured."""

from __future__ import annotations

import polars as pl
import pytest

from ltrsched.results import RunResult

FACTS = {"host": "h", "num_gpu_blocks": 9, "block_size": 16, "max_resident_seqs": 8, "max_model_len": 99}
SUMMARY = {**{f"{m}_{s}": 0.5 for m in ("e2e_latency", "ttft", "tpot", "latency_per_token")
              for s in ("mean", "p50", "p90")},
           "tpot_mean": None, "throughput_rps": 2.0, "throughput_tok_s": 9.0, "makespan": 1.0, "num_requests": 2}


def _saved(directory, facts=None, summary=None, requests=None, steps=None, policy="fcfs"):
    """An engine run of validation "abc", case burst, policy fcfs, repeat 0, saved in ``directory``; its directories
    by key."""
    requests = requests if requests is not None else pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [3, 4]})
    meta = {"validation": "abc", "case": "burst", "repeat": 0, "engine_facts": FACTS if facts is None else facts,
            "policy": policy}
    RunResult(requests, SUMMARY if summary is None else summary, steps, meta).save(directory)
    return {("burst", "fcfs", 0): directory}


def test_a_run_as_this_validation_wrote_it_is_kept(tmp_path):
    from ltrsched.validation.resume import kept_runs

    steps = pl.DataFrame({"cycle": [0.1, None], "num_prefill_tokens": [7, 0]})
    dirs = _saved(tmp_path / "run", steps=steps)
    not_kept = []
    assert list(kept_runs(dirs, "abc", {"burst": [1, 0]}, not_kept)) == [("burst", "fcfs", 0)]
    assert not_kept == []


@pytest.mark.parametrize("edit, why", [
    # EngineFacts(**facts): a TypeError traceback (unexpected keyword argument 'bogus'), after the runs were taken
    ({"facts": {**FACTS, "bogus": 1}}, "its engine facts are not host, num_gpu_blocks, block_size, "
                                       "max_resident_seqs, max_model_len"),
    ({"facts": {k: v for k, v in FACTS.items() if k != "block_size"}}, "its engine facts are not host, "),
    # a TypeError traceback in kv_bound ('can only concatenate str (not "int") to str')
    ({"facts": {**FACTS, "num_gpu_blocks": "abc"}}, 'its engine fact num_gpu_blocks is "abc", not a whole number'),
    ({"facts": {**FACTS, "block_size": 0}}, "its engine fact block_size is 0, not a whole number >= 1"),
    ({"facts": {**FACTS, "max_model_len": True}}, "its engine fact max_model_len is true, not a whole number"),
    ({"facts": {**FACTS, "host": 3}}, "its engine fact host is 3, not text"),
    # a TypeError traceback in own_speed ("'>' not supported between instances of 'str' and 'int'")
    ({"summary": {**SUMMARY, "e2e_latency_mean": "abc"}}, 'its summary\'s e2e_latency_mean is "abc", not a '
                                                          "measurement (a finite number >= 0)"),
    ({"summary": {**SUMMARY, "ttft_mean": -5}}, "its summary's ttft_mean is -5, not a measurement"),  # (reported)
    ({"summary": {**SUMMARY, "makespan": [1]}}, "its summary's makespan is [1], not a measurement"),
    # an emptied summary was kept, its values reported as n/a (and with no value at all: a ComputeError traceback)
    ({"summary": {}}, "its summary lacks e2e_latency_mean and 14 more value(s)"),
    ({"summary": {k: v for k, v in SUMMARY.items() if k != "makespan"}}, "its summary lacks makespan"),
    # another workload's requests (a run copied from elsewhere) were reported against this workload's simulation
    ({"requests": pl.DataFrame({"request_id": [0, 1, 2], "prompt_tokens": [3, 4, 5]})},
     "its requests.parquet holds 3 requests, not the case's 2 (its request ids differ)"),
    ({"requests": pl.DataFrame({"request_id": ["0", "1"], "prompt_tokens": [3, 4]})},
     "its requests.parquet holds 2 requests, not the case's 2 (its request ids differ)"),
    ({"requests": pl.DataFrame({"prompt_tokens": [3, 4]})}, "its requests.parquet holds 0 requests"),
    ({"steps": pl.DataFrame({"cycle": ["0.1"], "num_prefill_tokens": [7]})},
     "its steps.parquet's column cycle holds String, not numbers"),
    # another policy's run (srtf's, copied or swapped into fcfs's directory) was reported as fcfs's
    ({"policy": "srtf"}, "it ran the policy \"srtf\", not 'fcfs'"),
    ({"policy": None}, "it ran the policy null, not 'fcfs'"),
])
def test_a_run_edited_by_hand_is_not_kept_and_says_why(tmp_path, edit, why):
    from ltrsched.validation.resume import kept_runs

    dirs = _saved(tmp_path / "run", **edit)
    not_kept = []
    assert kept_runs(dirs, "abc", {"burst": [0, 1]}, not_kept) == {}
    (line,) = not_kept
    assert line.startswith(f"{tmp_path / 'run'}: {why}"), line


def test_a_policy_spec_is_compared_as_the_engine_records_it(tmp_path):
    """The engine records its policy's own spec (ltr:tau=0.6 as ltr:tau=0.6,seed=0): kept under the spec given."""
    from ltrsched.validation.resume import kept_runs

    d = tmp_path / "run"
    _saved(d, policy="ltr:tau=0.6,seed=0")
    assert list(kept_runs({("burst", "ltr:tau=0.6", 0): d}, "abc", {"burst": [0, 1]})) == [("burst", "ltr:tau=0.6", 0)]


def test_another_validations_run_is_left_out_without_a_note(tmp_path):
    from ltrsched.validation.resume import kept_runs

    not_kept = []
    assert kept_runs(_saved(tmp_path / "run"), "another", {"burst": [0, 1]}, not_kept) == {}
    assert not_kept == []


def test_an_engine_run_without_the_compared_metrics_reports_none_of_them():
    """compare_runs of an engine summary lacking every compared value: no row, in typed columns (they were Null,
    and the report's concat of every policy's rows a ComputeError traceback)."""
    from ltrsched.validation.compare import compare_runs

    sim = RunResult(pl.DataFrame({"request_id": [0]}), {"e2e_latency_mean": 0.5, "makespan": 1.0}, None, {})
    engine = RunResult(pl.DataFrame({"request_id": [0]}), {}, None, {})
    empty = compare_runs(sim, [engine])
    assert empty.height == 0
    both = pl.concat([empty, compare_runs(sim, [sim])])  # (the first policy's rows empty: the report's order)
    assert both["metric"].to_list() == ["e2e_latency", "makespan"] and both["rel_error"].to_list() == [0.0, 0.0]
