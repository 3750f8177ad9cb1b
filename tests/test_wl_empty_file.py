"""The workload and prompts readers' empty-file check (:mod:`ltrsched.workloads.empty_file`): a file of no bytes is
"the file is empty"; a procfs or sysfs file, whose ``stat`` size is 0 but whose reads give bytes, was that too, and is
now refused as not a regular file with a known size, in one line, exit 2."""

from __future__ import annotations

import os

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast

PROC = "/proc/self/status"  # (size 0 by stat, some hundred bytes when read)


def _commands(path: str, tmp_path) -> dict[str, list[str]]:
    return {"workload": ["simulate", "-w", path, "--no-progress", "-o", str(tmp_path / "run")],
            "prompts file": ["label", "--prompts", path, "-o", str(tmp_path / "labels.parquet")]}


@pytest.mark.skipif(not os.path.isfile(PROC) or os.stat(PROC).st_size != 0, reason="needs Linux's procfs")
@pytest.mark.parametrize("what", ["workload", "prompts file"])
def test_a_proc_file_is_not_a_regular_file_with_a_known_size(capsys, tmp_path, what):
    r = run_cli_fast(capsys, *_commands(PROC, tmp_path)[what])
    assert_one_line_error(r, f"{what} '{PROC}' is not a regular file with a known size (its size is 0, yet it reads "
                             "bytes", "save its contents to a file")
    assert "the file is empty" not in r.stderr


@pytest.mark.parametrize("what", ["workload", "prompts file"])
@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", ".json"])
def test_a_file_of_no_bytes_is_still_the_file_is_empty(capsys, tmp_path, what, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    assert_one_line_error(run_cli_fast(capsys, *_commands(str(path), tmp_path)[what]),
                          f"empty{suffix}: the file is empty")
