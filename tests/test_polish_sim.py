"""User-facing polish of the simulation side: the simulator's configuration errors name what the user typed (a
``simulate`` or ``capacity`` option, a sweep file's key), not :class:`~ltrsched.sim.config.SimConfig`'s field names.
Every CLI case goes through the in-process CLI (no interpreter per case)."""

from __future__ import annotations

import pickle
import re

import pytest

from cli_helpers import run_cli_fast
from ltrsched.errors import UserError
from ltrsched.sim.config import ConfigError, SimConfig
from test_cli_simulate import assert_one_line_error

#: A Python field name (``max_num_seqs``): what a command's user never typed.
FIELD_NAME = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")

SIMULATE = ["simulate", "-w", "lmsys-like", "-n", "5"]


@pytest.mark.parametrize("args, message", [
    # before: "max_num_seqs must be positive, got 0", "max_resident_seqs (0) must be >= max_num_seqs (256)", ...
    (["--max-num-seqs", "0"], "--max-num-seqs must be positive, got 0"),
    (["--max-num-batched-tokens", "-1"], "--max-num-batched-tokens must be positive, got -1"),
    (["--block-size", "0"], "--block-size must be positive, got 0"),
    (["--max-model-len", "0"], "--max-model-len must be positive, got 0"),
    (["--num-gpu-blocks", "0"], "--num-gpu-blocks must be positive, got 0"),
    (["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization must be in (0, 1], got 1.5"),
    (["--gpu-memory-utilization", "nan"], "--gpu-memory-utilization must be in (0, 1], got nan"),
    (["--max-resident-seqs", "0"], "--max-resident-seqs (0) must be >= --max-num-seqs (256)"),
    (["--max-resident-seqs", "4", "--max-num-seqs", "8"], "--max-resident-seqs (4) must be >= --max-num-seqs (8)"),
    # before: "semantics 'vllm-v1' models vLLM V1, which preempts by recompute: set preemption='recompute'"
    (["--semantics", "vllm-v1", "--preemption", "swap"],
     "--semantics vllm-v1 models vLLM V1, which preempts by recompute, not --preemption swap: set --preemption "
     "recompute"),
    # before: "without chunked prefill, max_num_batched_tokens must cover ...; raise it or enable chunked prefill"
    (["--no-chunked-prefill", "--max-num-batched-tokens", "16"],
     "without chunked prefill, a step's token budget (16 tokens) must cover a recompute of prompt + output - 1 "
     "tokens, the most one step of a request computes ("),
    (["--no-chunked-prefill", "--max-num-batched-tokens", "16"],
     "tokens); raise --max-num-batched-tokens, or drop --no-chunked-prefill"),
])
def test_simulate_names_its_options_in_config_errors(capsys, args, message):
    r = run_cli_fast(capsys, *SIMULATE, *args)
    assert_one_line_error(r, message)
    assert not FIELD_NAME.search(r.stderr), r.stderr


def _recompute_at_the_budget(budget: int):
    """Request 0 (2 + 6 tokens) and request 1 (4 + 4) in 3 KV blocks of 4 tokens, recompute, no chunked prefill:
    request 1 is preempted after its 3rd output token and recomputes 4 + 3 = 7 tokens in one step, prompt + output
    - 1, the most a step of it can compute (its last sampled token never gets KV)."""
    from conftest import make_workload
    from ltrsched.policies import make_policy
    from ltrsched.sim import simulate

    config = SimConfig(block_size=4, num_gpu_blocks=3, watermark=0.0, preemption="recompute", chunked_prefill=False,
                       max_num_batched_tokens=budget, record_steps=True)
    return simulate(make_workload([2, 4], [6, 4]), make_policy("fcfs"), config)


def test_without_chunked_prefill_a_budget_of_prompt_plus_output_less_one_runs_the_recompute():
    """It was refused ("must cover the longest prompt + output (8 tokens)"), yet it runs, the recompute taking the
    whole budget (vLLM's scheduler takes a request of that many tokens whole too)."""
    r = _recompute_at_the_budget(7)
    assert r.summary["num_finished"] == 2
    assert r.requests["num_preemptions"].to_list() == [0, 1]
    assert r.steps["num_prefill_tokens"].max() == 7 and r.steps["num_batched_tokens"].max() == 7


def test_without_chunked_prefill_one_token_less_is_refused_in_one_line():
    with pytest.raises(UserError) as info:
        _recompute_at_the_budget(6)
    assert str(info.value) == (
        "without chunked prefill, a step's token budget (6 tokens) must cover a recompute of prompt + output - 1 "
        "tokens, the most one step of a request computes (2 request(s) need more; first: request 0 in row 1 of "
        "workload 'test', 7 tokens); "
        "raise max_num_batched_tokens, or set chunked_prefill=True")


def test_capacity_names_its_option(capsys, tmp_path):
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "--max-model-len", "0",
                     "--out", tmp_path / "o")
    assert_one_line_error(r, "error: --max-model-len must be positive, got 0")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name, content", [
    ("s.toml", 'policies = ["fcfs"]\nmax_model_len = -4096\n'),
    ("s.json", '{"policies": ["fcfs"], "max_model_len": -4096}'),
])
def test_sweep_names_its_key(capsys, tmp_path, name, content):
    """The key quoted, as the sweep file's other errors quote theirs."""
    (tmp_path / name).write_text(content)
    r = run_cli_fast(capsys, "sweep", tmp_path / name, "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(r, f"{tmp_path / name}: 'max_model_len' must be positive, got -4096")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_num_seqs=0), "max_num_seqs must be positive, got 0"),
    (dict(semantics="vllm-v1", preemption="swap"), "semantics='vllm-v1' models vLLM V1, which preempts by recompute, "
                                                   "not preemption='swap': set preemption='recompute'"),
    (dict(max_resident_seqs=3, max_num_seqs=4), "max_resident_seqs (3) must be >= max_num_seqs (4)"),
    (dict(preemption="drop"), "preemption must be one of swap, recompute, got 'drop'"),
    (dict(swap_space_gib=-1.0), "swap_space_gib must be >= 0, got -1.0"),
])
def test_the_python_api_keeps_field_names(kwargs, message):
    """``SimConfig`` itself still speaks Python (its callers are code); its error survives pickling (a worker
    process's error reaches the parent) as that text."""
    with pytest.raises(ConfigError) as info:
        SimConfig(**kwargs)
    assert str(info.value) == message
    assert str(pickle.loads(pickle.dumps(info.value))) == message


