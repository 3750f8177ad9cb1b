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


_RECORDS = [
    '{"conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "hello you"}]',
    '{"conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "hello you"}], '
    '"split": "train"',
    '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}, '
    '{"role": "assistant", "content": "hello you"}]',
    '{"conversations": [{"from": "prompter", "value": "hi"}, {"from": "gpt", "value": "yo"}]',
    '{"conversations": [], "tstamp": 3',
    '{"conversations": [], " TimeStamp_ms ": 3',
    '{"conversations": [], "system": "x", "score": 1, "prompt_tokens": 3, "input_len": 2',
    '{"conversations": [], "usage": {}, "request": {}, "response": "r"',
    '{"conversations": [{"from": "human", "value": "\\u0061"}]',
]


@pytest.mark.parametrize("record", _RECORDS)
def test_the_probes_asked_in_one_read_say_what_each_says_of_the_file(tmp_path, record):
    from ltrsched.workloads.sharegpt import _JSON_PROBES, _probes_of

    for suffix in (".jsonl", ".json"):
        path = tmp_path / f"c{suffix}"
        path.write_text(record + "}\n" if suffix == ".jsonl" else f"[{record}}}]", encoding="utf-8")
        given = _probes_of(path)
        assert {probe.__name__: given(probe) for probe in _JSON_PROBES} == {
            probe.__name__: probe(path) for probe in _JSON_PROBES}


@pytest.mark.parametrize("seed", range(30))
def test_one_search_finds_the_patterns_each_search_finds(seed):
    import re

    from ltrsched.workloads.byte_probes import found_patterns

    rng = random.Random(seed)
    patterns = [re.compile(rb'"\s*(?:tstamp|timestamp)(?:_s|_ms)?\s*"\s*:', re.I), re.compile(rb'"tstamp"\s*:'),
                re.compile(rb'"(?:from|role)"\s*:\s*"\s*(?i:system)\s*"'), re.compile(rb'"system"\s*:'),
                re.compile(rb'"split"\s*:')]
    pieces = [b'"', b"tstamp", b"TSTAMP_ms", b"timestamp", b":", b" ", b'"role"', b'"system"', b"split", b"x", b","]
    data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
    assert found_patterns(data, patterns) == {i for i, p in enumerate(patterns) if p.search(data)}


def test_a_conversations_files_cache_probes_read_it_once(tmp_path, monkeypatch):
    from pathlib import Path

    from ltrsched.workloads.sharegpt import load_sharegpt_records

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "c.jsonl"
    path.write_text("".join(record + "}\n" for record in _RECORDS[:3]), encoding="utf-8")
    reads = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or read_bytes(self))
    df = load_sharegpt_records(path, [])
    assert df.height == 3
    assert reads.count(path) <= 2, reads  # (the probes' read and the parse's; each probe read it: 14)
