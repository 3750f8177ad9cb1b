"""The recompute preemption's accounting (ltrsched.policies.recompute), shared by the simulator and the engine."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ltrsched.policies.base import RequestState
from ltrsched.policies.recompute import recompute


@st.composite
def host_columns(draw):
    n = draw(st.integers(1, 60))
    prompt = np.array(draw(st.lists(st.integers(1, 500), min_size=n, max_size=n)), dtype=np.int64)
    generated = np.array(draw(st.lists(st.integers(0, 300), min_size=n, max_size=n)), dtype=np.int64)
    known = prompt + generated
    computed = np.array([draw(st.integers(0, int(k))) for k in known], dtype=np.int64)
    rows = np.array(draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n)), dtype=np.int64)
    return rows, prompt, generated, computed


@given(host_columns())
@settings(max_examples=150, deadline=None)
def test_recompute_resets_the_rows_and_counts_what_it_threw_away(columns):
    rows, prompt, generated, computed = columns
    n = len(prompt)
    state = np.full(n, int(RequestState.RUNNING), dtype=np.int8)
    resident = np.ones(n, dtype=bool)
    pending = prompt + generated - computed
    before = computed.copy()
    discarded = recompute(rows, state, resident, computed, pending, prompt, generated)
    assert discarded == int(before[rows].sum())
    hit = np.zeros(n, dtype=bool)
    hit[rows] = True
    assert (state[hit] == int(RequestState.WAITING)).all() and not resident[hit].any() and not computed[hit].any()
    # every request, preempted or not, keeps pending = prompt + generated - computed
    assert (pending == prompt + generated - computed).all()
    assert (state[~hit] == int(RequestState.RUNNING)).all() and resident[~hit].all()
    assert (computed[~hit] == before[~hit]).all()
