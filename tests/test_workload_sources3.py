"""Workload files from other public sources, each given to ``ltrsched simulate --workload FILE`` as its user would:
conversation files' arrival times (LMSYS's ``timestamp``), tables with two reply-text columns, and formats that are
no request table (Alpaca, Dolly, Anthropic HH, UltraChat, OpenAI tool calls). Each case was loaded wrongly, or
refused with a misleading message, before its fix."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from ltrsched.workloads import load_workload
from ltrsched.workloads.loaders import workload_fingerprint
from ltrsched.workloads.tokenizer import count_tokens
from cli_helpers import run_cli_fast

PROMPTS = [f"Please explain topic number {i} in a few words" for i in range(3)]
REPLIES = [f"Topic {i} is about many things indeed" for i in range(3)]


def one_line_error(r, message: str) -> None:
    """Exit code 2 and one stderr line, ``error: ...`` holding ``message``, no traceback."""
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr[-2000:]


def chat(i: int, **extra) -> dict:
    """OpenAI's chat format: conversation ``i`` of :data:`PROMPTS` and :data:`REPLIES`, with ``extra`` keys."""
    return {"messages": [{"role": "user", "content": PROMPTS[i]}, {"role": "assistant", "content": REPLIES[i]}],
            **extra}


def sharegpt(i: int, **extra) -> dict:
    return {"id": f"s{i}", "conversations": [{"from": "human", "value": PROMPTS[i]},
                                             {"from": "gpt", "value": REPLIES[i]}], **extra}


