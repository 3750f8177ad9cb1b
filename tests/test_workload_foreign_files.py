"""Workload files from other sources, checked as such a user would give them: a parquet of Decimal counts, a
.csv with old Mac line ends, errors that name the row, keys and speakers in another case. Each case was loaded
wrongly (or refused with a misleading message) before its fix."""

from __future__ import annotations

import dataclasses
import json

import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.workloads import load_workload
from cli_helpers import run_cli_fast


def one_line_error(r, message: str) -> None:
    """Exit code 2 and one stderr line, ``error: ...`` holding ``message``, no traceback."""
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr[-2000:]


def test_decimal_token_counts_are_not_truncated(tmp_path, capsys):
    """A parquet's Decimal column (a database export's NUMERIC(10,2)) was cast to Int64 by truncation: an output of
    3.50 tokens served 3, silently, and 0.50 was "< 1"; whole Decimal counts and ids load as the numbers they are."""
    path = tmp_path / "d.parquet"
    pl.DataFrame({"prompt_tokens": [5, 6], "output_tokens": pl.Series(["3.50", "7"]).cast(pl.Decimal(10, 2))}
                 ).write_parquet(path)
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path),
                   "column 'output_tokens' in row 1 is 3.5, not a token count")
    pl.DataFrame({"prompt_tokens": pl.Series(["5", "6"]).cast(pl.Decimal(10, 2)),
                  "output_tokens": pl.Series(["3.00", "7"]).cast(pl.Decimal(10, 2)),
                  "request_id": pl.Series(["4", "9"]).cast(pl.Decimal(12, 0))}).write_parquet(path)
    df = load_workload(str(path)).df
    assert df["prompt_tokens"].to_list() == [5, 6] and df["output_tokens"].to_list() == [3, 7]
    assert df["request_id"].to_list() == [4, 9]  # (refused: "request_id Decimal('4') is not a whole number")


def test_csv_with_lines_ended_by_cr_alone(tmp_path):
    """A .csv whose lines end with CR alone (an old Mac export) was one line to polars: the header's last name ran
    into the first row ("output_tokens\\r10") and the file was refused as "no requests (empty file)"."""
    path = tmp_path / "mac.csv"
    path.write_bytes(b"prompt_tokens,output_tokens,arrival_time\r10,5,0\r11,6,1.5\r\"12\",7,2\r")
    df = load_workload(str(path)).df
    assert df["prompt_tokens"].to_list() == [10, 11, 12] and df["output_tokens"].to_list() == [5, 6, 7]
    assert df["arrival_time"].to_list() == [0.0, 1.5, 2.0]


@pytest.mark.parametrize("name, text, message", [
    # a blank line and a failed BurstGPT request (left out) before the bad row: the file's row is named, not the table's
    ("burst.csv", "Timestamp,Request tokens,Response tokens\n0,5,0\n\n1,6,4\n2,7,4.5\n",
     "column 'Response tokens' in row 4 is 4.5, not a token count"),
    ("t.csv", "prompt_tokens,output_tokens,arrival_time\n5,5,0\n6,6,1\n7,7,-2\n",
     "column 'arrival_time' in row 3 is -2, not an arrival time"),
    ("t.csv", "prompt_tokens,output_tokens\n5,5\n6,\n",
     "column 'output_tokens' in row 2 is missing (null), not a token count"),
    ("t.csv", "prompt_tokens,output_tokens,po_estimate\n5,5,1\n6,6,-4\n",
     "column po_estimate has 1 negative or non-finite value(s) (first: -4.0) in row 2"),
    ("t.csv", "prompt_tokens,output_tokens\n5,5\n\n6,x\n",
     "column 'output_tokens' has non-numeric values (String, first: 'x') in row 3"),
    ("t.jsonl", '{"prompt": "a b", "output_tokens": 3, "arrival_time": 0}\n\n'
                '{"prompt": "c", "output_tokens": 2, "arrival_time": -1}\n',
     "key 'arrival_time' in line 3 is -1, not an arrival time"),
])
def test_value_errors_name_the_files_row(tmp_path, capsys, name, text, message):
    """A bad value in a large trace was named by its column alone ("1 request(s) with a negative or non-finite
    arrival_time", "1 missing value(s)", "first: request 41", a number the loader gave): which row? The file's row
    (a .csv's record after the header, a .jsonl's line) is named, blank lines and left-out rows counted. The one
    error line comes after the warnings of the file's reading (BurstGPT's failed requests left out), which say why
    rows are missing."""
    path = tmp_path / name
    path.write_text(text)
    r = run_cli_fast(capsys, "simulate", "-w", path)
    lines = r.stderr.strip().splitlines()
    one_line_error(dataclasses.replace(r, stderr=lines[-1]), message)
    assert [line.split(": ", 2)[2][:40] for line in lines[:-1]] == (
        ["1 of its 3 requests have 'Response token"] if name == "burst.csv" else []), r.stderr


