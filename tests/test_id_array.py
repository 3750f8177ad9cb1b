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


def test_an_old_id_held_far_below_the_rest_is_held_apart(monkeypatch):
    """Ids held that span far more than their count (one old request live while many came and went): trim with
    ``held`` keeps the old id apart, in a slot of its own, and the window over the rest; reads, writes, ``rows`` and
    ``get`` reach it, ids below the window not held read ``fill`` (``rows`` refuses them), and it goes once not held."""
    from ltrsched.policies import id_array

    monkeypatch.setattr(id_array, "MIN_SPARSE", 64)
    arr = IdArray(-1, np.int64, size=8)
    arr[_ids(1000)] = _ids(5)
    for k in range(1001, 3000):  # (a server: the old id 1000 stays live, a few others at a time)
        arr[_ids(k)] = _ids(k)
        if arr.grew:
            arr.trim(1000, np.r_[1000, np.arange(max(k - 10, 1001), k + 1)])
    assert arr.k == 1 and arr.old.tolist() == [1000] and len(arr.data) <= 256
    assert arr[_ids(1000, 2999, 2995)].tolist() == [5, 2999, 2995]
    assert arr.get(_ids(2995, 1000, 1500, 10**9)).tolist() == [2995, 5, -1, -1]
    assert arr.data[arr.rows(_ids(2999, 1000))].tolist() == [2999, 5]
    with pytest.raises(IndexError, match="below the ids held"):
        arr.rows(_ids(1000, 1500))
    arr.data[arr.rows(_ids(1000))] = 6
    arr[_ids(1500)] = 7  # (written below the window: held apart too, not a window reaching down to it)
    assert arr.k == 2 and arr[_ids(1000, 1500, 2999)].tolist() == [6, 7, 2999] and len(arr.data) <= 256
    arr.trim(2990)  # (the old ids are gone)
    assert arr.k == 0 and arr[_ids(1000, 2999)].tolist() == [-1, 2999]
    arr.reset()
    assert arr.base == arr.k == 0 and (arr.data == -1).all()


def test_reserve_with_the_ids_held_holds_an_old_one_apart(monkeypatch):
    """A kept order's table (``reserve`` with ``held``, the listing): a listing of an old id and the newest ones."""
    from ltrsched.policies import id_array

    monkeypatch.setattr(id_array, "MIN_SPARSE", 64)
    arr = IdArray(-1, np.int64, size=8)
    for k in range(0, 5000, 50):
        ids = np.r_[7, np.arange(k + 10, k + 30)]
        arr.reserve(ids, lowest=7, held=ids)
        arr.data[arr.rows(ids)] = ids
    assert len(arr.data) <= 512 and arr.old.tolist() == [7]
    assert arr.get(ids).tolist() == ids.tolist()