def lines(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def replayed(capsys, tmp_path, path) -> dict[str, float]:
    """``simulate --arrival replay`` of ``path``: each prompt's arrival time [s] as served."""
    r = run_cli_fast(capsys, "simulate", "-w", path, "--arrival", "replay", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr[-2000:]
    df = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    served = load_workload(str(path)).df.join(df.select("request_id", "arrival_time"), on="request_id", suffix="_run")
    assert served["prompt_tokens"].to_list() == count_tokens(served["prompt"].to_list()).tolist()
    return dict(zip(served["prompt"], served["arrival_time_run"]))


def lmsys_rows(**columns) -> pl.DataFrame:
    """LMSYS-Chat-1M's parquet (conversation_id, model, conversation, turn, language), with ``columns``."""
    return pl.DataFrame({"conversation_id": [f"c{i}" for i in range(3)], "model": ["vicuna-13b"] * 3,
                         "conversation": [[{"role": "user", "content": PROMPTS[i]},
                                           {"role": "assistant", "content": REPLIES[i]}] for i in range(3)],
                         "turn": [1] * 3, "language": ["English"] * 3, **columns})


@pytest.mark.parametrize("name, write", [
    ("lmsys.parquet", lambda p: lmsys_rows(timestamp=[1000.0, 1005.0, 1010.0]).write_parquet(p)),
    ("lmsys-dates.parquet", lambda p: lmsys_rows(timestamp=pl.Series(
        ["2023-04-01 10:00:00", "2023-04-01 10:00:05", "2023-04-01 10:00:10"]).str.to_datetime()).write_parquet(p)),
    ("chat.jsonl", lambda p: p.write_text(lines(chat(i, timestamp=1000 + 5 * i) for i in range(3)))),
    ("sharegpt.jsonl", lambda p: p.write_text(lines(sharegpt(i, arrived_at_ms=5000 * i) for i in range(3)))),
    ("sharegpt.json", lambda p: p.write_text(json.dumps([sharegpt(i, Timestamp=f"2023-04-01 10:00:{5 * i:02}")
                                                          for i in range(3)]))),
])
def test_conversation_files_read_arrival_times(tmp_path, capsys, name, write):
    """A conversation file's arrival times (LMSYS's ``timestamp`` column, a record's ``timestamp`` key) were dropped:
    every request arrived at t = 0 (replay refused the file, "no arrival times"). They are read by the rule of the
    flat formats: the same names, units by suffix, date-times as seconds since the earliest."""
    path = tmp_path / name
    write(path)
    times = replayed(capsys, tmp_path, path)
    assert times == {PROMPTS[0]: 0.0, PROMPTS[1]: 5.0, PROMPTS[2]: 10.0}
    assert workload_fingerprint(str(path))["conversation arrivals"] == "read, null refused"  # (runs cached before had
    # t = 0, or a null time read as none given)


def test_conversation_files_without_new_arrival_times_keep_their_cache_keys(tmp_path):
    """Files whose parse is unchanged keep their run cache keys: no arrival key, or a parquet's own arrival_time
    column (read before)."""
    plain = tmp_path / "plain.jsonl"
    plain.write_text(lines(chat(i) for i in range(3)))
    ours = tmp_path / "ours.parquet"
    lmsys_rows(arrival_time=[0.0, 1.0, 2.0]).write_parquet(ours)
    flat = tmp_path / "flat.jsonl"
    flat.write_text(lines({"prompt": PROMPTS[i], "generated": REPLIES[i], "arrival_time": i} for i in range(3)))
    for path in (plain, ours, flat):
        assert "conversation arrivals" not in workload_fingerprint(str(path))
    assert load_workload(str(ours)).df.sort("arrival_time")["arrival_time"].to_list() == [0.0, 1.0, 2.0]


def test_a_parse_cached_before_the_arrival_times_is_not_reused(tmp_path, monkeypatch):
    """The first turns of a conversations file are cached; one cached before arrival times were read has none."""
    from ltrsched.workloads.sharegpt import cache_dir, records_key

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "chat.jsonl"
    path.write_text(lines(chat(i, timestamp=5 * i) for i in range(3)))
    stale = cache_dir() / f"sharegpt-{records_key(path)}-utf8-skips-case.parquet"  # (the name it had)
    stale.parent.mkdir(parents=True)
    pl.DataFrame({"source_id": [""] * 3, "prompt": PROMPTS, "response": REPLIES, "prompt_tokens": [10] * 3,
                  "output_tokens": [8] * 3}).write_parquet(stale)
    stale.with_name(stale.name + ".notes.json").write_text("[]")
    assert sorted(load_workload(str(path)).df["arrival_time"].to_list()) == [0.0, 5.0, 10.0]


@pytest.mark.parametrize("records, message", [
    ([chat(0, timestamp=0), chat(1), chat(2, timestamp=2)],
     "c.jsonl: record 2: no 'timestamp', which other records have; give it on every record or none"),
    ([chat(0, timestamp=0), chat(1, arrival_time=1), chat(2, timestamp=2)],
     "c.jsonl: record 2: its arrival time is 'arrival_time', where others give 'timestamp'"),
    ([chat(0, timestamp=0), chat(1, timestamp="2023-04-01 10:00:00")],
     "c.jsonl: key 'timestamp' in record 2 is a date-time ('2023-04-01 10:00:00') where record 1 gives a number; give "
     "every arrival time as a number (seconds) or every one as a date-time"),
    ([chat(0, timestamp=True)], "c.jsonl: key 'timestamp' in record 1 is True, not an arrival time"),
    ([chat(0, timestamp=10**400)], "c.jsonl: record 1: 'timestamp' is too large to be an arrival time (401 digits)"),
    ([chat(0, timestamp=0, arrived_at=1)], "c.jsonl: record 1: 'timestamp' and 'arrived_at' both give the arrival"),
    ([sharegpt(0, timestamp="soon"), sharegpt(1, timestamp="later")],
     "c.jsonl: key 'timestamp' has non-numeric values (String, first: 'soon') in record 1 (id 's0'); it must hold "
     "numbers (seconds) or date-times"),
    ([sharegpt(0, timestamp=-3), sharegpt(1, timestamp=2)],
     "c.jsonl: key 'timestamp' in record 1 (id 's0') is -3, not an arrival time"),
])
def test_bad_conversation_arrival_times_are_one_line(tmp_path, capsys, records, message):
    path = tmp_path / "c.jsonl"
    path.write_text(lines(records))
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path), message)


