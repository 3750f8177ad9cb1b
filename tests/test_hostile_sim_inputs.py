"""Unusual and hostile inputs to the simulator's commands (simulate, sweep, capacity, plot): each is a
one-line error naming what to fix, or works as documented; never a traceback or a misleading result."""

from __future__ import annotations

import json

import pytest

from ltrsched.errors import UserError
from ltrsched.policies import make_policy
from ltrsched.routers import make_router
from ltrsched.sim import SimConfig, simulate
from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error

from conftest import make_workload

HUGE = str(10**23)


# ---------------------------------------------------------------------------- policy and router specs
@pytest.mark.parametrize("spec", [f"fcfs:starve={HUGE}", f"ltr:tau=0.6,starve=5,quantum={HUGE}",
                                  f"mlfq:promote={HUGE}", f"po:tokens={HUGE}", f"mlfq:starve=5,starve_quantum={HUGE}"])
def test_integer_spec_values_beyond_64_bits_are_refused(spec):
    """They passed the spec parser and ended in an OverflowError traceback in the run."""
    with pytest.raises(UserError, match="out of range for a 64-bit integer"):
        make_policy(spec)


def test_integer_router_values_beyond_64_bits_are_refused():
    with pytest.raises(UserError, match="out of range for a 64-bit integer"):
        make_router(f"random:seed={HUGE}")
    make_router(f"random:seed={2**63 - 1}")  # the largest still works


def test_cli_huge_starvation_threshold_is_one_line(capsys):
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", "--policy",
                                       f"fcfs:starve={HUGE}"),
                          "out of range")


def test_po_estimate_phase_longer_than_the_context_is_refused():
    """tokens=2**63-1 wrapped the int64 output counts (RuntimeError 'unfinished requests'); 100,000 ran for a
    minute of wall time generating estimate tokens no model's context holds."""
    wl = make_workload([10, 20], [5, 6])
    for tokens in (2**63 - 1, 100_000):
        with pytest.raises(UserError, match="more than the context of 8192 tokens"):
            simulate(wl, make_policy(f"po:tokens={tokens}"), SimConfig())
    simulate(wl, make_policy("po:tokens=15"), SimConfig())


# ---------------------------------------------------------------------------- sweep and capacity
@pytest.mark.parametrize("extra", ['routers = ["least-outstanding"]\n', 'replicas = [1]\nrouters = ["least-kv"]\n'])
def test_sweep_routers_without_a_cluster_are_refused(capsys, tmp_path, extra):
    """A sweep with routers but no replica count above 1 ran lone replicas and ignored the routers."""
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\nworkloads = ["lmsys-like"]\nnum_requests = 5\n' + extra)
    r = run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out"))
    assert_one_line_error(r, "'routers' = ")
    assert "add e.g. replicas = [1, 4]" in r.stderr and not (tmp_path / "out" / "sweep.csv").exists()


def test_capacity_router_without_a_cluster_is_refused(capsys, tmp_path):
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "--router", "least-outstanding",
                             "--out", str(tmp_path / "cap"))
    assert_one_line_error(r, "--router least-outstanding has no effect without --replicas above 1")
    assert not (tmp_path / "cap").exists()


# ---------------------------------------------------------------------------- plot cdf
def _run(tmp_path, name, **config):
    from conftest import LinearProfile

    r = simulate(make_workload([50] * 12, list(range(3, 39, 3))), make_policy("fcfs"),
                 SimConfig(profile=LinearProfile(), **config))
    r.save(tmp_path / name)
    return tmp_path / name


def test_plot_cdf_tells_apart_runs_of_one_policy_with_other_settings(tmp_path):
    """Two fcfs runs at another --max-num-seqs were two lines labelled 'fcfs' in one panel."""
    from ltrsched.plots.runs import group_for_plot, load_runs

    a, b = _run(tmp_path, "a", max_num_seqs=2), _run(tmp_path, "b", max_num_seqs=8)
    [(_, lines)] = group_for_plot(load_runs([a, b]))
    assert sorted(label for label, _ in lines) == ["fcfs (max_num_seqs=2)", "fcfs (max_num_seqs=8)"]
    c = _run(tmp_path, "c", max_num_seqs=2)  # same settings as a: the directories name them
    [(_, lines)] = group_for_plot(load_runs([a, c]))
    assert sorted(label for label, _ in lines) == ["fcfs (a)", "fcfs (c)"]
    [(_, lines)] = group_for_plot(load_runs([a, a, tmp_path / "a/"]))  # one run named twice: one line
    assert [label for label, _ in lines] == ["fcfs"]


