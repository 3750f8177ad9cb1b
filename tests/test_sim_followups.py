"""Follow-ups to ``simulate``: ``--trace`` refuses a file that is no trace before the run (it was refused after it,
once ``--out`` was saved); a request the replica cannot run is named by its id, its row and the file; ``simulate()``
and ``simulate_cluster()`` raise :class:`~ltrsched.errors.ArgumentValueError` / ``ArgumentTypeError`` (a ValueError /
TypeError and a UserError), as ``emulate()`` does, with unchanged messages; PO's warning about equal output lengths
names the workload's lengths, not the ones PO serves (15 estimate tokens more). Each case takes milliseconds."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from conftest import LinearProfile, make_workload
from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.cluster import simulate_cluster


def test_trace_that_would_replace_another_file_is_refused_before_the_run(capsys, tmp_path):
    """Before: the run was simulated and its --out directory written, then the trace's check refused the file."""
    workload = tmp_path / "w.csv"
    workload.write_text("prompt_tokens,output_tokens\n10,3\n20,4\n")
    other = tmp_path / "summary.json"
    other.write_text('{"policy": "fcfs"}')
    r = run_cli_fast(capsys, "simulate", "-w", workload, "-o", tmp_path / "run", "--trace", other, "--no-progress")
    assert_one_line_error(r, f"--trace {other} exists and is not a Chrome trace")
    assert "simulated" not in r.stdout and not (tmp_path / "run").exists()
    assert json.loads(other.read_text()) == {"policy": "fcfs"}


@pytest.mark.parametrize("text, named", [
    # (a file without ids: the loader numbers its rows from 0, and "request 0" was all the line said)
    # (a .jsonl's place is its line: test_wl_file_rows)
    ('{"prompt_tokens": 9000, "output_tokens": 5}\n{"prompt_tokens": 10, "output_tokens": 5}\n', "request 0 in line 1"),
    ("request_id,prompt_tokens,output_tokens\n5,10,5\n42,9000,5\n", "request 42 in row 2"),
])
def test_a_request_beyond_the_context_is_named_by_id_row_and_file(capsys, tmp_path, text, named):
    path = tmp_path / ("w.jsonl" if text.startswith("{") else "w.csv")
    path.write_text(text)
    r = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress")
    assert_one_line_error(r, f"1 request(s) exceed the profile's context limit of 8192 tokens (first: {named} of "
                             f"{path}, prompt 9000 + output 5); raise --max-model-len")


class _NoTime(LinearProfile):
    def step_time(self, shape):
        return None


class _ZeroTime(LinearProfile):
    def step_time(self, shape):
        return 0.0


