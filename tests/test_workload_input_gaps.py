"""Workload files an audit found mishandled: records skipped without a word, prompts of digits refused as "not
text", a conversation table's predictor columns dropped, millisecond timestamps taken as seconds. Each is now a
correct load, a one-line note or warning on stderr, or a one-line error (exit code 2), never a traceback."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.workloads.loaders import load_workload
from test_cli_simulate import assert_one_line_error, run_cli


# -- prompts that are numbers -------------------------------------------------------------------------------------

def test_a_csv_prompt_column_of_digits_is_text(tmp_path):
    """A CSV has no types: prompts "1", "42" were read as Int64 by polars and the file refused ("column prompt
    holds Int64 values, not text"); "007" would have become 7. They are text, as written."""
    path = tmp_path / "t.csv"
    path.write_text("prompt,prompt_tokens,output_tokens\n1,5,6\n42,7,8\n007,3,3\n1e3,2,2\n")
    wl = load_workload(str(path))
    assert wl.df["prompt"].dtype == pl.String and wl.df["prompt"].to_list() == ["1", "42", "007", "1e3"]
    r = run_cli("simulate", "-w", str(path), "--policy", "fcfs")
    assert r.returncode == 0, r.stderr


def test_a_csv_prompt_column_in_another_case_of_digits_is_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Prompt, prompt_tokens, output_tokens\n12,5,6\n13,7,8\n")
    assert load_workload(str(path)).df["prompt"].to_list() == ["12", "13"]


def test_a_json_number_where_a_prompt_belongs_names_the_line(tmp_path):
    """JSON has types: 42 is no text. The error named no field nor value ("expected an object with string fields
    'prompt' and 'generated' ...")."""
    path = tmp_path / "t.jsonl"
    path.write_text('{"prompt": "hi there", "generated": "yes"}\n{"prompt": 42, "generated": "no"}\n')
    with pytest.raises(UserError, match=r"t\.jsonl:2: 'prompt' must be text \(a JSON string\), got 42$"):
        load_workload(str(path))
    path.write_text('{"prompt": "hi", "generated": ["a", "b"]}\n')
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "t.jsonl:1: 'generated' must be text (a JSON string), got [\"a\", \"b\"]")


def test_a_parquet_prompt_column_of_numbers_is_a_type_error_naming_the_row(tmp_path):
    path = tmp_path / "t.parquet"
    pl.DataFrame({"prompt": [None, 42], "prompt_tokens": [5, 6], "output_tokens": [3, 4]}).write_parquet(path)
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "column prompt holds Int64 values (first: 42, row 2), not text")
    # without counts to keep, it said "missing column(s) prompt_tokens" of a table that has a prompt column
    pl.DataFrame({"prompt": [1, 42], "output_tokens": [3, 4]}).write_parquet(path)
    assert_one_line_error(run_cli("simulate", "-w", str(path)),
                          "column prompt holds Int64 values (first: 1, row 1), not text, so prompt_tokens cannot be "
                          "counted from it")