@pytest.mark.parametrize("text", ["[1, 2]", '{"summary": {}, "meta": [1]}', '"x"',
                                  # a meta whose run spec or config is no table, or whose replica count is text:
                                  # AttributeError, TypeError tracebacks
                                  '{"summary": {}, "meta": {"run_spec": [1]}}',
                                  '{"summary": {}, "meta": {"config": [1, 2]}}',
                                  '{"summary": {}, "meta": {"replicas": "4"}}',
                                  '{"summary": {}, "meta": {"run_spec": {"replicas": 2.5}}}'])
def test_plot_cdf_with_a_damaged_summary_is_one_line(capsys, tmp_path, text):
    """A summary.json that is JSON but not a run summary ended in an AttributeError traceback."""
    run = _run(tmp_path, "run")
    (run / "summary.json").write_text(text)
    assert_one_line_error(run_cli_fast(capsys, "plot", "cdf", str(run), "-o",
                                       str(tmp_path / "c.png")), "cannot read the run")
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("key, value", [("policies", '["fcfs", "srtf", "fcfs"]'), ("seeds", "[0, 0]"),
                                        ("rates", "[4, 4.0]"), ("workloads", '["lmsys-like", "lmsys-like"]')])
def test_sweep_list_with_a_repeated_item_is_refused(capsys, tmp_path, key, value):
    """A repeated item ran once and appeared as identical rows in sweep.csv (4 rows, '1 runs simulated')."""
    lines = {"policies": '["fcfs"]', "workloads": '["lmsys-like"]', "arrival": '"poisson"', "rates": "[4.0]",
             "num_requests": "5", key: value}
    sweep = tmp_path / "s.toml"
    sweep.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out")), f"'{key}' lists")


def test_finding_a_repeated_item_takes_linear_time():
    """Each item was compared with every earlier one: 7 s for a sweep file listing 20,000 seeds before anything
    ran, growing with the square. Counted in comparisons, not seconds, so that the test cannot be flaky."""
    from ltrsched.errors import first_repeat

    class Counted(int):
        comparisons = 0

        def __eq__(self, other):
            Counted.comparisons += 1
            return int(self) == int(other)

        __hash__ = int.__hash__

    items = [Counted(i) for i in range(2000)]
    assert first_repeat(items) is None and Counted.comparisons < 2000
    assert first_repeat([*items, Counted(5)]) == 5 and first_repeat([4, 4.0]) == 4.0
    assert first_repeat([[1], [2], [1]]) == [1] and first_repeat(("a", "b")) is None  # unhashable; tuples


def test_capacity_option_given_twice_is_refused(capsys, tmp_path):
    assert_one_line_error(run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "-p", "fcfs",
                                               "--out", str(tmp_path / "cap")), "--policy fcfs is given twice")


# ---------------------------------------------------------------------------- engine options
@pytest.mark.parametrize("args, message", [
    (["--block-size", str(10**12)], "no GPU memory for one KV block of 1000000000000 tokens"),  # blamed the profile
    (["--gpu-memory-utilization", "1e-300"], "or a larger --gpu-memory-utilization"),
    (["--num-gpu-blocks", "1"], "raise --num-gpu-blocks"),
])
def test_cli_kv_capacity_errors_name_the_fix(capsys, args, message):
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", *args), message)


def test_simulate_out_over_an_earlier_run_leaves_none_of_its_steps(capsys, tmp_path):
    """A rerun without --record-steps into the directory of a run with them kept the old steps.parquet:
    `plot trace` then drew the earlier run's steps under the new run's name."""
    out = tmp_path / "run"
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "20", "--record-steps", "--out", str(out))
    assert r.returncode == 0 and (out / "steps.parquet").is_file(), r.stderr
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "3", "--policy", "srtf", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert not (out / "steps.parquet").exists()
    assert_one_line_error(run_cli_fast(capsys, "plot", "trace", str(out), "-o",
                                       str(tmp_path / "t.json")), "no steps.parquet")


