"""The batch rules by hand, in particular the two vLLM V1 rules (resident_first, max_resident_seqs)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ltrsched.policies import BatchLimits, batching, form_batch
from ltrsched.policies.step_shape import StepShape, batch_step_shape, split_step_shape


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


def test_resident_first_cut_on_an_admitted_member_stays_in_place(monkeypatch):
    """When the member cut at the budget edge is admitted (or every member is resident), it comes last in vLLM's
    order too: the plan is the rank-order prefix, and the engine order is not worked out (before: on every step
    with a cut, ~35 us of form_batch's on the CPU engine; BENCHMARKS.md, issue 13)."""
    def engine_order(*args):
        raise AssertionError("the engine order was worked out for a cut it cannot move")

    monkeypatch.setattr(batching, "_resident_first_tokens", engine_order)
    limits = BatchLimits(max_num_batched_tokens=768, resident_first=True)
    # a resident decode, an admitted prompt, a resident decode, then an admitted 900-token prompt cut to 765
    pending, computed, resident = arrays([1, 2, 1, 900], [40, 0, 9, 0], [True, False, True, False])
    plan = form_batch(np.array([0, 1, 2, 3]), pending, computed, resident, limits)
    assert plan.batch.tolist() == [0, 1, 2, 3] and plan.num_new_tokens.tolist() == [1, 2, 1, 764]
    assert plan.ranks is None and plan.pending_tokens.tolist() == [1, 2, 1, 900]
    # residents only: a resident prompt chunk cut at the edge
    pending, computed, resident = arrays([1, 1, 900], [40, 9, 32], [True, True, True])
    plan = form_batch(np.array([0, 1, 2]), pending, computed, resident, limits)
    assert plan.num_new_tokens.tolist() == [1, 1, 766] and plan.ranks is None


@pytest.mark.parametrize("bs", [1, 3, 16])
def test_blocks_added_follows_the_definition_member_by_member(bs):
    """The KV blocks a batch adds (the integer dot that replaced a sum() must give the same counts): each member holds
    ceil((computed + take) / bs) blocks after the step, of which a resident one holds ceil(computed / bs) already."""
    rng = np.random.default_rng(bs)
    for _ in range(200):
        k = int(rng.integers(1, 40))
        computed, take = rng.integers(0, 300, k), rng.integers(1, 80, k)
        resident = rng.random(k) < 0.7
        want = sum(-(-(c + t) // bs) - (-(-c // bs) if r else 0)
                   for c, t, r in zip(computed.tolist(), take.tolist(), resident.tolist()))
        assert batching._blocks_added(computed, take, resident, bs, decode_only=False) == want


@pytest.mark.parametrize("bs", [1, 3, 16])
def test_blocks_added_and_held_counts_the_batch_residents_blocks(bs):
    """The preemption path takes the blocks the batch's residents hold (sum of ceil(computed / bs) over them) from the
    count of blocks added, which subtracts them, instead of counting them again; not counted for a decode-only batch."""
    rng = np.random.default_rng(bs + 100)
    for _ in range(200):
        k = int(rng.integers(1, 40))
        computed, take = rng.integers(0, 300, k), rng.integers(1, 80, k)
        resident = rng.random(k) < 0.7
        held = sum(-(-c // bs) for c, r in zip(computed.tolist(), resident.tolist()) if r)
        added = batching._blocks_added(computed, take, resident, bs, decode_only=False)
        assert batching._blocks_added_and_held(computed, take, resident, bs, decode_only=False) == (added, held)
        ones = np.ones(k, dtype=np.int64)
        assert batching._blocks_added_and_held(computed, ones, np.ones(k, dtype=bool), bs, decode_only=True)[1] is None


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


def test_vllm_v1_keeps_the_watermark_free_only_beside_another_request_on_the_gpu():
    """vLLM V1 (``KVCacheManager.allocate_slots``, ``has_scheduled_reqs=bool(self.running)``) keeps its watermark
    free for an admission only while another request holds KV on the GPU; the paper's rule keeps it for every
    admission. 10 blocks of 16 tokens, a watermark of 3 [blocks]."""
    paper = BatchLimits(num_gpu_blocks=10, block_size=16, watermark_blocks=3, resident_first=True)
    vllm = dataclasses.replace(paper, watermark_when_running=True)
    # one waiting request of 8 blocks (128 tokens), nothing on the GPU: vLLM admits it (8 <= 10), the paper never
    # (8 > 10 - 3), on the scalar path and the general one (a second, later request that does not fit beside it)
    for pending in ([128], [128, 16]):
        p, c, r = arrays(pending, [0] * len(pending), [False] * len(pending))
        order = np.arange(len(pending))
        plan = form_batch(order, p, c, r, vllm)
        assert plan.batch.tolist() == [0] and plan.blocks_in_use == 8 and not len(plan.evict)
        with pytest.raises(ValueError, match="needs 8 KV blocks, more than the 7 usable"):
            form_batch(order, p, c, r, paper)
    # a second admission keeps it: 4 + 4 blocks > 10 - 3, so only the first of two 64-token prompts is admitted
    p, c, r = arrays([64, 64], [0, 0], [False, False])
    assert form_batch(np.array([0, 1]), p, c, r, vllm).batch.tolist() == [0]
    # a paused resident (1 block, ranked last) keeps it too, unless it is preempted: then the admission is alone
    p, c, r = arrays([128, 1], [0, 16], [False, True])
    limits = dataclasses.replace(vllm, max_num_seqs=1)
    plan = form_batch(np.array([0, 1]), p, c, r, limits)
    assert plan.batch.tolist() == [0] and plan.evict.tolist() == [1] and plan.blocks_in_use == 8
    p, c, r = arrays([48, 1], [0, 16], [False, True])  # 3 blocks beside it: 3 + 1 + 3 <= 10, nobody preempted
    plan = form_batch(np.array([0, 1]), p, c, r, limits)
    assert plan.batch.tolist() == [0] and not len(plan.evict) and plan.blocks_in_use == 4
    # vLLM's int(watermark x blocks) with its null block counted can be every usable block; the paper's cannot
    assert BatchLimits(num_gpu_blocks=10, watermark_blocks=10, watermark_when_running=True).watermark_blocks == 10
    with pytest.raises(ValueError, match=r"watermark_blocks must be in \[0, num_gpu_blocks\), got 10"):
        BatchLimits(num_gpu_blocks=10, watermark_blocks=10)


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


# --- form_batch's scalar path for a single live request agrees with its general path ---------------

@st.composite
def limits_strategy(draw) -> BatchLimits:
    """Any BatchLimits: every int field drawn small (so limits bind), every bool field both ways."""
    values = {}
    for f in dataclasses.fields(BatchLimits):
        if f.type in ("bool", bool):
            values[f.name] = draw(st.booleans())
        elif f.name not in ("watermark_blocks", "max_resident_seqs"):
            values[f.name] = draw(st.integers(1, 64))
    top = values["num_gpu_blocks"] if values["watermark_when_running"] else values["num_gpu_blocks"] - 1
    values["watermark_blocks"] = draw(st.integers(0, top))
    values["max_resident_seqs"] = draw(st.none() | st.integers(values["max_num_seqs"], 80))
    return BatchLimits(**values)


@st.composite
def single_request(draw):
    n = draw(st.integers(1, 6))  # requests the host tracks; one is live
    pending = np.array(draw(st.lists(st.integers(1, 200), min_size=n, max_size=n)), dtype=np.int64)
    computed = np.array(draw(st.lists(st.integers(0, 200), min_size=n, max_size=n)), dtype=np.int64)
    live = draw(st.integers(0, n - 1))
    resident = np.zeros(n, dtype=bool)  # only live requests hold KV (as in every host)
    resident[live] = draw(st.booleans())
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
    assert (fast.ranks is None or list(fast.ranks) == [0]) and (general.ranks is None or list(general.ranks) == [0])


# --- the shared step shape (simulator and engine adapter) against its definition, member by member ----

def step_shape_by_definition(take, computed, known) -> StepShape:
    """The step shape member by member: a member computing the one token not yet in its KV is a decode
    (context = computed + 1), every other member a prompt (or recompute) chunk."""
    shape = StepShape()
    for n, c, k in zip(take.tolist(), computed.tolist(), known.tolist()):
        if n == 1 and c + 1 == k:
            shape.num_decode_seqs += 1
            shape.decode_context_tokens += c + 1
        else:
            shape.num_prefill_seqs += 1
            shape.num_prefill_tokens += n
            shape.prefill_attention_pairs += n * (c + (n + 1) / 2)  # half-integers: exact in any order
    return shape


@st.composite
def planned_batch(draw):
    """A batch as a host plans one: mostly decodes, with 0, 1 or several prompt/recompute chunks
    (a 1-token last chunk among them), each member taking 1 <= take <= known - computed tokens."""
    n = draw(st.integers(1, 40))
    num_chunks = draw(st.sampled_from([0, 0, 1, 1, 2, 5, 30]))  # (more than 16: the array path)
    computed = np.array(draw(st.lists(st.integers(0, 5000), min_size=n, max_size=n)), dtype=np.int64)
    pending = np.ones(n, dtype=np.int64)
    take = np.ones(n, dtype=np.int64)
    for j in draw(st.lists(st.integers(0, n - 1), min_size=min(num_chunks, n), max_size=min(num_chunks, n), unique=True)):
        pending[j] = draw(st.integers(1, 3000))
        take[j] = draw(st.integers(1, int(pending[j])))
    return take, computed, computed + pending


@given(planned_batch())
@settings(max_examples=300, deadline=None)
def test_split_step_shape_follows_the_definition(batch):
    take, computed, known = batch
    expected = step_shape_by_definition(take, computed, known)
    assert split_step_shape(take, computed, known - computed) == expected
    assert batch_step_shape(take, computed, known) == expected


@given(planned_batch(), st.booleans())
@settings(max_examples=200, deadline=None)
def test_decode_shape_and_the_replicas_one_odd_member_follow_the_definition(batch, first_token):
    """The simulator's fast paths (a decode-only step, a step with one prompt chunk or one first token) build their
    shape with the shared functions (decode_shape, few_chunks_shape), as the engine adapter does: the same shape as
    the definition member by member."""
    from types import SimpleNamespace

    from ltrsched.policies.step_shape import decode_shape
    from ltrsched.sim.replica import _OddMember

    take, computed, known = batch
    pending = known - computed
    n = len(take)
    expected = step_shape_by_definition(take, computed, known)
    odd = (pending != 1).nonzero()[0]
    if not len(odd):
        assert decode_shape(n, int(computed.sum())) == expected
        odd = [0] if first_token else []  # a prompt whose one pending token is its last: the step's first token
    if len(odd) != 1:
        return
    generated = np.ones(n, dtype=np.int64)
    generated[odd[0]] = 0
    table = SimpleNamespace(last_token_time=np.full(n, np.nan), max_token_gap=np.zeros(n))
    member = _OddMember(int(odd[0]), np.arange(n), take, computed, pending, generated, table)
    assert member.shape(n, computed) == expected


def test_split_step_shape_by_hand():
    # two decodes (contexts 9 and 4+1) and one prompt chunk of 6 after 10 computed tokens (20 pending)
    shape = split_step_shape(np.array([1, 6, 1]), np.array([9, 10, 4]), np.array([1, 20, 1]))
    assert (shape.num_decode_seqs, shape.decode_context_tokens) == (2, 9 + 4 + 2)
    assert (shape.num_prefill_seqs, shape.num_prefill_tokens) == (1, 6)
    assert shape.prefill_attention_pairs == 6 * (10 + 3.5)
    # decode-only
    shape = split_step_shape(np.array([1, 1]), np.array([7, 0]), np.array([1, 1]))
    assert shape == StepShape(num_decode_seqs=2, decode_context_tokens=7 + 1 + 0 + 1)


@st.composite
def live_requests(draw):
    n = draw(st.integers(2, 40))  # requests the host tracks
    pending = np.array(draw(st.lists(st.integers(1, 120), min_size=n, max_size=n)), dtype=np.int64)
    computed = np.array(draw(st.lists(st.integers(0, 160), min_size=n, max_size=n)), dtype=np.int64)
    resident = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    live = np.array(draw(st.permutations(range(n)))[: draw(st.integers(2, n))], dtype=np.int64)
    resident[np.setdiff1d(np.arange(n), live)] = False  # only live requests hold KV
    order = np.array(draw(st.permutations(range(len(live)))), dtype=np.int64)
    return order, live, pending, computed, resident


@settings(max_examples=600, deadline=None)
@given(req=live_requests(), limits=limits_strategy(), pass_live=st.booleans(), pass_blocks=st.booleans(),
       chunk=st.sampled_from([1, 2, 5, batching.TAIL_CHUNK]))
def test_form_batch_matches_the_reference_bit_for_bit(req, limits, pass_live, pass_blocks, chunk):
    """The cheaper preemption path (and the fast path for batches that admit nobody) changes no plan; the
    residents to preempt are found from the order's tail in chunks of any size (small ones: several chunks)."""
    from reference_batching import reference_form_batch

    order, live, pending, computed, resident = req
    blocks = int((-(-computed[resident] // limits.block_size)).sum()) if pass_blocks else None
    args = (order, pending, computed, resident, limits, blocks, live) if pass_live else \
        (live[order], pending, computed, resident, limits, blocks)
    results = []
    default, batching.TAIL_CHUNK = batching.TAIL_CHUNK, chunk
    try:
        for fn in (form_batch, reference_form_batch):
            try:
                results.append(fn(*args))
            except ValueError as e:
                results.append(str(e))
    finally:
        batching.TAIL_CHUNK = default
    got, want = results
    if isinstance(want, str):
        assert got == want
        return
    assert np.array_equal(got.batch, want.batch) and got.batch.dtype == want.batch.dtype
    assert np.array_equal(got.num_new_tokens, want.num_new_tokens) and got.num_new_tokens.dtype == want.num_new_tokens.dtype
    assert np.array_equal(got.evict, want.evict)
    assert got.blocks_in_use == want.blocks_in_use
    # the members' positions in the order (None: the prefix; the reference also gives a prefix as an array)
    assert np.array_equal(*(np.arange(len(p.batch)) if p.ranks is None else p.ranks for p in (got, want)))
    for name in ("pending_tokens", "computed_tokens"):  # values the host would otherwise gather: the same
        if getattr(got, name) is not None:
            assert np.array_equal(getattr(got, name), {"pending_tokens": pending, "computed_tokens": computed}[name][got.batch])
    # what the host's preemption and swap-in would otherwise count again: the evictees' running total of blocks,
    # and whether every member already holds its KV on the GPU (then none can be swapped in)
    if len(got.evict):
        assert np.array_equal(got.evict_blocks, (-(-computed[got.evict] // limits.block_size)).cumsum())
    else:
        assert got.evict_blocks is None
    if got.all_resident:
        assert resident[got.batch].all()


class _CountingIndex(np.ndarray):
    """An index array that counts the entries read through it by integer fancy indexing."""

    read = 0

    def __getitem__(self, item):
        out = super().__getitem__(item)
        if isinstance(item, np.ndarray) and item.dtype.kind in "iu":
            _CountingIndex.read += len(item)
        return out


def test_preemption_reads_the_order_only_as_far_as_the_evictions_reach():
    """Preempting a few residents at the bottom of a long order looks at the head and the tail, not at every live
    request (before: the live rows of the whole order were gathered to find the residents outside the batch)."""
    n, bs = 20_000, 16
    # the batch holds 256 * 16 blocks after the step, the paused residents 10 * 15: 30 too many, two must go
    limits = BatchLimits(max_num_batched_tokens=512, max_num_seqs=256, num_gpu_blocks=256 * 16 + 10 * 15 - 30,
                         block_size=bs)
    pending = np.ones(n, dtype=np.int64)
    computed = np.full(n, 15 * bs, dtype=np.int64)  # a decode fills a 16th block
    resident = np.zeros(n, dtype=bool)
    resident[:256] = True  # the batch: the best-ranked 256, all resident
    resident[-10:] = True  # and ten paused residents at the bottom of the order
    live = np.arange(n).view(_CountingIndex)
    order = np.arange(n)
    _CountingIndex.read = 0
    plan = form_batch(order, pending, computed, resident, limits, int(resident.sum()) * 15, live)
    assert list(plan.evict) == [n - 1, n - 2] and plan.blocks_in_use == limits.num_gpu_blocks
    assert list(plan.evict_blocks) == [15, 30] and plan.all_resident  # (the host counts neither again)
    assert _CountingIndex.read <= 256 + batching.TAIL_CHUNK


@given(st.lists(st.integers(0, 10_000), max_size=30), st.sampled_from([1, 3, 16, 128]))
@settings(max_examples=100, deadline=None)
def test_blocks_total_is_blocks_for_summed(tokens, block_size):
    """The hosts' count of the KV blocks requests hold (finishes, swaps, preemptions, aborts: simulator and engine
    adapter), from a list or an array: ceil(tokens / block_size) each, summed."""
    limits = BatchLimits(block_size=block_size)
    expected = sum(-(-c // block_size) for c in tokens)
    assert limits.blocks_total(tokens) == expected
    assert limits.blocks_total(np.array(tokens, dtype=np.int64)) == expected
    assert int(limits.blocks_for(np.array(tokens, dtype=np.int64)).sum()) == expected
