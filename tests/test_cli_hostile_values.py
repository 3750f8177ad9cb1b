"""Hostile option values over train, evaluate, replay, plot and reproduce ('', '-', 'nan', '-0', '1e999', long
text, line breaks, directories, /dev/null, existing files as output directories), kept from a fuzz of 1,003 cases
(each one line and exit code 2, or a run): one line each, exit code 2, before any work. Only cases refused before
replay's engine options are read (those import the engine's stack: seconds)."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli_captured, run_cli_fast
from test_cli_simulate import assert_one_line_error

LONG = "x" * 5000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert run_cli_captured("simulate", "-w", "lmsys-like", "-n", "3", "-o", out).returncode == 0
    return out


@pytest.mark.parametrize("args, message", [
    (["reproduce", "table1", "--quick", "-o", "/dev/null"], "--out /dev/null: /dev/null is a file, not a directory"),
    (["reproduce", "table1", "--quick", "-o", "afile"], "Invalid value for '--out' / '-o': Directory 'afile' is a file"),
    (["reproduce", "table1", "-j", "-0"], "--jobs must be in 1..4,096 (parallel runs), got 0"),
    (["reproduce", "table1", "-j", "1e999"], "Invalid value for '--jobs' / '-j': '1e999' is not a valid integer"),
    (["plot", "trace", "RUN", "-o", "-"], "--out must be a .json file, got -"),
    (["plot", "trace", "/dev/null"], "/dev/null: not a run directory (no summary.json)"),
    (["plot", "cdf", "RUN", "-o", "adir"], "Invalid value for '--out' / '-o': File 'adir' is a directory"),
    (["train", "-o", "afile"], "Invalid value for '--out' / '-o': Directory 'afile' is a file"),
    (["train", "-o", "t", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["train", "-o", "t", "--data", "/dev/null"], "workload '/dev/null' is a character device, not a regular file"),
    (["evaluate", "-m", "adir", "--plot", "/dev/null"], "--plot /dev/null: a character device, not a regular file"),
    (["replay", "-n", "3", "--rate", "nan", "--arrival", "poisson"], "--rate must be a positive number"),
    (["replay", "-n", "-0"], "--num-requests must be positive, got 0"),
    (["replay", "-n", "3", "-o", "afile"], "Invalid value for '--out' / '-o': Directory 'afile' is a file"),
])
def test_a_hostile_value_is_one_line(capsys, tmp_path, run_dir, args, message):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x\n")
    args = [str(run_dir) if a == "RUN" else a for a in args]
    assert_one_line_error(run_cli_fast(capsys, *args, cwd=tmp_path), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]  # (nothing written)


@pytest.mark.parametrize("args, shown", [
    (["reproduce", "table1", "-j", LONG], "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxx' (5,002 characters) "
                                          "is not a valid integer"),
    (["plot", "trace", "RUN", "-o", LONG], f"--out must be a .json file, got {'x' * 40}...{'x' * 20} (5,000 characters)"),
])
def test_a_value_of_thousands_of_characters_is_cut_in_its_error(capsys, run_dir, args, shown):
    """(the error repeated the whole value: a line of 5,100 characters)"""
    r = run_cli_fast(capsys, *[str(run_dir) if a == "RUN" else a for a in args])
    assert_one_line_error(r, shown)
    assert len(r.stderr) < 300
