"""Serving logs with the served model's own token counts (OpenAI ``usage``), read as the README says
(:mod:`ltrsched.workloads.openai_usage`): a request log's ``{"request", "response"}`` (refused before, naming the
format), a conversation record's ``usage`` (a warning said it was not read) and a Batch API output line (refused with
a jq recipe). The given counts win over the text's Llama-3 count, as a record's own keys do. Tiny files of each."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.workloads import load_workload
from ltrsched.workloads.tokenizer import count_tokens

SYSTEM = "You answer in one short sentence."
PROMPTS = [f"What is the name of the city number {i} on the list?" for i in range(3)]
REPLIES = [f"City number {i} is called Springfield, I believe." for i in range(3)]


def lines(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def write(path, records) -> str:
    path.write_text(json.dumps(records) if path.suffix == ".json" else lines(records))
    return str(path)


def exchange(i: int, usage: dict | None = None, **extra) -> dict:
    """A proxy's log record of a chat-completions call (a system and a user message; the reply and its usage)."""
    response = {"id": f"chatcmpl-{i}", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLIES[i]},
                             "finish_reason": "stop"}]}
    if usage is not False:
        response["usage"] = usage or {"prompt_tokens": 30 + i, "completion_tokens": 9 + i, "total_tokens": 39 + 2 * i}
    return {"request": {"model": "m", "messages": [{"role": "system", "content": SYSTEM},
                                                   {"role": "user", "content": PROMPTS[i]}]},
            "response": response, **extra}


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_request_log_is_read_by_its_usage(tmp_path, capsys, suffix):
    path = write(tmp_path / f"log{suffix}", [exchange(i, timestamp=float(i)) for i in range(3)])
    df = load_workload(path).df.sort("arrival_time")
    assert df["prompt_tokens"].to_list() == [30, 31, 32]  # usage's, not the text's Llama-3 counts
    assert df["output_tokens"].to_list() == [9, 10, 11]
    assert df["prompt"].to_list() == [f"{SYSTEM}\n\n{p}" for p in PROMPTS]  # the system message included
    assert df["arrival_time"].to_list() == [0.0, 1.0, 2.0]  # the log record's own keys read
    assert "differ from the Llama-3 count of their text" in capsys.readouterr().err  # (the given counts' rule)


def test_a_request_log_without_usage_counts_its_reply_text(tmp_path):
    path = write(tmp_path / "log.jsonl", [exchange(i, usage=False) for i in range(3)])
    df = load_workload(path).df.sort("prompt")
    assert df["output_tokens"].to_list() == count_tokens(REPLIES).tolist()
    assert df["prompt_tokens"].to_list() == count_tokens([f"{SYSTEM}\n\n{p}" for p in PROMPTS]).tolist()


def test_a_request_logs_failed_response_is_left_out_with_a_note(tmp_path, capsys):
    failed = {"request": exchange(2)["request"], "response": {"error": {"code": "rate_limit_exceeded"}}}
    path = write(tmp_path / "log.jsonl", [exchange(0), exchange(1), failed])
    assert len(load_workload(path)) == 2
    assert "1 logged requests whose response failed (first: record 3: its 'response' has an 'error')" \
        in capsys.readouterr().err


@pytest.mark.parametrize("record, says", [
    ({**exchange(0), "completion_tokens": 5}, "record 1: 'response.usage.completion_tokens' and 'completion_tokens' "
                                              "both give the output_tokens; which does? give one"),
    (exchange(0, usage={"prompt_tokens": 30, "completion_tokens": 0}),
     "key 'response.usage.completion_tokens' in record 1 is 0, not a token count"),
    ({**exchange(0), "response": {**exchange(0)["response"], "choices": exchange(0)["response"]["choices"] * 2}},
     "record 1: 'response.choices' holds 2 replies (n > 1), and its usage counts them all"),
])
def test_a_request_logs_bad_counts_are_refused_in_one_line(tmp_path, capsys, record, says):
    path = write(tmp_path / "log.jsonl", [record])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), "log.jsonl: ", says)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_conversation_records_usage_and_its_own_count_are_refused(tmp_path, capsys, suffix):
    messages = [{"role": "user", "content": PROMPTS[0]}, {"role": "assistant", "content": REPLIES[0]}]
    path = write(tmp_path / f"c{suffix}", [{"messages": messages, "output_tokens": 7,
                                            "usage": {"prompt_tokens": 20, "completion_tokens": 8}}])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), f"c{suffix}: record 1: ",
                          "'usage.completion_tokens' and 'output_tokens' both give the output_tokens")


