"""Token counts under other tools' names: OpenAI's usage records (``prompt_tokens``, ``completion_tokens``), vLLM's
benchmark (``input_len``, ``output_len``), ``num_prompt_tokens``/``num_output_tokens``, and Mooncake's
``input_length``/``output_length`` in a table. They were refused ("no column for output_tokens", "expected an object
with string fields 'prompt' and 'generated'"), or beside the texts dropped for the texts' Llama-3 counts; a Mooncake
trace written out as a table had its ``timestamp`` (milliseconds) read as seconds, silently. Tiny files of each."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.errors import UserError
from ltrsched.workloads.loaders import load_workload, workload_fingerprint


def _lines(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _counts(source) -> tuple[list[int], list[int], list[float]]:
    df = load_workload(str(source)).df
    return df["prompt_tokens"].to_list(), df["output_tokens"].to_list(), df["arrival_time"].to_list()


@pytest.mark.parametrize("prompt, output", [("prompt_tokens", "completion_tokens"), ("input_len", "output_len"),
                                            ("num_prompt_tokens", "num_output_tokens"),
                                            ("input_length", "output_length"), ("Input_Len", "COMPLETION_TOKENS")])
def test_a_csv_of_another_tools_counts_is_read(tmp_path, prompt, output):
    path = tmp_path / "usage.csv"
    path.write_text(f"{prompt},{output},total_tokens\n10,20,30\n11,21,32\n")
    assert _counts(path) == ([10, 11], [20, 21], [0.0, 0.0])


@pytest.mark.parametrize("prompt, output", [("prompt_tokens", "completion_tokens"), ("input_len", "output_len"),
                                            ("num_prompt_tokens", "num_output_tokens")])
def test_a_jsonl_of_another_tools_counts_is_read(tmp_path, prompt, output):
    path = _lines(tmp_path / "usage.jsonl", {prompt: 10, output: 20, "arrival_time": 0.5},
                  {prompt: 11, output: 21, "arrival_time": 1.5})
    assert _counts(path) == ([10, 11], [20, 21], [0.5, 1.5])


def test_a_parquet_of_openai_usage_counts_is_read(tmp_path):
    path = tmp_path / "usage.parquet"
    pl.DataFrame({"prompt_tokens": [10, 11], "completion_tokens": [20, 21]}).write_parquet(path)
    assert _counts(path) == ([10, 11], [20, 21], [0.0, 0.0])


def test_a_count_given_beside_the_text_is_used_not_the_texts(tmp_path):
    """OpenAI's legacy fine-tuning line with the served model's usage: its count (5), not the text's Llama-3 count."""
    path = _lines(tmp_path / "pc.jsonl", {"prompt": "Hello there, how are you?", "prompt_tokens": 7,
                                          "completion": "I am fine, thanks for asking.", "completion_tokens": 5})
    assert _counts(path)[1] == [5]


def test_two_keys_for_one_count_are_an_error_naming_both(tmp_path, capsys):
    path = _lines(tmp_path / "two.jsonl", {"prompt_tokens": 3, "output_tokens": 4, "completion_tokens": 5})
    assert_one_line_error(run_cli_fast(capsys, "workloads", path),
                          "two.jsonl:1: 'output_tokens' and 'completion_tokens' both give the output_tokens")


def test_a_count_of_0_under_another_name_names_the_key_and_the_eos_hint(tmp_path, capsys):
    path = _lines(tmp_path / "zero.jsonl", {"prompt_tokens": 3, "completion_tokens": 0})
    assert_one_line_error(run_cli_fast(capsys, "workloads", path),
                          "zero.jsonl: key 'completion_tokens' in line 1 is 0, not a token count", "EOS")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_mooncake_table_with_a_plain_timestamp_is_refused_saying_which_unit(tmp_path, capsys, suffix):
    """Mooncake's ``timestamp`` is milliseconds (a ``.jsonl`` reads it so); a table's plain-named times are seconds:
    1,500 ms were 1,500 s, silently. The error says how to name the unit."""
    path = tmp_path / f"moon{suffix}"
    table = pl.DataFrame({"timestamp": [0, 1500], "input_length": [5, 6], "output_length": [3, 4]})
    table.write_csv(path) if suffix == ".csv" else table.write_parquet(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path), "--arrival", "replay",
                                       "-o", str(tmp_path / "run")),
                          "column 'timestamp' beside Mooncake's columns 'input_length' and 'output_length'",
                          "name the column timestamp_ms (milliseconds) or timestamp_s (seconds)")


def test_a_mooncake_table_with_its_unit_named_is_read_in_seconds(tmp_path):
    path = tmp_path / "moon.csv"
    path.write_text("timestamp_ms,input_length,output_length,hash_ids\n0,5,3,\"[1, 2]\"\n1500,6,4,\"[1]\"\n")
    assert _counts(path) == ([5, 6], [3, 4], [0.0, 1.5])
    path.write_text("timestamp,input_length,output_length\n2024-01-01 00:00:00,5,3\n2024-01-01 00:00:01.5,6,4\n")
    assert _counts(path)[2] == [0.0, 1.5]  # (date-times say their unit)


def test_plain_timestamps_beside_other_names_stay_seconds(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("timestamp,input_len,output_len\n0,5,3\n1.5,6,4\n")
    assert _counts(path)[2] == [0.0, 1.5]


def test_two_names_for_one_count_in_a_csv_are_an_error(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("prompt_tokens,output_tokens,completion_tokens\n3,4,5\n")
    with pytest.raises(UserError, match="columns 'output_tokens' and 'completion_tokens' both give the output"):
        load_workload(str(path))


def test_cache_keys_mark_files_naming_the_added_names(tmp_path):
    """Runs cached before counted such a file's text instead: its key changes; other files' keys do not."""
    added = tmp_path / "a.csv"
    added.write_text("prompt,completion,completion_tokens\nHello there,Fine thanks,5\n")
    plain = tmp_path / "b.csv"
    plain.write_text("prompt,completion\nHello there,Fine thanks\n")
    lines = _lines(tmp_path / "c.jsonl", {"prompt": "Hi", "completion": "Fine", "completion_tokens": 5})
    moon = _lines(tmp_path / "m.jsonl", {"timestamp": 0, "input_length": 5, "output_length": 3})
    assert workload_fingerprint(str(added)).get("added length names") == "read"
    assert workload_fingerprint(lines).get("added length names") == "read"
    assert "added length names" not in workload_fingerprint(str(plain))
    assert "added length names" not in workload_fingerprint(moon)  # (Mooncake's keys were read before)