def test_parquet_errors_name_the_row(tmp_path, capsys):
    path = tmp_path / "t.parquet"
    pl.DataFrame({"prompt_tokens": [5, 6, 0], "output_tokens": [3, 3, 3], "request_id": [7, 8, 9]}).write_parquet(path)
    with pytest.raises(UserError, match=r"column 'prompt_tokens' in row 3 is 0, not a token count \(a whole number in 1\.\.2\*\*53\)$"):
        load_workload(str(path))


@pytest.mark.parametrize("line, hint", [
    ({"Prompt": "Hello there", "Output_Tokens": 5},
     "its key(s) 'Prompt', 'Output_Tokens' are not read (keys match as written): write 'prompt', 'output_tokens'"),
    ({"input": "Hello there", "output": "Hi"}, "; it has 'input', 'output'"),  # (what does it hold? it said nothing)
    ({"prompt": "Hello there", "answer": "Hi"}, "; it has 'prompt', 'answer'"),  # ('completion' is read: below)
    ([1, 2, 3], "; the line is a list"),
])
def test_a_jsonl_line_that_is_no_request_says_what_it_holds(tmp_path, capsys, line, hint):
    """A .jsonl line in another tool's keys (another case, 'answer', 'input'/'output') was
    refused with "expected an object with string fields 'prompt' and 'generated'" alone: the line looked right."""
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(line) + "\n")
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path), "t.jsonl:1: expected an object with string fields")
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path), hint)


def test_a_json_cut_off_inside_its_first_record_says_so(tmp_path, capsys):
    """A ShareGPT download cut off inside its first conversation was "it holds no records"."""
    path = tmp_path / "cut.json"
    path.write_text('[{"id": "a", "conversations": [{"from": "human", "value": "Write a poem about the se')
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path),
                   "with a user turn and a reply: it ends inside its first record (cut off)")
    path.write_text('[{"id": "a", "conversations": []}, {"id": "b", "conversations": [{"from": "human", "va')
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path),
                   "1 empty conversations (first: record 1, id 'a'); it ends inside record 2 (cut off)")


def test_replay_of_equal_timestamps_says_they_are_equal(tmp_path, capsys):
    """A trace whose requests all arrive at 7 s was said to arrive "at t = 0 (no arrival times)"."""
    path = tmp_path / "eq.csv"
    path.write_text("arrival_time,prompt_tokens,output_tokens\n7,5,5\n7,6,6\n")
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path, "--arrival", "replay"),
                   "every request of eq arrives at the same time (t = 7 s in the file: no gaps between arrivals to "
                   "replay): use burst arrivals for that")


def test_prompts_csv_with_lines_ended_by_cr_alone(tmp_path):
    """`ltrsched label --prompts` of such a .csv said "no text column 'prompt' (have id, prompt1, hello there2)"."""
    from ltrsched.workloads.prompts import load_prompts

    path = tmp_path / "p.csv"
    path.write_bytes(b"id,prompt\r1,hello there\r2,how are you\r")
    assert load_prompts(path).rows() == [("1", "hello there"), ("2", "how are you")]


@pytest.mark.parametrize("key", [[[1], [2]], [{"a": 1}, {"a": 2}]])
def test_prompts_parquet_with_nested_keys_is_one_line(tmp_path, key):
    """A list or struct key column was polars' InvalidOperationError traceback ("cannot cast List type")."""
    from ltrsched.workloads.prompts import load_prompts

    path = tmp_path / "p.parquet"
    pl.DataFrame({"key": key, "prompt": ["hello there", "how are you"]}).write_parquet(path)
    with pytest.raises(UserError, match=r"p\.parquet: column 'key' holds (List|Struct).* values \(first: .*, row 1\); "
                                        r"a key is text or a whole number$"):
        load_prompts(path)


