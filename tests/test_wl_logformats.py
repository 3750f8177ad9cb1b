"""Serving logs of other tools and shapes, read as the README says (:mod:`ltrsched.workloads.sse_logs`,
:mod:`ltrsched.workloads.log_records`, :mod:`ltrsched.workloads.stream_files`): responses logged as server-sent
events (SSE text, ``{"event", "data"}`` objects), files of streams, vLLM's OpenAI server, the Responses API, the
completions API, LiteLLM's log records, reasoning models' replies, and files mixing formats. Tiny files of each, built
from the tools' documented shapes."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.workloads import load_workload
from ltrsched.workloads.tokenizer import count_tokens

PROMPT = "Which city is the capital of France, and what river runs through it?"
WORDS = ["The", "capital", "of", "France", "is", "Paris,", "on", "the", "Seine."]
REPLY = " ".join(WORDS)
REQUEST = {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "stream": True,
           "stream_options": {"include_usage": True}}


def write(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def chunks(i: int = 0, usage: bool = True, **last) -> list[dict]:
    """An OpenAI (or vLLM) chat stream's chunks: a role chunk, a word each, a stop, and the usage chunk
    (``stream_options.include_usage``), whose ``choices`` is empty."""
    head = {"id": f"chatcmpl-{i}", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    out += [{**head, "choices": [{"index": 0, "delta": {"content": (" " if k else "") + w}, "finish_reason": None}]}
            for k, w in enumerate(WORDS)]
    out.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        out.append({**head, "choices": [], "usage": {"prompt_tokens": 20 + i, "completion_tokens": 11 + i,
                                                      "total_tokens": 31 + 2 * i, **last}})
    return out


def sse_text(events: list[dict], done: bool = True, named: bool = False) -> str:
    """Events as a stream's SSE text (``event:`` lines too where ``named``, Anthropic's), OpenAI's ``[DONE]`` last."""
    return "".join((f"event: {e.get('type', 'message')}\n" if named else "") + f"data: {json.dumps(e)}\n\n"
                   for e in events) + ("data: [DONE]\n\n" if done else "")


def anthropic_events(input_tokens: int = 25, output_tokens: int = 15) -> list[dict]:
    """A streamed Anthropic Messages API response's events (its documented order; a ping among them)."""
    return [{"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                  "content": [], "usage": {"input_tokens": input_tokens,
                                                                           "output_tokens": 1}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output_tokens}},
            {"type": "message_stop"}]


def replies(path) -> list[str]:
    """The replies' text a conversations file's parse read (the workload keeps their counts alone)."""
    from ltrsched.workloads.sharegpt import parse_sharegpt

    return parse_sharegpt(path)["response"].to_list()


def lengths(path) -> tuple[list, list]:
    df = load_workload(path).df.sort("request_id")
    return df["prompt_tokens"].to_list(), df["output_tokens"].to_list()


# --- responses logged as server-sent events ---------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["text", "objects"])
def test_a_response_logged_as_server_sent_events_is_read(tmp_path, shape):
    """A proxy's log of a streamed call whose response is the stream's SSE text, or its events as {"event", "data"}
    objects: it was left out as a failed response ("no 'choices'", "a list holding no chat-completion chunks")."""
    events = chunks()
    response = sse_text(events) if shape == "text" else [
        *({"event": "message", "data": json.dumps(e)} for e in events), {"data": "[DONE]"}]
    path = write(tmp_path / "log.jsonl", [{"request": REQUEST, "response": response}])
    assert lengths(path) == ([20], [11])
    assert replies(path) == [REPLY]


@pytest.mark.parametrize("data, says", [("{oops", "its data is not JSON"),
                                        ('{"choices": [], "choices": []}', "in its data, the key 'choices' is given twice")])
def test_a_response_of_sse_text_with_data_that_is_no_json_is_refused(tmp_path, capsys, data, says):
    response = f"data: {{\"choices\": []}}\n\ndata: {data}\n\n"
    path = write(tmp_path / "log.jsonl", [{"request": REQUEST, "response": response}])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path),
                          "log.jsonl: record 1: the response's line 3 (an SSE event): ", says)


