"""A big workload file loads by structure, not line by line in Python where C does it (BENCHMARKS.md, "Loading big
workload files"): a ``.jsonl``'s lines are cut by ``bytes.find`` where it has no ``\\r``, one JSON decoder reads
every line, and the results are those of the line-by-line reading (the lines, their numbers, every error)."""

from __future__ import annotations

import codecs
import random

import pytest
from test_progress import FakeClock

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


def _requests_file(path, n: int):
    import json

    path.write_text("".join(json.dumps({"prompt": f"story number {i}", "response": f"once upon a time {i}"}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


def _conversations_file(path, n: int):
    import json

    path.write_text("".join(json.dumps({"id": f"c{i}", "conversations": [
        {"from": "human", "value": f"tell story number {i}"}, {"from": "gpt", "value": f"once upon a time {i}"}]})
        + "\n" for i in range(n)), encoding="utf-8")
    return path


@pytest.mark.parametrize("make", [_requests_file, _conversations_file])
def test_a_long_load_prints_its_lines_read_then_texts_tokenised_on_stderr(tmp_path, monkeypatch, capsys, make):
    import re

    from ltrsched.workloads import load_progress, tokenizer
    from ltrsched.workloads.loaders import load_workload

    monkeypatch.delenv("LTRSCHED_PROGRESS_EVERY_S", raising=False)  # (every 10 s, as outside the suite)
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(load_progress, "MIN_BYTES", 1)  # (a big file's load, of a small one)
    monkeypatch.setattr(load_progress, "EVERY_LINES", 10)
    monkeypatch.setattr("ltrsched.workloads.jsonl.EVERY_LINES", 10)
    monkeypatch.setattr(tokenizer, "CHUNK", 10)
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(4.0))
    path = make(tmp_path / "big.jsonl", 60)
    quiet = load_workload(str(_requests_file(tmp_path / "quiet.jsonl", 60)) if make is _requests_file else
                          str(_conversations_file(tmp_path / "quiet.jsonl", 60)))
    monkeypatch.setattr(load_progress, "MIN_BYTES", path.stat().st_size)
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache1"))  # (the same bytes: a conversations file parsed)
    capsys.readouterr()
    wl = load_workload(str(path))
    err = capsys.readouterr().err.splitlines()
    found = [re.fullmatch(r"load big\.jsonl: ([\d,]+) of ([\d,]+) (lines read|texts tokenised), (\d+) s", line)
             for line in err]
    assert all(found), err
    phases = [(m[3], int(m[2])) for m in found]
    assert ("lines read", 60) in phases and ("texts tokenised", 120) in phases, err
    assert phases.index(("lines read", 60)) < phases.index(("texts tokenised", 120))
    assert all(int(m[4]) >= 10 for m in found)  # (none in the first 10 s: the phases share the load's clock)
    assert wl.df.drop("prompt").equals(quiet.df.drop("prompt"))  # (counted in parts: the same counts)
    monkeypatch.setattr(load_progress, "MIN_BYTES", path.stat().st_size + 1)  # (a smaller file shows nothing)
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache2"))
    load_workload(str(path))
    assert "load big.jsonl" not in capsys.readouterr().err


def _split_records(path, splits: list):
    import json

    path.write_text("".join(
        (json.dumps({"id": f"c{i}", "conversations": [{"from": "human", "value": f"tell story number {i}"},
                                                      {"from": "gpt", "value": f"once upon a time {i}"}],
                     **({"split": s} if s != "absent" else {})}) if s != "list" else "[1, 2]") + "\n"
        for i, s in enumerate(splits)), encoding="utf-8")
    return path


def test_a_conversations_files_splits_are_checked_in_the_loads_one_pass(tmp_path, monkeypatch):
    from ltrsched.workloads import sharegpt
    from ltrsched.workloads.loaders import load_workload

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = _split_records(tmp_path / "c.jsonl", ["train", "eval", "train", "train"])
    reads = []
    records = sharegpt.conversation_records
    monkeypatch.setattr(sharegpt, "conversation_records", lambda *a, **k: reads.append(a[0]) or records(*a, **k))
    assert load_workload(str(path), split="train").df.height == 3
    assert reads == [path]  # (the parse's: the split check read it again)
    assert load_workload(str(path), split="eval").df.height == 1
    assert reads == [path]  # (cached: the check kept beside the parse; it read the file again)


@pytest.mark.parametrize("value", ["test", None, "absent", 0, float("nan"), {"a": 1}])
def test_a_split_checked_in_the_pass_is_refused_as_one_read_again_is(tmp_path, monkeypatch, value):
    import json

    from ltrsched.errors import UserError
    from ltrsched.workloads.loaders import load_workload
    from ltrsched.workloads.sharegpt import SPLITS_SUFFIX

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = _split_records(tmp_path / "c.jsonl", ["train", "list", value, "eval"])
    if value == 0:  # (a record left out, as the paper's rules leave out one opening with the assistant's turn)
        lines = path.read_text().splitlines()
        lines[2] = lines[2].replace('"from": "human"', '"from": "gpt"', 1)
        path.write_text("\n".join(lines) + "\n")
    said = []
    for _ in range(2):  # (parsed, then cached)
        with pytest.raises(UserError) as caught:
            load_workload(str(path), split="train")
        said.append(str(caught.value))
    kept = list((tmp_path / "cache").glob(f"*{SPLITS_SUFFIX}"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["keyed"] is True
    kept[0].unlink()  # (a cache without it: the file read again, as before)
    with pytest.raises(UserError) as caught:
        load_workload(str(path), split="train")
    said.append(str(caught.value))
    assert said[0] == said[1] == said[2], said
    assert "key 'split' in record 3 (id 'c2') is " in said[0]


def test_a_request_files_splits_are_read_in_the_loads_one_pass(tmp_path, monkeypatch):
    import json

    from ltrsched.errors import UserError
    from ltrsched.workloads import loaders, stream_files

    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"story {i}", "output_tokens": 3, **split}) + "\n" for i, split in
                            enumerate([{"split": "train"}, {"split": " EVAL "}, {"split": "train"}, {}])))
    reads = []
    records = loaders.jsonl_records
    for module in (loaders, stream_files):  # (a .jsonl's lines come through stream_files.log_records)
        monkeypatch.setattr(module, "jsonl_records", lambda *a, **k: reads.append(a[0]) or records(*a, **k))
    with pytest.raises(UserError, match=r"w.jsonl: key 'split' in line 4 is missing \(null\), not a split"):
        loaders.load_workload(str(path), split="train")
    assert reads == [path]  # (the load's: the split check read it again)
    path.write_text(path.read_text().replace('"output_tokens": 3}', '"output_tokens": 3, "split": "eval"}'))
    assert loaders.load_workload(str(path), split="train").df.height == 2
    assert loaders.load_workload(str(path), split="eval").df.height == 2
    assert "split" not in loaders.load_workload(str(path)).meta


