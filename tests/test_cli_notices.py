"""Warnings and notes on stderr (``warning: ...``, ``note: ...``) as the CLI prints them
(:class:`ltrsched.cli.Notices`): held while a command runs, printed once each when it has run, dropped when its input
was bad, so that the command's one-line error is the one line printed. A load warning (rows left out, arrival times that look like milliseconds)
followed by a later error printed two lines; a sweep's worker processes each printed the warnings of the workloads
they loaded, so that a 2-worker sweep printed each two or three times."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import click
import numpy as np
import polars as pl
import pytest

from ltrsched import cli as cli_module
from ltrsched.cli import Notices
from ltrsched.errors import RunFailedError, UserError
from test_cli_simulate import assert_one_line_error, run_cli

BURSTGPT = Path(__file__).parent / "fixtures" / "burstgpt.csv"  # its second request failed (Response tokens 0)
DROPPED = "1 of its 4 requests have 'Response tokens' 0"


def _ms_trace(path: Path) -> Path:
    """A trace whose arrival times are milliseconds under a plain name: replaying it warns (read as seconds)."""
    rng = np.random.default_rng(0)
    ms = np.cumsum(rng.exponential(500.0, 400))
    pl.DataFrame({"arrived_at": ms, "num_prefill_tokens": rng.integers(10, 200, 400),
                  "num_decode_tokens": rng.integers(10, 200, 400)}).write_csv(path)
    return path


@pytest.mark.parametrize("args, message", [
    (["--max-model-len", "100"], "exceed the context limit of 100 tokens set by --max-model-len"),  # found by the run, after the load
    (["-P", "ltr"], "policy 'ltr' needs a 'score' column"),
    (["--arrival", "replay", "--rate", "1e-300"], "--rate 1e-300 req/s is below 1e-08"),
    (["--arrival", "replay", "--rate", "1e-8"], "must stay below 1e+08 s"),
])
def test_a_load_warning_before_a_later_error_leaves_the_error_alone(args, message):
    assert_one_line_error(run_cli("simulate", "-w", str(BURSTGPT), *args), message)


def test_a_unit_warning_before_a_later_error_leaves_the_error_alone(tmp_path):
    path = _ms_trace(tmp_path / "t.csv")
    assert_one_line_error(run_cli("simulate", "-w", str(path), "--arrival", "replay", "--max-model-len", "100"),
                          "exceed the context limit of 100 tokens set by --max-model-len")
    r = run_cli("simulate", "-w", str(path), "--arrival", "replay")  # it runs: the warning, once
    assert r.returncode == 0 and [line[:40] for line in r.stderr.splitlines()] == [f"warning: {path}"[:40]], r.stderr


def test_a_sweep_prints_a_load_warning_once_whatever_its_workers_and_seeds(tmp_path):
    """Two workers, two seeds (the checks load the workload once per seed): one warning line."""
    shutil.copy(BURSTGPT, tmp_path / "burstgpt.csv")
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text('workloads = ["burstgpt.csv"]\npolicies = ["fcfs", "srtf"]\nseeds = [0, 1]\n')
    r = run_cli("sweep", str(sweep_file), "-o", str(tmp_path / "out"), "-j", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and DROPPED in lines[0], r.stderr
    assert pl.read_csv(tmp_path / "out" / "sweep.csv").height == 4


def test_a_workers_warnings_come_back_to_the_main_process_once(tmp_path, capsys):
    """run_all in a library (no CLI holding stderr): the workers' warnings, printed once, by the main process."""
    from ltrsched.experiments.runner import run_all
    from ltrsched.experiments.runspec import RunSpec

    specs = [RunSpec(experiment="t", setting="s", label=p, workload=str(BURSTGPT), policy=p, profile="a100-llama3-8b",
                     seed=seed) for p in ("fcfs", "srtf") for seed in (0, 1)]
    stats = run_all(specs, tmp_path / "out", jobs=2, progress=False)
    assert len(stats.ran) == 4
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and DROPPED in lines[0], lines


def test_a_ray_task_returns_its_warnings(tmp_path, capsys):
    """A Ray task (called here as a plain function) holds its warnings and returns them to the driver."""
    from ltrsched.experiments.ray_backend import _task
    from ltrsched.experiments.runner import RAN
    from ltrsched.experiments.runspec import RunSpec

    spec = RunSpec(experiment="t", setting="s", label="fcfs", workload=str(BURSTGPT), policy="fcfs",
                   profile="a100-llama3-8b", seed=7)
    context = {"cwd": str(Path.cwd()), "env": {}, "digests": {}}
    run_hash, status, notices = _task(spec.to_dict(), str(tmp_path / "out"), spec.run_hash(), True, context)
    assert status == RAN and run_hash == spec.run_hash()
    assert len(notices) == 1 and DROPPED in notices[0] and capsys.readouterr().err == ""


