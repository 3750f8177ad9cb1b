"""A request file's ``id`` (a ``.jsonl`` line's key, a ``.csv``'s or flat parquet's column, in any case) of whole
numbers is its requests' ids, checked as ``request_id`` is, by one rule (:mod:`ltrsched.workloads.id_names`): it was
never read (the requests numbered 0, 1, ..., duplicates passed), where a ``request_id`` of the same values was kept."""

from __future__ import annotations

import json

import polars as pl
import pytest

from cli_helpers import assert_one_line_error, run_cli_fast
from ltrsched.workloads import load_workload


def _write(tmp_path, kind: str, ids: list, name: str = "id") -> str:
    rows = [{name: v, "prompt_tokens": 10 + i, "output_tokens": 20 + i} for i, v in enumerate(ids)]
    path = tmp_path / f"r.{kind}"
    if kind == "csv":
        path.write_text(f"{name},prompt_tokens,output_tokens\n" + "".join(
            f"{r[name]},{r['prompt_tokens']},{r['output_tokens']}\n" for r in rows))
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pl.DataFrame(rows).write_parquet(path)
    return str(path)


@pytest.mark.parametrize("kind, name", [("csv", "id"), ("jsonl", "id"), ("parquet", "id"), ("csv", "ID"),
                                        ("parquet", "ID")])  # (a .jsonl's keys match as written)
def test_a_files_id_is_its_request_id(tmp_path, kind, name):
    path = _write(tmp_path, kind, [7, 3, 12], name)
    df = load_workload(path).df
    assert df["request_id"].to_list() == [7, 3, 12]
    assert df.sort("request_id")["prompt_tokens"].to_list() == [11, 10, 12]
    sampled = load_workload(path, num_requests=2, seed=3).df  # (-n keeps each request's own id)
    assert all(dict(zip(df["request_id"], df["prompt_tokens"]))[i] == p
               for i, p in zip(sampled["request_id"], sampled["prompt_tokens"]))


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("ids", [[7, 3, 7], [1, 2, 10**15], [-1, 0, 1]])
def test_an_id_that_cannot_be_a_request_id_is_not_read(tmp_path, kind, ids):
    """A repeated ``id`` (a conversation's or a user's on several lines) or one outside [0, 10,000,000) (a log's
    64-bit ids) is another tool's label: the requests are numbered, as before ``id`` was read (it was refused)."""
    assert load_workload(_write(tmp_path, kind, ids)).df["request_id"].to_list() == [0, 1, 2]


@pytest.mark.parametrize("kind, where", [("csv", "r.csv: row 3: request_id 7 is row 1's too"),
                                         ("jsonl", "r.jsonl: line 3: request_id 7 is line 1's too")])
def test_a_repeated_request_id_is_still_refused(capsys, tmp_path, kind, where):
    path = _write(tmp_path, kind, [7, 3, 7], "request_id")
    assert_one_line_error(run_cli_fast(capsys, "workloads", path), where, "request ids must be unique")


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_an_id_of_other_text_is_no_request_id(tmp_path, kind):
    """A log's own label (``chatcmpl-1``, a UUID) is no request id: the requests are numbered, as before."""
    path = _write(tmp_path, kind, ["chatcmpl-1", "chatcmpl-2", "chatcmpl-1"])
    assert load_workload(path).df["request_id"].to_list() == [0, 1, 2]


def test_request_id_beside_id_is_the_request_id(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"request_id": 5 - i, "id": i, "prompt_tokens": 9, "output_tokens": 9}) + "\n"
                            for i in range(3)))
    assert load_workload(str(path)).df["request_id"].to_list() == [5, 4, 3]