@pytest.mark.parametrize("name, write, message", [
    ("two.parquet", lambda p: pl.DataFrame({"prompt": PROMPTS, "response": REPLIES, "completion": ["a b c d"] * 3})
     .write_parquet(p), "two.parquet: columns 'response' and 'completion' both may give the reply's text, from which "
                        "output_tokens is counted; which does? keep one (drop or rename the other), or give "
                        "output_tokens"),
    ("two.parquet", lambda p: pl.DataFrame({"prompt": PROMPTS, "Output": REPLIES, "generated": ["a b c d"] * 3})
     .write_parquet(p), "two.parquet: columns 'Output' and 'generated' both may give the reply's text"),
    ("two.csv", lambda p: p.write_text("prompt,output,response\n" + "".join(
        f"{PROMPTS[i]},{REPLIES[i]},a b c d\n" for i in range(3))),
     "two.csv: columns 'output' and 'response' both may give the reply's text"),
    ("two.jsonl", lambda p: p.write_text(lines({"prompt": PROMPTS[i], "output": REPLIES[i], "response": "a b c d"}
                                               for i in range(3))),
     "two.jsonl:1: keys 'output' and 'response' both may give the reply's text"),
])
def test_two_reply_text_columns_are_refused(tmp_path, capsys, name, write, message):
    """A table with two columns of reply text (``response`` and ``completion``; Alpaca's ``output`` beside
    ``response``) had the first of our names counted, silently (a parquet's 'response', a .csv's and a .jsonl's
    'response' beside an unread 'output'): which is the reply? A count column given decides it."""
    path = tmp_path / name
    write(path)
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path), message)
    if name.endswith(".parquet"):  # (the count given is used: the texts are not read)
        pl.read_parquet(path).with_columns(output_tokens=pl.lit(6)).write_parquet(path)
        assert load_workload(str(path)).df["output_tokens"].to_list() == [6] * 3


ALPACA = [{"instruction": PROMPTS[i], "input": "", "output": REPLIES[i]} for i in range(3)]
DOLLY = [{"instruction": PROMPTS[i], "context": "", "response": REPLIES[i], "category": "open_qa"} for i in range(3)]
HH = [{"chosen": f"\n\nHuman: {PROMPTS[i]}\n\nAssistant: {REPLIES[i]}", "rejected": f"\n\nHuman: {PROMPTS[i]}"
                                                                                   "\n\nAssistant: No."}
      for i in range(3)]
ULTRACHAT = [{"id": str(i), "data": [PROMPTS[i], REPLIES[i], "And another?", "Yes, another."]} for i in range(3)]
INSTRUCTION = "it has 'instruction' text: Alpaca's or Dolly's format, not read as it is; join each record's"
PREFERENCE = "it has 'chosen' text: a preference data set's format (Anthropic HH's"
TURNS = "it has 'data', a list of turns as plain strings: UltraChat's format, not read as it is"


