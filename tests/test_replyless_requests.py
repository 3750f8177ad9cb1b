"""A conversation record of a user turn without the assistant's reply, but giving the reply's length (ours,
``output_tokens``, or another tool's name, OpenAI usage's ``completion_tokens``), is a request: its prompt's text
counted, its output the count given. It was refused, "write the reply as an assistant message", though the length
is all a simulation needs. A cap (``max_tokens``) is no length, and a record without a count is refused as before."""

import json

import pytest

from cli_helpers import run_cli_fast
from ltrsched.errors import UserError
from ltrsched.workloads.loaders import load_workload

ASK = "Please explain in detail how the water cycle works on our planet"


def _write(tmp_path, name, records):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize("name", ["r.jsonl", "r.json"])
@pytest.mark.parametrize("key", ["output_tokens", "completion_tokens", "output_len"])
def test_a_request_giving_its_replys_length_is_read(tmp_path, monkeypatch, name, key):
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = _write(tmp_path, name, [{"messages": [{"role": "user", "content": ASK}], key: 37},
                                   {"conversations": [{"from": "human", "value": ASK + " and rain"}], key: 5}])
    df = load_workload(str(path)).df.sort("output_tokens")
    assert df["output_tokens"].to_list() == [5, 37]
    assert df["prompt_tokens"].min() >= 10  # (the prompt's own text, counted)


def test_no_note_that_the_count_differs_from_a_reply_there_is_none_of(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = _write(tmp_path, "r.jsonl", [{"messages": [{"role": "user", "content": ASK}], "output_tokens": 37}])
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "-P", "fcfs")
    assert r.returncode == 0 and "differ" not in r.stderr, r.stderr


@pytest.mark.parametrize("extra", [{}, {"max_tokens": 256}, {"output_tokens": None}])
def test_a_request_without_its_replys_length_is_refused_as_before(tmp_path, monkeypatch, extra):
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = _write(tmp_path, "r.jsonl", [{"messages": [{"role": "user", "content": ASK}], **extra}])
    with pytest.raises(UserError, match=r"requests without the assistant's reply .*: give the assistant's reply or its "
                                        r"output_tokens\)"):
        load_workload(str(path))


def test_a_bad_length_is_the_counts_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = _write(tmp_path, "r.jsonl", [{"messages": [{"role": "user", "content": ASK}], "output_tokens": 0}])
    with pytest.raises(UserError, match="is 0, not a token count"):
        load_workload(str(path))