_TWO = ([10, 60], [3, 6])
#: case -> (workload, policy, config, the error's type, its message): what emulate() raises a ValueError for, and
#: the simulator's other argument checks; each was a plain UserError (or a ConfigError, not a UserError)
CASES = {
    "beyond the context": (
        make_workload(*_TWO), "fcfs", SimConfig(profile=LinearProfile(), max_model_len=64), ValueError,
        "1 request(s) exceed the context limit of 64 tokens set by max_model_len (first: request 1 in row 2 of workload "
        "'test', prompt 60 + output 6); raise max_model_len if the model takes longer contexts, or leave them out"),
    "never fits the KV cache": (
        make_workload([100], [60]), "po", SimConfig(profile=LinearProfile(), num_gpu_blocks=10, max_model_len=160),
        ValueError, "1 request(s) can never fit the KV cache of 10 usable blocks (first: request 0 in row 1 of "
        "workload 'test' needs 11 blocks of 16 tokens for 175 tokens, 15 of them policy po's extra output tokens); "
        "raise num_gpu_blocks (None: the profile's), or leave such requests out"),
    "a column the workload lacks": (
        make_workload(*_TWO), "ltr", SimConfig(profile=LinearProfile()), ValueError,
        "policy 'ltr' needs a 'score' column, which workload 'test' lacks; add it with `ltrsched predict --model DIR "
        "--workload FILE --out FILE` or use approximate-oracle scores with a tau parameter, e.g. `ltr:tau=0.62`"),
    "a cache short of max_model_len": (
        make_workload(*_TWO), "fcfs", SimConfig(profile=LinearProfile(blocks=35), max_model_len=8192), ValueError,
        "max_model_len 8192 needs 512 KV blocks of 16 tokens (vLLM's null block not among them), and the KV cache of "
        "profile 'linear-test' (its GPU memory at gpu_memory_utilization 0.9) holds 35, which vLLM refuses once "
        "started: give num_gpu_blocks 512 or more, or a larger gpu_memory_utilization, or give max_model_len 560 or "
        "less"),
    "no memory for one block": (
        make_workload(*_TWO), "fcfs", SimConfig(profile=LinearProfile(blocks=0)), ValueError,
        "profile 'linear-test' leaves no GPU memory for one KV block of 16 tokens at gpu_memory_utilization 0.9; use a "
        "smaller block_size or a larger gpu_memory_utilization, or set num_gpu_blocks"),
    "more estimate tokens than the context": (
        make_workload(*_TWO), "po:tokens=200", SimConfig(profile=LinearProfile(), max_model_len=100), ValueError,
        "policy 'po:tau=0.51,seed=0,tokens=200' adds 200 output tokens to every request (its length-estimate phase), "
        "more than the context of 100 tokens; use fewer"),
    "a step wider than the budget": (
        make_workload(*_TWO), "fcfs", SimConfig(profile=LinearProfile(), chunked_prefill=False,
                                                max_num_batched_tokens=32), ValueError,
        "without chunked prefill, a step's token budget (32 tokens) must cover a recompute of prompt + output - 1 "
        "tokens, the most one step of a request computes (1 request(s) need more; first: request 1 in row 2 of "
        "workload 'test', 65 tokens); raise max_num_batched_tokens, or set chunked_prefill=True"),
    "arrivals past the time range": (
        make_workload(*_TWO, arrivals=[0.0, 1e9]), "fcfs", SimConfig(profile=LinearProfile()), ValueError,
        "workload 'test' has arrival times up to 1e+09 s; they must stay below 1e+08 s (about 3 years), where float64 "
        "time still resolves a step (raise the rate, or use fewer requests)"),
    "a step time of zero": (
        make_workload(*_TWO), "fcfs", SimConfig(profile=_ZeroTime()), ValueError,
        "profile 'linear-test': a one-token decode step takes 0 s; a step must take a finite time of at least 1e-06 s"),
    "a step time that is no number": (
        make_workload(*_TWO), "fcfs", SimConfig(profile=_NoTime()), TypeError,
        "profile 'linear-test': step_time gave None for a one-token decode step; it must give a time in seconds (a "
        "number)"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cluster", [False, True])
def test_simulate_raises_a_typed_user_error(case, cluster):
    workload, spec, config, kind, message = CASES[case]
    policy = make_policy(spec)
    run = (lambda: simulate_cluster(workload, policy, config, 2)) if cluster else (
        lambda: simulate(workload, policy, config))
    with pytest.raises(kind) as caught:
        run()
    assert isinstance(caught.value, UserError), type(caught.value).__mro__
    assert str(caught.value) == message


def test_simulate_cluster_raises_a_value_error_for_a_replica_count_out_of_range():
    with pytest.raises(ValueError) as caught:
        simulate_cluster(make_workload(*_TWO), make_policy("fcfs"), SimConfig(profile=LinearProfile()), 0)
    assert isinstance(caught.value, UserError)
    assert str(caught.value) == "replicas must be an integer in 1..4096, got 0"


def test_simulate_cluster_raises_a_value_error_for_a_router_needing_a_column():
    from ltrsched.routers import make_router

    with pytest.raises(ValueError) as caught:
        simulate_cluster(make_workload(*_TWO), make_policy("fcfs"), SimConfig(profile=LinearProfile()), 2,
                         make_router("rank"))
    assert isinstance(caught.value, UserError)
    assert str(caught.value).startswith("router 'rank' needs a 'score' column, which workload 'test' lacks; ")


def test_the_command_line_gives_the_same_line(capsys, tmp_path):
    """A case whose line names no setting: the command line's one line is the Python API's message."""
    path = tmp_path / "w.csv"
    path.write_text("prompt_tokens,output_tokens\n10,3\n60,6\n")
    r = run_cli_fast(capsys, "simulate", "-w", path, "-P", "ltr", "--no-progress")
    assert r.returncode == 2
    assert r.stderr == "error: " + CASES["a column the workload lacks"][4].replace("'test'", "'w'") + "\n"


def test_po_warning_names_the_workloads_own_lengths(capsys):
    """One-token outputs: it said '(16 tokens)', counting PO's 15 estimate tokens; the estimates are drawn as before."""
    workload = make_workload([10] * 300, [1] * 300)
    result = simulate(workload, make_policy("po"), SimConfig(profile=LinearProfile()))
    err = capsys.readouterr().err
    assert "all 300 output lengths are equal (1 token)," in err, err
    assert result.requests["generated_tokens"].to_list() == [16] * 300
