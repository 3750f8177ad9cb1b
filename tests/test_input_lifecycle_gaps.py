"""Workload input gaps an audit found: a CSV with two arrival columns used the first, silently; a slow millisecond
trace starting near 0 replayed 1000x slower without a warning; a parquet's own token counts (a conversations table's,
or under another tool's name) were recounted from its text; and smaller ones (an empty workload name, infinite
counts, a format's records in the other format, times under a name the format does not read). Each is now a correct
load, a one-line warning, or a one-line error (exit code 2), never a traceback. (Closing an engine left the process
pinned: tests/test_engine_environment.py.)"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.workloads.loaders import load_workload
from cli_helpers import run_cli_fast
from test_cli_simulate import assert_one_line_error


# -- two columns for one field of a .csv ---------------------------------------------------------------------------

@pytest.mark.parametrize("first, second", [("arrival_time", "timestamp"), ("TIMESTAMP", "arrived_at"),
                                           ("arrival_time_ms", "timestamp_ms")])
def test_a_csv_with_two_arrival_columns_names_both(capsys, tmp_path, first, second):
    """``arrival_time`` beside ``timestamp``: the first in CSV_COLUMNS' order was used, whichever held the times."""
    path = tmp_path / "t.csv"
    path.write_text(f"{first},{second},prompt_tokens,output_tokens\n0,5,3,4\n1,9,3,4\n")
    with pytest.raises(UserError, match=f"t.csv: columns '.*' and '.*' both give the arrival times \\(arrival_time\\); "
                                        "which does\\? keep one \\(drop or rename the other\\)$") as info:
        load_workload(str(path))
    assert repr(first) in str(info.value) and repr(second) in str(info.value)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)), "both give the arrival times")