def test_a_dump_of_openai_streams_is_a_trace_of_lengths_from_their_usage(tmp_path):
    """`curl -N` output appended to one file: three streams' SSE text (ending at [DONE], or without it, at a chunk
    of another id); was "not valid JSON (Expecting value)"."""
    text = "".join(sse_text(chunks(i)) for i in range(3))
    (tmp_path / "s.jsonl").write_text(text)
    w = load_workload(str(tmp_path / "s.jsonl"))
    assert lengths(str(tmp_path / "s.jsonl")) == ([20, 21, 22], [11, 12, 13])
    assert not w.has_text
    (tmp_path / "n.jsonl").write_text("".join(sse_text(chunks(i), done=False) for i in range(3)))
    assert lengths(str(tmp_path / "n.jsonl")) == ([20, 21, 22], [11, 12, 13])


@pytest.mark.parametrize("suffix", [".txt", ".log", ".sse"])
def test_a_dump_of_streams_of_another_suffix_is_refused_saying_to_name_it_jsonl(tmp_path, capsys, suffix):
    """It was "a .txt file holds prompts without output lengths" or "unknown workload format"."""
    (tmp_path / f"s{suffix}").write_text(sse_text(anthropic_events(), named=True, done=False))
    assert_one_line_error(run_cli_fast(capsys, "workloads", str(tmp_path / f"s{suffix}")),
                          f"s{suffix}: a dump of streamed responses", "name it s.jsonl")


def test_a_prompts_file_that_opens_with_data_is_no_stream_dump(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("data: what does it say about the users?\n")
    assert_one_line_error(run_cli_fast(capsys, "workloads", str(tmp_path / "p.txt")), "holds prompts")


def test_a_dump_of_streams_is_read_when_a_split_is_asked(tmp_path):
    """A file's own split is looked for in its records as load_jsonl reads them: a dump of streams was "not valid
    JSON" there (train/evaluate --split)."""
    (tmp_path / "s.jsonl").write_text("".join(sse_text(chunks(i)) for i in range(3)))
    assert len(load_workload(str(tmp_path / "s.jsonl"), split="train")) == 3


@pytest.mark.parametrize("shape", ["text", "objects"])
def test_a_dump_of_anthropic_streams_is_read(tmp_path, shape):
    """Anthropic's SSE (event: and data: lines), or its events one {"event", "data"} object a line: the latter was
    refused as "it has 'event', 'data'"."""
    events = anthropic_events(25, 15) + anthropic_events(30, 40)
    path = tmp_path / "a.jsonl"
    if shape == "text":
        path.write_text(sse_text(events, done=False, named=True))
    else:
        write(path, [{"event": e["type"], "data": json.dumps(e)} for e in events])
    assert lengths(str(path)) == ([25, 30], [15, 40])


def test_a_dumped_stream_without_usage_is_refused_saying_how_to_get_it(tmp_path, capsys):
    (tmp_path / "s.jsonl").write_text(sse_text(chunks(0)) + sse_text(chunks(1, usage=False)))
    assert_one_line_error(run_cli_fast(capsys, "workloads", str(tmp_path / "s.jsonl")),
                          "s.jsonl:27: a streamed response without usage", "stream_options {\"include_usage\": true}")


@pytest.mark.parametrize("stream, says", [
    ([{"id": "a", "choices": [{"index": i, "delta": {"content": "x"}}]} for i in range(2)]
     + [{"id": "a", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6}}],
     "s.jsonl:1: a streamed response of 2 choices (n > 1)"),
    ([{"error": {"message": "rate limited", "type": "rate_limit"}}], "s.jsonl:1: a streamed response that failed"),
    ([anthropic_events()[0], {"type": "error", "error": {"type": "overloaded_error"}}],
     "s.jsonl:1: a streamed response that failed"),
])
def test_a_dumped_stream_of_two_choices_or_an_error_is_refused(tmp_path, capsys, stream, says):
    (tmp_path / "s.jsonl").write_text(sse_text(stream))
    assert_one_line_error(run_cli_fast(capsys, "workloads", str(tmp_path / "s.jsonl")), says)


