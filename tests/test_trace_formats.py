"""Public trace formats read as workloads: BurstGPT's CSV (``Timestamp`` [s], ``Request tokens``, ``Response
tokens``; a ``Response tokens`` of 0 marks a failed request) and Mooncake's JSONL (``timestamp`` [ms],
``input_length``, ``output_length``, ``hash_ids``). Both were refused ("no column for prompt_tokens", "expected an
object with string fields 'prompt' and 'generated'"). The fixtures are a few rows in each format, made up."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.workloads.loaders import load_workload
from test_cli_simulate import assert_one_line_error, run_cli

FIXTURES = Path(__file__).parent / "fixtures"
BURSTGPT = FIXTURES / "burstgpt.csv"
MOONCAKE = FIXTURES / "mooncake.jsonl"


def test_a_burstgpt_csv_is_read_with_its_failed_requests_left_out_and_counted(capsys):
    wl = load_workload(str(BURSTGPT))
    df = wl.df
    # the failed request (Response tokens 0, the second row) is left out, with a warning counting it
    assert df["prompt_tokens"].to_list() == [472, 417, 29]
    assert df["output_tokens"].to_list() == [18, 217, 340]
    assert df["arrival_time"].to_list() == [5.0, 118.0, 130.5]  # Timestamp: seconds, as given
    assert df["request_id"].to_list() == [0, 1, 2]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "burstgpt.csv: 1 of its 4 requests have " \
        "'Response tokens' 0, BurstGPT's mark of a failed request (no output); they are left out" in err[0]


def test_a_burstgpt_csv_replays_in_seconds_on_the_cli(tmp_path):
    r = run_cli("simulate", "-w", str(BURSTGPT), "--arrival", "replay", "-o", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "1 of its 4 requests have 'Response tokens' 0" in r.stderr
    out = pl.read_parquet(tmp_path / "run" / "requests.parquet").sort("request_id")
    assert out["arrival_time"].to_list() == [0.0, 113.0, 125.5]  # replay: shifted to start at 0, in seconds


def test_a_burstgpt_file_of_failed_requests_alone_is_a_one_line_error(tmp_path):
    path = tmp_path / "fails.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                    "5,ChatGPT,472,0,472,Conversation log\n9,GPT-4,100,0,100,API log\n")
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "every request (2) has 'Response tokens' 0, BurstGPT's mark of a failed request")


def test_an_output_of_0_tokens_under_another_name_stays_an_error(tmp_path):
    """Only BurstGPT's name marks failures so: elsewhere a 0 is a bad count, refused as before."""
    path = tmp_path / "t.csv"
    path.write_text("timestamp,prompt_tokens,output_tokens\n0,5,0\n1,5,3\n")
    with pytest.raises(UserError, match="column 'output_tokens' in row 1 is 0, not a token count"):
        load_workload(str(path))


def test_a_burstgpt_table_as_parquet_leaves_out_its_failed_requests_too(tmp_path, capsys):
    path = tmp_path / "b.parquet"
    pl.read_csv(BURSTGPT).write_parquet(path)
    wl = load_workload(str(path))
    assert wl.df["output_tokens"].to_list() == [18, 217, 340]
    assert "1 of its 4 requests have 'Response tokens' 0" in capsys.readouterr().err


def test_a_mooncake_trace_is_read_with_its_timestamps_in_milliseconds():
    wl = load_workload(str(MOONCAKE))
    df = wl.df
    assert df["prompt_tokens"].to_list() == [5120, 812, 4096, 1530]
    assert df["output_tokens"].to_list() == [310, 45, 602, 97]
    assert df["arrival_time"].to_list() == pytest.approx([0.0, 0.0, 2.75, 4.125])  # ms -> s
    assert "prompt" not in df.columns  # lengths alone (hash_ids: no prefix cache to use them)
    assert "arrival_warning" not in wl.meta  # the format states its unit


def test_a_mooncake_trace_replays_on_the_cli(tmp_path):
    r = run_cli("simulate", "-w", str(MOONCAKE), "--arrival", "replay", "-o", str(tmp_path / "f"))
    assert r.returncode == 0, r.stderr
    out = pl.read_parquet(tmp_path / "f" / "requests.parquet").sort("request_id")
    assert out["arrival_time"].to_list() == pytest.approx([0.0, 0.0, 2.75, 4.125])


@pytest.mark.parametrize("line, message", [
    ({"timestamp": 0, "input_length": 5, "prompt_tokens": 5, "output_length": 3},
     "'input_length' and 'prompt_tokens' both give the prompt_tokens"),
    ({"timestamp": 0, "arrival_time": 1, "input_length": 5, "output_length": 3},
     "'timestamp' (Mooncake's, milliseconds) and 'arrival_time' both give the arrival time"),
    ({"timestamp": "soon", "input_length": 5, "output_length": 3},
     "'timestamp' must be a number of milliseconds (Mooncake's), got \"soon\""),
    ({"timestamp": 0, "input_length": 5, "output_length": 0},
     "key 'output_length' in line 2 is 0, not a token count"),
    ({"timestamp": 0, "input_length": 5},
     "expected an object with string fields 'prompt' and 'generated' (or, instead of a text, its length: "
     "'prompt_tokens', 'output_tokens'; Mooncake's 'input_length', 'output_length')"),
])
def test_a_bad_mooncake_line_is_a_one_line_error_naming_its_key(tmp_path, line, message):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"timestamp": 0, "input_length": 9, "output_length": 4}) + "\n" + json.dumps(line) + "\n")
    assert_one_line_error(run_cli("simulate", "-w", str(path)),  # (a bad count: in every container's words)
                          f"m.jsonl: {message}" if message.startswith("key ") else f"m.jsonl:2: {message}")


def test_a_jsonl_timestamp_beside_text_is_seconds(tmp_path):
    """Only a Mooncake line's ``timestamp`` is milliseconds; on a line of text it is seconds, as a .csv's is (it was
    not read: every request at t = 0); the file's run cache key says so, so that a run cached before is not reused."""
    from ltrsched.workloads.loaders import workload_fingerprint

    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "hi", "generated": "yes", "timestamp": 5}\n'
                    '{"prompt": "ho", "generated": "no", "timestamp": 9}\n')
    assert load_workload(str(path)).df.sort("request_id")["arrival_time"].to_list() == [5.0, 9.0]
    assert workload_fingerprint(str(path))["arrival names"] == "read"


def test_a_jsonl_with_mooncake_keys_is_keyed_apart_from_runs_cached_before(tmp_path):
    """A line of text beside ``input_length`` and ``timestamp`` loaded before too, with its text's counts, at t = 0;
    its runs cached then must not be reused now that those keys are read: the file's key says so."""
    from ltrsched.workloads.loaders import workload_fingerprint

    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "hi there", "generated": "ok", "input_length": 40, "timestamp": 5}\n')
    assert workload_fingerprint(str(path)).get("mooncake") == "read"
    assert workload_fingerprint(str(MOONCAKE)).get("mooncake") == "read"
    path.write_text('{"prompt": "hi there", "generated": "ok"}\n')
    assert "mooncake" not in workload_fingerprint(str(path))
