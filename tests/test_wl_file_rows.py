"""A request the replica cannot run is named by its place in the file it was read from (a .csv's or parquet's row,
a .jsonl's line, a conversations file's record), with ``-n`` too, and by the id its results carry. Before: with
``-n`` the line named the sampled table's row ("request 1 in row 2 of long.csv" of the file's row 20)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.workloads import load_workload
from ltrsched.workloads.file_rows import FILE_ROWS, FileRows
from ltrsched.workloads.loaders import FILE_ROW

LONG_AT = 20  # the file's place of the one request too long
SIZE = 25


def _lengths():
    return [(9000 if k == LONG_AT else 10 + k, 5) for k in range(1, SIZE + 1)]


def _csv(path):
    path.write_text("prompt_tokens,output_tokens\n" + "".join(f"{p},{o}\n" for p, o in _lengths()))


def _jsonl(path):  # (a blank line first: the table's row numbers are not the file's lines)
    path.write_text("\n" + "".join(json.dumps({"prompt_tokens": p, "output_tokens": o}) + "\n" for p, o in _lengths()))


def _parquet(path):
    prompt, output = zip(*_lengths())
    pl.DataFrame({"prompt_tokens": prompt, "output_tokens": output}).write_parquet(path)


FLAT = {"long.csv": (_csv, "row", LONG_AT), "long.jsonl": (_jsonl, "line", LONG_AT + 1),
        "long.parquet": (_parquet, "row", LONG_AT)}


def _long_request(path, *args) -> tuple[int, int]:
    """The id the results carry for the request too long, and its row in the table, loaded as the command loads it."""
    n = int(args[1]) if args else None
    df = load_workload(str(path), n, int(args[3]) if len(args) > 2 else 0).df.with_row_index("at", 1)
    long = df.filter(pl.col("prompt_tokens") == 9000)
    return int(long["request_id"][0]), int(long["at"][0])


@pytest.mark.parametrize("sample", [(), ("-n", "25"), ("-n", "25", "--seed", "3")], ids=["all", "n", "n-seed"])
@pytest.mark.parametrize("name", list(FLAT))
def test_a_request_file_s_row_is_named_with_and_without_sampling(capsys, tmp_path, name, sample):
    write, unit, place = FLAT[name]
    path = tmp_path / name
    write(path)
    request, at = _long_request(path, *sample)
    assert (at == LONG_AT) != bool(sample)  # (sampled: the table's row is another, which the line named)
    r = run_cli_fast(capsys, "simulate", "-w", path, *sample, "--no-progress")
    assert_one_line_error(r, f"1 request(s) exceed the profile's context limit of 8192 tokens (first: request "
                             f"{request} in {unit} {place} of {path}, prompt 9000 + output 5)")


def test_a_file_s_own_ids_are_named_with_its_row(capsys, tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("request_id,prompt_tokens,output_tokens\n"
                    + "".join(f"{100 + k},{p},{o}\n" for k, (p, o) in enumerate(_lengths(), 1)))
    r = run_cli_fast(capsys, "simulate", "-w", path, "-n", "25", "--no-progress")
    assert_one_line_error(r, f"(first: request {100 + LONG_AT} in row {LONG_AT} of {path}, prompt 9000")


def _sharegpt(path, suffix):
    """Conversations: record ``LONG_AT``'s reply is long (one record before it malformed: records skipped are no
    rows)."""
    records = [{"id": f"c{k}", "conversations": [
        {"from": "human", "value": f"please tell me something about topic number {k}"},
        {"from": "gpt", "value": ("word " * 300) if k == LONG_AT else f"here is a short answer on topic {k}"}]}
        for k in range(1, SIZE + 1)]
    records[3] = {"id": "c4", "conversations": "not a conversation"}
    if suffix == ".json":
        path.write_text(json.dumps(records))
    else:  # (a conversations parquet: its rows, as a flat table's)
        pl.DataFrame({"id": [r["id"] for r in records],
                      "conversations": [r["conversations"] if isinstance(r["conversations"], list) else []
                                        for r in records]}).write_parquet(path)


@pytest.mark.parametrize("sample", [(), ("-n", "20")], ids=["all", "n"])
@pytest.mark.parametrize("suffix, unit", [(".json", "record"), (".parquet", "row")])
def test_a_conversation_file_s_record_is_named_with_and_without_sampling(capsys, tmp_path, suffix, unit, sample):
    path = tmp_path / f"chats{suffix}"
    _sharegpt(path, suffix)
    df = load_workload(str(path), int(sample[1]) if sample else None).df
    long = df.filter(pl.col("output_tokens") > 100)
    assert long.height == 1
    r = run_cli_fast(capsys, "simulate", "-w", path, *sample, "--max-model-len", "200", "--no-progress")
    assert_one_line_error(r, f"1 request(s) exceed the context limit of 200 tokens set by --max-model-len (first: "
                             f"request {long['request_id'][0]} in {unit} {LONG_AT} of {path}, prompt ")


def test_a_replay_s_times_decades_apart_name_the_file_s_rows(capsys, tmp_path):
    """Its two requests were named by id alone: with -n, ids the file does not hold (a file without ids)."""
    path = tmp_path / "d.csv"
    times = [1680998400.0 + k for k in range(SIZE)]
    times[LONG_AT - 1] = 0.0
    path.write_text("arrival_time,prompt_tokens,output_tokens\n" + "".join(f"{t},10,5\n" for t in times))
    df = load_workload(str(path), 25, seed=2).df
    early, late = (int(df["request_id"][i]) for i in (df["arrival_time"].arg_min(), df["arrival_time"].arg_max()))
    r = run_cli_fast(capsys, "simulate", "-w", path, "-n", "25", "--seed", "2", "--arrival", "replay")
    assert_one_line_error(r, f"(request {late} in row {SIZE} arrives 53 years after request {early} in row {LONG_AT})")


def test_the_file_s_rows_stay_out_of_the_workload_s_columns(tmp_path):
    """The places travel in the meta: the table (and the results, which take its columns) keep theirs."""
    path = tmp_path / "long.csv"
    _csv(path)
    whole, sampled = load_workload(str(path)), load_workload(str(path), 7, seed=1)
    for wl in (whole, sampled):
        assert wl.df.columns == ["prompt_tokens", "output_tokens", "arrival_time", "request_id"]
        assert FILE_ROW not in wl.df.columns and isinstance(wl.meta[FILE_ROWS], FileRows)
    rows = sampled.meta[FILE_ROWS]  # (each sampled request's row holds that row's lengths)
    for rid, prompt in sampled.df.select("request_id", "prompt_tokens").iter_rows():
        assert rows.place(rid) == f"row {_lengths().index((prompt, 5)) + 1}"
    assert rows.place(99) is None


def test_file_rows_by_id():
    rows = FileRows.of([7, 2, 5], [30, 10, 20], "line")
    assert [rows.place(i) for i in (2, 5, 7, 3)] == ["line 10", "line 20", "line 30", None]
    with pytest.raises(ValueError, match="unit must be"):
        FileRows.of([1], [1], "page")