def test_a_dump_with_crlf_line_ends_is_read(tmp_path):
    (tmp_path / "s.jsonl").write_bytes("".join(sse_text(chunks(i)) for i in range(2)).replace("\n", "\r\n").encode())
    assert lengths(str(tmp_path / "s.jsonl")) == ([20, 21], [11, 12])


@pytest.mark.parametrize("usage, says", [
    ({"prompt_tokens": 12.5}, "key 'usage.prompt_tokens' in line 1 is 12.5, not a token count"),
    ({"prompt_tokens": True}, "key 'usage.prompt_tokens' in line 1 is True, not a token count"),
    ({"completion_tokens": -3}, "key 'usage.completion_tokens' in line 1 is -3, not a token count"),
    ({"prompt_tokens": "many"}, "key 'usage.prompt_tokens' has non-numeric values (String, first: 'many')"),
])
def test_a_dumped_streams_bad_usage_is_refused_in_one_line(tmp_path, capsys, usage, says):
    (tmp_path / "s.jsonl").write_text(sse_text(chunks(0, **usage)))
    assert_one_line_error(run_cli_fast(capsys, "workloads", str(tmp_path / "s.jsonl")), "s.jsonl: ", says)


def test_a_dumped_streams_whole_float_usage_is_read(tmp_path):
    (tmp_path / "s.jsonl").write_text(sse_text(chunks(0, prompt_tokens=12.0, completion_tokens="7")))
    assert lengths(str(tmp_path / "s.jsonl")) == ([12], [7])


def test_records_after_a_stream_dump_are_refused_not_dropped(tmp_path, capsys):
    """A line that is no SSE line after a stream's text: it was dropped, silently, by the reader of the stream."""
    (tmp_path / "s.jsonl").write_text(sse_text(chunks(0)) + json.dumps({"prompt": "a", "output_tokens": 4}) + "\n")
    assert_one_line_error(run_cli_fast(capsys, "workloads", str(tmp_path / "s.jsonl")),
                          "s.jsonl:27: not a server-sent event line")


def test_a_file_of_event_objects_then_other_records_is_refused(tmp_path, capsys):
    path = write(tmp_path / "e.jsonl", [{"event": "message", "data": json.dumps(chunks()[0])},
                                        {"prompt": "a", "output_tokens": 4}])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), "e.jsonl:2: not a server-sent event")


# --- other servers' and APIs' records -------------------------------------------------------------------------

def chat_response(usage: dict | None, **message) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY, **message},
                         "finish_reason": "stop"}], **({"usage": usage} if usage else {})}


def test_vllms_response_reads_as_openais(tmp_path):
    """Control: vLLM's OpenAI server adds keys (kv_transfer_params, prompt_logprobs, stop_reason, a null
    reasoning_content, prompt_tokens_details); none changes what is read."""
    usage = {"prompt_tokens": 20, "completion_tokens": 11, "total_tokens": 31}
    plain = {"request": REQUEST, "response": chat_response(usage)}
    vllm = chat_response({**usage, "prompt_tokens_details": {"cached_tokens": 16}}, reasoning_content=None,
                         tool_calls=[])
    vllm.update(prompt_logprobs=None, kv_transfer_params={"do_remote_prefill": True, "remote_block_ids": [1, 2]})
    vllm["choices"][0].update(logprobs=None, stop_reason=None)
    a = load_workload(write(tmp_path / "a.jsonl", [plain])).df
    b = load_workload(write(tmp_path / "b.jsonl", [{"request": REQUEST, "response": vllm}])).df
    assert a.drop("request_id").equals(b.drop("request_id"))


def test_a_completions_exchange_is_read(tmp_path):
    """vLLM's (and OpenAI's) /v1/completions: the request's 'prompt', the choice's 'text'; it was refused."""
    response = {"object": "text_completion", "choices": [{"index": 0, "text": REPLY, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 16, "completion_tokens": 11}}
    path = write(tmp_path / "c.jsonl", [{"request": {"model": "m", "prompt": PROMPT}, "response": response}])
    assert (load_workload(path).df["prompt"].to_list(), replies(path)) == ([PROMPT], [REPLY])
    assert lengths(path) == ([16], [11])


def responses_response(status: str = "completed") -> dict:
    """A Responses API response of a reasoning model: a reasoning item, then the message; output_tokens count the
    reasoning tokens."""
    return {"id": "resp_1", "object": "response", "status": status, "model": "o3-mini",
            "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                       {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": REPLY, "annotations": []}]}],
            "usage": {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 140,
                      "output_tokens_details": {"reasoning_tokens": 128}, "total_tokens": 170}}


