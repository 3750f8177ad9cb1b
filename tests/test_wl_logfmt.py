"""Users' own serving logs and traces, read as the README says: JSON lines under other names (``.ndjson``), a LiteLLM
spend-log ``.csv`` export (text ``request_id``), a stream dump given as prompts, a file mixing request lines and
serving-log records, requests without ids numbered by their place in the file (not by the sample), and parse caches
kept without their ``.splits.json``. Tiny files, each test well under a second."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.workloads import load_workload


def write(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def requests(workload) -> dict:
    """A workload's requests as plain lists, id first, to compare two loads."""
    df = workload.df.sort("request_id")
    return {c: df[c].to_list() for c in df.columns}


LINES = [{"prompt": f"question number {i} about the weather", "output_tokens": 3 + i, "arrival_time": 0.5 * i}
         for i in range(6)]
CONVERSATIONS = [{"id": f"c{i}", "messages": [{"role": "user", "content": f"tell me about topic {i} in detail"},
                                              {"role": "assistant", "content": "word " * (5 + i)}]}
                 for i in range(6)]


@pytest.mark.parametrize("suffix", [".ndjson", ".jsonlines", ".ldjson", ".NDJSON"])
def test_json_lines_under_another_name_are_read_as_their_jsonl_copy(tmp_path, capsys, suffix):
    """They were refused: "unknown workload format '.ndjson' ... (a .ndjson file is JSON lines: name it w.jsonl)"."""
    copy = write(tmp_path / "w.jsonl", LINES)
    other = write(tmp_path / f"w{suffix}", LINES)
    assert requests(load_workload(other)) == requests(load_workload(copy))
    assert requests(load_workload(other, num_requests=3, seed=2)) == requests(load_workload(copy, num_requests=3,
                                                                                           seed=2))
    result = run_cli_fast(capsys, "workloads", other)
    assert result.returncode == 0, result.stderr


def test_conversations_as_ndjson_share_the_jsonl_copys_parse_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    copy = write(tmp_path / "c.jsonl", CONVERSATIONS)
    other = write(tmp_path / "c.ndjson", CONVERSATIONS)
    first = requests(load_workload(copy))
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert requests(load_workload(other)) == first
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == entries  # (the same entry: none added)


def test_another_suffix_is_still_an_unknown_format(tmp_path, capsys):
    (tmp_path / "w.yaml").write_text('{"prompt": "hi", "output_tokens": 3}\n')
    assert_one_line_error(run_cli_fast(capsys, "workloads", str(tmp_path / "w.yaml")),
                          "unknown workload format '.yaml'", ".ndjson")


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_requests_without_ids_are_numbered_by_their_place_in_the_file_before_sampling(tmp_path, kind):
    """Each request's output length is its place + 10: its id is its place in the file whatever -n draws (they were
    numbered after sampling: -n 3 and -n 5 gave one request two ids)."""
    rows = [{"prompt_tokens": 5, "output_tokens": 10 + i} for i in range(8)]
    if kind == "csv":
        (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n"
                                        + "".join(f"{r['prompt_tokens']},{r['output_tokens']}\n" for r in rows))
    else:
        write(tmp_path / "w.jsonl", rows)
    path = str(tmp_path / f"w.{kind}")
    for n in (3, 5, None):
        df = load_workload(path, num_requests=n, seed=4).df
        assert df["request_id"].to_list() == [o - 10 for o in df["output_tokens"].to_list()], n


