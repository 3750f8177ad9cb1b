"""Prompts and lengths from sources other than ShareGPT (``ltrsched simulate -w FILE``): Anthropic's Messages API
records, OpenAI chat-completions request logs, OpenAssistant's exports, request lines with a system prompt. Each is
read as the README says (the request count and the lengths checked), or refused in one line naming the file, the
record and what to write instead. Each case was read wrongly (silently) or refused without saying why before its
fix."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.workloads import load_workload
from ltrsched.workloads.loaders import workload_fingerprint
from ltrsched.workloads.tokenizer import count_tokens

PROMPTS = [f"Please write a short poem about the number {i} and the sea at night" for i in range(3)]
REPLIES = [f"The sea at night holds number {i} in its waves, silver and slow" for i in range(3)]
SYSTEM = "You are a poet who answers in rhyme, in four lines at most."


def lines(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def messages(i: int) -> list[dict]:
    return [{"role": "user", "content": PROMPTS[i]}, {"role": "assistant", "content": REPLIES[i]}]


def counts(path) -> list[tuple[int, int]]:
    """Each request's (prompt, output) tokens as loaded, in the order of :data:`PROMPTS`."""
    df = load_workload(str(path)).df.sort("prompt_tokens")
    return list(zip(df["prompt_tokens"].to_list(), df["output_tokens"].to_list()))


# A system prompt given as a record's 'system' key (Anthropic's Messages API: a string or a list of text blocks; a
# request log's beside its 'prompt'), read as a system message is: its text ahead of the user's, a blank line between,
# its tokens counted. It was dropped, silently: the prompt counted 15 tokens where the same request written with a
# system message counted 27.
SYSTEM_SHAPES = {
    "a system message": ("c.jsonl", lambda i: {"messages": [{"role": "system", "content": SYSTEM}, *messages(i)]}),
    "Anthropic's system string": ("c.jsonl", lambda i: {"system": SYSTEM, "messages": messages(i)}),
    "Anthropic's system blocks": ("c.json", lambda i: {"system": [{"type": "text", "text": SYSTEM}],
                                                       "messages": messages(i)}),
    "ShareGPT's with a system key": ("c.jsonl", lambda i: {"system": SYSTEM, "conversations": [
        {"from": "human", "value": PROMPTS[i]}, {"from": "gpt", "value": REPLIES[i]}]}),
    "a request line's system": ("r.jsonl", lambda i: {"system": SYSTEM, "prompt": PROMPTS[i],
                                                      "generated": REPLIES[i]}),
}


@pytest.mark.parametrize("shape", list(SYSTEM_SHAPES))
def test_a_system_key_is_counted_in_the_prompt_as_a_system_message_is(tmp_path, shape):
    name, record = SYSTEM_SHAPES[shape]
    path = tmp_path / name
    records = [record(i) for i in range(3)]
    path.write_text(json.dumps(records) if name.endswith(".json") else lines(records))
    expected = sorted(zip(count_tokens([f"{SYSTEM}\n\n{p}" for p in PROMPTS]).tolist(),
                          count_tokens(REPLIES).tolist()))
    assert counts(path) == expected
    assert expected[0][0] > count_tokens([PROMPTS[0]])[0] + 10  # (the system text counted)
    assert workload_fingerprint(str(path)).get("system key") == (None if shape == "a system message" else "counted")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_tables_system_column_is_counted_in_the_prompt_as_a_request_lines_system_is(capsys, tmp_path, kind):
    """A ``.csv``'s or flat parquet's ``System`` column (in any case, as a table's names) was dropped (a parquet's
    travelled along, not counted), where a prompts file's ``system`` column is read; a blank prompt beside system text
    stays an empty prompt, refused."""
    import polars as pl

    path = tmp_path / f"t.{kind}"
    table = pl.DataFrame({"Prompt": PROMPTS, "System": [SYSTEM, "", SYSTEM], "generated": REPLIES})
    table.write_csv(path) if kind == "csv" else table.write_parquet(path)
    texts = [f"{SYSTEM}\n\n{PROMPTS[0]}", PROMPTS[1], f"{SYSTEM}\n\n{PROMPTS[2]}"]
    assert counts(path) == sorted(zip(count_tokens(texts).tolist(), count_tokens(REPLIES).tolist()))
    assert workload_fingerprint(str(path))["system column"] == "counted"
    refused = []
    for empty in (table.with_columns(Prompt=pl.Series(["", PROMPTS[1], PROMPTS[2]])), table.drop("System")
                  .with_columns(Prompt=pl.Series(["", PROMPTS[1], PROMPTS[2]]))):  # (with system text, and without)
        empty.write_csv(path) if kind == "csv" else empty.write_parquet(path)
        r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
        assert_one_line_error(r, f"t.{kind}", "row 1")
        refused.append(r.stderr)
    assert refused[0] == refused[1]


