"""The CLI: one-line errors with exit code 2, --help everywhere, simulate end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from cli_helpers import run_cli_fast
from conftest import make_workload


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ltrsched.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def run_cli_in_process(capsys, *args) -> tuple[int, str, str]:
    """``ltrsched ARGS`` in this process (no fresh interpreter's import time): (exit code, stdout, stderr)."""
    from ltrsched.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(r, message):
    """Bad input: exit code 2 and one stderr line, ``error: ...`` containing ``message``, no traceback."""
    assert r.returncode == 2, (r.stdout, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["simulate", "--seed", "1e3"], "Invalid value for '--seed': '1e3' is not a valid integer. (see 'ltrsched simulate --help')"),
    (["simulate", "--arrival", "nope"], "Invalid value for '--arrival': 'nope' is not one of"),
    (["simulate", "--polcy", "fcfs"], "No such option"),  # (its wording: click's; the suggestion: test_cli_click_parser)
    (["sweep"], "Missing argument 'SWEEP_FILE'. (see 'ltrsched sweep --help')"),
    (["nosuch"], "No such command 'nosuch'. (see 'ltrsched --help')"),
])
def test_mistyped_options_values_and_commands_are_one_line(capsys, args, message):
    """Click's usage errors (usage, hint and message on four lines) are one line like every other bad input."""
    assert_one_line_error(run_cli_fast(capsys, *args), message)


def test_no_command_shows_the_help(capsys):
    r = run_cli_fast(capsys)
    assert r.returncode == 2 and r.stderr.startswith("Usage: ltrsched") and "simulate" in r.stderr


@pytest.fixture
def small_workload(tmp_path):
    path = tmp_path / "wl.parquet"
    make_workload([10, 50, 200, 30], [5, 40, 3, 80], arrivals=[0, 0.1, 0.2, 0.3]).save(path)
    return path


def test_help_lists_commands(capsys):
    r = run_cli_fast(capsys, "--help")
    assert r.returncode == 0
    assert "simulate" in r.stdout
    r = run_cli_fast(capsys, "simulate", "--help")
    assert r.returncode == 0 and "--policy" in r.stdout


def test_simulate_writes_results(capsys, small_workload, tmp_path):
    out = tmp_path / "out"
    r = run_cli_fast(capsys, "simulate", "-w", str(small_workload), "--arrival", "replay", "--policy", "srtf",
                             "--num-gpu-blocks", "500", "--profile", "a100-llama3-8b", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "latency_per_token" in r.stdout
    req = pl.read_parquet(out / "requests.parquet")
    assert req.height == 4 and (req["finish_time"] > req["arrival_time"]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["policy"] == "srtf" and summary["summary"]["num_requests"] == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy", "nosuch"], "unknown policy 'nosuch'"),
        (["--policy", "fcfs:x=1"], "has no parameter 'x'"),
        (["--profile", "nosuch-gpu"], "nosuch-gpu"),
        (["--arrival", "poisson", "--rate", "0"], "--rate must be a positive"),
        (["--arrival", "poisson", "--rate", "-3"], "--rate must be a positive"),
        (["--arrival", "poisson"], "needs --rate"),
        (["--num-requests", "0"], "--num-requests must be positive"),
        (["--num-gpu-blocks", "2"], "bounded by the KV cache of --num-gpu-blocks 2"),
        (["--num-gpu-blocks", "2", "--max-model-len", "8192"], "and --num-gpu-blocks 2 holds 2, which vLLM refuses"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--policy", "fcfs:quantum=10"], "policy 'fcfs': quantum needs starve=T"),
        (["--policy", "fcfs:starve=200,starve=100"], "starve is given twice"),
        (["--policy", "mlfq:quantum=nan"], "need finite quantum > 0"),
        (["--policy", "mlfq:threshold=inf"], "need finite quantum > 0 and threshold >= 1"),
        (["--arrival", "gamma", "--rate", "1", "--cv", "1e-200"], "out of range for gamma inter-arrival times"),
        (["--arrival", "gamma", "--rate", "1", "--cv", "1e200"], "out of range for gamma inter-arrival times"),
        (["--policy", "ltr:tau=0.5,seed=-1"], "policy 'ltr': seed must be >= 0"),
        (["--policy", "class:seed=-2"], "policy 'class': seed must be >= 0"),
        (["--replicas", "2", "--router", ""], "unknown router ''"),  # ran round-robin, as ':' is refused
        # it silently ran a 1-replica cluster, as sweep and capacity do not (`--replicas 1 --router R` asks for one)
        (["--router", "least-kv"], "error: --router least-kv has no effect without --replicas (a lone replica needs "
                                   "no router); add e.g. --replicas 4"),
    ],
)
def test_bad_input_is_one_line_exit_2(small_workload, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    r = run_cli_fast(capsys, "simulate", "-w", str(small_workload), *args, "--out", str(out))
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("content, message", [("", "empty"), ("not a parquet file", "cannot read")])
def test_bad_workload_files(capsys, tmp_path, content, message):
    bad = tmp_path / "bad.parquet"
    bad.write_text(content)
    r = run_cli_fast(capsys, "simulate", "-w", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_workload_file(capsys, tmp_path):
    r = run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "nope.parquet"))
    assert r.returncode == 2 and "not found" in r.stderr


@pytest.mark.parametrize("name, content, message", [
    ("t.jsonl", '{"prompt": "a", "generated": "b", "arrival_time": "x"}\n',
     "key 'arrival_time' has non-numeric values (String, first: 'x') in line 1"),
    ("t.jsonl", '{"prompt": "a", "generated": "b", "arrival_time": null}\n',
     "key 'arrival_time' in line 1 is missing (null), not an arrival time"),
    ("t.csv", "arrival_time,prompt_tokens,output_tokens\n0,5.5,3\n", "column 'prompt_tokens' in row 1 is 5.5, not a token count"),
])
def test_bad_workload_values(capsys, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)), message)