# ---------------------------------------------------------------------------- workload files
def _conversation(i):
    return {"id": f"c{i}", "conversations": [{"from": "human", "value": f"question number {i} about things"},
                                             {"from": "gpt", "value": f"answer number {i} with some words"}]}


def test_sharegpt_json_damaged_in_the_middle_is_refused(tmp_path):
    """A syntax error in the middle was read as the end of a truncated file: every later record was dropped."""
    import json

    from ltrsched.workloads import load_workload

    records = [json.dumps(_conversation(i)) for i in range(6)]
    path = tmp_path / "sg.json"
    path.write_text("[" + ",\n".join(records[:3]) + ",\n{'id': 'bad'},\n" + ",\n".join(records[3:]) + "]")
    with pytest.raises(UserError, match="not valid JSON at line 4"):
        load_workload(str(path))
    text = "[" + ",\n".join(records)
    for cut in (len(text) - 5, len(text) - 40, len(text)):  # cut off at its end: the complete records are read
        path.write_text(text[:cut])
        assert len(load_workload(str(path))) == (6 if cut == len(text) else 5)


def test_csv_trace_keeps_its_predictor_columns(capsys, tmp_path):
    """A score column in a CSV trace was dropped: `--policy ltr` then said the workload lacked one."""
    from ltrsched.workloads import load_workload

    path = tmp_path / "t.csv"
    path.write_text("arrival_time,prompt_tokens,output_tokens,score,predicted_length\n0,10,5,0.5,4\n1,20,7,0.1,9\n")
    wl = load_workload(str(path))
    assert wl.df["score"].to_list() == [0.5, 0.1] and wl.df["predicted_length"].to_list() == [4.0, 9.0]
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--policy", "ltr")
    assert r.returncode == 0, r.stderr
    path.write_text("arrival_time,prompt_tokens,output_tokens,score\n0,10,5,high\n")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)), "column 'score' has non-numeric values")


def test_csv_trace_keeps_its_predictor_columns_in_any_case(tmp_path):
    """Predictor columns were matched in their case only (the length and id columns in any): a 'PO_Estimate'
    column was dropped and `po` drew its estimates instead, silently. Such a file has its own cache key."""
    from ltrsched.workloads import load_workload
    from ltrsched.workloads.loaders import workload_fingerprint

    path = tmp_path / "t.csv"
    path.write_text("prompt_tokens,output_tokens,PO_Estimate,Score,Prompt\n10,5,40,0.5,hi\n20,7,3,0.1,yo\n")
    df = load_workload(str(path)).df
    assert df.select("po_estimate", "score", "prompt").rows() == [(40.0, 0.5, "hi"), (3.0, 0.1, "yo")]
    assert "columns" in workload_fingerprint(str(path))
    path.write_text("prompt_tokens,output_tokens,score,SCORE\n10,5,0.5,0.7\n")
    with pytest.raises(UserError, match="the header names column 'score' 2 times \\(in any case\\)"):
        load_workload(str(path))
    path.write_text("prompt_tokens,output_tokens,score\n10,5,0.5\n")  # (a file whose runs were right keeps its key)
    assert "columns" not in workload_fingerprint(str(path))


def test_jsonl_with_arrival_times_on_some_lines_only_is_refused(tmp_path):
    """The lines without one arrived at t = 0 under --arrival replay."""
    from ltrsched.workloads import load_workload

    path = tmp_path / "w.jsonl"
    path.write_text('{"prompt": "a b c", "generated": "x y", "arrival_time": 3}\n\n'
                    '{"prompt": "a b c d", "generated": "x y z"}\n')
    with pytest.raises(UserError, match=r"w.jsonl:3: no 'arrival_time', which other lines have"):
        load_workload(str(path))
    path.write_text('{"prompt": "a b c", "generated": "x y"}\n{"prompt": "a b c d", "generated": "x y z"}\n')
    assert load_workload(str(path)).df["arrival_time"].to_list() == [0.0, 0.0]  # none: all at 0, as before