@pytest.mark.parametrize("name, write, message", [
    ("alpaca.parquet", lambda p: pl.DataFrame(ALPACA).write_parquet(p),
     f"alpaca.parquet: missing column(s) prompt_tokens, output_tokens; have instruction, input, output; {INSTRUCTION}"),
    ("alpaca.csv", lambda p: pl.DataFrame(ALPACA).write_csv(p), f"have instruction, input, output; {INSTRUCTION}"),
    ("dolly.parquet", lambda p: pl.DataFrame(DOLLY).write_parquet(p),
     f"have instruction, context, response, category; {INSTRUCTION}"),
    # (the line's own keys: its 'response' was named 'generated', the name it is read by)
    ("dolly.jsonl", lambda p: p.write_text(lines(DOLLY)),
     f"{INSTRUCTION} instruction and input (or context) into a 'prompt', its reply into 'generated' (or 'response'), "
     "one object per line of a .jsonl; it has 'instruction', 'context', 'response', 'category'"),
    ("hh.jsonl", lambda p: p.write_text(lines(HH)), f"hh.jsonl:1: expected an object with string fields 'prompt' and "
     f"'generated' (or, instead of a text, its length: 'prompt_tokens', 'output_tokens'; Mooncake's 'input_length', "
     f"'output_length'); {PREFERENCE} \"\\n\\nHuman: ...\\n\\nAssistant: ...\" dialogues), not read as it is; write "
     "each dialogue's first Human turn as a 'prompt' and the Assistant's reply to it as 'generated'"),
    ("hh.parquet", lambda p: pl.DataFrame(HH).write_parquet(p), f"have chosen, rejected; {PREFERENCE}"),
    ("hh.json", lambda p: p.write_text(json.dumps(HH)), "3 with no messages (first: record 1: no 'conversations', "
     "'items', 'conversation' or 'messages' list ('chosen': Anthropic HH's format))"),
    ("dpo.jsonl", lambda p: p.write_text(lines({"prompt": PROMPTS[i], "chosen": REPLIES[i], "rejected": "No."}
                                               for i in range(3))),
     "dpo.jsonl:1: expected an object with string fields 'prompt' and 'generated' (or, instead of a text, its length: "
     "'prompt_tokens', 'output_tokens'; Mooncake's 'input_length', 'output_length'); it has 'chosen' and 'rejected' "
     "replies: a preference data set's format (DPO's), whose replies are not read as the one served; name the reply "
     "to serve 'generated' (or give output_tokens); it has 'prompt', 'chosen', 'rejected'"),
    ("dpo.parquet", lambda p: pl.DataFrame({"prompt": PROMPTS, "chosen": REPLIES, "rejected": ["No."] * 3})
     .write_parquet(p), "have prompt, chosen, rejected; it has 'chosen' and 'rejected' replies"),
    ("ultrachat.jsonl", lambda p: p.write_text(lines(ULTRACHAT)), f"{TURNS} (no speakers); write each record's turns "
     "as OpenAI chat messages ({\"messages\": [{\"role\": \"user\", \"content\": data[0]}, {\"role\": \"assistant\", "
     "\"content\": data[1]}]}, one per line of a .jsonl); it has 'id', 'data'"),
    ("ultrachat.parquet", lambda p: pl.DataFrame(ULTRACHAT).write_parquet(p), f"have id, data; {TURNS}"),
    ("ultrachat.json", lambda p: p.write_text(json.dumps(ULTRACHAT)), "('data': UltraChat's format))"),
])
def test_instruction_preference_and_turn_list_files_are_named(tmp_path, capsys, name, write, message):
    """Alpaca's, Dolly's, Anthropic HH's and UltraChat's files are no request table nor conversations with speakers:
    each was refused for a missing column or key ("missing column(s) prompt_tokens, output_tokens; have chosen,
    rejected"), with no word of what the file is or how to write it (a Dolly line named its 'response' 'generated').
    Each is refused in one line naming the file, the format and what is read instead."""
    path = tmp_path / name
    write(path)
    one_line_error(run_cli_fast(capsys, "simulate", "-w", path), message)


def served_lengths(capsys, tmp_path, path) -> tuple[list[int], list[int], str]:
    """``simulate`` of ``path``: the prompt and output lengths [tokens] it served (sorted), and its stderr."""
    r = run_cli_fast(capsys, "simulate", "-w", path, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr[-2000:]
    df = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    return sorted(df["prompt_tokens"].to_list()), sorted(df["output_tokens"].to_list()), r.stderr


def test_openai_messages_load_with_their_texts_lengths(tmp_path, capsys):
    """OpenAI's chat messages as its files hold them: content as a list of text parts (joined by newlines, as vLLM's
    server joins them), a user's ``name``, a system message ahead; a conversation with an image part is left out
    and counted (its prompt's tokens are not its text's), not served with its text's length."""
    records = [
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "name": "bob", "content": PROMPTS[0]},
                      {"role": "assistant", "content": REPLIES[0]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": PROMPTS[1]},
                                                   {"type": "text", "text": "In French."}]},
                      {"role": "assistant", "content": [{"type": "text", "text": REPLIES[1]}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": PROMPTS[2]},
                                                   {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]},
                      {"role": "assistant", "content": REPLIES[2]}]},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text(lines(records))
    prompts, outputs, err = served_lengths(capsys, tmp_path, path)
    assert prompts == sorted(count_tokens(["Be brief.\n\n" + PROMPTS[0], PROMPTS[1] + "\nIn French."]).tolist())
    assert outputs == sorted(count_tokens(REPLIES[:2]).tolist())
    assert "left out 1 of the 3 records" in err and "1 first turns with a part that is not text (an image, a tool call)" in err


