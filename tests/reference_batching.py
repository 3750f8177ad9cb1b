"""``form_batch`` as it was before its preemption path was made cheaper (residents outside the batch marked by
rank instead of by a pass over every request; a batch that admits nobody skips the preemption path when it
fits the capacity), with vLLM V1's watermark rule (``watermark_when_running``) added in the plainest form: the
reference the current one must match bit for bit (tests/test_batching.py)."""

from __future__ import annotations

import numpy as np

from ltrsched.policies.batching import (_EMPTY, BatchLimits, BatchPlan, _blocks_added, _form_single,
                                        _resident_first_tokens)
from ltrsched.policies.fastops import count_nonzero, ones


def reference_form_batch(
    order: np.ndarray,
    pending_tokens: np.ndarray,
    computed_tokens: np.ndarray,
    resident: np.ndarray,
    limits: BatchLimits,
    resident_blocks: int | None = None,
    live: np.ndarray | None = None,
) -> BatchPlan:
    n = len(order)
    if n == 0:
        return BatchPlan(_EMPTY, _EMPTY, _EMPTY, 0)
    if live is None:
        order = np.asarray(order, dtype=np.int64)
    elif n <= limits.max_num_seqs:
        order, live = live[order], None  # nothing to save: the head is everything
    bs = limits.block_size
    budget = limits.max_num_batched_tokens
    if resident_blocks is None:
        resident_blocks = int((-(-computed_tokens[resident] // bs)).sum())
    if n == 1:
        plan = _form_single(order, pending_tokens, computed_tokens, resident, limits, resident_blocks)
        if plan is not None:
            return plan

    # --- 2. token budget and sequence cap: the longest prefix that fits --------------------------------
    # (methods, not np.* functions: on arrays this small the call overhead is most of the cost)
    # the batch can be no longer than the head
    head = order[: limits.max_num_seqs] if live is None else live[order[: limits.max_num_seqs]]
    wanted = pending_tokens[head]
    tokens = int(wanted.dot(ones(len(head))))  # tokens of the head (an integer dot: half a sum()'s cost)
    if tokens <= budget:  # all of the head fits whole
        k = len(head)
        take = wanted
        one_each = tokens == k  # pending >= 1, so a sum of k means every one is 1
    elif limits.chunked_prefill:
        cum = wanted.cumsum()
        # members are those starting with budget left: cum[i-1] < budget, i.e. i <= (first cum >= budget)
        k = min(int(cum.searchsorted(budget, side="left")) + 1, len(head))
        take = wanted[:k]
        tokens = int(cum[k - 1])
        one_each = tokens == k
        if tokens > budget:  # the last member runs the chunk that fills the budget
            take = take.copy()
            take[-1] -= tokens - budget
            tokens = budget
    else:
        cum = wanted.cumsum()
        k = int(cum.searchsorted(budget, side="right"))  # members fit whole
        take = wanted[:k]
        tokens = int(cum[k - 1]) if k else 0
        one_each = tokens == k
    ranks = None  # the batch is head[:k]
    if limits.resident_first and k and take[-1] < wanted[k - 1]:  # 5. the chunk cut moves to the engine order
        ranks, take = _resident_first_tokens(np.arange(k), wanted[:k], resident[head[:k]], budget)
        tokens = int(take.sum())
    batch = head[:k] if ranks is None else head[ranks]

    # --- 3./4./6. KV blocks and resident slots ---------------------------------------------------------
    cap = limits.num_gpu_blocks
    wm = limits.watermark_blocks
    b_computed = computed_tokens[batch]
    b_resident = resident[batch]
    num_resident = int(count_nonzero(b_resident))
    after = resident_blocks + _blocks_added(b_computed, take, b_resident, bs,
                                            decode_only=tokens == len(batch) == num_resident)
    slots_over = 0
    if limits.max_resident_seqs is not None:
        residents_out = int(count_nonzero(resident[order if live is None else live])) - num_resident
        slots_over = residents_out + len(batch) - limits.max_resident_seqs
    if after <= cap - wm and slots_over <= 0:  # fast path: everything fits, even under the watermark
        return BatchPlan(batch, np.asarray(take, dtype=np.int64), _EMPTY, after, ranks,
                         wanted[:len(batch)] if ranks is None else wanted[ranks], b_computed,
                         one_each and ranks is None)
    if live is not None:  # preemption looks at the whole order
        order = live[order]
    need = (b_computed + take + (bs - 1)) // bs  # blocks each member holds after the step
    held_all = np.where(resident, -(-computed_tokens // bs), 0)  # blocks each request holds on the GPU

    # 3. cut the prefix where its own blocks no longer fit (admitting a request without KV on the GPU
    # must leave the watermark free); with resident_first a cut can move the chunk edge, so repeat
    while True:
        need_cum = np.cumsum(need)
        admits_new = np.maximum.accumulate(~resident[batch]) if len(batch) else np.zeros(0, dtype=bool)
        limit = np.where(admits_new, cap - wm, cap)
        if limits.watermark_when_running and len(batch) and not resident[batch[0]]:
            limit[0] = cap  # vLLM V1: no watermark for an admission while nothing else holds KV on the GPU
        over = np.flatnonzero(need_cum > limit)
        if not len(over):
            break
        cut = int(over[0])
        if cut == 0:
            raise ValueError(
                f"request at position {int(batch[0])} needs {int(need[0])} KV blocks, more than the "
                f"{int(limit[0]) if limits.watermark_when_running else cap - wm} usable; it can never run"
            )
        kept = np.arange(cut) if ranks is None else ranks[:cut]
        if limits.resident_first:
            ranks, take = _resident_first_tokens(kept, pending_tokens[head[kept]], resident[head[kept]], budget)
        else:
            ranks, take = None, take[:cut]
        batch = head[:cut] if ranks is None else head[ranks]
        need = (computed_tokens[batch] + take + (bs - 1)) // bs
    used_by_batch = int(need_cum[-1]) if len(batch) else 0
    target = cap - wm if (len(batch) and admits_new[-1]) else cap

    # 3./6. preempt the lowest-ranked residents outside the batch until the rest fits
    in_batch = np.zeros(len(pending_tokens), dtype=bool)
    in_batch[batch] = True
    others = order[resident[order] & ~in_batch[order]][::-1]  # residents outside the batch, lowest first
    held_cum = np.cumsum(held_all[others])
    total_held = int(held_cum[-1]) if len(others) else 0
    # vLLM V1: one admitted member alone keeps the watermark free only beside residents left on the GPU
    lone = limits.watermark_when_running and len(batch) == 1 and not resident[batch[0]]
    if lone and not len(others):
        target = cap
    deficit = used_by_batch + total_held - target
    n_evict = int(np.searchsorted(held_cum, deficit, side="left")) + 1 if deficit > 0 else 0
    if lone:
        n_evict = min(n_evict, len(others))  # preempting every resident leaves it alone: it fits the capacity then
    if limits.max_resident_seqs is not None:
        n_evict = max(n_evict, len(others) + len(batch) - limits.max_resident_seqs)
    if n_evict:
        evict = others[:n_evict]
        total_held -= int(held_cum[n_evict - 1])
    else:
        evict = _EMPTY
    return BatchPlan(batch, np.asarray(take, dtype=np.int64), evict, used_by_batch + total_held, ranks)