@pytest.mark.parametrize("rate", [[], ["--rate", "4"]])
def test_replay_of_a_trace_without_timestamps_names_the_fix(capsys, tmp_path, rate):
    """Without --rate, replay arrivals of a workload with no arrival times were silently a burst."""
    message = "every request of lmsys-like arrives at t = 0 (no arrival times): use burst arrivals for that"
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "5", "--arrival", "replay",
                                       *rate), message)
    path = tmp_path / "w.jsonl"
    path.write_text('{"prompt": "a b c", "generated": "x y"}\n{"prompt": "a b c d", "generated": "x y z"}\n')
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path), "--arrival", "replay", *rate),
                          "every request of w arrives at t = 0")


def test_capacity_on_a_small_workload_file_names_the_option(capsys, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_time,prompt_tokens,output_tokens\n0,10,5\n1,20,7\n")
    r = run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "-w", str(path), "--out",
                     str(tmp_path / "cap"))
    assert_one_line_error(r, "has only 2 (runs have 4,000 requests per replica by default; give fewer with -n")


@pytest.mark.parametrize("name, text", [
    ("t.csv", "arrival_time,prompt_tokens,output_tokens\n0,10,5\n1,NaN,5\n2,10,5\n3,10,5\n"),
    ("t.jsonl", '{"prompt": "a b c", "generated": "x y"}\n{"prompt": "a b c", "generated": ""}\n'
                '{"prompt": "a b c d", "generated": "x y z"}\n{"prompt": "a b", "generated": "x"}\n'),
])
def test_a_bad_row_is_refused_whichever_rows_a_sample_draws(tmp_path, name, text):
    """Rows were checked after sampling: -n 1 accepted the file with some seeds and refused it with others."""
    from ltrsched.workloads import load_workload

    path = tmp_path / name
    path.write_text(text)
    for seed in range(6):
        with pytest.raises(UserError):
            load_workload(str(path), num_requests=1, seed=seed)


def test_a_parquet_row_is_checked_whichever_rows_a_sample_draws(tmp_path):
    import polars as pl

    from ltrsched.workloads import load_workload

    path = tmp_path / "w.parquet"
    pl.DataFrame({"request_id": [0, 1, 1, 2], "prompt_tokens": [5] * 4, "output_tokens": [3] * 4,
                  "arrival_time": [0.0] * 4}).write_parquet(path)
    for seed in range(6):
        with pytest.raises(UserError, match="w.parquet: row 3: request_id 1 is row 2.s too; request ids must be unique"):
            load_workload(str(path), num_requests=2, seed=seed)


def test_seeds_beyond_64_bits_are_one_line_errors(capsys, tmp_path):
    """polars samples with a 64-bit seed: a larger one was an OverflowError traceback."""
    from ltrsched.workloads import load_workload

    with pytest.raises(UserError, match="seed must be in 0..2"):
        load_workload("sharegpt", num_requests=5, seed=2**64)
    assert len(load_workload("sharegpt", num_requests=5, seed=2**64 - 1)) == 5
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-n", "5", "--seed",
                                       str(10**30)), "--seed must be below 2**64")
    sweep = tmp_path / "s.json"
    sweep.write_text('{"policies": ["fcfs"], "seeds": [18446744073709551616]}')
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(sweep), "--out",
                                       str(tmp_path / "o")), "'seeds' must be below 2**64")
    assert_one_line_error(run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=1", "-p", "fcfs", "--seed",
                                       str(2**64 - 2),
                                               "--out", str(tmp_path / "c")), "--seed must be below 2**64 - 2")


@pytest.mark.parametrize("scoring, message", [
    ("approx-score:tau=0.6,seed=3", "approx-score takes tau=, not seed="),
    ("approx-score:tau=0.6,bucket=100", "approx-score takes tau=, not bucket="),
    ("none:sharegpt", "none takes no parameters, not NAME"),
    ("trained-ltr:sharegpt,bucket=100", "trained-ltr takes NAME, not bucket="),
    ("approx-class:bucket=100,tau=0.5,tau=0.9", "tau is given twice"),
])
def test_scoring_parameters_that_would_be_ignored_are_refused(scoring, message):
    """Unknown keys were silently ignored and a repeated key took its last value."""
    from ltrsched.experiments.scoring import check_scoring

    with pytest.raises(UserError, match=message):
        check_scoring(scoring)
    for fine in ("none", "approx-score:tau=0.6", "approx-class:bucket=100,tau=0.5",
                 "trained-class:sharegpt,bucket=100"):
        check_scoring(fine)


