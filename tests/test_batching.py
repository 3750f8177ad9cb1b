"""The batch rules by hand, in particular the two vLLM V1 rules (resident_first, max_resident_seqs)."""

from __future__ import annotations

import numpy as np
import pytest

from ltrsched.policies import BatchLimits, form_batch
from ltrsched.policies.step_shape import batch_step_shape


def arrays(pending, computed, resident):
    return (np.asarray(pending, dtype=np.int64), np.asarray(computed, dtype=np.int64), np.asarray(resident, dtype=bool))


def test_paper_rule_cuts_the_last_ranked_member():
    # request 0 waits with a 700-token prompt; request 1 is a resident prefill with 100 tokens left
    pending, computed, resident = arrays([700, 100], [0, 16], [False, True])
    plan = form_batch(np.array([0, 1]), pending, computed, resident, BatchLimits(max_num_batched_tokens=768))
    assert plan.batch.tolist() == [0, 1] and plan.num_new_tokens.tolist() == [700, 68] and plan.ranks is None


def test_resident_first_gives_the_budget_to_residents_first():
    pending, computed, resident = arrays([700, 100], [0, 16], [False, True])
    limits = BatchLimits(max_num_batched_tokens=768, resident_first=True)
    plan = form_batch(np.array([0, 1]), pending, computed, resident, limits)
    # vLLM serves the running request first: it takes its 100, the admitted prompt gets the 668 left
    assert plan.batch.tolist() == [0, 1] and plan.num_new_tokens.tolist() == [668, 100]


def test_resident_first_drops_a_member_left_without_budget():
    # the best-ranked waiting request wants 10 tokens; the resident behind it wants 800 > budget
    pending, computed, resident = arrays([10, 800], [0, 32], [False, True])
    limits = BatchLimits(max_num_batched_tokens=768, resident_first=True)
    plan = form_batch(np.array([0, 1]), pending, computed, resident, limits)
    assert plan.batch.tolist() == [1] and plan.num_new_tokens.tolist() == [768]
    assert plan.ranks.tolist() == [1]  # not a prefix of the order: hosts map it back with ranks


def test_resident_first_is_the_paper_rule_without_a_cut():
    pending, computed, resident = arrays([5, 1, 1, 300], [0, 40, 9, 0], [False, True, True, False])
    order = np.array([3, 1, 0, 2])
    a = form_batch(order, pending, computed, resident, BatchLimits(max_num_batched_tokens=768))
    b = form_batch(order, pending, computed, resident, BatchLimits(max_num_batched_tokens=768, resident_first=True))
    assert a.batch.tolist() == b.batch.tolist() == [3, 1, 0, 2]
    assert a.num_new_tokens.tolist() == b.num_new_tokens.tolist() == [300, 1, 5, 1]


def test_max_resident_seqs_preempts_the_lowest_ranked_paused():
    # four residents (decodes), two seqs per step, at most three requests may hold KV
    pending, computed, resident = arrays([1, 1, 1, 1, 20], [16, 16, 16, 16, 0], [True, True, True, True, False])
    order = np.array([4, 0, 1, 2, 3])  # a new request ranks first
    limits = BatchLimits(max_num_batched_tokens=768, max_num_seqs=2, max_resident_seqs=3)
    plan = form_batch(order, pending, computed, resident, limits)
    assert plan.batch.tolist() == [4, 0]
    # after the step 4 and 0 run and 1, 2, 3 pause: five hold KV, two too many -> the lowest-ranked go
    assert plan.evict.tolist() == [3, 2]
    assert plan.blocks_in_use == 2 + 2 + 1  # 4: 20 tokens, 0: 17 tokens, 1 keeps its 16


def test_max_resident_seqs_must_cover_the_batch():
    with pytest.raises(ValueError, match="max_resident_seqs"):
        BatchLimits(max_num_seqs=8, max_resident_seqs=4)


def test_kv_cut_then_resident_first_redistributes_and_rechecks():
    # blocks of 4 tokens, 10 blocks. Order: W (waiting, 30-token prompt), R (resident, 20 computed, 14 pending)
    pending, computed, resident = arrays([30, 14], [0, 20], [False, True])
    limits = BatchLimits(max_num_batched_tokens=32, block_size=4, num_gpu_blocks=10, resident_first=True)
    plan = form_batch(np.array([0, 1]), pending, computed, resident, limits)
    # R takes its 14 first (34 tokens: 9 blocks), W gets 18 (5 blocks): 14 > 10, so the prefix is cut
    # after W; alone, W takes all 30 prompt tokens (8 blocks), and R, outside the batch, must go
    assert plan.batch.tolist() == [0] and plan.num_new_tokens.tolist() == [30]
    assert plan.evict.tolist() == [1] and plan.blocks_in_use == 8


def test_batch_step_shape_by_hand():
    # a decode (computed 9 of 10 known), a first prompt chunk of 6, a 1-token last prompt chunk
    shape = batch_step_shape(np.array([1, 6, 1]), np.array([9, 0, 4]), np.array([10, 20, 5]))
    assert shape.num_decode_seqs == 2  # the 1-token last chunk computes the one missing token: a decode
    assert shape.num_prefill_tokens == 6 and shape.num_prefill_seqs == 1
    assert shape.decode_context_tokens == (9 + 4) + 2
    assert shape.prefill_attention_pairs == 6 * (0 + 3.5)