def test_a_file_without_ids_is_marked_in_run_cache_keys(tmp_path):
    """Runs cached before numbered a -n sample in its order: their keys differ from now's."""
    from ltrsched.workloads.loaders import workload_fingerprint

    (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n5,10\n")
    (tmp_path / "i.csv").write_text("request_id,prompt_tokens,output_tokens\n7,5,10\n")
    assert workload_fingerprint(str(tmp_path / "w.csv"))["numbered"] == "file order, before sampling"
    assert "numbered" not in workload_fingerprint(str(tmp_path / "i.csv"))


#: A LiteLLM spend log's rows (its LiteLLM_SpendLogs columns, as its database and UI export them): request_id text,
#: startTime an ISO date-time, the usage counts beside.
SPEND_HEADER = ("request_id,call_type,api_key,spend,total_tokens,prompt_tokens,completion_tokens,startTime,endTime,"
                "model,api_base,user,metadata,cache_hit,cache_key,request_tags,status")
SPEND_ROWS = [("chatcmpl-9f1a2b", "2024-05-20T10:00:00.000000+00:00", 30, 100),
              ("chatcmpl-0a77c1", "2024-05-20T10:00:01.250000+00:00", 20, 50),
              ("chatcmpl-33bd90", "2024-05-20T10:00:03.000000+00:00", 45, 200),
              ("a1b2c3d4-0000-4000-8000-000000000004", "2024-05-20T10:00:03.500000+00:00", 12, 7)]


def spend_csv(path) -> str:
    path.write_text(SPEND_HEADER + "\n" + "".join(
        f'{rid},acompletion,88dc28d0,0.0001,{p + c},{p},{c},{start},{start},gpt-4o-mini,https://api.openai.com,,'
        f'"{{""user_api_key"": ""x""}}",False,Cache OFF,[],success\n' for rid, start, p, c in SPEND_ROWS))
    return str(path)


def test_a_litellm_spend_log_csv_is_read_its_text_ids_numbered_in_file_order(tmp_path, capsys):
    """It was refused: "row 1: request_id 'chatcmpl-9f1a2b' is not a whole number"."""
    df = load_workload(spend_csv(tmp_path / "spend.csv")).df.sort("request_id")
    assert df["request_id"].to_list() == [0, 1, 2, 3]
    assert df["prompt_tokens"].to_list() == [30, 20, 45, 12]
    assert df["output_tokens"].to_list() == [100, 50, 200, 7]
    assert df["arrival_time"].to_list() == [0.0, 1.25, 3.0, 3.5]  # (startTime, seconds since the first)
    sampled = load_workload(str(tmp_path / "spend.csv"), num_requests=2, seed=1).df
    assert sampled["request_id"].to_list() == [[30, 20, 45, 12].index(p) for p in sampled["prompt_tokens"]]
    result = run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "spend.csv"), "-P", "fcfs", "--arrival", "replay")
    assert result.returncode == 0, result.stderr


def test_a_litellm_spend_log_csv_reads_as_its_jsonl_export(tmp_path):
    """The same rows as LiteLLM's .jsonl records (log_records.litellm_lengths): the same requests."""
    lines = [{"request_id": rid, "call_type": "acompletion", "spend": 0.0001, "total_tokens": p + c,
              "prompt_tokens": p, "completion_tokens": c, "startTime": start, "model": "gpt-4o-mini",
              "messages": {}, "response": {}} for rid, start, p, c in SPEND_ROWS]
    assert requests(load_workload(spend_csv(tmp_path / "s.csv"))) == requests(
        load_workload(write(tmp_path / "s.jsonl", lines)))


def test_a_text_request_id_outside_a_litellm_log_is_still_refused(tmp_path, capsys):
    (tmp_path / "w.csv").write_text("request_id,prompt_tokens,output_tokens\nabc,5,10\n")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "w.csv")),
                          "row 1: request_id 'abc' is not a whole number")