@pytest.mark.parametrize("name", ["s.toml", "s.TOML", "s.json"])
def test_sweep_file_with_a_byte_order_mark_or_an_upper_case_suffix_is_read(tmp_path, name):
    """A UTF-8 byte-order mark was 'cannot parse (Invalid statement)'; .TOML an unknown format."""
    from pathlib import Path

    from ltrsched.experiments.commands import _load_sweep

    text = ('{"policies": ["fcfs"], "seeds": [1]}' if name.endswith("json") else 'policies = ["fcfs"]\nseeds = [1]\n')
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert _load_sweep(Path(path)) == {"policies": ["fcfs"], "seeds": [1]}


@pytest.mark.parametrize("name, text", [("s.json", '{"policies": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                                        ("s.toml", "policies = " + "[" * 100_000 + "]" * 100_000 + "\n")])
def test_sweep_file_nested_too_deeply_is_one_line(tmp_path, name, text):
    """The parsers recurse per nesting level: a RecursionError traceback."""
    from pathlib import Path

    from ltrsched.experiments.commands import _load_sweep

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserError, match=r"cannot parse \(nested too deeply\)"):
        _load_sweep(Path(path))


def test_jsonl_with_a_byte_order_mark_is_read(tmp_path):
    """Line 1 was 'not valid JSON (Unexpected UTF-8 BOM)'."""
    from ltrsched.workloads import load_workload

    path = tmp_path / "w.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "a b c", "generated": "x y"}\n')
    assert len(load_workload(str(path))) == 1


def test_profile_file_with_a_byte_order_mark_is_read(tmp_path):
    """It was 'not valid JSON (Unexpected UTF-8 BOM)'."""
    from ltrsched.sim.profiles import load_profile
    from ltrsched.sim.profiles.io import dumps_profile

    path = tmp_path / "p.json"
    path.write_bytes(b"\xef\xbb\xbf" + dumps_profile(load_profile("a100-llama3-8b")).encode())
    assert load_profile(str(path)).name == "a100-llama3-8b"


@pytest.mark.parametrize("command", [["routers"], ["policies"], ["simulate", "-w", "lmsys-like", "-n", "3"]])
def test_a_bad_plugin_in_ltrsched_plugins_names_the_variable(tmp_path, command):
    """The error named only the file: a user who set LTRSCHED_PLUGINS long ago could not tell where it came from."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "LTRSCHED_PLUGINS": str(tmp_path / "gone.py")}
    r = subprocess.run([sys.executable, "-m", "ltrsched.cli", *command], capture_output=True, text=True, env=env,
                       timeout=300)
    assert_one_line_error(r, "named in the environment variable LTRSCHED_PLUGINS; fix or unset it")


def test_azure_trace_as_published_is_read(tmp_path):
    """Azure's LLM inference traces name their columns TIMESTAMP, ContextTokens, GeneratedTokens, with date-time
    stamps: the loader looked for lower-case names only and refused the file."""
    from ltrsched.workloads import load_workload

    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
                    "2023-11-16 18:15:50.9951690,396,109\n")
    df = load_workload(str(path)).df
    assert df["prompt_tokens"].to_list() == [374, 396] and df["output_tokens"].to_list() == [44, 109]
    assert df["arrival_time"].to_list() == pytest.approx([0.0, 4.314579])
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,374,44\n")
    with pytest.raises(UserError, match="it must hold numbers \\(seconds\\) or date-times"):
        load_workload(str(path))


def test_plot_cdf_title_matplotlib_cannot_typeset_is_one_line(capsys, tmp_path):
    """Text between two $ is matplotlib math: an unknown command was a ParseFatalException traceback."""
    run = _run(tmp_path, "run")
    out = tmp_path / "c.png"
    assert_one_line_error(run_cli_fast(capsys, "plot", "cdf", str(run), "-o", str(out), "--title", r"$\nosuch$ runs"),
                          "matplotlib cannot typeset the math between its $ signs")
    assert not out.exists()
    for fine in (r"rate $\lambda$ = 4", "costs $5", r"\$5 and \$6"):
        r = run_cli_fast(capsys, "plot", "cdf", str(run), "-o", str(out), "--title", fine)
        assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------- clusters
def test_a_router_answering_a_boolean_is_refused():
    """True is an int in Python: a router returning a comparison (a bug) silently sent requests to replica 1."""
    from conftest import LinearProfile
    from ltrsched.routers import Router
    from ltrsched.sim.cluster import simulate_cluster

    class Comparing(Router):
        name = "comparing"

        def route(self, request, now, replicas):
            return replicas[0].outstanding_requests > replicas[1].outstanding_requests

    with pytest.raises(UserError, match="returned False for request 0; expected a replica index in 0..1"):
        simulate_cluster(make_workload([20] * 4, [10] * 4), make_policy("fcfs"), SimConfig(profile=LinearProfile()),
                         replicas=2, router=Comparing())


def test_simulate_record_steps_without_out_is_refused(capsys):
    """The steps were recorded and then dropped: nothing was written."""
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "3", "--record-steps"),
                          "--record-steps writes steps.parquet into the run directory; add --out DIR")


def test_simulate_memory_utilization_with_a_block_count_is_refused(capsys):
    """--num-gpu-blocks sets the KV size: --gpu-memory-utilization beside it was silently ignored."""
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "3", "--num-gpu-blocks", "500",
                                               "--gpu-memory-utilization", "0.5"),
                          "--gpu-memory-utilization has no effect")
    r = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "3", "--num-gpu-blocks", "500")
    assert r.returncode == 0, r.stderr


def test_sweep_checks_every_workload_file_before_the_first_run(capsys, tmp_path):
    """A damaged second workload failed only after the first one's runs had been computed."""
    good, bad = tmp_path / "a.csv", tmp_path / "b.csv"
    good.write_text("arrival_time,prompt_tokens,output_tokens\n0,10,5\n1,20,7\n")
    bad.write_text("arrival_time,prompt_tokens,output_tokens\n0,10,5\n1,20,0\n")
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'policies = ["fcfs", "srtf"]\nworkloads = ["{good}", "{bad}"]\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out"), "--jobs", "1"),
                          "column 'output_tokens' in row 2 is 0, not a token count")
    assert not (tmp_path / "out" / "runs").exists()


def test_sweep_checks_arrivals_before_the_first_run(capsys, tmp_path):
    """A duration the requests cannot fill at the second rate failed only after the first rate's runs."""
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\nworkloads = ["lmsys-like"]\nnum_requests = 20\narrival = "poisson"\n'
                     'rates = [50.0, 0.5]\nduration = 10\n')
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out"), "--jobs", "1"),
                          "the workload has only 20 requests")
    assert not (tmp_path / "out" / "runs").exists()