@pytest.mark.parametrize("given", [PROMPT, [{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}]])
def test_a_responses_api_exchange_is_read_with_its_reasoning_tokens(tmp_path, given):
    """The request's 'input' (text, or a list of messages) and 'instructions'; the output's length is usage's
    output_tokens, its reasoning tokens included. It was refused: "'response' must be text"."""
    request = {"model": "o3-mini", "instructions": "Answer briefly.", "input": given}
    path = write(tmp_path / "r.jsonl", [{"request": request, "response": responses_response()}])
    assert (load_workload(path).df["prompt"].to_list(), replies(path)) == ([f"Answer briefly.\n\n{PROMPT}"], [REPLY])
    assert lengths(path) == ([30], [140])


def test_a_responses_api_exchange_answered_by_a_tool_call_is_told_as_one(tmp_path, capsys):
    """Its input's function_call and function_call_output items as a chat request's tool call and tool message: it
    was "message 2 has no speaker ('from' or 'role')"."""
    given = [{"role": "user", "content": PROMPT},
             {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{\"city\": \"Paris\"}"},
             {"type": "function_call_output", "call_id": "c1", "output": "Paris, on the Seine"}]
    path = write(tmp_path / "r.jsonl", [{"request": {"input": given}, "response": responses_response()}])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path),
                          "1 first replies that are tool or function calls, not text (first: record 1: message 2 has "
                          "'tool_calls'")


def test_a_streamed_responses_api_exchange_is_read_from_its_last_event(tmp_path, capsys):
    events = [{"type": "response.created", "response": {**responses_response("in_progress"), "output": []}},
              {"type": "response.output_text.delta", "delta": REPLY},
              {"type": "response.completed", "response": responses_response()}]
    failed = events[:2] + [{"type": "response.failed", "response": {**responses_response("failed"),
                                                                    "error": {"code": "server_error"}}}]
    path = write(tmp_path / "r.jsonl", [{"request": {"input": PROMPT}, "response": sse_text(events, done=False)},
                                        {"request": {"input": PROMPT + "?"}, "response": failed}])
    assert lengths(path) == ([30], [140])
    assert "1 logged requests whose response failed (first: record 2: its 'response' has an 'error')" \
        in capsys.readouterr().err


def litellm(i: int, **extra) -> dict:
    """A LiteLLM spend log row (prompts stored): its counts and start time beside the messages and response."""
    usage = {"prompt_tokens": 20 + i, "completion_tokens": 11 + i, "total_tokens": 31 + 2 * i}
    return {"request_id": f"chatcmpl-{i}", "call_type": "acompletion", "api_key": "88dc28d0", "spend": 1e-4,
            **usage, "startTime": f"2024-05-01T10:00:0{2 * i}.000Z", "endTime": f"2024-05-01T10:00:0{2 * i + 1}.000Z",
            "model": "gpt-4o", "cache_hit": "False", "request_tags": [],
            "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}],
            "response": chat_response(usage), **extra}


def test_a_litellm_log_is_read(tmp_path):
    """LiteLLM's spend log rows: it was refused ("'response' must be text"); its request_id (text) is its id, its
    startTime its arrival time."""
    path = write(tmp_path / "l.jsonl", [litellm(i) for i in range(3)])
    df = load_workload(path).df.sort("arrival_time")
    assert (df["prompt_tokens"].to_list(), df["output_tokens"].to_list()) == ([20, 21, 22], [11, 12, 13])
    assert df["arrival_time"].to_list() == [0.0, 2.0, 4.0]


def test_a_litellm_logs_counts_beside_a_response_without_usage_are_read(tmp_path):
    record = litellm(0)
    del record["response"]["usage"]
    assert lengths(write(tmp_path / "l.jsonl", [record])) == ([20], [11])


