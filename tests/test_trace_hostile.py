"""Hostile workload files in the trace formats read lately (other tools' count names: ``completion_tokens``,
``input_len``/``output_len``, ``num_prompt_tokens``; Mooncake's ``timestamp``/``timestamp_ms``/``timestamp_s``;
BurstGPT; Azure 2023/2024 and Splitwise date-times), each a small file in every container the loaders take
(``.csv``, ``.parquet``, ``.jsonl``), loaded through ``ltrsched simulate -w FILE`` in this process (``-n 5`` where
it is refused). Each is
either read as it means (the values checked in the run's ``requests.parquet``) or refused in one line naming the
file, the row or column and the fix, exit code 2; never a traceback, a silent misread or a dropped row."""

from __future__ import annotations

import gzip
import json
import math

import polars as pl
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.workloads.loaders import workload_fingerprint

ALL = ("csv", "parquet", "jsonl")


def _cell(value) -> str:
    return "" if value is None else str(value)


def _write(tmp_path, name: str, kind: str, rows: list[dict]) -> str:
    """``rows`` (records of one set of keys) as ``name.kind``; a value None is a missing one (an empty field, a
    null); floats NaN and inf as each container writes them (a ``.csv``'s ``nan``, a ``.jsonl``'s ``NaN``)."""
    path = tmp_path / f"{name}.{kind}"
    if kind == "csv":
        cols = list(rows[0])
        path.write_text(",".join(cols) + "\n" + "".join(",".join(_cell(r[c]) for c in cols) + "\n" for r in rows))
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pl.DataFrame(rows, strict=False).write_parquet(path)
    return str(path)


def _rows(n: int = 5, **columns) -> list[dict]:
    """``n`` records; each keyword a column, a list (a value per row) or one value for every row."""
    return [{k: (v[i] if isinstance(v, list) else v) for k, v in columns.items()} for i in range(n)]


def _simulate(capsys, tmp_path, path: str, *args: str):
    return run_cli_fast(capsys, "simulate", "-w", path, "--no-progress", "-o", str(tmp_path / "run"), *args)


def _served(capsys, tmp_path, path: str, *args: str) -> pl.DataFrame:
    """The requests ``simulate -w path ARGS`` served (no error, no traceback), by request id: the file's rows in order
    (``-n`` would draw them in a random order, and a .csv's and .jsonl's are numbered after the draw)."""
    r = _simulate(capsys, tmp_path, path, *args)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return pl.read_parquet(tmp_path / "run" / "requests.parquet").sort("request_id")


# --- read as they mean ---------------------------------------------------------------------------------------------

READ = {
    # integral floats are whole counts, as some writers store every number
    "integral floats": (_rows(input_len=[12.0, 3.0, 4.0, 5.0, 6.0], output_len=5.0), ALL,
                        [12, 3, 4, 5, 6], [5] * 5),
    # names in another case and with spaces around them (a header written "a, b"); a .jsonl's keys match as written
    "names in another case": (_rows(**{"Input_Len": [3, 4, 5, 6, 7], " output_len": 4}), ("csv", "parquet"),
                              [3, 4, 5, 6, 7], [4] * 5),
    # unknown columns travel along, unread
    "extra columns": (_rows(input_len=[3, 4, 5, 6, 7], output_len=4, foo="x", bar=1.5), ALL, [3, 4, 5, 6, 7], [4] * 5),
    "completion_tokens": (_rows(prompt_tokens=[3, 4, 5, 6, 7], completion_tokens=[8, 9, 10, 11, 12]), ALL,
                          [3, 4, 5, 6, 7], [8, 9, 10, 11, 12]),
    "num_prompt_tokens": (_rows(num_prompt_tokens=[3, 4, 5, 6, 7], num_output_tokens=9), ALL, [3, 4, 5, 6, 7], [9] * 5),
    # counts written as text: read as a .csv's fields are, in every container (a parquet's Utf8 column and a .jsonl's
    # JSON strings were refused)
    "counts as text": (_rows(input_len=["12", " 3", "4.0", "+5", "6"], output_len=["5", "6", "7", "8", "1e1"]), ALL,
                       [12, 3, 4, 5, 6], [5, 6, 7, 8, 10]),
    "BurstGPT": (_rows(**{"Timestamp": [5, 6, 7, 8, 9], "Model": "ChatGPT", "Request tokens": [472, 417, 29, 8, 9],
                          "Response tokens": [18, 217, 340, 1, 2], "Total tokens": 0, "Log Type": "Conversation log"}),
                 ALL, [472, 417, 29, 8, 9], [18, 217, 340, 1, 2]),  # (a .jsonl: BurstGPT's keys as it writes them)
}