@pytest.mark.parametrize("column, values, message", [
    ("score", [1.0, float("inf")], "column score has 1 non-finite value(s) (first: inf)"),
    ("po_estimate", [-3.0, 40.0], "column po_estimate has 1 negative or non-finite value(s) (first: -3.0)"),
    ("predicted_length", [float("-inf"), 40.0], "column predicted_length has 1 negative or non-finite value(s)"),
])
def test_bad_predictor_columns(capsys, tmp_path, column, values, message):
    path = tmp_path / "wl.parquet"
    pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [10, 20], "output_tokens": [5, 6],
                  "arrival_time": [0.0, 0.1], column: values}).write_parquet(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)), message)


def test_missing_predictor_values_are_allowed(capsys, tmp_path):
    path = tmp_path / "wl.parquet"
    pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [10, 20], "output_tokens": [5, 6],
                  "arrival_time": [0.0, 0.1], "score": [float("nan"), -2.0]}).write_parquet(path)
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--policy", "ltr")
    assert r.returncode == 0, r.stderr[-2000:]


def test_synthetic_workload_size_is_capped(capsys):
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "2000000000"),
                          "at most 10,000,000 requests per synthetic workload, got 2,000,000,000")


def test_fractional_token_counts_in_parquet(capsys, tmp_path):
    path = tmp_path / "wl.parquet"
    pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [10.0, 20.5], "output_tokens": [5, 6],
                  "arrival_time": [0.0, 0.1]}).write_parquet(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w",
                                       str(path)), "column 'prompt_tokens' in row 2 is 20.5, not a token count")


@pytest.mark.parametrize("args", [
    ["simulate", "-w", "lmsys-like", "-n", "5", "--out", "{file}/run"],
    ["replay", "-n", "5", "--emulate", "a100-llama3-8b", "--out", "{file}/run"],
    ["profile", "--emulate", "a100-llama3-8b", "--out", "{file}/p.json"],
    ["validate", "-n", "5", "--emulate", "a100-llama3-8b", "--out", "{file}/report"],
    ["reproduce", "table1", "--quick", "--out", "{file}/results"],
    ["sweep", "{sweep}", "--out", "{file}/sweep"],
    ["train", "--out", "{file}/ck"],
    ["ensemble", "-m", "a", "-m", "b", "--out", "{file}/ens"],
    ["predict", "-m", "ck", "-w", "sharegpt", "--out", "{file}/scored.parquet"],
    ["evaluate", "-m", "ck", "--plot", "{file}/calibration.png"],
])
def test_output_path_under_a_file_fails_before_any_work(tmp_path, capsys, args):
    """An output path whose parent is a file is reported before anything runs (was a traceback at the end)."""
    blocker = tmp_path / "plain.txt"
    blocker.write_text("x")
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\nworkloads = ["lmsys-like"]\nnum_requests = 5\n')
    args = [a.format(file=blocker, sweep=sweep) for a in args]
    assert_one_line_error(run_cli_fast(capsys, *args), f"{blocker} is a file, not a directory")