def test_a_csv_with_two_prompt_length_columns_names_both(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("prompt_tokens,input_tokens,output_tokens\n3,30,4\n")
    with pytest.raises(UserError, match="columns 'prompt_tokens' and 'input_tokens' both give the prompt lengths"):
        load_workload(str(path))


def test_a_csv_with_one_name_per_field_still_loads(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Timestamp,ContextTokens,GeneratedTokens\n0,3,4\n1.5,5,6\n")
    assert load_workload(str(path)).df["arrival_time"].to_list() == [0.0, 1.5]


# -- a slow millisecond trace from 0 ------------------------------------------------------------------------------

@pytest.mark.parametrize("n, gap_ms", [(50, 1500.0), (100, 500.0), (12, 2000.0), (100, 1500.0)])
def test_a_slow_millisecond_trace_from_zero_warns(capsys, tmp_path, n, gap_ms):
    """Times from 0 in ms, 0.5-2 s apart: read as seconds, a span under a day, so the days rule did not warn (50
    requests 1.5 s apart: 20 hours, gaps of 25 minutes), and the run replayed 1000x slower, silently."""
    from ltrsched.workloads.arrivals import seconds_unit_warning

    times = np.arange(n) * gap_ms
    assert seconds_unit_warning(times) is not None
    path = tmp_path / "t.csv"
    pl.DataFrame({"arrival_time": times, "prompt_tokens": [5] * n, "output_tokens": [5] * n}).write_csv(path)
    r = run_cli_fast(capsys, "simulate", "-w", str(path), "--arrival", "replay")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {path}: its arrival times, read as seconds")
    assert "name the column arrival_time_ms" in lines[0]


@pytest.mark.parametrize("rate, n", [(r, n) for r in (0.05, 0.5, 2.0, 20.0) for n in (20, 200, 2000)]
                         + [(0.01, 20), (0.01, 200)])
def test_seconds_poisson_workloads_do_not_warn(rate, n):
    """(At 0.01 req/s, 2,000 requests span 2.3 days with median gaps of 69 s: the days rule's ground, a trace in
    milliseconds at 10 req/s read as seconds, which it warns of.)"""
    from ltrsched.workloads.arrivals import arrival_times, seconds_unit_warning

    for seed in range(5):
        assert seconds_unit_warning(arrival_times(n, "poisson", rate, seed=seed)) is None


def test_a_handful_of_requests_minutes_apart_does_not_warn():
    from ltrsched.workloads.arrivals import seconds_unit_warning

    assert seconds_unit_warning(np.array([0.0, 1500.0, 3000.0])) is None  # 50 minutes: their pace says little


@pytest.mark.parametrize("name", ["azure-2023-code.csv", "azure-2023-conv.csv"])
def test_the_azure_traces_do_not_warn_even_scaled_down(name):
    """The committed Azure traces (../shared/data) as given, and thinned to every 20th request (gaps of about 1-2.5
    s, an hour), stay below the slow rule."""
    from ltrsched.sim.profiles.derive_a100 import default_data_dir
    from ltrsched.workloads.arrivals import seconds_unit_warning

    trace = default_data_dir().parent / "traces" / name
    if not trace.exists():
        pytest.skip(f"reference data not found at {trace}")
    wl = load_workload(str(trace))
    assert "arrival_warning" not in wl.meta
    times = np.sort(wl.df["arrival_time"].to_numpy())
    assert seconds_unit_warning(times[::20]) is None


# -- a conversations parquet's own token counts -----------------------------------------------------------------

def _conversations(path, counts: dict | None = None, n: int = 3):
    rows = [{"conversation_id": f"c{i}", "conversation": [
        {"role": "user", "content": f"Please explain topic number {i} in a few words"},
        {"role": "assistant", "content": f"Topic {i} is about many things indeed, and more"}]} for i in range(n)]
    df = pl.DataFrame(rows)
    if counts:
        df = df.with_columns(pl.Series(name, values) for name, values in counts.items())
    df.write_parquet(path)
    return path


def test_a_conversations_parquet_uses_its_own_token_counts(tmp_path, capsys):
    """Its prompt_tokens and output_tokens (e.g. the served model's own) were ignored: the text was recounted with
    Llama-3's tokenizer. The file's are used, and counts other than the text's are counted in a warning."""
    from ltrsched.workloads.loaders import workload_fingerprint

    path = _conversations(tmp_path / "c.parquet", {"prompt_tokens": [100, 200, 300], "output_tokens": [7, 8, 9]})
    for _ in range(2):  # parsed, then from the parse cache: the same counts, the same warning
        df = load_workload(str(path)).df.sort("source_id")
        assert df["prompt_tokens"].to_list() == [100, 200, 300] and df["output_tokens"].to_list() == [7, 8, 9]
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and all(line.startswith(f"warning: {path}: 3 of the 3 first turns' ") for line in err)
        assert "prompt_tokens differ from the Llama-3 count of their text (first: id 'c0', 100 given" in err[0]
        assert err[0].endswith("counted); the file's counts are used")
    assert workload_fingerprint(str(path))["counts"] == "given"  # (runs cached before recounted the text)
    r = run_cli_fast(capsys, "simulate", "-w", str(path))
    assert r.returncode == 0 and r.stderr.count("the file's counts are used") == 2, r.stderr


def test_a_conversations_parquet_counts_the_text_where_a_count_is_null(tmp_path, capsys):
    from ltrsched.workloads.tokenizer import count_tokens

    path = _conversations(tmp_path / "c.parquet", {"output_tokens": [None, 40, None]})
    df = load_workload(str(path)).df.sort("source_id")
    counted = count_tokens([f"Topic {i} is about many things indeed, and more" for i in range(3)])
    assert df["output_tokens"].to_list() == [counted[0], 40, counted[2]]
    assert "1 of the 3 first turns' output_tokens differ" in capsys.readouterr().err


def test_counts_that_match_the_text_carry_no_warning(tmp_path, capsys):
    from ltrsched.workloads.tokenizer import count_tokens

    prompts = [f"Please explain topic number {i} in a few words" for i in range(3)]
    path = _conversations(tmp_path / "c.parquet", {"prompt_tokens": count_tokens(prompts).tolist()})
    load_workload(str(path))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("values, message", [
    ([5, 0, 6], "column 'prompt_tokens' in row 2 (id 'c1') is 0, not a token count (a whole number in 1..2**53)"),
    ([5.0, 6.5, -1.0], "column 'prompt_tokens' in row 2 (id 'c1') is 6.5, not a token count"),
    ([5.0, float("nan"), 6.0], "column 'prompt_tokens' in row 2 (id 'c1') is nan, not a token count"),
    # (counts as text are read as a flat table's: number_text)
    (["5", "6x", "7"], "column 'prompt_tokens' has non-numeric values (String, first: '6x') in row 2 (id 'c1')"),
])
def test_bad_counts_of_a_conversations_parquet_are_one_line_errors(capsys, tmp_path, values, message):
    """A count of 0 or -1 was no error: the paper's selection would have dropped the turn as ineligible, silently."""
    path = _conversations(tmp_path / "c.parquet", {"prompt_tokens": values})
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)), message)