@pytest.mark.parametrize("case, kind", [(case, kind) for case, (_, kinds, *_) in READ.items() for kind in kinds])
def test_a_file_is_read_as_it_means(capsys, tmp_path, case, kind):
    rows, _, prompts, outputs = READ[case]
    served = _served(capsys, tmp_path, _write(tmp_path, "t", kind, rows))
    assert served["prompt_tokens"].to_list() == prompts and served["output_tokens"].to_list() == outputs


ARRIVALS = {
    # replayed from the first: unsorted and repeated times are each request's own
    "unsorted": (_rows(timestamp_s=[5, 1, 3, 3, 2], input_len=3, output_len=4), ALL, [4, 0, 2, 2, 1]),
    "Mooncake's timestamp_ms": (_rows(timestamp_ms=[1000, 3000, 3000, 4500, 9000], input_length=3, output_length=4),
                                ALL, [0, 2, 2, 3.5, 8]),
    # date-times with different zones: seconds apart in UTC
    "zones": (_rows(timestamp=["2024-01-01T00:00:00+02:00", "2024-01-01T00:00:05Z", "2023-12-31T23:00:00Z",
                               "2024-01-01T01:00:00+01:00", "2023-12-31T22:00:01Z"], input_len=3, output_len=4),
              ALL, [0, 7205, 3600, 7200, 1]),
    "Azure 2023": (_rows(TIMESTAMP=["2023-11-16 18:15:46.6805900", "2023-11-16 18:15:50.9951690",
                                    "2023-11-16 18:15:50.9951690", "2023-11-16 18:15:51.0", "2023-11-16 18:15:47"],
                         ContextTokens=374, GeneratedTokens=44), ("csv", "parquet"),
                   [0, 4.314579, 4.314579, 4.31941, 0.31941]),
    "Azure 2024": (_rows(TIMESTAMP=["2024-05-10 00:00:00.009930+00:00", "2024-05-10 00:00:00.014894+00:00",
                                    "2024-05-10 00:00:01.009930+00:00", "2024-05-10 00:00:02.009930+00:00",
                                    "2024-05-10 00:00:03.009930+00:00"], ContextTokens=2162, GeneratedTokens=5),
                   ("csv", "parquet"), [0, 0.004964, 1, 2, 3]),
}


@pytest.mark.parametrize("case, kind", [(case, kind) for case, (_, kinds, _) in ARRIVALS.items() for kind in kinds])
def test_arrival_times_are_read_as_they_mean(capsys, tmp_path, case, kind):
    rows, _, times = ARRIVALS[case]
    served = _served(capsys, tmp_path, _write(tmp_path, "t", kind, rows), "--arrival", "replay")
    assert served["arrival_time"].to_list() == pytest.approx(times, abs=1e-6)


@pytest.mark.parametrize("name, data", [
    ("bom.csv", "\ufeffinput_len,output_len\n3,4\n5,6\n"),
    ("crlf.csv", "input_len,output_len\r\n3,4\r\n5,6\r\n"),
    ("strings.csv", 'input_len,output_len\n"3","4"\n5,6\n'),  # (a .csv's fields are text: quoted numbers are numbers)
    ("bom.jsonl", '\ufeff{"input_len": 3, "output_len": 4}\n{"input_len": 5, "output_len": 6}\n'),
    ("crlf.jsonl", '{"input_len": 3, "output_len": 4}\r\n{"input_len": 5, "output_len": 6}\r\n'),
])
def test_a_byte_order_mark_crlf_line_ends_and_quoted_numbers_are_read(capsys, tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data.encode())
    r = _simulate(capsys, tmp_path, str(path))
    assert r.returncode == 0, r.stderr
    served = pl.read_parquet(tmp_path / "run" / "requests.parquet").sort("request_id")
    assert served["prompt_tokens"].to_list() == [3, 5] and served["output_tokens"].to_list() == [4, 6]