def test_csv_of_prompts_and_replies_counts_the_replies(tmp_path, capsys):
    """A .csv of prompt and reply text (another model's outputs) was refused, "no column for output_tokens", where
    a parquet's or a .jsonl's 'generated' (or 'response') text is counted; a reply of digits stays text."""
    from ltrsched.workloads.tokenizer import count_tokens

    path = tmp_path / "pairs.csv"
    path.write_text('Prompt,Response\nhello there,42\n"multi\nline prompt","a reply of, some words"\n')
    df = load_workload(str(path)).df
    assert df["output_tokens"].to_list() == count_tokens(["42", "a reply of, some words"]).tolist()
    assert df["prompt_tokens"].to_list() == count_tokens(["hello there", "multi\nline prompt"]).tolist()
    path.write_text("prompt,generated\nhello there,fine\nhi,\n")
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path),
                   "pairs.csv: row 2 has no 'generated' text to count output_tokens from")
    path.write_text("prompt,generated,output_tokens\nhello there,a b c d e,2\n")  # a count given is used as is
    assert load_workload(str(path)).df["output_tokens"].to_list() == [2]


def test_a_conversations_parquets_bad_value_names_its_record(tmp_path):
    """Its first turns are chosen and shuffled before the check: the file's row is named, with the record's id."""
    rows = [{"conversation_id": f"c{i}", "conversation": [
        {"role": "user", "content": f"Please explain topic number {i} in a few words"},
        {"role": "assistant", "content": f"Topic {i} is about many things indeed"}]} for i in range(3)]
    path = tmp_path / "conv.parquet"
    pl.DataFrame(rows).with_columns(arrival_time=pl.Series([0.0, -1.0, 2.0])).write_parquet(path)
    with pytest.raises(UserError, match=r"conv\.parquet: column 'arrival_time' in row 2 \(id 'c1'\) is -1, not an "
                                        r"arrival time \(a finite number of seconds >= 0, or a date-time\)$"):
        load_workload(str(path))


def test_repeated_prompts_of_a_prompts_file_are_counted_on_stderr(tmp_path, capsys):
    """`ltrsched label --prompts`: a prompt given twice is labelled once, which left 2 of these 4 lines out without
    a word."""
    from ltrsched.workloads.prompts import load_prompts

    path = tmp_path / "p.txt"
    path.write_text("What is a KV cache?\nExplain batching.\nWhat is a KV cache?\nExplain batching.\n")
    capsys.readouterr()
    assert load_prompts(path).rows() == [("line-1", "What is a KV cache?"), ("line-2", "Explain batching.")]
    assert capsys.readouterr().err == (f"warning: {path}: 2 of its 4 prompts repeat an earlier one (first: key "
                                       "'line-3', the prompt of key 'line-1'); each prompt is kept once, by its first "
                                       "key\n")
    path.write_text("What is a KV cache?\nExplain batching.\n")
    assert len(load_prompts(path)) == 2 and capsys.readouterr().err == ""


def test_openai_developer_messages_precede_the_first_turn_as_system_ones(tmp_path):
    """OpenAI's chat format names its system message 'developer' for its newer models: every such conversation was
    skipped "with unknown speakers" (a file of them refused). The run cache key marks such files: runs cached before
    had those conversations left out."""
    from ltrsched.workloads.loaders import workload_fingerprint

    chat = lambda i: {"messages": [  # noqa: E731
        {"role": "developer", "content": "Answer in one paragraph."},
        {"role": "user", "content": f"Please explain topic number {i} in a few words"},
        {"role": "assistant", "content": f"Topic {i} is about many things indeed"}]}
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(chat(i)) + "\n" for i in range(3)))
    df = load_workload(str(path)).df  # (the developer text precedes the user's: test_workload_sources4)
    assert sorted(df["prompt"].to_list()) == [f"Answer in one paragraph.\n\nPlease explain topic number {i} in a few "
                                              "words" for i in range(3)]
    assert workload_fingerprint(str(path))["turns"] == "developer"
    plain = tmp_path / "plain.csv"
    plain.write_text("prompt_tokens,output_tokens\n5,5\n")
    assert "turns" not in workload_fingerprint(str(plain))


