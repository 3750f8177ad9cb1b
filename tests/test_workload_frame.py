"""What ``Workload(df)`` accepts and keeps: a polars or a pandas frame (no pyarrow), a clear TypeError for anything
else, and a ``df`` checked again when it is assigned."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ltrsched.errors import UserError
from ltrsched.workloads.schema import Workload

COLUMNS = {"request_id": [0, 1], "prompt_tokens": [3, 4], "output_tokens": [5, 6], "arrival_time": [0.0, 1.0]}


class _Series:
    """The part of a pandas Series :func:`ltrsched.workloads.schema.as_polars` reads (pandas is no dependency)."""

    def __init__(self, values: list):
        self.values = values
        self.dtype = np.asarray(values).dtype if None not in values else np.dtype(object)

    def isna(self):
        return _Series([v is None for v in self.values])

    def any(self) -> bool:
        return any(self.values)

    def to_numpy(self, dtype=None, na_value=None):
        return np.asarray(self.values, dtype=dtype)


class DataFrame:
    """A stand-in for a pandas DataFrame: its class is named and placed as pandas' is."""

    __module__ = "pandas.core.frame"

    def __init__(self, columns: dict, names: list | None = None):
        self._columns = columns
        self.columns = names if names is not None else list(columns)

    def __getitem__(self, col) -> _Series:
        return _Series(self._columns[col])


def test_a_pandas_frame_is_converted_without_pyarrow():
    """Workload(pandas_frame) failed: AttributeError ('DataFrame' object has no attribute 'height'), or without
    pyarrow a ModuleNotFoundError where polars converted it."""
    wl = Workload(DataFrame({**COLUMNS, "prompt": ["a b", None]}), "pd")
    assert wl.df["output_tokens"].to_list() == [5, 6] and wl.df["prompt"].to_list() == ["a b", None]
    assert wl.df.schema["request_id"] == pl.Int64
    with pytest.raises(UserError, match="pd: missing column"):  # (the workload's own checks apply)
        Workload(DataFrame({"request_id": [0]}), "pd")
    with pytest.raises(UserError, match=r"repeated column names \(request_id\)"):
        Workload(DataFrame(COLUMNS, names=["request_id", "request_id"]), "pd")


def test_the_real_pandas_frame():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({**COLUMNS, "prompt": ["a", None],
                          "score": pd.array([1, None], dtype="Int64"), "po_estimate": [2.0, float("nan")]})
    wl = Workload(frame, "pd")
    assert wl.df["score"].to_list() == [1.0, None] and wl.df["po_estimate"].to_list() == [2.0, None]
    assert wl.df["prompt"].to_list() == ["a", None]


@pytest.mark.parametrize("table, hint", [(COLUMNS, "pl.DataFrame"), ([1, 2], "list"), (None, "NoneType")])
def test_anything_else_is_a_type_error_naming_what_to_pass(table, hint):
    """A dict failed with AttributeError: 'dict' object has no attribute 'height'."""
    with pytest.raises(TypeError, match=f"polars DataFrame.*{hint}"):
        Workload(table)


@pytest.mark.parametrize("output", [0, -3])
def test_an_assigned_frame_is_checked(output):
    """``w.df = frame`` replaced the checked frame unchecked: an output of 0 or -3 tokens then ended a simulation
    with "RuntimeError: simulation ended with unfinished requests"."""
    wl = Workload(pl.DataFrame(COLUMNS), "mine")
    with pytest.raises(UserError, match=r"mine: column 'output_tokens' in row 2 is -?\d, not a token count"):
        wl.df = wl.df.with_columns(output_tokens=pl.Series([5, output]))
    assert wl.df["output_tokens"].to_list() == [5, 6]
    wl.df = wl.df.with_columns(request_id=pl.Series([7.0, 8.0]))  # (a good frame is checked and normalised)
    assert wl.df.schema["request_id"] == pl.Int64 and wl.df["request_id"].to_list() == [7, 8]


def test_errors_name_the_workload_given():
    with pytest.raises(UserError, match="^mine: the workload is empty"):
        Workload(pl.DataFrame(COLUMNS).head(0), "mine")


def _set_cell(df: pl.DataFrame) -> None:
    df[1, "output_tokens"] = 0


@pytest.mark.parametrize("change", [
    lambda df: df.replace_column(2, pl.Series("output_tokens", [0, 0])),
    _set_cell,
    lambda df: df.insert_column(0, pl.Series("output_tokens_x", [1, 1])).drop_in_place("arrival_time"),
    lambda df: setattr(df, "columns", ["a", "b", "c", "d"]),
], ids=["replace_column", "set a cell", "insert and drop in place", "rename in place"])
def test_in_place_changes_to_the_frame_do_not_reach_the_workload(change):
    """Polars changes a frame in place (``replace_column``, ``df[i, col] = v``, ...): through ``w.df`` they reached
    the checked frame, unchecked (an output of 0 tokens then reached the simulator, which ended with unfinished
    requests). ``w.df`` is a copy: the workload, what a policy and the simulator read of it, stays as checked."""
    wl = Workload(pl.DataFrame(COLUMNS), "mine")
    change(wl.df)
    assert wl.df.columns == list(COLUMNS) and wl.df["output_tokens"].to_list() == [5, 6] and len(wl) == 2
    assert wl.policy_columns()["output_tokens"].tolist() == [5, 6]
    frame = wl.df
    change(frame)  # (assigning the changed frame is how to change a workload: it is checked)
    with pytest.raises(UserError, match="^mine: "):
        wl.df = frame