def test_a_request_lines_usage_is_read_as_its_counts(tmp_path):
    path = write(tmp_path / "r.jsonl", [{"prompt": PROMPTS[0], "generated": REPLIES[0],
                                         "usage": {"prompt_tokens": 21, "completion_tokens": 8}}])
    df = load_workload(path).df
    assert (df["prompt_tokens"].to_list(), df["output_tokens"].to_list()) == ([21], [8])  # (ignored before)


def batch_line(i: int, status: int = 200, error=None) -> dict:
    body = {"id": f"chatcmpl-{i}", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLIES[i % 3]}}],
            "usage": {"prompt_tokens": 20 + i, "completion_tokens": 100 + i, "total_tokens": 120 + 2 * i}}
    return {"id": f"batch_req_{i}", "custom_id": f"request-{i}", "error": error,
            "response": None if error else {"status_code": status, "request_id": f"r{i}",
                                            "body": body if status == 200 else {"error": {"message": "no"}}}}


def test_a_batch_output_file_is_a_trace_of_lengths(tmp_path, capsys):
    path = write(tmp_path / "out.jsonl", [batch_line(0), batch_line(1, status=429), batch_line(2),
                                          batch_line(3, error={"code": "batch_expired", "message": "expired"})])
    w = load_workload(path)
    assert (w.df["prompt_tokens"].to_list(), w.df["output_tokens"].to_list()) == ([20, 22], [100, 102])
    assert not w.has_text
    assert ("out.jsonl: 2 of its 4 requests failed (OpenAI Batch API output lines with an 'error' or a status_code "
            "other than 200; first: line 2, status_code 429); they are left out") in capsys.readouterr().err
    r = run_cli_fast(capsys, "simulate", "-w", path, "--no-progress", "-o", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert_one_line_error(run_cli_fast(capsys, "train", "--data", path, "--eval-data", path, "-o",
                                       str(tmp_path / "m")), "has no prompt text (a trace of lengths only)")


def test_a_batch_output_lines_status_code_as_text_is_read(tmp_path):
    """A log rewritten by another tool may hold ``"status_code": "200"``: it counted as a failed request (and a file of
    them was refused as "every request failed"); "429" as text still fails."""
    lines = [batch_line(0), batch_line(1), batch_line(2, status=429)]
    lines[0]["response"]["status_code"] = "200"
    lines[2]["response"]["status_code"] = "429"
    w = load_workload(write(tmp_path / "out.jsonl", lines))
    assert w.df["prompt_tokens"].to_list() == [20, 21]


def test_a_batch_output_file_of_failed_lines_alone_is_refused(tmp_path, capsys):
    path = write(tmp_path / "out.jsonl", [batch_line(0, status=500), batch_line(1, status=500)])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), "out.jsonl: every request (2) failed",
                          "first: line 1, status_code 500")


def test_a_batch_output_line_without_its_usage_is_refused(tmp_path, capsys):
    line = batch_line(0)
    del line["response"]["body"]["usage"]
    path = write(tmp_path / "out.jsonl", [line])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path),
                          "out.jsonl:1: an OpenAI Batch API output line without 'response.body.usage.prompt_tokens' "
                          "and 'response.body.usage.completion_tokens'")


def test_a_file_whose_usage_is_read_since_is_keyed_anew(tmp_path):
    """Runs cached before counted the text's tokens (or skipped the logs): the run cache key marks such files."""
    from ltrsched.workloads.loaders import workload_fingerprint

    assert workload_fingerprint(write(tmp_path / "log.jsonl", [exchange(0)])).get("openai usage") == \
        "read, anthropic's too, status text, both apis, anthropic events, logs"
    assert "openai usage" not in workload_fingerprint(write(tmp_path / "r.jsonl", [{"prompt": "a", "generated": "b"}]))