@pytest.mark.parametrize("args, message", [
    (["-w", "run/requests.parquet", "-o", "run"], "--workload run/requests.parquet would be overwritten by the output "
                                                   "run/requests.parquet"),
    (["-w", "wl.parquet", "-p", "p.json", "--trace", "./p.json"], "--profile p.json would be overwritten by the output "
                                                                  "p.json"),
])
def test_simulate_never_writes_over_its_inputs(capsys, tmp_path, args, message):
    """`simulate -w RUN/requests.parquet -o RUN` wrote the run over the workload it simulated (exit 0), as replay
    did before; `-p p.json --trace p.json` the trace over the profile."""
    from importlib.resources import files

    (tmp_path / "run").mkdir()
    for path in ("run/requests.parquet", "wl.parquet"):
        make_workload([10, 20], [3, 4]).df.write_parquet(tmp_path / path)
    (tmp_path / "p.json").write_bytes(files("ltrsched.sim.profiles").joinpath("a100-llama3-8b.json").read_bytes())
    before = {p: (tmp_path / p).read_bytes() for p in ("run/requests.parquet", "p.json")}
    assert_one_line_error(run_cli_fast(capsys, "simulate", *args, cwd=tmp_path), message)
    assert {p: (tmp_path / p).read_bytes() for p in before} == before


@pytest.mark.parametrize("args, option", [
    (["simulate", "-w", "lmsys-like", "-n", "5", "-o", ""], "'--out' / '-o'"),
    (["plot", "cdf", ""], "'RUNS...'"),
    (["sweep", ""], "'SWEEP_FILE'"),
    (["evaluate", "-m", "", "--data", "lmsys-like"], "'--model' / '-m'"),
])
def test_an_empty_path_is_refused(capsys, tmp_path, args, option):
    """click reads "" as the current directory: `simulate -o ""` (an unset shell variable) wrote its run into it,
    exit 0, and `plot cdf ""` plotted the run found there."""
    assert_one_line_error(run_cli_fast(capsys, *args, cwd=tmp_path), f"Invalid value for {option}: an empty path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["simulate", "-w", "lmsys-like", "-n", "10", "--arrival", "poisson", "--rate", "0_5"],
     "Invalid value for '--rate': '0_5' is not a plain number"),
    (["simulate", "-w", "lmsys-like", "-n", "\u0661\u0660"], "Invalid value for '--num-requests' / '-n': '\u0661\u0660' is not a plain number"),
    (["capacity", "--slo", "ttft_p90=2", "--seeds", "1_0"], "Invalid value for '--seeds': '1_0' is not a plain number"),
    (["validate", "--emulate", "h100-llama3-8b", "-n", "2", "--rates", "0_5"], "--rates must be numbers separated by ','"),
])
def test_numbers_only_by_python_literal_rules_are_refused(capsys, tmp_path, args, message):
    """click reads numbers with int()/float(): --rate 0_5 (a typo for 0.5) ran at 5 req/s, -n with Arabic-Indic digits
    took 10 requests, where a policy spec refuses both ('is not a plain number')."""
    assert_one_line_error(run_cli_fast(capsys, *args, cwd=tmp_path), message)


@pytest.mark.parametrize("text, hint", [("\uff11", "write it in ASCII digits 0-9"), ("\u0661\u0660", "ASCII digits"),
                                        ("1_0", "write digits without '_'"), ("\uff11_0", "ASCII digits")])
def test_a_non_ascii_number_gets_the_ascii_hint_not_the_underscore_one(text, hint):
    """`-n １` (a full-width digit) was told to "write digits without '_'", which it had not used."""
    from ltrsched.numbers import plain_number_text

    with pytest.raises(ValueError) as caught:
        plain_number_text(text)
    assert hint in str(caught.value)
    assert ("'_'" in str(caught.value)) == text.isascii()


@pytest.mark.parametrize("args, message", [
    (["predict", "-m", "ck", "-w", "sharegpt", "--out", "{tmp}/scored.csv"], "--out must be a .parquet file"),
    (["evaluate", "-m", "ck", "--plot", "{tmp}/calibration.txt"], "unknown image format '.txt'"),
])
def test_output_file_formats_are_checked_first(capsys, tmp_path, args, message):
    assert_one_line_error(run_cli_fast(capsys, *[a.format(tmp=tmp_path) for a in args]), message)