def stream_dump() -> str:
    """Two OpenAI chat streams as `curl -N` writes them: data lines, a usage chunk, [DONE]."""
    out = []
    for i in range(2):
        head = {"id": f"chatcmpl-{i}", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        out += [f"data: {json.dumps({**head, 'choices': [{'index': 0, 'delta': {'content': w}}]})}\n\n"
                for w in ("Paris", " it", " is.")]
        usage = {"prompt_tokens": 10 + i, "completion_tokens": 3, "total_tokens": 13 + i}
        out += [f"data: {json.dumps({**head, 'choices': [], 'usage': usage})}\n\n", "data: [DONE]\n\n"]
    return "".join(out)


@pytest.mark.parametrize("name", ["dump.jsonl", "dump.txt", "events.jsonl"])
def test_labelling_a_stream_dump_says_it_holds_no_prompts(tmp_path, capsys, name):
    """It was "dump.jsonl:1: not valid JSON (Expecting value)"; a .txt's data lines were read as prompts."""
    if name == "events.jsonl":
        write(tmp_path / name, [{"event": "message", "data": line.removeprefix("data: ").strip()}
                                for line in stream_dump().split("\n\n") if line])
    else:
        (tmp_path / name).write_text(stream_dump())
    assert_one_line_error(run_cli_fast(capsys, "label", "--prompts", str(tmp_path / name), "--out",
                                       str(tmp_path / "labels.parquet")),
                          f"{name}: a dump of streamed responses", "without the prompts they answer")
    if name.endswith(".jsonl"):  # (as a workload it is read: lengths alone, a request a stream)
        assert load_workload(str(tmp_path / name)).df["prompt_tokens"].to_list() == [10, 11]


def test_a_prompts_txt_whose_first_prompt_opens_with_data_is_read(tmp_path):
    from ltrsched.workloads.prompts import load_prompts

    (tmp_path / "p.txt").write_text("data: what does it say about the users?\nsecond prompt\n")
    assert load_prompts(tmp_path / "p.txt")["prompt"].to_list() == ["data: what does it say about the users?",
                                                                     "second prompt"]


def test_a_parse_cache_without_its_splits_sidecar_gets_one_and_the_file_is_not_read_again(tmp_path, monkeypatch):
    """A parse cached before .splits.json was kept: every load asking for a split read the whole file again
    (record_splits), on every load, the cache never rebuilt (the split itself was right)."""
    import ltrsched.workloads.sharegpt as sharegpt

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    records = [{**c, "split": "eval" if i % 3 == 0 else "train"} for i, c in enumerate(CONVERSATIONS)]
    path = write(tmp_path / "c.jsonl", records)
    first = requests(load_workload(path, split="train"))
    sidecars = list((tmp_path / "cache").glob("*.splits.json"))
    assert len(sidecars) == 1
    sidecars[0].unlink()  # (a cache as written before the sidecar)
    reads = []
    read = sharegpt.conversation_records
    monkeypatch.setattr(sharegpt, "conversation_records", lambda *a, **k: reads.append(1) or read(*a, **k))
    for _ in range(3):
        assert requests(load_workload(path, split="train")) == first
    assert len(reads) == 1 and sidecars[0].is_file()


#: Line 1 of a conversations .jsonl: a request log's exchange, a LiteLLM log record, a conversation (OpenAI's chat
#: format). Each with a prompt and a reply of at least 4 tokens (the paper's rules take them).
_ASKED = [{"role": "user", "content": "what is the weather like in the north today"}]
_REPLY = {"choices": [{"message": {"role": "assistant", "content": "cold and windy with some rain later on"}}]}
FIRST_LINES = {
    "request log": ({"request": {"messages": _ASKED}, "response": _REPLY}, "a request log's"),
    "litellm": ({"messages": _ASKED, "response": _REPLY, "request_id": "chatcmpl-1", "call_type": "acompletion"},
                "a LiteLLM log record"),
    "conversation": ({"messages": [*_ASKED, _REPLY["choices"][0]["message"]]}, "a conversation"),
}


@pytest.mark.parametrize("kind", list(FIRST_LINES))
@pytest.mark.parametrize("plain", [{"prompt": "a plain request line of some words", "output_tokens": 9},
                                   {"prompt_tokens": 12, "output_tokens": 9}])
def test_a_request_line_among_serving_log_records_is_refused_naming_its_line_and_both_formats(
        tmp_path, capsys, monkeypatch, kind, plain):
    """It was skipped with a warning ("skipped 1 of the 3 records, which are not conversations: 1 with no messages"):
    its request lost, where the converse (a log record after a request line) is refused."""
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    first, named = FIRST_LINES[kind]
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(first) + "\n" + json.dumps(first) + "\n\n" + json.dumps(plain) + "\n")
    for command in (("workloads", str(path)), ("simulate", "-w", str(path))):
        assert_one_line_error(run_cli_fast(capsys, *command), "mixed.jsonl:4: a request line", f"line 1 is {named}",
                              "one kind on every line")
    path.write_text(json.dumps(first) + "\n" + json.dumps(first) + "\n")  # (without it: read, a prompt once)
    assert load_workload(str(path)).df.height == 1
