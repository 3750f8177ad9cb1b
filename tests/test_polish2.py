"""User-facing polish (2): the simulator's errors about a request or a KV block that cannot fit name what the user
typed (``simulate``'s options, a sweep file's quoted key, capacity's option), or put in words a setting the user
cannot set; output file options refuse a path ending in a slash. Every CLI case runs in-process."""

from __future__ import annotations

import re

import pytest

from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

#: A Python field name (``max_model_len``): what a command's user never typed.
FIELD_NAME = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def _long(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("prompt_tokens,output_tokens\n10,5\n9000,5\n")
    return path


@pytest.mark.parametrize("args, message", [
    # before: "1 request(s) exceed max_model_len 8192 tokens (...); raise max_model_len (--max-model-len) ..."
    ([], "1 request(s) exceed the profile's context limit of 8192 tokens (first: request 1 in row 2 of {path}, prompt "
         "9000 + output 5); raise --max-model-len if the model takes longer contexts, or leave them out"),
    (["--max-model-len", "100"], "1 request(s) exceed the context limit of 100 tokens set by --max-model-len (first: "
                                 "request 1 in row 2 of {path}, prompt 9000 + output 5); raise --max-model-len"),
    # before: "... one KV block of 16 tokens at gpu_memory_utilization 0.9; ..." never reached simulate, but its
    # fix and wording came from the Python API's defaults
    (["--gpu-memory-utilization", "1e-9"], "one KV block of 16 tokens at --gpu-memory-utilization 1e-09; use a "
                                           "smaller --block-size"),
    # (a context the cache does not hold: refused as vLLM refuses it at its start, before the requests are counted)
    (["--num-gpu-blocks", "3", "--max-model-len", "10000"],
     "--max-model-len 10000 needs 625 KV blocks of 16 tokens (vLLM's null block not among them), and --num-gpu-blocks "
     "3 holds 3, which vLLM refuses once started: give --num-gpu-blocks 625 or more, or give --max-model-len 48 or "
     "less"),
])
def test_simulate_names_its_options_when_a_request_cannot_fit(capsys, tmp_path, args, message):
    path = _long(tmp_path)
    r = run_cli_fast(capsys, "simulate", "-w", path, *args)
    assert_one_line_error(r, message.format(path=path))
    assert not FIELD_NAME.search(r.stderr), r.stderr


def test_sweep_quotes_its_key_for_a_request_too_long(capsys, tmp_path):
    """Before: "exceed max_model_len 100 tokens" (a field name, in a sentence; the file's errors quote keys)."""
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'policies = ["fcfs"]\nworkloads = ["{_long(tmp_path)}"]\nmax_model_len = 100\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(r, "1 request(s) exceed the context limit of 100 tokens set by 'max_model_len' (first: "
                             "request 1 in row 2, prompt 9000 + output 5); if the model takes longer contexts, set "
                             "max_model_len")


def test_capacity_names_its_option_for_a_request_too_long(capsys, tmp_path):
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "-w", _long(tmp_path), "-n", "2",
                     "--seeds", "1", "--jobs", "1", "--max-model-len", "100", "--out", tmp_path / "o")
    assert_one_line_error(r, "1 request(s) exceed the context limit of 100 tokens set by --max-model-len (first: ")
    assert "prompt 9000 + output 5); if the model takes longer contexts, raise --max-model-len (tokens)" in r.stderr


def test_sweep_puts_the_utilization_it_cannot_set_in_words(capsys, tmp_path):
    """Before: "... at gpu_memory_utilization 0.9; set a smaller block_size in s.toml" (a key no sweep file has)."""
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\nworkloads = ["lmsys-like"]\nnum_requests = 5\nblock_size = 1000000000\n')
    r = run_cli_fast(capsys, "sweep", sweep, "--out", tmp_path / "o", "--jobs", "1")
    assert_one_line_error(r, "leaves no GPU memory for one KV block of 1000000000 tokens in the 90% of its GPU memory "
                             f"the engine may use; set a smaller block_size in {sweep}")
    assert "gpu_memory_utilization" not in r.stderr


