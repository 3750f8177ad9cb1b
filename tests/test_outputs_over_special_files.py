"""An output path that names a pipe or a device. Writes are atomic: a new file is renamed over the path, which
replaced the node itself: `evaluate --plot /dev/null`, run as root, left /dev/null a PNG file, for every program on
the machine. Such a path is refused in one line before the work, and the writer refuses it too."""

from __future__ import annotations

import os
import stat

import pytest

from ltrsched.errors import UserError
from test_cli_simulate import assert_one_line_error, run_cli


def _still_a_fifo(path) -> bool:
    return stat.S_ISFIFO(os.lstat(path).st_mode)


@pytest.mark.parametrize("option, name", [("--cdf", "c.png"), ("--trace", "t.json")])
def test_simulate_refuses_an_output_that_is_a_pipe(tmp_path, option, name):
    os.mkfifo(tmp_path / name)
    assert_one_line_error(run_cli("simulate", "-w", "lmsys-like", "-n", "5", option, str(tmp_path / name)),
                          f"{option} {tmp_path / name}: a named pipe (FIFO), not a regular file, which the output "
                          "would replace")
    assert _still_a_fifo(tmp_path / name)


def test_plot_cdf_and_trace_refuse_an_output_that_is_a_pipe(tmp_path):
    run = tmp_path / "run"
    assert run_cli("simulate", "-w", "lmsys-like", "-n", "5", "--record-steps", "-o", str(run)).returncode == 0
    for command, name in (("cdf", "c.png"), ("trace", "t.json")):
        os.mkfifo(tmp_path / name)
        assert_one_line_error(run_cli("plot", command, str(run), "-o", str(tmp_path / name)),
                              f"--out {tmp_path / name}: a named pipe (FIFO), not a regular file")
        assert _still_a_fifo(tmp_path / name)


def test_the_checks_refuse_a_pipe_as_evaluates_plot(tmp_path):
    """(`evaluate --plot` and `predict -o` check their paths with check_out_file)"""
    from ltrsched.outputs import check_out_file

    os.mkfifo(tmp_path / "p.png")
    with pytest.raises(UserError, match=r"^--plot .*p\.png: a named pipe \(FIFO\), not a regular file"):
        check_out_file(tmp_path / "p.png", "--plot")
    check_out_file(tmp_path / "q.png", "--plot")  # a new file is fine


def test_the_atomic_writer_never_renames_over_a_pipe(tmp_path):
    from ltrsched import atomic

    os.mkfifo(tmp_path / "x.json")
    with pytest.raises(UserError, match=r"^cannot write .*x\.json: it is a named pipe \(FIFO\), which the write "
                                        r"would replace"):
        atomic.write_text(tmp_path / "x.json", "{}")
    assert _still_a_fifo(tmp_path / "x.json") and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    atomic.write_text(tmp_path / "y.json", "{}")
    assert (tmp_path / "y.json").read_text() == "{}"