@pytest.mark.parametrize("kind", ALL)
def test_a_one_row_file_is_read_and_a_larger_sample_refused(capsys, tmp_path, kind):
    path = _write(tmp_path, "one", kind, [{"input_len": 3, "output_len": 4}])
    r = _simulate(capsys, tmp_path, path, "-n", "1")
    assert r.returncode == 0, r.stderr
    assert pl.read_parquet(tmp_path / "run" / "requests.parquet")["prompt_tokens"].to_list() == [3]
    assert_one_line_error(_simulate(capsys, tmp_path, path, "-n", "5"), "asked for 5 requests", "has only 1")


def test_a_runs_requests_parquet_replays_with_its_generated_tokens_beside_the_output(capsys, tmp_path):
    """Our runs' generated_tokens (what a run generated, fewer for an unfinished request) is no second name for
    output_tokens: such a file replays with its output_tokens."""
    path = _write(tmp_path, "requests", "parquet",
                  _rows(prompt_tokens=3, output_tokens=[4, 5, 6, 7, 8], generated_tokens=[4, 0, 6, 2, 8]))
    assert _served(capsys, tmp_path, path)["output_tokens"].to_list() == [4, 5, 6, 7, 8]
    assert "count names" not in workload_fingerprint(path)


# --- refused in one line -------------------------------------------------------------------------------------------

def _base(**changed) -> list[dict]:
    """5 requests of input_len 3..7 and output_len 4, row 2 (the second) changed by ``changed``."""
    rows = _rows(input_len=[3, 4, 5, 6, 7], output_len=4)
    rows[1].update(changed)
    return rows