def test_the_python_api_keeps_field_names(tmp_path):
    from ltrsched.errors import UserError
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate
    from ltrsched.sim.simulate import kv_capacity_blocks
    from ltrsched.workloads import load_workload

    wl = load_workload(str(_long(tmp_path)))
    with pytest.raises(UserError, match=r"exceed the context limit of 100 tokens set by max_model_len \(.*; raise "
                                        r"max_model_len if"):
        simulate(wl, make_policy("fcfs"), SimConfig(max_model_len=100))
    with pytest.raises(UserError, match=r"at gpu_memory_utilization 1e-09; use a smaller block_size"):
        kv_capacity_blocks(SimConfig(gpu_memory_utilization=1e-9))


@pytest.mark.parametrize("args, option", [
    # before: `evaluate --plot x.png/` wrote x.png (pathlib drops the slash), after the evaluation's work
    (["evaluate", "-m", "{tmp}/none", "--plot", "{tmp}/x.png/"], "'--plot'"),
    (["evaluate", "-m", "{tmp}/none", "--plot", "{tmp}/x.png/."], "'--plot'"),
    (["plot", "cdf", "{tmp}/run", "--out", "{tmp}/x.png/"], "'--out' / '-o'"),
    (["plot", "cdf", "{tmp}/run", "-o", "{tmp}/figs/"], "'--out' / '-o'"),
    (["plot", "trace", "{tmp}/run", "--out", "{tmp}/t.json/"], "'--out' / '-o'"),
    (["simulate", "-n", "5", "--trace", "{tmp}/t.json/"], "'--trace'"),
    (["simulate", "-n", "5", "--cdf", "{tmp}/c.png/"], "'--cdf'"),
    (["predict", "-m", "{tmp}/none", "-w", "lmsys-like", "-o", "{tmp}/s.parquet/"], "'--out' / '-o'"),
    # (a model that does not exist: without the check these stop at it, before any engine starts)
    (["label", "-m", "{tmp}/none", "-o", "{tmp}/labels.parquet/"], "'--out' / '-o'"),
    (["profile", "--quick", "-m", "{tmp}/none", "-o", "{tmp}/p.json/"], "'--out' / '-o'"),
    (["real-model-results", "{tmp}/run", "-o", "{tmp}/r.json/"], "'-o' / '--out'"),
])
def test_a_file_option_ending_in_a_slash_is_refused(capsys, tmp_path, args, option):
    """The user meant a directory, or typed a slash by mistake: one line, nothing written."""
    args = [a.format(tmp=tmp_path) for a in args]
    r = run_cli_fast(capsys, *args)
    assert_one_line_error(r, f"Invalid value for {option}: '{args[-1]}' ends in ")
    assert "as a directory's path does; give the path of the file to write" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_file_option_without_a_slash_still_reaches_the_command(capsys, tmp_path):
    r = run_cli_fast(capsys, "evaluate", "-m", tmp_path / "none", "--plot", tmp_path / "x.png")
    assert_one_line_error(r, "is not a predictor checkpoint")


def test_an_in_process_plot_leaves_matplotlib_as_it_found_it(capsys, tmp_path):
    """run_cli_fast restores matplotlib's settings: ``plot cdf`` in-process set its backend to "Agg" (rcParams
    ``backend``, ``backend_fallback``) for every later test of the process."""
    import matplotlib
    import matplotlib.pyplot as plt

    from conftest import LinearProfile, make_workload
    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate

    simulate(make_workload([10, 20], [3, 4]), make_policy("fcfs"), SimConfig(profile=LinearProfile())).save(
        tmp_path / "run")
    with matplotlib.rc_context({"backend_fallback": True}):  # (as a fresh process has it, whatever ran before)
        before, figures = {k: str(v) for k, v in matplotlib.rcParams.items()}, plt.get_fignums()
        r = run_cli_fast(capsys, "plot", "cdf", tmp_path / "run", "-o", tmp_path / "c.png")
        assert r.returncode == 0, r.stderr
        after = {k: str(v) for k, v in matplotlib.rcParams.items()}
    assert {k: (v, after[k]) for k, v in before.items() if after[k] != v} == {}
    assert plt.get_fignums() == figures