def test_tool_call_replies_are_left_out_and_counted_as_such(tmp_path, capsys):
    """An assistant's first reply that calls a tool (``tool_calls``) or function (``function_call``) has content
    null (or text beside the call): such conversations were "skipped ... which are not conversations: with first
    turns that are not text", or served with the text's length beside the call's. They are conversations whose
    reply is the call, whose tokens are the model's own format of it: left out, counted as such."""
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}
    records = [
        chat(0),
        {"messages": [{"role": "user", "content": PROMPTS[1]}, call,
                      {"role": "tool", "tool_call_id": "t1", "content": "20 C"},
                      {"role": "assistant", "content": REPLIES[1]}]},
        {"messages": [{"role": "user", "content": PROMPTS[2]}, dict(call, content="Let me look that up for you.")]},
        {"messages": [{"role": "user", "content": "What is the weather like there today?"},
                      {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": "{}"}},
                      {"role": "function", "name": "weather", "content": "20 C"},
                      {"role": "assistant", "content": "It is 20 C and sunny there today."}]},
    ]
    path = tmp_path / "tools.jsonl"
    path.write_text(lines(records))
    prompts, outputs, err = served_lengths(capsys, tmp_path, path)
    assert (prompts, outputs) == (count_tokens(PROMPTS[:1]).tolist(), count_tokens(REPLIES[:1]).tolist())
    assert ("left out 3 of the 4 records, conversations without a first turn the paper's rule takes (a user turn "
            "answered by the assistant, opening the conversation): 3 first replies that are tool or function calls, "
            "not text (first: record 2: message 2 has 'tool_calls'") in err
    assert "not conversations" not in err


def test_sharegpt_null_values_empty_and_system_only_conversations_are_counted(tmp_path, capsys):
    """A ShareGPT export's null ``value``, an empty conversation and one of a system message alone give no first
    turn: each is counted in a warning by what it is (a system-only conversation was counted as an empty one)."""
    records = [sharegpt(0), sharegpt(1),
               {"id": "n", "conversations": [{"from": "human", "value": None}, {"from": "gpt", "value": REPLIES[2]}]},
               {"id": "e", "conversations": []},
               {"id": "s", "conversations": [{"from": "system", "value": "You are a helpful assistant."}]}]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(records))
    prompts, outputs, err = served_lengths(capsys, tmp_path, path)
    assert prompts == sorted(count_tokens(PROMPTS[:2]).tolist())
    assert outputs == sorted(count_tokens(REPLIES[:2]).tolist())
    assert ("skipped 1 of the 5 records, which are not conversations: 1 with first turns that are not text (first: "
            "record 3, id 'n': message 1 has no text ('value' or 'content'))") in err
    assert ("left out 2 of the 5 records, conversations without a first turn the paper's rule takes (a user turn "
            "answered by the assistant, opening the conversation): 1 empty conversations (first: record 4, id 'e'); "
            "1 conversations of system messages alone (first: record 5, id 's')") in err


@pytest.mark.parametrize("records, message", [(HH, PREFERENCE), (ULTRACHAT, TURNS)])
def test_prompts_files_of_those_formats_are_named_too(tmp_path, records, message):
    """`ltrsched label --prompts` of such a file said "expected an object with a string field 'prompt'" alone."""
    from ltrsched.errors import UserError
    from ltrsched.workloads.prompts import load_prompts

    path = tmp_path / "p.jsonl"
    path.write_text(lines(records))
    expected = f"p.jsonl:1: expected an object with a string field 'prompt'; {message}"
    with pytest.raises(UserError, match=re.escape(expected)):
        load_prompts(path)
