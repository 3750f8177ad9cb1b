"""A column of numbers with one word among them (a .csv's, or a parquet's text) was refused as "non-numeric values
(String, first: '10')": its first value, a number, shown as the culprit. The value shown is one that is not a
number."""

from __future__ import annotations

import pytest

from ltrsched.errors import UserError
from test_cli_simulate import assert_one_line_error, run_cli


@pytest.mark.parametrize("name, text, shown", [
    ("t.csv", "request_id,prompt_tokens,output_tokens\n0,10,5\n1,abc,6\n", "column 'prompt_tokens' has non-numeric "
                                                                          "values (String, first: 'abc')"),
    ("t.csv", "prompt_tokens,output_tokens,arrival_time_ms\n10,5,0\n10,5,soon\n", "column 'arrival_time_ms' has "
                                                                                   "non-numeric values (String, "
                                                                                   "first: 'soon')"),
])
def test_a_non_numeric_column_shows_a_value_that_is_not_a_number(tmp_path, name, text, shown):
    """A column of numbers with one word among them showed its first value, a number ('10'), as the culprit."""
    path = tmp_path / name
    path.write_text(text)
    assert_one_line_error(run_cli("simulate", "-w", str(path)), shown)


def test_a_parquet_text_column_shows_a_value_that_is_not_a_number(tmp_path):
    import polars as pl

    from ltrsched.workloads import load_workload

    path = tmp_path / "t.parquet"
    pl.DataFrame({"request_id": [0, 1, 2], "prompt_tokens": ["10", " 7 ", "x"], "output_tokens": [5, 6, 7]}
                 ).write_parquet(path)
    with pytest.raises(UserError, match=r"column 'prompt_tokens' has non-numeric values \(String, first: 'x'\) in "
                                        r"row 3"):
        load_workload(str(path))
    pl.DataFrame({"request_id": [0, 1], "prompt_tokens": [True, False], "output_tokens": [5, 6]}).write_parquet(path)
    with pytest.raises(UserError, match=r"column 'prompt_tokens' in row 1 is True, not a token count"):
        load_workload(str(path))
