"""A ``.jsonl`` file is read a line at a time: the whole file as one ``str`` (4 bytes a character where one
character is outside the BMP), twice (the text and its ``StringIO``), was 1 GB of a 130 MB file of 200,000
prompts (BENCHMARKS.md, Predictors). Lines, line numbers and errors are as a text file's."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from ltrsched.errors import UserError
from ltrsched.workloads.jsonl import jsonl_records


def test_reading_holds_about_the_file_not_four_times_its_text(tmp_path):
    path = tmp_path / "w.jsonl"
    line = json.dumps({"prompt": "a story about the sea 😀 " * 20, "output_tokens": 5}, ensure_ascii=False)
    path.write_text((line + "\n") * 2000, encoding="utf-8")
    size = path.stat().st_size  # [bytes] ~1.2 MB
    tracemalloc.start()
    try:
        count = sum(1 for _ in jsonl_records(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 2000
    assert peak < 2 * size, (peak, size)  # (the whole text twice, 4 bytes a character: ~7 times the file)


@pytest.mark.parametrize("data, expected", [
    (b'{"a": 1}\n{"a": 2}\n', [(1, 1), (2, 2)]),
    (b'{"a": 1}\r\n\r\n{"a": 2}', [(1, 1), (3, 2)]),
    (b'\xef\xbb\xbf{"a": 1}\r{"a": 2}\r', [(1, 1), (2, 2)]),
    (b' \x0c\n{"a": "x\xe2\x80\xa8y"}\n\t\n', [(2, "x\u2028y")]),  # (U+2028 and form feed end no line of a file)
])
def test_lines_and_their_numbers_are_a_text_files(tmp_path, data, expected):
    path = tmp_path / "w.jsonl"
    path.write_bytes(data)
    assert [(n, rec["a"]) for n, rec in jsonl_records(path)] == expected


def test_an_invalid_byte_is_the_files_error_before_any_line_is_read(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\r\n{"a": "\xe2\x28"}\n')
    with pytest.raises(UserError, match=r"w.jsonl:3: not valid UTF-8: byte 0xe2 \(byte 8 of the line, offset 26 in "):
        list(jsonl_records(path))
