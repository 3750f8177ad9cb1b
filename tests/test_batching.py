"""form_batch's scalar path for a single live request agrees with its general path."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ltrsched.policies import batching
from ltrsched.policies.batching import BatchLimits, form_batch


@st.composite
def limits_strategy(draw) -> BatchLimits:
    """Any BatchLimits: every int field drawn small (so limits bind), every bool field both ways."""
    values = {}
    for f in dataclasses.fields(BatchLimits):
        if f.type in ("bool", bool):
            values[f.name] = draw(st.booleans())
        elif f.name != "watermark_blocks":
            values[f.name] = draw(st.integers(1, 64))
    values["watermark_blocks"] = draw(st.integers(0, values["num_gpu_blocks"] - 1))
    return BatchLimits(**values)


@st.composite
def single_request(draw):
    n = draw(st.integers(1, 6))  # requests the host tracks; one is live
    pending = np.array(draw(st.lists(st.integers(1, 200), min_size=n, max_size=n)), dtype=np.int64)
    computed = np.array(draw(st.lists(st.integers(0, 200), min_size=n, max_size=n)), dtype=np.int64)
    resident = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    live = draw(st.integers(0, n - 1))
    return np.array([live], dtype=np.int64), pending, computed, resident


def _plan(order, pending, computed, resident, limits, resident_blocks):
    try:
        return form_batch(order, pending, computed, resident, limits, resident_blocks)
    except ValueError as e:
        return str(e)


@settings(max_examples=400, deadline=None)
@given(req=single_request(), limits=limits_strategy(), pass_blocks=st.booleans())
def test_single_request_path_matches_the_general_path(req, limits, pass_blocks):
    order, pending, computed, resident = req
    blocks = int((-(-computed[resident] // limits.block_size)).sum()) if pass_blocks else None
    fast = _plan(order, pending, computed, resident, limits, blocks)
    original = batching._form_single
    batching._form_single = lambda *args: None  # force the general path
    try:
        general = _plan(order, pending, computed, resident, limits, blocks)
    finally:
        batching._form_single = original
    if isinstance(general, str):
        assert fast == general
        return
    assert np.array_equal(fast.batch, general.batch) and fast.batch.dtype == general.batch.dtype
    assert np.array_equal(fast.num_new_tokens, general.num_new_tokens)
    assert fast.num_new_tokens.dtype == general.num_new_tokens.dtype
    assert np.array_equal(fast.evict, general.evict)
    assert fast.blocks_in_use == general.blocks_in_use