def test_a_parse_cached_before_counts_were_used_is_not_reused(tmp_path, monkeypatch, capsys):
    from ltrsched.workloads.sharegpt import cache_dir, parse_sharegpt, records_key

    monkeypatch.setenv("LTRSCHED_CACHE", str(tmp_path / "cache"))
    path = _conversations(tmp_path / "c.parquet", {"output_tokens": [70, 80, 90]})
    old = cache_dir() / f"sharegpt-{records_key(path)}-utf8.parquet"  # as the parse was cached: the text recounted
    old.parent.mkdir(parents=True)
    parse_sharegpt(_conversations(tmp_path / "plain.parquet")).write_parquet(old)  # (what the old parse gave)
    (old.parent / (old.name + ".notes.json")).write_text("[]")
    assert sorted(load_workload(str(path)).df["output_tokens"].to_list()) == [70, 80, 90]


# -- found by the audit ---------------------------------------------------------------------------------------------

def test_an_empty_workload_name_says_so(capsys):
    """``-w ''`` said "workload '' is a directory, not a file" (Path("") is the current directory)."""
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w",
                                       ""), "no workload given (the name '' is empty): give a built-in")


@pytest.mark.parametrize("value", ["inf", "1e23", "nan"])
def test_an_infinite_or_huge_token_count_is_a_plain_error(capsys, tmp_path, value):
    """inf and 1e23 are integral floats: the cast to Int64 failed with polars' own message ("conversion from `f64` to
    `i64` failed in column 'prompt_tokens' for 1 out of 1 values: [inf]")."""
    path = tmp_path / "t.parquet"
    pl.DataFrame({"prompt_tokens": [3.0, float(value)], "output_tokens": [4, 5]}).write_parquet(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w",
                                       str(path)), f"column 'prompt_tokens' in row 2 is {float(value)!r}, not a "
                                                   "token count (a whole number in 1..2**53)")
    (tmp_path / "t.csv").write_text(f"prompt_tokens,output_tokens\n3,4\n{value.replace('nan', 'inf')},5\n")
    # (a .csv's count fields are text, read as a parquet's Utf8 and a .jsonl's strings are: 'inf' spells no count)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "t.csv")),
                          *(("column 'prompt_tokens' in row 2 is 1e+23, not a token count",) if value == "1e23" else
                            ("column 'prompt_tokens' has non-numeric values (String, first: 'inf') in row 2",)))


def test_an_unsigned_count_beyond_int64_is_a_plain_error(tmp_path):
    path = tmp_path / "t.parquet"
    pl.DataFrame({"prompt_tokens": pl.Series([3, 4], dtype=pl.UInt64),
                  "output_tokens": pl.Series([2**64 - 1, 5], dtype=pl.UInt64)}).write_parquet(path)
    with pytest.raises(UserError, match=r"column 'output_tokens' in row 1 is 18446744073709551615, not a token count"):
        load_workload(str(path))