REFUSED = {  # case -> (rows, {container: the parts of its one line}); every line names the file too
    # (a count that is no count: one wording in every container, count_values.count_error, naming the file's own
    # column or key: a table named ours, 'prompt_tokens')
    "12.5 tokens": (_base(input_len=12.5), {"csv": ("column 'input_len' in row 2 is 12.5, not a token count",),
                                            "parquet": ("column 'input_len' in row 2 is 12.5, not a token count",),
                                            "jsonl": ("key 'input_len' in line 2 is 12.5, not a token count",)}),
    "negative": (_base(input_len=-3), {"csv": ("column 'input_len' in row 2 is -3, not a token count",),
                                       "parquet": ("column 'input_len' in row 2 is -3, not a token count",),
                                       "jsonl": ("key 'input_len' in line 2 is -3, not a token count",)}),
    "zero output": (_base(output_len=0), {k: ("0", "EOS", "give output_tokens 1") for k in ALL}),
    "bool": (_rows(input_len=[True, False, True, True, True], output_len=4),
             {"csv": ("column 'input_len' in row 1 is True, not a token count",), "parquet": ("column 'input_len' in row 1 is True, not a token count",),
              "jsonl": ("key 'input_len' in line 1 is True, not a token count",)}),
    "null in one row": (_base(input_len=None), {"csv": ("missing", "row 2"), "parquet": ("missing", "row 2"),
                                                "jsonl": ("key 'input_len' in line 2 is missing (null)",)}),
    "NaN in one row": (_base(input_len=math.nan), {"csv": ("'input_len'", "'nan'", "row 2"),
                                                   "parquet": ("nan", "row 2"),
                                                   "jsonl": ("key 'input_len' in line 2 is nan",)}),
    "NaN output": (_base(output_len=math.nan), {"csv": ("'output_len'", "'nan'", "row 2"),
                                                "parquet": ("nan", "row 2"), "jsonl": ("key 'output_len' in line 2 is nan",)}),
    "inf": (_base(output_len=math.inf), {"csv": ("inf", "row 2"), "parquet": ("inf", "row 2"),
                                         "jsonl": ("key 'output_len' in line 2 is inf",)}),
    "1e30": (_base(output_len=1e30), {"csv": ("1e+30", "row 2", "2**53"), "parquet": ("1e+30", "row 2", "2**53"),
                                      "jsonl": ("key 'output_len' in line 2 is 1e+30", "2**53")}),
    "2**60 as an integer": (_base(output_len=2**60), {k: (str(2**60), "2**53") for k in ("parquet", "jsonl")}
                            | {"csv": ("2**53", "row 2")}),
    "counts as text that spells no number": (
        _rows(input_len=[12, "0x10", 3, 4, 5], output_len=[5, 6, 7, 8, 9]),
        {"csv": ("column 'input_len'", "non-numeric", "'0x10'", "row 2"),
         "parquet": ("column 'input_len'", "non-numeric", "'0x10'", "row 2"),
         "jsonl": ("key 'input_len'", "non-numeric", "'0x10'", "line 2")}),
    "input_len beside prompt_tokens, other values": (
        _rows(input_len=[10, 4, 5, 6, 7], prompt_tokens=[12, 4, 5, 6, 7], output_len=5),
        {k: ("'input_len'", "'prompt_tokens'", "both give the prompt", "which does?") for k in ALL}),
    "input_len beside prompt_tokens, same values": (
        _rows(input_len=[3, 4, 5, 6, 7], prompt_tokens=[3, 4, 5, 6, 7], output_len=5),
        {k: ("'input_len'", "'prompt_tokens'", "both give the prompt", "which does?") for k in ALL}),
    "completion_tokens beside output_tokens": (
        _rows(prompt_tokens=3, output_tokens=[4, 5, 6, 7, 8], completion_tokens=[4, 5, 6, 7, 9]),
        {k: ("'output_tokens'", "'completion_tokens'", "both give the output") for k in ALL}),
    "negative time": (_rows(arrival_time=[0, -1, 2, 3, 4], input_len=3, output_len=4),
                      {"csv": ("column 'arrival_time' in row 2 is -1, not an arrival time",),
                       "parquet": ("column 'arrival_time' in row 2 is -1, not an arrival time",),
                       "jsonl": ("key 'arrival_time' in line 2 is -1, not an arrival time",)}),
    "NaN time": (_rows(timestamp_s=[0, math.nan, 2, 3, 4], input_len=3, output_len=4),
                 {"csv": ("'timestamp_s'", "'nan'", "row 2"),  # (a .csv's text, as a count's 'nan')
                  "parquet": ("column 'timestamp_s' in row 2 is nan, not an arrival time",),
                  "jsonl": ("key 'timestamp_s' in line 2 is nan, not an arrival time",)}),
    "time in two units": (_rows(timestamp_ms=1000, timestamp_s=1, input_len=3, output_len=4),
                          {k: ("'timestamp_ms'", "'timestamp_s'", "in other units") for k in ALL}),
    "zone and no zone": (_rows(timestamp=["2024-01-01T00:00:00Z", "2024-01-01T00:00:05", "2024-01-01T00:00:06Z",
                                          "2024-01-01T00:00:07Z", "2024-01-01T00:00:08Z"], input_len=3, output_len=4),
                         {k: ("'timestamp'", "'2024-01-01T00:00:05'", "no time zone", "give every date-time a zone")
                          for k in ALL}),
    "Mooncake's plain timestamp in a table": (
        _rows(timestamp=[1000, 2000, 3000, 4000, 5000], input_length=3, output_length=4),
        {k: ("'timestamp'", "milliseconds", "timestamp_ms", "timestamp_s") for k in ("csv", "parquet")}),
    "keys in another case": (_rows(**{"Input_Len": 3, " output_len": 4}),
                             {"jsonl": (":1:", "'Input_Len'", "' output_len'", "keys match as written",
                                        "'input_len', 'output_len'")}),
}


@pytest.mark.parametrize("case, kind", [(case, kind) for case, (_, parts) in REFUSED.items() for kind in parts])
def test_a_bad_value_is_one_line_naming_the_file_where_and_what(capsys, tmp_path, case, kind):
    rows, parts = REFUSED[case]
    path = _write(tmp_path, "bad", kind, rows)
    assert_one_line_error(_simulate(capsys, tmp_path, path, "-n", "5"), f"bad.{kind}", *parts[kind])