def test_csv_of_token_ids_is_not_counted_as_text(tmp_path, capsys):
    """A tokenized data set written out as a .csv holds "[128000, 9906, 1917]" where the text was: its Llama-3 count
    as text (9 tokens for 3 ids) was served, silently. A column of ids throughout is refused; one such prompt among
    text is text, with a warning naming its row."""
    path = tmp_path / "ids.csv"
    path.write_text('prompt,output_tokens\n"[128000, 9906, 1917]",5\n"[1,2]",3\n')
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path),
                   "ids.csv: column 'prompt' holds token ids, not text (row 1: '[128000, 9906, 1917]'), whose token "
                   "count is not the ids'; give the counts in a prompt_tokens column")
    path.write_text('prompt,output_tokens\nsort this list,3\n"[128000, 9906, 1917]",5\nand this one,4\n')
    assert len(load_workload(str(path))) == 3
    # (it was counted without a word: a warning names the first such row, as the refusal of a column of them does)
    assert capsys.readouterr().err == (
        f"warning: {path}: 1 of the 3 values of column 'prompt' are lists of numbers, as token ids are written (row 2: "
        "'[128000, 9906, 1917]'); they are counted as text (not as ids): if they are token ids, give the counts in a "
        "prompt_tokens column\n")


def test_speakers_in_another_case_are_read(tmp_path, monkeypatch):
    """Exports other than FastChat's write the speakers 'Human', 'GPT', 'ChatGPT', 'User', 'Assistant', 'System':
    every such conversation was skipped "with unknown speakers" (a file of them refused). A parse cached before
    (under its old name) is not reused, and the run cache key marks such files."""
    from ltrsched.workloads.loaders import workload_fingerprint
    from ltrsched.workloads.sharegpt import cache_dir, records_key

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    pairs = [("Human", "GPT"), ("User", "Assistant"), ("HUMAN", "ChatGPT")]
    records = [{"id": f"c{i}", "conversations": [
        {"from": "System", "value": "Be brief."},
        {"from": who, "value": f"Please explain topic number {i} in a few words"},
        {"from": reply, "value": f"Topic {i} is about many things indeed"}]} for i, (who, reply) in enumerate(pairs)]
    path = tmp_path / "cased.json"
    path.write_text(json.dumps(records))
    stale = cache_dir() / f"sharegpt-{records_key(path)}-utf8-skips.parquet"  # (the name a parse cached before had)
    stale.parent.mkdir(parents=True)
    pl.DataFrame({"source_id": ["c0"], "prompt": ["x"], "response": ["y"], "prompt_tokens": [1],
                  "output_tokens": [1]}).write_parquet(stale)
    stale.with_name(stale.name + ".notes.json").write_text("[]")
    df = load_workload(str(path)).df  # (the system text precedes the user's: test_workload_sources4)
    assert sorted(df["prompt"].to_list()) == [f"Be brief.\n\nPlease explain topic number {i} in a few words"
                                              for i in range(3)]
    assert workload_fingerprint(str(path))["speakers"] == "any case"
    lower = tmp_path / "lower.json"
    lower.write_text(json.dumps(records).replace('"System"', '"system"').replace('"Human"', '"human"')
                     .replace('"GPT"', '"gpt"').replace('"User"', '"user"').replace('"Assistant"', '"assistant"')
                     .replace('"HUMAN"', '"human"').replace('"ChatGPT"', '"chatgpt"'))
    assert "speakers" not in workload_fingerprint(str(lower))
    path.write_text(json.dumps([{"id": "x", "conversations": [{"from": "Narrator", "value": "a"}]}]))
    with pytest.raises(UserError, match="the speaker 'Narrator' \\(in any case\\), none of human"):
        load_workload(str(path))