def test_label_prompts_reads_a_request_logs_prompts(tmp_path):
    """``label --prompts`` reads a request log's prompts as the workload's parse does (it refused the file)."""
    from ltrsched.workloads.prompts import load_prompts

    plain = {"messages": [{"role": "user", "content": PROMPTS[2]}, {"role": "assistant", "content": REPLIES[2]}]}
    asked = {"messages": [{"role": "user", "content": "Which city is the capital of Spain, and why?"}]}
    path = write(tmp_path / "log.jsonl", [exchange(0), plain, asked, exchange(1)])
    # (in the file's order, beside a request without the reply: the log's first turns were placed after the others,
    # found in no record)
    assert load_prompts(path)["prompt"].to_list() == [f"{SYSTEM}\n\n{PROMPTS[0]}", PROMPTS[2],
                                                      asked["messages"][0]["content"], f"{SYSTEM}\n\n{PROMPTS[1]}"]


def test_a_request_line_with_a_custom_id_is_no_batch_output_line(tmp_path, capsys):
    """A request line that names a ``custom_id`` beside its ``prompt`` is read as a request line (its null reply
    refused as such), not as a Batch API output line that failed."""
    path = write(tmp_path / "r.jsonl", [{"custom_id": "a", "prompt": PROMPTS[0], "response": None}])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), "r.jsonl:1: ", "its 'response' is null")


def anthropic_usage(inp: int, out: int, created: int = 0, read: int = 0) -> dict:
    return {"input_tokens": inp, "output_tokens": out, "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read}


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_an_anthropic_usage_is_read_with_its_cached_prompt_tokens(tmp_path, suffix):
    """Anthropic's usage (``input_tokens``, ``output_tokens``; its cache's tokens left out of ``input_tokens``): the
    prompt's count is their sum. It was not read: the text's Llama-3 counts were used without a word."""
    messages = [{"role": "user", "content": PROMPTS[0]}, {"role": "assistant", "content": REPLIES[0]}]
    path = write(tmp_path / f"c{suffix}", [{"messages": messages, "usage": anthropic_usage(12, 7, 3, 40)}])
    df = load_workload(path).df
    assert (df["prompt_tokens"].to_list(), df["output_tokens"].to_list()) == ([55], [7])


def test_an_anthropic_request_log_is_read(tmp_path):
    """A proxy's log of Anthropic Messages API calls (its response's ``content`` parts, no ``choices``): it was left
    out as a response that failed ("no 'choices'"), so a file of them was refused."""
    response = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                "content": [{"type": "text", "text": REPLIES[1]}], "stop_reason": "end_turn",
                "usage": anthropic_usage(25, 9, read=100)}
    path = write(tmp_path / "log.jsonl", [{"request": {"system": SYSTEM, "messages": [
        {"role": "user", "content": PROMPTS[1]}]}, "response": response}])
    df = load_workload(path).df
    assert (df["prompt_tokens"].to_list(), df["output_tokens"].to_list()) == ([125], [9])
    assert df["prompt"].to_list() == [f"{SYSTEM}\n\n{PROMPTS[1]}"]


def test_a_streamed_request_log_is_read_from_its_chunks(tmp_path):
    """A streamed call's log (its response a list of chat.completion.chunk objects, usage in the last alone, as
    ``stream_options.include_usage`` gives it): it was left out as a response that failed ("no 'choices'")."""
    words = REPLIES[2].split(" ")
    chunks = [{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": w + " "}}]}
              for w in words] + [{"object": "chat.completion.chunk", "choices": [],
                                  "usage": {"prompt_tokens": 33, "completion_tokens": 12}}]
    no_usage = {"request": exchange(0)["request"], "response": chunks[:-1]}
    path = write(tmp_path / "log.jsonl", [{"request": exchange(2)["request"], "response": chunks}, no_usage])
    df = load_workload(path).df.sort("prompt_tokens")
    assert df["output_tokens"].to_list() == [*count_tokens([" ".join(w for w in words) + " "]).tolist(), 12]
    assert df["prompt_tokens"].to_list()[1] == 33


def test_a_streamed_request_log_of_two_choices_is_refused(tmp_path, capsys):
    chunks = [{"choices": [{"index": i, "delta": {"content": REPLIES[i]}}]} for i in range(2)]
    path = write(tmp_path / "log.jsonl", [{"request": exchange(0)["request"], "response": chunks}])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), "log.jsonl: record 1: ",
                          "'response.choices' holds 2 replies (n > 1)")