@pytest.mark.parametrize("empty", [{}, "", None])
def test_a_litellm_spend_log_without_its_prompts_is_a_trace_of_lengths(tmp_path, empty):
    """LiteLLM's default spend log stores no prompt (messages and response empty): it was refused, "'response' must
    be text (a JSON string), got {}"."""
    rows = [{**litellm(i), "messages": empty, "response": empty} for i in range(3)]
    path = write(tmp_path / "l.jsonl", rows)
    w = load_workload(path)
    assert not w.has_text
    df = w.df.sort("arrival_time")
    assert (df["prompt_tokens"].to_list(), df["output_tokens"].to_list()) == ([20, 21, 22], [11, 12, 13])
    assert df["arrival_time"].to_list() == [0.0, 2.0, 4.0]


def test_a_litellm_logs_counts_that_disagree_with_its_usage_are_refused(tmp_path, capsys):
    path = write(tmp_path / "l.jsonl", [litellm(0, prompt_tokens=99)])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path),
                          "l.jsonl: record 1: 'prompt_tokens' (99) and 'response.usage.prompt_tokens' (20) disagree")


def test_a_litellm_logs_boolean_count_agrees_with_no_usage_count(tmp_path, capsys):
    """true == 1 in Python: a 'prompt_tokens' true beside a usage's 1 was read as agreeing."""
    record = litellm(0, prompt_tokens=True)
    record["response"]["usage"]["prompt_tokens"] = 1
    assert_one_line_error(run_cli_fast(capsys, "workloads", write(tmp_path / "l.jsonl", [record])),
                          "l.jsonl: record 1: 'prompt_tokens' (True) and 'response.usage.prompt_tokens' (1) disagree")


# --- reasoning models' replies ----------------------------------------------------------------------------------

THOUGHT = "The user asks for the capital of France and its river; that is Paris on the Seine."


def test_a_replys_reasoning_text_is_counted_without_usage(tmp_path):
    """vLLM's reasoning parser's reasoning_content: generated, so counted with the answer (it was left out), in a
    message and in a stream's deltas."""
    message = {"request": REQUEST, "response": chat_response(None, reasoning_content=THOUGHT)}
    streamed = [{"choices": [{"index": 0, "delta": {"reasoning_content": THOUGHT}}]},
                {"choices": [{"index": 0, "delta": {"content": REPLY}}]}]
    other = {**REQUEST, "messages": [{"role": "user", "content": PROMPT + " Please."}]}
    path = write(tmp_path / "r.jsonl", [message, {"request": other, "response": streamed}])
    assert lengths(path)[1] == count_tokens([f"{THOUGHT}\n{REPLY}"] * 2).tolist()


def test_an_anthropic_reply_with_thinking_is_read(tmp_path):
    """An Anthropic response with extended thinking: it was skipped ("a part that is not text ('thinking')")."""
    response = {"type": "message", "role": "assistant",
                "content": [{"type": "thinking", "thinking": THOUGHT, "signature": "sig"},
                            {"type": "redacted_thinking", "data": "opaque"}, {"type": "text", "text": REPLY}],
                "usage": {"input_tokens": 40, "output_tokens": 90}}
    path = write(tmp_path / "a.jsonl", [{"request": REQUEST, "response": response}])
    assert lengths(path) == ([40], [90])
    assert replies(path) == [f"{THOUGHT}\n{REPLY}"]


# --- mixed formats ----------------------------------------------------------------------------------------------

def test_a_batch_output_line_among_request_log_records_is_refused(tmp_path, capsys):
    """It was skipped as a record "with no messages" (a warning), the file read as the rest."""
    batch = {"id": "batch_req_1", "custom_id": "r1", "error": None,
             "response": {"status_code": 200, "body": chat_response({"prompt_tokens": 5, "completion_tokens": 6})}}
    path = write(tmp_path / "m.jsonl", [{"request": REQUEST, "response": chat_response(None)}, batch])
    assert_one_line_error(run_cli_fast(capsys, "workloads", path),
                          "m.jsonl: record 2 is an OpenAI Batch API output line", "a file holds one format")
