"""Hostile option values found by an audit of the CLI, each refused in one line (exit code 2) before any work: a path
of spaces alone, an empty item in a sweep file's lists, an empty capacity workload, an unknown vLLM load format; and
``plot trace`` saying what it wrote."""

from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli_fast
from conftest import make_workload
from test_cli_simulate import assert_one_line_error


@pytest.mark.parametrize("args, option", [
    (["simulate", "-n", "5", "-o", "   "], "'--out' / '-o'"),
    (["reproduce", "table1", "--quick", "-o", " "], "'--out' / '-o'"),
    (["plot", "cdf", " "], "'RUNS...'"),
    (["simulate", "-n", "5", "--trace", "\t"], "'--trace'"),
])
def test_a_path_of_spaces_alone_is_refused(tmp_path, capsys, args, option):
    """(`-o "$A $B"` with both unset: simulate, and reproduce with its minute of runs, wrote into a directory ' ')"""
    assert_one_line_error(run_cli_fast(capsys, *args, cwd=tmp_path), f"Invalid value for {option}: a blank path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key, value", [("workloads", ""), ("profiles", ""), ("policies", " "), ("workloads", " \t")])
def test_an_empty_item_in_a_sweep_files_list_is_named(tmp_path, capsys, key, value):
    """``workloads = [""]`` said "workload '.' is a directory" (the sweep file's own directory); ``profiles = [""]``
    "profile path is a directory"."""
    settings = {"policies": ["fcfs"], key: ["fcfs" if key == "policies" else "sharegpt", value]}
    if key == "profiles":
        settings[key][0] = "a100-llama3-8b"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(settings))
    assert_one_line_error(run_cli_fast(capsys, "sweep", str(path), "-o", str(tmp_path / "out")),
                          f"s.json: '{key}' item 2 of 2 is empty ({value!r})")


def test_an_empty_capacity_workload_is_named_empty(capsys, tmp_path):
    """(it said "workload '' is a directory, not a file": the current one)"""
    assert_one_line_error(run_cli_fast(capsys, "capacity", "--slo", "ttft_p90=2", "-w", "", "-o", str(tmp_path / "c")),
                          "no workload given (the name '' is empty)")


@pytest.mark.parametrize("command", [["replay", "-n", "3"], ["profile", "-o", "p.json"], ["validate", "-n", "3"]])
@pytest.mark.parametrize("value", ["nope", "", " "])
def test_an_unknown_load_format_is_refused_before_the_engine_starts(tmp_path, capsys, command, value):
    """(`--load-format nope` loaded vLLM and started the engine before vLLM refused it; `--load-format ''` printed
    vLLM's import warnings and a pydantic error)"""
    assert_one_line_error(run_cli_fast(capsys, *command, "--load-format", value, cwd=tmp_path),
                          f"--load-format must be one of auto, hf, dummy, ")


def test_plot_trace_says_what_it_wrote(capsys, tmp_path):
    """(its 'wrote' line sat after a return in a helper: a trace was written without a word)"""
    run = tmp_path / "run"
    wl = tmp_path / "wl.parquet"
    make_workload([10, 20], [5, 6]).save(wl)
    assert run_cli_fast(capsys, "simulate", "-w", str(wl), "-o", str(run), "--record-steps").returncode == 0
    r = run_cli_fast(capsys, "plot", "trace", str(run), "-o", str(tmp_path / "t.json"))
    assert r.returncode == 0 and r.stdout.strip() == f"wrote {tmp_path / 't.json'} (open in https://ui.perfetto.dev)"
    assert json.loads((tmp_path / "t.json").read_text())


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "bell\x07"])
def test_a_profile_name_with_control_characters_is_refused_before_the_engine_starts(tmp_path, capsys, name):
    """(the engine started and the profile was written under a name that split the tables and lines naming it)"""
    assert_one_line_error(run_cli_fast(capsys, "profile", "-o", str(tmp_path / "p.json"), "--name", name),
                          "--name must be printable text")
    assert not (tmp_path / "p.json").exists()


LONG = "x" * 300  # (a name of more than 255 bytes: ENAMETOOLONG)


@pytest.mark.parametrize("args", [
    ["simulate", "-w", LONG], ["simulate", "-n", "3", "-o", LONG], ["simulate", "-n", "3", "--cdf", f"{LONG}.png"],
    ["simulate", "-n", "3", "-p", f"{LONG}.json"], ["sweep", f"{LONG}.toml"], ["plot", "cdf", LONG],
    ["capacity", "--slo", "ttft_p90=2", "-w", LONG],
])
def test_a_file_name_too_long_for_the_file_system_is_one_line(tmp_path, capsys, args):
    """(each was an OSError traceback, from wherever the path was first looked at)"""
    assert_one_line_error(run_cli_fast(capsys, *args,
                                       cwd=tmp_path), " characters): the file name is too long for the file "
                                                        "system (most allow 255 bytes per name); give a shorter one")


def test_a_load_format_in_capitals_is_checked_as_vllm_reads_it(capsys, tmp_path):
    """vLLM lowercases `--load-format`: `AUTO` loaded weights there, but the check that the model has them compared
    with 'auto' and was skipped, so a model without weights reached the engine."""
    for value in ("auto", "AUTO", "Auto"):
        assert_one_line_error(run_cli_fast(capsys, "replay", "-n", "3", "--load-format", value, cwd=tmp_path),
                              "is a config.json without weights")


@pytest.mark.parametrize("option, name", [("--cdf", "loop.png"), ("--trace", "loop.json")])
def test_an_output_that_is_a_symlink_loop_is_one_line(capsys, tmp_path, option, name):
    """(`Path.resolve` raised RuntimeError on a link to itself: a traceback)"""
    (tmp_path / name).symlink_to(name)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-n", "5", option, name, cwd=tmp_path),
                          f"{option} {name}: cannot follow its symbolic links")
