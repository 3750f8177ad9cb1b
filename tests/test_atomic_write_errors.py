"""A write of :mod:`ltrsched.atomic` that fails (no permission, a directory or a device at the path) is an OSError
with the failed call's errno to a Python caller, as the predictors' own failed writes are, and still a UserError whose
message is the line the command line prints (errors.WriteFailedError). It was a UserError only: ``except OSError``
around ``Workload.save`` or ``atomic.write_text`` missed it."""

from __future__ import annotations

import errno
import os

import pytest

from cli_helpers import run_cli_fast
from conftest import make_workload
from label_data import english_rows, write_label_jsonl

from ltrsched.errors import UserError


class _ReadOnlyDirs:
    """``os`` as ltrsched.atomic sees it where every directory is read-only: creating a file fails with EACCES
    (chmod cannot show it to root, whom permissions do not stop)."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def open(path, flags, mode=0o777, **kwargs):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return os.open(path, flags, mode, **kwargs)


def _raised(write, *args) -> OSError:
    with pytest.raises(OSError) as caught:
        write(*args)
    assert isinstance(caught.value, UserError)  # (the CLI's one line, exit code 2; `except UserError` still works)
    return caught.value


def test_a_write_into_a_read_only_directory_is_an_os_error_with_the_line_the_cli_prints(tmp_path, capsys,
                                                                                     monkeypatch):
    from ltrsched import atomic

    monkeypatch.setattr(atomic, "os", _ReadOnlyDirs())
    exc = _raised(atomic.write_text, tmp_path / "x.json", "{}")
    assert exc.errno == errno.EACCES and str(exc) == f"cannot write {tmp_path / 'x.json'}: Permission denied"
    assert not list(tmp_path.iterdir())
    pytest.importorskip("torch")
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    exc = _raised(Predictor(PredictorConfig(dim=64, epochs=1)).save, tmp_path / "ck")
    assert exc.errno == errno.EACCES
    write_label_jsonl(tmp_path / "tr.jsonl", english_rows(8, 0))
    write_label_jsonl(tmp_path / "ev.jsonl", english_rows(4, 1))
    r = run_cli_fast(capsys, "train", "--epochs", 1, "--list-size", 4, "--data", tmp_path / "tr.jsonl",
                     "--eval-data", tmp_path / "ev.jsonl", "-o", tmp_path / "ck")
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == f"error: {exc}", r.stderr


def test_a_write_onto_a_directory_or_a_device_is_an_os_error(tmp_path):
    from ltrsched import atomic

    (tmp_path / "dir.parquet").mkdir()
    exc = _raised(atomic.write_bytes, tmp_path / "dir.parquet", b"x")
    assert exc.errno == errno.EISDIR and str(exc) == f"cannot write {tmp_path / 'dir.parquet'}: Is a directory"
    wl = make_workload([10, 20], [5, 6])
    assert str(_raised(wl.save, tmp_path / "dir.parquet")) == str(exc)  # (a Python caller's save of a workload)
    assert [p.name for p in tmp_path.iterdir()] == ["dir.parquet"]  # (no temp file left)
    if os.path.exists("/dev/null"):
        exc = _raised(atomic.write_text, "/dev/null", "x")
        assert exc.errno is None and str(exc).startswith("cannot write /dev/null: it is a character device")


def test_a_failed_write_pickles_whole_from_a_worker():
    """A sweep worker's failed write reaches the main process by pickle: the message and the errno both survive."""
    import errno
    import pickle

    from ltrsched.errors import WriteFailedError

    exc = pickle.loads(pickle.dumps(WriteFailedError("cannot write /x: disk full", errno.ENOSPC)))
    assert type(exc) is WriteFailedError and str(exc) == "cannot write /x: disk full" and exc.errno == errno.ENOSPC