def test_openai_legacy_fine_tuning_completion_is_the_reply(tmp_path, capsys):
    """OpenAI's legacy fine-tuning .jsonl, {"prompt": ..., "completion": ...}, was refused ("expected an object with
    string fields 'prompt' and 'generated'"): its completion is the reply, counted with the tokenizer the
    'generated' text is, and a .csv's 'completion' column likewise; a line giving two of the names is an error."""
    from ltrsched.workloads.tokenizer import count_tokens

    replies = [" Paris is the capital of France.\n", " Forty-two, of course, as everyone knows."]
    path = tmp_path / "ft.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Question {i}:", "completion": r}) + "\n"
                            for i, r in enumerate(replies)))
    df = load_workload(str(path)).df.sort("request_id")
    assert df["output_tokens"].to_list() == list(count_tokens(replies))
    assert df["prompt_tokens"].to_list() == list(count_tokens(["Question 0:", "Question 1:"]))
    csv = tmp_path / "ft.csv"
    pl.DataFrame({"prompt": ["Question 0:", "Question 1:"], "Completion": replies}).write_csv(csv)
    assert load_workload(str(csv)).df.sort("request_id")["output_tokens"].to_list() == list(count_tokens(replies))
    path.write_text(json.dumps({"prompt": "a b c", "completion": "x y z", "response": "x y z"}) + "\n")
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path),
                   "ft.jsonl:1: 'response' and 'completion' both give the reply's text; give one")


def test_date_time_arrivals_read_alike_in_every_format(tmp_path, capsys):
    """Azure's TIMESTAMP date-times: a .csv read them as seconds since the earliest, a parquet refused them (text:
    "non-numeric") and a .jsonl did not read the key at all (every request at t = 0). One rule reads all three."""
    stamps = ["2023-11-16 18:15:46.6805900", "2023-11-16 18:15:50.9951690", "2023-11-16 18:16:01.0000000"]
    (tmp_path / "a.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                    + "".join(f"{t},{5 + i},{6 + i}\n" for i, t in enumerate(stamps)))
    pl.DataFrame({"TIMESTAMP": stamps, "ContextTokens": [5, 6, 7], "GeneratedTokens": [6, 7, 8]}).write_parquet(
        tmp_path / "a.parquet")
    lines = [{"TIMESTAMP": t, "prompt_tokens": 5 + i, "output_tokens": 6 + i} for i, t in enumerate(stamps)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    times = [load_workload(str(tmp_path / f"a.{s}")).df.sort("request_id")["arrival_time"].to_list()
             for s in ("csv", "parquet", "jsonl")]
    assert times[0] == pytest.approx([0.0, 4.314579, 14.31941]) and times[1] == times[0] and times[2] == times[0]
    (tmp_path / "b.jsonl").write_text(json.dumps({"timestamp": stamps[0], "prompt_tokens": 5, "output_tokens": 6})
                                      + "\n" + json.dumps({"timestamp": 3.5, "prompt_tokens": 5, "output_tokens": 6}))
    one_line_error(run_cli_fast(capsys, "simulate", "-w", tmp_path / "b.jsonl"),
                   "b.jsonl: key 'timestamp' in line 2 is a number where line 1 gives a date-time "
                   "('2023-11-16 18:15:46.6805900'); give every arrival time as a number (seconds) or every one as "
                   "a date-time")
    (tmp_path / "b.jsonl").write_text(json.dumps({"timestamp": stamps[0], "prompt_tokens": 5, "output_tokens": 6})
                                      + "\n" + json.dumps({"timestamp": "soon", "prompt_tokens": 5,
                                                           "output_tokens": 6}))
    one_line_error(run_cli_fast(capsys, "simulate", "-w", tmp_path / "b.jsonl"),
                   "b.jsonl: key 'timestamp' has non-numeric values (String, first: 'soon') in line 2; it must hold "
                   "numbers (seconds) or date-times")
    pl.DataFrame({"arrival_time": ["soon", "later"], "prompt_tokens": [5, 6], "output_tokens": [6, 7]}).write_parquet(
        tmp_path / "b.parquet")
    one_line_error(run_cli_fast(capsys, "simulate", "-w", tmp_path / "b.parquet"),
                   "b.parquet: column 'arrival_time' has non-numeric values (String, first: 'soon') in row 1; it must "
                   "hold numbers (seconds) or date-times")
    pl.DataFrame({"arrival_time": ["01/02/2023 23:59", "01/03/2023 00:01"], "prompt_tokens": [5, 6],
                  "output_tokens": [6, 7]}).write_parquet(tmp_path / "b.parquet")  # (the .csv's day/month rule)
    one_line_error(run_cli_fast(capsys, "simulate", "-w", tmp_path / "b.parquet"),
                   "column 'arrival_time': date-times such as '01/02/2023 23:59' read day first or month first")