def test_conversations_in_a_jsonl_and_prompts_in_a_json_array_name_the_other_format(capsys, tmp_path):
    import json

    message = [{"role": "user", "content": "hello there my friend"}, {"role": "assistant", "content": "hi back to you"}]
    (tmp_path / "c.jsonl").write_text(json.dumps({"messages": message}) + "\n")  # OpenAI's chat format: read
    assert run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "c.jsonl")).returncode == 0
    (tmp_path / "m.jsonl").write_text(json.dumps({"prompt": "hello", "output_tokens": 3}) + "\n"
                                      + json.dumps({"messages": message}) + "\n")
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "m.jsonl")),
                          "m.jsonl:2: expected an object with string fields 'prompt' and 'generated' (or, instead of "
                          "a text, its length: 'prompt_tokens', 'output_tokens'; Mooncake's 'input_length', "
                          "'output_length'); this line is a conversation and the first line is not: a .jsonl holds "
                          "requests or conversations (OpenAI's chat format), one kind on every line")
    (tmp_path / "p.json").write_text(json.dumps([{"prompt": "hello there friend", "generated": "ok then"}] * 2))
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(tmp_path / "p.json")),
                          "2 with no messages (first: record 1: no 'conversations', 'items', 'conversation' or "
                          "'messages' list ('prompt' text: a .jsonl format))")


@pytest.mark.parametrize("column, scale", [("timestamp", 1.0), ("TIMESTAMP", 1.0), ("arrived_at_ms", 1e-3)])
def test_a_parquet_reads_times_under_a_csv_name(tmp_path, column, scale):
    """A parquet read arrival_time (or arrival_time_s, _ms) alone: a 'timestamp' column travelled along unread, and
    replay said the file had no arrival times. The names a .csv reads are read (workloads/loaders.arrival_suffix);
    the run cache key marks such files (runs cached before had every request at t = 0)."""
    from ltrsched.workloads.loaders import workload_fingerprint

    path = tmp_path / "t.parquet"
    pl.DataFrame({"prompt_tokens": [3, 4], "output_tokens": [4, 5], column: [1.0, 2.5]}).write_parquet(path)
    assert load_workload(str(path)).df.sort("request_id")["arrival_time"].to_list() == [1.0 * scale, 2.5 * scale]
    assert workload_fingerprint(str(path))["arrival names"] == "read"
    pl.DataFrame({"prompt_tokens": [3], "output_tokens": [4], column: [1.0], "arrival_time": [1.0]}).write_parquet(path)
    with pytest.raises(UserError, match="both give (the )?arrival times") as caught:
        load_workload(str(path))
    assert f"'{column}'" in str(caught.value) and "'arrival_time'" in str(caught.value)


# -- token counts under other tools' names in a parquet -----------------------------------------------------------

@pytest.mark.parametrize("prompt_name, output_name", [
    ("input_tokens", "num_decode_tokens"), ("ContextTokens", "GeneratedTokens"), ("prompt_len", "output_len")])
def test_a_conversations_parquet_reads_counts_under_other_names(tmp_path, prompt_name, output_name, capsys):
    """Names a .csv reads (vidur's, Azure's, ...): they travelled along unread and the text was recounted."""
    from ltrsched.workloads.loaders import workload_fingerprint

    path = _conversations(tmp_path / "c.parquet", {prompt_name: [100, 200, 300], output_name: [7, 8, 9]})
    df = load_workload(str(path)).df.sort("source_id")
    assert df["prompt_tokens"].to_list() == [100, 200, 300] and df["output_tokens"].to_list() == [7, 8, 9]
    assert workload_fingerprint(str(path))["counts"] == "given"


def test_a_flat_parquet_reads_a_count_under_another_name_beside_the_text(tmp_path):
    """A prompt text and input_tokens: the text was counted, input_tokens travelled along unread."""
    from ltrsched.workloads.loaders import workload_fingerprint

    path = tmp_path / "t.parquet"
    pl.DataFrame({"prompt": ["hello there", "how are you"], "input_tokens": [40, 50],
                  "output_tokens": [3, 4]}).write_parquet(path)
    assert load_workload(str(path)).df["prompt_tokens"].to_list() == [40, 50]
    assert workload_fingerprint(str(path))["counts"] == "given"
    pl.DataFrame({"num_prefill_tokens": [4, 5], "output_len": [3, 4]}).write_parquet(path)  # (was "missing column")
    df = load_workload(str(path)).df
    assert df["prompt_tokens"].to_list() == [4, 5] and df["output_tokens"].to_list() == [3, 4]