@pytest.mark.parametrize("usage, says", [
    ({**anthropic_usage(12, 7), "cache_read_input_tokens": -4},
     "key 'usage.cache_read_input_tokens' in record 1 is -4, not a token count (a whole number in 0..2**53)"),
    ({**anthropic_usage(12, 7), "cache_creation_input_tokens": 2.5},
     "key 'usage.cache_creation_input_tokens' in record 1 is 2.5, not a token count"),
    ({**anthropic_usage(12, 7), "cache_read_input_tokens": "many"}, "key 'usage.cache_read_input_tokens' "),
    (anthropic_usage(0, 7), "key 'usage.input_tokens' in record 1 is 0, not a token count"),
])
def test_an_anthropic_usages_bad_counts_are_refused_in_one_line(tmp_path, capsys, usage, says):
    messages = [{"role": "user", "content": PROMPTS[0]}, {"role": "assistant", "content": REPLIES[0]}]
    path = write(tmp_path / "c.jsonl", [{"messages": messages, "usage": usage}])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), "c.jsonl: ", says)


def test_an_anthropic_usage_and_the_records_own_count_are_refused(tmp_path, capsys):
    messages = [{"role": "user", "content": PROMPTS[0]}, {"role": "assistant", "content": REPLIES[0]}]
    path = write(tmp_path / "c.jsonl", [{"messages": messages, "output_tokens": 7, "usage": anthropic_usage(12, 7)}])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), "c.jsonl: record 1: ",
                          "'usage.output_tokens' and 'output_tokens' both give the output_tokens")


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": 40, "completion_tokens": 90, "total_tokens": 130,
     "prompt_tokens_details": {"cached_tokens": 32}, "completion_tokens_details": {"reasoning_tokens": 64}},
    {"input_tokens": 40, "output_tokens": 90, "total_tokens": 130,  # (OpenAI's Responses API)
     "input_tokens_details": {"cached_tokens": 32}, "output_tokens_details": {"reasoning_tokens": 64}},
])
def test_openais_cached_and_reasoning_tokens_are_not_added_twice(tmp_path, usage):
    """OpenAI counts its cached tokens in the prompt's and its reasoning tokens in the completion's count."""
    df = load_workload(write(tmp_path / "log.jsonl", [exchange(0, usage=usage)])).df
    assert (df["prompt_tokens"].to_list(), df["output_tokens"].to_list()) == ([40], [90])


@pytest.mark.parametrize("usage", ["12", [12, 5], 7])
def test_a_request_lines_usage_that_is_no_object_is_refused(tmp_path, capsys, usage):
    """It was ignored, silently (a record's and a logged response's were refused in these words)."""
    path = write(tmp_path / "r.jsonl", [{"prompt": PROMPTS[0], "generated": REPLIES[0], "usage": usage}])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path),
                          "r.jsonl: line 1: 'usage' must be an object of token counts, got")


def test_a_request_log_record_among_request_lines_is_refused_as_another_kind(tmp_path, capsys):
    """It said "'response' must be text (a JSON string), got {...}" (the order of the lines decides the file's kind: a
    request log's first line makes it one of conversations)."""
    path = write(tmp_path / "mix.jsonl", [{"prompt": PROMPTS[0], "generated": REPLIES[0]}, exchange(1)])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path),
                          "mix.jsonl:2: a request log's {\"request\", \"response\"} record, and the first line is a "
                          "request, not a conversation: a .jsonl holds requests or conversations")


def test_a_usage_of_both_apis_keys_that_disagree_is_refused(tmp_path, capsys):
    """A ``usage`` with OpenAI's and Anthropic's keys (a proxy translating one API to the other): OpenAI's were read
    without a word, whatever Anthropic's said."""
    usage = {"prompt_tokens": 30, "completion_tokens": 9, "input_tokens": 25, "output_tokens": 9}
    path = write(tmp_path / "log.jsonl", [exchange(0, usage=usage)])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), "log.jsonl: record 1: ",
                          "'response.usage.prompt_tokens' (30) and 'response.usage.input_tokens' (25) disagree on "
                          "the prompt_tokens")


