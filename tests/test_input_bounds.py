"""Degenerate profiles and extreme values are refused with one line naming the field (issue 12, item 4)."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.predictors.config import PredictorConfig
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.profiles import load_profile, profile_to_dict
from ltrsched.workloads import Workload, apply_arrivals, load_workload
from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

from conftest import LinearProfile, make_workload


# ---------------------------------------------------------------------------- profiles
def _profile_file(tmp_path, mutate) -> str:
    d = profile_to_dict(load_profile("a100-llama3-8b"))
    mutate(d)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(d))
    return str(path)


def _all_zero(d):
    d["non_attention"]["non_attention_s"] = [0.0] * len(d["non_attention"]["num_tokens"])
    d["sampling"]["sampling_s"] = [0.0] * len(d["sampling"]["num_seqs"])
    d.update(overhead_s_per_step=0.0, overhead_s_per_seq=0.0, decode_attention_s_per_kv_token=0.0,
             prefill_attention_s_per_pair=0.0)


def _tables_zero(d):  # attention terms left: a lone short decode can still take ~0 s
    d["non_attention"]["non_attention_s"] = [0.0] * len(d["non_attention"]["num_tokens"])
    d["sampling"]["sampling_s"] = [0.0] * len(d["sampling"]["num_seqs"])
    d.update(overhead_s_per_step=1e-300, overhead_s_per_seq=0.0)


@pytest.mark.parametrize("mutate, message", [
    (_all_zero, "the shortest step takes 0 s"),
    (_tables_zero, "the shortest step takes 1e-300 s"),
    (lambda d: d.update(overhead_s_per_step=1e308), "key 'overhead_s_per_step' is 1e+308"),
    (lambda d: d.update(overhead_s_per_seq=1e10), "key 'overhead_s_per_seq' is 10000000000.0"),
    (lambda d: d.update(decode_attention_s_per_kv_token=1e200), "key 'decode_attention_s_per_kv_token'"),
    (lambda d: d.update(host_link_bytes_per_s=1e-300), "key 'host_link_bytes_per_s' is 1e-300"),
    (lambda d: d.update(host_link_bytes_per_s=1e300), "key 'host_link_bytes_per_s' is 1e+300"),
    (lambda d: d.update(gpu_memory_bytes=10**30), "key 'gpu_memory_bytes'"),
    (lambda d: d.update(activation_reserve_bytes=d["gpu_memory_bytes"]), "'activation_reserve_bytes'"),
    (lambda d: d.update(max_model_len=2**40), "key 'max_model_len'"),
    (lambda d: d["non_attention"]["non_attention_s"].__setitem__(-1, 1e300), "'non_attention.non_attention_s'"),
    (lambda d: d["sampling"]["num_seqs"].__setitem__(-1, 1e300), "'sampling.num_seqs'"),
])
def test_absurd_profiles_are_refused_naming_the_field(tmp_path, mutate, message):
    path = _profile_file(tmp_path, mutate)
    with pytest.raises(UserError) as err:
        load_profile(path)
    assert path in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("mutate, message", [
    (_all_zero, "a step must take at least 1e-06 s"),
    (lambda d: d.update(overhead_s_per_step=1e308), "'overhead_s_per_step'"),
    (lambda d: d.update(host_link_bytes_per_s=1e-300), "'host_link_bytes_per_s'"),
])
def test_cli_refuses_absurd_profiles(capsys, tmp_path, mutate, message):
    r = run_cli_fast(capsys, "simulate", "-n", "50", "--num-gpu-blocks", "100", "--profile",
                     _profile_file(tmp_path, mutate))
    assert_one_line_error(r, message)


def test_a_profile_object_with_zero_time_steps_is_refused():
    wl = make_workload([10, 20], [3, 4])
    with pytest.raises(UserError, match="a one-token decode step takes 0 s; a step must take"):
        simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile(overhead=0.0, per_token=0.0)))
    simulate(wl, make_policy("fcfs"), SimConfig(profile=LinearProfile()))  # the usual one runs


# ---------------------------------------------------------------------------- arrival times
def test_arrivals_too_late_for_float_time_are_refused():
    wl = make_workload([10] * 3, [5] * 3)
    with pytest.raises(UserError, match=r"arrival times up to .*e\+300 s; they must stay below 1e\+08 s"):
        apply_arrivals(wl, "poisson", rate=1e-300, seed=0)
    with pytest.raises(UserError, match="must stay below 1e"):
        apply_arrivals(make_workload([10] * 2, [5] * 2, arrivals=[0.0, 1e300]), "replay")
    with pytest.raises(UserError, match="workload 'test' has arrival times up to 1e\\+300 s"):  # the API, directly
        simulate(make_workload([10] * 2, [5] * 2, arrivals=[0.0, 1e300]), make_policy("fcfs"),
                 SimConfig(profile=LinearProfile()))
    # late but resolvable: runs, and the step times survive
    r = simulate(make_workload([10] * 2, [5] * 2, arrivals=[0.0, 9e7]), make_policy("fcfs"),
                 SimConfig(profile=LinearProfile()))
    assert (r.requests["e2e_latency"] > 0.05).all()


@pytest.mark.parametrize("rate, n, message", [
    ("1e-300", "5", "--rate 1e-300 req/s is below 1e-08"), ("1e-308", "50", "--rate 1e-308 req/s is below 1e-08"),
    ("1e-7", "50", "must stay below 1e+08 s")])
def test_cli_refuses_a_vanishing_rate(capsys, rate, n, message):
    """At 1e-308 req/s the arrival times overflow float64: numpy's RuntimeWarning (two lines) came before the error
    (now below the lowest rate, :data:`ltrsched.sim.rates.MIN_RATE`); a rate above it whose arrivals span past 1e8 s
    is refused for its span."""
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-n", n, "--arrival", "poisson", "--rate", rate), message)


def test_cli_refuses_a_replayed_trace_near_1e300(capsys, tmp_path):
    path = tmp_path / "late.parquet"
    make_workload([10] * 2, [5] * 2, arrivals=[0.0, 1e300]).save(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path), "--arrival",
                                       "replay"), "must stay below 1e+08 s")


# ---------------------------------------------------------------------------- token columns
@pytest.mark.parametrize("content", [
    "arrival_time,prompt_tokens,output_tokens\n0,true,5\n1,false,7\n",
    "arrival_time,prompt_tokens,output_tokens\n0,12,true\n1,3,true\n",
])
def test_csv_boolean_token_values_are_refused(capsys, tmp_path, content):
    path = tmp_path / "trace.csv"
    path.write_text(content)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w",
                                       str(path)), "in row 1 is True, not a token count")


@pytest.mark.parametrize("column", ["prompt_tokens", "output_tokens", "arrival_time", "score"])
def test_boolean_columns_in_a_workload_table_are_refused(column):
    cols = {"request_id": [0, 1], "prompt_tokens": [3, 4], "output_tokens": [3, 4], "arrival_time": [0.0, 0.0]}
    cols[column] = [True, True]
    counts = column in ("prompt_tokens", "output_tokens")  # (a count's value: one line in every container)
    with pytest.raises(UserError, match=rf"column '{column}' in row 1 is True, not a token count" if counts else
                       rf"column {column} has non-numeric values \(Boolean"):
        Workload(pl.DataFrame(cols), "t")


@pytest.mark.parametrize("values, dtype", [([17, 18], "Int64"), ([0.5, 1.5], "Float64"), ([True, False], "Boolean"),
                                           ([[1], [2]], "List(Int64)")])
def test_a_prompt_column_that_is_not_text_is_refused(values, dtype):
    """Another tool's table with prompt ids (numbers) in its prompt column was cast to text ("17") and trained
    on or scored as prompts, with exit 0."""
    cols = {"request_id": [0, 1], "prompt_tokens": [3, 4], "output_tokens": [3, 4], "arrival_time": [0.0, 0.0],
            "prompt": values}
    with pytest.raises(UserError, match=rf"t: column prompt holds {re.escape(dtype)} values \(first: .*\), not text"):
        Workload(pl.DataFrame(cols), "t")


@pytest.mark.parametrize("dtype", [pl.String, pl.Categorical, pl.Binary])
def test_prompt_text_columns_still_load(dtype):
    prompts = pl.Series(["a b", "c"]).cast(dtype)
    cols = {"request_id": [0, 1], "prompt_tokens": [3, 4], "output_tokens": [3, 4], "arrival_time": [0.0, 0.0],
            "prompt": prompts}
    assert Workload(pl.DataFrame(cols), "t").df["prompt"].to_list() == ["a b", "c"]


def test_an_all_null_score_column_is_still_allowed():
    cols = {"request_id": [0, 1], "prompt_tokens": [3, 4], "output_tokens": [3, 4], "arrival_time": [0.0, 0.0],
            "score": [None, None]}
    assert len(Workload(pl.DataFrame(cols), "t")) == 2


# ---------------------------------------------------------------------------- predictor checkpoints
def _checkpoint(tmp_path, **changes):
    d = tmp_path / "ckpt"
    d.mkdir()
    PredictorConfig().save(d)
    data = json.loads((d / "predictor.json").read_text())
    data.update(changes)
    (d / "predictor.json").write_text(json.dumps(data))
    (d / "weights.pt").write_bytes(b"")  # never read: the config fails first
    return d


@pytest.mark.parametrize("changes, message", [
    ({"dim": 2**36}, "dim must be in [0, 16777216], got 68719476736"),
    ({"hidden": 2**30}, "hidden must be in [0, 4096]"),
    ({"dim": 2**24, "hidden": 4096}, "dim x width = 16777216 x 4096"),
    ({"kind": "class", "num_classes": 2**40}, "num_classes must be in [1, 65536]"),
    ({"dim": "big"}, "dim must be an integer, got 'big'"),
    ({"dim": 1.5}, "dim must be an integer"),
    ({"epochs": True}, "epochs must be an integer"),
    ({"max_prompt_tokens": 2**40}, "max_prompt_tokens must be in [1,"),
    ({"lr": -1.0}, "lr must be > 0"),
    ({"lr": 10**400}, "lr must be a finite number, got an integer of 401 digits"),  # was an OverflowError traceback
    ({"backbone": "gpt9"}, "unknown backbone 'gpt9'"),
])
def test_damaged_predictor_config_is_refused_before_allocating(tmp_path, changes, message):
    from ltrsched.predictors.predictor import Predictor

    d = _checkpoint(tmp_path, **changes)
    with pytest.raises(UserError) as err:
        Predictor.load(d)
    assert str(d / "predictor.json") in str(err.value) and message in str(err.value)


def test_cli_predict_with_a_huge_dim_is_one_line(capsys, tmp_path):
    d = _checkpoint(tmp_path, dim=2**36)
    r = run_cli_fast(capsys, "predict", "-m", str(d), "-w", "sharegpt", "-o", str(tmp_path / "scored.parquet"))
    assert_one_line_error(r, "dim must be in [0, 16777216], got 68719476736")


def test_built_in_sizes_still_load():
    assert PredictorConfig().dim == 1 << 20
    assert PredictorConfig(kind="class", loss="ce", bucket=1, num_classes=8192).dim == 1 << 17
    assert np.isfinite(load_profile("a100-llama3-70b-tp8").overhead_s_per_step)
    assert len(load_workload("sharegpt", num_requests=5)) == 5
