"""Inputs that exist but are not regular files: a named pipe (FIFO), ``/dev/zero`` under a workload's name.
``stat`` gives both a size of 0, so a workload was "the file is empty", a sweep file "not found", a capacity or
sweep workload "neither a file nor a built-in" and a checkpoint's predictor.json or weights.pt "missing". Each is
now named for what it is, in one line (exit code 2), and nothing waits on the pipe."""

from __future__ import annotations

import os
import re

import pytest

from ltrsched.errors import UserError
from test_cli_simulate import assert_one_line_error, run_cli

NOT_REGULAR = "not a regular file: it is read more than once and to its end; save its contents to a file"


@pytest.fixture
def special(tmp_path):
    """make(name, kind): a FIFO or a symbolic link to /dev/zero (a character device) at tmp_path / name."""
    def make(name: str, kind: str):
        path = tmp_path / name
        if kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to("/dev/zero")
        return path
    return make


KINDS = [("fifo", "a named pipe (FIFO)"), ("zero", "a character device")]


@pytest.mark.parametrize("kind, shown", KINDS)
@pytest.mark.parametrize("name", ["t.csv", "t.jsonl", "t.parquet", "t.json"])
def test_a_workload_that_is_a_pipe_or_a_device_is_named_so(special, kind, name, shown):
    from ltrsched.workloads import load_workload
    from ltrsched.workloads.loaders import workload_fingerprint

    path = special(name, kind)
    for load in (load_workload, workload_fingerprint):
        with pytest.raises(UserError, match=f"^workload {re.escape(repr(str(path)))} is {re.escape(shown)}, "
                                            "not a regular file"):
            load(str(path))


def test_simulate_names_a_pipe_as_a_pipe(special):
    path = special("t.csv", "fifo")
    assert_one_line_error(run_cli("simulate", "-w", str(path)), f"workload '{path}' is a named pipe (FIFO), "
                                                                 + NOT_REGULAR)


@pytest.mark.parametrize("kind, shown", KINDS)
def test_a_sweep_file_that_is_a_pipe_or_a_device_is_not_called_missing(tmp_path, special, kind, shown):
    path = special("s.toml", kind)
    assert_one_line_error(run_cli("sweep", str(path), "-o", str(tmp_path / "out")),
                          f"sweep file '{path}' is {shown}, " + NOT_REGULAR)
    assert not (tmp_path / "out").exists()


def test_a_sweeps_workload_that_is_a_device_is_not_called_missing(tmp_path, special):
    wl = special("w.csv", "zero")
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'workloads = ["{wl}"]\npolicies = ["fcfs"]\n')
    assert_one_line_error(run_cli("sweep", str(sweep), "-o", str(tmp_path / "out")),
                          f"s.toml: workload '{wl}' is a character device, " + NOT_REGULAR)


def test_a_capacity_workload_that_is_a_pipe_is_not_called_missing(tmp_path, special):
    wl = special("w.jsonl", "fifo")
    assert_one_line_error(run_cli("capacity", "--slo", "ttft_p90=2", "-p", "fcfs", "-w", str(wl), "-o",
                                  str(tmp_path / "cap")),
                          f"workload '{wl}' is a named pipe (FIFO), " + NOT_REGULAR)


@pytest.mark.parametrize("kind, shown", KINDS)
def test_a_prompts_file_that_is_a_pipe_or_a_device_is_not_called_missing(special, kind, shown):
    from ltrsched.workloads.prompts import load_prompts

    path = special("p.jsonl", kind)
    with pytest.raises(UserError, match=f"^prompts file {re.escape(repr(str(path)))} is {re.escape(shown)}"):
        load_prompts(path)


@pytest.mark.parametrize("file", ["predictor.json", "weights.pt"])
@pytest.mark.parametrize("kind, shown", KINDS)
def test_a_checkpoint_file_that_is_a_pipe_or_a_device_is_not_called_missing(tmp_path, kind, shown, file):
    """(predictor.json: "is not a predictor checkpoint (no predictor.json)"; weights.pt: "missing weights.pt")"""
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    PredictorConfig(dim=1024).save(ckpt)
    target = ckpt / file
    if target.exists():
        target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    what = "predictor config" if file == "predictor.json" else "predictor weights"
    with pytest.raises(UserError, match=f"^{what} {re.escape(repr(str(target)))} is {re.escape(shown)}, not a "
                                        "regular file"):
        Predictor.load(ckpt)


def test_regular_files_and_links_to_them_still_load(tmp_path):
    from ltrsched.inputs import special_kind
    from ltrsched.workloads import load_workload

    path = tmp_path / "t.csv"
    path.write_text("prompt_tokens,output_tokens\n5,6\n7,8\n")
    (tmp_path / "link.csv").symlink_to(path)
    assert len(load_workload(str(tmp_path / "link.csv"))) == 2
    assert special_kind(path) is None and special_kind(tmp_path) is None and special_kind(tmp_path / "no") is None


@pytest.mark.parametrize("file", ["steps.parquet", "requests.parquet"])
def test_plot_trace_of_a_run_with_a_pipe_for_a_file_does_not_wait_on_it(tmp_path, file):
    """A run whose steps.parquet was a named pipe: `plot trace` waited on the pipe for good (a hang)."""
    run = tmp_path / "run"
    r = run_cli("simulate", "-w", "lmsys-like", "-n", "5", "--record-steps", "-o", str(run))
    assert r.returncode == 0, r.stderr[-2000:]
    (run / file).unlink()
    os.mkfifo(run / file)
    assert_one_line_error(run_cli("plot", "trace", str(run), "-o", str(tmp_path / "t.json")),
                          f"the run's {file} '{run / file}' is a named pipe (FIFO), " + NOT_REGULAR)
    assert not (tmp_path / "t.json").exists()


def test_a_profile_file_that_is_a_pipe_is_refused_not_waited_on(tmp_path):
    """`simulate -p FIFO` waited for a writer for good (/dev/zero is read up to a size limit, and refused there)."""
    os.mkfifo(tmp_path / "p.json")
    assert_one_line_error(run_cli("simulate", "-n", "3", "-p", str(tmp_path / "p.json")),
                          f"profile file '{tmp_path / 'p.json'}' is a named pipe (FIFO), " + NOT_REGULAR)