def test_jsonl_line_without_tokens_is_named_by_its_line(tmp_path):
    """The error named 'request 1', a 0-based row among the non-blank lines, not the file's line."""
    from ltrsched.workloads import load_workload

    path = tmp_path / "w.jsonl"
    path.write_text('{"prompt": "a b c", "generated": "x y"}\n\n{"prompt": "", "generated": "x y z"}\n')
    with pytest.raises(UserError, match=r"w.jsonl:3: 'prompt' has no tokens \(1 line\(s\) so\)"):
        load_workload(str(path))
    path.write_text('{"prompt": "a b c", "generated": ""}\n')
    with pytest.raises(UserError, match=r"w.jsonl:1: 'generated' has no tokens"):
        load_workload(str(path))


def test_sweep_file_paths_may_start_with_a_tilde(tmp_path, monkeypatch):
    """'~/x.csv' in a sweep file was 'neither a file nor a built-in': only a shell expands ~."""
    from pathlib import Path

    from ltrsched.experiments.commands import _load_sweep

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "t.csv").write_text("arrival_time,prompt_tokens,output_tokens\n0,10,5\n")
    sweep = tmp_path / "s.toml"
    sweep.write_text('policies = ["fcfs"]\nworkloads = ["~/t.csv", "lmsys-like"]\n')
    assert _load_sweep(Path(sweep))["workloads"] == [str(tmp_path / "t.csv"), "lmsys-like"]