def test_a_system_key_that_is_no_text_is_refused_in_one_line(capsys, tmp_path):
    line = tmp_path / "r.jsonl"
    line.write_text(lines({"system": 7, "prompt": PROMPTS[i], "generated": REPLIES[i]} for i in range(3)))
    r = run_cli_fast(capsys, "simulate", "-w", str(line), "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, "r.jsonl:1: 'system' must be text (a JSON string), got 7")
    conv = tmp_path / "c.jsonl"
    conv.write_text(lines({"system": [{"type": "image"}], "messages": messages(i)} for i in range(3)))
    r = run_cli_fast(capsys, "simulate", "-w", str(conv), "--no-progress", "-o", str(tmp_path / "run2"))
    assert_one_line_error(r, "c.jsonl: no complete conversation",
                          "3 with a 'system' that is not text (first: record 1: 'system' is a list, not text")


# A record's own token counts beside a conversation that goes on after its first reply: the first turn is the one read
# (the paper's rule), and the counts are another turn's (an OpenAI request log: usage's completion_tokens is the reply
# to the last user message) or the whole conversation's. They were used as the first turn's: the first reply served
# as 300 tokens, the last turn's reply's length (a warning said the counts differed from the text's, and used them).
@pytest.mark.parametrize("kind", ["json", "jsonl"])
@pytest.mark.parametrize("key, later", [("completion_tokens", [{"role": "user", "content": "And now one more?"}]),
                                        ("output_tokens", [{"role": "user", "content": "And now one more?"},
                                                           {"role": "assistant", "content": "One more it is."}]),
                                        ("prompt_tokens", [{"role": "user", "content": "And now one more?"}])])
def test_counts_beside_a_conversation_going_on_after_its_first_reply_are_refused(capsys, tmp_path, kind, key, later):
    records = [{"messages": [*messages(i), *later], key: 300} for i in range(3)]
    path = tmp_path / f"c.{kind}"
    path.write_text(json.dumps(records) if kind == "json" else lines(records))
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
    if kind == "jsonl" and key == "prompt_tokens":  # (a line with a prompt count is a request line, read by its counts:
        # a request logged with its usage, which needs its output's; it said "this line is a conversation and the
        # first line is not", of the first line)
        assert_one_line_error(r, "c.jsonl:1: expected an object", "its messages beside a prompt count are read as a "
                                 "request of lengths", "give its output length too")
        return
    assert_one_line_error(r, f"c.{kind}: record 1: {key!r} gives a length, but its conversation goes on after the "
                             f"first turn's reply ({len(later)} message(s) more)", "whose length is it?")


@pytest.mark.parametrize("column", ["output_tokens", "num_decode_tokens"])
def test_a_conversation_parquets_counts_beside_a_conversation_going_on_are_refused(capsys, tmp_path, column):
    """As a record's: an LMSYS-like parquet's own counts of a multi-turn conversation were used as its first turn's."""
    import polars as pl

    path = tmp_path / "c.parquet"
    conversations = [messages(0), [*messages(1), {"role": "user", "content": "And now one more?"}], messages(2)]
    pl.DataFrame({"conversation_id": ["a", "b", "c"], "conversation": conversations,
                  column: [300, 301, 302]}).write_parquet(path)
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, "c.parquet: row 2 (id 'b'): column 'output_tokens' gives a length, but its conversation "
                             "goes on after the first turn's reply (1 message(s) more)")
    assert workload_fingerprint(str(path))["conversation table counts"] == "first turn alone"