def test_notices_hold_warning_lines_and_pass_the_rest():
    stream = io.StringIO()
    notices = Notices(stream)
    for part in ("progress 1/2\r", "progress 2/2\n", "warn", "ing: a\n", "note: b\nTraceback\n", "warning: a\n",
                 "mid-line warning: c\n", "warning: d"):
        notices.write(part)
    assert stream.getvalue() == "progress 1/2\rprogress 2/2\nTraceback\nmid-line warning: c\n"
    assert notices.held == ["warning: a\n", "note: b\n"]  # (a repeat held once)
    notices.release()
    assert stream.getvalue().endswith("mid-line warning: c\nwarning: a\nnote: b\nwarning: d")
    notices.write("\nwarning: e\n")
    notices.drop()
    notices.release()
    assert stream.getvalue().endswith("warning: d\n")
    with pytest.raises(TypeError):
        notices.write(b"")  # (a text stream: click's test for a binary one)
    assert not hasattr(notices, "buffer")  # (click writes past a stream whose buffer it takes)


def _command(monkeypatch, raised: BaseException | None):
    @click.command()
    def warns():
        print("warning: the file's rows 3-4 were left out", file=cli_module.sys.stderr)
        click.echo("note: a note", err=True)
        if raised is not None:
            raise raised

    monkeypatch.setitem(cli_module.cli.commands, "warns", warns)


@pytest.mark.parametrize("raised, code, err", [
    (None, 0, "warning: the file's rows 3-4 were left out\nnote: a note\n"),
    (UserError("a bad value"), 2, "error: a bad value\n"),
    # (not bad input: runs whose worker died twice; the warnings, e.g. of the deaths, stay, above the error)
    (RunFailedError("1 run(s) failed"), 1,
     "warning: the file's rows 3-4 were left out\nnote: a note\nerror: 1 run(s) failed\n"),
    # (Ctrl-C: click printed a blank line of its own ahead of its Abort, so "aborted" came as two lines)
    (KeyboardInterrupt(), 130, "warning: the file's rows 3-4 were left out\nnote: a note\naborted\n"),
])
def test_main_prints_notices_unless_the_command_fails(monkeypatch, capsys, raised, code, err):
    _command(monkeypatch, raised)
    with pytest.raises(SystemExit) if code else __import__("contextlib").nullcontext() as exit_info:
        cli_module.main(["warns"])
    if code:
        assert exit_info.value.code == code
    assert capsys.readouterr().err == err
    assert not isinstance(cli_module.sys.stderr, Notices)  # put back


def test_notices_print_as_they_come_once_a_commands_work_starts(monkeypatch):
    """Held to the end, a validation's "resuming" note (minutes of engine runs later) and a retried worker's
    warning came after the work they were news for; from ``work_starts`` on they print at once, each once."""
    from ltrsched.notices import work_starts

    out = io.StringIO()
    notices = Notices(out)
    monkeypatch.setattr("sys.stderr", notices)
    notices.write("warning: rows left out\n")
    assert out.getvalue() == ""  # (the input may still be bad: held)
    work_starts()
    assert out.getvalue() == "warning: rows left out\n"
    notices.write("note: resuming\nwarning: rows left out\n")
    assert out.getvalue() == "warning: rows left out\nnote: resuming\n"  # at once, a line seen before not again
    notices.release()
    assert out.getvalue() == "warning: rows left out\nnote: resuming\n"
    monkeypatch.setattr("sys.stderr", out)
    work_starts()  # (outside the CLI: nothing to do)


def test_a_sweep_prints_its_warnings_before_its_runs_end(tmp_path, monkeypatch):
    """``run_all`` lets the held notices out when its runs start: what the checks before them warned of shows up
    before the runs, not after."""
    from ltrsched.experiments import runner

    out = io.StringIO()
    notices = Notices(out)
    monkeypatch.setattr("sys.stderr", notices)
    notices.write("warning: before the runs\n")
    seen = []
    monkeypatch.setattr(runner, "work_starts", lambda: seen.append(out.getvalue()) or notices.work_starts())
    specs = [runner.RunSpec("sweep", "s", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b",
                            num_requests=20)]
    runner.run_all(specs, tmp_path / "o", jobs=1, progress=False)
    assert seen == [""] and out.getvalue().startswith("warning: before the runs\n")
