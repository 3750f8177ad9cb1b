"""A big workload file loads by structure, not line by line in Python where C does it (BENCHMARKS.md, "Loading big
workload files"): a ``.jsonl``'s lines are cut by ``bytes.find`` where it has no ``\\r``, one JSON decoder reads
every line, and the results are those of the line-by-line reading (the lines, their numbers, every error)."""

from __future__ import annotations

import codecs
import random

import pytest

from ltrsched.workloads import jsonl


def _reference(data: bytes) -> list[bytes]:
    """A text file's lines of ``data``: ``bytes.splitlines`` ends lines at ``\\n``, ``\\r\\n`` and ``\\r`` alone."""
    return data.removeprefix(codecs.BOM_UTF8).splitlines()


@pytest.mark.parametrize("seed", range(40))
def test_lines_are_a_text_files_with_and_without_carriage_returns(seed):
    rng = random.Random(seed)
    pieces = [b"\n", b"\r\n", b"\r", b"", b"{}", b"ab", b" ", codecs.BOM_UTF8]
    data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30)))
    if seed % 2:
        data = data.replace(b"\r", b"")  # (the find path)
    assert [bytes(line) for line in jsonl._lines(data)] == _reference(data)


def test_a_file_without_carriage_returns_is_not_searched_byte_by_byte(monkeypatch):
    class NoSearch:
        def finditer(self, *_):
            raise AssertionError("the line-end regular expression searched a file without \\r")

    monkeypatch.setattr(jsonl, "_LINE_END", NoSearch())
    data = codecs.BOM_UTF8 + b'{"a": 1}\n\n{"a": 2}'
    assert [bytes(line) for line in jsonl._lines(data)] == [b'{"a": 1}', b"", b'{"a": 2}']


def test_one_decoder_reads_every_line(tmp_path, monkeypatch):
    def no_loads(*_, **__):
        raise AssertionError("json.loads builds a decoder on each call")

    monkeypatch.setattr(jsonl.json, "loads", no_loads)
    path = tmp_path / "w.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    assert [rec for _, rec in jsonl.jsonl_records(path)] == [{"a": 1}, {"a": 2}]