_SG_ONE = f"[{json.dumps(_conversation(0))},\n".encode()


@pytest.mark.parametrize("name, content, where", [
    ("w.jsonl", b'{"prompt": "a b", "generated": "x"}\r\n{"prompt": "caf\xe9 b", "generated": "x"}\n',
     "w.jsonl:2: not valid UTF-8: byte 0xe9 (byte 16 of the line, offset 52 in the file)"),
    ("w.jsonl", b'\xef\xbb\xbf{"prompt": "a \xff", "generated": "x"}\n', "w.jsonl:1: not valid UTF-8: byte 0xff (byte 18"),
    ("t.csv", b"arrival_time,prompt_tokens,output_tokens,note\n0,10,5,ok\n1,3,4,caf\xe9\n",
     "t.csv:3: not valid UTF-8: byte 0xe9 (byte 10 of the line, offset 65 in the file)"),
    ("t.csv", b"arrival_time,prompt_tokens,output_tok\xffens\n0,10,5\n", "t.csv:1: not valid UTF-8: byte 0xff (byte 38"),
    ("sg.json", _SG_ONE + b'{"id": "c1", "conversations": [{"from": "human", "value": "q \xff two"}, '
                          b'{"from": "gpt", "value": "a two"}]}]', "sg.json:2: not valid UTF-8: byte 0xff (byte 62"),
])
def test_invalid_utf8_in_a_workload_file_is_named_by_line_and_byte(capsys, tmp_path, name, content, where):
    """Invalid bytes of a jsonl or ShareGPT file were replaced (errors="replace"): a prompt, and its token count,
    changed silently; a CSV said "invalid utf-8 sequence" without a line, or replaced bytes of its header."""
    import re

    from ltrsched.workloads import load_workload

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=re.escape(where)):
        load_workload(str(path))
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)), where)


def test_sharegpt_file_cut_inside_its_last_character_is_read_in_part(tmp_path):
    """A file cut off at its end is read in part; a cut inside a multi-byte character is such a cut, not an
    invalid byte."""
    from ltrsched.workloads import load_workload

    path = tmp_path / "sg.json"
    path.write_bytes(_SG_ONE + '{"id": "c1", "conversations": [{"from": "human", "value": "q é'.encode()[:-1])
    assert load_workload(str(path)).df["prompt"].to_list() == ["question number 0 about things"]


def test_sweep_profile_path_with_a_nul_byte_is_one_line(capsys, tmp_path):
    """A JSON sweep file can spell a NUL byte ("\\u0000"): a profile path holding one was a ValueError
    traceback ("embedded null byte") from the file read."""
    sweep = tmp_path / "s.json"
    sweep.write_text('{"policies": ["fcfs"], "workloads": ["lmsys-like"], "num_requests": 5, '
                     '"profiles": ["p\\u0000.json"]}')
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out")),
                          "cannot read profile file '" + str(tmp_path / "p") + "\\x00.json': embedded null byte")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("values, dtype", [(["fast"] * 12, "String"), ([[0.1, 0.2]] * 12, "List(Float64)")])
def test_plot_cdf_with_a_metric_column_that_is_not_numbers_is_one_line(capsys, tmp_path, values, dtype):
    """A requests.parquet whose ttft column held text or lists ended in an InvalidOperationError traceback while
    drawing; numbers written as text still plot."""
    import polars as pl

    run = _run(tmp_path, "run")
    requests = pl.read_parquet(run / "requests.parquet")
    requests.with_columns(ttft=pl.Series(values)).write_parquet(run / "requests.parquet")
    assert_one_line_error(run_cli_fast(capsys, "plot", "cdf", str(run), "-o", str(tmp_path / "c.png")),
                          f"its requests column 'ttft' holds {dtype}, not numbers")
    assert not (tmp_path / "c.png").exists()
    requests.with_columns(pl.col("ttft").cast(pl.String)).write_parquet(run / "requests.parquet")
    assert run_cli_fast(capsys, "plot", "cdf", str(run), "-o", str(tmp_path / "c.png")).returncode == 0