def test_a_parquet_with_ours_beside_another_name_or_with_two_other_names_is_refused(capsys, tmp_path):
    """Ours beside another name (input_tokens 9 where prompt_tokens says 4) was read as ours, silently: refused, as a
    .csv's and a .jsonl's are (tests/test_trace_hostile.py)."""
    path = tmp_path / "t.parquet"
    pl.DataFrame({"prompt_tokens": [4, 5], "input_tokens": [9, 9], "output_tokens": [3, 4]}).write_parquet(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w", str(path)),
                          "t.parquet: columns 'prompt_tokens' and 'input_tokens' both give the prompt_tokens")
    pl.DataFrame({"input_tokens": [4, 5], "prompt_len": [9, 9], "output_tokens": [3, 4]}).write_parquet(path)
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w",
                                       str(path)), "t.parquet: columns 'input_tokens' and 'prompt_len' "
                                                                "both give the prompt_tokens; which does? keep one")
    _conversations(path, {"input_tokens": [4, 5, 6], "num_prefill_tokens": [9, 9, 9]})
    assert_one_line_error(run_cli_fast(capsys, "simulate", "-w",
                                       str(path)), "columns 'input_tokens' and 'num_prefill_tokens' both "
                                                                "give the prompt_tokens")


def test_arrival_times_given_twice_in_seconds_do_not_say_other_units(tmp_path):
    """arrival_time beside arrival_time_s: both seconds, and the error said "in other units"."""
    (tmp_path / "t.csv").write_text("arrived_at,arrived_at_s,prompt_tokens,output_tokens\n0,0,3,4\n")
    with pytest.raises(UserError, match="columns 'arrived_at' and 'arrived_at_s' both give arrival times, both in "
                                        "seconds; keep one$"):
        load_workload(str(tmp_path / "t.csv"))
    pl.DataFrame({"arrival_time": [0.0], "arrival_time_s": [0.0], "prompt_tokens": [3],
                  "output_tokens": [4]}).write_parquet(tmp_path / "t.parquet")
    with pytest.raises(UserError, match="columns arrival_time and arrival_time_s both give arrival times, both in "
                                        "seconds; keep one$"):
        load_workload(str(tmp_path / "t.parquet"))
    (tmp_path / "t.jsonl").write_text('{"prompt_tokens": 3, "output_tokens": 4, "arrival_time": 1, '
                                      '"arrival_time_ms": 1}\n')
    with pytest.raises(UserError, match="'arrival_time' and 'arrival_time_ms' both give the arrival time, in other "
                                        "units; give one$"):
        load_workload(str(tmp_path / "t.jsonl"))


def test_a_jsonl_reads_times_under_a_csv_key(tmp_path):
    """A .jsonl read arrival_time alone: 'timestamp' was not read (replay said the file had no arrival times). The
    keys a .csv's header names are read, in any case; Mooncake's 'timestamp' stays milliseconds."""
    from ltrsched.workloads.loaders import workload_fingerprint

    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt_tokens": 3, "output_tokens": 4, "timestamp": 1.5}\n'
                    '{"prompt_tokens": 3, "output_tokens": 4, "timestamp": 2.5}\n')
    assert load_workload(str(path)).df.sort("request_id")["arrival_time"].to_list() == [1.5, 2.5]
    assert workload_fingerprint(str(path))["arrival names"] == "read"
    path.write_text('{"input_length": 3, "output_length": 4, "timestamp": 1500}\n')  # (Mooncake's: read before)
    assert load_workload(str(path)).df["arrival_time"].to_list() == [1.5]
    assert "arrival names" not in workload_fingerprint(str(path))
    path.write_text('{"prompt_tokens": 3, "output_tokens": 4, "Arrived_At_ms": 1500, "timestamp": 2}\n')
    with pytest.raises(UserError, match="t.jsonl:1: 'Arrived_At_ms' and 'timestamp' both give the arrival time, in "
                                        "other units; give one$"):
        load_workload(str(path))