TEXT_REFUSED = {  # a file's bytes -> the parts of its one line
    "empty.csv": ("", ("the file is empty",)),
    "empty.jsonl": ("", ("the file is empty",)),
    "header.csv": ("input_len,output_len\n", ("no requests",)),
    "blank.jsonl": ("\n  \n", ("no requests",)),
    "twice.csv": ("input_len,output_len,output_len\n3,4,7\n", ("'output_len' 2 times", "keep one")),
    "cased_twice.csv": ("input_len,Input_Len,output_len\n3,3,4\n", ("'input_len' 2 times", "keep one")),
    "twice.jsonl": ('{"input_len": 3, "output_len": 4, "output_len": 9}\n', (":1:", "'output_len'", "twice")),
    "extra_field.csv": ("input_len,output_len\n3,4\n5,6,7\n", ("line 3", "3 fields", "header names 2", "quote")),
    "open_quote.csv": ('input_len,output_len\n"3,4\n5,6\n', ("line 2", "does not parse", "quote")),
    "nan.csv": ("input_len,output_len\n3,4\nnan,5\n", ("'input_len'", "'nan'", "row 2")),
    "mixed_units.jsonl": ('{"timestamp": 1000, "input_length": 3, "output_length": 4}\n'
                          '{"timestamp": 2, "prompt_tokens": 3, "output_tokens": 4}\n',
                          (":2:", "'timestamp'", "milliseconds on line 1", "seconds on line 2", "timestamp_ms")),
    "counts.json": ('[{"input_len": 3, "output_len": 4}]', ("'input_len', 'output_len'", "a .jsonl holds",
                                                            "jq -c '.[]'")),
}


@pytest.mark.parametrize("name", list(TEXT_REFUSED))
def test_a_bad_text_file_is_one_line(capsys, tmp_path, name):
    data, parts = TEXT_REFUSED[name]
    path = tmp_path / name
    path.write_text(data)
    assert_one_line_error(_simulate(capsys, tmp_path, str(path), "-n", "1"), name, *parts)


@pytest.mark.parametrize("name", ["t.csv.gz", "t.jsonl.gz"])
def test_a_compressed_file_says_to_decompress_it(capsys, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"input_len,output_len\n3,4\n"))
    assert_one_line_error(_simulate(capsys, tmp_path, str(path)), name, "gzip-compressed", "decompress it first")


@pytest.mark.parametrize("column, values, parts", [
    ("input_len", [[1, 2], [3]], ("prompt_tokens", "non-numeric", "List", "row 1")),
    ("output_len", [{"a": 1}, {"a": 2}], ("output_tokens", "non-numeric", "Struct", "row 1")),
    ("timestamp_ms", [[1.0], [2.0]], ("timestamp_ms", "non-numeric", "List", "row 1")),
    ("timestamp_ms", ["1000", "x"], ("timestamp_ms", "non-numeric", "'x'", "row 2")),
])
def test_a_parquet_column_of_lists_or_structs_where_numbers_belong_is_one_line(capsys, tmp_path, column, values,
                                                                               parts):
    table = {"input_len": [3, 4], "output_len": [4, 5], **{column: values}}
    path = tmp_path / "nested.parquet"
    pl.DataFrame(table).write_parquet(path)
    assert_one_line_error(_simulate(capsys, tmp_path, str(path)), "nested.parquet", *parts)


def test_files_read_otherwise_now_are_keyed_apart_from_runs_cached_before(tmp_path):
    """A parquet's count under two names and a .jsonl's timestamp in two units were read (ours; each line in its
    unit): their cache keys change, so a run cached of the old reading is not reused for a file now refused."""
    twice = _write(tmp_path, "twice", "parquet", _rows(prompt_tokens=3, input_len=3, output_tokens=4))
    once = _write(tmp_path, "once", "parquet", _rows(prompt_tokens=3, output_tokens=4))
    assert workload_fingerprint(twice)["count names"] == "two refused"
    assert "count names" not in workload_fingerprint(once)
    mixed, plain = tmp_path / "mixed.jsonl", tmp_path / "plain.jsonl"
    mixed.write_text(TEXT_REFUSED["mixed_units.jsonl"][0])
    plain.write_text('{"timestamp": 1000, "input_length": 3, "output_length": 4}\n')
    assert workload_fingerprint(str(mixed))["mooncake timestamps"] == "one unit"
    assert "mooncake timestamps" not in workload_fingerprint(str(plain))


def test_a_parquet_of_no_rows_is_one_line(capsys, tmp_path):
    path = tmp_path / "none.parquet"
    empty = pl.Series([], dtype=pl.Int64)
    pl.DataFrame({"input_len": empty, "output_len": empty}).write_parquet(path)
    assert_one_line_error(_simulate(capsys, tmp_path, str(path)), "none.parquet", "the workload is empty")
