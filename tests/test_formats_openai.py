"""OpenAI API responses and vLLM benchmark results as a workload. A chat completion (``{"id", "object", "choices",
"usage": {...}}``) and a Batch API output line (``{"custom_id", "response": {"body": {..., "usage": {...}}}}``) hold
their token counts inside ``usage``, read as the request's lengths (:mod:`ltrsched.workloads.openai_usage`). They were
refused without a word of it ("it has 'id', 'object', ..."), then with a jq recipe to write the counts out. A vLLM
benchmark's saved result is refused saying how to write its lengths. Tiny files of each."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.workloads.loaders import load_workload

USAGE = {"prompt_tokens": 22, "completion_tokens": 2, "total_tokens": 24}
COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1711652795, "model": "gpt-4o",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
              "usage": USAGE}
BATCH_LINE = {"id": "batch_req_1", "custom_id": "r1", "error": None,
              "response": {"status_code": 200, "request_id": "req_1", "body": COMPLETION}}


@pytest.mark.parametrize("record", [COMPLETION, {"usage": USAGE}, BATCH_LINE])
def test_an_openai_response_is_read_by_its_usage(tmp_path, capsys, record):
    """A response's usage is the request's lengths (no prompt text: a trace of lengths alone, as a .csv's); it was
    refused, "whose token counts are not read inside it" (tests/test_wl_usage.py has the Batch API's failed lines)."""
    path = tmp_path / "responses.jsonl"
    path.write_text(json.dumps(record) + "\n")
    df = load_workload(str(path)).df
    assert (df["prompt_tokens"].to_list(), df["output_tokens"].to_list()) == ([22], [2])
    assert "prompt" not in df.columns


def test_the_usage_written_out_as_the_hint_says_is_read(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text(json.dumps({"prompt_tokens": 22, "completion_tokens": 2}) + "\n")
    df = load_workload(str(path)).df
    assert (df["prompt_tokens"].to_list(), df["output_tokens"].to_list()) == ([22], [2])


def test_a_vllm_benchmark_result_is_refused_saying_how_to_write_its_lengths(tmp_path, capsys):
    """vLLM's ``benchmark_serving.py --save-result`` JSON: one object with per-request ``input_lens`` and
    ``output_lens`` lists. It was refused saying only "it starts with '{'"."""
    path = tmp_path / "vllm-result.json"
    path.write_text(json.dumps({"date": "20250101-000000", "backend": "vllm", "num_prompts": 2,
                                "input_lens": [10, 11], "output_lens": [20, 0], "ttfts": [0.1, 0.2]}))
    assert_one_line_error(run_cli_fast(capsys, "workloads", str(path)),
                          "not a JSON array of conversations: it starts with '{' (a vLLM benchmark's result: its "
                          "'input_lens' and 'output_lens'", "write them as a .csv, columns input_len,output_len")
    csv = tmp_path / "vllm.csv"
    csv.write_text("input_len,output_len\n10,20\n")  # (as it says: read)
    assert load_workload(str(csv)).df["output_tokens"].to_list() == [20]
