"""IdArray: a window of request ids that its owner can move past the ids gone (bounded memory under a server)."""

from __future__ import annotations

import numpy as np
import pytest

from ltrsched.policies.id_array import IdArray


def _ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_a_window_from_zero_grows_and_reads_as_before():
    arr = IdArray(-1, np.int64, size=8)
    arr[_ids(3, 20)] = _ids(7, 9)
    assert arr.base == 0 and len(arr.data) >= 21 and arr.grew
    assert arr[_ids(3, 20, 5)].tolist() == [7, 9, -1]
    assert arr.rows(_ids(3)) is not None and arr.data[arr.rows(_ids(20))].tolist() == [9]
    assert arr.get(_ids(1000)).tolist() == [-1] and len(arr.data) < 1000  # (get never grows)


def test_reserve_with_the_lowest_id_slides_instead_of_growing():
    arr = IdArray(0.0, size=8)
    arr.reserve(_ids(0, 7))
    arr.data[arr.rows(_ids(5, 6, 7))] = [5.0, 6.0, 7.0]
    arr.reserve(_ids(8, 9), lowest=5)  # (ids 0-4 gone)
    assert arr.base == 5 and len(arr.data) == 10  # (twice the 5 ids held: 5 .. 9)
    assert arr[_ids(5, 6, 7, 8)].tolist() == [5.0, 6.0, 7.0, 0.0]
    assert arr.rows(_ids(9)).tolist() == [4]
    with pytest.raises(IndexError, match="below the ids held"):
        arr.rows(_ids(4, 9))
    assert arr[_ids(2)].tolist() == [0.0] and arr.base == 5  # (an id gone reads the fill; a read keeps the window)


def test_trim_drops_the_ids_gone_and_keeps_the_others():
    arr = IdArray(-1, np.int64, size=4)
    for k in range(1000):  # (a server: ids by arrival, a few live at a time)
        arr.reserve(_ids(k))
        arr.data[arr.rows(_ids(k))] = k
        if arr.grew:
            arr.trim(max(k - 10, 0))
    assert len(arr.data) <= 64 and arr.base > 900
    assert arr[_ids(999, 995, 990)].tolist() == [999, 995, 990]
    arr.trim(arr.base + 1)  # (frees too little: kept as it is)
    assert arr[_ids(arr.base)].tolist() == [arr.base]


def test_an_id_below_the_window_written_extends_it_down():
    arr = IdArray(False, np.bool_, size=4)
    arr.reserve(_ids(100, 101), lowest=100)
    arr[_ids(100)] = True
    arr[_ids(40)] = True  # (a request numbered below the ones gone: the window reaches down to it)
    assert arr.base == 40 and arr[_ids(40, 41, 100, 101)].tolist() == [True, False, True, False]
    arr.reset()
    assert arr.base == 0 and not arr.data.any()