def test_a_usage_of_both_apis_keys_that_agree_is_read(tmp_path):
    usage = {"prompt_tokens": 55, "completion_tokens": 9, **anthropic_usage(12, 9, 3, 40)}
    df = load_workload(write(tmp_path / "log.jsonl", [exchange(0, usage=usage)])).df
    assert (df["prompt_tokens"].to_list(), df["output_tokens"].to_list()) == ([55], [9])


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_total_that_is_not_prompt_plus_completion_is_warned_of_once(tmp_path, capsys, suffix):
    """``total_tokens`` was never looked at: a usage whose total is not its two counts' sum is read by those counts
    (a proxy may add cached or tool tokens), with one warning for the file naming how many and the first."""
    off = [exchange(0), exchange(1, usage={"prompt_tokens": 31, "completion_tokens": 10, "total_tokens": 50}),
           exchange(2, usage={"prompt_tokens": 32, "completion_tokens": 11, "total_tokens": 60})]
    df = load_workload(write(tmp_path / f"log{suffix}", off)).df.sort("prompt_tokens")
    assert df["prompt_tokens"].to_list() == [30, 31, 32]
    err = capsys.readouterr().err
    assert err.count("usage objects give a total_tokens") == 1, err
    assert ("2 of its 3 usage objects give a total_tokens that is not prompt + completion tokens (first: record 2 "
            "(total_tokens 50, 31 + 10 = 41)); read by their prompt and completion counts") in err


def test_a_batch_output_files_totals_are_checked(tmp_path, capsys):
    lines = [batch_line(0), batch_line(1)]
    lines[1]["response"]["body"]["usage"]["total_tokens"] = 200
    load_workload(write(tmp_path / "out.jsonl", lines))
    assert "out.jsonl: 1 of its 2 usage objects give a total_tokens that is not prompt + completion tokens " \
           "(first: line 2 (total_tokens 200, 21 + 101 = 122))" in capsys.readouterr().err


def test_totals_that_add_up_say_nothing(tmp_path, capsys):
    load_workload(write(tmp_path / "log.jsonl", [exchange(i) for i in range(3)]))
    load_workload(write(tmp_path / "out.jsonl", [batch_line(0), batch_line(1)]))
    assert "total_tokens" not in capsys.readouterr().err


def anthropic_stream(text: str, usage_start: dict, output_tokens: int | None) -> list[dict]:
    """A streamed Anthropic call's events as a proxy logs them (message_start's output_tokens a placeholder)."""
    words = text.split(" ")
    return [{"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                  "content": [], "usage": {**usage_start, "output_tokens": 1}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w + " "}}
              for w in words),
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
             "usage": {} if output_tokens is None else {"output_tokens": output_tokens}},
            {"type": "message_stop"}]


def test_an_anthropic_streamed_request_log_is_read_from_its_events(tmp_path):
    """A streamed Anthropic call's log (its response a list of message_start/content_block_delta/message_delta
    events): it was left out as "a list holding no chat-completion chunks" (a file of them refused)."""
    start = {"input_tokens": 25, "cache_read_input_tokens": 100}
    records = [{"request": {"system": SYSTEM, "messages": [{"role": "user", "content": PROMPTS[1]}]},
                "response": anthropic_stream(REPLIES[1], start, 9)},
               {"request": {"messages": [{"role": "user", "content": PROMPTS[2]}]},
                "response": anthropic_stream(REPLIES[2], {"input_tokens": 40}, None)}]
    df = load_workload(write(tmp_path / "log.jsonl", records)).df.sort("prompt_tokens")
    assert df["prompt_tokens"].to_list() == [40, 125]  # message_start's input_tokens (+ its cache's)
    # message_delta's output_tokens, not message_start's placeholder 1; without it, the streamed text's count
    assert df["output_tokens"].to_list() == [*count_tokens([REPLIES[2] + " "]).tolist(), 9]
    assert df["prompt"].to_list() == [PROMPTS[2], f"{SYSTEM}\n\n{PROMPTS[1]}"]


def test_an_anthropic_stream_with_an_error_event_is_left_out_as_failed(tmp_path, capsys):
    failed = anthropic_stream(REPLIES[0], {"input_tokens": 25}, None)[:3] + [
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    path = write(tmp_path / "log.jsonl", [exchange(1), {"request": exchange(0)["request"], "response": failed}])
    assert len(load_workload(path)) == 1
    assert "first: record 2: its 'response' has an 'error'" in capsys.readouterr().err