def test_counts_beside_a_first_turn_alone_are_still_read(tmp_path):
    """The counts of a record of one turn (or of a user turn alone, a request logged with its reply's length) are its
    first turn's: used, as before."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"messages": messages(0), "output_tokens": 300},
                                {"messages": [{"role": "system", "content": SYSTEM}, *messages(1)],
                                 "output_tokens": 301},
                                {"messages": messages(2)[:1], "completion_tokens": 302}]))
    assert sorted(load_workload(str(path)).df["output_tokens"].to_list()) == [300, 301, 302]


def _oasst_messages(i: int) -> list[dict]:
    return [{"message_id": f"p{i}", "parent_id": None, "role": "prompter", "text": PROMPTS[i], "lang": "en"},
            {"message_id": f"a{i}", "parent_id": f"p{i}", "role": "assistant", "text": REPLIES[i], "lang": "en"}]


def _oasst_tree(i: int) -> dict:
    return {"message_tree_id": f"p{i}", "prompt": {"message_id": f"p{i}", "role": "prompter", "text": PROMPTS[i],
                                                   "replies": [{"role": "assistant", "text": REPLIES[i]}]}}


# Records of other sources' shapes that are no requests as they are: refused in one line naming the format and what to
# write. OpenAssistant's messages got "'text', not read as it is: a whole dialogue in one text (a chat template's ...)",
# its trees "'prompt' must be text (a JSON string), got {...}" (a .json's "('prompt' text: a .jsonl format)"), a Batch
# API input line "it has 'custom_id', 'method', 'url', 'body'" alone. (A request log's {"request", "response"}, refused
# so too, is read since: tests/test_wl_usage.py.)
REFUSED_SHAPES = {
    "OpenAssistant's messages (.jsonl)": ("o.jsonl", [m for i in range(3) for m in _oasst_messages(i)],
                                          "OpenAssistant's messages, one per record in trees by 'parent_id'"),
    "OpenAssistant's messages (.json)": ("o.json", [m for i in range(3) for m in _oasst_messages(i)],
                                         "OpenAssistant's messages, one per record in trees by 'parent_id'"),
    "OpenAssistant's trees (.jsonl)": ("t.jsonl", [_oasst_tree(i) for i in range(3)],
                                       "'prompt' with 'replies': OpenAssistant's message trees"),
    "OpenAssistant's trees (.json)": ("t.json", [_oasst_tree(i) for i in range(3)],
                                      "'prompt' with 'replies': OpenAssistant's message trees"),
    "Dolly's (.json)": ("d.json", [{"instruction": PROMPTS[i], "context": "", "response": REPLIES[i],
                                    "category": "creative_writing"} for i in range(3)],
                        "('instruction': Alpaca's or Dolly's)"),  # (it said "Alpaca's format", of Dolly's)
    "a Batch API input line": ("b.jsonl", [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o", "messages": messages(i)[:1], "max_tokens": 100}} for i in range(3)],
        "an OpenAI Batch API input line, a request without its reply"),
}


@pytest.mark.parametrize("shape", list(REFUSED_SHAPES))
def test_another_sources_shape_is_refused_naming_it(capsys, tmp_path, shape):
    name, records, says = REFUSED_SHAPES[shape]
    path = tmp_path / name
    path.write_text(json.dumps(records) if name.endswith(".json") else lines(records))
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, name, says)


@pytest.mark.parametrize("record, says", [({"prompt": None, "generated": REPLIES[0]}, "its 'prompt' is null"),
                                          ({"prompt": PROMPTS[0], "response": None}, "its 'response' is null")])
def test_a_request_lines_null_text_is_named_in_its_error(capsys, tmp_path, record, says):
    """A line whose prompt (or reply) text is null said "expected an object with string fields 'prompt' and
    'generated' ...; it has 'prompt', 'generated'", of a line that has both."""
    path = tmp_path / "r.jsonl"
    path.write_text(lines([{"prompt": PROMPTS[1], "generated": REPLIES[1]}, record]))
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, "r.jsonl:2: expected an object with string fields 'prompt' and 'generated'", says)