def _table(path, columns: dict) -> str:
    import polars as pl

    pl.DataFrame(columns).write_parquet(path) if path.suffix == ".parquet" else pl.DataFrame(columns).write_csv(path)
    return str(path)


@pytest.mark.parametrize("name", ["PROMPT", "Prompt", " prompt "])
def test_a_parquet_reads_its_prompt_column_in_any_case_as_a_csv_does(tmp_path, name):
    """Before: a parquet refused ("missing column(s) prompt_tokens; have PROMPT, output_tokens") what a .csv with the
    same header read."""
    from ltrsched.workloads import load_workload

    columns = {name: ["hello world", "one two three four five"], "output_tokens": [5, 6]}
    parquet = load_workload(_table(tmp_path / "w.parquet", columns)).df
    csv = load_workload(_table(tmp_path / "w.csv", columns)).df
    for df in (parquet, csv):
        assert df["prompt"].to_list() == ["hello world", "one two three four five"]
    assert parquet["prompt_tokens"].to_list() == csv["prompt_tokens"].to_list()
    assert parquet["prompt_tokens"][0] > 0


def test_a_parquet_reads_ids_arrivals_scores_and_outputs_text_in_any_case(capsys, tmp_path):
    from ltrsched.workloads import load_workload

    path = _table(tmp_path / "w.parquet", {"Prompt_Tokens": [10, 20], "Generated": ["a b", "c d e f g"],
                                           "Request_ID": [7, 3], "Arrival_Time_ms": [0, 1500], "SCORE": [0.5, 0.1],
                                           "Po_Estimate": [4.0, 9.0]})
    df = load_workload(path).df.sort("request_id")
    assert df["request_id"].to_list() == [3, 7]
    assert df["arrival_time"].to_list() == [1.5, 0.0]
    assert df["score"].to_list() == [0.1, 0.5] and df["po_estimate"].to_list() == [9.0, 4.0]
    assert df["prompt_tokens"].to_list() == [20, 10] and df["output_tokens"][0] > df["output_tokens"][1]
    r = run_cli_fast(capsys, "simulate", "-w", path, "-P", "ltr", "--arrival", "replay")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("columns, twins", [
    ({"prompt": ["x"], "Prompt": ["y"], "output_tokens": [5]}, "'prompt' and 'Prompt'"),
    ({"prompt_tokens": [3], "PROMPT_TOKENS": [4], "output_tokens": [5]}, "'prompt_tokens' and 'PROMPT_TOKENS'"),
    ({"prompt_tokens": [3], "output_tokens": [5], "score": [0.1], "Score": [0.9]}, "'score' and 'Score'"),
    ({"prompt_tokens": [3], "output_tokens": [5], "Request_Id": [1], "REQUEST_ID": [2]},
     "'Request_Id' and 'REQUEST_ID'"),
])
def test_a_parquet_with_two_names_differing_only_in_case_is_refused(capsys, tmp_path, columns, twins):
    """Which holds the values? (``prompt_tokens`` beside ``PROMPT_TOKENS``: the exact one was used, silently.)"""
    path = _table(tmp_path / "w.parquet", columns)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", path), f"{path}: columns {twins} differ only in case")


def test_the_cache_key_changes_only_for_a_parquet_read_differently(tmp_path):
    """Runs cached before numbered a ``Request_ID`` table's rows and had no ``Score``: its key has a marker; a table
    whose names are ours keeps the key it had."""
    from ltrsched.workloads.loaders import workload_fingerprint

    ours = _table(tmp_path / "ours.parquet", {"prompt_tokens": [3], "output_tokens": [5], "score": [0.1]})
    other = _table(tmp_path / "other.parquet", {"prompt_tokens": [3], "output_tokens": [5], "Score": [0.1]})
    assert "names" not in workload_fingerprint(ours)
    assert workload_fingerprint(other)["names"] == "any case"


def test_a_sweep_files_naming_quotes_its_keys_and_writes_settings_as_the_file_does():
    """(No sweep key reaches this check today: a sweep file sets no semantics.)"""
    from ltrsched.experiments.commands import SWEEP_KEYS
    from ltrsched.sim.config import key_naming

    with pytest.raises(ConfigError) as info:
        SimConfig(semantics="vllm-v1", preemption="swap", max_num_seqs=4)
    assert info.value.render(key_naming(SWEEP_KEYS)) == (
        'semantics = "vllm-v1" models vLLM V1, which preempts by recompute, not preemption = "swap": set '
        'preemption = "recompute"')