def test_a_jsonls_keys_are_checked_once_for_each_set_of_keys(tmp_path, monkeypatch):
    import json

    from ltrsched.errors import UserError
    from ltrsched.workloads import loaders, stream_files

    path = tmp_path / "w.jsonl"
    lines = [{"prompt": f"story {i}", "response": f"once {i}", "arrival_time": i} for i in range(50)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines + [{**lines[0], "output": "x"}]))
    checked = []
    one_reply = loaders._one_reply
    monkeypatch.setattr(loaders, "_one_reply", lambda names, *a: checked.append(names) or one_reply(names, *a))
    with pytest.raises(UserError, match=r"w.jsonl:51: keys 'response' and 'output' both may give the reply's text"):
        loaders.load_jsonl(path)  # (a line of other keys is checked: refused, naming its line)
    assert len(checked) == 2  # (once for the 50 lines of one set of keys: it was once a line)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert loaders.load_jsonl(path)["arrival_time"].to_list() == [float(i) for i in range(50)]


def test_a_long_conversations_first_turn_reads_its_first_messages_alone(monkeypatch):
    from ltrsched.workloads import sharegpt

    messages = [{"from": "human" if i % 2 == 0 else "gpt", "value": f"turn {i}"} for i in range(1000)]
    record = {"id": "c1", "conversations": [{"from": "system", "value": "be brief"}, *messages]}
    whole = sharegpt.read_first_turn(record, system=True)
    speakers = []
    speaker = sharegpt._speaker
    monkeypatch.setattr(sharegpt, "_speaker", lambda m: speakers.append(m) or speaker(m))
    assert sharegpt.read_first_turn(record, system=True) == whole == sharegpt.FirstTurn(
        "c1", f"be brief{sharegpt.SYSTEM_SEPARATOR}turn 0", "turn 1", "be brief")
    assert len(speakers) < 20  # (every message's speaker was read: over 1,000)


def test_a_conversations_later_messages_are_counted_only_beside_a_count(tmp_path, monkeypatch):
    import json

    from ltrsched.errors import UserError
    from ltrsched.workloads import sharegpt

    record = {"id": "c1", "conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "yo"},
                                            {"from": "human", "value": "and then?"}, {"from": "gpt", "value": "no"}]}
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps({**record, "id": "c2", "score": 1.5}) + "\n")
    counted = []
    after = sharegpt._after_first_reply
    monkeypatch.setattr(sharegpt, "_after_first_reply", lambda r: counted.append(r) or after(r))
    assert sharegpt.parse_sharegpt(path).height == 2
    assert counted == []  # (no record gives a count: one a record was read for)
    path.write_text(json.dumps({**record, "output_tokens": 30}) + "\n")
    with pytest.raises(UserError, match="record 1 .* 'output_tokens'"):
        sharegpt.parse_sharegpt(path)
    assert len(counted) == 1


def test_simulate_no_progress_hides_the_loads_progress_too(tmp_path, monkeypatch, capsys):
    """``simulate --no-progress`` said nothing of its run but showed the load's bar (on a terminal) all the same."""
    from cli_helpers import run_cli_fast

    from ltrsched.workloads import load_progress

    monkeypatch.setattr(load_progress, "MIN_BYTES", 1)  # (a big file's load, of a small one)
    made = []
    real = load_progress.LoadProgress.__init__

    def recording(self, path):
        real(self, path)
        made.append(self.enabled)

    monkeypatch.setattr(load_progress.LoadProgress, "__init__", recording)
    path = _requests_file(tmp_path / "w.jsonl", 20)
    env = {"LTRSCHED_CACHE": str(tmp_path / "cache")}
    for flag, shown in (("--no-progress", False), ("--progress", True)):
        made.clear()
        result = run_cli_fast(capsys, "simulate", "-w", str(path), "--policy", "fcfs", flag, env=env)
        assert result.returncode == 0, result.stderr
        assert made and set(made) == {shown}, (flag, made)
    with load_progress.hidden():
        assert not load_progress.LoadProgress(path).enabled
    assert load_progress.LoadProgress(path).enabled