# An empty user turn after a system prompt is an empty prompt, as it is without one (the paper's rule leaves it out; a
# request line's is refused): the system text alone was served as the prompt (a conversation's), or read as the prompt
# (a request line's 'system' beside an empty 'prompt').
def test_an_empty_user_turn_after_system_text_is_an_empty_prompt(capsys, tmp_path):
    conv = tmp_path / "c.jsonl"
    conv.write_text(lines({"messages": [{"role": "system", "content": SYSTEM},
                                        {"role": "user", "content": "" if i == 1 else PROMPTS[i]},
                                        {"role": "assistant", "content": REPLIES[i]}]} for i in range(3)))
    r = run_cli_fast(capsys, "simulate", "-w", str(conv), "--no-progress", "-o", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "1 of the 3 first turns are left out by the paper's selection rules: 1 with an empty prompt" in r.stderr
    assert len(load_workload(str(conv)).df) == 2
    line = tmp_path / "r.jsonl"
    line.write_text(lines({"system": SYSTEM, "prompt": "" if i == 1 else PROMPTS[i], "generated": REPLIES[i]}
                          for i in range(3)))
    r = run_cli_fast(capsys, "simulate", "-w", str(line), "--no-progress", "-o", str(tmp_path / "run2"))
    assert_one_line_error(r, "r.jsonl:2: 'prompt' has no tokens")


# A user turn alone with its reply's text under a request line's name ('response', 'completion', 'generated'), as a
# request log writes it: the reply is that text (its Llama-3 count the output length). It was refused, "the last
# message is the user's: give the assistant's reply", of records that give it; an OpenAI response's 'choices' beside
# the messages are named as not read.
@pytest.mark.parametrize("kind", ["json", "jsonl"])
@pytest.mark.parametrize("key", ["response", "completion", "generated"])
def test_a_user_turns_reply_text_under_a_request_lines_name_is_its_reply(tmp_path, kind, key):
    records = [{"model": "gpt-4o", "messages": messages(i)[:1], key: REPLIES[i]} for i in range(3)]
    path = tmp_path / f"c.{kind}"
    path.write_text(json.dumps(records) if kind == "json" else lines(records))
    assert counts(path) == sorted(zip(count_tokens(PROMPTS).tolist(), count_tokens(REPLIES).tolist()))
    assert workload_fingerprint(str(path))["conversation reply text"] == "read"


@pytest.mark.parametrize("extra, says", [
    ({"choices": [{"message": {"role": "assistant", "content": "A reply."}}]},
     "its 'choices' (an OpenAI response's) are not read: give the assistant's reply"),
    ({"response": "A reply.", "completion": "Another."}, "'response' and 'completion' both give the reply's text")])
def test_a_user_turn_whose_reply_is_not_read_says_why(capsys, tmp_path, extra, says):
    path = tmp_path / "c.jsonl"
    path.write_text(lines({"messages": messages(i)[:1], **extra} for i in range(3)))
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--no-progress", "-o", str(tmp_path / "run"))
    assert_one_line_error(r, "c.jsonl: no complete conversation", "3 requests without the assistant's reply", says)


def test_anthropic_content_blocks_are_read_as_text_and_thinking_left_out(capsys, tmp_path):
    """Anthropic's messages of content blocks: text blocks are the text (as OpenAI's parts); a reply with a
    ``thinking`` block (generated tokens not in its text) leaves the conversation out, counted in the warning."""
    blocks = lambda text: [{"type": "text", "text": text}]  # noqa: E731
    records = [{"messages": [{"role": "user", "content": blocks(PROMPTS[i])},
                             {"role": "assistant", "content": ([{"type": "thinking", "thinking": "Hmm."}] if i == 2
                                                               else []) + blocks(REPLIES[i])}]} for i in range(3)]
    path = tmp_path / "a.jsonl"
    path.write_text(lines(records))
    assert counts(path) == sorted(zip(count_tokens(PROMPTS[:2]).tolist(), count_tokens(REPLIES[:2]).tolist()))
    assert "1 first turns with a part that is not text (an image, a tool call) (first: record 3: message 2 has a part of type " \
           "'thinking')" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_a_conversations_openai_usage_is_read(capsys, tmp_path, kind):
    """A conversation record with an OpenAI response's ``usage`` is read by its counts (the served model's), as its
    own keys are; they were not read (the text's counts used, a warning saying so)."""
    records = [{"messages": messages(i), "usage": {"prompt_tokens": 40 + i, "completion_tokens": 50}} for i in range(3)]
    path = tmp_path / f"c.{kind}"
    path.write_text(json.dumps(records) if kind == "json" else lines(records))
    assert counts(path) == [(40, 50), (41, 50), (42, 50)]
    assert "are not read" not in capsys.readouterr().err


# OpenAssistant's role of the person's messages, "prompter" (oasst1/oasst2, beside "assistant"), is a user speaker name,
# as ShareGPT's "human" is: a conversation of them is read as the same one with "user" messages. They were skipped,
# "with unknown speakers" (a file of them refused: "message 1 has the speaker 'prompter' (in any case), none of ...").
@pytest.mark.parametrize("kind", ["json", "jsonl", "parquet"])
def test_openassistants_prompter_is_the_user(tmp_path, kind):
    import polars as pl

    records = [{"id": f"o{i}", "messages": [{"role": "Prompter" if i == 2 else "prompter", "content": PROMPTS[i]},
                                            messages(i)[1]]} for i in range(3)]
    path = tmp_path / f"o.{kind}"
    if kind == "parquet":
        pl.DataFrame(records).write_parquet(path)
    else:
        path.write_text(json.dumps(records) if kind == "json" else lines(records))
    assert counts(path) == sorted(zip(count_tokens(PROMPTS).tolist(), count_tokens(REPLIES).tolist()))
    assert workload_fingerprint(str(path))["speakers prompter"] == "the user"


def test_a_parse_cached_before_prompter_was_read_is_not_reused(tmp_path, monkeypatch):
    """A file of one conversation of OpenAssistant's and one of OpenAI's: a parse cached before had the second alone."""
    from ltrsched.workloads.sharegpt import load_sharegpt_records

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "o.jsonl"
    path.write_text(lines([{"messages": [{"role": "prompter", "content": PROMPTS[0]}, messages(0)[1]]},
                           {"messages": messages(1)}]))
    monkeypatch.setattr("ltrsched.workloads.sharegpt._USER", ("human", "user"))  # (the rule before, and the cache
    monkeypatch.setattr("ltrsched.workloads.sharegpt.may_give_prompter", lambda path: False)  # name it had)
    assert len(load_sharegpt_records(path, notes=[])) == 1
    monkeypatch.undo()
    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    assert len(load_sharegpt_records(path, notes=[])) == 2