@pytest.mark.parametrize("value, shown", [(1.7e308, "1.7e+308"), (-1e308, "-1e+308"), (1e300, "1e+300")])
def test_plot_cdf_of_latencies_near_float64s_largest_is_one_line(capsys, tmp_path, value, shown):
    """A requests.parquet holding latencies near 1.7e308 (or -1e308) ended in a ValueError traceback from
    matplotlib's tick locator; 1e300 beside ordinary values printed an overflow RuntimeWarning. Values up to 1e12 s
    still plot, without a warning."""
    import polars as pl

    run = _run(tmp_path, "run")
    requests = pl.read_parquet(run / "requests.parquet")
    requests.with_columns(latency_per_token=pl.when(pl.col("request_id") < 6).then(value)
                          .otherwise(pl.col("latency_per_token"))).write_parquet(run / "requests.parquet")
    assert_one_line_error(run_cli_fast(capsys, "plot", "cdf", str(run), "-o", str(tmp_path / "c.png")),
                          f"its requests column 'latency_per_token' holds 6 value(s) outside [0, 1e+12] (first: {shown})")
    assert not (tmp_path / "c.png").exists()
    requests.with_columns(latency_per_token=pl.when(pl.col("request_id") < 6).then(1e12)
                          .otherwise(pl.col("latency_per_token"))).write_parquet(run / "requests.parquet")
    r = run_cli_fast(capsys, "plot", "cdf", str(run), "-o", str(tmp_path / "c.png"))
    assert r.returncode == 0 and "Warning" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_sweep_and_capacity_name_their_own_fix_for_a_request_too_long(capsys, tmp_path):
    """A request longer than the profile's context (another model's lengths) was told to 'raise max_model_len
    (--max-model-len)', an option sweep has not (its key is max_model_len), naming no workload among a sweep's; one that can
    never fit the KV cache to 'raise --num-gpu-blocks', likewise."""
    import importlib.resources

    long = tmp_path / "long.csv"
    long.write_text("prompt_tokens,output_tokens\n10,5\n9000,5\n")
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'policies = ["fcfs"]\nworkloads = ["{long}"]\n')
    r = run_cli_fast(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out"), "--jobs", "1")
    assert_one_line_error(r, f"workload '{long}' on profile 'a100-llama3-8b': 1 request(s) exceed the profile's context "
                             "limit of 8192 tokens (first: request 1 in row 2, prompt 9000 + output 5); if the model takes longer contexts, "
                             "set max_model_len (tokens) in the sweep file")
    assert "--max-model-len" not in r.stderr
    # a profile with GPU memory for 20 KV blocks of 16 tokens: 8,000 tokens never fit
    from ltrsched.sim.simulate import kv_capacity_blocks

    small = json.loads((importlib.resources.files("ltrsched.sim.profiles") / "a100-llama3-8b.json").read_text())
    blocks = kv_capacity_blocks(SimConfig(profile="a100-llama3-8b"))
    small["gpu_memory_bytes"] -= int((blocks - 20) * 16 * 131072 / 0.9)  # (131,072 KV bytes per token)
    (tmp_path / "small.json").write_text(json.dumps(small))
    assert kv_capacity_blocks(SimConfig(profile=str(tmp_path / "small.json"))) == 20
    wide = tmp_path / "wide.csv"
    wide.write_text("prompt_tokens,output_tokens\n" + "10,5\n" * 300 + "4000,4000\n")
    r = run_cli_fast(capsys, "capacity", "-w", str(wide), "--profile", str(tmp_path / "small.json"), "-p", "fcfs",
                     "--slo",
                             "ttft_p90=1", "-n", "301", "--seeds", "1", "--jobs", "1", "--out", str(tmp_path / "cap"))
    # (the context is the profile's bounded by its 20 blocks, as the engines bound theirs: 8,000 tokens exceed it)
    assert_one_line_error(r, f"on profile '{tmp_path / 'small.json'}': 1 request(s) exceed the context limit of 320 "
                             "tokens (first: request ")
    assert (f"bounded by the KV cache of profile '{tmp_path / 'small.json'}' (the 90% of its GPU memory the engine "
            "may use), 20 blocks (vLLM's null block not among them) x 16 tokens, as vLLM bounds its context; use a "
            "profile with more GPU memory, or leave such requests out") in r.stderr
    assert "--num-gpu-blocks" not in r.stderr