def test_max_model_len_option(capsys, tmp_path):
    """A request longer than the profile's context is refused with a hint; --max-model-len admits it."""
    path = tmp_path / "long.csv"
    path.write_text("arrival_time,prompt_tokens,output_tokens\n0,10000,5\n0.5,20,5\n")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)),
                          "1 request(s) exceed the profile's context limit of 8192 tokens (first: request 0 in row 1 "
                          f"of {path}, prompt 10000 + output 5); raise --max-model-len if the model takes longer "
                          "contexts")
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--max-model-len", "16384", "--arrival", "replay")
    assert r.returncode == 0, r.stderr[-2000:]
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path), "--max-model-len", "0"),
                          "--max-model-len must be positive")


def test_block_size_defaults_to_the_measured_profiles_engine(capsys, small_workload, tmp_path):
    """A CPU profile was measured with 128-token blocks: simulate models the same KV blocks unless told
    otherwise (with 16-token blocks a --num-gpu-blocks taken from that engine would be 8x too small)."""
    sizes = {}
    for name, extra in (("cpu", ["-p", "cpu-smollm2"]), ("cpu32", ["-p", "cpu-smollm2", "--block-size", "32"]),
                        ("gpu", [])):
        r = run_cli_fast(capsys, "simulate", "-w", str(small_workload), *extra, "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr[-2000:]
        sizes[name] = json.loads((tmp_path / name / "summary.json").read_text())["meta"]["config"]["block_size"]
    assert sizes == {"cpu": 128, "cpu32": 32, "gpu": 16}
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(small_workload), "--block-size", "0"),
                          "--block-size must be positive")


def test_a_block_size_other_than_the_profiles_engine_is_noted(capsys, small_workload):
    """``--block-size 16`` on a cpu-* profile (measured with 128-token blocks) ran without a word: the simulated KV
    cache was not the measured engine's. One note line; none for the engine's own size, none without --block-size, none
    for a profile whose engine's block size is not known."""
    note = ("note: profile cpu-smollm2 was measured on an engine with 128-token KV blocks; with --block-size 16 the "
            "simulation's KV cache differs from the engine's (leave --block-size out to use 128)")
    for extra, noted in ((["-p", "cpu-smollm2", "--block-size", "16"], True),
                         (["-p", "cpu-smollm2", "--block-size", "128"], False), (["-p", "cpu-smollm2"], False),
                         (["--block-size", "32"], False)):
        r = run_cli_fast(capsys, "simulate", "-w", str(small_workload), *extra)
        assert r.returncode == 0, r.stderr[-2000:]
        assert [line for line in r.stderr.splitlines() if "KV blocks" in line] == ([note] if noted else []), extra


def test_an_error_naming_a_file_with_a_line_break_is_one_line(capsys, tmp_path):
    """A workload file named "bad<newline>name.csv" made its error two lines (the name as it is): the line break is
    written as its escape."""
    path = tmp_path / "bad\nname.csv"
    path.write_text("")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)), "bad\\nname.csv: the file is empty")


def test_burst_arrivals_note_a_traces_own_timestamps(capsys, tmp_path):
    """The default --arrival burst serves a trace at t = 0; it says so on stderr (it was silent), and not for a
    workload without arrival times of its own."""
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_time,prompt_tokens,output_tokens\n0.0,10,5\n1.5,12,4\n4.0,8,6\n")
    r = run_cli_fast(capsys, "simulate", "-w", str(trace), "--policy", "fcfs")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "has arrival times of its own (4.0 s from first to last); --arrival burst (the default) served" in r.stderr
    assert "add --arrival replay" in r.stderr
    r = run_cli_fast(capsys, "simulate", "-w", str(trace), "--arrival", "replay", "--policy", "fcfs")
    assert r.returncode == 0 and "arrival times of its own" not in r.stderr
    flat = tmp_path / "flat.csv"
    flat.write_text("prompt_tokens,output_tokens\n10,5\n12,4\n")
    r = run_cli_fast(capsys, "simulate", "-w", str(flat), "--policy", "fcfs")
    assert r.returncode == 0 and "arrival times of its own" not in r.stderr
